//! OPA's `upper`, `lower`, `strings.count` and `to_number`, answering as Go's `strings` and
//! `strconv` answer (OPA's `v1/topdown/strings.go` and `casts.go`), where regorus' own admitted
//! what OPA refuses:
//!
//! - `upper(s)` is Go's `strings.ToUpper`, `unicode.ToUpper` on each character: Unicode's simple
//!   case mapping, one character for one. regorus used Rust's `str::to_uppercase`, the full
//!   mapping (`upper("straße") == "STRASSE"` held; in OPA `ß` stays).
//! - `lower(s)` is Go's `strings.ToLower`: `lower("ADMİN") == "admin"` holds in OPA (`İ` becomes
//!   `i`; Rust's full mapping gives `i` and a combining dot), and `lower("ΣΣ") == "σσ"` (Rust's
//!   `str::to_lowercase` writes a final sigma `ς` at the end of a word; Go has no context).
//! - `strings.count(s, sub)` is Go's `strings.Count`: matches that do not overlap
//!   (`strings.count("aaaa", "aa")` is 2, regorus counted 3), and for an empty `sub` the number
//!   of characters plus one (regorus panicked).
//! - `to_number(s)` takes what Go's `strconv.ParseFloat` reads, except infinities and NaN, as
//!   OPA's `builtinToNumber` does: no white space around the number (regorus read `" 1"` as 1),
//!   an error for a number beyond a float's range (`"1e400"`). Two forms OPA takes, `cip`
//!   refuses (an error, so the evaluation fails): hexadecimal floats (`0x1p4`) and digits
//!   separated by underscores (`1_000`), which OPA keeps as the text given, read differently by
//!   its own comparisons and JSON encoding.
//!
//! The case mappings and `strings.count` are compared with Go's over every Unicode scalar value
//! and generated texts by `host/tests/rego_go_strings.rs`, `to_number` with `strconv.ParseFloat`.

use anyhow::{Result, bail};
use regorus::Value;

use super::{Builtin, quoted, string, type_name};

/// The builtins overridden: name, number of operands, implementation ([`super::register`]).
pub(super) const BUILTINS: [(&str, u8, Builtin); 4] = [
    ("upper", 1, upper),
    ("lower", 1, lower),
    ("strings.count", 2, count),
    ("to_number", 1, to_number),
];

/// `upper(s)`: Go's `strings.ToUpper`.
fn upper(args: Vec<Value>) -> Result<Value> {
    let text = string("upper", &args, 0)?;
    Ok(Value::from(text.chars().map(go_upper).collect::<String>()))
}

/// `lower(s)`: Go's `strings.ToLower`.
fn lower(args: Vec<Value>) -> Result<Value> {
    let text = string("lower", &args, 0)?;
    Ok(Value::from(text.chars().map(go_lower).collect::<String>()))
}

/// Go's `unicode.ToUpper`: the simple uppercase mapping of `c` (UnicodeData.txt), `c` when it
/// has none. Rust's `char::to_uppercase` is the full mapping, which differs from the simple one
/// only where it gives more than one character (SpecialCasing.txt): there the simple mapping is
/// `c` itself, but for the Greek letters with ypogegrammeni, whose simple uppercase is the
/// letter with prosgegrammeni.
pub(super) fn go_upper(c: char) -> char {
    let mut mapped = c.to_uppercase();
    match (mapped.next(), mapped.next()) {
        (Some(one), None) => one,
        _ => match u32::from(c) {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => char::from_u32(u32::from(c) + 8).unwrap_or(c),
            0x1FB3 => '\u{1FBC}',
            0x1FC3 => '\u{1FCC}',
            0x1FF3 => '\u{1FFC}',
            _ => c,
        },
    }
}

/// Go's `unicode.ToLower`: the simple lowercase mapping of `c`. The full mapping gives more than
/// one character for `İ` (U+0130) alone, whose simple lowercase is `i`.
pub(super) fn go_lower(c: char) -> char {
    let mut mapped = c.to_lowercase();
    match (mapped.next(), mapped.next()) {
        (Some(one), None) => one,
        _ if c == '\u{130}' => 'i',
        _ => c,
    }
}

/// `strings.count(s, sub)`: Go's `strings.Count`.
fn count(args: Vec<Value>) -> Result<Value> {
    let text = string("strings.count", &args, 0)?;
    let sub = string("strings.count", &args, 1)?;
    // Rust's `matches` does not overlap, and finds "" before each character and at the end.
    Ok(Value::from(text.matches(sub).count()))
}

/// `to_number(x)`: OPA's `builtinToNumber`.
fn to_number(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "to_number";
    match &args[0] {
        Value::Null => Ok(Value::from(0u64)),
        Value::Bool(b) => Ok(Value::from(u64::from(*b))),
        Value::Number(_) => Ok(args[0].clone()),
        Value::String(text) => parse_number(text),
        other => bail!(
            "{NAME}: operand 1 must be one of {{null, boolean, number, string}} but got {}",
            type_name(other)
        ),
    }
}

/// How `to_number` reads a string.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reading {
    /// A decimal number Go's `strconv.ParseFloat` reads, within a float's range.
    Decimal,
    /// A form OPA takes that `cip` refuses: hexadecimal, or underscores between digits.
    Refused,
    /// Not a number for OPA: Go refuses it, or it is an infinity, NaN, or beyond a float's range.
    Invalid,
}

/// How `to_number` reads `text` ([`Reading`]), and its value as a float when it reads one.
pub(super) fn read_number(text: &str) -> (Reading, f64) {
    let trimmed = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if matches!(trimmed.as_str(), "inf" | "infinity" | "nan") {
        return (Reading::Invalid, 0.0);
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.len() > 2 && unsigned.starts_with('0') && unsigned.as_bytes()[1].eq_ignore_ascii_case(&b'x')
        || text.contains('_')
    {
        // Go may read it (hexadecimal, underscores) or not: either way not a number here.
        return (Reading::Refused, 0.0);
    }
    if !decimal_syntax(unsigned) {
        return (Reading::Invalid, 0.0);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => (Reading::Decimal, value),
        _ => (Reading::Invalid, 0.0),
    }
}

/// Go's decimal floating-point syntax without sign and underscores: digits with at most one `.`
/// (at least one digit), then an optional exponent (`e` or `E`, a sign, at least one digit).
fn decimal_syntax(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let whole = digits(0);
    let (mut i, mut seen) = (whole, whole > 0);
    if bytes.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        seen |= end > i + 1;
        i = end;
    }
    if !seen {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return false;
        }
        i = end;
    }
    i == bytes.len()
}

/// Longest text read exactly as regorus reads a number literal; longer ones, and exponents
/// of more than three digits, are read as the float they round to. regorus makes an exact
/// integer of `1e2000000000` (10^2000000000, 830 MB): exact reading is kept to what is cheap.
const EXACT: usize = 64;

fn parse_number(text: &str) -> Result<Value> {
    const NAME: &str = "to_number";
    match read_number(text) {
        (Reading::Decimal, value) => {
            let exponent = text.find(['e', 'E']).map_or("", |at| &text[at + 1..]);
            let exponent_digits = exponent.trim_start_matches(['+', '-']).trim_start_matches('0').len();
            if text.len() <= EXACT
                && exponent_digits <= 3
                && let Ok(exact) = Value::from_numeric_string(text)
            {
                return Ok(exact);
            }
            Ok(Value::from(value))
        }
        (Reading::Refused, _) => bail!(
            "{NAME}: cip reads decimal numbers only (no hexadecimal, no underscores), not {}",
            quoted(text)
        ),
        (Reading::Invalid, _) => bail!(
            "{NAME}: strconv.ParseFloat: parsing {}: invalid syntax or out of range",
            quoted(text)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_case_mapping() {
        assert_eq!(go_upper('ß'), 'ß');
        assert_eq!(go_upper('a'), 'A');
        assert_eq!(go_upper('\u{1F80}'), '\u{1F88}');
        assert_eq!(go_upper('ŉ'), 'ŉ');
        assert_eq!(go_lower('\u{130}'), 'i');
        assert_eq!(go_lower('Σ'), 'σ');
    }

    #[test]
    fn numbers_as_go_parse_float_reads_them() {
        for (text, reading) in [
            ("1", Reading::Decimal),
            ("+1.5e3", Reading::Decimal),
            (".5", Reading::Decimal),
            ("5.", Reading::Decimal),
            ("1e-400", Reading::Decimal),
            (" 1", Reading::Invalid),
            ("1 ", Reading::Invalid),
            ("\n1", Reading::Invalid),
            ("1e400", Reading::Invalid),
            ("Inf", Reading::Invalid),
            ("-infinity", Reading::Invalid),
            ("NaN", Reading::Invalid),
            (".", Reading::Invalid),
            ("1e", Reading::Invalid),
            ("", Reading::Invalid),
            ("--1", Reading::Invalid),
            ("0x1p4", Reading::Refused),
            ("1_000", Reading::Refused),
        ] {
            assert_eq!(read_number(text).0, reading, "{text:?}");
        }
    }
}
