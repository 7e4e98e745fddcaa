//! Value syntax: numbers, ranges, durations and dates. Each parser returns a plain message on
//! failure, repeating the value only cut (see [`shown`]); the caller adds the position.

use std::ops::Bound;

use crate::ast::NumRange;
use crate::error::shown;

/// A finite number.
pub(crate) fn number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(format!("{} is not a finite number", shown(s))),
        Err(_) => Err(format!("{} is not a number", shown(s))),
    }
}

/// A whole number.
pub(crate) fn integer(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("{} is not a whole number", shown(s)))
}

/// A duration such as `500ms`, `2s`, `1.5m`, `3h`, `7d`, in milliseconds.
pub(crate) fn duration_ms(s: &str) -> Result<f64, String> {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "" => {
            return Err(format!(
                "{} has no unit; write e.g. 500ms, 2s, 5m, 1h or 7d",
                shown(s)
            ));
        }
        _ => {
            return Err(format!(
                "unknown unit {} in {}; use ms, s, m, h or d",
                shown(unit),
                shown(s)
            ));
        }
    };
    let n = number(num).map_err(|_| {
        format!(
            "{} is not a duration; write e.g. 500ms, 2s, 5m, 1h or 7d",
            shown(s)
        )
    })?;
    if n < 0.0 {
        return Err(format!("{} is negative; a duration is >= 0", shown(s)));
    }
    Ok(n * scale)
}

/// `lo..hi` (either end may be empty) or a single value, parsed with `one`.
pub(crate) fn range<T: Copy + PartialOrd>(
    s: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<NumRange<T>, String> {
    let Some((lo, hi)) = s.split_once("..") else {
        return one(s).map(NumRange::eq);
    };
    if lo.is_empty() && hi.is_empty() {
        return Err("a range needs at least one end, e.g. 10..20, 10.. or ..20".to_owned());
    }
    let lo = if lo.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Included(one(lo)?)
    };
    let hi = if hi.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Included(one(hi)?)
    };
    if let (Bound::Included(a), Bound::Included(b)) = (lo, hi)
        && a > b
    {
        return Err(format!(
            "the range {} is empty: its start is above its end",
            shown(s)
        ));
    }
    Ok(NumRange { lo, hi })
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const DATE_HINT: &str = "write a date as 2026-11-01, 2026-11-01T14:30 or 2026-11-01T14:30:00Z (UTC), or a time ago as 24h or 7d";

/// A UTC date or date-time, in microseconds since the Unix epoch.
fn date_us(s: &str) -> Result<i64, String> {
    let bad = || format!("{} is not a date; {DATE_HINT}", shown(s));
    let s2 = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s2.split_once('T').map_or((s2, None), |(d, t)| (d, Some(t)));
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d) = (
        integer(y).map_err(|_| bad())?,
        integer(m).map_err(|_| bad())?,
        integer(d).map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(format!(
            "{} is not a valid calendar date; {DATE_HINT}",
            shown(s)
        ));
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let hms: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&hms.len()) || hms.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let field = |i: usize, max: i64| -> Result<i64, String> {
            let v = hms
                .get(i)
                .map_or(Ok(0), |p| integer(p))
                .map_err(|_| bad())?;
            if (0..=max).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{} has an invalid time; {DATE_HINT}", shown(s)))
            }
        };
        secs += field(0, 23)? * 3600 + field(1, 59)? * 60 + field(2, 59)?;
    }
    Ok(secs * 1_000_000)
}

/// A point in time: a date, or a time ago such as `24h` (relative to `now_us`).
pub(crate) fn time_us(s: &str, now_us: i64) -> Result<i64, String> {
    if s.starts_with(|c: char| c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_alphabetic())
        && !s.contains('-')
    {
        let ms = duration_ms(s).map_err(|e| format!("{e}; {DATE_HINT}"))?;
        // Truncation to whole microseconds is intended.
        #[allow(clippy::cast_possible_truncation)]
        return Ok(now_us - (ms * 1000.0) as i64);
    }
    date_us(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("2s").unwrap(), 2000.0);
        assert_eq!(duration_ms("500ms").unwrap(), 500.0);
        assert_eq!(duration_ms("1.5m").unwrap(), 90_000.0);
        assert!(duration_ms("2").unwrap_err().contains("no unit"));
        assert!(duration_ms("2y").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn dates() {
        assert_eq!(date_us("1970-01-02").unwrap(), 86_400_000_000);
        assert_eq!(
            date_us("2026-11-01T00:00:00Z").unwrap(),
            1_793_491_200_000_000
        );
        assert_eq!(
            date_us("2026-11-01T01:30").unwrap(),
            1_793_491_200_000_000 + 5_400_000_000
        );
        assert!(date_us("2026-02-30").is_err());
        assert!(date_us("2026-13-01").is_err());
        assert!(date_us("yesterday").is_err());
        assert_eq!(
            time_us("24h", 100_000_000_000).unwrap(),
            100_000_000_000 - 86_400_000_000
        );
    }

    #[test]
    fn ranges() {
        let r = range("10..20", integer).unwrap();
        assert_eq!((r.lo, r.hi), (Bound::Included(10), Bound::Included(20)));
        assert_eq!(range("10..", integer).unwrap().hi, Bound::Unbounded);
        assert!(range("20..10", integer).is_err());
        assert!(range("..", integer).is_err());
    }
}
