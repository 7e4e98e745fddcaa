//! The JSON shapes of Kestrel's HTTP API (besides ingest), shared by the server and its clients.
//!
//! Lists answer `{"data": [...], "next_cursor": "..."}`; pass `cursor=<next_cursor>` to get the
//! next page, until `next_cursor` is null. Errors answer `{"error": {"code", "message"}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::JsonMap;
use crate::items::{GradeValue, Item};
use crate::status::{Phase, RolloutStatus};

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Opaque; pass it back as `cursor` for the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `not_found`, `unauthorized`, `payload_too_large`, ...
    pub code: String,
    /// For people: what is wrong and what to do about it.
    pub message: String,
}

/// What `POST /api/v1/ingest` answers once the batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IngestResponse {
    /// Records stored by this request.
    pub accepted: u64,
    /// Records already stored before (a retry); ignored.
    pub duplicates: u64,
}

/// A project: the home of runs and traces. Its name is its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub created_at: i64,
}

/// The body of `POST /api/v1/projects` (get-or-create).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
}

/// An eval or training run. Kestrel issues its id (`run_<32 hex>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub project: String,
    pub phase: Phase,
    pub name: Option<String>,
    pub config: JsonMap,
    pub created_at: i64,
}

/// The body of `POST /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    pub project: String,
    pub phase: Phase,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub config: Option<JsonMap>,
}

/// The body of `POST /api/v1/runs/{run_id}/steps` (idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRunStep {
    pub step: i64,
}

/// Figures of one grade name over a set of traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GradeStats {
    /// Grades with a numeric value (numbers and bools).
    pub count: u64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

/// A training step and its figures, computed from its rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStep {
    pub run_id: String,
    pub step: i64,
    pub created_at: i64,
    pub rollouts: u64,
    /// Rollouts per status (`COMPLETED`: 12, ...); statuses with no rollout are left out.
    pub status: BTreeMap<RolloutStatus, u64>,
    /// Per grade name.
    pub grades: BTreeMap<String, GradeStats>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Mean duration of the step's rollouts, in milliseconds.
    pub duration_ms_mean: Option<f64>,
    /// Median duration of the step's ended rollouts, in milliseconds.
    #[serde(default)]
    pub duration_ms_p50: Option<f64>,
    /// 90th percentile of the durations, in milliseconds.
    #[serde(default)]
    pub duration_ms_p90: Option<f64>,
}

/// A datapoint as sent: `{"id": "q1", "input": "2+2?", "expected": "4"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDatapoint {
    pub id: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub expected: Value,
    #[serde(default)]
    pub metadata: Option<JsonMap>,
}

/// The body of `POST /api/v1/runs/{run_id}/datapoints` and `POST /api/v1/projects/{name}/datapoints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDatapoints {
    pub datapoints: Vec<NewDatapoint>,
}

/// What `POST .../datapoints` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AddDatapointsResponse {
    /// Datapoints added or replaced.
    pub written: u64,
}

/// A stored datapoint. Ids are unique within a project; adding one again replaces its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    pub id: String,
    pub project: String,
    pub input: Value,
    pub expected: Value,
    pub metadata: JsonMap,
    pub created_at: i64,
}

/// The latest grade of each name on a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeSummary {
    pub name: String,
    pub value: GradeValue,
}

/// A trace as listed: everything but its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// `None` while only items have arrived and the opening has not.
    pub project: Option<String>,
    pub run_id: Option<String>,
    pub phase: Option<Phase>,
    pub step: Option<i64>,
    pub datapoint_id: Option<String>,
    pub model_name: Option<String>,
    pub status: RolloutStatus,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub messages: u64,
    pub tool_calls: u64,
    /// Items logged (`item_count` on the wire: the detail's `items` is the list itself).
    #[serde(rename = "item_count")]
    pub items: u64,
    /// Turns (`turn_count` on the wire: the detail's `turns` is the list itself).
    #[serde(rename = "turn_count")]
    pub turns: u64,
    pub tags: Vec<String>,
    pub metadata: JsonMap,
    pub grades: Vec<GradeSummary>,
}

/// One turn (one `trace_run` block) of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub turn_id: Uuid,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub status: Option<RolloutStatus>,
}

/// An item as stored: its id, time and turn, and the item's own fields (`type`, `role`, ...).
///
/// Kestrel's SQLite store keeps items as this type's JSON and answers a whole trace by copying
/// that JSON as stored (`kestrel-store`'s `sqlite/trace_json.rs`): a field added here or to an
/// item must be optional and left out when empty, so that items stored before read the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredItem {
    pub id: Uuid,
    pub ts: i64,
    pub turn_id: Option<Uuid>,
    #[serde(flatten)]
    pub item: Item,
}

/// A slice of one trace's items in logged order (`GET /api/v1/traces/{id}/items`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemPage {
    pub trace_id: String,
    /// Items in the whole trace.
    pub total: u64,
    /// Position of the first item of `items` in the trace (0-based).
    pub offset: u64,
    pub items: Vec<StoredItem>,
}

/// One trace with its turns and its items in logged order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    #[serde(flatten)]
    pub summary: TraceSummary,
    pub traceback: Option<String>,
    pub turns: Vec<Turn>,
    pub items: Vec<StoredItem>,
}

/// How a list of traces is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TraceSort {
    #[default]
    Newest,
    Oldest,
    CostDesc,
    DurationDesc,
    TokensDesc,
    /// Highest latest grade of the name given as `grade` (default `reward`) first; traces without
    /// a numeric grade of that name last.
    GradeDesc,
    /// Lowest grade first; traces without it last.
    GradeAsc,
}

/// Filters of `GET /api/v1/traces` (query string). All are optional and combine with AND.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TraceFilter {
    pub project: Option<String>,
    pub run_id: Option<String>,
    pub phase: Option<Phase>,
    pub step: Option<i64>,
    pub status: Option<RolloutStatus>,
    pub datapoint_id: Option<String>,
    /// A search-language query (`status:error tag:x "timed out"`), ANDed with the other filters.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub sort: TraceSort,
    /// The grade name the `grade_desc`/`grade_asc` sorts use; default `reward`.
    #[serde(default)]
    pub grade: Option<String>,
    /// 1..=1000; default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The body of `POST /api/v1/traces/{trace_id}/grades`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddGrade {
    pub name: String,
    pub value: GradeValue,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub grader: Option<String>,
    #[serde(default)]
    pub metadata: Option<JsonMap>,
}

/// Figures over a set of traces: a search, a time bucket.
///
/// Durations are those of traces that have ended (`ended_at - started_at`); quantiles are linear
/// between closest ranks. Grades take each trace's latest grade of a name, numeric values only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TraceStats {
    pub traces: u64,
    /// Traces whose status is `ERROR`.
    pub errors: u64,
    /// Traces per status; statuses with no trace are left out.
    pub status: BTreeMap<RolloutStatus, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub duration_ms_mean: Option<f64>,
    pub duration_ms_p50: Option<f64>,
    pub duration_ms_p90: Option<f64>,
    pub duration_ms_p95: Option<f64>,
    /// Per grade name.
    pub grades: BTreeMap<String, GradeStats>,
}

/// One bucket of a time series: traces that started in `[start, start + bucket)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeBucket {
    /// Microseconds since the Unix epoch.
    pub start: i64,
    #[serde(flatten)]
    pub stats: TraceStats,
}

/// What `GET /api/v1/projects/{name}/timeseries` answers: every bucket of the range, empty ones
/// included, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeseries {
    pub project: String,
    /// Start of the first bucket (the asked `since` rounded down to a multiple of the bucket).
    pub since: i64,
    /// End of the range, exclusive.
    pub until: i64,
    /// Bucket width in seconds.
    pub bucket_seconds: u64,
    pub buckets: Vec<TimeBucket>,
}

/// How far the full-text index is behind ingest. Words in messages and tools become searchable
/// once the chunk holding them is indexed; everything else is searchable as soon as it is acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SearchIndexStatus {
    /// Stored item chunks (one per trace per ingest request) not yet in the full-text index.
    pub unindexed_chunks: u64,
    /// Items in those chunks.
    pub unindexed_items: u64,
}

/// What `GET /api/v1/status` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServerStatus {
    pub search_index: SearchIndexStatus,
}
