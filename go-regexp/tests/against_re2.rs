//! go-regexp against RE2 (PyPI `google-re2`), the engine Go's `regexp` reproduces: for generated
//! patterns built from what `regex` and Go read differently, and texts built from the
//! characters where they differ, a pattern both accept matches the same texts.
//!
//! RE2 comes from the test tools' venv (`make test-tools`, part of `make test`); without it
//! the test fails, it is never skipped.

use std::collections::BTreeMap;

use std::hash::{BuildHasher, RandomState};

use testkit::harmless_go_refusal;

/// Cases per run; `GO_REGEXP_CASES` raises it for a longer search. Each run draws new cases
/// (`GO_REGEXP_SEED` gives a run's cases again).
const CASES: usize = 4000;

#[test]
fn patterns_both_accept_match_the_same_texts() {
    let count = std::env::var("GO_REGEXP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let seed = std::env::var("GO_REGEXP_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()));
    println!("GO_REGEXP_SEED={seed}");
    let cases = testkit::regexp_cases(count, seed);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for ((pattern, texts), reference) in cases.iter().zip(testkit::re2_matches(&cases).expect("RE2 answers")) {
        let ours = go_regexp::to_regex(pattern)
            .map_err(|e| e.to_string())
            .and_then(|printed| regex::Regex::new(&printed).map_err(|e| e.to_string()));
        let outcome = match (&ours, &reference) {
            (Ok(regex), Ok(matches)) => {
                for (text, expected) in texts.iter().zip(matches) {
                    assert_eq!(
                        regex.is_match(text),
                        *expected,
                        "{pattern:?} (read as {:?}) on {text:?}: RE2 says {expected}",
                        regex.as_str()
                    );
                }
                "both accept, same matches"
            }
            (Ok(regex), Err(refusal)) => {
                assert!(
                    harmless_go_refusal(refusal),
                    "{pattern:?} (read as {:?}) is refused by RE2 only: {refusal}",
                    regex.as_str()
                );
                "RE2 alone refuses a repetition of a repetition"
            }
            (Err(_), Ok(_)) => "refused by us alone",
            (Err(_), Err(_)) => "both refuse",
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("{count} patterns: {outcomes:?}");
    // The generator must keep reaching the interesting case.
    assert!(
        outcomes.get("both accept, same matches").copied().unwrap_or(0) > count / 10,
        "{outcomes:?}"
    );
}
