//! The limits of the data model and the checks that enforce them.
//!
//! Serde already refuses wrong types, unknown kinds and unknown fields; these checks cover what a
//! type cannot say (lengths, ranges, units). Both sides run them: the SDK before it queues a record
//! (so a bad one is dropped and counted at the source), Kestrel before it stores a batch (so a bad
//! record never reaches the store). A batch with one invalid record is refused whole, with the
//! record's index in the message: nothing of it is stored, and nothing already stored changes.

use std::fmt;

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
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_id_len: 256,
        max_name_len: 256,
        max_tag_len: 200,
        max_tags_per_record: 256,
        max_records_per_batch: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Year 3000 in microseconds: anything later is a unit mistake (nanoseconds or milliseconds).
const MAX_TS_US: i64 = 32_503_680_000_000_000;
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

fn check_opt_name(field: &str, v: Option<&str>, max: usize) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |s| check_name(field, s, max))
}

/// Checks one item.
pub fn check_item(item: &Item, limits: &Limits) -> Result<(), ValidationError> {
    match item {
        Item::Message(m) => check_message(
            MessageFields {
                role: &m.role,
                model: m.model.as_deref(),
                provider: m.provider.as_deref(),
                cost_usd: m.cost_usd,
            },
            limits,
        ),
        Item::ToolExecution(t) => check_tool_execution(&t.name, t.duration_ms, limits),
        Item::Event(e) => check_event(&e.name, &e.level, limits),
        Item::Grade(g) => check_grade(&g.name, &g.value, limits),
    }
}

/// The fields of a `Message` that [`check_item`] checks, for a caller that writes the item's JSON
/// without building it (the Python binding).
#[derive(Debug, Clone, Copy)]
pub struct MessageFields<'a> {
    pub role: &'a str,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub cost_usd: Option<f64>,
}

/// [`check_item`] for a `Message`, from its checked fields.
pub fn check_message(m: MessageFields<'_>, limits: &Limits) -> Result<(), ValidationError> {
    check_name("item.role", m.role, limits.max_name_len)?;
    check_opt_name("item.model", m.model, limits.max_name_len)?;
    check_opt_name("item.provider", m.provider, limits.max_name_len)?;
    check_non_negative("item.cost_usd", m.cost_usd)
}

/// [`check_item`] for a `ToolExecution`, from its checked fields.
pub fn check_tool_execution(
    name: &str,
    duration_ms: Option<f64>,
    limits: &Limits,
) -> Result<(), ValidationError> {
    check_name("item.name", name, limits.max_name_len)?;
    check_non_negative("item.duration_ms", duration_ms)
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

/// The fields of a `trace_open` checked beyond those every record has (id, trace id, time).
#[derive(Debug, Clone, Copy)]
pub struct OpenFields<'a> {
    pub project: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub datapoint_id: Option<&'a str>,
    pub model_name: Option<&'a str>,
    pub step: Option<i64>,
}

/// Checks what a `trace_open` has beyond the fields of every record: [`check_record`]'s rules
/// for it, for a caller that writes the record without building it (the SDK's `trace_run`).
pub fn check_open_fields(o: OpenFields<'_>, limits: &Limits) -> Result<(), ValidationError> {
    check_opt_name("project", o.project, limits.max_name_len)?;
    check_opt_name("run_id", o.run_id, limits.max_id_len)?;
    check_opt_name("datapoint_id", o.datapoint_id, limits.max_id_len)?;
    check_opt_name("model_name", o.model_name, limits.max_name_len)?;
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
            Ok(())
        }
        Record::Status(_) | Record::Metadata(_) | Record::TraceClose(_) => Ok(()),
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
}
