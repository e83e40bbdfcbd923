//! RFC 3339 times as Go reads and writes them: CUE's `time.Time`/`time.Parse(time.RFC3339, s)`
//! (CUE represents times as strings, normalised to UTC in RFC 3339 with nanoseconds and no
//! trailing zeros, Go's `RFC3339Nano`, and compares them as strings), and the `created` times
//! of an image config, which policy-controller decodes with Go's `time.Time.UnmarshalJSON` and
//! encodes again, in their own offset, with `MarshalJSON`.
//!
//! `UnmarshalJSON` is `time.Parse(time.RFC3339, s)`: Go 1.20 wrote stricter checks for it
//! (`parseStrictRFC3339`) but keeps them switched off (go.dev/issue/54580, still so in Go
//! 1.25), so a one-digit hour, `,` before the fraction and an offset of `+24:00` or `+12:60`
//! are read. `MarshalJSON` refuses an offset of 24 hours or more.

/// Go's layout strings for RFC 3339.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// A time as Go's `time.Parse(time.RFC3339, s)` reads it: `YYYY-MM-DDTH[H]:MM:SS`, then
/// optionally `.` or `,` and digits, then `Z` or `±HH:MM` (hours up to 24, minutes up to 60,
/// as Go's range test allows), each date and clock field in range (the day within its month).
struct Written {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// Whether the hour was written with one digit.
    short_hour: bool,
    /// The fraction's separator and digits, as written (no separator: no fraction).
    fraction: Option<(u8, String)>,
    /// The offset east of UTC in minutes, and its hours and minutes as written.
    offset: Offset,
}

#[derive(Clone, Copy)]
enum Offset {
    Utc,
    Written { east: bool, hours: i64, minutes: i64 },
}

impl Offset {
    fn minutes(self) -> i64 {
        match self {
            Self::Utc => 0,
            Self::Written { east, hours, minutes } => (hours * 60 + minutes) * if east { 1 } else { -1 },
        }
    }
}

impl Written {
    fn read(text: &str) -> Option<Self> {
        let mut rest = text.as_bytes();
        let year = digits(&mut rest, 4)?;
        literal(&mut rest, b'-')?;
        let month = digits(&mut rest, 2)?;
        literal(&mut rest, b'-')?;
        let day = digits(&mut rest, 2)?;
        literal(&mut rest, b'T')?;
        // Go's `stdHour`: one or two digits.
        let short_hour = rest.get(1).is_none_or(|b| !b.is_ascii_digit());
        let hour = digits(&mut rest, if short_hour { 1 } else { 2 })?;
        literal(&mut rest, b':')?;
        let minute = digits(&mut rest, 2)?;
        literal(&mut rest, b':')?;
        let second = digits(&mut rest, 2)?;
        let mut fraction = None;
        if let [separator @ (b'.' | b','), first, ..] = rest
            && first.is_ascii_digit()
        {
            let separator = *separator;
            let count = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            fraction = Some((separator, String::from_utf8(rest[1..=count].to_vec()).ok()?));
            rest = &rest[1 + count..];
        }
        let offset = match rest {
            [b'Z'] => Offset::Utc,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (mut h, mut m) = (&[*h1, *h2][..], &[*m1, *m2][..]);
                let (hours, minutes) = (digits(&mut h, 2)?, digits(&mut m, 2)?);
                if hours > 24 || minutes > 60 {
                    return None;
                }
                Offset::Written {
                    east: *sign == b'+',
                    hours,
                    minutes,
                }
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
            short_hour,
            fraction,
            offset,
        })
    }

    /// Whether the time is RFC 3339 as written strictly (what Go's disabled strict checks and
    /// RFC 3339 demand): a two-digit hour, `.` before at most nine digits of fraction, an
    /// offset's hours below 24 and minutes below 60.
    fn is_strict(&self) -> bool {
        let offset_in_range = match self.offset {
            Offset::Utc => true,
            Offset::Written { hours, minutes, .. } => hours < 24 && minutes < 60,
        };
        !self.short_hour
            && self
                .fraction
                .as_ref()
                .is_none_or(|(separator, digits)| *separator == b'.' && digits.len() <= 9)
            && offset_in_range
    }

    /// The fraction as Go keeps it (nanoseconds: digits past the ninth dropped) and writes it in
    /// `RFC3339Nano`: trailing zeros dropped, the point too when nothing is left.
    fn nanoseconds(&self) -> &str {
        self.fraction
            .as_ref()
            .map_or("", |(_, digits)| digits[..digits.len().min(9)].trim_end_matches('0'))
    }
}

/// Exactly `count` ASCII digits from the front of `rest`, as a number.
fn digits(rest: &mut &[u8], count: usize) -> Option<i64> {
    let (number, after) = rest.split_at_checked(count)?;
    if !number.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *rest = after;
    Some(number.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

/// `byte` at the front of `rest`.
fn literal(rest: &mut &[u8], byte: u8) -> Option<()> {
    let (first, after) = rest.split_first()?;
    (*first == byte).then(|| *rest = after)
}

/// Parses an RFC 3339 timestamp, written strictly ([`Written::is_strict`]; what Go reads besides
/// is refused, not read), and returns it in UTC as `RFC3339Nano` formats it.
pub fn parse_rfc3339(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (like 2024-01-31T12:00:00Z)");
    let written = Written::read(text).filter(Written::is_strict).ok_or_else(bad)?;
    let seconds = days_from_civil(written.year, written.month, written.day) * 86_400
        + written.hour * 3600
        + written.minute * 60
        + written.second
        - written.offset.minutes() * 60;
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

/// `text` read by Go's `time.Time.UnmarshalJSON` and written again by its `MarshalJSON`
/// (`RFC3339Nano`, in the offset read): `None` when Go refuses either.
/// `2024-01-01T7:00:00,500+00:00` is written `2024-01-01T07:00:00.5Z`; `+01:00` stays,
/// `+12:60` is `+13:00`, `+24:00` cannot be written.
pub fn as_go_rewrites(text: &str) -> Option<String> {
    let written = Written::read(text)?;
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        written.year, written.month, written.day, written.hour, written.minute, written.second
    );
    push_fraction(&mut out, written.nanoseconds());
    match written.offset.minutes() {
        0 => out.push('Z'),
        offset if offset.abs() >= 24 * 60 => return None,
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
            // Read by Go, not RFC 3339 as written strictly.
            "2024-01-01T00:00:00.1234567891Z",
            "2024-01-01T7:00:00Z",
            "2024-01-01T00:00:00,5Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+01:60",
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
            // What Go's strict checks, switched off, would refuse.
            ("2024-01-01T7:00:00Z", "2024-01-01T07:00:00Z"),
            ("2024-01-01T00:00:00,25Z", "2024-01-01T00:00:00.25Z"),
            ("2024-01-01T00:00:00+12:60", "2024-01-01T00:00:00+13:00"),
            ("2024-01-01T00:00:00-00:60", "2024-01-01T00:00:00-01:00"),
        ] {
            assert_eq!(as_go_rewrites(written).as_deref(), Some(rewritten), "{written}");
        }
        for refused in [
            "2024-02-30T00:00:00Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00,Z",
            // Read by Go, but `MarshalJSON` refuses offsets of 24 hours.
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00-23:60",
            "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00+01:61",
            "2024-01-01T00:00:00+1:00",
            "2024-01-01T000:00:00Z",
            "2024-01-01T:00:00Z",
            "2024-1-01T00:00:00Z",
            "24-01-01T00:00:00Z",
            "2024-01-01T00:0:00Z",
            "2024-01-01T00:00:0Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00Z ",
            "",
        ] {
            assert_eq!(as_go_rewrites(refused), None, "{refused}");
        }
    }
}
