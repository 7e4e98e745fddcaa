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
//! `grade_desc`/`grade_asc` order by the trace's latest numeric grade of one name (a correlated
//! lookup per matching trace, on the grades primary key); traces without one come last.

use caribou_model::api::{
    GradeSummary, Page, TraceDetail, TraceFilter, TraceSort, TraceSummary, Turn,
};
use caribou_model::items::GradeValue;
use kestrel_query::Query;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::catalog::{bad_cursor, project_id};
use super::cursor::{Cursor, Key, page_limit};
use super::search::{self, Sql};
use super::{chunks, values};
use crate::{Result, StoreError};

const SUMMARY_COLUMNS: &str = "t.id, t.trace_id, p.name, t.run_id, t.phase, t.step, t.datapoint_id,
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
        cost_usd: r.get(14)?,
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

pub(crate) fn get_trace(conn: &Connection, trace_id: &str) -> Result<Option<TraceDetail>> {
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
    let items = chunks::read_all(conn, id)?;
    Ok(Some(TraceDetail {
        summary,
        traceback,
        turns,
        items,
    }))
}

/// The default grade of the grade sorts.
const DEFAULT_GRADE: &str = "reward";

/// The order of a list: its key expression (SQL on `traces t`, markers bound in `sql`), its
/// direction, whether its key is REAL, and the cursor tag that ties a cursor to it.
struct Order {
    key: String,
    desc: bool,
    real: bool,
    tag: String,
}

fn order(sql: &mut Sql, filter: &TraceFilter) -> Result<Order> {
    let plain = |key: &str, desc: bool, real: bool, tag: &str| Order {
        key: key.to_owned(),
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
        clauses.push(search::condition(sql, q));
    }
    Ok(Some(if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    }))
}

pub(crate) fn list_traces(
    conn: &Connection,
    filter: &TraceFilter,
    q: Option<&Query>,
) -> Result<Page<TraceSummary>> {
    let limit = page_limit(filter.limit)?;
    let mut sql = Sql::default();
    let order = order(&mut sql, filter)?;
    let after = filter
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(&order.tag, c))
        .transpose()?;
    let Some(mut cond) = filter_condition(conn, &mut sql, filter, q)? else {
        return Ok(Page {
            data: Vec::new(),
            next_cursor: None,
        });
    };
    if let Some(cursor) = after {
        let key = match (order.real, cursor.key) {
            (true, Key::Real(v)) => Value::Real(v),
            (false, Key::Int(v)) => Value::Integer(v),
            _ => return Err(bad_cursor()),
        };
        let op = if order.desc { "<" } else { ">" };
        cond = format!(
            "({cond}) AND ({}, t.id) {op} ({}, {})",
            order.key,
            sql.bind(key),
            sql.bind(cursor.id)
        );
    }
    let dir = if order.desc { "DESC" } else { "ASC" };
    let key_expr = &order.key;
    let limit_marker = sql.bind((limit + 1) as i64);
    let text = format!(
        "SELECT {SUMMARY_COLUMNS}, {key_expr} FROM traces t LEFT JOIN projects p ON p.id = t.project_rowid
         WHERE {cond} ORDER BY {key_expr} {dir}, t.id {dir} LIMIT {limit_marker}"
    );
    // Cached: the same filter shapes repeat; a query's text only varies with its shape.
    let mut select = conn.prepare_cached(&text)?;
    let mut rows = select
        .query_map(params_from_iter(sql.args.iter()), |r| {
            let (id, summary, _) = summary_row(r)?;
            let key = match r.get::<_, Value>(20)? {
                Value::Real(v) => Key::Real(v),
                Value::Integer(v) if order.real => Key::Real(v as f64),
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
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|(c, _)| c.encode(&order.tag))
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
