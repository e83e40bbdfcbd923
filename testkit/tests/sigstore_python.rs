//! testkit's sigstore bundles verified by someone else's code: the PyPI `sigstore` package
//! (`make sigstore-python` installs it into target/sigstore-venv), offline, with testkit's
//! trusted root. Forgeries must fail there too, so a pass is not an artefact of a lax check.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{BundleOptions, LeafRequest, SignerIdentity, SigstoreBundle, TestFulcio, TestRekor};

/// How long the independent verifier may take: a hung verifier fails the test, naming the
/// command, instead of holding the suite.
const VERIFIER_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "user@example.com";

fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/sigstore-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make sigstore-python` (make test does)",
        python.display()
    );
    python
}

/// Runs the verification script; answers its exit status and output.
fn sigstore_python(root: &str, bundle: &SigstoreBundle, digest: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root_path = dir.path().join("trusted_root.json");
    let bundle_path = dir.path().join("bundle.json");
    std::fs::write(&root_path, root).expect("root written");
    std::fs::write(&bundle_path, &bundle.json).expect("bundle written");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify-bundle-sigstore-python.py");
    let mut command = Command::new(python());
    command
        .arg(script)
        .arg(&root_path)
        .arg(&bundle_path)
        .arg(digest)
        .args(["--identity", EMAIL, "--issuer", ISSUER]);
    let output = testkit::run_bounded(&mut command, VERIFIER_LIMIT).expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn sigstore_python_verifies_testkit_keyless_bundles_and_refuses_their_forgeries() {
    let fulcio = TestFulcio::new().expect("fulcio");
    let rekor = TestRekor::new().expect("rekor");
    let root = testkit::trusted_root_json(&fulcio, &rekor);
    let digest = format!("sha256:{}", "5a".repeat(32));
    let request = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    let bundle =
        testkit::keyless_bundle(&digest, &fulcio, &rekor, &request, &BundleOptions::default()).expect("bundle");

    let (ok, text) = sigstore_python(&root, &bundle, &digest);
    assert!(ok, "sigstore-python refused a genuine testkit bundle: {text}");
    assert!(text.contains("verified https://sigstore.dev/cosign/sign/v1"), "{text}");

    let other = format!("sha256:{}", "6b".repeat(32));
    let (ok, text) = sigstore_python(&root, &bundle, &other);
    assert!(!ok, "a bundle for another digest passed: {text}");

    for (what, forged) in [
        (
            "corrupted signature",
            bundle.with_corrupted_signature().expect("forged"),
        ),
        ("tampered SET", bundle.with_tampered_set().expect("forged")),
        (
            "tampered inclusion proof",
            bundle.with_tampered_inclusion_proof().expect("forged"),
        ),
    ] {
        let (ok, text) = sigstore_python(&root, &forged, &digest);
        assert!(!ok, "sigstore-python accepted a bundle with a {what}: {text}");
    }
    let rogue = TestRekor::new().expect("rekor");
    let foreign =
        testkit::keyless_bundle(&digest, &fulcio, &rogue, &request, &BundleOptions::default()).expect("bundle");
    let (ok, text) = sigstore_python(&root, &foreign, &digest);
    assert!(!ok, "a bundle logged in an untrusted log passed: {text}");
}
