//! The `cip` binary on the real policy module: `run` prints kwctl's AdmissionResponse and exits 0
//! for allow and deny, non-zero when evaluation cannot run; `verify` prints verdicts and exits 1
//! on deny; `bench` reports timings; every command's help has examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn policy() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm");
    assert!(
        path.exists(),
        "{} is missing: build it with `make policy.wasm`",
        path.display()
    );
    path
}

/// The bound of one `cip` command (`run` and `bench` compile the policy module in a debug
/// build): generous for a loaded CI machine, so a hung `cip` fails its test instead of hanging
/// the run.
const CIP_LIMIT: Duration = Duration::from_secs(300);

/// Runs `cip` with `args` to completion, within [`CIP_LIMIT`].
fn cip(args: &[&str]) -> Output {
    testkit::run_bounded(Command::new(env!("CARGO_BIN_EXE_cip")).args(args), CIP_LIMIT).expect("the cip binary runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn run_prints_an_allowing_admission_response() {
    let (request, settings, policy) = (fixture("pod-library.json"), fixture("static-settings.yaml"), policy());
    let output = cip(&[
        "run",
        "--request-path",
        path(&request),
        "--settings-path",
        path(&settings),
        path(&policy),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout_json(&output),
        json!({"uid": "1299d386-525b-4032-98ae-1949f69f9cfc", "allowed": true,
               "auditAnnotations": null, "warnings": null})
    );
}

#[test]
fn run_prints_a_denial_and_still_exits_zero() {
    let (request, settings, policy) = (fixture("pod-evil.json"), fixture("static-settings.yaml"), policy());
    let output = cip(&["run", "-r", path(&request), "-s", path(&settings), path(&policy)]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response = stdout_json(&output);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["uid"], "1299d386-525b-4032-98ae-1949f69f9cfc");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("denied by policy block-evil"), "{response:#}");
    assert!(
        response.get("patch").is_none() && response.get("patchType").is_none(),
        "{response:#}"
    );
}

/// CUE counts beyond 32 bits in the wasm32 module: `list.MinItems(4294967296)` refuses the
/// Pod's one-container list (as CUE does), `list.MaxItems(4294967297)` passes it. The module
/// read them as their low 32 bits (MinItems(0), MaxItems(1)); native unit tests, with a 64-bit
/// `usize`, could not see it.
#[test]
fn run_reads_cue_counts_beyond_32_bits_whole() {
    let request = fixture("pod-library.json");
    let decide = |constraint: &str| {
        let settings = json!({"policies": [{
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "counts"},
            "spec": {
                "images": [{"glob": "docker.io/library/**"}],
                "authorities": [{"name": "pass-all", "static": {"action": "pass"}}],
                "policy": {"type": "cue", "includeSpec": true,
                           "data": format!("import \"list\"\nspec: containers: {constraint}\n")},
            },
        }]});
        run_inline(&request, &settings)
    };
    for (constraint, allowed) in [
        ("list.MinItems(4294967296)", false),
        ("list.MinItems(1)", true),
        ("list.MaxItems(4294967297)", true),
        ("list.MaxItems(0)", false),
    ] {
        let response = decide(constraint);
        assert_eq!(response["allowed"], allowed, "{constraint}: {response:#}");
    }
}

#[test]
fn run_accepts_a_whole_admission_review_and_inline_settings() {
    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("pod-evil.json")).expect("fixture")).expect("json");
    let dir = tempfile::tempdir().expect("tempdir");
    let review = dir.path().join("review.json");
    std::fs::write(
        &review,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).to_string(),
    )
    .expect("write");
    let settings: Value =
        serde_yaml::from_str(&std::fs::read_to_string(fixture("static-settings.yaml")).expect("fixture"))
            .expect("yaml");
    assert_eq!(run_inline(&review, &settings)["allowed"], false);
}

/// `cip run` of the real module on the request at `request` with `settings` inline
/// (`--settings-json`): its AdmissionResponse, once it exited 0.
fn run_inline(request: &Path, settings: &Value) -> Value {
    let output = cip(&[
        "run",
        "--request-path",
        path(request),
        "--settings-json",
        &settings.to_string(),
        path(&policy()),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(&output)
}

#[test]
fn run_refuses_invalid_settings_before_evaluating() {
    let output = cip(&[
        "run",
        "-r",
        path(&fixture("pod-library.json")),
        "--settings-json",
        r#"{"policies": 3}"#,
        path(&policy()),
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty(), "no AdmissionResponse on invalid settings");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the settings are not valid: policies"), "{stderr}");
}

#[test]
fn an_empty_settings_file_is_refused_not_read_as_no_policies() {
    // Found by a review: a CI job whose settings file came out empty passed every image
    // (`{}`: no policies, unmatched images admitted with a warning).
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("settings.yaml");
    std::fs::write(&empty, " \n").expect("write");
    let request = fixture("pod-library.json");
    let module = policy();
    for command in [
        vec!["run", "-r", path(&request)],
        vec!["verify", "--namespace", "default"],
    ] {
        let mut args = command.clone();
        args.extend(["--settings-path", path(&empty), path(&module)]);
        if command[0] == "verify" {
            args.push("myregistry.com/app:v1");
        }
        let output = cip(&args);
        assert_ne!(output.status.code(), Some(0), "{command:?}");
        assert!(
            output.stdout.is_empty(),
            "{command:?}: no verdict on an empty settings file"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is empty (or blank): refused"), "{command:?}: {stderr}");
    }
}

#[test]
fn settings_without_policies_are_refused_not_read_as_no_policies() {
    // Found by a review: Kubewarden passes `{}` when a ClusterAdmissionPolicy has no
    // `spec.settings`, and `{}` admitted every image with a warning. `policies: []` says "none".
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("settings.yaml");
    std::fs::write(&file, "noMatchPolicy: warn\n").expect("write");
    let request = fixture("pod-library.json");
    let module = policy();
    for settings in [
        vec![],
        vec!["--settings-json", "{}"],
        vec!["--settings-path", path(&file)],
    ] {
        let mut args = vec!["run", "-r", path(&request)];
        args.extend(settings.iter().copied());
        args.push(path(&module));
        let output = cip(&args);
        assert_ne!(output.status.code(), Some(0), "{settings:?}");
        assert!(output.stdout.is_empty(), "{settings:?}: no AdmissionResponse");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("the settings are not valid: policies: required") && stderr.contains("`policies: []`"),
            "{settings:?}: {stderr}"
        );
    }
    let none = run_inline(&request, &serde_json::json!({"policies": []}));
    assert_eq!(none["allowed"], true, "{none}");
}

#[test]
fn run_fails_clearly_on_missing_files_and_bad_modules() {
    let output = cip(&["run", "-r", "/nonexistent/request.json", path(&policy())]);
    assert_ne!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/request.json"));

    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not wasm").expect("write");
    let output = cip(&["run", "-r", path(&fixture("pod-library.json")), path(&bogus)]);
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot compile policy module bogus.wasm"), "{stderr}");
}

#[test]
fn verify_prints_json_verdicts_and_exits_one_on_deny() {
    let settings = fixture("static-settings.yaml");
    let output = cip(&[
        "verify",
        "-s",
        path(&settings),
        "--output",
        "json",
        path(&policy()),
        "docker.io/library/nginx:1.27",
        "evil.example.com/miner:v1",
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = stdout_json(&output)["results"].clone();
    assert_eq!(results[0]["verdict"], "allow");
    assert_eq!(results[0]["namespace"], "default");
    assert_eq!(results[1]["verdict"], "deny");
    assert_eq!(results[1]["policies"][0]["name"], "block-evil");

    let output = cip(&[
        "verify",
        "-s",
        path(&settings),
        "--policy",
        path(&policy()),
        "docker.io/library/nginx:1.27",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("ALLOW"), "{table}");
    assert!(table.contains("policy allow-library (enforce): passed"), "{table}");
}

/// `cip bench`'s JSON report for the library pod under static settings: `iterations` measured
/// evaluations after 2 of warm-up, with `extra` flags.
fn bench_report(iterations: &str, extra: &[&str]) -> Value {
    let (pod, settings, module) = (fixture("pod-library.json"), fixture("static-settings.yaml"), policy());
    let mut args = vec!["bench", "-r", path(&pod), "-s", path(&settings)];
    args.extend(["--iterations", iterations, "--warmup", "2", "--output", "json"]);
    args.extend(extra);
    args.push(path(&module));
    let output = cip(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(&output)
}

#[test]
fn bench_reports_percentiles_and_host_time() {
    let report = bench_report("50", &[]);
    assert_eq!(report["iterations"], 50);
    assert_eq!(report["accepted"], true);
    assert_eq!(report["fresh_instances"], 0, "warm-up filled the pool: {report:#}");
    let median = report["evaluation"]["median_us"].as_f64().expect("median");
    let p99 = report["evaluation"]["p99_us"].as_f64().expect("p99");
    let min = report["evaluation"]["min_us"].as_f64().expect("min");
    assert!(0.0 < min && min <= median && median <= p99, "{report:#}");
    assert_eq!(
        report["host_callbacks"]["max_us"], 0.0,
        "static authorities make no host call"
    );
    let faults = report["page_faults_per_evaluation"].as_f64().expect("faults on Linux");
    assert!(faults >= 0.0, "{report:#}");
}

/// With a fresh instance per evaluation, each instance touches pages of its own memory (its
/// stack, at least): `cip bench` counts them.
#[test]
fn bench_counts_the_page_faults_of_fresh_instances() {
    let report = bench_report("20", &["--fresh-instances"]);
    assert_eq!(report["fresh_instances"], 20, "{report:#}");
    let faults = report["page_faults_per_evaluation"].as_f64().expect("faults on Linux");
    assert!(faults >= 1.0, "{report:#}");
}

#[test]
fn every_command_has_help_with_examples() {
    for command in ["run", "bench", "verify"] {
        let output = cip(&[command, "--help"]);
        assert_eq!(output.status.code(), Some(0));
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Examples:"), "cip {command} --help:\n{help}");
        assert!(
            help.contains(&format!("cip {command} ")),
            "cip {command} --help:\n{help}"
        );
    }
}

/// A CIP with a `spec.policy` of `language` and `text`, covering no image of pod-library.json.
fn settings_with_policy(language: &str, text: &str) -> String {
    serde_json::json!({"policies": [{
        "metadata": {"name": "lint-me"},
        "spec": {
            "images": [{"glob": "myregistry.com/critical/**"}],
            "authorities": [{"name": "security-team", "static": {"action": "pass"}}],
            "policy": {"type": language, "data": text},
        },
    }]})
    .to_string()
}

#[test]
fn run_names_an_unused_cue_import_as_a_warning_and_still_evaluates() {
    let settings = settings_with_policy(
        "cue",
        "package main\nimport \"time\"\nauthorizations: {\"security-team\": true}\n",
    );
    let output = cip(&[
        "run",
        "-r",
        path(&fixture("pod-library.json")),
        "--settings-json",
        &settings,
        path(&policy()),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: policy lint-me: spec.policy imports \"time\" but never uses it"),
        "{stderr}"
    );
    assert_eq!(stdout_json(&output)["allowed"], true);
}

#[test]
fn run_refuses_a_rego_policy_that_does_not_compile_before_evaluating() {
    let settings = settings_with_policy("rego", "package sigstore\nisCompliant {\n");
    let output = cip(&[
        "run",
        "-r",
        path(&fixture("pod-library.json")),
        "--settings-json",
        &settings,
        path(&policy()),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(output.stdout.is_empty(), "no AdmissionResponse on invalid settings");
    assert!(
        stderr.contains("the settings are not valid: policies[0].spec.policy.data: the Rego policy does not compile"),
        "{stderr}"
    );
}
