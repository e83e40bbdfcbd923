//! Bracketed classes where Go's parser (`regexp/syntax`'s `parseClass`) and `regex_syntax` split
//! the items otherwise: a `-` after a class escape (`[\w-.]`, sigstore's HashiVault reference
//! pattern), leading dashes (`[--a]`), a leading `]` starting a range (`[]-a]`), and the ranges
//! Go refuses (`[a-\w]`, `[z-a]`). Each case says whether Go 1.19's `regexp.Compile` accepts it
//! (the table is checked against Go's own `regexp`, `scripts/go-regexp-match.go`, as
//! tests/against_go.rs is: missing, the test fails); where it does, go-regexp must accept it and
//! match the same texts, where it does not, refuse it.

/// `(pattern, Go accepts it)`.
const CASES: &[(&str, bool)] = &[
    // A `-` after a Perl or Unicode class is a character for Go (then also in a range after it).
    (r"[\w-.]", true),
    (r"[\d-z]", true),
    (r"[\w-a]", true),
    (r"[\w-\d]", true),
    (r"[\s-\S]", true),
    (r"[\D-\d]", true),
    (r"[\pL-z]", true),
    (r"[\p{Greek}-z]", true),
    (r"[\P{Greek}-a]", true),
    (r"[\PL-]", true),
    (r"[^\w-.]", true),
    (r"(?i)[\w-.]", true),
    (r"[\w-.-z]", true),
    (r"[\d-\x{41}]", true),
    (r"[\w-.-,]", false),
    (r"^hashivault://(?P<path>\w(([\w-.]+)?\w)?)$", true),
    // After a POSIX class too (`regex_syntax` reads these as Go does).
    (r"[[:alpha:]-z]", true),
    (r"[[:^alpha:]-z]", true),
    (r"[[:foo:]-z]", false),
    // A `-` first or last, and after a range.
    (r"[a-]", true),
    (r"[-a]", true),
    (r"[^-a]", true),
    (r"[\w-]", true),
    (r"[-\w]", true),
    (r"[a-c-e]", true),
    (r"[a-c-e-g]", true),
    (r"[\x41-\x5A-z]", true),
    (r"[a\-z]", true),
    (r"[\w\-.]", true),
    // Leading dashes: Go reads them in threes, `---` being the range `-` to `-`; two left
    // before a character make a range to it.
    (r"[--a]", true),
    (r"[^--a]", true),
    (r"[--/]", true),
    (r"[---a]", true),
    (r"[----a]", true),
    (r"[-----a]", true),
    (r"[--]", true),
    (r"[--,]", false),
    (r"[--\w]", false),
    // A leading `]` is a character, and may start a range.
    (r"[]a]", true),
    (r"[]-a]", true),
    (r"[^]-a]", true),
    (r"[]-]", true),
    (r"[]-!]", false),
    (r"[]-\w]", false),
    // From Go's regexp/syntax/parse_test.go: `[a-b-c]` (Perl mode, regexp.Compile's),
    // `[\x{41}-\x7a]\x61`; refused: `[a-Z]`, `(?i)[a-Z]`.
    (r"[a-b-c]", true),
    (r"[\x{41}-\x7a]\x61", true),
    (r"[a-Z]", false),
    (r"(?i)[a-Z]", false),
    // Ranges Go refuses.
    (r"[a-\w]", false),
    (r"[a-\d]", false),
    (r"[.-\w]", false),
    (r"[z-a]", false),
    // Refused elsewhere in the pattern: the class is no excuse.
    (r"[\w-.](", false),
    (r"x[\w-.]y**", false),
];

/// Go accepts these, and we refuse them on purpose: `--` is a set difference for a reader of
/// Rust's `regex` (docs/policies.md), `[` inside a class a nested class.
const REFUSED_HERE_ONLY: &[&str] = &[r"[\w--a]", r"[\w--]", r"[a-b--c]", r"[\w-[]"];

const TEXTS: &[&str] = &[
    "-", ".", ",", "/", "a", "e", "z", "_", "0", "A", "Z", "λ", "é", "\u{212A}", "\\", "[", "]", "^", "!", " ",
];

fn ours(pattern: &str) -> Result<regex::Regex, String> {
    let printed = go_regexp::to_regex(pattern).map_err(|e| e.to_string())?;
    regex::Regex::new(&printed).map_err(|e| format!("regex: {e}"))
}

#[test]
fn classes_are_read_as_go_reads_them() {
    let texts: Vec<String> = TEXTS.iter().map(|t| (*t).to_owned()).collect();
    let cases: Vec<(String, Vec<String>)> = CASES
        .iter()
        .map(|(pattern, _)| (*pattern).to_owned())
        .chain(REFUSED_HERE_ONLY.iter().map(|pattern| (*pattern).to_owned()))
        .map(|pattern| (pattern, texts.clone()))
        .collect();
    let answers = testkit::go_matches(&cases).expect("Go's regexp answers");
    let (table, deliberate) = answers.split_at(CASES.len());
    for (&(pattern, accepted), go) in CASES.iter().zip(table) {
        assert_eq!(go.is_ok(), accepted, "{pattern}: Go answers {go:?}");
        match (ours(pattern), go) {
            (Ok(regex), Ok(matches)) => {
                for (text, expected) in TEXTS.iter().zip(matches) {
                    assert_eq!(
                        regex.is_match(text),
                        *expected,
                        "{pattern} (read as {}) on {text:?}: Go says {expected}",
                        regex.as_str()
                    );
                }
            }
            (Err(_), Err(_)) => {}
            (ours, go) => panic!("{pattern}: here {ours:?}, Go {go:?}"),
        }
    }
    for (pattern, go) in REFUSED_HERE_ONLY.iter().zip(deliberate) {
        assert!(go.is_ok(), "{pattern}: Go answers {go:?}");
        assert!(ours(pattern).is_err(), "{pattern} is accepted here");
    }
}

/// sigstore/sigstore, pkg/signature/kms/hashivault/client.go, `referenceRegex`, as written there.
#[test]
fn sigstores_hashivault_reference_pattern_compiles_and_matches() {
    let vault = ours(r"^hashivault://(?P<path>\w(([\w-.]+)?\w)?)$").expect("accepted");
    let path = |uri: &str| vault.captures(uri).map(|c| c["path"].to_owned());
    assert_eq!(path("hashivault://my-key.v2").as_deref(), Some("my-key.v2"));
    assert_eq!(path("hashivault://k").as_deref(), Some("k"));
    for refused in [
        "hashivault://-key",
        "hashivault://key-",
        "hashivault://my key",
        "hashivault://a,b",
    ] {
        assert_eq!(path(refused), None, "{refused}");
    }
}

/// Go's meaning, spelled out: the characters each class holds among a few.
#[test]
fn the_dash_and_bracket_mean_what_go_means() {
    let matches = |pattern: &str, text: &str| ours(pattern).expect(pattern).is_match(text);
    // `[\w-.]`: `\w`, `-` and `.`; no range.
    assert!(matches(r"^[\w-.]+$", "my-key.v2_3"));
    assert!(!matches(r"^[\w-.]$", ","));
    // `[--a]`: the range `-` to `a` (digits, capitals, `_` …), not the characters `-` and `a`.
    assert!(matches(r"^[--a]$", "0") && matches(r"^[--a]$", "_") && !matches(r"^[--a]$", "b"));
    // `[]-a]`: the range `]` to `a`, without `-`.
    assert!(matches(r"^[]-a]$", "_") && !matches(r"^[]-a]$", "-"));
}

/// A refusal elsewhere in a pattern with such a class points into the pattern as written.
#[test]
fn offsets_are_the_patterns_as_written() {
    let offset = |pattern: &str| match go_regexp::parse(pattern) {
        Err(go_regexp::Error::NotGo { offset, .. }) => offset,
        other => panic!("{pattern}: {other:?}"),
    };
    // The second `*` (offset 8), as in the same pattern with the class spelled `[\w.-]`.
    assert_eq!(offset(r"[\w-.]x**"), 8);
    assert_eq!(offset(r"[\w-.]x**"), offset(r"[\w.-]x**"));
    assert_eq!(offset("[--a]\n[]-a](?x)"), 13);
    // A syntax error the written pattern shares is reported on it; one after such a class is
    // reported on the pattern as `regex_syntax` was given it (`[\w\-.]`).
    let message = go_regexp::parse(r"[z-a][\w-.]").unwrap_err().to_string();
    assert!(message.contains(r"[z-a][\w-.]"), "{message}");
    let message = go_regexp::parse(r"[\w-.][z-a]").unwrap_err().to_string();
    assert!(message.contains(r"[\w\-.][z-a]"), "{message}");
}
