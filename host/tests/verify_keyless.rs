//! Keyless, GitHub Actions, certificate and keyless-regexp verification against a real registry,
//! with certificates from a test Fulcio and bundles from a test Rekor.

mod verify_support;

use std::collections::BTreeMap;

use cip::verify::{KeylessRegexpRequest, VerificationRequest};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::{KeylessInfo, KeylessPrefixInfo};
use testkit::{GithubWorkflow, LeafRequest, SignerIdentity, TestFulcio, TestRekor, annotations};
use verify_support::{World, failure, verified};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

fn keyless(image: &str, identities: &[(&str, &str)], notes: Option<BTreeMap<String, String>>) -> VerificationRequest {
    verify_support::keyless_request(image, identities, notes)
}

fn email_request() -> LeafRequest {
    LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER)
}

fn workflow_request() -> LeafRequest {
    LeafRequest::new(SignerIdentity::Uri(WORKFLOW.into()), GITHUB_ISSUER).with_github_workflow(GithubWorkflow {
        trigger: "push".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        name: "release".into(),
        repository: "acme/app".into(),
        git_ref: "refs/heads/main".into(),
    })
}

fn sign(
    world: &World,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    request: &LeafRequest,
    notes: &BTreeMap<String, String>,
) {
    testkit::sign_keyless(&world.host, &world.repo, &world.digest, fulcio, rekor, request, notes).expect("signed");
}

#[tokio::test]
async fn keyless_signature_verifies_by_exact_issuer_and_email_or_uri_subject() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    );
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &workflow_request(),
        &Default::default(),
    );
    let verifier = world.verifier();

    let digest = verified(&verifier, keyless(&world.tag_ref(), &[(ISSUER, EMAIL)], None)).await;
    verified(&verifier, keyless(&world.tag_ref(), &[(GITHUB_ISSUER, WORKFLOW)], None)).await;
    verified(
        &verifier,
        keyless(&world.tag_ref(), &[(ISSUER, EMAIL), (GITHUB_ISSUER, WORKFLOW)], None),
    )
    .await;

    assert_eq!(digest, world.digest);
}

#[tokio::test]
async fn keyless_identity_must_match_exactly() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    );
    let verifier = world.verifier();

    let wrong_subject = failure(
        &verifier,
        keyless(&world.tag_ref(), &[(ISSUER, "other@example.com")], None),
    )
    .await;
    let wrong_issuer = failure(
        &verifier,
        keyless(&world.tag_ref(), &[("https://accounts.example.org", EMAIL)], None),
    )
    .await;
    let one_of_two = failure(
        &verifier,
        keyless(&world.tag_ref(), &[(ISSUER, EMAIL), (ISSUER, "ops@example.com")], None),
    )
    .await;

    assert_eq!(
        wrong_subject,
        format!("no keyless signature by issuer {ISSUER} and subject other@example.com")
    );
    assert_eq!(
        wrong_issuer,
        format!("no keyless signature by issuer https://accounts.example.org and subject {EMAIL}")
    );
    assert_eq!(
        one_of_two,
        format!("no keyless signature by issuer {ISSUER} and subject ops@example.com")
    );
}

#[tokio::test]
async fn keyless_annotations_are_checked_on_the_same_layer() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &annotations([("env", "prod")]),
    );
    let verifier = world.verifier();

    verified(
        &verifier,
        keyless(
            &world.tag_ref(),
            &[(ISSUER, EMAIL)],
            Some(annotations([("env", "prod")])),
        ),
    )
    .await;
    let reason = failure(
        &verifier,
        keyless(
            &world.tag_ref(),
            &[(ISSUER, EMAIL)],
            Some(annotations([("env", "dev")])),
        ),
    )
    .await;

    assert!(reason.ends_with("with annotations env=dev"), "{reason}");
}

#[tokio::test]
async fn keyless_without_a_trust_config_says_so() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    );
    let verifier = world.verifier_for(&[&world.host], None);

    let reason = failure(&verifier, keyless(&world.tag_ref(), &[(ISSUER, EMAIL)], None)).await;

    assert_eq!(
        reason,
        "keyless verification needs a sigstore trust config (--sigstore-trust-config)"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_not_trusted() {
    let world = World::new();
    let rogue_ca = TestFulcio::new().expect("fulcio");
    sign(&world, &rogue_ca, &world.rekor, &email_request(), &Default::default());

    let reason = failure(&world.verifier(), keyless(&world.tag_ref(), &[(ISSUER, EMAIL)], None)).await;

    assert!(
        reason.starts_with(&format!("no keyless signature by issuer {ISSUER} and subject {EMAIL}")),
        "{reason}"
    );
    assert!(
        reason.contains("signing certificate is not trusted by the Fulcio CAs of the trust root"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_rekor_bundle_from_another_log_is_rejected() {
    let world = World::new();
    let rogue_log = TestRekor::new().expect("rekor");
    sign(&world, &world.fulcio, &rogue_log, &email_request(), &Default::default());

    let reason = failure(&world.verifier(), keyless(&world.tag_ref(), &[(ISSUER, EMAIL)], None)).await;

    assert_eq!(
        reason,
        format!(
            "Rekor bundle names log {}, which is not in the trust root",
            rogue_log.log_id()
        )
    );
}

#[tokio::test]
async fn a_rekor_bundle_signed_by_the_wrong_key_is_rejected() {
    let world = World::new();
    let rogue_log = TestRekor::new().expect("rekor");
    let leaf = world.fulcio.issue(&email_request()).expect("leaf");
    let mut layer = testkit::certificate_signature_layer(
        &world.host,
        &world.repo,
        &world.digest,
        &leaf,
        Some(&world.fulcio.chain_pem()),
        Some(&rogue_log),
        &Default::default(),
    )
    .expect("layer");
    // The bundle claims the trusted log but carries the rogue log's signature.
    let bundle = layer
        .annotations
        .get(testkit::BUNDLE_ANNOTATION)
        .expect("bundle")
        .clone();
    let mut bundle: serde_json::Value = serde_json::from_str(&bundle).expect("bundle JSON");
    bundle["Payload"]["logID"] = world.rekor.log_id().into();
    layer
        .annotations
        .insert(testkit::BUNDLE_ANNOTATION.to_string(), bundle.to_string());
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");

    let reason = failure(&world.verifier(), keyless(&world.tag_ref(), &[(ISSUER, EMAIL)], None)).await;

    assert_eq!(reason, "Rekor bundle is not signed by the trusted Rekor key");
}

#[tokio::test]
async fn keyless_prefix_matches_whole_path_segments_only() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &workflow_request(),
        &Default::default(),
    );
    let verifier = world.verifier();
    let prefix = |url_prefix: &str| {
        VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreKeylessPrefixVerify {
            image: world.tag_ref(),
            keyless_prefix: vec![KeylessPrefixInfo {
                issuer: GITHUB_ISSUER.to_string(),
                url_prefix: url_prefix.to_string(),
            }],
            annotations: None,
        })
    };

    verified(&verifier, prefix("https://github.com/acme/app")).await;
    verified(&verifier, prefix("https://github.com/acme/")).await;
    let reason = failure(&verifier, prefix("https://github.com/acme/ap")).await;

    assert_eq!(
        reason,
        format!("no keyless signature by issuer {GITHUB_ISSUER} and subject https://github.com/acme/ap/*")
    );
}

#[tokio::test]
async fn github_actions_signature_verifies_by_owner_and_repository() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &workflow_request(),
        &Default::default(),
    );
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    );
    let verifier = world.verifier();
    let github = |owner: &str, repo: Option<&str>| {
        VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
            image: world.tag_ref(),
            owner: owner.to_string(),
            repo: repo.map(str::to_string),
            annotations: None,
        })
    };

    verified(&verifier, github("acme", Some("app"))).await;
    verified(&verifier, github("acme", None)).await;
    let other_repo = failure(&verifier, github("acme", Some("web"))).await;
    let other_owner = failure(&verifier, github("evil", None)).await;

    assert_eq!(other_repo, "no keyless signature by GitHub Actions of acme/web");
    assert_eq!(other_owner, "no keyless signature by GitHub Actions of evil");
}

fn certificate_request(
    world: &World,
    certificate: &str,
    chain: Option<Vec<String>>,
    require_rekor_bundle: bool,
) -> VerificationRequest {
    VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreCertificateVerify {
        image: world.tag_ref(),
        certificate: certificate.as_bytes().to_vec(),
        certificate_chain: chain.map(|c| c.into_iter().map(String::into_bytes).collect()),
        require_rekor_bundle,
        annotations: None,
    })
}

#[tokio::test]
async fn certificate_verification_with_chain_and_rekor_bundle() {
    let world = World::new();
    let leaf = world.fulcio.issue(&email_request()).expect("leaf");
    let stranger = world.fulcio.issue(&email_request()).expect("leaf");
    testkit::sign_with_certificate(
        &world.host,
        &world.repo,
        &world.digest,
        &leaf,
        &world.fulcio.chain_pem(),
        Some(&world.rekor),
        &Default::default(),
    )
    .expect("signed");
    let chain = || {
        Some(vec![
            world.fulcio.intermediate_pem().to_string(),
            world.fulcio.root_pem().to_string(),
        ])
    };
    let verifier = world.verifier();

    verified(&verifier, certificate_request(&world, &leaf.cert_pem, chain(), true)).await;
    verified(&verifier, certificate_request(&world, &leaf.cert_pem, None, false)).await;
    let reason = failure(
        &verifier,
        certificate_request(&world, &stranger.cert_pem, chain(), true),
    )
    .await;
    let rogue = TestFulcio::new().expect("fulcio");
    let untrusted_chain = failure(
        &verifier,
        certificate_request(
            &world,
            &leaf.cert_pem,
            Some(vec![rogue.intermediate_pem().to_string(), rogue.root_pem().to_string()]),
            false,
        ),
    )
    .await;

    assert_eq!(
        reason,
        "no signature verified by the given certificate with a valid Rekor bundle"
    );
    assert!(
        untrusted_chain.starts_with("certificate is not usable"),
        "{untrusted_chain}"
    );
}

#[tokio::test]
async fn certificate_verification_requiring_a_bundle_needs_one() {
    let world = World::new();
    let leaf = world.fulcio.issue(&email_request()).expect("leaf");
    testkit::sign_with_certificate(
        &world.host,
        &world.repo,
        &world.digest,
        &leaf,
        &world.fulcio.chain_pem(),
        None,
        &Default::default(),
    )
    .expect("signed");
    let without_trust = world.verifier_for(&[&world.host], None);

    verified(&without_trust, certificate_request(&world, &leaf.cert_pem, None, false)).await;
    let no_trust = failure(&without_trust, certificate_request(&world, &leaf.cert_pem, None, true)).await;
    let no_bundle = failure(
        &world.verifier(),
        certificate_request(&world, &leaf.cert_pem, None, true),
    )
    .await;

    assert_eq!(
        no_trust,
        "Rekor bundle verification needs a sigstore trust config (--sigstore-trust-config)"
    );
    assert_eq!(
        no_bundle,
        "no signature verified by the given certificate with a valid Rekor bundle; \
         signing certificate comes without a Rekor bundle"
    );
}

fn regexp(
    world: &World,
    issuer: (Option<&str>, Option<&str>),
    subject: (Option<&str>, Option<&str>),
) -> VerificationRequest {
    VerificationRequest::KeylessRegexp(KeylessRegexpRequest {
        image: world.tag_ref(),
        issuer: issuer.0.map(str::to_string),
        issuer_regexp: issuer.1.map(str::to_string),
        subject: subject.0.map(str::to_string),
        subject_regexp: subject.1.map(str::to_string),
        annotations: None,
        insecure_ignore_sct: false,
    })
}

#[tokio::test]
async fn keyless_regexp_matches_anchored_patterns() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    );
    let verifier = world.verifier();

    verified(
        &verifier,
        regexp(
            &world,
            (None, Some(r"https://accounts\.example\.(com|org)")),
            (None, Some(r".*@example\.com")),
        ),
    )
    .await;
    verified(&verifier, regexp(&world, (Some(ISSUER), None), (None, Some("dev@.*")))).await;
    let partial = failure(
        &verifier,
        regexp(&world, (Some(ISSUER), None), (None, Some("dev@example"))),
    )
    .await;
    let wrong_issuer = failure(
        &verifier,
        regexp(&world, (None, Some("https://accounts")), (Some(EMAIL), None)),
    )
    .await;

    assert_eq!(
        partial,
        format!("no keyless signature by issuer {ISSUER} and subject matching ^(?:dev@example)$")
    );
    assert_eq!(
        wrong_issuer,
        format!("no keyless signature by issuer matching ^(?:https://accounts)$ and subject {EMAIL}")
    );
}

#[tokio::test]
async fn keyless_regexp_rejects_ambiguous_or_invalid_requests() {
    let world = World::new();
    let verifier = world.verifier();

    let both = failure(
        &verifier,
        regexp(&world, (Some(ISSUER), Some(".*")), (Some(EMAIL), None)),
    )
    .await;
    let neither = failure(&verifier, regexp(&world, (Some(ISSUER), None), (None, None))).await;
    let invalid = failure(
        &verifier,
        regexp(&world, (Some(ISSUER), None), (None, Some("(unclosed"))),
    )
    .await;

    assert_eq!(both, "both issuer and issuer_regexp are set; give exactly one");
    assert_eq!(neither, "neither subject nor subject_regexp is set; give exactly one");
    assert!(
        invalid.starts_with("subject_regexp \"(unclosed\" is not a valid regular expression"),
        "{invalid}"
    );
}

#[tokio::test]
async fn a_signature_logged_after_the_certificate_expired_is_rejected() {
    let world = World::new();
    let now = chrono::Utc::now();
    let expired = email_request().with_validity(now - chrono::TimeDelta::hours(2), now - chrono::TimeDelta::hours(1));
    let leaf = world.fulcio.issue(&expired).expect("leaf");
    let mut layer =
        testkit::key_signature_layer(&world.host, &world.repo, &world.digest, &leaf.key, &Default::default())
            .expect("layer");
    let signature = layer.signature().expect("signature").to_string();
    // Rekor logged the entry now, an hour after the certificate expired.
    let bundle = world
        .rekor
        .bundle_json(&layer.payload, &signature, &leaf.cert_pem, now.timestamp())
        .expect("bundle");
    layer
        .annotations
        .insert(testkit::CERTIFICATE_ANNOTATION.to_string(), leaf.cert_pem.clone());
    layer
        .annotations
        .insert(testkit::CHAIN_ANNOTATION.to_string(), world.fulcio.chain_pem());
    layer.annotations.insert(testkit::BUNDLE_ANNOTATION.to_string(), bundle);
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");

    let reason = failure(&world.verifier(), keyless(&world.tag_ref(), &[(ISSUER, EMAIL)], None)).await;

    assert!(
        reason.starts_with(&format!(
            "no keyless signature by issuer {ISSUER} and subject {EMAIL}; signing certificate is not trusted"
        )),
        "{reason}"
    );
    assert!(reason.contains("had expired at"), "{reason}");
}

#[tokio::test]
async fn v1_keyless_requests_verify_like_v2() {
    let world = World::new();
    sign(
        &world,
        &world.fulcio,
        &world.rekor,
        &email_request(),
        &Default::default(),
    );
    let request = |subject: &str| {
        VerificationRequest::V1(
            kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV1::SigstoreKeylessVerify {
                image: world.tag_ref(),
                keyless: vec![KeylessInfo {
                    issuer: ISSUER.to_string(),
                    subject: subject.to_string(),
                }],
                annotations: None,
            },
        )
    };
    let verifier = world.verifier();

    assert_eq!(verified(&verifier, request(EMAIL)).await, world.digest);
    assert!(
        failure(&verifier, request("other@example.com"))
            .await
            .starts_with("no keyless signature")
    );
}
