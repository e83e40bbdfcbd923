//! Numbers as this module holds them: 64-bit floats (and exact integers), where CUE compares
//! exact decimals.
//!
//! serde_json and the CUE lexer read `7.0000000000000001` as the float 7.0, which CUE keeps above
//! 7: `score: <=7` refuses it in policy-controller and would admit it here. Every comparison
//! agrees, though, between numbers written as the decimal of their float (the shortest text that
//! reads back as it, up to zeros: `7.5`, `0.1`, `1e21`, `7.50`): such a decimal names one float
//! only, and rounding to the nearest float keeps the order of two decimals it does not merge.
//! So a number written otherwise is refused wherever a policy compares it: in a policy's text
//! (the CUE lexer), in an in-toto statement an attestation policy reads, and in an image config
//! a policy reads with `fetchConfigFile` ([`read_input`]). Integers that fit 64 bits are exact
//! anyway; [`cmp_int_float`] compares one with a float's decimal without rounding either (from
//! 2^53 on a whole float's decimal and binary value differ: [`large_whole`]).
//!
//! The Kubernetes object (`includeSpec`, `includeObjectMeta`) is not checked: the API server
//! writes it with Go's `encoding/json`, which writes every float as its shortest decimal.

use std::cmp::Ordering;

use serde_json::Value;

use crate::json_text;

/// Whether the float that `text` (a JSON or CUE number without its sign) reads as is written by
/// the same decimal: reading it as a float then loses nothing a comparison can see.
pub(crate) fn f64_keeps(text: &str) -> bool {
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => decimal(text).is_some_and(|d| Some(d) == decimal(&format!("{float:e}"))),
        _ => false,
    }
}

/// The decimal of `float` that [`f64_keeps`]: as Rust displays it (`7`, `0.1`) when that is
/// kept, else in exponent notation (`1.5810926156146473e15`), which always is. What a refusal
/// suggests writing instead.
pub(crate) fn kept_form(float: f64) -> String {
    let shown = float.abs().to_string();
    let form = if f64_keeps(&shown) {
        shown
    } else {
        format!("{:e}", float.abs())
    };
    if float.is_sign_negative() {
        format!("-{form}")
    } else {
        form
    }
}

/// A decimal number's value as (digits without leading or trailing zeros, exponent of the last
/// digit): `1.250e-1` and `0.125` are both `("125", -3)`; zero is `("", 0)`. `None` for a text
/// that is no decimal number.
fn decimal(text: &str) -> Option<(String, i64)> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((String::new(), 0));
    }
    let shift = i64::try_from(fraction.len()).ok()?;
    let zeros = i64::try_from(significant.len() - trimmed.len()).ok()?;
    Some((trimmed.to_owned(), exponent.checked_sub(shift)?.checked_add(zeros)?))
}

/// Whether the decimal `text` (without its sign) is a whole number: `2.50e1`, `100.0`, `0e-5`.
pub(crate) fn is_whole(text: &str) -> bool {
    decimal(text).is_some_and(|(digits, exponent)| digits.is_empty() || exponent >= 0)
}

/// The first number of the JSON text `json` that serde_json reads as a float other than the
/// decimal written (see [`f64_keeps`]), or as a float where CUE reads an integer (`-0`, the
/// float -0.0 to serde_json); other integers within 64 bits, read exactly, always pass.
/// `json` must be valid JSON (what serde_json has read): strings are skipped by their quotes.
fn first_inexact(json: &str) -> Option<&str> {
    let b = json.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = json_text::string_end(b, i),
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                    i += 1;
                }
                let number = &json[start..i];
                let unsigned = number.strip_prefix('-').unwrap_or(number);
                let integer = unsigned.bytes().all(|c| c.is_ascii_digit());
                let inexact = if integer && (number.parse::<i64>().is_ok() || number.parse::<u64>().is_ok()) {
                    number == "-0"
                } else {
                    !f64_keeps(unsigned)
                };
                if inexact {
                    return Some(number);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// A number of signer or registry data a policy could compare, and this module cannot as CUE
/// does.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("{0}")]
    NotJson(String),
    #[error(
        "it holds the number {written}, which has more digits than a 64-bit float keeps (it reads as {read}); \
         CUE compares numbers exactly, so a policy cannot decide on it here as it does in policy-controller"
    )]
    Inexact { written: String, read: String },
    #[error("it holds the integer -0, which is read here as the float -0.0 (an integer 0 for CUE); write 0")]
    NegativeZero,
}

/// `json` read for a policy to decide over: refused when it holds a number that a 64-bit float
/// does not keep (`7.0000000000000001`), which the policy would compare other than CUE does.
pub fn read_input(json: &str) -> Result<Value, InputError> {
    let value: Value = serde_json::from_str(json).map_err(|e| InputError::NotJson(e.to_string()))?;
    match first_inexact(json) {
        None => Ok(value),
        Some("-0") => Err(InputError::NegativeZero),
        Some(written) => Err(InputError::Inexact {
            written: written.to_owned(),
            read: written.parse::<f64>().map_or_else(|_| "?".to_owned(), kept_form),
        }),
    }
}

/// 2^53: below it, a float and its kept decimal lie between the same two integers (its spacing
/// is at most 1 and the decimal within half of it), so comparing an integer with the float's
/// binary value is comparing it with the decimal.
const EXACT_BELOW: f64 = 9_007_199_254_740_992.0;

/// The value of `float`'s kept decimal when the float is whole and 2^53 or more in magnitude,
/// where it may differ from the binary value: `1.0000000000000002e17` is 100000000000000020
/// written (and for CUE and OPA), 100000000000000016 in binary. `None` below 2^53 and from
/// 2^126 on (beyond every integer this module holds).
pub(crate) fn large_whole(float: f64) -> Option<i128> {
    if !(EXACT_BELOW..2f64.powi(126)).contains(&float.abs()) {
        return None;
    }
    let (digits, exponent) = decimal(&format!("{:e}", float.abs()))?;
    let mut value: i128 = digits.parse().ok()?;
    for _ in 0..u32::try_from(exponent).ok()? {
        value = value.checked_mul(10)?;
    }
    Some(if float < 0.0 { -value } else { value })
}

/// `int` compared with the number `float` is written as (its kept decimal), exactly, as CUE
/// compares them (`None` for NaN): `9007199254740993` is above `9007199254740992.0`, and
/// `100000000000000018` below `1.0000000000000002e17` (100000000000000020).
pub(crate) fn cmp_int_float(int: i128, float: f64) -> Option<Ordering> {
    if float.is_nan() {
        return None;
    }
    if let Some(whole) = large_whole(float) {
        return Some(int.cmp(&whole));
    }
    if float.abs() >= EXACT_BELOW {
        // From 2^126 on, infinities included: beyond every i128 this module holds (i64, u64).
        return Some(if float > 0.0 { Ordering::Less } else { Ordering::Greater });
    }
    // Exact below 2^53: the whole part fits an i128, and the fraction is exact.
    let whole = float.trunc();
    let fraction = float - whole;
    Some(int.cmp(&(whole as i128)).then(0.0f64.partial_cmp(&fraction)?))
}

#[cfg(test)]
mod tests;
