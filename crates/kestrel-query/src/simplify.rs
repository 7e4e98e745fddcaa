//! Rewrites a parsed query into a smaller one with the same meaning, then bounds its size.
//!
//! Rewrites (each keeps the set of matching traces exactly):
//! - an `AND` inside an `AND` (or an `OR` inside an `OR`) joins its parent's list: `a (b c)` is
//!   `a b c`;
//! - a term equal to an earlier sibling in the same list is dropped: `-x -x -x` is `-x`. Terms
//!   compare as parsed, order included: `(a OR b) (b OR a)` keeps both;
//! - a list left with one term is that term.
//!
//! Every predicate costs the backend a lookup per candidate trace, and a full-text term costs one
//! per chunk of text, so what remains is bounded: at most [`MAX_TERMS`] predicates and at most
//! [`MAX_TEXT_TERMS`] words or phrases, counted after the rewrites (a query repeating one word
//! 400 times is one word). Past a bound the error points at the first term over it.
//!
//! Invariant: the parser hands over the spans of the predicates in source order, which is the
//! left-to-right order of the tree's leaves; every rewrite keeps leaves in order, so the spans of
//! the kept leaves stay aligned with them.

use std::ops::Range;

use crate::ast::{Expr, Pred};
use crate::error::QueryError;
use crate::{MAX_TERMS, MAX_TEXT_TERMS};

/// `expr` simplified, checked against the bounds; `leaf_spans` are the spans of its predicates in
/// source order (one per leaf).
pub(crate) fn simplify(
    src: &str,
    expr: Expr,
    leaf_spans: Vec<Range<usize>>,
) -> Result<Expr, QueryError> {
    let mut spans = leaf_spans.into_iter();
    let (expr, kept) = node(expr, &mut spans);
    let mut leaves = Vec::new();
    collect(&expr, &mut leaves);
    debug_assert_eq!(leaves.len(), kept.len());
    let over_terms = kept.get(MAX_TERMS).map(|span| {
        QueryError::new(
            src,
            span.clone(),
            format!("too many terms: a query may hold at most {MAX_TERMS}"),
        )
        .hint("split the search into several queries")
    });
    let over_texts = leaves
        .iter()
        .zip(&kept)
        .filter(|(p, _)| matches!(p, Pred::Text(_)))
        .nth(MAX_TEXT_TERMS)
        .map(|(_, span)| {
            QueryError::new(
                src,
                span.clone(),
                format!(
                    "too many words to search for: a query may hold at most {MAX_TEXT_TERMS} words or quoted phrases"
                ),
            )
            .hint("quote words that belong together as one phrase, or use fewer words")
        });
    // Past both bounds, the error names the one reached first in the query.
    if let Some(e) = over_terms
        .into_iter()
        .chain(over_texts)
        .min_by_key(|e| e.bytes.start)
    {
        return Err(e);
    }
    Ok(expr)
}

/// One node simplified, with the spans of its remaining leaves.
fn node(e: Expr, spans: &mut impl Iterator<Item = Range<usize>>) -> (Expr, Vec<Range<usize>>) {
    match e {
        Expr::Pred(p) => (Expr::Pred(p), spans.next().into_iter().collect()),
        Expr::Not(inner) => {
            let (inner, kept) = node(*inner, spans);
            (Expr::Not(Box::new(inner)), kept)
        }
        Expr::And(parts) => list(parts, true, spans),
        Expr::Or(parts) => list(parts, false, spans),
    }
}

/// The parts of an AND (`and`) or an OR, flattened and without repeats.
fn list(
    parts: Vec<Expr>,
    and: bool,
    spans: &mut impl Iterator<Item = Range<usize>>,
) -> (Expr, Vec<Range<usize>>) {
    let mut out: Vec<(Expr, Vec<Range<usize>>)> = Vec::with_capacity(parts.len());
    for part in parts {
        let (part, kept) = node(part, spans);
        let subs = match part {
            Expr::And(subs) if and => split(subs, kept),
            Expr::Or(subs) if !and => split(subs, kept),
            other => vec![(other, kept)],
        };
        for (sub, kept) in subs {
            // Quadratic in the siblings, which the query length bounds (a few thousand at most).
            if !out.iter().any(|(seen, _)| *seen == sub) {
                out.push((sub, kept));
            }
        }
    }
    if out.len() == 1 {
        return out.remove(0);
    }
    let spans = out.iter().flat_map(|(_, k)| k.iter().cloned()).collect();
    let parts = out.into_iter().map(|(e, _)| e).collect();
    (
        if and {
            Expr::And(parts)
        } else {
            Expr::Or(parts)
        },
        spans,
    )
}

/// The parts of a simplified list, each with the spans of its own leaves.
fn split(parts: Vec<Expr>, spans: Vec<Range<usize>>) -> Vec<(Expr, Vec<Range<usize>>)> {
    let mut spans = spans.into_iter();
    parts
        .into_iter()
        .map(|p| {
            let n = count(&p);
            (p, spans.by_ref().take(n).collect())
        })
        .collect()
}

fn count(e: &Expr) -> usize {
    match e {
        Expr::Pred(_) => 1,
        Expr::Not(inner) => count(inner),
        Expr::And(parts) | Expr::Or(parts) => parts.iter().map(count).sum(),
    }
}

fn collect<'a>(e: &'a Expr, out: &mut Vec<&'a Pred>) {
    match e {
        Expr::Pred(p) => out.push(p),
        Expr::Not(inner) => collect(inner, out),
        Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| collect(p, out)),
    }
}
