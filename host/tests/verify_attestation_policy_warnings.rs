//! Rego policies whose compliant result carries a warning, through the real policy module and
//! `cip`'s capabilities (regorus, a loopback registry, an attestation made with a key):
//! policy-controller does not count such a result as satisfied, and neither does the module.
//!
//! - An attestation's policy (`ValidatePolicyAttestationsForAuthority` in policy-controller's
//!   `pkg/webhook/validator.go`: `if warn, err := policy.EvaluatePolicyAgainstJSON(...); err !=
//!   nil || warn != nil { continue }`): the statement does not satisfy the attestation, and the
//!   authority's reason says so (`src/authority/attestations.rs::matching`).
//! - `spec.policy` (`ValidatePolicy`: `if warn != nil { return nil, … }`): the ClusterImagePolicy
//!   does not pass (`src/decision.rs`).
//! - Controls: the same policies without the warning admit, a non-compliant result denies with
//!   its error.
//!
//! Needs the policy module (`make policy.wasm`).

use std::path::PathBuf;
use std::sync::Arc;

use cip::capabilities::Capabilities;
use cip::registry::Sources;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use cip::verify::{Verifier, VerifierConfig};
use serde_json::{Value, json};

const WITH_WARNING: &str = r#"package sigstore
isCompliant[response] {
  response := {"result": input.predicate.SPDXID == "SPDXRef-DOCUMENT", "error": "wrong SBOM", "warning": "SBOM is stale"}
}
"#;

const WITHOUT_WARNING: &str = r#"package sigstore
isCompliant[response] {
  response := {"result": input.predicate.SPDXID == "SPDXRef-DOCUMENT", "error": "wrong SBOM"}
}
"#;

const FAILING: &str = r#"package sigstore
isCompliant[response] {
  response := {"result": input.predicate.SPDXID == "SPDXRef-OTHER", "error": "wrong SBOM"}
}
"#;

const CIP_WITH_WARNING: &str = r#"package sigstore
isCompliant[response] {
  count(input.authorityMatches["sbom-signer"].attestations.sbom) == 1
  response := {"result": true, "error": "", "warning": "attestations are a week old"}
}
"#;

const CIP_WITHOUT_WARNING: &str = r#"package sigstore
isCompliant[response] {
  count(input.authorityMatches["sbom-signer"].attestations.sbom) == 1
  response := {"result": true, "error": ""}
}
"#;

fn module() -> PolicyModule {
    let path = std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        PathBuf::from,
    );
    PolicyModule::from_file(&path).expect("build the policy module first (make policy.wasm)")
}

fn settings(host: &str, key_pem: &str, attestation_rego: Option<&str>, cip_rego: Option<&str>) -> Value {
    let mut attestation = json!({"name": "sbom", "predicateType": "spdx"});
    if let Some(rego) = attestation_rego {
        attestation["policy"] = json!({"type": "rego", "data": rego});
    }
    let mut spec = json!({
        "images": [{"glob": format!("{host}/**")}],
        "authorities": [{"name": "sbom-signer", "key": {"data": key_pem}, "attestations": [attestation]}],
    });
    if let Some(rego) = cip_rego {
        spec["policy"] = json!({"type": "rego", "data": rego});
    }
    json!({"policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "attestation-policy"},
        "spec": spec,
    }]})
}

fn pod(image: &str) -> Value {
    let mut request: Value = serde_json::from_str(include_str!("fixtures/pod-library.json")).expect("pod fixture");
    request["object"]["spec"]["containers"][0]["image"] = json!(image);
    request
}

struct Setup {
    _registry: testkit::Registry,
    evaluator: Arc<Evaluator>,
    host: String,
    key_pem: String,
}

fn setup() -> Setup {
    let registry = testkit::Registry::start().expect("registry");
    let host = registry.host();
    let signer = testkit::KeyPair::ecdsa_p256().expect("key");
    let digest = testkit::push_image(&host, "app/attested", "v1", "attested").expect("image");
    testkit::attest_with_key(
        &host,
        "app/attested",
        &digest,
        &signer,
        testkit::SPDX_PREDICATE_TYPE,
        &json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"}),
        None,
    )
    .expect("attested");
    let verifier = Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![host.clone()],
            ..Sources::default()
        },
        ..VerifierConfig::default()
    })
    .expect("verifier");
    let capabilities = Arc::new(Capabilities::new(Arc::new(verifier), tokio::runtime::Handle::current()));
    let evaluator = Evaluator::new(&module(), capabilities, EvaluatorOptions::default()).expect("evaluator");
    Setup {
        _registry: registry,
        evaluator: Arc::new(evaluator),
        host,
        key_pem: signer.public_key_pem().to_owned(),
    }
}

async fn decide(setup: &Setup, attestation_rego: Option<&str>, cip_rego: Option<&str>) -> (bool, String) {
    let evaluator = Arc::clone(&setup.evaluator);
    let settings = settings(&setup.host, &setup.key_pem, attestation_rego, cip_rego);
    let request = pod(&format!("{}/app/attested:v1", setup.host));
    let response = tokio::task::spawn_blocking(move || evaluator.validate(&request, &settings))
        .await
        .expect("joined")
        .expect("validate");
    (response.accepted, response.message.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliant_rego_result_with_a_warning_does_not_satisfy_the_attestation() {
    let setup = setup();
    let (accepted, message) = decide(&setup, Some(WITH_WARNING), None).await;
    assert!(
        !accepted,
        "policy-controller skips an attestation whose Rego policy returns a warning; the module admitted: {message}"
    );
    assert!(
        message.contains(
            "authority sbom-signer: attestation sbom: no spdx attestation satisfies its policy (rego): \
             policy returned a warning: SBOM is stale; an attestation with a warning does not satisfy it"
        ),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliant_cip_level_rego_result_with_a_warning_does_not_pass() {
    let setup = setup();
    let (accepted, message) = decide(&setup, None, Some(CIP_WITH_WARNING)).await;
    assert!(
        !accepted,
        "policy-controller fails a ClusterImagePolicy whose spec.policy returns a warning; the module admitted: {message}"
    );
    assert!(
        message.contains(
            "denied by policy attestation-policy: spec.policy (rego): policy returned a warning: \
             attestations are a week old; a policy with a warning does not pass"
        ),
        "{message}"
    );
    let (accepted, message) = decide(&setup, None, Some(CIP_WITHOUT_WARNING)).await;
    assert!(accepted, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_compliant_admits_and_non_compliant_denies() {
    let setup = setup();
    let (accepted, message) = decide(&setup, Some(WITHOUT_WARNING), None).await;
    assert!(accepted, "{message}");
    let (accepted, message) = decide(&setup, Some(FAILING), None).await;
    assert!(!accepted, "{message}");
    assert!(message.contains("wrong SBOM"), "{message}");
}
