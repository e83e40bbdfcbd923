//! The bindings between a cosign layer, its descriptor and its Rekor entry that an audit found
//! untested, each exercised as a forger would break it, against a real registry, next to a
//! control built the same way except for the one forged property (the control verifies, so
//! the refusal comes from the targeted check):
//!
//! * a legacy `.att` attestation whose Rekor bundle is an `intoto` 0.0.1 entry (the format
//!   Rekor wrote before 0.0.2: no envelope, the key in `spec.publicKey`) binds when that key
//!   is the signer's key or certificate, and is refused when it records another one;
//! * an `intoto` entry (0.0.1 and 0.0.2) whose envelope `hash` is right but whose
//!   `payloadHash` is another statement's is refused;
//! * a `.sig` layer whose descriptor has another media type than cosign's simple-signing one
//!   is refused; so is one whose descriptor digest is not its blob's SHA-256 (a descriptor
//!   naming the blob by SHA-512), and one whose registry serves another (validly signed) blob
//!   than the descriptor's digest names (storage tampered on disk).

mod verify_support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::verify::attestations::AttestationsRequest;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};
use testkit::{CosignLayer, KeyPair, LeafRequest, SPDX_PREDICATE_TYPE, SignerIdentity};
use verify_support::{
    World, attestation_key_request, attestation_keyless_request, attested, failure, not_attested, pub_key_request,
    verified,
};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "ci@example.com";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sbom() -> Value {
    json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"})
}

/// cosign's statement about the world's image.
fn statement(world: &World) -> Value {
    testkit::in_toto_statement(&world.host, &world.repo, &world.digest, SPDX_PREDICATE_TYPE, &sbom())
}

/// The statement bytes (the decoded DSSE payload) of an envelope.
fn statement_bytes(envelope: &[u8]) -> Vec<u8> {
    let envelope: Value = serde_json::from_slice(envelope).expect("the envelope is JSON");
    BASE64
        .decode(envelope["payload"].as_str().expect("the envelope has a payload"))
        .expect("the payload is base64")
}

/// The `intoto` 0.0.1 entry Rekor canonicalises from `envelope` uploaded with `verifier_pem`
/// (public key or certificate): the SHA-256 of the envelope and of its statement, and the key
/// as base64 PEM in `spec.publicKey`; unlike 0.0.2 it keeps no envelope.
fn intoto_v001_entry(envelope: &[u8], verifier_pem: &str) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {
            "content": {
                "hash": {"algorithm": "sha256", "value": sha256_hex(envelope)},
                "payloadHash": {"algorithm": "sha256", "value": sha256_hex(&statement_bytes(envelope))},
            },
            "publicKey": BASE64.encode(verifier_pem),
        },
    })
}

/// The `intoto` 0.0.2 entry testkit logs for `envelope` (`testkit::intoto_bundle_json`),
/// read back from its bundle so that a test can edit it and log it again.
fn intoto_v002_entry(world: &World, envelope: &[u8], verifier_pem: &str) -> Value {
    let bundle = testkit::intoto_bundle_json(&world.rekor, envelope, verifier_pem, chrono::Utc::now().timestamp())
        .expect("bundle");
    let bundle: Value = serde_json::from_str(&bundle).expect("the bundle is JSON");
    let body = BASE64
        .decode(bundle["Payload"]["body"].as_str().expect("the bundle has a body"))
        .expect("the body is base64");
    serde_json::from_slice(&body).expect("the body is JSON")
}

/// `layer` with a Rekor bundle (a genuine SET of the world's log, integrated now) logging
/// `entry`, in place of any bundle it had.
fn logged(world: &World, layer: &CosignLayer, entry: &Value) -> CosignLayer {
    let bundle = world
        .rekor
        .sign_bundle(entry, chrono::Utc::now().timestamp())
        .expect("bundle signed");
    let mut layer = layer.clone();
    layer.annotations.insert(testkit::BUNDLE_ANNOTATION.to_owned(), bundle);
    layer
}

/// Makes `layers` the world's `.att` manifest.
fn replace_attestations(world: &World, layers: &[CosignLayer]) {
    testkit::push_attestation_layers(&world.host, &world.repo, &world.digest, layers).expect("pushed");
}

/// A certificate authority for the certificate `pem` that demands a Rekor bundle recording it.
fn certificate_request(world: &World, pem: &str) -> AttestationsRequest {
    AttestationsRequest::V2Verify(verify_support::rekor_bound_certificate(&world.tag_ref(), pem))
}

#[tokio::test]
async fn an_intoto_v001_entry_binds_the_signers_key_and_refuses_another_key() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = testkit::key_attestation_layer(&statement(&world), &key).expect("layer");

    // Control: the 0.0.1 entry records the key that signed the envelope.
    let genuine = logged(&world, &layer, &intoto_v001_entry(&layer.payload, key.public_key_pem()));
    replace_attestations(&world, std::slice::from_ref(&genuine));
    let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].id, genuine.digest());

    // Forged: the same entry (same envelope and statement hashes) records a stranger's key.
    let stranger = KeyPair::ecdsa_p256().expect("key");
    let forged = logged(
        &world,
        &layer,
        &intoto_v001_entry(&layer.payload, stranger.public_key_pem()),
    );
    replace_attestations(&world, &[forged]);
    let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
    assert_eq!(
        reason,
        format!(
            "no attestation verified by the given key of {}; Rekor bundle describes another attestation: \
             its public key does not verify this envelope's signature",
            world.digest_ref()
        )
    );
}

#[tokio::test]
async fn an_intoto_v001_entry_binds_the_signers_certificate_and_refuses_another_certificate() {
    let world = World::new();
    let identity = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    let leaf = world.fulcio.issue(&identity).expect("leaf");
    // Keyless `cosign attest`, whose 0.0.2 bundle is replaced below by a 0.0.1 one.
    let layer =
        testkit::certificate_attestation_layer(&statement(&world), &leaf, &world.fulcio.chain_pem(), &world.rekor)
            .expect("layer");

    // Control: the 0.0.1 entry records the layer's certificate. Keyless and certificate
    // authorities need a bound bundle, so the entry is what makes them pass.
    let genuine = logged(&world, &layer, &intoto_v001_entry(&layer.payload, &leaf.cert_pem));
    replace_attestations(&world, std::slice::from_ref(&genuine));
    let answer = attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].subject.as_deref(), Some(EMAIL));
    attested(&world.verifier(), certificate_request(&world, &leaf.cert_pem)).await;

    // Forged: the same entry records another certificate of the same identity and CA.
    let other = world.fulcio.issue(&identity).expect("leaf");
    let forged = logged(&world, &layer, &intoto_v001_entry(&layer.payload, &other.cert_pem));
    replace_attestations(&world, &[forged]);
    let problem = "Rekor bundle describes another attestation: its certificate is not this envelope's certificate";
    let reason = not_attested(
        &world.verifier(),
        attestation_keyless_request(&world.tag_ref(), ISSUER, EMAIL),
    )
    .await;
    assert!(reason.starts_with("no keyless attestation by issuer"), "{reason}");
    assert!(reason.ends_with(problem), "{reason}");
    let reason = not_attested(&world.verifier(), certificate_request(&world, &leaf.cert_pem)).await;
    assert_eq!(
        reason,
        format!(
            "no attestation verified by the given certificate with a valid Rekor bundle of {}; {problem}",
            world.digest_ref()
        )
    );
}

#[tokio::test]
async fn an_intoto_entry_whose_payload_hash_is_another_statements_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = testkit::key_attestation_layer(&statement(&world), &key).expect("layer");
    // The statement the forger would rather have the log vouch for.
    let mut other_statement = statement(&world);
    other_statement["predicate"]["SPDXID"] = json!("SPDXRef-FORGED");
    let other_hash = sha256_hex(&serde_json::to_vec(&other_statement).expect("json"));

    let entries = [
        ("0.0.1", intoto_v001_entry(&layer.payload, key.public_key_pem())),
        ("0.0.2", intoto_v002_entry(&world, &layer.payload, key.public_key_pem())),
    ];
    for (version, entry) in entries {
        assert_eq!(entry["apiVersion"], version);
        assert_eq!(entry["spec"]["content"]["hash"]["value"], sha256_hex(&layer.payload));

        // Control: the entry as logged.
        replace_attestations(&world, &[logged(&world, &layer, &entry)]);
        let answer = attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
        assert_eq!(answer.statements.len(), 1, "intoto {version}");

        // Forged: the envelope hash still matches; the payloadHash is the other statement's.
        let mut forged = entry.clone();
        forged["spec"]["content"]["payloadHash"]["value"] = json!(other_hash);
        replace_attestations(&world, &[logged(&world, &layer, &forged)]);
        let reason = not_attested(&world.verifier(), attestation_key_request(&world.tag_ref(), &key)).await;
        assert_eq!(
            reason,
            format!(
                "no attestation verified by the given key of {}; Rekor bundle describes another attestation: \
                 its payloadHash is not the SHA-256 of this statement",
                world.digest_ref()
            ),
            "intoto {version}"
        );
    }
}

/// One layer descriptor of a hand-made `.sig` manifest.
struct Descriptor<'a> {
    media_type: &'a str,
    /// `algorithm:hex`, under which the blob is uploaded.
    digest: String,
    layer: &'a CosignLayer,
    /// The size the descriptor declares; `None`: the payload's.
    size: Option<i64>,
}

/// Pushes, as the world's `.sig` manifest, an OCI manifest whose layers are exactly
/// `descriptors` (any media type, any digest the registry accepts for the blob): what
/// `testkit::push_signature_layers` writes, with those two fields chosen by the test.
async fn push_signature_manifest(world: &World, descriptors: &[Descriptor<'_>]) {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    });
    client.store_auth_if_needed(&world.host, &RegistryAuth::Anonymous).await;
    let reference = Reference::with_tag(
        world.host.clone(),
        world.repo.clone(),
        testkit::signature_tag(&world.digest),
    );
    let config = b"{}".to_vec();
    let config_digest = testkit::sha256_digest(&config);
    client
        .push_blob(&reference, config.clone(), &config_digest)
        .await
        .expect("config pushed");
    let mut layers = Vec::new();
    for descriptor in descriptors {
        client
            .push_blob(&reference, descriptor.layer.payload.clone(), &descriptor.digest)
            .await
            .expect("layer blob pushed");
        layers.push(json!({
            "mediaType": descriptor.media_type,
            "size": descriptor.size.unwrap_or_else(|| i64::try_from(descriptor.layer.payload.len()).expect("size")),
            "digest": descriptor.digest,
            "annotations": descriptor.layer.annotations,
        }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {"mediaType": IMAGE_CONFIG_MEDIA_TYPE, "size": config.len(), "digest": config_digest},
        "layers": layers,
    }))
    .expect("manifest");
    client
        .push_manifest_raw(&reference, manifest, OCI_IMAGE_MEDIA_TYPE.parse().expect("media type"))
        .await
        .expect("manifest pushed");
}

/// `cosign sign --key` of the world's image with `annotations`, not pushed.
fn key_layer(world: &World, key: &KeyPair, annotations: &BTreeMap<String, String>) -> CosignLayer {
    testkit::key_signature_layer(&world.host, &world.repo, &world.digest, key, annotations).expect("layer")
}

/// Pushes a `.sig` manifest of one descriptor: `layer` as `media_type`, named by `digest`.
async fn push_one(world: &World, media_type: &str, digest: String, layer: &CosignLayer) {
    push_signature_manifest(
        world,
        &[Descriptor {
            media_type,
            digest,
            layer,
            size: None,
        }],
    )
    .await;
}

/// The control of the descriptor tests: a key-signed layer pushed by [`push_one`] as cosign
/// writes it (its media type, named by its SHA-256) verifies. The key and the layer.
async fn hand_made_control(world: &World) -> (KeyPair, CosignLayer) {
    let key = KeyPair::ecdsa_p256().expect("key");
    let layer = key_layer(world, &key, &BTreeMap::new());
    push_one(world, testkit::SIMPLE_SIGNING_MEDIA_TYPE, layer.digest(), &layer).await;
    let request = pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    assert_eq!(verified(&world.verifier(), request).await, world.digest);
    (key, layer)
}

#[tokio::test]
async fn a_signature_layer_of_another_media_type_is_refused() {
    let world = World::new();
    let (key, layer) = hand_made_control(&world).await;
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);

    // Forged: the genuine layer labelled as a DSSE envelope, then as a plain image layer.
    for media_type in [testkit::DSSE_MEDIA_TYPE, oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE] {
        push_one(&world, media_type, layer.digest(), &layer).await;
        let reason = failure(&world.verifier(), request()).await;
        assert_eq!(
            reason,
            format!(
                "signature layer has media type {media_type}, not {}",
                testkit::SIMPLE_SIGNING_MEDIA_TYPE
            )
        );
    }
}

#[tokio::test]
async fn a_signature_layer_whose_descriptor_size_is_not_its_length_is_refused() {
    let world = World::new();
    let (key, layer) = hand_made_control(&world).await;
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    let length = i64::try_from(layer.payload.len()).expect("size");

    // Forged: the genuine, signed blob under a descriptor declaring one byte less, then one
    // byte more, then nothing. go-containerregistry (cosign, policy-controller) reads a blob no
    // further than its descriptor's size and refuses one of another length.
    for (declared, reason) in [
        (
            length - 1,
            format!(
                "blob {} is larger than the {} bytes its descriptor declares",
                layer.digest(),
                length - 1
            ),
        ),
        (
            length + 1,
            format!(
                "blob {} is {length} bytes, not the {} bytes its descriptor declares",
                layer.digest(),
                length + 1
            ),
        ),
        (
            0,
            format!(
                "blob {} is larger than the 0 bytes its descriptor declares",
                layer.digest()
            ),
        ),
    ] {
        push_signature_manifest(
            &world,
            &[Descriptor {
                media_type: testkit::SIMPLE_SIGNING_MEDIA_TYPE,
                digest: layer.digest(),
                layer: &layer,
                size: Some(declared),
            }],
        )
        .await;
        let refused = failure(&world.verifier(), request()).await;
        assert!(refused.contains(&reason), "declared {declared}: {refused}");
    }
}

#[tokio::test]
async fn a_blob_named_again_under_another_size_is_refused_in_either_order() {
    let world = World::new();
    let (key, layer) = hand_made_control(&world).await;
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);
    let length = i64::try_from(layer.payload.len()).expect("size");
    // Found by a review: the blob is read once, for its first descriptor, and was reused for a
    // second naming it under another size without checking that size.
    for sizes in [[length, length + 1], [length + 1, length], [length, -9], [length, -1]] {
        let descriptors = sizes.map(|size| Descriptor {
            media_type: testkit::SIMPLE_SIGNING_MEDIA_TYPE,
            digest: layer.digest(),
            layer: &layer,
            size: Some(size),
        });
        push_signature_manifest(&world, &descriptors).await;
        let refused = failure(&world.verifier(), request()).await;
        let expected = if sizes[1] < 0 {
            // A negative size is refused as a first read of it is: over the layer cap.
            "is larger than the cap of".to_owned()
        } else {
            format!(
                "blob {} is {length} bytes, not the {} bytes its descriptor declares",
                layer.digest(),
                length + 1
            )
        };
        assert!(refused.contains(&expected), "sizes {sizes:?}: {refused}");
    }
}

#[tokio::test]
async fn a_signature_layer_whose_descriptor_digest_is_not_its_sha256_is_refused() {
    let world = World::new();
    let (key, layer) = hand_made_control(&world).await;
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);

    // Forged: the same blob named by its SHA-512. The registry stores and serves it under that
    // digest and the registry client's own digest check passes, so the descriptor is only
    // refused by the verifier's SHA-256 comparison.
    let sha512 = format!("sha512:{}", hex::encode(Sha512::digest(&layer.payload)));
    push_one(&world, testkit::SIMPLE_SIGNING_MEDIA_TYPE, sha512.clone(), &layer).await;
    let reason = failure(&world.verifier(), request()).await;
    assert_eq!(
        reason,
        format!("signature layer content has digest {}, not {sha512}", layer.digest())
    );
}

#[tokio::test]
async fn a_registry_serving_another_signed_blob_than_the_descriptor_digest_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    // Two payloads for the image, of the same length; only the second is signed.
    let named = key_layer(&world, &key, &testkit::annotations([("env", "one")]));
    let served = key_layer(&world, &key, &testkit::annotations([("env", "two")]));
    assert_eq!(named.payload.len(), served.payload.len());
    let request = || pub_key_request(&world.tag_ref(), &[key.public_key_pem()], None);

    // Control: the descriptor names the signed blob, which the registry serves.
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, std::slice::from_ref(&served))
        .expect("pushed");
    assert_eq!(verified(&world.verifier(), request()).await, world.digest);

    // Forged: the descriptor (with the signed blob's signature) names the other payload's
    // digest, and the registry's storage for that digest now holds the signed blob: the
    // signature verifies over what is served, only the digest binding is broken.
    let forged = CosignLayer {
        payload: named.payload.clone(),
        annotations: served.annotations.clone(),
    };
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[forged]).expect("pushed");
    let hex = named.digest().trim_start_matches("sha256:").to_owned();
    let stored = world
        .registry
        .root_dir()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    assert_eq!(std::fs::read(&stored).expect("stored blob"), named.payload);
    std::fs::write(&stored, &served.payload).expect("storage tampered");

    let reason = failure(&world.verifier(), request()).await;
    // The registry client checks every blob against its descriptor digest while reading it,
    // before the verifier's own comparison: the download fails naming both digests.
    assert!(
        reason.starts_with(&format!("registry {} failed for ", world.host)),
        "{reason}"
    );
    assert!(
        reason.ends_with(&format!(
            "Invalid digest. Expected {}, got {}",
            named.digest(),
            served.digest()
        )),
        "{reason}"
    );
}
