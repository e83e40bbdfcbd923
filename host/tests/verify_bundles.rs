//! cosign v3 sigstore bundles attached as OCI referrers (distribution v2.8 has no referrers
//! API: the referrers tag schema index is what is read), against a real registry: key and
//! keyless bundles verify, forgeries of every part are refused.

mod verify_support;

use std::collections::BTreeMap;
use std::time::Instant;

use cip::registry::DownloadLimits;
use cip::verify::{LegacyThenBundle, SignatureFormat, VerificationRequest, Verifier};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::KeylessInfo;
use testkit::{BundleOptions, KeyPair, LeafRequest, SignerIdentity, SigstoreBundle, TestRekor};
use verify_support::{World, config, pub_key_request};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";

fn keyless(image: &str) -> VerificationRequest {
    verify_support::keyless_request(image, &[(ISSUER, EMAIL)], None)
}

fn email() -> LeafRequest {
    LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER)
}

async fn passes(verifier: &Verifier, request: VerificationRequest, format: SignatureFormat) -> String {
    match verifier.verify_in(request, format).await {
        Ok(response) => response.digest,
        Err(error) => panic!("verification failed: {error}"),
    }
}

async fn fails(verifier: &Verifier, request: VerificationRequest, format: SignatureFormat) -> String {
    match verifier.verify_in(request, format).await {
        Ok(response) => panic!("verification passed with digest {}", response.digest),
        Err(error) => error.to_string(),
    }
}

fn attach(world: &World, bundle: &SigstoreBundle) {
    testkit::attach_bundle(&world.host, &world.repo, &world.digest, bundle).expect("attached");
}

/// A keyless bundle for the world's image, signed by `email()` through its Fulcio and Rekor.
fn keyless_bundle(world: &World) -> SigstoreBundle {
    testkit::keyless_bundle(
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &email(),
        &Default::default(),
    )
    .expect("bundle")
}

/// Signs the world's image with `key` on the legacy `.sig` tag.
fn sign_legacy(world: &World, key: &KeyPair) {
    testkit::sign_with_key(&world.host, &world.repo, &world.digest, key, &Default::default()).expect("signed");
}

/// Two keys that signed the world's image: the first on the legacy tag, the second in a bundle.
fn signed_in_each_storage(world: &World) -> (KeyPair, KeyPair) {
    let (legacy_key, bundle_key) = (KeyPair::ecdsa_p256().expect("key"), KeyPair::ecdsa_p256().expect("key"));
    sign_legacy(world, &legacy_key);
    attach(world, &key_bundle(world, &bundle_key));
    (legacy_key, bundle_key)
}

fn key_bundle(world: &World, key: &KeyPair) -> SigstoreBundle {
    testkit::key_bundle(&world.digest, key, Some(&world.rekor), &BundleOptions::default()).expect("bundle")
}

#[tokio::test]
async fn key_bundle_verifies_from_the_referrers_tag_schema_in_bundle_and_default_formats_only() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    attach(&world, &key_bundle(&world, &key));
    let verifier = world.verifier();
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);

    assert_eq!(
        passes(&verifier, request(), SignatureFormat::Bundle).await,
        world.digest
    );
    assert_eq!(passes(&verifier, request(), SignatureFormat::Any).await, world.digest);
    let legacy = fails(&verifier, request(), SignatureFormat::Legacy).await;
    assert!(legacy.contains("no signatures found"), "{legacy}");
}

/// `v1/verify_legacy_then_bundle` answers what the two calls it replaces answer, from the same
/// cached verifications: the legacy tag first (a key it verifies is not looked for in bundles:
/// one verification computed, so no referrers fetched), then bundles, and when neither
/// verifies, each storage's reason exactly as the call reading it alone gives it.
#[tokio::test]
async fn legacy_then_bundle_answers_what_the_two_calls_answer() {
    let world = World::new();
    let (legacy_key, bundle_key) = signed_in_each_storage(&world);
    let other_key = KeyPair::ecdsa_p256().expect("key");
    let verifier = world.verifier();
    let request = |key: &KeyPair| pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    let both = |key: &KeyPair| verifier.verify_legacy_then_bundle_expiring(request(key));

    let legacy = both(&legacy_key).await;
    assert!(legacy.expires > Instant::now(), "kept as long as the legacy success");
    assert_eq!(
        legacy.value.expect("answer"),
        LegacyThenBundle::Legacy(world.digest.clone())
    );
    assert_eq!(verifier.cache_stats().misses, 1, "the bundles were not looked at");

    let bundle = both(&bundle_key).await;
    // No longer than the legacy failure it also rests on, which this verifier does not keep.
    assert!(bundle.expires <= Instant::now());
    assert_eq!(
        bundle.value.expect("answer"),
        LegacyThenBundle::Bundle(world.digest.clone())
    );

    // Neither storage verifies `other_key`; on an image with a legacy signature and no bundle
    // the two reasons differ, so their places are checked too.
    let plain = World::new();
    sign_legacy(&plain, &legacy_key);
    let verifier = plain.verifier();
    let request = || pub_key_request(&plain.tag_ref(), &[other_key.public_key_pem()], None);
    let unverified = verifier
        .verify_legacy_then_bundle_expiring(request())
        .await
        .value
        .expect("answer");
    let (legacy, bundle) = (
        fails(&verifier, request(), SignatureFormat::Legacy).await,
        fails(&verifier, request(), SignatureFormat::Bundle).await,
    );
    assert_eq!(legacy, "no signature verified by the given key");
    assert!(bundle.starts_with("no signatures found for "), "{bundle}");
    assert_eq!(unverified, LegacyThenBundle::Unverified(legacy, bundle));
}

#[tokio::test]
async fn key_bundles_of_every_key_type_and_without_a_log_entry_verify() {
    let world = World::new();
    let keys = [
        KeyPair::ecdsa_p256().expect("p256"),
        KeyPair::generate(testkit::SigningScheme::ECDSA_P384_SHA384_ASN1).expect("p384"),
        KeyPair::generate(testkit::SigningScheme::ED25519).expect("ed25519"),
    ];
    for key in &keys {
        attach(&world, &key_bundle(&world, key));
    }
    let offline = KeyPair::ecdsa_p256().expect("key");
    let no_tlog = BundleOptions {
        no_tlog: true,
        ..Default::default()
    };
    attach(
        &world,
        &testkit::key_bundle(&world.digest, &offline, None, &no_tlog).expect("bundle"),
    );
    let verifier = world.verifier();
    let mut pems: Vec<&str> = keys.iter().map(|k| k.public_key_pem()).collect();
    pems.push(offline.public_key_pem());

    let digest = passes(
        &verifier,
        pub_key_request(&world.tag_ref(), &pems, None),
        SignatureFormat::Bundle,
    )
    .await;

    assert_eq!(digest, world.digest);
}

#[tokio::test]
async fn keyless_bundle_verifies_with_its_identity_and_sct() {
    let world = World::new();
    attach(&world, &keyless_bundle(&world));
    let verifier = world.verifier();

    assert_eq!(
        passes(&verifier, keyless(&world.tag_ref()), SignatureFormat::Bundle).await,
        world.digest
    );
    let other_identity = VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreKeylessVerify {
        image: world.tag_ref(),
        keyless: vec![KeylessInfo {
            issuer: ISSUER.to_string(),
            subject: "mallory@example.com".to_string(),
        }],
        annotations: None,
    });
    let reason = fails(&verifier, other_identity, SignatureFormat::Bundle).await;
    assert!(reason.contains("no keyless signature by"), "{reason}");
}

#[tokio::test]
async fn bundle_annotations_are_read_from_the_statement_subject() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let options = BundleOptions {
        annotations: testkit::annotations([("env", "prod")]),
        ..Default::default()
    };
    attach(
        &world,
        &testkit::key_bundle(&world.digest, &key, Some(&world.rekor), &options).expect("bundle"),
    );
    let verifier = world.verifier();
    let wanted = |value: &str| Some(BTreeMap::from([("env".to_string(), value.to_string())]));

    passes(
        &verifier,
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], wanted("prod")),
        SignatureFormat::Bundle,
    )
    .await;
    let reason = fails(
        &verifier,
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], wanted("dev")),
        SignatureFormat::Bundle,
    )
    .await;
    assert!(reason.contains("with annotations env=dev"), "{reason}");
}

#[tokio::test]
async fn default_format_reads_the_legacy_tag_then_the_referrers() {
    let world = World::new();
    let (legacy_key, bundle_key) = signed_in_each_storage(&world);
    let verifier = world.verifier();

    for key in [&legacy_key, &bundle_key] {
        passes(
            &verifier,
            pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
            SignatureFormat::Any,
        )
        .await;
    }
    let reason = fails(
        &verifier,
        pub_key_request(&world.tag_ref(), &[legacy_key.public_key_pem()], None),
        SignatureFormat::Bundle,
    )
    .await;
    assert!(reason.contains("no signature verified by the given key"), "{reason}");
}

/// Attaches `forged` alone and checks that `key` does not verify the image, with `why`.
async fn refused_with_key(world: &World, key: &KeyPair, forged: &SigstoreBundle, why: &str) {
    attach(world, forged);
    let reason = fails(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
        SignatureFormat::Bundle,
    )
    .await;
    assert!(reason.contains(why), "expected {why:?} in {reason:?}");
}

#[tokio::test]
async fn a_bundle_for_another_digest_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let other = testkit::push_image(&world.host, &world.repo, "v2", "app-v2").expect("pushed");
    let forged = testkit::key_bundle(&other, &key, Some(&world.rekor), &Default::default()).expect("bundle");
    refused_with_key(
        &world,
        &key,
        &forged,
        &format!("it signs {other}, not {}", world.digest),
    )
    .await;
}

#[tokio::test]
async fn a_bundle_replayed_from_another_image_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let elsewhere = testkit::push_image(&world.host, "team/other", "v1", "other-v1").expect("pushed");
    testkit::sign_with_key_bundle(
        &world.host,
        "team/other",
        &elsewhere,
        &key,
        Some(&world.rekor),
        &Default::default(),
    )
    .expect("signed");
    let verifier = world.verifier();
    passes(
        &verifier,
        pub_key_request(&format!("{}/team/other:v1", world.host), &[key.public_key_pem()], None),
        SignatureFormat::Bundle,
    )
    .await;
    // The genuine bundle of team/other, copied byte for byte onto team/app.
    let replayed = testkit::key_bundle(&elsewhere, &key, Some(&world.rekor), &Default::default()).expect("bundle");
    refused_with_key(&world, &key, &replayed, "not sha256:").await;
}

#[tokio::test]
async fn a_corrupted_bundle_signature_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let forged = key_bundle(&world, &key).with_corrupted_signature().expect("forged");
    // The log entry still records the genuine signature: the entry no longer binds.
    refused_with_key(&world, &key, &forged, "its signature is not this bundle's signature").await;
}

#[tokio::test]
async fn a_corrupted_signature_without_a_log_entry_is_refused_by_the_key() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let no_tlog = BundleOptions {
        no_tlog: true,
        ..Default::default()
    };
    let forged = testkit::key_bundle(&world.digest, &key, None, &no_tlog)
        .and_then(|b| b.with_corrupted_signature())
        .expect("forged");
    refused_with_key(&world, &key, &forged, "no signature verified by the given key").await;
}

#[tokio::test]
async fn a_bundle_signed_by_another_key_is_refused() {
    let world = World::new();
    let signer = KeyPair::ecdsa_p256().expect("key");
    let wanted = KeyPair::ecdsa_p256().expect("key");
    refused_with_key(
        &world,
        &wanted,
        &key_bundle(&world, &signer),
        "no signature verified by the given key",
    )
    .await;
}

#[tokio::test]
async fn a_log_entry_for_another_artifact_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let other = testkit::push_image(&world.host, &world.repo, "v2", "app-v2").expect("pushed");
    let foreign = testkit::key_bundle(&other, &key, Some(&world.rekor), &Default::default()).expect("bundle");
    let forged = key_bundle(&world, &key).with_tlog_entry_of(&foreign).expect("forged");
    refused_with_key(
        &world,
        &key,
        &forged,
        "its payload hash is not the SHA-256 of this payload",
    )
    .await;
}

#[tokio::test]
async fn a_tampered_signed_entry_timestamp_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let forged = key_bundle(&world, &key).with_tampered_set().expect("forged");
    refused_with_key(&world, &key, &forged, "not signed by the trusted Rekor key").await;
}

#[tokio::test]
async fn a_tampered_or_missing_inclusion_proof_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let tampered = key_bundle(&world, &key)
        .with_tampered_inclusion_proof()
        .expect("forged");
    refused_with_key(&world, &key, &tampered, "inclusion proof does not verify").await;

    let world = World::new();
    let path = key_bundle(&world, &key).with_tampered_inclusion_hash().expect("forged");
    refused_with_key(&world, &key, &path, "inclusion proof does not verify").await;

    let world = World::new();
    let missing = key_bundle(&world, &key).without_inclusion_proof().expect("forged");
    refused_with_key(&world, &key, &missing, "it has no inclusion proof").await;
}

#[tokio::test]
async fn a_log_entry_from_an_untrusted_log_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let rogue = TestRekor::new().expect("rekor");
    let forged = testkit::key_bundle(&world.digest, &key, Some(&rogue), &Default::default()).expect("bundle");
    refused_with_key(&world, &key, &forged, "which is not in the trust root").await;
}

#[tokio::test]
async fn a_keyless_bundle_with_another_certificate_is_refused() {
    let world = World::new();
    let genuine = keyless_bundle(&world);
    let other = keyless_bundle(&world);
    // Another leaf of the same identity, with its own genuine log entry: neither binds.
    attach(&world, &genuine.with_verification_material_of(&other).expect("forged"));
    let reason = fails(&world.verifier(), keyless(&world.tag_ref()), SignatureFormat::Bundle).await;
    assert!(
        reason.contains("describes another signature") || reason.contains("another signature"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_attestation_bundle_is_not_a_signature() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let options = BundleOptions {
        predicate_type: Some("https://spdx.dev/Document".to_string()),
        ..Default::default()
    };
    attach(
        &world,
        &testkit::key_bundle(&world.digest, &key, Some(&world.rekor), &options).expect("bundle"),
    );
    let reason = fails(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
        SignatureFormat::Bundle,
    )
    .await;
    assert!(reason.contains("no signatures found"), "{reason}");
}

#[tokio::test]
async fn oversized_bundles_and_too_many_referrers_fail_naming_the_cap() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    attach(&world, &key_bundle(&world, &key).padded_to(300 * 1024).expect("padded"));
    let reason = fails(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
        SignatureFormat::Bundle,
    )
    .await;
    assert!(reason.contains("--max-signature-layer-bytes"), "{reason}");

    let world = World::new();
    for _ in 0..3 {
        attach(&world, &key_bundle(&world, &key));
    }
    let mut limited = config(&[&world.host], Some(world.trust()));
    limited.limits = DownloadLimits {
        max_layers: 2,
        ..DownloadLimits::default()
    };
    let reason = fails(
        &Verifier::new(limited).expect("verifier"),
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
        SignatureFormat::Bundle,
    )
    .await;
    assert!(reason.contains("--max-signature-layers"), "{reason}");
}

#[tokio::test]
async fn keyless_regexp_requests_read_bundles_too() {
    let world = World::new();
    attach(&world, &keyless_bundle(&world));
    let verifier = world.verifier();
    let request = |subject_regexp: &str| {
        VerificationRequest::KeylessRegexp(cip::verify::KeylessRegexpRequest {
            image: world.tag_ref(),
            issuer: Some(ISSUER.to_string()),
            subject_regexp: Some(subject_regexp.to_string()),
            ..Default::default()
        })
    };

    passes(&verifier, request(r".*@example\.com"), SignatureFormat::Bundle).await;
    let reason = fails(&verifier, request(r".*@example\.org"), SignatureFormat::Bundle).await;
    assert!(reason.contains("no keyless signature by"), "{reason}");
}

#[tokio::test]
async fn github_actions_requests_read_keyless_bundles_of_the_workflow() {
    let world = World::new();
    let workflow = LeafRequest::new(
        SignerIdentity::Uri("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main".into()),
        "https://token.actions.githubusercontent.com",
    )
    .with_github_workflow(testkit::GithubWorkflow {
        trigger: "push".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        name: "release".into(),
        repository: "acme/app".into(),
        git_ref: "refs/heads/main".into(),
    });
    attach(
        &world,
        &testkit::keyless_bundle(
            &world.digest,
            &world.fulcio,
            &world.rekor,
            &workflow,
            &Default::default(),
        )
        .expect("bundle"),
    );
    let verifier = world.verifier();
    let request = |owner: &str| {
        VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
            image: world.tag_ref(),
            owner: owner.to_string(),
            repo: Some("app".to_string()),
            annotations: None,
        })
    };

    passes(&verifier, request("acme"), SignatureFormat::Bundle).await;
    let reason = fails(&verifier, request("evil"), SignatureFormat::Bundle).await;
    assert!(reason.contains("no keyless signature by"), "{reason}");
}
