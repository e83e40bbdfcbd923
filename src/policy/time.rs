//! RFC 3339 times as Go reads and writes them: CUE's `time.Time`/`time.Parse(time.RFC3339, s)`
//! (CUE represents times as strings, normalised to UTC in RFC 3339 with nanoseconds and no
//! trailing zeros, Go's `RFC3339Nano`, and compares them as strings), and the `created` times
//! of an image config, which policy-controller decodes with Go's `time.Time.UnmarshalJSON` and
//! encodes again, in their own offset, with `MarshalJSON`.
//!
//! `UnmarshalJSON` is `time.Parse(time.RFC3339, s)`: Go 1.20 wrote stricter checks for it
//! (`parseStrictRFC3339`) but keeps them switched off (go.dev/issue/54580, still so in Go
//! 1.25), so a one-digit hour, `,` before the fraction and an offset of `+24:00` or `+12:60`
//! are read (the reading is the `go-time` crate's, shared with `cip`'s Rego builtins).
//! `MarshalJSON` refuses an offset of 24 hours or more.

pub use go_time::{RFC3339, RFC3339_NANO};
use go_time::{Rfc3339, civil_from_days};

/// Parses an RFC 3339 timestamp, written strictly ([`Rfc3339::is_strict`]; what Go reads besides
/// is refused, not read), and returns it in UTC as `RFC3339Nano` formats it.
pub fn parse_rfc3339(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (like 2024-01-31T12:00:00Z)");
    let written = Rfc3339::parse(text).filter(Rfc3339::is_strict).ok_or_else(bad)?;
    let seconds = written.unix_seconds();
    let (days, rem) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    push_fraction(&mut out, written.nanoseconds_text());
    out.push('Z');
    Ok(out)
}

/// `text` read by Go's `time.Time.UnmarshalJSON` and written again by its `MarshalJSON`
/// (`RFC3339Nano`, in the offset read): `None` when Go refuses either.
/// `2024-01-01T7:00:00,500+00:00` is written `2024-01-01T07:00:00.5Z`; `+01:00` stays,
/// `+12:60` is `+13:00`, `+24:00` cannot be written.
pub fn as_go_rewrites(text: &str) -> Option<String> {
    let written = Rfc3339::parse(text)?;
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        written.year, written.month, written.day, written.hour, written.minute, written.second
    );
    push_fraction(&mut out, written.nanoseconds_text());
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
