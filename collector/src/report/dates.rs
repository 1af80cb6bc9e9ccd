//! Dates without a date crate: `--since` in, `YYYY-MM-DD HH:MM UTC` out,
//! by Howard Hinnant's civil-date algorithms.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DD HH:MM UTC`.
pub(super) fn format_date(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A day, counted from the epoch, as `2026-11-01`.
pub fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A span written `7d` or `12h`: `None` when `text` is not written so,
/// `Some(Err)` when its number is not a count.
pub fn span(text: &str) -> Option<Result<Duration, ()>> {
    let (number, unit) = text
        .strip_suffix('d')
        .map(|n| (n, 86_400))
        .or_else(|| text.strip_suffix('h').map(|n| (n, 3_600)))?;
    Some(
        number
            .parse::<u64>()
            .map(|n| Duration::from_secs(n.saturating_mul(unit)))
            .map_err(|_| ()),
    )
}

/// Parses `--since`: a date (`2026-11-01`, midnight UTC), a UTC time
/// (`2026-11-01T08:30:00Z`), or a span back from `now` (`7d`, `12h`).
pub fn parse_since(text: &str, now: SystemTime) -> Result<u64, String> {
    let now_us = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let bad = || {
        format!(
            "'{text}' is not a date (2026-11-01), a UTC time (2026-11-01T08:30:00Z) or a span back (7d, 12h)"
        )
    };
    if let Some(back) = span(text) {
        let back = back.map_err(|()| bad())?;
        return Ok(now_us.saturating_sub(u64::try_from(back.as_micros()).unwrap_or(u64::MAX)));
    }
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').ok_or_else(bad)?)),
        None => (text, None),
    };
    let (y, m, d): (i64, u32, u32) = three(date, '-').ok_or_else(bad)?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let mut secs = u64::try_from(days_from_civil(y, m, d)).map_err(|_| bad())? * 86_400;
    if let Some(time) = time {
        let (h, min, s): (u64, u64, u64) = three(time, ':').ok_or_else(bad)?;
        if h > 23 || min > 59 || s > 59 {
            return Err(bad());
        }
        secs += h * 3600 + min * 60 + s;
    }
    Ok(secs * 1_000_000)
}

/// Three numbers separated by `separator`: `2026-11-01`, `08:30:00`.
fn three<A: FromStr, B: FromStr, C: FromStr>(text: &str, separator: char) -> Option<(A, B, C)> {
    let mut parts = text.split(separator);
    let parsed = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(parsed)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_US: u64 = 86_400_000_000;

    #[test]
    fn since_accepts_dates_times_and_spans() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(parse_since("2026-11-01", now), Ok(1_793_491_200_000_000));
        assert_eq!(
            parse_since("2026-11-01T08:30:00Z", now),
            Ok(1_793_491_200_000_000 + 30_600_000_000)
        );
        assert_eq!(
            parse_since("2d", now),
            Ok(1_795_000_000_000_000 - 2 * DAY_US)
        );
        assert_eq!(
            parse_since("12h", now),
            Ok(1_795_000_000_000_000 - DAY_US / 2)
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-01T25:00:00Z",
            "7w",
            "",
            "2026-11-01T08:30:00",
        ] {
            let error = parse_since(bad, now).expect_err(bad);
            assert!(error.contains("is not a date"), "{error}");
        }
    }

    #[test]
    fn dates_round_trip_through_days() {
        for days in [-1, 0, 59, 365, 11_016, 20_758, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(format_date(1_793_491_200_000_000), "2026-11-01 00:00 UTC");
        assert_eq!(format_day(20_758), "2026-11-01");
    }
}
