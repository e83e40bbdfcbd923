//! The size and the seed of a test that generates its cases (the differential tests against
//! Go's `regexp` and real CUE): both from the environment when set, so that a longer search or
//! a failed run can be replayed.

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
