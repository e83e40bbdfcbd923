//! Searches for one ASCII byte in short texts (image references, JSON pointers), the
//! comparison of short byte strings, and the check that a text (the settings) is UTF-8.
//!
//! `str::find(char)`, `split_once(char)` and `split(char)` go through `core`'s pattern searchers,
//! which prepare a UTF-8 needle and call `memchr`: worth it on long texts, but the texts here are
//! a few dozen bytes, and in wasm that set-up showed as ≈ 5 % of a warm evaluation (profile in
//! docs/benchmarks.md, seventh pass). These are plain loops with the same answers: an ASCII byte
//! never occurs inside the encoding of another character, so every position they find is a
//! character boundary (property tests against `str`'s own methods below).

/// The position of the first `byte`, as `text.find(char::from(byte))`.
pub(crate) fn find(text: &str, byte: u8) -> Option<usize> {
    debug_assert!(byte.is_ascii());
    text.bytes().position(|b| b == byte)
}

/// The position of the last `byte`, as `text.rfind(char::from(byte))`.
pub(crate) fn rfind(text: &str, byte: u8) -> Option<usize> {
    debug_assert!(byte.is_ascii());
    text.bytes().rposition(|b| b == byte)
}

/// Whether `text` holds `byte`, as `text.contains(char::from(byte))`.
pub(crate) fn contains(text: &str, byte: u8) -> bool {
    find(text, byte).is_some()
}

/// `text` cut at its first `byte`, as `text.split_once(char::from(byte))`.
pub(crate) fn split_once(text: &str, byte: u8) -> Option<(&str, &str)> {
    let i = find(text, byte)?;
    Some((&text[..i], &text[i + 1..]))
}

/// Whether `a` and `b` are the same bytes, as `a == b`, compared eight bytes at a time: slice
/// equality calls wasi-libc's `memcmp`, a byte at a time (≈ 24 instructions a byte in wasm: the
/// glob reader's check of a remembered registry cost ≈ 365 instructions a glob, docs/benchmarks.md,
/// sixteenth pass).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b_words, b_rest) = b.split_at(a_words.len());
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().unwrap_or_default());
    a_words
        .chunks_exact(8)
        .zip(b_words.chunks_exact(8))
        .all(|(x, y)| word(x) == word(y))
        && a_rest.iter().zip(b_rest).all(|(x, y)| x == y)
}

/// `bytes` as text when they are UTF-8, as `std::str::from_utf8(bytes).ok()`, with the ASCII
/// bytes they begin with (all of a settings text, nearly always) checked 32 at a time
/// ([`ascii_len`]) and the rest by `std`. `core`'s check reads at most two `usize`s (eight bytes
/// in wasm32) a step: ≈ 1,400 instructions a policy of a fresh instance's settings
/// (docs/benchmarks.md, seventeenth pass). Property test `text_is_from_utf8`.
pub(crate) fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(&bytes[ascii_len(bytes)..]).ok()?;
    // SAFETY: the bytes before `ascii_len(bytes)` are below 0x80 (ASCII characters, each a whole
    // character in UTF-8) and those after it were checked just above: text made of two UTF-8
    // texts is UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// How many bytes `bytes` begins with that are all ASCII (below 0x80): possibly fewer than all
/// of those before the first other byte, never more.
fn ascii_len(bytes: &[u8]) -> usize {
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut blocks = bytes.chunks_exact(32);
    let mut len = 0;
    for block in &mut blocks {
        let word = |at: usize| u64::from_le_bytes(block[at..at + 8].try_into().unwrap_or_default());
        if (word(0) | word(8) | word(16) | word(24)) & HIGHS != 0 {
            return len;
        }
        len += 32;
    }
    len + blocks.remainder().iter().take_while(|b| b.is_ascii()).count()
}

/// The parts of `text` between the `byte`s, as `text.split(char::from(byte))`.
pub(crate) fn split(text: &str, byte: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match split_once(current, byte) {
            Some((part, after)) => {
                rest = Some(after);
                Some(part)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Texts dense in the searched bytes, with multi-byte characters among them.
    fn text() -> impl Strategy<Value = String> {
        "[a/:.@\\]é€😀]{0,16}"
    }

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(b'/'),
            Just(b':'),
            Just(b'.'),
            Just(b'@'),
            Just(b']'),
            Just(b'a'),
            Just(b'z')
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn the_searches_answer_as_str_does(text in text(), byte in byte()) {
            let c = char::from(byte);
            prop_assert_eq!(find(&text, byte), text.find(c));
            prop_assert_eq!(rfind(&text, byte), text.rfind(c));
            prop_assert_eq!(contains(&text, byte), text.contains(c));
            prop_assert_eq!(split_once(&text, byte), text.split_once(c));
            prop_assert_eq!(split(&text, byte).collect::<Vec<_>>(), text.split(c).collect::<Vec<_>>());
        }

        /// Texts of every length around the 32-byte blocks, mostly ASCII, with a character of
        /// two to four bytes, a byte of one cut, or any byte placed anywhere.
        #[test]
        fn text_is_from_utf8(
            ascii in "[ -~\\n]{0,100}",
            inserts in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![
                "[é€😀]".prop_map(String::into_bytes),
                "[é€😀]".prop_map(|c| c.into_bytes()[..1].to_vec()),
                any::<u8>().prop_map(|b| vec![b]),
            ]), 0..3),
        ) {
            let mut bytes = ascii.into_bytes();
            for (at, insert) in inserts {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, insert);
            }
            prop_assert_eq!(super::text(&bytes), std::str::from_utf8(&bytes).ok());
            let len = ascii_len(&bytes);
            prop_assert!(bytes[..len].is_ascii());
            prop_assert!(len == bytes.len() || !bytes[len..(len + 32).min(bytes.len())].is_ascii());
        }

        /// Pairs of every length around the eight-byte words, most of them differing in one
        /// byte (anywhere: in a word or in the rest) or in length.
        #[test]
        fn same_answers_as_equality(
            a in prop::collection::vec(any::<u8>(), 0..40),
            at in any::<prop::sample::Index>(),
            change in prop_oneof![Just(None), any::<u8>().prop_map(Some)],
            cut in 0usize..3,
        ) {
            let mut b = a.clone();
            if let (Some(byte), false) = (change, b.is_empty()) {
                b[at.index(a.len())] = byte;
            }
            b.truncate(b.len().saturating_sub(cut % 2));
            prop_assert_eq!(same(&a, &b), a == b);
            prop_assert_eq!(same(&b, &a), a == b);
            prop_assert!(same(&a, &a));
        }
    }
}
