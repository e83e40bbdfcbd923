//! RFC 3339 times as Go's `time.Parse(time.RFC3339, s)` reads them: policy-controller decodes an
//! image config's `created` with it (`time.Time.UnmarshalJSON`), CUE's `time.Time` and
//! `time.Parse` call it, and so do OPA's `time.parse_rfc3339_ns` and `time.parse_ns` with the
//! `RFC3339` or `RFC3339Nano` layout (`v1/topdown/time.go`).
//!
//! Go 1.20 wrote stricter checks for RFC 3339 (`parseStrictRFC3339`) but keeps them switched off
//! (go.dev/issue/54580, still so in Go 1.25): `Parse` tries a strict fast path and falls back to
//! the general layout parser, so what it reads is what the general parser reads. That includes a
//! one-digit hour, `,` before the fraction, any number of fraction digits (the tenth on
//! dropped), and an offset of `+24:00` or `+12:60` (its range test uses `>`). It does not include
//! a lowercase `t` or `z`, a space for `T`, a second of 60, or text after the offset, all of
//! which some RFC 3339 readers (chrono's `parse_from_rfc3339`) take.
//!
//! The module (`src/policy/time.rs`) and `cip` (Rego's time builtins) read times through this
//! crate; `cip`'s tests compare it with Go's own `time` package.

/// Go's layout strings for RFC 3339.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// A time as Go's `time.Parse(time.RFC3339, s)` reads it: `YYYY-MM-DDTH[H]:MM:SS`, then
/// optionally `.` or `,` and digits, then `Z` or `±HH:MM` (hours up to 24, minutes up to 60,
/// as Go's range test allows), each date and clock field in range (the day within its month).
/// The fields are as written, in the written offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc3339 {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    /// Whether the hour was written with one digit.
    pub short_hour: bool,
    /// The fraction's separator and digits, as written (no separator: no fraction).
    pub fraction: Option<(u8, String)>,
    pub offset: Offset,
}

/// The offset written after the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// `Z`.
    Utc,
    /// `±HH:MM`, as written (`+00:00` included).
    Written { east: bool, hours: i64, minutes: i64 },
}

impl Offset {
    /// Minutes east of UTC.
    pub fn minutes(self) -> i64 {
        match self {
            Self::Utc => 0,
            Self::Written { east, hours, minutes } => (hours * 60 + minutes) * if east { 1 } else { -1 },
        }
    }
}

impl Rfc3339 {
    /// `text` as Go's `time.Parse(time.RFC3339, text)` (or `time.RFC3339Nano`: the same reading)
    /// reads it; `None` where Go returns an error.
    pub fn parse(text: &str) -> Option<Self> {
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
    pub fn is_strict(&self) -> bool {
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
    pub fn nanoseconds_text(&self) -> &str {
        self.fraction
            .as_ref()
            .map_or("", |(_, digits)| digits[..digits.len().min(9)].trim_end_matches('0'))
    }

    /// The nanoseconds Go keeps of the fraction.
    pub fn nanosecond(&self) -> i64 {
        let kept = self.nanoseconds_text();
        kept.bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0, |n, d| n * 10 + i64::from(d - b'0'))
    }

    /// Seconds since 1970-01-01T00:00:00Z (the offset applied).
    pub fn unix_seconds(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400 + self.hour * 3600 + self.minute * 60 + self.second
            - self.offset.minutes() * 60
    }

    /// Go's `t.UnixNano()` where OPA's `toSafeUnixNano` takes it: `None` for a time before
    /// 1677-09-21T00:12:43.145224192Z or after 2262-04-11T23:47:16.854775807Z, which OPA refuses
    /// ("time outside of valid range").
    pub fn unix_nanos(&self) -> Option<i64> {
        let nanos = i128::from(self.unix_seconds()) * 1_000_000_000 + i128::from(self.nanosecond());
        i64::try_from(nanos).ok()
    }
}

/// `text` as Go's `time.ParseDuration` reads it (OPA's `time.parse_duration_ns`), in
/// nanoseconds: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with the units `ns`, `us`, `µs` (U+00B5),
/// `μs` (U+03BC), `ms`, `s`, `m`, `h`, or `0` alone; `None` where Go returns an error (no digits,
/// a missing or unknown unit, more than an `int64` of nanoseconds). Go's own arithmetic: a
/// fraction is scaled through a `float64`, and a fraction's digits past 63 bits are dropped.
pub fn parse_duration(text: &str) -> Option<i64> {
    const LIMIT: u64 = 1 << 63;
    let mut rest = text.as_bytes();
    let mut negative = false;
    if let [sign @ (b'-' | b'+'), after @ ..] = rest {
        negative = *sign == b'-';
        rest = after;
    }
    if rest == b"0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !(rest[0] == b'.' || rest[0].is_ascii_digit()) {
            return None;
        }
        // Go's `leadingInt`: overflow past 2^63 is an error.
        let mut whole: u64 = 0;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        for &digit in &rest[..digits] {
            if whole > LIMIT / 10 {
                return None;
            }
            whole = whole * 10 + u64::from(digit - b'0');
            if whole > LIMIT {
                return None;
            }
        }
        let before = digits > 0;
        rest = &rest[digits..];
        // Go's `leadingFraction`: digits past what 63 bits hold stop adding precision.
        let (mut fraction, mut scale, mut after) = (0u64, 1f64, false);
        if let [b'.', tail @ ..] = rest {
            let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
            let mut overflow = false;
            for &digit in &tail[..digits] {
                if overflow {
                    continue;
                }
                if fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(digit - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            after = digits > 0;
            rest = &tail[digits..];
        }
        if !before && !after {
            return None;
        }
        // The unit: every byte up to the next `.` or digit.
        let length = rest
            .iter()
            .position(|b| *b == b'.' || b.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..length] {
            b"ns" => 1,
            // `µs` with U+00B5 MICRO SIGN, and with U+03BC GREEK SMALL LETTER MU.
            b"us" | b"\xC2\xB5s" | b"\xCE\xBCs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[length..];
        if whole > LIMIT / unit {
            return None;
        }
        whole *= unit;
        if fraction > 0 {
            // As Go computes it: `uint64(float64(f) * (float64(unit) / scale))`.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let scaled = (fraction as f64 * (unit as f64 / scale)) as u64;
            whole += scaled;
            if whole > LIMIT {
                return None;
            }
        }
        // Go adds in `uint64`, which wraps: two terms of 2^63 make 0 (as Go answers).
        total = total.wrapping_add(whole);
        if total > LIMIT {
            return None;
        }
    }
    if negative {
        // `-Duration(d)` with `d` up to 2^63: `i64::MIN` included.
        return Some((total as i64).wrapping_neg());
    }
    i64::try_from(total).ok()
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
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
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
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_what_go_reads_and_refuses_what_it_refuses() {
        for read in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T7:00:00Z",
            "2024-01-01T00:00:00,5Z",
            "2024-01-01T00:00:00.1234567891Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+12:60",
            "2024-02-29T23:59:59-00:00",
            "0000-01-01T00:00:00Z",
        ] {
            assert!(Rfc3339::parse(read).is_some(), "{read}");
        }
        for refused in [
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:59:60Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00+01:61",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Z ",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00",
        ] {
            assert_eq!(Rfc3339::parse(refused), None, "{refused}");
        }
    }

    #[test]
    fn unix_nanos_as_go_and_opa_count_them() {
        let nanos = |text| Rfc3339::parse(text).and_then(|t| t.unix_nanos());
        // OPA's own test cases (regorus' copy of them): 1985-04-12T23:20:50.52Z and an offset.
        assert_eq!(nanos("1985-04-12T23:20:50.52Z"), Some(482_196_050_520_000_000));
        assert_eq!(nanos("1996-12-19T16:39:57-08:00"), Some(851_042_397_000_000_000));
        assert_eq!(nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(nanos("1969-12-31T23:59:59.999999999Z"), Some(-1));
        assert_eq!(
            nanos("2024-01-01T00:00:00.1234567899Z"),
            Some(1_704_067_200_123_456_789)
        );
        assert_eq!(nanos("2024-01-01T00:00:00+12:60"), nanos("2023-12-31T11:00:00Z"));
        // OPA's bounds, inclusive.
        assert_eq!(nanos("2262-04-11T23:47:16.854775807Z"), Some(i64::MAX));
        assert_eq!(nanos("2262-04-11T23:47:16.854775808Z"), None);
        assert_eq!(nanos("1677-09-21T00:12:43.145224192Z"), Some(i64::MIN));
        assert_eq!(nanos("1677-09-21T00:12:43.145224191Z"), None);
    }

    #[test]
    fn durations_as_go_reads_them() {
        for (text, nanos) in [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("+0", Some(0)),
            ("1.5h", Some(5_400_000_000_000)),
            ("1h30m", Some(5_400_000_000_000)),
            (".5s", Some(500_000_000)),
            ("5.s", Some(5_000_000_000)),
            ("1µs", Some(1_000)),
            ("1μs", Some(1_000)),
            ("-9223372036854775808ns", Some(i64::MIN)),
            ("9223372036854775807ns", Some(i64::MAX)),
            ("9223372036854775808ns", None),
            ("2562048h", None),
            ("1", None),
            ("1µ", None),
            ("1d", None),
            ("1H", None),
            ("", None),
            ("-", None),
            (".s", None),
            ("1 h", None),
            ("--1s", None),
            // Go's sum wraps at 2^64.
            ("9223372036854775808ns9223372036854775808ns", Some(0)),
            ("-9223372036854775808ns9223372036854775808ns1s", Some(-1_000_000_000)),
        ] {
            assert_eq!(parse_duration(text), nanos, "{text:?}");
        }
    }

    proptest! {
        /// Every time in range, written as RFC 3339 strictly in any offset, is read back as the
        /// same instant, and the days round-trip.
        #[test]
        fn written_times_are_read_back(
            seconds in -62_135_596_800i64..253_402_300_799,
            nanos in 0i64..1_000_000_000,
            offset in -(23 * 60 + 59)..=(23 * 60 + 59i64),
        ) {
            let local = seconds + offset * 60;
            let (days, rem) = (local.div_euclid(86_400), local.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            prop_assume!((0..=9999).contains(&y));
            prop_assert_eq!(days_from_civil(y, m, d), days);
            let sign = if offset < 0 { '-' } else { '+' };
            let text = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}{sign}{:02}:{:02}",
                rem / 3600, rem % 3600 / 60, rem % 60, offset.abs() / 60, offset.abs() % 60
            );
            let read = Rfc3339::parse(&text).unwrap();
            prop_assert!(read.is_strict());
            prop_assert_eq!(read.unix_seconds(), seconds);
            prop_assert_eq!(read.nanosecond(), nanos);
        }
    }
}
