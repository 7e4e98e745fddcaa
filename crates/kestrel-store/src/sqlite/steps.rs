//! Run steps and their figures.
//!
//! A step's rollouts are the traces whose `run_id` is the run's id and whose `step` is the step.
//! Figures are computed from the trace rows:
//! - rollouts and the status mix;
//! - tokens and cost: sums; duration: mean, p50 and p90 over the rollouts that have ended, in ms;
//! - grades: per name, over each rollout's **latest** grade of that name (a re-grade replaces, it
//!   does not add a sample), numeric values only (numbers, bools as 1/0; labels are left out).
//!   p50 and p90 use linear interpolation between closest ranks (numpy's default): for sorted
//!   values `v` of length `n`, `q` is read at position `q * (n - 1)`.
//! - with a search query, the figures cover the matching rollouts only; every step is still
//!   listed (with zero rollouts when none matches), so charts keep their x axis.
//!
//! Without a query the figures of a step are read from the step cache (`step_cache`): a small row
//! per clean step, computed live for steps changed since it was summarized; always exact.
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
use super::step_cache;
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
/// Without `q` the figures come from the step cache (`step_cache`), exact as of one snapshot.
pub(crate) fn list_run_steps(
    conn: &Connection,
    run_id: &str,
    q: Option<&Query>,
) -> Result<Vec<RunStep>> {
    let run = run_ref(conn, run_id)?.ok_or_else(|| run_not_found(run_id))?;
    let mut steps: BTreeMap<i64, i64> = BTreeMap::new();
    let mut registered =
        conn.prepare_cached("SELECT step, created_at FROM run_steps WHERE run_rowid = ?1")?;
    let registered: Vec<(i64, i64)> = registered
        .query_map([run.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if q.is_none() {
        let mut cached = step_cache::figures(conn, run.id, run_id, None)?;
        for (step, f) in &cached {
            steps.insert(*step, f.first_created);
        }
        steps.extend(registered);
        return Ok(steps
            .into_iter()
            .map(|(step, at)| match cached.remove(&step) {
                Some(f) => RunStep {
                    created_at: at,
                    ..f.step
                },
                None => step_cache::run_step(run_id, step, at, None),
            })
            .collect());
    }
    let mut seen = conn.prepare_cached(
        "SELECT step, MIN(created_at) FROM traces WHERE run_id = ?1 AND step IS NOT NULL GROUP BY step",
    )?;
    for row in seen.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (step, at) = row?;
        steps.insert(step, at);
    }
    steps.extend(registered);
    let mut figures = figures_of(conn, run_id, None, q)?;
    Ok(steps
        .into_iter()
        .map(|(step, at)| step_cache::run_step(run_id, step, at, figures.remove(&step)))
        .collect())
}

pub(crate) fn get_run_step(conn: &Connection, run_id: &str, step: i64) -> Result<Option<RunStep>> {
    let Some(run) = run_ref(conn, run_id)? else {
        return Ok(None);
    };
    let cached = step_cache::figures(conn, run.id, run_id, Some(step))?.remove(&step);
    let created_at = match (registered_at(conn, &run, step)?, &cached) {
        (Some(at), _) => at,
        (None, Some(f)) => f.first_created,
        (None, None) => return Ok(None),
    };
    Ok(Some(match cached {
        Some(f) => RunStep {
            created_at,
            ..f.step
        },
        None => step_cache::run_step(run_id, step, created_at, None),
    }))
}

fn registered_at(conn: &Connection, run: &RunRef, step: i64) -> Result<Option<i64>> {
    let mut select =
        conn.prepare_cached("SELECT created_at FROM run_steps WHERE run_rowid = ?1 AND step = ?2")?;
    Ok(select
        .query_row(params![run.id, step], |r| r.get(0))
        .optional()?)
}

/// The condition on `traces t` selecting the rollouts of a run (its traces that name a step).
pub(super) fn rollouts_of(sql: &mut Sql, run_id: &str) -> String {
    format!(
        "t.run_id = {} AND t.step IS NOT NULL",
        sql.bind(run_id.to_owned())
    )
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
    let mut cond = rollouts_of(&mut sql, run_id);
    if let Some(step) = only {
        cond = format!("{cond} AND t.step = {}", sql.bind(step));
    }
    if let Some(q) = q {
        cond = format!("{cond} AND {}", search::condition(&mut sql, q));
    }
    figures_by(conn, &sql, "t.step", &cond)
}

fn figures(conn: &Connection, run_id: &str, step: i64, created_at: i64) -> Result<RunStep> {
    let mut all = figures_of(conn, run_id, Some(step), None)?;
    Ok(step_cache::run_step(
        run_id,
        step,
        created_at,
        all.remove(&step),
    ))
}
