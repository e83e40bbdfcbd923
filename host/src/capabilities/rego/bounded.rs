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
//!
//! Builtins whose result is as large as their operands' tree, which can be far larger than the
//! operands' memory: regorus values share structure, so `[s | numbers.range(1, 100000)[_]]` holds
//! one 1 MB string `s` 100,000 times (a few MB), and `a1 = [s, s]`, `a2 = [a1, a1]`, … 40 levels
//! hold 2^40 copies in a few hundred bytes. Their results are written out whole, in one call:
//! `concat("", xs)` of the first is 100 GB, `json.marshal` of the second is a terabyte, and
//! neither the time limit nor the memory limit ([`super::memory`]) acts inside a call. Each
//! computes its result's size before calling regorus, and refuses a result of more than
//! [`MAX_RESULT`] bytes. The size of a tree is counted by a walk that stops as soon as the size
//! passes the cap, so the check costs at most as much as a result at the cap.
//!
//! - `concat(delimiter, xs)`: the strings' lengths and the delimiters between them.
//! - `replace(s, old, new)`: `s`, plus each occurrence's growth (Go's `strings.Replace`: an
//!   empty `old` matches before each character and at the end).
//! - `strings.replace_n(patterns, s)`: regorus replaces each pattern in turn (in the patterns'
//!   order) in what the previous ones made, so a result can grow by a factor at each pattern;
//!   each step's size is computed on the string as the steps before made it.
//! - `json.marshal(x)`, `yaml.marshal(x)`, `json.marshal_with_options(x, options)` (with the
//!   indentation and prefix of every line when pretty), `sprintf(format, xs)` (the widths, and the
//!   values its verbs print), `urlquery.encode_object(object)` (its keys and values): at least
//!   one byte for each value and the length of each string of the tree (a lower bound of every
//!   way of writing it, so an honest result is never refused for the estimate).

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

/// The largest result, in bytes, that the builtins writing out a tree or a string give: 16 MiB.
/// Policies read attestations of at most 8 MiB (`--max-attestation-bytes`), so `json.marshal`
/// of one, or of the whole input, stays under it; a result at the cap, with the intermediate
/// copies regorus makes while building it (a growing string's doubling: twice), holds a small
/// part of the default memory limit of 256 MiB that stops the evaluation at the next statement.
pub(super) const MAX_RESULT: usize = 16 * 1024 * 1024;

/// The builtins overridden: name, number of operands, implementation ([`super::register`]).
pub(super) const BUILTINS: [(&str, u8, Builtin); 15] = [
    ("numbers.range", 2, range),
    ("numbers.range_step", 3, range_step),
    ("sprintf", 2, sprintf),
    ("bits.lsh", 2, lsh),
    ("net.cidr_expand", 1, cidr_expand),
    ("units.parse", 1, units_parse),
    ("units.parse_bytes", 1, units_parse_bytes),
    ("product", 1, product),
    ("concat", 2, concat),
    ("replace", 3, replace),
    ("strings.replace_n", 2, replace_n),
    ("json.marshal", 1, json_marshal),
    ("json.marshal_with_options", 2, json_marshal_with_options),
    ("yaml.marshal", 1, yaml_marshal),
    ("urlquery.encode_object", 1, urlquery_encode_object),
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
    // For a lower bound of the result's size: the width or precision of each verb (0 when it
    // has none).
    let mut widths: Vec<usize> = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek().is_some_and(|&c| c != '%') {
            widths.push(0);
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
                if let Some(last) = widths.last_mut() {
                    *last = usize::try_from(width).unwrap_or(usize::MAX);
                }
                // The verb.
                chars.next();
            }
            // `%%`, or a verb: nothing to check.
            _ => {}
        }
    }
    // For each verb, the larger of its width and the value it prints (the format's own text is
    // in memory already).
    let mut size = 0usize;
    if let Value::Array(values) = &args[1] {
        for (width, value) in widths.iter().zip(values.iter()) {
            // `%s` and `%v` print a string without quotes.
            let printed = match value {
                Value::String(text) => text.len(),
                value => tree_size(value, MAX_RESULT, 0, 0),
            };
            // regorus pads numbers only.
            let width = if matches!(value, Value::Number(_)) { *width } else { 0 };
            size = size.saturating_add(printed.max(width));
            check_result(NAME, size)?;
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

/// Refuses a result of `size` bytes past [`MAX_RESULT`].
pub(super) fn check_result(builtin: &str, size: usize) -> Result<()> {
    if size > MAX_RESULT {
        bail!(
            "{builtin}: a result of at least {size} bytes, more than the {MAX_RESULT} cip gives \
             (it would be built whole in one call)"
        );
    }
    Ok(())
}

/// A lower bound of the size of `value` written out (JSON, YAML, `sprintf`'s `%v`): one byte
/// for each value, each string's length (object keys included); with `line` > 0, `line` bytes
/// more for each member of an array, set or object, and `indent` bytes for each level of its
/// depth (a pretty-printed line). The walk stops once the size passes `cap`, and returns a size
/// past `cap`: it holds and visits at most `cap + 1` values.
pub(super) fn tree_size(value: &Value, cap: usize, line: usize, indent: usize) -> usize {
    let mut size = 1usize;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        // A member of `value`: itself, its line.
        let member = if line > 0 {
            line.saturating_add(indent.saturating_mul(depth + 1)).saturating_add(1)
        } else {
            1
        };
        // Each member with what it adds besides its own members: an object's key is on its
        // value's line.
        let members: Box<dyn Iterator<Item = (&Value, usize)>> = match value {
            Value::String(text) => {
                size = size.saturating_add(text.len());
                Box::new(std::iter::empty())
            }
            Value::Array(items) => Box::new(items.iter().map(|item| (item, member))),
            Value::Set(items) => Box::new(items.iter().map(|item| (item, member))),
            Value::Object(fields) => Box::new(fields.iter_sorted().flat_map(|(key, item)| [(key, member), (item, 1)])),
            _ => Box::new(std::iter::empty()),
        };
        for (item, adds) in members {
            if size > cap {
                return size;
            }
            size = size.saturating_add(adds);
            stack.push((item, depth + 1));
        }
        if size > cap {
            return size;
        }
    }
    size
}

/// `concat(delimiter, xs)`.
fn concat(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "concat";
    let delimiter = string(NAME, &args, 0)?.len();
    let items: Box<dyn Iterator<Item = &Value>> = match &args[1] {
        Value::Array(items) => Box::new(items.iter()),
        Value::Set(items) => Box::new(items.iter()),
        _ => Box::new(std::iter::empty()),
    };
    let mut size = 0usize;
    for (index, item) in items.enumerate() {
        if let Value::String(text) = item {
            let gap = if index == 0 { 0 } else { delimiter };
            size = size.saturating_add(gap).saturating_add(text.len());
            check_result(NAME, size)?;
        }
    }
    regorus_builtin(NAME, &args)
}

/// The size of `text` with every `old` replaced by a `new` of `new` bytes, as Rust's and Go's
/// `replace` find them (an empty `old` before each character and at the end).
fn replaced_size(text: &str, old: &str, new: usize) -> usize {
    if new <= old.len() {
        return text.len();
    }
    let count = if old.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(old).count()
    };
    text.len().saturating_add(count.saturating_mul(new - old.len()))
}

/// `replace(s, old, new)`.
fn replace(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "replace";
    let text = string(NAME, &args, 0)?;
    let old = string(NAME, &args, 1)?;
    let new = string(NAME, &args, 2)?;
    check_result(NAME, replaced_size(text, old, new.len()))?;
    regorus_builtin(NAME, &args)
}

/// `strings.replace_n(patterns, s)`: regorus replaces each pattern in the patterns' order in
/// what the previous ones made; each step is made here as well once its size is checked, since
/// the next step's size depends on it.
fn replace_n(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "strings.replace_n";
    if let (Value::Object(patterns), Value::String(text)) = (&args[0], &args[1]) {
        let mut current: Option<String> = None;
        for (old, new) in patterns.iter_sorted() {
            let (Value::String(old), Value::String(new)) = (old, new) else {
                // regorus' own error.
                break;
            };
            let text = current.as_deref().unwrap_or(text);
            check_result(NAME, replaced_size(text, old, new.len()))?;
            current = Some(text.replace(&**old, new));
        }
    }
    regorus_builtin(NAME, &args)
}

/// `json.marshal(x)`.
fn json_marshal(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "json.marshal";
    check_result(NAME, tree_size(&args[0], MAX_RESULT, 0, 0))?;
    regorus_builtin(NAME, &args)
}

/// `yaml.marshal(x)`.
fn yaml_marshal(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "yaml.marshal";
    check_result(NAME, tree_size(&args[0], MAX_RESULT, 0, 0))?;
    regorus_builtin(NAME, &args)
}

/// `json.marshal_with_options(x, options)`: pretty (regorus' default when there are options)
/// puts each member on a line of its own, after `prefix` and `indent` once per level (a tab by
/// default).
fn json_marshal_with_options(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "json.marshal_with_options";
    let (mut line, mut indent) = (0, 0);
    if let Value::Object(options) = &args[1]
        && !options.is_empty()
    {
        let option = |name: &str| options.get(&Value::from(name));
        if option("pretty") != Some(&Value::Bool(false)) {
            // The newline, and the prefix.
            line = 1 + match option("prefix") {
                Some(Value::String(prefix)) => prefix.len(),
                _ => 0,
            };
            indent = match option("indent") {
                Some(Value::String(indent)) => indent.len(),
                _ => 1,
            };
        }
    }
    check_result(NAME, tree_size(&args[0], MAX_RESULT, line, indent))?;
    regorus_builtin(NAME, &args)
}

/// `urlquery.encode_object(object)`: each key once for each of its values, and the values.
fn urlquery_encode_object(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "urlquery.encode_object";
    if let Value::Object(fields) = &args[0] {
        let mut size = 0usize;
        for (key, value) in fields.iter_sorted() {
            let key = match key {
                Value::String(key) => key.len(),
                _ => 0,
            };
            let values: Box<dyn Iterator<Item = &Value>> = match value {
                Value::Array(items) => Box::new(items.iter()),
                Value::Set(items) => Box::new(items.iter()),
                other => Box::new(std::iter::once(other)),
            };
            for value in values {
                let value = match value {
                    Value::String(value) => value.len(),
                    _ => 0,
                };
                // `key=value&`.
                size = size.saturating_add(key).saturating_add(value).saturating_add(2);
                check_result(NAME, size)?;
            }
        }
    }
    regorus_builtin(NAME, &args)
}
