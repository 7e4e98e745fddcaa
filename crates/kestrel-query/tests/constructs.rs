//! Every construct of the language parses to the expected typed plan.

use std::ops::Bound::{Excluded, Included, Unbounded};

use caribou_model::{Phase, RolloutStatus};
use kestrel_query::{Expr, NumRange, Pred, TextMatch, parse_at};

const NOW: i64 = 1_800_000_000_000_000;

fn one(q: &str) -> Pred {
    match parse_at(q, NOW).unwrap_or_else(|e| panic!("{q}: {e}")).expr {
        Some(Expr::Pred(p)) => p,
        other => panic!("{q}: expected one predicate, got {other:?}"),
    }
}

fn expr(q: &str) -> Expr {
    parse_at(q, NOW)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .expr
        .expect("non-empty")
}

#[test]
fn the_issue_examples() {
    assert_eq!(one("status:error"), Pred::Status(RolloutStatus::Error));
    assert_eq!(
        one("status:COMPLETED"),
        Pred::Status(RolloutStatus::Completed)
    );
    assert_eq!(one("tag:premium_tier"), Pred::Tag("premium_tier".into()));
    assert_eq!(
        expr("-tag:internal"),
        Expr::Not(Box::new(Expr::Pred(Pred::Tag("internal".into()))))
    );
    assert_eq!(
        one("meta.customer_id:cust_123"),
        Pred::Meta {
            key: "customer_id".into(),
            value: TextMatch::Str("cust_123".into())
        }
    );
    assert_eq!(
        one("meta.latency_ms>400"),
        Pred::Meta {
            key: "latency_ms".into(),
            value: TextMatch::Num(NumRange {
                lo: Excluded(400.0),
                hi: Unbounded
            })
        }
    );
    assert_eq!(one("model:gpt-4o"), Pred::Model("gpt-4o".into()));
    assert_eq!(one("phase:prod"), Pred::Phase(Phase::Prod));
    assert_eq!(one("run:run_0193abc"), Pred::Run("run_0193abc".into()));
    assert_eq!(
        one("step:10..20"),
        Pred::Step(NumRange {
            lo: Included(10),
            hi: Included(20)
        })
    );
    assert_eq!(one("datapoint:q1"), Pred::Datapoint("q1".into()));
    assert_eq!(
        one("grade.reward>=0.5"),
        Pred::Grade {
            name: "reward".into(),
            value: TextMatch::Num(NumRange {
                lo: Included(0.5),
                hi: Unbounded
            })
        }
    );
    assert_eq!(
        one("cost>0.01"),
        Pred::Cost(NumRange {
            lo: Excluded(0.01),
            hi: Unbounded
        })
    );
    assert_eq!(
        one("tokens>1000"),
        Pred::Tokens(NumRange {
            lo: Excluded(1000),
            hi: Unbounded
        })
    );
    assert_eq!(
        one("duration>2s"),
        Pred::DurationMs(NumRange {
            lo: Excluded(2000.0),
            hi: Unbounded
        })
    );
    assert_eq!(one("tool:search_web"), Pred::Tool("search_web".into()));
    assert_eq!(one("error:\"timed out\""), Pred::Error("timed out".into()));
    assert_eq!(
        one("after:2026-11-01"),
        Pred::StartedAt(NumRange {
            lo: Included(1_793_491_200_000_000),
            hi: Unbounded
        })
    );
    assert_eq!(
        one("before:2026-11-01"),
        Pred::StartedAt(NumRange {
            lo: Unbounded,
            hi: Excluded(1_793_491_200_000_000)
        })
    );
    assert_eq!(
        one("since:24h"),
        Pred::StartedAt(NumRange {
            lo: Included(NOW - 86_400_000_000),
            hi: Unbounded
        })
    );
    assert_eq!(one("hello"), Pred::Text("hello".into()));
    assert_eq!(one("\"timed out\""), Pred::Text("timed out".into()));
}

#[test]
fn comparisons_and_ranges() {
    assert_eq!(
        one("step<=3"),
        Pred::Step(NumRange {
            lo: Unbounded,
            hi: Included(3)
        })
    );
    assert_eq!(
        one("step<3"),
        Pred::Step(NumRange {
            lo: Unbounded,
            hi: Excluded(3)
        })
    );
    assert_eq!(one("step:7"), Pred::Step(NumRange::eq(7)));
    assert_eq!(
        one("step:10.."),
        Pred::Step(NumRange {
            lo: Included(10),
            hi: Unbounded
        })
    );
    assert_eq!(
        one("cost:..0.5"),
        Pred::Cost(NumRange {
            lo: Unbounded,
            hi: Included(0.5)
        })
    );
    assert_eq!(
        one("input_tokens>=10"),
        Pred::InputTokens(NumRange {
            lo: Included(10),
            hi: Unbounded
        })
    );
    assert_eq!(
        one("output_tokens<10"),
        Pred::OutputTokens(NumRange {
            lo: Unbounded,
            hi: Excluded(10)
        })
    );
    assert_eq!(
        one("duration:1s..1m"),
        Pred::DurationMs(NumRange {
            lo: Included(1000.0),
            hi: Included(60_000.0)
        })
    );
    assert_eq!(
        one("grade.correct:true"),
        Pred::Grade {
            name: "correct".into(),
            value: TextMatch::Num(NumRange::eq(1.0))
        }
    );
    assert_eq!(
        one("grade.label:good"),
        Pred::Grade {
            name: "label".into(),
            value: TextMatch::Str("good".into())
        }
    );
    assert_eq!(
        one("meta.n:1..5"),
        Pred::Meta {
            key: "n".into(),
            value: TextMatch::Num(NumRange {
                lo: Included(1.0),
                hi: Included(5.0)
            })
        }
    );
    assert_eq!(
        one("meta.city:\"New York\""),
        Pred::Meta {
            key: "city".into(),
            value: TextMatch::Str("New York".into())
        }
    );
    assert_eq!(one("project:my-agent"), Pred::Project("my-agent".into()));
    assert_eq!(one("trace:trc_1"), Pred::TraceId("trc_1".into()));
    assert_eq!(
        one("after:2026-11-01T12:30:15Z"),
        Pred::StartedAt(NumRange {
            lo: Included(1_793_536_215_000_000),
            hi: Unbounded
        })
    );
}

#[test]
fn boolean_structure() {
    let tag = |t: &str| Expr::Pred(Pred::Tag(t.into()));
    let err = Expr::Pred(Pred::Status(RolloutStatus::Error));
    // OR binds tighter than the implicit AND.
    assert_eq!(
        expr("status:error tag:a OR tag:b"),
        Expr::And(vec![err.clone(), Expr::Or(vec![tag("a"), tag("b")])])
    );
    assert_eq!(
        expr("(status:error tag:a) OR tag:b"),
        Expr::Or(vec![Expr::And(vec![err.clone(), tag("a")]), tag("b")])
    );
    assert_eq!(
        expr("status:error AND tag:a"),
        Expr::And(vec![err.clone(), tag("a")])
    );
    assert_eq!(expr("NOT tag:a"), Expr::Not(Box::new(tag("a"))));
    assert_eq!(
        expr("-(tag:a OR tag:b)"),
        Expr::Not(Box::new(Expr::Or(vec![tag("a"), tag("b")])))
    );
    assert_eq!(
        expr("tag:a OR tag:b OR tag:c"),
        Expr::Or(vec![tag("a"), tag("b"), tag("c")])
    );
    assert_eq!(parse_at("", NOW).unwrap().expr, None);
    assert_eq!(parse_at("   ", NOW).unwrap().expr, None);
    // Lowercase "or" is a word to search for.
    assert_eq!(
        expr("a or b"),
        Expr::And(vec![
            Expr::Pred(Pred::Text("a".into())),
            Expr::Pred(Pred::Text("or".into())),
            Expr::Pred(Pred::Text("b".into())),
        ])
    );
}

#[test]
fn the_design_example_parses_whole() {
    let q = "status:error tag:premium_tier meta.customer_id:cust_123 meta.latency_ms>400 model:gpt-4o step:10..20 \
             grade.reward>=0.5 cost>0.01 -tag:internal \"timed out\"";
    let Expr::And(parts) = expr(q) else {
        panic!("not an AND")
    };
    assert_eq!(parts.len(), 10);
    assert_eq!(parts[9], Expr::Pred(Pred::Text("timed out".into())));
}
