//! Cases for ingest and the state of one trace.

use caribou_model::api::{AddGrade, StoredItem, TraceDetail, TraceFilter};
use caribou_model::{GradeValue, Item, Record, RolloutStatus, TraceOpen, new_record_id};
use serde_json::json;

use super::fixtures::*;
use crate::{Store, StoreError};

pub async fn ingest_is_idempotent(store: &dyn Store) {
    let records = simple_trace("idem", "p", T0, RolloutStatus::Completed);
    let n = records.len() as u64;
    let first = store.ingest(batch(records.clone())).await.expect("ingest");
    assert_eq!((first.accepted, first.duplicates), (n, 0));
    for _ in 0..2 {
        let again = store
            .ingest(batch(records.clone()))
            .await
            .expect("ingest again");
        assert_eq!(
            (again.accepted, again.duplicates),
            (0, n),
            "a retried batch is all duplicates"
        );
    }
    let t = trace(store, "idem").await;
    assert_eq!(
        (t.items.len(), t.summary.items, t.summary.messages),
        (2, 2, 1)
    );
    assert_eq!((t.summary.input_tokens, t.summary.turns), (10, 1));

    // A record repeated inside one batch is a duplicate too.
    let m = msg("idem", T0 + 5, 1, 1, 0.0);
    let r = store
        .ingest(batch(vec![m.clone(), m]))
        .await
        .expect("ingest");
    assert_eq!((r.accepted, r.duplicates), (1, 1));
    assert_eq!(trace(store, "idem").await.items.len(), 3);
}

/// Every kind of record for one trace, ts-ordered.
fn full_trace(trace: &str, turn: uuid::Uuid) -> Vec<Record> {
    vec![
        Record::TraceOpen(TraceOpen {
            model_name: Some("gpt-x".into()),
            datapoint_id: Some("dp1".into()),
            metadata: Some(as_map(json!({"user": "u1", "tier": "free"}))),
            ..open(trace, T0, turn, "order")
        }),
        msg(trace, T0 + 10, 5, 7, 0.5),
        meta(trace, T0 + 20, json!({"tier": "premium", "region": "eu"})),
        tool(trace, T0 + 30, "search"),
        tags(trace, T0 + 40, &["a", "b"]),
        error(trace, T0 + 50, "first failure", Some("tb1")),
        status(trace, T0 + 60, RolloutStatus::Truncated),
        event(trace, T0 + 70, "retrieval"),
        error(trace, T0 + 80, "second failure", Some("tb2")),
        meta(trace, T0 + 90, json!({"tier": "gold"})),
        grade(trace, T0 + 95, "reward", GradeValue::Number(0.5)),
        tags(trace, T0 + 96, &["b", "c"]),
        msg(trace, T0 + 100, 1, 2, 0.25),
        close(trace, T0 + 2 * SEC, turn, Some(RolloutStatus::Error)),
    ]
}

/// The parts of a trace that must not depend on arrival order (ids of records differ).
fn normalized(t: &TraceDetail) -> (serde_json::Value, Vec<(i64, Option<uuid::Uuid>, Item)>) {
    let mut summary = serde_json::to_value(&t.summary).expect("json");
    summary["trace_id"] = json!("*");
    let items = t
        .items
        .iter()
        .map(|i: &StoredItem| (i.ts, i.turn_id, i.item.clone()))
        .collect();
    (
        json!({"summary": summary, "traceback": t.traceback, "turns": t.turns}),
        items,
    )
}

pub async fn out_of_order_batches_give_the_same_trace(store: &dyn Store) {
    let turn = new_record_id();
    let in_order = full_trace("fwd", turn);
    for chunk in in_order.chunks(5) {
        ingest(store, chunk.to_vec()).await;
    }
    for record in full_trace("rev", turn).into_iter().rev() {
        ingest(store, vec![record]).await;
    }
    let (fwd, rev) = (trace(store, "fwd").await, trace(store, "rev").await);
    assert_eq!(normalized(&fwd), normalized(&rev));
    let s = &fwd.summary;
    assert_eq!(
        s.status,
        RolloutStatus::Error,
        "the close is the newest status"
    );
    assert_eq!(s.error.as_deref(), Some("second failure"));
    assert_eq!(fwd.traceback.as_deref(), Some("tb2"));
    assert_eq!(
        s.metadata,
        as_map(json!({"user": "u1", "tier": "gold", "region": "eu"}))
    );
    assert_eq!(s.tags, ["a", "b", "c"]);
    assert_eq!(
        (s.model_name.as_deref(), s.datapoint_id.as_deref()),
        (Some("gpt-x"), Some("dp1"))
    );
    let ts: Vec<i64> = fwd.items.iter().map(|i| i.ts).collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "items in logged order: {ts:?}"
    );
}

pub async fn item_before_opening_is_kept(store: &dyn Store) {
    ingest(store, vec![msg("early", T0 + 5, 3, 4, 0.1)]).await;
    let t = trace(store, "early").await;
    assert_eq!(
        (t.summary.project.as_deref(), t.summary.status),
        (None, RolloutStatus::Running)
    );
    assert_eq!(t.items.len(), 1);
    let unfiled = TraceFilter::default();
    assert_eq!(
        ids(&list_all(store, &unfiled).await),
        ["early"],
        "listed without a project filter"
    );
    store.get_or_create_project("late").await.expect("project");
    let in_late = TraceFilter {
        project: Some("late".into()),
        ..TraceFilter::default()
    };
    assert!(
        list_all(store, &in_late).await.is_empty(),
        "not listed under a project yet"
    );

    let turn = new_record_id();
    ingest(
        store,
        vec![Record::TraceOpen(open("early", T0, turn, "late"))],
    )
    .await;
    let t = trace(store, "early").await;
    assert_eq!(t.summary.project.as_deref(), Some("late"));
    assert_eq!((t.summary.items, t.summary.input_tokens), (1, 3));
    assert_eq!(t.summary.started_at, Some(T0));
    assert_eq!(ids(&list_all(store, &in_late).await), ["early"]);
}

pub async fn multi_turn_trace(store: &dyn Store) {
    let (turn1, turn2) = (new_record_id(), new_record_id());
    ingest(
        store,
        vec![
            Record::TraceOpen(open("chat", T0, turn1, "p")),
            msg("chat", T0 + 1, 1, 1, 0.0),
            close("chat", T0 + SEC, turn1, Some(RolloutStatus::Completed)),
        ],
    )
    .await;
    assert_eq!(
        trace(store, "chat").await.summary.status,
        RolloutStatus::Completed
    );
    ingest(
        store,
        vec![
            Record::TraceOpen(open("chat", T0 + 10 * SEC, turn2, "p")),
            msg("chat", T0 + 10 * SEC + 1, 2, 2, 0.0),
        ],
    )
    .await;
    let t = trace(store, "chat").await;
    assert_eq!(
        t.summary.status,
        RolloutStatus::Running,
        "a new turn is running"
    );
    ingest(
        store,
        vec![close(
            "chat",
            T0 + 11 * SEC,
            turn2,
            Some(RolloutStatus::Completed),
        )],
    )
    .await;
    let t = trace(store, "chat").await;
    assert_eq!((t.summary.turns, t.turns.len()), (2, 2));
    assert_eq!(
        t.turns.iter().map(|x| x.turn_id).collect::<Vec<_>>(),
        [turn1, turn2]
    );
    assert_eq!(t.turns[1].ended_at, Some(T0 + 11 * SEC));
    assert_eq!(
        t.items.iter().map(|i| i.ts).collect::<Vec<_>>(),
        [T0 + 1, T0 + 10 * SEC + 1]
    );
    assert_eq!(t.summary.status, RolloutStatus::Completed);
    assert_eq!(
        (t.summary.started_at, t.summary.ended_at),
        (Some(T0), Some(T0 + 11 * SEC))
    );
    assert_eq!(
        list_all(store, &TraceFilter::default()).await.len(),
        1,
        "still one trace"
    );
}

pub async fn totals_are_derived_from_items(store: &dyn Store) {
    let turn = new_record_id();
    ingest(
        store,
        vec![
            Record::TraceOpen(open("tot", T0, turn, "p")),
            msg("tot", T0 + 1, 100, 50, 0.125),
            tool("tot", T0 + 2, "a"),
            tool("tot", T0 + 3, "b"),
            event("tot", T0 + 4, "e"),
        ],
    )
    .await;
    ingest(
        store,
        vec![
            msg("tot", T0 + 5, 10, 5, 0.25),
            grade("tot", T0 + 6, "ok", GradeValue::Bool(true)),
        ],
    )
    .await;
    ingest(store, vec![close("tot", T0 + 1_500_000, turn, None)]).await;
    let s = trace(store, "tot").await.summary;
    assert_eq!((s.input_tokens, s.output_tokens), (110, 55));
    assert!(approx(s.cost_usd, 0.375), "cost {}", s.cost_usd);
    assert_eq!((s.messages, s.tool_calls, s.items), (2, 2, 6));
    assert_eq!(s.duration_ms, Some(1500.0));
    assert_eq!(
        s.status,
        RolloutStatus::Running,
        "a close without status sets none"
    );
}

pub async fn metadata_is_merged(store: &dyn Store) {
    let turn = new_record_id();
    let opening = TraceOpen {
        metadata: Some(as_map(json!({"a": 1, "b": {"x": 1}}))),
        ..open("meta", T0, turn, "p")
    };
    ingest(store, vec![Record::TraceOpen(opening)]).await;
    ingest(
        store,
        vec![meta("meta", T0 + 10, json!({"b": {"y": 2}, "c": 3}))],
    )
    .await;
    // Older than the value of `c` above: it arrives last but loses.
    ingest(store, vec![meta("meta", T0 + 5, json!({"c": 0, "d": 4}))]).await;
    let s = trace(store, "meta").await.summary;
    assert_eq!(
        s.metadata,
        as_map(json!({"a": 1, "b": {"y": 2}, "c": 3, "d": 4})),
        "top-level keys replace"
    );
}

pub async fn tags_are_a_set(store: &dyn Store) {
    ingest(
        store,
        simple_trace("tagged", "p", T0, RolloutStatus::Completed),
    )
    .await;
    ingest(
        store,
        vec![
            tags("tagged", T0 + 1, &["x", "y"]),
            tags("tagged", T0 + 2, &["y", "z"]),
        ],
    )
    .await;
    ingest(store, vec![tags("tagged", T0 + 3, &["x"])]).await;
    assert_eq!(trace(store, "tagged").await.summary.tags, ["x", "y", "z"]);
}

pub async fn status_newest_wins(store: &dyn Store) {
    ingest(store, vec![status("st", T0 + 5, RolloutStatus::Error)]).await;
    ingest(store, vec![status("st", T0 + 3, RolloutStatus::Completed)]).await;
    assert_eq!(
        trace(store, "st").await.summary.status,
        RolloutStatus::Error,
        "older status loses"
    );
    let turn = new_record_id();
    ingest(store, vec![Record::TraceOpen(open("st", T0, turn, "p"))]).await;
    assert_eq!(
        trace(store, "st").await.summary.status,
        RolloutStatus::Error,
        "an older opening loses"
    );
    ingest(
        store,
        vec![close("st", T0 + 10, turn, Some(RolloutStatus::Truncated))],
    )
    .await;
    assert_eq!(
        trace(store, "st").await.summary.status,
        RolloutStatus::Truncated
    );
    ingest(
        store,
        vec![Record::TraceOpen(open("fresh", T0, new_record_id(), "p"))],
    )
    .await;
    assert_eq!(
        trace(store, "fresh").await.summary.status,
        RolloutStatus::Running
    );
}

pub async fn error_and_traceback_newest_wins(store: &dyn Store) {
    ingest(store, simple_trace("err", "p", T0, RolloutStatus::Error)).await;
    ingest(store, vec![error("err", T0 + 1, "first", Some("tb1"))]).await;
    ingest(store, vec![error("err", T0 + 9, "second", Some("tb2"))]).await;
    ingest(store, vec![error("err", T0 + 5, "middle", None)]).await;
    let t = trace(store, "err").await;
    assert_eq!(
        (t.summary.error.as_deref(), t.traceback.as_deref()),
        (Some("second"), Some("tb2"))
    );
    assert_eq!(t.summary.status, RolloutStatus::Error);
}

pub async fn grade_after_the_fact(store: &dyn Store) {
    ingest(
        store,
        simple_trace("graded", "p", T0, RolloutStatus::Completed),
    )
    .await;
    ingest(
        store,
        vec![grade("graded", T0 + 3, "reward", GradeValue::Number(0.25))],
    )
    .await;
    let add = AddGrade {
        name: "reward".into(),
        value: GradeValue::Number(0.75),
        comment: Some("checked by hand".into()),
        grader: Some("alice".into()),
        metadata: None,
    };
    let stored = store.add_grade("graded", add).await.expect("grade");
    let Item::Grade(g) = &stored.item else {
        panic!("not a grade: {stored:?}")
    };
    assert_eq!(
        (g.name.as_str(), g.grader.as_deref()),
        ("reward", Some("alice"))
    );
    let t = trace(store, "graded").await;
    assert_eq!(t.items.last(), Some(&stored));
    assert_eq!(t.summary.items, 4);
    let reward = t
        .summary
        .grades
        .iter()
        .find(|g| g.name == "reward")
        .expect("reward");
    assert_eq!(
        reward.value,
        GradeValue::Number(0.75),
        "the latest grade of a name is shown"
    );
    let add = AddGrade {
        name: "x".into(),
        value: GradeValue::Bool(true),
        comment: None,
        grader: None,
        metadata: None,
    };
    let err = store
        .add_grade("no-such-trace", add)
        .await
        .expect_err("unknown trace");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// Item pages: in logged order across requests whose items overlap in time, each page what the
/// whole trace holds at that place, and the count of all items.
pub async fn trace_items_page_in_logged_order(store: &dyn Store) {
    let turn = new_record_id();
    ingest(store, vec![Record::TraceOpen(open("paged", T0, turn, "p"))]).await;
    // Three requests, interleaved in time (request k holds items at ts = 3i + k), one request
    // with no item of the trace, and one with an item before all others.
    for k in 0..3i64 {
        let records = (0..20i64)
            .map(|i| event("paged", T0 + 10 + 3 * i + k, &format!("e{}", 3 * i + k)))
            .collect();
        ingest(store, records).await;
    }
    ingest(store, vec![tags("paged", T0 + 500, &["x"])]).await;
    ingest(store, vec![event("paged", T0 + 1, "first")]).await;
    let all = trace(store, "paged").await.items;
    assert_eq!(all.len(), 61);
    for size in [1u64, 7, 60, 61, 500] {
        let mut got: Vec<StoredItem> = Vec::new();
        let mut offset = 0;
        loop {
            let page = store
                .get_trace_items("paged", offset, size)
                .await
                .expect("items")
                .expect("the trace exists");
            assert_eq!((page.total, page.offset), (61, offset));
            assert_eq!(page.trace_id, "paged");
            if page.items.is_empty() {
                break;
            }
            assert!(page.items.len() as u64 <= size);
            offset += page.items.len() as u64;
            got.extend(page.items);
        }
        assert_eq!(got, all, "pages of {size}");
    }
    let middle = store
        .get_trace_items("paged", 30, 5)
        .await
        .expect("items")
        .expect("the trace exists");
    assert_eq!(middle.items, all[30..35]);
    let past = store
        .get_trace_items("paged", 1_000, 10)
        .await
        .expect("items")
        .expect("the trace exists");
    assert!(past.items.is_empty());
    assert_eq!(
        store
            .get_trace_items("no-such-trace", 0, 10)
            .await
            .expect("items"),
        None
    );
}
