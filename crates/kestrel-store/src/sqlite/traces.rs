//! Reading traces: one trace with its items, and filtered, sorted, paginated lists.
//!
//! Lists use keyset pagination: each order has a key (a column or an expression) and the trace's
//! integer id breaks ties, so a page is `WHERE (key, id) < (last key, last id)` — stable under
//! concurrent ingest (new rows never shift later pages; a trace whose key changes between two
//! pages may be seen twice or not at all, which is the usual keyset trade-off).
//!
//! The SQL is assembled only from fixed fragments of this module and of `search` (the compiled
//! query); every value is a bound parameter.
//!
//! `grade_desc`/`grade_asc` order by the trace's latest numeric grade of one name; traces without
//! one come last.
//!
//! Cost: every order first tries a bounded walk of an ordered index that stops at the page (see
//! [`list_traces`]; the time indexes, the grades' index, and those of cost, duration and tokens
//! of migration 0008), so a query matching a fair share of traces reads about `limit / share`
//! rows whatever the store's size. Newest-first queries led by a rare term (a word, tag,
//! metadata value...) walk that term's matches newest first and stop at the page too
//! (`lead_walk`). Other queries matching few traces go to SQLite's plan (an index on the rarest
//! term, then a sort), whose cost grows with the number of matches.

use caribou_model::api::{
    GradeSummary, ItemPage, Page, TraceDetail, TraceFilter, TraceSort, TraceSummary, Turn,
};
use caribou_model::items::GradeValue;
use kestrel_query::Query;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::aggregates::finite;
use super::catalog::{bad_cursor, project_id};
use super::cursor::{Cursor, Key, page_limit};
use super::search::{self, Sql, Style};
use super::{chunks, items, lead_walk, values};
use crate::{Result, StoreError};

pub(super) const SUMMARY_COLUMNS: &str =
    "t.id, t.trace_id, p.name, t.run_id, t.phase, t.step, t.datapoint_id,
    t.model_name, t.status, t.error, t.started_at, t.ended_at, t.input_tokens, t.output_tokens,
    t.cost_usd, t.messages, t.tool_calls, t.items, t.metadata, t.traceback";

/// A summary row before its tags, grades and turns are attached.
fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, TraceSummary, Option<String>)> {
    let started_at: Option<i64> = r.get(10)?;
    let ended_at: Option<i64> = r.get(11)?;
    let phase: Option<String> = r.get(4)?;
    let summary = TraceSummary {
        trace_id: r.get(1)?,
        project: r.get(2)?,
        run_id: r.get(3)?,
        phase: phase.as_deref().map(|p| values::phase(4, p)).transpose()?,
        step: r.get(5)?,
        datapoint_id: r.get(6)?,
        model_name: r.get(7)?,
        status: values::status(8, &r.get::<_, String>(8)?)?,
        error: r.get(9)?,
        started_at,
        ended_at,
        duration_ms: match (started_at, ended_at) {
            (Some(s), Some(e)) => Some((e - s) as f64 / 1000.0),
            _ => None,
        },
        input_tokens: values::count(r.get(12)?),
        output_tokens: values::count(r.get(13)?),
        cost_usd: finite(r.get(14)?),
        messages: values::count(r.get(15)?),
        tool_calls: values::count(r.get(16)?),
        items: values::count(r.get(17)?),
        turns: 0,
        tags: Vec::new(),
        metadata: values::json_map(18, &r.get::<_, String>(18)?)?,
        grades: Vec::new(),
    };
    Ok((r.get(0)?, summary, r.get(19)?))
}

/// Fills tags, turns count and latest grades.
fn attach(conn: &Connection, id: i64, summary: &mut TraceSummary) -> Result<()> {
    let mut tags =
        conn.prepare_cached("SELECT tag FROM trace_tags WHERE trace_rowid = ?1 ORDER BY tag")?;
    summary.tags = tags
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut turns = conn.prepare_cached("SELECT COUNT(*) FROM turns WHERE trace_rowid = ?1")?;
    summary.turns = values::count(turns.query_row([id], |r| r.get(0))?);
    summary.grades = latest_grades(conn, id)?;
    Ok(())
}

/// The latest grade of each name (by ts, then item id), names in order.
fn latest_grades(conn: &Connection, id: i64) -> Result<Vec<GradeSummary>> {
    let mut select = conn.prepare_cached(
        "SELECT name, value FROM grades WHERE trace_rowid = ?1 ORDER BY name, ts, item_id",
    )?;
    let rows = select.query_map([id], |r| {
        let value: String = r.get(1)?;
        let value: GradeValue = serde_json::from_str(&value).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?;
        Ok(GradeSummary {
            name: r.get(0)?,
            value,
        })
    })?;
    let mut out: Vec<GradeSummary> = Vec::new();
    for grade in rows {
        let grade = grade?;
        match out.last_mut() {
            Some(last) if last.name == grade.name => *last = grade,
            _ => out.push(grade),
        }
    }
    Ok(out)
}

/// One trace with its turns and items in logged order.
pub(crate) fn get_trace(conn: &Connection, trace_id: &str) -> Result<Option<TraceDetail>> {
    let Some((id, mut detail)) = trace_head(conn, trace_id)? else {
        return Ok(None);
    };
    detail.items = chunks::read_all(conn, id)?;
    Ok(Some(detail))
}

/// One trace with its turns but without its items (`items` left empty), and its row id.
pub(crate) fn trace_head(conn: &Connection, trace_id: &str) -> Result<Option<(i64, TraceDetail)>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM traces t LEFT JOIN projects p ON p.id = t.project_rowid
         WHERE t.trace_id = ?1"
    );
    let mut select = conn.prepare_cached(&sql)?;
    let Some((id, mut summary, traceback)) =
        select.query_row([trace_id], summary_row).optional()?
    else {
        return Ok(None);
    };
    attach(conn, id, &mut summary)?;
    let mut turns = conn.prepare_cached(
        "SELECT turn_id, started_at, ended_at, status FROM turns WHERE trace_rowid = ?1",
    )?;
    let mut turns = turns
        .query_map([id], |r| {
            let ended_at: Option<i64> = r.get(2)?;
            let status: Option<String> = r.get(3)?;
            Ok(Turn {
                turn_id: values::uuid(0, &r.get::<_, Vec<u8>>(0)?)?,
                // A close that arrived before its opening: the turn's start is not known yet.
                started_at: r.get::<_, Option<i64>>(1)?.or(ended_at).unwrap_or(0),
                ended_at,
                status: status
                    .as_deref()
                    .map(|s| values::status(3, s))
                    .transpose()?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    turns.sort_by_key(|t| (t.started_at, t.turn_id));
    Ok(Some((
        id,
        TraceDetail {
            summary,
            traceback,
            turns,
            items: Vec::new(),
        },
    )))
}

/// The default grade of the grade sorts.
const DEFAULT_GRADE: &str = "reward";

/// The order of a list: its key expression (SQL on `traces t`, markers bound in `sql`), its
/// direction, whether its key is REAL, and the cursor tag that ties a cursor to it.
pub(super) struct Order {
    key: String,
    /// The key as the walk's window gives it (`w.v` for the grade sorts), when not `key`.
    walk_key: Option<String>,
    desc: bool,
    real: bool,
    tag: String,
}

pub(super) fn order(sql: &mut Sql, filter: &TraceFilter) -> Result<Order> {
    let plain = |key: &str, desc: bool, real: bool, tag: &str| Order {
        key: key.to_owned(),
        walk_key: None,
        desc,
        real,
        tag: tag.to_owned(),
    };
    let grade = |sql: &mut Sql, desc: bool| {
        let name = filter.grade.as_deref().unwrap_or(DEFAULT_GRADE);
        // A trace without a numeric grade of that name sorts last both ways: -inf when highest
        // comes first, +inf when lowest does (grade values are finite).
        let missing = if desc { "-9e999" } else { "9e999" };
        let key = format!(
            "COALESCE((SELECT g.value_num FROM grades g WHERE g.trace_rowid = t.id AND g.name = {}
               ORDER BY g.ts DESC, g.item_id DESC LIMIT 1), {missing})",
            sql.bind(name.to_owned())
        );
        let dir = if desc { "desc" } else { "asc" };
        Order {
            key,
            walk_key: Some("w.v".to_owned()),
            desc,
            real: true,
            tag: format!("traces.grade_{dir}.{name}"),
        }
    };
    if filter.grade.is_some() && !matches!(filter.sort, TraceSort::GradeDesc | TraceSort::GradeAsc)
    {
        return Err(StoreError::Invalid(
            "grade names the grade that sort=grade_desc or sort=grade_asc orders by; add one of \
             those sorts or leave grade out"
                .to_owned(),
        ));
    }
    Ok(match filter.sort {
        TraceSort::Newest => plain("t.sort_ts", true, false, "traces.newest"),
        TraceSort::Oldest => plain("t.sort_ts", false, false, "traces.oldest"),
        TraceSort::CostDesc => plain("t.cost_usd", true, true, "traces.cost"),
        TraceSort::DurationDesc => plain(
            "COALESCE(t.ended_at - t.started_at, -1)",
            true,
            false,
            "traces.duration",
        ),
        TraceSort::TokensDesc => plain(
            "(t.input_tokens + t.output_tokens)",
            true,
            false,
            "traces.tokens",
        ),
        TraceSort::GradeDesc => grade(sql, true),
        TraceSort::GradeAsc => grade(sql, false),
    })
}

/// The filter's fields (not its `q`) and the parsed query, as a condition on `traces t`; `None`
/// when they name a project that does not exist (nothing can match).
pub(crate) fn filter_condition(
    conn: &Connection,
    sql: &mut Sql,
    filter: &TraceFilter,
    q: Option<&Query>,
) -> Result<Option<String>> {
    filter_condition_as(conn, sql, filter, q, Style::Set, None)
}

/// `driver`: with [`Style::Set`], the conjunct of `q` to start from, the others probed (see
/// [`search::condition_driven`]).
pub(super) fn filter_condition_as(
    conn: &Connection,
    sql: &mut Sql,
    filter: &TraceFilter,
    q: Option<&Query>,
    style: Style,
    driver: Option<usize>,
) -> Result<Option<String>> {
    let mut clauses: Vec<String> = Vec::new();
    if let Some(name) = &filter.project {
        let Some(id) = project_id(conn, name)? else {
            return Ok(None);
        };
        clauses.push(format!("t.project_rowid = {}", sql.bind(id)));
    }
    if let Some(run_id) = &filter.run_id {
        clauses.push(format!("t.run_id = {}", sql.bind(run_id.clone())));
    }
    if let Some(phase) = filter.phase {
        clauses.push(format!("t.phase = {}", sql.bind(phase.as_str().to_owned())));
    }
    if let Some(step) = filter.step {
        clauses.push(format!("t.step = {}", sql.bind(step)));
    }
    if let Some(status) = filter.status {
        clauses.push(format!(
            "t.status = {}",
            sql.bind(status.as_str().to_owned())
        ));
    }
    if let Some(dp) = &filter.datapoint_id {
        clauses.push(format!("t.datapoint_id = {}", sql.bind(dp.clone())));
    }
    if let Some(q) = q
        && q.expr.is_some()
    {
        clauses.push(match (style, driver) {
            (Style::Set, Some(d)) => search::condition_driven(sql, q, d),
            _ => search::condition_as(sql, q, style),
        });
    }
    Ok(Some(if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    }))
}

/// A walk: read candidates in the list's order from an index, at most `rows` of them, and test
/// the condition on each (see [`list_traces`]).
#[derive(Debug, Clone, Copy)]
struct Walk {
    rows: usize,
}

/// The first walk reads this many candidates per row of the page (at least [`MIN_WALK`]).
const WALK_PER_ROW: usize = 40;
const MIN_WALK: usize = 2_000;
/// A walk never reads more than this many candidates per row of the page: below that share of
/// matches, the planner's index path (collect the matches, then sort) is cheaper.
const MAX_WALK_PER_ROW: usize = 400;

/// Rows of a list, each with its cursor, in order, and whether they are known to be all the rows
/// left (the walk covered every candidate); `None` when the filter names an unknown project.
type Rows = Option<(Vec<(Cursor, TraceSummary)>, bool)>;

/// One attempt at a page: `walk` reads a bounded window of candidates in order (`None`: let the
/// planner choose, exact whatever it reads, starting from the conjunct `driver` of `q` when
/// given). Returns up to `limit + 1` rows.
fn select_rows(
    conn: &Connection,
    filter: &TraceFilter,
    q: Option<&Query>,
    driver: Option<usize>,
    limit: usize,
    walk: Option<Walk>,
) -> Result<Rows> {
    let mut sql = Sql::default();
    let order = order(&mut sql, filter)?;
    let after = after(filter, &order)?;
    let (op, dir) = if order.desc {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let time_walk = walk.filter(|_| matches!(filter.sort, TraceSort::Newest | TraceSort::Oldest));
    // The time walk's bound: the sort time of the window's last candidate; `None` when the
    // window holds every candidate left.
    let bound = match time_walk {
        Some(w) => time_bound(conn, filter, &order, after.as_ref(), w)?,
        None => None,
    };
    let style = match walk {
        None => Style::Set,
        Some(_) => Style::Probe {
            min_chunk: match (time_walk, q) {
                (Some(_), Some(q)) if search::has_text(q) => {
                    min_chunk(conn, filter, &order, after.as_ref(), bound)?
                }
                _ => 0,
            },
        },
    };
    let driver = driver.filter(|_| walk.is_none());
    let Some(mut cond) = filter_condition_as(conn, &mut sql, filter, q, style, driver)? else {
        return Ok(None);
    };
    if let Some((key, id)) = &after {
        cond = format!(
            "({cond}) AND ({}, t.id) {op} ({}, {})",
            order.key,
            sql.bind(key.clone()),
            sql.bind(*id)
        );
    }
    let mut complete = walk.is_none();
    let (from, key_expr) = match walk {
        None => ("traces t".to_owned(), order.key.clone()),
        Some(_) if time_walk.is_some() => {
            // Walk the time index itself, bounded by the sort time of the window's last
            // candidate (one index-only read), so SQLite stops at the page's last match and
            // never reads past the window.
            match bound {
                Some(bound) => {
                    let eq = if order.desc { ">=" } else { "<=" };
                    cond = format!("({cond}) AND t.sort_ts {eq} {}", sql.bind(bound));
                }
                None => complete = true,
            }
            (
                format!("traces t INDEXED BY {}", time_index(filter)),
                order.key.clone(),
            )
        }
        Some(w) => {
            let Some(window) = window(&mut sql, filter, &order, after.as_ref(), w)? else {
                return Ok(Some((Vec::new(), false)));
            };
            (
                // CROSS JOIN keeps the window the outer loop (SQLite does not reorder it): left
                // to itself, with a project filter the planner read the project's every trace
                // by `traces_by_project` and probed the window for each (0.14-0.23 s on 1M
                // traces, against 11-19 ms this way).
                format!("({window}) w CROSS JOIN traces t ON t.id = w.id"),
                order.walk_key.clone().unwrap_or_else(|| order.key.clone()),
            )
        }
    };
    let limit_marker = sql.bind((limit + 1) as i64);
    let text = format!(
        "SELECT {SUMMARY_COLUMNS}, {key_expr} FROM {from} LEFT JOIN projects p ON p.id = t.project_rowid
         WHERE {cond} ORDER BY {key_expr} {dir}, t.id {dir} LIMIT {limit_marker}"
    );
    // Cached: the same filter shapes repeat; a query's text only varies with its shape.
    let mut select = conn.prepare_cached(&text)?;
    let rows = select
        .query_map(params_from_iter(sql.args.iter()), |r| {
            keyed_row(r, order.real)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((rows, complete)))
}

/// The filter's cursor as (key, id) of the last row seen; `None` for the first page.
pub(super) fn after(filter: &TraceFilter, order: &Order) -> Result<Option<(Value, i64)>> {
    let Some(cursor) = filter
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(&order.tag, c))
        .transpose()?
    else {
        return Ok(None);
    };
    // An integer order's key is a float where its sum overflowed (tokens past 2^63); SQLite
    // compares the two kinds by value, so either continues the walk where it ended.
    Ok(Some(match (order.real, cursor.key) {
        (_, Key::Real(v)) => (Value::Real(v), cursor.id),
        (false, Key::Int(v)) => (Value::Integer(v), cursor.id),
        _ => return Err(bad_cursor()),
    }))
}

/// A row of `SELECT {SUMMARY_COLUMNS}, <sort key>` with its cursor.
pub(super) fn keyed_row(
    r: &rusqlite::Row<'_>,
    real: bool,
) -> rusqlite::Result<(Cursor, TraceSummary)> {
    let (id, summary, _) = summary_row(r)?;
    let key = match r.get::<_, Value>(20)? {
        Value::Real(v) => Key::Real(v),
        Value::Integer(v) if real => Key::Real(v as f64),
        Value::Integer(v) => Key::Int(v),
        other => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                20,
                other.data_type(),
                "sort key is not a number".into(),
            ));
        }
    };
    Ok((Cursor { key, id }, summary))
}

/// Sets larger than this are not counted further when estimating.
const ESTIMATE_CAP: i64 = 2_000;

/// For a conjunction with two or more side-table or full-text conjuncts: the one selecting the
/// fewest ids (each counted up to [`ESTIMATE_CAP`], index-only), for the planner to start from.
fn driver(conn: &Connection, q: &Query) -> Result<Option<usize>> {
    let mut best: Option<(i64, usize)> = None;
    let mut candidates = 0;
    for (i, e) in search::conjuncts(q).iter().enumerate() {
        let mut sql = Sql::default();
        let Some(set) = search::set_of(&mut sql, e) else {
            continue;
        };
        candidates += 1;
        let cap = sql.bind(ESTIMATE_CAP);
        let mut count =
            conn.prepare_cached(&format!("SELECT count(*) FROM ({set} LIMIT {cap})"))?;
        let n: i64 = count.query_row(params_from_iter(sql.args.iter()), |r| r.get(0))?;
        if best.is_none_or(|(m, _)| n < m) {
            best = Some((n, i));
        }
    }
    Ok(best.filter(|_| candidates > 1).map(|(_, i)| i))
}

/// The index a time walk reads: the project's traces in time order, or all traces.
fn time_index(filter: &TraceFilter) -> &'static str {
    if filter.project.is_some() {
        "traces_by_project"
    } else {
        "traces_by_time"
    }
}

/// The time walk's scope on `traces` (no alias) after the cursor: the project (when the filter
/// names one) and the keyset condition.
fn time_scope(
    sql: &mut Sql,
    filter: &TraceFilter,
    order: &Order,
    after: Option<&(Value, i64)>,
) -> String {
    let mut scope = match &filter.project {
        Some(name) => format!(
            "traces.project_rowid = (SELECT id FROM projects WHERE name = {})",
            sql.bind(name.clone())
        ),
        None => "1".to_owned(),
    };
    let (op, eq) = if order.desc { ("<", "<=") } else { (">", ">=") };
    if let Some((key, id)) = after {
        let k = sql.bind(key.clone());
        scope = format!(
            "{scope} AND traces.sort_ts {eq} {k} AND (traces.sort_ts {op} {k} OR traces.id {op} {})",
            sql.bind(*id)
        );
    }
    scope
}

/// The sort time of the `walk.rows`-th trace of the scope after the cursor, in the list's order
/// (an index-only read); `None` when the scope has fewer traces left (the walk covers them all).
fn time_bound(
    conn: &Connection,
    filter: &TraceFilter,
    order: &Order,
    after: Option<&(Value, i64)>,
    walk: Walk,
) -> Result<Option<i64>> {
    let mut sql = Sql::default();
    let scope = time_scope(&mut sql, filter, order, after);
    let dir = if order.desc { "DESC" } else { "ASC" };
    let offset = sql.bind(i64::try_from(walk.rows.saturating_sub(1)).unwrap_or(i64::MAX));
    let text = format!(
        "SELECT sort_ts FROM traces INDEXED BY {} WHERE {scope}
         ORDER BY sort_ts {dir}, id {dir} LIMIT 1 OFFSET {offset}",
        time_index(filter)
    );
    let mut select = conn.prepare_cached(&text)?;
    Ok(select
        .query_row(params_from_iter(sql.args.iter()), |r| r.get(0))
        .optional()?)
}

/// The smallest chunk id of the traces a time walk may read (those of the scope after the cursor
/// up to `bound`), so full-text terms read only postings of those chunks. 0 when unbounded.
fn min_chunk(
    conn: &Connection,
    filter: &TraceFilter,
    order: &Order,
    after: Option<&(Value, i64)>,
    bound: Option<i64>,
) -> Result<i64> {
    let Some(bound) = bound else {
        return Ok(0);
    };
    let mut sql = Sql::default();
    let scope = time_scope(&mut sql, filter, order, after);
    let eq = if order.desc { ">=" } else { "<=" };
    let text = format!(
        "SELECT MIN(c.id) FROM traces INDEXED BY {} JOIN item_chunks c ON c.trace_rowid = traces.id
         WHERE {scope} AND traces.sort_ts {eq} {}",
        time_index(filter),
        sql.bind(bound)
    );
    let mut select = conn.prepare_cached(&text)?;
    Ok(select
        .query_row(params_from_iter(sql.args.iter()), |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0))
}

/// The cost, duration and token orders' keys on bare `traces` (the same as `order`'s, without
/// the alias), and their indexes: written exactly as in migration 0008, since SQLite uses an
/// index on an expression only for that expression (`INDEXED BY` makes a mismatch an error).
const KEY_INDEXES: [(TraceSort, &str, &str); 3] = [
    (TraceSort::CostDesc, "cost_usd", "traces_by_cost"),
    (
        TraceSort::DurationDesc,
        "COALESCE(ended_at - started_at, -1)",
        "traces_by_duration",
    ),
    (
        TraceSort::TokensDesc,
        "(input_tokens + output_tokens)",
        "traces_by_tokens",
    ),
];

/// The window of a walk of the grade, cost, duration or token order: SQL selecting `id` and the
/// order's key as `v` of at most `walk.rows` traces in the list's order (for the grade orders,
/// graded ones), from just after the cursor. `None` when there is nothing to walk (the time
/// orders, which walk differently, or a cursor past the graded traces).
fn window(
    sql: &mut Sql,
    filter: &TraceFilter,
    order: &Order,
    after: Option<&(Value, i64)>,
    walk: Walk,
) -> Result<Option<String>> {
    let (op, dir) = if order.desc {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let rows = sql.bind(i64::try_from(walk.rows).unwrap_or(i64::MAX));
    match filter.sort {
        TraceSort::GradeDesc | TraceSort::GradeAsc => {
            let name = sql.bind(filter.grade.as_deref().unwrap_or(DEFAULT_GRADE).to_owned());
            let mut scope = format!("g.name = {name} AND g.value_num IS NOT NULL");
            if let Some((key, id)) = after {
                // Past the graded traces (the cursor is in the ungraded tail): nothing to walk.
                let Value::Real(k) = key else {
                    return Ok(None);
                };
                if !k.is_finite() {
                    return Ok(None);
                }
                let k = sql.bind(*k);
                let eq = if order.desc { "<=" } else { ">=" };
                scope = format!(
                    "{scope} AND g.value_num {eq} {k} AND (g.value_num {op} {k} OR g.trace_rowid {op} {})",
                    sql.bind(*id)
                );
            }
            // `grades_by_value` is (name, value_num, trace_rowid, ts, item_id): a trace's grades
            // of one value are adjacent, and only its latest grade of the name counts.
            Ok(Some(format!(
                "SELECT g.trace_rowid AS id, g.value_num AS v FROM grades g INDEXED BY grades_by_value
                 WHERE {scope} AND NOT EXISTS (SELECT 1 FROM grades h WHERE h.trace_rowid = g.trace_rowid
                   AND h.name = g.name AND (h.ts, h.item_id) > (g.ts, g.item_id))
                 ORDER BY g.value_num {dir}, g.trace_rowid {dir} LIMIT {rows}"
            )))
        }
        sort => {
            let Some((_, key, index)) = KEY_INDEXES.iter().find(|(s, _, _)| *s == sort) else {
                return Ok(None);
            };
            let mut scope = "1".to_owned();
            if let Some((k, id)) = after {
                let k = sql.bind(k.clone());
                let eq = if order.desc { "<=" } else { ">=" };
                scope = format!(
                    "{key} {eq} {k} AND ({key} {op} {k} OR id {op} {})",
                    sql.bind(*id)
                );
            }
            Ok(Some(format!(
                "SELECT id, {key} AS v FROM traces INDEXED BY {index} WHERE {scope}
                 ORDER BY {key} {dir}, id {dir} LIMIT {rows}"
            )))
        }
    }
}

/// Lists traces matching the filter and `q`, one page in the filter's order.
///
/// Two ways to a page, both exact:
/// - a walk (every order): read candidates in the list's order from an index
///   (`traces_by_time`, `traces_by_project`, `grades_by_value`, `traces_by_cost`,
///   `traces_by_duration`, `traces_by_tokens`), test the condition on
///   each (side tables probed by primary key) and stop at `limit + 1` matches. A query matching
///   many traces is answered after reading about `limit / share` rows whatever the store's size.
///   The walk reads a bounded window; when the window holds fewer than `limit + 1` matches the
///   answer is not known to be complete, and one of the next two ways is taken instead.
/// - newest first, led by a rare term: walk the term's matches in descending id order and stop
///   once no smaller id can bring a newer trace (`lead_walk`; gives up after a bounded read).
/// - the planner's: SQLite picks an index for the condition, collects every match, sorts. Best
///   when few traces match.
pub(crate) fn list_traces(
    conn: &Connection,
    filter: &TraceFilter,
    q: Option<&Query>,
) -> Result<Page<TraceSummary>> {
    let limit = page_limit(filter.limit)?;
    let mut rows = None;
    // Every order walks an index first (time, grades, or migration 0008's).
    let mut window = (WALK_PER_ROW * (limit + 1)).max(MIN_WALK);
    let max = (MAX_WALK_PER_ROW * (limit + 1)).max(MIN_WALK);
    loop {
        let Some((found, complete)) =
            select_rows(conn, filter, q, None, limit, Some(Walk { rows: window }))?
        else {
            return Ok(Page {
                data: Vec::new(),
                next_cursor: None,
            });
        };
        if found.len() > limit || complete {
            rows = Some(found);
            break;
        }
        // Too few matches in the window: widen it once if the share seen says a wider
        // window would likely fill the page, else ask the planner.
        let needed = (limit + 1) * window * 2 / found.len().max(1);
        if found.is_empty() || window >= max || needed > max {
            break;
        }
        window = needed;
    }
    // The walk did not settle it: the query's rarest conjunct, where the next two ways start.
    let driver = match (&rows, q) {
        (None, Some(q)) => driver(conn, q)?,
        _ => None,
    };
    if rows.is_none()
        && let Some(q) = q
    {
        rows = lead_walk::newest(conn, filter, q, driver, limit)?;
    }
    let rows = match rows {
        Some(rows) => rows,
        None => match select_rows(conn, filter, q, driver, limit, None)? {
            Some((rows, _)) => rows,
            None => {
                return Ok(Page {
                    data: Vec::new(),
                    next_cursor: None,
                });
            }
        },
    };
    page_of(conn, rows, limit, &order(&mut Sql::default(), filter)?.tag)
}

fn page_of(
    conn: &Connection,
    mut rows: Vec<(Cursor, TraceSummary)>,
    limit: usize,
    tag: &str,
) -> Result<Page<TraceSummary>> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|(c, _)| c.encode(tag))
    } else {
        None
    };
    let mut data = Vec::with_capacity(rows.len());
    for (cursor, mut summary) in rows {
        attach(conn, cursor.id, &mut summary)?;
        data.push(summary);
    }
    Ok(Page { data, next_cursor })
}

/// Items `[offset, offset + limit)` of a trace in logged order; `None` if there is no such trace.
pub(crate) fn get_trace_items(
    conn: &Connection,
    trace_id: &str,
    offset: u64,
    limit: u64,
) -> Result<Option<ItemPage>> {
    let mut select = conn.prepare_cached("SELECT id FROM traces WHERE trace_id = ?1")?;
    let Some(id) = select
        .query_row([trace_id], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let (total, items) = items::page(conn, id, offset, limit)?;
    Ok(Some(ItemPage {
        trace_id: trace_id.to_owned(),
        total,
        offset,
        items,
    }))
}
