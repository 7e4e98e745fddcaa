//! Datapoints: unique per (project, id); adding one again replaces its content (input, expected,
//! metadata) and keeps its `created_at`. A run lists the datapoints linked to it.

use caribou_model::api::{Datapoint, NewDatapoint, Page};
use caribou_model::now_us;
use caribou_model::validate::{Limits, check_name};
use rusqlite::{Connection, OptionalExtension, params};

use super::catalog::{
    bad_cursor, check_project_name, paginate, project_id, project_id_or_create, run_ref,
};
use super::cursor::{Cursor, Key, page_limit};
use super::schema::internal;
use super::values;
use crate::{PageRequest, Result, StoreError};

fn run_not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("run {run_id:?} not found"))
}

/// Adds or replaces datapoints of `project` (created if needed) and links them to `run_id`.
pub(crate) fn add(
    conn: &Connection,
    project: &str,
    run_id: Option<&str>,
    datapoints: &[NewDatapoint],
) -> Result<u64> {
    check_project_name(project)?;
    for (i, dp) in datapoints.iter().enumerate() {
        check_name(
            &format!("datapoints[{i}].id"),
            &dp.id,
            Limits::DEFAULT.max_id_len,
        )
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    let project_rowid = project_id_or_create(conn, project)?;
    let run = match run_id {
        Some(run_id) => {
            let run = run_ref(conn, run_id)?.ok_or_else(|| run_not_found(run_id))?;
            if run.project_rowid != project_rowid {
                return Err(StoreError::Invalid(format!(
                    "run {run_id:?} belongs to another project than {project:?}"
                )));
            }
            Some(run)
        }
        None => None,
    };
    let mut upsert = conn.prepare_cached(
        "INSERT INTO datapoints(project_rowid, dp_id, input, expected, metadata, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(project_rowid, dp_id) DO UPDATE SET
           input = excluded.input, expected = excluded.expected, metadata = excluded.metadata
         RETURNING id",
    )?;
    let mut link = conn.prepare_cached(
        "INSERT OR IGNORE INTO run_datapoints(run_rowid, datapoint_rowid) VALUES (?1, ?2)",
    )?;
    let now = now_us();
    for dp in datapoints {
        let encode = |v: &serde_json::Value| {
            serde_json::to_string(v).map_err(|e| internal("encoding a datapoint", e))
        };
        let metadata = serde_json::to_string(&dp.metadata.clone().unwrap_or_default())
            .map_err(|e| internal("encoding a datapoint", e))?;
        let rowid: i64 = upsert.query_row(
            params![
                project_rowid,
                dp.id,
                encode(&dp.input)?,
                encode(&dp.expected)?,
                metadata,
                now
            ],
            |r| r.get(0),
        )?;
        if let Some(run) = run {
            link.execute(params![run.id, rowid])?;
        }
    }
    Ok(datapoints.len() as u64)
}

const CURSOR_TAG: &str = "datapoints";

fn row(project: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Datapoint)> {
    Ok((
        r.get(0)?,
        Datapoint {
            id: r.get(1)?,
            project: project.to_owned(),
            input: values::json_value(2, &r.get::<_, String>(2)?)?,
            expected: values::json_value(3, &r.get::<_, String>(3)?)?,
            metadata: values::json_map(4, &r.get::<_, String>(4)?)?,
            created_at: r.get(5)?,
        },
    ))
}

/// Datapoints of a project (or of one of its runs) in id order. An unknown project gives an empty
/// page; an unknown run is `NotFound`.
pub(crate) fn list(
    conn: &Connection,
    project: &str,
    run_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Datapoint>> {
    let limit = page_limit(page.limit)?;
    let after = match page
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(CURSOR_TAG, c))
        .transpose()?
    {
        Some(Cursor {
            key: Key::Text(id), ..
        }) => Some(id),
        Some(_) => return Err(bad_cursor()),
        None => None,
    };
    let run_rowid = match run_id {
        Some(run_id) => Some(
            run_ref(conn, run_id)?
                .ok_or_else(|| run_not_found(run_id))?
                .id,
        ),
        None => None,
    };
    let Some(project_rowid) = project_id(conn, project)? else {
        return Ok(Page {
            data: Vec::new(),
            next_cursor: None,
        });
    };
    let mut select = conn.prepare_cached(
        "SELECT d.id, d.dp_id, d.input, d.expected, d.metadata, d.created_at FROM datapoints d
         WHERE d.project_rowid = ?1
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM run_datapoints rd
                                      WHERE rd.run_rowid = ?2 AND rd.datapoint_rowid = d.id))
           AND (?3 IS NULL OR d.dp_id > ?3)
         ORDER BY d.dp_id LIMIT ?4",
    )?;
    let rows = select
        .query_map(
            params![project_rowid, run_rowid, after, (limit + 1) as i64],
            |r| row(project, r),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(paginate(rows, limit, |(id, dp)| {
        Cursor {
            key: Key::Text(dp.id.clone()),
            id: *id,
        }
        .encode(CURSOR_TAG)
    }))
}

pub(crate) fn get(conn: &Connection, project: &str, id: &str) -> Result<Option<Datapoint>> {
    let mut select = conn.prepare_cached(
        "SELECT d.id, d.dp_id, d.input, d.expected, d.metadata, d.created_at
         FROM datapoints d JOIN projects p ON p.id = d.project_rowid
         WHERE p.name = ?1 AND d.dp_id = ?2",
    )?;
    Ok(select
        .query_row(params![project, id], |r| row(project, r))
        .optional()?
        .map(|(_, dp)| dp))
}
