//! Projects and runs: SQL and row mapping.
//!
//! Writes here run on the writer's connection inside its transaction; reads on any connection.

use caribou_model::api::{CreateRun, Page, Project, Run};
use caribou_model::validate::{Limits, check_name};
use caribou_model::{Phase, now_us};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::cursor::{Cursor, Key, page_limit};
use super::values;
use crate::{PageRequest, Result};

/// A run as the ingest path needs it to file traces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunRef {
    pub id: i64,
    pub project_rowid: i64,
    pub phase: Phase,
}

/// The project's row id, creating the project if needed.
pub(crate) fn project_id_or_create(conn: &Connection, name: &str) -> Result<i64> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO projects(name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
    )?;
    insert.execute(params![name, now_us()])?;
    let mut select = conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")?;
    Ok(select.query_row([name], |r| r.get(0))?)
}

/// The name of the project with that row id.
pub(crate) fn project_name(conn: &Connection, rowid: i64) -> Result<Option<String>> {
    let mut select = conn.prepare_cached("SELECT name FROM projects WHERE id = ?1")?;
    Ok(select.query_row([rowid], |r| r.get(0)).optional()?)
}

pub(crate) fn project_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    let mut select = conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")?;
    Ok(select.query_row([name], |r| r.get(0)).optional()?)
}

/// Refuses an empty, overlong or control-character project name (a client mistake).
pub(crate) fn check_project_name(name: &str) -> Result<()> {
    check_name("project", name, Limits::DEFAULT.max_name_len)
        .map_err(|e| crate::StoreError::Invalid(e.to_string()))
}

pub(crate) fn get_or_create_project(conn: &Connection, name: &str) -> Result<Project> {
    check_project_name(name)?;
    project_id_or_create(conn, name)?;
    get_project(conn, name)?
        .ok_or_else(|| crate::StoreError::Internal(format!("project {name:?} vanished")))
}

pub(crate) fn get_project(conn: &Connection, name: &str) -> Result<Option<Project>> {
    let mut select =
        conn.prepare_cached("SELECT name, created_at FROM projects WHERE name = ?1")?;
    Ok(select
        .query_row([name], |r| {
            Ok(Project {
                name: r.get(0)?,
                created_at: r.get(1)?,
            })
        })
        .optional()?)
}

pub(crate) fn list_projects(conn: &Connection) -> Result<Vec<Project>> {
    let mut select = conn.prepare_cached("SELECT name, created_at FROM projects ORDER BY name")?;
    let rows = select.query_map([], |r| {
        Ok(Project {
            name: r.get(0)?,
            created_at: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A new run id: `run_` and 32 hex digits of a UUIDv7.
fn new_run_id() -> String {
    format!("run_{}", Uuid::now_v7().simple())
}

pub(crate) fn create_run(conn: &Connection, req: &CreateRun) -> Result<Run> {
    check_project_name(&req.project)?;
    let project_rowid = project_id_or_create(conn, &req.project)?;
    let run = Run {
        id: new_run_id(),
        project: req.project.clone(),
        phase: req.phase,
        name: req.name.clone(),
        config: req.config.clone().unwrap_or_default(),
        created_at: now_us(),
    };
    let config = serde_json::to_string(&run.config)
        .map_err(|e| super::schema::internal("encoding a run config", e))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO runs(run_id, project_rowid, phase, name, config, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    insert.execute(params![
        run.id,
        project_rowid,
        run.phase.as_str(),
        run.name,
        config,
        run.created_at
    ])?;
    Ok(run)
}

pub(crate) fn run_ref(conn: &Connection, run_id: &str) -> Result<Option<RunRef>> {
    let mut select =
        conn.prepare_cached("SELECT id, project_rowid, phase FROM runs WHERE run_id = ?1")?;
    Ok(select
        .query_row([run_id], |r| {
            Ok(RunRef {
                id: r.get(0)?,
                project_rowid: r.get(1)?,
                phase: values::phase(2, &r.get::<_, String>(2)?)?,
            })
        })
        .optional()?)
}

const RUN_COLUMNS: &str = "r.id, r.run_id, p.name, r.phase, r.name, r.config, r.created_at";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Run)> {
    Ok((
        r.get(0)?,
        Run {
            id: r.get(1)?,
            project: r.get(2)?,
            phase: values::phase(3, &r.get::<_, String>(3)?)?,
            name: r.get(4)?,
            config: values::json_map(5, &r.get::<_, String>(5)?)?,
            created_at: r.get(6)?,
        },
    ))
}

pub(crate) fn get_run(conn: &Connection, run_id: &str) -> Result<Option<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_rowid WHERE r.run_id = ?1"
    );
    let mut select = conn.prepare_cached(&sql)?;
    Ok(select
        .query_row([run_id], run_row)
        .optional()?
        .map(|(_, run)| run))
}

const RUNS_CURSOR: &str = "runs";

/// Runs newest first (by creation time, then id), of one project or of all.
pub(crate) fn list_runs(
    conn: &Connection,
    project: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Run>> {
    let limit = page_limit(page.limit)?;
    let after = page
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(RUNS_CURSOR, c))
        .transpose()?;
    let project_rowid = match project {
        Some(name) => match project_id(conn, name)? {
            Some(id) => Some(id),
            None => {
                return Ok(Page {
                    data: Vec::new(),
                    next_cursor: None,
                });
            }
        },
        None => None,
    };
    let (after_ts, after_id) = match after {
        Some(Cursor {
            key: Key::Int(ts),
            id,
        }) => (Some(ts), Some(id)),
        Some(_) => return Err(bad_cursor()),
        None => (None, None),
    };
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_rowid
         WHERE (?1 IS NULL OR r.project_rowid = ?1)
           AND (?2 IS NULL OR (r.created_at, r.id) < (?2, ?3))
         ORDER BY r.created_at DESC, r.id DESC LIMIT ?4"
    );
    let mut select = conn.prepare_cached(&sql)?;
    let rows = select
        .query_map(
            params![project_rowid, after_ts, after_id, (limit + 1) as i64],
            run_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(paginate(rows, limit, |(id, run)| {
        Cursor {
            key: Key::Int(run.created_at),
            id: *id,
        }
        .encode(RUNS_CURSOR)
    }))
}

pub(crate) fn bad_cursor() -> crate::StoreError {
    crate::StoreError::Invalid(
        "cursor is not valid for this list; pass back next_cursor unchanged".to_owned(),
    )
}

/// Cuts `rows` (fetched with `limit + 1`) to a page; the cursor points after its last row.
pub(crate) fn paginate<R, T>(
    mut rows: Vec<(R, T)>,
    limit: usize,
    cursor_of: impl Fn(&(R, T)) -> String,
) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        data: rows.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    }
}
