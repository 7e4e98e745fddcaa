//! The typed plan of a query: what a backend compiles to SQL.
//!
//! Every value is already checked and converted: statuses are [`RolloutStatus`], durations are
//! milliseconds, times are microseconds since the Unix epoch, numbers are `f64` or `i64`.

use std::ops::Bound;

use caribou_model::{Phase, RolloutStatus};

/// A parsed query. `expr` is `None` for an empty query (match everything).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub expr: Option<Expr>,
}

/// A boolean combination of predicates.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Pred(Pred),
}

/// An interval of numbers; `field:v` is `[v, v]`, `field>v` is `(v, ∞)`, `field:a..b` is `[a, b]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumRange<T> {
    pub lo: Bound<T>,
    pub hi: Bound<T>,
}

impl<T: Copy> NumRange<T> {
    pub fn eq(v: T) -> Self {
        NumRange {
            lo: Bound::Included(v),
            hi: Bound::Included(v),
        }
    }
}

/// How a metadata or grade value is compared: as a number, or as a string (exact).
#[derive(Debug, Clone, PartialEq)]
pub enum TextMatch {
    /// Compares as a number (also matches values logged as numeric strings).
    Num(NumRange<f64>),
    /// Exact string equality (also matches values logged as numbers with the same text).
    Str(String),
}

/// One condition on a trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    Status(RolloutStatus),
    Phase(Phase),
    Tag(String),
    /// The trace's model name or the model of any of its messages.
    Model(String),
    Project(String),
    Run(String),
    Datapoint(String),
    TraceId(String),
    /// A tool execution of this name.
    Tool(String),
    /// Case-insensitive substring of the trace's error message.
    Error(String),
    Step(NumRange<i64>),
    /// Cost in USD.
    Cost(NumRange<f64>),
    /// Input + output tokens.
    Tokens(NumRange<i64>),
    InputTokens(NumRange<i64>),
    OutputTokens(NumRange<i64>),
    /// Duration in milliseconds.
    DurationMs(NumRange<f64>),
    /// Start time in microseconds since the Unix epoch.
    StartedAt(NumRange<i64>),
    /// A metadata key (top level) compared to a value.
    Meta {
        key: String,
        value: TextMatch,
    },
    /// The grade of that name compared to a value (`true`/`false` compare as 1/0).
    Grade {
        name: String,
        value: TextMatch,
    },
    /// Words or a phrase in message and tool text.
    Text(String),
}
