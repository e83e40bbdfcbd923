//! Attestations of a `key` authority verified with exactly the hash its `hashAlgorithm` names
//! (`v1/verify_attestations_with_hash`), as policy-controller verifies them
//! (`ValidatePolicyAttestationsForAuthority`: `signature.LoadVerifier(k,
//! authority.Key.HashAlgorithmCode)`): a P-384 key's attestations signed over SHA-256 (cosign ≤
//! 2.4) and over SHA-384, in both formats (legacy `.att` DSSE layers with a Rekor `intoto`
//! bundle, and sigstore bundles with a Rekor `dsse` entry), against a real registry. Each
//! verifies under its own hash only; a P-256 key's attestation over SHA-384 too.

mod verify_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::verify::attestations::AttestationsRequest;
use cip::verify::constraints::HashAlgorithm;
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use p256::ecdsa::signature::hazmat::PrehashSigner as _;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use testkit::{BundleOptions, CosignLayer, KeyPair, SPDX_PREDICATE_TYPE, SigningScheme};
use verify_support::{World, attested, not_attested, sbom};

/// A key signing over any hash (sigstore-rs signs a P-384 key over SHA-384 only).
enum AnyHashKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// A `scheme` key: the testkit's key pair (PEM, bundles) and the same key signing over any hash.
fn key(scheme: SigningScheme) -> (KeyPair, AnyHashKey) {
    let pair = KeyPair::generate(scheme).expect("key");
    let pem = pair.private_key_pem().expect("private key");
    let der = pem::parse(pem).expect("PEM").into_contents();
    let signer = match scheme {
        SigningScheme::ECDSA_P256_SHA256_ASN1 => {
            AnyHashKey::P256(p256::ecdsa::SigningKey::from_pkcs8_der(&der).expect("P-256"))
        }
        _ => AnyHashKey::P384(p384::ecdsa::SigningKey::from_pkcs8_der(&der).expect("P-384")),
    };
    (pair, signer)
}

impl AnyHashKey {
    /// The ASN.1 DER signature of `message` hashed with `hash`.
    fn sign(&self, hash: HashAlgorithm, message: &[u8]) -> Vec<u8> {
        let digest = match hash {
            HashAlgorithm::Sha224 => sha2::Sha224::digest(message).to_vec(),
            HashAlgorithm::Sha256 => sha2::Sha256::digest(message).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(message).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(message).to_vec(),
        };
        match self {
            Self::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign_prehash(&digest).expect("signed");
                signature.to_der().as_bytes().to_vec()
            }
            Self::P384(key) => {
                let signature: p384::ecdsa::Signature = key.sign_prehash(&digest).expect("signed");
                signature.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// A fresh image of the world's repository: its digest and tag reference.
fn image(world: &World, tag: &str) -> (String, String) {
    let digest = testkit::push_image(&world.host, &world.repo, tag, tag).expect("image");
    (digest, format!("{}/{}:{tag}", world.host, world.repo))
}

fn statement(world: &World, digest: &str) -> Vec<u8> {
    let statement = testkit::in_toto_statement(&world.host, &world.repo, digest, SPDX_PREDICATE_TYPE, &sbom());
    serde_json::to_vec(&statement).expect("JSON")
}

/// `cosign attest --key` in the legacy format, signed over `hash`, with the Rekor bundle of its
/// `intoto` entry; pushed as the only attestation of `digest`.
fn legacy(world: &World, digest: &str, pair: &KeyPair, key: &AnyHashKey, hash: HashAlgorithm) -> CosignLayer {
    let payload = statement(world, digest);
    let signature = key.sign(hash, &testkit::dsse_pae(testkit::IN_TOTO_PAYLOAD_TYPE, &payload));
    let envelope = json!({
        "payloadType": testkit::IN_TOTO_PAYLOAD_TYPE,
        "payload": BASE64.encode(&payload),
        "signatures": [{"keyid": "", "sig": BASE64.encode(signature)}],
    });
    let statement: Value = serde_json::from_slice(&payload).expect("statement");
    let mut layer = testkit::key_attestation_layer(&statement, pair).expect("layer");
    layer.payload = serde_json::to_vec(&envelope).expect("envelope");
    let layer = testkit::with_intoto_bundle(
        layer,
        &world.rekor,
        pair.public_key_pem(),
        chrono::Utc::now().timestamp(),
    )
    .expect("Rekor bundle");
    testkit::push_attestation_layers(&world.host, &world.repo, digest, std::slice::from_ref(&layer)).expect("pushed");
    layer
}

/// `cosign attest --key` in the bundle format (cosign v3), signed over `hash`, with the Rekor
/// `dsse` entry of that signature; attached to `digest`.
fn bundle(world: &World, digest: &str, pair: &KeyPair, key: &AnyHashKey, hash: HashAlgorithm) {
    let payload = statement(world, digest);
    let options = BundleOptions {
        no_tlog: true,
        ..BundleOptions::default()
    };
    let made =
        testkit::key_dsse_bundle(testkit::IN_TOTO_PAYLOAD_TYPE, payload.clone(), pair, None, &options).expect("bundle");
    let mut value = made.value().expect("JSON");
    let signature = key.sign(hash, &testkit::dsse_pae(testkit::IN_TOTO_PAYLOAD_TYPE, &payload));
    value["dsseEnvelope"]["signatures"][0]["sig"] = json!(BASE64.encode(&signature));
    let envelope = serde_json::to_vec(&value["dsseEnvelope"]).expect("envelope");
    let body = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(&envelope))},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(&payload))},
            "signatures": [{"signature": BASE64.encode(&signature), "verifier": BASE64.encode(pair.public_key_pem())}],
        },
    });
    let entry = world
        .rekor
        .log_entry(&body, chrono::Utc::now().timestamp())
        .expect("log entry");
    value["verificationMaterial"]["tlogEntries"] = json!([serde_json::to_value(&entry).expect("entry JSON")]);
    let signed = testkit::SigstoreBundle {
        json: serde_json::to_vec(&value).expect("bundle JSON"),
        predicate_type: made.predicate_type,
    };
    testkit::attach_bundle(&world.host, &world.repo, digest, &signed).expect("attached");
}

/// The attestations request of `pair` for `reference`, verified with `hash`.
fn with_hash(reference: &str, pair: &KeyPair, hash: HashAlgorithm) -> AttestationsRequest {
    AttestationsRequest::KeyWithHash {
        hash_algorithm: hash,
        request: SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: reference.to_owned(),
            pub_keys: vec![pair.public_key_pem().to_owned()],
            annotations: None,
        },
    }
}

/// Each of `signed` (the hash an image's attestation was signed over, and the image) verifies
/// under that hash and is refused under the others of `hashes`.
async fn each_under_its_own_hash(world: &World, pair: &KeyPair, signed: &[(HashAlgorithm, String, String)]) {
    let verifier = world.verifier();
    for (made, digest, reference) in signed {
        for (named, _, _) in signed {
            let request = with_hash(reference, pair, *named);
            if made == named {
                let answer = attested(&verifier, request).await;
                assert_eq!(&answer.digest, digest, "made {made}, named {named}");
                assert_eq!(answer.statements.len(), 1, "made {made}, named {named}");
                assert_eq!(answer.statements[0].predicate_type, SPDX_PREDICATE_TYPE);
                assert_eq!(answer.statements[0].statement.value()["predicate"], sbom());
            } else {
                let reason = not_attested(&verifier, request).await;
                assert!(
                    reason.contains(&format!(
                        "no attestation verified by the given key with hashAlgorithm {named}"
                    )),
                    "made {made}, named {named}: {reason}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_p384_key_verifies_legacy_attestations_with_the_hash_named() {
    let world = World::new();
    let (pair, key) = key(SigningScheme::ECDSA_P384_SHA384_ASN1);
    let mut signed = Vec::new();
    for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha384] {
        let (digest, reference) = image(&world, &format!("legacy-{hash}"));
        legacy(&world, &digest, &pair, &key, hash);
        signed.push((hash, digest, reference));
    }
    each_under_its_own_hash(&world, &pair, &signed).await;
}

#[tokio::test]
async fn a_p384_key_verifies_attestation_bundles_with_the_hash_named() {
    let world = World::new();
    let (pair, key) = key(SigningScheme::ECDSA_P384_SHA384_ASN1);
    let mut signed = Vec::new();
    for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha384] {
        let (digest, reference) = image(&world, &format!("bundle-{hash}"));
        bundle(&world, &digest, &pair, &key, hash);
        signed.push((hash, digest, reference));
    }
    each_under_its_own_hash(&world, &pair, &signed).await;
}

/// A P-256 key with `hashAlgorithm: sha384` (not the hash sigstore-rs picks for it): its
/// SHA-384 attestations verify, in both formats, and its SHA-256 ones do not.
#[tokio::test]
async fn a_p256_key_verifies_attestations_with_sha384_when_named() {
    let world = World::new();
    let (pair, key) = key(SigningScheme::ECDSA_P256_SHA256_ASN1);
    let mut signed = Vec::new();
    for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha384] {
        let (digest, reference) = image(&world, &format!("p256-legacy-{hash}"));
        legacy(&world, &digest, &pair, &key, hash);
        signed.push((hash, digest, reference));
    }
    each_under_its_own_hash(&world, &pair, &signed).await;
    let (digest, reference) = image(&world, "p256-bundle-sha384");
    bundle(&world, &digest, &pair, &key, HashAlgorithm::Sha384);
    let answer = attested(&world.verifier(), with_hash(&reference, &pair, HashAlgorithm::Sha384)).await;
    assert_eq!(answer.digest, digest);
    let reason = not_attested(&world.verifier(), with_hash(&reference, &pair, HashAlgorithm::Sha256)).await;
    assert!(
        reason.contains("no attestation verified by the given key with hashAlgorithm sha256"),
        "{reason}"
    );
}
