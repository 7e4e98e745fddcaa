//! Malformed queries get messages that name the bad term, its position and what was expected.

use kestrel_query::parse_at;

const NOW: i64 = 1_800_000_000_000_000;

/// (query, the exact message).
const CASES: &[(&str, &str)] = &[
    (
        "stauts:error",
        "unknown field \"stauts\" at 1..7; did you mean \"status\"?",
    ),
    (
        "status:eror",
        "status: unknown status \"eror\"; expected one of RUNNING, COMPLETED, TRUNCATED, ERROR, CANCELLED at 8..12",
    ),
    (
        "status:",
        "status: missing value at 8..9; write status:value",
    ),
    (
        "phase:dev",
        "phase: unknown phase \"dev\"; expected one of eval, train, prod at 7..10",
    ),
    (
        "tag>3",
        "\"tag\" cannot be compared with \">\" at 1..6; write tag:value",
    ),
    (
        "step:5..2",
        "step: the range \"5..2\" is empty: its start is above its end at 6..10",
    ),
    ("step:1.5", "step: \"1.5\" is not a whole number at 6..9"),
    (
        "step:..",
        "step: a range needs at least one end, e.g. 10..20, 10.. or ..20 at 6..8",
    ),
    (
        "step>",
        "step: missing value at 6..7; write e.g. step>10 or step:10..20",
    ),
    ("cost>abc", "cost: \"abc\" is not a number at 6..9"),
    (
        "cost>1e999",
        "cost: \"1e999\" is not a finite number at 6..11",
    ),
    (
        "tokens>-5x",
        "tokens: \"-5x\" is not a whole number at 8..11",
    ),
    (
        "duration>2",
        "duration: \"2\" has no unit; write e.g. 500ms, 2s, 5m, 1h or 7d at 10..11",
    ),
    (
        "duration>2y",
        "duration: unknown unit \"y\" in \"2y\"; use ms, s, m, h or d at 10..12",
    ),
    (
        "after:2026-13-01",
        "after: \"2026-13-01\" is not a valid calendar date; write a date as 2026-11-01, 2026-11-01T14:30 or 2026-11-01T14:30:00Z (UTC), or a time ago as 24h or 7d at 7..17",
    ),
    (
        "since:yesterday",
        "since: \"yesterday\" is not a date; write a date as 2026-11-01, 2026-11-01T14:30 or 2026-11-01T14:30:00Z (UTC), or a time ago as 24h or 7d at 7..16",
    ),
    (
        "after>2026-01-01",
        "\"after\" cannot be compared with \">\" at 1..17; write after:value",
    ),
    (
        "meta.:x",
        "missing metadata key after \"meta.\" at 1..6; write e.g. meta.name:value",
    ),
    (
        "grade.:1",
        "missing grade name after \"grade.\" at 1..7; write e.g. grade.name:value",
    ),
    (
        "meta.city>paris",
        "meta.city: \"paris\" is not a number, so it cannot be compared with \">\" at 11..16; write meta.city:paris to match the text",
    ),
    (
        "error:\"timed out",
        "unclosed quote at 7..17; add a closing \" (write \\\" for a quote inside)",
    ),
    ("(status:error", "unclosed \"(\" at 1..2; add a \")\""),
    (
        "status:error)",
        "unmatched \")\" at 13..14; remove it or add a \"(\" before",
    ),
    (
        "()",
        "empty parentheses at 1..3; put terms inside or remove them",
    ),
    ("OR tag:a", "\"OR\" needs a term before it at 1..3"),
    (
        "tag:a OR",
        "\"OR\" needs a term after it at 7..9; write a OR b; a bare word \"or\" in lowercase is searched as text",
    ),
    (
        "tag:a OR OR tag:b",
        "\"OR\" needs a term after it at 7..9; write a OR b; a bare word \"or\" in lowercase is searched as text",
    ),
    ("tag:a AND", "\"AND\" needs a term after it at 7..10"),
    (
        "- tag:a",
        "a lone \"-\" at 1..2; write -term to exclude a term, with no space after the -",
    ),
    ("NOT", "nothing to negate at 1..4; write -term or NOT term"),
    (
        ":error",
        "missing field name before \":\" at 1..2; write field:value, e.g. status:error",
    ),
    ("tag:", "tag: missing value at 5..6; write tag:value"),
    (
        "colour:red",
        "unknown field \"colour\" at 1..7; known fields: status, phase, tag, model, project, run, datapoint, trace, tool, error, step, cost, tokens, input_tokens, output_tokens, duration, after, before, since, meta.<key>, grade.<name>; quote the text to search for it as words",
    ),
    ("a\u{0}b", "control character U+0000 at 2..3; remove it"),
    (
        "tag:x \u{7f}",
        "control character U+007F at 7..8; remove it",
    ),
    (
        "modle:gpt-4o",
        "unknown field \"modle\" at 1..6; did you mean \"model\"?",
    ),
    (
        "étiquette:x stauts:y",
        "unknown field \"étiquette\" at 1..10; known fields: status, phase, tag, model, project, run, datapoint, trace, tool, error, step, cost, tokens, input_tokens, output_tokens, duration, after, before, since, meta.<key>, grade.<name>; quote the text to search for it as words",
    ),
];

#[test]
fn each_malformed_query_has_its_message() {
    assert!(CASES.len() >= 25);
    let mut wrong = Vec::new();
    for (q, want) in CASES {
        match parse_at(q, NOW) {
            Ok(plan) => wrong.push(format!("{q:?} parsed, to {plan:?}")),
            Err(e) if e.to_string() != *want => {
                wrong.push(format!("{q:?}\n   got: {e}\n  want: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}tag:a{}", "(".repeat(100), ")".repeat(100));
    assert!(
        parse_at(&deep, NOW)
            .unwrap_err()
            .to_string()
            .contains("nests deeper than 64")
    );
    let negs = format!("{}tag:a", "-".repeat(100));
    assert!(
        parse_at(&negs, NOW)
            .unwrap_err()
            .to_string()
            .contains("nests deeper than 64")
    );
    let long = "a ".repeat(3000);
    assert!(
        parse_at(&long, NOW)
            .unwrap_err()
            .to_string()
            .contains("longer than 4096 bytes")
    );
}

#[test]
fn error_spans_point_into_the_query() {
    let q = "tag:a stauts:error";
    let e = parse_at(q, NOW).unwrap_err();
    assert_eq!(&q[e.bytes.clone()], "stauts");
    assert_eq!(e.columns, 7..13);
}

#[test]
fn messages_cut_long_terms() {
    use kestrel_query::MAX_ECHO_CHARS;
    // Each query holds one long run of text that the message would repeat (some twice).
    // (repeated unit, text before the run, text after it)
    let cases: &[(&str, &str, &str)] = &[
        ("a", "", ":x"),
        ("9x", "cost>", ""),
        ("1", "step:1..", "x"),
        ("e", "status:", ""),
        ("p", "phase:", ""),
        ("2", "duration>", ""),
        ("2", "duration>", "y"),
        ("y", "since:", ""),
        ("2", "after:", "-01-01"),
        ("k", "meta.", ">abc"),
        ("b", "meta.k>", ""),
        ("k", "grade.\"", " x\">abc"),
        ("k", "meta.\"", "\":"),
    ];
    for (unit, before, after) in cases {
        let long = unit.repeat(200);
        let q = format!("{before}{long}{after}");
        let msg = parse_at(&q, NOW).unwrap_err().to_string();
        // The term is shown, cut: a prefix of it ends with the mark.
        let some: String = long.chars().take(MAX_ECHO_CHARS / 2).collect();
        let one_more: String = long.chars().take(MAX_ECHO_CHARS + 1).collect();
        assert!(msg.contains(&some) && msg.contains('…'), "{q}: {msg}");
        assert!(!msg.contains(&one_more), "{q}: {msg}");
        assert!(msg.chars().count() < 500, "{q}: {msg}");
    }
    // Short terms are repeated whole, with no mark.
    let msg = parse_at("cost>abc", NOW).unwrap_err().to_string();
    assert_eq!(msg, "cost: \"abc\" is not a number at 6..9");
}
