//! testkit's attestations checked by someone else's code: securesystemslib (PyPI, the Secure
//! Systems Lab's DSSE implementation) verifies the envelopes `attest_with_key` and
//! `attest_keyless` push — signature over the PAE, payload type, subject — so testkit's signer
//! and cip's verifier cannot share a misunderstanding of DSSE. The venv is made once under
//! `target/test-tools` (PyPI `securesystemslib[crypto]`, pinned; `make test-tools` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use testkit::{
    KeyPair, LeafRequest, Registry, SPDX_PREDICATE_TYPE, SignerIdentity, TestFulcio, TestRekor, attest_keyless,
    attest_with_key, push_image, sha256_digest,
};

/// How long the independent verifier may take: a hung verifier fails the test, naming the
/// command, instead of holding the suite.
const VERIFIER_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The python of the test tools' venv (`make test-tools`), which has securesystemslib.
fn python() -> PathBuf {
    let python = testkit::test_tool("python").expect("the test tools' venv");
    let ready = Command::new(&python)
        .args(["-c", "import securesystemslib.dsse, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "securesystemslib is missing from {}: run `make test-tools`",
        python.display()
    );
    python
}

/// Runs scripts/check-dsse.py; `Ok(stdout)` when it verified, `Err(stdout)` when it refused.
fn check(envelope: &[u8], verifier_pem: &str, digest: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let envelope_path = dir.path().join("envelope.json");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&envelope_path, envelope).expect("envelope written");
    std::fs::write(&key_path, verifier_pem).expect("key written");
    let mut command = Command::new(python());
    command
        .arg(workspace().join("scripts/check-dsse.py"))
        .arg(&envelope_path)
        .arg(&key_path)
        .arg(digest);
    let output = testkit::run_bounded(&mut command, VERIFIER_LIMIT).expect("check-dsse.py runs");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok(stdout),
        Some(1) => Err(stdout),
        _ => panic!("check-dsse.py failed: {}", String::from_utf8_lossy(&output.stderr)),
    }
}

fn sbom() -> Value {
    json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"})
}

#[test]
fn securesystemslib_verifies_testkit_attestations_and_refuses_forgeries() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = push_image(&host, "team/app", "v1", "app-v1")?;
    let key = KeyPair::ecdsa_p256()?;
    let layer = attest_with_key(&host, "team/app", &digest, &key, SPDX_PREDICATE_TYPE, &sbom(), None)?;
    let expected = format!("{SPDX_PREDICATE_TYPE} {}", layer.digest().trim_start_matches("sha256:"));
    assert_eq!(check(&layer.payload, key.public_key_pem(), &digest), Ok(expected));
    assert_eq!(sha256_digest(&layer.payload), layer.digest());

    // Refused by the independent implementation too: another key, another digest, a flipped bit.
    let other = KeyPair::ecdsa_p256()?;
    assert!(check(&layer.payload, other.public_key_pem(), &digest).is_err_and(|e| e.starts_with("signature:")));
    let other_digest = format!("sha256:{}", "2".repeat(64));
    assert_eq!(
        check(&layer.payload, key.public_key_pem(), &other_digest),
        Err(format!("subject does not name {other_digest}"))
    );
    let mut envelope: Value = serde_json::from_slice(&layer.payload)?;
    let statement = BASE64.decode(envelope["payload"].as_str().unwrap_or_default())?;
    let tampered = String::from_utf8(statement)?.replace("SPDXRef-DOCUMENT", "SPDXRef-FORGED");
    envelope["payload"] = json!(BASE64.encode(tampered));
    assert!(check(&serde_json::to_vec(&envelope)?, key.public_key_pem(), &digest).is_err());

    // Keyless: the leaf certificate's key verifies the envelope.
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let request = LeafRequest::new(
        SignerIdentity::Email("ci@example.com".into()),
        "https://accounts.example.com",
    );
    let keyless = attest_keyless(
        &host,
        "team/app",
        &digest,
        &fulcio,
        &rekor,
        &request,
        SPDX_PREDICATE_TYPE,
        &sbom(),
    )?;
    let certificate = &keyless.annotations[testkit::CERTIFICATE_ANNOTATION];
    assert!(check(&keyless.payload, certificate, &digest).is_ok());
    Ok(())
}
