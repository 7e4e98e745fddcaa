//! The Rust SDK (`caribou`) against a real `kestrel serve`: what is logged is what is stored.
//!
//! Every test starts its own server on a free 127.0.0.1 port. The SDK's exporter is process-wide,
//! so the tests of this file take a lock and run one at a time.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use caribou::model::api::{AddGrade, CreateRun, NewDatapoint, TraceDetail, TraceFilter};
use caribou::model::{
    Event, Grade, GradeValue, Item, JsonMap, Message, Phase, RolloutStatus, ToolExecution,
};
use caribou::{Config, KestrelClient, TraceOptions, trace_run, trace_run_async};
use common::Server;
use serde_json::{Value, json};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn config(server: &Server, project: &str) -> Config {
    Config {
        endpoint: Some(server.base.clone()),
        project: Some(project.to_owned()),
        phase: Phase::Prod,
        flush_interval: Duration::from_millis(50),
        request_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

fn map(value: Value) -> JsonMap {
    match value {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn message(role: &str, content: &str) -> Item {
    Item::Message(Message {
        role: role.into(),
        content: Some(content.into()),
        ..Default::default()
    })
}

/// A conversation with every field of every item kind set at least once.
fn conversation() -> Vec<Item> {
    vec![
        Item::Message(Message {
            role: "system".into(),
            content: Some(json!([{"type": "text", "text": "You are a weather bot."}])),
            ..Default::default()
        }),
        message("user", "What's the weather in Paris?"),
        Item::Message(Message {
            role: "assistant".into(),
            content: None,
            tool_calls: Some(json!([{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}])),
            model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            input_tokens: Some(120),
            output_tokens: Some(18),
            cost_usd: Some(0.00042),
            metadata: Some(map(
                json!({"finish_reason": "tool_calls", "latency_ms": 812}),
            )),
            ..Default::default()
        }),
        Item::ToolExecution(ToolExecution {
            name: "get_weather".into(),
            call_id: Some("call_1".into()),
            arguments: Some(json!("{\"city\": \"Paris\"}")),
            result: Some(json!({"temp_c": 18, "sky": "clear"})),
            requestor: Some("agent".into()),
            error: None,
            duration_ms: Some(35.5),
        }),
        Item::Message(Message {
            role: "tool".into(),
            content: Some(json!("{\"temp_c\": 18, \"sky\": \"clear\"}")),
            tool_call_id: Some("call_1".into()),
            name: Some("get_weather".into()),
            ..Default::default()
        }),
        Item::ToolExecution(ToolExecution {
            name: "send_email".into(),
            call_id: Some("call_2".into()),
            arguments: Some(json!({"to": "a@example.com"})),
            error: Some("SMTP refused".into()),
            requestor: Some("agent".into()),
            ..Default::default()
        }),
        Item::Message(Message {
            role: "assistant".into(),
            content: Some(json!("It is 18 °C and clear in Paris ☀️.")),
            model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            input_tokens: Some(160),
            output_tokens: Some(12),
            cost_usd: Some(0.00051),
            ..Default::default()
        }),
        Item::Event(Event {
            name: "guardrail".into(),
            data: Some(json!({"rule": "pii", "hit": false})),
            level: "warn".into(),
        }),
        Item::Grade(Grade {
            name: "reward".into(),
            value: GradeValue::Number(0.75),
            comment: Some("mostly right".into()),
            grader: Some("verifier-v2".into()),
            metadata: Some(map(json!({"rubric": "weather"}))),
        }),
        Item::Grade(Grade {
            name: "correct".into(),
            value: GradeValue::Bool(true),
            comment: None,
            grader: None,
            metadata: None,
        }),
        Item::Grade(Grade {
            name: "label".into(),
            value: GradeValue::Label("good".into()),
            comment: None,
            grader: None,
            metadata: None,
        }),
    ]
}

fn client() -> KestrelClient {
    KestrelClient::from_config(&caribou::current_config())
}

fn trace(id: &str) -> TraceDetail {
    client()
        .get_trace(id)
        .unwrap_or_else(|e| panic!("get_trace({id}): {e}"))
}

#[test]
fn every_field_logged_is_stored() {
    let _serial = serial();
    let server = Server::start();
    caribou::configure(config(&server, "sdk-e2e"));
    let items = conversation();
    let opts = TraceOptions {
        datapoint_id: Some("req-1".into()),
        model_name: Some("gpt-4o".into()),
        metadata: map(json!({"request_kind": "chat"})),
        ..TraceOptions::default()
    };
    let trace_id = trace_run(opts, |t| {
        for item in items.clone() {
            caribou::log(item);
        }
        caribou::set_status(RolloutStatus::Truncated);
        caribou::set_error(
            "Operation timed out after 30s".into(),
            Some("Traceback (most recent call last): ...".into()),
        );
        caribou::add_meta(map(json!({"customer_id": "cust_123", "latency_ms": 450})));
        caribou::add_tags(vec!["api_v2".into(), "premium_tier".into()]);
        t.trace_id().to_owned()
    });
    let before = caribou::stats();
    let report = caribou::flush(Some(Duration::from_secs(10)));
    // open + items + status + error + metadata + tags + close
    let records = items.len() as u64 + 6;
    assert_eq!(before.enqueued, records, "{before:?}");
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(
        (report.sent, report.dropped, report.pending),
        (records, 0, 0),
        "{report:?}"
    );

    let detail = trace(&trace_id);
    let stored: Vec<Item> = detail.items.iter().map(|s| s.item.clone()).collect();
    assert_eq!(stored, items, "items, in logged order, field for field");
    assert_eq!(detail.turns.len(), 1);
    let turn = &detail.turns[0];
    assert!(detail.items.iter().all(|s| s.turn_id == Some(turn.turn_id)));
    assert_eq!(
        turn.status,
        Some(RolloutStatus::Truncated),
        "close uses the last set_status"
    );
    assert!(turn.ended_at.is_some());

    let s = &detail.summary;
    assert_eq!(s.trace_id, trace_id);
    assert_eq!(s.project.as_deref(), Some("sdk-e2e"));
    assert_eq!(s.phase, Some(Phase::Prod));
    assert_eq!(s.datapoint_id.as_deref(), Some("req-1"));
    assert_eq!(s.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(s.status, RolloutStatus::Truncated);
    assert_eq!(s.error.as_deref(), Some("Operation timed out after 30s"));
    assert_eq!(
        detail.traceback.as_deref(),
        Some("Traceback (most recent call last): ...")
    );
    assert_eq!((s.input_tokens, s.output_tokens), (280, 30));
    assert!((s.cost_usd - 0.00093).abs() < 1e-12, "{}", s.cost_usd);
    assert_eq!(s.messages, 5);
    assert_eq!(s.tool_calls, 2);
    assert_eq!(s.items, items.len() as u64);
    assert_eq!(s.turns, 1);
    let mut tags = s.tags.clone();
    tags.sort();
    assert_eq!(tags, ["api_v2", "premium_tier"]);
    assert_eq!(s.metadata.get("request_kind"), Some(&json!("chat")));
    assert_eq!(s.metadata.get("customer_id"), Some(&json!("cust_123")));
    assert_eq!(s.metadata.get("latency_ms"), Some(&json!(450)));
    let grade = |name: &str| {
        s.grades
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.value.clone())
    };
    assert_eq!(grade("reward"), Some(GradeValue::Number(0.75)));
    assert_eq!(grade("correct"), Some(GradeValue::Bool(true)));
    assert_eq!(grade("label"), Some(GradeValue::Label("good".into())));

    let report = caribou::shutdown(Some(Duration::from_secs(5)));
    assert_eq!(
        (report.sent, report.dropped, report.pending),
        (records, 0, 0)
    );
}

#[test]
fn turns_panics_and_concurrent_async_traces() {
    let _serial = serial();
    let server = Server::start();
    caribou::configure(config(&server, "sdk-e2e-scopes"));

    // Two turns of one session.
    let session = TraceOptions {
        trace_id: Some("trc_session_42".into()),
        ..TraceOptions::default()
    };
    for turn in 0..2 {
        trace_run(session.clone(), |_| {
            caribou::log(message("user", &format!("question {turn}")));
            caribou::log(message("assistant", &format!("answer {turn}")));
        });
    }

    // A panic: ERROR with the message, and the panic goes on.
    let mut panicked_id = String::new();
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        trace_run(TraceOptions::default(), |t| {
            panicked_id = t.trace_id().to_owned();
            caribou::log(message("user", "divide by zero please"));
            panic!("attempt to divide by zero");
        })
    }));
    assert!(caught.is_err());

    // Many async traces interleaved on one thread, and one cancelled.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (ids, cancelled) = runtime.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                tokio::spawn(trace_run_async(TraceOptions::default(), async move {
                    for step in 0..3 {
                        caribou::log(message("assistant", &format!("task {i} step {step}")));
                        tokio::task::yield_now().await;
                    }
                    caribou::current().map(|h| h.trace_id().to_owned())
                }))
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(
                task.await
                    .unwrap()
                    .expect("a current trace inside the future"),
            );
        }
        let slow = trace_run_async(TraceOptions::default(), async {
            caribou::log(message("user", "this will time out"));
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let cancelled = slow.handle().trace_id().to_owned();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        (ids, cancelled)
    });

    let report = caribou::flush(Some(Duration::from_secs(10)));
    let stats = caribou::stats();
    assert!(
        !report.timed_out && report.pending == 0 && report.dropped == 0,
        "{report:?}"
    );
    assert_eq!(
        report.sent, stats.enqueued,
        "flush tells the truth: {report:?} {stats:?}"
    );

    let session = trace("trc_session_42");
    assert_eq!(session.turns.len(), 2);
    assert!(
        session
            .turns
            .iter()
            .all(|t| t.status == Some(RolloutStatus::Completed))
    );
    assert_eq!(session.summary.status, RolloutStatus::Completed);
    let texts: Vec<Value> = session
        .items
        .iter()
        .map(|s| item_content(&s.item))
        .collect();
    assert_eq!(
        texts,
        [
            json!("question 0"),
            json!("answer 0"),
            json!("question 1"),
            json!("answer 1")
        ]
    );
    assert_ne!(session.items[0].turn_id, session.items[2].turn_id);

    let failed = trace(&panicked_id);
    assert_eq!(failed.summary.status, RolloutStatus::Error);
    let error = failed.summary.error.clone().unwrap_or_default();
    assert!(error.contains("attempt to divide by zero"), "{error}");
    assert_eq!(failed.items.len(), 1);

    for (i, id) in ids.iter().enumerate() {
        let detail = trace(id);
        let texts: Vec<Value> = detail.items.iter().map(|s| item_content(&s.item)).collect();
        let expected: Vec<Value> = (0..3)
            .map(|step| json!(format!("task {i} step {step}")))
            .collect();
        assert_eq!(texts, expected, "trace {id} holds its own items only");
        assert_eq!(detail.summary.status, RolloutStatus::Completed);
    }
    assert_eq!(trace(&cancelled).summary.status, RolloutStatus::Cancelled);
    caribou::shutdown(Some(Duration::from_secs(5)));
}

fn item_content(item: &Item) -> Value {
    match item {
        Item::Message(m) => m.content.clone().unwrap_or(Value::Null),
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn the_client_sets_up_a_training_run() {
    let _serial = serial();
    let server = Server::start();
    caribou::configure(config(&server, "math-rl"));
    let kestrel = client();
    assert!(kestrel.enabled());
    assert_eq!(
        kestrel.get_or_create_project("math-rl").unwrap().name,
        "math-rl"
    );
    let run = kestrel
        .create_run(CreateRun {
            project: "math-rl".into(),
            phase: Phase::Train,
            name: Some("grpo-7b".into()),
            config: Some(map(json!({"lr": 1e-6}))),
        })
        .unwrap();
    assert_eq!(kestrel.get_run(&run.id).unwrap(), run);
    caribou::configure(Config {
        run_id: Some(run.id.clone()),
        phase: Phase::Train,
        ..config(&server, "math-rl")
    });
    let written = kestrel
        .add_datapoints(
            &run.id,
            vec![
                NewDatapoint {
                    id: "q1".into(),
                    input: json!("2+2?"),
                    expected: json!("4"),
                    metadata: None,
                },
                NewDatapoint {
                    id: "q2".into(),
                    input: json!("3*3?"),
                    expected: json!("9"),
                    metadata: None,
                },
            ],
        )
        .unwrap();
    assert_eq!(written, 2);

    let mut trace_ids = Vec::new();
    for step in 0..2 {
        kestrel.create_run_step(&run.id, step).unwrap();
        for (dp, reward) in [("q1", 1.0), ("q2", 0.0)] {
            let opts = TraceOptions {
                datapoint_id: Some(dp.into()),
                step: Some(step),
                ..TraceOptions::default()
            };
            trace_ids.push(trace_run(opts, |t| {
                caribou::log(message("assistant", "4"));
                caribou::log(Item::Grade(Grade {
                    name: "reward".into(),
                    value: GradeValue::Number(reward),
                    comment: None,
                    grader: None,
                    metadata: None,
                }));
                t.trace_id().to_owned()
            }));
        }
        let report = caribou::flush(Some(Duration::from_secs(10)));
        assert!(!report.timed_out && report.pending == 0, "{report:?}");
    }

    let steps = kestrel.get_run_steps(&run.id).unwrap();
    assert_eq!(steps.len(), 2);
    for step in &steps {
        assert_eq!(step.rollouts, 2, "{step:?}");
        assert_eq!(step.status.get(&RolloutStatus::Completed), Some(&2));
        let reward = &step.grades["reward"];
        assert_eq!(
            (reward.count, reward.mean, reward.max),
            (2, Some(0.5), Some(1.0))
        );
    }

    let graded = kestrel
        .grade(
            &trace_ids[0],
            AddGrade {
                name: "human".into(),
                value: GradeValue::Label("ok".into()),
                comment: Some("checked".into()),
                grader: Some("alice".into()),
                metadata: None,
            },
        )
        .unwrap();
    assert!(matches!(&graded.item, Item::Grade(g) if g.name == "human"));
    let detail = trace(&trace_ids[0]);
    assert_eq!(detail.summary.run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(detail.summary.step, Some(0));
    assert!(detail.summary.grades.iter().any(|g| g.name == "human"));

    let page = kestrel
        .list_traces(&TraceFilter {
            run_id: Some(run.id.clone()),
            step: Some(1),
            ..TraceFilter::default()
        })
        .unwrap();
    assert_eq!(page.data.len(), 2);

    match kestrel.get_run("run_does_not_exist") {
        Err(caribou::ClientError::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (404, "not_found"));
            assert!(!message.is_empty());
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    caribou::shutdown(Some(Duration::from_secs(5)));
}

/// Rough hot-path figure against a live Kestrel (the exporter drains while we log):
/// `cargo test -p kestrel --release --test sdk_roundtrip -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn hot_path_ns_per_log_with_a_live_kestrel() {
    let _serial = serial();
    let server = Server::start();
    caribou::configure(config(&server, "bench"));
    let handle = caribou::TraceHandle::open(TraceOptions::default());
    let text = "x".repeat(500);
    for round in 0..3 {
        let n = 20_000;
        let items: Vec<Item> = (0..n).map(|_| message("assistant", &text)).collect();
        let started = Instant::now();
        for item in items {
            handle.log(item);
        }
        let elapsed = started.elapsed();
        let report = caribou::flush(Some(Duration::from_secs(60)));
        println!(
            "round {round}: {} ns per TraceHandle::log of a 500-char Message; flush: {report:?}",
            elapsed.as_nanos() / n as u128
        );
    }
    caribou::shutdown(Some(Duration::from_secs(10)));
}
