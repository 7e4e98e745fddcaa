//! Kestrel's search language: one language for the API (`q=`), the CLI and the web UI's search box.
//!
//! ```text
//! status:error tag:premium_tier -tag:internal meta.customer_id:cust_123 meta.latency_ms>400
//! model:gpt-4o phase:prod step:10..20 grade.reward>=0.5 cost>0.01 tokens>1000 duration>2s
//! tool:search_web error:"timed out" after:2026-11-01 since:24h (tag:a OR tag:b) "exact words"
//! ```
//!
//! - Terms separated by spaces must all hold (AND). `OR` joins the terms beside it and binds tighter
//!   than the spaces: `status:error tag:a OR tag:b` is `status:error AND (tag:a OR tag:b)`.
//!   Parentheses group; `-term` or `NOT term` negates.
//! - `field:value` compares for equality, `field>value`, `>=`, `<`, `<=` compare in order, and
//!   `field:lo..hi` is an inclusive range (either end may be left open: `step:10..`).
//! - Bare or quoted words search message and tool text.
//!
//! This crate is pure (no IO): [`parse`] turns text into a typed [`Query`] or a [`QueryError`] that
//! names the bad term, its position (1-based character columns, end exclusive) and what was expected.
//! Backends compile a [`Query`] into their own bound-parameter SQL. Nesting is limited to
//! [`MAX_DEPTH`] and queries to [`MAX_QUERY_LEN`] bytes, so no input can exhaust the stack.

mod ast;
mod error;
mod fields;
mod lexer;
mod parser;
mod values;

pub use ast::{Expr, NumRange, Pred, Query, TextMatch};
pub use error::QueryError;
pub use fields::FIELDS;
pub use parser::{parse, parse_at};

/// Deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
