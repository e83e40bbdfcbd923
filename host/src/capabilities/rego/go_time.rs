//! OPA's time parsing builtins, reading times as Go's `time.Parse` reads them.
//!
//! OPA's `time.parse_rfc3339_ns(s)` is Go's `time.Parse(time.RFC3339, s)`, and `time.parse_ns`
//! calls `time.Parse` with the layout given (`RFC3339` and `RFC3339Nano` naming Go's constants),
//! then `UnixNano` within the range an `int64` of nanoseconds holds (`v1/topdown/time.go`).
//! regorus reads RFC 3339 with chrono's `parse_from_rfc3339`, which takes what Go refuses: a
//! lowercase `t` or `z`, a space for `T`, and a leap second (`23:59:60`). A signer's
//! `"scanFinishedOn": "2026-12-06t10:00:00z"` made `time.parse_rfc3339_ns` a time under `cip`,
//! where OPA answers an error and a freshness rule such as
//! `time.now_ns() - time.parse_rfc3339_ns(input.predicate.metadata.scanFinishedOn) < day`
//! does not hold. Both builtins are registered as extensions (looked up before regorus' own)
//! reading times through the [`go_time`] crate, which `cip`'s tests compare with Go's `time`.
//!
//! `time.parse_duration_ns` is Go's `time.ParseDuration` ([`go_time::parse_duration`]).
//! regorus' port of it panics on a unit whose last character is not ASCII (`1µ`) and on a
//! number without a unit (`1`), slicing a string at a byte it cannot: `cip` caught the panic and
//! failed the evaluation, OPA answers an error.
//!
//! `time.parse_ns` takes the RFC 3339 layouts only (by name or as Go writes them); any other
//! layout is an error naming it, rather than a reading not checked against Go's. An error fails
//! the evaluation (strict builtin errors, as for the regex builtins).

use anyhow::{Result, bail};
use go_time::{RFC3339, RFC3339_NANO, Rfc3339};
use regorus::Value;

use super::{Builtin, quoted, string};

/// The builtins overridden: name, number of operands, implementation ([`super::register`]).
pub(super) const BUILTINS: [(&str, u8, Builtin); 3] = [
    ("time.parse_rfc3339_ns", 1, parse_rfc3339_ns),
    ("time.parse_ns", 2, parse_ns),
    ("time.parse_duration_ns", 1, parse_duration_ns),
];

/// `time.parse_rfc3339_ns(value)`.
fn parse_rfc3339_ns(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "time.parse_rfc3339_ns";
    unix_nanos(NAME, string(NAME, &args, 0)?)
}

/// `time.parse_ns(layout, value)`, for the RFC 3339 layouts.
fn parse_ns(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "time.parse_ns";
    let layout = string(NAME, &args, 0)?;
    if !matches!(layout, "RFC3339" | "RFC3339Nano" | RFC3339 | RFC3339_NANO) {
        bail!(
            "{NAME}: cip reads times in the layouts RFC3339 and RFC3339Nano only (as Go's \
             time.Parse does), not {}: use time.parse_rfc3339_ns, or compare the text",
            quoted(layout)
        );
    }
    unix_nanos(NAME, string(NAME, &args, 1)?)
}

/// `time.parse_duration_ns(value)`: Go's `time.ParseDuration`.
fn parse_duration_ns(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "time.parse_duration_ns";
    let text = string(NAME, &args, 0)?;
    match go_time::parse_duration(text) {
        Some(nanos) => Ok(Value::from(nanos)),
        None => bail!(
            "{NAME}: {} is not a duration Go's time.ParseDuration reads (like 1h30m)",
            quoted(text)
        ),
    }
}

/// `text` read as Go reads RFC 3339, as nanoseconds since the epoch (OPA's `toSafeUnixNano`).
fn unix_nanos(builtin: &str, text: &str) -> Result<Value> {
    let Some(time) = Rfc3339::parse(text) else {
        bail!(
            "{builtin}: {} is not a time Go's time.Parse reads as RFC 3339 (like 2026-01-31T12:00:00Z)",
            quoted(text)
        );
    };
    match time.unix_nanos() {
        Some(nanos) => Ok(Value::from(nanos)),
        None => bail!("{builtin}: time outside of valid range"),
    }
}
