//! One test suite for every backend.
//!
//! Each case is a `pub async fn(&dyn Store)` that expects a fresh, empty store and panics on a
//! failure. A backend's crate runs them all with one line in a test file:
//!
//! ```ignore
//! kestrel_store::store_suite!(|| async { kestrel_store::testsuite::Fixture::new(make_store(), ()) });
//! ```
//!
//! The factory returns a [`Fixture`]: the store and whatever must live as long as it (a temporary
//! directory, a server handle). The macro expands to one `#[tokio::test]` per case (multi-threaded
//! runtime), so the calling crate needs `tokio` as a (dev-)dependency. Every case closes its store
//! when it ends.
//!
//! Figures the suite fixes for every backend: grade quantiles are linear between closest ranks;
//! a step's grade figures take each rollout's latest grade of a name; list ties break by newest
//! stored trace first (oldest first for `oldest`).

use std::any::Any;

use crate::Store;

pub mod catalog;
pub mod fixtures;
pub mod hostile;
pub mod lists;
pub mod search;
pub mod traces;

pub use catalog::*;
pub use hostile::*;
pub use lists::*;
pub use search::*;
pub use traces::*;

/// A store under test and what must outlive it.
pub struct Fixture {
    pub store: Box<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

impl Fixture {
    /// `guard` is dropped after the store (a `tempfile::TempDir`, for instance).
    pub fn new(store: impl Store, guard: impl Any + Send) -> Fixture {
        Fixture {
            store: Box::new(store),
            _guard: Box::new(guard),
        }
    }

    /// Runs one case, then closes the store.
    pub async fn run<'a, F, Fut>(&'a self, case: F)
    where
        F: FnOnce(&'a dyn Store) -> Fut,
        Fut: std::future::Future<Output = ()> + 'a,
    {
        case(self.store.as_ref()).await;
        self.store.close().await.expect("close");
    }
}

/// Expands to one `#[tokio::test]` per case of the suite; `$make` is a closure returning a future
/// of a [`Fixture`] holding a fresh, empty store.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@cases $make;
            projects_get_or_create_is_idempotent,
            runs_create_get_list,
            run_steps_are_idempotent_and_figures_match,
            run_steps_stay_exact_while_cached,
            datapoints_add_replace_list_paginate,
            ingest_is_idempotent,
            trace_items_page_in_logged_order,
            out_of_order_batches_give_the_same_trace,
            item_before_opening_is_kept,
            multi_turn_trace,
            totals_are_derived_from_items,
            metadata_is_merged,
            tags_are_a_set,
            status_newest_wins,
            error_and_traceback_newest_wins,
            grade_after_the_fact,
            list_filters,
            list_sorts,
            cursor_pagination_has_no_gaps_or_duplicates,
            bad_cursor_or_limit_is_invalid,
            concurrent_ingests_all_commit,
            search_matches_the_expected_traces,
            search_bad_query_is_invalid,
            grade_sorts_paginate_with_missing_last,
            large_lists_page_exactly,
            rare_words_page_exactly,
            aggregates_match_the_generated_figures,
            trace_ids_never_join_two_projects,
            a_record_id_resent_with_other_content_is_a_conflict,
            traces_are_bounded,
            sums_saturate_and_stay_finite,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let make = $make;
                let fixture: $crate::testsuite::Fixture = make().await;
                fixture.run(|store| $crate::testsuite::$case(store)).await;
            }
        )*
    };
}
