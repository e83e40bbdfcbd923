//! Legacy `.att` attestations forged against the checks of `host/src/verify/attestations.rs`'s
//! accepting path, with genuine controls: a subject digest of another algorithm or
//! spelling, a DSSE PAE of another payload type, envelopes with several signatures (refused,
//! whoever signed them), a predicate
//! type claimed by the layer annotation or unsigned envelope fields instead of the signed
//! statement, an `intoto` entry with another `payloadHash`, 0.0.1 entries, 0.0.2 entries
//! recording another signature, and for keyless: an entry naming another certificate, a
//! signature the certificate's key did not make, an integration time outside the certificate's
//! validity, a missing SCT; a cosign v3 signature's envelope moved into a `.att` layer; a signed
//! statement with a key twice (read one way by CUE, another by JSON readers); a statement with
//! a second `subject` spelled in another case (read one way by Go, another by serde).
//! A forgery yields no statement, or (a mislabelled type) the signed statement under its own type.

mod verify_support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::verify::KeylessRegexpRequest;
use cip::verify::attestations::AttestationsRequest;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use testkit::{
    CosignLayer, IN_TOTO_PAYLOAD_TYPE, KeyPair, LeafCertificate, LeafRequest, SPDX_PREDICATE_TYPE, SctMode,
    SignerIdentity,
};
use verify_support::{World, attestation_key_request, attestation_keyless_request, attested, not_attested};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "ci@example.com";
const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

fn sbom() -> Value {
    json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"})
}

fn statement(world: &World) -> Value {
    testkit::in_toto_statement(&world.host, &world.repo, &world.digest, SPDX_PREDICATE_TYPE, &sbom())
}

fn replace(world: &World, layers: &[CosignLayer]) {
    testkit::push_attestation_layers(&world.host, &world.repo, &world.digest, layers).expect("pushed");
}

/// base64 signature of `key` over `message`.
fn sign(key: &KeyPair, message: &[u8]) -> String {
    BASE64.encode(key.sign(message).expect("signed"))
}

/// A DSSE envelope of the in-toto `payload`, signed by `key` over its PAE.
fn signed_envelope(key: &KeyPair, payload: &[u8]) -> Value {
    json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": BASE64.encode(payload),
        "signatures": [{"keyid": "", "sig": sign(key, &testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, payload))}],
    })
}

/// A layer holding `envelope` as is, annotated as cosign annotates attestation layers.
fn layer_of(envelope: &Value, predicate_annotation: &str) -> CosignLayer {
    CosignLayer {
        payload: serde_json::to_vec(envelope).expect("json"),
        annotations: BTreeMap::from([
            (testkit::SIGNATURE_ANNOTATION.to_owned(), String::new()),
            (
                testkit::PREDICATE_TYPE_ANNOTATION.to_owned(),
                predicate_annotation.to_owned(),
            ),
        ]),
    }
}

async fn refused_for_key(world: &World, key: &KeyPair, layer: CosignLayer, problem: &str) {
    replace(world, &[layer]);
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), key)).await;
    assert!(reason.contains(problem), "expected `{problem}` in: {reason}");
}

#[tokio::test]
async fn a_subject_must_name_the_sha256_digest_exactly() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let hex = world.digest.strip_prefix("sha256:").expect("sha256").to_owned();
    let name = format!("{}/{}", world.host, world.repo);
    let subjects = [
        ("another algorithm", json!([{"name": name, "digest": {"sha512": hex}}])),
        (
            "upper-case hex",
            json!([{"name": name, "digest": {"sha256": hex.to_uppercase()}}]),
        ),
        (
            "algorithm-prefixed hex",
            json!([{"name": name, "digest": {"sha256": world.digest}}]),
        ),
        (
            "an object, not a list",
            json!({"name": name, "digest": {"sha256": hex}}),
        ),
        ("digest as a list", json!([{"name": name, "digest": [hex]}])),
        ("no subject", Value::Null),
    ];
    for (what, subject) in subjects {
        let mut forged = statement(&world);
        if subject.is_null() {
            forged.as_object_mut().expect("object").remove("subject");
        } else {
            forged["subject"] = subject;
        }
        let layer = testkit::key_attestation_layer(&forged, &key).expect("layer");
        replace(&world, &[layer]);
        let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
        assert!(
            reason.contains(&format!("in-toto statement's subject does not name {}", world.digest)),
            "{what}: {reason}"
        );
    }
    // Several subjects, one of them this image: accepted, as cosign's IntotoSubjectClaimVerifier
    // accepts it (any subject whose sha256 is the digest).
    let mut several = statement(&world);
    several["subject"] = json!([
        {"name": "elsewhere/other", "digest": {"sha256": "00".repeat(32)}},
        {"name": name, "digest": {"sha256": hex}},
    ]);
    replace(
        &world,
        &[testkit::key_attestation_layer(&several, &key).expect("layer")],
    );
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
}

#[tokio::test]
async fn the_signature_must_cover_the_in_toto_pae_of_the_decoded_payload() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let payload = serde_json::to_vec(&statement(&world)).expect("json");
    let envelope_with = |sig: String| {
        json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": BASE64.encode(&payload),
            "signatures": [{"keyid": "", "sig": sig}],
        })
    };
    let forgeries = [
        // Signed as another payload type, presented as an in-toto statement.
        (
            "PAE of another payload type",
            sign(&key, &testkit::dsse_pae("application/json", &payload)),
        ),
        // The bare payload (what a `.sig` layer signs), no PAE.
        ("bare payload", sign(&key, &payload)),
        // The PAE over the base64 text instead of the decoded bytes.
        (
            "PAE of the base64 text",
            sign(
                &key,
                &testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, BASE64.encode(&payload).as_bytes()),
            ),
        ),
    ];
    for (what, sig) in forgeries {
        replace(&world, &[layer_of(&envelope_with(sig), SPDX_PREDICATE_TYPE)]);
        let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
        assert!(
            reason.starts_with(&format!(
                "no attestation verified by the given key of {}",
                world.digest_ref()
            )),
            "{what}: {reason}"
        );
    }
    // The control: the genuine PAE signature verifies.
    let genuine = sign(&key, &testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    replace(&world, &[layer_of(&envelope_with(genuine), SPDX_PREDICATE_TYPE)]);
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
}

#[tokio::test]
async fn an_envelope_has_exactly_one_signature() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let stranger = KeyPair::ecdsa_p256().expect("key");
    let payload = serde_json::to_vec(&statement(&world)).expect("json");
    let pae = testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &payload);
    let envelope_with = |sigs: Vec<String>| {
        json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": BASE64.encode(&payload),
            "signatures": sigs.into_iter().map(|sig| json!({"keyid": "", "sig": sig})).collect::<Vec<_>>(),
        })
    };
    // The key's signature of another statement (another SBOM of this very image).
    let mut other = statement(&world);
    other["predicate"]["SPDXID"] = json!("SPDXRef-OTHER");
    let other_sig = sign(
        &key,
        &testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&other).expect("json")),
    );
    refused_for_key(
        &world,
        &key,
        layer_of(
            &envelope_with(vec![sign(&stranger, &pae), other_sig]),
            SPDX_PREDICATE_TYPE,
        ),
        "attestation envelope has 2 signatures, not one",
    )
    .await;
    // A stranger's signature beside the key's: `cosign attest` writes one signature, and an
    // envelope with more is refused whoever signed them (each was once a kept layer, so that an
    // envelope within the layer cap could list hundreds of thousands).
    let both = envelope_with(vec![sign(&stranger, &pae), sign(&key, &pae)]);
    for signer in [&key, &stranger] {
        refused_for_key(
            &world,
            signer,
            layer_of(&both, SPDX_PREDICATE_TYPE),
            "attestation envelope has 2 signatures, not one",
        )
        .await;
    }
    // The control: the key's signature alone.
    replace(
        &world,
        &[layer_of(&envelope_with(vec![sign(&key, &pae)]), SPDX_PREDICATE_TYPE)],
    );
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
}

#[tokio::test]
async fn the_statement_is_the_signed_payload_not_the_annotation_nor_unsigned_envelope_fields() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let signed = statement(&world);
    let payload = serde_json::to_vec(&signed).expect("json");
    let sig = sign(&key, &testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    // Unsigned look-alike fields beside the signed ones, and an annotation naming another type.
    let envelope = json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": BASE64.encode(&payload),
        "signatures": [{"keyid": "", "sig": sig}],
        "predicateType": VULN,
        "predicate": {"scanner": {"result": "clean"}},
        "statement": {"_type": "https://in-toto.io/Statement/v1", "predicateType": VULN},
    });
    replace(&world, &[layer_of(&envelope, VULN)]);
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].predicate_type, SPDX_PREDICATE_TYPE);
    assert_eq!(answer.statements[0].statement.value(), signed);
}

#[tokio::test]
async fn a_signature_moved_into_an_att_layer_is_no_attestation() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    // The key's genuine cosign v3 signature of this very image: a DSSE envelope over a
    // `cosign sign` statement naming its digest.
    let bundle = testkit::key_bundle(&world.digest, &key, None, &testkit::BundleOptions::default()).expect("bundle");
    let envelope = bundle.value().expect("json")["dsseEnvelope"].clone();
    assert_eq!(envelope["payloadType"], IN_TOTO_PAYLOAD_TYPE);
    refused_for_key(
        &world,
        &key,
        layer_of(&envelope, testkit::COSIGN_SIGN_PREDICATE),
        "is a signature, not an attestation",
    )
    .await;
    // The control: the key's attestation in the same place is one.
    let payload = serde_json::to_vec(&statement(&world)).expect("json");
    let attestation = json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": BASE64.encode(&payload),
        "signatures": [{"keyid": "", "sig": sign(&key, &testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &payload))}],
    });
    replace(&world, &[layer_of(&attestation, SPDX_PREDICATE_TYPE)]);
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
}

#[tokio::test]
async fn a_statement_with_a_key_twice_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let envelope_of = |payload: &[u8]| signed_envelope(&key, payload);
    // Genuinely signed: a scanner's verdict written twice. serde_json keeps the last
    // ("clean"); CUE, to which policy-controller hands these bytes, finds a conflict.
    let text = serde_json::to_string(&statement(&world)).expect("json");
    let twice = text.replacen(
        "\"predicate\":{",
        "\"predicate\":{\"result\":\"vulnerable\",\"result\":\"clean\",",
        1,
    );
    assert_ne!(twice, text);
    refused_for_key(
        &world,
        &key,
        layer_of(&envelope_of(twice.as_bytes()), SPDX_PREDICATE_TYPE),
        "appears twice in one object",
    )
    .await;
    // The control: the same statement with the key once verifies.
    let once = text.replacen("\"predicate\":{", "\"predicate\":{\"result\":\"clean\",", 1);
    replace(&world, &[layer_of(&envelope_of(once.as_bytes()), SPDX_PREDICATE_TYPE)]);
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
}

/// Genuinely signed statements whose `subject` Go (cosign, policy-controller: in-toto-golang
/// over `encoding/json`, names matched without regard to case, the last of two kept) reads as
/// another image than serde does: refused, with the control that the plain statement verifies.
#[tokio::test]
async fn a_statement_go_reads_about_another_image_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let envelope_of = |payload: &[u8]| signed_envelope(&key, payload);
    let other = format!("sha256:{}", "e".repeat(64));
    let text = serde_json::to_string(&statement(&world)).expect("json");
    // Upper case, and U+017F for `s`.
    for spelled in ["\"Subject\"", "\"\u{17f}ubject\""] {
        // `subject` names this image; a second spelling, written after it, names another: the
        // one Go keeps.
        assert!(text.ends_with('}'));
        let both = format!(
            "{},{spelled}:[{{\"digest\":{{\"sha256\":\"{}\"}}}}]}}",
            &text[..text.len() - 1],
            other.trim_start_matches("sha256:")
        );
        serde_json::from_str::<Value>(&both).expect("still JSON");
        refused_for_key(
            &world,
            &key,
            layer_of(&envelope_of(both.as_bytes()), SPDX_PREDICATE_TYPE),
            "names the field \"subject\" for Go's JSON decoder",
        )
        .await;
    }
    // The envelope too: a second `payloadtype` (written after `payloadType`, serde_json
    // writing keys in order) is the type Go computes the PAE with, so cosign checks the
    // signature over another message than the one signed here.
    let mut envelope = envelope_of(text.as_bytes());
    envelope["payloadtype"] = json!("text/plain");
    refused_for_key(
        &world,
        &key,
        layer_of(&envelope, SPDX_PREDICATE_TYPE),
        "attestation envelope is refused: its key \"payloadtype\" names the field \"payloadType\"",
    )
    .await;
    replace(&world, &[layer_of(&envelope_of(text.as_bytes()), SPDX_PREDICATE_TYPE)]);
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
}

/// The `intoto` 0.0.2 entry of `layer` signed by `key`, with `edit` applied to the entry.
fn intoto_entry(layer: &CosignLayer, verifier_pem: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let envelope: Value = serde_json::from_slice(&layer.payload).expect("envelope");
    let payload = BASE64
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("b64");
    let signatures: Vec<Value> = envelope["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| {
            json!({
                "sig": BASE64.encode(s["sig"].as_str().unwrap_or_default()),
                "publicKey": BASE64.encode(verifier_pem),
            })
        })
        .collect();
    let mut entry = json!({
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {"content": {
            "envelope": {"payloadType": envelope["payloadType"], "signatures": signatures},
            "hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&layer.payload))},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))},
        }},
    });
    edit(&mut entry);
    entry
}

fn with_entry(world: &World, mut layer: CosignLayer, entry: &Value, integrated_time: i64) -> CosignLayer {
    let bundle = world.rekor.sign_bundle(entry, integrated_time).expect("bundle");
    layer.annotations.insert(testkit::BUNDLE_ANNOTATION.to_owned(), bundle);
    layer
}

#[tokio::test]
async fn intoto_entries_must_record_this_statement_and_this_signature() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let stranger = KeyPair::ecdsa_p256().expect("key");
    let layer = testkit::key_attestation_layer(&statement(&world), &key).expect("layer");
    let now = chrono::Utc::now().timestamp();

    // Control: the genuine entry binds.
    let genuine = intoto_entry(&layer, key.public_key_pem(), |_| {});
    replace(&world, &[with_entry(&world, layer.clone(), &genuine, now)]);
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;

    let wrong_payload_hash = intoto_entry(&layer, key.public_key_pem(), |entry| {
        entry["spec"]["content"]["payloadHash"]["value"] = json!(hex::encode(Sha256::digest(b"another statement")));
    });
    let other_signature = intoto_entry(&layer, key.public_key_pem(), |entry| {
        let another = sign(&key, b"something else");
        entry["spec"]["content"]["envelope"]["signatures"][0]["sig"] = json!(BASE64.encode(another));
    });
    let sha512_hash = intoto_entry(&layer, key.public_key_pem(), |entry| {
        entry["spec"]["content"]["hash"]["algorithm"] = json!("sha512");
    });
    // 0.0.1: the key is `spec.publicKey`.
    let v001 = |pem: &str| {
        let mut entry = intoto_entry(&layer, pem, |_| {});
        entry["apiVersion"] = json!("0.0.1");
        entry["spec"]["content"]
            .as_object_mut()
            .expect("content")
            .remove("envelope");
        entry["spec"]["publicKey"] = json!(BASE64.encode(pem));
        entry
    };
    for (entry, problem) in [
        (
            wrong_payload_hash,
            "Rekor bundle describes another attestation: its payloadHash is not the SHA-256 of this statement",
        ),
        (
            other_signature,
            "Rekor bundle describes another attestation: it records no key for this signature",
        ),
        (
            sha512_hash,
            "Rekor bundle describes another attestation: its hash is not the SHA-256 of this envelope",
        ),
        (
            v001(stranger.public_key_pem()),
            "Rekor bundle describes another attestation: its public key does not verify this envelope's signature",
        ),
    ] {
        refused_for_key(&world, &key, with_entry(&world, layer.clone(), &entry, now), problem).await;
    }
    // A 0.0.1 entry naming the key binds.
    replace(
        &world,
        &[with_entry(&world, layer.clone(), &v001(key.public_key_pem()), now)],
    );
    attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
}

fn leaf(world: &World, request: &LeafRequest) -> LeafCertificate {
    world.fulcio.issue(request).expect("leaf")
}

/// A keyless layer for `statement` signed by `signer`, carrying `leaf`'s certificate and chain,
/// with an `intoto` entry recording `verifier_pem` logged at `integrated_time`.
fn keyless_layer(
    world: &World,
    statement: &Value,
    signer: &KeyPair,
    leaf: &LeafCertificate,
    verifier_pem: &str,
    integrated_time: i64,
) -> CosignLayer {
    let mut layer = testkit::key_attestation_layer(statement, signer).expect("layer");
    layer
        .annotations
        .insert(testkit::CERTIFICATE_ANNOTATION.to_owned(), leaf.cert_pem.clone());
    layer
        .annotations
        .insert(testkit::CHAIN_ANNOTATION.to_owned(), world.fulcio.chain_pem());
    testkit::with_intoto_bundle(layer, &world.rekor, verifier_pem, integrated_time).expect("bundle")
}

async fn keyless_refused(world: &World, layer: CosignLayer, problem: &str) {
    replace(world, &[layer]);
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert!(
        reason.starts_with("no keyless attestation by issuer"),
        "{problem}: {reason}"
    );
    assert!(reason.contains(problem), "expected `{problem}` in: {reason}");
}

#[tokio::test]
async fn keyless_attestations_bind_certificate_signature_time_and_sct() {
    let world = World::new();
    let identity = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    let genuine_leaf = leaf(&world, &identity);
    let now = chrono::Utc::now().timestamp();
    let signed = statement(&world);

    // Control: the genuine keyless attestation verifies.
    replace(
        &world,
        &[keyless_layer(
            &world,
            &signed,
            &genuine_leaf.key,
            &genuine_leaf,
            &genuine_leaf.cert_pem,
            now,
        )],
    );
    attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;

    // The entry records another certificate of the same identity.
    let other_leaf = leaf(&world, &identity);
    keyless_refused(
        &world,
        keyless_layer(
            &world,
            &signed,
            &genuine_leaf.key,
            &genuine_leaf,
            &other_leaf.cert_pem,
            now,
        ),
        "Rekor bundle describes another attestation: its certificate is not this envelope's certificate",
    )
    .await;

    // A forger's key signs; the genuine certificate is attached, and a log that records
    // anything recorded it with that certificate.
    let forger = KeyPair::ecdsa_p256().expect("key");
    keyless_refused(
        &world,
        keyless_layer(&world, &signed, &forger, &genuine_leaf, &genuine_leaf.cert_pem, now),
        "signature does not verify with the attestation certificate's key",
    )
    .await;

    // Logged after the certificate expired.
    let late = genuine_leaf.not_after.timestamp() + 3600;
    keyless_refused(
        &world,
        keyless_layer(
            &world,
            &signed,
            &genuine_leaf.key,
            &genuine_leaf,
            &genuine_leaf.cert_pem,
            late,
        ),
        "attestation certificate is not trusted",
    )
    .await;

    // No SCT: refused unless the request says insecureIgnoreSCT.
    let no_sct = leaf(&world, &identity.clone().with_sct(SctMode::Missing));
    replace(
        &world,
        &[keyless_layer(
            &world,
            &signed,
            &no_sct.key,
            &no_sct,
            &no_sct.cert_pem,
            now,
        )],
    );
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert!(reason.starts_with("no keyless attestation by issuer"), "{reason}");
    let ignoring = AttestationsRequest::KeylessRegexp(KeylessRegexpRequest {
        image: world.tag_ref(),
        issuer: Some(ISSUER.to_owned()),
        subject: Some(EMAIL.to_owned()),
        insecure_ignore_sct: true,
        ..KeylessRegexpRequest::default()
    });
    attested(&world.verifier(), ignoring).await;
}
