//! One buggy agent or one hostile client must not hurt anyone else: each test is a way found to
//! hurt Kestrel, tried on the real binary. The figures the issue asks for (how long a small
//! ingest stalls during an abusive one, how long a query runs past its deadline, the peak memory
//! of concurrent huge ingests) are printed; run with `--nocapture` to read them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caribou_model::{Phase, RolloutStatus, new_record_id, now_us};
use common::{Server, TraceBuilder};
use serde_json::{Value, json};

/// A record of `kind` for `trace` with `extra` fields.
fn record(kind: &str, trace: &str, ts: i64, extra: Value) -> Value {
    let mut r = json!({"kind": kind, "id": new_record_id(), "trace_id": trace, "ts": ts});
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    r
}

fn opening(trace: &str, ts: i64, project: &str) -> Value {
    record(
        "trace_open",
        trace,
        ts,
        json!({"turn_id": new_record_id(), "project": project}),
    )
}

fn body(records: &[Value]) -> Vec<u8> {
    json!({ "records": records }).to_string().into_bytes()
}

fn post_zstd(server: &Server, records: &[Value]) -> common::Reply {
    let packed = zstd::encode_all(&body(records)[..], 1).expect("zstd");
    server.post_raw(
        "/api/v1/ingest",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "zstd"),
        ],
        &packed,
    )
}

/// A small SDK-like batch: one complete trace.
fn small_trace(i: usize) -> caribou_model::Batch {
    TraceBuilder::new(&format!("trc_small_{i}"))
        .open("bystander", Phase::Prod, None, None)
        .message("user", "hello", 3, 4, 0.001)
        .close(RolloutStatus::Completed)
        .batch()
}

#[test]
fn an_abusive_ingest_never_holds_other_clients_ingest() {
    let server = Arc::new(Server::start());
    let t0 = now_us() - 3_600_000_000;

    // 200,000 distinct metadata keys in one record (~200 KB compressed): refused at once.
    let keys: serde_json::Map<String, Value> =
        (0..200_000).map(|i| (format!("k{i}"), json!(i))).collect();
    let started = Instant::now();
    let reply = post_zstd(
        &server,
        &[record(
            "metadata",
            "trc_keys",
            t0,
            json!({ "metadata": keys }),
        )],
    );
    println!(
        "200,000 metadata keys in one record: {} in {:?}",
        reply.status,
        started.elapsed()
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.error_message().contains("the limit is 1000"),
        "{}",
        reply.text
    );

    // A heavy batch within every per-record bound: 300 traces of 1,000 tags each (300,000 tag
    // rows). While it is written, small batches of other clients keep being acknowledged.
    let mut heavy = Vec::new();
    for t in 0..300 {
        let trace = format!("trc_tagged_{t}");
        heavy.push(opening(&trace, t0, "heavy"));
        for chunk in 0..4 {
            let tags: Vec<String> = (0..250)
                .map(|i| format!("tag{}", chunk * 250 + i))
                .collect();
            heavy.push(record(
                "tags",
                &trace,
                t0 + 1 + chunk,
                json!({ "tags": tags }),
            ));
        }
    }
    let heavy_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, done) = (Arc::clone(&server), Arc::clone(&heavy_done));
        std::thread::spawn(move || {
            let started = Instant::now();
            let reply = post_zstd(&server, &heavy);
            done.store(true, Ordering::SeqCst);
            (reply, started.elapsed())
        })
    };
    let mut during = Vec::new();
    let mut i = 0;
    while !heavy_done.load(Ordering::SeqCst) && i < 2_000 {
        let started = Instant::now();
        server.ingest(&small_trace(i)).expect(200);
        if !heavy_done.load(Ordering::SeqCst) {
            during.push(started.elapsed());
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (reply, heavy_time) = writer.join().expect("heavy writer");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let worst = during.iter().max().copied().unwrap_or_default();
    println!(
        "heavy batch (300,000 tags) took {heavy_time:?}; {} small ingests acknowledged meanwhile, \
         the slowest in {worst:?}",
        during.len()
    );
    assert!(
        during.len() >= 2,
        "small ingests waited for the whole heavy batch (acknowledged during it: {})",
        during.len()
    );
    let tagged = server.get("/api/v1/traces/trc_tagged_299").expect(200);
    assert_eq!(tagged["tags"].as_array().map(Vec::len), Some(1000));
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn a_trace_id_of_another_project_is_a_409_and_nothing_merges() {
    let server = Server::start();
    let first = TraceBuilder::new("trc_session_42")
        .open("shop-a", Phase::Prod, None, Some("s42"))
        .message("user", "from a", 1, 1, 0.0)
        .close(RolloutStatus::Completed);
    server.ingest(&first.batch()).expect(200);
    let second = TraceBuilder::new("trc_session_42")
        .open("shop-b", Phase::Prod, None, Some("s42"))
        .message("user", "from b", 9, 9, 0.0)
        .close(RolloutStatus::Completed);
    let reply = server.ingest(&second.batch());
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.json["error"]["code"], "conflict");
    let message = reply.error_message();
    assert!(
        message.contains("shop-a") && message.contains("shop-b"),
        "{message}"
    );
    let trace = server.get("/api/v1/traces/trc_session_42").expect(200);
    assert_eq!(trace["project"], "shop-a");
    assert_eq!(trace["items"].as_array().map(Vec::len), Some(1));
    server.get("/api/v1/projects/shop-b").expect(404);
}

#[test]
fn a_record_id_resent_with_other_content_is_a_409() {
    let server = Server::start();
    let trace = TraceBuilder::new("trc_ids")
        .open("ids", Phase::Prod, None, None)
        .message("assistant", "the first copy", 5, 5, 0.5)
        .close(RolloutStatus::Completed);
    let batch = trace.batch();
    server.ingest(&batch).expect(200);
    let again = server.ingest(&batch).expect(200);
    assert_eq!(again["accepted"], 0, "an exact retry is a duplicate");
    let mut changed = serde_json::to_value(&batch).expect("batch");
    changed["records"][1]["item"]["content"] = json!("another text under the same id");
    let reply = server.post("/api/v1/ingest", &changed);
    assert_eq!(reply.status, 409, "{}", reply.text);
    let id = batch.records[1].id().to_string();
    assert!(reply.error_message().contains(&id), "{}", reply.text);
    let stored = server.get("/api/v1/traces/trc_ids").expect(200);
    assert_eq!(stored["items"][0]["content"], "the first copy");
}

#[test]
fn figures_at_their_bounds_never_make_an_aggregate_fail() {
    let server = Server::start();
    // Two messages of 2^63-1 tokens wrapped a trace's sum and made every aggregate over it fail:
    // such counts are refused now.
    for field in ["input_tokens", "cost_usd"] {
        let value = if field == "cost_usd" {
            json!(1e308)
        } else {
            json!(i64::MAX)
        };
        let reply = server.post(
            "/api/v1/ingest",
            &json!({"records": [
                opening("trc_absurd", now_us() - 1000, "big"),
                record("item", "trc_absurd", now_us() - 999,
                       json!({"item": {"type": "message", "role": "assistant", field: value}})),
                record("item", "trc_absurd", now_us() - 998,
                       json!({"item": {"type": "message", "role": "assistant", field: value}})),
            ]}),
        );
        assert_eq!(reply.status, 400, "{field}: {}", reply.text);
        assert!(reply.error_message().contains(field), "{}", reply.text);
    }
    server.get("/api/v1/stats?project=big").expect(200);
    // Figures at their bounds, summed over many messages and traces.
    let run = server
        .post("/api/v1/runs", &json!({"project": "big", "phase": "train"}))
        .expect(201);
    let run_id = run["id"].as_str().expect("run id").to_owned();
    for t in 0..3 {
        let mut trace = TraceBuilder::new(&format!("trc_big_{t}")).open(
            &run_id,
            Phase::Train,
            Some(0),
            Some("q"),
        );
        for _ in 0..50 {
            trace = trace.message("assistant", "x", 1 << 40, 1 << 40, 1_000_000.0);
        }
        server
            .ingest(&trace.close(RolloutStatus::Completed).batch())
            .expect(200);
    }
    let stats = server.get("/api/v1/stats?project=big").expect(200);
    assert_eq!(stats["input_tokens"], json!(150_u64 << 40));
    assert_eq!(stats["cost_usd"], json!(150_000_000.0));
    let steps = server
        .get(&format!("/api/v1/runs/{run_id}/steps"))
        .expect(200);
    assert_eq!(steps["data"][0]["rollouts"], 3);
    server
        .get("/api/v1/projects/big/timeseries?since=24h")
        .expect(200);
    let listed = common::kestrel()
        .args(["traces", "--url", &server.base, "--json", "project:big"])
        .output()
        .expect("kestrel traces");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

#[test]
fn strings_past_the_limit_are_refused_with_the_limit_named() {
    let server = Server::start();
    let huge = "y".repeat((8 << 20) + 1);
    let reply = post_zstd(
        &server,
        &[record(
            "item",
            "trc_huge",
            now_us(),
            json!({"item": {"type": "tool_execution", "name": "read", "result": {"text": huge}}}),
        )],
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    let message = reply.error_message();
    assert!(
        message.contains("records[0].item.result") && message.contains("the limit is 8388608"),
        "{message}"
    );
    let packed = zstd::encode_all(
        json!({"datapoints": [{"id": "big", "input": huge}]})
            .to_string()
            .as_bytes(),
        1,
    )
    .expect("zstd");
    let reply = server.post_raw(
        "/api/v1/projects/p/datapoints",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "zstd"),
        ],
        &packed,
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.error_message().contains("datapoints[0].input"),
        "{}",
        reply.text
    );
}

#[test]
fn a_query_past_its_deadline_is_stopped_with_a_503() {
    let server = Server::start_with(&["--query-timeout", "1ms"], &[]);
    let t0 = now_us() - 3_600_000_000;
    let mut records = Vec::new();
    for t in 0..4_000 {
        let trace = format!("trc_q_{t}");
        records.push(opening(&trace, t0 + t, "queried"));
        records.push(record(
            "item",
            &trace,
            t0 + t + 1,
            json!({"item": {"type": "message", "role": "user", "content": format!("word{} common", t % 97)}}),
        ));
        records.push(record(
            "metadata",
            &trace,
            t0 + t + 2,
            json!({"metadata": {"n": t, "customer": format!("c{}", t % 13)}}),
        ));
    }
    post_zstd(&server, &records).expect(200);
    let started = Instant::now();
    let reply = server.get("/api/v1/stats?q=meta.n%3E10%20-meta.customer:c1%20-tag:x");
    let took = started.elapsed();
    println!(
        "a query over 4,000 traces with a 1 ms deadline: {} after {took:?}",
        reply.status
    );
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json["error"]["code"], "query_timeout");
    assert!(
        reply.error_message().contains("--query-timeout"),
        "{}",
        reply.text
    );
    server.get("/healthz").expect(200);
}

/// Peak resident memory of a process (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    common::status_mib(pid, "VmHWM")
}

#[test]
fn sixteen_concurrent_huge_ingests_stay_within_memory() {
    // Bodies sent as they are (no compression to pay in the test): the wire limit raised to fit.
    let server = Arc::new(Server::start_with(&["--max-body-bytes", "64MiB"], &[]));
    let t0 = now_us() - 3_600_000_000;
    let mut records = vec![opening("trc_huge_ingest", t0, "huge")];
    let mut size = 0;
    let mut i = 0;
    while size < 60 << 20 {
        let content: String = (0..400).map(|j| format!("token{i}_{j} ")).collect();
        size += content.len() + 150;
        records.push(record(
            "item",
            "trc_huge_ingest",
            t0 + 1 + i,
            json!({"item": {"type": "message", "role": "user", "content": content}}),
        ));
        i += 1;
    }
    let payload = Arc::new(body(&records));
    drop(records);
    let before = peak_rss_mib(server.pid());
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (server, payload) = (Arc::clone(&server), Arc::clone(&payload));
            std::thread::spawn(move || {
                let reply = server.post_raw(
                    "/api/v1/ingest",
                    &[("Content-Type", "application/json")],
                    &payload,
                );
                (reply.status, reply.json["error"]["code"].clone())
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = senders
        .into_iter()
        .map(|s| s.join().expect("sender"))
        .collect();
    let peak = peak_rss_mib(server.pid());
    let stored = answers.iter().filter(|(s, _)| *s == 200).count();
    let overloaded = answers
        .iter()
        .filter(|(s, c)| *s == 503 && c == "overloaded")
        .count();
    println!(
        "16 concurrent ingests of {} MiB: {stored} stored, {overloaded} answered 503 overloaded; \
         peak RSS {peak:.0} MiB (before {before:.0} MiB)",
        payload.len() >> 20
    );
    assert!(stored >= 1, "{answers:?}");
    assert_eq!(stored + overloaded, 16, "{answers:?}");
    assert!(peak < 1024.0, "peak RSS {peak:.0} MiB");
}
