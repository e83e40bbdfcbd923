//! Attestations as sigstore bundles (OCI referrers) forged against the checks of
//! `host/src/verify/attestations.rs::bundle_attestation`, with genuine controls: a DSSE
//! payload of another type, a subject digest of another algorithm, several DSSE signatures, a
//! predicate type claimed by the referrer's annotation instead of the signed statement, a keyless
//! bundle whose signature the certificate's key did not make, and a bundle naming another
//! certificate than the one its log entry records, a statement whose `subject` Go reads as
//! another image (a second spelling, `ſubject`).
//! A forgery yields no statement, or (a mislabelled type) the signed statement under its own type.

mod verify_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use testkit::{BundleOptions, KeyPair, LeafRequest, SPDX_PREDICATE_TYPE, SignerIdentity, SigstoreBundle};
use verify_support::{World, attestation_key_request, attestation_keyless_request, attested, not_attested, sbom, spdx};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "ci@example.com";
const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

fn statement(world: &World) -> Value {
    let hex = world.digest.strip_prefix("sha256:").expect("sha256");
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": hex}}],
        "predicateType": SPDX_PREDICATE_TYPE,
        "predicate": sbom(),
    })
}

/// A fresh image of the world's repository (each case its own referrers).
fn image(world: &World, tag: &str) -> (String, String) {
    let digest = testkit::push_image(&world.host, &world.repo, tag, tag).expect("image");
    (digest, format!("{}/{}:{tag}", world.host, world.repo))
}

fn statement_for(digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": hex}}],
        "predicateType": SPDX_PREDICATE_TYPE,
        "predicate": sbom(),
    })
}

fn key_bundle_over(payload_type: &str, statement: &Value, key: &KeyPair, world: &World) -> SigstoreBundle {
    testkit::key_dsse_bundle(
        payload_type,
        serde_json::to_vec(statement).expect("json"),
        key,
        Some(&world.rekor),
        &BundleOptions::default(),
    )
    .expect("bundle")
}

#[tokio::test]
async fn a_bundle_must_be_an_in_toto_statement_about_the_sha256_digest() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");

    // Control: a key-signed attestation bundle over a hand-written statement verifies.
    let (digest, reference) = image(&world, "control");
    let bundle = key_bundle_over(testkit::IN_TOTO_PAYLOAD_TYPE, &statement_for(&digest), &key, &world);
    testkit::attach_bundle(&world.host, &world.repo, &digest, &bundle).expect("attached");
    attested(&world.verifier(), attestation_key_request(&reference, &key)).await;

    let (digest, reference) = image(&world, "json-type");
    let wrong_type = key_bundle_over("application/json", &statement_for(&digest), &key, &world);
    testkit::attach_bundle(&world.host, &world.repo, &digest, &wrong_type).expect("attached");
    let reason = not_attested(&world.verifier(), attestation_key_request(&reference, &key)).await;
    assert!(
        reason.contains("its DSSE payload type is application/json, not application/vnd.in-toto+json"),
        "{reason}"
    );

    let (digest, reference) = image(&world, "sha512");
    let mut other_algorithm = statement_for(&digest);
    other_algorithm["subject"] = json!([{"digest": {"sha512": digest.strip_prefix("sha256:").unwrap()}}]);
    let bundle = key_bundle_over(testkit::IN_TOTO_PAYLOAD_TYPE, &other_algorithm, &key, &world);
    testkit::attach_bundle(&world.host, &world.repo, &digest, &bundle).expect("attached");
    let reason = not_attested(&world.verifier(), attestation_key_request(&reference, &key)).await;
    assert!(
        reason.contains(&format!("in-toto statement's subject does not name {digest}")),
        "{reason}"
    );
}

/// A statement signed in a bundle naming this image under `subject` and another under
/// `ſubject` (U+017F), written after it: Go, which cosign and policy-controller read it with,
/// takes `ſubject` for `subject` and keeps the last. Refused, not an attestation of this image.
#[tokio::test]
async fn a_bundle_whose_statement_go_reads_about_another_image_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let (digest, reference) = image(&world, "two-subjects");
    let mut statement = statement_for(&digest);
    statement["\u{17f}ubject"] = json!([{"digest": {"sha256": "e".repeat(64)}}]);
    let text = serde_json::to_string(&statement).expect("json");
    assert!(
        text.find("\"subject\"") < text.find("\"\u{17f}ubject\""),
        "written after `subject`: {text}"
    );
    let bundle = key_bundle_over(testkit::IN_TOTO_PAYLOAD_TYPE, &statement, &key, &world);
    testkit::attach_bundle(&world.host, &world.repo, &digest, &bundle).expect("attached");
    let reason = not_attested(&world.verifier(), attestation_key_request(&reference, &key)).await;
    assert!(
        reason.contains("its key \"\u{17f}ubject\" names the field \"subject\" for Go's JSON decoder"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_bundle_with_a_second_dsse_signature_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let stranger = KeyPair::ecdsa_p256().expect("key");
    let genuine = key_bundle_over(testkit::IN_TOTO_PAYLOAD_TYPE, &statement(&world), &key, &world);
    let mut value = genuine.value().expect("json");
    let extra = BASE64.encode(stranger.sign(b"anything").expect("signed"));
    value["dsseEnvelope"]["signatures"]
        .as_array_mut()
        .expect("signatures")
        .push(json!({"sig": extra, "keyid": ""}));
    let forged = SigstoreBundle {
        json: serde_json::to_vec(&value).expect("json"),
        predicate_type: genuine.predicate_type.clone(),
    };
    testkit::attach_bundle(&world.host, &world.repo, &world.digest, &forged).expect("attached");
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert!(
        reason.contains("its DSSE envelope has 2 signatures, not one"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_predicate_type_is_the_statements_not_the_referrer_annotation() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let genuine = key_bundle_over(testkit::IN_TOTO_PAYLOAD_TYPE, &statement(&world), &key, &world);
    let mislabelled = SigstoreBundle {
        predicate_type: VULN.to_owned(),
        ..genuine
    };
    testkit::attach_bundle(&world.host, &world.repo, &world.digest, &mislabelled).expect("attached");
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].predicate_type, SPDX_PREDICATE_TYPE);
    assert_eq!(answer.statements[0].statement.value(), statement(&world));
}

#[tokio::test]
async fn a_keyless_bundle_needs_the_certificates_own_signature_and_entry() {
    let world = World::new();
    let identity = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    let leaf = world.fulcio.issue(&identity).expect("leaf");
    let forger = KeyPair::ecdsa_p256().expect("key");

    // Control: the leaf's own key signs.
    let (digest, reference) = image(&world, "control");
    let genuine = testkit::certificate_bundle(&digest, &leaf, &leaf.key, Some(&world.rekor), &spdx()).expect("bundle");
    testkit::attach_bundle(&world.host, &world.repo, &digest, &genuine).expect("attached");
    attested(
        &world.verifier(),
        attestation_keyless_request(&reference, ISSUER, EMAIL),
    )
    .await;

    // The genuine certificate beside a forger's signature, recorded by a log that takes anything.
    let (digest, reference) = image(&world, "forged-signature");
    let forged = testkit::certificate_bundle(&digest, &leaf, &forger, Some(&world.rekor), &spdx()).expect("bundle");
    testkit::attach_bundle(&world.host, &world.repo, &digest, &forged).expect("attached");
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&reference, ISSUER, EMAIL),
    )
    .await;
    assert!(reason.starts_with("no keyless attestation by issuer"), "{reason}");
    assert!(
        reason.contains("signature does not verify with the signing certificate's key over the DSSE envelope"),
        "{reason}"
    );

    // The genuine bundle of this image with the certificate swapped for another leaf of the
    // same identity: its log entry records the first.
    let (digest, reference) = image(&world, "swapped-certificate");
    let original = testkit::certificate_bundle(&digest, &leaf, &leaf.key, Some(&world.rekor), &spdx()).expect("bundle");
    let other_leaf = world.fulcio.issue(&identity).expect("leaf");
    let other = testkit::certificate_bundle(&digest, &other_leaf, &other_leaf.key, None, &spdx()).expect("bundle");
    let swapped = original.with_verification_material_of(&other).expect("swapped");
    // `other` has no log entry: put the original's back.
    let swapped = swapped.edit_entries_from(&original);
    testkit::attach_bundle(&world.host, &world.repo, &digest, &swapped).expect("attached");
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&reference, ISSUER, EMAIL),
    )
    .await;
    assert!(
        reason.contains("its certificate is not this bundle's certificate"),
        "{reason}"
    );
}

trait EntriesFrom {
    fn edit_entries_from(&self, other: &SigstoreBundle) -> SigstoreBundle;
}

impl EntriesFrom for SigstoreBundle {
    fn edit_entries_from(&self, other: &SigstoreBundle) -> SigstoreBundle {
        let mut value = self.value().expect("json");
        let entries = other.value().expect("json")["verificationMaterial"]["tlogEntries"].clone();
        value["verificationMaterial"]["tlogEntries"] = entries;
        SigstoreBundle {
            json: serde_json::to_vec(&value).expect("json"),
            predicate_type: self.predicate_type.clone(),
        }
    }
}
