//! Durations on the command line: `500ms`, `2s`, `1.5s`, `5m`, `1h`, or bare seconds, at most
//! [`MAX_DURATION`] (so that no deadline or expiry computed from them can overflow).

use std::time::Duration;

/// Longest duration any flag accepts: one week.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a human duration of at most [`MAX_DURATION`]; used as a clap `value_parser`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_unbounded(text)?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{}` is longer than the maximum of 168h (one week)",
            text.trim()
        ));
    }
    Ok(duration)
}

fn parse_unbounded(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 2s, 1m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn rejects_durations_longer_than_a_week() {
        assert_eq!(parse_duration("168h"), Ok(MAX_DURATION));
        let error = parse_duration("169h").expect_err("too long");
        assert!(error.contains("maximum of 168h"), "{error}");
        assert!(parse_duration("18446744073709551615").is_err());
        assert!(parse_duration("1e300").is_err());
    }
}
