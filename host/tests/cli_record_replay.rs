//! `cip run --record-host-capabilities-interactions` captures a real verification against a
//! loopback registry in kwctl's session format; `--replay-host-capabilities-interactions`
//! answers the same admission from that file with the registry stopped, and refuses to answer
//! a request that was not recorded.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

fn policy() -> std::path::PathBuf {
    let path = std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm")
        },
        std::path::PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: build it with `make policy.wasm`",
        path.display()
    );
    path
}

fn pod(image: &str) -> Value {
    json!({
        "uid": "replay", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE", "namespace": "default", "name": "app",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "default"},
                   "spec": {"containers": [{"name": "app", "image": image}]}}
    })
}

/// The bound of one `cip run` (it compiles the policy module in a debug build): generous for a
/// loaded CI machine, so a hung `cip` fails its test instead of hanging the run.
const CIP_RUN_LIMIT: Duration = Duration::from_secs(300);

fn cip_run(dir: &Path, request: &Value, extra: &[&str]) -> (Value, String) {
    let request_path = dir.join("pod.json");
    std::fs::write(&request_path, request.to_string()).expect("write request");
    let output: Output = testkit::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cip"))
            .arg("run")
            .arg("-r")
            .arg(&request_path)
            .arg("-s")
            .arg(dir.join("settings.json"))
            .arg("--sources-path")
            .arg(dir.join("sources.yaml"))
            .args(["--timeout", "10s"])
            .args(extra)
            .arg(policy())
            .env("CIP_CACHE_DIR", dir.join("cache"))
            .env("DOCKER_CONFIG", dir.join("docker")),
        CIP_RUN_LIMIT,
    )
    .expect("cip runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    (
        serde_json::from_slice(&output.stdout).expect("AdmissionResponse"),
        stderr,
    )
}

#[test]
fn a_recorded_verification_replays_with_the_registry_stopped() -> anyhow::Result<()> {
    let mut registry = testkit::Registry::start()?;
    let host = registry.host();
    let key = testkit::KeyPair::ecdsa_p256()?;
    let digest = testkit::push_image(&host, "team/app", "v1", "record-replay")?;
    testkit::sign_with_key(&host, "team/app", &digest, &key, &Default::default())?;
    testkit::push_image(&host, "team/other", "v1", "never-recorded")?;

    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let settings = json!({"policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "team-key"},
        "spec": {"images": [{"glob": format!("{host}/team/**")}],
                 "authorities": [{"key": {"data": key.public_key_pem()}}]}
    }]});
    std::fs::write(dir.join("settings.json"), settings.to_string())?;
    std::fs::write(dir.join("sources.yaml"), format!("insecure_sources: [\"{host}\"]\n"))?;
    let session = dir.join("session.yml");
    let session_arg = session.to_string_lossy().into_owned();
    let image = format!("{host}/team/app:v1");

    let (recorded, _) = cip_run(
        dir,
        &pod(&image),
        &["--record-host-capabilities-interactions", &session_arg],
    );
    assert_eq!(recorded["allowed"], true, "{recorded:#}");
    assert!(
        recorded.get("patch").is_some(),
        "the image is pinned to its digest: {recorded:#}"
    );

    // kwctl's format: a list of exchanges whose request is a tagged CallbackRequestType.
    let entries: Vec<serde_yaml::Value> = serde_yaml::from_str(&std::fs::read_to_string(&session)?)?;
    assert_eq!(entries.len(), 1, "one look-up for one image");
    assert_eq!(entries[0]["type"], "Exchange");
    let request = entries[0]["request"].as_str().unwrap_or_default();
    assert!(request.starts_with("!SigstorePubKeyVerify\n"), "{request}");
    assert!(request.contains(&image), "{request}");
    assert_eq!(entries[0]["response"]["type"], "Success");
    let answer: Value = serde_json::from_str(entries[0]["response"]["payload"].as_str().unwrap_or_default())?;
    assert_eq!(answer["is_trusted"], true);
    assert_eq!(answer["digest"], digest);

    registry.stop()?;

    // Without the session the registry is missed: the image cannot be verified.
    let (offline, _) = cip_run(dir, &pod(&image), &[]);
    assert_eq!(offline["allowed"], false, "{offline:#}");

    // With it, the same admission is decided the same way, registry stopped.
    let (replayed, _) = cip_run(
        dir,
        &pod(&image),
        &["--replay-host-capabilities-interactions", &session_arg],
    );
    assert_eq!(replayed, recorded);

    // A request the session does not hold is not answered from it.
    let (other, _) = cip_run(
        dir,
        &pod(&format!("{host}/team/other:v1")),
        &["--replay-host-capabilities-interactions", &session_arg],
    );
    assert_eq!(other["allowed"], false, "{other:#}");
    let message = other["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("unexpected request"), "{other:#}");
    Ok(())
}
