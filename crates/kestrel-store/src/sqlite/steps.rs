//! Run steps and their figures.
//!
//! A step's rollouts are the traces whose `run_id` is the run's id and whose `step` is the step.
//! Figures are computed on read from the trace rows (no counters to keep in sync):
//! - rollouts and the status mix;
//! - tokens and cost: sums; duration: mean over the rollouts that have ended, in ms;
//! - grades: per name, over each rollout's **latest** grade of that name (a re-grade replaces, it
//!   does not add a sample), numeric values only (numbers, bools as 1/0; labels are left out).
//!   p50 and p90 use linear interpolation between closest ranks (numpy's default): for sorted
//!   values `v` of length `n`, `q` is read at position `q * (n - 1)`.
//!
//! Steps that rollouts name but that were never registered are listed too; their `created_at` is
//! the time the first of their traces was stored.

use std::collections::BTreeMap;

use caribou_model::api::{GradeStats, RunStep};
use caribou_model::now_us;
use rusqlite::{Connection, OptionalExtension, params};

use super::catalog::{RunRef, run_ref};
use super::values;
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

pub(crate) fn list_run_steps(conn: &Connection, run_id: &str) -> Result<Vec<RunStep>> {
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
    steps
        .into_iter()
        .map(|(step, at)| figures(conn, run_id, step, at))
        .collect()
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

fn figures(conn: &Connection, run_id: &str, step: i64, created_at: i64) -> Result<RunStep> {
    let mut out = RunStep {
        run_id: run_id.to_owned(),
        step,
        created_at,
        rollouts: 0,
        status: BTreeMap::new(),
        grades: BTreeMap::new(),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        duration_ms_mean: None,
    };
    let mut by_status = conn.prepare_cached(
        "SELECT status, COUNT(*), SUM(input_tokens), SUM(output_tokens), TOTAL(cost_usd),
                TOTAL(ended_at - started_at), COUNT(ended_at - started_at)
         FROM traces WHERE run_id = ?1 AND step = ?2 GROUP BY status",
    )?;
    let mut duration_sum_us = 0.0;
    let mut durations = 0u64;
    let rows = by_status.query_map(params![run_id, step], |r| {
        Ok((
            values::status(0, &r.get::<_, String>(0)?)?,
            values::count(r.get(1)?),
            values::count(r.get(2)?),
            values::count(r.get(3)?),
            r.get::<_, f64>(4)?,
            r.get::<_, f64>(5)?,
            values::count(r.get(6)?),
        ))
    })?;
    for row in rows {
        let (status, n, input, output, cost, dur_sum, dur_n) = row?;
        out.rollouts += n;
        out.status.insert(status, n);
        out.input_tokens += input;
        out.output_tokens += output;
        out.cost_usd += cost;
        duration_sum_us += dur_sum;
        durations += dur_n;
    }
    if durations > 0 {
        out.duration_ms_mean = Some(duration_sum_us / durations as f64 / 1000.0);
    }
    out.grades = grade_stats(conn, run_id, step)?;
    Ok(out)
}

/// Per grade name, the stats of each rollout's latest numeric grade of that name.
fn grade_stats(conn: &Connection, run_id: &str, step: i64) -> Result<BTreeMap<String, GradeStats>> {
    let mut select = conn.prepare_cached(
        "SELECT g.trace_rowid, g.name, g.value_num FROM grades g JOIN traces t ON t.id = g.trace_rowid
         WHERE t.run_id = ?1 AND t.step = ?2 ORDER BY g.trace_rowid, g.name, g.ts, g.item_id",
    )?;
    let rows = select.query_map(params![run_id, step], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<f64>>(2)?,
        ))
    })?;
    // Rows come ordered by (trace, name, ts): the last of each (trace, name) run is the latest.
    let mut latest: Vec<(i64, String, Option<f64>)> = Vec::new();
    for row in rows {
        let row = row?;
        match latest.last_mut() {
            Some(last) if last.0 == row.0 && last.1 == row.1 => *last = row,
            _ => latest.push(row),
        }
    }
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (_, name, value) in latest {
        let values = samples.entry(name).or_default();
        if let Some(v) = value {
            values.push(v);
        }
    }
    Ok(samples
        .into_iter()
        .map(|(name, values)| (name, stats(values)))
        .collect())
}

/// Count, mean, min, max, p50 and p90 of `values` (see the module docs for the quantile rule).
pub(crate) fn stats(mut values: Vec<f64>) -> GradeStats {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return GradeStats::default();
    }
    GradeStats {
        count: n as u64,
        mean: Some(values.iter().sum::<f64>() / n as f64),
        min: values.first().copied(),
        max: values.last().copied(),
        p50: quantile(&values, 0.5),
        p90: quantile(&values, 0.9),
    }
}

/// The `q` quantile of sorted `values`, linear between closest ranks.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (*sorted.get(lo)?, *sorted.get(hi)?);
    Some(a + (b - a) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
        let s = stats(vec![3.0, 1.0, 2.0]);
        assert_eq!(
            (s.count, s.min, s.max, s.mean, s.p50),
            (3, Some(1.0), Some(3.0), Some(2.0), Some(2.0))
        );
    }
}
