//! The regex builtins through the capability's own evaluation (`rego::evaluate`, cached
//! engines included), each case one that regorus' builtins answer otherwise (Rust's Unicode
//! reading, or their own split, replace and template rules).

use serde_json::{Value, json};

use super::super::{check_settings, evaluate};
use super::MAX_COMPILED;

fn policy(condition: &str) -> String {
    format!("package sigstore\ndefault isCompliant = false\nisCompliant {{\n  {condition}\n}}\n")
}

/// Whether `condition` holds, evaluated as `cip` evaluates a ClusterImagePolicy's Rego.
fn holds_with(condition: &str, input: &Value) -> bool {
    evaluate(&policy(condition), input)
        .unwrap_or_else(|e| panic!("{condition}: {e}"))
        .compliant
}

fn holds(condition: &str) -> bool {
    holds_with(condition, &json!({}))
}

/// The evaluation's error (it must fail).
fn failure(condition: &str) -> String {
    match evaluate(&policy(condition), &json!({})) {
        Err(error) => error,
        Ok(answer) => panic!("{condition}: evaluated to {answer:?}"),
    }
}

#[track_caller]
fn assert_all(conditions: &[&str]) {
    for condition in conditions {
        assert!(holds(condition), "{condition} does not hold");
    }
}

#[test]
fn match_reads_perl_classes_and_boundaries_as_go() {
    assert_all(&[
        // U+0663 ARABIC-INDIC DIGIT THREE is `\d` for Rust's regex, not for Go's.
        r#"regex.match(`^v\d+$`, "v٣") == false"#,
        r#"regex.match(`^v\d+$`, "v3") == true"#,
        r#"regex.match("^v\\d+$", "v3")"#,
        r#"regex.match(`^\w$`, "é") == false"#,
        r#"regex.match(`^\w$`, "_")"#,
        r#"regex.match(`^\W$`, "é")"#,
        r#"regex.match(`^\s$`, "\u00a0") == false"#,
        r#"regex.match(`^\s$`, "\t")"#,
        // Between a and é: an ASCII word boundary (Go), none for Unicode.
        r#"regex.match(`a\b`, "aé")"#,
        // Go's \pC has no unassigned code points.
        r#"regex.match(`^\pC$`, "\u0378") == false"#,
        // OPA's deprecated alias, which regorus lacks, reads patterns the same way.
        r#"re_match(`^v\d+$`, "v٣") == false"#,
        r#"re_match(`^v\d+$`, "v3")"#,
    ]);
}

#[test]
fn is_valid_answers_for_gos_reading() {
    assert_all(&[
        r#"regex.is_valid(`^v\d+$`)"#,
        r#"regex.is_valid("[a-z]+(?i:x)")"#,
        // Go reads [a&&b] as the class of a, & and b; Rust as an intersection. go_regexp
        // refuses it rather than guess, so it is not valid here (valid for OPA).
        r#"regex.is_valid("[a&&b]") == false"#,
        r#"regex.is_valid("[a[b]]") == false"#,
        r#"regex.is_valid("(?x) a") == false"#,
        r#"regex.is_valid("[") == false"#,
        r#"regex.is_valid(`\p{NotAScript}`) == false"#,
        r#"regex.is_valid(1) == false"#,
    ]);
}

#[test]
fn find_n_and_submatches_read_patterns_as_go() {
    assert_all(&[
        r#"regex.find_n(`\d`, "1٣2", -1) == ["1", "2"]"#,
        r#"regex.find_n(`\d`, "1٣2", 1) == ["1"]"#,
        r#"regex.find_n(`\d`, "1٣2", 0) == []"#,
        r#"regex.find_n(`\w+`, "ab-é-c_d", -1) == ["ab", "c_d"]"#,
        r#"regex.find_n("a*", "baaab", -1) == ["", "aaa", ""]"#,
        r#"regex.find_all_string_submatch_n(`(\d)(x)?`, "1٣2x", -1) == [["1", "1", ""], ["2x", "2", "x"]]"#,
        r#"regex.find_all_string_submatch_n(`v(\d+)`, "v1 v٣ v22", 5) == [["v1", "1"], ["v22", "22"]]"#,
        r#"regex.find_all_string_submatch_n(`v(\d+)`, "v1 v٣ v22", 1) == [["v1", "1"]]"#,
    ]);
}

#[test]
fn split_is_gos() {
    assert_all(&[
        r#"regex.split(`\d`, "a٣b3c") == ["a٣b", "c"]"#,
        r#"regex.split(`\s+`, "a b\u00a0c") == ["a", "b\u00a0c"]"#,
        // Go's Split: no empty piece for an empty match at either end (Rust's split gives
        // ["", "a", "b", ""]).
        r#"regex.split("x*", "axb") == ["a", "b"]"#,
        r#"regex.split("", "abc") == ["a", "b", "c"]"#,
        r#"regex.split(",", "a,b,") == ["a", "b", ""]"#,
        r#"regex.split(",", "") == [""]"#,
        r#"regex.split("", "") == []"#,
    ]);
}

#[test]
fn replace_is_gos_replace_all_string() {
    assert_all(&[
        r#"regex.replace("v1 v٣", `v(\d)`, "n$1") == "n1 v٣""#,
        r#"regex.replace("a b", `\b`, "|") == "|a| |b|""#,
        r#"regex.replace("é", `\b`, "|") == "é""#,
        // The examples of Go's ReplaceAllString.
        r#"regex.replace("-ab-axxb-", "a(x*)b", "T") == "-T-T-""#,
        r#"regex.replace("-ab-axxb-", "a(x*)b", "$1") == "--xx-""#,
        r#"regex.replace("-ab-axxb-", "a(x*)b", "$1W") == "---""#,
        r#"regex.replace("-ab-axxb-", "a(x*)b", "${1}W") == "-W-xxW-""#,
        r#"regex.replace("-ab-axxb-", "a(?P<x>x*)b", "<${x}|$x>") == "-<|>-<xx|xx>-""#,
        // Go's names run over Unicode letters (Rust's stop at `é`); `$01` is no number;
        // `$$` is `$`; a malformed reference stays text.
        r#"regex.replace("ab", "(a)", "[$1é]") == "[]b""#,
        r#"regex.replace("ab", "(a)", "[$01]") == "[]b""#,
        r#"regex.replace("ab", "(a)", "$$1") == "$1b""#,
        r#"regex.replace("ab", "(a)", "${1") == "${1b""#,
        r#"regex.replace("ab", "(a)", "${x-y}") == "${x-y}b""#,
        r#"regex.replace("ab", "(a)", "$") == "$b""#,
        r#"regex.replace("ab", "(a)(z)?", "[$2]") == "[]b""#,
        r#"regex.replace("axb", "x*", "-") == "-a-b-""#,
    ]);
}

#[test]
fn template_match_is_opas() {
    assert_all(&[
        r#"regex.template_match(`urn:foo:{\d+}`, "urn:foo:12", "{", "}")"#,
        r#"regex.template_match(`urn:foo:{\d+}`, "urn:foo:٣", "{", "}") == false"#,
        // Nested delimiters belong to the pattern; the rest is text (`.` is a dot).
        r#"regex.template_match("id-{[0-9]{2}}", "id-12", "{", "}")"#,
        r#"regex.template_match("id-{[0-9]{2}}", "id-123", "{", "}") == false"#,
        r#"regex.template_match("a.<x|y>", "a.y", "<", ">")"#,
        r#"regex.template_match("a.<x|y>", "aby", "<", ">") == false"#,
        r#"regex.template_match("plain", "plain", "<", ">")"#,
    ]);
    for (condition, error) in [
        (
            r#"regex.template_match("a{b", "ab", "{", "}")"#,
            "regex.template_match: unbalanced braces in \"a{b\"",
        ),
        (
            r#"regex.template_match("a<<b>>", "ab", "<<", ">>")"#,
            "regex.template_match: start delimiter has to be exactly one character long but is 2 long",
        ),
        (
            r#"regex.template_match("a{b)(c}", "ab", "{", "}")"#,
            "regex.template_match: invalid regular expression \"b)(c\"",
        ),
    ] {
        let failure = failure(condition);
        assert!(failure.contains(error), "{condition}: {failure}");
    }
}

#[test]
fn an_invalid_pattern_fails_the_evaluation() {
    let error = failure(r#"regex.match("[", "a")"#);
    assert_eq!(
        error,
        "evaluating the Rego policy failed: sigstore.rego:4:14: regex.match: invalid regular expression \"[\": \
         unclosed character class"
    );
    // A negation over it does not pass either.
    let error = failure(r#"not regex.match("[a&&b]", "a")"#);
    assert!(
        error.contains("regex.match: invalid regular expression \"[a&&b]\": a class set operation"),
        "{error}"
    );
    // regorus' regex.replace answers undefined for an invalid pattern; OPA's fails.
    assert!(failure(r#"regex.replace("a", "(", "b") == "a""#).contains("regex.replace: invalid regular expression"));
    for (condition, error) in [
        (
            r#"regex.match(1, "a")"#,
            "regex.match: operand 1 must be string but got number",
        ),
        (
            r#"regex.split("a", ["a"])"#,
            "regex.split: operand 2 must be string but got array",
        ),
        (
            r#"regex.find_n("a", "a", 1.5)"#,
            "regex.find_n: operand 3 must be integer number but got floating-point number",
        ),
        (
            r#"regex.find_n(`\d`, "1", "1")"#,
            "regex.find_n: operand 3 must be number but got string",
        ),
        (
            r#"regex.split(`\pL{1000}`, "a")"#,
            "regex.split: the regular expression",
        ),
        (
            r#"regex.is_valid(`\pL{1000}`)"#,
            "regex.is_valid: the regular expression",
        ),
    ] {
        let failure = failure(condition);
        assert!(failure.contains(error), "{condition}: {failure}");
    }
}

#[test]
fn cached_engines_and_other_threads_read_patterns_as_go() {
    let text = policy(r#"regex.match(`^v\d+$`, input.tag)"#);
    let settings = json!({"policies": [{"spec": {"policy": {"type": "rego", "data": text}}}]});
    // Compiled (and cached) when the settings load, then evaluated from the cache, twice.
    check_settings(&settings).unwrap();
    for _ in 0..2 {
        assert!(evaluate(&text, &json!({"tag": "v3"})).unwrap().compliant);
        assert!(!evaluate(&text, &json!({"tag": "v٣"})).unwrap().compliant);
    }
    std::thread::spawn(move || {
        assert!(evaluate(&text, &json!({"tag": "v3"})).unwrap().compliant);
        assert!(!evaluate(&text, &json!({"tag": "v٣"})).unwrap().compliant);
    })
    .join()
    .unwrap();
}

#[test]
fn more_patterns_than_the_cache_holds() {
    // Every pattern matches v3 and none v٣, whether compiled now or found in the cache.
    let patterns: Vec<String> = (0..3 * MAX_COMPILED).map(|i| format!(r"^v\d+$|^y{{{i}}}$")).collect();
    let all = "count([p | p := input.patterns[_]; regex.match(p, input.tag)]) == count(input.patterns)";
    let none = "count([p | p := input.patterns[_]; regex.match(p, input.tag)]) == 0";
    for _ in 0..2 {
        assert!(holds_with(all, &json!({"patterns": patterns, "tag": "v3"})));
        assert!(holds_with(none, &json!({"patterns": patterns, "tag": "v٣"})));
    }
    let templates: Vec<String> = (0..3 * MAX_COMPILED)
        .map(|i| format!(r"v<\d+>{}", "-".repeat(i)))
        .collect();
    let all = "count([t | t := input.templates[_]; regex.template_match(t, concat(\"\", [input.tag, substring(t, 6, -1)]), \"<\", \">\")]) == count(input.templates)";
    assert!(holds_with(all, &json!({"templates": templates, "tag": "v3"})));
    assert!(!holds_with(all, &json!({"templates": templates, "tag": "v٣"})));
}
