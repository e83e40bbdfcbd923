//! `make demo`: the article's workflow on this machine, with real parts.
//!
//! Starts Debian's docker-registry on a loopback port, publishes a signed and an unsigned image
//! (signed with a fresh cosign-format key by sigstore-rs), writes the article's
//! `production-strict-policy` and `dev-warn-policy` as the policy's settings, and asks the real
//! `policy.wasm`, through `cip run`, about three pods. Then it stops the registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

const PRODUCTION: &str = include_str!("../../../src/testdata/article/production-strict-policy.yaml");
const DEVELOPMENT: &str = include_str!("../../../src/testdata/article/dev-warn-policy.yaml");

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policy = std::env::var_os("CIP_POLICY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("policy.wasm"));
    let cip = std::env::current_exe()?.with_file_name("cip");
    for (what, path) in [
        ("policy module (make policy.wasm)", &policy),
        ("cip binary (make cip)", &cip),
    ] {
        if !path.exists() {
            bail!("{what} not found at {}", path.display());
        }
    }

    step("Starting a registry on 127.0.0.1 (Debian's docker-registry)");
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    say(&format!("registry at {host}"));

    step("Publishing two images and signing one of them with a cosign key");
    let signed_digest = testkit::push_image(&host, "myapp", "v1.0.0", "demo signed app")?;
    testkit::push_image(&host, "unsigned", "latest", "demo unsigned app")?;
    let key = testkit::KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "myapp", &signed_digest, &key, &Default::default())?;
    say(&format!("{host}/myapp:v1.0.0   signed   ({signed_digest})"));
    say(&format!("{host}/unsigned:latest not signed"));

    step("Writing the article's production-strict-policy and dev-warn-policy as settings");
    let work = tempfile::tempdir()?;
    let policies: Vec<Value> = [PRODUCTION, DEVELOPMENT]
        .iter()
        .map(|yaml| {
            let yaml = e2e_tests::with_keys(yaml, &[key.public_key_pem()]).replace("myregistry.com", &host);
            serde_yaml::from_str(&yaml).context("article policy")
        })
        .collect::<Result<_>>()?;
    let settings = json!({"policies": policies, "noMatchPolicy": "allow", "modifyImagesWithDigest": true});
    let settings_path = work.path().join("settings.yaml");
    std::fs::write(&settings_path, serde_yaml::to_string(&settings)?)?;
    let sources_path = work.path().join("sources.yaml");
    std::fs::write(&sources_path, format!("insecure_sources: [\"{host}\"]\n"))?;
    say(&format!("settings: {}", settings_path.display()));

    let cases = [
        ("production", format!("{host}/myapp:v1.0.0"), "signed-in-production"),
        (
            "production",
            format!("{host}/unsigned:latest"),
            "unsigned-in-production",
        ),
        (
            "development",
            format!("{host}/unsigned:latest"),
            "unsigned-in-development",
        ),
    ];
    for (namespace, image, name) in &cases {
        step(&format!("Pod {name}: {image} in namespace {namespace}"));
        let file = format!("{name}.json");
        let request_path = work.path().join(&file);
        std::fs::write(
            &request_path,
            serde_json::to_vec_pretty(&pod_request(namespace, image))?,
        )?;
        let args = [
            "run".as_ref(),
            "--request-path".as_ref(),
            request_path.as_os_str(),
            "--settings-path".as_ref(),
            settings_path.as_os_str(),
            "--sources-path".as_ref(),
            sources_path.as_os_str(),
            policy.as_os_str(),
        ];
        say(&format!(
            "$ cip run --request-path {file} --settings-path settings.yaml --sources-path sources.yaml policy.wasm"
        ));
        let output = Command::new(&cip).args(args).output().context("running cip")?;
        if !output.status.success() {
            bail!("cip run failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let response: Value = serde_json::from_slice(&output.stdout).context("cip run output")?;
        explain(&response)?;
    }

    step("Stopping the registry");
    drop(registry);
    say("done: signed images run, unsigned ones are refused in production and flagged in development.");
    Ok(())
}

fn pod_request(namespace: &str, image: &str) -> Value {
    json!({
        "uid": "demo",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": namespace,
        "object": {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "test", "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }
    })
}

/// Prints a kwctl-style AdmissionResponse the way a person reads it.
fn explain(response: &Value) -> Result<()> {
    if response["allowed"] != true {
        say(&format!(
            "REFUSED: {}",
            response["status"]["message"].as_str().unwrap_or("(no message)")
        ));
        return Ok(());
    }
    match response["warnings"].as_array() {
        Some(warnings) if !warnings.is_empty() => {
            say("ADMITTED with a warning:");
            for w in warnings {
                say(&format!("  warning: {}", w.as_str().unwrap_or_default()));
            }
        }
        _ => say("ADMITTED"),
    }
    if let Some(patch) = response["patch"].as_str() {
        let patch: Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch)?)?;
        for op in patch.as_array().into_iter().flatten() {
            say(&format!(
                "  pinned {} -> {}",
                op["path"].as_str().unwrap_or("?"),
                op["value"].as_str().unwrap_or("?")
            ));
        }
    }
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn say(text: &str) {
    println!("   {text}");
}
