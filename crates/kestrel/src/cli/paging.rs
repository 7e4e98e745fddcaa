//! Reading a list across pages: follow `next_cursor` until enough rows (or all of them) arrived.
//!
//! Pages are asked for at most [`MAX_PAGE`] rows (the API's limit) and never more than are still
//! wanted, so the returned `next_cursor` continues exactly after the last row returned. A
//! progress line on stderr counts the rows while more than one page may be read; it is drawn only
//! when stderr is a terminal (never into a log file or a pipe) and erased when done.

use std::io::IsTerminal;
use std::time::Duration;

use caribou_model::api::Page;
use indicatif::{ProgressBar, ProgressStyle};

/// The API's largest page.
pub const MAX_PAGE: u64 = 1000;
/// Rows shown when no `--limit` is given.
pub const DEFAULT_LIMIT: u64 = 50;

/// How many rows a command wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// At most this many.
    AtMost(u64),
    /// Every row (`--all`).
    All,
}

impl Want {
    pub fn from_flags(limit: Option<u64>, all: bool) -> Want {
        if all {
            Want::All
        } else {
            Want::AtMost(limit.unwrap_or(DEFAULT_LIMIT))
        }
    }
}

/// Reads pages with `fetch(page_size, cursor)` from `cursor` on, and returns their rows as one
/// page whose `next_cursor` continues after the last row (`None` when the list is exhausted).
pub fn collect<T>(
    what: &str,
    want: Want,
    mut cursor: Option<String>,
    mut fetch: impl FnMut(u32, Option<String>) -> anyhow::Result<Page<T>>,
) -> anyhow::Result<Page<T>> {
    let mut rows: Vec<T> = Vec::new();
    let progress = Progress::new(what, want);
    loop {
        let remaining = match want {
            Want::AtMost(n) => n.saturating_sub(rows.len() as u64),
            Want::All => MAX_PAGE,
        };
        if remaining == 0 {
            break;
        }
        // 1..=MAX_PAGE, so it fits.
        let size = remaining.min(MAX_PAGE) as u32;
        let page = fetch(size, cursor.take());
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        let got = page.data.len();
        rows.extend(page.data);
        progress.set(rows.len() as u64);
        cursor = page.next_cursor;
        // An empty page with a cursor would loop forever on a confused server: stop.
        if cursor.is_none() || got == 0 {
            break;
        }
    }
    progress.finish();
    Ok(Page {
        data: rows,
        next_cursor: cursor,
    })
}

/// A row counter on stderr, shown only on a terminal and only when a second page may be needed.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(what: &str, want: Want) -> Progress {
        let multi_page = match want {
            Want::AtMost(n) => n > MAX_PAGE,
            Want::All => true,
        };
        if !multi_page || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let (bar, template) = match want {
            Want::AtMost(n) => (
                ProgressBar::new(n),
                "{spinner} {msg} {wide_bar} {pos}/{len}",
            ),
            Want::All => (ProgressBar::new_spinner(), "{spinner} {msg}: {pos} so far"),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(format!("reading {what}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    fn set(&self, rows: u64) {
        self.bar.set_position(rows);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of `total` numbers served in pages; the cursor is the next offset.
    fn serve(
        total: u64,
        calls: &mut Vec<(u32, Option<String>)>,
    ) -> impl FnMut(u32, Option<String>) -> anyhow::Result<Page<u64>> + '_ {
        move |size, cursor| {
            calls.push((size, cursor.clone()));
            let from: u64 = cursor.map_or(0, |c| c.parse().unwrap_or(0));
            let to = (from + u64::from(size)).min(total);
            Ok(Page {
                data: (from..to).collect(),
                next_cursor: (to < total).then(|| to.to_string()),
            })
        }
    }

    #[test]
    fn stops_at_the_limit_with_a_cursor_to_continue() {
        let mut calls = Vec::new();
        let page = collect("rows", Want::AtMost(1500), None, serve(5000, &mut calls)).unwrap();
        assert_eq!(page.data.len(), 1500);
        assert_eq!(page.data[1499], 1499);
        assert_eq!(page.next_cursor.as_deref(), Some("1500"));
        assert_eq!(calls, vec![(1000, None), (500, Some("1000".to_owned()))]);
    }

    #[test]
    fn all_reads_to_the_end() {
        let mut calls = Vec::new();
        let page = collect(
            "rows",
            Want::All,
            Some("10".into()),
            serve(2500, &mut calls),
        )
        .unwrap();
        assert_eq!(page.data.len(), 2490);
        assert_eq!(page.next_cursor, None);
        assert_eq!(calls.len(), 3);
    }

    #[test]
    fn a_short_list_is_one_call() {
        let mut calls = Vec::new();
        let page = collect("rows", Want::AtMost(50), None, serve(3, &mut calls)).unwrap();
        assert_eq!(page.data, vec![0, 1, 2]);
        assert_eq!(calls, vec![(50, None)]);
    }
}
