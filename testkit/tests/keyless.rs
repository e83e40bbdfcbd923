//! Keyless signatures made with the test Fulcio and Rekor verify with sigstore-rs against the
//! trust configuration the fixtures generate, and fail against anything else.

use std::collections::BTreeMap;

use pki_types::CertificateDer;
use sigstore::cosign::verification_constraint::cert_subject_email_verifier::StringVerifier;
use sigstore::cosign::verification_constraint::{
    CertSubjectEmailVerifier, CertSubjectUrlVerifier, VerificationConstraintVec,
};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, SignatureLayer, verify_constraints};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use sigstore::trust::ManualTrustRoot;
use sigstore_protobuf_specs::dev::sigstore::trustroot::v1::{ClientTrustConfig, TrustedRoot};
use testkit::{GithubWorkflow, LeafRequest, Registry, SignerIdentity, TestFulcio, TestRekor};

const ISSUER: &str = "https://accounts.example.com";
const WORKFLOW: &str = "https://github.com/org/repo/.github/workflows/x.yml@refs/heads/main";

/// Reads a trust config the way sigstore-rs's `SigstoreTrustRoot` does: every CA certificate
/// becomes a trust anchor, every tlog key is keyed by the hex of its log id.
fn trust_root_from_config(json: &str) -> anyhow::Result<ManualTrustRoot<'static>> {
    let config: ClientTrustConfig = serde_json::from_str(json)?;
    let root = config
        .trusted_root
        .ok_or_else(|| anyhow::anyhow!("trustedRoot missing"))?;
    let fulcio_certs = root
        .certificate_authorities
        .iter()
        .flat_map(|ca| ca.cert_chain.iter().flat_map(|chain| chain.certificates.iter()))
        .map(|cert| CertificateDer::from(cert.raw_bytes.clone()))
        .collect();
    let rekor_keys = root
        .tlogs
        .iter()
        .filter_map(|tlog| {
            let id = hex::encode(&tlog.log_id.as_ref()?.key_id);
            Some((id, tlog.public_key.as_ref()?.raw_bytes.clone()?))
        })
        .collect();
    Ok(ManualTrustRoot {
        fulcio_certs,
        rekor_keys,
        ctfe_keys: BTreeMap::new(),
    })
}

async fn trusted_layers(
    trust_config: &str,
    host: &str,
    repo: &str,
    digest: &str,
) -> anyhow::Result<Vec<SignatureLayer>> {
    let trust_root = trust_root_from_config(trust_config)?;
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .with_trust_repository(&trust_root)?
        .build()?;
    let image: OciReference = format!("{host}/{repo}@{digest}").parse()?;
    Ok(client.trusted_signature_layers(&Auth::Anonymous, &image).await?)
}

fn email_verifier(email: &str, issuer: &str) -> VerificationConstraintVec {
    vec![Box::new(CertSubjectEmailVerifier {
        email: StringVerifier::ExactMatch(email.to_owned()),
        issuer: Some(StringVerifier::ExactMatch(issuer.to_owned())),
    })]
}

fn verified(layers: &[SignatureLayer], constraints: &VerificationConstraintVec) -> bool {
    verify_constraints(layers, constraints.iter()).is_ok()
}

#[tokio::test]
async fn keyless_email_signature_verifies_against_the_generated_trust_config() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "keyless", "v1", "keyless")?;
    let fulcio = TestFulcio::new()?;
    let rekor = TestRekor::new()?;
    let request = LeafRequest::new(SignerIdentity::Email("user@example.com".into()), ISSUER);
    let layer = testkit::sign_keyless(&host, "keyless", &digest, &fulcio, &rekor, &request, &BTreeMap::new())?;
    assert!(layer.annotations.contains_key(testkit::BUNDLE_ANNOTATION));
    assert_eq!(
        layer.annotations.get(testkit::CHAIN_ANNOTATION),
        Some(&fulcio.chain_pem())
    );

    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let layers = trusted_layers(&trust, &host, "keyless", &digest).await?;
    assert_eq!(layers.len(), 1);
    assert!(layers[0].certificate_signature.is_some(), "certificate not trusted");
    assert!(verified(&layers, &email_verifier("user@example.com", ISSUER)));
    assert!(!verified(&layers, &email_verifier("other@example.com", ISSUER)));
    assert!(!verified(
        &layers,
        &email_verifier("user@example.com", "https://other.example.com")
    ));
    Ok(())
}

#[tokio::test]
async fn workflow_identity_carries_github_extensions() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "ci", "v1", "ci")?;
    let fulcio = TestFulcio::new()?;
    let rekor = TestRekor::new()?;
    let request = LeafRequest::new(
        SignerIdentity::Uri(WORKFLOW.into()),
        "https://token.actions.githubusercontent.com",
    )
    .with_github_workflow(GithubWorkflow {
        trigger: "push".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        name: "release".into(),
        repository: "org/repo".into(),
        git_ref: "refs/heads/main".into(),
    });
    testkit::sign_keyless(&host, "ci", &digest, &fulcio, &rekor, &request, &BTreeMap::new())?;

    let layers = trusted_layers(&testkit::trust_config_json(&fulcio, &rekor), &host, "ci", &digest).await?;
    let url: VerificationConstraintVec = vec![Box::new(CertSubjectUrlVerifier {
        url: WORKFLOW.into(),
        issuer: "https://token.actions.githubusercontent.com".into(),
    })];
    assert!(verified(&layers, &url));
    let certificate = layers[0]
        .certificate_signature
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("certificate not trusted"))?;
    assert_eq!(certificate.github_workflow_repository.as_deref(), Some("org/repo"));
    assert_eq!(certificate.github_workflow_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(certificate.github_workflow_trigger.as_deref(), Some("push"));
    Ok(())
}

#[tokio::test]
async fn other_ca_other_log_or_missing_bundle_are_not_trusted() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let fulcio = TestFulcio::new()?;
    let rekor = TestRekor::new()?;
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let request = LeafRequest::new(SignerIdentity::Email("user@example.com".into()), ISSUER);
    let wanted = email_verifier("user@example.com", ISSUER);
    let none = BTreeMap::new();

    let rogue_ca = TestFulcio::new()?;
    let digest = testkit::push_image(&host, "neg", "ca", "ca")?;
    testkit::sign_keyless(&host, "neg", &digest, &rogue_ca, &rekor, &request, &none)?;
    let layers = trusted_layers(&trust, &host, "neg", &digest).await?;
    assert_eq!(layers.len(), 1);
    assert!(layers[0].certificate_signature.is_none());
    assert!(!verified(&layers, &wanted));

    let rogue_log = TestRekor::new()?;
    let digest = testkit::push_image(&host, "neg", "log", "log")?;
    testkit::sign_keyless(&host, "neg", &digest, &fulcio, &rogue_log, &request, &none)?;
    assert!(trusted_layers(&trust, &host, "neg", &digest).await?.is_empty());

    let digest = testkit::push_image(&host, "neg", "nobundle", "nobundle")?;
    let leaf = fulcio.issue(&request)?;
    testkit::sign_with_certificate(&host, "neg", &digest, &leaf, &fulcio.chain_pem(), None, &none)?;
    let layers = trusted_layers(&trust, &host, "neg", &digest).await?;
    assert_eq!(layers.len(), 1);
    assert!(layers[0].certificate_signature.is_none());
    assert!(!verified(&layers, &wanted));

    let digest = testkit::push_image(&host, "neg", "withbundle", "withbundle")?;
    testkit::sign_with_certificate(&host, "neg", &digest, &leaf, &fulcio.chain_pem(), Some(&rekor), &none)?;
    assert!(verified(&trusted_layers(&trust, &host, "neg", &digest).await?, &wanted));
    Ok(())
}

#[test]
fn trust_documents_parse_as_sigstore_protobuf_specs() -> anyhow::Result<()> {
    let fulcio = TestFulcio::new()?;
    let rekor = TestRekor::new()?;
    let config: ClientTrustConfig = serde_json::from_str(&testkit::trust_config_json(&fulcio, &rekor))?;
    assert_eq!(config.media_type, testkit::CLIENT_TRUST_CONFIG_MEDIA_TYPE);
    assert!(config.signing_config.is_some());
    let root: TrustedRoot = serde_json::from_str(&testkit::trusted_root_json(&fulcio, &rekor))?;
    assert_eq!(root.tlogs.len(), 1);
    assert_eq!(
        root.tlogs[0].log_id.as_ref().map(|id| hex::encode(&id.key_id)),
        Some(rekor.log_id().to_owned())
    );
    let chain = root.certificate_authorities[0]
        .cert_chain
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no chain"))?;
    assert_eq!(chain.certificates[0].raw_bytes, fulcio.intermediate_der());
    assert_eq!(chain.certificates[1].raw_bytes, fulcio.root_der());
    Ok(())
}

#[tokio::test]
async fn cosign_v3_bundle_referrer_verifies_with_sigstore() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "v3", "v1", "v3")?;
    let fulcio = TestFulcio::new()?;
    let rekor = TestRekor::new()?;
    let request = LeafRequest::new(SignerIdentity::Email("user@example.com".into()), ISSUER);
    testkit::sign_keyless_bundle(&host, "v3", &digest, &fulcio, &rekor, &request)?;
    assert!(
        testkit::fetch_signature_layers(&host, "v3", &digest)?.is_empty(),
        "no legacy .sig tag"
    );

    let layers = trusted_layers(&testkit::trust_config_json(&fulcio, &rekor), &host, "v3", &digest).await?;
    assert_eq!(layers.len(), 1);
    assert!(layers[0].certificate_signature.is_some(), "certificate not trusted");
    assert!(verified(&layers, &email_verifier("user@example.com", ISSUER)));
    assert!(!verified(&layers, &email_verifier("other@example.com", ISSUER)));

    let other = testkit::push_image(&host, "v3", "v2", "v3-other")?;
    testkit::sign_keyless_bundle(&host, "v3", &other, &fulcio, &TestRekor::new()?, &request)?;
    let untrusted_log = trusted_layers(&testkit::trust_config_json(&fulcio, &rekor), &host, "v3", &other).await?;
    assert!(untrusted_log.is_empty(), "a bundle from an unknown log must be dropped");
    Ok(())
}
