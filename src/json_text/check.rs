//! Checking a JSON value the settings skeleton skips (a policy's `authorities`, its `status`)
//! as serde_json checks what it skips, in one pass and without allocating.
//!
//! The derive reads a skipped value as a `RawValue` or `IgnoredAny`: serde_json's
//! `Deserializer::ignore_value` checks its syntax (strings without raw control characters and
//! with valid escapes, `\u` followed by four hex digits whatever they encode; numbers by JSON's
//! grammar, of any size; `null`, `true` and `false`; any depth) without building it. Here the
//! same grammar is checked with the word scan of strings the skeleton uses for its own strings
//! (serde_json's took ≈ 5,000 instructions for the authorities of a policy with one key in
//! wasm, and allocated; docs/benchmarks.md, twelfth pass); the property test
//! `the_check_is_serde_jsons` compares the two on generated and broken texts.

use super::{quote_backslash_or_control, quote_backslash_or_control_wide, skip_whitespace};

/// The deepest nesting [`value_end`] checks: one bit per open list or object.
pub(crate) const MAX_DEPTH: u32 = u128::BITS;

/// The index past the JSON value at `i` of `b` (whitespace first allowed) when serde_json's
/// `ignore_value` accepts it there; `None` when it refuses it, or when lists and objects nest
/// deeper than [`MAX_DEPTH`] (serde_json reads any depth: the caller then leaves the text to
/// it).
pub(crate) fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    // The open lists and objects, innermost in the lowest bit: 1 for an object.
    let (mut objects, mut depth) = (0u128, 0u32);
    loop {
        // A value at `i`: past it, or at the bracket that closes the list or object it opens.
        i = skip_whitespace(b, i);
        let first = *b.get(i)?;
        i = match first {
            b'"' => string_end(b, i + 1)?,
            b'n' | b't' | b'f' => {
                let word: &[u8] = match first {
                    b'n' => b"null",
                    b't' => b"true",
                    _ => b"false",
                };
                b[i..].starts_with(word).then_some(i + word.len())?
            }
            b'-' => number_end(b, i + 1)?,
            b'0'..=b'9' => number_end(b, i)?,
            b'[' | b'{' if depth < MAX_DEPTH => {
                depth += 1;
                objects = objects << 1 | u128::from(first == b'{');
                i = skip_whitespace(b, i + 1);
                let close = if first == b'{' { b'}' } else { b']' };
                if b.get(i) != Some(&close) {
                    if first == b'{' {
                        i = key_end(b, i)?;
                    }
                    continue;
                }
                i
            }
            _ => return None,
        };
        // After a value: close what it ends, then move to the next item or member.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_whitespace(b, i);
            match (*b.get(i)?, objects & 1 == 1) {
                (b',', true) => {
                    i = key_end(b, i + 1)?;
                    break;
                }
                (b',', false) => {
                    i += 1;
                    break;
                }
                (b'}', true) | (b']', false) => {
                    i += 1;
                    depth -= 1;
                    objects >>= 1;
                }
                _ => return None,
            }
        }
    }
}

/// Past a member's key and its colon, from `i` (whitespace first allowed).
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    let i = skip_whitespace(b, i);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_whitespace(b, string_end(b, i + 1)?);
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

/// Past the string whose content starts at `i` (after its opening quote).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    string_end_by::<true>(b, i).map(|(end, _)| end)
}

/// [`string_end`], and whether the string holds an escape. Inlined into each caller (the
/// settings skeleton reads its own strings with it): called, it cost the skeleton 4 % more
/// instructions on a fresh instance (docs/benchmarks.md, twelfth pass).
#[inline(always)]
pub(crate) fn string_end_escaped(b: &[u8], i: usize) -> Option<(usize, bool)> {
    string_end_by::<false>(b, i)
}

/// [`string_end_escaped`]; `WIDE`: the scan two words a step, for the strings of a skipped value
/// (a PEM key's 64-byte lines), where [`string_end`] is a function of its own: −14,000
/// instructions a fresh 10 × 20 evaluation (docs/benchmarks.md, twentieth pass). The skeleton's
/// inlined readers keep the one-word scan: a wider one there cost more than it saved (eighteenth
/// pass).
#[inline(always)]
fn string_end_by<const WIDE: bool>(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i = if WIDE {
            quote_backslash_or_control_wide(b, i)
        } else {
            quote_backslash_or_control(b, i)
        };
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

/// Past the number whose digits start at `i` (after its sign): an integer part without a
/// leading zero, then a fraction and an exponent, each with at least one digit.
fn number_end(b: &[u8], i: usize) -> Option<usize> {
    // Past the digits from `from` (at most the length: `from` follows a byte of `b`).
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i + 1),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        (end > i + 1).then_some(())?;
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let end = digits(i);
        (end > i).then_some(())?;
        i = end;
    }
    // serde_json refuses a second leading zero (`01`); after `0` any other digit is one.
    (!b.get(i).is_some_and(u8::is_ascii_digit)).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_text::generate::{Words, render};
    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    /// serde_json's verdict on the value at the start of `text`: where it ends, or `None`.
    fn serde_end(text: &str) -> Option<usize> {
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
        values.next()?.ok()?;
        Some(values.byte_offset())
    }

    /// `value_end` and serde_json agree on `text` written as the item of a list (so that
    /// serde_json's stream reader does not check what follows a number or a literal its own
    /// way: the skeleton checks what follows a skipped value itself). The generated values
    /// nest less than [`MAX_DEPTH`] deep.
    fn agree(text: &str) -> Result<(), TestCaseError> {
        let text = format!("[{text}]");
        let ours = value_end(text.as_bytes(), 0);
        let theirs = serde_end(&text);
        prop_assert_eq!(ours, theirs, "{}", text);
        Ok(())
    }

    const WORDS: Words = Words {
        texts: &[
            "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
            // A P-256 key as cosign writes it: lines longer than the scan's two-word step.
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7Y3o1D4+bDqXsyC0ptXw9QdlYRCu\nDv3s2Tc+bS4SxO/ncwWhOW/tD/nH2pSbdsr1hXh+bEyMQ6f2GAdYo0Yw9w==\n-----END PUBLIC KEY-----\n",
            "awskms:///alias/k",
            "é😀",
        ],
        keys: &["name", "key", "data", "kms", "keyless", "x"],
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]

        /// On JSON values written in many ways, then broken in up to three places (a byte of
        /// JSON's syntax, a control character, a non-ASCII character replaced, inserted or
        /// removed), `value_end` accepts exactly what serde_json accepts, and ends where it does.
        #[test]
        fn the_check_is_serde_jsons(
            value in WORDS.junk(),
            style in prop::collection::vec(any::<u8>(), 1..64),
            breaks in prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    prop::sample::select(&["\"", "\\", "{", "}", "[", "]", ",", ":", " ", "n", "0", "1", "t", "f",
                        "-", "+", ".", "e", "E", "u", "a", "F", "9", "\u{1}", "\u{1f}", "\u{7f}", "é"][..]),
                    0u8..3,
                ),
                0..4,
            ),
        ) {
            let mut styles = style.iter().copied().cycle();
            let mut text = String::new();
            render(&value, &mut || styles.next().unwrap_or_default(), &mut text);
            agree(&text)?;
            for (at, piece, how) in breaks {
                let at = at.index(text.len() + 1);
                if !text.is_char_boundary(at) {
                    continue;
                }
                let next = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                match how {
                    0 => text.replace_range(at..next, piece),
                    1 => text.insert_str(at, piece),
                    _ => text.replace_range(at..next, ""),
                }
            }
            agree(&text)?;
        }

        /// Numbers, JSON's and not, alone and in lists.
        #[test]
        fn numbers_are_checked_as_serde_json_checks_them(number in "-?[0-9+.eE-]{0,6}") {
            agree(&number)?;
            agree(&format!("[{number}]"))?;
            agree(&format!("{{\"n\":{number}}}"))?;
        }

        /// Escapes, valid and not, in strings and keys.
        #[test]
        fn escapes_are_checked_as_serde_json_checks_them(content in r#"(\\[u"\\/bfnrtx0-9a-fA-FgG]{0,5}|[a-z"\x00-\x1f é])*"#) {
            agree(&format!("\"{content}\""))?;
            agree(&format!("{{\"{content}\":1}}"))?;
        }
    }

    #[test]
    fn depth_beyond_the_bit_stack_is_left_to_serde_json() {
        let deep = |n: u32| format!("{}1{}", "[".repeat(n as usize), "]".repeat(n as usize));
        let at_limit = deep(MAX_DEPTH);
        assert_eq!(value_end(at_limit.as_bytes(), 0), Some(at_limit.len()));
        let beyond = deep(MAX_DEPTH + 1);
        assert_eq!(value_end(beyond.as_bytes(), 0), None);
        assert_eq!(serde_end(&beyond), Some(beyond.len()));
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH as usize),
            "}".repeat(MAX_DEPTH as usize)
        );
        assert_eq!(value_end(objects.as_bytes(), 0), Some(objects.len()));
        // A list inside objects closed by the wrong bracket at every depth.
        let mixed = format!("{}[1}}{}", "{\"a\":".repeat(3), "}".repeat(2));
        assert_eq!(value_end(mixed.as_bytes(), 0), None);
    }

    #[test]
    fn values_end_where_serde_json_ends_them() {
        for (text, end) in [
            ("null,", 4),
            (" true}", 5),
            ("-0.5e+3]", 7),
            ("\"a\\u00e9\\n\" ,", 11),
            ("{\"a\":[1,{}],\"b\":{}} x", 19),
            ("[]", 2),
        ] {
            assert_eq!(value_end(text.as_bytes(), 0), Some(end), "{text}");
        }
        for text in [
            "",
            "nul",
            "01",
            "1.",
            "1e",
            "-",
            "\"\\u12\"",
            "\"\u{1}\"",
            "[1,]",
            "{\"a\"}",
            "{1:2}",
            "[1 2]",
            "{\"a\":1,}",
        ] {
            assert_eq!(value_end(text.as_bytes(), 0), None, "{text:?}");
        }
    }
}
