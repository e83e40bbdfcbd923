//! Generated JSON texts for the property tests that compare readers of JSON text with
//! serde_json's: values written in many ways (whitespace, escapes, duplicate keys), from a
//! vocabulary of strings and keys that the reader under test looks for.

use proptest::prelude::*;

/// Breaks `bytes` as a property test breaks a text: each edit, at a place chosen by its index
/// (the end included), replaces the byte there (`0`), inserts `byte` (`1`), or removes the byte
/// there (any other kind); an edit with no byte to replace or remove does nothing.
pub(crate) fn edit_bytes(bytes: &mut Vec<u8>, edits: impl IntoIterator<Item = (prop::sample::Index, u8, u8)>) {
    for (at, kind, byte) in edits {
        let i = at.index(bytes.len() + 1);
        match kind {
            0 if i < bytes.len() => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => {}
        }
    }
}

/// A JSON value to be written as text in many ways (see [`render`]).
#[derive(Clone, Debug)]
pub(crate) enum J {
    Null,
    Bool(bool),
    Number(&'static str),
    String(String),
    List(Vec<J>),
    Object(Vec<(String, J)>),
}

/// Writes `j` as JSON text, each choice (whitespace, how each character of a string or key is
/// written) taken from `style`.
pub(crate) fn render(j: &J, style: &mut impl FnMut() -> u8, out: &mut String) {
    let space = |style: &mut dyn FnMut() -> u8, out: &mut String| {
        out.push_str(["", "", "", " ", "\n", "\t ", "\r\n  "][usize::from(style()) % 7]);
    };
    space(style, out);
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(n),
        J::String(s) => quoted(s, style, out),
        J::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, style, out);
            }
            space(style, out);
            out.push(']');
        }
        J::Object(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(style, out);
                quoted(key, style, out);
                space(style, out);
                out.push(':');
                render(value, style, out);
            }
            space(style, out);
            out.push('}');
        }
    }
    space(style, out);
}

/// `s` as a JSON string, each character written as itself, `\u` escaped (a surrogate pair
/// beyond the BMP) or, for `/`, `"` and `\`, with its short escape.
fn quoted(s: &str, style: &mut impl FnMut() -> u8, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let how = style() % 4;
        match c {
            '"' | '\\' | '/' if how < 2 => {
                out.push('\\');
                out.push(c);
            }
            c if how == 3 || c < ' ' || c == '"' || c == '\\' => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The strings and keys that generated values are made of, besides random ones.
#[derive(Clone, Copy)]
pub(crate) struct Words {
    /// Strings the reader under test looks for (images, kinds, globs, ...).
    pub texts: &'static [&'static str],
    /// Keys it looks for, and near misses.
    pub keys: &'static [&'static str],
}

impl Words {
    /// One of the texts, or a short random string with characters that need escapes.
    pub(crate) fn text(self) -> BoxedStrategy<String> {
        prop_oneof![
            5 => prop::sample::select(self.texts).prop_map(str::to_owned),
            1 => "[a-z\"\\\\/é😀\u{0}\n]{0,6}",
        ]
        .boxed()
    }

    /// One of the keys, or a short random one.
    pub(crate) fn key(self) -> BoxedStrategy<String> {
        prop_oneof![
            8 => prop::sample::select(self.keys).prop_map(str::to_owned),
            1 => "[a-z\"\\\\é]{0,4}",
        ]
        .boxed()
    }

    /// Any JSON value, sometimes deeply nested.
    pub(crate) fn junk(self) -> BoxedStrategy<J> {
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            prop_oneof![Just("0"), Just("-1.5"), Just("1e3"), Just("12345678901234567890123")].prop_map(J::Number),
            self.text().prop_map(J::String),
        ];
        let tree = leaf.prop_recursive(3, 12, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::List),
                prop::collection::vec((self.key(), inner), 0..4).prop_map(J::Object),
            ]
        });
        let deep_key = self.keys.first().copied().unwrap_or("x");
        prop_oneof![
            12 => tree,
            1 => (1..60usize, any::<bool>()).prop_map(move |(depth, objects)| {
                (0..depth).fold(J::String("r.io/deep".to_owned()), |inner, _| {
                    if objects {
                        J::Object(vec![(deep_key.to_owned(), inner)])
                    } else {
                        J::List(vec![inner])
                    }
                })
            }),
        ]
        .boxed()
    }

    /// Mostly an object with the members `keys` (each any number of times, in any order) among
    /// other members; sometimes any value.
    pub(crate) fn object_with(self, keys: Vec<(&'static str, BoxedStrategy<J>)>) -> BoxedStrategy<J> {
        let mut members: Vec<(u32, BoxedStrategy<(String, J)>)> = keys
            .into_iter()
            .map(|(key, value)| (3, value.prop_map(move |v| (key.to_owned(), v)).boxed()))
            .collect();
        members.push((1, (self.key(), self.junk()).boxed()));
        let member = prop::strategy::Union::new_weighted(members);
        prop_oneof![
            8 => prop::collection::vec(member, 0..6).prop_map(J::Object),
            1 => self.junk(),
        ]
        .boxed()
    }

    /// Mostly an object with each of the members `keys` at most once, in any order, sometimes
    /// with another member; sometimes [`Words::object_with`] (keys repeated), sometimes any
    /// value.
    pub(crate) fn record(self, keys: Vec<(&'static str, BoxedStrategy<J>)>) -> BoxedStrategy<J> {
        let members: Vec<BoxedStrategy<Option<(String, J)>>> = keys
            .iter()
            .cloned()
            .map(|(key, value)| prop::option::weighted(0.6, value.prop_map(move |v| (key.to_owned(), v))).boxed())
            .collect();
        let once = (members, prop::option::weighted(0.1, (self.key(), self.junk())))
            .prop_map(|(members, other)| members.into_iter().flatten().chain(other).collect::<Vec<_>>())
            .prop_shuffle()
            .prop_map(J::Object);
        prop_oneof![8 => once, 1 => self.object_with(keys)].boxed()
    }

    /// Mostly a list of `item`s; sometimes any value.
    pub(crate) fn list_of(self, item: BoxedStrategy<J>) -> BoxedStrategy<J> {
        prop_oneof![6 => prop::collection::vec(item, 0..4).prop_map(J::List), 1 => self.junk()].boxed()
    }
}
