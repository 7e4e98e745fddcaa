//! Reading traces: one trace with its items, and filtered, sorted, paginated lists.
//!
//! Lists use keyset pagination: each order has a key (a column or an expression) and the trace's
//! integer id breaks ties, so a page is `WHERE (key, id) < (last key, last id)` — stable under
//! concurrent ingest (new rows never shift later pages; a trace whose key changes between two
//! pages may be seen twice or not at all, which is the usual keyset trade-off).
//!
//! The SQL is assembled only from fixed fragments of this module; every value is a bound parameter.

use caribou_model::api::{
    GradeSummary, Page, TraceDetail, TraceFilter, TraceSort, TraceSummary, Turn,
};
use caribou_model::items::GradeValue;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::catalog::{bad_cursor, project_id};
use super::cursor::{Cursor, Key, page_limit};
use super::{chunks, values};
use crate::Result;

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

/// The key expression, direction and cursor tag of each order.
fn order(sort: TraceSort) -> (&'static str, bool, &'static str) {
    match sort {
        TraceSort::Newest => ("t.sort_ts", true, "traces.newest"),
        TraceSort::Oldest => ("t.sort_ts", false, "traces.oldest"),
        TraceSort::CostDesc => ("t.cost_usd", true, "traces.cost"),
        TraceSort::DurationDesc => (
            "COALESCE(t.ended_at - t.started_at, -1)",
            true,
            "traces.duration",
        ),
        TraceSort::TokensDesc => ("(t.input_tokens + t.output_tokens)", true, "traces.tokens"),
    }
}

pub(crate) fn list_traces(conn: &Connection, filter: &TraceFilter) -> Result<Page<TraceSummary>> {
    let limit = page_limit(filter.limit)?;
    let (key_expr, desc, tag) = order(filter.sort);
    let after = filter
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(tag, c))
        .transpose()?;
    let empty = Page {
        data: Vec::new(),
        next_cursor: None,
    };

    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(name) = &filter.project {
        let Some(id) = project_id(conn, name)? else {
            return Ok(empty);
        };
        clauses.push("t.project_rowid = ?");
        args.push(Value::Integer(id));
    }
    if let Some(run_id) = &filter.run_id {
        clauses.push("t.run_id = ?");
        args.push(Value::Text(run_id.clone()));
    }
    if let Some(phase) = filter.phase {
        clauses.push("t.phase = ?");
        args.push(Value::Text(phase.as_str().to_owned()));
    }
    if let Some(step) = filter.step {
        clauses.push("t.step = ?");
        args.push(Value::Integer(step));
    }
    if let Some(status) = filter.status {
        clauses.push("t.status = ?");
        args.push(Value::Text(status.as_str().to_owned()));
    }
    if let Some(dp) = &filter.datapoint_id {
        clauses.push("t.datapoint_id = ?");
        args.push(Value::Text(dp.clone()));
    }
    let keyset = if desc { "< (?, ?)" } else { "> (?, ?)" };
    let keyset_clause;
    if let Some(cursor) = after {
        let key = match (filter.sort, cursor.key) {
            (TraceSort::CostDesc, Key::Real(v)) => Value::Real(v),
            (TraceSort::CostDesc, _) | (_, Key::Real(_)) | (_, Key::Text(_)) => {
                return Err(bad_cursor());
            }
            (_, Key::Int(v)) => Value::Integer(v),
        };
        keyset_clause = format!("({key_expr}, t.id) {keyset}");
        clauses.push(&keyset_clause);
        args.push(key);
        args.push(Value::Integer(cursor.id));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let dir = if desc { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, {key_expr} FROM traces t LEFT JOIN projects p ON p.id = t.project_rowid
         {where_sql} ORDER BY {key_expr} {dir}, t.id {dir} LIMIT ?"
    );
    args.push(Value::Integer((limit + 1) as i64));
    let mut select = conn.prepare_cached(&sql)?;
    let mut rows = select
        .query_map(params_from_iter(args), |r| {
            let (id, summary, _) = summary_row(r)?;
            let key = match r.get::<_, Value>(20)? {
                Value::Real(v) => Key::Real(v),
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
