//! Request bodies and query strings: content type, content encoding, size limits, and JSON with
//! messages that say what to fix.
//!
//! Limits and invariants:
//! - A body is read frame by frame and refused (413) as soon as it passes `max_body_bytes`; a
//!   `Content-Length` over the limit is refused without buffering. The rest of an oversized body
//!   is read and discarded (at most 64 MiB, 5 s) before answering, so the client reads the 413
//!   instead of a reset connection.
//! - `Content-Encoding: gzip` and `zstd` are decompressed here, streaming, into a buffer capped at
//!   `max_decompressed_bytes`: a zip bomb costs at most that much memory and answers 413.
//! - Every body's memory is reserved in the [`BodyBudget`] as it arrives and held by the
//!   returned [`BodyMemory`] (see `body_budget`): past the budget a request waits, then gets a
//!   503 with `Retry-After`.
//! - A body must be UTF-8 JSON (`Content-Type: application/json` or `application/*+json`; a
//!   missing type is taken as JSON). Errors name the line, column and field path
//!   (`records[3].item.role`).
//! - Query strings are parsed strictly: an unknown parameter is a 400 naming it.

use std::io::Read;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::body_budget::{self, BodyBudget, BodyMemory};
use crate::error::ApiError;

/// Size limits of request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes on the wire (after any `Content-Encoding`).
    pub max_body_bytes: u64,
    /// Bytes after decompression.
    pub max_decompressed_bytes: u64,
}

impl BodyLimits {
    pub const DEFAULT: BodyLimits = BodyLimits {
        max_body_bytes: 16 << 20,
        max_decompressed_bytes: 64 << 20,
    };
}

/// `16777216 bytes (16 MiB)`: exact for scripts, readable for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size {
            let value = n as f64 / size as f64;
            let shown = if n.is_multiple_of(size) {
                format!("{}", n / size)
            } else {
                format!("{value:.1}")
            };
            return format!("{n} bytes ({shown} {unit})");
        }
    }
    format!("{n} bytes")
}

/// How the body is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let value = value
        .to_str()
        .unwrap_or("<not ASCII>")
        .trim()
        .to_ascii_lowercase();
    match value.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "zstd" => Ok(Encoding::Zstd),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?}; send the body as identity, gzip or zstd (one encoding)"
        ))),
    }
}

/// Refuses a `Content-Type` that is not JSON. A missing one is taken as JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("<not ASCII>");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Type {text:?}; send JSON with Content-Type: application/json"
        )))
    }
}

fn too_large(what: &str, limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "{what} is larger than the limit of {}; split the batch or raise the limit (KESTREL_MAX_BODY_BYTES / --max-body-bytes, --max-decompressed-bytes)",
        human_bytes(limit)
    ))
}

/// Reads a JSON request body within the limits and returns it decompressed, with the budget it
/// holds (its decompressed size).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
    budget: &BodyBudget,
) -> Result<(Vec<u8>, BodyMemory), ApiError> {
    check_content_type(headers)?;
    let encoding = content_encoding(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limits.max_body_bytes
    {
        if n <= DRAIN_MAX_BYTES {
            drain(body).await;
        }
        return Err(too_large("the request body", limits.max_body_bytes));
    }
    let deadline = Instant::now() + body_budget::WAIT;
    let mut memory = budget.empty();
    let wire = collect_limited(body, limits.max_body_bytes, &mut memory, deadline).await?;
    match encoding {
        Encoding::Identity => {
            memory.grow_to(wire.len() as u64, deadline).await?;
            Ok((wire, memory))
        }
        Encoding::Gzip | Encoding::Zstd => {
            let max = limits.max_decompressed_bytes;
            let stated = stated_size(encoding, &wire).filter(|n| *n <= max);
            memory.grow_to(stated.unwrap_or(max), deadline).await?;
            // Decompression is CPU work of up to ~100 ms for the largest bodies: keep it off the
            // async workers.
            tokio::task::spawn_blocking(move || {
                let out = decompress(encoding, &wire, max, &mut memory)?;
                drop(wire);
                memory.shrink_to(out.len() as u64);
                Ok((out, memory))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("decompression task failed: {e}")))?
        }
    }
}

/// The decompressed size a compressed body states: its first zstd frame's content size (the SDK
/// writes one frame, with its size), a gzip trailer's ISIZE (its size modulo 2^32). Only a hint,
/// checked while decompressing.
fn stated_size(encoding: Encoding, wire: &[u8]) -> Option<u64> {
    match encoding {
        Encoding::Zstd => zstd::zstd_safe::get_frame_content_size(wire).ok().flatten(),
        Encoding::Gzip if wire.len() >= 18 => {
            let tail: [u8; 4] = wire[wire.len() - 4..].try_into().ok()?;
            Some(u64::from(u32::from_le_bytes(tail)))
        }
        Encoding::Gzip | Encoding::Identity => None,
    }
}

/// Reads the body, reserving memory for it as it arrives (until `deadline`); past the budget or
/// the limit the rest is drained and the answer is the error.
async fn collect_limited(
    mut body: Body,
    limit: u64,
    memory: &mut BodyMemory,
    deadline: Instant,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let len = out.len() as u64 + data.len() as u64;
            if len > limit {
                drain(body).await;
                return Err(too_large("the request body", limit));
            }
            if let Err(e) = memory.grow_wire_to(len, deadline).await {
                // Read to its end so the client reads the 503 rather than a reset connection.
                drain(body).await;
                return Err(e);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Reading an oversized body to its end (within bounds) before answering 413 lets the client
/// finish sending and read the answer; closing at once makes many clients see a reset connection
/// instead of the message that names the limit.
const DRAIN_MAX_BYTES: u64 = 64 << 20;
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn drain(mut body: Body) {
    let discard = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

/// Bytes decompressed between two looks at the budget.
const DECOMPRESS_STEP: u64 = 1 << 20;

/// Decompresses `wire`, at most `max` bytes, growing `memory` when the output passes what it holds
/// (a stated size that was short).
fn decompress(
    encoding: Encoding,
    wire: &[u8],
    max: u64,
    memory: &mut BodyMemory,
) -> Result<Vec<u8>, ApiError> {
    let (name, mut reader): (&str, Box<dyn Read>) = match encoding {
        Encoding::Gzip => ("gzip", Box::new(flate2::read::MultiGzDecoder::new(wire))),
        Encoding::Zstd => (
            "zstd",
            Box::new(
                zstd::stream::read::Decoder::with_buffer(wire)
                    .map_err(|e| ApiError::Internal(format!("zstd decoder: {e}")))?,
            ),
        ),
        Encoding::Identity => return Ok(wire.to_vec()),
    };
    let mut out = Vec::new();
    loop {
        let room = if memory.holds_all() {
            u64::MAX
        } else {
            memory.body_bytes().max(DECOMPRESS_STEP)
        };
        // One byte past the limit tells "exactly at the limit" from "over it".
        let until = room.min(max.saturating_add(1));
        let want = until.saturating_sub(out.len() as u64);
        let read = (&mut reader)
            .take(want)
            .read_to_end(&mut out)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body is not valid {name} data ({e}); check Content-Encoding"
                ))
            })?;
        if out.len() as u64 > max {
            return Err(too_large("the decompressed request body", max));
        }
        if (read as u64) < want {
            return Ok(out);
        }
        memory.try_grow_to(out.len() as u64 + DECOMPRESS_STEP)?;
    }
}

/// Parses a JSON body into `T`, with the line, column and field path of the first mistake.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid UTF-8 (bad byte at offset {}); JSON must be UTF-8",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object (see /api/v1/openapi.json)",
        ));
    }
    // Fast path: plain serde_json (tracking the field path costs ~10% of ingest's decoding). Only
    // a body that fails is parsed again, with the path, for the error message.
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::bad_request(json_message(&path, &inner))
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body: {e}; send exactly one JSON value"
        ))
    })?;
    Ok(value)
}

fn json_message(path: &str, e: &serde_json::Error) -> String {
    let what = if e.is_syntax() || e.is_eof() {
        "malformed JSON body"
    } else {
        "invalid JSON body"
    };
    // Serde's text for an untagged enum names a Rust type, not what to send.
    let detail = e.to_string().replace(
        "data did not match any variant of untagged enum GradeValue",
        "expected a number, a bool or a string label",
    );
    if path.is_empty() || path == "." {
        format!("{what}: {detail}")
    } else {
        format!("{what} at `{path}`: {detail}")
    }
}

/// Parses a query string into `T` strictly, naming the parameter at fault.
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let de =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.unwrap_or("").as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid query string: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid query parameter `{path}`: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body_budget::BodyBudget;
    use caribou_model::Batch;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(16 << 20), "16777216 bytes (16 MiB)");
        assert_eq!(human_bytes(1536), "1536 bytes (1.5 KiB)");
        assert_eq!(human_bytes(10), "10 bytes");
    }

    #[test]
    fn json_errors_name_the_place() {
        let e = parse_json::<Batch>(br#"{"records": [{"kind": "status", "id": 3}]}"#).unwrap_err();
        assert!(e.to_string().contains("records[0]"), "{e}");
        let e = parse_json::<Batch>(b"{\"records\": [").unwrap_err();
        assert!(e.to_string().contains("line 1 column"), "{e}");
        let e = parse_json::<Batch>(b"\xff\xfe").unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[tokio::test]
    async fn zip_bombs_stop_at_the_limit() {
        let budget = BodyBudget::new(64 << 20);
        let mut memory = budget.reserve(1).await.unwrap();
        let zeros = vec![0u8; 1 << 20];
        let packed = zstd::encode_all(&zeros[..], 3).unwrap();
        let e = decompress(Encoding::Zstd, &packed, 1000, &mut memory).unwrap_err();
        assert!(matches!(e, ApiError::PayloadTooLarge(_)), "{e:?}");
        let out = decompress(Encoding::Zstd, &packed, 1 << 20, &mut memory).unwrap();
        assert_eq!(out.len(), 1 << 20);
    }

    #[tokio::test]
    async fn a_short_stated_size_grows_the_reservation_or_gives_up() {
        let big = vec![b'x'; 8 << 20];
        let gzip = |data: &[u8]| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, data).unwrap();
            gz.finish().unwrap()
        };
        // Two gzip members: the trailer read is the last one's, 1 KiB.
        let mut packed = gzip(&big);
        packed.extend(gzip(&[b'y'; 1024]));
        assert_eq!(stated_size(Encoding::Gzip, &packed), Some(1024));
        let roomy = BodyBudget::new(64 << 20);
        let mut memory = roomy.reserve(packed.len() as u64 + 1024).await.unwrap();
        let out = decompress(Encoding::Gzip, &packed, 64 << 20, &mut memory).unwrap();
        assert_eq!(out.len(), big.len() + 1024);
        assert!(memory.body_bytes() >= (8 << 20), "{}", memory.body_bytes());
        let tight = BodyBudget::new(3 << 20);
        // Another request holds the large lane, where a body this size must go.
        let other = tight.reserve(1 << 20).await.unwrap();
        let mut memory = tight.reserve(packed.len() as u64 + 1024).await.unwrap();
        let refused = decompress(Encoding::Gzip, &packed, 64 << 20, &mut memory);
        assert!(
            matches!(refused, Err(ApiError::Overloaded { .. })),
            "another request holds the large lane: no room to grow"
        );
        assert_eq!(memory.body_bytes(), 0, "everything given back");
        drop(other);
        // Holding the whole large lane (nothing else in it), a body larger than it goes on.
        let mut memory = tight.reserve(100 << 20).await.unwrap();
        assert!(memory.holds_all());
        let out = decompress(Encoding::Gzip, &packed, 64 << 20, &mut memory).unwrap();
        assert_eq!(out.len(), big.len() + 1024);
    }
}
