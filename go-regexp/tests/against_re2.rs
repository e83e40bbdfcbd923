//! go-regexp against RE2 (PyPI `google-re2`), the engine Go's `regexp` reproduces: for generated
//! patterns built from what `regex` and Go read differently, and texts built from the
//! characters where they differ, a pattern both accept matches the same texts.
//!
//! RE2 comes from the test tools' venv (`make test-tools`, part of `make test`); without it
//! the test fails, it is never skipped.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Cases per run; `GO_REGEXP_CASES` raises it for a longer search.
const CASES: usize = 4000;

fn pattern() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        "a",
        "b",
        "k",
        "s",
        "é",
        "λ",
        "_",
        "-",
        "&",
        "~",
        ".",
        "[^/]",
        "[a-c]",
        r"\w",
        r"\W",
        r"\d",
        r"\D",
        r"\s",
        r"\S",
        r"[\w-]",
        r"[^\d\s]",
        r"[\D]",
        r"[^\W_]",
        r"\pL",
        r"\PL",
        r"\pC",
        r"\PC",
        r"[\pC]",
        r"[^\PC]",
        r"\p{Greek}",
        r"\P{Greek}",
        r"\p{Lu}",
        r"\p{Nd}",
        r"\p{Any}",
        r"\pN",
        r"\b",
        r"\B",
        "^",
        "$",
        r"\A",
        r"\z",
        r"\.",
        "/",
        "(?i)",
        "(?s)",
        "(?m)",
        "(?U)",
        "(?i:k)",
        "(?-i)",
        "(",
        ")",
        "[",
        "]",
        "*",
        r"\",
        "|",
        " ",
        "\n",
        r"\x{212A}",
        r"\x41",
        r"\v",
        r"\f",
        "[[:word:]]",
        "[[:^digit:]]",
        "[[:space:]]",
        "[a&&b]",
        "[a--b]",
        "[a[b]]",
        r"\<",
        r"\u0041",
        "(?x)",
        r"\p{Letter}",
    ]);
    let piece = (
        atom,
        prop::sample::select(vec!["", "", "*", "+", "?", "*?", "{2}", "{1,3}"]),
    )
        .prop_map(|(a, q)| format!("{a}{q}"));
    let branch = prop::collection::vec(piece, 0..5).prop_map(|p| p.concat());
    prop::collection::vec(branch, 1..3).prop_map(|branches| branches.join("|"))
}

fn haystack() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'b', 'k', 'K', '\u{212A}', 's', 'S', '\u{17F}', 'é', 'É', 'λ', 'Λ', '\u{663}', '1', '_', ' ', '\t',
            '\n', '\u{B}', '\u{C}', '\r', '\u{A0}', '\u{2028}', '&', '-', '~', '[', ']', '/', '.', '\u{378}',
            '\u{E000}', '\u{345}', '\u{200B}', '☃', 'x',
        ]),
        0..10,
    )
    .prop_map(|c| c.into_iter().collect())
}

/// Where RE2 refuses what we accept, the pattern must be one that `regex` and Go could only read
/// one way: a repetition of a repetition (`a**`, `a{2}*`), which Go refuses as a matter of style.
fn harmless_go_refusal(message: &str) -> bool {
    message.starts_with("bad repetition operator")
}

#[test]
fn patterns_both_accept_match_the_same_texts() {
    let count = std::env::var("GO_REGEXP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::default();
    let strategy = (pattern(), prop::collection::vec(haystack(), 1..6));
    let cases: Vec<(String, Vec<String>)> = (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect();
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
