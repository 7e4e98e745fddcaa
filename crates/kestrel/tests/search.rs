//! Black-box tests of search and aggregates: a real `kestrel serve`, 300 generated traces sent
//! through the ingest API, and every answer checked against figures computed here from the
//! generator's own data.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use caribou_model::api::{Page, RunStep, Timeseries, TraceStats, TraceSummary};
use caribou_model::{
    Batch, ErrorRecord, Grade, GradeValue, Item, ItemRecord, Message, MetadataRecord, Phase,
    Record, RolloutStatus, TagsRecord, ToolExecution, TraceClose, TraceOpen, new_record_id, now_us,
};
use common::{Server, TraceBuilder};
use serde_json::{Value, json};

const N: usize = 300;
const MS: i64 = 1_000;
const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;

/// What the generator made of trace `i`; the expected answers are computed from these.
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    project: &'static str,
    /// 'A' (train run), 'B' (eval run) or None (prod).
    run: Option<char>,
    step: Option<i64>,
    datapoint: Option<String>,
    status: RolloutStatus,
    tags: Vec<&'static str>,
    customer: String,
    latency: f64,
    /// 0: logged as an integer, 1: as a numeric string, 2: as a float.
    latency_kind: usize,
    model: &'static str,
    msg_model: Option<&'static str>,
    tools: Vec<&'static str>,
    error: Option<&'static str>,
    reward: Option<f64>,
    cost: f64,
    input: u64,
    output: u64,
    start: i64,
    duration_ms: Option<i64>,
    city: &'static str,
    topic: &'static str,
    timed_out_text: bool,
}

fn spec(i: usize, now: i64) -> Spec {
    let ii = i as i64;
    let h = (i * 7919) % 101;
    let status = match h {
        0..60 => RolloutStatus::Completed,
        60..75 => RolloutStatus::Error,
        75..85 => RolloutStatus::Truncated,
        85..95 => RolloutStatus::Cancelled,
        _ => RolloutStatus::Running,
    };
    let (project, run) = match i % 6 {
        0 => ("alpha", Some('A')),
        3 => ("alpha", Some('B')),
        1 | 4 => ("beta", None),
        2 => ("gamma", None),
        _ => ("alpha", None),
    };
    let mut tags = Vec::new();
    if i % 4 == 1 {
        tags.push("premium_tier");
    }
    if i % 7 == 2 {
        tags.push("internal");
    }
    if i.is_multiple_of(5) {
        tags.push("beta_user");
    }
    let mut tools = Vec::new();
    if i.is_multiple_of(4) || i % 9 == 1 {
        tools.push("search_web");
    }
    if i % 5 == 2 {
        tools.push("calculator");
    }
    let latency = ((i * 53) % 1000) as f64 + if i % 3 == 2 { 0.5 } else { 0.0 };
    Spec {
        id: format!("tr-{i:03}"),
        project,
        run,
        step: (run == Some('A')).then_some((ii / 6) % 25),
        datapoint: run.map(|_| format!("dp_{}", i % 20)),
        status,
        tags,
        customer: format!("cust_{}", 100 + i % 30),
        latency,
        latency_kind: i % 3,
        model: ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"][i % 3],
        msg_model: (i % 10 == 7).then_some("gpt-4o"),
        tools,
        error: (status == RolloutStatus::Error).then_some(if i.is_multiple_of(2) {
            "upstream Timed Out after 30s"
        } else {
            "invalid tool arguments"
        }),
        reward: (i % 8 != 7).then(|| ((i * 37) % 100) as f64 / 100.0),
        cost: ((i * 13) % 50) as f64 * 0.001,
        input: ((i * 97) % 1500) as u64,
        output: ((i * 31) % 400) as u64,
        // 7 minutes off the hour grid: no trace sits within minutes of `since:24h`'s boundary.
        start: now - 7 * MIN - ii * 13 * MIN,
        duration_ms: (status != RolloutStatus::Running).then_some(((i * 211) % 5000) as i64 + 100),
        city: ["paris", "tokyo", "lima", "oslo"][i % 4],
        topic: ["rust", "python", "golang"][i % 3],
        timed_out_text: i.is_multiple_of(11),
    }
}

fn item(trace: &str, ts: i64, item: Item) -> Record {
    Record::Item(ItemRecord {
        id: new_record_id(),
        trace_id: trace.to_owned(),
        ts,
        turn_id: None,
        item,
    })
}

/// The records of a trace in two parts (two ingest requests, so two chunks): the opening,
/// messages, metadata, tags and grades; then tools, error and close.
fn records(s: &Spec, runs: &BTreeMap<char, String>) -> (Vec<Record>, Vec<Record>) {
    let t = s.start;
    let turn = new_record_id();
    let latency = match s.latency_kind {
        0 => json!(s.latency as i64),
        1 => json!((s.latency as i64).to_string()),
        _ => json!(s.latency),
    };
    let mut first = vec![
        Record::TraceOpen(TraceOpen {
            id: new_record_id(),
            trace_id: s.id.clone(),
            ts: t,
            turn_id: turn,
            project: None,
            run_id: Some(match s.run {
                Some(r) => runs[&r].clone(),
                None => s.project.to_owned(),
            }),
            phase: Some(match s.run {
                Some('A') => Phase::Train,
                Some(_) => Phase::Eval,
                None => Phase::Prod,
            }),
            step: s.step,
            datapoint_id: s.datapoint.clone(),
            model_name: Some(s.model.to_owned()),
            metadata: Some(
                json!({"customer_id": s.customer, "cached": s.latency < 500.0})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        }),
        Record::Metadata(MetadataRecord {
            id: new_record_id(),
            trace_id: s.id.clone(),
            ts: t + MS,
            metadata: json!({"latency_ms": latency})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }),
        item(
            &s.id,
            t + 2 * MS,
            Item::Message(Message {
                role: "user".into(),
                content: Some(json!(format!("what is the weather in {}?", s.city))),
                ..Message::default()
            }),
        ),
        item(
            &s.id,
            t + 3 * MS,
            Item::Message(Message {
                role: "assistant".into(),
                content: Some(json!([{"type": "text", "text": if s.timed_out_text {
                    "sorry, the request timed out"
                } else {
                    "here is the forecast"
                }}])),
                model: s.msg_model.map(str::to_owned),
                input_tokens: Some(s.input),
                output_tokens: Some(s.output),
                cost_usd: Some(s.cost),
                ..Message::default()
            }),
        ),
    ];
    if !s.tags.is_empty() {
        first.push(Record::Tags(TagsRecord {
            id: new_record_id(),
            trace_id: s.id.clone(),
            ts: t + 4 * MS,
            tags: s.tags.iter().map(|t| (*t).to_owned()).collect(),
        }));
    }
    if let Some(r) = s.reward {
        let grade = |ts: i64, value: f64| {
            item(
                &s.id,
                ts,
                Item::Grade(Grade {
                    name: "reward".into(),
                    value: GradeValue::Number(value),
                    comment: None,
                    grader: None,
                    metadata: None,
                }),
            )
        };
        if s.id.ends_with('0') {
            // Re-graded: only the later grade counts.
            first.push(grade(t + 5 * MS, 1.0 - r));
        }
        first.push(grade(t + 6 * MS, r));
    }
    let mut second = Vec::new();
    for (k, name) in s.tools.iter().enumerate() {
        second.push(item(
            &s.id,
            t + (10 + k as i64) * MS,
            Item::ToolExecution(ToolExecution {
                name: (*name).to_owned(),
                arguments: Some(json!({"query": format!("news about {}", s.topic)})),
                result: Some(json!(format!("three articles on {}", s.topic))),
                ..ToolExecution::default()
            }),
        ));
    }
    if let Some(e) = s.error {
        second.push(Record::Error(ErrorRecord {
            id: new_record_id(),
            trace_id: s.id.clone(),
            ts: t + 20 * MS,
            message: e.to_owned(),
            traceback: None,
        }));
    }
    if let Some(d) = s.duration_ms {
        second.push(Record::TraceClose(TraceClose {
            id: new_record_id(),
            trace_id: s.id.clone(),
            ts: t + d * MS,
            turn_id: turn,
            status: Some(s.status),
        }));
    }
    (first, second)
}

struct World {
    server: Server,
    specs: Vec<Spec>,
    runs: BTreeMap<char, String>,
    now: i64,
}

fn create_run(server: &Server, phase: &str) -> String {
    let run = server
        .post(
            "/api/v1/runs",
            &json!({"project": "alpha", "phase": phase, "name": phase}),
        )
        .expect(201);
    run["id"].as_str().expect("run id").to_owned()
}

fn world() -> World {
    let server = Server::start();
    let now = now_us();
    let mut runs = BTreeMap::new();
    runs.insert('A', create_run(&server, "train"));
    runs.insert('B', create_run(&server, "eval"));
    let specs: Vec<Spec> = (0..N).map(|i| spec(i, now)).collect();
    for group in specs.chunks(30) {
        let mut first = Vec::new();
        let mut second = Vec::new();
        for s in group {
            let (a, b) = records(s, &runs);
            first.extend(a);
            second.extend(b);
        }
        for records in [first, second] {
            let reply = server.ingest(&Batch { records }).expect(200);
            assert_eq!(reply["duplicates"], 0);
        }
    }
    wait_for_index(&server);
    World {
        server,
        specs,
        runs,
        now,
    }
}

/// Polls the lag endpoint until the full-text index has caught up (bounded).
fn wait_for_index(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = server.get("/api/v1/status").expect(200);
        if status["search_index"]["unindexed_chunks"] == 0 {
            assert_eq!(status["search_index"]["unindexed_items"], 0);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the index did not catch up: {status}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Percent-encodes a query value.
fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every trace of `path?q=..&sort=..` walking all pages of `limit`; asserts no duplicates.
fn walk(server: &Server, path: &str, q: &str, sort: &str, limit: u32) -> Vec<TraceSummary> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut url = format!("{path}?q={}&sort={sort}&limit={limit}", enc(q));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Page<TraceSummary> =
            serde_json::from_value(server.get(&url).expect(200)).expect("page");
        assert!(page.data.len() <= limit as usize);
        out.extend(page.data);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => {
                let ids: BTreeSet<&str> = out.iter().map(|t| t.trace_id.as_str()).collect();
                assert_eq!(
                    ids.len(),
                    out.len(),
                    "duplicates across pages of {q:?} {sort}"
                );
                return out;
            }
        }
    }
    panic!("pagination does not end");
}

fn ids(traces: &[TraceSummary]) -> BTreeSet<String> {
    traces.iter().map(|t| t.trace_id.clone()).collect()
}

fn want(specs: &[Spec], f: impl Fn(&Spec) -> bool) -> BTreeSet<String> {
    specs
        .iter()
        .filter(|s| f(s))
        .map(|s| s.id.clone())
        .collect()
}

/// `YYYY-MM-DD` of a time in microseconds (UTC).
fn date(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn midnight(us: i64) -> i64 {
    us.div_euclid(86_400_000_000) * 86_400_000_000
}

#[test]
fn search_answers_match_the_generated_traces() {
    let w = world();
    let specs = &w.specs;
    // Date boundaries that split the generated traces whatever the time of day: the first midnight
    // after the oldest trace (the traces span ~65 hours, so some start before it), and yesterday's.
    let oldest = specs.iter().map(|s| s.start).min().expect("traces");
    let two_days_ago = midnight(oldest + 24 * HOUR);
    let yesterday = midnight(w.now - 24 * HOUR);
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (
            "status:error".into(),
            want(specs, |s| s.status == RolloutStatus::Error),
        ),
        (
            "status:RUNNING".into(),
            want(specs, |s| s.status == RolloutStatus::Running),
        ),
        (
            "tag:premium_tier".into(),
            want(specs, |s| s.tags.contains(&"premium_tier")),
        ),
        (
            "-tag:internal".into(),
            want(specs, |s| !s.tags.contains(&"internal")),
        ),
        (
            "meta.customer_id:cust_123".into(),
            want(specs, |s| s.customer == "cust_123"),
        ),
        (
            "meta.latency_ms>400".into(),
            want(specs, |s| s.latency > 400.0),
        ),
        (
            "meta.latency_ms:53".into(),
            want(specs, |s| s.latency == 53.0),
        ),
        (
            "meta.latency_ms<=100.5".into(),
            want(specs, |s| s.latency <= 100.5),
        ),
        (
            "meta.cached:true".into(),
            want(specs, |s| s.latency < 500.0),
        ),
        (
            "model:gpt-4o".into(),
            want(specs, |s| {
                s.model == "gpt-4o" || s.msg_model == Some("gpt-4o")
            }),
        ),
        (
            "model:claude-3-5-sonnet".into(),
            want(specs, |s| s.model == "claude-3-5-sonnet"),
        ),
        ("phase:prod".into(), want(specs, |s| s.run.is_none())),
        ("phase:train".into(), want(specs, |s| s.run == Some('A'))),
        (
            format!("run:{}", w.runs[&'B']),
            want(specs, |s| s.run == Some('B')),
        ),
        (
            "step:10..20".into(),
            want(specs, |s| s.step.is_some_and(|x| (10..=20).contains(&x))),
        ),
        (
            "datapoint:dp_6".into(),
            want(specs, |s| s.datapoint.as_deref() == Some("dp_6")),
        ),
        (
            "grade.reward>=0.5".into(),
            want(specs, |s| s.reward.is_some_and(|r| r >= 0.5)),
        ),
        (
            "-grade.reward>=0.5".into(),
            want(specs, |s| !s.reward.is_some_and(|r| r >= 0.5)),
        ),
        ("cost>0.01".into(), want(specs, |s| s.cost > 0.01)),
        (
            "tokens>1000".into(),
            want(specs, |s| s.input + s.output > 1000),
        ),
        (
            "duration>2s".into(),
            want(specs, |s| s.duration_ms.is_some_and(|d| d > 2000)),
        ),
        (
            "tool:search_web".into(),
            want(specs, |s| s.tools.contains(&"search_web")),
        ),
        (
            "error:\"timed out\"".into(),
            want(specs, |s| s.error.is_some_and(|e| e.contains("Timed Out"))),
        ),
        (
            format!("after:{}", date(yesterday)),
            want(specs, |s| s.start >= yesterday),
        ),
        (
            format!("before:{}", date(two_days_ago)),
            want(specs, |s| s.start < two_days_ago),
        ),
        (
            "since:24h".into(),
            want(specs, |s| s.start >= w.now - 24 * HOUR),
        ),
        (
            "project:gamma".into(),
            want(specs, |s| s.project == "gamma"),
        ),
        (
            "(tag:premium_tier OR tool:calculator) -status:error".into(),
            want(specs, |s| {
                (s.tags.contains(&"premium_tier") || s.tools.contains(&"calculator"))
                    && s.status != RolloutStatus::Error
            }),
        ),
        (
            "status:error tag:premium_tier OR tag:beta_user".into(),
            want(specs, |s| {
                s.status == RolloutStatus::Error
                    && (s.tags.contains(&"premium_tier") || s.tags.contains(&"beta_user"))
            }),
        ),
        (
            "NOT (phase:prod OR grade.reward<0.3)".into(),
            want(specs, |s| {
                s.run.is_some() && !s.reward.is_some_and(|r| r < 0.3)
            }),
        ),
        // Words: all must appear somewhere in the trace (here across two chunks).
        ("tokyo".into(), want(specs, |s| s.city == "tokyo")),
        (
            "tokyo rust".into(),
            want(specs, |s| {
                s.city == "tokyo" && s.topic == "rust" && !s.tools.is_empty()
            }),
        ),
        ("\"timed out\"".into(), want(specs, |s| s.timed_out_text)),
        ("\"out timed\"".into(), BTreeSet::new()),
        (
            "\"articles on golang\"".into(),
            want(specs, |s| s.topic == "golang" && !s.tools.is_empty()),
        ),
        (
            "search_web".into(),
            want(specs, |s| s.tools.contains(&"search_web")),
        ),
        (
            "meta.customer_id:cust_110 paris cost>0.01 -status:error".into(),
            want(specs, |s| {
                s.customer == "cust_110"
                    && s.city == "paris"
                    && s.cost > 0.01
                    && s.status != RolloutStatus::Error
            }),
        ),
    ];
    for (q, expected) in &cases {
        assert!(
            !expected.is_empty() || q == "\"out timed\"",
            "the generator covers {q:?}"
        );
        let got = walk(&w.server, "/api/v1/traces", q, "newest", 40);
        assert_eq!(&ids(&got), expected, "query {q:?}");
    }
    // The scoped lists take q too.
    let q = "tag:premium_tier";
    let got = walk(&w.server, "/api/v1/projects/beta/traces", q, "newest", 25);
    assert_eq!(
        ids(&got),
        want(specs, |s| s.project == "beta"
            && s.tags.contains(&"premium_tier"))
    );
    let run_a = &w.runs[&'A'];
    let got = walk(
        &w.server,
        &format!("/api/v1/runs/{run_a}/traces"),
        q,
        "oldest",
        25,
    );
    assert_eq!(
        ids(&got),
        want(specs, |s| s.run == Some('A')
            && s.tags.contains(&"premium_tier"))
    );
}

#[test]
fn pagination_under_every_sort_has_no_gaps_or_duplicates() {
    let w = world();
    let q = "-tag:internal";
    let expected = want(&w.specs, |s| !s.tags.contains(&"internal"));
    let by_id: BTreeMap<&str, &Spec> = w.specs.iter().map(|s| (s.id.as_str(), s)).collect();
    type Key = Box<dyn Fn(&Spec) -> f64>;
    let sorts: Vec<(&str, Key, bool)> = vec![
        ("newest", Box::new(|s: &Spec| s.start as f64), true),
        ("oldest", Box::new(|s: &Spec| s.start as f64), false),
        ("cost_desc", Box::new(|s: &Spec| s.cost), true),
        (
            "duration_desc",
            Box::new(|s: &Spec| s.duration_ms.map_or(-1.0, |d| d as f64)),
            true,
        ),
        (
            "tokens_desc",
            Box::new(|s: &Spec| (s.input + s.output) as f64),
            true,
        ),
        (
            "grade_desc",
            Box::new(|s: &Spec| s.reward.unwrap_or(f64::NEG_INFINITY)),
            true,
        ),
        (
            "grade_asc",
            Box::new(|s: &Spec| s.reward.unwrap_or(f64::INFINITY)),
            false,
        ),
    ];
    for (sort, key, desc) in sorts {
        for limit in [7, 50] {
            let got = walk(&w.server, "/api/v1/traces", q, sort, limit);
            assert_eq!(ids(&got), expected, "sort {sort} limit {limit}");
            for pair in got.windows(2) {
                let (a, b) = (
                    key(by_id[pair[0].trace_id.as_str()]),
                    key(by_id[pair[1].trace_id.as_str()]),
                );
                let ordered = if desc { a >= b } else { a <= b };
                assert!(
                    ordered,
                    "sort {sort}: {} ({a}) then {} ({b})",
                    pair[0].trace_id, pair[1].trace_id
                );
            }
        }
    }
    let other = walk(
        &w.server,
        "/api/v1/traces",
        "",
        "grade_desc&grade=nothing",
        100,
    );
    assert_eq!(
        other.len(),
        N,
        "a grade nobody has: every trace, none first"
    );
}

fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let last = v.len().checked_sub(1)?;
    let pos = q * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-9 * (1.0 + x.abs()),
            "{what}: {x} != {y}"
        ),
        (None, None) => {}
        _ => panic!("{what}: {a:?} != {b:?}"),
    }
}

fn durations(set: &[&Spec]) -> Vec<f64> {
    set.iter()
        .filter_map(|s| s.duration_ms.map(|d| d as f64))
        .collect()
}

fn check_stats(got: &TraceStats, set: &[&Spec], what: &str) {
    assert_eq!(got.traces, set.len() as u64, "{what}: traces");
    let errors = set
        .iter()
        .filter(|s| s.status == RolloutStatus::Error)
        .count() as u64;
    assert_eq!(got.errors, errors, "{what}: errors");
    assert_eq!(
        got.input_tokens,
        set.iter().map(|s| s.input).sum::<u64>(),
        "{what}: input"
    );
    assert_eq!(
        got.output_tokens,
        set.iter().map(|s| s.output).sum::<u64>(),
        "{what}: output"
    );
    close(
        Some(got.cost_usd),
        Some(set.iter().map(|s| s.cost).sum()),
        &format!("{what}: cost"),
    );
    close(
        got.duration_ms_p50,
        quantile(durations(set), 0.5),
        &format!("{what}: p50"),
    );
    close(
        got.duration_ms_p95,
        quantile(durations(set), 0.95),
        &format!("{what}: p95"),
    );
}

#[test]
fn aggregates_match_figures_computed_from_the_generator() {
    let w = world();
    let specs = &w.specs;
    let run_a = &w.runs[&'A'];
    // Per step, with and without q.
    for q in ["", "tag:premium_tier OR grade.reward>0.7"] {
        let page: Page<RunStep> = serde_json::from_value(
            w.server
                .get(&format!("/api/v1/runs/{run_a}/steps?q={}", enc(q)))
                .expect(200),
        )
        .expect("steps");
        let steps: BTreeSet<i64> = specs.iter().filter_map(|s| s.step).collect();
        assert_eq!(
            page.data.iter().map(|s| s.step).collect::<BTreeSet<_>>(),
            steps
        );
        for st in &page.data {
            let set: Vec<&Spec> = specs
                .iter()
                .filter(|s| s.step == Some(st.step))
                .filter(|s| {
                    q.is_empty()
                        || s.tags.contains(&"premium_tier")
                        || s.reward.is_some_and(|r| r > 0.7)
                })
                .collect();
            let what = format!("step {} q {q:?}", st.step);
            assert_eq!(st.rollouts, set.len() as u64, "{what}");
            let mut status = BTreeMap::new();
            for s in &set {
                *status.entry(s.status).or_insert(0u64) += 1;
            }
            assert_eq!(st.status, status, "{what}");
            assert_eq!(
                st.input_tokens,
                set.iter().map(|s| s.input).sum::<u64>(),
                "{what}"
            );
            close(
                Some(st.cost_usd),
                Some(set.iter().map(|s| s.cost).sum()),
                &what,
            );
            close(st.duration_ms_p50, quantile(durations(&set), 0.5), &what);
            close(st.duration_ms_p90, quantile(durations(&set), 0.9), &what);
            let rewards: Vec<f64> = set.iter().filter_map(|s| s.reward).collect();
            let r = st.grades.get("reward").cloned().unwrap_or_default();
            assert_eq!(r.count, rewards.len() as u64, "{what}");
            let mean =
                (!rewards.is_empty()).then(|| rewards.iter().sum::<f64>() / rewards.len() as f64);
            close(r.mean, mean, &what);
            close(r.min, rewards.iter().copied().reduce(f64::min), &what);
            close(r.max, rewards.iter().copied().reduce(f64::max), &what);
            close(r.p50, quantile(rewards.clone(), 0.5), &what);
            close(r.p90, quantile(rewards, 0.9), &what);
        }
    }
    // Per hour bucket over the last 30 hours, with and without q.
    let since = w.now - 30 * HOUR;
    let until = w.now;
    for q in ["", "status:error OR cost>0.03"] {
        let series: Timeseries = serde_json::from_value(
            w.server
                .get(&format!(
                    "/api/v1/projects/alpha/timeseries?bucket=1h&since={since}&until={until}&q={}",
                    enc(q)
                ))
                .expect(200),
        )
        .expect("timeseries");
        let first = since.div_euclid(HOUR) * HOUR;
        assert_eq!(
            (series.since, series.until, series.bucket_seconds),
            (first, until, 3600)
        );
        assert_eq!(
            series.buckets.len() as i64,
            (until - first + HOUR - 1) / HOUR
        );
        let mut total = 0;
        for (k, b) in series.buckets.iter().enumerate() {
            let lo = first + k as i64 * HOUR;
            assert_eq!(b.start, lo);
            let set: Vec<&Spec> = specs
                .iter()
                .filter(|s| {
                    s.project == "alpha" && s.start >= lo && s.start < (lo + HOUR).min(until)
                })
                .filter(|s| q.is_empty() || s.status == RolloutStatus::Error || s.cost > 0.03)
                .collect();
            total += set.len();
            check_stats(&b.stats, &set, &format!("bucket {k} q {q:?}"));
        }
        assert!(total > 10, "the range holds traces");
    }
    // Default range and bucket: the last 24 h in 30 min buckets.
    let series: Timeseries = serde_json::from_value(
        w.server
            .get("/api/v1/projects/alpha/timeseries")
            .expect(200),
    )
    .expect("timeseries");
    assert_eq!(series.bucket_seconds, 1800);
    assert!(
        (48..=49).contains(&series.buckets.len()),
        "{}",
        series.buckets.len()
    );
    // One total for any search.
    for (path, f) in [
        (
            "/api/v1/stats".to_owned(),
            Box::new(|_: &Spec| true) as Box<dyn Fn(&Spec) -> bool>,
        ),
        (
            format!(
                "/api/v1/stats?q={}&project=beta",
                enc("-status:error tokyo")
            ),
            Box::new(|s: &Spec| {
                s.project == "beta" && s.status != RolloutStatus::Error && s.city == "tokyo"
            }),
        ),
        (
            format!("/api/v1/stats?run_id={run_a}&q={}", enc("step:10..20")),
            Box::new(|s: &Spec| {
                s.run == Some('A') && s.step.is_some_and(|x| (10..=20).contains(&x))
            }),
        ),
    ] {
        let got: TraceStats =
            serde_json::from_value(w.server.get(&path).expect(200)).expect("stats");
        let set: Vec<&Spec> = specs.iter().filter(|s| f(s)).collect();
        assert!(!set.is_empty());
        check_stats(&got, &set, &path);
    }
}

#[test]
fn bad_queries_answer_400_bad_query_with_the_position() {
    let server = Server::start();
    let run = create_run(&server, "train");
    let created = server.post("/api/v1/projects", &json!({"name": "p"}));
    assert!(created.status < 300, "{}", created.text);
    let table: &[(&str, &str)] = &[
        (
            "stauts:error",
            "unknown field \"stauts\" at 1..7; did you mean \"status\"?",
        ),
        ("status:eror", "at 8..12"),
        ("cost>abc", "at 6..9"),
        ("step:20..10", "at 6..12"),
        ("(tag:a", "at 1..2"),
        ("tag:a)", "at 6..7"),
        ("duration>2", "no unit"),
        ("after:yesterday", "at 7..16"),
        ("meta.:x", "at 1..6"),
        ("\"unclosed", "at 1"),
        ("tag:a OR", "at 7..9"),
        ("meta.k>abc", "at 8..11"),
        // Found by schemathesis: a NUL reached FTS5 and was a 500.
        ("\u{c3}\u{0}s", "control character U+0000 at 2..3"),
    ];
    let paths = [
        "/api/v1/traces".to_owned(),
        "/api/v1/projects/p/traces".to_owned(),
        format!("/api/v1/runs/{run}/traces"),
        format!("/api/v1/runs/{run}/steps"),
        "/api/v1/stats".to_owned(),
        "/api/v1/projects/p/timeseries".to_owned(),
    ];
    for (q, needle) in table {
        for path in &paths {
            let reply = server.get(&format!("{path}?q={}", enc(q)));
            assert_eq!(reply.status, 400, "{path} q={q:?}: {}", reply.text);
            assert_eq!(reply.json["error"]["code"], "bad_query", "{}", reply.text);
            let msg = reply.error_message();
            assert!(
                msg.contains(needle),
                "{path} q={q:?}: {msg:?} lacks {needle:?}"
            );
        }
    }
    // Other parameters stay plain bad requests.
    for path in [
        "/api/v1/traces?grade=reward",
        "/api/v1/projects/p/timeseries?bucket=1y",
        "/api/v1/projects/p/timeseries?bucket=1s&since=7d",
        "/api/v1/projects/p/timeseries?since=tomorrow",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_eq!(reply.json["error"]["code"], "bad_request", "{}", reply.text);
    }
    assert_eq!(server.get("/api/v1/projects/nope/timeseries").status, 404);
    let ok: Value = server.get("/api/v1/traces?q=").expect(200);
    assert_eq!(ok["data"], json!([]));
}

/// A prod trace of `id` with `metadata`, one grade and a message saying `text`.
fn small_trace(id: &str, metadata: Value, grade: (&str, f64), text: &str) -> Batch {
    let mut t = TraceBuilder::new(id)
        .open("quoting", Phase::Prod, None, None)
        .message("user", text, 10, 5, 0.001);
    t.records.push(Record::Metadata(MetadataRecord {
        id: new_record_id(),
        trace_id: id.to_owned(),
        ts: now_us() - 30 * 1_000_000,
        metadata: metadata.as_object().cloned().unwrap_or_default(),
    }));
    t.item(Item::Grade(Grade {
        name: grade.0.to_owned(),
        value: GradeValue::Number(grade.1),
        comment: None,
        grader: None,
        metadata: None,
    }))
    .close(RolloutStatus::Completed)
    .batch()
}

#[test]
fn keys_with_spaces_and_operators_are_searched_in_quotes() {
    let server = Server::start();
    for (id, customer, odd, rate) in [("tq-1", "x", 7, 0.9), ("tq-2", "c 2", 3, 0.2)] {
        let metadata = json!({"customer id": customer, "a:b<c>": odd, "say \"hi\" \\o/": "yes"});
        server
            .ingest(&small_trace(id, metadata, ("pass rate", rate), "hello"))
            .expect(200);
    }
    let cases: &[(&str, &[&str])] = &[
        (r#"meta."customer id":x"#, &["tq-1"]),
        (r#"meta."customer id":"c 2""#, &["tq-2"]),
        (r#"-meta."customer id":x"#, &["tq-2"]),
        (r#"meta."customer id":nobody"#, &[]),
        (r#"meta."a:b<c>">5"#, &["tq-1"]),
        (r#"meta."a:b<c>":3"#, &["tq-2"]),
        (r#"meta."say \"hi\" \\o/":yes"#, &["tq-1", "tq-2"]),
        (r#"grade."pass rate">0.5"#, &["tq-1"]),
        (
            r#"grade."pass rate"<=0.5 meta."customer id":"c 2""#,
            &["tq-2"],
        ),
    ];
    for (q, expected) in cases {
        let got = ids(&walk(&server, "/api/v1/traces", q, "newest", 10));
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(got, expected, "{q}");
    }
    // A quoted key with no comparison is a 400 that points at it.
    let reply = server.get(&format!(
        "/api/v1/traces?q={}",
        enc(r#"meta."customer id" x"#)
    ));
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply
            .error_message()
            .contains("a quoted key needs \":\" or a comparison right after it at 1..19"),
        "{}",
        reply.text
    );
}

#[test]
fn repeated_words_are_searched_once_and_too_many_words_are_refused() {
    use kestrel_query::{MAX_QUERY_LEN, MAX_TERMS, MAX_TEXT_TERMS};
    let server = Server::start();
    const TRACES: usize = 400;
    for group in (0..TRACES).collect::<Vec<_>>().chunks(100) {
        let mut records = Vec::new();
        for i in group {
            let text = format!("the weather in city {i} is mild");
            records
                .extend(small_trace(&format!("tw-{i:03}"), json!({}), ("r", 0.5), &text).records);
        }
        server.ingest(&Batch { records }).expect(200);
    }
    wait_for_index(&server);
    let timed = |q: &str| {
        let start = Instant::now();
        let reply = server.get(&format!("/api/v1/traces?q={}&limit=50", enc(q)));
        (reply, start.elapsed())
    };

    // One negated word repeated up to the longest query is one term: every trace matches.
    let repeated = vec!["-nosuchword"; MAX_QUERY_LEN / 12].join(" ");
    let (reply, took) = timed(&repeated);
    let page = reply.expect(200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(50));
    let (once, took_once) = timed("-nosuchword");
    assert_eq!(once.expect(200)["data"], page["data"]);
    println!(
        "{} bytes of one negated word repeated, {TRACES} traces: {:.1} ms (the word once: {:.1} ms)",
        repeated.len(),
        took.as_secs_f64() * 1e3,
        took_once.as_secs_f64() * 1e3
    );

    // Distinct words past the bound: a 400 that names it and points at the first word over it.
    let words: Vec<String> = (0..=MAX_TEXT_TERMS)
        .map(|i| format!("-nosuchword{i}"))
        .collect();
    let q = words.join(" ");
    let (reply, took) = timed(&q);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json["error"]["code"], "bad_query", "{}", reply.text);
    let at = q.find(&format!("nosuchword{MAX_TEXT_TERMS}")).unwrap_or(0) + 1;
    let msg = reply.error_message();
    assert!(
        msg.contains(&format!(
            "at most {MAX_TEXT_TERMS} words or quoted phrases at {at}.."
        )),
        "{msg}"
    );
    println!(
        "{} distinct negated words: refused in {:.1} ms",
        words.len(),
        took.as_secs_f64() * 1e3
    );
    // One fewer is answered.
    let (reply, took) = timed(&words[..MAX_TEXT_TERMS].join(" "));
    assert_eq!(reply.expect(200)["data"].as_array().map(Vec::len), Some(50));
    println!(
        "{MAX_TEXT_TERMS} distinct negated words, {TRACES} traces: {:.1} ms",
        took.as_secs_f64() * 1e3
    );

    // Other terms are bounded too.
    let tags: Vec<String> = (0..=MAX_TERMS).map(|i| format!("-tag:t{i}")).collect();
    let reply = server.get(&format!("/api/v1/traces?q={}", enc(&tags.join(" "))));
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply
            .error_message()
            .contains(&format!("at most {MAX_TERMS}")),
        "{}",
        reply.text
    );
}

#[test]
fn error_messages_cut_long_terms() {
    let server = Server::start();
    let long = "z".repeat(3000);
    for q in [
        format!("{long}:x"),
        format!("cost>{long}"),
        format!("meta.k>{long}"),
    ] {
        let reply = server.get(&format!("/api/v1/traces?q={}", enc(&q)));
        assert_eq!(reply.status, 400, "{}", reply.text);
        let msg = reply.error_message();
        assert!(msg.contains("zzz…"), "{msg}");
        assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
    }
}
