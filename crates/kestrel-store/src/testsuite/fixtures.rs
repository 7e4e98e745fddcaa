//! Record builders and small helpers for the suite's cases.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use caribou_model::api::{TraceDetail, TraceFilter, TraceSummary};
use caribou_model::{
    Batch, ErrorRecord, Event, Grade, GradeValue, Item, ItemRecord, JsonMap, Message,
    MetadataRecord, Record, RolloutStatus, StatusRecord, TagsRecord, ToolExecution, TraceClose,
    TraceOpen, new_record_id,
};
use uuid::Uuid;

use crate::Store;

/// 2026-01-01T00:00:00Z in microseconds: a valid, fixed base time.
pub const T0: i64 = 1_767_225_600_000_000;
/// One second in microseconds.
pub const SEC: i64 = 1_000_000;

pub fn batch(records: Vec<Record>) -> Batch {
    Batch { records }
}

/// An opening filed under `project` (set `run_id` etc. with struct update syntax).
pub fn open(trace: &str, ts: i64, turn: Uuid, project: &str) -> TraceOpen {
    TraceOpen {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        turn_id: turn,
        project: Some(project.to_owned()),
        run_id: None,
        phase: None,
        step: None,
        datapoint_id: None,
        model_name: None,
        metadata: None,
    }
}

pub fn close(trace: &str, ts: i64, turn: Uuid, status: Option<RolloutStatus>) -> Record {
    Record::TraceClose(TraceClose {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        turn_id: turn,
        status,
    })
}

pub fn item(trace: &str, ts: i64, item: Item) -> Record {
    Record::Item(ItemRecord {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        turn_id: None,
        item,
    })
}

/// An assistant message with usage figures.
pub fn msg(trace: &str, ts: i64, input_tokens: u64, output_tokens: u64, cost: f64) -> Record {
    item(
        trace,
        ts,
        Item::Message(Message {
            role: "assistant".to_owned(),
            content: Some(format!("answer at {ts}").into()),
            input_tokens: Some(input_tokens),
            output_tokens: Some(output_tokens),
            cost_usd: Some(cost),
            ..Message::default()
        }),
    )
}

pub fn tool(trace: &str, ts: i64, name: &str) -> Record {
    item(
        trace,
        ts,
        Item::ToolExecution(ToolExecution {
            name: name.to_owned(),
            arguments: Some(serde_json::json!({"q": ts})),
            ..ToolExecution::default()
        }),
    )
}

pub fn event(trace: &str, ts: i64, name: &str) -> Record {
    item(
        trace,
        ts,
        Item::Event(Event {
            name: name.to_owned(),
            data: None,
            level: "info".to_owned(),
        }),
    )
}

pub fn grade(trace: &str, ts: i64, name: &str, value: GradeValue) -> Record {
    item(
        trace,
        ts,
        Item::Grade(Grade {
            name: name.to_owned(),
            value,
            comment: None,
            grader: None,
            metadata: None,
        }),
    )
}

pub fn status(trace: &str, ts: i64, status: RolloutStatus) -> Record {
    Record::Status(StatusRecord {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        status,
    })
}

pub fn error(trace: &str, ts: i64, message: &str, traceback: Option<&str>) -> Record {
    Record::Error(ErrorRecord {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        message: message.to_owned(),
        traceback: traceback.map(str::to_owned),
    })
}

pub fn meta(trace: &str, ts: i64, value: serde_json::Value) -> Record {
    Record::Metadata(MetadataRecord {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        metadata: as_map(value),
    })
}

pub fn tags(trace: &str, ts: i64, tags: &[&str]) -> Record {
    Record::Tags(TagsRecord {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    })
}

pub fn as_map(value: serde_json::Value) -> JsonMap {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not a JSON object: {other}"),
    }
}

/// A complete one-turn trace: opening, messages, a tool call, a close with `status`.
pub fn simple_trace(trace: &str, project: &str, ts: i64, status: RolloutStatus) -> Vec<Record> {
    let turn = new_record_id();
    vec![
        Record::TraceOpen(open(trace, ts, turn, project)),
        msg(trace, ts + 1, 10, 20, 0.01),
        tool(trace, ts + 2, "search"),
        close(trace, ts + SEC, turn, Some(status)),
    ]
}

pub async fn ingest(store: &dyn Store, records: Vec<Record>) {
    let n = records.len() as u64;
    let r = store.ingest(batch(records)).await.expect("ingest");
    assert_eq!(
        r.accepted + r.duplicates,
        n,
        "every record is accepted or a duplicate"
    );
}

/// One trace, read both ways: [`Store::get_trace`] and, checked to be its exact JSON,
/// [`Store::get_trace_json`].
pub async fn trace(store: &dyn Store, trace_id: &str) -> TraceDetail {
    let detail = store
        .get_trace(trace_id)
        .await
        .expect("get_trace")
        .unwrap_or_else(|| panic!("no trace {trace_id}"));
    let json = store
        .get_trace_json(trace_id)
        .await
        .expect("get_trace_json")
        .unwrap_or_else(|| panic!("no JSON for trace {trace_id}"));
    let mut expected = Vec::new();
    caribou_model::json::write(&mut expected, &detail).expect("encode");
    assert!(
        json == expected,
        "get_trace_json differs from get_trace's JSON:\n{}\n{}",
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&expected)
    );
    detail
}

/// All traces matching `filter`, walking every page.
pub async fn list_all(store: &dyn Store, filter: &TraceFilter) -> Vec<TraceSummary> {
    let mut out = Vec::new();
    let mut filter = filter.clone();
    for _ in 0..10_000 {
        let page = store.list_traces(&filter).await.expect("list_traces");
        out.extend(page.data);
        match page.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => return out,
        }
    }
    panic!("pagination does not end");
}

pub fn ids(traces: &[TraceSummary]) -> Vec<String> {
    traces.iter().map(|t| t.trace_id.clone()).collect()
}

pub fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls all futures concurrently on the current task (no `'static` bound, unlike spawning).
pub async fn join_all<'a, T>(futures: Vec<BoxFut<'a, T>>) -> Vec<T> {
    let mut pending: Vec<Option<BoxFut<'a, T>>> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => all = false,
                }
            }
        }
        if all { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    done.into_iter().flatten().collect()
}
