//! Go's own `time` package as OPA's time builtins call it (`scripts/go-time.go`, built by `make
//! test-tools` with Debian's `golang-go`): the reference `cip`'s Rego time builtins (the
//! `go-time` crate) are compared with, and the texts they are compared on.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Rng;
use crate::run::ask_test_tool;

/// One question for Go.
pub enum GoTime<'a> {
    /// OPA's `time.parse_ns(layout, text)` (`RFC3339` for `time.parse_rfc3339_ns`).
    Parse { layout: &'a str, text: &'a str },
    /// OPA's `time.parse_duration_ns(text)`.
    Duration(&'a str),
}

/// What Go answers for each question: `Ok(nanoseconds)`, or `Err(its message)` where OPA's
/// builtin fails. One process answers the whole batch; the tool missing from the test tools is
/// an error, never a skipped comparison.
pub fn go_times(cases: &[GoTime]) -> anyhow::Result<Vec<Result<i64, String>>> {
    let requests: Vec<Value> = cases
        .iter()
        .map(|case| match case {
            GoTime::Parse { layout, text } => json!({ "layout": layout, "text": text }),
            GoTime::Duration(text) => json!({ "duration": text }),
        })
        .collect();
    ask_test_tool("go-time", &requests, Duration::from_secs(300))?
        .iter()
        .map(|line| {
            let answer: Value = serde_json::from_str(line).with_context(|| format!("go-time answered {line:?}"))?;
            Ok(match (&answer["error"], &answer["nanos"]) {
                (Value::String(error), Value::Null) => Err(error.clone()),
                (Value::Null, Value::String(nanos)) => Ok(nanos.parse().context("go-time's nanoseconds")?),
                _ => bail!("go-time answered neither an error nor nanoseconds: {line}"),
            })
        })
        .collect()
}

/// `count` texts drawn from `rng`, each a time written field by field, every field from a list
/// of what RFC 3339 readers disagree on (a lowercase `t` or `z`, a space, one-digit hours, `,`,
/// long fractions, offsets of 24 hours or 60 minutes, leap seconds, days past their month's
/// end, extra text), and the bounds of an `int64` of nanoseconds.
pub fn time_texts(count: usize, rng: &mut Rng) -> Vec<String> {
    const YEARS: &[&str] = &[
        "2026", "2024", "2023", "2000", "1900", "0000", "9999", "1677", "2262", "1970", "1969", "+024", "202", "20245",
    ];
    const DASHES: &[&str] = &["-", "-", "-", "/", ""];
    const MONTHS: &[&str] = &["12", "01", "02", "04", "09", "12", "00", "13", "1"];
    const DAYS: &[&str] = &["06", "01", "11", "21", "28", "29", "30", "31", "00", "32", "1"];
    const SEPARATORS: &[&str] = &["T", "T", "T", "t", " ", "_", ""];
    const HOURS: &[&str] = &["13", "00", "07", "23", "7", "0", "24", "99", "123", ""];
    const COLONS: &[&str] = &[":", ":", ":", ".", ""];
    const MINUTES: &[&str] = &["34", "00", "12", "47", "59", "60", "5"];
    const SECONDS: &[&str] = &["56", "00", "16", "43", "59", "60", "61", "5"];
    const FRACTIONS: &[&str] = &[
        "",
        "",
        "",
        ".5",
        ",5",
        ".",
        ",",
        ".52",
        ".123456789",
        ".1234567891",
        ".854775807",
        ".854775808",
        ".145224192",
        ".145224191",
        ".000000000000001",
        "..5",
        ".5.5",
        ".٣",
    ];
    const ZONES: &[&str] = &[
        "Z",
        "Z",
        "Z",
        "z",
        "+00:00",
        "-00:00",
        "+01:00",
        "-08:00",
        "+23:59",
        "-23:59",
        "+24:00",
        "-24:00",
        "+12:60",
        "+25:00",
        "+01:61",
        "+0100",
        "+01",
        "+1:00",
        "+01:00:00",
        "UTC",
        "",
        " Z",
        "Z ",
        "Z\n",
        "+01:0",
        "＋01:00",
    ];
    (0..count)
        .map(|_| {
            // Each field as the first of its list mostly, so that most texts differ in one or
            // two fields from a time Go reads.
            [
                YEARS, DASHES, MONTHS, DASHES, DAYS, SEPARATORS, HOURS, COLONS, MINUTES, COLONS, SECONDS, FRACTIONS,
                ZONES,
            ]
            .iter()
            .map(|pieces| {
                if rng.chance(88) {
                    pieces[0]
                } else {
                    *rng.pick::<&str>(pieces)
                }
            })
            .collect()
        })
        .chain(
            [
                "2262-04-11T23:47:16.854775807Z",
                "2262-04-11T23:47:16.854775808Z",
                "2262-04-12T00:47:16.854775807+01:00",
                "1677-09-21T00:12:43.145224192Z",
                "1677-09-21T00:12:43.145224191Z",
                "1677-09-20T23:12:43.145224192-01:00",
                "2016-12-31T23:59:60Z",
                "1985-04-12T23:20:50.52Z",
                "1996-12-19T16:39:57-08:00",
                "2024-02-29T12:00:00Z",
                "2023-02-29T12:00:00Z",
            ]
            .map(str::to_owned),
        )
        .collect()
}

/// `count` durations drawn from `rng`: a sign, then one to three numbers with units, from what
/// Go's `time.ParseDuration` reads (`µs` in both spellings, fractions, `0` alone) and refuses
/// (days, capitals, a missing unit, overflow).
pub fn duration_texts(count: usize, rng: &mut Rng) -> Vec<String> {
    const SIGNS: &[&str] = &["", "", "-", "+", "--"];
    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "24",
        "1.5",
        ".5",
        "5.",
        ".",
        "00",
        "9223372036854775807",
        "9223372036854775808",
        "2562047",
        "2562048",
        "0.0000000001",
        "1.000000000000000000001",
        "٣",
    ];
    const UNITS: &[&str] = &[
        "ns", "us", "µs", "μs", "ms", "s", "m", "h", "h", "d", "", "H", "µ", "x", "sm", " h",
    ];
    (0..count)
        .map(|_| {
            let mut text = (*rng.pick(SIGNS)).to_owned();
            for _ in 0..1 + rng.below(3) {
                let (number, unit): (&&str, &&str) = (rng.pick(NUMBERS), rng.pick(UNITS));
                text.push_str(number);
                text.push_str(unit);
            }
            text
        })
        .chain(
            [
                "0",
                "",
                "+0",
                "-0",
                "-9223372036854775808ns",
                "9223372036854775807ns",
                "2562047h47m16.854775807s",
            ]
            .map(str::to_owned),
        )
        .collect()
}
