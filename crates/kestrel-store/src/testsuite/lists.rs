//! Cases for listing traces (filters, orders, cursors) and for concurrent ingest.

use std::collections::HashSet;

use caribou_model::api::{CreateRun, TraceFilter, TraceSort, TraceSummary};
use caribou_model::{Phase, Record, RolloutStatus, TraceOpen, new_record_id};

use super::fixtures::*;
use crate::{PageRequest, Store, StoreError};

/// 24 traces over two projects, a run with steps, statuses, datapoints, varied cost, tokens and
/// duration (with ties, to exercise the tiebreak). Returns the run id.
async fn seed(store: &dyn Store) -> String {
    let run = store
        .create_run(CreateRun {
            project: "lp".into(),
            phase: Phase::Train,
            name: None,
            config: None,
        })
        .await
        .expect("run");
    let statuses = [
        RolloutStatus::Completed,
        RolloutStatus::Error,
        RolloutStatus::Truncated,
    ];
    let mut records = Vec::new();
    for i in 0..24i64 {
        let trace = format!("l{i:02}");
        let t = T0 + i * SEC;
        let turn = new_record_id();
        let opening = if i < 12 {
            TraceOpen {
                run_id: Some(run.id.clone()),
                project: None,
                step: Some(i % 3),
                datapoint_id: Some(format!("d{}", i % 4)),
                ..open(&trace, t, turn, "x")
            }
        } else {
            // prod style: run_id names the project.
            TraceOpen {
                run_id: Some("prod-app".into()),
                project: None,
                phase: Some(Phase::Prod),
                ..open(&trace, t, turn, "x")
            }
        };
        records.push(Record::TraceOpen(opening));
        // Cost and tokens repeat every 5 traces: ties on the sort key.
        records.push(msg(
            &trace,
            t + 1,
            (i % 5) as u64 * 10,
            1,
            (i % 5) as f64 * 0.5,
        ));
        if i % 6 != 5 {
            records.push(close(
                &trace,
                t + (i % 7 + 1) * 100_000,
                turn,
                Some(statuses[(i % 3) as usize]),
            ));
        }
    }
    ingest(store, records).await;
    run.id
}

pub async fn list_filters(store: &dyn Store) {
    let run_id = seed(store).await;
    let count = |f: TraceFilter| async move { list_all(store, &f).await };
    let all = count(TraceFilter::default()).await;
    assert_eq!(all.len(), 24);
    let lp = count(TraceFilter {
        project: Some("lp".into()),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(lp.len(), 12);
    assert!(
        lp.iter()
            .all(|t| t.run_id.as_deref() == Some(run_id.as_str()))
    );
    let prod = count(TraceFilter {
        project: Some("prod-app".into()),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(
        prod.len(),
        12,
        "a run_id naming no run files under the project of that name"
    );
    assert!(
        prod.iter()
            .all(|t| t.phase == Some(Phase::Prod) && t.run_id.as_deref() == Some("prod-app"))
    );
    let by_run = count(TraceFilter {
        run_id: Some(run_id.clone()),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(ids(&by_run), ids(&lp));
    let train = count(TraceFilter {
        phase: Some(Phase::Train),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(train.len(), 12, "phase defaults to the run's phase");
    let step1 = count(TraceFilter {
        run_id: Some(run_id.clone()),
        step: Some(1),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(ids(&step1), ["l10", "l07", "l04", "l01"]);
    let dp = count(TraceFilter {
        datapoint_id: Some("d2".into()),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(ids(&dp), ["l10", "l06", "l02"]);
    for st in RolloutStatus::ALL {
        let got = count(TraceFilter {
            status: Some(st),
            ..TraceFilter::default()
        })
        .await;
        let want: Vec<&TraceSummary> = all.iter().filter(|t| t.status == st).collect();
        assert_eq!(got.len(), want.len(), "status {st}");
        assert!(got.iter().all(|t| t.status == st));
    }
    let running = count(TraceFilter {
        status: Some(RolloutStatus::Running),
        ..TraceFilter::default()
    })
    .await;
    assert_eq!(ids(&running), ["l23", "l17", "l11", "l05"]);
    let combined = TraceFilter {
        project: Some("lp".into()),
        status: Some(RolloutStatus::Completed),
        step: Some(0),
        ..TraceFilter::default()
    };
    assert_eq!(ids(&count(combined).await), ["l09", "l06", "l03", "l00"]);
    for unknown in [
        TraceFilter {
            project: Some("nope".into()),
            ..TraceFilter::default()
        },
        TraceFilter {
            run_id: Some("run_ffffffffffffffffffffffffffffffff".into()),
            ..TraceFilter::default()
        },
    ] {
        let page = store
            .list_traces(&unknown)
            .await
            .expect("unknown names give an empty page");
        assert!(page.data.is_empty() && page.next_cursor.is_none());
    }
}

fn duration(t: &TraceSummary) -> i64 {
    match (t.started_at, t.ended_at) {
        (Some(a), Some(b)) => b - a,
        _ => -1,
    }
}

/// The expected order of `all` under `sort`: key, then newest trace (by insertion here) first.
fn expected(all: &[TraceSummary], sort: TraceSort) -> Vec<String> {
    let mut v: Vec<(usize, &TraceSummary)> = all.iter().enumerate().collect();
    // `all` is newest first, and traces were created oldest first: position is the tiebreak.
    match sort {
        // No trace of the seed has a grade: all tie, and ties go by the stored order.
        TraceSort::Newest | TraceSort::GradeDesc => {}
        TraceSort::Oldest | TraceSort::GradeAsc => v.reverse(),
        TraceSort::CostDesc => {
            v.sort_by(|a, b| b.1.cost_usd.total_cmp(&a.1.cost_usd).then(a.0.cmp(&b.0)))
        }
        TraceSort::DurationDesc => {
            v.sort_by(|a, b| duration(b.1).cmp(&duration(a.1)).then(a.0.cmp(&b.0)))
        }
        TraceSort::TokensDesc => v.sort_by(|a, b| {
            let (ta, tb) = (
                a.1.input_tokens + a.1.output_tokens,
                b.1.input_tokens + b.1.output_tokens,
            );
            tb.cmp(&ta).then(a.0.cmp(&b.0))
        }),
    }
    v.into_iter().map(|(_, t)| t.trace_id.clone()).collect()
}

const SORTS: [TraceSort; 7] = [
    TraceSort::Newest,
    TraceSort::Oldest,
    TraceSort::CostDesc,
    TraceSort::DurationDesc,
    TraceSort::TokensDesc,
    TraceSort::GradeDesc,
    TraceSort::GradeAsc,
];

pub async fn list_sorts(store: &dyn Store) {
    seed(store).await;
    let all = store
        .list_traces(&TraceFilter {
            limit: Some(1000),
            ..TraceFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.data.len(), 24);
    let newest: Vec<String> = (0..24).rev().map(|i| format!("l{i:02}")).collect();
    assert_eq!(ids(&all.data), newest, "newest first by start time");
    for sort in SORTS {
        let got = store
            .list_traces(&TraceFilter {
                sort,
                limit: Some(1000),
                ..TraceFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(ids(&got.data), expected(&all.data, sort), "sort {sort:?}");
    }
}

pub async fn cursor_pagination_has_no_gaps_or_duplicates(store: &dyn Store) {
    seed(store).await;
    for sort in SORTS {
        let full = store
            .list_traces(&TraceFilter {
                sort,
                limit: Some(1000),
                ..TraceFilter::default()
            })
            .await
            .expect("list");
        let mut filter = TraceFilter {
            sort,
            limit: Some(5),
            ..TraceFilter::default()
        };
        let mut walked = Vec::new();
        let mut pages = 0;
        loop {
            let page = store.list_traces(&filter).await.expect("page");
            pages += 1;
            assert!(page.data.len() <= 5);
            walked.extend(ids(&page.data));
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
            assert!(pages < 100, "pagination does not end");
        }
        assert_eq!(walked, ids(&full.data), "sort {sort:?}");
        assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 24);
        assert_eq!(pages, 5, "24 traces in pages of 5");
    }
    // A page exactly at the end says so: no cursor to an empty page.
    let exact = store
        .list_traces(&TraceFilter {
            limit: Some(24),
            ..TraceFilter::default()
        })
        .await
        .expect("list");
    assert_eq!((exact.data.len(), exact.next_cursor), (24, None));
}

fn assert_invalid<T: std::fmt::Debug>(result: crate::Result<T>, needle: &str) {
    match result {
        Err(StoreError::Invalid(msg)) => {
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub async fn bad_cursor_or_limit_is_invalid(store: &dyn Store) {
    seed(store).await;
    for cursor in ["garbage", "", "00", "zz"] {
        let f = TraceFilter {
            cursor: Some(cursor.into()),
            ..TraceFilter::default()
        };
        assert_invalid(store.list_traces(&f).await, "next_cursor");
    }
    for limit in [0, 1001] {
        let f = TraceFilter {
            limit: Some(limit),
            ..TraceFilter::default()
        };
        assert_invalid(store.list_traces(&f).await, "limit");
    }
    let page = store
        .list_traces(&TraceFilter {
            limit: Some(2),
            ..TraceFilter::default()
        })
        .await
        .expect("list");
    let cursor = page.next_cursor.expect("a next page");
    let other_sort = TraceFilter {
        sort: TraceSort::CostDesc,
        cursor: Some(cursor.clone()),
        ..TraceFilter::default()
    };
    assert_invalid(store.list_traces(&other_sort).await, "next_cursor");
    assert_invalid(
        store
            .list_runs(
                None,
                PageRequest {
                    limit: None,
                    cursor: Some(cursor.clone()),
                },
            )
            .await,
        "next_cursor",
    );
    assert_invalid(
        store
            .list_runs(
                None,
                PageRequest {
                    limit: Some(0),
                    cursor: None,
                },
            )
            .await,
        "limit",
    );
    assert_invalid(
        store
            .list_datapoints(
                "lp",
                None,
                PageRequest {
                    limit: None,
                    cursor: Some(cursor),
                },
            )
            .await,
        "next_cursor",
    );
}

pub async fn concurrent_ingests_all_commit(store: &dyn Store) {
    const TASKS: usize = 24;
    const BATCHES: usize = 8;
    let futures = (0..TASKS)
        .map(|task| {
            Box::pin(async move {
                let mut accepted = 0;
                for b in 0..BATCHES {
                    let trace = format!("c{task:02}-{b}");
                    let t = T0 + (task * BATCHES + b) as i64 * SEC;
                    let records = simple_trace(&trace, "conc", t, RolloutStatus::Completed);
                    accepted += store.ingest(batch(records)).await.expect("ingest").accepted;
                }
                accepted
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>>
        })
        .collect();
    let accepted: u64 = join_all(futures).await.into_iter().sum();
    assert_eq!(accepted, (TASKS * BATCHES * 4) as u64);
    let all = list_all(
        store,
        &TraceFilter {
            project: Some("conc".into()),
            limit: Some(1000),
            ..TraceFilter::default()
        },
    )
    .await;
    assert_eq!(all.len(), TASKS * BATCHES);
    assert!(
        all.iter()
            .all(|t| t.items == 2 && t.status == RolloutStatus::Completed)
    );
}
