//! No input makes the parser panic, and every error span lies inside the query.

use kestrel_query::parse_at;
use proptest::prelude::*;

fn check(q: &str) {
    if let Err(e) = parse_at(q, 1_800_000_000_000_000) {
        assert!(
            e.bytes.start <= e.bytes.end && e.bytes.end <= q.len(),
            "{q:?}: {e:?}"
        );
        assert!(
            q.is_char_boundary(e.bytes.start) && q.is_char_boundary(e.bytes.end),
            "{q:?}: {e:?}"
        );
        assert!(!e.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_text(q in any::<String>()) {
        check(&q);
    }

    #[test]
    fn query_shaped_text(parts in prop::collection::vec(
        prop_oneof![
            Just("status".to_owned()), Just("meta.".to_owned()), Just("grade.".to_owned()), Just("step".to_owned()),
            Just("duration".to_owned()), Just("after".to_owned()), Just("since".to_owned()), Just(":".to_owned()),
            Just(">".to_owned()), Just(">=".to_owned()), Just("<".to_owned()), Just("..".to_owned()), Just("(".to_owned()),
            Just(")".to_owned()), Just("-".to_owned()), Just(" OR ".to_owned()), Just(" AND ".to_owned()), Just("NOT ".to_owned()),
            Just("\"".to_owned()), Just("\\".to_owned()), Just(" ".to_owned()), Just("é".to_owned()), Just("2026-11-01".to_owned()),
            "[0-9]{1,4}".prop_map(|s| s), "[a-z]{1,6}".prop_map(|s| s), Just("1e999".to_owned()), Just("24h".to_owned()),
        ],
        0..24,
    )) {
        check(&parts.concat());
    }
}
