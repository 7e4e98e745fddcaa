//! Figures over sets of traces, grouped: per run step, per time bucket, or one total.
//!
//! A group is an integer SQL expression on `traces t` (`t.step`, a bucket number, `0`); the set
//! is a condition on `traces t` (built with [`Sql`], so values are bound). Three queries per call,
//! whatever the number of groups: totals per (group, status), the durations of ended traces, and
//! the grades (each trace's latest of each name, numeric values only, as `steps` always did).
//! Quantiles are linear between closest ranks (numpy's default), see [`quantile`].
//!
//! Cost: the durations and grade values of the matching traces are read into memory to compute
//! quantiles; that is 8 bytes per trace (a million traces, 8 MB), fine for one machine.
//!
//! Every figure is finite and no sum overflows, whatever is stored: token sums are taken as
//! `TOTAL()` (a float, where `SUM()` of large integers raises "integer overflow") and saturate at
//! `u64::MAX`; float figures are clamped to the finite range ([`finite`]).

use std::collections::BTreeMap;

use caribou_model::RolloutStatus;
use caribou_model::api::{GradeStats, TimeBucket, Timeseries, TraceFilter, TraceStats};
use kestrel_query::Query;
use rusqlite::{Connection, params_from_iter};

use super::search::Sql;
use super::{traces, values};
use crate::{Result, StatsScope, TimeseriesRequest};

/// The figures of one group, before quantiles are taken.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub traces: u64,
    pub status: BTreeMap<RolloutStatus, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Milliseconds, of ended traces.
    pub durations_ms: Vec<f64>,
    /// Per grade name, each trace's latest numeric value.
    pub grades: BTreeMap<String, Vec<f64>>,
}

impl Figures {
    pub(crate) fn duration_mean(&self) -> Option<f64> {
        mean(&self.durations_ms)
    }

    /// Sorts the durations and returns the `q` quantile.
    pub(crate) fn duration_quantile(&mut self, q: f64) -> Option<f64> {
        self.durations_ms.sort_by(f64::total_cmp);
        quantile(&self.durations_ms, q)
    }

    pub(crate) fn grade_stats(&mut self) -> BTreeMap<String, GradeStats> {
        std::mem::take(&mut self.grades)
            .into_iter()
            .map(|(name, v)| (name, grade_stats(v)))
            .collect()
    }

    pub(crate) fn into_stats(mut self) -> TraceStats {
        TraceStats {
            traces: self.traces,
            errors: self.status.get(&RolloutStatus::Error).copied().unwrap_or(0),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: finite(self.cost_usd),
            duration_ms_mean: self.duration_mean(),
            duration_ms_p50: self.duration_quantile(0.5),
            duration_ms_p90: self.duration_quantile(0.9),
            duration_ms_p95: self.duration_quantile(0.95),
            grades: self.grade_stats(),
            status: self.status,
        }
    }
}

/// Figures of the traces matching `cond`, per value of `group`. Both are SQL on `traces t` whose
/// markers refer to `sql.args`; groups with no trace are absent.
pub(crate) fn figures_by(
    conn: &Connection,
    sql: &Sql,
    group: &str,
    cond: &str,
) -> Result<BTreeMap<i64, Figures>> {
    let mut out: BTreeMap<i64, Figures> = BTreeMap::new();
    let args = || params_from_iter(sql.args.iter());

    let totals = format!(
        "SELECT {group}, t.status, COUNT(*), TOTAL(t.input_tokens), TOTAL(t.output_tokens), TOTAL(t.cost_usd)
         FROM traces t WHERE {cond} GROUP BY 1, 2"
    );
    let mut select = conn.prepare(&totals)?;
    let rows = select.query_map(args(), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            values::status(1, &r.get::<_, String>(1)?)?,
            values::count(r.get(2)?),
            values::total_count(r.get(3)?),
            values::total_count(r.get(4)?),
            r.get::<_, f64>(5)?,
        ))
    })?;
    for row in rows {
        let (g, status, n, input, output, cost) = row?;
        let f = out.entry(g).or_default();
        f.traces += n;
        *f.status.entry(status).or_default() += n;
        f.input_tokens = f.input_tokens.saturating_add(input);
        f.output_tokens = f.output_tokens.saturating_add(output);
        f.cost_usd = finite(f.cost_usd + cost);
    }

    let durations = format!(
        "SELECT {group}, t.ended_at - t.started_at FROM traces t
         WHERE ({cond}) AND t.ended_at IS NOT NULL AND t.started_at IS NOT NULL"
    );
    let mut select = conn.prepare(&durations)?;
    let rows = select.query_map(args(), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (g, us) = row?;
        out.entry(g)
            .or_default()
            .durations_ms
            .push(us as f64 / 1000.0);
    }

    let grades = format!(
        "SELECT {group}, g.trace_rowid, g.name, g.value_num FROM traces t
         JOIN grades g ON g.trace_rowid = t.id
         WHERE {cond} ORDER BY g.trace_rowid, g.name, g.ts, g.item_id"
    );
    let mut select = conn.prepare(&grades)?;
    let rows = select.query_map(args(), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<f64>>(3)?,
        ))
    })?;
    // Rows come ordered by (trace, name, ts): the last of each (trace, name) run is the latest.
    let mut latest: Vec<(i64, i64, String, Option<f64>)> = Vec::new();
    for row in rows {
        let row = row?;
        match latest.last_mut() {
            Some(last) if last.1 == row.1 && last.2 == row.2 => *last = row,
            _ => latest.push(row),
        }
    }
    for (g, _, name, value) in latest {
        let samples = out.entry(g).or_default().grades.entry(name).or_default();
        if let Some(v) = value {
            samples.push(v);
        }
    }
    Ok(out)
}

/// Figures over every trace of the scope matching `q`.
pub(crate) fn stats(
    conn: &Connection,
    scope: &StatsScope,
    q: Option<&Query>,
) -> Result<TraceStats> {
    let filter = TraceFilter {
        project: scope.project.clone(),
        run_id: scope.run_id.clone(),
        ..TraceFilter::default()
    };
    let mut sql = Sql::default();
    let Some(cond) = traces::filter_condition(conn, &mut sql, &filter, q)? else {
        return Ok(TraceStats::default());
    };
    let mut all = figures_by(conn, &sql, "0", &cond)?;
    Ok(all.remove(&0).map(Figures::into_stats).unwrap_or_default())
}

/// A project's figures per time bucket (by start time), every bucket of the range listed.
pub(crate) fn timeseries(
    conn: &Connection,
    req: &TimeseriesRequest,
    q: Option<&Query>,
) -> Result<Timeseries> {
    let (start, n) = req.buckets()?;
    let filter = TraceFilter {
        project: Some(req.project.clone()),
        ..TraceFilter::default()
    };
    let mut sql = Sql::default();
    let mut figures = match traces::filter_condition(conn, &mut sql, &filter, q)? {
        Some(cond) => {
            let since = sql.bind(start);
            let until = sql.bind(req.until_us);
            let bucket = sql.bind(req.bucket_us);
            let cond = format!("({cond}) AND t.sort_ts >= {since} AND t.sort_ts < {until}");
            figures_by(
                conn,
                &sql,
                &format!("(t.sort_ts - {since}) / {bucket}"),
                &cond,
            )?
        }
        None => BTreeMap::new(),
    };
    let mut buckets = Vec::new();
    for i in 0..n {
        let index = i64::try_from(i).unwrap_or(i64::MAX);
        buckets.push(TimeBucket {
            start: start.saturating_add(index.saturating_mul(req.bucket_us)),
            stats: figures
                .remove(&index)
                .map(Figures::into_stats)
                .unwrap_or_default(),
        });
    }
    Ok(Timeseries {
        project: req.project.clone(),
        since: start,
        until: req.until_us,
        bucket_seconds: u64::try_from(req.bucket_us / 1_000_000).unwrap_or(0),
        buckets,
    })
}

/// Count, mean, min, max, p50 and p90 of `values`.
pub(crate) fn grade_stats(mut values: Vec<f64>) -> GradeStats {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return GradeStats::default();
    }
    GradeStats {
        count: n as u64,
        mean: mean(&values),
        min: values.first().copied(),
        max: values.last().copied(),
        p50: quantile(&values, 0.5),
        p90: quantile(&values, 0.9),
    }
}

/// `x` in the finite range: infinities become the largest finite values, NaN zero. JSON has no
/// infinity (it would be sent as `null` where a number is promised).
pub(crate) fn finite(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-f64::MAX, f64::MAX)
    }
}

/// The mean of `values`; when their sum overflows, summed as fractions instead.
fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let plain = values.iter().sum::<f64>() / n;
    if plain.is_finite() {
        return Some(plain);
    }
    Some(finite(values.iter().map(|v| v / n).sum()))
}

/// The `q` quantile of sorted `values`, linear between closest ranks: for `n` values, `q` is read
/// at position `q * (n - 1)`.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    // Positions are within 0..=last: the casts cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (*sorted.get(lo)?, *sorted.get(hi)?);
    let t = pos - lo as f64;
    let plain = a + (b - a) * t;
    if plain.is_finite() {
        return Some(plain);
    }
    // `b - a` overflowed (values of opposite signs near the float limits).
    Some(finite(a * (1.0 - t) + b * t))
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
        let s = grade_stats(vec![3.0, 1.0, 2.0]);
        assert_eq!(
            (s.count, s.min, s.max, s.mean, s.p50),
            (3, Some(1.0), Some(3.0), Some(2.0), Some(2.0))
        );
    }
}
