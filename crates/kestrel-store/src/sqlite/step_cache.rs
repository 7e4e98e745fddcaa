//! The per-step summary cache: each run step's figures (the [`RunStep`] numbers), computed once
//! and kept in `step_summary` (migration 0004), so listing a run's steps reads one small row per
//! step instead of every rollout of the run.
//!
//! Invariant (what makes answers exact, never stale): a `step_summary` row is trusted only when
//! the step has no `step_dirty` row. Ingest adds `(run_rowid, step)` to `step_dirty` in the same
//! transaction as any change to a trace of that step (items, grades, status, tags ...); the
//! summarizer ([`summarize_slice`], the writer's background work) recomputes dirty steps and
//! deletes their dirty rows in one transaction. A read ([`figures`]) runs in one read transaction
//! (one snapshot): cached rows for clean steps, figures computed live for dirty ones, so it sees
//! exactly what was committed before it started.
//!
//! Orphans: a trace that names a run before the run exists has `run_rowid` NULL (ingest cannot
//! mark a step of a run that does not exist). Steps of such traces are always computed live; a
//! partial index (`traces_orphan_run_step`) finds them without reading the run's other traces.
//!
//! Cost: a cached step is one row of ~200 bytes; a live step reads its rollouts (three queries
//! over `traces_by_run_step`). Under sustained ingest into a run most steps are dirty and reads
//! cost what they did without a cache; once ingest pauses, the summarizer catches up in about
//! (steps x rollouts per step) trace reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use caribou_model::RolloutStatus;
use caribou_model::api::{GradeStats, RunStep};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::aggregates::{Figures, figures_by};
use super::schema::internal;
use super::search::Sql;
use super::steps::rollouts_of;
use crate::Result;

/// Dirty steps taken per summarizer transaction.
const SLICE_STEPS: i64 = 64;

/// One step's figures and the time its first rollout was stored.
#[derive(Debug, Clone)]
pub(crate) struct StepFigures {
    pub first_created: i64,
    pub step: RunStep,
}

/// The cached form. Floats are kept as their bits so that a cached figure is bit-for-bit the one
/// computed live (JSON float parsing is not guaranteed to round-trip the last bit).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    rollouts: u64,
    status: BTreeMap<RolloutStatus, u64>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: u64,
    /// mean, p50, p90 of the durations (ms).
    duration: [Option<u64>; 3],
    grades: BTreeMap<String, StoredGrade>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredGrade {
    count: u64,
    /// mean, min, max, p50, p90.
    v: [Option<u64>; 5],
}

fn bits(v: Option<f64>) -> Option<u64> {
    v.map(f64::to_bits)
}

fn float(v: Option<u64>) -> Option<f64> {
    v.map(f64::from_bits)
}

impl Stored {
    fn of(s: &RunStep) -> Stored {
        Stored {
            rollouts: s.rollouts,
            status: s.status.clone(),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cost_usd: s.cost_usd.to_bits(),
            duration: [
                bits(s.duration_ms_mean),
                bits(s.duration_ms_p50),
                bits(s.duration_ms_p90),
            ],
            grades: s
                .grades
                .iter()
                .map(|(name, g)| {
                    let v = [g.mean, g.min, g.max, g.p50, g.p90].map(bits);
                    (name.clone(), StoredGrade { count: g.count, v })
                })
                .collect(),
        }
    }

    fn into_step(self, run_id: &str, step: i64, created_at: i64) -> RunStep {
        let [mean, p50, p90] = self.duration.map(float);
        RunStep {
            run_id: run_id.to_owned(),
            step,
            created_at,
            rollouts: self.rollouts,
            status: self.status,
            grades: self
                .grades
                .into_iter()
                .map(|(name, g)| {
                    let [mean, min, max, p50, p90] = g.v.map(float);
                    let stats = GradeStats {
                        count: g.count,
                        mean,
                        min,
                        max,
                        p50,
                        p90,
                    };
                    (name, stats)
                })
                .collect(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: f64::from_bits(self.cost_usd),
            duration_ms_mean: mean,
            duration_ms_p50: p50,
            duration_ms_p90: p90,
        }
    }
}

/// Figures as a [`RunStep`] (what the API answers for a step).
pub(crate) fn run_step(run_id: &str, step: i64, created_at: i64, f: Option<Figures>) -> RunStep {
    let mut f = f.unwrap_or_default();
    RunStep {
        run_id: run_id.to_owned(),
        step,
        created_at,
        rollouts: f.traces,
        input_tokens: f.input_tokens,
        output_tokens: f.output_tokens,
        cost_usd: super::aggregates::finite(f.cost_usd),
        duration_ms_mean: f.duration_mean(),
        duration_ms_p50: f.duration_quantile(0.5),
        duration_ms_p90: f.duration_quantile(0.9),
        grades: f.grade_stats(),
        status: std::mem::take(&mut f.status),
    }
}

/// Figures of the given steps of a run (all steps when `steps` is `None`), computed from the trace
/// rows, with each step's first `created_at`. Steps without rollouts are absent.
fn live(
    conn: &Connection,
    run_id: &str,
    steps: Option<&BTreeSet<i64>>,
) -> Result<BTreeMap<i64, StepFigures>> {
    let mut sql = Sql::default();
    let mut cond = rollouts_of(&mut sql, run_id);
    if let Some(steps) = steps {
        let list = serde_json::to_string(steps).map_err(|e| internal("listing steps", e))?;
        cond = format!(
            "{cond} AND t.step IN (SELECT value FROM json_each({}))",
            sql.bind(list)
        );
    }
    let mut figures = figures_by(conn, &sql, "t.step", &cond)?;
    let first = format!("SELECT t.step, MIN(t.created_at) FROM traces t WHERE {cond} GROUP BY 1");
    let mut select = conn.prepare_cached(&first)?;
    let rows = select.query_map(rusqlite::params_from_iter(sql.args.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (step, first_created) = row?;
        let step_figures = run_step(run_id, step, first_created, figures.remove(&step));
        out.insert(
            step,
            StepFigures {
                first_created,
                step: step_figures,
            },
        );
    }
    Ok(out)
}

/// The figures of every step of the run that has rollouts (or only of `only`), exact as of one
/// snapshot: cached rows for clean steps, live figures for dirty and orphan steps.
///
/// Opens a read transaction on `conn` (which must not be in one) so that the dirty set, the cached
/// rows and the live figures all come from the same snapshot.
pub(crate) fn figures(
    conn: &Connection,
    run_rowid: i64,
    run_id: &str,
    only: Option<i64>,
) -> Result<BTreeMap<i64, StepFigures>> {
    let tx = conn.unchecked_transaction()?;
    let (lo, hi) = only.map_or((i64::MIN, i64::MAX), |s| (s, s));
    let mut pending: BTreeSet<i64> = BTreeSet::new();
    let mut dirty = tx.prepare_cached(
        "SELECT step FROM step_dirty WHERE run_rowid = ?1 AND step BETWEEN ?2 AND ?3",
    )?;
    for step in dirty.query_map(params![run_rowid, lo, hi], |r| r.get::<_, i64>(0))? {
        pending.insert(step?);
    }
    let mut orphans = tx.prepare_cached(
        "SELECT DISTINCT step FROM traces INDEXED BY traces_orphan_run_step
         WHERE run_id = ?1 AND run_rowid IS NULL AND step BETWEEN ?2 AND ?3",
    )?;
    for step in orphans.query_map(params![run_id, lo, hi], |r| r.get::<_, i64>(0))? {
        pending.insert(step?);
    }
    let mut out = BTreeMap::new();
    let mut cached = tx.prepare_cached(
        "SELECT step, first_created, figures FROM step_summary
         WHERE run_rowid = ?1 AND step BETWEEN ?2 AND ?3",
    )?;
    let rows = cached.query_map(params![run_rowid, lo, hi], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (step, first_created, json) = row?;
        if pending.contains(&step) {
            continue;
        }
        let stored: Stored =
            serde_json::from_str(&json).map_err(|e| internal("reading a step summary", e))?;
        out.insert(
            step,
            StepFigures {
                first_created,
                step: stored.into_step(run_id, step, first_created),
            },
        );
    }
    if !pending.is_empty() {
        out.extend(live(&tx, run_id, Some(&pending))?);
    }
    drop(cached);
    drop(dirty);
    drop(orphans);
    tx.commit()?;
    Ok(out)
}

/// Recomputes up to [`SLICE_STEPS`] dirty steps in one write transaction, stopping early once
/// `budget` is spent (at least one step is done). Returns how many steps it summarized; 0 when
/// none is dirty. Runs on the writer's connection, outside any other transaction.
pub(crate) fn summarize_slice(conn: &Connection, budget: Duration) -> Result<usize> {
    let started = Instant::now();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<usize> {
        let mut select = conn.prepare_cached(
            "SELECT d.run_rowid, d.step, r.run_id FROM step_dirty d
             LEFT JOIN runs r ON r.id = d.run_rowid LIMIT ?1",
        )?;
        let dirty = select
            .query_map([SLICE_STEPS], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut upsert = conn.prepare_cached(
            "INSERT INTO step_summary(run_rowid, step, first_created, figures) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(run_rowid, step) DO UPDATE SET first_created = excluded.first_created,
               figures = excluded.figures",
        )?;
        let mut clear =
            conn.prepare_cached("DELETE FROM step_summary WHERE run_rowid = ?1 AND step = ?2")?;
        let mut done_dirty =
            conn.prepare_cached("DELETE FROM step_dirty WHERE run_rowid = ?1 AND step = ?2")?;
        let mut done = 0;
        for (run_rowid, step, run_id) in dirty {
            let summary = match &run_id {
                Some(run_id) => live(conn, run_id, Some(&BTreeSet::from([step])))?.remove(&step),
                None => None,
            };
            match summary {
                Some(s) => {
                    let json = serde_json::to_string(&Stored::of(&s.step))
                        .map_err(|e| internal("encoding a step summary", e))?;
                    upsert.execute(params![run_rowid, step, s.first_created, json])?;
                }
                None => {
                    clear.execute(params![run_rowid, step])?;
                }
            }
            done_dirty.execute(params![run_rowid, step])?;
            done += 1;
            if started.elapsed() >= budget {
                break;
            }
        }
        Ok(done)
    })();
    match result {
        Ok(done) => {
            conn.execute_batch("COMMIT")?;
            Ok(done)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
