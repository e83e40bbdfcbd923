//! Rego's `regex.match` and `regex.is_valid`, as `cip` answers `cluster-image-policy/policy/v1/rego`,
//! against Go's own `regexp` (OPA's, policy-controller's): for generated patterns built from
//! what Rust's `regex` and Go read differently, and texts built from the characters where they
//! differ, a pattern `regex.is_valid` accepts matches the texts Go matches, and one Go refuses
//! is refused too.
//!
//! Go's `regexp` runs in `scripts/go-regexp-match.go`, built by `make test-tools` (part of `make
//! test`); without it the test fails, it is never skipped.

use std::collections::BTreeMap;

use cip::capabilities::Capabilities;
use serde_json::{Value, json};

/// Patterns per run; `REGO_GO_REGEX_CASES` raises it for a longer search.
const CASES: usize = 3000;

/// `{"valid": false}`, or `{"valid": true, "matches": [bool]}` with one `regex.match` per text,
/// in a warning (a compliant answer's only free text).
const POLICY: &str = r#"package sigstore

result = {"valid": false} {
  not regex.is_valid(input.pattern)
}

result = {"valid": true, "matches": [regex.match(input.pattern, t) | t := input.texts[_]]} {
  regex.is_valid(input.pattern)
}

isCompliant[{"result": true, "warning": json.marshal(result)}] {
  true
}
"#;

/// What `cip`'s Rego capability answers for a case.
enum Rego {
    /// `regex.is_valid` is false.
    Invalid,
    /// `regex.is_valid` fails: the pattern compiles to more than regorus' size limit.
    TooBig,
    /// One `regex.match` per text.
    Matches(Vec<bool>),
}

fn rego(capabilities: &Capabilities, pattern: &str, texts: &[String]) -> Rego {
    let input = json!({"pattern": pattern, "texts": texts});
    let payload = serde_json::to_vec(&json!({"policy": POLICY, "input": input})).unwrap();
    let answer = match capabilities.dispatch(
        "rego-go-regex",
        None,
        "cluster-image-policy",
        "policy",
        "v1/rego",
        &payload,
    ) {
        Ok(answer) => answer,
        Err(e) if e.to_string().contains("compiles to more than the 100 KiB allowed") => return Rego::TooBig,
        Err(e) => panic!("{pattern:?}: the Rego capability failed: {e}"),
    };
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["compliant"], true, "{answer}");
    let result: Value = serde_json::from_str(answer["warning"].as_str().expect("the result")).unwrap();
    if result["valid"] != true {
        return Rego::Invalid;
    }
    Rego::Matches(
        result["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| m == true)
            .collect(),
    )
}

#[test]
fn regex_match_in_rego_matches_what_go_matches() {
    let count = testkit::case_count("REGO_GO_REGEX_CASES", CASES);
    // The same cases on every run.
    let cases = testkit::regexp_cases(count, 0x9E37_79B9_7F4A_7C15);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let references = testkit::go_matches(&cases).expect("Go's regexp answers");
    for ((pattern, texts), reference) in cases.iter().zip(references) {
        let outcome = match (rego(&capabilities, pattern, texts), reference) {
            (Rego::Matches(matches), Ok(expected)) => {
                for ((text, ours), expected) in texts.iter().zip(matches).zip(expected) {
                    assert_eq!(
                        ours, expected,
                        "regex.match({pattern:?}, {text:?}) is {ours}, Go says {expected}"
                    );
                }
                "both accept, same matches"
            }
            (Rego::Matches(_), Err(refusal)) => {
                panic!("regex.is_valid({pattern:?}) holds, Go refuses it: {refusal}")
            }
            (Rego::TooBig, Ok(_)) => "too large for regorus' size limit",
            (Rego::TooBig, Err(_)) => "both refuse (too large here)",
            (Rego::Invalid, Ok(_)) => "refused by us alone",
            (Rego::Invalid, Err(_)) => "both refuse",
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
