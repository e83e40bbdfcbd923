//! Go's own `regexp` (`scripts/go-regexp-match.go`, built by `make test-tools` with Debian's
//! `golang-go`), the engine policy-controller, cosign, CUE and OPA match with, as the reference
//! our Go-reading regular expressions are compared with (go-regexp's tests, the Rego regex
//! builtins' tests): the cases both compare, generated from what Rust's `regex` and Go read
//! differently, and the runner, which answers a batch of them in one process.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::run::ask_test_tool;

/// What Go's `regexp` answers for each `(pattern, texts)`: `Err(its message)` when
/// `regexp.Compile` refuses the pattern, else `MatchString` on each text. The runner missing
/// from the test tools is an error, never a skipped comparison.
pub fn go_matches(cases: &[(String, Vec<String>)]) -> anyhow::Result<Vec<Result<Vec<bool>, String>>> {
    let requests: Vec<Value> = cases
        .iter()
        .map(|(pattern, texts)| json!({ "pattern": pattern, "texts": texts }))
        .collect();
    ask_test_tool("go-regexp-match", &requests, Duration::from_secs(300))?
        .iter()
        .map(|line| {
            let answer: Value = serde_json::from_str(line).with_context(|| format!("Go's regexp answered {line:?}"))?;
            Ok(
                match (answer.get("error"), answer.get("matches").and_then(Value::as_array)) {
                    (Some(error), _) => Err(error.as_str().unwrap_or_default().to_owned()),
                    (None, Some(matches)) => Ok(matches.iter().map(|m| m == true).collect()),
                    (None, None) => bail!("Go's regexp answered neither error nor matches: {line}"),
                },
            )
        })
        .collect()
}

/// The pieces of generated patterns: what Rust's `regex` and Go read differently (Perl classes,
/// word boundaries, `\pC`, scripts, case folding, set operations, nested classes, flags), the
/// syntax around them, what Go refuses and `regex` reads (repetitions of repetitions, counts
/// above 1000, class names spelled loosely), and broken syntax.
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
    // A `-` or `]` inside a class as Go reads it (go-regexp/src/classes.rs rewrites them).
    r"[\w-.]",
    r"[\d-z]",
    r"[--a]",
    r"[]-a]",
    r"[^]-a]",
    r"[\pL-z]",
    r"[[:alpha:]-z]",
    r"[a-c-e]",
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
    r"\p{GREEK}",
    r"\p{greek}",
    r"\p{Old_Italic}",
    r"\p{OldItalic}",
    r"\p{Latin}",
    r"\p{^Greek}",
    r"\P{^Greek}",
    "(a{40}){30}",
    "(?:a{10}){100}",
    "(?:a{2}|b{600})",
    "x{,3}",
    "x{2,1}",
    "{",
    r"\Q.\E",
    r"\0",
];
const QUANTIFIERS: &[&str] = &[
    "", "", "*", "+", "?", "*?", "{2}", "{1,3}", "{0,1000}", "{1001}", "{3,}",
];
/// The characters of generated texts: those where the two differ (U+0663 ARABIC-INDIC DIGIT
/// THREE, U+212A KELVIN SIGN, U+017F LONG S, `\v`, NBSP, unassigned U+0378, private use, U+0345
/// Greek by extension only) and plain ones.
const CHARACTERS: &[char] = &[
    'a', 'b', 'k', 'K', '\u{212A}', 's', 'S', '\u{17F}', 'é', 'É', 'λ', 'Λ', '\u{663}', '1', '_', ' ', '\t', '\n',
    '\u{B}', '\u{C}', '\r', '\u{A0}', '\u{2028}', '&', '-', '~', '[', ']', '/', '.', '\u{378}', '\u{E000}', '\u{345}',
    '\u{200B}', '☃', 'x', '{', '}', ',', '3', '\0',
];

/// `count` cases `(pattern, texts)` drawn from `seed`: one or two branches of up to four
/// quantified [`ATOMS`], and one to five texts of up to nine [`CHARACTERS`]. The same seed gives
/// the same cases.
pub fn regexp_cases(count: usize, seed: u64) -> Vec<(String, Vec<String>)> {
    let mut random = XorShift(seed | 1);
    (0..count)
        .map(|_| {
            let branches = 1 + random.below(2);
            let pattern = (0..branches)
                .map(|_| {
                    (0..random.below(5))
                        .map(|_| format!("{}{}", random.pick(ATOMS), random.pick(QUANTIFIERS)))
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("|");
            let texts = (0..1 + random.below(5))
                .map(|_| (0..random.below(10)).map(|_| *random.pick(CHARACTERS)).collect())
                .collect();
            (pattern, texts)
        })
        .collect()
}

/// xorshift64*: no dependency, and a case reproduced from its seed.
struct XorShift(u64);

impl XorShift {
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
}
