//! Attestations as cosign v3's `attest` writes them by default: a sigstore bundle (v0.3, DSSE
//! over an in-toto statement, Rekor `dsse` entry) attached as an OCI referrer of the image —
//! read by `verify_attestations` beside the legacy `.att` layers. Forgers: a statement about
//! another digest or copied from another image, another key, tampered SET or inclusion proof, a
//! `cosign sign` bundle passed off as an attestation, oversized bundles.

mod verify_support;

use cip::registry::DownloadLimits;
use cip::verify::Verifier;
use serde_json::json;
use testkit::{BundleOptions, KeyPair, LeafRequest, SPDX_PREDICATE_TYPE, SignerIdentity, SigstoreBundle};
use verify_support::{
    World, attestation_key_request, attestation_keyless_request, attested, config, not_attested, sbom, spdx,
};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "ci@example.com";

/// cosign v3 `attest --key` of `digest` with an SPDX predicate, logged in the world's Rekor.
fn key_attestation(world: &World, digest: &str, key: &KeyPair) -> SigstoreBundle {
    testkit::key_bundle(digest, key, Some(&world.rekor), &spdx()).expect("bundle")
}

fn attach(world: &World, bundle: &SigstoreBundle) {
    testkit::attach_bundle(&world.host, &world.repo, &world.digest, bundle).expect("attached");
}

#[tokio::test]
async fn a_key_attestation_bundle_returns_its_statement() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    attach(&world, &key_attestation(&world, &world.digest, &key));
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.digest, world.digest);
    assert_eq!(answer.statements.len(), 1);
    let statement = &answer.statements[0];
    assert_eq!(statement.predicate_type, SPDX_PREDICATE_TYPE);
    assert_eq!(statement.statement.value()["predicate"], sbom());
    assert!(statement.id.starts_with("sha256:"), "{}", statement.id);
}

#[tokio::test]
async fn legacy_and_bundle_attestations_are_both_read() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    testkit::attest_with_key(
        &world.host,
        &world.repo,
        &world.digest,
        &key,
        SPDX_PREDICATE_TYPE,
        &sbom(),
        None,
    )
    .expect("attested");
    attach(&world, &key_attestation(&world, &world.digest, &key));
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 2);
}

#[tokio::test]
async fn a_bundle_about_another_digest_or_copied_from_another_image_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    // A genuine attestation of another image, attached here as it is.
    let other = testkit::push_image(&world.host, &world.repo, "v2", "app-v2").expect("other image");
    let copied = key_attestation(&world, &other, &key);
    testkit::attach_bundle(&world.host, &world.repo, &other, &copied).expect("attached to its image");
    attach(&world, &copied);
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert!(
        reason.contains(&format!("in-toto statement's subject does not name {}", world.digest)),
        "{reason}"
    );
    // The other image does verify: the bundle itself is genuine.
    let other_ref = format!("{}/{}:v2", world.host, world.repo);
    attested(&world.verifier(), attestation_key_request(&other_ref, &key)).await;
}

#[tokio::test]
async fn a_bundle_by_another_key_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let other = KeyPair::ecdsa_p256().expect("other key");
    attach(&world, &key_attestation(&world, &world.digest, &other));
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(
        reason,
        format!("no attestation verified by the given key of {}", world.digest_ref())
    );
}

#[tokio::test]
async fn tampered_log_evidence_and_signatures_are_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    type Forge = fn(&SigstoreBundle) -> anyhow::Result<SigstoreBundle>;
    let forgeries: [(&str, Forge); 4] = [
        ("tampered SET", SigstoreBundle::with_tampered_set),
        ("tampered inclusion proof", SigstoreBundle::with_tampered_inclusion_hash),
        ("no inclusion proof", SigstoreBundle::without_inclusion_proof),
        ("corrupted signature", SigstoreBundle::with_corrupted_signature),
    ];
    for (index, (what, forge)) in forgeries.into_iter().enumerate() {
        let tag = format!("forged-{index}");
        let digest = testkit::push_image(&world.host, &world.repo, &tag, &tag).expect("image");
        let forged = forge(&key_attestation(&world, &digest, &key)).expect("forged");
        testkit::attach_bundle(&world.host, &world.repo, &digest, &forged).expect("attached");
        let image = format!("{}/{}:{tag}", world.host, world.repo);
        let reason = not_attested(&world.verifier(), attestation_key_request(&image, &key)).await;
        assert!(reason.contains("sigstore bundle"), "{what}: {reason}");
    }
}

#[tokio::test]
async fn a_signature_bundle_is_not_an_attestation() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    // cosign v3 `sign`: a bundle whose statement is cosign's sign predicate.
    testkit::sign_with_key_bundle(
        &world.host,
        &world.repo,
        &world.digest,
        &key,
        Some(&world.rekor),
        &Default::default(),
    )
    .expect("signed");
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(reason, format!("no attestations found for {}", world.digest_ref()));
    // The same bundle without the predicate annotation (cosign's own tag schema index may
    // drop it) is still recognised by its statement and skipped.
    let sign = testkit::key_bundle(&world.digest, &key, Some(&world.rekor), &BundleOptions::default()).expect("bundle");
    attach(
        &world,
        &SigstoreBundle {
            predicate_type: SPDX_PREDICATE_TYPE.to_owned(),
            ..sign
        },
    );
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(reason, format!("no attestations found for {}", world.digest_ref()));
}

#[tokio::test]
async fn keyless_attestation_bundles_need_the_identity() {
    let world = World::new();
    let request = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    let bundle =
        testkit::keyless_bundle(&world.digest, &world.fulcio, &world.rekor, &request, &spdx()).expect("bundle");
    attach(&world, &bundle);
    let answer = attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].subject.as_deref(), Some(EMAIL));
    assert_eq!(answer.statements[0].issuer.as_deref(), Some(ISSUER));
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, "someone@example.com"),
    )
    .await;
    assert!(reason.starts_with("no keyless attestation by issuer "), "{reason}");
    assert!(reason.contains("someone@example.com"), "{reason}");
}

#[tokio::test]
async fn attestation_bundles_have_their_own_cap() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let big = BundleOptions {
        predicate: Some(json!({"SPDXID": "SPDXRef-DOCUMENT", "padding": "x".repeat(64 * 1024)})),
        ..spdx()
    };
    let bundle = testkit::key_bundle(&world.digest, &key, Some(&world.rekor), &big).expect("bundle");
    attach(&world, &bundle);
    let with = |limits: DownloadLimits| {
        Verifier::new(cip::verify::VerifierConfig {
            limits,
            ..config(&[&world.host], Some(world.trust()))
        })
        .expect("verifier")
    };
    // Over the signature layer cap, under the attestation cap: read.
    let between = with(DownloadLimits {
        max_layer_bytes: 16 * 1024,
        ..DownloadLimits::default()
    });
    assert_eq!(
        attested(&between, attestation_key_request(&world.tag_ref(), &key))
            .await
            .statements
            .len(),
        1
    );
    let over = with(DownloadLimits {
        max_attestation_bytes: 16 * 1024,
        ..DownloadLimits::default()
    });
    let reason = not_attested(&over, attestation_key_request(&world.tag_ref(), &key)).await;
    assert!(reason.contains("an attestation of "), "{reason}");
    assert!(reason.contains("(--max-attestation-bytes)"), "{reason}");
}

#[tokio::test]
async fn signature_format_picks_the_attestation_storage() {
    use cip::verify::SignatureFormat;
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    // One image with a bundle only, one with an `.att` only.
    attach(&world, &key_attestation(&world, &world.digest, &key));
    let legacy_digest = testkit::push_image(&world.host, &world.repo, "legacy", "app-legacy").expect("image");
    testkit::attest_with_key(
        &world.host,
        &world.repo,
        &legacy_digest,
        &key,
        SPDX_PREDICATE_TYPE,
        &sbom(),
        None,
    )
    .expect("attested");
    let legacy_ref = format!("{}/{}:legacy", world.host, world.repo);
    let verifier = world.verifier();
    let run = |image: &str, format| verifier.verify_attestations_in(attestation_key_request(image, &key), format);

    assert!(run(&world.tag_ref(), SignatureFormat::Bundle).await.is_ok());
    assert!(run(&world.tag_ref(), SignatureFormat::Any).await.is_ok());
    let refused = run(&world.tag_ref(), SignatureFormat::Legacy)
        .await
        .expect_err("legacy only");
    assert_eq!(
        refused.to_string(),
        format!("no attestations found for {}", world.digest_ref())
    );

    assert!(run(&legacy_ref, SignatureFormat::Legacy).await.is_ok());
    assert!(run(&legacy_ref, SignatureFormat::Any).await.is_ok());
    let refused = run(&legacy_ref, SignatureFormat::Bundle)
        .await
        .expect_err("bundles only");
    assert!(
        refused.to_string().starts_with("no attestations found for "),
        "{refused}"
    );
}
