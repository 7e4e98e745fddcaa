//! The JSON shapes of Kestrel's HTTP API (besides ingest), shared by the server and its clients.
//!
//! Lists answer `{"data": [...], "next_cursor": "..."}`; pass `cursor=<next_cursor>` to get the
//! next page, until `next_cursor` is null. Errors answer `{"error": {"code", "message"}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::items::{GradeValue, Item};
use crate::status::{Phase, RolloutStatus};
use crate::JsonMap;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredItem {
    pub id: Uuid,
    pub ts: i64,
    pub turn_id: Option<Uuid>,
    #[serde(flatten)]
    pub item: Item,
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
    #[serde(default)]
    pub sort: TraceSort,
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
