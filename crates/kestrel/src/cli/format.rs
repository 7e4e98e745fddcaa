//! Small formatters of figures for people: times, durations, money, tokens, grade values, JSON.
//!
//! Times are shown in UTC (`2025-06-01 12:00:03`): the CLI reads no time zone database, and UTC is
//! what the API's microsecond timestamps mean. Every formatter is total: any input gives a string.

use caribou_model::GradeValue;
use caribou_model::api::GradeSummary;
use serde_json::Value;

/// `2025-06-01 12:00:03` (UTC) from microseconds since the Unix epoch.
pub fn time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `12:00:03.250` (UTC), for items within a trace.
pub fn clock(us: i64) -> String {
    let ms = us.div_euclid(1_000).rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms % 3_600_000 / 60_000,
        ms % 60_000 / 1000,
        ms % 1000
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `850ms`, `1.25s`, `2m05s`, `1h02m`.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".to_owned();
    }
    if ms < 1000.0 {
        return format!("{}ms", ms.round());
    }
    let secs = ms / 1000.0;
    if secs < 60.0 {
        return format!("{secs:.2}s");
    }
    // Finite, positive and far below u64::MAX seconds for any real trace.
    let whole = secs.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

/// `-` for none.
pub fn opt_duration_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_owned(), duration_ms)
}

/// `$0.0123`; small amounts keep significant digits (`$0.000042`).
pub fn cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".to_owned()
    } else if usd.abs() >= 1.0 {
        format!("${usd:.2}")
    } else if usd.abs() >= 0.0001 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.6}")
    }
}

/// `1,234 / 56` (input / output); `-` when both are zero.
pub fn tokens(input: u64, output: u64) -> String {
    if input == 0 && output == 0 {
        "-".to_owned()
    } else {
        format!("{} / {}", count(input), count(output))
    }
}

/// `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number without noise: `1`, `0.5`, `0.333`.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// `-` for none.
pub fn opt_number(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), number)
}

pub fn grade_value(value: &GradeValue) -> String {
    match value {
        GradeValue::Bool(b) => b.to_string(),
        GradeValue::Number(x) => number(*x),
        GradeValue::Label(s) => s.clone(),
    }
}

/// `reward=0.5 correct=true`.
pub fn grades(grades: &[GradeSummary]) -> String {
    grades
        .iter()
        .map(|g| format!("{}={}", g.name, grade_value(&g.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A grade VALUE from the command line: `true`/`false` (any case) is a bool, a finite number is
/// a number, anything else is a label.
pub fn parse_grade_value(text: &str) -> GradeValue {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") {
        return GradeValue::Bool(true);
    }
    if t.eq_ignore_ascii_case("false") {
        return GradeValue::Bool(false);
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => GradeValue::Number(x),
        _ => GradeValue::Label(text.to_owned()),
    }
}

/// Indented JSON (2 spaces).
pub fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Arguments of a tool call as people read them: a JSON string or object pretty-printed, any other
/// string as it is.
pub fn arguments(value: &Value) -> String {
    match value {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => pretty_json(&parsed),
            _ => s.clone(),
        },
        other => pretty_json(other),
    }
}

/// Text safe to print on a terminal: control characters other than line breaks and tabs (an
/// escape sequence in a logged message, a carriage return that would overwrite a line) are
/// shown escaped, `\u{1b}`, instead of acting on the terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` cut to `max` characters with a note of what was left out; whole when `max` is `None`.
pub fn truncate(text: &str, max: Option<usize>) -> String {
    match max {
        Some(max) if text.chars().count() > max => {
            let kept: String = text.chars().take(max).collect();
            let left = text.chars().count() - max;
            format!("{kept}… [+{left} chars]")
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        // 2024-02-29 23:59:59.5 UTC (a leap day).
        assert_eq!(time(1_709_251_199_500_000), "2024-02-29 23:59:59");
        assert_eq!(clock(1_709_251_199_500_000), "23:59:59.500");
        assert_eq!(time(-1_000_000), "1969-12-31 23:59:59");
    }

    #[test]
    fn figures() {
        assert_eq!(duration_ms(12.4), "12ms");
        assert_eq!(duration_ms(1250.0), "1.25s");
        assert_eq!(duration_ms(125_000.0), "2m05s");
        assert_eq!(duration_ms(3_720_000.0), "1h02m");
        assert_eq!(cost(0.0), "$0");
        assert_eq!(cost(0.01234), "$0.0123");
        assert_eq!(cost(0.000042), "$0.000042");
        assert_eq!(cost(12.5), "$12.50");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(tokens(1200, 30), "1,200 / 30");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(1.0 / 3.0), "0.333");
    }

    #[test]
    fn grade_values_from_the_command_line() {
        assert_eq!(parse_grade_value("true"), GradeValue::Bool(true));
        assert_eq!(parse_grade_value("FALSE"), GradeValue::Bool(false));
        assert_eq!(parse_grade_value("0.75"), GradeValue::Number(0.75));
        assert_eq!(parse_grade_value("-2"), GradeValue::Number(-2.0));
        assert_eq!(
            parse_grade_value("NaN"),
            GradeValue::Label("NaN".to_owned())
        );
        assert_eq!(
            parse_grade_value("good"),
            GradeValue::Label("good".to_owned())
        );
    }

    #[test]
    fn arguments_are_pretty_when_json() {
        assert_eq!(
            arguments(&json!("{\"city\":\"Paris\"}")),
            "{\n  \"city\": \"Paris\"\n}"
        );
        assert_eq!(arguments(&json!("plain words")), "plain words");
        assert_eq!(arguments(&json!({"a": 1})), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn control_characters_are_shown_not_run() {
        assert_eq!(printable("a\x1b[2Jb\r\nc\td"), "a\\u{1b}[2Jb\\u{d}\nc\td");
    }

    #[test]
    fn truncation_says_what_was_cut() {
        assert_eq!(truncate("abcdef", None), "abcdef");
        assert_eq!(truncate("abcdef", Some(10)), "abcdef");
        assert_eq!(truncate("abcdéf", Some(4)), "abcd… [+2 chars]");
    }
}
