//! testkit's key-signed sigstore bundles verified by someone else's code: npm's
//! `@sigstore/verify` (`make sigstore-node` installs it into target/sigstore-node), offline,
//! with testkit's trusted root and the signer's public key. sigstore-python checks the keyless
//! ones (`sigstore_python.rs`); forgeries must fail here too.

use std::path::Path;
use std::process::Command;

use testkit::{BundleOptions, KeyPair, SigstoreBundle, TestFulcio, TestRekor};

/// How long the independent verifier may take: a hung verifier fails the test, naming the
/// command, instead of holding the suite.
const VERIFIER_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

fn sigstore_js(root: &str, bundle: &SigstoreBundle, digest: &str, key: &KeyPair) -> (bool, String) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        workspace
            .join("target/sigstore-node/node_modules/@sigstore/verify")
            .exists(),
        "target/sigstore-node is missing: run `make sigstore-node` (make test does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("written");
        path
    };
    let mut command = Command::new("node");
    command
        .arg(workspace.join("scripts/verify-bundle-sigstore-js.js"))
        .arg(write("trusted_root.json", root.as_bytes()))
        .arg(write("bundle.json", &bundle.json))
        .arg(digest)
        .arg(write("key.pem", key.public_key_pem().as_bytes()));
    let output = testkit::run_bounded(&mut command, VERIFIER_LIMIT).expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn sigstore_js_verifies_testkit_key_bundles_and_refuses_their_forgeries() {
    let fulcio = TestFulcio::new().expect("fulcio");
    let rekor = TestRekor::new().expect("rekor");
    let root = testkit::trusted_root_json(&fulcio, &rekor);
    let digest = format!("sha256:{}", "7c".repeat(32));
    let key = KeyPair::ecdsa_p256().expect("key");
    let bundle = testkit::key_bundle(&digest, &key, Some(&rekor), &BundleOptions::default()).expect("bundle");

    let (ok, text) = sigstore_js(&root, &bundle, &digest, &key);
    assert!(ok, "@sigstore/verify refused a genuine testkit key bundle: {text}");
    assert!(text.contains("verified https://sigstore.dev/cosign/sign/v1"), "{text}");

    let (ok, text) = sigstore_js(&root, &bundle, &format!("sha256:{}", "8d".repeat(32)), &key);
    assert!(!ok, "a bundle for another digest passed: {text}");
    let other = KeyPair::ecdsa_p256().expect("key");
    let (ok, text) = sigstore_js(&root, &bundle, &digest, &other);
    assert!(!ok, "a bundle passed with another key: {text}");
    for (what, forged) in [
        (
            "corrupted signature",
            bundle.with_corrupted_signature().expect("forged"),
        ),
        ("tampered SET", bundle.with_tampered_set().expect("forged")),
        // Its root hash is checked against the signed checkpoint, not the proof's own copy: a
        // flipped path hash is what breaks the proof for it.
        (
            "tampered inclusion path",
            bundle.with_tampered_inclusion_hash().expect("forged"),
        ),
    ] {
        let (ok, text) = sigstore_js(&root, &forged, &digest, &key);
        assert!(!ok, "@sigstore/verify accepted a bundle with a {what}: {text}");
    }
}
