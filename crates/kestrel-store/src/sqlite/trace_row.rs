//! A trace row during ingest: read once per request (or made new), changed in memory by the
//! request's records, written back with one statement, then its side rows (turns, grades, tags,
//! search side tables) with one statement each per new fact.
//!
//! Order independence: every derived field is a function of the set of records, not of their
//! arrival order — status and error take the newest `ts` (ties broken by a fixed rank), metadata
//! keys keep the value of their newest `ts`, start is a min and end a max, totals are sums, tags
//! a set. One exception: the filing fields of a trace (project, run, phase, step, datapoint, model)
//! come from the first opening to *arrive*; later openings only fill fields still empty. An
//! opening that files the trace under another project than the one it has is refused
//! ([`StoreError::Conflict`]): two projects never share a trace.
//!
//! Bounds: what a request adds is kept in sets, so a request costs O(n log n) in its records
//! whatever their values; a trace holds at most `Limits::max_meta_keys` metadata keys and
//! `max_tags_per_trace` tags, `max_tools_per_trace` tool names and `max_models_per_trace` model
//! names ([`StoreError::Invalid`] past one: the request is refused whole). Sums saturate: token
//! totals at `i64::MAX`, the cost at the largest finite `f64`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caribou_model::api::StoredItem;
use caribou_model::validate::excerpt;
use caribou_model::{Item, JsonMap, Limits, RolloutStatus, TraceClose, TraceOpen, now_us};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::catalog::{RunRef, project_id, project_id_or_create, project_name, run_ref};
use super::schema::internal;
use super::{side, values};
use crate::{Result, StoreError};

/// Lookups made while filing traces, cached for the request (a batch of a thousand rollouts of one
/// run looks the run up once).
#[derive(Default)]
pub(crate) struct Filing {
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

    /// The project's row id if it exists (never creates it).
    fn existing_project(&mut self, conn: &Connection, name: &str) -> Result<Option<i64>> {
        if let Some(id) = self.projects.get(name) {
            return Ok(Some(*id));
        }
        let id = project_id(conn, name)?;
        if let Some(id) = id {
            self.projects.insert(name.to_owned(), id);
        }
        Ok(id)
    }
}

/// What one request learned about a turn: its earliest opening, its latest close.
#[derive(Debug, Default)]
struct TurnChange {
    started_at: Option<i64>,
    /// The latest close's ts and status (a close without status keeps the stored one).
    ended: Option<(i64, Option<RolloutStatus>)>,
}

/// A grade item to add to the `grades` table.
#[derive(Debug)]
struct GradeRow {
    name: String,
    ts: i64,
    item_id: Uuid,
    value_num: Option<f64>,
    value: String,
}

/// A trace row, read once per request, changed in memory, written back once.
#[derive(Debug)]
pub(crate) struct TraceRow {
    /// `None` until a new trace is inserted.
    pub id: Option<i64>,
    trace_id: String,
    project_rowid: Option<i64>,
    run_id: Option<String>,
    pub run_rowid: Option<i64>,
    phase: Option<String>,
    pub step: Option<i64>,
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
    /// The greatest record id stored for the trace (see migration 0005).
    pub max_record_id: Option<Uuid>,
    /// Loaded only when a record changes it: (metadata, ts of each key).
    metadata: Option<(JsonMap, JsonMap)>,
    metadata_text: String,
    metadata_ts_text: String,
    // What this request adds, written by `save` once the row has an id. Sets: a request may
    // repeat a value any number of times, and sorted order writes each side table's index in
    // order.
    new_meta_keys: BTreeSet<String>,
    new_tools: BTreeSet<String>,
    new_models: BTreeSet<String>,
    new_tags: BTreeSet<String>,
    turns: BTreeMap<Uuid, TurnChange>,
    grades: Vec<GradeRow>,
}

const ROW_COLUMNS: &str =
    "id, project_rowid, run_id, run_rowid, phase, step, datapoint_id, model_name,
    status, status_ts, error, traceback, error_ts, started_at, ended_at, min_ts,
    input_tokens, output_tokens, cost_usd, messages, tool_calls, items, metadata, metadata_ts,
    max_record_id";

/// Adds `value` unless present.
fn push_new(set: &mut BTreeSet<String>, value: &str) {
    if !set.contains(value) {
        set.insert(value.to_owned());
    }
}

/// `a + b`, finite: a cost never becomes infinite, however many items add to it.
fn finite_sum(a: f64, b: f64) -> f64 {
    (a + b).clamp(0.0, f64::MAX)
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
    /// The stored row of `trace_id`, if the trace exists.
    pub(crate) fn load(conn: &Connection, trace_id: &str) -> Result<Option<TraceRow>> {
        let sql = format!("SELECT {ROW_COLUMNS} FROM traces WHERE trace_id = ?1");
        let mut select = conn.prepare_cached(&sql)?;
        let row = select
            .query_row([trace_id], |r| {
                let mut row = TraceRow::new(trace_id, r.get(15)?);
                row.id = Some(r.get(0)?);
                row.project_rowid = r.get(1)?;
                row.run_id = r.get(2)?;
                row.run_rowid = r.get(3)?;
                row.phase = r.get(4)?;
                row.step = r.get(5)?;
                row.datapoint_id = r.get(6)?;
                row.model_name = r.get(7)?;
                row.status = values::status(8, &r.get::<_, String>(8)?)?;
                row.status_ts = r.get(9)?;
                row.error = r.get(10)?;
                row.traceback = r.get(11)?;
                row.error_ts = r.get(12)?;
                row.started_at = r.get(13)?;
                row.ended_at = r.get(14)?;
                row.input_tokens = r.get(16)?;
                row.output_tokens = r.get(17)?;
                row.cost_usd = r.get(18)?;
                row.messages = r.get(19)?;
                row.tool_calls = r.get(20)?;
                row.items = r.get(21)?;
                row.metadata_text = r.get(22)?;
                row.metadata_ts_text = r.get(23)?;
                row.max_record_id = match r.get_ref(24)?.as_blob_or_null()? {
                    Some(bytes) => Some(values::uuid(24, bytes)?),
                    None => None,
                };
                Ok(row)
            })
            .optional()?;
        Ok(row)
    }

    /// The time lists sort by (`traces.sort_ts`): the opening's or first item's time, else the
    /// earliest of any record.
    pub(crate) fn sort_ts(&self) -> i64 {
        self.started_at.unwrap_or(self.min_ts)
    }

    /// A trace not stored yet, first seen at `min_ts`.
    pub(crate) fn new(trace_id: &str, min_ts: i64) -> TraceRow {
        TraceRow {
            id: None,
            trace_id: trace_id.to_owned(),
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
            min_ts,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            messages: 0,
            tool_calls: 0,
            items: 0,
            max_record_id: None,
            metadata: None,
            metadata_text: "{}".to_owned(),
            metadata_ts_text: "{}".to_owned(),
            new_meta_keys: BTreeSet::new(),
            new_tools: BTreeSet::new(),
            new_models: BTreeSet::new(),
            new_tags: BTreeSet::new(),
            turns: BTreeMap::new(),
            grades: Vec::new(),
        }
    }

    pub(crate) fn saw_ts(&mut self, ts: i64) {
        self.min_ts = self.min_ts.min(ts);
    }

    /// A status candidate wins when it is newer; at the same ts a fixed rank decides, so that the
    /// outcome does not depend on arrival order.
    pub(crate) fn offer_status(&mut self, status: RolloutStatus, ts: i64) {
        let wins = match self.status_ts {
            None => true,
            Some(cur) => (ts, rank(status)) > (cur, rank(self.status)),
        };
        if wins {
            self.status = status;
            self.status_ts = Some(ts);
        }
    }

    pub(crate) fn offer_error(&mut self, message: &str, traceback: Option<&str>, ts: i64) {
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

    pub(crate) fn merge_metadata(&mut self, patch: &JsonMap, ts: i64) -> Result<()> {
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
        let (count, max) = (meta.len(), Limits::DEFAULT.max_meta_keys);
        if count > max {
            return Err(self.past_bound("metadata keys", count, max));
        }
        Ok(())
    }

    /// The refusal of a request that would take the trace past one of its bounds.
    fn past_bound(&self, what: &str, count: usize, max: usize) -> StoreError {
        StoreError::Invalid(format!(
            "trace {}: this batch would give it {count} distinct {what}; the limit is {max} per \
             trace. Nothing of the batch was stored",
            excerpt(&self.trace_id)
        ))
    }

    fn turn(&mut self, turn_id: Uuid) -> &mut TurnChange {
        self.turns.entry(turn_id).or_default()
    }

    /// Refuses an opening that files the trace under another project than the one it has.
    fn check_project(
        &self,
        conn: &Connection,
        filing: &mut Filing,
        run: Option<RunRef>,
        open: &TraceOpen,
    ) -> Result<()> {
        let Some(have) = self.project_rowid else {
            return Ok(());
        };
        let wanted = match (run, open.project.as_deref(), open.run_id.as_deref()) {
            (Some(run), _, _) => Some(run.project_rowid),
            (None, Some(name), _) | (None, None, Some(name)) => {
                filing.existing_project(conn, name)?
            }
            (None, None, None) => return Ok(()),
        };
        if wanted == Some(have) {
            return Ok(());
        }
        let owner = project_name(conn, have)?.unwrap_or_default();
        let other = match (run, open.project.as_deref(), open.run_id.as_deref()) {
            (Some(run), _, _) => project_name(conn, run.project_rowid)?.unwrap_or_default(),
            (None, Some(name), _) | (None, None, Some(name)) => name.to_owned(),
            (None, None, None) => String::new(),
        };
        Err(StoreError::Conflict(format!(
            "trace id {} belongs to project {}; this batch opens it in project {}. Trace ids are \
             unique across projects: give the trace another id (for example prefix it with the \
             project). Nothing of the batch was stored",
            excerpt(&self.trace_id),
            excerpt(&owner),
            excerpt(&other)
        )))
    }

    pub(crate) fn open(
        &mut self,
        conn: &Connection,
        filing: &mut Filing,
        open: &TraceOpen,
    ) -> Result<()> {
        let run = match open.run_id.as_deref() {
            Some(run_id) => filing.run(conn, run_id)?,
            None => None,
        };
        self.check_project(conn, filing, run, open)?;
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
        let turn = self.turn(open.turn_id);
        turn.started_at = min_opt(turn.started_at, open.ts);
        Ok(())
    }

    pub(crate) fn close(&mut self, close: &TraceClose) {
        self.ended_at = Some(self.ended_at.map_or(close.ts, |e| e.max(close.ts)));
        if let Some(status) = close.status {
            self.offer_status(status, close.ts);
        }
        let turn = self.turn(close.turn_id);
        // The latest close wins; at the same ts one with a status beats one without.
        let newer = match turn.ended {
            None => true,
            Some((ts, status)) => close.ts > ts || (close.ts == ts && status.is_none()),
        };
        if newer {
            turn.ended = Some((close.ts, close.status));
        }
    }

    pub(crate) fn tags(&mut self, tags: &[String]) {
        for tag in tags {
            push_new(&mut self.new_tags, tag);
        }
    }

    pub(crate) fn item(&mut self, stored: &StoredItem) -> Result<()> {
        self.items = self.items.saturating_add(1);
        self.started_at = min_opt(self.started_at, stored.ts);
        match &stored.item {
            Item::Message(m) => {
                self.messages = self.messages.saturating_add(1);
                let input = m.input_tokens.map_or(0, values::int);
                let output = m.output_tokens.map_or(0, values::int);
                self.input_tokens = self.input_tokens.saturating_add(input);
                self.output_tokens = self.output_tokens.saturating_add(output);
                self.cost_usd = finite_sum(self.cost_usd, m.cost_usd.unwrap_or(0.0));
                if let Some(model) = &m.model {
                    push_new(&mut self.new_models, model);
                }
            }
            Item::ToolExecution(t) => {
                self.tool_calls = self.tool_calls.saturating_add(1);
                push_new(&mut self.new_tools, &t.name);
            }
            Item::Event(_) => {}
            Item::Grade(g) => self.grades.push(GradeRow {
                name: g.name.clone(),
                ts: stored.ts,
                item_id: stored.id,
                value_num: g.value.as_f64(),
                value: serde_json::to_string(&g.value)
                    .map_err(|e| internal("encoding a grade", e))?,
            }),
        }
        Ok(())
    }

    /// Writes the row (an INSERT for a new trace, else an UPDATE), then what the request added to
    /// its side tables. Returns the row id.
    pub(crate) fn save(&mut self, conn: &Connection) -> Result<i64> {
        let (metadata, metadata_ts) = match &self.metadata {
            Some((meta, ts)) => (
                Some(serde_json::to_string(meta).map_err(|e| internal("encoding metadata", e))?),
                Some(serde_json::to_string(ts).map_err(|e| internal("encoding metadata", e))?),
            ),
            None => (None, None),
        };
        let sql = match self.id {
            // New trace: ?1 is NULL, so SQLite picks the rowid.
            None => {
                "INSERT INTO traces(id, project_rowid, run_id, run_rowid, phase, step, datapoint_id,
                   model_name, status, status_ts, error, traceback, error_ts, started_at, ended_at,
                   min_ts, sort_ts, input_tokens, output_tokens, cost_usd, messages, tool_calls, items,
                   metadata, metadata_ts, max_record_id, trace_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                   ?18, ?19, ?20, ?21, ?22, ?23, COALESCE(?24, '{}'), COALESCE(?25, '{}'), ?26, ?27,
                   ?28)"
            }
            Some(_) => {
                "UPDATE traces SET project_rowid = ?2, run_id = ?3, run_rowid = ?4, phase = ?5,
                   step = ?6, datapoint_id = ?7, model_name = ?8, status = ?9, status_ts = ?10,
                   error = ?11, traceback = ?12, error_ts = ?13, started_at = ?14, ended_at = ?15,
                   min_ts = ?16, sort_ts = ?17, input_tokens = ?18, output_tokens = ?19,
                   cost_usd = ?20, messages = ?21, tool_calls = ?22, items = ?23,
                   metadata = COALESCE(?24, metadata), metadata_ts = COALESCE(?25, metadata_ts),
                   max_record_id = ?26
                 WHERE id = ?1"
            }
        };
        let now = now_us();
        let values = params![
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
            self.sort_ts(),
            self.input_tokens,
            self.output_tokens,
            self.cost_usd,
            self.messages,
            self.tool_calls,
            self.items,
            metadata,
            metadata_ts,
            self.max_record_id.map(|id| id.into_bytes()),
            self.trace_id,
            now,
        ];
        // The UPDATE takes the first 26 (the trace id and creation time do not change).
        let bound = if self.id.is_some() {
            &values[..26]
        } else {
            values
        };
        conn.prepare_cached(sql)?.execute(bound)?;
        let new = self.id.is_none();
        let id = match self.id {
            Some(id) => id,
            None => conn.last_insert_rowid(),
        };
        self.id = Some(id);
        self.save_side(conn, id, new)?;
        Ok(id)
    }

    /// Refuses the request when the trace's rows of a side table (`table`, holding its `what`)
    /// would pass `max`: `added` of them were inserted by this request, into a table that held
    /// none for a `new` trace (no count needed then).
    fn check_side_bound(
        &self,
        conn: &Connection,
        id: i64,
        new: bool,
        (table, what, max): (&str, &str, usize),
        added: usize,
    ) -> Result<()> {
        if added == 0 {
            return Ok(());
        }
        let count = if new {
            added
        } else {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE trace_rowid = ?1");
            let n: i64 = conn.prepare_cached(&sql)?.query_row([id], |r| r.get(0))?;
            usize::try_from(n).unwrap_or(usize::MAX)
        };
        if count > max {
            return Err(self.past_bound(what, count, max));
        }
        Ok(())
    }

    fn save_side(&self, conn: &Connection, id: i64, new: bool) -> Result<()> {
        let limits = Limits::DEFAULT;
        let bounds = [
            (
                &self.new_tools,
                ("trace_tools", "tool names", limits.max_tools_per_trace),
            ),
            (
                &self.new_models,
                ("trace_models", "model names", limits.max_models_per_trace),
            ),
            (
                &self.new_tags,
                ("trace_tags", "tags", limits.max_tags_per_trace),
            ),
        ];
        // A request alone past a bound is refused before it writes a row.
        for (set, (_, what, max)) in bounds {
            if set.len() > max {
                return Err(self.past_bound(what, set.len(), max));
            }
        }
        if let Some((meta, _)) = &self.metadata {
            for key in &self.new_meta_keys {
                if let Some(value) = meta.get(key) {
                    side::set_meta(conn, id, key, value)?;
                }
            }
        }
        let mut added = 0;
        for name in &self.new_tools {
            added += usize::from(side::add_tool(conn, id, name)?);
        }
        self.check_side_bound(conn, id, new, bounds[0].1, added)?;
        let mut added = 0;
        for model in &self.new_models {
            added += usize::from(side::add_model(conn, id, model)?);
        }
        self.check_side_bound(conn, id, new, bounds[1].1, added)?;
        if !self.new_tags.is_empty() {
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO trace_tags(trace_rowid, tag) VALUES (?1, ?2)",
            )?;
            let mut added = 0;
            for tag in &self.new_tags {
                added += insert.execute(params![id, tag])?;
            }
            self.check_side_bound(conn, id, new, bounds[2].1, added)?;
        }
        for (turn_id, change) in &self.turns {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO turns(trace_rowid, turn_id, started_at, ended_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(trace_rowid, turn_id) DO UPDATE SET
                   started_at = CASE WHEN excluded.started_at IS NOT NULL
                                      AND (started_at IS NULL OR excluded.started_at < started_at)
                                     THEN excluded.started_at ELSE started_at END,
                   status = CASE WHEN excluded.ended_at IS NOT NULL
                                  AND (ended_at IS NULL OR excluded.ended_at >= ended_at)
                                 THEN COALESCE(excluded.status, status) ELSE status END,
                   ended_at = CASE WHEN excluded.ended_at IS NOT NULL
                                    AND (ended_at IS NULL OR excluded.ended_at > ended_at)
                                   THEN excluded.ended_at ELSE ended_at END",
            )?;
            let (ended_at, status) = match change.ended {
                Some((ts, status)) => (Some(ts), status.map(|s| s.as_str())),
                None => (None, None),
            };
            upsert.execute(params![
                id,
                turn_id.as_bytes().as_slice(),
                change.started_at,
                ended_at,
                status
            ])?;
        }
        for g in &self.grades {
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO grades(trace_rowid, name, ts, item_id, value_num, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            insert.execute(params![
                id,
                g.name,
                g.ts,
                g.item_id.as_bytes().as_slice(),
                g.value_num,
                g.value
            ])?;
        }
        Ok(())
    }
}
