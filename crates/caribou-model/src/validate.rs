//! The limits of the data model and the checks that enforce them.
//!
//! Serde already refuses wrong types, unknown kinds and unknown fields; these checks cover what a
//! type cannot say (lengths, ranges, units). Both sides run them: the SDK before it queues a record
//! (so a bad one is dropped and counted at the source), Kestrel before it stores a batch (so a bad
//! record never reaches the store). A batch with one invalid record is refused whole, with the
//! record's index in the message: nothing of it is stored, and nothing already stored changes.
//!
//! Every bound here exists so that no record, however built, costs the one writer or a reader
//! more than a bounded amount: counts are bounded so that sums over any number of them stay far
//! from overflow, strings so that one item cannot fill a trace, metadata keys, tags, tools and
//! models per record and (in the store) per trace so that a trace's side rows stay few.

use std::fmt;

use serde_json::Value;

use crate::JsonMap;
use crate::items::{GradeValue, Item};
use crate::records::{Batch, Record};

/// Sizes Kestrel accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_id_len: usize,
    pub max_name_len: usize,
    pub max_tag_len: usize,
    pub max_tags_per_record: usize,
    pub max_records_per_batch: usize,
    /// Bytes of any one string inside an item (content, arguments, results, metadata values),
    /// of an error message or traceback, of a grade comment.
    pub max_text_bytes: usize,
    /// Top-level keys of one record's metadata; also the most a trace's metadata may hold.
    pub max_meta_keys: usize,
    /// Distinct tags of one trace.
    pub max_tags_per_trace: usize,
    /// Distinct tool names of one trace.
    pub max_tools_per_trace: usize,
    /// Distinct model names of one trace (its own and its messages').
    pub max_models_per_trace: usize,
    /// Input or output tokens of one message (2^40: a thousand times any context window, and
    /// sums of millions of them stay exact in an `f64` and far from `i64::MAX`).
    pub max_tokens: u64,
    /// Cost of one message, in USD.
    pub max_cost_usd: f64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_id_len: 256,
        max_name_len: 256,
        max_tag_len: 200,
        max_tags_per_record: 256,
        max_records_per_batch: 100_000,
        max_text_bytes: 8 << 20,
        max_meta_keys: 1_000,
        max_tags_per_trace: 1_000,
        max_tools_per_trace: 1_000,
        max_models_per_trace: 100,
        max_tokens: 1 << 40,
        max_cost_usd: 1_000_000.0,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Year 3000 in microseconds: anything later is a unit mistake (nanoseconds or milliseconds).
pub const MAX_TS_US: i64 = 32_503_680_000_000_000;
/// 2001-09-09 in microseconds: anything earlier is most likely seconds or milliseconds.
const MIN_TS_US: i64 = 1_000_000_000_000_000;

/// What is wrong with a record, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// Index of the record in its batch, when there is a batch.
    pub index: Option<usize>,
    /// The field at fault, as a path (`item.cost_usd`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "records[{i}].{}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

fn err(field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        index: None,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A name or id: not empty, not longer than `max` bytes, no control characters.
pub fn check_name(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(err(
            field,
            format!("is {} bytes long; the limit is {max}", value.len()),
        ));
    }
    // ASCII (ids, names) is checked a byte at a time; control characters there are below 0x20
    // and 0x7f. Other text is decoded, for U+0080..U+009F.
    let control = if value.is_ascii() {
        value.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        value.chars().any(char::is_control)
    };
    if control {
        return Err(err(field, "must not contain control characters"));
    }
    Ok(())
}

/// A timestamp in microseconds since the Unix epoch, with a hint when the unit looks wrong.
pub fn check_ts(field: &str, ts: i64) -> Result<(), ValidationError> {
    if ts > MAX_TS_US {
        return Err(err(
            field,
            format!(
                "{ts} is after the year 3000; timestamps are microseconds since the Unix epoch (not nanoseconds)"
            ),
        ));
    }
    if ts < MIN_TS_US {
        return Err(err(
            field,
            format!(
                "{ts} is before 2001; timestamps are microseconds since the Unix epoch (not seconds or milliseconds)"
            ),
        ));
    }
    Ok(())
}

fn check_non_negative(field: &str, v: Option<f64>) -> Result<(), ValidationError> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => {
            Err(err(field, format!("must be a finite number >= 0, got {x}")))
        }
        _ => Ok(()),
    }
}

/// An amount in `0..=max` (a cost).
fn check_amount(field: &str, v: Option<f64>, max: f64) -> Result<(), ValidationError> {
    check_non_negative(field, v)?;
    match v {
        Some(x) if x > max => Err(err(
            field,
            format!("{x} is more than the limit of {max} per item; check the unit"),
        )),
        _ => Ok(()),
    }
}

/// A count in `0..=max` (tokens).
fn check_count(field: &str, v: Option<u64>, max: u64) -> Result<(), ValidationError> {
    match v {
        Some(n) if n > max => Err(err(
            field,
            format!("{n} is more than the limit of {max} per message"),
        )),
        _ => Ok(()),
    }
}

fn check_opt_name(field: &str, v: Option<&str>, max: usize) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |s| check_name(field, s, max))
}

/// A free text (an error message, a comment): any characters, at most `max` bytes.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(err(
            field,
            format!("is {} bytes long; the limit is {max}", value.len()),
        ));
    }
    Ok(())
}

fn check_opt_text(field: &str, v: Option<&str>, max: usize) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |s| check_text(field, s, max))
}

/// Free JSON (content, arguments, results, data): every string in it, keys included, at most
/// `max` bytes. Depth needs no check here: parsing bounds it.
pub fn check_json(field: &str, value: &Value, max: usize) -> Result<(), ValidationError> {
    match value {
        Value::String(s) => check_text(field, s, max),
        Value::Array(items) => items.iter().try_for_each(|v| check_json(field, v, max)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_text(field, k, max)?;
            check_json(field, v, max)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn check_opt_json(field: &str, v: Option<&Value>, max: usize) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| check_json(field, v, max))
}

/// A metadata map: at most `max_meta_keys` top-level keys, each a name (not empty, bounded, no
/// control characters: keys are searched as `meta.<key>`), and bounded strings in the values.
pub fn check_metadata(field: &str, map: &JsonMap, limits: &Limits) -> Result<(), ValidationError> {
    if map.len() > limits.max_meta_keys {
        return Err(err(
            field,
            format!(
                "has {} keys; the limit is {} per record (and per trace)",
                map.len(),
                limits.max_meta_keys
            ),
        ));
    }
    for (key, value) in map {
        check_name(field, key, limits.max_name_len)
            .map_err(|e| err(field, format!("key {}: {}", excerpt(key), e.message)))?;
        check_json(field, value, limits.max_text_bytes)?;
    }
    Ok(())
}

fn check_opt_metadata(
    field: &str,
    map: Option<&JsonMap>,
    limits: &Limits,
) -> Result<(), ValidationError> {
    map.map_or(Ok(()), |m| check_metadata(field, m, limits))
}

/// Characters of a client's value that an error message quotes.
const EXCERPT_CHARS: usize = 60;

/// `value` quoted for an error message, cut to its first [`EXCERPT_CHARS`] characters (marked
/// with `…`): a message names what is wrong without echoing a client's megabytes back.
pub fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// Checks one item.
pub fn check_item(item: &Item, limits: &Limits) -> Result<(), ValidationError> {
    let text = limits.max_text_bytes;
    match item {
        Item::Message(m) => {
            check_message(
                MessageFields {
                    role: &m.role,
                    tool_call_id: m.tool_call_id.as_deref(),
                    name: m.name.as_deref(),
                    model: m.model.as_deref(),
                    provider: m.provider.as_deref(),
                    input_tokens: m.input_tokens,
                    output_tokens: m.output_tokens,
                    cost_usd: m.cost_usd,
                },
                limits,
            )?;
            check_opt_json("item.content", m.content.as_ref(), text)?;
            check_opt_json("item.tool_calls", m.tool_calls.as_ref(), text)?;
            check_opt_metadata("item.metadata", m.metadata.as_ref(), limits)
        }
        Item::ToolExecution(t) => {
            check_tool_execution(
                ToolFields {
                    name: &t.name,
                    call_id: t.call_id.as_deref(),
                    requestor: t.requestor.as_deref(),
                    duration_ms: t.duration_ms,
                },
                limits,
            )?;
            check_opt_json("item.arguments", t.arguments.as_ref(), text)?;
            check_opt_json("item.result", t.result.as_ref(), text)?;
            check_opt_text("item.error", t.error.as_deref(), text)
        }
        Item::Event(e) => {
            check_event(&e.name, &e.level, limits)?;
            check_opt_json("item.data", e.data.as_ref(), text)
        }
        Item::Grade(g) => {
            check_grade(&g.name, &g.value, limits)?;
            check_grade_notes(
                "item.",
                g.grader.as_deref(),
                g.comment.as_deref(),
                g.metadata.as_ref(),
                limits,
            )
        }
    }
}

/// The fields of a `Message` that [`check_item`] checks one by one, for a caller that writes the
/// item's JSON without building it (the Python binding, which bounds the free JSON by the size
/// of the item it wrote).
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageFields<'a> {
    pub role: &'a str,
    pub tool_call_id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

/// [`check_item`] for a `Message`, from its checked fields.
pub fn check_message(m: MessageFields<'_>, limits: &Limits) -> Result<(), ValidationError> {
    check_name("item.role", m.role, limits.max_name_len)?;
    check_opt_name("item.tool_call_id", m.tool_call_id, limits.max_id_len)?;
    check_opt_name("item.name", m.name, limits.max_name_len)?;
    check_opt_name("item.model", m.model, limits.max_name_len)?;
    check_opt_name("item.provider", m.provider, limits.max_name_len)?;
    check_count("item.input_tokens", m.input_tokens, limits.max_tokens)?;
    check_count("item.output_tokens", m.output_tokens, limits.max_tokens)?;
    check_amount("item.cost_usd", m.cost_usd, limits.max_cost_usd)
}

/// The fields of a `ToolExecution` that [`check_item`] checks one by one (see [`MessageFields`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolFields<'a> {
    pub name: &'a str,
    pub call_id: Option<&'a str>,
    pub requestor: Option<&'a str>,
    pub duration_ms: Option<f64>,
}

/// [`check_item`] for a `ToolExecution`, from its checked fields.
pub fn check_tool_execution(t: ToolFields<'_>, limits: &Limits) -> Result<(), ValidationError> {
    check_name("item.name", t.name, limits.max_name_len)?;
    check_opt_name("item.call_id", t.call_id, limits.max_id_len)?;
    check_opt_name("item.requestor", t.requestor, limits.max_name_len)?;
    check_non_negative("item.duration_ms", t.duration_ms)
}

/// [`check_item`] for an `Event`, from its checked fields.
pub fn check_event(name: &str, level: &str, limits: &Limits) -> Result<(), ValidationError> {
    check_name("item.name", name, limits.max_name_len)?;
    check_name("item.level", level, 32)
}

/// [`check_item`] for a `Grade`, from its checked fields.
pub fn check_grade(name: &str, value: &GradeValue, limits: &Limits) -> Result<(), ValidationError> {
    check_name("item.name", name, limits.max_name_len)?;
    match value {
        GradeValue::Number(x) if !x.is_finite() => Err(err(
            "item.value",
            format!("must be a finite number, got {x}"),
        )),
        GradeValue::Label(s) => check_name("item.value", s, limits.max_name_len),
        _ => Ok(()),
    }
}

/// What a grade carries beside its name and value (who graded, a comment, metadata), with
/// `prefix` before each field's name (`item.` in an item).
pub fn check_grade_notes(
    prefix: &str,
    grader: Option<&str>,
    comment: Option<&str>,
    metadata: Option<&JsonMap>,
    limits: &Limits,
) -> Result<(), ValidationError> {
    check_opt_name(&format!("{prefix}grader"), grader, limits.max_name_len)?;
    check_opt_text(&format!("{prefix}comment"), comment, limits.max_text_bytes)?;
    check_opt_metadata(&format!("{prefix}metadata"), metadata, limits)
}

/// A datapoint to add: its id, and bounded strings in its input, expected output and metadata.
pub fn check_datapoint(
    field: &str,
    dp: &crate::api::NewDatapoint,
    limits: &Limits,
) -> Result<(), ValidationError> {
    check_name(&format!("{field}.id"), &dp.id, limits.max_id_len)?;
    check_json(&format!("{field}.input"), &dp.input, limits.max_text_bytes)?;
    check_json(
        &format!("{field}.expected"),
        &dp.expected,
        limits.max_text_bytes,
    )?;
    check_opt_metadata(&format!("{field}.metadata"), dp.metadata.as_ref(), limits)
}

/// The fields of a `trace_open` checked beyond those every record has (id, trace id, time).
#[derive(Debug, Clone, Copy)]
pub struct OpenFields<'a> {
    pub project: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub datapoint_id: Option<&'a str>,
    pub model_name: Option<&'a str>,
    pub step: Option<i64>,
    pub metadata: Option<&'a JsonMap>,
}

/// Checks what a `trace_open` has beyond the fields of every record: [`check_record`]'s rules
/// for it, for a caller that writes the record without building it (the SDK's `trace_run`).
pub fn check_open_fields(o: OpenFields<'_>, limits: &Limits) -> Result<(), ValidationError> {
    check_opt_name("project", o.project, limits.max_name_len)?;
    check_opt_name("run_id", o.run_id, limits.max_id_len)?;
    check_opt_name("datapoint_id", o.datapoint_id, limits.max_id_len)?;
    check_opt_name("model_name", o.model_name, limits.max_name_len)?;
    check_opt_metadata("metadata", o.metadata, limits)?;
    if o.project.is_none() && o.run_id.is_none() {
        return Err(err(
            "run_id",
            "a trace_open needs a run_id or a project to be filed under",
        ));
    }
    if let Some(step) = o.step
        && step < 0
    {
        return Err(err("step", format!("must be >= 0, got {step}")));
    }
    Ok(())
}

/// Checks one record.
pub fn check_record(record: &Record, limits: &Limits) -> Result<(), ValidationError> {
    if record.id().is_nil() {
        return Err(err(
            "id",
            "must not be the nil UUID; use a fresh UUIDv7 per record",
        ));
    }
    check_name("trace_id", record.trace_id(), limits.max_id_len)?;
    check_ts("ts", record.ts())?;
    match record {
        Record::TraceOpen(o) => check_open_fields(
            OpenFields {
                project: o.project.as_deref(),
                run_id: o.run_id.as_deref(),
                datapoint_id: o.datapoint_id.as_deref(),
                model_name: o.model_name.as_deref(),
                step: o.step,
                metadata: o.metadata.as_ref(),
            },
            limits,
        ),
        Record::Item(r) => check_item(&r.item, limits),
        Record::Tags(t) => {
            if t.tags.len() > limits.max_tags_per_record {
                return Err(err(
                    "tags",
                    format!(
                        "has {} tags; the limit is {} per record",
                        t.tags.len(),
                        limits.max_tags_per_record
                    ),
                ));
            }
            t.tags
                .iter()
                .try_for_each(|tag| check_name("tags[]", tag, limits.max_tag_len))
        }
        Record::Error(e) => {
            if e.message.is_empty() {
                return Err(err("message", "must not be empty"));
            }
            check_text("message", &e.message, limits.max_text_bytes)?;
            check_opt_text("traceback", e.traceback.as_deref(), limits.max_text_bytes)
        }
        Record::Metadata(m) => check_metadata("metadata", &m.metadata, limits),
        Record::Status(_) | Record::TraceClose(_) => Ok(()),
    }
}

/// Checks a whole batch; the first bad record is reported with its index.
pub fn check_batch(batch: &Batch, limits: &Limits) -> Result<(), ValidationError> {
    if batch.records.len() > limits.max_records_per_batch {
        return Err(err(
            "records",
            format!(
                "has {} records; the limit is {} per batch, split it",
                batch.records.len(),
                limits.max_records_per_batch
            ),
        ));
    }
    for (i, record) in batch.records.iter().enumerate() {
        check_record(record, limits).map_err(|mut e| {
            e.index = Some(i);
            e
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ItemRecord, Message, Record, RolloutStatus, StatusRecord, new_record_id, now_us};

    #[test]
    fn names_refuse_exactly_the_control_characters() {
        for c in (0u32..0x300).filter_map(char::from_u32) {
            for name in [format!("ab{c}"), format!("{c}é"), format!("x{c}y🦌")] {
                assert_eq!(
                    check_name("f", &name, 64).is_err(),
                    c.is_control(),
                    "{:?}",
                    name
                );
            }
        }
    }

    fn status(trace_id: &str, ts: i64) -> Record {
        Record::Status(StatusRecord {
            id: new_record_id(),
            trace_id: trace_id.into(),
            ts,
            status: RolloutStatus::Error,
        })
    }

    #[test]
    fn good_records_pass() {
        let batch = Batch {
            records: vec![status("trc_1", now_us())],
        };
        check_batch(&batch, &Limits::DEFAULT).unwrap();
    }

    #[test]
    fn bad_records_say_where_and_what() {
        let batch = Batch {
            records: vec![status("trc_1", now_us()), status("", now_us())],
        };
        let e = check_batch(&batch, &Limits::DEFAULT).unwrap_err();
        assert_eq!(e.to_string(), "records[1].trace_id: must not be empty");

        let e = check_record(&status("t", now_us() * 1000), &Limits::DEFAULT).unwrap_err();
        assert!(e.message.contains("nanoseconds"), "{e}");

        let item = Record::Item(ItemRecord {
            id: new_record_id(),
            trace_id: "t".into(),
            ts: now_us(),
            turn_id: None,
            item: Item::Message(Message {
                role: "user".into(),
                cost_usd: Some(-1.0),
                ..Default::default()
            }),
        });
        let e = check_record(&item, &Limits::DEFAULT).unwrap_err();
        assert_eq!(e.field, "item.cost_usd");
    }

    fn message_record(m: Message) -> Record {
        Record::Item(ItemRecord {
            id: new_record_id(),
            trace_id: "t".into(),
            ts: now_us(),
            turn_id: None,
            item: Item::Message(m),
        })
    }

    #[test]
    fn counts_amounts_and_texts_are_bounded() {
        let limits = Limits::DEFAULT;
        let ok = message_record(Message {
            role: "assistant".into(),
            input_tokens: Some(limits.max_tokens),
            cost_usd: Some(limits.max_cost_usd),
            content: Some(serde_json::json!([{"text": "x".repeat(limits.max_text_bytes)}])),
            ..Default::default()
        });
        check_record(&ok, &limits).unwrap();
        let cases = [
            (
                Message {
                    role: "a".into(),
                    output_tokens: Some(u64::MAX),
                    ..Default::default()
                },
                "item.output_tokens",
            ),
            (
                Message {
                    role: "a".into(),
                    cost_usd: Some(1e308),
                    ..Default::default()
                },
                "item.cost_usd",
            ),
            (
                Message {
                    role: "a".into(),
                    content: Some(
                        serde_json::json!({"k": ["x".repeat(limits.max_text_bytes + 1)]}),
                    ),
                    ..Default::default()
                },
                "item.content",
            ),
            (
                Message {
                    role: "a".into(),
                    tool_call_id: Some("bad\u{0}id".into()),
                    ..Default::default()
                },
                "item.tool_call_id",
            ),
        ];
        for (m, field) in cases {
            let e = check_record(&message_record(m), &limits).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(
                e.message.contains("limit") || e.message.contains("control"),
                "{e}"
            );
        }
    }

    #[test]
    fn metadata_keys_are_names_and_bounded_in_number() {
        let limits = Limits::DEFAULT;
        let meta = |keys: Vec<String>| -> JsonMap {
            keys.into_iter()
                .map(|k| (k, serde_json::json!(1)))
                .collect()
        };
        check_metadata("metadata", &meta(vec!["customer id".into()]), &limits).unwrap();
        for bad in ["", "a\u{0}b", &"k".repeat(300)] {
            let e = check_metadata("metadata", &meta(vec![bad.to_owned()]), &limits).unwrap_err();
            assert!(e.message.starts_with("key "), "{e}");
            assert!(e.message.len() < 200, "the key is cut in the message: {e}");
        }
        let many = meta(
            (0..=limits.max_meta_keys)
                .map(|i| format!("k{i}"))
                .collect(),
        );
        let e = check_metadata("metadata", &many, &limits).unwrap_err();
        assert!(e.message.contains("the limit is 1000"), "{e}");
    }

    #[test]
    fn excerpts_are_cut() {
        assert_eq!(excerpt("short"), "\"short\"");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert!(cut.starts_with(&format!("\"{}", "é".repeat(60))), "{cut}");
        assert!(cut.ends_with("… (200 bytes)"), "{cut}");
    }
}
