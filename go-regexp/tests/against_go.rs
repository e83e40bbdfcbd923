//! go-regexp against Go's own `regexp` (policy-controller's): for generated patterns built from
//! what `regex` and Go read differently, and texts built from the characters where they differ,
//! a pattern Go refuses is refused, and a pattern both accept matches the same texts. (We refuse
//! some patterns Go accepts, on purpose: those it reads otherwise than a reader of Rust's
//! `regex` or PCRE expects, docs/policies.md.)
//!
//! Go's `regexp` runs in `scripts/go-regexp-match.go`, built by `make test-tools` (part of `make
//! test`); without it the test fails, it is never skipped.

use std::collections::BTreeMap;

/// Cases per run; `GO_REGEXP_CASES` raises it for a longer search. Each run draws new cases
/// (`GO_REGEXP_SEED` gives a run's cases again).
const CASES: usize = 4000;

#[test]
fn patterns_both_accept_match_the_same_texts() {
    let count = testkit::case_count("GO_REGEXP_CASES", CASES);
    let seed = testkit::run_seed("GO_REGEXP_SEED", None);
    let cases = testkit::regexp_cases(count, seed);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    // Our reason for each refusal Go does not share, with a pattern refused for it.
    let mut refused_alone: BTreeMap<String, String> = BTreeMap::new();
    for ((pattern, texts), reference) in cases
        .iter()
        .zip(testkit::go_matches(&cases).expect("Go's regexp answers"))
    {
        // Why we refuse: the construct go-regexp names, or what `regex` refuses.
        let ours = match go_regexp::to_regex(pattern) {
            Ok(printed) => regex::Regex::new(&printed).map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => "regex: larger than its size limit".to_owned(),
                e => format!("regex: {e}"),
            }),
            Err(go_regexp::Error::NotGo { construct, .. }) => Err(construct),
            Err(go_regexp::Error::Syntax(e)) => Err(format!("regex_syntax: {:?}", e.kind())),
        };
        let outcome = match (&ours, &reference) {
            (Ok(regex), Ok(matches)) => {
                for (text, expected) in texts.iter().zip(matches) {
                    assert_eq!(
                        regex.is_match(text),
                        *expected,
                        "{pattern:?} (read as {:?}) on {text:?}: Go says {expected}",
                        regex.as_str()
                    );
                }
                "both accept, same matches"
            }
            (Ok(regex), Err(refusal)) => {
                panic!(
                    "{pattern:?} (read as {:?}) is accepted here, Go refuses it: {refusal}",
                    regex.as_str()
                )
            }
            (Err(ours), Ok(_)) => {
                refused_alone.entry(ours.clone()).or_insert_with(|| pattern.clone());
                "refused by us alone"
            }
            (Err(_), Err(_)) => "both refuse",
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("{count} patterns: {outcomes:?}");
    for (reason, pattern) in &refused_alone {
        println!("refused here, accepted by Go: {pattern:?}: {reason}");
    }
    // The generator must keep reaching the interesting case.
    assert!(
        outcomes.get("both accept, same matches").copied().unwrap_or(0) > count / 10,
        "{outcomes:?}"
    );
}
