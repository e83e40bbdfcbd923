//! `cip bench` on a realistic admission: a 10-container pod under 20 key-based policies, every
//! image signed in a real loopback registry. Checks that warm evaluations answer every look-up
//! from the caches (no registry traffic) and prints the measured figures.
//!
//! Set `CIP_BENCH_BIN=target/release/cip` to measure a release build of the host with the same
//! scenario (the test binary itself may stay a debug build).

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

/// The bound of the `cip bench` run (300 evaluations of a 10-container pod in a debug build):
/// generous, so only a hung bench trips it.
const BENCH_LIMIT: Duration = Duration::from_secs(900);

#[test]
fn bench_a_ten_container_pod_under_twenty_policies() -> anyhow::Result<()> {
    let policy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm");
    assert!(
        policy.exists(),
        "{} is missing: build it with `make policy.wasm`",
        policy.display()
    );

    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let keys = [testkit::KeyPair::ecdsa_p256()?, testkit::KeyPair::ecdsa_p256()?];
    let mut images = Vec::new();
    for i in 0..10 {
        let repo = format!("team/app{i}");
        let digest = testkit::push_image(&host, &repo, "v1", &format!("bench-{i}"))?;
        for key in &keys {
            testkit::sign_with_key(&host, &repo, &digest, key, &Default::default())?;
        }
        images.push(format!("{host}/{repo}:v1"));
    }
    let policies: Vec<Value> = (0..20)
        .map(|i| {
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1",
                "kind": "ClusterImagePolicy",
                "metadata": {"name": format!("policy-{i}")},
                "spec": {
                    "images": [{"glob": format!("{host}/team/app{}*", i % 10)}],
                    "authorities": [{"name": "team-key", "key": {"data": keys[i % 2].public_key_pem()}}]
                }
            })
        })
        .collect();
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let request = json!({
        "uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE", "namespace": "default", "name": "bench",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "namespace": "default"},
                   "spec": {"containers": containers}}
    });

    let dir = tempfile::tempdir()?;
    let request_path = dir.path().join("pod.json");
    let settings_path = dir.path().join("settings.json");
    let sources_path = dir.path().join("sources.yaml");
    std::fs::write(&request_path, request.to_string())?;
    std::fs::write(&settings_path, json!({"policies": policies}).to_string())?;
    std::fs::write(&sources_path, format!("insecure_sources: [\"{host}\"]\n"))?;

    let cip = std::env::var_os("CIP_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_cip").into());
    let output = testkit::run_bounded(
        Command::new(cip)
            .arg("bench")
            .arg("--request-path")
            .arg(&request_path)
            .arg("--settings-path")
            .arg(&settings_path)
            .arg("--sources-path")
            .arg(&sources_path)
            .args(["--iterations", "300", "--warmup", "3", "--output", "json"])
            .arg(&policy),
        BENCH_LIMIT,
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)?;
    eprintln!("{report:#}");
    assert_eq!(
        report["accepted"], true,
        "every image is signed by the keys its policies name: {report:#}"
    );
    let calls = report["host_calls_per_evaluation"].as_f64().unwrap_or_default();
    assert!(calls >= 10.0, "each of the 10 images is looked up: {report:#}");
    assert_eq!(report["fresh_instances"], 0, "{report:#}");
    // Only the warm-up reached the verifier; every measured look-up came from the memo.
    let verifier_lookups = report["verification_cache"]["misses"].as_u64().unwrap_or_default()
        + report["verification_cache"]["hits"].as_u64().unwrap_or_default();
    let memo_hits = report["answer_cache"]["hits"].as_u64().unwrap_or_default();
    assert!(verifier_lookups <= 20, "{report:#}");
    assert!(memo_hits as f64 >= 300.0 * calls, "{report:#}");
    Ok(())
}
