//! Writing `validate`'s answer, a [`Response`] (Kubewarden's `ValidationResponse`), as JSON:
//! the bytes `serde_json` writes, written more directly.
//!
//! The answer carries the request's object when an image was pinned to its digest: the
//! object's own JSON text with the pinned images spliced in (`workload::pin`), copied as it is.
//! The messages, warnings and annotations are strings: `serde_json`'s writer looks for bytes to
//! escape one byte at a time and writes each piece through `io::Write`, which in wasm costs ≈ 30
//! instructions a byte. Here the bytes to escape are found eight bytes at a time, and what lies
//! between them is copied as it is; punctuation is pushed. The property test
//! `the_answer_is_what_serde_json_writes` compares every byte with `serde_json::to_string`.

use std::collections::HashMap;

use serde::{Serialize, Serializer};

use crate::json_text::quote_backslash_or_control;

/// Kubewarden's `ValidationResponse`, field for field, except that the mutated object is JSON
/// text (written as it is) instead of a `serde_json::Value`.
#[derive(Debug, Default, Serialize)]
pub struct Response {
    pub accepted: bool,
    pub message: Option<String>,
    pub code: Option<u16>,
    /// The mutated object as JSON text (one valid JSON value).
    #[serde(serialize_with = "raw")]
    pub mutated_object: Option<String>,
    pub audit_annotations: Option<HashMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

/// Serializes JSON text as the value it is (for `serde_json::to_value` and `to_string` of a
/// [`Response`]; the module writes it with [`write_response`]).
fn raw<S: Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => serde_json::value::RawValue::from_string(text.clone())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer),
        None => serializer.serialize_none(),
    }
}

/// The length of the JSON [`write_response`] writes for `response` when none of its strings
/// holds a byte to escape (an escape only lengthens it). The module allocates its answer with
/// this much room, once: room for the whole payload, as before, was ≈ 12 KB for a Pod under 20
/// policies of which ≈ 1.5 KB were written, and the allocator writes the header of the next
/// chunk where the room ends, a page touched for nothing in a fresh instance
/// (docs/benchmarks.md, twenty-first pass).
pub fn response_len(response: &Response) -> usize {
    const FIELDS: &str = r#"{"accepted":,"message":,"code":,"mutated_object":,"audit_annotations":,"warnings":}"#;
    let string = |s: &String| s.len() + 2;
    let list = |count: usize, items: usize| 2 + count.saturating_sub(1) + items;
    FIELDS.len()
        + if response.accepted { 4 } else { 5 }
        + response.message.as_ref().map_or(4, string)
        + response
            .code
            .map_or(4, |code| code.checked_ilog10().map_or(1, |d| d as usize + 1))
        + response.mutated_object.as_ref().map_or(4, String::len)
        + response.audit_annotations.as_ref().map_or(4, |members| {
            list(
                members.len(),
                members.iter().map(|(k, v)| string(k) + 1 + string(v)).sum(),
            )
        })
        + response
            .warnings
            .as_ref()
            .map_or(4, |warnings| list(warnings.len(), warnings.iter().map(string).sum()))
}

/// Appends the JSON of `response` to `out`, field for field as its `Serialize` writes it (every
/// field, `null` when absent, in declaration order).
pub fn write_response(out: &mut Vec<u8>, response: &Response) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"accepted\":");
    out.extend_from_slice(if response.accepted { b"true" } else { b"false" });
    out.extend_from_slice(b",\"message\":");
    match &response.message {
        Some(message) => string(out, message)?,
        None => null(out),
    }
    out.extend_from_slice(b",\"code\":");
    match response.code {
        Some(code) => serde_json::to_writer(&mut *out, &code)?,
        None => null(out),
    }
    out.extend_from_slice(b",\"mutated_object\":");
    match &response.mutated_object {
        Some(mutated) => out.extend_from_slice(mutated.as_bytes()),
        None => null(out),
    }
    out.extend_from_slice(b",\"audit_annotations\":");
    match &response.audit_annotations {
        Some(annotations) => object(out, annotations, |out, text| string(out, text))?,
        None => null(out),
    }
    out.extend_from_slice(b",\"warnings\":");
    match &response.warnings {
        Some(warnings) => array(out, warnings, |out, warning| string(out, warning))?,
        None => null(out),
    }
    out.push(b'}');
    Ok(())
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

/// Appends a JSON array of `items`, each written by `each`.
fn array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut Vec<u8>, T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item)?;
    }
    out.push(b']');
    Ok(())
}

/// Appends a JSON object of `members`, each value written by `each`.
fn object<'a, T>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = (&'a String, T)>,
    mut each: impl FnMut(&mut Vec<u8>, T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'{');
    for (i, (key, member)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, key)?;
        out.push(b':');
        each(out, member)?;
    }
    out.push(b'}');
    Ok(())
}

/// Appends `s` as a JSON string to the text `out` (as [`string`] does): requests to the host
/// built as text around an image or a key (one allocation each).
pub(crate) fn push_string(out: &mut String, s: &str) {
    push_joined_string(out, &[s]);
}

/// [`push_string`] of `parts` written one after the other, without joining them first (a
/// pinned image is `image`, `@` and the digest, spliced into the object): `serde_json` escapes
/// byte by byte, so the parts escaped one after the other are the whole escaped.
pub(crate) fn push_joined_string(out: &mut String, parts: &[&str]) {
    out.reserve(parts.iter().map(|part| part.len()).sum::<usize>() + 2);
    out.push('"');
    for part in parts {
        escaped(part, |piece| out.push_str(piece));
    }
    out.push('"');
}

/// Appends `s` as a JSON string, as `serde_json` writes it.
fn string(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escaped(s, |piece| out.extend_from_slice(piece.as_bytes()));
    out.push(b'"');
    Ok(())
}

/// Hands `s` to `piece` as `serde_json` escapes it between the quotes of a JSON string. The runs
/// without a byte to escape go as they are, found eight bytes at a time by the JSON-text
/// reader's word scan (a PEM key breaks its line every 64 bytes; an image or a message seldom
/// has a byte to escape). Each byte to escape goes as `serde_json` writes it: `\"`, `\\`, `\b`,
/// `\t`, `\n`, `\f`, `\r`, else `\u00` and two lower-case hex digits. (`serde_json`'s writer
/// looks at one byte at a time, ≈ 40 instructions a byte in wasm.) A run ends before an ASCII
/// byte or at the end: on a character boundary. Property tests against `serde_json::to_string`.
fn escaped(s: &str, mut piece: impl FnMut(&str)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let stop = quote_backslash_or_control(bytes, start);
        piece(&s[start..stop]);
        let Some(&b) = bytes.get(stop) else { return };
        let unicode;
        piece(match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            _ => {
                unicode = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                // Six ASCII bytes.
                std::str::from_utf8(&unicode).unwrap_or_default()
            }
        });
        start = stop + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Strings dense in what gets escaped, and in multi-byte characters.
    fn text() -> impl Strategy<Value = String> {
        "[a\"\\\\\u{0}\u{1f}\u{7f}\n\t/é😀]{0,8}"
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((text(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// Responses whose mutated object is the text of any value, compact or spaced and on
    /// several lines (it is written as it is).
    fn response() -> impl Strategy<Value = Response> {
        response_of(text)
    }

    /// [`response`] with its strings (message, annotations, warnings) drawn from `text`.
    fn response_of<S: Strategy<Value = String>>(text: fn() -> S) -> impl Strategy<Value = Response> {
        (
            any::<bool>(),
            prop::option::of(text()),
            prop::option::of(any::<u16>()),
            prop::option::of((json_value(), any::<bool>()).prop_map(|(v, pretty)| {
                if pretty {
                    serde_json::to_string_pretty(&v).unwrap()
                } else {
                    v.to_string()
                }
            })),
            prop::option::of(prop::collection::vec((text(), text()), 0..4)),
            prop::option::of(prop::collection::vec(text(), 0..4)),
        )
            .prop_map(
                |(accepted, message, code, mutated_object, annotations, warnings)| Response {
                    accepted,
                    message,
                    code,
                    mutated_object,
                    audit_annotations: annotations.map(|a| a.into_iter().collect::<HashMap<_, _>>()),
                    warnings,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn the_answer_is_what_serde_json_writes(response in response()) {
            let mut ours = Vec::new();
            write_response(&mut ours, &response).unwrap();
            let ours = String::from_utf8(ours).unwrap();
            prop_assert_eq!(&ours, &serde_json::to_string(&response).unwrap());
            // Read back, the object is the value its text is.
            let read: Value = serde_json::from_str(&ours).unwrap();
            let object = response.mutated_object.as_deref().map_or(Value::Null, |t| serde_json::from_str(t).unwrap());
            prop_assert_eq!(&read["mutated_object"], &object);
        }

        /// The room the answer is allocated with is its length when no string needs an escape
        /// (the allocation is never grown then), and never more than its length.
        #[test]
        fn the_answer_fits_its_room(
            plain in response_of(|| "[a-zA-Z0-9 .:/@é😀]{0,12}"),
            dense in response(),
        ) {
            for (response, exact) in [(plain, true), (dense, false)] {
                let mut answer = Vec::with_capacity(response_len(&response));
                write_response(&mut answer, &response).unwrap();
                if exact {
                    prop_assert_eq!(answer.len(), response_len(&response));
                } else {
                    prop_assert!(response_len(&response) <= answer.len());
                }
            }
        }

        /// Parts pushed as one string are the string `serde_json` writes for them joined.
        #[test]
        fn joined_parts_are_what_serde_json_writes(before in text(), parts in prop::collection::vec(text(), 0..4)) {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let mut ours = before.clone();
            push_joined_string(&mut ours, &parts);
            prop_assert_eq!(ours, before + &serde_json::to_string(&parts.concat()).unwrap());
        }

        /// A string pushed into a text after what is there is the one `serde_json` writes.
        #[test]
        fn a_pushed_string_is_what_serde_json_writes(before in text(), s in text()) {
            let mut ours = before.clone();
            push_string(&mut ours, &s);
            prop_assert_eq!(ours, before + &serde_json::to_string(&s).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Texts of every length around the word size, dense in the bytes escaped and next to
        /// them (`0x1f`/`0x20`, `!`/`"`/`#`, `[`/`\\`/`]`, `0x7f`) and in multi-byte characters,
        /// are written as `serde_json` writes them.
        #[test]
        fn escaped_runs_are_what_serde_json_writes(
            s in "[\u{0}-\u{1f} !\"#\\[\\\\\\]a\u{7f}\u{80}é\u{7ff}😀]{0,40}"
        ) {
            let mut ours = Vec::new();
            string(&mut ours, &s).unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    /// Every ASCII byte, alone and inside a word, is written as `serde_json` writes it.
    #[test]
    fn escapes_are_serde_jsons() {
        for b in 0..=0x7f_u8 {
            let c = char::from(b);
            for text in [c.to_string(), format!("abcdefgh{c}ijklmnopq")] {
                let mut ours = String::new();
                push_string(&mut ours, &text);
                assert_eq!(ours, serde_json::to_string(&text).unwrap(), "byte {b:#x}");
            }
        }
    }
}
