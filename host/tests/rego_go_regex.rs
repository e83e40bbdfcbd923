//! Rego's `regex.match` and `regex.is_valid`, as `cip` answers `cluster-image-policy/policy/v1/rego`,
//! against RE2 (PyPI `google-re2`), the engine Go's `regexp` (OPA's, policy-controller's)
//! reproduces: for generated patterns built from what Rust's `regex` and Go read differently,
//! and texts built from the characters where they differ, a pattern `regex.is_valid` accepts
//! matches the texts RE2 matches, and one RE2 refuses is refused too (but for the repetitions
//! of a repetition, `a**`, which Go refuses and both read alike).
//!
//! RE2 comes from the test tools' venv (`make test-tools`, part of `make test`); without it
//! the test fails, it is never skipped.

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

const ATOMS: &[&str] = &[
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
    r"\p{Greek}",
    r"\p{Lu}",
    r"\p{Nd}",
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
    r"\v",
    r"\f",
    "[[:word:]]",
    "[[:^digit:]]",
    "[a&&b]",
    "[a--b]",
    "[a[b]]",
    r"\u0041",
    "(?x)",
    r"\p{Letter}",
];
const QUANTIFIERS: &[&str] = &["", "", "", "*", "+", "?", "*?", "{2}", "{1,3}"];
const CHARACTERS: &[char] = &[
    'a', 'b', 'k', 'K', '\u{212A}', 's', 'S', '\u{17F}', 'é', 'É', 'λ', 'Λ', '\u{663}', '1', '_', ' ', '\t', '\n',
    '\u{B}', '\u{C}', '\r', '\u{A0}', '\u{2028}', '&', '-', '~', '[', ']', '/', '.', '\u{378}', '\u{E000}', '\u{345}',
    '\u{200B}', '☃', 'x',
];

/// xorshift64*: the same cases on every run.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        usize::try_from(value).expect("32 bits") % bound
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn pattern(&mut self) -> String {
        let branches = 1 + self.below(2);
        (0..branches)
            .map(|_| {
                (0..self.below(5))
                    .map(|_| format!("{}{}", self.pick(ATOMS), self.pick(QUANTIFIERS)))
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("|")
    }

    fn texts(&mut self) -> Vec<String> {
        (0..1 + self.below(5))
            .map(|_| (0..self.below(10)).map(|_| *self.pick(CHARACTERS)).collect())
            .collect()
    }
}

struct Case {
    pattern: String,
    texts: Vec<String>,
}

/// What `cip`'s Rego capability answers for a case.
enum Rego {
    /// `regex.is_valid` is false.
    Invalid,
    /// `regex.is_valid` fails: the pattern compiles to more than regorus' size limit.
    TooBig,
    /// One `regex.match` per text.
    Matches(Vec<bool>),
}

fn rego(capabilities: &Capabilities, case: &Case) -> Rego {
    let input = json!({"pattern": case.pattern, "texts": case.texts});
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
        Err(e) => panic!("{:?}: the Rego capability failed: {e}", case.pattern),
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

/// Where RE2 refuses what we accept, the pattern must be one that Rust's `regex` and Go could only
/// read one way: a repetition of a repetition (`a**`, `a{2}*`), which Go refuses as a matter of
/// style.
fn harmless_go_refusal(message: &str) -> bool {
    message.starts_with("bad repetition operator")
}

#[test]
fn regex_match_in_rego_matches_what_re2_matches() {
    let count = std::env::var("REGO_GO_REGEX_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let cases: Vec<Case> = (0..count)
        .map(|_| Case {
            pattern: random.pattern(),
            texts: random.texts(),
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let asked: Vec<(String, Vec<String>)> = cases.iter().map(|c| (c.pattern.clone(), c.texts.clone())).collect();
    let references = testkit::re2_matches(&asked).expect("RE2 answers");
    for (case, reference) in cases.iter().zip(references) {
        let pattern = &case.pattern;
        let outcome = match (rego(&capabilities, case), reference) {
            (Rego::Matches(matches), Ok(expected)) => {
                for ((text, ours), expected) in case.texts.iter().zip(matches).zip(expected) {
                    assert_eq!(
                        ours, expected,
                        "regex.match({pattern:?}, {text:?}) is {ours}, RE2 says {expected}"
                    );
                }
                "both accept, same matches"
            }
            (Rego::Matches(_), Err(refusal)) => {
                assert!(
                    harmless_go_refusal(&refusal),
                    "regex.is_valid({pattern:?}) holds, RE2 refuses it: {refusal}"
                );
                "RE2 alone refuses a repetition of a repetition"
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
