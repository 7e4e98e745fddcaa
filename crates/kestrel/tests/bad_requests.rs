//! A table of client mistakes: each gets its exact 4xx status and a JSON error whose message names
//! what to fix; none is a 500, none kills the server, and the data stored before is intact after.

mod common;

use caribou_model::{Phase, RolloutStatus, new_record_id, now_us};
use common::{Server, TraceBuilder};
use serde_json::json;

/// One bad request and what the answer must say.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Each must appear in the error message.
    mentions: Vec<&'static str>,
}

fn case(name: &'static str, method: &'static str, path: &str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        headers: vec![("Content-Type", "application/json")],
        body: body.into(),
        status: 400,
        code: "bad_request",
        mentions: Vec::new(),
    }
}

impl Case {
    fn status(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }

    fn mentions(mut self, words: &[&'static str]) -> Self {
        self.mentions = words.to_vec();
        self
    }

    fn headers(mut self, headers: &[(&'static str, &'static str)]) -> Self {
        self.headers = headers.to_vec();
        self
    }
}

fn record(kind: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut r = json!({"kind": kind, "id": new_record_id(), "trace_id": "trc_bad", "ts": now_us()});
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    r
}

fn batch(records: Vec<serde_json::Value>) -> Vec<u8> {
    json!({ "records": records }).to_string().into_bytes()
}

#[test]
fn bad_requests_get_clear_4xx_answers_and_change_nothing() {
    // Small limits so that the size cases stay cheap.
    let server = Server::start_with(
        &[
            "--max-body-bytes",
            "256KiB",
            "--max-decompressed-bytes",
            "1MiB",
        ],
        &[],
    );

    // Data stored before the table.
    let run = server
        .post("/api/v1/runs", &json!({"project": "safe", "phase": "eval"}))
        .expect(201);
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let good = TraceBuilder::new("trc_safe")
        .open(&run_id, Phase::Eval, None, Some("q1"))
        .message("assistant", "fine", 3, 4, 0.01)
        .close(RolloutStatus::Completed);
    server.ingest(&good.batch()).expect(200);
    let trace_before = server.get("/api/v1/traces/trc_safe").expect(200);
    let traces_before = server.get("/api/v1/traces").expect(200);
    let projects_before = server.get("/api/v1/projects").expect(200);

    let item = |item: serde_json::Value| record("item", json!({ "item": item }));
    let too_big = vec![b' '; 300 << 10];
    let bomb = zstd::encode_all(&vec![b' '; 2 << 20][..], 19).expect("zstd");
    let long_name = "x".repeat(300);
    let run_steps = format!("/api/v1/runs/{run_id}/steps");

    let cases = vec![
        case("malformed JSON", "POST", "/api/v1/ingest", r#"{"records": ["#).mentions(&["line 1", "column"]),
        case("wrong type", "POST", "/api/v1/ingest", r#"{"records": "many"}"#).mentions(&["records", "sequence"]),
        case("unknown record kind", "POST", "/api/v1/ingest", batch(vec![record("span", json!({}))]))
            .mentions(&["records[0]", "span"]),
        case("unknown item type", "POST", "/api/v1/ingest", batch(vec![item(json!({"type": "video", "name": "x"}))]))
            .mentions(&["records[0]", "video"]),
        case(
            "unknown item field",
            "POST",
            "/api/v1/ingest",
            batch(vec![item(json!({"type": "message", "role": "user", "input_token": 3}))]),
        )
        .mentions(&["input_token"]),
        case("unknown top-level field", "POST", "/api/v1/ingest", r#"{"records": [], "compress": true}"#)
            .mentions(&["compress"]),
        case(
            "bad record id",
            "POST",
            "/api/v1/ingest",
            batch(vec![json!({"kind": "status", "id": "nope", "trace_id": "t", "ts": now_us(), "status": "ERROR"})]),
        )
        .mentions(&["records[0]", "UUID"]),
        case(
            "timestamp in seconds",
            "POST",
            "/api/v1/ingest",
            batch(vec![
                record("status", json!({"status": "ERROR"})),
                record("status", json!({"status": "ERROR", "ts": now_us() / 1_000_000})),
            ]),
        )
        .mentions(&["records[1].ts", "microseconds"]),
        case(
            "negative cost",
            "POST",
            "/api/v1/ingest",
            batch(vec![item(json!({"type": "message", "role": "assistant", "cost_usd": -1.0}))]),
        )
        .mentions(&["records[0].item.cost_usd", ">= 0"]),
        case("invalid UTF-8", "POST", "/api/v1/ingest", b"{\"records\": [\"\xff\xfe\"]}".to_vec())
            .mentions(&["UTF-8", "offset 14"]),
        case("empty body", "POST", "/api/v1/ingest", Vec::new()).mentions(&["empty"]),
        case("trailing garbage", "POST", "/api/v1/ingest", r#"{"records": []} {}"#).mentions(&["trailing"]),
        case("body over the limit", "POST", "/api/v1/ingest", too_big)
            .status(413, "payload_too_large")
            .mentions(&["262144 bytes (256 KiB)"]),
        case("zip bomb", "POST", "/api/v1/ingest", bomb)
            .headers(&[("Content-Type", "application/json"), ("Content-Encoding", "zstd")])
            .status(413, "payload_too_large")
            .mentions(&["decompressed", "1048576 bytes (1 MiB)"]),
        case("corrupt gzip", "POST", "/api/v1/ingest", b"not gzip at all".to_vec())
            .headers(&[("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
            .mentions(&["gzip"]),
        case("unsupported encoding", "POST", "/api/v1/ingest", r#"{"records": []}"#)
            .headers(&[("Content-Type", "application/json"), ("Content-Encoding", "br")])
            .status(415, "unsupported_media_type")
            .mentions(&["\"br\"", "gzip", "zstd"]),
        case("wrong content type", "POST", "/api/v1/ingest", r#"{"records": []}"#)
            .headers(&[("Content-Type", "text/plain")])
            .status(415, "unsupported_media_type")
            .mentions(&["text/plain", "application/json"]),
        case("unknown route", "GET", "/api/v1/nothing-here", "").status(404, "not_found").mentions(&["/api/v1/nothing-here"]),
        case("unknown route outside the API", "GET", "/index.php", "").status(404, "not_found").mentions(&["/index.php"]),
        case("wrong method", "DELETE", "/api/v1/projects", "")
            .status(405, "method_not_allowed")
            .mentions(&["DELETE", "/api/v1/projects"]),
        case("GET on ingest", "GET", "/api/v1/ingest", "").status(405, "method_not_allowed").mentions(&["GET"]),
        case("bad query value", "GET", "/api/v1/traces?limit=many", "").mentions(&["limit", "invalid digit"]),
        case("unknown query parameter", "GET", "/api/v1/traces?colour=red", "").mentions(&["colour", "project"]),
        case("limit out of range", "GET", "/api/v1/traces?limit=5000", "").mentions(&["limit", "1..=1000"]),
        case("unknown status", "GET", "/api/v1/traces?status=DONE", "").mentions(&["status", "DONE", "COMPLETED"]),
        case("unknown sort", "GET", "/api/v1/traces?sort=random", "").mentions(&["sort", "random"]),
        case("bad step in path", "GET", &format!("{run_steps}/three"), "").mentions(&["step", "three"]),
        case("negative step in body", "POST", &run_steps, r#"{"step": -1}"#).mentions(&["step", ">= 0"]),
        case("control character in path", "GET", "/api/v1/projects/a%01b", "").mentions(&["project", "control"]),
        case("name too long", "POST", "/api/v1/projects", json!({ "name": long_name }).to_string())
            .mentions(&["name", "300 bytes", "256"]),
        case("empty project name", "POST", "/api/v1/projects", r#"{"name": ""}"#).mentions(&["name", "empty"]),
        case("run without phase", "POST", "/api/v1/runs", r#"{"project": "safe"}"#).mentions(&["phase"]),
        case("run with unknown phase", "POST", "/api/v1/runs", r#"{"project": "safe", "phase": "dev"}"#)
            .mentions(&["phase", "dev", "eval"]),
        case("grade with an object value", "POST", "/api/v1/traces/trc_safe/grades", r#"{"name": "r", "value": {}}"#)
            .mentions(&["value", "a number, a bool or a string label"]),
        case("grade of an unknown trace", "POST", "/api/v1/traces/trc_nope/grades", r#"{"name": "r", "value": 1}"#)
            .status(404, "not_found")
            .mentions(&["trc_nope"]),
        case("unknown run", "GET", "/api/v1/runs/run_nope", "").status(404, "not_found").mentions(&["run_nope"]),
        case("unknown trace", "GET", "/api/v1/traces/trc_nope", "").status(404, "not_found").mentions(&["trc_nope"]),
        case("unknown project", "GET", "/api/v1/projects/nope/traces", "").status(404, "not_found").mentions(&["nope"]),
        case("scope contradiction", "GET", "/api/v1/projects/safe/traces?project=other", "")
            .mentions(&["project", "other", "safe"]),
        case("datapoints not a list", "POST", "/api/v1/projects/safe/datapoints", r#"{"datapoints": {"id": "q"}}"#)
            .mentions(&["datapoints", "sequence"]),
        case(
            "datapoint with empty id",
            "POST",
            "/api/v1/projects/safe/datapoints",
            r#"{"datapoints": [{"id": "ok"}, {"id": ""}]}"#,
        )
        .mentions(&["datapoints[1].id", "empty"]),
        case(
            "tokens past 2^40 (they overflowed sums)",
            "POST",
            "/api/v1/ingest",
            batch(vec![item(json!({"type": "message", "role": "assistant", "input_tokens": 9_223_372_036_854_775_807_u64}))]),
        )
        .mentions(&["records[0].item.input_tokens", "limit of 1099511627776"]),
        case(
            "cost past the bound (sums reached infinity)",
            "POST",
            "/api/v1/ingest",
            batch(vec![item(json!({"type": "message", "role": "assistant", "cost_usd": 1e308}))]),
        )
        .mentions(&["records[0].item.cost_usd", "limit of 1000000"]),
        case(
            "empty metadata key",
            "POST",
            "/api/v1/ingest",
            batch(vec![record("metadata", json!({"metadata": {"": 1}}))]),
        )
        .mentions(&["records[0].metadata", "key", "empty"]),
        case(
            "metadata key with NUL",
            "POST",
            "/api/v1/ingest",
            batch(vec![record("metadata", json!({"metadata": {"a\u{0}b": 1}}))]),
        )
        .mentions(&["records[0].metadata", "control characters"]),
        case(
            "metadata key too long, cut in the message",
            "POST",
            "/api/v1/ingest",
            batch(vec![record("metadata", json!({"metadata": {"k".repeat(100_000): 1}}))]),
        )
        .mentions(&["records[0].metadata", "100000 bytes", "…"]),
        case(
            "too many metadata keys in one record",
            "POST",
            "/api/v1/ingest",
            batch(vec![record(
                "trace_open",
                json!({"turn_id": new_record_id(), "project": "safe",
                       "metadata": (0..1001).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
            )]),
        )
        .mentions(&["records[0].metadata", "1001 keys", "limit is 1000"]),
        case(
            "tool_call_id with a control character",
            "POST",
            "/api/v1/ingest",
            batch(vec![item(json!({"type": "message", "role": "tool", "tool_call_id": "call\n1"}))]),
        )
        .mentions(&["records[0].item.tool_call_id", "control"]),
        case(
            "message name too long",
            "POST",
            "/api/v1/ingest",
            batch(vec![item(json!({"type": "message", "role": "user", "name": long_name}))]),
        )
        .mentions(&["records[0].item.name", "256"]),
        case(
            "grade with a control character in its grader",
            "POST",
            "/api/v1/traces/trc_safe/grades",
            r#"{"name": "r", "value": 1, "grader": "a\u0007b"}"#,
        )
        .mentions(&["grader", "control"]),
        case("timeseries since that wraps", "GET", "/api/v1/projects/safe/timeseries?since=-9223372036854775808", "")
            .mentions(&["since", "-9223372036854775808", "1970"]),
        case("timeseries until past the year 3000", "GET", "/api/v1/projects/safe/timeseries?until=9223372036854775807", "")
            .mentions(&["until", "3000"]),
        case("a long bad value is cut in the message", "GET", &format!("/api/v1/projects/safe/timeseries?bucket={}", "9".repeat(5000)), "")
            .mentions(&["bucket", "…"]),
    ];
    assert!(cases.len() >= 20);

    for c in &cases {
        let mut req = ureq::http::Request::builder()
            .method(c.method)
            .uri(server.url(&c.path));
        for (k, v) in &c.headers {
            req = req.header(*k, *v);
        }
        let reply =
            common::Reply::from(server.agent.run(req.body(c.body.clone()).expect("request")));
        assert_eq!(reply.status, c.status, "{}: {}", c.name, reply.text);
        assert!(
            reply.content_type.starts_with("application/json"),
            "{}: {}",
            c.name,
            reply.content_type
        );
        let message = reply.error_message();
        assert_eq!(
            reply.json["error"]["code"], c.code,
            "{}: {}",
            c.name, reply.text
        );
        assert!(
            message.len() <= 1_100,
            "{}: the message echoes too much ({} bytes)",
            c.name,
            message.len()
        );
        for word in &c.mentions {
            assert!(
                message.contains(word),
                "{}: message {message:?} does not mention {word:?}",
                c.name
            );
        }
    }

    // Nothing of it was stored, nothing stored before changed, and the server still answers.
    assert_eq!(
        server.get("/api/v1/traces/trc_safe").expect(200),
        trace_before
    );
    assert_eq!(server.get("/api/v1/traces").expect(200), traces_before);
    assert_eq!(server.get("/api/v1/projects").expect(200), projects_before);
    server.get("/api/v1/traces/trc_bad").expect(404);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn a_batch_with_one_bad_record_stores_nothing() {
    let server = Server::start();
    let mut records = TraceBuilder::new("trc_half")
        .open("proj", Phase::Prod, None, None)
        .message("user", "ok", 1, 0, 0.0)
        .close(RolloutStatus::Completed)
        .batch()
        .records;
    let mut bad = serde_json::to_value(&records[1]).expect("record");
    bad["trace_id"] = json!("");
    let mut body = serde_json::to_value(caribou_model::Batch {
        records: std::mem::take(&mut records),
    })
    .expect("batch");
    body["records"].as_array_mut().expect("records").push(bad);
    let reply = server.post("/api/v1/ingest", &body);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.error_message().contains("records[3].trace_id"),
        "{}",
        reply.text
    );
    server.get("/api/v1/traces/trc_half").expect(404);
    assert_eq!(server.get("/api/v1/traces").expect(200)["data"], json!([]));
}
