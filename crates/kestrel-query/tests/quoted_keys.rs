//! Metadata keys and grade names that a bare key cannot hold (spaces, quotes, parentheses, `:<>`)
//! are written in double quotes, with the escapes of quoted values.

use std::ops::Bound::{Excluded, Unbounded};

use caribou_model::RolloutStatus;
use kestrel_query::{Expr, NumRange, Pred, TextMatch, parse_at};

const NOW: i64 = 1_800_000_000_000_000;

fn one(q: &str) -> Pred {
    match parse_at(q, NOW).unwrap_or_else(|e| panic!("{q}: {e}")).expr {
        Some(Expr::Pred(p)) => p,
        other => panic!("{q}: expected one predicate, got {other:?}"),
    }
}

fn meta(key: &str, value: &str) -> Pred {
    Pred::Meta {
        key: key.into(),
        value: TextMatch::Str(value.into()),
    }
}

#[test]
fn quoted_metadata_keys() {
    assert_eq!(one(r#"meta."customer id":x"#), meta("customer id", "x"));
    assert_eq!(
        one(r#"meta."customer id":"a b""#),
        meta("customer id", "a b")
    );
    assert_eq!(one(r#"meta."a:b<c>(d)":x"#), meta("a:b<c>(d)", "x"));
    // The escapes of quoted values: \" and \\; any other backslash stays.
    assert_eq!(one(r#"meta."say \"hi\"":x"#), meta("say \"hi\"", "x"));
    assert_eq!(one(r#"meta."back\\slash":x"#), meta("back\\slash", "x"));
    assert_eq!(one(r#"meta."tab\t":x"#), meta("tab\\t", "x"));
    // A key that needs no quotes means the same with them.
    assert_eq!(one(r#"meta."customer_id":c1"#), one("meta.customer_id:c1"));
    assert_eq!(one("meta.\"é\":1"), one("meta.é:1"));
    assert_eq!(
        one(r#"meta."latency ms">400"#),
        Pred::Meta {
            key: "latency ms".into(),
            value: TextMatch::Num(NumRange {
                lo: Excluded(400.0),
                hi: Unbounded
            })
        }
    );
    assert_eq!(
        parse_at(r#"-meta."customer id":x status:error"#, NOW)
            .unwrap()
            .expr,
        Some(Expr::And(vec![
            Expr::Not(Box::new(Expr::Pred(meta("customer id", "x")))),
            Expr::Pred(Pred::Status(RolloutStatus::Error)),
        ]))
    );
}

#[test]
fn quoted_grade_names() {
    assert_eq!(
        one(r#"grade."pass rate">0.5"#),
        Pred::Grade {
            name: "pass rate".into(),
            value: TextMatch::Num(NumRange {
                lo: Excluded(0.5),
                hi: Unbounded
            })
        }
    );
    assert_eq!(
        one(r#"grade."judge: tone":good"#),
        Pred::Grade {
            name: "judge: tone".into(),
            value: TextMatch::Str("good".into())
        }
    );
}

#[test]
fn mistakes_in_quoted_keys_are_pointed_at() {
    let cases: &[(&str, &str, &str)] = &[
        // (query, the text the error points at, the message)
        (
            r#"meta."customer id""#,
            r#"meta."customer id""#,
            "a quoted key needs \":\" or a comparison right after it at 1..19; write e.g. meta.\"customer id\":value",
        ),
        (
            r#"grade."pass rate" >0.5"#,
            r#"grade."pass rate""#,
            "a quoted key needs \":\" or a comparison right after it at 1..18; write e.g. grade.\"pass rate\":value",
        ),
        (
            r#"meta."":x"#,
            r#"meta."""#,
            "missing metadata key after \"meta.\" at 1..8; write e.g. meta.name:value",
        ),
        (
            r#"tag:a meta."customer id:x"#,
            r#""customer id:x"#,
            "unclosed quote at 12..26; add a closing \" (write \\\" for a quote inside)",
        ),
        (
            r#"meta."customer id">abc"#,
            "abc",
            "meta.\"customer id\": \"abc\" is not a number, so it cannot be compared with \">\" at 20..23; write meta.\"customer id\":abc to match the text",
        ),
        (
            r#"meta."customer id":"#,
            "",
            "meta.\"customer id\": missing value at 20..21",
        ),
    ];
    let mut wrong = Vec::new();
    for (q, at, want) in cases {
        match parse_at(q, NOW) {
            Ok(plan) => wrong.push(format!("{q}: parsed, to {plan:?}")),
            Err(e) => {
                if e.to_string() != *want {
                    wrong.push(format!("{q}\n   got: {e}\n  want: {want}"));
                }
                if &&q[e.bytes.clone()] != at {
                    wrong.push(format!("{q}: points at {:?}", &q[e.bytes.clone()]));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn other_fields_take_no_quoted_key() {
    // A quote after any other word starts a phrase, as it always did.
    assert_eq!(
        parse_at(r#"metadata"a b""#, NOW).unwrap().expr,
        Some(Expr::And(vec![
            Expr::Pred(Pred::Text("metadata".into())),
            Expr::Pred(Pred::Text("a b".into())),
        ]))
    );
}
