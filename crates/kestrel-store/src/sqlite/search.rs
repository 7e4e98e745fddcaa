//! Compiles a parsed search query ([`Query`]) into a SQL condition on `traces t`.
//!
//! Safety: the SQL text is assembled only from fixed fragments of this module and numbered
//! parameter markers (`?N`); every value of the query is a bound parameter, the full-text terms
//! included (each quoted as an FTS5 string, so no query syntax of FTS5 reaches it).
//!
//! Semantics, per predicate:
//! - Fields of the trace row compare directly (`status`, `cost`, `step`, ...). A condition on a
//!   column that may be NULL is false for NULL, never NULL itself, so `-field:x` is exactly the
//!   complement of `field:x` (running traces have no duration: `-duration>2s` matches them).
//! - `tag`, `tool`, `model`, `meta.*` look up the side tables by value (`trace_tags`,
//!   `trace_tools`, `trace_models`, `trace_meta`). Metadata numbers compare as numbers and strings
//!   as strings, whatever the type the value was logged with (`"450"` and `450` both match
//!   `meta.x>400` and `meta.x:450`).
//! - `grade.name` compares the trace's latest grade of that name (by time, then item id).
//! - Words and phrases match the full-text index of message and tool text: each word or quoted
//!   phrase must appear in some chunk of the trace (so `a b` needs both words somewhere in the
//!   trace). The index lags ingest by a little (see `indexer`); text that contains no word
//!   characters constrains nothing.
//! - `AND`/`OR` lists are nested as balanced trees, so a long query never exceeds SQLite's
//!   expression depth limit (1000).

use std::ops::Bound;

use caribou_model::GradeValue;
use kestrel_query::{Expr, NumRange, Pred, Query, TextMatch};
use rusqlite::types::Value;

/// SQL being built: its bound values, referred to as `?1`, `?2`, ... in order of binding. A marker
/// may be used more than once in the text.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub args: Vec<Value>,
}

impl Sql {
    /// Binds a value; returns its marker.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> String {
        self.args.push(value.into());
        format!("?{}", self.args.len())
    }
}

/// How side-table predicates are written; both forms select exactly the same traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `t.id IN (SELECT trace_rowid FROM side WHERE value = ?)`: lets the planner start from the
    /// side table's value index (best when few traces match).
    Set,
    /// `EXISTS (SELECT 1 FROM side WHERE trace_rowid = t.id AND value = ?)`: one primary-key probe
    /// per trace row (best when walking traces in time order and stopping at a page, where the
    /// set form would first collect every matching trace). Full-text terms still collect the
    /// matching chunk ids once per statement (FTS5 answers a MATCH with a rowid constraint no
    /// faster than the whole MATCH), but only of chunks with id `>= min_chunk`: the caller passes
    /// the smallest chunk id of the traces it will walk, so old postings are never read.
    Probe { min_chunk: i64 },
}

/// The condition of `q` on `traces t`; `1` for an empty query.
pub(crate) fn condition(sql: &mut Sql, q: &Query) -> String {
    condition_as(sql, q, Style::Set)
}

/// The condition of `q` on `traces t` in the given style; `1` for an empty query.
pub(crate) fn condition_as(sql: &mut Sql, q: &Query, style: Style) -> String {
    match &q.expr {
        Some(e) => expr(sql, e, style),
        None => "1".to_owned(),
    }
}

/// Conjunctions longer than this are never split into a driver and probes.
const MAX_DRIVEN: usize = 64;

/// The top-level conjuncts of `q` (the expression itself when it is not an AND), when there are
/// at most [`MAX_DRIVEN`] of them.
pub(crate) fn conjuncts(q: &Query) -> &[Expr] {
    match &q.expr {
        Some(Expr::And(parts)) if parts.len() <= MAX_DRIVEN => parts,
        Some(e @ Expr::Pred(_)) => std::slice::from_ref(e),
        _ => &[],
    }
}

/// The id set a side-table or full-text conjunct selects, as SQL (trace ids, or chunk ids for
/// full-text terms), to estimate its size; `None` for other conjuncts.
pub(crate) fn set_of(sql: &mut Sql, e: &Expr) -> Option<String> {
    let Expr::Pred(p) = e else {
        return None;
    };
    if let Pred::Text(text) = p {
        if !text.chars().any(char::is_alphanumeric) {
            return None;
        }
        return Some(format!(
            "SELECT rowid FROM chunk_text WHERE chunk_text MATCH {}",
            sql.bind(fts_phrase(text))
        ));
    }
    if !matches!(
        p,
        Pred::Tag(_) | Pred::Model(_) | Pred::Tool(_) | Pred::Meta { .. } | Pred::Grade { .. }
    ) {
        return None;
    }
    let set = pred(sql, p, Style::Set);
    set.strip_prefix("t.id IN (")
        .and_then(|s| s.strip_suffix(')'))
        .map(str::to_owned)
}

/// The condition of `q` with its conjunct number `driver` in the set form (the planner starts
/// from it) and every other conjunct probed per candidate trace, so only the smallest set is
/// collected (the set form of every conjunct would collect each set in full, however large).
pub(crate) fn condition_driven(sql: &mut Sql, q: &Query, driver: usize) -> String {
    let parts = conjuncts(q);
    if parts.is_empty() {
        return condition(sql, q);
    }
    let rendered: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let style = if i == driver {
                Style::Set
            } else {
                Style::Probe { min_chunk: 0 }
            };
            expr(sql, e, style)
        })
        .collect();
    format!("({})", rendered.join(" AND "))
}

/// Whether `q` has a full-text term.
pub(crate) fn has_text(q: &Query) -> bool {
    fn walk(e: &Expr) -> bool {
        match e {
            Expr::And(parts) | Expr::Or(parts) => parts.iter().any(walk),
            Expr::Not(inner) => walk(inner),
            Expr::Pred(p) => matches!(p, Pred::Text(_)),
        }
    }
    q.expr.as_ref().is_some_and(walk)
}

fn expr(sql: &mut Sql, e: &Expr, style: Style) -> String {
    match e {
        Expr::And(parts) => balanced(sql, parts, "AND", style),
        Expr::Or(parts) => balanced(sql, parts, "OR", style),
        Expr::Not(inner) => format!("(NOT {})", expr(sql, inner, style)),
        Expr::Pred(p) => pred(sql, p, style),
    }
}

/// `a OP b OP c ...` as a balanced tree of parenthesised pairs (depth log2 n, not n).
fn balanced(sql: &mut Sql, parts: &[Expr], op: &str, style: Style) -> String {
    match parts {
        [] => if op == "AND" { "1" } else { "0" }.to_owned(),
        [one] => expr(sql, one, style),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            let l = balanced(sql, left, op, style);
            let r = balanced(sql, right, op, style);
            format!("({l} {op} {r})")
        }
    }
}

/// A trace's membership in a side table (`table` may carry an alias), `cond` being SQL on its
/// columns and `key` its trace column.
fn member(style: Style, table: &str, key: &str, cond: &str) -> String {
    match style {
        Style::Set => format!("t.id IN (SELECT {key} FROM {table} WHERE {cond})"),
        Style::Probe { .. } => {
            format!("EXISTS (SELECT 1 FROM {table} WHERE {key} = t.id AND {cond})")
        }
    }
}

/// `lo <(=) col <(=) hi`; `nullable` adds `col IS NOT NULL` so the result is never NULL.
fn range<T: Copy + Into<Value>>(
    sql: &mut Sql,
    col: &str,
    r: &NumRange<T>,
    nullable: bool,
) -> String {
    let mut parts = Vec::new();
    if nullable {
        parts.push(format!("{col} IS NOT NULL"));
    }
    match r.lo {
        Bound::Included(v) => parts.push(format!("{col} >= {}", sql.bind(v))),
        Bound::Excluded(v) => parts.push(format!("{col} > {}", sql.bind(v))),
        Bound::Unbounded => {}
    }
    match r.hi {
        Bound::Included(v) => parts.push(format!("{col} <= {}", sql.bind(v))),
        Bound::Excluded(v) => parts.push(format!("{col} < {}", sql.bind(v))),
        Bound::Unbounded => {}
    }
    if parts.is_empty() {
        return "1".to_owned();
    }
    format!("({})", parts.join(" AND "))
}

fn scale(r: &NumRange<f64>, by: f64) -> NumRange<f64> {
    let f = |b: Bound<f64>| match b {
        Bound::Included(v) => Bound::Included(v * by),
        Bound::Excluded(v) => Bound::Excluded(v * by),
        Bound::Unbounded => Bound::Unbounded,
    };
    NumRange {
        lo: f(r.lo),
        hi: f(r.hi),
    }
}

/// A text as one FTS5 string (a phrase of its tokens): wrapped in double quotes, inner ones
/// doubled. FTS5 operators inside it are plain text.
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn pred(sql: &mut Sql, p: &Pred, style: Style) -> String {
    match p {
        Pred::Status(s) => format!("t.status = {}", sql.bind(s.as_str().to_owned())),
        Pred::Phase(ph) => format!("t.phase IS {}", sql.bind(ph.as_str().to_owned())),
        Pred::Tag(tag) => member(
            style,
            "trace_tags",
            "trace_rowid",
            &format!("tag = {}", sql.bind(tag.clone())),
        ),
        Pred::Model(m) => member(
            style,
            "trace_models",
            "trace_rowid",
            &format!("model = {}", sql.bind(m.clone())),
        ),
        Pred::Tool(name) => member(
            style,
            "trace_tools",
            "trace_rowid",
            &format!("name = {}", sql.bind(name.clone())),
        ),
        Pred::Project(name) => format!(
            "(t.project_rowid IS NOT NULL AND t.project_rowid IN (SELECT id FROM projects WHERE name = {}))",
            sql.bind(name.clone())
        ),
        Pred::Run(id) => format!("t.run_id IS {}", sql.bind(id.clone())),
        Pred::Datapoint(id) => format!("t.datapoint_id IS {}", sql.bind(id.clone())),
        Pred::TraceId(id) => format!("t.trace_id = {}", sql.bind(id.clone())),
        // ASCII case folding on both sides (SQLite's lower() folds ASCII only).
        Pred::Error(needle) => format!(
            "(t.error IS NOT NULL AND instr(lower(t.error), {}) > 0)",
            sql.bind(needle.to_ascii_lowercase())
        ),
        Pred::Step(r) => range(sql, "t.step", r, true),
        Pred::Cost(r) => range(sql, "t.cost_usd", r, false),
        Pred::Tokens(r) => range(sql, "(t.input_tokens + t.output_tokens)", r, false),
        Pred::InputTokens(r) => range(sql, "t.input_tokens", r, false),
        Pred::OutputTokens(r) => range(sql, "t.output_tokens", r, false),
        // Stored in microseconds; the plan holds milliseconds.
        Pred::DurationMs(r) => range(sql, "(t.ended_at - t.started_at)", &scale(r, 1000.0), true),
        Pred::StartedAt(r) => range(sql, "t.sort_ts", r, false),
        Pred::Meta { key, value } => {
            let key = sql.bind(key.clone());
            let cond = match value {
                TextMatch::Num(r) => range(sql, "num", r, true),
                TextMatch::Str(s) => format!("text = {}", sql.bind(s.clone())),
            };
            member(
                style,
                "trace_meta",
                "trace_rowid",
                &format!("key = {key} AND {cond}"),
            )
        }
        Pred::Grade { name, value } => {
            let name = sql.bind(name.clone());
            // Probing: `+` keeps the planner on the primary key (trace_rowid, ...) instead of
            // `grades_by_value`, which would scan every grade of the name for each trace.
            let col = |c: &str| match style {
                Style::Set => format!("g.{c}"),
                Style::Probe { .. } => format!("+g.{c}"),
            };
            let cond = match value {
                TextMatch::Num(r) => range(sql, &col("value_num"), r, true),
                TextMatch::Str(s) => {
                    // Labels are stored as the JSON of the grade value.
                    let json = serde_json::to_string(&GradeValue::Label(s.clone()))
                        .unwrap_or_else(|_| String::from("null"));
                    format!("{} = {}", col("value"), sql.bind(json))
                }
            };
            member(
                style,
                "grades g",
                "g.trace_rowid",
                &format!(
                    "{} = {name} AND {cond}
                  AND NOT EXISTS (SELECT 1 FROM grades h WHERE h.trace_rowid = g.trace_rowid
                    AND h.name = g.name AND (h.ts, h.item_id) > (g.ts, g.item_id))",
                    col("name")
                ),
            )
        }
        Pred::Text(text) => {
            if !text.chars().any(char::is_alphanumeric) {
                return "1".to_owned();
            }
            let phrase = sql.bind(fts_phrase(text));
            match style {
                Style::Set => format!(
                    "t.id IN (SELECT c.trace_rowid FROM chunk_text JOIN item_chunks c ON c.id = chunk_text.rowid
                      WHERE chunk_text MATCH {phrase})"
                ),
                // Each trace's chunks (by `item_chunks_by_trace`) are looked up in the set of
                // matching chunk ids; `+` stops the planner from driving the probe from that set.
                Style::Probe { min_chunk } => format!(
                    "EXISTS (SELECT 1 FROM item_chunks c INDEXED BY item_chunks_by_trace
                      WHERE c.trace_rowid = t.id AND +c.id IN (SELECT rowid FROM chunk_text
                        WHERE chunk_text MATCH {phrase} AND rowid >= {}))",
                    sql.bind(min_chunk)
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_inlined() {
        let q = kestrel_query::parse_at(
            "tag:'x' meta.k:\"a'b\" \"it's; DROP TABLE traces\" grade.r>=0.5 (status:error OR -tool:t)",
            1_800_000_000_000_000,
        )
        .unwrap();
        let mut sql = Sql::default();
        let cond = condition(&mut sql, &q);
        assert!(!cond.contains("DROP"), "{cond}");
        assert!(!cond.contains("a'b"), "{cond}");
        assert!(
            sql.args
                .iter()
                .any(|v| *v == Value::Text("\"it's; DROP TABLE traces\"".into()))
        );
    }

    #[test]
    fn long_lists_nest_shallowly() {
        // Built directly: the parser merges repeats and bounds a query's terms, so it never
        // makes a list this long; the compiler must not nest it deeply all the same.
        let words = (0..1300)
            .map(|i| Expr::Pred(Pred::Text(format!("w{i}"))))
            .collect();
        let q = Query {
            expr: Some(Expr::And(words)),
        };
        let cond = condition(&mut Sql::default(), &q);
        let mut depth = 0i32;
        let mut max = 0;
        for c in cond.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            max = max.max(depth);
        }
        assert!(max < 40, "depth {max}");
    }

    #[test]
    fn phrases_are_fts_strings() {
        assert_eq!(fts_phrase("timed out"), "\"timed out\"");
        assert_eq!(fts_phrase("a\"b OR c*"), "\"a\"\"b OR c*\"");
    }
}
