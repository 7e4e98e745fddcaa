//! Newest-first lists of a search led by a rare term: walk that term's matches from the newest
//! and stop at the page, instead of collecting every match and sorting.
//!
//! The time walk of `traces` (see `traces::list_traces`) stops at the page when matches are a
//! fair share of the traces; a term found in few traces fills no window, and SQLite's plan then
//! reads every match and sorts, a cost that grows with the store. Here the lead term (the
//! planner's driver: the conjunct with the smallest set, or the only conjunct with one) hands its
//! matches in descending id order, in growing batches: a word's chunks from the full-text index
//! (descending rowid), a tag's, model's, tool's or metadata string's traces from its side-table
//! index (descending trace rowid; number ranges and grades are indexed by value first and go to
//! SQLite's plan). Each batch's traces are tested against the rest of
//! the query, the filter and the cursor in one statement, and the matches kept in order. Ids grow
//! with arrival, not with the traces' sort time, so the walk stops only once it holds a page and
//! `sort_bounds` says that every trace of a smaller id sorts strictly before the page's last
//! row: the answer is exact.
//!
//! Taken only for the newest-first order and a conjunction (or a single term) led by such a term. Gives up (the
//! caller asks SQLite's plan) after [`MAX_READ`] ids: a bound held high by a trace with a
//! far-future time, or a term that is not rare after all.

use std::collections::HashSet;

use caribou_model::api::{TraceFilter, TraceSort, TraceSummary};
use kestrel_query::{Expr, Pred, Query, TextMatch};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::cursor::{Cursor, Key};
use super::search::{self, Sql, Style, fts_phrase};
use super::sort_bounds::{self, Ids};
use super::traces::{SUMMARY_COLUMNS, after, filter_condition_as, keyed_row, order};
use crate::Result;

/// Ids read in the first batch; each further batch reads twice as many, up to [`MAX_BATCH`] (a
/// rare term's page is usually in the first few).
const FIRST_BATCH: i64 = 16;
const MAX_BATCH: i64 = 1_024;
/// Ids read at most before giving up.
const MAX_READ: usize = 20_000;

/// What a walk found: rows newest first, at most `limit + 1`; `None` when the walk does not
/// apply or gave up.
pub(super) type Found = Option<Vec<(Cursor, TraceSummary)>>;

/// The lead's matches in descending id order: SQL selecting (id, trace rowid), its bound values
/// (the last two being the id to stay below and the batch size), and which ids they are.
struct Lead {
    text: String,
    sql: Sql,
    ids: Ids,
}

/// The lead of `q` (the planner's `driver`, else the only conjunct with a set) and the query
/// without it; `None` when `q` has no lead.
fn split(q: &Query, driver: Option<usize>) -> Option<(Lead, Query)> {
    let parts = search::conjuncts(q);
    let lead = match driver {
        Some(d) => d,
        None => {
            let mut with_set = (0..parts.len())
                .filter(|i| search::set_of(&mut Sql::default(), &parts[*i]).is_some());
            let only = with_set.next()?;
            if with_set.next().is_some() {
                return None;
            }
            only
        }
    };
    if !in_id_order(parts.get(lead)?) {
        return None;
    }
    let mut sql = Sql::default();
    let (text, ids) = match parts.get(lead)? {
        Expr::Pred(Pred::Text(text)) => {
            let phrase = sql.bind(fts_phrase(text));
            let below = sql.bind(0);
            let size = sql.bind(0);
            (
                format!(
                    "SELECT c.id, c.trace_rowid FROM chunk_text JOIN item_chunks c ON c.id = chunk_text.rowid
                     WHERE chunk_text MATCH {phrase} AND chunk_text.rowid < {below}
                     ORDER BY chunk_text.rowid DESC LIMIT {size}"
                ),
                Ids::Chunks,
            )
        }
        // One row per trace and value in these side tables (their primary keys), read from the
        // `(value, trace_rowid)` index backwards.
        e => {
            let set = search::set_of(&mut sql, e)?;
            let below = sql.bind(0);
            let size = sql.bind(0);
            (
                format!(
                    "SELECT s.trace_rowid, s.trace_rowid FROM ({set}) s
                     WHERE s.trace_rowid < {below} ORDER BY s.trace_rowid DESC LIMIT {size}"
                ),
                Ids::Traces,
            )
        }
    };
    let rest: Vec<Expr> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lead)
        .map(|(_, e)| e.clone())
        .collect();
    let rest = Query {
        expr: match rest.len() {
            0 => None,
            1 => rest.into_iter().next(),
            _ => Some(Expr::And(rest)),
        },
    };
    Some((Lead { text, sql, ids }, rest))
}

/// Whether an index hands the term's matches in descending id order, so each batch reads only
/// its own entries: a word (FTS5 rowids), a tag, model or tool name, a metadata string (their
/// `(value, trace_rowid)` indexes). Not a number range or a grade (indexed by value first: every
/// batch would sort all the matches again); SQLite's plan serves those.
fn in_id_order(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Pred(
            Pred::Text(_)
                | Pred::Tag(_)
                | Pred::Model(_)
                | Pred::Tool(_)
                | Pred::Meta {
                    value: TextMatch::Str(_),
                    ..
                }
        )
    )
}

/// Up to `limit + 1` rows of the newest-first list of `filter` and `q` (see the module docs).
pub(super) fn newest(
    conn: &Connection,
    filter: &TraceFilter,
    q: &Query,
    driver: Option<usize>,
    limit: usize,
) -> Result<Found> {
    if !matches!(filter.sort, TraceSort::Newest) {
        return Ok(None);
    }
    let Some((mut lead, rest)) = split(q, driver) else {
        return Ok(None);
    };
    let after = after(filter, &order(&mut Sql::default(), filter)?)?;
    let rest_has_text = search::has_text(&rest);
    let mut matches = conn.prepare_cached(&lead.text)?;
    let (below_at, size_at) = (lead.sql.args.len() - 2, lead.sql.args.len() - 1);
    let mut seen = HashSet::new();
    let mut found: Vec<(Cursor, TraceSummary)> = Vec::new();
    let mut below = i64::MAX;
    let mut size = FIRST_BATCH;
    let mut read = 0;
    loop {
        lead.sql.args[below_at] = Value::Integer(below);
        lead.sql.args[size_at] = Value::Integer(size);
        let batch = matches
            .query_map(params_from_iter(lead.sql.args.iter()), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let Some(&(smallest, _)) = batch.last() else {
            return Ok(Some(found)); // every match read
        };
        read += batch.len();
        below = smallest;
        size = (size * 2).min(MAX_BATCH);
        let new: Vec<i64> = batch
            .iter()
            .map(|&(_, trace)| trace)
            .filter(|trace| seen.insert(*trace))
            .collect();
        if !new.is_empty() {
            let Some(rows) = test(conn, filter, &rest, rest_has_text, after.as_ref(), &new)? else {
                return Ok(Some(Vec::new())); // the filter names no existing project
            };
            found.extend(rows);
            found.sort_by(|(a, _), (b, _)| newest_first(a, b));
            found.truncate(limit + 1);
        }
        // A page held, and every trace of a smaller id sorts strictly before its last row.
        if let Some((last, _)) = found.get(limit)
            && sort_bounds::below(conn, lead.ids, smallest)?
                .is_some_and(|bound| bound < sort_ts(last))
        {
            return Ok(Some(found));
        }
        if read >= MAX_READ {
            return Ok(None);
        }
    }
}

/// The traces `ids` that match the filter, the cursor and `rest`, with their cursors; `None` when
/// the filter names a project that does not exist.
fn test(
    conn: &Connection,
    filter: &TraceFilter,
    rest: &Query,
    rest_has_text: bool,
    after: Option<&(Value, i64)>,
    ids: &[i64],
) -> Result<Option<Vec<(Cursor, TraceSummary)>>> {
    let mut sql = Sql::default();
    let ids = sql.bind(serde_json::to_string(ids).unwrap_or_default());
    // Full-text terms of the rest read only postings of these traces' chunks.
    let min_chunk = if rest_has_text {
        conn.prepare_cached(
            "SELECT MIN(id) FROM item_chunks WHERE trace_rowid IN (SELECT value FROM json_each(?1))",
        )?
        .query_row([&sql.args[0]], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(0)
    } else {
        0
    };
    let Some(mut cond) = filter_condition_as(
        conn,
        &mut sql,
        filter,
        Some(rest),
        Style::Probe { min_chunk },
        None,
    )?
    else {
        return Ok(None);
    };
    if let Some((key, id)) = after {
        cond = format!(
            "({cond}) AND (t.sort_ts, t.id) < ({}, {})",
            sql.bind(key.clone()),
            sql.bind(*id)
        );
    }
    let mut select = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS}, t.sort_ts FROM traces t LEFT JOIN projects p ON p.id = t.project_rowid
         WHERE t.id IN (SELECT value FROM json_each({ids})) AND {cond}"
    ))?;
    let rows = select
        .query_map(params_from_iter(sql.args.iter()), |r| keyed_row(r, false))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(rows))
}

/// A newest list's key: the sort time (always an integer there).
fn sort_ts(c: &Cursor) -> i64 {
    match c.key {
        Key::Int(v) => v,
        Key::Real(_) | Key::Text(_) => i64::MIN,
    }
}

/// Newest first: by sort time, then id, both descending (the list's order).
fn newest_first(a: &Cursor, b: &Cursor) -> std::cmp::Ordering {
    (sort_ts(b), b.id).cmp(&(sort_ts(a), a.id))
}
