//! Rego policies, evaluated by the host with regorus (`cip` implements
//! [`CIP_POLICY_REGO`]; a stock Kubewarden host does not, and such a policy then fails
//! naming the missing capability).
//!
//! As policy-controller: Rego v0 syntax, `package sigstore`, the decision
//! `data.sigstore.isCompliant`, either a boolean or a set of
//! `{"result": bool, "error": string, "warning": string}` objects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::{Capability, HostCalls};
use crate::policy::numbers;

/// Our Rego evaluation, implemented by `cip` only.
pub const CIP_POLICY_REGO: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "policy",
    operation: "v1/rego",
};

/// The request of [`CIP_POLICY_REGO`].
#[derive(Debug, Serialize)]
pub struct RegoRequest<'a> {
    pub policy: &'a str,
    pub input: &'a Value,
}

/// The answer of [`CIP_POLICY_REGO`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RegoAnswer {
    /// Whether `isCompliant` holds.
    pub compliant: bool,
    /// Why not, as policy-controller words it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A warning of a compliant (or not) result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A Rego policy: its text, checked for `package sigstore` (the host compiles it).
#[derive(Debug)]
pub struct RegoPolicy {
    text: String,
}

impl RegoPolicy {
    /// Checks what the module can: the package clause policy-controller queries, number
    /// literals regorus would round ([`first_rounded_literal`]), and Rego v1 keywords used
    /// without their import ([`first_keyword_without_import`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        // regorus stops reading at a NUL (what follows is never parsed: `isCompliant = true`
        // then NUL then anything compiles); OPA's scanner refuses it.
        if let Some(at) = text.find('\0') {
            let line = text[..at].matches('\n').count() + 1;
            return Err(format!(
                "line {line}: the text holds a NUL character, after which regorus reads nothing (OPA refuses it); remove it"
            ));
        }
        if let Some((line, column, number)) = first_rounded_literal(text) {
            let held = number.parse::<f64>().unwrap_or(f64::NAN);
            let why = if numbers::f64_keeps(number) {
                // Whole from 2^53 on, held as another integer.
                format!(
                    "regorus holds it as {}, where OPA (policy-controller) compares the number written; \
                     write it without a fraction (regorus keeps integer literals exact)",
                    held as i128
                )
            } else {
                format!(
                    "it has more digits than a 64-bit float keeps: regorus reads it as {}, where OPA \
                     (policy-controller) compares it exactly; write that instead",
                    numbers::kept_form(held)
                )
            };
            return Err(format!("line {line}, column {column}: the number `{number}`: {why}"));
        }
        if let Some((line, column, keyword)) = first_keyword_without_import(text) {
            return Err(format!(
                "line {line}, column {column}: `{keyword}` is a keyword only after `import future.keywords.{keyword}` \
                 (or `import future.keywords`, or `import rego.v1`): without it Rego v0, which policy-controller's OPA \
                 and cip read, takes it for a name, so that `isCompliant if {{ false }}` defines a rule `isCompliant` \
                 that holds and a rule named `if`; add the import (or, if the word is meant as a name, rename it)"
            ));
        }
        let package = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .find(|l| !l.is_empty());
        match package.map(|l| l.split_whitespace().collect::<Vec<_>>()) {
            Some(words) if words.len() == 2 && words[0] == "package" && words[1] == "sigstore" => {
                Ok(Self { text: text.to_owned() })
            }
            Some(words) if words.first() == Some(&"package") => Err(format!(
                "the package is `{}`: it must be `package sigstore` (the decision is data.sigstore.isCompliant)",
                words[1..].join(" ")
            )),
            _ => Err(
                "the policy must begin with `package sigstore` (the decision is data.sigstore.isCompliant)".to_owned(),
            ),
        }
    }

    /// Asks the host to evaluate the policy over `input` (read by `policy::numbers`, so that its
    /// numbers are exact as floats).
    pub fn evaluate(&self, input: &Value, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let payload = serde_json::to_vec(&RegoRequest {
            policy: &self.text,
            input,
        })
        .map_err(|e| format!("cannot encode the Rego request: {e}"))?;
        let answer = host
            .call(CIP_POLICY_REGO, &payload)
            .map_err(|e| format!("needs host capability {CIP_POLICY_REGO} (the cip host): {e}"))?;
        let answer: RegoAnswer = serde_json::from_slice(&answer)
            .map_err(|e| format!("unreadable answer from host capability {CIP_POLICY_REGO}: {e}"))?;
        if answer.compliant {
            Ok(answer.warning.filter(|w| !w.is_empty()))
        } else {
            Err(answer
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "data.sigstore.isCompliant is not true".to_owned()))
        }
    }
}

/// What [`Tokens`] yields of a Rego text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A name (`isCompliant`, `input`, `if`): a letter or `_`, then letters, digits and `_`.
    Name,
    /// A number literal as regorus' lexer reads it: a digit (or `.` before one), digits and
    /// `.`, then an optional exponent.
    Number,
    /// `.` not before a digit.
    Dot,
    /// Any other character.
    Other,
}

/// One token: its kind, its text, and where it starts (line and column from 1, the column in
/// characters).
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    start: usize,
    end: usize,
    line: usize,
    column: usize,
}

/// The tokens of a Rego text outside strings, raw strings and comments, whitespace skipped: the
/// little of regorus' lexer the settings checks below need.
struct Tokens<'a> {
    text: &'a str,
    i: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            i: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.i + 1;
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let b = self.text.as_bytes();
        let name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        while self.i < b.len() {
            let start = self.i;
            let kind = match b[start] {
                b'\n' => {
                    self.newline();
                    self.i += 1;
                    continue;
                }
                // A string ends at its quote or at the end of its line (an escaped character is
                // skipped, an escaped line end is not).
                b'"' => {
                    self.i += 1;
                    while self.i < b.len() && !matches!(b[self.i], b'"' | b'\n') {
                        self.i += if b[self.i] == b'\\' && b.get(self.i + 1) != Some(&b'\n') {
                            2
                        } else {
                            1
                        };
                    }
                    self.i += usize::from(self.i < b.len() && b[self.i] == b'"');
                    continue;
                }
                b'`' => {
                    self.i += 1;
                    while self.i < b.len() && b[self.i] != b'`' {
                        if b[self.i] == b'\n' {
                            self.newline();
                        }
                        self.i += 1;
                    }
                    self.i += 1;
                    continue;
                }
                b'#' => {
                    while self.i < b.len() && b[self.i] != b'\n' {
                        self.i += 1;
                    }
                    continue;
                }
                c if c.is_ascii_whitespace() => {
                    self.i += 1;
                    continue;
                }
                c if c.is_ascii_digit() || (c == b'.' && b.get(start + 1).is_some_and(u8::is_ascii_digit)) => {
                    while self.i < b.len() && (b[self.i].is_ascii_digit() || b[self.i] == b'.') {
                        self.i += 1;
                    }
                    if self.i < b.len() && matches!(b[self.i], b'e' | b'E') {
                        self.i += 1 + usize::from(b.get(self.i + 1).is_some_and(|c| matches!(c, b'+' | b'-')));
                        while self.i < b.len() && b[self.i].is_ascii_digit() {
                            self.i += 1;
                        }
                    }
                    Kind::Number
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    while self.i < b.len() && name(b[self.i]) {
                        self.i += 1;
                    }
                    Kind::Name
                }
                b'.' => {
                    self.i += 1;
                    Kind::Dot
                }
                _ => {
                    // A whole character, so that the text stays sliced on boundaries.
                    self.i += self.text[start..].chars().next().map_or(1, char::len_utf8);
                    Kind::Other
                }
            };
            let end = self.i.min(b.len());
            return Some(Token {
                kind,
                text: &self.text[start..end],
                start,
                end,
                line: self.line,
                column: self.text[self.line_start..start].chars().count() + 1,
            });
        }
        None
    }
}

/// The first number literal of a Rego text that regorus reads as a float other than the decimal
/// written (`7.0000000000000001`, read as 7.0), with its line and column (from 1). regorus reads
/// integers (`9007199254740993`, `1e3`) exactly and floats as the nearest f64; OPA compares
/// numbers exactly, so `x >= 7.0000000000000001` would admit 7 here only. Numbers are read as
/// regorus' lexer reads them (a digit, or `-`/`.` before one, outside identifiers, strings,
/// raw strings and comments).
fn first_rounded_literal(text: &str) -> Option<(usize, usize, &str)> {
    Tokens::new(text)
        .filter(|token| token.kind == Kind::Number)
        .find(|token| {
            let number = token.text;
            let integer = number.bytes().all(|c| c.is_ascii_digit());
            !integer && !rounds_to_an_integer(number) && !float_is_as_written(number)
        })
        .map(|token| (token.line, token.column, token.text))
}

/// The keywords of Rego v1 that Rego v0 reads as keywords only after their import.
const FUTURE_KEYWORDS: [&str; 4] = ["if", "contains", "in", "every"];

/// The first of [`FUTURE_KEYWORDS`] a Rego text uses without importing it (`import
/// future.keywords.if`, or all of them with `import future.keywords` or `import rego.v1`), with
/// its line and column (from 1). Rego v0 reads such a word as a name: `isCompliant if { false }`
/// is a rule `isCompliant` (true) and a rule named `if`, which admits everything where the
/// author meant the opposite (OPA v0, policy-controller's, reads it the same way). A use is the
/// word as a name of its own: not right after `.` (`input.if`), not inside a longer name, a
/// string, a raw string or a comment, and for `contains` not a call of the builtin
/// (`contains(s, "x")`).
fn first_keyword_without_import(text: &str) -> Option<(usize, usize, &'static str)> {
    let mut imported = [false; FUTURE_KEYWORDS.len()];
    let mut first_use: [Option<(usize, usize)>; FUTURE_KEYWORDS.len()] = [None; FUTURE_KEYWORDS.len()];
    let mut previous: Option<Token<'_>> = None;
    for token in Tokens::new(text) {
        let after_dot = previous.is_some_and(|p| p.kind == Kind::Dot && p.end == token.start);
        previous = Some(token);
        if token.kind != Kind::Name || after_dot {
            continue;
        }
        let rest = text[token.end..].trim_start_matches([' ', '\t']);
        if token.text == "import" {
            let path_length = rest
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.'))
                .count();
            match &rest[..path_length] {
                "future.keywords" | "rego.v1" => imported = [true; FUTURE_KEYWORDS.len()],
                path => {
                    if let Some(k) = path
                        .strip_prefix("future.keywords.")
                        .and_then(|name| FUTURE_KEYWORDS.iter().position(|w| *w == name))
                    {
                        imported[k] = true;
                    }
                }
            }
        } else if let Some(k) = FUTURE_KEYWORDS.iter().position(|w| *w == token.text)
            && first_use[k].is_none()
            && !(token.text == "contains" && rest.starts_with('('))
        {
            first_use[k] = Some((token.line, token.column));
        }
    }
    FUTURE_KEYWORDS
        .iter()
        .zip(imported)
        .zip(first_use)
        .filter_map(|((keyword, imported), used)| used.filter(|_| !imported).map(|(l, c)| (l, c, *keyword)))
        .min_by_key(|&(l, c, _)| (l, c))
}

/// Whether the f64 regorus reads `number` as is the number written, for every comparison OPA
/// makes: the float's own decimal ([`numbers::f64_keeps`]), and below 2^53 or, above, whole
/// with that decimal its binary value (`100000000000000020.0` is held as 100000000000000016,
/// which an integer input of 100000000000000018 exceeds here and not in OPA).
fn float_is_as_written(number: &str) -> bool {
    numbers::f64_keeps(number)
        && number
            .parse::<f64>()
            .is_ok_and(|x| numbers::large_whole(x).is_none_or(|whole| whole == x as i128))
}

/// Whether regorus reads `number` as an exact integer: written with an exponent (`1e3`,
/// `2.50e1`) and whole, which it keeps as a big integer (`7.0`, without one, is a float).
/// Past an exponent of 10,000 the literal is left to the float check (which refuses it).
fn rounds_to_an_integer(number: &str) -> bool {
    let Some((_, exponent)) = number.split_once(['e', 'E']) else {
        return false;
    };
    exponent.parse::<i64>().is_ok_and(|e| e <= 10_000) && numbers::is_whole(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_literals_regorus_would_round_are_refused_where_they_are() {
        let refused = [
            (
                "package sigstore\nisCompliant { input.score <= 7.0000000000000001 }\n",
                (2, 30, "7.0000000000000001"),
            ),
            (
                "package sigstore\nisCompliant { x := -0.10000000000000001; input.a > x }\n",
                (2, 21, "0.10000000000000001"),
            ),
            (
                "package sigstore\n# 7.0000000000000001\nisCompliant { input.a == 12345678901234567890.0 }\n",
                (3, 26, "12345678901234567890.0"),
            ),
            (
                "package sigstore\nisCompliant { input.a == 1.5e-400 }\n",
                (2, 26, "1.5e-400"),
            ),
            (
                "package sigstore\nisCompliant { `\n`; input.a == 1581092615614647.2 }\n",
                (3, 15, "1581092615614647.2"),
            ),
            // Kept, but held as 100000000000000016 from 2^53 on.
            (
                "package sigstore\nisCompliant { input.a >= 100000000000000020.0 }\n",
                (2, 26, "100000000000000020.0"),
            ),
        ];
        for (text, (line, column, number)) in refused {
            assert_eq!(first_rounded_literal(text), Some((line, column, number)), "{text}");
            let e = RegoPolicy::parse(text).unwrap_err();
            assert!(
                e.starts_with(&format!("line {line}, column {column}: the number `{number}`: ")),
                "{e}"
            );
            let held = number == "100000000000000020.0";
            assert_eq!(e.contains("regorus holds it as 100000000000000016"), held, "{e}");
            assert_eq!(e.contains("more digits than a 64-bit float keeps"), !held, "{e}");
        }
        // Integers (big or scientific and whole) are exact in regorus; floats written as their
        // own decimal are kept; digits inside identifiers, strings, raw strings and comments
        // are not numbers.
        let kept = "package sigstore\n\
            isCompliant { input.a == [9007199254740993, 123456789012345678901234567890, 1e3, 2.50e1, 12345678901234567890e2] }\n\
            isCompliant { input.b <= 7.5; input.c == 0.1; input.d[0] == 1581092615614647.3; v1_0000000000000000001 := 1 }\n\
            isCompliant { input.e == \"7.0000000000000001\"; input.f == `0.10000000000000001` } # 7.0000000000000001\n\
            isCompliant { input.g == \"a\\\"7.0000000000000001\" }\n";
        assert_eq!(first_rounded_literal(kept), None);
        assert!(RegoPolicy::parse(kept).is_ok());
        // Whole from 2^53 on and held as written: taken.
        assert_eq!(
            first_rounded_literal("package sigstore\nx := 9007199254740992.0\n"),
            None
        );
    }

    /// Found by a review: `isCompliant if { false }` without `import future.keywords.if` is read
    /// (by OPA v0 and regorus alike) as a rule `isCompliant` that holds and a rule named `if`.
    #[test]
    fn rego_v1_keywords_without_their_import_are_refused() {
        let review = "package sigstore\ndefault isCompliant = false\nisCompliant if { false }\n";
        assert_eq!(first_keyword_without_import(review), Some((3, 13, "if")));
        let e = RegoPolicy::parse(review).unwrap_err();
        assert!(
            e.starts_with("line 3, column 13: `if` is a keyword only after `import future.keywords.if`"),
            "{e}"
        );
        assert!(e.contains("add the import"), "{e}");
        for (text, found) in [
            (
                "package sigstore\nimport future.keywords.if\nisCompliant contains r if { r := 1 }\n",
                Some((3, 13, "contains")),
            ),
            (
                "package sigstore\nisCompliant { some x in input.xs; x == 1 }\n",
                Some((2, 22, "in")),
            ),
            (
                "package sigstore\nisCompliant { every x in input.xs { x == 1 } }\n",
                Some((2, 15, "every")),
            ),
            (
                "package sigstore\nimport future.keywords.every\nisCompliant { every x in input.xs { x } }\n",
                Some((3, 23, "in")),
            ),
            // A rule named `if` of its own.
            ("package sigstore\nif { true }\n", Some((2, 1, "if"))),
            ("package sigstore\ncontains = true\n", Some((2, 1, "contains"))),
            // Imported.
            (
                "package sigstore\nimport future.keywords.if\nisCompliant if { true }\n",
                None,
            ),
            (
                "package sigstore\nimport future.keywords\nisCompliant contains r if { some r in [1]; every x in [1] { x } }\n",
                None,
            ),
            (
                "package sigstore\nimport rego.v1\nisCompliant if { some r in [1] }\n",
                None,
            ),
            (
                "package sigstore\nimport  future.keywords.in\nimport future.keywords.if\nx if { 1 in [1] }\n",
                None,
            ),
            // Not keywords: a call of the builtin `contains`, a field, strings, raw strings,
            // comments, parts of identifiers.
            (
                "package sigstore\nisCompliant { contains(input.a, \"b\"); contains (input.a, \"c\") }\n\
                 x { input.if == input.spec.in; y := {\"every\": `in if`}; # if contains x\n iff := 1; verify_in := index_every }\n",
                None,
            ),
            ("package sigstore\nx := \"a\\\"if\"\n", None),
        ] {
            assert_eq!(first_keyword_without_import(text), found, "{text}");
            assert_eq!(RegoPolicy::parse(text).is_ok(), found.is_none(), "{text}");
        }
    }

    #[test]
    fn a_nul_character_is_refused() {
        let text = "package sigstore\nisCompliant = true\n\0\nisCompliant = false\nnot rego {{{";
        assert_eq!(
            RegoPolicy::parse(text).unwrap_err(),
            "line 3: the text holds a NUL character, after which regorus reads nothing (OPA refuses it); remove it"
        );
    }
}
