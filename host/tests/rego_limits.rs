//! Rego builtins whose result regorus sizes from a number in their operands, as `cip` answers
//! `cluster-image-policy/policy/v1/rego`: each refuses, before allocating, a result past its cap
//! (an error naming the builtin and the cap: the evaluation fails, not compliant), and keeps
//! OPA's answers below it.
//!
//! Found by a review: `numbers.range(1, 1000000000000)` made regorus ask for 24 TB at once, which
//! aborts the process (exit 134: no panic to catch), and with it every evaluation `cip` serves.
//! Each case runs in the test process: without the caps it aborts or takes gigabytes.

use std::time::{Duration, Instant};

mod rego_support;

use cip::capabilities::Capabilities;
use serde_json::{Value, json};

/// `cip`'s answer for a policy holding `isCompliant` when `body` holds, with `result` (a value
/// the body binds) in the warning; or the evaluation's error.
fn evaluate(capabilities: &Capabilities, body: &str, input: &Value) -> Result<Value, String> {
    let policy = format!(
        "package sigstore\nisCompliant[{{\"result\": true, \"warning\": json.marshal(result)}}] {{\n  {body}\n}}\n"
    );
    let answer = rego_support::rego_answer(capabilities, &policy, input)?;
    match answer["warning"].as_str() {
        Some(result) => Ok(serde_json::from_str(result).unwrap()),
        None => Err(format!("not compliant: {answer}")),
    }
}

fn capabilities() -> (tokio::runtime::Runtime, Capabilities) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    (runtime, capabilities)
}

/// Bound on one evaluation in these tests: what the caps prevent took minutes.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Each body fails, with an error holding each of `names`.
fn refused(capabilities: &Capabilities, cases: &[(&str, Value, &[&str])]) {
    for (body, input, names) in cases {
        let started = Instant::now();
        let error = evaluate(capabilities, body, input).expect_err(body);
        let took = started.elapsed();
        for name in *names {
            assert!(error.contains(name), "{body}: {error}");
        }
        // A watchdog against the unbounded work the caps prevent (minutes before them), not
        // a speed measurement: the error naming the cap is what shows the cap acted.
        assert!(took < WATCHDOG, "{body}: {took:?}");
    }
}

#[test]
fn ranges_past_the_cap_are_refused_before_allocating() {
    let (_runtime, capabilities) = capabilities();
    refused(
        &capabilities,
        &[
            (
                "result := count(numbers.range(1, 1000000000000))",
                json!({}),
                &["numbers.range", "100000"],
            ),
            (
                "result := count(numbers.range(1, input.n))",
                json!({"n": 100_000_000}),
                &["numbers.range", "100000"],
            ),
            (
                "result := count(numbers.range(input.n, 0))",
                json!({"n": 100_001}),
                &["numbers.range", "100002 numbers"],
            ),
            (
                "result := count(numbers.range_step(0, 1000000000000, 2))",
                json!({}),
                &["numbers.range_step", "100000"],
            ),
            (
                "result := count(numbers.range_step(0, input.n, 1))",
                json!({"n": -9_000_000_000_000_000_000_i128 as f64}),
                &["numbers.range_step", "100000"],
            ),
        ],
    );
}

#[test]
fn ranges_are_opa_s() {
    let (_runtime, capabilities) = capabilities();
    for (body, expected) in [
        ("result := numbers.range(1, 4)", json!([1, 2, 3, 4])),
        ("result := numbers.range(2, -1)", json!([2, 1, 0, -1])),
        ("result := numbers.range(3, 3)", json!([3])),
        ("result := numbers.range(1.0, 2)", json!([1, 2])),
        ("result := numbers.range_step(0, 10, 3)", json!([0, 3, 6, 9])),
        ("result := numbers.range_step(0, -10, 4)", json!([0, -4, -8])),
        ("result := numbers.range_step(5, 5, 100)", json!([5])),
        ("result := count(numbers.range(1, 100000))", json!(100_000)),
        (
            "result := count(numbers.range_step(0, 999990000, 10000))",
            json!(100_000),
        ),
        (
            "result := numbers.range(9223372036854775807, 9223372036854775808)",
            json!([9_223_372_036_854_775_807_u64, 9_223_372_036_854_775_808_u64]),
        ),
    ] {
        assert_eq!(evaluate(&capabilities, body, &json!({})), Ok(expected), "{body}");
    }
    refused(
        &capabilities,
        &[
            (
                "result := numbers.range(1.5, 2)",
                json!({}),
                &["numbers.range", "operand 1 must be integer"],
            ),
            (
                "result := numbers.range(1, \"2\")",
                json!({}),
                &["numbers.range", "operand 2 must be number"],
            ),
            (
                "result := numbers.range_step(1, 2, 0)",
                json!({}),
                &["numbers.range_step: step must be a positive integer"],
            ),
            (
                "result := numbers.range_step(1, 2, -1)",
                json!({}),
                &["numbers.range_step: step must be a positive integer"],
            ),
            (
                "result := numbers.range_step(1, 2, 0.5)",
                json!({}),
                &["operand 3 must be integer"],
            ),
        ],
    );
}

#[test]
fn sprintf_widths_past_go_s_are_refused_before_allocating() {
    let (_runtime, capabilities) = capabilities();
    refused(
        &capabilities,
        &[
            (
                "result := sprintf(\"%0500000000d\", [1])",
                json!({}),
                &["sprintf", "500000000", "1000000"],
            ),
            (
                "result := sprintf(input.f, [1])",
                json!({"f": "%4000000000d"}),
                &["sprintf", "1000000"],
            ),
            (
                "result := sprintf(\"a %.1000001f\", [1.5])",
                json!({}),
                &["sprintf", "1000001"],
            ),
            (
                "result := sprintf(\"%99999999999999999999999d\", [1])",
                json!({}),
                &["sprintf", "1000000"],
            ),
            // regorus panicked on a digit that is not ASCII.
            (
                "result := sprintf(\"%²d\", [1])",
                json!({}),
                &["sprintf", "ASCII digits"],
            ),
        ],
    );
    for (body, expected) in [
        (
            "result := sprintf(\"%05d|%3d|%s|%.2f|%%|%d\", [42, 7, \"x\", 1.5, 3])",
            json!("00042|  7|x|1.50|%|3"),
        ),
        ("result := count(sprintf(\"%01000000d\", [1]))", json!(1_000_000)),
        ("result := sprintf(\"%v-%v\", [\"a\", 1])", json!("a-1")),
    ] {
        assert_eq!(evaluate(&capabilities, body, &json!({})), Ok(expected), "{body}");
    }
}

#[test]
fn shifts_and_networks_past_the_cap_are_refused() {
    let (_runtime, capabilities) = capabilities();
    refused(
        &capabilities,
        &[
            (
                "result := bits.lsh(1, 4294967295)",
                json!({}),
                &["bits.lsh", "100000 cip"],
            ),
            (
                "result := bits.lsh(1, input.s)",
                json!({"s": 100_001}),
                &["bits.lsh", "100000 cip"],
            ),
            // 100 factors of 100,000 bits: 10^7 bits, computed one by one.
            (
                "result := product([bits.lsh(1, 100000) | numbers.range(1, 100)[_]])",
                json!({}),
                &["product", "100000 bits"],
            ),
            (
                "result := product(numbers.range(1, 100000))",
                json!({}),
                &["product", "100000 bits"],
            ),
            (
                "result := count(net.cidr_expand(\"::/0\"))",
                json!({}),
                &["net.cidr_expand", "2^128"],
            ),
            (
                "result := count(net.cidr_expand(\"10.0.0.0/8\"))",
                json!({}),
                &["net.cidr_expand", "16777216"],
            ),
            (
                "result := count(net.cidr_expand(input.c))",
                json!({"c": "2001:db8::/64"}),
                &["net.cidr_expand"],
            ),
        ],
    );
    for (body, expected) in [
        ("result := bits.lsh(3, 4)", json!(48)),
        ("result := product([2, 3.5, 4])", json!(28)),
        ("result := product({2, 5})", json!(10)),
        ("result := product([])", json!(1)),
        (
            "result := count(format_int(product(numbers.range(1, 1000)), 16))",
            json!(2133),
        ),
        ("result := count(net.cidr_expand(\"10.0.0.0/30\"))", json!(4)),
        ("result := count(net.cidr_expand(\"10.0.0.0/15\"))", json!(131_072)),
        ("result := count(net.cidr_expand(\"2001:db8::/112\"))", json!(65_536)),
    ] {
        let outcome = evaluate(&capabilities, body, &json!({}));
        if body.contains("/15") {
            // 2^17 addresses: past the cap.
            assert!(outcome.is_err_and(|e| e.contains("100000")), "{body}");
            continue;
        }
        assert_eq!(outcome, Ok(expected), "{body}");
    }
}

/// Texts a signer may write whose numbers regorus would read as exact integers: `1e2000000000`
/// is 10^2000000000 (830 MB). None may take memory or time past the input's size.
#[test]
fn numbers_in_signed_texts_stay_small() {
    let (_runtime, capabilities) = capabilities();
    let huge = "1e2000000000";
    refused(
        &capabilities,
        &[
            (
                "result := units.parse(input.s)",
                json!({"s": huge}),
                &["units.parse", "exponent over 1000"],
            ),
            (
                "result := units.parse_bytes(input.s)",
                json!({"s": "\"0e+99999\"KiB"}),
                &["units.parse_bytes", "exponent over 1000"],
            ),
            (
                "result := units.parse(input.s)",
                json!({"s": "1".repeat(1001)}),
                &["units.parse", "1001 characters"],
            ),
        ],
    );
    for (body, expected) in [
        ("result := units.parse(\"1e3k\")", json!(1_000_000)),
        ("result := units.parse(\"2Ki\")", json!(2048)),
        ("result := units.parse_bytes(\"1.5KiB\")", json!(1536)),
        ("result := units.parse(\"1e-3\")", json!(0.001)),
    ] {
        assert_eq!(evaluate(&capabilities, body, &json!({})), Ok(expected), "{body}");
    }
    for body in [
        "result := to_number(input.s) == 0",
        "result := json.unmarshal(input.s) == 0",
        "result := json.unmarshal(concat(\"\", [\"[\", input.s, \"]\"])) == [0]",
        "result := yaml.unmarshal(input.s) == 0",
        "result := units.parse(input.s) == 0",
        "result := units.parse_bytes(input.s) == 0",
    ] {
        for text in [huge, "0e2000000000", "1e-2000000000"] {
            let started = Instant::now();
            let outcome = evaluate(&capabilities, body, &json!({"s": text}));
            let took = started.elapsed();
            // A watchdog (regorus computed `1e2000000000` for 13 minutes and more), not a
            // speed measurement.
            assert!(took < WATCHDOG, "{body} on {text}: {took:?}: {outcome:?}");
        }
    }
}

/// Statements binding `s` to a string of 1,000,000 zeros and `xs` to an array naming it 100,000
/// times: a few MB in memory (the array holds the same string), 100 GB written out.
const MANY_COPIES: &str = "s := sprintf(\"%01000000d\", [0])\n  xs := [s | numbers.range(1, 100000)[_]]";

/// Statements binding `a0` to `leaf` and `a{n}` to `[a{n-1}, a{n-1}]` up to `a{levels}`: a
/// value of `2^levels` leaves sharing one string, in a few hundred bytes.
fn dag(leaf: &str, levels: u32) -> String {
    let mut body = format!("a0 := {leaf}");
    for level in 1..=levels {
        body += &format!("\n  a{level} := [a{}, a{}]", level - 1, level - 1);
    }
    body
}

/// The cap on a result written out, as the errors name it.
const CAP: &str = "16777216 cip gives";

/// Results built whole in one builtin call from operands sharing structure: `concat` of a string
/// named 100,000 times (100 GB), `replace` with a long replacement, and the serialisers on a
/// value of 2^40 leaves (terabytes). Without the caps each takes all the memory the machine has,
/// or aborts the process: neither the time limit nor the memory limit acts inside one call.
#[test]
fn results_larger_than_their_operands_are_refused_before_building_them() {
    let (_runtime, capabilities) = capabilities();
    let huge_dag = dag("\"x\"", 40);
    let cases: Vec<(String, &[&str])> = vec![
        (
            format!("{MANY_COPIES}\n  result := count(concat(\"\", xs))"),
            &["concat", CAP],
        ),
        (
            format!("{MANY_COPIES}\n  result := count(concat(\",\", {{concat(\"\", [s, format_int(i, 10)]) | i := numbers.range(1, 17)[_]}}))"),
            &["concat", CAP],
        ),
        // 17 MB: just past the cap.
        (
            "s := sprintf(\"%01000000d\", [0])\n  result := count(concat(\"\", [s | numbers.range(1, 17)[_]]))".to_owned(),
            &["concat", "17000000 bytes", CAP],
        ),
        (
            format!("{MANY_COPIES}\n  result := count(replace(s, \"0\", s))"),
            &["replace", CAP],
        ),
        (
            "s := sprintf(\"%01000000d\", [0])\n  result := count(replace(s, \"\", \"abcdefghijklmnopq\"))".to_owned(),
            &["replace", CAP],
        ),
        (
            format!("{MANY_COPIES}\n  result := count(strings.replace_n({{\"0\": s}}, s))"),
            &["strings.replace_n", CAP],
        ),
        // Each pattern multiplies what the previous ones made by 20: 1,000 bytes, then 20,000,
        // 400,000, 8,000,000, 160,000,000.
        (
            concat!(
                "t := concat(\"\", [\"0\" | numbers.range(1, 1000)[_]])\n  ",
                "p := {d: concat(\"\", [n | numbers.range(1, 20)[_]]) | d := [\"0\", \"1\", \"2\", \"3\"][i]; n := format_int(i + 1, 10)}\n  ",
                "result := count(strings.replace_n(p, t))"
            )
            .to_owned(),
            &["strings.replace_n", "160000000 bytes", CAP],
        ),
        (
            format!("{huge_dag}\n  result := count(json.marshal(a40))"),
            &["json.marshal", CAP],
        ),
        (
            format!("{huge_dag}\n  result := count(base64.encode(json.marshal(a40)))"),
            &["json.marshal", CAP],
        ),
        (
            format!("{huge_dag}\n  result := count(json.marshal_with_options(a40, {{\"pretty\": false}}))"),
            &["json.marshal_with_options", CAP],
        ),
        (
            format!("{huge_dag}\n  result := count(yaml.marshal({{\"k\": a40}}))"),
            &["yaml.marshal", CAP],
        ),
        (
            format!("{huge_dag}\n  result := count(sprintf(\"%v\", [a40]))"),
            &["sprintf", CAP],
        ),
        (
            format!("{MANY_COPIES}\n  result := count(sprintf(\"%s\", [xs]))"),
            &["sprintf", CAP],
        ),
        // 17 widths of 1,000,000, each within Go's.
        (
            "f := concat(\"\", [\"%01000000d\" | numbers.range(1, 17)[_]])\n  result := count(sprintf(f, numbers.range(1, 17)))".to_owned(),
            &["sprintf", "17000000 bytes", CAP],
        ),
        // 100,000 lines, each indented by a 1 MB string.
        (
            "s := sprintf(\"%01000000d\", [0])\n  result := count(json.marshal_with_options(numbers.range(1, 100000), {\"indent\": s}))".to_owned(),
            &["json.marshal_with_options", CAP],
        ),
        (
            format!("{MANY_COPIES}\n  result := count(urlquery.encode_object({{\"k\": xs}}))"),
            &["urlquery.encode_object", CAP],
        ),
    ];
    let cases: Vec<(&str, Value, &[&str])> = cases
        .iter()
        .map(|(body, names)| (body.as_str(), json!({}), *names))
        .collect();
    refused(&capabilities, &cases);
    // The process is alive and the same calls under the cap are answered.
    let honest_dag = dag("concat(\"\", [\"0123456789\" | numbers.range(1, 10)[_]])", 16);
    for (body, expected) in [
        (
            "s := sprintf(\"%01000000d\", [0])\n  result := count(concat(\"\", [s | numbers.range(1, 16)[_]]))"
                .to_owned(),
            json!(16_000_000),
        ),
        (
            "result := concat(\"-\", [\"a\", \"b\", \"c\"])".to_owned(),
            json!("a-b-c"),
        ),
        ("result := concat(\"-\", {\"b\", \"a\"})".to_owned(), json!("a-b")),
        (
            "result := replace(\"a.b.c\", \".\", \"::\")".to_owned(),
            json!("a::b::c"),
        ),
        ("result := replace(\"abc\", \"\", \"-\")".to_owned(), json!("-a-b-c-")),
        (
            "result := strings.replace_n({\"a\": \"1\", \"b\": \"22\"}, \"abcab\")".to_owned(),
            json!("122c122"),
        ),
        (
            "result := json.marshal({\"a\": [1, \"x\", null]})".to_owned(),
            json!("{\"a\":[1,\"x\",null]}"),
        ),
        (
            "result := json.marshal_with_options({\"a\": [1]}, {\"pretty\": true, \"indent\": \"  \"})".to_owned(),
            json!("{\n  \"a\": [\n    1\n  ]\n}"),
        ),
        ("result := yaml.marshal({\"a\": 1})".to_owned(), json!("a: 1\n")),
        (
            "result := sprintf(\"%v|%s\", [[1, \"a\"], {\"k\": 2}])".to_owned(),
            json!("[1, \"a\"]|{\"k\": 2}"),
        ),
        (
            "result := urlquery.encode_object({\"a\": [\"1\", \"2\"], \"b\": \"x y\"})".to_owned(),
            json!("a=1&a=2&b=x+y"),
        ),
        // 65,536 strings of 100 bytes, quoted, and 65,535 arrays of two: 6,881,277 bytes.
        (
            format!("{honest_dag}\n  result := count(json.marshal(a16))"),
            json!(6_881_277),
        ),
        (
            format!("{honest_dag}\n  result := count(base64.encode(json.marshal(a16)))"),
            json!(9_175_036),
        ),
    ] {
        assert_eq!(evaluate(&capabilities, &body, &json!({})), Ok(expected), "{body}");
    }
}

/// Found by the review of the caps: the policy's own `isCompliant` was written out whole to be
/// read, so a value sharing structure (2^40 leaves in a few hundred bytes) aborted the process,
/// and with it every admission the provider answers. It is sized first: refused past the cap,
/// read as before under it.
#[test]
fn an_is_compliant_sharing_structure_is_refused_before_it_is_written_out() {
    let (_runtime, capabilities) = capabilities();
    let ask = |levels: u32| {
        let policy = format!(
            "package sigstore\nisCompliant = [{{\"result\": true, \"warning\": \"\", \"error\": \"\", \"x\": a{levels}}}] {{\n  {}\n}}\n",
            dag("\"x\"", levels)
        );
        rego_support::rego_answer(&capabilities, &policy, &json!({}))
    };
    let refused = ask(40).expect_err("a result of 2^40 leaves");
    assert!(
        refused.contains("isCompliant takes at least") && refused.contains("16777216"),
        "{refused}"
    );
    let answered = ask(4).expect("a result of 16 leaves");
    assert_eq!(answered["compliant"], true, "{answered}");
}

/// `regex.replace` (Go's `ReplaceAllString`, `cip`'s own builtin) writes the template once per
/// match, each `$1` the group's text: 200 copies of a 100 KB group in one call is 20 MB, past
/// the cap on a result; 100 copies are answered.
#[test]
fn a_regex_replace_past_the_cap_is_refused() {
    let (_runtime, capabilities) = capabilities();
    let body = |copies: u32| {
        format!(
            "s := sprintf(\"%0100000d\", [0])\n  t := concat(\"\", [\"$1\" | numbers.range(1, {copies})[_]])\n  \
             result := count(regex.replace(s, \"(0+)\", t))"
        )
    };
    refused(&capabilities, &[(&body(200), json!({}), &["regex.replace", CAP])]);
    assert_eq!(evaluate(&capabilities, &body(100), &json!({})), Ok(json!(10_000_000)));
}
