//! A whole trace as its JSON answer, its items' JSON copied from the stored chunks as is.
//!
//! The answer for a 30,000-item trace is ~19 MB, nearly all of it item JSON that the trace's
//! chunks already hold in the answer's own form (`caribou_model::json` of the same
//! [`StoredItem`](caribou_model::api::StoredItem)s). Parsing it into items and writing it back
//! was over half of that request's CPU. Here each chunk is decompressed, its elements are found
//! by a scan that steps over strings with `memchr` (no parsing, no allocation per item), put in
//! logged order by the `(ts, id)` read from each element's head, and copied.
//!
//! Invariants:
//! - The answer is byte for byte the `caribou_model::json` of [`traces::get_trace`]'s
//!   `TraceDetail` (the store's test suite checks it for every trace it reads). It holds because a
//!   chunk's elements are written by that encoder from the same type: fields in declaration
//!   order, no spaces, empty optional fields left out. A change to how items serialize must keep
//!   stored chunks reading the same (a new field optional and skipped when empty), or give this
//!   module a way to tell old chunks from new.
//! - The order is [`chunks::read_all`]'s: chunks by row id, then a stable sort by `(ts, id)`.
//! - A chunk not in that form (an element that does not open with `{"id":"<uuid>","ts":<int>,`,
//!   a count that is not the row's `n`, JSON cut short) sends the whole trace through the typed
//!   path, which reports real corruption as it always did. Never a wrong answer, at worst a slower
//!   one.

use rusqlite::Connection;
use uuid::Uuid;

use super::schema::internal;
use super::{chunks, traces};
use crate::Result;

/// The answer's tail before the items are put in: `TraceDetail` ends with its `items`.
const EMPTY_ITEMS_TAIL: &[u8] = b"\"items\":[]}";

/// The JSON of one trace (as [`traces::get_trace`] would give it, serialized), or `None`.
pub(crate) fn get_trace_json(conn: &Connection, trace_id: &str) -> Result<Option<Vec<u8>>> {
    let Some((rowid, head)) = traces::trace_head(conn, trace_id)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    caribou_model::json::write(&mut out, &head).map_err(|e| internal("encoding a trace", e))?;
    let spliced = out.ends_with(EMPTY_ITEMS_TAIL) && splice_items(conn, rowid, &mut out)?;
    if !spliced {
        let mut detail = head;
        detail.items = chunks::read_all(conn, rowid)?;
        out.clear();
        caribou_model::json::write(&mut out, &detail)
            .map_err(|e| internal("encoding a trace", e))?;
    }
    Ok(Some(out))
}

/// One item's place: its chunk, its byte range there, and its sort key.
struct Element {
    ts: i64,
    id: Uuid,
    chunk: usize,
    start: usize,
    end: usize,
}

/// Replaces the closing `]}` of `out` (a trace with no items) by the trace's items and `]}`.
/// Returns false, leaving `out` as it was, if a chunk is not in the form this module reads.
fn splice_items(conn: &Connection, trace_rowid: i64, out: &mut Vec<u8>) -> Result<bool> {
    let mut select = conn.prepare_cached(
        "SELECT n, data FROM item_chunks WHERE trace_rowid = ?1 AND n > 0 ORDER BY id",
    )?;
    let mut rows = select.query([trace_rowid])?;
    let mut jsons: Vec<Vec<u8>> = Vec::new();
    let mut elements: Vec<Element> = Vec::new();
    while let Some(row) = rows.next()? {
        let n: i64 = row.get(0)?;
        let json = chunks::decompress(
            row.get_ref(1)?
                .as_blob()
                .map_err(|e| internal("reading items", e))?,
        )?;
        let before = elements.len();
        if !scan_chunk(&json, jsons.len(), &mut elements) || (elements.len() - before) as i64 != n {
            return Ok(false);
        }
        jsons.push(json);
    }
    if !elements.is_sorted_by_key(|e| (e.ts, e.id)) {
        elements.sort_by_key(|e| (e.ts, e.id));
    }
    let bytes: usize = elements.iter().map(|e| e.end - e.start + 1).sum();
    out.truncate(out.len() - 2);
    out.reserve(bytes + 2);
    for (k, e) in elements.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&jsons[e.chunk][e.start..e.end]);
    }
    out.extend_from_slice(b"]}");
    Ok(true)
}

/// Appends the elements of one chunk's JSON array to `out`; false if it is not in our form.
fn scan_chunk(json: &[u8], chunk: usize, out: &mut Vec<Element>) -> bool {
    if json.first() != Some(&b'[') {
        return false;
    }
    if json == b"[]" {
        return true;
    }
    let mut pos = 1;
    loop {
        let Some((ts, id)) = head_key(&json[pos..]) else {
            return false;
        };
        let Some(end) = object_end(json, pos) else {
            return false;
        };
        out.push(Element {
            ts,
            id,
            chunk,
            start: pos,
            end,
        });
        match json.get(end) {
            Some(b',') => pos = end + 1,
            Some(b']') if end + 1 == json.len() => return true,
            _ => return false,
        }
    }
}

/// The `(ts, id)` of an element that opens with `{"id":"<uuid>","ts":<int>,`.
fn head_key(element: &[u8]) -> Option<(i64, Uuid)> {
    let rest = element.strip_prefix(b"{\"id\":\"")?;
    let id = Uuid::try_parse_ascii(rest.get(..36)?).ok()?;
    let rest = rest.get(36..)?.strip_prefix(b"\",\"ts\":")?;
    let digits = &rest[..memchr::memchr(b',', rest)?];
    let ts = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((ts, id))
}

/// The index just past the JSON object that starts at `json[start]`, or `None` if it is not an
/// object or is cut short. Strings are stepped over (their escapes included); only brackets
/// outside strings count.
fn object_end(json: &[u8], start: usize) -> Option<usize> {
    if json.get(start) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut i = start;
    loop {
        match *json.get(i)? {
            b'"' => i = string_end(json, i + 1)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
}

/// The index just past the closing quote of the string whose text starts at `json[from]`.
fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let k = from + memchr::memchr2(b'"', b'\\', json.get(from..)?)?;
        if json[k] == b'"' {
            return Some(k + 1);
        }
        // A backslash: the next byte is escaped (`\"`, `\\`, `\u` and its hex digits are plain).
        from = k + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caribou_model::api::StoredItem;
    use caribou_model::items::{Item, Message, ToolExecution};

    fn item(ts: i64, n: u128, content: &str) -> StoredItem {
        StoredItem {
            id: Uuid::from_u128(n),
            ts,
            turn_id: n.is_multiple_of(2).then(|| Uuid::from_u128(7)),
            item: if n.is_multiple_of(3) {
                Item::ToolExecution(ToolExecution {
                    name: "search".into(),
                    call_id: None,
                    arguments: Some(
                        serde_json::json!({"q": content, "nested": [{"a": "}]"}, [], {}]}),
                    ),
                    result: Some(serde_json::json!(content)),
                    requestor: None,
                    error: None,
                    duration_ms: Some(1.5),
                })
            } else {
                Item::Message(Message {
                    role: "user".into(),
                    content: Some(serde_json::json!(content)),
                    ..Message::default()
                })
            },
        }
    }

    fn chunk_json(items: &[StoredItem]) -> Vec<u8> {
        let mut json = Vec::new();
        caribou_model::json::write(&mut json, items).expect("encode");
        json
    }

    /// Odd contents: brackets, quotes and backslashes inside strings, escapes, non-ASCII.
    const ODD: [&str; 6] = [
        "plain",
        "{[}]\"{\\\"}\\",
        "\\",
        "line\nbreak\ttab \u{1} \u{7f}",
        "caribou \u{e9}t\u{e9} \u{1f98c} \"quoted\" {\"json\": [1, 2]}",
        "",
    ];

    #[test]
    fn finds_every_element_and_its_key() {
        let items: Vec<StoredItem> = (0..ODD.len())
            .map(|k| item(-5 + k as i64 * 1_000_000_007, k as u128 + 1, ODD[k]))
            .collect();
        let json = chunk_json(&items);
        let mut found = Vec::new();
        assert!(
            scan_chunk(&json, 3, &mut found),
            "{}",
            String::from_utf8_lossy(&json)
        );
        assert_eq!(found.len(), items.len());
        for (e, it) in found.iter().zip(&items) {
            assert_eq!((e.ts, e.id, e.chunk), (it.ts, it.id, 3));
            let one: StoredItem =
                serde_json::from_slice(&json[e.start..e.end]).expect("an element");
            assert_eq!(&one, it);
        }
        let mut none = Vec::new();
        assert!(scan_chunk(b"[]", 0, &mut none) && none.is_empty());
    }

    #[test]
    fn a_trace_without_items_ends_with_its_empty_items() {
        let head = r#"{"trace_id":"t1","project":"p","run_id":null,"phase":"prod","step":null,
            "datapoint_id":"dp_1","model_name":"m","status":"COMPLETED","error":null,
            "started_at":1795591141905691,"ended_at":1795591217831940,"duration_ms":75926.249,
            "input_tokens":2,"output_tokens":5,"cost_usd":1.5,"messages":1,"tool_calls":1,
            "item_count":0,"turn_count":1,"tags":["a"],"metadata":{"k":1},"grades":[],
            "traceback":"Traceback: ]}","turns":[{"turn_id":"01a21192-7a0f-73e7-8000-000000000001",
            "started_at":1,"ended_at":2,"status":"COMPLETED"}],"items":[]}"#;
        let detail: caribou_model::api::TraceDetail = serde_json::from_str(head).expect("a trace");
        let mut json = Vec::new();
        caribou_model::json::write(&mut json, &detail).expect("encode");
        assert!(
            json.ends_with(EMPTY_ITEMS_TAIL),
            "{}",
            String::from_utf8_lossy(&json)
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let good = chunk_json(&[item(1, 1, "a"), item(2, 2, "b")]);
        let cut = &good[..good.len() - 3];
        let spaced = String::from_utf8(good.clone())
            .expect("utf8")
            .replacen("\"ts\":", "\"ts\": ", 1);
        let reordered =
            br#"[{"ts":1,"id":"00000000-0000-0000-0000-000000000001","type":"event","name":"x"}]"#;
        let trailing = [good.as_slice(), b" "].concat();
        let not_array = br#"{"id":"00000000-0000-0000-0000-000000000001","ts":1,"turn_id":null}"#;
        for bad in [
            cut,
            spaced.as_bytes(),
            reordered,
            &trailing,
            not_array,
            b"",
            b"[",
            b"[1]",
        ] {
            assert!(
                !scan_chunk(bad, 0, &mut Vec::new()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
