//! Run steps and their figures.
//!
//! A step's rollouts are the traces whose `run_id` is the run's id and whose `step` is the step.
//! Figures are computed on read from the trace rows (no counters to keep in sync):
//! - rollouts and the status mix;
//! - tokens and cost: sums; duration: mean, p50 and p90 over the rollouts that have ended, in ms;
//! - grades: per name, over each rollout's **latest** grade of that name (a re-grade replaces, it
//!   does not add a sample), numeric values only (numbers, bools as 1/0; labels are left out).
//!   p50 and p90 use linear interpolation between closest ranks (numpy's default): for sorted
//!   values `v` of length `n`, `q` is read at position `q * (n - 1)`.
//! - with a search query, the figures cover the matching rollouts only; every step is still
//!   listed (with zero rollouts when none matches), so charts keep their x axis.
//!
//! Steps that rollouts name but that were never registered are listed too; their `created_at` is
//! the time the first of their traces was stored.

use std::collections::BTreeMap;

use caribou_model::api::RunStep;
use caribou_model::now_us;
use kestrel_query::Query;
use rusqlite::{Connection, OptionalExtension, params};

use super::aggregates::{Figures, figures_by};
use super::catalog::{RunRef, run_ref};
use super::search::{self, Sql};
use crate::{Result, StoreError};

fn run_not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("run {run_id:?} not found"))
}

/// Registers a step (idempotent) and answers it with its figures so far.
pub(crate) fn create_run_step(conn: &Connection, run_id: &str, step: i64) -> Result<RunStep> {
    let run = run_ref(conn, run_id)?.ok_or_else(|| run_not_found(run_id))?;
    if step < 0 {
        return Err(StoreError::Invalid(format!(
            "step must be >= 0, got {step}"
        )));
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO run_steps(run_rowid, step, created_at) VALUES (?1, ?2, ?3)",
    )?;
    insert.execute(params![run.id, step, now_us()])?;
    let created_at = registered_at(conn, &run, step)?.unwrap_or_else(now_us);
    figures(conn, run_id, step, created_at)
}

/// Every step of the run, each with the figures of its rollouts matching `q` (all when `None`).
pub(crate) fn list_run_steps(
    conn: &Connection,
    run_id: &str,
    q: Option<&Query>,
) -> Result<Vec<RunStep>> {
    let run = run_ref(conn, run_id)?.ok_or_else(|| run_not_found(run_id))?;
    let mut steps: BTreeMap<i64, i64> = BTreeMap::new();
    let mut seen = conn.prepare_cached(
        "SELECT step, MIN(created_at) FROM traces WHERE run_id = ?1 AND step IS NOT NULL GROUP BY step",
    )?;
    for row in seen.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (step, at) = row?;
        steps.insert(step, at);
    }
    let mut registered =
        conn.prepare_cached("SELECT step, created_at FROM run_steps WHERE run_rowid = ?1")?;
    for row in registered.query_map([run.id], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (step, at) = row?;
        steps.insert(step, at);
    }
    let mut figures = figures_of(conn, run_id, None, q)?;
    Ok(steps
        .into_iter()
        .map(|(step, at)| run_step(run_id, step, at, figures.remove(&step)))
        .collect())
}

pub(crate) fn get_run_step(conn: &Connection, run_id: &str, step: i64) -> Result<Option<RunStep>> {
    let Some(run) = run_ref(conn, run_id)? else {
        return Ok(None);
    };
    let created_at = match registered_at(conn, &run, step)? {
        Some(at) => at,
        None => {
            let mut first = conn.prepare_cached(
                "SELECT MIN(created_at) FROM traces WHERE run_id = ?1 AND step = ?2",
            )?;
            match first.query_row(params![run_id, step], |r| r.get::<_, Option<i64>>(0))? {
                Some(at) => at,
                None => return Ok(None),
            }
        }
    };
    figures(conn, run_id, step, created_at).map(Some)
}

fn registered_at(conn: &Connection, run: &RunRef, step: i64) -> Result<Option<i64>> {
    let mut select =
        conn.prepare_cached("SELECT created_at FROM run_steps WHERE run_rowid = ?1 AND step = ?2")?;
    Ok(select
        .query_row(params![run.id, step], |r| r.get(0))
        .optional()?)
}

/// The figures of the steps of a run, over its rollouts matching `q` (all when `None`). `only`
/// restricts to one step. Steps with no matching rollout are absent.
fn figures_of(
    conn: &Connection,
    run_id: &str,
    only: Option<i64>,
    q: Option<&Query>,
) -> Result<BTreeMap<i64, Figures>> {
    let mut sql = Sql::default();
    let mut cond = format!(
        "t.run_id = {} AND t.step IS NOT NULL",
        sql.bind(run_id.to_owned())
    );
    if let Some(step) = only {
        cond = format!("{cond} AND t.step = {}", sql.bind(step));
    }
    if let Some(q) = q {
        cond = format!("{cond} AND {}", search::condition(&mut sql, q));
    }
    figures_by(conn, &sql, "t.step", &cond)
}

fn run_step(run_id: &str, step: i64, created_at: i64, figures: Option<Figures>) -> RunStep {
    let mut f = figures.unwrap_or_default();
    RunStep {
        run_id: run_id.to_owned(),
        step,
        created_at,
        rollouts: f.traces,
        input_tokens: f.input_tokens,
        output_tokens: f.output_tokens,
        cost_usd: f.cost_usd,
        duration_ms_mean: f.duration_mean(),
        duration_ms_p50: f.duration_quantile(0.5),
        duration_ms_p90: f.duration_quantile(0.9),
        grades: f.grade_stats(),
        status: std::mem::take(&mut f.status),
    }
}

fn figures(conn: &Connection, run_id: &str, step: i64, created_at: i64) -> Result<RunStep> {
    let mut all = figures_of(conn, run_id, Some(step), None)?;
    Ok(run_step(run_id, step, created_at, all.remove(&step)))
}
