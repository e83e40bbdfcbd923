//! Rego's `time.parse_rfc3339_ns`, `time.parse_ns` and `time.parse_duration_ns`, as `cip`
//! answers `cluster-image-policy/policy/v1/rego`, against Go's own `time` package (OPA's,
//! policy-controller's): on generated texts, a time Go reads gives the same nanoseconds, and one
//! Go refuses fails the evaluation (strict builtin errors), never a number.
//!
//! Go's `time` runs in `scripts/go-time.go`, built by `make test-tools` (part of `make test`);
//! without it the test fails, it is never skipped.

mod rego_support;

use cip::capabilities::Capabilities;
use serde_json::{Value, json};
use testkit::{GoTime, Rng};

/// Texts per run; `REGO_GO_TIME_CASES` raises it, `REGO_GO_TIME_SEED` replays a run.
const CASES: usize = 3000;

/// The builtin `input.builtin` names, on `input.text`; its result in a warning.
const POLICY: &str = r#"package sigstore

n = time.parse_rfc3339_ns(input.text) { input.builtin == "parse_rfc3339_ns" }
n = time.parse_ns(input.layout, input.text) { input.builtin == "parse_ns" }
n = time.parse_duration_ns(input.text) { input.builtin == "parse_duration_ns" }

isCompliant[{"result": true, "warning": json.marshal(n)}] {
  true
}
"#;

/// `cip`'s answer to `cluster-image-policy/policy/v1/rego` for `policy` on `input`, or the
/// evaluation's error.
fn evaluate(capabilities: &Capabilities, policy: &str, input: &Value) -> Result<Value, String> {
    rego_support::rego_answer(capabilities, policy, input)
}

/// `Some(nanoseconds)`, or `None` when the evaluation fails.
fn rego(capabilities: &Capabilities, input: &Value) -> Option<i64> {
    let answer = evaluate(capabilities, POLICY, input).ok()?;
    assert_eq!(answer["compliant"], true, "{input}: {answer}");
    let warning = answer["warning"].as_str().expect("the result");
    Some(
        warning
            .parse()
            .unwrap_or_else(|_| panic!("{input}: {warning:?} is not an integer")),
    )
}

fn compare(cases: &[(Value, GoTime)]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = &Capabilities::without_registry(runtime.handle().clone());
    let questions: Vec<GoTime> = cases
        .iter()
        .map(|(_, question)| match question {
            GoTime::Parse { layout, text } => GoTime::Parse { layout, text },
            GoTime::Duration(text) => GoTime::Duration(text),
        })
        .collect();
    let go = testkit::go_times(&questions).expect("Go's time package (make test-tools)");
    let (mut read, mut older_go) = (0, 0);
    for ((input, _), go) in cases.iter().zip(go) {
        match (rego(capabilities, input), go) {
            (Some(ours), Ok(go)) => {
                assert_eq!(ours, go, "{input}: cip and Go read different times");
                read += 1;
            }
            (None, Err(_)) => {}
            (Some(_), Err(_)) if nano_fraction_of_newer_go(input) => older_go += 1,
            (Some(ours), Err(go)) => panic!("{input}: cip reads {ours}, Go refuses it: {go}"),
            (None, Ok(_)) if out_of_range_offset(input["text"].as_str().unwrap_or_default()) => older_go += 1,
            (None, Ok(go)) => panic!("{input}: cip refuses what Go reads as {go}"),
        }
    }
    eprintln!("{read} read alike, {older_go} read by Go 1.19 otherwise than by Go 1.20 on");
    // The texts are built so that both outcomes are common.
    assert!(
        read * 20 > cases.len() && read * 20 < cases.len() * 19,
        "{read} of {} read",
        cases.len()
    );
}

/// Whether `text` ends in an offset of more than 24 hours or 60 minutes. Go reads those until
/// 1.19 (Debian 12's, the reference here) and refuses them since 1.20 (`time zone offset hour
/// out of range`), as the Go OPA and policy-controller are built with does: refused here.
fn out_of_range_offset(text: &str) -> bool {
    let Some(offset) = text.len().checked_sub(6).and_then(|at| text.get(at..)) else {
        return false;
    };
    let bytes = offset.as_bytes();
    let number = |digits: &[u8]| std::str::from_utf8(digits).ok()?.parse::<u32>().ok();
    matches!(bytes[0], b'+' | b'-')
        && bytes[3] == b':'
        && matches!(
            (number(&bytes[1..3]), number(&bytes[4..6])),
            (Some(hours), Some(minutes)) if hours > 24 || minutes > 60
        )
}

/// Whether `input` is `time.parse_ns` with the `RFC3339Nano` layout on a fraction of more than
/// nine digits or after `,`. Go 1.20 on reads those as the `RFC3339` layout does (a fast path
/// for both layouts, and `stdFracSecond9` taking any number of digits after `.` or `,`); Go 1.19
/// refuses them. Read here as the Go OPA is built with reads them.
fn nano_fraction_of_newer_go(input: &Value) -> bool {
    let text = input["text"].as_str().unwrap_or_default();
    let long_fraction = text
        .split('.')
        .skip(1)
        .any(|after| after.bytes().take_while(u8::is_ascii_digit).count() > 9);
    matches!(input["layout"].as_str(), Some("RFC3339Nano" | go_time::RFC3339_NANO))
        && (long_fraction || text.contains(','))
}

#[test]
fn rfc3339_times_in_rego_are_read_as_go_reads_them() {
    let count = testkit::case_count("REGO_GO_TIME_CASES", CASES);
    let mut rng = Rng(testkit::run_seed("REGO_GO_TIME_SEED", None));
    let texts = testkit::time_texts(count, &mut rng);
    let mut cases = Vec::new();
    for text in &texts {
        cases.push((
            json!({"builtin": "parse_rfc3339_ns", "text": text}),
            GoTime::Parse {
                layout: "RFC3339",
                text,
            },
        ));
        for layout in ["RFC3339", "RFC3339Nano", go_time::RFC3339, go_time::RFC3339_NANO] {
            if rng.chance(25) {
                cases.push((
                    json!({"builtin": "parse_ns", "layout": layout, "text": text}),
                    GoTime::Parse { layout, text },
                ));
            }
        }
    }
    compare(&cases);
}

#[test]
fn durations_in_rego_are_read_as_go_reads_them() {
    let count = testkit::case_count("REGO_GO_TIME_CASES", CASES);
    let mut rng = Rng(testkit::run_seed("REGO_GO_TIME_SEED", None));
    let texts = testkit::duration_texts(count, &mut rng);
    let cases: Vec<_> = texts
        .iter()
        .map(|text| {
            (
                json!({"builtin": "parse_duration_ns", "text": text}),
                GoTime::Duration(text),
            )
        })
        .collect();
    compare(&cases);
}

#[test]
fn other_layouts_are_refused_naming_them() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    let input = json!({"builtin": "parse_ns", "layout": "2006-01-02", "text": "2024-01-01"});
    let error = evaluate(&capabilities, POLICY, &input).unwrap_err();
    assert!(
        error.contains(r#"time.parse_ns: cip reads times in the layouts RFC3339 and RFC3339Nano only"#)
            && error.contains(r#""2006-01-02""#),
        "{error}"
    );
}

/// A scan attestation's freshness rule, as users write it: a time OPA cannot read makes the rule
/// fail, so a signer's `2026-12-06t10:00:00z` (which chrono, regorus' reader, takes) passes no
/// freshness check under `cip` either.
#[test]
fn a_freshness_rule_passes_only_times_go_reads() {
    const FRESH: &str = r#"package sigstore
isCompliant {
  time.now_ns() - time.parse_rfc3339_ns(input.predicate.metadata.scanFinishedOn) < 7 * 24 * 3600 * 1000000000
}
"#;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    let passes = |finished: &str| {
        let input = json!({"predicate": {"metadata": {"scanFinishedOn": finished}}});
        evaluate(&capabilities, FRESH, &input).map(|answer| answer["compliant"] == true)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rem) = (now / 86_400, now % 86_400);
    let (y, m, d) = go_time::civil_from_days(i64::try_from(days).unwrap());
    let today = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    assert_eq!(passes(&format!("{today}Z")).ok(), Some(true), "a fresh scan passes");
    assert_eq!(passes("2020-01-01T00:00:00Z").ok(), Some(false), "an old scan fails");
    for unread in [
        format!("{today}z"),
        format!("{}t{}Z", &today[..10], &today[11..]),
        format!("{} {}Z", &today[..10], &today[11..]),
    ] {
        let error = passes(&unread).expect_err(&unread);
        assert!(
            error.contains("time.parse_rfc3339_ns") && error.contains("is not a time Go's time.Parse reads"),
            "{error}"
        );
    }
}
