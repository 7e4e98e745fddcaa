//! Cases for what a buggy or hostile client sends: a trace id of another project, a record id
//! reused for other content, traces past their bounds, figures at the limits of their types. A
//! refused batch must leave what is stored as it was.

use caribou_model::api::{CreateRun, TraceFilter, TraceSummary};
use caribou_model::{Item, Limits, Message, Phase, Record, RolloutStatus, new_record_id};
use serde_json::json;

use super::fixtures::*;
use crate::{StatsScope, Store, StoreError, TimeseriesRequest};

async fn summary(store: &dyn Store, trace_id: &str) -> TraceSummary {
    trace(store, trace_id).await.summary
}

pub async fn trace_ids_never_join_two_projects(store: &dyn Store) {
    let first = new_record_id();
    ingest(
        store,
        vec![
            Record::TraceOpen(open("trc_session", T0, first, "proj-a")),
            msg("trc_session", T0 + 1, 1, 1, 0.0),
        ],
    )
    .await;
    let second = new_record_id();
    let e = store
        .ingest(batch(vec![
            Record::TraceOpen(open("trc_session", T0 + SEC, second, "proj-b")),
            msg("trc_session", T0 + SEC + 1, 7, 7, 0.0),
            tags("trc_session", T0 + SEC + 2, &["from-b"]),
        ]))
        .await
        .expect_err("a second project opening the same trace id");
    match &e {
        StoreError::Conflict(m) => {
            assert!(
                m.contains("proj-a") && m.contains("proj-b"),
                "the message names both projects: {m}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let t = trace(store, "trc_session").await;
    assert_eq!(t.summary.project.as_deref(), Some("proj-a"));
    assert_eq!(
        (t.items.len(), t.summary.input_tokens, t.summary.tags.len()),
        (1, 1, 0),
        "nothing of the refused batch is stored"
    );
    assert!(
        store.get_project("proj-b").await.expect("get").is_none(),
        "the refused batch created no project"
    );
    // A turn of the same project is fine, as before.
    ingest(
        store,
        vec![Record::TraceOpen(open(
            "trc_session",
            T0 + 2 * SEC,
            new_record_id(),
            "proj-a",
        ))],
    )
    .await;
    assert_eq!(trace(store, "trc_session").await.summary.turns, 2);
}

pub async fn a_record_id_resent_with_other_content_is_a_conflict(store: &dyn Store) {
    let first = msg("reuse", T0, 3, 4, 0.5);
    ingest(
        store,
        vec![
            Record::TraceOpen(open("reuse", T0 - 1, new_record_id(), "p")),
            first.clone(),
        ],
    )
    .await;
    let mut changed = msg("reuse", T0, 300, 4, 0.5);
    let mut other_kind = tags("reuse", T0, &["x"]);
    if let (Record::Item(c), Record::Tags(k)) = (&mut changed, &mut other_kind) {
        c.id = first.id();
        k.id = first.id();
    }
    for resent in [changed, other_kind] {
        let e = store
            .ingest(batch(vec![msg("reuse", T0 + 9, 1, 1, 0.0), resent]))
            .await
            .expect_err("the same id with other content");
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains(&first.id().to_string()), "{e}");
    }
    // The same id twice in one batch, with different content.
    let a = msg("reuse", T0 + 20, 1, 1, 0.0);
    let mut b = msg("reuse", T0 + 21, 2, 2, 0.0);
    if let Record::Item(r) = &mut b {
        r.id = a.id();
    }
    let e = store
        .ingest(batch(vec![a, b]))
        .await
        .expect_err("in one batch");
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let t = summary(store, "reuse").await;
    assert_eq!(
        (t.items, t.input_tokens, t.tags.len()),
        (1, 3, 0),
        "the first copy is kept, nothing of the refused batches is stored"
    );
    // An exact retry is still a duplicate, not a conflict.
    let r = store.ingest(batch(vec![first])).await.expect("a retry");
    assert_eq!((r.accepted, r.duplicates), (0, 1));
}

pub async fn traces_are_bounded(store: &dyn Store) {
    let limits = Limits::DEFAULT;
    ingest(
        store,
        vec![Record::TraceOpen(open("bounded", T0, new_record_id(), "p"))],
    )
    .await;
    // Tags: up to the bound in several batches, then one more is refused.
    let all: Vec<String> = (0..limits.max_tags_per_trace)
        .map(|i| format!("t{i}"))
        .collect();
    for (k, chunk) in all.chunks(limits.max_tags_per_record).enumerate() {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        ingest(store, vec![tags("bounded", T0 + 1 + k as i64, &chunk)]).await;
    }
    ingest(store, vec![tags("bounded", T0 + 100, &["t0", "t1"])]).await;
    let e = store
        .ingest(batch(vec![
            msg("bounded", T0 + 101, 1, 1, 0.0),
            tags("bounded", T0 + 102, &["one-too-many"]),
        ]))
        .await
        .expect_err("a tag past the bound");
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("tags"), "{e}");
    // Tools and models: one request past the bound is refused before it writes.
    let tools: Vec<Record> = (0..=limits.max_tools_per_trace)
        .map(|i| tool("bounded", T0 + 200 + i as i64, &format!("tool{i}")))
        .collect();
    let e = store.ingest(batch(tools)).await.expect_err("tools");
    assert!(e.to_string().contains("tool names"), "{e}");
    let models: Vec<Record> = (0..=limits.max_models_per_trace)
        .map(|i| {
            item(
                "bounded",
                T0 + 5000 + i as i64,
                Item::Message(Message {
                    role: "assistant".into(),
                    model: Some(format!("model-{i}")),
                    ..Message::default()
                }),
            )
        })
        .collect();
    let e = store.ingest(batch(models)).await.expect_err("models");
    assert!(e.to_string().contains("model names"), "{e}");
    // Metadata keys: across records.
    let half = limits.max_meta_keys / 2 + 1;
    let keys = |from: usize| -> serde_json::Value {
        (from..from + half)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    ingest(store, vec![meta("bounded", T0 + 9000, keys(0))]).await;
    let e = store
        .ingest(batch(vec![meta("bounded", T0 + 9001, keys(half))]))
        .await
        .expect_err("metadata keys past the bound");
    assert!(e.to_string().contains("metadata keys"), "{e}");
    let t = summary(store, "bounded").await;
    assert_eq!(
        (t.tags.len(), t.items, t.metadata.len()),
        (limits.max_tags_per_trace, 0, half),
        "refused batches left the trace as it was"
    );
    let hits = list_all(
        store,
        &TraceFilter {
            q: Some("meta.k1:1 tag:t999".into()),
            ..TraceFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&hits), ["bounded"]);
}

pub async fn sums_saturate_and_stay_finite(store: &dyn Store) {
    // Figures far past what validation lets in, as a store written by an older Kestrel may hold.
    let big = |trace: &str, ts: i64| {
        item(
            trace,
            ts,
            Item::Message(Message {
                role: "assistant".into(),
                input_tokens: Some(i64::MAX as u64),
                output_tokens: Some(u64::MAX),
                cost_usd: Some(1e308),
                ..Message::default()
            }),
        )
    };
    let run = store
        .create_run(CreateRun {
            project: "huge".into(),
            phase: Phase::Train,
            name: None,
            config: None,
        })
        .await
        .expect("run");
    for t in ["huge-1", "huge-2"] {
        let turn = new_record_id();
        let mut opening = open(t, T0, turn, "huge");
        opening.run_id = Some(run.id.clone());
        opening.step = Some(0);
        ingest(
            store,
            vec![
                Record::TraceOpen(opening),
                big(t, T0 + 1),
                big(t, T0 + 2),
                close(t, T0 + SEC, turn, Some(RolloutStatus::Completed)),
            ],
        )
        .await;
    }
    let s = summary(store, "huge-1").await;
    assert_eq!(s.input_tokens, i64::MAX as u64, "saturated, not wrapped");
    assert!(
        s.cost_usd.is_finite() && s.cost_usd > 1e307,
        "{}",
        s.cost_usd
    );
    let scope = StatsScope {
        project: Some("huge".into()),
        run_id: None,
    };
    let stats = store
        .stats(&scope, None)
        .await
        .expect("stats over huge sums");
    assert_eq!(stats.traces, 2);
    assert!(
        stats.input_tokens >= i64::MAX as u64,
        "{}",
        stats.input_tokens
    );
    assert!(stats.cost_usd.is_finite(), "{}", stats.cost_usd);
    let series = store
        .timeseries(
            &TimeseriesRequest {
                project: "huge".into(),
                since_us: T0 - 3600 * SEC,
                until_us: T0 + 3600 * SEC,
                bucket_us: 3600 * SEC,
            },
            None,
        )
        .await
        .expect("timeseries over huge sums");
    let total: u64 = series.buckets.iter().map(|b| b.stats.traces).sum();
    assert_eq!(total, 2);
    assert!(series.buckets.iter().all(|b| b.stats.cost_usd.is_finite()));
    for sort in [
        caribou_model::api::TraceSort::CostDesc,
        caribou_model::api::TraceSort::TokensDesc,
    ] {
        let all = list_all(
            store,
            &TraceFilter {
                project: Some("huge".into()),
                sort,
                limit: Some(1),
                ..TraceFilter::default()
            },
        )
        .await;
        assert_eq!(all.len(), 2, "{sort:?}");
        assert!(all.iter().all(|t| t.cost_usd.is_finite()));
    }
    for steps in [
        store.list_run_steps(&run.id).await,
        store
            .list_run_steps_matching(
                &run.id,
                &kestrel_query::parse("status:completed").expect("q"),
            )
            .await,
    ] {
        let steps = steps.expect("run steps over huge sums");
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].rollouts, 2);
        assert!(steps[0].input_tokens >= i64::MAX as u64);
        assert!(steps[0].cost_usd.is_finite());
    }
}
