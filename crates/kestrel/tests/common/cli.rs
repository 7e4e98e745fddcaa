//! For the CLI tests: run the built `kestrel` binary as a client of a test server, and build the
//! records of a realistic agent trace (messages, tool calls, events, grades, an error).
//!
//! Included by `tests/cli.rs` with `#[path]` (next to `mod common`), so the other test binaries
//! do not compile it.

use std::process::{Command, Stdio};

use caribou_model::{
    ErrorRecord, Event, Grade, GradeValue, Item, Message, MetadataRecord, Record, TagsRecord,
    ToolExecution, new_record_id, now_us,
};
use serde_json::{Value, json};

use crate::common::{Server, TraceBuilder, kestrel};

/// What a run of the CLI printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "kestrel failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }
}

/// `kestrel ARGS` with a clean environment (no developer's KESTREL_URL or key) plus `env`.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd: Command = kestrel();
    cmd.env_remove("KESTREL_URL")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let out = cmd.output().expect("run kestrel");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kestrel ARGS --url <server>` (and the server's key, if it has one, through the environment).
pub fn cli(server: &Server, args: &[&str]) -> Run {
    let mut env = vec![("KESTREL_URL", server.base.as_str())];
    if let Some(key) = &server.key {
        env.push(("KESTREL_API_KEY", key.as_str()));
    }
    run_cli(args, &env)
}

fn metadata(trace_id: &str, meta: Value) -> Record {
    let Value::Object(metadata) = meta else {
        panic!("metadata must be an object")
    };
    Record::Metadata(MetadataRecord {
        id: new_record_id(),
        trace_id: trace_id.to_owned(),
        ts: now_us(),
        metadata,
    })
}

/// A failed agent rollout: a user question, an assistant tool call (OpenAI shape, arguments as a
/// JSON string), the tool's run, a retrieval event, a reward, tags, metadata, then an error with
/// its traceback.
pub fn weather_trace(trace_id: &str, run_id: &str, step: i64) -> TraceBuilder {
    let mut b = TraceBuilder::new(trace_id)
        .open(run_id, caribou_model::Phase::Train, Some(step), Some("q-weather"))
        .item(Item::Message(Message {
            role: "system".into(),
            content: Some(json!("You are a weather bot.")),
            ..Default::default()
        }))
        .item(Item::Message(Message {
            role: "user".into(),
            content: Some(json!([{"type": "text", "text": "Is it raining in Paris?"}])),
            ..Default::default()
        }))
        .item(Item::Message(Message {
            role: "assistant".into(),
            content: Some(json!("Let me look that up.")),
            tool_calls: Some(json!([{
                "id": "call_42", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"C\"}"}
            }])),
            model: Some("gpt-4o".into()),
            input_tokens: Some(120),
            output_tokens: Some(30),
            cost_usd: Some(0.0021),
            ..Default::default()
        }))
        .item(Item::ToolExecution(ToolExecution {
            name: "get_weather".into(),
            call_id: Some("call_42".into()),
            arguments: Some(json!({"city": "Paris", "unit": "C"})),
            result: Some(json!("light rain, 14C")),
            duration_ms: Some(85.0),
            ..Default::default()
        }))
        .item(Item::Event(Event {
            name: "cache_miss".into(),
            data: Some(json!({"key": "paris-weather"})),
            level: "warn".into(),
        }))
        .item(Item::Grade(Grade {
            name: "reward".into(),
            value: GradeValue::Number(0.25),
            comment: Some("answered late".into()),
            grader: Some("verifier-v1".into()),
            metadata: None,
        }));
    b.records.push(Record::Tags(TagsRecord {
        id: new_record_id(),
        trace_id: trace_id.to_owned(),
        ts: now_us(),
        tags: vec!["premium".into(), "weather".into()],
    }));
    b.records
        .push(metadata(trace_id, json!({"customer_id": "cust_123"})));
    b.records.push(Record::Error(ErrorRecord {
        id: new_record_id(),
        trace_id: trace_id.to_owned(),
        ts: now_us(),
        message: "TimeoutError: weather API timed out".into(),
        traceback: Some(
            "Traceback (most recent call last):\n  File \"agent.py\", line 12, in run\nTimeoutError: weather API timed out"
                .into(),
        ),
    }));
    b.close(caribou_model::RolloutStatus::Error)
}

/// A successful short rollout with a reward.
pub fn ok_trace(trace_id: &str, run_id: &str, step: i64, reward: f64) -> TraceBuilder {
    TraceBuilder::new(trace_id)
        .open(
            run_id,
            caribou_model::Phase::Train,
            Some(step),
            Some("q-sum"),
        )
        .message("user", "What is 2+2?", 0, 0, 0.0)
        .message("assistant", "4", 10, 1, 0.0001)
        .item(Item::Grade(Grade {
            name: "reward".into(),
            value: GradeValue::Number(reward),
            comment: None,
            grader: None,
            metadata: None,
        }))
        .close(caribou_model::RolloutStatus::Completed)
}

/// Creates a training run of `project`; returns its id.
pub fn create_run(server: &Server, project: &str) -> String {
    let run = server
        .post(
            "/api/v1/runs",
            &json!({"project": project, "phase": "train", "name": "grpo-7b", "config": {"lr": 1e-6}}),
        )
        .expect(201);
    run["id"].as_str().expect("run id").to_owned()
}
