//! Attestations (`cosign attest`, legacy `.att` format) as a forger would build them, against a
//! real registry: another signer, corrupted envelopes, statements about another digest or
//! copied from another image, another payload type, oversized layers, Rekor bundles of other
//! entries, certificates without a bundle. Only the genuine ones return statements.

mod verify_support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::registry::DownloadLimits;
use cip::verify::attestations::AttestationsRequest;
use cip::verify::{KeylessRegexpRequest, Verifier};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use serde_json::{Value, json};
use testkit::{CosignLayer, KeyPair, LeafRequest, SPDX_PREDICATE_TYPE, SignerIdentity};
use verify_support::{World, attestation_key_request, attestation_keyless_request, attested, config, not_attested};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "ci@example.com";

fn sbom() -> Value {
    json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"})
}

/// The world's image attested with `key`'s genuine SPDX attestation; returns the layer.
fn genuine(world: &World, key: &KeyPair) -> CosignLayer {
    testkit::attest_with_key(
        &world.host,
        &world.repo,
        &world.digest,
        key,
        SPDX_PREDICATE_TYPE,
        &sbom(),
        None,
    )
    .expect("attested")
}

/// `layer` with its envelope edited by `edit`, the same annotations.
fn edited(layer: &CosignLayer, edit: impl FnOnce(&mut Value)) -> CosignLayer {
    let mut envelope: Value = serde_json::from_slice(&layer.payload).expect("envelope");
    edit(&mut envelope);
    CosignLayer {
        payload: serde_json::to_vec(&envelope).expect("serialised"),
        annotations: layer.annotations.clone(),
    }
}

/// Pushes `forged` as the only attestation; the key request must fail saying `problem`.
async fn refused_with(world: &World, key: &KeyPair, forged: CosignLayer, problem: &str) {
    replace(world, &[forged]);
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), key)).await;
    assert!(reason.contains(problem), "{reason}");
}

fn replace(world: &World, layers: &[CosignLayer]) {
    testkit::push_attestation_layers(&world.host, &world.repo, &world.digest, layers).expect("pushed");
}

#[tokio::test]
async fn a_key_attestation_returns_its_statement_and_digest() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = genuine(&world, &key);
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.digest, world.digest);
    assert_eq!(answer.statements.len(), 1);
    let statement = &answer.statements[0];
    assert_eq!(statement.id, layer.digest());
    assert_eq!(statement.predicate_type, SPDX_PREDICATE_TYPE);
    assert_eq!(statement.statement.value()["predicate"], sbom());
    assert_eq!(statement.subject, None);
}

#[tokio::test]
async fn an_image_without_attestations_fails_saying_so() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(reason, format!("no attestations found for {}", world.digest_ref()));
}

#[tokio::test]
async fn an_attestation_by_another_key_is_refused() {
    let world = World::new();
    let (signer, expected) = (KeyPair::ecdsa_p256().expect("key"), KeyPair::ecdsa_p256().expect("key"));
    genuine(&world, &signer);
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &expected)).await;
    assert_eq!(
        reason,
        format!("no attestation verified by the given key of {}", world.digest_ref())
    );
}

#[tokio::test]
async fn corrupted_envelopes_are_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = genuine(&world, &key);
    let flipped_signature = edited(&layer, |envelope| {
        let mut raw = BASE64
            .decode(envelope["signatures"][0]["sig"].as_str().unwrap_or_default())
            .expect("b64");
        let middle = raw.len() / 2;
        raw[middle] ^= 1;
        envelope["signatures"][0]["sig"] = json!(BASE64.encode(raw));
    });
    // The statement changed (another SBOM) under the original signature.
    let tampered_statement = edited(&layer, |envelope| {
        let mut statement: Value = serde_json::from_slice(
            &BASE64
                .decode(envelope["payload"].as_str().unwrap_or_default())
                .expect("b64"),
        )
        .expect("statement");
        statement["predicate"]["SPDXID"] = json!("SPDXRef-FORGED");
        envelope["payload"] = json!(BASE64.encode(serde_json::to_vec(&statement).expect("json")));
    });
    let not_json = CosignLayer {
        payload: b"{\"payloadType\":".to_vec(),
        annotations: layer.annotations.clone(),
    };
    let no_signature = edited(&layer, |envelope| envelope["signatures"] = json!([]));
    for (forged, problem) in [
        (flipped_signature, None),
        (tampered_statement, None),
        (not_json, Some("attestation layer is not a DSSE envelope")),
        (no_signature, Some("attestation envelope has no signature")),
    ] {
        replace(&world, &[forged]);
        let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
        assert!(
            reason.starts_with(&format!(
                "no attestation verified by the given key of {}",
                world.digest_ref()
            )),
            "{reason}"
        );
        if let Some(problem) = problem {
            assert!(reason.contains(problem), "{reason}");
        }
    }
}

#[tokio::test]
async fn a_statement_about_another_digest_is_refused_even_signed_by_the_key() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let other = testkit::push_image(&world.host, "team/other", "v1", "other").expect("pushed");
    let statement = testkit::in_toto_statement(&world.host, "team/other", &other, SPDX_PREDICATE_TYPE, &sbom());
    replace(
        &world,
        &[testkit::key_attestation_layer(&statement, &key).expect("layer")],
    );
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert!(
        reason.ends_with(&format!("in-toto statement's subject does not name {}", world.digest)),
        "{reason}"
    );
}

#[tokio::test]
async fn attestations_copied_from_another_image_are_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let other = testkit::push_image(&world.host, "team/other", "v1", "other").expect("pushed");
    testkit::attest_with_key(
        &world.host,
        "team/other",
        &other,
        &key,
        SPDX_PREDICATE_TYPE,
        &sbom(),
        None,
    )
    .expect("attested");
    let layers = testkit::fetch_attestation_layers(&world.host, "team/other", &other).expect("fetched");
    replace(&world, &layers);
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert!(reason.contains("in-toto statement's subject does not name"), "{reason}");
    // The original image still verifies.
    let other_ref = format!("{}/team/other@{other}", world.host);
    attested(&world.verifier(), attestation_key_request(&other_ref, &key)).await;
}

#[tokio::test]
async fn another_payload_type_or_a_non_statement_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let statement = testkit::in_toto_statement(&world.host, &world.repo, &world.digest, SPDX_PREDICATE_TYPE, &sbom());
    let bytes = serde_json::to_vec(&statement).expect("json");
    let wrong_type = testkit::envelope_layer("application/json", &bytes, &statement, &key).expect("layer");
    let mut not_statement = statement.clone();
    not_statement["_type"] = json!("https://example.com/NotAStatement");
    let not_statement = testkit::key_attestation_layer(&not_statement, &key).expect("layer");
    for (forged, problem) in [
        (
            wrong_type,
            "attestation envelope has payloadType application/json, not application/vnd.in-toto+json",
        ),
        (not_statement, "attestation payload is not an in-toto statement"),
    ] {
        refused_with(&world, &key, forged, problem).await;
    }
}

#[tokio::test]
async fn a_genuine_layer_beside_forged_ones_is_enough() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = genuine(&world, &key);
    let other = KeyPair::ecdsa_p256().expect("key");
    let statement =
        testkit::in_toto_statement(&world.host, &world.repo, &world.digest, SPDX_PREDICATE_TYPE, &json!({}));
    let by_other = testkit::key_attestation_layer(&statement, &other).expect("layer");
    replace(&world, &[by_other, layer.clone()]);
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].id, layer.digest());
}

#[tokio::test]
async fn an_oversized_attestation_is_refused_by_its_own_cap_not_the_signature_cap() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let big = json!({"SPDXID": "SPDXRef-DOCUMENT", "padding": "x".repeat(64 * 1024)});
    testkit::attest_with_key(
        &world.host,
        &world.repo,
        &world.digest,
        &key,
        SPDX_PREDICATE_TYPE,
        &big,
        None,
    )
    .expect("attested");
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
    let answer = attested(&between, attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
    let over = with(DownloadLimits {
        max_attestation_bytes: 16 * 1024,
        ..DownloadLimits::default()
    });
    let reason = not_attested(&over, attestation_key_request(&world.tag_ref(), &key)).await;
    assert!(
        reason.starts_with(&format!(
            "cannot read the attestations of {}: an attestation of ",
            world.digest_ref()
        )),
        "{reason}"
    );
    assert!(reason.ends_with("(--max-attestation-bytes)"), "{reason}");
}

#[tokio::test]
async fn a_rekor_bundle_must_be_the_intoto_entry_of_this_envelope() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let logged = testkit::attest_with_key(
        &world.host,
        &world.repo,
        &world.digest,
        &key,
        SPDX_PREDICATE_TYPE,
        &sbom(),
        Some(&world.rekor),
    )
    .expect("attested");
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;

    // Another envelope's bundle (a genuine SET) next to this envelope.
    let other_statement =
        testkit::in_toto_statement(&world.host, &world.repo, &world.digest, SPDX_PREDICATE_TYPE, &json!({}));
    let other = testkit::with_intoto_bundle(
        testkit::key_attestation_layer(&other_statement, &key).expect("layer"),
        &world.rekor,
        key.public_key_pem(),
        chrono::Utc::now().timestamp(),
    )
    .expect("bundle");
    let mut swapped = logged.clone();
    swapped.annotations.insert(
        testkit::BUNDLE_ANNOTATION.to_owned(),
        other.annotations[testkit::BUNDLE_ANNOTATION].clone(),
    );
    // A hashedrekord entry (what `cosign sign` logs) for the envelope bytes.
    let signature = serde_json::from_slice::<Value>(&logged.payload).expect("envelope")["signatures"][0]["sig"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let hashedrekord = world
        .rekor
        .bundle_json(
            &logged.payload,
            &signature,
            key.public_key_pem(),
            chrono::Utc::now().timestamp(),
        )
        .expect("bundle");
    let mut wrong_kind = logged.clone();
    wrong_kind
        .annotations
        .insert(testkit::BUNDLE_ANNOTATION.to_owned(), hashedrekord);
    // The right entry, logged with another key.
    let stranger = KeyPair::ecdsa_p256().expect("key");
    let wrong_key = testkit::with_intoto_bundle(
        CosignLayer {
            payload: logged.payload.clone(),
            annotations: BTreeMap::new(),
        },
        &world.rekor,
        stranger.public_key_pem(),
        chrono::Utc::now().timestamp(),
    )
    .expect("bundle");
    let mut wrong_key_layer = logged.clone();
    wrong_key_layer.annotations.insert(
        testkit::BUNDLE_ANNOTATION.to_owned(),
        wrong_key.annotations[testkit::BUNDLE_ANNOTATION].clone(),
    );
    for (forged, problem) in [
        (
            swapped,
            "Rekor bundle describes another attestation: its hash is not the SHA-256 of this envelope",
        ),
        (
            wrong_kind,
            "Rekor bundle body is a hashedrekord 0.0.1 entry, not an intoto 0.0.1 or 0.0.2 entry",
        ),
        (
            wrong_key_layer,
            "Rekor bundle describes another attestation: its public key does not verify this envelope's signature",
        ),
    ] {
        refused_with(&world, &key, forged, problem).await;
    }
}

#[tokio::test]
async fn keyless_attestations_need_a_bound_bundle_and_the_identity() {
    let world = World::new();
    let request = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    let layer = testkit::attest_keyless(
        &world.host,
        &world.repo,
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &request,
        SPDX_PREDICATE_TYPE,
        &sbom(),
    )
    .expect("attested");
    let answer = attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert_eq!(answer.statements[0].subject.as_deref(), Some(EMAIL));
    assert_eq!(answer.statements[0].issuer.as_deref(), Some(ISSUER));

    // Another identity: refused by the constraint.
    let regexp = AttestationsRequest::KeylessRegexp(KeylessRegexpRequest {
        image: world.tag_ref(),
        issuer: Some(ISSUER.to_owned()),
        subject_regexp: Some("release@.*".to_owned()),
        ..KeylessRegexpRequest::default()
    });
    let reason = not_attested(&world.verifier(), regexp).await;
    assert!(reason.starts_with("no keyless attestation by issuer"), "{reason}");

    // The certificate without its Rekor bundle counts for nothing.
    let mut unlogged = layer.clone();
    unlogged.annotations.remove(testkit::BUNDLE_ANNOTATION);
    replace(&world, &[unlogged]);
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert!(
        reason.contains("attestation certificate comes without a Rekor bundle"),
        "{reason}"
    );

    // Another image's keyless attestation, certificate and bundle copied here.
    let other = testkit::push_image(&world.host, "team/other", "v1", "other").expect("pushed");
    testkit::attest_keyless(
        &world.host,
        "team/other",
        &other,
        &world.fulcio,
        &world.rekor,
        &request,
        SPDX_PREDICATE_TYPE,
        &sbom(),
    )
    .expect("attested");
    let copied = testkit::fetch_attestation_layers(&world.host, "team/other", &other).expect("fetched");
    replace(&world, &copied);
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert!(reason.contains("in-toto statement's subject does not name"), "{reason}");
}

#[tokio::test]
async fn annotations_are_refused_in_attestation_requests() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let request = AttestationsRequest::V2Verify(SigstoreVerificationInputV2::SigstorePubKeyVerify {
        image: world.tag_ref(),
        pub_keys: vec![key.public_key_pem().to_owned()],
        annotations: Some(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
    });
    let reason = not_attested(&world.verifier(), request).await;
    assert!(
        reason.starts_with("annotations constrain signature payloads"),
        "{reason}"
    );
}

#[tokio::test]
async fn certificate_and_github_actions_authorities_verify_attestations() {
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
    let leaf = world.fulcio.issue(&workflow).expect("leaf");
    let statement = testkit::in_toto_statement(&world.host, &world.repo, &world.digest, SPDX_PREDICATE_TYPE, &sbom());
    let layer = testkit::certificate_attestation_layer(&statement, &leaf, &world.fulcio.chain_pem(), &world.rekor)
        .expect("layer");
    replace(&world, std::slice::from_ref(&layer));
    let github = |owner: &str| {
        AttestationsRequest::V2Verify(SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
            image: world.tag_ref(),
            owner: owner.to_owned(),
            repo: Some("app".to_owned()),
            annotations: None,
        })
    };
    attested(&world.verifier(), github("acme")).await;
    let reason = not_attested(&world.verifier(), github("evil")).await;
    assert!(
        reason.starts_with("no keyless attestation by GitHub Actions of evil/app"),
        "{reason}"
    );

    let certificate = |pem: &str, require_rekor_bundle: bool| {
        AttestationsRequest::V2Verify(SigstoreVerificationInputV2::SigstoreCertificateVerify {
            image: world.tag_ref(),
            certificate: pem.as_bytes().to_vec(),
            certificate_chain: None,
            require_rekor_bundle,
            annotations: None,
        })
    };
    attested(&world.verifier(), certificate(&leaf.cert_pem, true)).await;
    // Another certificate of the same CA did not sign this envelope.
    let other = world.fulcio.issue(&workflow).expect("leaf");
    let reason = not_attested(&world.verifier(), certificate(&other.cert_pem, true)).await;
    assert!(
        reason.starts_with("no attestation verified by the given certificate with a valid Rekor bundle"),
        "{reason}"
    );
    // Without its Rekor bundle, a certificate that requires one is not satisfied.
    let mut unlogged = layer.clone();
    unlogged.annotations.remove(testkit::BUNDLE_ANNOTATION);
    replace(&world, &[unlogged]);
    not_attested(&world.verifier(), certificate(&leaf.cert_pem, true)).await;
    attested(&world.verifier(), certificate(&leaf.cert_pem, false)).await;
}
