//! Shared set-up of the verification tests: a real loopback registry, a test Fulcio and Rekor,
//! and a `Verifier` configured the way `cip` configures it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use cip::registry::Sources;
use cip::trust::TrustRoot;
use cip::verify::{VerificationRequest, Verifier, VerifierConfig, VerifyError};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::KeylessInfo;
use testkit::{Registry, TestFulcio, TestRekor};

/// A registry with one pushed image, and the sigstore test authorities.
pub struct World {
    pub registry: Registry,
    pub host: String,
    pub repo: String,
    pub digest: String,
    pub fulcio: TestFulcio,
    pub rekor: TestRekor,
}

impl World {
    /// Starts a registry and pushes `team/app:v1`.
    pub fn new() -> Self {
        let registry = Registry::start().expect("docker-registry starts");
        let host = registry.host();
        let repo = "team/app".to_string();
        let digest = testkit::push_image(&host, &repo, "v1", "app-v1").expect("image pushed");
        Self {
            registry,
            host,
            repo,
            digest,
            fulcio: TestFulcio::new().expect("fulcio"),
            rekor: TestRekor::new().expect("rekor"),
        }
    }

    /// `host/team/app:v1`.
    pub fn tag_ref(&self) -> String {
        format!("{}/{}:v1", self.host, self.repo)
    }

    /// `host/team/app@sha256:…`.
    pub fn digest_ref(&self) -> String {
        format!("{}/{}@{}", self.host, self.repo, self.digest)
    }

    /// The trust root of this world's Fulcio and Rekor.
    pub fn trust(&self) -> TrustRoot {
        TrustRoot::from_json(&testkit::trust_config_json(&self.fulcio, &self.rekor))
            .expect("testkit trust config is valid")
    }

    /// A verifier reaching `hosts` over plain HTTP, trusting this world's sigstore.
    pub fn verifier_for(&self, hosts: &[&str], trust: Option<TrustRoot>) -> Verifier {
        Verifier::new(config(hosts, trust)).expect("verifier")
    }

    /// A verifier for this world's registry, trusting this world's sigstore.
    pub fn verifier(&self) -> Verifier {
        self.verifier_for(&[&self.host], Some(self.trust()))
    }
}

/// Plain HTTP to `hosts`, failures not cached (each test step sees the registry as it is now).
pub fn config(hosts: &[&str], trust: Option<TrustRoot>) -> VerifierConfig {
    VerifierConfig {
        sources: Sources {
            insecure_sources: hosts.iter().map(|h| h.to_string()).collect(),
            ..Sources::default()
        },
        trust,
        failure_ttl: Duration::ZERO,
        registry_timeout: Duration::from_secs(2),
        ..VerifierConfig::default()
    }
}

/// `SigstorePubKeyVerify` of `image` with `keys`.
pub fn pub_key_request(
    image: &str,
    keys: &[&str],
    annotations: Option<BTreeMap<String, String>>,
) -> VerificationRequest {
    VerificationRequest::V2(SigstoreVerificationInputV2::SigstorePubKeyVerify {
        image: image.to_string(),
        pub_keys: keys.iter().map(|k| k.to_string()).collect(),
        annotations,
    })
}

/// A keyless request (`v2/verify`) for any of `identities` (issuer, subject).
pub fn keyless_request(
    image: &str,
    identities: &[(&str, &str)],
    annotations: Option<BTreeMap<String, String>>,
) -> VerificationRequest {
    VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreKeylessVerify {
        image: image.to_string(),
        keyless: identities
            .iter()
            .map(|(issuer, subject)| KeylessInfo {
                issuer: issuer.to_string(),
                subject: subject.to_string(),
            })
            .collect(),
        annotations,
    })
}

/// A `certificate` authority's input for `image`: the PEM `certificate`, no chain, a Rekor
/// bundle recording it required.
pub fn rekor_bound_certificate(image: &str, certificate: &str) -> SigstoreVerificationInputV2 {
    SigstoreVerificationInputV2::SigstoreCertificateVerify {
        image: image.to_owned(),
        certificate: certificate.as_bytes().to_vec(),
        certificate_chain: None,
        require_rekor_bundle: true,
        annotations: None,
    }
}

/// The failure text of a verification that must fail.
pub async fn failure(verifier: &Verifier, request: VerificationRequest) -> String {
    match verifier.verify(request).await {
        Ok(response) => panic!("verification passed with digest {}", response.digest),
        Err(error) => error.to_string(),
    }
}

/// The verified digest of a verification that must pass.
pub async fn verified(verifier: &Verifier, request: VerificationRequest) -> String {
    match verifier.verify(request).await {
        Ok(response) => {
            assert!(response.is_trusted);
            response.digest
        }
        Err(error) => panic!("verification failed: {error}"),
    }
}

/// Keeps the error type in view for tests matching on it.
pub fn is_trust_missing(error: &VerifyError) -> bool {
    matches!(error, VerifyError::TrustConfigMissing(_))
}

/// A `verify_attestations` request for attestations signed by `key`.
pub fn attestation_key_request(image: &str, key: &testkit::KeyPair) -> cip::verify::attestations::AttestationsRequest {
    cip::verify::attestations::AttestationsRequest::V2Verify(SigstoreVerificationInputV2::SigstorePubKeyVerify {
        image: image.to_owned(),
        pub_keys: vec![key.public_key_pem().to_owned()],
        annotations: None,
    })
}

/// A `verify_attestations` request for keyless attestations by `issuer` and `subject`.
pub fn attestation_keyless_request(
    image: &str,
    issuer: &str,
    subject: &str,
) -> cip::verify::attestations::AttestationsRequest {
    cip::verify::attestations::AttestationsRequest::V2Verify(SigstoreVerificationInputV2::SigstoreKeylessVerify {
        image: image.to_owned(),
        keyless: vec![kubewarden_policy_sdk::host_capabilities::verification::KeylessInfo {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        }],
        annotations: None,
    })
}

/// The attestations `request` finds, or a panic saying why there are none.
pub async fn attested(
    verifier: &Verifier,
    request: cip::verify::attestations::AttestationsRequest,
) -> cip::verify::attestations::AttestationsAnswer {
    match verifier.verify_attestations(request).await {
        Ok(answer) => answer,
        Err(error) => panic!("attestation verification failed: {error}"),
    }
}

/// Why `request` finds no attestation (a panic when it finds some).
pub async fn not_attested(verifier: &Verifier, request: cip::verify::attestations::AttestationsRequest) -> String {
    match verifier.verify_attestations(request).await {
        Ok(answer) => panic!("attestation verification passed: {answer:?}"),
        Err(error) => error.to_string(),
    }
}

/// The SPDX predicate the attestation tests sign.
pub fn sbom() -> serde_json::Value {
    serde_json::json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"})
}

/// Bundle options attesting [`sbom`] as an SPDX document.
pub fn spdx() -> testkit::BundleOptions {
    testkit::BundleOptions {
        predicate_type: Some(testkit::SPDX_PREDICATE_TYPE.to_owned()),
        predicate: Some(sbom()),
        ..testkit::BundleOptions::default()
    }
}
