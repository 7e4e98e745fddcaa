//! Black-box tests of the HTTP API: a real `kestrel serve` on a free port, driven over HTTP.

mod common;

use std::io::Write;

use caribou_model::{Batch, Grade, GradeValue, Item, Phase, RolloutStatus};
use common::{Server, TraceBuilder};
use serde_json::{Value, json};

fn create_run(server: &Server, project: &str, phase: &str) -> String {
    let run = server
        .post(
            "/api/v1/runs",
            &json!({"project": project, "phase": phase, "name": "grpo-7b", "config": {"lr": 1e-6}}),
        )
        .expect(201);
    run["id"].as_str().expect("run id").to_owned()
}

fn reward(value: f64) -> Item {
    Item::Grade(Grade {
        name: "reward".into(),
        value: GradeValue::Number(value),
        comment: None,
        grader: Some("verifier-v1".into()),
        metadata: None,
    })
}

#[test]
fn health_and_openapi() {
    let server = Server::start();
    assert_eq!(server.get("/healthz").expect(200)["status"], "ok");

    let doc = server.get("/api/v1/openapi.json");
    assert!(
        doc.content_type.starts_with("application/json"),
        "{}",
        doc.content_type
    );
    let doc = doc.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/api/v1/openapi.json", &["get"]),
        ("/api/v1/ingest", &["post"]),
        ("/api/v1/projects", &["get", "post"]),
        ("/api/v1/projects/{name}", &["get"]),
        ("/api/v1/projects/{name}/datapoints", &["get", "post"]),
        ("/api/v1/projects/{name}/datapoints/{id}", &["get"]),
        ("/api/v1/projects/{name}/traces", &["get"]),
        ("/api/v1/runs", &["get", "post"]),
        ("/api/v1/runs/{run_id}", &["get"]),
        ("/api/v1/runs/{run_id}/steps", &["get", "post"]),
        ("/api/v1/runs/{run_id}/steps/{step}", &["get"]),
        ("/api/v1/runs/{run_id}/datapoints", &["get", "post"]),
        ("/api/v1/runs/{run_id}/traces", &["get"]),
        ("/api/v1/traces", &["get"]),
        ("/api/v1/traces/{trace_id}", &["get"]),
        ("/api/v1/traces/{trace_id}/grades", &["post"]),
        ("/api/v1/traces/{trace_id}/items", &["get"]),
        ("/api/v1/projects/{name}/timeseries", &["get"]),
        ("/api/v1/stats", &["get"]),
        ("/api/v1/status", &["get"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "openapi lacks {m} {path}"
            );
        }
    }
    assert_eq!(
        paths.len(),
        21,
        "a path in the document that the test does not know"
    );
    // Every path of the document is served: none answers "no route".
    for path in paths.keys() {
        let concrete = path
            .replace("{name}", "p")
            .replace("{run_id}", "run_x")
            .replace("{step}", "1")
            .replace("{id}", "d")
            .replace("{trace_id}", "t");
        let reply = server.get(&concrete);
        assert!(
            reply.status != 404 || !reply.text.contains("no route"),
            "{path} is documented but not routed: {}",
            reply.text
        );
    }
}

#[test]
fn projects_runs_steps_and_datapoints() {
    let server = Server::start();
    let p1 = server
        .post("/api/v1/projects", &json!({"name": "math-rl"}))
        .expect(200);
    let p2 = server
        .post("/api/v1/projects", &json!({"name": "math-rl"}))
        .expect(200);
    assert_eq!(p1, p2, "get-or-create returns the same project");
    let list = server.get("/api/v1/projects").expect(200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert!(list["next_cursor"].is_null());
    assert_eq!(
        server.get("/api/v1/projects/math-rl").expect(200)["name"],
        "math-rl"
    );

    let run_id = create_run(&server, "math-rl", "train");
    assert!(run_id.starts_with("run_"), "{run_id}");
    let run = server.get(&format!("/api/v1/runs/{run_id}")).expect(200);
    assert_eq!(run["phase"], "train");
    assert_eq!(run["config"]["lr"], 1e-6);
    let runs = server.get("/api/v1/runs?project=math-rl").expect(200);
    assert_eq!(runs["data"][0]["id"], run_id.as_str());
    assert_eq!(
        server.get("/api/v1/runs?project=other").expect(200)["data"],
        json!([])
    );
    let all_runs = server.get("/api/v1/runs?limit=10").expect(200);
    assert_eq!(all_runs["data"].as_array().map(Vec::len), Some(1));

    for step in [0, 1, 1] {
        let s = server
            .post(
                &format!("/api/v1/runs/{run_id}/steps"),
                &json!({"step": step}),
            )
            .expect(200);
        assert_eq!(s["step"], step);
        assert_eq!(s["run_id"], run_id.as_str());
    }
    let steps = server
        .get(&format!("/api/v1/runs/{run_id}/steps"))
        .expect(200);
    let numbers: Vec<_> = steps["data"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(0), json!(1)]);
    assert_eq!(
        server
            .get(&format!("/api/v1/runs/{run_id}/steps/1"))
            .expect(200)["rollouts"],
        0
    );
    server
        .get(&format!("/api/v1/runs/{run_id}/steps/7"))
        .expect(404);

    // Datapoints of a run land in its project.
    let added = server
        .post(
            &format!("/api/v1/runs/{run_id}/datapoints"),
            &json!({"datapoints": [{"id": "q1", "input": "2+2?", "expected": "4"}, {"id": "q2", "input": "3+3?", "expected": "6", "metadata": {"level": 1}}]}),
        )
        .expect(200);
    assert_eq!(added["written"], 2);
    let of_run = server
        .get(&format!("/api/v1/runs/{run_id}/datapoints"))
        .expect(200);
    assert_eq!(of_run["data"].as_array().map(Vec::len), Some(2));
    let added = server
        .post(
            "/api/v1/projects/math-rl/datapoints",
            &json!({"datapoints": [{"id": "q3", "input": {"a": 1}}]}),
        )
        .expect(200);
    assert_eq!(added["written"], 1);
    let of_project = server
        .get("/api/v1/projects/math-rl/datapoints")
        .expect(200);
    let ids: Vec<_> = of_project["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("q1"), json!("q2"), json!("q3")]);
    let one = server
        .get("/api/v1/projects/math-rl/datapoints/q2")
        .expect(200);
    assert_eq!(
        (one["expected"].clone(), one["metadata"]["level"].clone()),
        (json!("6"), json!(1))
    );
    server
        .get("/api/v1/projects/math-rl/datapoints/q9")
        .expect(404);

    // Pages: limit=1 walks the three datapoints one by one.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/projects/math-rl/datapoints?limit=1&cursor={c}"),
            None => "/api/v1/projects/math-rl/datapoints?limit=1".to_owned(),
        };
        let page = server.get(&path).expect(200);
        seen.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|d| d["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 3, "paging does not end");
    }
    assert_eq!(seen, ids);
}

#[test]
fn a_training_run_end_to_end() {
    let server = Server::start();
    let run_id = create_run(&server, "math-rl", "train");
    server
        .post(&format!("/api/v1/runs/{run_id}/steps"), &json!({"step": 3}))
        .expect(200);

    let t1 = TraceBuilder::new("trc_rollout_1")
        .open(&run_id, Phase::Train, Some(3), Some("q1"))
        .message("user", "2+2?", 10, 0, 0.0)
        .message("assistant", "let me call the calculator", 12, 5, 0.002)
        .tool("calculator")
        .message("assistant", "4", 20, 1, 0.003)
        .item(reward(1.0))
        .close(RolloutStatus::Completed);
    let t2 = TraceBuilder::new("trc_rollout_2")
        .open(&run_id, Phase::Train, Some(3), Some("q2"))
        .message("assistant", "5", 7, 1, 0.001)
        .item(reward(0.0))
        .status(RolloutStatus::Truncated)
        .close(RolloutStatus::Truncated);
    let mut batch = t1.batch();
    batch.records.extend(t2.batch().records);
    let n = batch.records.len() as u64;
    let ack = server.ingest(&batch).expect(200);
    assert_eq!(
        (ack["accepted"].as_u64(), ack["duplicates"].as_u64()),
        (Some(n), Some(0))
    );

    // Totals of a trace come from its items.
    let detail = server.get("/api/v1/traces/trc_rollout_1").expect(200);
    assert_eq!(detail["project"], "math-rl");
    assert_eq!(detail["run_id"], run_id.as_str());
    assert_eq!(detail["phase"], "train");
    assert_eq!(detail["step"], 3);
    assert_eq!(detail["datapoint_id"], "q1");
    assert_eq!(detail["status"], "COMPLETED");
    assert_eq!(detail["input_tokens"], 42);
    assert_eq!(detail["output_tokens"], 6);
    assert!(
        (detail["cost_usd"].as_f64().unwrap_or(-1.0) - 0.005).abs() < 1e-9,
        "{}",
        detail["cost_usd"]
    );
    assert_eq!(detail["messages"], 3);
    assert_eq!(detail["tool_calls"], 1);
    assert_eq!(detail["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(detail["turns"].as_array().map(Vec::len), Some(1));
    assert_eq!(detail["grades"], json!([{"name": "reward", "value": 1.0}]));
    let kinds: Vec<_> = detail["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        ["message", "message", "tool_execution", "message", "grade"]
            .map(|k| json!(k))
            .to_vec()
    );

    // Lists and their filters, through every list route.
    let by_run = server
        .get(&format!("/api/v1/runs/{run_id}/traces"))
        .expect(200);
    assert_eq!(by_run["data"].as_array().map(Vec::len), Some(2));
    let by_project = server
        .get("/api/v1/projects/math-rl/traces?status=TRUNCATED")
        .expect(200);
    assert_eq!(by_project["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_project["data"][0]["trace_id"], "trc_rollout_2");
    let filtered = server
        .get(&format!("/api/v1/traces?run_id={run_id}&phase=train&step=3&datapoint_id=q1&sort=cost_desc&limit=10"))
        .expect(200);
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(filtered["data"][0]["trace_id"], "trc_rollout_1");
    assert_eq!(
        (
            filtered["data"][0]["item_count"].clone(),
            filtered["data"][0]["turn_count"].clone()
        ),
        (json!(5), json!(1))
    );
    assert_eq!(
        server.get("/api/v1/traces?step=4").expect(200)["data"],
        json!([])
    );
    let oldest = server.get("/api/v1/traces?sort=oldest").expect(200);
    assert_eq!(oldest["data"][0]["trace_id"], "trc_rollout_1");

    // Step figures.
    let step = server
        .get(&format!("/api/v1/runs/{run_id}/steps/3"))
        .expect(200);
    assert_eq!(step["rollouts"], 2);
    assert_eq!(step["status"], json!({"COMPLETED": 1, "TRUNCATED": 1}));
    assert_eq!(step["grades"]["reward"]["count"], 2);
    assert_eq!(step["grades"]["reward"]["mean"], 0.5);
    assert_eq!(step["input_tokens"], 49);

    // Grading after the fact.
    let graded = server
        .post(
            "/api/v1/traces/trc_rollout_2/grades",
            &json!({"name": "correct", "value": false, "grader": "human"}),
        )
        .expect(201);
    assert_eq!(graded["type"], "grade");
    assert_eq!(graded["name"], "correct");
    let detail = server.get("/api/v1/traces/trc_rollout_2").expect(200);
    let grades = detail["grades"].as_array().expect("grades");
    assert!(
        grades.contains(&json!({"name": "correct", "value": false})),
        "{grades:?}"
    );
    server
        .post(
            "/api/v1/traces/trc_nope/grades",
            &json!({"name": "correct", "value": true}),
        )
        .expect(404);
}

#[test]
fn retries_are_idempotent_and_order_does_not_matter() {
    let server = Server::start();
    let trace = TraceBuilder::new("trc_retry")
        .open("support-bot", Phase::Prod, None, Some("session-1"))
        .message("user", "hi", 3, 0, 0.0)
        .message("assistant", "hello", 0, 2, 0.0001)
        .close(RolloutStatus::Completed);
    let batch = trace.batch();
    let n = batch.records.len() as u64;
    let first = server.ingest(&batch).expect(200);
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(n), Some(0))
    );
    for _ in 0..2 {
        let again = server.ingest(&batch).expect(200);
        assert_eq!(
            (again["accepted"].as_u64(), again["duplicates"].as_u64()),
            (Some(0), Some(n))
        );
    }
    let detail = server.get("/api/v1/traces/trc_retry").expect(200);
    assert_eq!(
        detail["items"].as_array().map(Vec::len),
        Some(2),
        "stored once"
    );
    assert_eq!(detail["messages"], 2);
    assert_eq!(
        detail["project"], "support-bot",
        "prod: run_id names the project"
    );
    assert_eq!(
        server.get("/api/v1/projects/support-bot").expect(200)["name"],
        "support-bot"
    );

    // Out of order: the items and the close arrive before the opening, in separate batches.
    let late = TraceBuilder::new("trc_late")
        .open("support-bot", Phase::Prod, None, None)
        .message("user", "where is my order?", 5, 0, 0.0)
        .tool("orders.lookup")
        .close(RolloutStatus::Error);
    let (open, rest) = late.records.split_first().expect("records");
    let mut reversed: Vec<_> = rest.to_vec();
    reversed.reverse();
    server.ingest(&Batch { records: reversed }).expect(200);
    let before_open = server.get("/api/v1/traces/trc_late");
    if before_open.status == 200 {
        assert!(
            before_open.json["project"].is_null(),
            "not filed before its opening"
        );
    }
    server
        .ingest(&Batch {
            records: vec![open.clone()],
        })
        .expect(200);
    let detail = server.get("/api/v1/traces/trc_late").expect(200);
    assert_eq!(detail["project"], "support-bot");
    assert_eq!(detail["status"], "ERROR");
    assert_eq!(detail["messages"], 1);
    assert_eq!(detail["tool_calls"], 1);
    let kinds: Vec<_> = detail["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![json!("message"), json!("tool_execution")],
        "logged order, not arrival order"
    );
}

#[test]
fn multi_turn_traces() {
    let server = Server::start();
    let turn1 = TraceBuilder::new("trc_session_42")
        .open("chat", Phase::Prod, None, Some("session-42"))
        .message("user", "hi", 2, 0, 0.0)
        .message("assistant", "hello", 0, 3, 0.001)
        .close(RolloutStatus::Completed);
    server.ingest(&turn1.batch()).expect(200);
    let turn2 = TraceBuilder::new("trc_session_42")
        .open("chat", Phase::Prod, None, Some("session-42"))
        .message("user", "and now?", 4, 0, 0.0)
        .message("assistant", "now this", 0, 5, 0.002)
        .close(RolloutStatus::Completed);
    assert_ne!(turn1.turn_id, turn2.turn_id);
    server.ingest(&turn2.batch()).expect(200);

    let detail = server.get("/api/v1/traces/trc_session_42").expect(200);
    assert_eq!(
        detail["turns"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
    assert_eq!(detail["items"].as_array().map(Vec::len), Some(4));
    assert_eq!(detail["messages"], 4);
    assert_eq!(detail["input_tokens"], 6);
    assert_eq!(detail["output_tokens"], 8);
    let turn_ids: Vec<_> = detail["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["turn_id"].clone())
        .collect();
    assert_eq!(turn_ids[0], json!(turn1.turn_id.to_string()));
    assert_eq!(turn_ids[3], json!(turn2.turn_id.to_string()));
    let listed = server.get("/api/v1/traces?project=chat").expect(200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["turn_count"], 2);

    // Item pages walk the same items in the same order.
    let mut paged = Vec::new();
    for offset in 0..5 {
        let page = server
            .get(&format!(
                "/api/v1/traces/trc_session_42/items?offset={offset}&limit=1"
            ))
            .expect(200);
        assert_eq!(
            (page["total"].clone(), page["offset"].clone()),
            (json!(4), json!(offset))
        );
        paged.extend(page["items"].as_array().expect("items").iter().cloned());
    }
    assert_eq!(Some(&paged), detail["items"].as_array());
    let first = server
        .get("/api/v1/traces/trc_session_42/items")
        .expect(200);
    assert_eq!(
        first["items"], detail["items"],
        "the default page holds them all"
    );
    for bad in ["limit=0", "limit=5001", "offset=-1", "limit=x", "page=2"] {
        server
            .get(&format!("/api/v1/traces/trc_session_42/items?{bad}"))
            .expect(400);
    }
    server.get("/api/v1/traces/nope/items").expect(404);
}

#[test]
fn gzip_and_zstd_bodies() {
    let server = Server::start();
    let gz_trace = TraceBuilder::new("trc_gzip")
        .open("compressed", Phase::Eval, None, None)
        .message("user", &"long text ".repeat(500), 100, 0, 0.0)
        .close(RolloutStatus::Completed);
    let json = serde_json::to_vec(&gz_trace.batch()).expect("json");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert!(gz.len() < json.len() / 4);
    let ack = server
        .post_raw(
            "/api/v1/ingest",
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            &gz,
        )
        .expect(200);
    assert_eq!(ack["accepted"], 3);

    let zstd_trace = TraceBuilder::new("trc_zstd")
        .open("compressed", Phase::Eval, None, None)
        .message("user", &"more text ".repeat(500), 50, 0, 0.0)
        .close(RolloutStatus::Completed);
    let packed = zstd::encode_all(
        &serde_json::to_vec(&zstd_trace.batch()).expect("json")[..],
        3,
    )
    .expect("zstd");
    let ack = server
        .post_raw(
            "/api/v1/ingest",
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "zstd"),
            ],
            &packed,
        )
        .expect(200);
    assert_eq!(ack["accepted"], 3);

    // Other bodies may be compressed too.
    let body = zstd::encode_all(&br#"{"name": "zipped-project"}"#[..], 3).expect("zstd");
    server
        .post_raw("/api/v1/projects", &[("Content-Encoding", "zstd")], &body)
        .expect(200);

    let detail = server.get("/api/v1/traces/trc_gzip").expect(200);
    assert_eq!(
        detail["items"][0]["content"],
        Value::String("long text ".repeat(500))
    );
    assert_eq!(
        server.get("/api/v1/traces/trc_zstd").expect(200)["input_tokens"],
        50
    );
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &[], &[]);
    let run_id = create_run(&server, "durable", "eval");
    let trace = TraceBuilder::new("trc_durable")
        .open(&run_id, Phase::Eval, None, Some("q1"))
        .message("assistant", "kept", 1, 2, 0.5)
        .close(RolloutStatus::Completed);
    server.ingest(&trace.batch()).expect(200);
    let before = server.get("/api/v1/traces/trc_durable").expect(200);
    let status = server.stop();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let server = Server::start_in(&data, &[], &[]);
    let after = server.get("/api/v1/traces/trc_durable").expect(200);
    assert_eq!(before, after);
    assert_eq!(
        server.get(&format!("/api/v1/runs/{run_id}")).expect(200)["project"],
        "durable"
    );
    // The same batch after the restart is still a duplicate.
    let again = server.ingest(&trace.batch()).expect(200);
    assert_eq!(again["accepted"], 0);
    let log = server.log();
    assert!(
        log.contains("kestrel listening") && log.contains(data.to_str().unwrap_or("?")),
        "{log}"
    );
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    use std::io::Read;
    use std::net::TcpStream;

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &[], &[]);
    let trace = TraceBuilder::new("trc_in_flight")
        .open("shutdown", Phase::Prod, None, None)
        .message("user", "sent while the server stops", 1, 0, 0.0)
        .close(RolloutStatus::Completed);
    let body = serde_json::to_vec(&trace.batch()).expect("json");
    let addr = server.base.trim_start_matches("http://").to_owned();

    // Half the request, then SIGTERM, then the rest: the answer must still be a committed 200.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream
        .write_all(&body[..body.len() / 2])
        .expect("write half");
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.terminate();
    std::thread::sleep(std::time::Duration::from_millis(300));
    stream
        .write_all(&body[body.len() / 2..])
        .expect("write rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""accepted":3"#), "{answer}");
    assert!(server.wait_exit().success());

    let server = Server::start_in(&data, &[], &[]);
    assert_eq!(
        server.get("/api/v1/traces/trc_in_flight").expect(200)["messages"],
        1
    );
    assert!(server.log().contains("kestrel listening"));
}
