//! The Gatekeeper provider over TLS with the real policy module and the article's
//! `attestation-policy` (verbatim but for its key and registry host): an image with a valid
//! SPDX attestation is allowed and pinned, one without and one whose SBOM fails the CUE policy
//! are denied with the reason.
//!
//! Needs the policy module (`make policy.wasm`, or `CIP_POLICY_WASM`).

mod provider_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cip::capabilities::Capabilities;
use cip::provider::{Limits, PolicyDecider};
use cip::registry::Sources;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use cip::verify::{Verifier, VerifierConfig};
use provider_support::*;
use serde_json::{Value, json};

fn policy_module() -> TestResult<PolicyModule> {
    let path: PathBuf = std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        PathBuf::from,
    );
    Ok(PolicyModule::from_file(&path)
        .map_err(|e| format!("{}: {e} (build the policy module first)", path.display()))?)
}

/// The article's attestation policy with `key` and `registry_host` in place of its placeholders.
fn settings(registry_host: &str, key_pem: &str) -> TestResult<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/testdata/article/attestation-policy.yaml");
    let yaml = std::fs::read_to_string(path)?.replace("myregistry.com", registry_host);
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(|l| format!("        {l}\n"))
        .collect();
    let yaml = yaml.replace("        ...\n", &body);
    let policy: Value = serde_yaml::from_str(&yaml)?;
    Ok(json!({"policies": [policy], "noMatchPolicy": "deny"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_article_attestation_policy_decides_through_the_provider() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let signer = testkit::KeyPair::ecdsa_p256()?;
    let sbom = |id: &str| json!({"SPDXID": id, "spdxVersion": "SPDX-2.3"});
    let attested = testkit::push_image(&host, "app/attested", "v1", "attested")?;
    testkit::attest_with_key(
        &host,
        "app/attested",
        &attested,
        &signer,
        testkit::SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-DOCUMENT"),
        None,
    )?;
    testkit::push_image(&host, "app/bare", "v1", "bare")?;
    let failing = testkit::push_image(&host, "app/failing", "v1", "failing")?;
    testkit::attest_with_key(
        &host,
        "app/failing",
        &failing,
        &signer,
        testkit::SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-X"),
        None,
    )?;

    let verifier = Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![host.clone()],
            ..Sources::default()
        },
        ..VerifierConfig::default()
    })?;
    let capabilities = Arc::new(Capabilities::new(Arc::new(verifier), tokio::runtime::Handle::current()));
    let evaluator = Evaluator::new(&policy_module()?, capabilities, EvaluatorOptions::default())?;
    let settings = settings(&host, signer.public_key_pem())?;
    let decider = Arc::new(tokio::task::spawn_blocking(move || PolicyDecider::new(evaluator, settings)).await??);
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("client CA")?)?;
    let provider = start(decider, &files, false, Limits::default()).await?;
    let client = tls13_client(&ca, None)?;

    let keys = [
        key(&format!("{host}/app/attested:v1"), "default"),
        key(&format!("{host}/app/bare:v1"), "default"),
        key(&format!("{host}/app/failing:v1"), "default"),
    ];
    let (status, answer) = post(&client, &provider, &request(&keys)).await?;
    assert_eq!(status, 200, "{answer}");
    let value = |k: &str| item(&answer, k).map(|i| i["value"].clone()).unwrap_or_default();

    let allowed = value(&keys[0]);
    assert_eq!(allowed["verdict"], "allow", "{answer}");
    assert_eq!(allowed["digest"], attested.as_str());
    for (k, reason) in [
        (&keys[1], "no attestations found for"),
        (
            &keys[2],
            "attestation sbom: no spdx attestation satisfies its policy (cue): predicate.SPDXID",
        ),
    ] {
        let denied = value(k);
        assert_eq!(denied["verdict"], "deny", "{answer}");
        let message = denied["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("attestation-policy") && message.contains(reason),
            "{message}"
        );
    }
    provider.shutdown().await;
    Ok(())
}
