//! `make bench`: the figures of the performance targets, on real parts.
//!
//! Starts a loopback registry, publishes and signs 10 images, writes settings with 20
//! ClusterImagePolicies and a Pod with 10 containers, then runs `cip bench` (the binary next to
//! this one, or `$CIP_BIN`) on them: after the warm-up every host answer comes from `cip`'s
//! verification cache, so the figures are those of the module and the host-call path.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const CONTAINERS: usize = 10;
const POLICIES: usize = 20;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policy = std::env::var_os("CIP_POLICY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("policy.wasm"));
    let cip = std::env::var_os("CIP_BIN").map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .map(|p| p.with_file_name("cip"))
            .unwrap_or_default()
    });
    if !policy.exists() || !cip.exists() {
        bail!(
            "need {} and {} (make bench builds both)",
            policy.display(),
            cip.display()
        );
    }
    let iterations = std::env::var("BENCH_ITERATIONS").unwrap_or_else(|_| "2000".to_owned());

    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let key = testkit::KeyPair::ecdsa_p256()?;
    let mut images = Vec::new();
    for i in 0..CONTAINERS {
        let repo = format!("team{i}/app");
        let digest = testkit::push_image(&host, &repo, "v1", &format!("bench image {i}"))?;
        testkit::sign_with_key(&host, &repo, &digest, &key, &Default::default())?;
        images.push(format!("{host}/{repo}:v1"));
    }

    let policies: Vec<Value> = (0..POLICIES)
        .map(|i| {
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1",
                "kind": "ClusterImagePolicy",
                "metadata": {"name": format!("team{i}-policy")},
                "spec": {
                    "match": [{"namespaces": ["production", format!("team{i}-*")]}],
                    "images": [{"glob": format!("{host}/team{i}/**")}, {"glob": format!("{host}/shared/team{i}-*")}],
                    "authorities": [
                        {"name": "previous-key", "key": {"data": testkit::KeyPair::ecdsa_p256().map(|k| k.public_key_pem().to_owned()).unwrap_or_default()}},
                        {"name": "current-key", "key": {"data": key.public_key_pem()}}
                    ],
                    "mode": "enforce"
                }
            })
        })
        .collect();
    let settings = json!({"policies": policies, "noMatchPolicy": "deny", "modifyImagesWithDigest": true});
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let request = json!({
        "uid": "bench",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "production",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "namespace": "production"},
                   "spec": {"containers": containers}}
    });

    let work = tempfile::tempdir()?;
    let write = |name: &str, value: &Value| -> Result<PathBuf> {
        let path = work.path().join(name);
        std::fs::write(&path, serde_json::to_vec(value)?)?;
        Ok(path)
    };
    let settings_path = write("settings.json", &settings)?;
    let request_path = write("request.json", &request)?;
    let sources_path = work.path().join("sources.yaml");
    std::fs::write(&sources_path, format!("insecure_sources: [\"{host}\"]\n"))?;

    println!(
        "policy.wasm: {} bytes",
        std::fs::metadata(&policy).context("policy.wasm")?.len()
    );
    println!("validate: Pod with {CONTAINERS} containers under {POLICIES} ClusterImagePolicies, host answers cached");
    let status = Command::new(&cip)
        .arg("bench")
        .arg("--request-path")
        .arg(&request_path)
        .arg("--settings-path")
        .arg(&settings_path)
        .arg("--sources-path")
        .arg(&sources_path)
        .arg("--iterations")
        .arg(&iterations)
        .arg(&policy)
        .status()
        .context("running cip bench")?;
    if !status.success() {
        bail!("cip bench failed");
    }
    Ok(())
}
