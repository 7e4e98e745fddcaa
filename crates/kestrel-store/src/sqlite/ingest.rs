//! Ingest: applying a batch of records inside the writer's transaction.
//!
//! Per request: every record id goes into `record_ids` (`INSERT OR IGNORE`; nothing inserted means
//! a duplicate, counted and skipped, also when a record repeats inside the batch). The accepted
//! records are grouped by trace; for each trace the row is read once, the records are applied to it
//! in memory, its new items are written as one chunk, and the row is written back with one UPDATE
//! (plus the search side tables, for the metadata keys, tools and models this request added; see
//! `side`). The full-text index is not touched here: the writer fills it later (`indexer`).
//!
//! Order independence: every derived field is a function of the set of records, not of their
//! arrival order — status and error take the newest `ts` (ties broken by a fixed rank), metadata
//! keys keep the value of their newest `ts`, start is a min and end a max, totals are sums, tags
//! a set. One exception: the filing fields of a trace (project, run, phase, step, datapoint, model)
//! come from the first opening to *arrive*; later openings only fill fields still empty.

use std::collections::HashMap;

use caribou_model::api::{IngestResponse, StoredItem};
use caribou_model::{Batch, Item, JsonMap, Record, RolloutStatus, TraceClose, TraceOpen, now_us};
use rusqlite::{Connection, OptionalExtension, params};

use super::catalog::{RunRef, project_id_or_create, run_ref};
use super::schema::internal;
use super::{chunks, side, values};
use crate::Result;

/// Stores a batch; answers how many records were new and how many were seen before.
///
/// Takes the batch by value: its items move into the stored chunks without a copy.
pub(crate) fn ingest(conn: &Connection, batch: Batch) -> Result<IngestResponse> {
    let mut response = IngestResponse::default();
    // Accepted records grouped by trace, traces in order of first appearance.
    let mut groups: Vec<(String, Vec<Record>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    {
        let mut dedup = conn.prepare_cached("INSERT OR IGNORE INTO record_ids(id) VALUES (?1)")?;
        for record in batch.records {
            if dedup.execute([record.id().as_bytes().as_slice()])? == 0 {
                response.duplicates += 1;
                continue;
            }
            response.accepted += 1;
            let slot = match index.get(record.trace_id()) {
                Some(slot) => *slot,
                None => {
                    let trace_id = record.trace_id().to_owned();
                    index.insert(trace_id.clone(), groups.len());
                    groups.push((trace_id, Vec::new()));
                    groups.len() - 1
                }
            };
            if let Some((_, records)) = groups.get_mut(slot) {
                records.push(record);
            }
        }
    }
    let mut filing = Filing::default();
    for (trace_id, records) in groups {
        apply_to_trace(conn, &mut filing, &trace_id, records)?;
    }
    Ok(response)
}

/// The rowid of an existing trace.
pub(crate) fn trace_rowid(conn: &Connection, trace_id: &str) -> Result<Option<i64>> {
    let mut select = conn.prepare_cached("SELECT id FROM traces WHERE trace_id = ?1")?;
    Ok(select.query_row([trace_id], |r| r.get(0)).optional()?)
}

/// Lookups made while filing traces, cached for the request (a batch of a thousand rollouts of one
/// run looks the run up once).
#[derive(Default)]
struct Filing {
    runs: HashMap<String, Option<RunRef>>,
    projects: HashMap<String, i64>,
}

impl Filing {
    fn run(&mut self, conn: &Connection, run_id: &str) -> Result<Option<RunRef>> {
        if let Some(r) = self.runs.get(run_id) {
            return Ok(*r);
        }
        let r = run_ref(conn, run_id)?;
        self.runs.insert(run_id.to_owned(), r);
        Ok(r)
    }

    fn project(&mut self, conn: &Connection, name: &str) -> Result<i64> {
        if let Some(id) = self.projects.get(name) {
            return Ok(*id);
        }
        let id = project_id_or_create(conn, name)?;
        self.projects.insert(name.to_owned(), id);
        Ok(id)
    }
}

/// A trace row, read once per request, changed in memory, written back once.
#[derive(Debug)]
struct TraceRow {
    id: i64,
    project_rowid: Option<i64>,
    run_id: Option<String>,
    run_rowid: Option<i64>,
    phase: Option<String>,
    step: Option<i64>,
    datapoint_id: Option<String>,
    model_name: Option<String>,
    status: RolloutStatus,
    status_ts: Option<i64>,
    error: Option<String>,
    traceback: Option<String>,
    error_ts: Option<i64>,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    min_ts: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_usd: f64,
    messages: i64,
    tool_calls: i64,
    items: i64,
    /// Loaded only when a record changes it: (metadata, ts of each key).
    metadata: Option<(JsonMap, JsonMap)>,
    metadata_text: String,
    metadata_ts_text: String,
    /// Search side tables (see `side`): what this request added, written once by `save`.
    new_meta_keys: Vec<String>,
    new_tools: Vec<String>,
    new_models: Vec<String>,
}

const ROW_COLUMNS: &str =
    "id, project_rowid, run_id, run_rowid, phase, step, datapoint_id, model_name,
    status, status_ts, error, traceback, error_ts, started_at, ended_at, min_ts,
    input_tokens, output_tokens, cost_usd, messages, tool_calls, items, metadata, metadata_ts";

fn load_or_create(conn: &Connection, trace_id: &str, first_ts: i64) -> Result<TraceRow> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM traces WHERE trace_id = ?1");
    let mut select = conn.prepare_cached(&sql)?;
    let row = select
        .query_row([trace_id], |r| {
            Ok(TraceRow {
                id: r.get(0)?,
                project_rowid: r.get(1)?,
                run_id: r.get(2)?,
                run_rowid: r.get(3)?,
                phase: r.get(4)?,
                step: r.get(5)?,
                datapoint_id: r.get(6)?,
                model_name: r.get(7)?,
                status: values::status(8, &r.get::<_, String>(8)?)?,
                status_ts: r.get(9)?,
                error: r.get(10)?,
                traceback: r.get(11)?,
                error_ts: r.get(12)?,
                started_at: r.get(13)?,
                ended_at: r.get(14)?,
                min_ts: r.get(15)?,
                input_tokens: r.get(16)?,
                output_tokens: r.get(17)?,
                cost_usd: r.get(18)?,
                messages: r.get(19)?,
                tool_calls: r.get(20)?,
                items: r.get(21)?,
                metadata: None,
                metadata_text: r.get(22)?,
                metadata_ts_text: r.get(23)?,
                new_meta_keys: Vec::new(),
                new_tools: Vec::new(),
                new_models: Vec::new(),
            })
        })
        .optional()?;
    if let Some(row) = row {
        return Ok(row);
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO traces(trace_id, sort_ts, min_ts, created_at) VALUES (?1, ?2, ?2, ?3)",
    )?;
    insert.execute(params![trace_id, first_ts, now_us()])?;
    Ok(TraceRow {
        id: conn.last_insert_rowid(),
        project_rowid: None,
        run_id: None,
        run_rowid: None,
        phase: None,
        step: None,
        datapoint_id: None,
        model_name: None,
        status: RolloutStatus::Running,
        status_ts: None,
        error: None,
        traceback: None,
        error_ts: None,
        started_at: None,
        ended_at: None,
        min_ts: first_ts,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        messages: 0,
        tool_calls: 0,
        items: 0,
        metadata: None,
        metadata_text: "{}".to_owned(),
        metadata_ts_text: "{}".to_owned(),
        new_meta_keys: Vec::new(),
        new_tools: Vec::new(),
        new_models: Vec::new(),
    })
}

/// Adds `value` unless present: the lists hold the few distinct names of one request.
fn push_new(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

fn min_opt(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn rank(status: RolloutStatus) -> usize {
    RolloutStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0)
}

impl TraceRow {
    /// A status candidate wins when it is newer; at the same ts a fixed rank decides, so that the
    /// outcome does not depend on arrival order.
    fn offer_status(&mut self, status: RolloutStatus, ts: i64) {
        let wins = match self.status_ts {
            None => true,
            Some(cur) => (ts, rank(status)) > (cur, rank(self.status)),
        };
        if wins {
            self.status = status;
            self.status_ts = Some(ts);
        }
    }

    fn offer_error(&mut self, message: &str, traceback: Option<&str>, ts: i64) {
        let wins = match self.error_ts {
            None => true,
            Some(cur) => (ts, message) > (cur, self.error.as_deref().unwrap_or("")),
        };
        if wins {
            self.error = Some(message.to_owned());
            self.traceback = traceback.map(str::to_owned);
            self.error_ts = Some(ts);
        }
    }

    fn merge_metadata(&mut self, patch: &JsonMap, ts: i64) -> Result<()> {
        if patch.is_empty() {
            return Ok(());
        }
        if self.metadata.is_none() {
            let meta: JsonMap = serde_json::from_str(&self.metadata_text)
                .map_err(|e| internal("reading trace metadata", e))?;
            let meta_ts: JsonMap = serde_json::from_str(&self.metadata_ts_text)
                .map_err(|e| internal("reading trace metadata", e))?;
            self.metadata = Some((meta, meta_ts));
        }
        let Some((meta, meta_ts)) = self.metadata.as_mut() else {
            return Ok(());
        };
        for (key, value) in patch {
            let cur = meta_ts.get(key).and_then(serde_json::Value::as_i64);
            // Newest ts wins; at the same ts the later arrival wins.
            if cur.is_none_or(|cur| ts >= cur) {
                meta.insert(key.clone(), value.clone());
                meta_ts.insert(key.clone(), ts.into());
                push_new(&mut self.new_meta_keys, key);
            }
        }
        Ok(())
    }

    fn open(&mut self, conn: &Connection, filing: &mut Filing, open: &TraceOpen) -> Result<()> {
        let run = match open.run_id.as_deref() {
            Some(run_id) => filing.run(conn, run_id)?,
            None => None,
        };
        if self.project_rowid.is_none() {
            self.project_rowid = match (run, open.project.as_deref(), open.run_id.as_deref()) {
                (Some(run), _, _) => Some(run.project_rowid),
                (None, Some(project), _) | (None, None, Some(project)) => {
                    Some(filing.project(conn, project)?)
                }
                (None, None, None) => None,
            };
        }
        if self.run_id.is_none() {
            self.run_id.clone_from(&open.run_id);
        }
        if self.run_rowid.is_none() {
            self.run_rowid = run.map(|r| r.id);
        }
        if self.phase.is_none() {
            self.phase = open
                .phase
                .or(run.map(|r| r.phase))
                .map(|p| p.as_str().to_owned());
        }
        self.step = self.step.or(open.step);
        if self.datapoint_id.is_none() {
            self.datapoint_id.clone_from(&open.datapoint_id);
        }
        if self.model_name.is_none() {
            self.model_name.clone_from(&open.model_name);
            if let Some(model) = &open.model_name {
                push_new(&mut self.new_models, model);
            }
        }
        self.started_at = min_opt(self.started_at, open.ts);
        self.offer_status(RolloutStatus::Running, open.ts);
        if let Some(meta) = &open.metadata {
            self.merge_metadata(meta, open.ts)?;
        }
        let mut turn = conn.prepare_cached(
            "INSERT INTO turns(trace_rowid, turn_id, started_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(trace_rowid, turn_id) DO UPDATE SET started_at =
               CASE WHEN started_at IS NULL OR excluded.started_at < started_at
                    THEN excluded.started_at ELSE started_at END",
        )?;
        turn.execute(params![
            self.id,
            open.turn_id.as_bytes().as_slice(),
            open.ts
        ])?;
        Ok(())
    }

    fn close(&mut self, conn: &Connection, close: &TraceClose) -> Result<()> {
        self.ended_at = Some(self.ended_at.map_or(close.ts, |e| e.max(close.ts)));
        if let Some(status) = close.status {
            self.offer_status(status, close.ts);
        }
        let mut turn = conn.prepare_cached(
            "INSERT INTO turns(trace_rowid, turn_id, ended_at, status) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(trace_rowid, turn_id) DO UPDATE SET
               status = CASE WHEN ended_at IS NULL OR excluded.ended_at >= ended_at
                             THEN COALESCE(excluded.status, status) ELSE status END,
               ended_at = CASE WHEN ended_at IS NULL OR excluded.ended_at > ended_at
                               THEN excluded.ended_at ELSE ended_at END",
        )?;
        turn.execute(params![
            self.id,
            close.turn_id.as_bytes().as_slice(),
            close.ts,
            close.status.map(|s| s.as_str())
        ])?;
        Ok(())
    }

    fn item(&mut self, conn: &Connection, stored: &StoredItem) -> Result<()> {
        self.items += 1;
        self.started_at = min_opt(self.started_at, stored.ts);
        match &stored.item {
            Item::Message(m) => {
                self.messages += 1;
                self.input_tokens += m.input_tokens.map_or(0, values::int);
                self.output_tokens += m.output_tokens.map_or(0, values::int);
                self.cost_usd += m.cost_usd.unwrap_or(0.0);
                if let Some(model) = &m.model {
                    push_new(&mut self.new_models, model);
                }
            }
            Item::ToolExecution(t) => {
                self.tool_calls += 1;
                push_new(&mut self.new_tools, &t.name);
            }
            Item::Event(_) => {}
            Item::Grade(g) => {
                let value =
                    serde_json::to_string(&g.value).map_err(|e| internal("encoding a grade", e))?;
                let mut insert = conn.prepare_cached(
                    "INSERT OR IGNORE INTO grades(trace_rowid, name, ts, item_id, value_num, value)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                insert.execute(params![
                    self.id,
                    g.name,
                    stored.ts,
                    stored.id.as_bytes().as_slice(),
                    g.value.as_f64(),
                    value
                ])?;
            }
        }
        Ok(())
    }

    fn save_side_tables(&self, conn: &Connection) -> Result<()> {
        if let Some((meta, _)) = &self.metadata {
            for key in &self.new_meta_keys {
                if let Some(value) = meta.get(key) {
                    side::set_meta(conn, self.id, key, value)?;
                }
            }
        }
        for name in &self.new_tools {
            side::add_tool(conn, self.id, name)?;
        }
        for model in &self.new_models {
            side::add_model(conn, self.id, model)?;
        }
        Ok(())
    }

    fn save(&self, conn: &Connection) -> Result<()> {
        self.save_side_tables(conn)?;
        let (metadata, metadata_ts) = match &self.metadata {
            Some((meta, ts)) => (
                Some(serde_json::to_string(meta).map_err(|e| internal("encoding metadata", e))?),
                Some(serde_json::to_string(ts).map_err(|e| internal("encoding metadata", e))?),
            ),
            None => (None, None),
        };
        let mut update = conn.prepare_cached(
            "UPDATE traces SET project_rowid = ?2, run_id = ?3, run_rowid = ?4, phase = ?5, step = ?6,
               datapoint_id = ?7, model_name = ?8, status = ?9, status_ts = ?10, error = ?11,
               traceback = ?12, error_ts = ?13, started_at = ?14, ended_at = ?15, min_ts = ?16,
               sort_ts = ?17, input_tokens = ?18, output_tokens = ?19, cost_usd = ?20, messages = ?21,
               tool_calls = ?22, items = ?23, metadata = COALESCE(?24, metadata),
               metadata_ts = COALESCE(?25, metadata_ts)
             WHERE id = ?1",
        )?;
        update.execute(params![
            self.id,
            self.project_rowid,
            self.run_id,
            self.run_rowid,
            self.phase,
            self.step,
            self.datapoint_id,
            self.model_name,
            self.status.as_str(),
            self.status_ts,
            self.error,
            self.traceback,
            self.error_ts,
            self.started_at,
            self.ended_at,
            self.min_ts,
            self.started_at.unwrap_or(self.min_ts),
            self.input_tokens,
            self.output_tokens,
            self.cost_usd,
            self.messages,
            self.tool_calls,
            self.items,
            metadata,
            metadata_ts,
        ])?;
        Ok(())
    }
}

fn apply_to_trace(
    conn: &Connection,
    filing: &mut Filing,
    trace_id: &str,
    records: Vec<Record>,
) -> Result<()> {
    let Some(first_ts) = records.iter().map(|r| r.ts()).min() else {
        return Ok(());
    };
    let mut row = load_or_create(conn, trace_id, first_ts)?;
    row.min_ts = row.min_ts.min(first_ts);
    let mut items = Vec::new();
    for record in records {
        match record {
            Record::TraceOpen(open) => row.open(conn, filing, &open)?,
            Record::TraceClose(close) => row.close(conn, &close)?,
            Record::Item(r) => {
                let stored = StoredItem {
                    id: r.id,
                    ts: r.ts,
                    turn_id: r.turn_id,
                    item: r.item,
                };
                row.item(conn, &stored)?;
                items.push(stored);
            }
            Record::Status(s) => row.offer_status(s.status, s.ts),
            Record::Error(e) => row.offer_error(&e.message, e.traceback.as_deref(), e.ts),
            Record::Metadata(m) => row.merge_metadata(&m.metadata, m.ts)?,
            Record::Tags(t) => {
                let mut insert = conn.prepare_cached(
                    "INSERT OR IGNORE INTO trace_tags(trace_rowid, tag) VALUES (?1, ?2)",
                )?;
                for tag in &t.tags {
                    insert.execute(params![row.id, tag])?;
                }
            }
        }
    }
    chunks::write(conn, row.id, &items)?;
    row.save(conn)
}

/// Grades an existing trace after the fact: a grade item with a server-made id and time, stored like
/// an ingested one (a chunk, the grades table, the item count).
pub(crate) fn add_grade(
    conn: &Connection,
    trace_id: &str,
    grade: caribou_model::api::AddGrade,
) -> Result<StoredItem> {
    if trace_rowid(conn, trace_id)?.is_none() {
        return Err(crate::StoreError::NotFound(format!(
            "trace {trace_id:?} not found"
        )));
    }
    let record = caribou_model::ItemRecord {
        id: caribou_model::new_record_id(),
        trace_id: trace_id.to_owned(),
        ts: now_us(),
        turn_id: None,
        item: Item::Grade(caribou_model::Grade {
            name: grade.name,
            value: grade.value,
            comment: grade.comment,
            grader: grade.grader,
            metadata: grade.metadata,
        }),
    };
    let stored = StoredItem {
        id: record.id,
        ts: record.ts,
        turn_id: None,
        item: record.item.clone(),
    };
    ingest(
        conn,
        Batch {
            records: vec![Record::Item(record)],
        },
    )?;
    Ok(stored)
}
