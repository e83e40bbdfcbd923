//! One signature manifest or attestation layer must not cost more than its bytes: a forger's
//! `.att` layer listing thousands of DSSE signatures (each once a kept layer holding the PAE and
//! the statement, its Rekor bundle checked again) is refused with one problem before anything is
//! done per signature; a manifest repeating one layer descriptor up to the layer cap has the
//! blob downloaded once and held once, not once per descriptor.

mod hostile_registry;
mod verify_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::registry::{DockerCredentials, DownloadLimits, RegistryClient, Sources};
use cip::verify::SignatureFormat;
use cip::verify::attestations::{self, DSSE_MEDIA_TYPE};
use hostile_registry::{Hostile, Reply, ok};
use oci_client::manifest::OciDescriptor;
use serde_json::json;
use testkit::{IN_TOTO_PAYLOAD_TYPE, KeyPair, SPDX_PREDICATE_TYPE};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The image the statements name.
fn image_digest() -> String {
    testkit::sha256_digest(b"the image")
}

/// A genuine statement about the image, and a genuine signature of its PAE by `key`.
fn statement_and_signature(key: &KeyPair) -> (Vec<u8>, String) {
    let statement = testkit::in_toto_statement(
        "registry.example",
        "team/app",
        &image_digest(),
        SPDX_PREDICATE_TYPE,
        &json!({"SPDXID": "SPDXRef-DOCUMENT"}),
    );
    let payload = serde_json::to_vec(&statement).expect("json");
    let signature = key
        .sign(&testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &payload))
        .expect("signed");
    (payload, BASE64.encode(signature))
}

/// The `.att` layer descriptor of `envelope`.
fn descriptor_of(envelope: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: DSSE_MEDIA_TYPE.to_owned(),
        digest: testkit::sha256_digest(envelope),
        size: envelope.len() as i64,
        annotations: Some(BTreeMap::from([(
            "dev.cosignproject.cosign/signature".to_owned(),
            String::new(),
        )])),
        ..OciDescriptor::default()
    }
}

fn envelope(payload: &[u8], signatures: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": BASE64.encode(payload),
        "signatures": signatures.iter().map(|sig| json!({"keyid": "", "sig": sig})).collect::<Vec<_>>(),
    }))
    .expect("json")
}

#[test]
fn an_envelope_with_ten_thousand_signatures_is_refused_once() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let (payload, genuine) = statement_and_signature(&key);
    // The genuine signature first, then 9,999 empty ones: each was a kept layer before.
    let mut signatures = vec![genuine.as_str()];
    signatures.extend(std::iter::repeat_n("", 9_999));
    let forged = envelope(&payload, &signatures);
    let checked = attestations::check(
        &descriptor_of(&forged),
        &forged,
        "registry.example/team/app",
        &image_digest(),
        None,
    );
    assert_eq!(
        checked.problems,
        ["attestation envelope has 10000 signatures, not one"],
        "one problem naming the count"
    );
    assert!(checked.trusted.is_empty(), "{} layers kept", checked.trusted.len());
    // Two signatures, the genuine one among them: refused the same way.
    let two = envelope(&payload, &[&genuine, &genuine]);
    let checked = attestations::check(
        &descriptor_of(&two),
        &two,
        "registry.example/team/app",
        &image_digest(),
        None,
    );
    assert_eq!(checked.problems, ["attestation envelope has 2 signatures, not one"]);
    assert!(checked.trusted.is_empty());
    // The control: the genuine signature alone is one kept layer, with the PAE as signed data.
    let control = envelope(&payload, &[&genuine]);
    let checked = attestations::check(
        &descriptor_of(&control),
        &control,
        "registry.example/team/app",
        &image_digest(),
        None,
    );
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    assert_eq!(checked.trusted.len(), 1);
    assert_eq!(
        *checked.trusted[0].trusted.signed,
        *testkit::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &payload)
    );
}

#[tokio::test]
async fn a_manifest_repeating_one_descriptor_has_its_blob_read_and_held_once() {
    let blob: Arc<Vec<u8>> = Arc::new(vec![b' '; 64 * 1024]);
    let digest = testkit::sha256_digest(&blob);
    let limits = DownloadLimits::default();
    // The layer cap's worth of descriptors naming one blob, each annotated differently.
    let layers: Vec<_> = (0..limits.max_layers)
        .map(|i| {
            json!({
                "mediaType": DSSE_MEDIA_TYPE,
                "size": blob.len(),
                "digest": digest,
                "annotations": {"n": i.to_string()},
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": layers,
    }))
    .expect("json");
    let served = Arc::clone(&blob);
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            ok("application/json", b"{}".to_vec())
        } else if path.contains("/manifests/") {
            ok(MANIFEST, manifest.clone())
        } else if path.contains("/blobs/") {
            ok("application/octet-stream", served.to_vec())
        } else {
            Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
            }
        }
    }));
    let registry = RegistryClient::new(
        Sources {
            insecure_sources: vec![server.host()],
            ..Sources::default()
        },
        DockerCredentials::default(),
        Duration::from_secs(10),
    );
    let tag = format!("{}/team/app:{}.att", server.host(), image_digest().replace(':', "-"));
    let reference = RegistryClient::parse_reference(&tag).expect("reference");
    let (_, read) = registry
        .capped_manifest_and_layers_within(
            &reference,
            &limits,
            limits.attestation_layer(),
            &limits.verification_budget(reference.whole()),
        )
        .await
        .expect("read");
    assert_eq!(read.len(), limits.max_layers, "every descriptor is kept");
    assert_eq!(server.requests("/blobs/").len(), 1, "the registry served the blob once");
    for (i, (descriptor, data)) in read.iter().enumerate() {
        assert_eq!(
            descriptor.annotations.as_ref().expect("annotations")["n"],
            i.to_string()
        );
        assert_eq!(**data, **blob, "descriptor {i}");
        assert!(
            std::ptr::eq(data.as_ptr(), read[0].1.as_ptr()),
            "descriptor {i} holds its own copy of the blob"
        );
    }
}

#[tokio::test]
async fn referrers_naming_one_bundle_have_it_read_and_held_once() {
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let blob: Arc<Vec<u8>> = Arc::new(vec![b' '; 64 * 1024]);
    let layer_digest = testkit::sha256_digest(&blob);
    let subject = image_digest();
    let limits = DownloadLimits::default();
    // As many referrers as may be read, each its own manifest, all holding the one bundle.
    let manifests: Vec<(String, Vec<u8>)> = (0..limits.max_layers)
        .map(|i| {
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "artifactType": BUNDLE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
                "layers": [{"mediaType": BUNDLE, "size": blob.len(), "digest": layer_digest}],
                "subject": {"mediaType": MANIFEST, "size": 1, "digest": subject},
                "annotations": {"n": i.to_string()},
            }))
            .expect("json");
            (testkit::sha256_digest(&manifest), manifest)
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests.iter().map(|(digest, manifest)| json!({
            "mediaType": MANIFEST,
            "size": manifest.len(),
            "digest": digest,
            "artifactType": BUNDLE,
        })).collect::<Vec<_>>(),
    }))
    .expect("json");
    let served = Arc::clone(&blob);
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            ok("application/json", b"{}".to_vec())
        } else if path.contains("/referrers/") {
            ok(INDEX, index.clone())
        } else if let Some((_, manifest)) = manifests
            .iter()
            .find(|(digest, _)| path.ends_with(&format!("/manifests/{digest}")))
        {
            ok(MANIFEST, manifest.clone())
        } else if path.contains("/blobs/") {
            ok("application/octet-stream", served.to_vec())
        } else {
            Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
            }
        }
    }));
    let registry = RegistryClient::new(
        Sources {
            insecure_sources: vec![server.host()],
            ..Sources::default()
        },
        DockerCredentials::default(),
        Duration::from_secs(10),
    );
    let image = RegistryClient::parse_reference(&format!("{}/team/app@{subject}", server.host())).expect("reference");
    let referrers = registry
        .capped_referrers_within(
            &image,
            &subject,
            BUNDLE,
            &|_| true,
            &limits,
            limits.attestation_layer(),
            &limits.verification_budget(image.whole()),
        )
        .await
        .expect("read");
    assert!(referrers.unreadable.is_empty(), "{:?}", referrers.unreadable);
    assert_eq!(referrers.artifacts.len(), limits.max_layers, "every referrer is kept");
    assert_eq!(
        server.requests("/blobs/").len(),
        1,
        "the registry served the bundle once"
    );
    let first = referrers.artifacts[0].2.as_ptr();
    for (referrer, _, data) in &referrers.artifacts {
        assert_eq!(**data, **blob);
        assert!(
            std::ptr::eq(data.as_ptr(), first),
            "referrer {} holds its own copy of the bundle",
            referrer.digest
        );
    }
}

/// The statement of the repeated-descriptor probe: about `image_digest`, its predicate padded
/// to a 6 MB payload (an 8 MB envelope, within `--max-attestation-bytes`).
fn large_statement(image_digest: &str) -> Vec<u8> {
    let statement = testkit::in_toto_statement(
        "registry.example",
        "team/app",
        image_digest,
        SPDX_PREDICATE_TYPE,
        &json!({"SPDXID": "SPDXRef-DOCUMENT", "comment": "x".repeat(6_000_000 - 400)}),
    );
    serde_json::to_vec(&statement).expect("json")
}

/// A hostile registry serving the `.att` manifest `layers` (each naming `envelope`), the
/// envelope, and the image manifest whose digest the statement names.
fn att_registry(layers: Vec<serde_json::Value>, envelope: Arc<Vec<u8>>, image_manifest: Vec<u8>) -> Hostile {
    let image_digest = testkit::sha256_digest(&image_manifest);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": layers,
    }))
    .expect("json");
    Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            ok("application/json", b"{}".to_vec())
        } else if path.ends_with(&format!("/manifests/{image_digest}")) {
            ok(MANIFEST, image_manifest.clone()).with_header("Docker-Content-Digest", image_digest.clone())
        } else if path.contains("/manifests/") && path.ends_with(".att") {
            ok(MANIFEST, manifest.clone())
        } else if path.contains("/blobs/") {
            ok("application/octet-stream", envelope.to_vec())
        } else {
            Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
            }
        }
    }))
}

/// A small image manifest (the image the statements name).
fn image_manifest() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": [],
    }))
    .expect("json")
}

/// The descriptor of `envelope` in the `.att` manifest, with `extra` annotations.
fn att_layer(envelope: &[u8], extra: &[(&str, String)]) -> serde_json::Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("dev.cosignproject.cosign/signature".to_owned(), json!(""));
    for (name, value) in extra {
        annotations.insert((*name).to_owned(), json!(value));
    }
    json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "size": envelope.len(),
        "digest": testkit::sha256_digest(envelope),
        "annotations": annotations,
    })
}

/// What the kept layers hold beyond the blob: the distinct signed-bytes and statement buffers
/// (counted once each, by pointer), and any bytes copied into a layer's `raw_data`.
fn bytes_held(layers: &[attestations::AttestationLayer]) -> (usize, usize) {
    let mut signed: Vec<&Arc<[u8]>> = Vec::new();
    let mut statements: Vec<&attestations::StatementText> = Vec::new();
    let mut held = 0;
    for layer in layers {
        held += layer.trusted.layer.raw_data.len();
        if !signed.iter().any(|s| Arc::ptr_eq(s, &layer.trusted.signed)) {
            signed.push(&layer.trusted.signed);
            held += layer.trusted.signed.len();
        }
        if !statements.iter().any(|s| s.is_shared_with(&layer.statement)) {
            statements.push(&layer.statement);
            held += layer.statement.get().len();
        }
    }
    (signed.len(), held)
}

#[tokio::test]
async fn an_att_descriptor_repeated_to_the_layer_cap_is_checked_and_held_once() {
    // The reviewer's probe: one genuine key-signed envelope of 8 MB (6 MB payload), its
    // descriptor repeated `max_layers` times, through `fetch(.., Legacy)`. Each repeat was a
    // kept layer with its own PAE and statement (600 MB beyond the blob).
    let key = KeyPair::ecdsa_p256().expect("key");
    let image = image_manifest();
    let image_digest = testkit::sha256_digest(&image);
    let payload = large_statement(&image_digest);
    let (envelope, _) = testkit::dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &payload, &key).expect("envelope");
    let limits = DownloadLimits::default();
    assert!(
        envelope.len() > 8_000_000 && envelope.len() <= limits.max_attestation_bytes,
        "{}",
        envelope.len()
    );
    let envelope = Arc::new(envelope);
    let layers = vec![att_layer(&envelope, &[]); limits.max_layers];
    let server = att_registry(layers, Arc::clone(&envelope), image);
    let registry = RegistryClient::new(
        Sources {
            insecure_sources: vec![server.host()],
            ..Sources::default()
        },
        DockerCredentials::default(),
        Duration::from_secs(30),
    );
    let reference =
        RegistryClient::parse_reference(&format!("{}/team/app@{image_digest}", server.host())).expect("reference");
    let set = attestations::fetch(
        &registry,
        None,
        &limits,
        &reference,
        &image_digest,
        SignatureFormat::Legacy,
    )
    .await
    .expect("fetched");
    assert_eq!(set.rejected, Some(Vec::new()));
    assert_eq!(server.requests("/blobs/").len(), 1, "the registry served the blob once");
    assert_eq!(set.layers.len(), 1, "layers kept for one distinct descriptor");
    let (copies, held) = bytes_held(&set.layers);
    assert_eq!(copies, 1, "distinct PAE copies");
    assert!(
        held <= 2 * envelope.len(),
        "bytes held beyond the blob: {held} for an envelope of {}",
        envelope.len()
    );
    // The policy sees the one statement once, verified by the key.
    let verifier = verify_support::config(&[&server.host()], None);
    let verifier = cip::verify::Verifier::new(verifier).expect("verifier");
    let request = verify_support::attestation_key_request(&reference.whole(), &key);
    let answer = verify_support::attested(&verifier, request).await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].statement.get().as_bytes(), payload.as_slice());
}

#[tokio::test]
async fn an_att_digest_repeated_with_other_annotations_shares_its_pae_and_statement() {
    // The same blob named by `max_layers` descriptors each annotated differently: other layers
    // (each checked, each kept), but one PAE and one statement between them, and one statement
    // in the answer.
    let key = KeyPair::ecdsa_p256().expect("key");
    let image = image_manifest();
    let image_digest = testkit::sha256_digest(&image);
    let payload = large_statement(&image_digest);
    let (envelope, _) = testkit::dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &payload, &key).expect("envelope");
    let limits = DownloadLimits::default();
    let envelope = Arc::new(envelope);
    let layers = (0..limits.max_layers)
        .map(|i| att_layer(&envelope, &[("n", i.to_string())]))
        .collect();
    let server = att_registry(layers, Arc::clone(&envelope), image);
    let registry = RegistryClient::new(
        Sources {
            insecure_sources: vec![server.host()],
            ..Sources::default()
        },
        DockerCredentials::default(),
        Duration::from_secs(30),
    );
    let reference =
        RegistryClient::parse_reference(&format!("{}/team/app@{image_digest}", server.host())).expect("reference");
    let set = attestations::fetch(
        &registry,
        None,
        &limits,
        &reference,
        &image_digest,
        SignatureFormat::Legacy,
    )
    .await
    .expect("fetched");
    assert_eq!(set.rejected, Some(Vec::new()));
    assert_eq!(
        set.layers.len(),
        limits.max_layers,
        "one kept layer per distinct descriptor"
    );
    let (copies, held) = bytes_held(&set.layers);
    assert_eq!(copies, 1, "distinct PAE copies");
    assert!(
        held <= 2 * envelope.len(),
        "bytes held beyond the blob: {held} for an envelope of {}",
        envelope.len()
    );
    let verifier = cip::verify::Verifier::new(verify_support::config(&[&server.host()], None)).expect("verifier");
    let request = verify_support::attestation_key_request(&reference.whole(), &key);
    let answer = verify_support::attested(&verifier, request).await;
    assert_eq!(answer.statements.len(), 1, "one statement for one blob and one signer");
}

#[tokio::test]
async fn referrers_naming_one_attestation_bundle_are_verified_and_kept_once() {
    // A genuine key-signed attestation bundle, listed by `max_layers` referrer manifests (each
    // its own digest): one bundle, verified once, one kept layer (each referrer was a full
    // verification and a kept layer holding the PAE and the statement).
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let key = KeyPair::ecdsa_p256().expect("key");
    let fulcio = testkit::TestFulcio::new().expect("fulcio");
    let rekor = testkit::TestRekor::new().expect("rekor");
    let trust = cip::trust::TrustRoot::from_json(&testkit::trust_config_json(&fulcio, &rekor)).expect("trust");
    let image = image_manifest();
    let subject = testkit::sha256_digest(&image);
    let bundle = testkit::key_bundle(&subject, &key, Some(&rekor), &verify_support::spdx()).expect("bundle");
    let blob = Arc::new(bundle.json.clone());
    let layer_digest = testkit::sha256_digest(&blob);
    let limits = DownloadLimits::default();
    let manifests: Vec<(String, Vec<u8>)> = (0..limits.max_layers)
        .map(|i| {
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "artifactType": BUNDLE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
                "layers": [{"mediaType": BUNDLE, "size": blob.len(), "digest": layer_digest}],
                "subject": {"mediaType": MANIFEST, "size": image.len(), "digest": subject},
                "annotations": {"n": i.to_string()},
            }))
            .expect("json");
            (testkit::sha256_digest(&manifest), manifest)
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests.iter().map(|(digest, manifest)| json!({
            "mediaType": MANIFEST,
            "size": manifest.len(),
            "digest": digest,
            "artifactType": BUNDLE,
            "annotations": {"dev.sigstore.bundle.predicateType": SPDX_PREDICATE_TYPE},
        })).collect::<Vec<_>>(),
    }))
    .expect("json");
    let served = Arc::clone(&blob);
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            ok("application/json", b"{}".to_vec())
        } else if path.contains("/referrers/") {
            ok(INDEX, index.clone())
        } else if let Some((_, manifest)) = manifests
            .iter()
            .find(|(digest, _)| path.ends_with(&format!("/manifests/{digest}")))
        {
            ok(MANIFEST, manifest.clone())
        } else if path.contains("/blobs/") {
            ok("application/octet-stream", served.to_vec())
        } else {
            Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
            }
        }
    }));
    let registry = RegistryClient::new(
        Sources {
            insecure_sources: vec![server.host()],
            ..Sources::default()
        },
        DockerCredentials::default(),
        Duration::from_secs(10),
    );
    let reference =
        RegistryClient::parse_reference(&format!("{}/team/app@{subject}", server.host())).expect("reference");
    let set = attestations::fetch(
        &registry,
        Some(&trust),
        &limits,
        &reference,
        &subject,
        SignatureFormat::Bundle,
    )
    .await
    .expect("fetched");
    assert_eq!(set.rejected, Some(Vec::new()));
    assert_eq!(
        server.requests("/blobs/").len(),
        1,
        "the registry served the bundle once"
    );
    assert_eq!(set.layers.len(), 1, "layers kept for one bundle");
    assert_eq!(set.layers[0].trusted.layer.oci_digest, layer_digest);
}
