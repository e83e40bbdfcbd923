//! RFC 3339 times as Go reads and writes them: CUE's `time.Time`/`time.Parse(time.RFC3339, s)`
//! (CUE represents times as strings, normalised to UTC in RFC 3339 with nanoseconds and no
//! trailing zeros, Go's `RFC3339Nano`, and compares them as strings), and the `created` times
//! of an image config, which policy-controller decodes with Go's `time.Time.UnmarshalJSON`
//! (strict RFC 3339 since Go 1.20) and encodes again in their own offset.

/// Go's layout strings for RFC 3339.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// An RFC 3339 time as written: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, each field in
/// range (the day within its month, as Go's `parseRFC3339` checks), `T` and `Z` upper case.
struct Written {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// The fraction's digits, as written (possibly none).
    fraction: String,
    /// East of UTC.
    offset_minutes: i64,
}

impl Written {
    fn read(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = text.get(range)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse::<i64>().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut i = 19;
        let mut fraction = String::new();
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            fraction = text[start..i].to_owned();
        }
        let offset_minutes = match b.get(i) {
            Some(b'Z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let minutes = h * 60 + m;
                if *sign == b'+' { minutes } else { -minutes }
            }
            _ => return None,
        };
        let in_range = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour <= 23
            && minute <= 59
            && second <= 59;
        in_range.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            offset_minutes,
        })
    }

    /// The fraction as Go keeps it (nanoseconds: digits past the ninth dropped) and writes it in
    /// `RFC3339Nano`: trailing zeros dropped, the point too when nothing is left.
    fn nanoseconds(&self) -> &str {
        self.fraction[..self.fraction.len().min(9)].trim_end_matches('0')
    }
}

/// Parses an RFC 3339 timestamp and returns it in UTC as `RFC3339Nano` formats it. A fraction
/// of more than nine digits is refused (Go truncates it; a policy's time is not read so).
pub fn parse_rfc3339(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (like 2024-01-31T12:00:00Z)");
    let written = Written::read(text).filter(|w| w.fraction.len() <= 9).ok_or_else(bad)?;
    let seconds = days_from_civil(written.year, written.month, written.day) * 86_400
        + written.hour * 3600
        + written.minute * 60
        + written.second
        - written.offset_minutes * 60;
    let (days, rem) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    push_fraction(&mut out, written.nanoseconds());
    out.push('Z');
    Ok(out)
}

/// `text` read by Go's `time.Time.UnmarshalJSON` (strict RFC 3339, Go ≥ 1.20) and written
/// again by its `MarshalJSON` (`RFC3339Nano`, in the offset read): `None` when Go refuses it.
/// `2024-01-01T00:00:00.500+00:00` is written `2024-01-01T00:00:00.5Z`; `+01:00` stays.
pub fn as_go_rewrites(text: &str) -> Option<String> {
    let written = Written::read(text)?;
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        written.year, written.month, written.day, written.hour, written.minute, written.second
    );
    push_fraction(&mut out, written.nanoseconds());
    match written.offset_minutes {
        0 => out.push('Z'),
        offset => {
            let sign = if offset < 0 { '-' } else { '+' };
            let offset = offset.abs();
            out.push_str(&format!("{sign}{:02}:{:02}", offset / 60, offset % 60));
        }
    }
    Some(out)
}

fn push_fraction(out: &mut String, nanoseconds: &str) {
    if !nanoseconds.is_empty() {
        out.push('.');
        out.push_str(nanoseconds);
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

#[cfg(test)]
mod tests {
    use super::{as_go_rewrites, parse_rfc3339};

    #[test]
    fn normalises_to_utc_like_go_rfc3339nano() {
        assert_eq!(parse_rfc3339("2049-10-09T17:10:27Z").unwrap(), "2049-10-09T17:10:27Z");
        assert_eq!(
            parse_rfc3339("2022-04-26T12:00:00+02:00").unwrap(),
            "2022-04-26T10:00:00Z"
        );
        assert_eq!(
            parse_rfc3339("2024-01-01T00:30:00.500-01:00").unwrap(),
            "2024-01-01T01:30:00.5Z"
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T00:30:00+01:00").unwrap(),
            "2024-02-29T23:30:00Z"
        );
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "yesterday",
            "2024-01-01T00:00:00.1234567891Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rewritten_in_their_own_offset_as_go_marshals_them() {
        for (written, rewritten) in [
            ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
            ("2024-01-01T00:00:00.500+00:00", "2024-01-01T00:00:00.5Z"),
            ("2024-01-01T00:00:00.000-00:00", "2024-01-01T00:00:00Z"),
            ("2024-01-01T23:30:00.120+01:30", "2024-01-01T23:30:00.12+01:30"),
            ("2024-01-01T00:00:00-05:00", "2024-01-01T00:00:00-05:00"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            // Go keeps nanoseconds: the tenth digit on is dropped.
            ("2024-01-01T00:00:00.1234567891Z", "2024-01-01T00:00:00.123456789Z"),
            ("2024-01-01T00:00:00.0000000009Z", "2024-01-01T00:00:00Z"),
        ] {
            assert_eq!(as_go_rewrites(written).as_deref(), Some(rewritten), "{written}");
        }
        for refused in [
            "2024-02-30T00:00:00Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00,5Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+01:60",
            "2024-01-01T0:00:00Z",
            "2024-01-01T00:00:00",
            "",
        ] {
            assert_eq!(as_go_rewrites(refused), None, "{refused}");
        }
    }
}
