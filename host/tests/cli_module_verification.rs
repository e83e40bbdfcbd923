//! `cip run registry://…` verifies the policy module's cosign signatures (kwctl's flags and
//! verification config) before running it, against a real loopback registry: an unsigned
//! module, one signed by another key and one without any verification option are refused; a
//! correctly signed one runs; a tampered cache file and an oversized module are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cip::artifact::{PolicyRegistry, PushedPolicy};
use cip::registry::{DockerCredentials, Sources};
use testkit::{KeyPair, Registry};

/// The bound of one `cip run` (it pulls, verifies and compiles the policy module in a debug
/// build): generous for a loaded CI machine, so a hung `cip` fails its test instead of hanging
/// the run.
const CIP_RUN_LIMIT: Duration = Duration::from_secs(300);

/// The test guest (WAT): `validate_settings` accepts, `validate` rejects with code 418.
fn module() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-policy.wat")).expect("fixture")
}

struct Setup {
    registry: Registry,
    dir: tempfile::TempDir,
    sources: PathBuf,
    request: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let registry = Registry::start().expect("registry starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let sources = dir.path().join("sources.yaml");
        std::fs::write(&sources, format!("insecure_sources: [\"{}\"]\n", registry.host())).expect("sources");
        let request = dir.path().join("request.json");
        std::fs::write(
            &request,
            r#"{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{}}"#,
        )
        .expect("request");
        Self {
            registry,
            dir,
            sources,
            request,
        }
    }

    /// Pushes `bytes` as a policy to `repo:v1`.
    fn push(&self, repo: &str, bytes: &[u8]) -> PushedPolicy {
        let sources = Sources::from_yaml(
            &format!("insecure_sources: [\"{}\"]\n", self.registry.host()),
            Path::new("."),
        )
        .expect("sources");
        let client = PolicyRegistry::new(&sources, DockerCredentials::default());
        let uri = format!("registry://{}/{repo}:v1", self.registry.host());
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(client.push(bytes, &uri, Default::default()))
            .expect("push")
    }

    fn sign(&self, repo: &str, pushed: &PushedPolicy, key: &KeyPair) {
        testkit::sign_with_key(&self.registry.host(), repo, &pushed.digest, key, &Default::default()).expect("sign");
    }

    fn write_key(&self, name: &str, key: &KeyPair) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, key.public_key_pem()).expect("key file");
        path
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `cip run` on `uri` with extra flags, with this setup's cache directory, within
    /// [`CIP_RUN_LIMIT`].
    fn run(&self, uri: &str, flags: &[&str]) -> Output {
        testkit::run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cip"))
                .env("CIP_CACHE_DIR", self.cache())
                .args(["run", "--request-path"])
                .arg(&self.request)
                .arg("--sources-path")
                .arg(&self.sources)
                .args(flags)
                .arg(uri),
            CIP_RUN_LIMIT,
        )
        .expect("cip runs")
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(output: &Output, expected: &str) {
    assert_ne!(
        output.status.code(),
        Some(0),
        "must be refused; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        output.stdout.is_empty(),
        "nothing evaluated: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr(output).contains(expected),
        "expected {expected:?} in:\n{}",
        stderr(output)
    );
}

fn assert_ran(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).expect("AdmissionResponse JSON");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 418, "{response}");
}

#[test]
fn a_signed_module_runs_and_unsigned_or_wrongly_signed_ones_are_refused() {
    let setup = Setup::new();
    let (owner, stranger) = (KeyPair::ecdsa_p256().expect("key"), KeyPair::ecdsa_p256().expect("key"));
    let owner_pub = setup.write_key("owner.pub", &owner);
    let owner_flag = ["--verification-key", owner_pub.to_str().expect("utf-8")];

    setup.push("policies/unsigned", &module());
    let uri = format!("registry://{}/policies/unsigned:v1", setup.registry.host());
    assert_refused(&setup.run(&uri, &owner_flag), "is not trusted");

    let foreign = setup.push("policies/foreign", &module());
    setup.sign("policies/foreign", &foreign, &stranger);
    let uri = format!("registry://{}/policies/foreign:v1", setup.registry.host());
    assert_refused(&setup.run(&uri, &owner_flag), "is not trusted");

    let signed = setup.push("policies/signed", &module());
    setup.sign("policies/signed", &signed, &owner);
    let uri = format!("registry://{}/policies/signed:v1", setup.registry.host());
    assert_refused(&setup.run(&uri, &[]), "must be verified");
    assert_ran(&setup.run(&uri, &owner_flag));
    assert_ran(&setup.run(&uri, &["--insecure-skip-module-verification"]));

    // kwctl's verification config: allOf the owner, and an anyOf that the stranger cannot meet.
    let config = setup.dir.path().join("verification.yaml");
    let indent = |pem: &str| pem.lines().map(|line| format!("      {line}\n")).collect::<String>();
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nallOf:\n  - kind: pubKey\n    owner: owner\n    key: |\n{}",
            indent(owner.public_key_pem())
        ),
    )
    .expect("config");
    let config_flag = ["--verification-config-path", config.to_str().expect("utf-8")];
    assert_ran(&setup.run(&uri, &config_flag));
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nanyOf:\n  minimumMatches: 1\n  signatures:\n  - kind: pubKey\n    key: |\n{}",
            indent(stranger.public_key_pem())
        ),
    )
    .expect("config");
    assert_refused(&setup.run(&uri, &config_flag), "anyOf: 0 of the 1 required");
}

#[test]
fn a_tampered_cache_file_and_an_oversized_module_are_refused() {
    let setup = Setup::new();
    let owner = KeyPair::ecdsa_p256().expect("key");
    let owner_pub = setup.write_key("owner.pub", &owner);
    let owner_flag = ["--verification-key", owner_pub.to_str().expect("utf-8")];
    let pushed = setup.push("policies/cip", &module());
    setup.sign("policies/cip", &pushed, &owner);
    let uri = format!("registry://{}/policies/cip:v1", setup.registry.host());

    let mut too_small = owner_flag.to_vec();
    too_small.extend(["--max-module-bytes", "100"]);
    assert_refused(&setup.run(&uri, &too_small), "over the cap of 100 bytes");

    assert_ran(&setup.run(&uri, &owner_flag));
    let hex = pushed.digest.trim_start_matches("sha256:");
    let cached = setup.cache().join("policies").join(format!("sha256-{hex}.wasm"));
    let mut bytes = std::fs::read(&cached).expect("cached module");
    assert!(bytes == module(), "the cache holds the pulled module");
    bytes.extend_from_slice(b"\n;; injected\n");
    std::fs::write(&cached, &bytes).expect("tamper");
    assert_refused(&setup.run(&uri, &owner_flag), "tampered");
    // The same for the pinned reference, served from the cache without asking the registry.
    assert_refused(&setup.run(&pushed.uri, &owner_flag), "tampered");
}
