//! Rego's `upper`, `lower`, `strings.count` and `to_number`, as `cip` answers
//! `cluster-image-policy/policy/v1/rego`, against Go's own `strings` and `strconv` (OPA's
//! `strings.ToUpper`, `strings.ToLower`, `strings.Count`, and `builtinToNumber`'s
//! `strconv.ParseFloat`): `upper` and `lower` over every Unicode scalar value, `strings.count`
//! on generated texts, `to_number` on generated and chosen texts.
//!
//! Found by a review: regorus' `upper("straße")` was `"STRASSE"` (Go keeps `ß`), `lower("ΣΣ")`
//! ended in `ς` and `lower("ADMİN")` held a combining dot (Go: `σσ`, `admin`), `to_number(" 1")`
//! was 1 (Go refuses the space), `strings.count("aaaa", "aa")` was 3 (Go: 2) and
//! `strings.count(s, "")` panicked.
//!
//! Go runs a program of this file's own (`GO_STRINGS`, standard library only), built with the
//! `go` found on `PATH` (Debian's golang-go, which `make test-tools` installs) into a temporary
//! directory, no module download; without Go the test fails, it is never skipped.
//!
//! Unicode versions: Go's tables are those of the Go that runs the test (Go 1.19 holds Unicode
//! 13), Rust's those of the toolchain (Unicode 17 for Rust 1.95). A character Go's tables do not
//! assign, or one mapped here to a character they do not assign, may differ: counted and
//! printed, never a failure. Every other scalar value must map as Go maps it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod rego_support;

use cip::capabilities::Capabilities;
use serde::Deserialize;
use serde_json::{Value, json};
use testkit::Rng;

/// Generated texts per run; `REGO_GO_STRINGS_CASES` raises it, `REGO_GO_STRINGS_SEED` replays.
const CASES: usize = 3000;

const GO_STRINGS: &str = r#"package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"unicode"
)

type request struct {
	Texts  []string    `json:"texts"`
	Pairs  [][2]string `json:"pairs"`
	Floats []string    `json:"floats"`
}

type float struct {
	Ok    bool   `json:"ok"`
	Value string `json:"value"`
}

type answer struct {
	Upper    []string  `json:"upper"`
	Lower    []string  `json:"lower"`
	Count    []int     `json:"count"`
	Floats   []float   `json:"floats"`
	Assigned [][2]rune `json:"assigned"`
}

// OPA's builtinToNumber on a string (v1/topdown/casts.go).
func toNumber(s string) float {
	t := strings.ToLower(strings.TrimLeft(s, "+-"))
	if t == "inf" || t == "infinity" || t == "nan" {
		return float{}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return float{}
	}
	return float{true, strconv.FormatFloat(f, 'g', -1, 64)}
}

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var req request
	if err := json.Unmarshal(data, &req); err != nil {
		panic(err)
	}
	a := answer{Upper: []string{}, Lower: []string{}, Count: []int{}, Floats: []float{}}
	for _, t := range req.Texts {
		a.Upper = append(a.Upper, strings.ToUpper(t))
		a.Lower = append(a.Lower, strings.ToLower(t))
	}
	for _, p := range req.Pairs {
		a.Count = append(a.Count, strings.Count(p[0], p[1]))
	}
	for _, s := range req.Floats {
		a.Floats = append(a.Floats, toNumber(s))
	}
	lo := rune(-1)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		in := unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
		if in && lo < 0 {
			lo = r
		}
		if !in && lo >= 0 {
			a.Assigned = append(a.Assigned, [2]rune{lo, r - 1})
			lo = -1
		}
	}
	if lo >= 0 {
		a.Assigned = append(a.Assigned, [2]rune{lo, unicode.MaxRune})
	}
	if err := json.NewEncoder(os.Stdout).Encode(a); err != nil {
		panic(err)
	}
}
"#;

#[derive(Deserialize)]
struct GoFloat {
    ok: bool,
    value: String,
}

#[derive(Deserialize)]
struct GoAnswer {
    upper: Vec<String>,
    lower: Vec<String>,
    count: Vec<usize>,
    floats: Vec<GoFloat>,
    assigned: Vec<(u32, u32)>,
}

/// Go's answers, from the program built now.
fn go(texts: &[String], pairs: &[(String, String)], floats: &[String]) -> GoAnswer {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("main.go");
    std::fs::write(&source, GO_STRINGS).unwrap();
    let binary: PathBuf = dir.path().join("go-strings");
    let build = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("Go (Debian's golang-go: `make test-tools` installs it)");
    assert!(
        build.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let request = dir.path().join("request.json");
    std::fs::write(
        &request,
        serde_json::to_vec(&json!({"texts": texts, "pairs": pairs, "floats": floats})).unwrap(),
    )
    .unwrap();
    let output = testkit::run_bounded(Command::new(&binary).arg(&request), Duration::from_secs(120)).unwrap();
    assert!(
        output.status.success(),
        "go-strings: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `cip`'s answer for `policy` on `input`: the warning of a compliant answer, or the error.
fn rego(capabilities: &Capabilities, policy: &str, input: &Value) -> Result<String, String> {
    let answer = rego_support::rego_answer(capabilities, policy, input)?;
    assert_eq!(answer["compliant"], true, "{answer}");
    Ok(answer["warning"].as_str().expect("the result").to_owned())
}

const RESULT: &str = r#"package sigstore
isCompliant[{"result": true, "warning": json.marshal(result)}] {
  true
}
"#;

/// Every Unicode scalar value, in texts of `size` characters.
fn all_scalar_values(size: usize) -> Vec<String> {
    let chars: Vec<char> = (0..=0x10_FFFF).filter_map(char::from_u32).collect();
    chars.chunks(size).map(|chunk| chunk.iter().collect()).collect()
}

fn count_texts(rng: &mut Rng, count: usize) -> Vec<(String, String)> {
    const PIECES: [&str; 8] = ["a", "b", "a", "ß", "😀", "é", "e\u{301}", "İ"];
    let text = |rng: &mut Rng, most: usize| -> String {
        let length = rng.below(most + 1);
        (0..length).map(|_| *rng.pick(&PIECES)).collect()
    };
    (0..count)
        .map(|_| {
            let s = text(rng, 8);
            let sub = if rng.chance(30) && !s.is_empty() {
                // A piece of `s` itself, cut at a character boundary.
                let chars: Vec<char> = s.chars().collect();
                let start = rng.below(chars.len());
                let end = start + rng.below(chars.len() - start + 1);
                chars[start..end].iter().collect()
            } else {
                text(rng, 3)
            };
            (s, sub)
        })
        .collect()
}

fn number_texts(rng: &mut Rng, count: usize) -> Vec<String> {
    const CHARS: &[u8] = b"0123456789.eE+-_ xXpPinfatyNI\n\t";
    let digits = |rng: &mut Rng, most: usize| -> String {
        (0..rng.below(most + 1))
            .map(|_| char::from(b'0' + u8::try_from(rng.below(10)).unwrap()))
            .collect()
    };
    let mut texts: Vec<String> = [
        "1",
        " 1",
        "1 ",
        "\n1",
        "+1",
        "-1",
        "--1",
        "+-1",
        "1.",
        ".5",
        ".",
        "-.5",
        "+.e1",
        "1e",
        "1e+",
        "1e5",
        "1E-5",
        "1.5e+3",
        "0x10",
        "0x1p4",
        "0X1P-2",
        "1_000",
        "1__0",
        "_1",
        "1_",
        "0b101",
        "0o17",
        "Inf",
        "-inf",
        "+Infinity",
        "infinity",
        "nan",
        "NaN",
        "-nan",
        "infin",
        "1e308",
        "1.7976931348623157e308",
        "1.8e308",
        "1e309",
        "4.9e-324",
        "2e-324",
        "1e-400",
        "0e99999999",
        "1e99999999",
        "1e-99999999",
        "",
        "00012",
        "-0",
        "0.1",
        "123456789012345678901234567890",
        "1e2000000000",
        "\u{0661}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for _ in 0..count {
        let text = if rng.chance(50) {
            (0..rng.below(10)).map(|_| char::from(*rng.pick(CHARS))).collect()
        } else {
            let mut text = String::new();
            if rng.chance(30) {
                text.push(*rng.pick(&['+', '-']));
            }
            text += &digits(rng, 25);
            if rng.chance(50) {
                text.push('.');
                text += &digits(rng, 5);
            }
            if rng.chance(50) {
                text.push(*rng.pick(&['e', 'E']));
                if rng.chance(50) {
                    text.push(*rng.pick(&['+', '-']));
                }
                text += &digits(rng, 4);
            }
            if rng.chance(10) {
                let at = rng.below(text.len() + 1);
                text.insert(at, *rng.pick(&[' ', '_', '\n', 'x']));
            }
            text
        };
        texts.push(text);
    }
    texts
}

#[test]
fn upper_lower_count_and_to_number_are_go_s() {
    let count = testkit::case_count("REGO_GO_STRINGS_CASES", CASES);
    let mut rng = Rng(testkit::run_seed("REGO_GO_STRINGS_SEED", Some(0x5EED_0F60)));
    let texts = all_scalar_values(4096);
    let pairs = count_texts(&mut rng, count);
    let floats = number_texts(&mut rng, count);
    let go = go(&texts, &pairs, &floats);
    let assigned = |c: char| {
        let c = u32::from(c);
        go.assigned.iter().any(|&(lo, hi)| lo <= c && c <= hi)
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());

    // upper and lower, a few texts per evaluation.
    let mut newer_unicode = 0;
    let mut compared = 0;
    for (batch, go_batch) in texts.chunks(16).zip(go.upper.chunks(16).zip(go.lower.chunks(16))) {
        let policy = format!(
            "{RESULT}result := {{\"upper\": [upper(t) | t := input.texts[_]], \"lower\": [lower(t) | t := input.texts[_]]}}\n"
        );
        let answer = rego(&capabilities, &policy, &json!({"texts": batch})).unwrap();
        let ours: Value = serde_json::from_str(&answer).unwrap();
        for (name, go_texts) in [("upper", go_batch.0), ("lower", go_batch.1)] {
            let ours = ours[name].as_array().unwrap();
            assert_eq!(ours.len(), batch.len());
            for ((text, ours), go) in batch.iter().zip(ours).zip(go_texts) {
                let ours: Vec<char> = ours.as_str().unwrap().chars().collect();
                let go: Vec<char> = go.chars().collect();
                let text: Vec<char> = text.chars().collect();
                assert_eq!(ours.len(), text.len(), "{name}: one character for one");
                assert_eq!(go.len(), text.len());
                for ((c, ours), go) in text.iter().zip(ours).zip(go) {
                    compared += 1;
                    if ours == go {
                        continue;
                    }
                    assert!(
                        !assigned(*c) || !assigned(ours),
                        "{name}({c:?} U+{:04X}) is {ours:?} U+{:04X}, Go's {go:?} U+{:04X}",
                        u32::from(*c),
                        u32::from(ours),
                        u32::from(go)
                    );
                    newer_unicode += 1;
                }
            }
        }
    }
    println!(
        "upper and lower: {compared} mappings compared, {newer_unicode} differ on characters Go's Unicode does not assign"
    );
    assert_eq!(compared, 2 * (0x11_0000 - 0x800));
    assert!(newer_unicode < 2000, "{newer_unicode}");

    // strings.count, all pairs in one evaluation.
    let policy = format!("{RESULT}result := [strings.count(p[0], p[1]) | p := input.pairs[_]]\n");
    let answer = rego(&capabilities, &policy, &json!({"pairs": pairs})).unwrap();
    let ours: Vec<usize> = serde_json::from_str(&answer).unwrap();
    assert_eq!(ours.len(), pairs.len());
    for ((pair, ours), go) in pairs.iter().zip(ours).zip(&go.count) {
        assert_eq!(ours, *go, "strings.count({:?}, {:?})", pair.0, pair.1);
    }

    // to_number, one evaluation per text (an error fails the evaluation).
    let policy = format!("{RESULT}result := to_number(input.s)\n");
    let (mut both, mut refused_here, mut neither) = (0, 0, 0);
    for (text, go) in floats.iter().zip(&go.floats) {
        match (rego(&capabilities, &policy, &json!({"s": text})), go.ok) {
            (Ok(ours), true) => {
                let ours: f64 = ours.parse().unwrap();
                let go: f64 = go.value.parse().unwrap();
                assert!(ours == go, "to_number({text:?}) is {ours}, Go's ParseFloat {go}");
                both += 1;
            }
            (Ok(ours), false) => panic!("to_number({text:?}) is {ours}, OPA refuses it"),
            (Err(_), true)
                if text.contains('_')
                    || text
                        .to_ascii_lowercase()
                        .trim_start_matches(['+', '-'])
                        .starts_with("0x") =>
            {
                refused_here += 1;
            }
            (Err(error), true) => panic!("to_number({text:?}) fails, Go reads {}: {error}", go.value),
            (Err(_), false) => neither += 1,
        }
    }
    println!(
        "to_number: {both} read by both, {refused_here} refused by cip alone (hexadecimal, underscores), {neither} by neither"
    );
    assert!(both > floats.len() / 4, "{both} of {}", floats.len());
    assert!(neither > floats.len() / 10, "{neither} of {}", floats.len());
}

/// The cases of the review, without Go.
#[test]
fn the_review_s_cases() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    for (expression, expected) in [
        ("upper(\"straße\") == \"STRASSE\"", "false"),
        ("upper(\"straße\")", "\"STRAßE\""),
        ("lower(\"ΣΣ\") == \"σσ\"", "true"),
        ("lower(\"ADMİN\") == \"admin\"", "true"),
        ("strings.count(\"aaaa\", \"aa\")", "2"),
        ("strings.count(\"añb\", \"\")", "4"),
        ("to_number(\"1\")", "1"),
        ("to_number(\"-1.5e1\")", "-15"),
        ("to_number(null)", "0"),
        ("to_number(true)", "1"),
    ] {
        let policy = format!("{RESULT}result := {expression}\n");
        assert_eq!(
            rego(&capabilities, &policy, &json!({})).as_deref(),
            Ok(expected),
            "{expression}"
        );
    }
    for text in [" 1", "1 ", "\n1", "Inf", "NaN", "1e400", "0x10", "1_0", "[1]"] {
        let policy = format!("{RESULT}result := to_number(input.s)\n");
        let outcome = rego(&capabilities, &policy, &json!({"s": text}));
        assert!(outcome.is_err(), "to_number({text:?}): {outcome:?}");
    }
}
