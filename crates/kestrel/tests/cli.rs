//! Black-box tests of the client commands: a real `kestrel serve` on a free port, traces loaded
//! through the ingest API, and the built `kestrel` binary run against it, its output read.

#[path = "common/cli.rs"]
mod cli_common;
mod common;

use caribou_model::{Batch, Record};
use cli_common::{cli, create_run, ok_trace, run_cli, weather_trace};
use common::{Server, free_port};
use serde_json::Value;

/// Asserts each piece appears in `text`, in this order.
#[track_caller]
fn assert_in_order(text: &str, pieces: &[&str]) {
    let mut from = 0;
    for want in pieces {
        let at = text[from..]
            .find(want)
            .unwrap_or_else(|| panic!("{want:?} not found after byte {from} in:\n{text}"));
        from += at + want.len();
    }
}

/// A server with a run of two steps: a failed weather rollout at step 1, two good ones at step 2.
struct Fixture {
    server: Server,
    run_id: String,
}

const FAILED: &str = "trc_cli_weather";
const GOOD_A: &str = "trc_cli_good_a";
const GOOD_B: &str = "trc_cli_good_b";

fn fixture() -> Fixture {
    let server = Server::start();
    let run_id = create_run(&server, "math-rl");
    let mut records: Vec<Record> = Vec::new();
    records.extend(weather_trace(FAILED, &run_id, 1).records);
    records.extend(ok_trace(GOOD_A, &run_id, 2, 1.0).records);
    records.extend(ok_trace(GOOD_B, &run_id, 2, 0.5).records);
    server.ingest(&Batch { records }).expect(200);
    Fixture { server, run_id }
}

#[test]
fn trace_shows_the_conversation() {
    let f = fixture();
    let text = cli(&f.server, &["trace", FAILED]).ok();
    assert_in_order(
        &text,
        &[
            &format!("trace {FAILED}  ERROR"),
            "model      gpt-4o",
            &format!("project math-rl · run {} · phase train · step 1", f.run_id),
            "datapoint  q-weather",
            "tokens     120 in / 30 out",
            "cost       $0.0021",
            "tags       premium, weather",
            "\"customer_id\": \"cust_123\"",
            "grades     reward=0.25",
            "── turn 1/1",
            "[system]",
            "You are a weather bot.",
            "[user]",
            "Is it raining in Paris?",
            "[assistant]",
            "gpt-4o · 120 / 30 tokens · $0.0021",
            "Let me look that up.",
            "→ tool call get_weather (call_42)",
            // The arguments were a JSON string: shown as pretty JSON.
            "        {\n          \"city\": \"Paris\",\n          \"unit\": \"C\"\n        }",
            "[tool get_weather]",
            "call call_42 · 85ms",
            "arguments:\n        {\n          \"city\": \"Paris\",",
            "result:\n        light rain, 14C",
            "[event cache_miss]",
            "warn",
            "\"key\": \"paris-weather\"",
            "[grade reward]",
            "= 0.25 · by verifier-v1",
            "answered late",
            "error: TimeoutError: weather API timed out",
            "traceback:\n    Traceback (most recent call last):\n      File \"agent.py\", line 12, in run",
        ],
    );
    // Not a terminal: no colour codes.
    assert!(!text.contains('\x1b'), "{text:?}");

    let json = cli(&f.server, &["trace", FAILED, "--json"]).json();
    assert_eq!(json["trace_id"], FAILED);
    assert_eq!(json["status"], "ERROR");
    assert_eq!(
        json["traceback"].as_str().map(|t| t.contains("agent.py")),
        Some(true)
    );
    let kinds: Vec<&str> = json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "message",
            "tool_execution",
            "event",
            "grade"
        ]
    );
}

#[test]
fn trace_truncates_only_when_asked() {
    let server = Server::start();
    let run_id = create_run(&server, "p");
    let long = format!("start {} end", "lorem ipsum ".repeat(500));
    let b = common::TraceBuilder::new("trc_long")
        .open(&run_id, caribou_model::Phase::Eval, None, None)
        .message("user", &long, 0, 0, 0.0)
        .close(caribou_model::RolloutStatus::Completed);
    server.ingest(&b.batch()).expect(200);
    let whole = cli(&server, &["trace", "trc_long"]).ok();
    assert!(whole.contains(&long), "{whole}");
    let cut = cli(&server, &["trace", "trc_long", "--truncate=50"]).ok();
    assert!(!cut.contains(" end"), "{cut}");
    assert!(cut.contains("chars]"), "{cut}");
}

#[test]
fn traces_lists_filters_and_pages() {
    let f = fixture();
    let s = &f.server;

    let text = cli(s, &["traces"]).ok();
    let header = text.lines().next().unwrap_or("");
    for column in [
        "time (UTC)",
        "trace",
        "status",
        "project/run/step",
        "model",
        "datapoint",
        "grades",
        "tokens in/out",
        "cost",
        "duration",
        "tags",
    ] {
        assert!(header.contains(column), "{column:?} missing in {header:?}");
    }
    let row = text
        .lines()
        .find(|l| l.contains(FAILED))
        .unwrap_or_else(|| panic!("no row of {FAILED}:\n{text}"));
    assert_in_order(
        row,
        &[
            FAILED,
            "ERROR",
            &format!("math-rl/{}/1", f.run_id),
            "gpt-4o",
            "q-weather",
            "reward=0.25",
            "120 / 30",
            "$0.0021",
            "premium,weather",
        ],
    );
    assert!(text.contains(GOOD_A) && text.contains(GOOD_B), "{text}");

    // The search language, as in the UI's box.
    let text = cli(s, &["traces", "status:error"]).ok();
    assert!(text.contains(FAILED), "{text}");
    assert!(!text.contains(GOOD_A), "{text}");
    let text = cli(s, &["traces", "tag:premium meta.customer_id:cust_123"]).ok();
    assert!(text.contains(FAILED) && !text.contains(GOOD_B), "{text}");

    // Sorting by a grade, and --json for scripts.
    let json = cli(s, &["traces", "--sort", "grade", "--json"]).json();
    let ids: Vec<&str> = json["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|t| t["trace_id"].as_str())
        .collect();
    assert_eq!(ids, [GOOD_A, GOOD_B, FAILED]);
    let json = cli(s, &["traces", "--sort", "grade-asc", "--json"]).json();
    assert_eq!(json["data"][0]["trace_id"], FAILED);

    // A limit stops early and says how to go on; the cursor continues.
    let limited = cli(s, &["traces", "--limit", "1", "--sort", "oldest"]);
    assert_eq!(limited.code, 0, "{}", limited.stderr);
    assert!(limited.stderr.contains("--cursor"), "{}", limited.stderr);
    let json = cli(s, &["traces", "--limit", "2", "--sort", "oldest", "--json"]).json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(2));
    let cursor = json["next_cursor"].as_str().expect("a cursor").to_owned();
    let rest = cli(
        s,
        &["traces", "--sort", "oldest", "--cursor", &cursor, "--json"],
    )
    .json();
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next_cursor"], Value::Null);

    // Scoped by run and project.
    let json = cli(s, &["traces", "--run", &f.run_id, "--all", "--json"]).json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(3));
    let json = cli(s, &["traces", "--project", "math-rl", "--json"]).json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(3));
    let json = cli(s, &["traces", "--project", "elsewhere", "--json"]).json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(0));

    // Nothing matching: an empty table is a note on stderr, not an error.
    let none = cli(s, &["traces", "model:claude-9"]);
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert_eq!(none.stdout, "");
    assert!(none.stderr.contains("no traces match"), "{}", none.stderr);
}

#[test]
fn all_follows_cursors_across_pages() {
    let server = Server::start();
    let run_id = create_run(&server, "bulk");
    let mut records = Vec::new();
    for i in 0..1205 {
        records.extend(ok_trace(&format!("trc_bulk_{i:04}"), &run_id, 0, 1.0).records);
    }
    server.ingest(&Batch { records }).expect(200);

    let json = cli(&server, &["traces", "--all", "--json"]).json();
    let data = json["data"].as_array().expect("data");
    assert_eq!(data.len(), 1205);
    let mut ids: Vec<&str> = data.iter().filter_map(|t| t["trace_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1205, "a trace was listed twice");
    assert_eq!(json["next_cursor"], Value::Null);

    let json = cli(&server, &["traces", "--limit", "1100", "--json"]).json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(1100));
    assert!(json["next_cursor"].is_string());

    // stderr is not a terminal here: no progress bar is drawn into it.
    let run = cli(&server, &["traces", "--all"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stderr, "");
    assert_eq!(run.stdout.lines().count(), 1206);
}

#[test]
fn projects_runs_and_steps() {
    let f = fixture();
    let s = &f.server;

    let text = cli(s, &["projects"]).ok();
    assert!(text.starts_with("project"), "{text}");
    assert!(text.contains("math-rl"), "{text}");
    let json = cli(s, &["projects", "--json"]).json();
    assert_eq!(json["data"][0]["name"], "math-rl");

    let text = cli(s, &["runs", "--project", "math-rl"]).ok();
    assert_in_order(&text, &[&f.run_id, "math-rl", "train", "grpo-7b", "\"lr\""]);
    let json = cli(s, &["runs", "--json"]).json();
    assert_eq!(json["data"][0]["id"], f.run_id.as_str());
    let none = cli(s, &["runs", "--project", "nothing-here", "--json"]).json();
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    let none = cli(s, &["runs", "--project", "nothing-here"]);
    assert_eq!((none.code, none.stdout.as_str()), (0, ""));
    assert!(none.stderr.contains("no runs"), "{}", none.stderr);

    let text = cli(s, &["steps", &f.run_id]).ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("reward.mean"), "{text}");
    assert!(lines[0].contains("reward.p90"), "{text}");
    let step1: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&step1[..4], ["1", "1", "ERROR", "1"], "{text}");
    let step2: Vec<&str> = lines[2].split_whitespace().collect();
    // step, rollouts, status, then reward mean, min, max.
    assert_eq!(
        &step2[..6],
        ["2", "2", "COMPLETED", "2", "0.75", "0.5"],
        "{text}"
    );

    let json = cli(s, &["steps", &f.run_id, "--json"]).json();
    let steps = json["data"].as_array().expect("data");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1]["grades"]["reward"]["mean"], 0.75);

    // Figures over the rollouts matching a query only.
    let json = cli(s, &["steps", &f.run_id, "status:completed", "--json"]).json();
    let rollouts: Vec<u64> = json["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|st| st["rollouts"].as_u64())
        .collect();
    assert_eq!(rollouts.iter().sum::<u64>(), 2, "{json}");
}

#[test]
fn grade_stores_a_grade() {
    let f = fixture();
    let s = &f.server;
    let out = cli(
        s,
        &[
            "grade",
            GOOD_A,
            "correct",
            "true",
            "--comment",
            "checked by hand",
            "--grader",
            "human",
        ],
    )
    .ok();
    assert!(out.contains("correct = true"), "{out}");
    cli(s, &["grade", GOOD_A, "reward", "-0.5"]).ok();
    let json = cli(
        s,
        &["grade", GOOD_A, "verdict", "partially_right", "--json"],
    )
    .json();
    assert_eq!(json["type"], "grade");
    assert_eq!(json["value"], "partially_right");

    let trace = s.get(&format!("/api/v1/traces/{GOOD_A}")).expect(200);
    let grade = |name: &str| {
        trace["grades"]
            .as_array()
            .expect("grades")
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| g["value"].clone())
    };
    assert_eq!(grade("correct"), Some(Value::Bool(true)));
    assert_eq!(grade("reward").and_then(|v| v.as_f64()), Some(-0.5));
    assert_eq!(grade("verdict"), Some(Value::from("partially_right")));
    let stored = trace["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "correct")
        .expect("the grade item");
    assert_eq!(stored["comment"], "checked by hand");
    assert_eq!(stored["grader"], "human");

    let missing = cli(s, &["grade", "trc_nope", "reward", "1"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("trc_nope"), "{}", missing.stderr);
}

#[test]
fn errors_are_plain_and_exit_codes_differ() {
    let f = fixture();
    let s = &f.server;

    // A mistake in a query: the server's message, exit 1.
    let bad = cli(s, &["traces", "stauts:error"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.starts_with("error: "), "{}", bad.stderr);
    assert!(bad.stderr.contains("stauts"), "{}", bad.stderr);
    assert!(bad.stderr.contains("did you mean"), "{}", bad.stderr);
    assert_eq!(bad.stdout, "");
    let api = s.get("/api/v1/traces?q=stauts:error");
    assert_eq!(api.status, 400);
    assert!(
        bad.stderr.contains(&api.error_message()),
        "{} vs {}",
        bad.stderr,
        api.text
    );

    let missing = cli(s, &["trace", "trc_missing"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no trace with id \"trc_missing\""),
        "{}",
        missing.stderr
    );

    // Nobody listening.
    let url = format!("http://127.0.0.1:{}", free_port());
    let down = run_cli(&["traces", "--url", &url], &[]);
    assert_eq!(down.code, 1);
    assert!(
        down.stderr
            .contains(&format!("cannot reach Kestrel at {url}")),
        "{}",
        down.stderr
    );
    assert!(
        down.stderr.contains("is `kestrel serve` running?"),
        "{}",
        down.stderr
    );

    let not_http = run_cli(&["projects", "--url", "127.0.0.1:8750"], &[]);
    assert_eq!(not_http.code, 1);
    assert!(
        not_http.stderr.contains("not an http URL"),
        "{}",
        not_http.stderr
    );

    // Usage errors are clap's, exit 2.
    let usage = run_cli(&["traces", "--sort", "sideways"], &[]);
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("sideways"), "{}", usage.stderr);
    assert_eq!(run_cli(&["grade", "trc_1", "reward"], &[]).code, 2);
    let zero = run_cli(&["traces", "--limit", "0"], &[]);
    assert_eq!(zero.code, 2);
    assert!(zero.stderr.contains("at least 1"), "{}", zero.stderr);
    assert_eq!(run_cli(&["frobnicate"], &[]).code, 2);
}

#[test]
fn the_api_key_comes_from_the_flag_or_the_environment() {
    let server = Server::start_with(&[], &[("KESTREL_API_KEY", "s3cret-key")]);
    let url = server.base.clone();

    let without = run_cli(&["projects", "--url", &url], &[]);
    assert_eq!(without.code, 1, "{without:?}");
    assert!(
        without.stderr.contains("KESTREL_API_KEY"),
        "{}",
        without.stderr
    );

    let wrong = run_cli(&["projects", "--url", &url, "--api-key", "nope"], &[]);
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("invalid API key"), "{}", wrong.stderr);

    run_cli(&["projects", "--url", &url, "--api-key", "s3cret-key"], &[]).ok();
    run_cli(
        &["projects", "--json"],
        &[("KESTREL_URL", &url), ("KESTREL_API_KEY", "s3cret-key")],
    )
    .json();
}

#[test]
fn help_is_there_for_every_command() {
    let top = run_cli(&["--help"], &[]).ok();
    for command in [
        "serve", "traces", "trace", "projects", "runs", "steps", "grade",
    ] {
        assert!(top.contains(command), "{command} missing in:\n{top}");
    }
    for (command, mentions) in [
        (
            "traces",
            &[
                "QUERY",
                "--project",
                "--run",
                "--sort",
                "--limit",
                "--all",
                "--json",
                "KESTREL_URL",
            ][..],
        ),
        (
            "trace",
            &["TRACE_ID", "--truncate", "--json", "KESTREL_API_KEY"],
        ),
        ("projects", &["--url", "--json"]),
        ("runs", &["--project", "--all"]),
        ("steps", &["RUN_ID", "QUERY"]),
        (
            "grade",
            &[
                "TRACE_ID",
                "NAME",
                "VALUE",
                "--comment",
                "--grader",
                "label",
            ],
        ),
        ("serve", &["--addr", "KESTREL_URL"]),
    ] {
        let help = run_cli(&[command, "--help"], &[]).ok();
        for m in mentions {
            assert!(
                help.contains(m),
                "`kestrel {command} --help` lacks {m:?}:\n{help}"
            );
        }
    }
}
