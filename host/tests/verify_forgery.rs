//! Signatures built as a forger would build them, against a real registry: certificates and
//! Rekor bundles copied from genuine signatures, corrupted signatures, trust-root keys used
//! outside their `validFor`, missing or bad SCTs. Each one was accepted by the verifier before
//! it bound layers end to end (sigstore-rs 0.15 alone accepts them all).

mod verify_support;

use std::collections::BTreeMap;

use cip::trust::TrustRoot;
use cip::verify::{KeylessRegexpRequest, VerificationRequest};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use testkit::{CosignLayer, GithubWorkflow, IssuerExtension, LeafRequest, SctMode, SignerIdentity};
use verify_support::{World, failure, verified};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn keyless(image: &str) -> VerificationRequest {
    verify_support::keyless_request(image, &[(ISSUER, EMAIL)], None)
}

fn email_request() -> LeafRequest {
    LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER)
}

/// The genuine keyless signature of the world's image, as pushed.
fn genuine_keyless_layer(world: &World) -> CosignLayer {
    testkit::sign_keyless(
        &world.host,
        &world.repo,
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    )
    .expect("signed")
}

/// An image the attacker controls, in the same registry: `team/evil:v1`.
fn attacker_image(world: &World) -> (String, String) {
    let digest = testkit::push_image(&world.host, "team/evil", "v1", "evil-v1").expect("pushed");
    (digest.clone(), format!("{}/team/evil@{digest}", world.host))
}

fn trust_with(world: &World, edit: impl FnOnce(&mut serde_json::Value)) -> TrustRoot {
    let mut value = testkit::trust_config_value(&[&world.fulcio], &[&world.rekor]);
    edit(&mut value["trustedRoot"]);
    TrustRoot::from_json(&value.to_string()).expect("edited trust config is valid")
}

#[tokio::test]
async fn a_certificate_and_bundle_copied_onto_another_payload_are_rejected() {
    let world = World::new();
    let genuine = genuine_keyless_layer(&world);
    verified(&world.verifier(), keyless(&world.tag_ref())).await;
    let (evil_digest, evil_ref) = attacker_image(&world);
    // The attacker's payload names their digest; the genuine signature, certificate and bundle
    // are copied next to it.
    let payload =
        testkit::simple_signing_payload(&world.host, "team/evil", &evil_digest, &Default::default()).expect("payload");
    let forged = CosignLayer {
        payload,
        annotations: genuine.annotations.clone(),
    };
    testkit::push_signature_layers(&world.host, "team/evil", &evil_digest, &[forged]).expect("pushed");

    let reason = failure(&world.verifier(), keyless(&evil_ref)).await;

    assert_eq!(
        reason,
        "Rekor bundle describes another signature: its hash is not the SHA-256 of this payload"
    );
}

#[tokio::test]
async fn a_copied_certificate_with_a_fresh_bundle_over_a_forged_signature_is_rejected() {
    let world = World::new();
    let genuine = genuine_keyless_layer(&world);
    let (evil_digest, evil_ref) = attacker_image(&world);
    // Even with a log entry that records the forged layer (a log accepting anything), the
    // signature must verify with the certificate's key.
    let attacker = testkit::KeyPair::ecdsa_p256().expect("key");
    let mut forged =
        testkit::key_signature_layer(&world.host, "team/evil", &evil_digest, &attacker, &Default::default())
            .expect("layer");
    let certificate = genuine.annotations[testkit::CERTIFICATE_ANNOTATION].clone();
    forged
        .annotations
        .insert(testkit::CERTIFICATE_ANNOTATION.to_string(), certificate.clone());
    let forged = forged
        .with_bundle(&world.rekor, &certificate, chrono::Utc::now().timestamp())
        .expect("bundle");
    testkit::push_signature_layers(&world.host, "team/evil", &evil_digest, &[forged]).expect("pushed");

    let reason = failure(&world.verifier(), keyless(&evil_ref)).await;

    assert_eq!(
        reason,
        format!(
            "no keyless signature by issuer {ISSUER} and subject {EMAIL}; signature does not verify with the signing certificate's key over the payload"
        )
    );
}

#[tokio::test]
async fn a_corrupted_keyless_signature_is_rejected() {
    let world = World::new();
    let genuine = genuine_keyless_layer(&world);
    let corrupted = genuine.with_corrupted_signature().expect("corrupted");
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[corrupted]).expect("pushed");

    let reason = failure(&world.verifier(), keyless(&world.tag_ref())).await;

    assert_eq!(
        reason,
        "Rekor bundle describes another signature: its signature is not this layer's signature"
    );
}

#[tokio::test]
async fn a_bundle_of_another_entry_is_rejected() {
    let world = World::new();
    let leaf = world.fulcio.issue(&email_request()).expect("leaf");
    let (evil_digest, _) = attacker_image(&world);
    let chain = world.fulcio.chain_pem();
    // The same certificate signed another image; that entry's bundle is moved onto this layer.
    let other = testkit::certificate_signature_layer(
        &world.host,
        "team/evil",
        &evil_digest,
        &leaf,
        Some(&chain),
        Some(&world.rekor),
        &Default::default(),
    )
    .expect("other layer");
    let mut layer = testkit::certificate_signature_layer(
        &world.host,
        &world.repo,
        &world.digest,
        &leaf,
        Some(&chain),
        None,
        &Default::default(),
    )
    .expect("layer");
    layer.annotations.insert(
        testkit::BUNDLE_ANNOTATION.to_string(),
        other.annotations[testkit::BUNDLE_ANNOTATION].clone(),
    );
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");

    let reason = failure(&world.verifier(), keyless(&world.tag_ref())).await;

    assert_eq!(
        reason,
        "Rekor bundle describes another signature: its hash is not the SHA-256 of this payload"
    );
}

#[tokio::test]
async fn a_certificate_authority_requiring_a_bundle_rejects_a_moved_bundle() {
    let world = World::new();
    let leaf = world.fulcio.issue(&email_request()).expect("leaf");
    let (evil_digest, _) = attacker_image(&world);
    let other = testkit::certificate_signature_layer(
        &world.host,
        "team/evil",
        &evil_digest,
        &leaf,
        None,
        Some(&world.rekor),
        &Default::default(),
    )
    .expect("other layer");
    let mut layer =
        testkit::key_signature_layer(&world.host, &world.repo, &world.digest, &leaf.key, &Default::default())
            .expect("layer");
    layer.annotations.insert(
        testkit::BUNDLE_ANNOTATION.to_string(),
        other.annotations[testkit::BUNDLE_ANNOTATION].clone(),
    );
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer.clone()]).expect("pushed");
    let request = |require_rekor_bundle: bool| {
        VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreCertificateVerify {
            image: world.tag_ref(),
            certificate: leaf.cert_pem.as_bytes().to_vec(),
            certificate_chain: Some(vec![
                world.fulcio.intermediate_pem().as_bytes().to_vec(),
                world.fulcio.root_pem().as_bytes().to_vec(),
            ]),
            require_rekor_bundle,
            annotations: None,
        })
    };

    let reason = failure(&world.verifier(), request(true)).await;
    assert_eq!(
        reason,
        "Rekor bundle describes another signature: its hash is not the SHA-256 of this payload"
    );

    // The honest layer with its own bundle passes.
    let honest = layer
        .clone()
        .with_bundle(&world.rekor, &leaf.cert_pem, chrono::Utc::now().timestamp())
        .expect("bundle");
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[honest]).expect("pushed");
    verified(&world.verifier(), request(true)).await;
}

#[tokio::test]
async fn a_certificate_authority_outside_its_validity_is_not_trusted() {
    let world = World::new();
    genuine_keyless_layer(&world);
    let retired = trust_with(&world, |root| {
        root["certificateAuthorities"][0]["validFor"] =
            serde_json::json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    });

    let reason = failure(
        &world.verifier_for(&[&world.host], Some(retired)),
        keyless(&world.tag_ref()),
    )
    .await;

    assert!(
        reason.starts_with(&format!(
            "no keyless signature by issuer {ISSUER} and subject {EMAIL}; signing certificate is not trusted by the Fulcio CAs of the trust root: it was logged at "
        )),
        "{reason}"
    );
    assert!(
        reason.ends_with(
            "outside the validity of certificate authority #1 (2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z)"
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn a_rekor_key_outside_its_validity_is_not_trusted() {
    let world = World::new();
    genuine_keyless_layer(&world);
    let future = trust_with(&world, |root| {
        root["tlogs"][0]["publicKey"]["validFor"] = serde_json::json!({"start": "2090-01-01T00:00:00Z"});
    });

    let reason = failure(
        &world.verifier_for(&[&world.host], Some(future)),
        keyless(&world.tag_ref()),
    )
    .await;

    assert!(reason.starts_with("Rekor bundle was integrated at "), "{reason}");
    assert!(
        reason.ends_with(&format!(
            "outside the validity of Rekor log key {} (2090-01-01T00:00:00Z on)",
            world.rekor.log_id()
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn a_ct_log_key_outside_its_validity_is_not_trusted() {
    let world = World::new();
    genuine_keyless_layer(&world);
    let retired = trust_with(&world, |root| {
        root["ctlogs"][0]["publicKey"]["validFor"] =
            serde_json::json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    });

    let reason = failure(
        &world.verifier_for(&[&world.host], Some(retired)),
        keyless(&world.tag_ref()),
    )
    .await;

    assert!(reason.contains("certificate's SCT was issued at "), "{reason}");
    assert!(
        reason.ends_with("(2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z)"),
        "{reason}"
    );
}

async fn sct_failure(mode: SctMode) -> (World, String) {
    let world = World::new();
    testkit::sign_keyless(
        &world.host,
        &world.repo,
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &email_request().with_sct(mode),
        &Default::default(),
    )
    .expect("signed");
    let reason = failure(&world.verifier(), keyless(&world.tag_ref())).await;
    (world, reason)
}

#[tokio::test]
async fn a_certificate_without_an_sct_is_rejected_unless_the_authority_ignores_scts() {
    let (world, reason) = sct_failure(SctMode::Missing).await;
    assert_eq!(
        reason,
        format!(
            "no keyless signature by issuer {ISSUER} and subject {EMAIL}; signing certificate has no embedded SCT (certificate transparency proof)"
        )
    );

    let request = |ignore: bool| {
        VerificationRequest::KeylessRegexp(KeylessRegexpRequest {
            image: world.tag_ref(),
            issuer: Some(ISSUER.to_string()),
            subject_regexp: Some(".*@example\\.com".to_string()),
            insecure_ignore_sct: ignore,
            ..Default::default()
        })
    };
    failure(&world.verifier(), request(false)).await;
    verified(&world.verifier(), request(true)).await;
}

#[tokio::test]
async fn a_certificate_with_a_corrupted_sct_is_rejected() {
    let (world, reason) = sct_failure(SctMode::Corrupted).await;
    let log_id = hex::encode(world.fulcio.ct_log_id_raw());
    assert_eq!(
        reason,
        format!(
            "no keyless signature by issuer {ISSUER} and subject {EMAIL}; certificate's SCT does not verify under CT log key {log_id}"
        )
    );
}

#[tokio::test]
async fn a_certificate_with_an_sct_from_an_unknown_log_is_rejected() {
    let (_world, reason) = sct_failure(SctMode::UnknownLog).await;
    assert!(
        reason.starts_with(&format!(
            "no keyless signature by issuer {ISSUER} and subject {EMAIL}; certificate's SCT is from CT log "
        )),
        "{reason}"
    );
    assert!(reason.ends_with(", which is not in the trust root"), "{reason}");
}

#[tokio::test]
async fn keyless_needs_ct_log_keys_in_the_trust_root() {
    let world = World::new();
    genuine_keyless_layer(&world);
    let no_ct_logs = trust_with(&world, |root| root["ctlogs"] = serde_json::json!([]));

    let reason = failure(
        &world.verifier_for(&[&world.host], Some(no_ct_logs)),
        keyless(&world.tag_ref()),
    )
    .await;

    assert_eq!(
        reason,
        "sigstore trust config unusable: the trust root lacks CT log keys (ctlogs), needed to check the SCT of keyless certificates"
    );
}

#[tokio::test]
async fn the_issuer_is_read_from_the_v2_extension() {
    let world = World::new();
    testkit::sign_keyless(
        &world.host,
        &world.repo,
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &email_request().with_issuer_extension(IssuerExtension::V2),
        &Default::default(),
    )
    .expect("signed");

    verified(&world.verifier(), keyless(&world.tag_ref())).await;
}

#[tokio::test]
async fn github_actions_identity_comes_from_the_workflow_repository_extension() {
    let world = World::new();
    // A reusable workflow of another organisation, called by acme/app.
    let reusable = "https://github.com/builders/shared/.github/workflows/build.yml@refs/tags/v1";
    let request =
        LeafRequest::new(SignerIdentity::Uri(reusable.into()), GITHUB_ISSUER).with_github_workflow(GithubWorkflow {
            trigger: "push".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            name: "release".into(),
            repository: "acme/app".into(),
            git_ref: "refs/heads/main".into(),
        });
    testkit::sign_keyless(
        &world.host,
        &world.repo,
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &request,
        &Default::default(),
    )
    .expect("signed");
    let github = |owner: &str, repo: Option<&str>| {
        VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
            image: world.tag_ref(),
            owner: owner.to_string(),
            repo: repo.map(str::to_string),
            annotations: None,
        })
    };

    verified(&world.verifier(), github("acme", Some("app"))).await;
    verified(&world.verifier(), github("acme", None)).await;
    failure(&world.verifier(), github("builders", Some("shared"))).await;
}

#[tokio::test]
async fn a_regexp_escaping_its_anchors_is_refused() {
    let world = World::new();
    let request = VerificationRequest::KeylessRegexp(KeylessRegexpRequest {
        image: world.tag_ref(),
        issuer: Some(ISSUER.to_string()),
        subject_regexp: Some("nobody@example\\.com)|(.*".to_string()),
        ..Default::default()
    });

    let reason = failure(&world.verifier(), request).await;

    assert!(
        reason.starts_with(
            "subject_regexp \"nobody@example\\\\.com)|(.*\" is not a valid regular expression: it is not a complete regular expression on its own"
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn oversized_and_overfull_signature_manifests_fail_naming_the_cap() {
    use cip::verify::{DownloadLimits, Verifier};
    let world = World::new();
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    for n in 0..3 {
        let annotations = BTreeMap::from([("n".to_string(), n.to_string())]);
        testkit::sign_with_key(&world.host, &world.repo, &world.digest, &key, &annotations).expect("signed");
    }
    let request = || verify_support::pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    let with = |limits: DownloadLimits| {
        let mut config = verify_support::config(&[&world.host], None);
        config.limits = limits;
        Verifier::new(config).expect("verifier")
    };
    let defaults = DownloadLimits::default();
    verified(&with(defaults), request()).await;

    let layers = failure(
        &with(DownloadLimits {
            max_layers: 2,
            ..defaults
        }),
        request(),
    )
    .await;
    let layer = failure(
        &with(DownloadLimits {
            max_layer_bytes: 64,
            ..defaults
        }),
        request(),
    )
    .await;
    let manifest = failure(
        &with(DownloadLimits {
            max_manifest_bytes: 256,
            ..defaults
        }),
        request(),
    )
    .await;

    let image = world.digest_ref();
    let sig = format!(
        "{}/{}:{}",
        world.host,
        world.repo,
        testkit::signature_tag(&world.digest)
    );
    assert_eq!(
        layers,
        format!(
            "cannot read the signatures of {image}: the layer count of the signature manifest of {sig} is larger than the cap of 2 layers (--max-signature-layers)"
        )
    );
    assert_eq!(
        layer,
        format!(
            "cannot read the signatures of {image}: a signature layer of {sig} is larger than the cap of 64 bytes (--max-signature-layer-bytes)"
        )
    );
    assert_eq!(
        manifest,
        format!(
            "cannot read the signatures of {image}: the signature manifest of {sig} is larger than the cap of 256 bytes (--max-signature-manifest-bytes)"
        )
    );
}
