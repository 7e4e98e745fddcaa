//! Search side tables kept current at ingest: `trace_meta` (top-level metadata keys by value),
//! `trace_tools` (tool names) and `trace_models` (the trace's model and its messages' models).
//!
//! They are written in the ingest transaction, only for what a request changed (a key whose value
//! won, a tool or model not yet seen in this request), with cached prepared statements, so their
//! cost grows with the new facts of a request, not with its items. [`backfill`] fills them for
//! data written before they existed (a version 1 database), once, during the migration.

use caribou_model::Item;
use rusqlite::{Connection, params};
use serde_json::Value;

use super::chunks;
use super::schema::internal;
use crate::Result;

/// How a metadata value is indexed: its numeric reading and its text, or `None` (no row) for
/// nulls and nested values.
pub(crate) fn meta_value(value: &Value) -> Option<(Option<f64>, Option<String>)> {
    match value {
        Value::Number(n) => Some((n.as_f64().filter(|x| x.is_finite()), Some(n.to_string()))),
        Value::Bool(b) => Some((Some(if *b { 1.0 } else { 0.0 }), Some(b.to_string()))),
        Value::String(s) => {
            let num = s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
            Some((num, Some(s.clone())))
        }
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Sets the indexed value of one metadata key of a trace (removes it for unindexed values).
pub(crate) fn set_meta(
    conn: &Connection,
    trace_rowid: i64,
    key: &str,
    value: &Value,
) -> Result<()> {
    match meta_value(value) {
        Some((num, text)) => {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO trace_meta(trace_rowid, key, num, text) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(trace_rowid, key) DO UPDATE SET num = excluded.num, text = excluded.text",
            )?;
            upsert.execute(params![trace_rowid, key, num, text])?;
        }
        None => {
            let mut delete =
                conn.prepare_cached("DELETE FROM trace_meta WHERE trace_rowid = ?1 AND key = ?2")?;
            delete.execute(params![trace_rowid, key])?;
        }
    }
    Ok(())
}

/// Adds a tool name to a trace's; whether it was new.
pub(crate) fn add_tool(conn: &Connection, trace_rowid: i64, name: &str) -> Result<bool> {
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO trace_tools(trace_rowid, name) VALUES (?1, ?2)")?;
    Ok(insert.execute(params![trace_rowid, name])? > 0)
}

/// Adds a model name to a trace's; whether it was new.
pub(crate) fn add_model(conn: &Connection, trace_rowid: i64, model: &str) -> Result<bool> {
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO trace_models(trace_rowid, model) VALUES (?1, ?2)")?;
    Ok(insert.execute(params![trace_rowid, model])? > 0)
}

/// Fills the side tables from the traces and item chunks already stored. Idempotent.
pub(crate) fn backfill(conn: &Connection) -> Result<()> {
    let mut traces = conn.prepare("SELECT id, model_name, metadata FROM traces")?;
    let rows = traces.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (id, model, metadata) = row?;
        if let Some(model) = model {
            add_model(conn, id, &model)?;
        }
        let meta: caribou_model::JsonMap =
            serde_json::from_str(&metadata).map_err(|e| internal("reading trace metadata", e))?;
        for (key, value) in &meta {
            set_meta(conn, id, key, value)?;
        }
    }
    let mut select = conn.prepare("SELECT trace_rowid, n, data FROM item_chunks")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let trace_rowid: i64 = row.get(0)?;
        let data: Vec<u8> = row.get(2)?;
        for stored in chunks::decode(row.get(1)?, &data)? {
            match &stored.item {
                Item::ToolExecution(t) => {
                    add_tool(conn, trace_rowid, &t.name)?;
                }
                Item::Message(m) => {
                    if let Some(model) = &m.model {
                        add_model(conn, trace_rowid, model)?;
                    }
                }
                Item::Event(_) | Item::Grade(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_numbers_and_text() {
        assert_eq!(
            meta_value(&json!(450)),
            Some((Some(450.0), Some("450".into())))
        );
        assert_eq!(
            meta_value(&json!("450")),
            Some((Some(450.0), Some("450".into())))
        );
        assert_eq!(
            meta_value(&json!("cust_1")),
            Some((None, Some("cust_1".into())))
        );
        assert_eq!(
            meta_value(&json!(true)),
            Some((Some(1.0), Some("true".into())))
        );
        assert_eq!(meta_value(&json!("NaN")), Some((None, Some("NaN".into()))));
        assert_eq!(meta_value(&json!({"a": 1})), None);
        assert_eq!(meta_value(&Value::Null), None);
    }
}
