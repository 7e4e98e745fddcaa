//! Kestrel's storage layer.
//!
//! [`Store`] is what the server needs from a backend; every backend (the embedded SQLite store in
//! [`sqlite`], later ClickHouse) implements it and passes the one shared suite in `testsuite`
//! (enabled by the `testsuite` feature).
//!
//! Invariants every backend keeps:
//! - [`Store::ingest`] returns only after the batch is durably committed; a crash after it returned
//!   loses nothing of that batch.
//! - Ingest is idempotent per record id: a record seen before is counted as a duplicate and changes
//!   nothing.
//! - Records of a trace may arrive in any order, in any batches; the result is the same.
//! - A client mistake is a [`StoreError::Invalid`], [`StoreError::NotFound`] or
//!   [`StoreError::Conflict`], never `Internal`.
//! - Every read ends by its deadline ([`StoreError::Unavailable`] past it) and stops soon after its
//!   future is dropped (the client went away).
//! - Search ([`Store::search_traces`], the aggregates) takes a parsed [`Query`]. Everything a query
//!   names is searchable as soon as its ingest is acknowledged, except words in message and tool
//!   text, which a backend may index in the background: they become searchable once
//!   [`Store::search_index_status`] no longer counts their chunk.

use async_trait::async_trait;
use caribou_model::Batch;
use caribou_model::api::{
    AddGrade, CreateRun, Datapoint, IngestResponse, ItemPage, NewDatapoint, Page, Project, Run,
    RunStep, SearchIndexStatus, StoredItem, Timeseries, TraceDetail, TraceFilter, TraceStats,
    TraceSummary,
};
pub use kestrel_query::Query;

pub mod sqlite;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use sqlite::{SqliteConfig, SqliteStore};

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (a 404).
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong in a way only the store can tell (a 400): a bad cursor, a run id that
    /// names no run where one is required, a trace past its bounds, ...
    #[error("{0}")]
    Invalid(String),
    /// The request contradicts what is stored (a 409): a trace id that belongs to another
    /// project, a record id sent again with other content. Nothing of the request is stored.
    #[error("{0}")]
    Conflict(String),
    /// The store could not answer in time (a 503): a query ran past its deadline and was
    /// stopped. Nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (a 500): disk full, corrupt file, a bug. Logged, never shown to clients.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A page request for lists other than traces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageRequest {
    /// 1..=1000; `None` means 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Which traces [`Store::stats`] covers (besides its query): all, one project, one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsScope {
    pub project: Option<String>,
    pub run_id: Option<String>,
}

/// Most buckets one time series may hold.
pub const MAX_BUCKETS: u64 = 2_000;

/// A time series of one project: traces that started in `[since, until)`, in buckets of
/// `bucket_us` (`since` is rounded down to a multiple of it).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeseriesRequest {
    pub project: String,
    pub since_us: i64,
    pub until_us: i64,
    pub bucket_us: i64,
}

impl TimeseriesRequest {
    /// The first bucket's start and the number of buckets; `Invalid` when the range is empty or
    /// needs more than [`MAX_BUCKETS`] buckets.
    pub fn buckets(&self) -> Result<(i64, u64)> {
        if self.bucket_us <= 0 {
            return Err(StoreError::Invalid("bucket must be positive".to_owned()));
        }
        if self.until_us <= self.since_us {
            return Err(StoreError::Invalid(format!(
                "until ({}) must be after since ({})",
                self.until_us, self.since_us
            )));
        }
        let start = self
            .since_us
            .div_euclid(self.bucket_us)
            .checked_mul(self.bucket_us)
            .ok_or_else(|| {
                StoreError::Invalid(format!("since ({}) is out of range", self.since_us))
            })?;
        let span = i128::from(self.until_us) - i128::from(start);
        let n = (span + i128::from(self.bucket_us) - 1) / i128::from(self.bucket_us);
        match u64::try_from(n) {
            Ok(n) if n <= MAX_BUCKETS => Ok((start, n)),
            _ => Err(StoreError::Invalid(format!(
                "the range holds {n} buckets, more than {MAX_BUCKETS}; use a wider bucket or a shorter range"
            ))),
        }
    }
}

/// Parses `filter.q` when set; a bad query is [`StoreError::Invalid`] with the parser's message.
pub fn parse_filter_query(filter: &TraceFilter) -> Result<Option<Query>> {
    filter
        .q
        .as_deref()
        .map(|q| kestrel_query::parse(q).map_err(|e| StoreError::Invalid(e.to_string())))
        .transpose()
}

/// What the server needs from a backend. All methods are cancel-safe from the caller's side: a
/// dropped future never leaves a half-written batch.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a validated batch; returns once it is committed.
    async fn ingest(&self, batch: Batch) -> Result<IngestResponse>;

    /// Returns the project of that name, creating it if needed (idempotent).
    async fn get_or_create_project(&self, name: &str) -> Result<Project>;
    async fn get_project(&self, name: &str) -> Result<Option<Project>>;
    async fn list_projects(&self) -> Result<Vec<Project>>;

    /// Creates a run (and its project if needed); the store issues the id.
    async fn create_run(&self, req: CreateRun) -> Result<Run>;
    async fn get_run(&self, run_id: &str) -> Result<Option<Run>>;
    /// Runs, newest first, of one project or of all.
    async fn list_runs(&self, project: Option<&str>, page: PageRequest) -> Result<Page<Run>>;

    /// Registers step `step` of a run (idempotent); `NotFound` if the run does not exist.
    async fn create_run_step(&self, run_id: &str, step: i64) -> Result<RunStep>;
    /// Steps of a run in step order, each with its figures. Steps that rollouts name but that were
    /// never registered are listed too.
    async fn list_run_steps(&self, run_id: &str) -> Result<Vec<RunStep>>;
    async fn get_run_step(&self, run_id: &str, step: i64) -> Result<Option<RunStep>>;

    /// Adds or replaces datapoints of a project, and links them to `run_id` when given. Returns how
    /// many were written.
    async fn add_datapoints(
        &self,
        project: &str,
        run_id: Option<&str>,
        datapoints: Vec<NewDatapoint>,
    ) -> Result<u64>;
    /// Datapoints of a project, or of a run when `run_id` is given, in id order.
    async fn list_datapoints(
        &self,
        project: &str,
        run_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Datapoint>>;
    async fn get_datapoint(&self, project: &str, id: &str) -> Result<Option<Datapoint>>;

    /// Traces matching the filter and the parsed search query `q` (when given), in the filter's
    /// order, one page. `filter.q` is not read: the caller parsed it into `q`.
    async fn search_traces(
        &self,
        filter: &TraceFilter,
        q: Option<&Query>,
    ) -> Result<Page<TraceSummary>>;

    /// Traces matching the filter, `filter.q` included (parsed here: a bad query is `Invalid`).
    async fn list_traces(&self, filter: &TraceFilter) -> Result<Page<TraceSummary>> {
        let q = parse_filter_query(filter)?;
        self.search_traces(filter, q.as_ref()).await
    }

    /// Like [`Store::list_run_steps`], each step's figures computed over the rollouts matching
    /// `q` only (steps with no match are listed with zero rollouts).
    async fn list_run_steps_matching(&self, run_id: &str, q: &Query) -> Result<Vec<RunStep>>;

    /// Figures over every trace of the scope that matches `q`.
    async fn stats(&self, scope: &StatsScope, q: Option<&Query>) -> Result<TraceStats>;

    /// Figures of a project's traces (matching `q`) per time bucket; every bucket is listed.
    async fn timeseries(&self, req: &TimeseriesRequest, q: Option<&Query>) -> Result<Timeseries>;

    /// How far the full-text index is behind what was acknowledged.
    async fn search_index_status(&self) -> Result<SearchIndexStatus>;
    /// One trace with its turns and items in logged order.
    async fn get_trace(&self, trace_id: &str) -> Result<Option<TraceDetail>>;
    /// [`Store::get_trace`]'s answer as JSON (`caribou_model::json`, byte for byte). The default
    /// serializes `get_trace`; stores that keep items as JSON override it to copy that instead.
    async fn get_trace_json(&self, trace_id: &str) -> Result<Option<Vec<u8>>> {
        let Some(detail) = self.get_trace(trace_id).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        caribou_model::json::write(&mut out, &detail)
            .map_err(|e| StoreError::Internal(format!("encoding a trace: {e}")))?;
        Ok(Some(out))
    }
    /// `limit` items of a trace from position `offset`, in logged order, and the trace's item
    /// count; `None` if there is no such trace. The default reads the whole trace; stores
    /// override it to read only what the page needs.
    async fn get_trace_items(
        &self,
        trace_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<ItemPage>> {
        Ok(self.get_trace(trace_id).await?.map(|t| {
            let total = t.items.len() as u64;
            let skip = usize::try_from(offset).unwrap_or(usize::MAX);
            let take = usize::try_from(limit).unwrap_or(usize::MAX);
            ItemPage {
                trace_id: t.summary.trace_id,
                total,
                offset,
                items: t.items.into_iter().skip(skip).take(take).collect(),
            }
        }))
    }
    /// Grades an existing trace after the fact; `NotFound` if there is no such trace.
    async fn add_grade(&self, trace_id: &str, grade: AddGrade) -> Result<StoredItem>;

    /// Finishes pending writes and closes the backend. Idempotent.
    async fn close(&self) -> Result<()>;
}
