//! The memory a Rego evaluation may take, as `cip` answers `cluster-image-policy/policy/v1/rego`.
//!
//! Found by a review: the builtins' caps are per call, so a comprehension could still build
//! gigabytes of medium-sized values within the time limit (here 1,200 strings of 1 MB, 1.2 GB,
//! in under the 2 s), and in the Gatekeeper provider (one process, a pod limit of 512 MiB)
//! that is the kernel killing the provider, and every admission failing with it. `cip` now
//! stops an evaluation once the memory it holds passes `--rego-memory-limit` (256 MiB by
//! default, 64 MiB here): the evaluation fails (not compliant), with an error naming the limit.
//!
//! One test function: it measures the process's peak resident memory (`VmHWM`, reset before
//! each policy), which tests running at the same time in this process would blur.

mod rego_support;

use cip::capabilities::{Capabilities, set_rego_memory_limit_mib};
use serde_json::{Value, json};

/// `cip`'s answer for `policy`, or the evaluation's error.
fn evaluate(capabilities: &Capabilities, policy: &str) -> Result<Value, String> {
    rego_support::rego_answer(capabilities, policy, &json!({}))
}

/// Resets the process's peak resident memory to what it holds now (Linux, `clear_refs` 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// The process's peak resident memory, in bytes (Linux `/proc/self/status`).
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Hostile policies, each builtin call within its cap:
/// - an array doubled 27 times (`array.concat(a, a)`), 2^27 values: on `main` without the
///   limit this process's peak resident memory grew by ≈ 1.1 GB (to 1.18 GB) before the time
///   limit stopped it (the time limit is checked between statements, and one doubling takes
///   seconds in a debug build);
/// - a comprehension building 1,200 distinct strings of 1 MB (1.2 GB; a debug build reaches
///   ≈ 420 MB of it in the 2 s, a release build all of it).
fn hostile() -> [String; 2] {
    let mut doubled = String::from("package sigstore\nisCompliant {\n  a0 := [\"x\"]\n");
    for i in 1..=27 {
        doubled.push_str(&format!("  a{i} := array.concat(a{}, a{})\n", i - 1, i - 1));
    }
    doubled.push_str("  count(a27) > 0\n}\n");
    let strings = r#"package sigstore
isCompliant {
  s := sprintf("%01000000d", [0])
  xs := [concat("", [s, format_int(i, 10)]) | i := numbers.range(1, 1200)[_]]
  count(xs) > 0
}
"#;
    [doubled, strings.to_owned()]
}

/// The article's policy shapes: a boolean over the authorities, and a set of results.
const HONEST: [&str; 2] = [
    "package sigstore\ndefault isCompliant = false\nisCompliant { count(input) == 0 }\n",
    "package sigstore\nisCompliant[r] {\n  r := {\"result\": true, \"error\": \"\", \"warning\": \"checked\"}\n}\n",
];

const MIB: u64 = 1024 * 1024;

/// The limit here (`--rego-memory-limit 64`): reached in a few steps, well before the time
/// limit even on a loaded machine.
const LIMIT_MIB: u64 = 64;

#[test]
fn an_evaluation_past_the_memory_limit_fails_and_the_next_one_passes() {
    set_rego_memory_limit_mib(LIMIT_MIB);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    for policy in HONEST {
        assert_eq!(
            evaluate(&capabilities, policy).unwrap()["compliant"],
            json!(true),
            "{policy}"
        );
    }
    for policy in hostile() {
        reset_peak();
        let before = peak_resident_bytes();
        let result = evaluate(&capabilities, &policy);
        let grown = peak_resident_bytes().saturating_sub(before);
        eprintln!("peak resident memory grew by {} MiB: {result:?}", grown / MIB);
        let error = result.expect_err(&policy);
        assert!(error.contains("--rego-memory-limit"), "{error}");
        assert!(error.contains(&format!("the {LIMIT_MIB} MiB")), "{error}");
        // Far below the 1.2 GB the policy asks for. The limit is checked between steps, so
        // one step past it counts too (here the last doubling: up to twice the limit).
        assert!(grown < 4 * LIMIT_MIB * MIB, "the process grew by {} MiB", grown / MIB);
    }
    // The memory is released with the failed evaluation: the honest policies pass again.
    for policy in HONEST {
        assert_eq!(
            evaluate(&capabilities, policy).unwrap()["compliant"],
            json!(true),
            "{policy}"
        );
    }
}
