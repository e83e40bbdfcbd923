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
