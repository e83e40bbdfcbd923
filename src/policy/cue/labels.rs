//! Labels outside ASCII: taken only where CUE reads them as written.
//!
//! CUE normalises every quoted label, the policy's and the input's (JSON is CUE), to Unicode NFC
//! (cuelang.org/go's `internal/core/compile`: `norm.NFC.String` on a string label), and leaves
//! string values as written. So for CUE `"\u212aey"` (KELVIN SIGN) is the field `Key`,
//! `"a\u037eb"` (GREEK QUESTION MARK) is `"a;b"`, `"e\u0301"` is `"é"`, and two keys of one
//! object that normalise alike are one field, whose values CUE unifies (`{"K": 1, "\u212a": 2}`
//! is a conflict even where the policy constrains nothing). Comparing labels byte for byte, this
//! module let a key written otherwise slip past a constraint that CUE applies.
//!
//! Normalising here as CUE does costs 73 KB of `policy.wasm` (the canonical decomposition,
//! composition and combining-class tables; 137 KB with the crate's own `nfc()`), so instead a
//! label must pass Unicode's NFC quick check (UAX #15), which needs the combining classes and
//! the quick-check property only: a label that passes is in NFC, CUE reads it as written, and
//! two that pass are one label for CUE exactly when they are equal (the comparison stays byte
//! for byte, and an ASCII label is taken at once, without a look further). A policy label that
//! does not pass refuses the policy at load; an input key that does not pass, anywhere in the
//! input (a collision refuses even an unconstrained part for CUE), fails the check, naming the
//! key. This is stricter than CUE, never more lenient: the quick check answers "maybe" for some
//! labels in NFC (a combining mark that can join the character before it, as in `"e\u0301"`'s
//! second character, Indic vowel signs, Hangul jamo), which are refused too.
//!
//! Unicode versions do not matter: CUE v0.4.3 normalises with Unicode 13.0's tables,
//! `unicode-normalization` has later ones, and a text in NFC for a later version is in NFC for
//! an earlier one (a character the earlier version lacks is a starter there, and never decomposes).

use serde_json::Value as Json;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{IsNormalized, is_nfc_quick};

use super::eval::{Conflict, push_label};
use super::{CueError, Pos};

/// Whether `label` passes the NFC quick check (every ASCII label does, without a look further)
/// and is short of the run of combining marks at which CUE's NFC changes it.
fn in_nfc(label: &str) -> bool {
    label.is_ascii() || (is_nfc_quick(label.chars()) == IsNormalized::Yes && stream_safe(label))
}

/// Most non-starters in a row a label may hold ([`stream_safe`]).
const MAX_NONSTARTERS: usize = 26;

/// Go's NFC (`golang.org/x/text/unicode/norm`, CUE's) is UAX #15's stream-safe one: after 30
/// non-starters in a row it inserts U+034F (COMBINING GRAPHEME JOINER), so `"a"` followed by 31
/// U+0334 is, for CUE, the label with U+034F after the 30th, although both pass the quick check
/// (found by a review). Counted generously, without the decomposition tables: a character
/// outside ASCII with combining class 0 counts as 3, the most trailing non-starters a canonical
/// decomposition has (`\u1f83` is α and three marks), every mark as one (a mark that
/// decomposes into several fails the quick check anyway); more than [`MAX_NONSTARTERS`] is
/// refused, below CUE's 30.
fn stream_safe(label: &str) -> bool {
    let mut run = 0usize;
    for c in label.chars() {
        run = if c.is_ascii() {
            0
        } else if canonical_combining_class(c) == 0 {
            3
        } else {
            run + 1
        };
        if run > MAX_NONSTARTERS {
            return false;
        }
    }
    true
}

/// A label for a message: quoted, each character outside printable ASCII escaped as CUE and Go
/// write it (`"\u212aey"`), so that labels that look alike read apart.
pub fn escaped(label: &str) -> String {
    let mut out = String::with_capacity(label.len() + 2);
    out.push('"');
    for c in label.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Why a label is refused: CUE reads it in NFC, which it may not be in.
fn why(label: &str) -> String {
    format!(
        "{} is not in Unicode NFC, or not surely (the NFC quick check of UAX #15 does not pass, or more \
         than {MAX_NONSTARTERS} combining marks follow one another): CUE reads labels in NFC, where it may \
         be another field than as written, or the same as another",
        escaped(label)
    )
}

/// A quoted label of the policy: refused unless CUE reads it as written.
pub fn policy_label(label: String, pos: Pos) -> Result<String, CueError> {
    if in_nfc(&label) {
        Ok(label)
    } else {
        Err(CueError::unsupported(
            pos,
            &format!("the label {}; a label outside ASCII", why(&label)),
        ))
    }
}

/// `Err` names the first key of `input`, at any depth, that CUE may not read as written. One
/// walk over the input; nothing is allocated unless a key is refused.
pub fn check_keys(input: &Json) -> Result<(), Conflict> {
    match refused_key(input) {
        None => Ok(()),
        Some((mut path, key)) => {
            path.reverse();
            Err(Conflict {
                path: path.join("."),
                message: format!("the input's key {}; refused", why(key)),
            })
        }
    }
}

/// The first key that does not pass the quick check, and its path (innermost first).
fn refused_key(input: &Json) -> Option<(Vec<String>, &str)> {
    let (path, key, step) = match input {
        Json::Object(object) => object.iter().find_map(|(key, value)| {
            if !in_nfc(key) {
                // Escaped, as it is not what it looks like (`"\u212aey"` looks like `Key`).
                Some((vec![escaped(key)], key.as_str(), None))
            } else {
                refused_key(value).map(|(path, found)| (path, found, Some(key)))
            }
        })?,
        Json::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            refused_key(item).map(|(mut path, found)| {
                path.push(i.to_string());
                (path, found, None)
            })
        })?,
        _ => return None,
    };
    let mut path = path;
    if let Some(label) = step {
        push_label(&mut path, label);
    }
    Some((path, key))
}
