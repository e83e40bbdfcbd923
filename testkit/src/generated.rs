//! The size and the seed of a test that generates its cases (the differential tests against
//! Go's `regexp`, real CUE and Go's `encoding/json`): both from the environment when set, so
//! that a longer search or a failed run can be replayed; the generator they draw from, and the
//! JSON texts they build, in parts that shrink.

use std::hash::{BuildHasher, RandomState};

/// The number of cases a run generates: `$name` when it is set to a number, else `default`.
pub fn case_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// The seed of a run: `$name` when it is set to a number, else `default`, else a new one each
/// run. Printed as `name=seed`, so that a failed run can be given again.
pub fn run_seed(name: &str, default: Option<u64>) -> u64 {
    let seed = std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .or(default)
        .unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()));
    println!("{name}={seed}");
    seed
}

/// SplitMix64: a small seeded generator, the same sequence for a seed on every platform.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A JSON text in parts, so that a difference can be shrunk: a literal as written, a list, or
/// an object (members in the order written).
#[derive(Clone, Debug)]
pub enum JsonParts {
    Lit(String),
    List(Vec<JsonParts>),
    Obj(Vec<(String, JsonParts)>),
}

impl JsonParts {
    /// A JSON string literal of `s`.
    pub fn string(s: &str) -> Self {
        Self::Lit(serde_json::Value::from(s).to_string())
    }

    /// The JSON text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Lit(lit) => out.push_str(lit),
            Self::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Obj(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(key.as_str()).to_string());
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// The smallest text reached from this one by removing members and items for as long as
    /// `still` finds one of the candidates (each with one member or item fewer) that still shows
    /// what is being shrunk: it is given them all at once (one batch to a reference tool) and
    /// answers the index of the first that does.
    pub fn smallest(&self, mut still: impl FnMut(&[Self]) -> Option<usize>) -> Self {
        let mut smallest = self.clone();
        loop {
            let mut candidates = smallest.shrinks();
            match still(&candidates) {
                Some(index) => smallest = candidates.swap_remove(index),
                None => return smallest,
            }
        }
    }

    /// Each text with one member or item fewer, anywhere.
    pub fn shrinks(&self) -> Vec<Self> {
        let mut out = Vec::new();
        match self {
            Self::Lit(_) => {}
            Self::List(items) => {
                for i in 0..items.len() {
                    let mut fewer = items.clone();
                    fewer.remove(i);
                    out.push(Self::List(fewer));
                }
                for (i, item) in items.iter().enumerate() {
                    for smaller in item.shrinks() {
                        let mut items = items.clone();
                        items[i] = smaller;
                        out.push(Self::List(items));
                    }
                }
            }
            Self::Obj(members) => {
                for i in 0..members.len() {
                    let mut fewer = members.clone();
                    fewer.remove(i);
                    out.push(Self::Obj(fewer));
                }
                for (i, (_, value)) in members.iter().enumerate() {
                    for smaller in value.shrinks() {
                        let mut members = members.clone();
                        members[i].1 = smaller;
                        out.push(Self::Obj(members));
                    }
                }
            }
        }
        out
    }
}

/// `key` folded as Go's `encoding/json` folds a key to match it with a field name
/// (`bytes.EqualFold`, Unicode simple folding): the field names are ASCII, and the only other
/// characters folding to ASCII letters are U+017F LONG S (`s`) and U+212A KELVIN SIGN (`k`).
/// The tests' own model, kept apart from the module's.
pub fn go_fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{JsonParts, go_fold};

    #[test]
    fn smallest_keeps_only_what_still_shows_the_difference() {
        let text = JsonParts::Obj(vec![
            (
                "a".to_owned(),
                JsonParts::List(vec![JsonParts::Lit("1".to_owned()), JsonParts::string("x")]),
            ),
            ("b".to_owned(), JsonParts::Lit("true".to_owned())),
        ]);
        let mut batches = 0;
        let smallest = text.smallest(|candidates| {
            batches += 1;
            candidates.iter().position(|c| c.text().contains("\"x\""))
        });
        assert_eq!(smallest.text(), r#"{"a":["x"]}"#);
        assert_eq!(batches, 3, "one batch per removal, and one that finds none");
    }

    #[test]
    fn keys_fold_as_go_folds_them() {
        assert_eq!(go_fold("U\u{17F}er"), go_fold("user"));
        assert_eq!(go_fold("\u{212A}ind"), "kind");
        assert_ne!(go_fold("\u{131}d"), go_fold("id"));
    }
}
