//! A small Rust agent traced with Caribou: a two-turn weather conversation with tool calls and a
//! grade, logged to the Kestrel at `KESTREL_URL` (e.g. `http://127.0.0.1:8750`).
//!
//! ```sh
//! KESTREL_URL=http://127.0.0.1:8750 cargo run -p caribou --example agent
//! ```
//!
//! The completion and tool functions are stand-ins (no model is called); everything else is what
//! a real agent does. Without `KESTREL_URL` it still runs, and logs nothing.

use caribou::model::{Grade, GradeValue, Item, Message, Phase, RolloutStatus, ToolExecution};
use caribou::{Config, TraceOptions, trace_run};
use serde_json::{Value, json};

/// What a chat-completion API would answer: text or tool calls, and usage.
struct Completion {
    content: Option<String>,
    tool_calls: Vec<(String, String, Value)>, // (call id, function name, arguments)
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

/// A stand-in model: asks for the weather tool once, then answers from the tool's result.
fn complete(history: &[Value]) -> Completion {
    let last = history.last().cloned().unwrap_or(Value::Null);
    if last["role"] == "tool" {
        let report = &last["content"];
        Completion {
            content: Some(format!(
                "It is {} °C and {} in {}.",
                report["temp_c"],
                report["sky"].as_str().unwrap_or("unknown"),
                report["city"].as_str().unwrap_or("somewhere")
            )),
            tool_calls: Vec::new(),
            input_tokens: 40 * history.len() as u64,
            output_tokens: 14,
            cost_usd: 0.0002,
        }
    } else {
        let question = last["content"].as_str().unwrap_or_default();
        let city = question
            .rsplit(' ')
            .next()
            .unwrap_or("Paris")
            .trim_end_matches('?')
            .to_owned();
        Completion {
            content: None,
            tool_calls: vec![(
                format!("call_{}", history.len()),
                "get_weather".into(),
                json!({"city": city}),
            )],
            input_tokens: 40 * history.len() as u64,
            output_tokens: 9,
            cost_usd: 0.0001,
        }
    }
}

/// A stand-in tool.
fn get_weather(arguments: &Value) -> Value {
    let city = arguments["city"].as_str().unwrap_or("nowhere");
    json!({"city": city, "temp_c": 18 + city.len() % 7, "sky": "clear"})
}

/// One user turn: the model, the tools it asks for, until it answers.
fn run_turn(history: &mut Vec<Value>, question: &str) -> String {
    history.push(json!({"role": "user", "content": question}));
    caribou::log(Item::Message(Message {
        role: "user".into(),
        content: Some(question.into()),
        ..Default::default()
    }));
    loop {
        let completion = complete(history);
        let tool_calls: Vec<Value> = completion
            .tool_calls
            .iter()
            .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
            .collect();
        caribou::log(Item::Message(Message {
            role: "assistant".into(),
            content: completion.content.clone().map(Value::from),
            tool_calls: (!tool_calls.is_empty()).then(|| Value::from(tool_calls.clone())),
            model: Some("stand-in-1".into()),
            provider: Some("local".into()),
            input_tokens: Some(completion.input_tokens),
            output_tokens: Some(completion.output_tokens),
            cost_usd: Some(completion.cost_usd),
            ..Default::default()
        }));
        history.push(
            json!({"role": "assistant", "content": completion.content, "tool_calls": tool_calls}),
        );
        if completion.tool_calls.is_empty() {
            return completion.content.unwrap_or_default();
        }
        for (call_id, name, arguments) in completion.tool_calls {
            let started = std::time::Instant::now();
            let result = get_weather(&arguments);
            caribou::log(Item::ToolExecution(ToolExecution {
                name: name.clone(),
                call_id: Some(call_id.clone()),
                arguments: Some(Value::from(arguments.to_string())),
                result: Some(result.clone()),
                requestor: Some("agent".into()),
                error: None,
                duration_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            }));
            history.push(json!({"role": "tool", "tool_call_id": call_id, "content": result}));
        }
    }
}

fn main() {
    caribou::configure(Config {
        project: Some("rust-agent-demo".into()),
        phase: Phase::Prod,
        ..Config::from_env()
    });
    let session = format!("trc_demo_{}", std::process::id());
    let mut history = Vec::new();
    for question in ["What's the weather in Paris?", "And in Reykjavik?"] {
        let options = TraceOptions {
            trace_id: Some(session.clone()),
            datapoint_id: Some("session-1".into()),
            model_name: Some("stand-in-1".into()),
            ..TraceOptions::default()
        };
        let answer = trace_run(options, |_| {
            let answer = run_turn(&mut history, question);
            caribou::add_meta(serde_json::Map::from_iter([(
                "turns".to_owned(),
                json!(history.len()),
            )]));
            caribou::add_tags(vec!["demo".into(), "weather".into()]);
            caribou::log(Item::Grade(Grade {
                name: "answered".into(),
                value: GradeValue::Bool(answer.contains("°C")),
                comment: None,
                grader: Some("contains-temperature".into()),
                metadata: None,
            }));
            caribou::set_status(RolloutStatus::Completed);
            answer
        });
        println!("{question} -> {answer}");
    }
    let report = caribou::flush(None);
    println!(
        "trace {session}: {} records sent, {} pending, {} dropped{}",
        report.sent,
        report.pending,
        report.dropped,
        if caribou::is_enabled() {
            ""
        } else {
            " (KESTREL_URL is not set: nothing was sent)"
        }
    );
    caribou::shutdown(None);
}
