//! The size and the seed of a test that generates its cases (the differential tests against
//! Go's `regexp`, real CUE and Go's `encoding/json`): both from the environment when set, so
//! that a longer search or a failed run can be replayed; and the generator they draw from.

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
