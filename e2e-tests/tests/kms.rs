//! The article's `kms-signed-policy` with a real KMS: AWS KMS served by moto, and Vault's
//! transit API served by OpenBao (both started on 127.0.0.1 by the tests). Images are signed
//! with the KMS's `Sign`, in cosign's format; `cip run` resolves `key.kms` through the module's
//! KMS capability; `cip kms resolve` turns the policy into one that runs on a host without KMS
//! access.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Host, article, pod, policy_wasm_path, settings};
use serde_json::{Value, json};
use testkit::{
    AwsKey, MOTO_REGION, MotoServer, OPENBAO_ROOT_TOKEN, OpenBao, Registry, SlowServer, push_image, sign_with_external,
};

const ARTICLE_URI: &str = "gcpkms://projects/PROJECT_ID/locations/us-central1/keyRings/cosign/cryptoKeys/cosign-key";

/// The article's policy, verbatim but for its image glob (moved onto the test registry) and its
/// key URI.
fn kms_policy(registry: &str, uri: &str) -> String {
    let text = article("kms-signed-policy");
    assert!(text.contains(ARTICLE_URI) && text.contains("gcr.io/myproject/**"));
    text.replace(ARTICLE_URI, uri)
        .replace("gcr.io/myproject", &format!("{registry}/myproject"))
}

/// What a `cip` child printed.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cip` with a clean environment plus `env`, killed after a hang guard.
fn cip(args: &[&str], env: &[(&str, String)], home: &Path) -> Ran {
    let stdout = home.join("stdout");
    let stderr = home.join("stderr");
    let file = |p: &Path| std::fs::File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut command = Command::new(common::cip_binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(file(&stdout))
        .stderr(file(&stderr));
    let mut child = command.spawn().unwrap_or_else(|e| panic!("running cip: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cip {args:?} did not finish within 60 s");
            }
        }
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Ran {
        success: status.success(),
        stdout: read(&stdout),
        stderr: read(&stderr),
    }
}

fn aws_env(key: &AwsKey) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", key.id.clone()),
        ("AWS_SECRET_ACCESS_KEY", key.secret.clone()),
        ("AWS_REGION", MOTO_REGION.to_owned()),
    ]
}

/// `cip run` of a Pod running `image` under `settings`; the AdmissionResponse.
fn cip_run(dir: &Path, registry: &str, settings: &Value, image: &str, extra: &[&str], env: &[(&str, String)]) -> Value {
    let request = dir.join("request.json");
    std::fs::write(&request, pod("default", &[image]).to_string()).expect("request file");
    let settings_path = dir.join("settings.json");
    std::fs::write(&settings_path, settings.to_string()).expect("settings file");
    let sources = dir.join("sources.yaml");
    std::fs::write(&sources, format!("insecure_sources: [\"{registry}\"]\n")).expect("sources file");
    let policy = policy_wasm_path();
    let mut args = vec![
        "run",
        "--request-path",
        request.to_str().unwrap_or_default(),
        "--settings-path",
        settings_path.to_str().unwrap_or_default(),
        "--sources-path",
        sources.to_str().unwrap_or_default(),
    ];
    args.extend_from_slice(extra);
    args.push(policy.to_str().unwrap_or_default());
    let ran = cip(&args, env, dir);
    assert!(ran.success, "cip run failed: {}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", ran.stdout))
}

#[test]
fn article_kms_policy_admits_the_kms_signed_image_and_refuses_the_unsigned_one() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = push_image(&host, "myproject/app", "v1", "kms-signed")?;
    sign_with_external(&host, "myproject/app", &digest, &BTreeMap::new(), |payload| {
        moto.sign(&key_id, payload)
    })?;
    push_image(&host, "myproject/unsigned", "v1", "unsigned")?;
    let uri = format!("awskms://{}/{key_id}", moto.host());
    let s = settings(&[kms_policy(&host, &uri)], json!({}));
    let dir = tempfile::tempdir()?;
    let kms_flags = ["--kms-insecure-endpoint", &moto.host()];

    let signed = format!("{host}/myproject/app:v1");
    let response = cip_run(dir.path(), &host, &s, &signed, &kms_flags, &aws_env(moto.signer()));
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response["patch"].is_string(), "the verified tag is pinned: {response}");

    let unsigned = format!("{host}/myproject/unsigned:v1");
    let response = cip_run(dir.path(), &host, &s, &unsigned, &kms_flags, &aws_env(moto.signer()));
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("denied by policy kms-signed-policy: authority authority-0: no signature verified by the key"),
        "{response}"
    );

    // A wrong secret key: moto refuses the signature; enforce denies, saying why, without
    // the secret.
    let mut wrong = moto.signer().clone();
    wrong.secret = format!("{}A", &wrong.secret[1..]);
    let response = cip_run(dir.path(), &host, &s, &signed, &kms_flags, &aws_env(&wrong));
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("access denied"), "{response}");
    assert!(!message.contains(&wrong.secret), "{response}");

    // No region and a key id (not an ARN): enforce denies, saying what to set.
    let no_region: Vec<_> = aws_env(moto.signer())
        .into_iter()
        .filter(|(k, _)| *k != "AWS_REGION")
        .collect();
    let response = cip_run(dir.path(), &host, &s, &signed, &kms_flags, &no_region);
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no AWS region: set AWS_REGION"), "{response}");
    Ok(())
}

#[test]
fn the_resolved_policy_runs_on_a_host_without_kms_access() -> anyhow::Result<()> {
    let moto = MotoServer::start()?;
    let key_id = moto.create_signing_key()?;
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = push_image(&host, "myproject/app", "v1", "kms-signed")?;
    sign_with_external(&host, "myproject/app", &digest, &BTreeMap::new(), |payload| {
        moto.sign(&key_id, payload)
    })?;
    push_image(&host, "myproject/unsigned", "v1", "unsigned")?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("policy.yaml");
    std::fs::write(&input, kms_policy(&host, &format!("awskms://{}/{key_id}", moto.host())))?;
    let output = dir.path().join("resolved.yaml");
    let ran = cip(
        &[
            "kms",
            "resolve",
            "-f",
            input.to_str().unwrap_or_default(),
            "-o",
            output.to_str().unwrap_or_default(),
            "--kms-insecure-endpoint",
            &moto.host(),
        ],
        &aws_env(moto.signer()),
        dir.path(),
    );
    assert!(ran.success, "{}", ran.stderr);
    drop(moto); // The KMS is gone: the resolved policy must not need it.

    // A host built without any KMS access (as Kubewarden's policy-server has none).
    let cip_host = Host::for_registry(&host);
    let resolved = settings(&[std::fs::read_to_string(&output)?], json!({}));
    cip_host
        .validate(&pod("default", &[&format!("{host}/myproject/app:v1")]), &resolved)
        .assert_admitted("the KMS-signed image under the resolved policy");
    let message = cip_host
        .validate(&pod("default", &[&format!("{host}/myproject/unsigned:v1")]), &resolved)
        .assert_refused("an unsigned image under the resolved policy")
        .to_owned();
    assert!(message.contains("denied by policy kms-signed-policy"), "{message}");

    // The unresolved policy on that host: denied, naming the capability and the command.
    let unresolved = settings(&[std::fs::read_to_string(&input)?], json!({}));
    let message = cip_host
        .validate(&pod("default", &[&format!("{host}/myproject/app:v1")]), &unresolved)
        .assert_refused("key.kms on a host without KMS access")
        .to_owned();
    assert!(
        message.contains("key.kms needs host capability cluster-image-policy/kms/v1/public_key (on Kubewarden run `cip kms resolve` to fill key.data)"),
        "{message}"
    );
    Ok(())
}

#[test]
fn vault_transit_keys_sign_and_verify_and_failures_follow_the_mode() -> anyhow::Result<()> {
    let bao = OpenBao::start()?;
    bao.create_key("cosign", "ecdsa-p256")?;
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = push_image(&host, "myproject/app", "v1", "vault-signed")?;
    sign_with_external(&host, "myproject/app", &digest, &BTreeMap::new(), |payload| {
        bao.sign("cosign", payload)
    })?;
    let env = [
        ("VAULT_ADDR", bao.addr()),
        ("VAULT_TOKEN", OPENBAO_ROOT_TOKEN.to_owned()),
    ];
    let dir = tempfile::tempdir()?;
    let image = format!("{host}/myproject/app:v1");

    let s = settings(&[kms_policy(&host, "hashivault://cosign")], json!({}));
    let response = cip_run(dir.path(), &host, &s, &image, &[], &env);
    assert_eq!(response["allowed"], true, "{response}");

    // A key the KMS does not have: enforce denies, warn admits with the reason.
    let missing = kms_policy(&host, "hashivault://missing");
    let response = cip_run(
        dir.path(),
        &host,
        &settings(std::slice::from_ref(&missing), json!({})),
        &image,
        &[],
        &env,
    );
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("hashivault://missing: key not found"), "{response}");
    assert!(!message.contains(OPENBAO_ROOT_TOKEN), "{response}");

    let warn = missing.replace("spec:\n", "spec:\n  mode: warn\n");
    let response = cip_run(dir.path(), &host, &settings(&[warn], json!({})), &image, &[], &env);
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].to_string();
    assert!(
        warnings.contains("not verified by policy kms-signed-policy (warn mode)"),
        "{response}"
    );
    Ok(())
}

#[test]
fn a_kms_that_never_answers_is_cut_at_the_evaluation_deadline() -> anyhow::Result<()> {
    let slow = SlowServer::start()?;
    let registry = Registry::start()?;
    let host = registry.host();
    push_image(&host, "myproject/app", "v1", "app")?;
    let env = [
        ("VAULT_ADDR", format!("http://{}", slow.host())),
        ("VAULT_TOKEN", "t".to_owned()),
    ];
    let dir = tempfile::tempdir()?;
    let s = settings(&[kms_policy(&host, "hashivault://cosign")], json!({}));
    let started = Instant::now();
    let response = cip_run(
        dir.path(),
        &host,
        &s,
        &format!("{host}/myproject/app:v1"),
        &["--timeout", "2s", "--kms-timeout", "30s"],
        &env,
    );
    assert!(started.elapsed() < Duration::from_secs(30), "hang guard");
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cluster-image-policy/kms/v1/public_key: no answer within the evaluation deadline"),
        "{response}"
    );
    assert!(slow.connections() >= 1);
    Ok(())
}
