//! The embedded SQLite store: one file, `<data_dir>/kestrel.sqlite3`.
//!
//! Layout of the work:
//! - one writer thread owns the write connection and commits concurrent writes in groups
//!   ([`writer`]); an acknowledged write is on disk (WAL, `synchronous=FULL`);
//! - a small pool of read-only connections serves reads on tokio's blocking pool ([`pool`]);
//!   readers never block the writer;
//! - items are stored in compressed chunks, one per trace per ingest request ([`chunks`]);
//! - the schema is versioned by numbered migrations ([`schema`]);
//! - search: the query language compiles to bound-parameter SQL ([`search`]) over the trace rows,
//!   side tables kept current at ingest ([`side`]: metadata by value, tools, models) and a
//!   full-text index of message and tool text filled in the background by the writer thread
//!   ([`indexer`]); lists walk the time (or grade) index and stop at the page ([`traces`]);
//! - a run's per-step figures are cached per step and recomputed in the writer's idle time
//!   ([`step_cache`]), exact on read (dirty steps are computed live);
//! - a page of a trace's items decodes only the chunks the page needs ([`items`]).
//!
//! Visibility: everything an acknowledged write stored is visible to every read that starts after
//! the acknowledgement, with one exception: words in messages and tools become searchable when
//! the indexer reaches their chunk, usually within milliseconds of the ack when the writer is not
//! saturated; under sustained ingest the indexer takes about a fifth of the writer's time, so the
//! lag grows while the load lasts and drains after. [`Store::search_index_status`] tells the lag.

mod aggregates;
mod catalog;
mod chunks;
mod cursor;
mod datapoints;
mod indexer;
mod ingest;
mod items;
mod lead_walk;
mod pool;
mod prepare;
mod schema;
mod search;
mod side;
mod sort_bounds;
mod step_cache;
mod steps;
mod text_cache;
mod trace_json;
mod trace_row;
mod traces;
mod values;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use caribou_model::Batch;
use caribou_model::api::{
    AddGrade, CreateRun, Datapoint, IngestResponse, ItemPage, NewDatapoint, Page, Project, Run,
    RunStep, SearchIndexStatus, StoredItem, Timeseries, TraceDetail, TraceFilter, TraceStats,
    TraceSummary,
};
use kestrel_query::Query;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

pub use schema::LATEST_VERSION as SCHEMA_VERSION;

use crate::{PageRequest, Result, StatsScope, Store, StoreError, TimeseriesRequest};
use pool::ReadPool;
use text_cache::TextCache;
use writer::{Background, Job, Msg, Pace, WriterLimits};

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "kestrel.sqlite3";

/// How long a read may take by default.
pub const DEFAULT_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct SqliteConfig {
    /// Directory holding the database file; created if missing.
    pub data_dir: PathBuf,
    /// Read-only connections in the pool (at least 1).
    pub read_connections: usize,
    /// Write requests that may wait for the writer before callers wait too.
    pub writer_queue: usize,
    /// The writer commits at most about this much weight (about microseconds of its work, see
    /// `prepare::Weight`) in one transaction.
    pub max_group_weight: usize,
    /// How long one read (a search, an aggregate, a trace) may take, waiting for a connection
    /// included; past it the read is stopped and answers [`StoreError::Unavailable`].
    pub query_timeout: std::time::Duration,
}

impl SqliteConfig {
    /// Defaults: 4 read connections, a writer queue of 1024 requests, groups of up to 250,000
    /// weight (about 50,000 records), reads stopped after [`DEFAULT_QUERY_TIMEOUT`].
    pub fn new(data_dir: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            data_dir: data_dir.into(),
            read_connections: 4,
            writer_queue: 1024,
            max_group_weight: 250_000,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }
}

/// The SQLite store. Cheap to clone: clones share the writer and the read pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: mpsc::Sender<Msg>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReadPool>,
    /// Texts of committed chunks waiting for the full-text indexer.
    texts: Arc<TextCache>,
}

impl SqliteStore {
    /// Opens (creating or migrating) the store in `config.data_dir`.
    ///
    /// Fails with a clear message when the file was written by a newer Kestrel (a schema version
    /// this code does not know).
    pub fn open(config: SqliteConfig) -> Result<SqliteStore> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Internal(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let path = config.db_path();
        let conn = schema::open_writer(&path)?;
        let readers = ReadPool::open(&path, config.read_connections, config.query_timeout)?;
        let limits = WriterLimits {
            queue: config.writer_queue,
            max_group_weight: config.max_group_weight.max(1),
        };
        let texts = Arc::new(TextCache::new(TEXT_CACHE_BYTES));
        let (writer, handle) = writer::spawn(conn, limits, Some(background(texts.clone())))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                writer_thread: Mutex::new(Some(handle)),
                readers,
                texts,
            }),
        })
    }

    /// Runs `f` in the writer's transaction and waits for the commit.
    async fn write<T, F>(&self, weight: usize, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, reply) = Job::new(weight, f);
        self.inner
            .writer
            .send(Msg::Job(job))
            .await
            .map_err(|_| closed())?;
        reply.await.map_err(|_| closed())?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.readers.read(f).await
    }
}

/// Memory for texts waiting to be indexed (see `text_cache`); past it the indexer reads chunks back.
const TEXT_CACHE_BYTES: usize = 64 << 20;

/// A slice of the idle indexer is cut after this long, so a write arriving meanwhile waits little.
const IDLE_SLICE_TIME: std::time::Duration = std::time::Duration::from_millis(5);

/// The full-text indexer as the writer's background work. Failures are warned once, then counted
/// (a failing index must not flood the log); the next write group retries.
fn indexer_background(texts: Arc<TextCache>) -> Background {
    let mut failures =
        Failures::new("full-text indexing failed; text search lags until it succeeds");
    Box::new(move |conn: &Connection, pace: Pace| {
        let budget = match pace {
            Pace::Idle => IDLE_SLICE_TIME,
            Pace::Between(d) => d,
        };
        failures.done(indexer::index_slice(
            conn,
            indexer::IDLE_SLICE,
            Some(budget),
            Some(&texts),
        ))
    })
}

/// Failures of a background job: the first is warned, then only every power of two (a failing
/// job retried after every write group must not flood the log).
struct Failures {
    count: u64,
    message: &'static str,
}

impl Failures {
    fn new(message: &'static str) -> Failures {
        Failures { count: 0, message }
    }

    /// Whether work is left, from one slice's outcome (how much it did, or its error).
    fn done(&mut self, slice: Result<usize>) -> bool {
        match slice {
            Ok(done) => done > 0,
            Err(e) => {
                self.count += 1;
                if self.count == 1 || self.count.is_power_of_two() {
                    warn!(error = %e, failures = self.count, "{}", self.message);
                }
                false
            }
        }
    }
}

/// The writer's background work: the full-text indexer first; the step summarizer
/// ([`step_cache`]) when the indexer has nothing left and no write is waiting; then merging the
/// full-text index's segments ([`indexer::merge_slice`]). Not between groups: under sustained
/// ingest the steps being written are dirtied again at once (reads compute dirty steps live,
/// exact either way), one step of a big run takes tens of milliseconds, which acks should not
/// wait for, and merges are what ingest leaves for idle time.
fn background(texts: Arc<TextCache>) -> Background {
    let mut indexer = indexer_background(texts);
    let mut steps = Failures::new(
        "summarizing run steps failed; step lists compute them live until it succeeds",
    );
    let mut merges = Failures::new(
        "merging the full-text index failed; searches read more segments until it succeeds",
    );
    Box::new(move |conn: &Connection, pace: Pace| {
        if indexer(conn, pace) {
            return true;
        }
        if pace != Pace::Idle {
            return false;
        }
        steps.done(step_cache::summarize_slice(conn, IDLE_SLICE_TIME))
            || merges.done(indexer::merge_slice(conn))
    })
}

fn closed() -> StoreError {
    StoreError::Internal("the store is closed".to_owned())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, batch: Batch) -> Result<IngestResponse> {
        // Grouping and encoding run off the writer thread, in parallel across requests.
        let parts = tokio::task::spawn_blocking(move || {
            prepare::prepare(batch)?.split(writer::MAX_JOB_WEIGHT)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("preparing a batch failed: {e}")))??;
        // One job per part, each sent once the one before committed: other requests' jobs run
        // in between.
        let mut response = IngestResponse::default();
        for part in parts {
            let weight = part.weight();
            let done = self
                .write(weight, move |conn| ingest::ingest(conn, part))
                .await?;
            self.inner.texts.put(done.texts);
            response.accepted += done.response.accepted;
            response.duplicates += done.response.duplicates;
            // `done.spent` is freed here, on this thread: the writer has better things to do.
        }
        Ok(response)
    }

    async fn get_or_create_project(&self, name: &str) -> Result<Project> {
        let name = name.to_owned();
        self.write(1, move |conn| catalog::get_or_create_project(conn, &name))
            .await
    }

    async fn get_project(&self, name: &str) -> Result<Option<Project>> {
        let name = name.to_owned();
        self.read(move |conn| catalog::get_project(conn, &name))
            .await
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        self.read(catalog::list_projects).await
    }

    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        self.write(1, move |conn| catalog::create_run(conn, &req))
            .await
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<Run>> {
        let run_id = run_id.to_owned();
        self.read(move |conn| catalog::get_run(conn, &run_id)).await
    }

    async fn list_runs(&self, project: Option<&str>, page: PageRequest) -> Result<Page<Run>> {
        let project = project.map(str::to_owned);
        self.read(move |conn| catalog::list_runs(conn, project.as_deref(), &page))
            .await
    }

    async fn create_run_step(&self, run_id: &str, step: i64) -> Result<RunStep> {
        let run_id = run_id.to_owned();
        self.write(1, move |conn| steps::create_run_step(conn, &run_id, step))
            .await
    }

    async fn list_run_steps(&self, run_id: &str) -> Result<Vec<RunStep>> {
        let run_id = run_id.to_owned();
        self.read(move |conn| steps::list_run_steps(conn, &run_id, None))
            .await
    }

    async fn list_run_steps_matching(&self, run_id: &str, q: &Query) -> Result<Vec<RunStep>> {
        let run_id = run_id.to_owned();
        let q = q.clone();
        self.read(move |conn| steps::list_run_steps(conn, &run_id, Some(&q)))
            .await
    }

    async fn stats(&self, scope: &StatsScope, q: Option<&Query>) -> Result<TraceStats> {
        let scope = scope.clone();
        let q = q.cloned();
        self.read(move |conn| aggregates::stats(conn, &scope, q.as_ref()))
            .await
    }

    async fn timeseries(&self, req: &TimeseriesRequest, q: Option<&Query>) -> Result<Timeseries> {
        let req = req.clone();
        let q = q.cloned();
        self.read(move |conn| aggregates::timeseries(conn, &req, q.as_ref()))
            .await
    }

    async fn search_index_status(&self) -> Result<SearchIndexStatus> {
        self.read(indexer::status).await
    }

    async fn get_run_step(&self, run_id: &str, step: i64) -> Result<Option<RunStep>> {
        let run_id = run_id.to_owned();
        self.read(move |conn| steps::get_run_step(conn, &run_id, step))
            .await
    }

    async fn add_datapoints(
        &self,
        project: &str,
        run_id: Option<&str>,
        datapoints: Vec<NewDatapoint>,
    ) -> Result<u64> {
        let project = project.to_owned();
        let run_id = run_id.map(str::to_owned);
        self.write(datapoints.len(), move |conn| {
            datapoints::add(conn, &project, run_id.as_deref(), &datapoints)
        })
        .await
    }

    async fn list_datapoints(
        &self,
        project: &str,
        run_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Datapoint>> {
        let project = project.to_owned();
        let run_id = run_id.map(str::to_owned);
        self.read(move |conn| datapoints::list(conn, &project, run_id.as_deref(), &page))
            .await
    }

    async fn get_datapoint(&self, project: &str, id: &str) -> Result<Option<Datapoint>> {
        let project = project.to_owned();
        let id = id.to_owned();
        self.read(move |conn| datapoints::get(conn, &project, &id))
            .await
    }

    async fn search_traces(
        &self,
        filter: &TraceFilter,
        q: Option<&Query>,
    ) -> Result<Page<TraceSummary>> {
        let filter = filter.clone();
        let q = q.cloned();
        self.read(move |conn| traces::list_traces(conn, &filter, q.as_ref()))
            .await
    }

    async fn get_trace(&self, trace_id: &str) -> Result<Option<TraceDetail>> {
        let trace_id = trace_id.to_owned();
        self.read(move |conn| traces::get_trace(conn, &trace_id))
            .await
    }

    async fn get_trace_json(&self, trace_id: &str) -> Result<Option<Vec<u8>>> {
        let trace_id = trace_id.to_owned();
        self.read(move |conn| trace_json::get_trace_json(conn, &trace_id))
            .await
    }

    async fn get_trace_items(
        &self,
        trace_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<ItemPage>> {
        let trace_id = trace_id.to_owned();
        self.read(move |conn| traces::get_trace_items(conn, &trace_id, offset, limit))
            .await
    }

    async fn add_grade(&self, trace_id: &str, grade: AddGrade) -> Result<StoredItem> {
        let trace_id = trace_id.to_owned();
        self.write(1, move |conn| ingest::add_grade(conn, &trace_id, grade))
            .await
    }

    async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.inner.writer.send(Msg::Shutdown(tx)).await.is_ok() {
            // The writer answers once queued writes are committed and its connection is closed.
            let _ = rx.await;
        }
        let handle = self
            .inner
            .writer_thread
            .lock()
            .map_err(|_| StoreError::Internal("writer handle lock poisoned".to_owned()))?
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::Internal(format!("joining the writer: {e}")))?
                .map_err(|_| StoreError::Internal("the writer thread panicked".to_owned()))?;
        }
        Ok(())
    }
}
