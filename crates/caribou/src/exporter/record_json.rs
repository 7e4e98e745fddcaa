//! Records' JSON, written field by field for the ones every `trace_run` sends (items, trace
//! open and close), on the agent's thread; the rarer ones go through [`caribou_model::json`].
//!
//! Going through `serde` costs a call chain per field and an escaping pass over every key; here the
//! keys are literals written as they are, the ids are formatted in place, and only values go
//! through [`caribou_model::json`]. The output is byte for byte `serde_json`'s for the model's
//! [`Record`] (tests check every kind with every field set and unset). Each record and item kind is
//! destructured whole, so a field added to the model fails to compile here until it is written
//! (in its declaration order: that is the order `serde` writes).

use caribou_model::{
    Event, Grade, GradeValue, Item, JsonMap, Message, Phase, Record, RolloutStatus, ToolExecution,
    TraceClose, TraceOpen,
};
use serde_json::Value;
use uuid::Uuid;

use caribou_model::json::{self, write_str};

type Result = serde_json::Result<()>;

/// Writes any record other than an item's.
pub fn write_record(out: &mut Vec<u8>, record: &Record) -> Result {
    match record {
        Record::TraceOpen(open) => {
            let TraceOpen {
                id,
                trace_id,
                ts,
                turn_id,
                project,
                run_id,
                phase,
                step,
                datapoint_id,
                model_name,
                metadata,
            } = open;
            write_open(
                out,
                &OpenRecord {
                    id: *id,
                    trace_id,
                    ts: *ts,
                    turn_id: *turn_id,
                    project: project.as_deref(),
                    run_id: run_id.as_deref(),
                    phase: *phase,
                    step: *step,
                    datapoint_id: datapoint_id.as_deref(),
                    model_name: model_name.as_deref(),
                    metadata: metadata.as_ref(),
                },
            )
        }
        Record::TraceClose(close) => {
            let TraceClose {
                id,
                trace_id,
                ts,
                turn_id,
                status,
            } = close;
            write_close(out, *id, trace_id, *ts, *turn_id, *status);
            Ok(())
        }
        other => json::write(out, other),
    }
}

/// A [`TraceOpen`] made of borrowed parts: what `trace_run` writes without building the record
/// (its trace id stays with the turn, its project with the config).
#[derive(Debug, Clone, Copy)]
pub struct OpenRecord<'a> {
    pub id: Uuid,
    pub trace_id: &'a str,
    pub ts: i64,
    pub turn_id: Uuid,
    pub project: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub phase: Option<Phase>,
    pub step: Option<i64>,
    pub datapoint_id: Option<&'a str>,
    pub model_name: Option<&'a str>,
    pub metadata: Option<&'a JsonMap>,
}

/// Writes a `trace_open` record, field for field as `serde_json` writes [`TraceOpen`].
pub fn write_open(out: &mut Vec<u8>, open: &OpenRecord<'_>) -> Result {
    // Field order is `TraceOpen`'s declaration order (what `serde` writes); `write_record`
    // destructures `TraceOpen` whole, so a new field fails to compile there until it is added here.
    let mut o = head(out, "trace_open", open.id, open.trace_id, open.ts);
    o.uuid("turn_id", open.turn_id);
    o.opt_str("project", open.project);
    o.opt_str("run_id", open.run_id);
    if let Some(phase) = open.phase {
        o.str("phase", phase.as_str());
    }
    o.int("step", open.step);
    o.opt_str("datapoint_id", open.datapoint_id);
    o.opt_str("model_name", open.model_name);
    if let Some(m) = open.metadata {
        o.key("metadata");
        json::write(o.out, m)?;
    }
    o.out.push(b'}');
    Ok(())
}

/// Writes a `trace_close` record, as `serde_json` writes [`TraceClose`].
pub fn write_close(
    out: &mut Vec<u8>,
    id: Uuid,
    trace_id: &str,
    ts: i64,
    turn_id: Uuid,
    status: Option<RolloutStatus>,
) {
    let mut o = head(out, "trace_close", id, trace_id, ts);
    o.uuid("turn_id", turn_id);
    close_tail(o, status);
}

/// [`write_close`] for a turn whose ids are written already.
pub fn write_close_of_turn(
    out: &mut Vec<u8>,
    id: Uuid,
    ts: i64,
    turn: &TurnJson,
    status: Option<RolloutStatus>,
) {
    let mut o = head_of_turn(out, "trace_close", id, turn, ts);
    o.key("turn_id");
    o.out.extend_from_slice(&turn.turn_id);
    close_tail(o, status);
}

fn close_tail(mut o: Object<'_>, status: Option<RolloutStatus>) {
    if let Some(status) = status {
        o.str("status", status.as_str());
    }
    o.out.push(b'}');
}

/// `{"kind":..,"id":..,"trace_id":..,"ts":..`: what every record starts with.
fn head<'a>(out: &'a mut Vec<u8>, kind: &str, id: Uuid, trace_id: &str, ts: i64) -> Object<'a> {
    let mut o = head_start(out, kind, id);
    o.str("trace_id", trace_id);
    o.int("ts", Some(ts));
    o
}

/// [`head`] with the trace id already written as a JSON string ([`TurnJson`]).
fn head_of_turn<'a>(
    out: &'a mut Vec<u8>,
    kind: &str,
    id: Uuid,
    turn: &TurnJson,
    ts: i64,
) -> Object<'a> {
    let mut o = head_start(out, kind, id);
    o.key("trace_id");
    o.out.extend_from_slice(&turn.trace_id);
    o.int("ts", Some(ts));
    o
}

fn head_start<'a>(out: &'a mut Vec<u8>, kind: &str, id: Uuid) -> Object<'a> {
    out.extend_from_slice(br#"{"kind":""#);
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    let mut o = Object { out };
    o.uuid("id", id);
    o
}

/// What every record of a turn repeats, written once when the turn opens: its trace id as a JSON
/// string and its turn id, quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnJson {
    trace_id: Box<[u8]>,
    turn_id: [u8; 38],
}

impl TurnJson {
    pub fn new(trace_id: &str, turn_id: Uuid) -> TurnJson {
        let mut quoted = Vec::with_capacity(trace_id.len() + 2);
        write_str(&mut quoted, trace_id);
        TurnJson {
            trace_id: quoted.into_boxed_slice(),
            turn_id: quoted_uuid(turn_id),
        }
    }
}

/// Writes `{"kind":"item","id":..,"trace_id":..,"ts":..,"turn_id":..,"item":{..}}`.
pub fn write_item(out: &mut Vec<u8>, id: Uuid, ts: i64, turn: &TurnJson, item: &Item) -> Result {
    item_head(out, id, ts, turn);
    write_item_body(out, item)?;
    out.push(b'}');
    Ok(())
}

/// [`write_item`] for an item already written as its JSON (`body`: what [`write_item_body`]
/// writes, e.g. by an [`ItemJson`]), copied as it is.
pub fn write_item_json(out: &mut Vec<u8>, id: Uuid, ts: i64, turn: &TurnJson, body: &[u8]) {
    item_head(out, id, ts, turn);
    out.extend_from_slice(body);
    out.push(b'}');
}

/// An item record up to its `"item":`.
fn item_head(out: &mut Vec<u8>, id: Uuid, ts: i64, turn: &TurnJson) {
    let mut o = head_of_turn(out, "item", id, turn, ts);
    o.key("turn_id");
    o.out.extend_from_slice(&turn.turn_id);
    o.key("item");
}

/// Writes an item's own JSON: `{"type":..,..}`, the `item` of its record.
pub fn write_item_body(out: &mut Vec<u8>, item: &Item) -> Result {
    let mut o = Object { out };
    match item {
        Item::Message(m) => {
            let Message {
                role,
                content,
                tool_calls,
                tool_call_id,
                name,
                model,
                provider,
                input_tokens,
                output_tokens,
                cost_usd,
                metadata,
            } = m;
            o.out.extend_from_slice(br#"{"type":"message""#);
            o.str("role", role);
            o.value("content", content)?;
            o.value("tool_calls", tool_calls)?;
            o.opt_str("tool_call_id", tool_call_id.as_deref());
            o.opt_str("name", name.as_deref());
            o.opt_str("model", model.as_deref());
            o.opt_str("provider", provider.as_deref());
            o.int("input_tokens", *input_tokens);
            o.int("output_tokens", *output_tokens);
            o.number("cost_usd", *cost_usd)?;
            o.map("metadata", metadata)?;
        }
        Item::ToolExecution(t) => {
            let ToolExecution {
                name,
                call_id,
                arguments,
                result,
                requestor,
                error,
                duration_ms,
            } = t;
            o.out.extend_from_slice(br#"{"type":"tool_execution""#);
            o.str("name", name);
            o.opt_str("call_id", call_id.as_deref());
            o.value("arguments", arguments)?;
            o.value("result", result)?;
            o.opt_str("requestor", requestor.as_deref());
            o.opt_str("error", error.as_deref());
            o.number("duration_ms", *duration_ms)?;
        }
        Item::Event(e) => {
            let Event { name, data, level } = e;
            o.out.extend_from_slice(br#"{"type":"event""#);
            o.str("name", name);
            o.value("data", data)?;
            o.str("level", level);
        }
        Item::Grade(g) => {
            let Grade {
                name,
                value,
                comment,
                grader,
                metadata,
            } = g;
            o.out.extend_from_slice(br#"{"type":"grade""#);
            o.str("name", name);
            o.key("value");
            match value {
                GradeValue::Bool(b) => json::write(o.out, b)?,
                GradeValue::Number(x) => json::write(o.out, x)?,
                GradeValue::Label(s) => write_str(o.out, s),
            }
            o.opt_str("comment", comment.as_deref());
            o.opt_str("grader", grader.as_deref());
            o.map("metadata", metadata)?;
        }
    }
    o.out.push(b'}');
    Ok(())
}

/// An item's JSON written field by field by a caller that does not build the model's item (the
/// Python binding writes it straight from the Python values). The caller writes the fields of
/// [`write_item_body`]'s arm for its kind, in that order, skipping absent ones; the result is
/// then the same bytes (the binding's tests compare what Kestrel stores).
#[derive(Debug)]
pub struct ItemJson<'a> {
    object: Object<'a>,
}

impl<'a> ItemJson<'a> {
    /// Starts `{"type":"<type_tag>"`; `type_tag` is the item's `type` (`message`, ...).
    pub fn start(out: &'a mut Vec<u8>, type_tag: &str) -> ItemJson<'a> {
        out.extend_from_slice(br#"{"type":""#);
        out.extend_from_slice(type_tag.as_bytes());
        out.push(b'"');
        ItemJson {
            object: Object { out },
        }
    }

    /// `,"key":` and the buffer, for the caller to write the value.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        self.object.key(key);
        self.object.out
    }

    /// A field whose value `write` writes; if it returns false the field is left out (nothing of
    /// it stays written).
    pub fn optional(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        let start = self.object.out.len();
        self.object.key(key);
        if !write(self.object.out) {
            self.object.out.truncate(start);
        }
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) {
        self.object.str(key, value);
    }

    /// An integer field, skipped when `None`.
    pub fn int(&mut self, key: &str, value: Option<u64>) {
        self.object.int(key, value);
    }

    /// A number field, skipped when `None`.
    pub fn number(&mut self, key: &str, value: Option<f64>) -> Result {
        self.object.number(key, value)
    }

    /// Closes the object.
    pub fn finish(self) {
        self.object.out.push(b'}');
    }
}

/// Each byte value's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    table
};

/// Where each of a UUID's 16 bytes goes in `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"`.
const UUID_DIGITS_AT: [usize; 16] = [1, 3, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 29, 31, 33, 35];

/// `id` hyphenated in lowercase, with its quotes, as `serde_json` writes a `Uuid`. A table lookup
/// per byte: `uuid`'s own formatter, a nibble at a time, was a tenth of writing an item record
/// (a record has two UUIDs).
fn quoted_uuid(id: Uuid) -> [u8; 38] {
    let mut out = [b'-'; 38];
    out[0] = b'"';
    out[37] = b'"';
    for (byte, at) in id.as_bytes().iter().zip(UUID_DIGITS_AT) {
        let [high, low] = HEX_PAIRS[usize::from(*byte)];
        out[at] = high;
        out[at + 1] = low;
    }
    out
}

/// An object's fields after its first: each `,"key":value`, absent ones skipped (as the model's
/// `skip_serializing_if` does).
#[derive(Debug)]
struct Object<'a> {
    out: &'a mut Vec<u8>,
}

impl Object<'_> {
    /// `key` is a field name: a literal needing no escaping.
    fn key(&mut self, key: &str) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn uuid(&mut self, key: &str, id: Uuid) {
        self.key(key);
        self.out.extend_from_slice(&quoted_uuid(id));
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str(self.out, value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn value(&mut self, key: &str, value: &Option<Value>) -> Result {
        if let Some(v) = value {
            self.key(key);
            json::write(self.out, v)?;
        }
        Ok(())
    }

    fn map(&mut self, key: &str, value: &Option<JsonMap>) -> Result {
        if let Some(m) = value {
            self.key(key);
            json::write(self.out, m)?;
        }
        Ok(())
    }

    fn int(&mut self, key: &str, value: Option<impl itoa::Integer>) {
        if let Some(n) = value {
            self.key(key);
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
    }

    fn number(&mut self, key: &str, value: Option<f64>) -> Result {
        if let Some(x) = value {
            self.key(key);
            json::write(self.out, &x)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use caribou_model::{ItemRecord, Phase, RolloutStatus, StatusRecord, TagsRecord};
    use serde_json::json;

    use super::*;

    #[test]
    fn uuids_are_written_as_serde_writes_them() {
        let mut ids = vec![
            Uuid::nil(),
            Uuid::max(),
            Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        ];
        ids.extend((0..1000).map(|_| Uuid::new_v4()));
        for id in ids {
            assert_eq!(quoted_uuid(id).to_vec(), serde_json::to_vec(&id).unwrap());
        }
    }

    fn same(item: Item) {
        let (id, ts) = crate::ids::new_id_and_ts();
        let turn_id = crate::ids::new_id_and_ts().0;
        let trace_id = "trc_\"x\"\n\u{e9}";
        let mut ours = Vec::new();
        write_item(&mut ours, id, ts, &TurnJson::new(trace_id, turn_id), &item).unwrap();
        let theirs = serde_json::to_vec(&Record::Item(ItemRecord {
            id,
            trace_id: trace_id.into(),
            ts,
            turn_id: Some(turn_id),
            item,
        }))
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    /// The same item record from the model item, and from its body written first (as the
    /// Python binding does), and the body as `ItemJson` writes it field by field.
    #[test]
    fn an_item_written_beforehand_makes_the_same_record() {
        let (id, ts) = crate::ids::new_id_and_ts();
        let turn = TurnJson::new("trc_1", crate::ids::new_id_and_ts().0);
        let message = item(
            json!({"type": "message", "role": "assistant", "content": [{"text": "a\"b"}],
            "model": "m", "output_tokens": 3, "cost_usd": 0.25, "metadata": {"k": [1, 2.5, null]}}),
        );
        let tool = item(
            json!({"type": "tool_execution", "name": "search", "result": "x", "duration_ms": 1e-7}),
        );
        for it in [&message, &tool] {
            let mut whole = Vec::new();
            write_item(&mut whole, id, ts, &turn, it).unwrap();
            let mut body = Vec::new();
            write_item_body(&mut body, it).unwrap();
            let mut spliced = Vec::new();
            write_item_json(&mut spliced, id, ts, &turn, &body);
            assert_eq!(
                String::from_utf8_lossy(&spliced),
                String::from_utf8_lossy(&whole)
            );
        }
        let mut by_fields = Vec::new();
        let mut w = ItemJson::start(&mut by_fields, "message");
        w.str("role", "assistant");
        write_str(w.key("content"), "x");
        w.int("input_tokens", None);
        w.int("output_tokens", Some(3));
        w.number("cost_usd", Some(0.25)).unwrap();
        w.finish();
        let mut body = Vec::new();
        let expected = item(
            json!({"type": "message", "role": "assistant", "content": "x",
            "output_tokens": 3, "cost_usd": 0.25}),
        );
        write_item_body(&mut body, &expected).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&by_fields),
            String::from_utf8_lossy(&body)
        );
    }

    fn item(value: serde_json::Value) -> Item {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_kind_with_every_field_and_with_none() {
        let text = "a \"quoted\" line\nand a tab\t, a \u{1} and 🦌".repeat(3);
        let meta = json!({"k": 1, "n": [1.5, null, {"z": "\u{7}"}], "s": text});
        same(item(json!({
            "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}],
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
            "tool_call_id": "c0", "name": "bot", "model": "gpt-4o", "provider": "openai",
            "input_tokens": 120, "output_tokens": 0, "cost_usd": 0.0012, "metadata": meta,
        })));
        same(item(
            json!({"type": "message", "role": "user", "content": text}),
        ));
        same(item(
            json!({"type": "message", "role": "user", "cost_usd": 1e-9}),
        ));
        same(item(json!({
            "type": "tool_execution", "name": "search", "call_id": "call_1",
            "arguments": "{\"q\": \"caribou\"}", "result": {"hits": 5, "top": text},
            "requestor": "agent", "error": "Timeout: no answer", "duration_ms": 12.5,
        })));
        same(item(
            json!({"type": "tool_execution", "name": "t", "result": null}),
        ));
        same(item(
            json!({"type": "event", "name": "retrieval", "data": {"docs": [1, 2]}, "level": "warn"}),
        ));
        same(item(json!({"type": "event", "name": "e"})));
        for value in [json!(true), json!(0.25), json!(-3), json!("good \"one\"")] {
            same(item(json!({
                "type": "grade", "name": "reward", "value": value, "comment": text,
                "grader": "judge", "metadata": meta,
            })));
        }
        same(item(json!({"type": "grade", "name": "r", "value": 1})));
        // Non-finite numbers are written as null, as serde_json does.
        same(Item::Message(Message {
            role: "assistant".into(),
            cost_usd: Some(f64::NAN),
            ..Default::default()
        }));
        same(Item::ToolExecution(ToolExecution {
            name: "t".into(),
            duration_ms: Some(f64::INFINITY),
            ..Default::default()
        }));
    }

    fn same_record(record: Record) {
        let mut ours = Vec::new();
        write_record(&mut ours, &record).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            serde_json::to_string(&record).unwrap()
        );
    }

    #[test]
    fn trace_open_close_and_the_rest() {
        let (id, ts) = crate::ids::new_id_and_ts();
        let trace_id = "trc_\"x\"\u{1}".to_owned();
        for phase in [None, Some(Phase::Train)] {
            same_record(Record::TraceOpen(TraceOpen {
                id,
                trace_id: trace_id.clone(),
                ts,
                turn_id: id,
                project: Some("p \"q\"".into()),
                run_id: Some("run-1".into()),
                phase,
                step: Some(-3),
                datapoint_id: Some("dp\n".into()),
                model_name: Some("m".into()),
                metadata: Some(
                    json!({"a": [1, "b"], "c": {"d": null}})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            }));
        }
        same_record(Record::TraceOpen(TraceOpen {
            id,
            trace_id: trace_id.clone(),
            ts,
            turn_id: id,
            project: None,
            run_id: None,
            phase: None,
            step: None,
            datapoint_id: None,
            model_name: None,
            metadata: None,
        }));
        let turn_id = crate::ids::new_id_and_ts().0;
        for status in RolloutStatus::ALL.map(Some).into_iter().chain([None]) {
            let close = TraceClose {
                id,
                trace_id: trace_id.clone(),
                ts,
                turn_id,
                status,
            };
            let mut of_turn = Vec::new();
            write_close_of_turn(
                &mut of_turn,
                id,
                ts,
                &TurnJson::new(&trace_id, turn_id),
                status,
            );
            assert_eq!(
                of_turn,
                serde_json::to_vec(&Record::TraceClose(close.clone())).unwrap()
            );
            same_record(Record::TraceClose(close));
        }
        same_record(Record::Status(StatusRecord {
            id,
            trace_id: trace_id.clone(),
            ts,
            status: RolloutStatus::Error,
        }));
        same_record(Record::Tags(TagsRecord {
            id,
            trace_id,
            ts,
            tags: vec!["a".into(), "\"b\"".into()],
        }));
    }
}
