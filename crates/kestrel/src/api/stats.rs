//! Aggregates and server status: `GET /api/v1/stats` (figures of any search, as one total),
//! `GET /api/v1/projects/{name}/timeseries` (a project's figures per time bucket) and
//! `GET /api/v1/status` (how far the full-text index is behind ingest).
//!
//! Time series limits: at most [`MAX_BUCKETS`] buckets; the range defaults to the last 24 hours
//! and the bucket to the smallest of [`NICE_BUCKETS`] giving at most [`TARGET_BUCKETS`] buckets.
//! `since` is rounded down to a multiple of the bucket (buckets align to the Unix epoch, so
//! charts of different ranges agree). Times are microseconds since the Unix epoch, a UTC date
//! (`2026-11-01`, `2026-11-01T14:30:00Z`) or a time ago (`24h`, `7d`).

use std::ops::Bound;

use axum::Json;
use axum::extract::State;
use caribou_model::api::{ServerStatus, Timeseries, TraceStats};
use caribou_model::now_us;
use caribou_model::validate::{MAX_TS_US, excerpt};
use kestrel_query::{Expr, NumRange, Pred};
use kestrel_store::{MAX_BUCKETS, StatsScope, TimeseriesRequest};
use serde::Deserialize;

use crate::api::projects::require_project;
use crate::api::traces::parse_q;
use crate::api::{ApiPath, ApiQuery, AppState, check_id, check_project};
use crate::error::ApiError;

const SEC_US: i64 = 1_000_000;
const DAY_US: i64 = 86_400 * SEC_US;
/// The default number of buckets aimed at.
pub const TARGET_BUCKETS: i64 = 48;
/// Bucket widths chosen by default, in seconds.
pub const NICE_BUCKETS: &[i64] = &[
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800,
    604_800, 2_592_000,
];

/// `GET /api/v1/stats?q=&project=&run_id=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub q: Option<String>,
    pub project: Option<String>,
    pub run_id: Option<String>,
}

pub async fn stats(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<TraceStats>, ApiError> {
    if let Some(p) = &query.project {
        check_project("project", p)?;
    }
    if let Some(r) = &query.run_id {
        check_id("run_id", r)?;
    }
    let q = parse_q(query.q.as_deref())?;
    let scope = StatsScope {
        project: query.project,
        run_id: query.run_id,
    };
    Ok(Json(state.store.stats(&scope, q.as_ref()).await?))
}

/// `GET /api/v1/projects/{name}/timeseries?bucket=&since=&until=&q=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeseriesQuery {
    pub bucket: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
}

const TIME_HINT: &str = "write microseconds since the Unix epoch, a UTC date such as 2026-11-01 or \
                         2026-11-01T14:30:00Z, or a time ago such as 24h or 7d";

/// A time parameter: microseconds, a date, or a time ago (read with the search language's rules),
/// between the Unix epoch and the year 3000 (the range of stored times; outside it, bucket
/// arithmetic could wrap).
fn time_param(name: &str, value: &str, now: i64) -> Result<i64, ApiError> {
    let us = parse_time(name, value, now)?;
    if !(0..=MAX_TS_US).contains(&us) {
        return Err(ApiError::bad_request(format!(
            "invalid query parameter `{name}`: {us} is outside 0..={MAX_TS_US} (1970 to the year \
             3000); times are microseconds since the Unix epoch"
        )));
    }
    Ok(us)
}

fn parse_time(name: &str, value: &str, now: i64) -> Result<i64, ApiError> {
    if let Ok(us) = value.parse::<i64>() {
        return Ok(us);
    }
    let bad = || {
        ApiError::bad_request(format!(
            "invalid query parameter `{name}`: {} is not a time; {TIME_HINT}",
            excerpt(value)
        ))
    };
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || "\"()".contains(c)) {
        return Err(bad());
    }
    let parsed = kestrel_query::parse_at(&format!("after:{value}"), now).map_err(|_| bad())?;
    match parsed.expr {
        Some(Expr::Pred(Pred::StartedAt(NumRange {
            lo: Bound::Included(t),
            hi: Bound::Unbounded,
        }))) => Ok(t),
        _ => Err(bad()),
    }
}

/// A bucket width such as `30s`, `5m`, `1h`, `1d`, in microseconds.
fn bucket_param(value: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid query parameter `bucket`: {} is not a bucket width; write a whole \
             number and a unit, s, m, h or d: 30s, 5m, 1h, 1d",
            excerpt(value)
        ))
    };
    let split = value.len().saturating_sub(1);
    let (num, unit) = value.split_at_checked(split).ok_or_else(bad)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match num.parse::<i64>() {
        Ok(n) if n > 0 => n
            .checked_mul(scale * SEC_US)
            .filter(|us| *us <= 366 * DAY_US)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// The smallest nice width giving at most [`TARGET_BUCKETS`] buckets over `span_us`.
fn default_bucket(span_us: i64) -> i64 {
    let want = span_us.div_euclid(TARGET_BUCKETS).max(1);
    NICE_BUCKETS
        .iter()
        .map(|s| s * SEC_US)
        .find(|b| *b >= want)
        .unwrap_or_else(|| (want + DAY_US - 1) / DAY_US * DAY_US)
}

pub async fn timeseries(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<TimeseriesQuery>,
) -> Result<Json<Timeseries>, ApiError> {
    let now = now_us();
    let until = match &query.until {
        Some(v) => time_param("until", v, now)?,
        None => now,
    };
    let since = match &query.since {
        Some(v) => time_param("since", v, now)?,
        None => until.saturating_sub(DAY_US),
    };
    if until <= since {
        return Err(ApiError::bad_request(format!(
            "invalid query parameters: `until` ({until}) must be after `since` ({since})"
        )));
    }
    let bucket_us = match &query.bucket {
        Some(b) => bucket_param(b)?,
        None => default_bucket(until - since),
    };
    let req = TimeseriesRequest {
        project: name.clone(),
        since_us: since,
        until_us: until,
        bucket_us,
    };
    // Checked here too (the store checks again) so the message can name the parameters.
    if req.buckets().is_err() {
        return Err(ApiError::bad_request(format!(
            "invalid query parameters: the range needs more than {MAX_BUCKETS} buckets of {}; \
             use a wider `bucket` or a shorter `since`..`until` range",
            query.bucket.as_deref().unwrap_or("the default width")
        )));
    }
    let q = parse_q(query.q.as_deref())?;
    require_project(&state, &name).await?;
    Ok(Json(state.store.timeseries(&req, q.as_ref()).await?))
}

pub async fn status(State(state): State<AppState>) -> Result<Json<ServerStatus>, ApiError> {
    Ok(Json(ServerStatus {
        search_index: state.store.search_index_status().await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_times() {
        assert_eq!(bucket_param("30s").unwrap(), 30 * SEC_US);
        assert_eq!(bucket_param("1h").unwrap(), 3600 * SEC_US);
        for bad in ["", "h", "0m", "-1h", "1y", "1.5h", "9999999999999d"] {
            assert!(bucket_param(bad).is_err(), "{bad}");
        }
        assert_eq!(default_bucket(DAY_US), 1800 * SEC_US);
        assert_eq!(default_bucket(3600 * SEC_US), 300 * SEC_US);
        let now = 1_800_000_000_000_000;
        assert_eq!(time_param("since", "24h", now).unwrap(), now - DAY_US);
        assert_eq!(
            time_param("since", "1700000000000000", now).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(
            time_param("since", "2026-11-01", now).unwrap(),
            1_793_491_200_000_000
        );
        for bad in [
            "yesterday",
            "2026-11-01 tag:x",
            "24h)",
            "",
            "-9223372036854775808",
            "-1",
            "9223372036854775807",
        ] {
            assert!(time_param("since", bad, now).is_err(), "{bad}");
        }
    }
}
