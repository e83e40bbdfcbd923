//! Key-signed cosign signatures against a real registry: `SigstorePubKeyVerify` (V1 and V2).

mod verify_support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV1;
use testkit::{CosignLayer, KeyPair, annotations};
use verify_support::{World, failure, pub_key_request, verified};

use cip::verify::VerificationRequest;

#[tokio::test]
async fn key_signature_verifies_and_answers_the_digest_of_the_tag() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&world.host, &world.repo, &world.digest, &key, &Default::default()).expect("signed");
    let verifier = world.verifier();

    let by_tag = verified(
        &verifier,
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
    )
    .await;
    let by_digest = verified(
        &verifier,
        pub_key_request(&world.digest_ref(), &[key.public_key_pem()], None),
    )
    .await;

    assert_eq!(by_tag, world.digest);
    assert_eq!(by_digest, world.digest);
}

#[tokio::test]
async fn key_signature_verifies_without_a_trust_config_and_with_every_key_type() {
    let world = World::new();
    let keys = [
        KeyPair::ecdsa_p256().expect("p256"),
        KeyPair::generate(testkit::SigningScheme::ECDSA_P384_SHA384_ASN1).expect("p384"),
        KeyPair::generate(testkit::SigningScheme::ED25519).expect("ed25519"),
    ];
    for key in &keys {
        testkit::sign_with_key(&world.host, &world.repo, &world.digest, key, &Default::default()).expect("signed");
    }
    let verifier = world.verifier_for(&[&world.host], None);
    let pems: Vec<&str> = keys.iter().map(|k| k.public_key_pem()).collect();

    let digest = verified(&verifier, pub_key_request(&world.tag_ref(), &pems, None)).await;

    assert_eq!(digest, world.digest);
}

#[tokio::test]
async fn another_key_is_not_accepted() {
    let world = World::new();
    let signer = KeyPair::ecdsa_p256().expect("key");
    let other = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&world.host, &world.repo, &world.digest, &signer, &Default::default()).expect("signed");

    let reason = failure(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &[other.public_key_pem()], None),
    )
    .await;

    assert_eq!(reason, "no signature verified by the given key");
}

#[tokio::test]
async fn every_listed_key_must_have_signed() {
    let world = World::new();
    let signer = KeyPair::ecdsa_p256().expect("key");
    let absent = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&world.host, &world.repo, &world.digest, &signer, &Default::default()).expect("signed");

    let reason = failure(
        &world.verifier(),
        pub_key_request(
            &world.tag_ref(),
            &[signer.public_key_pem(), absent.public_key_pem()],
            None,
        ),
    )
    .await;

    assert_eq!(reason, "no signature verified by key #2");
}

#[tokio::test]
async fn two_signers_sharing_one_payload_blob_are_both_found() {
    let world = World::new();
    let first = KeyPair::ecdsa_p256().expect("key");
    let second = KeyPair::ecdsa_p256().expect("key");
    let a =
        testkit::sign_with_key(&world.host, &world.repo, &world.digest, &first, &Default::default()).expect("signed");
    let b =
        testkit::sign_with_key(&world.host, &world.repo, &world.digest, &second, &Default::default()).expect("signed");
    assert_eq!(a.digest(), b.digest(), "both layers share one payload blob");
    let stored = testkit::fetch_signature_layers(&world.host, &world.repo, &world.digest).expect("layers");
    assert_eq!(stored.len(), 2);
    let verifier = world.verifier();

    verified(
        &verifier,
        pub_key_request(&world.tag_ref(), &[second.public_key_pem()], None),
    )
    .await;
    verified(
        &verifier,
        pub_key_request(
            &world.tag_ref(),
            &[first.public_key_pem(), second.public_key_pem()],
            None,
        ),
    )
    .await;
}

#[tokio::test]
async fn annotations_must_be_present_with_the_same_value_in_the_signing_layer() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let other = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(
        &world.host,
        &world.repo,
        &world.digest,
        &key,
        &annotations([("env", "prod"), ("team", "a")]),
    )
    .expect("signed");
    // Another signer carries the annotation the first one lacks: it must not help.
    testkit::sign_with_key(
        &world.host,
        &world.repo,
        &world.digest,
        &other,
        &annotations([("ticket", "42")]),
    )
    .expect("signed");
    let verifier = world.verifier();
    let pem = key.public_key_pem();

    verified(
        &verifier,
        pub_key_request(&world.tag_ref(), &[pem], Some(annotations([("env", "prod")]))),
    )
    .await;
    let wrong = failure(
        &verifier,
        pub_key_request(&world.tag_ref(), &[pem], Some(annotations([("env", "dev")]))),
    )
    .await;
    let missing = failure(
        &verifier,
        pub_key_request(&world.tag_ref(), &[pem], Some(annotations([("ticket", "42")]))),
    )
    .await;

    assert_eq!(wrong, "no signature verified by the given key with annotations env=dev");
    assert_eq!(
        missing,
        "no signature verified by the given key with annotations ticket=42"
    );
}

#[tokio::test]
async fn a_payload_naming_another_digest_is_rejected_with_both_digests() {
    let world = World::new();
    let other_digest = testkit::push_image(&world.host, &world.repo, "v2", "app-v2").expect("pushed");
    let key = KeyPair::ecdsa_p256().expect("key");
    // A genuine signature of v2, copied under v1's signature tag.
    let layer = testkit::key_signature_layer(&world.host, &world.repo, &other_digest, &key, &Default::default())
        .expect("layer");
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");

    let reason = failure(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
    )
    .await;

    assert_eq!(
        reason,
        format!("signature payload is for digest {other_digest}, not {}", world.digest)
    );
}

/// A payload genuinely signed by the key, naming this image as `docker-manifest-digest` and
/// another under a second spelling Go matches to the same field (cosign reads it with Go's
/// `encoding/json`, names matched without regard to case, the last of two kept): for cosign and
/// policy-controller a signature of the other image, so not one of this image here either.
#[tokio::test]
async fn a_payload_go_reads_as_another_digest_is_rejected() {
    let world = World::new();
    let other_digest = testkit::push_image(&world.host, &world.repo, "v2", "app-v2").expect("pushed");
    let key = KeyPair::ecdsa_p256().expect("key");
    let reference = format!("{}/{}", world.host, world.repo);
    let layer_for = |image: &str| {
        let payload = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"{reference}\"}},\"image\":{{{image}}},\
             \"type\":\"cosign container image signature\"}},\"optional\":null}}"
        )
        .into_bytes();
        let signature = BASE64.encode(key.sign(&payload).expect("signed"));
        CosignLayer {
            payload,
            annotations: BTreeMap::from([(testkit::SIGNATURE_ANNOTATION.to_owned(), signature)]),
        }
    };
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    for spelled in ["Docker-Manifest-Digest", "doc\u{212a}er-manifest-digest"] {
        let image = format!(
            "\"docker-manifest-digest\":\"{}\",\"{spelled}\":\"{other_digest}\"",
            world.digest
        );
        testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer_for(&image)]).expect("pushed");
        let reason = failure(&world.verifier(), request()).await;
        assert!(
            reason.starts_with(&format!(
                "signature payload is refused: its key \"{spelled}\" names the field \"docker-manifest-digest\" \
                 for Go's JSON decoder"
            )),
            "{reason}"
        );
    }
    // The control: the same payload naming this image alone verifies.
    let image = format!("\"docker-manifest-digest\":\"{}\"", world.digest);
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer_for(&image)]).expect("pushed");
    assert_eq!(verified(&world.verifier(), request()).await, world.digest);
}

#[tokio::test]
async fn a_corrupted_signature_or_tampered_payload_does_not_verify() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = testkit::key_signature_layer(&world.host, &world.repo, &world.digest, &key, &Default::default())
        .expect("layer");
    let verifier = world.verifier();

    for bad in [
        layer.clone().with_corrupted_signature().expect("corrupted"),
        layer.clone().with_tampered_payload().expect("tampered"),
    ] {
        testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[bad]).expect("pushed");
        let reason = failure(
            &verifier,
            pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
        )
        .await;
        assert_eq!(reason, "no signature verified by the given key");
    }
}

#[tokio::test]
async fn an_unsigned_image_has_no_signatures() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");

    let reason = failure(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None),
    )
    .await;

    assert_eq!(reason, format!("no signatures found for {}", world.digest_ref()));
}

#[tokio::test]
async fn an_unusable_key_is_reported_as_such() {
    let world = World::new();

    let reason = failure(
        &world.verifier(),
        pub_key_request(&world.tag_ref(), &["not a key"], None),
    )
    .await;

    assert!(reason.starts_with("public key #1 is not usable"), "{reason}");
}

#[tokio::test]
async fn v1_requests_verify_like_v2() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&world.host, &world.repo, &world.digest, &key, &Default::default()).expect("signed");
    let request = VerificationRequest::V1(SigstoreVerificationInputV1::SigstorePubKeyVerify {
        image: world.tag_ref(),
        pub_keys: vec![key.public_key_pem().to_string()],
        annotations: None,
    });

    assert_eq!(verified(&world.verifier(), request).await, world.digest);
}

#[tokio::test]
async fn verification_can_run_on_another_task_and_a_small_stack() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&world.host, &world.repo, &world.digest, &key, &Default::default()).expect("signed");
    let verifier = std::sync::Arc::new(world.verifier());
    let request = pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    let handle = tokio::runtime::Handle::current();

    // The runtime's host-call path: a blocking thread driving the future with block_on.
    let outcome = tokio::task::spawn_blocking(move || handle.block_on(verifier.verify(request)))
        .await
        .expect("blocking task");

    assert_eq!(outcome.map(|r| r.digest).ok(), Some(world.digest.clone()));
}
