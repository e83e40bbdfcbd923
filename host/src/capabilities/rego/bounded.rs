//! Builtins whose result regorus sizes from a number in their operands, registered with a cap
//! checked before anything is allocated.
//!
//! A policy may pass them numbers a signer wrote (a statement's predicate), and regorus reserves
//! or builds the whole result at once: `numbers.range(1, 1000000000000)` asked the allocator for
//! 24 TB, which aborts the process (`memory allocation … failed`: no panic to catch), and with it
//! every evaluation `cip` was serving; `numbers.range(1, 100000000)` took 2.4 GB before the time
//! limit could stop it (the limit is checked between statements, not inside a builtin);
//! `sprintf("%0500000000d", [1])` built a string of 500 MB, `bits.lsh(1, 4294967295)` an
//! integer of 512 MB, and `net.cidr_expand("::/0")` grows a list of 2^128 addresses until the
//! allocator fails. OPA builds all of them too (bounded only by its own memory); here each is
//! refused past a cap no reasonable policy reaches, with an error naming the builtin and the cap
//! (a failed evaluation: not compliant).
//!
//! - `numbers.range(a, b)` and `numbers.range_step(a, b, step)` are OPA's (`v1/topdown/numbers.go`):
//!   integers (a whole float such as `2.0` too), both bounds included, descending when `a > b`,
//!   a `step` that must be a positive integer; at most [`MAX_RANGE`] numbers.
//! - `sprintf`: a width or precision over [`MAX_WIDTH`] (the most Go's `fmt` applies: it prints
//!   `%!(NOVERB)` past it) is refused, then regorus' `sprintf` formats.
//! - `bits.lsh(x, s)`: a shift over [`MAX_SHIFT`] bits is refused, then regorus' `bits.lsh`
//!   (OPA's programs shift by 64 at most).
//! - `net.cidr_expand(cidr)`: a network of more than [`MAX_RANGE`] addresses is refused, then
//!   regorus' `net.cidr_expand`.
//! - `product(xs)`: integers of more than [`MAX_PRODUCT_BITS`] bits together are refused (the
//!   product of 100 numbers of 100,000 bits is 10^7 bits, each step multiplying all that came
//!   before: seconds inside one builtin call, out of the time limit's reach), then regorus'.
//! - `units.parse(s)` and `units.parse_bytes(s)`: regorus reads the number exactly, as an
//!   integer when its exponent is positive: `units.parse("1e2000000000")` computed 10^2000000000
//!   (830 MB, minutes of work, out of the time limit's reach). A number of more than
//!   [`MAX_UNITS_NUMBER`] characters or an exponent over [`MAX_UNITS_EXPONENT`] is refused.

use anyhow::{Result, bail};
use regorus::Value;

use super::{Builtin, integer, quoted, regorus_builtin, string};

/// The most numbers `numbers.range` and `numbers.range_step` give, and the most addresses
/// `net.cidr_expand` gives.
pub(super) const MAX_RANGE: u128 = 100_000;
/// The widest width or precision `sprintf` takes: Go's `fmt` takes none wider.
pub(super) const MAX_WIDTH: u64 = 1_000_000;
/// The longest shift `bits.lsh` takes, in bits (a result of about 12 KB).
pub(super) const MAX_SHIFT: i128 = 100_000;
/// The most bits the integers `product` multiplies may hold together (the product's size).
pub(super) const MAX_PRODUCT_BITS: u64 = 100_000;

/// The longest number `units.parse` and `units.parse_bytes` read, in characters.
pub(super) const MAX_UNITS_NUMBER: usize = 1_000;
/// The largest exponent `units.parse` and `units.parse_bytes` read (`1e1000`).
pub(super) const MAX_UNITS_EXPONENT: i64 = 1_000;

/// The builtins overridden: name, number of operands, implementation ([`super::register`]).
pub(super) const BUILTINS: [(&str, u8, Builtin); 8] = [
    ("numbers.range", 2, range),
    ("numbers.range_step", 3, range_step),
    ("sprintf", 2, sprintf),
    ("bits.lsh", 2, lsh),
    ("net.cidr_expand", 1, cidr_expand),
    ("units.parse", 1, units_parse),
    ("units.parse_bytes", 1, units_parse_bytes),
    ("product", 1, product),
];

/// `numbers.range(a, b)`.
fn range(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "numbers.range";
    let (from, to) = (integer(NAME, &args, 0)?, integer(NAME, &args, 1)?);
    numbers(NAME, from, to, 1)
}

/// `numbers.range_step(a, b, step)`.
fn range_step(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "numbers.range_step";
    let (from, to) = (integer(NAME, &args, 0)?, integer(NAME, &args, 1)?);
    let step = integer(NAME, &args, 2)?;
    if step <= 0 {
        bail!("{NAME}: step must be a positive integer");
    }
    numbers(NAME, from, to, step.unsigned_abs())
}

/// `from`, `from ± step`, … up to `to` included, after checking how many there are.
fn numbers(builtin: &str, from: i128, to: i128, step: u128) -> Result<Value> {
    let count = from.abs_diff(to) / step + 1;
    if count > MAX_RANGE {
        bail!(
            "{builtin}: from {from} to {to} is {count} numbers, more than the {MAX_RANGE} cip \
             gives (it would hold them all in memory at once)"
        );
    }
    let mut values = Vec::with_capacity(usize::try_from(count)?);
    for index in 0..count {
        // Between `from` and `to`: no overflow.
        let offset = index * step;
        let value = if from <= to {
            from.checked_add_unsigned(offset)
        } else {
            from.checked_sub_unsigned(offset)
        };
        values.push(Value::from(value.unwrap_or(to)));
    }
    Ok(Value::from(values))
}

/// `sprintf(format, values)`: the widths and precisions of `format` read as regorus' `sprintf`
/// reads them (`%` then `.` or a digit, then digits, then the verb), each checked.
fn sprintf(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "sprintf";
    let format = string(NAME, &args, 0)?;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some(c) if c == '.' || c.is_numeric() => {
                let mut width: u64 = 0;
                let mut next = if c == '.' {
                    chars.next_if(|c| c.is_numeric())
                } else {
                    Some(c)
                };
                while let Some(digit) = next {
                    let Some(digit) = digit.to_digit(10) else {
                        bail!(
                            "{NAME}: the width or precision in {} is not written in ASCII digits",
                            quoted(format)
                        );
                    };
                    width = width.saturating_mul(10).saturating_add(u64::from(digit));
                    next = chars.next_if(|c| c.is_numeric());
                }
                if width > MAX_WIDTH {
                    bail!(
                        "{NAME}: a width or precision of {width} in {}: more than the {MAX_WIDTH} \
                         Go's fmt applies",
                        quoted(format)
                    );
                }
                // The verb.
                chars.next();
            }
            // `%%`, or a verb: nothing to check.
            _ => {}
        }
    }
    regorus_builtin(NAME, &args)
}

/// `bits.lsh(x, s)`.
fn lsh(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "bits.lsh";
    let shift = integer(NAME, &args, 1)?;
    if shift > MAX_SHIFT {
        bail!("{NAME}: a shift of {shift} bits, more than the {MAX_SHIFT} cip allows");
    }
    regorus_builtin(NAME, &args)
}

/// `net.cidr_expand(cidr)`.
fn cidr_expand(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "net.cidr_expand";
    let cidr = string(NAME, &args, 0)?;
    if let Some((address, prefix)) = cidr.rsplit_once('/')
        && let Ok(prefix) = prefix.parse::<u32>()
    {
        let bits: u32 = if address.contains(':') { 128 } else { 32 };
        let host_bits = bits.saturating_sub(prefix);
        let count = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
        if count > MAX_RANGE {
            bail!(
                "{NAME}: {} has {} addresses, more than the {MAX_RANGE} cip gives",
                quoted(cidr),
                if host_bits >= 128 {
                    "2^128".to_owned()
                } else {
                    count.to_string()
                }
            );
        }
    }
    regorus_builtin(NAME, &args)
}

/// `units.parse(s)`.
fn units_parse(args: Vec<Value>) -> Result<Value> {
    units("units.parse", &args)
}

/// `units.parse_bytes(s)`.
fn units_parse_bytes(args: Vec<Value>) -> Result<Value> {
    units("units.parse_bytes", &args)
}

/// The number of `s` found as regorus finds it (quotes removed, up to the last ASCII digit),
/// checked, then regorus' builtin.
fn units(builtin: &str, args: &[Value]) -> Result<Value> {
    let text = string(builtin, args, 0)?;
    let unquoted = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let number = match unquoted.rfind(|c: char| c.is_ascii_digit()) {
        Some(last) => &unquoted[..=last],
        None => unquoted,
    };
    if number.len() > MAX_UNITS_NUMBER {
        bail!(
            "{builtin}: a number of {} characters, more than the {MAX_UNITS_NUMBER} cip reads",
            number.len()
        );
    }
    if let Some(at) = number.find(['e', 'E']) {
        let exponent = number[at + 1..].trim_start_matches('+');
        // Digits only past the sign: anything else regorus refuses itself.
        let digits = exponent.trim_start_matches('-').trim_start_matches('0');
        if !exponent.starts_with('-')
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() > 4 || digits.parse::<i64>().unwrap_or(0) > MAX_UNITS_EXPONENT)
        {
            bail!(
                "{builtin}: an exponent over {MAX_UNITS_EXPONENT} in {}, more than cip reads",
                quoted(text)
            );
        }
    }
    regorus_builtin(builtin, args)
}

/// `product(xs)`.
fn product(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "product";
    let items: Box<dyn Iterator<Item = &Value>> = match &args[0] {
        Value::Array(items) => Box::new(items.iter()),
        Value::Set(items) => Box::new(items.iter()),
        _ => Box::new(std::iter::empty()),
    };
    let mut bits: u64 = 0;
    for item in items {
        if let Value::Number(n) = item
            && let Some(integer) = n.as_big()
        {
            bits = bits.saturating_add(integer.bits());
            if bits > MAX_PRODUCT_BITS {
                bail!(
                    "{NAME}: integers of more than {MAX_PRODUCT_BITS} bits together, more than cip \
                     multiplies"
                );
            }
        }
    }
    regorus_builtin(NAME, &args)
}
