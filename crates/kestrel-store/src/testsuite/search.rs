//! Cases for search (`q`), the grade sorts, the aggregates and the full-text index's lag.
//!
//! A deterministic generator makes 40 traces whose attributes vary with their index; every query
//! is checked against the set computed from the generator's own data, never from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use caribou_model::api::{CreateRun, TraceFilter, TraceSort};
use caribou_model::new_record_id;
use caribou_model::{
    GradeValue, Item, Message, Phase, Record, RolloutStatus, ToolExecution, TraceOpen,
};
use serde_json::json;

use super::fixtures::*;
use crate::{StatsScope, Store, StoreError, TimeseriesRequest};

const N: usize = 40;
const MS: i64 = 1_000;

/// What the generator made of trace `i`.
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    project: &'static str,
    run: bool,
    step: Option<i64>,
    status: RolloutStatus,
    tags: Vec<&'static str>,
    customer: String,
    latency: i64,
    model: &'static str,
    msg_model: Option<&'static str>,
    tools: Vec<&'static str>,
    error: Option<&'static str>,
    /// The latest reward, if any.
    reward: Option<f64>,
    quality: &'static str,
    cost: f64,
    tokens: (u64, u64),
    start: i64,
    /// None while running.
    duration_us: Option<i64>,
    city: usize,
    timed_out_text: bool,
}

fn spec(i: usize) -> Spec {
    let statuses = [
        RolloutStatus::Completed,
        RolloutStatus::Error,
        RolloutStatus::Truncated,
        RolloutStatus::Cancelled,
    ];
    let running = i % 9 == 8;
    let status = if running {
        RolloutStatus::Running
    } else {
        statuses[i % 4]
    };
    let mut tags = Vec::new();
    if i.is_multiple_of(3) {
        tags.push("premium_tier");
    }
    if i.is_multiple_of(5) {
        tags.push("internal");
    }
    let mut tools = Vec::new();
    if i % 3 == 1 {
        tools.push("search_web");
    }
    if i % 4 == 2 {
        tools.push("calculator");
    }
    let ii = i as i64;
    Spec {
        id: format!("s{i:02}"),
        project: if i.is_multiple_of(2) { "sa" } else { "sb" },
        run: i.is_multiple_of(4),
        step: (i.is_multiple_of(4)).then_some(ii % 5),
        status,
        tags,
        customer: format!("cust_{}", i % 4),
        latency: (ii * 37) % 900,
        model: if i.is_multiple_of(2) {
            "gpt-4o"
        } else {
            "claude-3"
        },
        msg_model: (i.is_multiple_of(7)).then_some("gpt-4o"),
        tools,
        error: (status == RolloutStatus::Error).then_some(if i % 8 == 1 {
            "request Timed Out after 30s"
        } else {
            "bad input"
        }),
        reward: (i % 6 != 5).then(|| {
            if i.is_multiple_of(10) {
                0.0
            } else {
                (i % 10) as f64 / 10.0
            }
        }),
        quality: if i.is_multiple_of(2) { "good" } else { "bad" },
        cost: ii as f64 * 0.001,
        tokens: (i as u64 * 50, i as u64 * 20),
        start: T0 + ii * SEC,
        duration_us: (!running).then_some((ii % 7 + 1) * 500 * MS),
        city: i % 5,
        timed_out_text: i % 11 == 3,
    }
}

/// Ingests the generated traces (each in two batches: the second holds the tool executions and
/// the close); returns the specs and the run id.
async fn seed(store: &dyn Store) -> (Vec<Spec>, String) {
    let run = store
        .create_run(CreateRun {
            project: "sa".into(),
            phase: Phase::Train,
            name: None,
            config: None,
        })
        .await
        .expect("run");
    let specs: Vec<Spec> = (0..N).map(spec).collect();
    for s in &specs {
        let t = s.start;
        let turn = new_record_id();
        let opening = TraceOpen {
            run_id: Some(if s.run {
                run.id.clone()
            } else {
                s.project.to_owned()
            }),
            project: None,
            phase: Some(if s.run { Phase::Train } else { Phase::Prod }),
            step: s.step,
            model_name: Some(s.model.to_owned()),
            metadata: Some(as_map(json!({"customer_id": s.customer}))),
            ..open(&s.id, t, turn, "unused")
        };
        let latency = if s.latency % 2 == 0 {
            json!(s.latency)
        } else {
            json!(s.latency.to_string())
        };
        let content = if s.timed_out_text {
            "the weather is sunny but the request timed out".to_owned()
        } else {
            "the weather is sunny".to_owned()
        };
        let mut first = vec![
            Record::TraceOpen(opening),
            meta(&s.id, t + 1, json!({"latency_ms": latency})),
            item(
                &s.id,
                t + 2,
                Item::Message(Message {
                    role: "assistant".into(),
                    content: Some(json!([{"type": "text", "text": content}])),
                    model: s.msg_model.map(str::to_owned),
                    input_tokens: Some(s.tokens.0),
                    output_tokens: Some(s.tokens.1),
                    cost_usd: Some(s.cost),
                    ..Message::default()
                }),
            ),
            grade(&s.id, t + 3, "quality", GradeValue::Label(s.quality.into())),
        ];
        if let Some(r) = s.reward {
            if r == 0.0 {
                // Graded twice: the later grade is the one that counts.
                first.push(grade(&s.id, t + 4, "reward", GradeValue::Number(0.9)));
                first.push(grade(&s.id, t + 6, "reward", GradeValue::Number(0.0)));
            } else {
                first.push(grade(&s.id, t + 4, "reward", GradeValue::Number(r)));
            }
        }
        if !s.tags.is_empty() {
            first.push(tags(&s.id, t + 5, &s.tags));
        }
        ingest(store, first).await;
        let mut second = Vec::new();
        for (k, name) in s.tools.iter().enumerate() {
            second.push(item(
                &s.id,
                t + 10 + k as i64,
                Item::ToolExecution(ToolExecution {
                    name: (*name).to_owned(),
                    arguments: Some(json!({"q": "forecast"})),
                    result: Some(json!(format!("forecast for city{}", s.city))),
                    ..ToolExecution::default()
                }),
            ));
        }
        if let Some(e) = s.error {
            second.push(error(&s.id, t + 20, e, None));
        }
        if let Some(d) = s.duration_us {
            second.push(close(&s.id, t + d, turn, Some(s.status)));
        }
        if !second.is_empty() {
            ingest(store, second).await;
        }
    }
    (specs, run.id)
}

/// Waits (bounded) until the full-text index has caught up with everything acknowledged.
pub async fn wait_for_index(store: &dyn Store) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = store.search_index_status().await.expect("index status");
        if status.unindexed_chunks == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the index did not catch up in 20 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn search(store: &dyn Store, q: &str) -> BTreeSet<String> {
    let found = list_all(
        store,
        &TraceFilter {
            q: Some(q.to_owned()),
            limit: Some(7),
            ..TraceFilter::default()
        },
    )
    .await;
    let set: BTreeSet<String> = ids(&found).into_iter().collect();
    assert_eq!(
        set.len(),
        found.len(),
        "no duplicates across pages for {q:?}"
    );
    set
}

fn want(specs: &[Spec], f: impl Fn(&Spec) -> bool) -> BTreeSet<String> {
    specs
        .iter()
        .filter(|s| f(s))
        .map(|s| s.id.clone())
        .collect()
}

pub async fn search_matches_the_expected_traces(store: &dyn Store) {
    let (specs, run_id) = seed(store).await;
    wait_for_index(store).await;
    let dur = |s: &Spec| s.duration_us.unwrap_or(-1);
    let tokens = |s: &Spec| s.tokens.0 + s.tokens.1;
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        ("".into(), want(&specs, |_| true)),
        (
            "status:error".into(),
            want(&specs, |s| s.status == RolloutStatus::Error),
        ),
        (
            "status:running".into(),
            want(&specs, |s| s.status == RolloutStatus::Running),
        ),
        (
            "tag:premium_tier".into(),
            want(&specs, |s| s.tags.contains(&"premium_tier")),
        ),
        (
            "-tag:internal".into(),
            want(&specs, |s| !s.tags.contains(&"internal")),
        ),
        (
            "meta.customer_id:cust_1".into(),
            want(&specs, |s| s.customer == "cust_1"),
        ),
        (
            "meta.latency_ms>400".into(),
            want(&specs, |s| s.latency > 400),
        ),
        (
            "meta.latency_ms:37".into(),
            want(&specs, |s| s.latency == 37),
        ),
        (
            "meta.latency_ms:100..300".into(),
            want(&specs, |s| (100..=300).contains(&s.latency)),
        ),
        (
            "model:gpt-4o".into(),
            want(&specs, |s| {
                s.model == "gpt-4o" || s.msg_model == Some("gpt-4o")
            }),
        ),
        (
            "model:claude-3".into(),
            want(&specs, |s| s.model == "claude-3"),
        ),
        ("phase:prod".into(), want(&specs, |s| !s.run)),
        ("project:sb".into(), want(&specs, |s| s.project == "sb")),
        (format!("run:{run_id}"), want(&specs, |s| s.run)),
        (
            "step:1..3".into(),
            want(&specs, |s| s.step.is_some_and(|x| (1..=3).contains(&x))),
        ),
        (
            "grade.reward>=0.5".into(),
            want(&specs, |s| s.reward.is_some_and(|r| r >= 0.5)),
        ),
        (
            "grade.reward:0".into(),
            want(&specs, |s| s.reward == Some(0.0)),
        ),
        (
            "grade.quality:good".into(),
            want(&specs, |s| s.quality == "good"),
        ),
        ("cost>0.02".into(), want(&specs, |s| s.cost > 0.02)),
        ("tokens>1000".into(), want(&specs, |s| tokens(s) > 1000)),
        ("duration>2s".into(), want(&specs, |s| dur(s) > 2_000_000)),
        ("-duration>2s".into(), want(&specs, |s| dur(s) <= 2_000_000)),
        (
            "tool:search_web".into(),
            want(&specs, |s| s.tools.contains(&"search_web")),
        ),
        (
            "error:\"timed out\"".into(),
            want(&specs, |s| s.error.is_some_and(|e| e.contains("Timed Out"))),
        ),
        (
            "after:2026-01-01T00:00:20Z".into(),
            want(&specs, |s| s.start >= T0 + 20 * SEC),
        ),
        (
            "before:2026-01-01T00:00:10Z".into(),
            want(&specs, |s| s.start < T0 + 10 * SEC),
        ),
        (
            "(tag:premium_tier OR tool:search_web) -status:error".into(),
            want(&specs, |s| {
                (s.tags.contains(&"premium_tier") || s.tools.contains(&"search_web"))
                    && s.status != RolloutStatus::Error
            }),
        ),
        ("sunny".into(), want(&specs, |_| true)),
        // Words from two chunks of the same trace: both must appear, not in the same chunk.
        (
            "sunny city3".into(),
            want(&specs, |s| s.city == 3 && !s.tools.is_empty()),
        ),
        ("\"timed out\"".into(), want(&specs, |s| s.timed_out_text)),
        ("\"out timed\"".into(), BTreeSet::new()),
        (
            "forecast -tool:calculator".into(),
            want(&specs, |s| s.tools == ["search_web"]),
        ),
        ("\"!!\"".into(), want(&specs, |_| true)),
    ];
    for (q, expected) in cases {
        assert_eq!(search(store, &q).await, expected, "query {q:?}");
    }
    // The query combines with the filter's own fields.
    let both = list_all(
        store,
        &TraceFilter {
            project: Some("sa".into()),
            q: Some("tag:premium_tier".into()),
            ..TraceFilter::default()
        },
    )
    .await;
    let expected = want(&specs, |s| {
        s.project == "sa" && s.tags.contains(&"premium_tier")
    });
    assert_eq!(ids(&both).into_iter().collect::<BTreeSet<_>>(), expected);
}

pub async fn search_bad_query_is_invalid(store: &dyn Store) {
    let filter = TraceFilter {
        q: Some("stauts:error".into()),
        ..TraceFilter::default()
    };
    match store.list_traces(&filter).await {
        Err(StoreError::Invalid(msg)) => {
            assert!(
                msg.contains("did you mean \"status\"") && msg.contains("1..7"),
                "{msg}"
            )
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub async fn grade_sorts_paginate_with_missing_last(store: &dyn Store) {
    let (specs, _) = seed(store).await;
    for (sort, desc) in [(TraceSort::GradeDesc, true), (TraceSort::GradeAsc, false)] {
        let got = list_all(
            store,
            &TraceFilter {
                sort,
                limit: Some(3),
                ..TraceFilter::default()
            },
        )
        .await;
        // Expected: graded first by value, ties by stored order (newest first for desc, oldest
        // first for asc), then the ungraded in the same tiebreak order.
        let mut order: Vec<&Spec> = specs.iter().collect();
        order.sort_by(|a, b| {
            let key = |s: &Spec| s.reward;
            match (key(a), key(b)) {
                (Some(x), Some(y)) => {
                    let by = if desc {
                        y.total_cmp(&x)
                    } else {
                        x.total_cmp(&y)
                    };
                    by.then(if desc {
                        b.start.cmp(&a.start)
                    } else {
                        a.start.cmp(&b.start)
                    })
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => {
                    if desc {
                        b.start.cmp(&a.start)
                    } else {
                        a.start.cmp(&b.start)
                    }
                }
            }
        });
        let expected: Vec<String> = order.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids(&got), expected, "sort {sort:?}");
    }
    // Another grade name: only traces with a numeric one come first; labels are not numbers.
    let by_quality = list_all(
        store,
        &TraceFilter {
            sort: TraceSort::GradeDesc,
            grade: Some("quality".into()),
            limit: Some(1000),
            ..TraceFilter::default()
        },
    )
    .await;
    assert_eq!(by_quality.len(), N);
    // A cursor of one grade name is refused for another.
    let page = store
        .list_traces(&TraceFilter {
            sort: TraceSort::GradeDesc,
            limit: Some(2),
            ..TraceFilter::default()
        })
        .await
        .expect("page");
    let other = TraceFilter {
        sort: TraceSort::GradeDesc,
        grade: Some("quality".into()),
        cursor: page.next_cursor,
        ..TraceFilter::default()
    };
    assert!(matches!(
        store.list_traces(&other).await,
        Err(StoreError::Invalid(_))
    ));
    let misplaced = TraceFilter {
        grade: Some("reward".into()),
        ..TraceFilter::default()
    };
    assert!(matches!(
        store.list_traces(&misplaced).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Quantile as the suite fixes it: linear between closest ranks.
fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let last = v.len().checked_sub(1)?;
    let pos = q * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

fn close_enough(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => approx(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Checks figures of a set of specs against `TraceStats`.
fn check_stats(got: &caribou_model::api::TraceStats, set: &[&Spec], what: &str) {
    assert_eq!(got.traces, set.len() as u64, "{what}: traces");
    let errors = set
        .iter()
        .filter(|s| s.status == RolloutStatus::Error)
        .count() as u64;
    assert_eq!(got.errors, errors, "{what}: errors");
    let mut status = BTreeMap::new();
    for s in set {
        *status.entry(s.status).or_insert(0u64) += 1;
    }
    assert_eq!(got.status, status, "{what}: status");
    assert_eq!(
        got.input_tokens,
        set.iter().map(|s| s.tokens.0).sum::<u64>(),
        "{what}"
    );
    assert_eq!(
        got.output_tokens,
        set.iter().map(|s| s.tokens.1).sum::<u64>(),
        "{what}"
    );
    assert!(
        approx(got.cost_usd, set.iter().map(|s| s.cost).sum()),
        "{what}: cost"
    );
    let durations: Vec<f64> = set
        .iter()
        .filter_map(|s| s.duration_us.map(|d| d as f64 / 1000.0))
        .collect();
    assert!(
        close_enough(got.duration_ms_p50, quantile(durations.clone(), 0.5)),
        "{what}: p50"
    );
    assert!(
        close_enough(got.duration_ms_p95, quantile(durations, 0.95)),
        "{what}: p95"
    );
    let rewards: Vec<f64> = set.iter().filter_map(|s| s.reward).collect();
    let r = got.grades.get("reward").cloned().unwrap_or_default();
    assert_eq!(r.count, rewards.len() as u64, "{what}: reward count");
    assert!(
        close_enough(r.p90, quantile(rewards.clone(), 0.9)),
        "{what}: reward p90"
    );
    assert!(
        close_enough(r.max, rewards.iter().copied().reduce(f64::max)),
        "{what}: max"
    );
}

pub async fn aggregates_match_the_generated_figures(store: &dyn Store) {
    let (specs, run_id) = seed(store).await;
    wait_for_index(store).await;
    // Totals of a search.
    for (scope, q, f) in [
        (
            StatsScope::default(),
            "",
            Box::new(|_: &Spec| true) as Box<dyn Fn(&Spec) -> bool>,
        ),
        (
            StatsScope {
                project: Some("sa".into()),
                run_id: None,
            },
            "-status:error",
            Box::new(|s: &Spec| s.project == "sa" && s.status != RolloutStatus::Error),
        ),
        (
            StatsScope::default(),
            "sunny city2",
            Box::new(|s: &Spec| s.city == 2 && !s.tools.is_empty()),
        ),
        (
            StatsScope {
                project: Some("nope".into()),
                run_id: None,
            },
            "",
            Box::new(|_: &Spec| false),
        ),
    ] {
        let parsed = kestrel_query::parse(q).expect("parse");
        let got = store.stats(&scope, Some(&parsed)).await.expect("stats");
        let set: Vec<&Spec> = specs.iter().filter(|s| f(s)).collect();
        check_stats(&got, &set, &format!("stats {q:?}"));
    }
    // Per step, all rollouts and the matching ones only.
    let all = store.list_run_steps(&run_id).await.expect("steps");
    let q = kestrel_query::parse("tag:premium_tier").expect("parse");
    let premium = store
        .list_run_steps_matching(&run_id, &q)
        .await
        .expect("steps");
    let steps: BTreeSet<i64> = specs.iter().filter_map(|s| s.step).collect();
    assert_eq!(all.iter().map(|s| s.step).collect::<BTreeSet<_>>(), steps);
    assert_eq!(
        premium.iter().map(|s| s.step).collect::<BTreeSet<_>>(),
        steps
    );
    for (list, only_premium) in [(&all, false), (&premium, true)] {
        for st in list {
            let set: Vec<&Spec> = specs
                .iter()
                .filter(|s| {
                    s.step == Some(st.step) && (!only_premium || s.tags.contains(&"premium_tier"))
                })
                .collect();
            assert_eq!(st.rollouts, set.len() as u64, "step {}", st.step);
            let durations: Vec<f64> = set
                .iter()
                .filter_map(|s| s.duration_us.map(|d| d as f64 / 1000.0))
                .collect();
            assert!(close_enough(
                st.duration_ms_p50,
                quantile(durations.clone(), 0.5)
            ));
            assert!(close_enough(st.duration_ms_p90, quantile(durations, 0.9)));
            let rewards: Vec<f64> = set.iter().filter_map(|s| s.reward).collect();
            let r = st.grades.get("reward").cloned().unwrap_or_default();
            assert_eq!(r.count, rewards.len() as u64);
            assert!(close_enough(
                r.mean,
                (!rewards.is_empty()).then(|| rewards.iter().sum::<f64>() / rewards.len() as f64)
            ));
        }
    }
    // Per 10 s bucket of project sb, over a range that starts mid-bucket.
    let req = TimeseriesRequest {
        project: "sb".into(),
        since_us: T0 + 3 * SEC,
        until_us: T0 + 45 * SEC,
        bucket_us: 10 * SEC,
    };
    for q in ["", "tool:calculator OR status:error"] {
        let parsed = kestrel_query::parse(q).expect("parse");
        let series = store
            .timeseries(&req, Some(&parsed))
            .await
            .expect("timeseries");
        assert_eq!(series.since, T0);
        assert_eq!(series.bucket_seconds, 10);
        assert_eq!(series.buckets.len(), 5);
        for (k, b) in series.buckets.iter().enumerate() {
            let lo = T0 + k as i64 * 10 * SEC;
            assert_eq!(b.start, lo);
            let set: Vec<&Spec> = specs
                .iter()
                .filter(|s| s.project == "sb" && s.start >= lo && s.start < lo + 10 * SEC)
                .filter(|s| {
                    q.is_empty()
                        || s.tools.contains(&"calculator")
                        || s.status == RolloutStatus::Error
                })
                .collect();
            check_stats(&b.stats, &set, &format!("bucket {k} {q:?}"));
        }
    }
    let too_many = TimeseriesRequest {
        bucket_us: 1,
        ..req
    };
    assert!(matches!(
        store.timeseries(&too_many, None).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Lists over thousands of traces give the same pages whichever way a store finds them (a walk in
/// order that stops at the page, a wider walk, or an index lookup then a sort): queries
/// matching 10%, 2% and 0.2% of 3,000 traces, both time orders and the orders by cost, tokens and
/// duration, several page sizes, ties in time and in each key.
pub async fn large_lists_page_exactly(store: &dyn Store) {
    const TRACES: usize = 3_000;
    let name = |i: usize| format!("big-{i:04}");
    let mut records = Vec::new();
    for i in 0..TRACES {
        let trace = name(i);
        // Two traces per second: ties in sort time, broken by storage order.
        let t = T0 + (i / 2) as i64 * SEC;
        let turn = new_record_id();
        records.push(Record::TraceOpen(open(&trace, t, turn, "big")));
        if i % 50 == 0 {
            records.push(tags(&trace, t + 1, &["fifty"]));
        }
        if i % 500 == 0 {
            records.push(tags(&trace, t + 1, &["rare"]));
        }
        // Cost, tokens and duration with many ties, for the orders by them.
        let (input, output, cost) = key_figures(i);
        records.push(msg(&trace, t + 1, input, output, cost));
        let st = if i % 10 == 0 {
            RolloutStatus::Error
        } else {
            RolloutStatus::Completed
        };
        records.push(close(&trace, t + 2 + duration_s(i), turn, Some(st)));
    }
    for chunk in records.chunks(3_000) {
        ingest(store, chunk.to_vec()).await;
    }
    type Case = (&'static str, fn(usize) -> bool);
    let cases: [Case; 5] = [
        ("status:error", |i| i % 10 == 0),
        ("tag:fifty", |i| i % 50 == 0),
        ("tag:rare", |i| i % 500 == 0),
        ("tag:fifty -status:error", |i| i % 50 == 0 && i % 10 != 0),
        ("", |_| true),
    ];
    for (q, f) in cases {
        for sort in [TraceSort::Newest, TraceSort::Oldest] {
            let mut want: Vec<String> = (0..TRACES).filter(|i| f(*i)).map(name).collect();
            if sort == TraceSort::Newest {
                want.reverse();
            }
            pages_are(store, q, sort, &want).await;
        }
        // Highest first, ties broken by storage order, newest stored first.
        type KeyOf = fn(usize) -> f64;
        let keyed: [(TraceSort, KeyOf); 3] = [
            (TraceSort::CostDesc, |i| key_figures(i).2),
            (TraceSort::TokensDesc, |i| {
                let (input, output, _) = key_figures(i);
                (input + output) as f64
            }),
            (TraceSort::DurationDesc, |i| duration_s(i) as f64),
        ];
        for (sort, key) in keyed {
            let mut want: Vec<usize> = (0..TRACES).filter(|i| f(*i)).collect();
            want.sort_by(|a, b| key(*b).total_cmp(&key(*a)).then(b.cmp(a)));
            let want: Vec<String> = want.into_iter().map(name).collect();
            pages_are(store, q, sort, &want).await;
        }
    }
}

/// Every page size, with and without the project filter, lists exactly `want` for `q` in `sort`.
async fn pages_are(store: &dyn Store, q: &str, sort: TraceSort, want: &[String]) {
    for limit in [7, 50, 1000] {
        for project in [None, Some("big".to_owned())] {
            let filter = TraceFilter {
                q: (!q.is_empty()).then(|| q.to_owned()),
                sort,
                limit: Some(limit),
                project,
                ..TraceFilter::default()
            };
            let got = ids(&list_all(store, &filter).await);
            assert_eq!(got, want, "{q:?} {sort:?} limit {limit}");
        }
    }
}

/// Tokens in and out and cost of trace `i` of [`large_lists_page_exactly`] (many ties).
fn key_figures(i: usize) -> (u64, u64, f64) {
    ((i % 13) as u64, (i % 7) as u64, (i % 11) as f64 * 0.5)
}

/// How many seconds after its opening (plus 2) trace `i` of [`large_lists_page_exactly`] closes.
fn duration_s(i: usize) -> i64 {
    (i % 5) as i64
}

/// A message item whose text is `text`.
fn said(trace: &str, ts: i64, text: &str) -> Record {
    item(
        trace,
        ts,
        Item::Message(Message {
            role: "user".to_owned(),
            content: Some(text.to_owned().into()),
            ..Message::default()
        }),
    )
}

/// Newest-first pages of rare terms are exact whichever way a store finds them (the SQLite store
/// walks the term's chunks or traces in descending id order and stops once no smaller id can
/// bring a newer trace): 6,000 traces stored in time order, a word, a tag and a metadata value in
/// 15 of them; three old traces that get the word again in late chunks (new ids, old sort times);
/// traces stored out of time order; a trace stored first whose sort time then grows to the
/// newest. Page sizes, the rest of the query, and the project filter vary.
pub async fn rare_words_page_exactly(store: &dyn Store) {
    const TRACES: usize = 6_000;
    let name = |i: usize| format!("word-{i:04}");
    let t = |i: usize| T0 + i as i64 * SEC;
    let trace = |i: usize| {
        let turn = new_record_id();
        let text = if i.is_multiple_of(400) {
            "we saw kari here"
        } else {
            "nothing to see"
        };
        let status = if i.is_multiple_of(800) {
            RolloutStatus::Error
        } else {
            RolloutStatus::Completed
        };
        vec![
            Record::TraceOpen(open(
                &name(i),
                t(i),
                turn,
                if i.is_multiple_of(3) {
                    "three"
                } else {
                    "other"
                },
            )),
            said(&name(i), t(i) + 1, text),
            if i.is_multiple_of(400) {
                tags(&name(i), t(i) + 1, &["rare"])
            } else {
                tags(&name(i), t(i) + 1, &["common"])
            },
            meta(
                &name(i),
                t(i) + 1,
                json!({"customer": format!("c{}", i % 400 + 7)}),
            ),
            close(&name(i), t(i) + 2, turn, Some(status)),
        ]
    };
    // A trace whose sort time grows: a record long before its opening, stored first (the
    // smallest rowid); its opening and word come last, newer than two thirds of the others.
    ingest(store, vec![tags("grows", T0 - 10 * SEC, &["x", "rare"])]).await;
    // In time order, 500 traces per request: ids follow the traces' times.
    for part in (0..TRACES).collect::<Vec<_>>().chunks(500) {
        ingest(store, part.iter().flat_map(|i| trace(*i)).collect()).await;
    }
    // Old traces get the word again, in the newest chunks.
    let late = [0, 400, 800];
    ingest(
        store,
        late.iter()
            .map(|i| said(&name(*i), t(*i) + 3, "kari again"))
            .collect(),
    )
    .await;
    // Traces out of time order: newer and older than all others, stored last, in one request.
    let turn = new_record_id();
    let mut odd = vec![
        Record::TraceOpen(open("grows", t(4_000) + SEC / 3, turn, "other")),
        said("grows", t(4_000) + SEC / 2, "kari grows"),
        meta("grows", t(4_000) + SEC / 2, json!({"customer": "c7"})),
    ];
    for (k, at) in [(0, t(TRACES) + SEC), (1, T0 - SEC), (2, t(2_500) + SEC / 2)] {
        let id = format!("odd-{k}");
        let turn = new_record_id();
        odd.push(Record::TraceOpen(open(&id, at, turn, "three")));
        odd.push(said(&id, at + 1, "kari odd"));
        odd.push(tags(&id, at + 1, &["rare"]));
        odd.push(meta(&id, at + 1, json!({"customer": "c7"})));
    }
    ingest(store, odd).await;
    wait_for_index(store).await;

    // (id, sort time) of every trace with the word.
    let mut all: Vec<(String, i64, bool, &str)> = (0..TRACES)
        .filter(|i| i.is_multiple_of(400))
        .map(|i| {
            (
                name(i),
                t(i),
                i.is_multiple_of(800),
                if i.is_multiple_of(3) {
                    "three"
                } else {
                    "other"
                },
            )
        })
        .collect();
    all.push(("grows".to_owned(), t(4_000) + SEC / 3, false, "other"));
    all.push(("odd-0".to_owned(), t(TRACES) + SEC, false, "three"));
    all.push(("odd-1".to_owned(), T0 - SEC, false, "three"));
    all.push(("odd-2".to_owned(), t(2_500) + SEC / 2, false, "three"));
    all.sort_by_key(|(_, at, _, _)| std::cmp::Reverse(*at));
    type Case = (&'static str, Option<&'static str>, fn(bool, &str) -> bool);
    let cases: [Case; 9] = [
        ("kari", None, |_, _| true),
        ("tag:rare", None, |_, _| true),
        ("meta.customer:c7", None, |_, _| true),
        ("tag:rare meta.customer:c7 kari", None, |_, _| true),
        ("tag:rare -tag:common status:error", None, |error, _| error),
        ("meta.customer:c7 kari", Some("three"), |_, p| p == "three"),
        ("kari status:error", None, |error, _| error),
        ("kari -status:error", Some("three"), |error, p| {
            !error && p == "three"
        }),
        ("kari", Some("other"), |_, p| p == "other"),
    ];
    for (q, project, f) in cases {
        let want: Vec<String> = all
            .iter()
            .filter(|(_, _, error, p)| f(*error, p))
            .map(|(id, ..)| id.clone())
            .collect();
        for limit in [1, 3, 7, 50] {
            let filter = TraceFilter {
                q: Some(q.to_owned()),
                sort: TraceSort::Newest,
                limit: Some(limit),
                project: project.map(str::to_owned),
                ..TraceFilter::default()
            };
            let got = ids(&list_all(store, &filter).await);
            assert_eq!(got, want, "{q:?} in {project:?}, limit {limit}");
        }
    }
}
