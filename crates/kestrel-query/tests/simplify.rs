//! Repeated terms collapse without changing what a query matches, and the size of what is left is
//! bounded (`MAX_TERMS` predicates, `MAX_TEXT_TERMS` words or phrases).

use caribou_model::RolloutStatus;
use kestrel_query::{Expr, MAX_QUERY_LEN, MAX_TERMS, MAX_TEXT_TERMS, Pred, parse_at};
use proptest::prelude::*;

const NOW: i64 = 1_800_000_000_000_000;

fn plan(q: &str) -> Expr {
    parse_at(q, NOW)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .expr
        .expect("non-empty")
}

fn word(w: &str) -> Expr {
    Expr::Pred(Pred::Text(w.into()))
}

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

fn tag(t: &str) -> Expr {
    Expr::Pred(Pred::Tag(t.into()))
}

#[test]
fn repeated_siblings_collapse() {
    // The query of the hardening issue: one negated word repeated up to the longest query.
    let q = "-nosuchword ".repeat(MAX_QUERY_LEN / 12);
    assert!(q.len() > 4000);
    assert_eq!(plan(&q), not(word("nosuchword")));
    assert_eq!(plan("a a"), word("a"));
    assert_eq!(
        plan("a b a c b"),
        Expr::And(vec![word("a"), word("b"), word("c")])
    );
    assert_eq!(
        plan("tag:x OR tag:y OR tag:x"),
        Expr::Or(vec![tag("x"), tag("y")])
    );
    // Equal as parsed, not as written: `status:error` and `status:ERROR` are one term.
    assert_eq!(
        plan("status:error status:ERROR"),
        Expr::Pred(Pred::Status(RolloutStatus::Error))
    );
    // `-x` and `NOT x` are the same term.
    assert_eq!(plan("-tag:x NOT tag:x"), not(tag("x")));
    // Whole groups repeat too.
    assert_eq!(
        plan("(tag:x OR tag:y) (tag:x OR tag:y) a"),
        Expr::And(vec![Expr::Or(vec![tag("x"), tag("y")]), word("a")])
    );
}

#[test]
fn nested_lists_of_the_same_kind_join_their_parent() {
    assert_eq!(
        plan("a (b (c a)) b"),
        Expr::And(vec![word("a"), word("b"), word("c")])
    );
    assert_eq!(
        plan("a OR (b OR a) OR (c)"),
        Expr::Or(vec![word("a"), word("b"), word("c")])
    );
    // Different kinds stay nested.
    assert_eq!(
        plan("a (b OR c) (b OR c)"),
        Expr::And(vec![word("a"), Expr::Or(vec![word("b"), word("c")])])
    );
    assert_eq!(
        plan("(a b) OR (a b)"),
        Expr::And(vec![word("a"), word("b")])
    );
    // Terms that differ only in a negation are kept.
    assert_eq!(plan("a -a"), Expr::And(vec![word("a"), not(word("a"))]));
}

fn words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i}")).collect()
}

#[test]
fn full_text_terms_are_bounded_after_merging_repeats() {
    let ok = words(MAX_TEXT_TERMS).join(" ");
    assert!(parse_at(&ok, NOW).is_ok());
    // Repeats do not count: every word twice over is still within the bound.
    let twice = format!("{ok} {ok}");
    assert!(parse_at(&twice, NOW).is_ok(), "{twice}");
    // A negated word is a term of its own (it is looked up on its own).
    let negated = format!("{} -w0 -w0", words(MAX_TEXT_TERMS - 1).join(" "));
    assert!(parse_at(&negated, NOW).is_ok(), "{negated}");
    assert!(parse_at(&format!("{negated} w31"), NOW).is_err());

    let mut too_many = words(MAX_TEXT_TERMS + 1);
    too_many.insert(5, "w0".into());
    too_many[10] = "\"a phrase\"".into();
    let q = too_many.join(" ");
    let e = parse_at(&q, NOW).unwrap_err();
    // The first word past the bound, negated or quoted words included.
    assert_eq!(&q[e.bytes.clone()], format!("w{MAX_TEXT_TERMS}"));
    assert!(
        e.to_string()
            .contains(&format!("at most {MAX_TEXT_TERMS} words or quoted phrases")),
        "{e}"
    );
    let negated: Vec<String> = words(MAX_TEXT_TERMS + 1)
        .iter()
        .map(|w| format!("-\"{w}\""))
        .collect();
    let q = negated.join(" ");
    let e = parse_at(&q, NOW).unwrap_err();
    assert_eq!(&q[e.bytes.clone()], format!("\"w{MAX_TEXT_TERMS}\""));
    // Inside groups too.
    let q = format!("({}) OR tag:x", words(MAX_TEXT_TERMS + 1).join(" OR "));
    assert!(parse_at(&q, NOW).is_err());
}

#[test]
fn all_terms_are_bounded_after_merging_repeats() {
    let tags: Vec<String> = (0..=MAX_TERMS).map(|i| format!("-tag:t{i}")).collect();
    let ok = tags[..MAX_TERMS].join(" ");
    assert!(ok.len() < 4096);
    assert!(parse_at(&ok, NOW).is_ok());
    // Repeats do not count.
    assert!(parse_at(&format!("{ok} {ok}"), NOW).is_ok());
    let q = format!("{ok} -tag:t0 {}", tags[MAX_TERMS]);
    let e = parse_at(&q, NOW).unwrap_err();
    assert_eq!(&q[e.bytes.clone()], format!("tag:t{MAX_TERMS}"));
    assert!(
        e.to_string().contains(&format!(
            "too many terms: a query may hold at most {MAX_TERMS}"
        )),
        "{e}"
    );
}

#[test]
fn past_both_bounds_the_first_one_reached_is_named() {
    let tags: Vec<String> = (0..=MAX_TERMS).map(|i| format!("tag:t{i}")).collect();
    let words = words(MAX_TEXT_TERMS + 1).join(" ");
    let q = format!("{words} {}", tags.join(" "));
    let e = parse_at(&q, NOW).unwrap_err();
    assert_eq!(&q[e.bytes.clone()], format!("w{MAX_TEXT_TERMS}"), "{e}");
    let q = format!("{} {words}", tags.join(" "));
    let e = parse_at(&q, NOW).unwrap_err();
    assert_eq!(&q[e.bytes.clone()], format!("tag:t{MAX_TERMS}"), "{e}");
}

// ---------------------------------------------------------------- same meaning

/// Truth of a plan when the words `a`, `b`, `c` hold as `bits` says (bit 0 for `a`).
fn eval(e: &Expr, bits: u8) -> bool {
    match e {
        Expr::And(parts) => parts.iter().all(|p| eval(p, bits)),
        Expr::Or(parts) => parts.iter().any(|p| eval(p, bits)),
        Expr::Not(inner) => !eval(inner, bits),
        Expr::Pred(Pred::Text(w)) => bits & (1 << (w.as_bytes()[0] - b'a')) != 0,
        Expr::Pred(p) => panic!("unexpected {p:?}"),
    }
}

/// A reference reading of the same small language (`a b c`, juxtaposition, `OR`, `-`, parens),
/// written independently of the parser: the truth of `tokens` under `bits`.
fn reference(tokens: &[&str], bits: u8) -> bool {
    fn and(t: &[&str], i: &mut usize, bits: u8) -> bool {
        let mut v = or(t, i, bits);
        while *i < t.len() && t[*i] != ")" {
            v &= or(t, i, bits);
        }
        v
    }
    fn or(t: &[&str], i: &mut usize, bits: u8) -> bool {
        let mut v = unary(t, i, bits);
        while *i < t.len() && t[*i] == "OR" {
            *i += 1;
            v |= unary(t, i, bits);
        }
        v
    }
    fn unary(t: &[&str], i: &mut usize, bits: u8) -> bool {
        *i += 1;
        match t[*i - 1] {
            "-" => !unary(t, i, bits),
            "(" => {
                let v = and(t, i, bits);
                *i += 1; // ")"
                v
            }
            w => bits & (1 << (w.as_bytes()[0] - b'a')) != 0,
        }
    }
    and(tokens, &mut 0, bits)
}

/// Well-formed token lists of the small language, with many repeats.
fn small_query() -> impl Strategy<Value = Vec<&'static str>> {
    let leaf = prop_oneof![Just(vec!["a"]), Just(vec!["b"]), Just(vec!["c"])];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..5).prop_map(|parts| {
                let mut out = vec!["("];
                for p in parts {
                    out.extend(p);
                }
                out.push(")");
                out
            }),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| {
                let mut out = l;
                out.push("OR");
                out.extend(r);
                out
            }),
            inner.prop_map(|p| {
                let mut out = vec!["-", "("];
                out.extend(p);
                out.push(")");
                out
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merging_never_changes_what_matches(tokens in small_query()) {
        // A "-" is written right before what it negates.
        let q = tokens.join(" ").replace("- ", "-");
        let e = plan(&q);
        for bits in 0..8u8 {
            prop_assert_eq!(eval(&e, bits), reference(&tokens, bits), "{} with {:03b}: {:?}", q, bits, e);
        }
        // Repeating the whole query changes nothing.
        prop_assert_eq!(plan(&format!("({q}) ({q})")), e.clone());
        prop_assert_eq!(plan(&format!("({q}) OR ({q})")), e);
    }
}
