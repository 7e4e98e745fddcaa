//! `kestrel trace ID`: one trace as a readable conversation.
//!
//! Layout: a header (status, model, project/run/step, datapoint, time, tokens, cost, tags,
//! metadata, latest grades), then each turn with its items in logged order, then the error and
//! its traceback. Free JSON fields are shown as people read them (storage is never reshaped):
//! - message `content`: a string as is; a list of parts (OpenAI `{"type":"text","text":..}`,
//!   Anthropic `tool_use`/`tool_result`, images) part by part as text; anything else as JSON;
//! - tool `arguments` (in a message's `tool_calls` or a tool execution): pretty JSON when they are
//!   a JSON string or object, else the text;
//! - tool `result` and event `data`: like content.
//!
//! Texts are kept whole unless a `truncate` length is given (the traceback always is). Control
//! characters in stored text are shown escaped, never sent raw to the terminal. Rendering is a
//! pure function of the [`TraceDetail`], so it is unit-tested without a server.

use caribou_model::api::{StoredItem, TraceDetail};
use caribou_model::{Event, Grade, Item, Message, RolloutStatus, ToolExecution};
use serde_json::Value;
use uuid::Uuid;

use crate::cli::format;
use crate::cli::output::Style;

/// How item bodies are indented under their heading.
const INDENT: &str = "    ";

/// Options of the rendering.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub style: Style,
    /// Cut texts longer than this many characters.
    pub truncate: Option<usize>,
}

/// The whole trace as text.
pub fn render(trace: &TraceDetail, view: View) -> String {
    let mut out = String::new();
    header(&mut out, trace, view);
    let mut current: Option<Option<Uuid>> = None;
    for stored in &trace.items {
        if current != Some(stored.turn_id) {
            current = Some(stored.turn_id);
            turn_heading(&mut out, trace, stored.turn_id, view);
        }
        item(&mut out, stored, view);
    }
    if trace.items.is_empty() {
        out.push('\n');
        out.push_str(&view.style.dim("(no items logged)"));
        out.push('\n');
    }
    if let Some(error) = &trace.summary.error {
        out.push('\n');
        out.push_str(&view.style.red(&view.style.bold("error:")));
        out.push(' ');
        out.push_str(&format::printable(&format::truncate(error, view.truncate)));
        out.push('\n');
    }
    if let Some(traceback) = &trace.traceback {
        if trace.summary.error.is_none() {
            out.push('\n');
        }
        out.push_str(&view.style.red(&view.style.bold("traceback:")));
        out.push('\n');
        block(&mut out, traceback);
    }
    out
}

fn status_text(status: RolloutStatus, style: Style) -> String {
    let text = status.as_str();
    match status {
        RolloutStatus::Error => style.red(text),
        RolloutStatus::Completed => style.green(text),
        _ => style.yellow(text),
    }
}

fn header(out: &mut String, trace: &TraceDetail, view: View) {
    let s = &trace.summary;
    let style = view.style;
    out.push_str(&format!(
        "{} {}  {}\n",
        style.bold("trace"),
        style.bold(&format::printable(&s.trace_id)),
        status_text(s.status, style)
    ));
    let mut fields: Vec<(&str, String)> = Vec::new();
    if let Some(model) = &s.model_name {
        fields.push(("model", model.clone()));
    }
    let mut place = Vec::new();
    if let Some(p) = &s.project {
        place.push(format!("project {p}"));
    }
    if let Some(r) = &s.run_id {
        place.push(format!("run {r}"));
    }
    if let Some(phase) = s.phase {
        place.push(format!("phase {phase}"));
    }
    if let Some(step) = s.step {
        place.push(format!("step {step}"));
    }
    if !place.is_empty() {
        fields.push(("where", place.join(" · ")));
    }
    if let Some(d) = &s.datapoint_id {
        fields.push(("datapoint", d.clone()));
    }
    let mut when = Vec::new();
    if let Some(start) = s.started_at {
        when.push(format!("started {} UTC", format::time(start)));
    }
    match (s.duration_ms, s.ended_at) {
        (Some(ms), _) => when.push(format!("took {}", format::duration_ms(ms))),
        (None, None) => when.push("not ended".to_owned()),
        (None, Some(_)) => {}
    }
    if !when.is_empty() {
        fields.push(("time", when.join(" · ")));
    }
    fields.push((
        "tokens",
        format!(
            "{} in / {} out",
            format::count(s.input_tokens),
            format::count(s.output_tokens)
        ),
    ));
    fields.push(("cost", format::cost(s.cost_usd)));
    fields.push((
        "items",
        format!(
            "{} messages · {} tool calls · {} items · {} turns",
            s.messages, s.tool_calls, s.items, s.turns
        ),
    ));
    if !s.tags.is_empty() {
        fields.push(("tags", s.tags.join(", ")));
    }
    if !s.metadata.is_empty() {
        let json = format::pretty_json(&Value::Object(s.metadata.clone()));
        fields.push(("metadata", indent_rest(&json, 2 + 10 + 1)));
    }
    if !s.grades.is_empty() {
        fields.push(("grades", format::grades(&s.grades)));
    }
    for (name, value) in fields {
        // Pad before styling: escape codes have no width on screen.
        let value = format::printable(&value);
        out.push_str(&format!(
            "  {} {value}\n",
            style.dim(&format!("{name:<10}"))
        ));
    }
}

fn turn_heading(out: &mut String, trace: &TraceDetail, turn_id: Option<Uuid>, view: View) {
    let title = match turn_id {
        Some(id) => match trace.turns.iter().position(|t| t.turn_id == id) {
            Some(i) => {
                let turn = &trace.turns[i];
                let mut text = format!("turn {}/{}", i + 1, trace.turns.len());
                text.push_str(&format!(" · {} UTC", format::time(turn.started_at)));
                if let Some(end) = turn.ended_at {
                    let ms = (end - turn.started_at) as f64 / 1000.0;
                    text.push_str(&format!(" · {}", format::duration_ms(ms)));
                }
                if let Some(status) = turn.status {
                    text.push_str(&format!(" · {status}"));
                }
                text
            }
            None => format!("turn {id}"),
        },
        None => "outside any turn (added after the fact)".to_owned(),
    };
    out.push('\n');
    out.push_str(&view.style.bold(&format!("── {title} ──")));
    out.push('\n');
}

fn item(out: &mut String, stored: &StoredItem, view: View) {
    let at = format::clock(stored.ts);
    match &stored.item {
        Item::Message(m) => message(out, m, &at, view),
        Item::ToolExecution(t) => tool(out, t, &at, view),
        Item::Event(e) => event(out, e, &at, view),
        Item::Grade(g) => grade(out, g, &at, view),
    }
}

/// `[assistant]  12:00:01.250  gpt-4o · 120 / 45 tokens · $0.0012`.
fn heading(out: &mut String, label: &str, at: &str, details: &[String], view: View) {
    out.push('\n');
    let label = format::printable(label);
    out.push_str(&view.style.cyan(&view.style.bold(&format!("[{label}]"))));
    out.push_str("  ");
    out.push_str(&view.style.dim(at));
    let details: Vec<String> = details
        .iter()
        .filter(|d| !d.is_empty())
        .map(|d| format::printable(d))
        .collect();
    if !details.is_empty() {
        out.push_str("  ");
        out.push_str(&details.join(" · "));
    }
    out.push('\n');
}

fn message(out: &mut String, m: &Message, at: &str, view: View) {
    let label = match &m.name {
        Some(name) => format!("{} {name}", m.role),
        None => m.role.clone(),
    };
    let mut details = Vec::new();
    if let Some(model) = &m.model {
        details.push(match &m.provider {
            Some(p) => format!("{p}/{model}"),
            None => model.clone(),
        });
    }
    if m.input_tokens.is_some() || m.output_tokens.is_some() {
        details.push(format!(
            "{} tokens",
            format::tokens(m.input_tokens.unwrap_or(0), m.output_tokens.unwrap_or(0))
        ));
    }
    if let Some(c) = m.cost_usd {
        details.push(format::cost(c));
    }
    if let Some(id) = &m.tool_call_id {
        details.push(format!("answers call {id}"));
    }
    heading(out, &label, at, &details, view);
    if let Some(content) = &m.content {
        block(
            out,
            &format::truncate(&content_text(content), view.truncate),
        );
    }
    if let Some(calls) = &m.tool_calls {
        tool_calls(out, calls, view);
    }
    if let Some(meta) = m.metadata.as_ref().filter(|m| !m.is_empty()) {
        let json = format::pretty_json(&Value::Object(meta.clone()));
        labelled(out, "metadata", &json, None);
    }
}

/// A message content as text: a string as is, parts one after another, other JSON pretty.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().map(part_text).collect::<Vec<_>>().join("\n"),
        other => format::pretty_json(other),
    }
}

/// One content part: text parts as their text, tool parts with their input or content, media as
/// a short tag, anything else as JSON.
fn part_text(part: &Value) -> String {
    let Value::Object(obj) = part else {
        return content_text(part);
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let str_field = |k: &str| obj.get(k).and_then(Value::as_str);
    let id_suffix = |k: &str| {
        str_field(k)
            .map(|id| format!(" ({id})"))
            .unwrap_or_default()
    };
    match kind {
        "text" | "input_text" | "output_text" => str_field("text").unwrap_or("").to_owned(),
        "thinking" => format!("(thinking) {}", str_field("thinking").unwrap_or("")),
        "tool_use" => format!(
            "→ tool_use {}{}\n{}",
            str_field("name").unwrap_or("?"),
            id_suffix("id"),
            indent(
                &format::arguments(obj.get("input").unwrap_or(&Value::Null)),
                INDENT
            )
        ),
        "tool_result" => format!(
            "← tool_result{}\n{}",
            id_suffix("tool_use_id"),
            indent(
                &content_text(obj.get("content").unwrap_or(&Value::Null)),
                INDENT
            )
        ),
        "image" | "image_url" | "input_image" | "audio" | "input_audio" | "file" | "document" => {
            format!("[{kind}]")
        }
        _ => match str_field("text") {
            Some(text) => text.to_owned(),
            None => format::pretty_json(part),
        },
    }
}

/// `tool_calls` of a message: OpenAI `{"id", "function": {"name", "arguments"}}`, flat
/// `{"name", "arguments"|"input"}`, or anything else as JSON.
fn tool_calls(out: &mut String, calls: &Value, view: View) {
    let list: Vec<&Value> = match calls {
        Value::Array(list) => list.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    };
    let deeper = format!("{INDENT}{INDENT}");
    for call in list {
        let function = call.get("function").unwrap_or(call);
        let name = function.get("name").and_then(Value::as_str);
        let args = function.get("arguments").or_else(|| function.get("input"));
        let arrow = view.style.yellow("→ tool call");
        match name {
            Some(name) => {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map(|id| format!(" ({id})"))
                    .unwrap_or_default();
                let call = format::printable(&format!("{name}{id}"));
                out.push_str(&format!("{INDENT}{arrow} {call}\n"));
                if let Some(args) = args {
                    let text = format::truncate(&format::arguments(args), view.truncate);
                    out.push_str(&indent(&text, &deeper));
                    out.push('\n');
                }
            }
            None => {
                out.push_str(&format!("{INDENT}{arrow}\n"));
                out.push_str(&indent(&format::pretty_json(call), &deeper));
                out.push('\n');
            }
        }
    }
}

fn tool(out: &mut String, t: &ToolExecution, at: &str, view: View) {
    let mut details = Vec::new();
    if let Some(id) = &t.call_id {
        details.push(format!("call {id}"));
    }
    if let Some(r) = &t.requestor {
        details.push(format!("by {r}"));
    }
    if let Some(ms) = t.duration_ms {
        details.push(format::duration_ms(ms));
    }
    heading(out, &format!("tool {}", t.name), at, &details, view);
    if let Some(args) = &t.arguments {
        labelled(out, "arguments", &format::arguments(args), view.truncate);
    }
    if let Some(result) = &t.result {
        labelled(out, "result", &content_text(result), view.truncate);
    }
    if let Some(error) = &t.error {
        let error = format::printable(error);
        out.push_str(&format!("{INDENT}{} {error}\n", view.style.red("error:")));
    }
}

fn event(out: &mut String, e: &Event, at: &str, view: View) {
    // `info` is the default level: only the others are worth a word.
    let level = if e.level == "info" {
        String::new()
    } else {
        e.level.clone()
    };
    heading(out, &format!("event {}", e.name), at, &[level], view);
    if let Some(data) = &e.data {
        block(out, &format::truncate(&content_text(data), view.truncate));
    }
}

fn grade(out: &mut String, g: &Grade, at: &str, view: View) {
    let mut details = vec![format!("= {}", format::grade_value(&g.value))];
    if let Some(by) = &g.grader {
        details.push(format!("by {by}"));
    }
    heading(out, &format!("grade {}", g.name), at, &details, view);
    if let Some(comment) = &g.comment {
        block(out, comment);
    }
    if let Some(meta) = g.metadata.as_ref().filter(|m| !m.is_empty()) {
        let json = format::pretty_json(&Value::Object(meta.clone()));
        labelled(out, "metadata", &json, None);
    }
}

/// `    label:` then the text indented one more level.
fn labelled(out: &mut String, label: &str, text: &str, truncate: Option<usize>) {
    out.push_str(&format!("{INDENT}{label}:\n"));
    out.push_str(&indent(
        &format::truncate(text, truncate),
        &format!("{INDENT}{INDENT}"),
    ));
    out.push('\n');
}

/// The text indented, with a final newline; nothing for empty text.
fn block(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push_str(&indent(text, INDENT));
    out.push('\n');
}

/// Every non-empty line prefixed; stored text made [`format::printable`].
fn indent(text: &str, prefix: &str) -> String {
    format::printable(text)
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every line but the first indented by `n` spaces (a value that starts after a label).
fn indent_rest(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    let mut lines = text.lines();
    let mut out = lines.next().unwrap_or("").to_owned();
    for line in lines {
        out.push('\n');
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAIN: View = View {
        style: Style { enabled: false },
        truncate: None,
    };

    fn detail(items: Value) -> TraceDetail {
        serde_json::from_value(json!({
            "trace_id": "trc_1", "project": "p", "run_id": "run_1", "phase": "train", "step": 3,
            "datapoint_id": "q1", "model_name": "gpt-4o", "status": "ERROR",
            "error": "ValueError: boom", "started_at": 1_700_000_000_000_000i64,
            "ended_at": 1_700_000_001_500_000i64, "duration_ms": 1500.0,
            "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001, "messages": 2,
            "tool_calls": 1, "item_count": 3, "turn_count": 1, "tags": ["a", "b"],
            "metadata": {"customer": "c1"}, "grades": [{"name": "reward", "value": 0.5}],
            "traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom",
            "turns": [{"turn_id": "01900000-0000-7000-8000-000000000001",
                       "started_at": 1_700_000_000_000_000i64, "ended_at": null, "status": null}],
            "items": items,
        }))
        .unwrap()
    }

    fn stored(item: Value) -> Value {
        let mut v = item;
        v["id"] = json!("01900000-0000-7000-8000-0000000000aa");
        v["ts"] = json!(1_700_000_000_250_000i64);
        v["turn_id"] = json!("01900000-0000-7000-8000-000000000001");
        v
    }

    /// Asserts each piece appears, in this order.
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

    #[test]
    fn a_conversation_reads_in_order() {
        let trace = detail(json!([
            stored(json!({"type": "message", "role": "user", "content": "What is the weather?"})),
            stored(
                json!({"type": "message", "role": "assistant", "model": "gpt-4o",
                "content": [{"type": "text", "text": "Let me check."}, {"type": "image_url", "image_url": {}}],
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
            ),
            stored(
                json!({"type": "tool_execution", "name": "get_weather", "call_id": "call_1",
                "arguments": {"city": "Paris"}, "result": "sunny, 21C"})
            ),
            stored(
                json!({"type": "event", "name": "guardrail", "level": "warn", "data": {"rule": "pii"}})
            ),
            stored(
                json!({"type": "grade", "name": "reward", "value": 0.5, "grader": "judge", "comment": "ok"})
            ),
        ]));
        let text = render(&trace, PLAIN);
        assert_in_order(
            &text,
            &[
                "trace trc_1  ERROR",
                "project p · run run_1 · phase train · step 3",
                "datapoint  q1",
                "tags       a, b",
                "\"customer\": \"c1\"",
                "grades     reward=0.5",
                "── turn 1/1",
                "[user]",
                "What is the weather?",
                "[assistant]",
                "Let me check.\n    [image_url]",
                "→ tool call get_weather (call_1)",
                "        {\n          \"city\": \"Paris\"\n        }",
                "[tool get_weather]",
                "call call_1",
                "arguments:",
                "result:\n        sunny, 21C",
                "[event guardrail]",
                "warn",
                "\"rule\": \"pii\"",
                "[grade reward]",
                "= 0.5 · by judge",
                "error: ValueError: boom",
                "traceback:\n    Traceback (most recent call last):",
            ],
        );
    }

    #[test]
    fn long_texts_are_whole_unless_truncated() {
        let long = "x".repeat(5000);
        let trace = detail(json!([stored(
            json!({"type": "message", "role": "user", "content": long})
        )]));
        let whole = render(&trace, PLAIN);
        assert!(whole.contains(&long));
        let cut = render(
            &trace,
            View {
                truncate: Some(100),
                ..PLAIN
            },
        );
        assert!(!cut.contains(&long));
        assert!(cut.contains("… [+4900 chars]"), "{cut}");
    }

    #[test]
    fn stored_escape_sequences_do_not_reach_the_terminal() {
        let trace = detail(json!([stored(
            json!({"type": "message", "role": "user\u{1b}[31m", "content": "hi\u{1b}[2J\rthere"})
        )]));
        let text = render(&trace, PLAIN);
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
        assert!(text.contains("hi\\u{1b}[2J\\u{d}there"), "{text}");
    }

    #[test]
    fn anthropic_parts_are_text() {
        let content = json!([
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "x"}},
            {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "found"}]},
        ]);
        let text = content_text(&content);
        assert_in_order(
            &text,
            &[
                "calling\n→ tool_use search (tu_1)\n    {\n      \"q\": \"x\"\n    }",
                "← tool_result (tu_1)\n    found",
            ],
        );
    }
}
