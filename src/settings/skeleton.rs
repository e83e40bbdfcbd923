//! The settings skeleton read by one strict pass over their JSON text instead of through the
//! derived `Deserialize` of [`super::raw`].
//!
//! A fresh instance (Kubewarden's policy-server gives one to every evaluation) reads the skeleton
//! of every policy before it looks at a container, and serde's derive costs ≈ 1,500 instructions
//! per `{"glob": …}` entry in wasm (docs/benchmarks.md). This reader reads only the plain shape
//! people write: objects holding the fields the derive knows, each once, with values of the
//! types it takes. Anything else (an unknown or repeated field, a value of another type, a struct
//! written as a list, text that is not JSON) makes it give up, and the derive reads the text
//! instead, to accept it or to name the field in its error. What it reads it checks as strictly
//! as serde_json: the punctuation between values, strings (no raw control characters; escapes
//! decoded by serde_json), `null`, `true` and `false`; the values it skips (`match`, `authorities`,
//! `spec.policy`, `status`, other `metadata`) are checked as serde_json checks them when the
//! derive skips them ([`check`], compared with serde_json by its own property tests). So it
//! never accepts what the derive refuses, nor reads anything otherwise: the property test
//! `the_walk_reads_what_the_derive_reads` compares the two on generated settings, many of them
//! broken.
//!
//! The `match` of a policy whose globs cover an image is read the same way ([`matches()`]), and
//! its authorities when each is a key authority written plainly ([`authorities`]); other kinds
//! go to the derive.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::IgnoredAny;

use super::raw::{
    JsonText, RawAuthority, RawImagePattern, RawKey, RawMatch, RawMetadata, RawPolicy, RawSettings, RawSpec, Text,
};
use crate::json_text::check;
use crate::json_text::skip_whitespace;

/// The skeleton of the settings text `json`; `None` when the derive must read it.
pub(super) fn read(json: &str) -> Option<RawSettings<'_>> {
    let mut cursor = Cursor { text: json, at: 0 };
    let mut settings = RawSettings {
        policies: None,
        no_match_policy: None,
        modify_images_with_digest: None,
    };
    let mut seen = Seen::default();
    cursor.object(|cursor, key| match key {
        "policies" => {
            seen.first(0)?;
            settings.policies = Some(cursor.list(policy)?);
            Some(())
        }
        "noMatchPolicy" => {
            seen.first(1)?;
            settings.no_match_policy = cursor.optional(Cursor::text)?;
            Some(())
        }
        "modifyImagesWithDigest" => {
            seen.first(2)?;
            settings.modify_images_with_digest = cursor.optional(Cursor::boolean)?;
            Some(())
        }
        _ => None,
    })?;
    cursor.at = skip_whitespace(cursor.bytes(), cursor.at);
    (cursor.at == json.len()).then_some(settings)
}

/// The authorities of a policy (the text of its `spec.authorities`) when each is a key
/// authority written plainly: `name`, `key` (`data`, `kms`, `hashAlgorithm`) and
/// `signatureFormat`, each once, with values of the types the derive takes. `None` when the
/// derive must read them: any other field (`keyless`, `static`, `attestations`, `secretRef`,
/// ...), or anything the derive may refuse. `validate` reads the authorities of each policy that covers an image of the request,
/// in every fresh instance: through the derive ≈ 6,000 instructions an authority in wasm
/// (docs/benchmarks.md, sixteenth pass). Property tests `the_authorities_walk_reads_what_the_derive_reads`
/// and `every_broken_byte_of_plain_authorities`.
pub(super) fn authorities(json: &str) -> Option<Vec<RawAuthority<'_>>> {
    let mut cursor = Cursor { text: json, at: 0 };
    let authorities = cursor.list(authority)?;
    cursor.at = skip_whitespace(cursor.bytes(), cursor.at);
    (cursor.at == json.len()).then_some(authorities)
}

/// The `match` entries of a policy (the text of its `spec.match`) when each is written plainly
/// (`namespaces`, `group`, `version`, `resource`, `selector`, each once, with values of the types
/// the derive takes); `None` when the derive must read them. `validate` reads the `match` of each
/// policy that covers an image of the request, not of the others: ≈ 2,000 instructions a policy
/// in a fresh instance (docs/benchmarks.md, seventeenth pass).
pub(super) fn matches(json: &str) -> Option<Vec<RawMatch>> {
    let mut cursor = Cursor { text: json, at: 0 };
    let entries = cursor.list(match_entry)?;
    cursor.at = skip_whitespace(cursor.bytes(), cursor.at);
    (cursor.at == json.len()).then_some(entries)
}

/// The fields of one object met so far (the derive refuses a field given twice).
#[derive(Default)]
struct Seen(u8);

impl Seen {
    /// `None` when field `bit` was met before.
    fn first(&mut self, bit: u8) -> Option<()> {
        let mask = 1 << bit;
        (self.0 & mask == 0).then(|| self.0 |= mask)
    }
}

/// A position in the settings text; each reading method reads one value there and moves past
/// it, or gives `None` (the position is then meaningless).
///
/// The small readers (`peek` to `list`, not [`Cursor::raw`]) are inlined into the walk of the
/// settings: called, `key`, `string` and `optional` each kept the cursor in linear memory,
/// loaded and stored around every call, and a fresh evaluation reads ≈ 25 keys and 10 strings
/// a policy. Inlined: −3.2 % instructions a fresh 10 × 20, −5.2 % a 10 × 100, +7 KB of module;
/// `raw` inlined too cost more than it saved (docs/benchmarks.md, twenty-third pass).
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte past whitespace (the cursor is moved to it).
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.at = skip_whitespace(self.bytes(), self.at);
        self.bytes().get(self.at).copied()
    }

    /// Moves past `byte`, the next byte past whitespace; `None` when another comes.
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Moves past the literal `word` (`null`, `true`, `false`) when it comes next.
    #[inline(always)]
    fn literal(&mut self, word: &str) -> bool {
        self.peek();
        let found = self.text[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }

    /// The string that comes next: the range of its content (quotes excluded) and whether it
    /// holds an escape. One pass ([`check::string_end_escaped`], the scan of the values the
    /// skeleton skips) finds its end, checks its escapes' form and refuses raw control
    /// characters, as serde_json does.
    #[inline(always)]
    fn quoted(&mut self) -> Option<(Range<usize>, bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let (end, escaped) = check::string_end_escaped(self.bytes(), start)?;
        self.at = end;
        Some((start..end - 1, escaped))
    }

    /// A string, decoded; borrowed from the text when it holds no escape, else decoded by
    /// serde_json (which also refuses lone surrogates).
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let (content, escaped) = self.quoted()?;
        if escaped {
            serde_json::from_str(&self.text[content.start - 1..content.end + 1])
                .ok()
                .map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(&self.text[content]))
        }
    }

    /// A member's key: the text between its quotes when it has no escape, as every key the walk
    /// knows is written; `None` for one with an escape, and the derive reads the object (it
    /// decodes such keys). Unlike [`Cursor::string`], no decoded string is built: a policy has
    /// ≈ 24 keys, each read in every fresh instance.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a str> {
        let (content, escaped) = self.quoted()?;
        if escaped { None } else { self.text.get(content) }
    }

    #[inline(always)]
    fn text(&mut self) -> Option<Text<'a>> {
        self.string().map(Text)
    }

    #[inline(always)]
    fn owned(&mut self) -> Option<String> {
        self.string().map(Cow::into_owned)
    }

    #[inline(always)]
    fn boolean(&mut self) -> Option<bool> {
        if self.literal("true") {
            Some(true)
        } else if self.literal("false") {
            Some(false)
        } else {
            None
        }
    }

    /// Any value, checked as serde_json checks it ([`check::value_end`]), as its text (what a
    /// `RawValue` holds). Lists and objects nested beyond what that check follows are left to
    /// the derive, which reads any depth.
    fn raw(&mut self) -> Option<JsonText<'a>> {
        self.peek()?;
        let end = check::value_end(self.bytes(), self.at)?;
        let raw = &self.text[self.at..end];
        self.at = end;
        Some(JsonText(raw))
    }

    /// An `Option` field: `null` is `None`, anything else is read by `read`.
    #[inline(always)]
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.literal("null") {
            Some(None)
        } else {
            read(self).map(Some)
        }
    }

    /// An object: `member` reads the value of each key (the key decoded) or gives up.
    #[inline(always)]
    fn object(&mut self, mut member: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A list, each item read by `item`.
    #[inline(always)]
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(Vec::new());
        }
        // Room for the lists of a policy (its globs, `match` entries, namespaces) at once: a
        // `Vec` grown from nothing by its first push costs ≈ 150 instructions more in wasm.
        let mut items = Vec::with_capacity(4);
        loop {
            items.push(item(self)?);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }
}

fn policy<'a>(cursor: &mut Cursor<'a>) -> Option<RawPolicy<'a>> {
    let mut policy = RawPolicy {
        api_version: None,
        kind: None,
        metadata: None,
        spec: None,
        status: None,
    };
    let mut seen = Seen::default();
    cursor.object(|cursor, key| {
        match key {
            "apiVersion" => {
                seen.first(0)?;
                policy.api_version = cursor.optional(Cursor::text)?;
            }
            "kind" => {
                seen.first(1)?;
                policy.kind = cursor.optional(Cursor::text)?;
            }
            "metadata" => {
                seen.first(2)?;
                policy.metadata = cursor.optional(metadata)?;
            }
            "spec" => {
                seen.first(3)?;
                policy.spec = cursor.optional(spec)?;
            }
            "status" => {
                seen.first(4)?;
                policy.status = cursor.optional(|c| c.raw().map(|_| IgnoredAny))?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(policy)
}

/// `metadata`: only `name` is read; other fields are skipped (checked as serde_json checks
/// them, by [`Cursor::raw`]).
fn metadata<'a>(cursor: &mut Cursor<'a>) -> Option<RawMetadata<'a>> {
    let mut name = None;
    let mut seen = Seen::default();
    cursor.object(|cursor, key| {
        if key == "name" {
            seen.first(0)?;
            name = cursor.optional(Cursor::text)?;
        } else {
            cursor.raw()?;
        }
        Some(())
    })?;
    Some(RawMetadata { name })
}

fn spec<'a>(cursor: &mut Cursor<'a>) -> Option<RawSpec<'a>> {
    let mut spec = RawSpec {
        images: None,
        authorities: None,
        mode: None,
        match_: None,
        policy: None,
    };
    let mut seen = Seen::default();
    cursor.object(|cursor, key| {
        match key {
            "images" => {
                seen.first(0)?;
                spec.images = cursor.optional(|c| c.list(image_pattern))?;
            }
            "authorities" => {
                seen.first(1)?;
                spec.authorities = cursor.optional(Cursor::raw)?;
            }
            "mode" => {
                seen.first(2)?;
                spec.mode = cursor.optional(Cursor::text)?;
            }
            "match" => {
                seen.first(3)?;
                spec.match_ = cursor.optional(Cursor::raw)?;
            }
            "policy" => {
                seen.first(4)?;
                spec.policy = cursor.optional(Cursor::raw)?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(spec)
}

fn image_pattern<'a>(cursor: &mut Cursor<'a>) -> Option<RawImagePattern<'a>> {
    let mut pattern = RawImagePattern {
        glob: None,
        regex: None,
    };
    let mut seen = Seen::default();
    cursor.object(|cursor, key| {
        match key {
            "glob" => {
                seen.first(0)?;
                pattern.glob = cursor.optional(Cursor::text)?;
            }
            "regex" => {
                seen.first(1)?;
                pattern.regex = cursor.optional(Cursor::text)?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(pattern)
}

/// One `match` entry; its `selector`, rare, is read by the derive alone.
fn match_entry(cursor: &mut Cursor<'_>) -> Option<RawMatch> {
    let mut entry = RawMatch {
        namespaces: None,
        group: None,
        version: None,
        resource: None,
        selector: None,
    };
    let mut seen = Seen::default();
    cursor.object(|cursor, key| {
        match key {
            "namespaces" => {
                seen.first(0)?;
                entry.namespaces = cursor.optional(|c| c.list(Cursor::owned))?;
            }
            "group" => {
                seen.first(1)?;
                entry.group = cursor.optional(Cursor::owned)?;
            }
            "version" => {
                seen.first(2)?;
                entry.version = cursor.optional(Cursor::owned)?;
            }
            "resource" => {
                seen.first(3)?;
                entry.resource = cursor.optional(Cursor::owned)?;
            }
            "selector" => {
                seen.first(4)?;
                entry.selector = cursor.optional(|c| c.raw().and_then(|raw| serde_json::from_str(raw.0).ok()))?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(entry)
}

fn authority<'a>(cursor: &mut Cursor<'a>) -> Option<RawAuthority<'a>> {
    let mut authority = RawAuthority::default();
    let mut seen = Seen::default();
    cursor.object(|cursor, field| {
        match field {
            "name" => {
                seen.first(0)?;
                authority.name = cursor.optional(Cursor::owned)?;
            }
            "key" => {
                seen.first(1)?;
                authority.key = cursor.optional(key)?;
            }
            "signatureFormat" => {
                seen.first(2)?;
                authority.signature_format = cursor.optional(Cursor::owned)?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(authority)
}

/// A `key` block; `secretRef` (refused by the policy, with its reason) is left to the derive.
fn key<'a>(cursor: &mut Cursor<'a>) -> Option<RawKey<'a>> {
    let mut key = RawKey::default();
    let mut seen = Seen::default();
    cursor.object(|cursor, field| {
        match field {
            "data" => {
                seen.first(0)?;
                key.data = cursor.optional(Cursor::raw)?;
            }
            "kms" => {
                seen.first(1)?;
                key.kms = cursor.optional(Cursor::owned)?;
            }
            "hashAlgorithm" => {
                seen.first(2)?;
                key.hash_algorithm = cursor.optional(Cursor::owned)?;
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(key)
}

/// `Ok` when the walk leaves `text` to the derive, or reads it as the derive does, the kept
/// texts at the same places (their place in the text is where the policy reads them from).
/// Only in tests and fuzzing builds: the module itself must not carry it (the code it brings,
/// even unused, changed how the reader was inlined: +1 % instructions).
///
/// Each policy's `spec.authorities` is compared too ([`authorities_agreement`]), and `text` itself
/// read as a list of authorities: the fuzz target of the settings reaches both walks.
#[cfg(any(test, fuzzing))]
pub(super) fn agreement(text: &str) -> Result<(), String> {
    authorities_agreement(text)?;
    matches_agreement(text)?;
    let derived = serde_json::from_str::<RawSettings<'_>>(text);
    if let Ok(derived) = &derived {
        for spec in derived.policies.iter().flatten().filter_map(|p| p.spec.as_ref()) {
            spec.authorities.map_or(Ok(()), |t| authorities_agreement(t.0))?;
            spec.match_.map_or(Ok(()), |t| matches_agreement(t.0))?;
        }
    }
    let Some(walked) = read(text) else { return Ok(()) };
    let derived = derived.map_err(|e| format!("the walk read what the derive refuses ({e}): {text}"))?;
    let places = |s: &RawSettings<'_>| -> Vec<Option<(*const u8, usize)>> {
        s.policies
            .iter()
            .flatten()
            .filter_map(|p| p.spec.as_ref())
            .flat_map(|s| [s.authorities, s.policy, s.match_])
            .map(|t| t.map(|t| (t.0.as_ptr(), t.0.len())))
            .collect()
    };
    if places(&walked) != places(&derived) || walked != derived {
        return Err(format!("{walked:?} vs {derived:?}: {text}"));
    }
    Ok(())
}

/// `Ok` when the walk of the authorities ([`authorities`]) leaves `text` to the derive, or
/// reads it as the derive does, each `key.data` kept at the same place.
#[cfg(any(test, fuzzing))]
fn authorities_agreement(text: &str) -> Result<(), String> {
    list_agreement(text, "authorities", authorities, |a: &RawAuthority<'_>| {
        a.key.as_ref().and_then(|k| k.data).map(|t| (t.0.as_ptr(), t.0.len()))
    })
}

/// `Ok` when the walk of a `match` list ([`matches`]) leaves `text` to the derive, or reads it
/// as the derive does.
#[cfg(any(test, fuzzing))]
fn matches_agreement(text: &str) -> Result<(), String> {
    list_agreement(text, "match", matches, |_: &RawMatch| None)
}

/// `Ok` when `walk` leaves the list `text` to the derive, or reads it as the derive does, the
/// text each item keeps (`place`) at the same place.
#[cfg(any(test, fuzzing))]
fn list_agreement<'a, T: serde::Deserialize<'a> + PartialEq + std::fmt::Debug>(
    text: &'a str,
    what: &str,
    walk: fn(&'a str) -> Option<Vec<T>>,
    place: impl Fn(&T) -> Option<(*const u8, usize)>,
) -> Result<(), String> {
    let Some(walked) = walk(text) else { return Ok(()) };
    let derived = serde_json::from_str::<Vec<T>>(text)
        .map_err(|e| format!("the {what} walk read what the derive refuses ({e}): {text}"))?;
    let places = |list: &[T]| list.iter().map(&place).collect::<Vec<_>>();
    if places(&walked) != places(&derived) || walked != derived {
        return Err(format!("{walked:?} vs {derived:?}: {text}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_text::generate::{J, Words, edit_bytes, render};
    use crate::settings::raw::RawSettings;
    use crate::tests::{article, settings};
    use proptest::prelude::*;

    const WORDS: Words = Words {
        texts: &[
            "r.io/**",
            "ghcr.io/org/*",
            "enforce",
            "warn",
            "deny",
            "p",
            "policy.sigstore.dev/v1beta1",
            "ClusterImagePolicy",
            "team-*",
            "apps",
            "In",
        ],
        keys: &[
            "glob",
            "regex",
            "name",
            "images",
            "authorities",
            "mode",
            "match",
            "policy",
            "policies",
            "spec",
            "metadata",
            "status",
            "namespaces",
            "selector",
            "Glob",
            "x",
        ],
    };

    /// A `match` list in the shape of [`RawMatch`] entries, their members often given once
    /// each and sometimes repeated, of the wrong type or unknown.
    fn generated_matches() -> BoxedStrategy<J> {
        let w = WORDS;
        let string = || w.text().prop_map(J::String).boxed();
        let text = || prop_oneof![16 => string(), 1 => Just(J::Null), 1 => w.junk()].boxed();
        let strings = || w.list_of(string());
        let requirement = w.record(vec![("key", text()), ("operator", text()), ("values", strings())]);
        let selector = w.record(vec![
            ("matchLabels", w.object_with(vec![("app", string())])),
            ("matchExpressions", w.list_of(requirement)),
        ]);
        let entry = w.record(vec![
            ("namespaces", strings()),
            ("group", text()),
            ("version", text()),
            ("resource", text()),
            ("selector", selector),
        ]);
        w.list_of(entry)
    }

    /// Settings in the shape of [`RawSettings`], their members often given once each and
    /// sometimes repeated, of the wrong type or unknown.
    fn generated_settings() -> BoxedStrategy<J> {
        let w = WORDS;
        let string = || w.text().prop_map(J::String).boxed();
        let text = || prop_oneof![16 => string(), 1 => Just(J::Null), 1 => w.junk()].boxed();
        let pattern = w.record(vec![("glob", text()), ("regex", text())]);
        let spec = w.record(vec![
            ("images", w.list_of(pattern)),
            ("authorities", w.junk()),
            ("mode", text()),
            ("match", generated_matches()),
            ("policy", w.junk()),
        ]);
        let metadata = w.record(vec![("name", text()), ("labels", w.junk())]);
        // Numbers, JSON and not, where a value is skipped.
        let number = prop::sample::select(
            &[
                "0", "-0", "01", "-01", "00", "-", "1.", ".5", "+1", "1e", "1e+", "1.e3", "2E-0", "1E+2", "0.5e-3",
                "-12.0e9",
            ][..],
        )
        .prop_map(J::Number);
        let numbers = prop_oneof![number.clone(), prop::collection::vec(number, 1..3).prop_map(J::List)].boxed();
        let policy = w.record(vec![
            ("apiVersion", text()),
            ("kind", text()),
            ("metadata", metadata),
            ("spec", spec),
            ("status", prop_oneof![w.junk(), numbers].boxed()),
        ]);
        let boolean = prop_oneof![4 => any::<bool>().prop_map(J::Bool), 1 => Just(J::Null), 1 => w.junk()].boxed();
        w.record(vec![
            ("policies", w.list_of(policy)),
            ("noMatchPolicy", text()),
            ("modifyImagesWithDigest", boolean),
        ])
    }

    /// Authorities in the shape of [`RawAuthority`], key authorities most often, their members
    /// sometimes repeated, of the wrong type, unknown or of another kind.
    fn generated_authorities() -> BoxedStrategy<J> {
        let w = Words {
            texts: &[
                "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
                "current-key",
                "awskms:///alias/cosign",
                "sha256",
                "sha512",
                "legacy",
                "bundle",
                "",
            ],
            keys: &[
                "name",
                "key",
                "data",
                "kms",
                "hashAlgorithm",
                "secretRef",
                "signatureFormat",
                "keyless",
                "static",
                "annotations",
                "Name",
                "x",
            ],
        };
        let string = || w.text().prop_map(J::String).boxed();
        let text = || prop_oneof![16 => string(), 1 => Just(J::Null), 1 => w.junk()].boxed();
        let key = w.record(vec![
            ("data", text()),
            ("kms", text()),
            ("hashAlgorithm", text()),
            ("secretRef", w.junk()),
        ]);
        let authority = w.record(vec![
            ("name", text()),
            ("key", prop_oneof![8 => key, 1 => Just(J::Null)].boxed()),
            ("signatureFormat", text()),
            ("static", w.record(vec![("action", text())])),
            ("annotations", w.object_with(vec![("team", string())])),
        ]);
        w.list_of(authority)
    }

    /// `j` written in the style `style`, then broken in up to two places (the first of
    /// `breaks` is ignored: a third of the texts stay whole): a byte replaced, inserted or
    /// removed. `None` when that leaves no UTF-8.
    fn written(j: &J, style: &[u8], breaks: Vec<(prop::sample::Index, u8, u8)>) -> Option<String> {
        let mut styles = style.iter().copied().cycle();
        let mut text = String::new();
        render(j, &mut || styles.next().unwrap_or_default(), &mut text);
        let mut bytes = text.into_bytes();
        edit_bytes(
            &mut bytes,
            breaks.into_iter().skip(1).map(|(at, byte, how)| (at, how, byte)),
        );
        String::from_utf8(bytes).ok()
    }

    /// A place in a text, a byte JSON's syntax turns on, and what to do with it there.
    fn breaks() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::sample::select(&b"\"\\{}[],: n0tf-.e\x01\x1fu9"[..]),
                0u8..3,
            ),
            0..3,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]

        /// Whatever the walk reads, the derive reads the same way; what it leaves, the derive
        /// reads or refuses.
        #[test]
        fn the_walk_reads_what_the_derive_reads(
            settings in generated_settings(),
            style in prop::collection::vec(any::<u8>(), 1..64),
            breaks in breaks(),
        ) {
            let Some(text) = written(&settings, &style, breaks) else { return Ok(()) };
            prop_assert_eq!(agreement(&text), Ok(()));
        }

        /// The same for the walk of a policy's authorities.
        #[test]
        fn the_authorities_walk_reads_what_the_derive_reads(
            list in generated_authorities(),
            style in prop::collection::vec(any::<u8>(), 1..64),
            breaks in breaks(),
        ) {
            let Some(text) = written(&list, &style, breaks) else { return Ok(()) };
            prop_assert_eq!(authorities_agreement(&text), Ok(()));
        }

        /// The same for the walk of a policy's `match`.
        #[test]
        fn the_match_walk_reads_what_the_derive_reads(
            list in generated_matches(),
            style in prop::collection::vec(any::<u8>(), 1..64),
            breaks in breaks(),
        ) {
            let Some(text) = written(&list, &style, breaks) else { return Ok(()) };
            prop_assert_eq!(matches_agreement(&text), Ok(()));
        }
    }

    /// Settings as `cip bench` writes them, and a policy with a selector, `spec.policy` and a
    /// status.
    const PLAIN: [&str; 2] = [
        r#"{"policies":[{"apiVersion":"policy.sigstore.dev/v1beta1","kind":"ClusterImagePolicy",
            "metadata":{"name":"policy-0"},"spec":{"match":[{"namespaces":["production","team0-*"]}],
            "images":[{"glob":"r.io/team0/**"},{"glob":"r.io/shared/team0-*"}],
            "authorities":[{"name":"current-key","key":{"data":"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n","n":[-1.5e3,0,true]}}],
            "mode":"enforce"}}],"noMatchPolicy":"deny","modifyImagesWithDigest":true}"#,
        r#"{"policies":[{"metadata":{"name":"p","generation":1,"labels":{"a":"b\u00e9"}},"spec":{"images":[{"glob":"**"}],
            "match":[{"resource":"pods","version":"v1","group":"","selector":{"matchLabels":{"tier":"prod"}}}],
            "policy":{"type":"cue","data":"x"}},"status":{"any":[1,2,null,false]}}]}"#,
    ];

    /// Every way of breaking one byte of `plain` (each byte replaced by, or each place given,
    /// one of the bytes JSON's syntax turns on, or the byte removed) that leaves UTF-8.
    fn every_broken_byte(plain: &str) -> Vec<String> {
        const BYTES: &[u8] = b"\"\\{}[],: n0tf-.eEu9+\x01\x1f\x7f";
        let plain = plain.as_bytes();
        let mut texts = Vec::new();
        for at in 0..=plain.len() {
            texts.push([&plain[..at], &plain[(at + 1).min(plain.len())..]].concat());
            for &byte in BYTES {
                texts.push([&plain[..at], &[byte], &plain[at..]].concat());
                if at < plain.len() {
                    texts.push([&plain[..at], &[byte], &plain[at + 1..]].concat());
                }
            }
        }
        texts.into_iter().filter_map(|t| String::from_utf8(t).ok()).collect()
    }

    /// A key written with an escape (`"\u0061piVersion"` is `apiVersion`) is left to the
    /// derive, which decodes it: the settings read as those written plainly, in every object the
    /// walk reads (settings, policy, spec, image, authority, key, `match` entry).
    /// `policies` is required: the walk reads it absent as the derive does (`None`, refused by
    /// `Settings::build`), and `[]` as given and empty; `null` is left to the derive.
    #[test]
    fn policies_absent_empty_and_null() {
        for (text, policies) in [
            ("{}", None),
            (r#"{"noMatchPolicy":"warn","modifyImagesWithDigest":false}"#, None),
            (r#"{"policies":[]}"#, Some(0)),
            (r#" { "policies" : [ ] , "noMatchPolicy" : "deny" } "#, Some(0)),
        ] {
            let walked = read(text).unwrap_or_else(|| panic!("the walk left {text}"));
            assert_eq!(walked.policies.as_ref().map(Vec::len), policies, "{text}");
            assert_eq!(agreement(text), Ok(()), "{text}");
        }
        let null = r#"{"policies":null}"#;
        assert_eq!(read(null), None);
        assert_eq!(serde_json::from_str::<RawSettings<'_>>(null).unwrap().policies, None);
    }

    #[test]
    fn an_escaped_key_is_left_to_the_derive() {
        // `text` with the first `"key"` written with its first letter escaped.
        let escape_first = |text: &str, key: &str| {
            let escaped = format!("\"\\u{:04x}{}\"", key.as_bytes()[0], &key[1..]);
            text.replacen(&format!("\"{key}\""), &escaped, 1)
        };
        let plain = PLAIN[0].replace("\n            ", "");
        let plain_authorities = authorities(PLAIN_AUTHORITIES).expect("plain authorities");
        for key in [
            "policies",
            "noMatchPolicy",
            "apiVersion",
            "spec",
            "images",
            "mode",
            "glob",
        ] {
            let text = escape_first(&plain, key);
            assert_ne!(text, plain, "{key} is in the settings");
            assert_eq!(read(&text), None, "{key}: the walk gives up");
            let derived: RawSettings<'_> = serde_json::from_str(&text).expect("the derive reads it");
            assert_eq!(Some(derived), read(&plain), "{key}: read as written plainly");
        }
        for key in ["name", "data"] {
            let text = escape_first(PLAIN_AUTHORITIES, key);
            assert_eq!(authorities(&text), None, "{key}: the walk gives up");
            let derived: Vec<RawAuthority<'_>> = serde_json::from_str(&text).expect("the derive reads it");
            assert_eq!(derived, plain_authorities, "{key}: read as written plainly");
        }
        let plain_match = r#"[{"namespaces":["production","team0-*"],"resource":"pods"}]"#;
        let text = escape_first(plain_match, "namespaces");
        assert_eq!(
            text,
            r#"[{"\u006eamespaces":["production","team0-*"],"resource":"pods"}]"#
        );
        assert_eq!(matches(&text), None, "namespaces: the walk gives up");
        let derived: Vec<RawMatch> = serde_json::from_str(&text).expect("the derive reads it");
        assert_eq!(
            Some(derived),
            matches(plain_match),
            "namespaces: read as written plainly"
        );
    }

    /// Every way of breaking one byte of plainly written settings: the walk gives up or reads
    /// what the derive reads.
    #[test]
    fn every_broken_byte_of_plain_settings() {
        for plain in PLAIN {
            assert_eq!(agreement(plain), Ok(()));
            for text in every_broken_byte(plain) {
                assert_eq!(agreement(&text), Ok(()));
            }
        }
    }

    /// Authorities as the article's key rotation writes them, with the other fields the walk
    /// reads (`null` among them) and a key with escapes the derive would decode.
    const PLAIN_AUTHORITIES: &str = r#"[{"name":"previous-key","key":{"data":"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"}},
        {"name":"current-key","key":{"data":"-----BEGIN PUBLIC KEY-----\nMFk\u0077\/\n-----END PUBLIC KEY-----\n","hashAlgorithm":"sha256","kms":null},"signatureFormat":"legacy"},
        {"key":{"kms":"awskms:///alias/cosign"},"name":null}]"#;

    /// The same for a policy's authorities.
    #[test]
    fn every_broken_byte_of_plain_authorities() {
        assert_eq!(authorities_agreement(PLAIN_AUTHORITIES), Ok(()));
        for text in every_broken_byte(PLAIN_AUTHORITIES) {
            assert_eq!(authorities_agreement(&text), Ok(()));
        }
    }

    /// `match` lists as the benchmark and the article write them, and one with every field.
    const PLAIN_MATCHES: [&str; 2] = [
        r#"[{"namespaces":["production","team0-*"]}]"#,
        r#"[{"resource":"pods","version":"v1","group":"","namespaces":null},
            {"selector":{"matchLabels":{"tier":"prod"},"matchExpressions":[{"key":"app","operator":"In","values":["a\u00e9"]}]}}]"#,
    ];

    /// The same for a policy's `match`; the walk reads these plain lists itself.
    #[test]
    fn every_broken_byte_of_plain_matches() {
        for plain in PLAIN_MATCHES {
            let walked = matches(plain).unwrap_or_else(|| panic!("the walk left {plain}"));
            assert!(!walked.is_empty());
            assert_eq!(matches_agreement(plain), Ok(()));
            for text in every_broken_byte(plain) {
                assert_eq!(matches_agreement(&text), Ok(()));
            }
        }
        for other in [
            r#"[{"namespaces":["a"],"namespaces":["b"]}]"#,
            r#"[{"namespace":["a"]}]"#,
            r#"[{"namespaces":"a"}]"#,
        ] {
            assert!(matches(other).is_none(), "{other}");
        }
    }

    /// The authorities walk reads the key authorities people write (the article's, the
    /// benchmark's) itself, and leaves other kinds and `secretRef` to the derive.
    #[test]
    fn the_authorities_walk_reads_plain_key_authorities() {
        let walked = authorities(PLAIN_AUTHORITIES).expect("the walk reads plain key authorities");
        assert_eq!(walked.len(), 3);
        assert_eq!(walked[1].signature_format.as_deref(), Some("legacy"));
        let data = walked[1].key.as_ref().and_then(|k| k.data).expect("key.data");
        assert!(
            data.0.starts_with(r#""-----BEGIN PUBLIC KEY-----\nMFk\u0077"#),
            "kept as written: {data:?}"
        );
        for cip in [
            "signed-images-policy",
            "key-rotation-policy",
            "kms-signed-policy",
            "multi-sig-policy",
        ] {
            let policy: serde_json::Value = serde_yaml::from_str(&article(cip)).expect("the article's YAML");
            let text = policy["spec"]["authorities"].to_string();
            let walked = authorities(&text).unwrap_or_else(|| panic!("the walk left {cip}'s authorities: {text}"));
            assert!(!walked.is_empty());
            assert_eq!(authorities_agreement(&text), Ok(()));
        }
        for other in [
            r#"[{"keyless":{"url":"https://fulcio.sigstore.dev"}}]"#,
            r#"[{"static":{"action":"pass"}}]"#,
            r#"[{"key":{"secretRef":{"name":"k"}}}]"#,
            r#"[{"name":"a","name":"b","key":{"data":"x"}}]"#,
        ] {
            assert!(authorities(other).is_none(), "{other}");
        }
    }

    /// The walk reads the settings people write (the article's policies, the benchmark's shape)
    /// itself: it does not leave them all to the derive.
    #[test]
    fn the_walk_reads_plainly_written_settings() {
        let cips: Vec<String> = [
            "signed-images-policy",
            "production-strict-policy",
            "dev-warn-policy",
            "keyless-policy",
            "allow-system-images",
            "key-rotation-policy",
            "kms-signed-policy",
            "multi-sig-policy",
            "attestation-policy",
        ]
        .map(article)
        .to_vec();
        let [bench, _] = PLAIN;
        let article = settings(&cips, serde_json::json!({"noMatchPolicy": "warn"})).to_string();
        for text in [article.as_str()].into_iter().chain(PLAIN) {
            let walked = read(text).unwrap_or_else(|| panic!("the walk left {text}"));
            assert_eq!(Ok(()), agreement(text));
            assert!(walked.policies.is_some_and(|p| !p.is_empty()));
        }
        assert_eq!(read(&bench.replace("\"mode\"", "\"Mode\"")), None);
        // A skipped value is checked as serde_json checks it to a depth of 128 lists or
        // objects; deeper, the derive reads the settings (serde_json's ignore_value does not
        // recurse: any depth reads).
        let status = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let with_status = |depth| bench.replace("\"kind\":", &format!("\"status\":{},\"kind\":", status(depth)));
        let at_limit = with_status(128);
        let walked = read(&at_limit).expect("the walk reads a status 128 lists deep");
        assert_eq!(agreement(&at_limit), Ok(()));
        assert_eq!(walked.policies.expect("the policies")[0].status, Some(IgnoredAny));
        for depth in [129, 10_000] {
            let deep = with_status(depth);
            assert_eq!(read(&deep), None);
            assert!(serde_json::from_str::<RawSettings<'_>>(&deep).is_ok());
        }
    }
}
