//! Reading valid JSON text without building a tree: the type of a value from its first byte,
//! the members of an object and the items of a list as borrowed text, strings decoded only when
//! they hold an escape. Every function takes text serde_json has already checked to be valid
//! JSON (a payload it read, or a `RawValue`); on other text they may answer anything or panic.
//!
//! Objects are read as a `serde_json::Value` reads them: the last of duplicate keys wins, keys
//! are compared after their escapes are decoded (`"im\u0061ge"` is `image`). The workload
//! reader (`crate::workload`) and the settings skeleton (`crate::settings`) walk their text with
//! these; the property tests that compare them with serde_json's readers cover this module.

use std::borrow::Cow;

use crate::ascii;

pub(crate) mod check;
#[cfg(test)]
pub(crate) mod generate;

/// The JSON type of a value, from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Null,
    Bool,
    Number,
    String,
    List,
    Object,
}

pub(crate) fn type_of(value: &str) -> Type {
    match value.as_bytes().first() {
        Some(b'n') => Type::Null,
        Some(b't' | b'f') => Type::Bool,
        Some(b'"') => Type::String,
        Some(b'[') => Type::List,
        Some(b'{') => Type::Object,
        _ => Type::Number,
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn type_name(value: &str) -> &'static str {
    match type_of(value) {
        Type::Null => "null",
        Type::Bool => "a boolean",
        Type::Number => "a number",
        Type::String => "a string",
        Type::List => "a list",
        Type::Object => "an object",
    }
}

/// The index past JSON whitespace from `i`.
pub(crate) fn skip_whitespace(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index of the first `"` or `\\` of `b` from `i` (`b.len()` when none), eight bytes at a
/// time ([`first_stop`]).
pub(crate) fn quote_or_backslash(b: &[u8], i: usize) -> usize {
    first_stop::<false>(b, i)
}

/// [`quote_or_backslash`], stopping at a control character (below `0x20`, which a JSON string
/// may not hold raw) too.
pub(crate) fn quote_backslash_or_control(b: &[u8], i: usize) -> usize {
    first_stop::<true>(b, i)
}

/// The first `"` or `\\` (and, with `CONTROL`, byte below `0x20`) of `b` from `i`, eight bytes
/// at a time with the usual word tricks: a byte equals `c` when its XOR with `c` is zero, and is
/// below `n` (at most 0x80) when subtracting `n` from it borrows while its high bit is clear. A
/// borrow only reaches the bytes above one that matched, so the lowest flagged byte is the first
/// match.
fn first_stop<const CONTROL: bool>(b: &[u8], i: usize) -> usize {
    first_stop_by::<CONTROL, false>(b, i)
}

/// [`quote_backslash_or_control`], two words a step while sixteen bytes are left: for the long
/// strings of a skipped value (PEM keys), outside the skeleton's inlined readers.
pub(crate) fn quote_backslash_or_control_wide(b: &[u8], i: usize) -> usize {
    first_stop_by::<true, true>(b, i)
}

#[inline(always)]
fn first_stop_by<const CONTROL: bool, const WIDE: bool>(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let stops = |c: u8| c == b'"' || c == b'\\' || (CONTROL && c < 0x20);
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let found = |x: u64| {
        below(x ^ (ONES * u64::from(b'\\')), 1)
            | if CONTROL {
                // With bit 1 flipped, the bytes below 0x20 stay below it and the quote (0x22)
                // becomes 0x20: one test finds both, the bytes up to 0x20.
                below(x ^ (ONES * 0x02), 0x21)
            } else {
                below(x ^ (ONES * u64::from(b'"')), 1)
            }
    };
    if WIDE {
        while i + 16 <= b.len() {
            let (low, high) = (found(word(i)), found(word(i + 8)));
            if low | high != 0 {
                let (offset, first) = if low != 0 { (0, low) } else { (8, high) };
                return i + offset + (first.trailing_zeros() / 8) as usize;
            }
            i += 16;
        }
    }
    while i + 8 <= b.len() {
        let found = found(word(i));
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !stops(b[i]) {
        i += 1;
    }
    i
}

/// The index past the string token opening at `i` (a quote).
pub(crate) fn string_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    loop {
        i = quote_or_backslash(b, i);
        match b.get(i) {
            Some(b'"') => return i + 1,
            Some(_) => i += 2,
            None => return b.len(),
        }
    }
}

/// The index past the value starting at `i` (a valid JSON value: brackets within strings are
/// skipped with the strings).
pub(crate) fn value_end(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => string_end(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            b.len()
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            j
        }
    }
}

/// The text of a JSON value without the whitespace around it.
pub(crate) fn trim(text: &str) -> &str {
    text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// The members of the object `object` (its text, `{` first): key token (quotes included) and
/// value text, in the order written, duplicates included.
pub(crate) fn members(object: &str) -> impl Iterator<Item = (&str, &str)> {
    let b = object.as_bytes();
    let mut at = 1;
    std::iter::from_fn(move || {
        let mut i = skip_whitespace(b, at);
        if b.get(i) == Some(&b',') {
            i = skip_whitespace(b, i + 1);
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i);
        let colon = skip_whitespace(b, key_end);
        let value = skip_whitespace(b, colon + 1);
        let end = value_end(b, value);
        at = end;
        Some((&object[i..key_end], &object[value..end]))
    })
}

/// The items of the list `list` (its text, `[` first).
pub(crate) fn items(list: &str) -> impl Iterator<Item = &str> {
    let b = list.as_bytes();
    let mut at = 1;
    std::iter::from_fn(move || {
        let mut i = skip_whitespace(b, at);
        if b.get(i) == Some(&b',') {
            i = skip_whitespace(b, i + 1);
        }
        if i >= b.len() || b[i] == b']' {
            return None;
        }
        let end = value_end(b, i);
        at = end;
        Some(&list[i..end])
    })
}

/// The text of a string token (quotes included), its escapes decoded; `None` when they do not
/// decode (a lone surrogate).
pub(crate) fn string(token: &str) -> Option<Cow<'_, str>> {
    let inner = &token[1..token.len() - 1];
    if ascii::contains(inner, b'\\') {
        serde_json::from_str::<String>(token).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// Whether the key token `token` is `name`.
pub(crate) fn key_is(token: &str, name: &str) -> bool {
    let inner = &token[1..token.len() - 1];
    if ascii::contains(inner, b'\\') {
        string(token).is_some_and(|key| key == name)
    } else {
        inner == name
    }
}

/// The value of member `name` of `value` when it is an object (the last of duplicates, as in a
/// `Value`); `None` when `value` is not an object or has no such member.
pub(crate) fn get<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let mut found = [None];
    get_each(value, &[name], &mut found);
    found[0]
}

/// [`get`] of each of `names` into `found`, in one pass over the members.
pub(crate) fn get_each<'a>(value: &'a str, names: &[&str], found: &mut [Option<&'a str>]) {
    if type_of(value) != Type::Object {
        return;
    }
    for (key, v) in members(value) {
        for (name, slot) in names.iter().zip(found.iter_mut()) {
            if key_is(key, name) {
                *slot = Some(v);
            }
        }
    }
}

/// The value at `path` (member names) below `object`, as `Value::pointer` finds it, as text.
pub(crate) fn value_at<'a>(object: &'a str, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(trim(object), |value, name| get(value, name))
}

/// The string at `path` below `object`; `None` when absent or not a string.
pub(crate) fn string_at<'a>(object: &'a str, path: &[&str]) -> Option<Cow<'a, str>> {
    value_at(object, path)
        .filter(|v| type_of(v) == Type::String)
        .and_then(string)
}

/// Whether the value at `path` below `object` is there and not null.
pub(crate) fn is_set(object: &str, path: &[&str]) -> bool {
    value_at(object, path).is_some_and(|v| type_of(v) != Type::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The word scans (one word or two a step) find the first quote or backslash (or control
        /// character) the byte scan finds, from any start.
        #[test]
        fn the_word_scan_is_the_byte_scan(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(b'!'), Just(b'#'), Just(b'['), Just(b']'), Just(0x80_u8), Just(0x1f_u8), Just(0x20_u8), Just(0_u8), Just(0x02_u8), Just(0xa2_u8), Just(0xa0_u8), Just(0xdc_u8), any::<u8>()],
                0..80,
            ),
            start in 0usize..81,
        ) {
            let start = start.min(bytes.len());
            let expected = (start..bytes.len()).find(|&i| bytes[i] == b'"' || bytes[i] == b'\\').unwrap_or(bytes.len());
            prop_assert_eq!(quote_or_backslash(&bytes, start), expected);
            let expected = (start..bytes.len())
                .find(|&i| bytes[i] == b'"' || bytes[i] == b'\\' || bytes[i] < 0x20)
                .unwrap_or(bytes.len());
            prop_assert_eq!(quote_backslash_or_control(&bytes, start), expected);
            prop_assert_eq!(quote_backslash_or_control_wide(&bytes, start), expected);
        }
    }
}
