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
//! - A `meta.` key or `grade.` name that holds a space, a quote, a parenthesis or one of `:<>` is
//!   written in double quotes: `meta."customer id":c1`, `grade."pass rate">0.5`. Inside quotes
//!   (keys and values alike) `\"` stands for `"` and `\\` for `\`; any other backslash is kept.
//!
//! This crate is pure (no IO): [`parse`] turns text into a typed [`Query`] or a [`QueryError`] that
//! names the bad term, its position (1-based character columns, end exclusive) and what was expected.
//! Backends compile a [`Query`] into their own bound-parameter SQL.
//!
//! Limits, so that no input can exhaust the stack or make a plan that is costly to compile or run:
//! a query has at most [`MAX_QUERY_LEN`] bytes, nests at most [`MAX_DEPTH`] parentheses and
//! negations, and holds at most [`MAX_TERMS`] predicates of which at most [`MAX_TEXT_TERMS`] are
//! words or phrases. The plan is simplified first (see `simplify`): a term repeated in the same
//! `AND` or `OR` counts once, and `a (b c)` is `a b c`; results never change. An error message
//! repeats at most [`MAX_ECHO_CHARS`] characters of any one term, cut with "…".

mod ast;
mod error;
mod fields;
mod lexer;
mod parser;
mod simplify;
mod values;

pub use ast::{Expr, NumRange, Pred, Query, TextMatch};
pub use error::QueryError;
pub use fields::FIELDS;
pub use parser::{parse, parse_at};

/// Deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// Most predicates (`field:value` terms, words and phrases) in a query, counted after repeated
/// terms are merged. Each is a lookup per candidate trace; a human query holds a dozen.
pub const MAX_TERMS: usize = 128;
/// Most words and quoted phrases (negated or not) in a query, counted after repeated ones are
/// merged. Each is a full-text lookup per chunk of each candidate trace, the costliest term.
pub const MAX_TEXT_TERMS: usize = 32;
/// Most characters of the user's text an error message repeats (a field, a value); longer text
/// is cut and ends with "…".
pub const MAX_ECHO_CHARS: usize = 60;
