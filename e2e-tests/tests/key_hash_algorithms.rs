//! `key` authorities and `key.hashAlgorithm`: the hash a key signature is verified with.
//!
//! Older cosign releases signed with every ECDSA key file over SHA-256; newer ones hash with
//! the key's own hash (SHA-384 for P-384). policy-controller verifies a `key`
//! authority with the hash `hashAlgorithm` names, SHA-256 by default. Signatures here are made
//! by Python's `cryptography` (an implementation independent of the host's), pushed to a real
//! loopback registry and judged by the real `policy.wasm` under `cip`.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cip::capabilities::Capabilities;
use cip::registry::Sources;
use cip::runtime::{Evaluator, EvaluatorOptions};
use cip::verify::{Verifier, VerifierConfig};
use common::{Host, Response, pod, policy_module, settings};
use serde_json::{Value, json};
use testkit::{Registry, push_image, sign_with_external};

/// Signs with Python's `cryptography`: `gen <curve>` prints a private key PEM; `sign <hash>`
/// signs stdin with the key in argv[3]; `pub` prints the public key of the key in argv[2].
const SIGNER: &str = r#"
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
hashes_ = {"sha224": hashes.SHA224(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
if sys.argv[1] == "gen":
    key = ec.generate_private_key(curves[sys.argv[2]])
    sys.stdout.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
elif sys.argv[1] == "pub":
    key = serialization.load_pem_private_key(sys.argv[2].encode(), None)
    sys.stdout.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
else:
    key = serialization.load_pem_private_key(sys.argv[3].encode(), None)
    sys.stdout.buffer.write(key.sign(sys.stdin.buffer.read(), ec.ECDSA(hashes_[sys.argv[2]])))
"#;

fn python(args: &[&str], stdin: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SIGNER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(stdin)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "python3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

/// An ECDSA key held by Python's `cryptography`.
struct PyKey {
    private: String,
    public: String,
}

impl PyKey {
    fn generate(curve: &str) -> anyhow::Result<Self> {
        let private = String::from_utf8(python(&["gen", curve], b"")?)?;
        let public = String::from_utf8(python(&["pub", &private], b"")?)?;
        Ok(Self { private, public })
    }

    /// Pushes `repo:v1` and signs it with this key over `hash`; returns the image reference.
    fn signed_image(&self, host: &str, repo: &str, hash: &str) -> anyhow::Result<String> {
        let digest = push_image(host, repo, "v1", &format!("{repo}-content"))?;
        sign_with_external(host, repo, &digest, &BTreeMap::new(), |payload| {
            python(&["sign", hash, &self.private], payload)
        })?;
        Ok(format!("{host}/{repo}:v1"))
    }
}

/// A CIP with one `key` authority for `public`, `hashAlgorithm` when given.
fn key_policy(host: &str, public: &str, hash_algorithm: Option<&str>) -> Value {
    let mut key = json!({ "data": public });
    if let Some(hash) = hash_algorithm {
        key["hashAlgorithm"] = json!(hash);
    }
    let cip = json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": { "name": "hashed" },
        "spec": {
            "images": [{ "glob": format!("{host}/**") }],
            "authorities": [{ "name": "the-key", "key": key }],
        },
    });
    settings(&[serde_yaml::to_string(&cip).expect("YAML")], json!({}))
}

/// A P-384 key, an image it signed over SHA-256 (cosign ≤ 2.4) and one over SHA-384 (cosign
/// ≥ 2.5), on a fresh registry.
struct Fixture {
    _registry: Registry,
    host: String,
    key: PyKey,
    sha256: String,
    sha384: String,
}

fn fixture() -> anyhow::Result<Fixture> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = PyKey::generate("p384")?;
    let sha256 = key.signed_image(&host, "p384/sha256", "sha256")?;
    let sha384 = key.signed_image(&host, "p384/sha384", "sha384")?;
    Ok(Fixture {
        _registry: registry,
        host,
        key,
        sha256,
        sha384,
    })
}

impl Fixture {
    fn decide(&self, cip: &Host, image: &str, hash: Option<&str>) -> Response {
        let s = key_policy(&self.host, &self.key.public, hash);
        cip.validate_settings(&s)
            .unwrap_or_else(|e| panic!("hashAlgorithm {hash:?} refused: {e}"));
        cip.validate(&pod("default", &[image]), &s)
    }
}

/// Under `cip`, a P-384 key verifies with exactly the hash `hashAlgorithm` names, SHA-256 by
/// default, as policy-controller does: cosign ≤ 2.4's signatures are admitted by default and
/// refused under `sha384`; cosign ≥ 2.5's are admitted under `sha384` and refused by default.
#[test]
fn a_p384_key_verifies_with_the_hash_named() -> anyhow::Result<()> {
    let f = fixture()?;
    let cip = Host::for_registry(&f.host);
    for hash in [None, Some("sha256")] {
        f.decide(&cip, &f.sha256, hash)
            .assert_admitted(&format!("sha256 signature, hashAlgorithm {hash:?}"));
        let refused = f.decide(&cip, &f.sha384, hash);
        let message = refused.assert_refused(&format!("sha384 signature, hashAlgorithm {hash:?}"));
        assert!(
            message.contains("no signature verified by the given key with hashAlgorithm sha256"),
            "{message}"
        );
    }
    f.decide(&cip, &f.sha384, Some("sha384"))
        .assert_admitted("sha384 signature, hashAlgorithm sha384");
    let refused = f.decide(&cip, &f.sha256, Some("sha384"));
    let message = refused.assert_refused("sha256 signature, hashAlgorithm sha384");
    assert!(
        message.contains("authority the-key: no signature verified by the key: no signature verified by the given key"),
        "{message}"
    );
    let refused = f.decide(&cip, &f.sha384, Some("sha512"));
    refused.assert_refused("sha384 signature, hashAlgorithm sha512");
    Ok(())
}

/// `hashAlgorithm` values policy-controller does not know are refused when the settings load,
/// naming the field and what to write.
#[test]
fn an_unknown_hash_algorithm_is_refused_with_the_fix() -> anyhow::Result<()> {
    let cip = Host::offline();
    let s = key_policy("registry.example", &PyKey::generate("p384")?.public, Some("md5"));
    let message = cip.validate_settings(&s).expect_err("md5 must be refused");
    assert!(
        message.contains("key.hashAlgorithm: hashAlgorithm md5 is unknown: write sha256 (the default; older cosign signs every key with it), sha384 (newer cosign with a P-384 key), sha512 or sha224"),
        "{message}"
    );
    Ok(())
}

/// A host serving Kubewarden's capabilities only (policy-server, kwctl): it verifies a P-384
/// key with SHA-384 only, so `hashAlgorithm` sha256 (the default) is refused saying why and what
/// to do, never admitted on a SHA-384 signature; `sha384` is verified by it.
#[test]
fn a_stock_host_refuses_a_hash_it_cannot_verify_with_and_says_why() -> anyhow::Result<()> {
    let f = fixture()?;
    let stock = StockHost::for_registry(&f.host);
    for image in [&f.sha256, &f.sha384] {
        let s = key_policy(&f.host, &f.key.public, None);
        let refused = stock.validate(&pod("default", &[image]), &s);
        let message = refused.assert_refused(image);
        assert!(
            message.contains(
                "key.hashAlgorithm sha256 with a P-384 key needs host capability cluster-image-policy/oci/v1/verify_key_with_hash (cip only): Kubewarden's SigstorePubKeyVerify verifies P-384 keys with sha384 only; run under cip, or sign with sha384 and set key.hashAlgorithm: sha384"
            ),
            "{message}"
        );
    }
    let s = key_policy(&f.host, &f.key.public, Some("sha384"));
    stock
        .validate(&pod("default", &[&f.sha384]), &s)
        .assert_admitted("sha384 signature, hashAlgorithm sha384, stock host");
    stock
        .validate(&pod("default", &[&f.sha256]), &s)
        .assert_refused("sha256 signature, hashAlgorithm sha384, stock host");
    Ok(())
}

/// The module under a host without the `cluster-image-policy` binding, as `cip run
/// --kubewarden-capabilities-only` runs it.
struct StockHost {
    evaluator: Evaluator,
    _runtime: tokio::runtime::Runtime,
}

impl StockHost {
    fn for_registry(registry_host: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = VerifierConfig {
            sources: Sources {
                insecure_sources: vec![registry_host.to_owned()],
                ..Sources::default()
            },
            registry_timeout: Duration::from_secs(1),
            ..VerifierConfig::default()
        };
        let verifier = Verifier::new(config).expect("verifier");
        let capabilities = Capabilities::new(Arc::new(verifier), runtime.handle().clone()).kubewarden_only();
        let evaluator = Evaluator::new(
            &policy_module(),
            Arc::new(capabilities),
            EvaluatorOptions {
                timeout: Duration::from_secs(2),
                ..EvaluatorOptions::default()
            },
        )
        .expect("evaluator");
        Self {
            evaluator,
            _runtime: runtime,
        }
    }

    fn validate(&self, request: &Value, settings: &Value) -> Response {
        let answer = self
            .evaluator
            .validate_settings(settings)
            .expect("validate_settings runs");
        assert!(answer.valid, "{:?}", answer.message);
        Response(
            serde_json::to_value(self.evaluator.validate(request, settings).expect("validate runs")).expect("JSON"),
        )
    }
}

impl PyKey {
    /// Pushes `repo:v1` and attests it (`cosign attest --key`, legacy `.att` format) with this
    /// key over `hash`: an SPDX statement in a DSSE envelope. Returns the image reference.
    fn attested_image(&self, host: &str, repo: &str, hash: &str) -> anyhow::Result<String> {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as BASE64;
        let digest = push_image(host, repo, "v1", &format!("{repo}-content"))?;
        let predicate = json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"});
        let statement = testkit::in_toto_statement(host, repo, &digest, testkit::SPDX_PREDICATE_TYPE, &predicate);
        let payload = serde_json::to_vec(&statement)?;
        let pae = testkit::dsse_pae(testkit::IN_TOTO_PAYLOAD_TYPE, &payload);
        let signature = python(&["sign", hash, &self.private], &pae)?;
        let envelope = json!({
            "payloadType": testkit::IN_TOTO_PAYLOAD_TYPE,
            "payload": BASE64.encode(&payload),
            "signatures": [{"keyid": "", "sig": BASE64.encode(signature)}],
        });
        let layer = testkit::CosignLayer {
            payload: serde_json::to_vec(&envelope)?,
            annotations: BTreeMap::from([
                (testkit::SIGNATURE_ANNOTATION.to_owned(), String::new()),
                (
                    testkit::PREDICATE_TYPE_ANNOTATION.to_owned(),
                    testkit::SPDX_PREDICATE_TYPE.to_owned(),
                ),
            ]),
        };
        testkit::push_attestation_layers(host, repo, &digest, &[layer])?;
        Ok(format!("{host}/{repo}:v1"))
    }
}

/// [`key_policy`] whose authority requires an SPDX attestation.
fn attestation_policy(host: &str, public: &str, hash_algorithm: Option<&str>) -> Value {
    let mut s = key_policy(host, public, hash_algorithm);
    s["policies"][0]["spec"]["authorities"][0]["attestations"] = json!([{"name": "sbom", "predicateType": "spdx"}]);
    s
}

/// Attestations of a P-384 key are verified with exactly the hash `hashAlgorithm` names too,
/// as policy-controller verifies them (`signature.LoadVerifier(k,
/// authority.Key.HashAlgorithmCode)` in `ValidatePolicyAttestationsForAuthority`): under `cip`
/// an attestation over SHA-256 is admitted by default and refused under `sha384`, one over
/// SHA-384 the other way round. A stock host verifies no attestation: refused, naming the
/// capability.
#[test]
fn a_p384_key_verifies_attestations_with_the_hash_named() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = PyKey::generate("p384")?;
    let sha256 = key.attested_image(&host, "att/sha256", "sha256")?;
    let sha384 = key.attested_image(&host, "att/sha384", "sha384")?;
    let cip = Host::for_registry(&host);
    let decide = |image: &str, hash: Option<&str>| {
        let s = attestation_policy(&host, &key.public, hash);
        cip.validate_settings(&s)
            .unwrap_or_else(|e| panic!("hashAlgorithm {hash:?} refused: {e}"));
        cip.validate(&pod("default", &[image]), &s)
    };
    for hash in [None, Some("sha256")] {
        decide(&sha256, hash).assert_admitted(&format!("sha256 attestation, hashAlgorithm {hash:?}"));
        let refused = decide(&sha384, hash);
        let message = refused.assert_refused(&format!("sha384 attestation, hashAlgorithm {hash:?}"));
        assert!(
            message.contains("no attestation verified by the given key with hashAlgorithm sha256"),
            "{message}"
        );
    }
    decide(&sha384, Some("sha384")).assert_admitted("sha384 attestation, hashAlgorithm sha384");
    decide(&sha256, Some("sha384")).assert_refused("sha256 attestation, hashAlgorithm sha384");

    let stock = StockHost::for_registry(&host);
    let s = attestation_policy(&host, &key.public, None);
    let message = stock
        .validate(&pod("default", &[&sha256]), &s)
        .assert_refused("sha256 attestation, stock host")
        .to_owned();
    assert!(
        message.contains("(attestations are verified by the host capability cluster-image-policy/oci/v1/verify_attestations_with_hash, which only cip implements: on a stock Kubewarden host run `cip run`"),
        "{message}"
    );
    Ok(())
}
