//! One verification must not download (and hold) more than `--max-verification-bytes`,
//! whatever the caps of each download allow: a registry under an attacker's control (any image
//! a policy's glob covers) serving 50 distinct attestations, signature layers or referrer
//! bundles, each within its own cap, is refused once their bytes pass the budget, counted as
//! they are read (a registry declaring small sizes and sending more is charged what it sent),
//! and the verification fails naming the cap and the flag. Legacy layers and referrers share
//! one budget: bundles passing it fail a verification the legacy layers alone would pass.

mod hostile_registry;
mod verify_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::registry::{DEFAULT_MAX_VERIFICATION_BYTES, DownloadLimits};
use cip::verify::{SignatureFormat, Verifier, VerifierConfig};
use hostile_registry::{Hostile, Reply, ok};
use serde_json::json;
use testkit::{IN_TOTO_PAYLOAD_TYPE, KeyPair, SPDX_PREDICATE_TYPE};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const MIB: usize = 1024 * 1024;
const FLAG: &str = "(--max-verification-bytes)";

/// One answer of the registry: the body, its content type, whether its length is announced
/// (`Content-Length`), and the `Docker-Content-Digest` sent with it.
#[derive(Clone)]
struct Served {
    content_type: &'static str,
    body: Arc<Vec<u8>>,
    announced: bool,
    digest: Option<String>,
}

/// A hostile registry of `team/app`: answers `/v2/`, then the first entry whose path suffix
/// (or, for `/referrers/`, part) the request path has; 404 otherwise.
fn registry(entries: Vec<(String, Served)>) -> Hostile {
    Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            return ok("application/json", b"{}".to_vec());
        }
        let found = entries.iter().find(|(key, _)| {
            if key == "/referrers/" {
                path.contains(key)
            } else {
                path.ends_with(key.as_str())
            }
        });
        let Some((_, served)) = found else {
            return Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":""}]}"#.to_vec(),
            };
        };
        let reply = if served.announced {
            ok(served.content_type, served.body.to_vec())
        } else {
            Reply::Unannounced {
                content_type: served.content_type,
                body: served.body.to_vec(),
            }
        };
        match &served.digest {
            Some(digest) => reply.with_header("Docker-Content-Digest", digest.clone()),
            None => reply,
        }
    }))
}

fn served(content_type: &'static str, body: Vec<u8>) -> Served {
    Served {
        content_type,
        body: Arc::new(body),
        announced: true,
        digest: None,
    }
}

/// The image the signatures and statements name, served by digest (`Docker-Content-Digest`).
fn image() -> (String, (String, Served)) {
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": [],
    }))
    .expect("json");
    let digest = testkit::sha256_digest(&manifest);
    let mut entry = served(MANIFEST, manifest);
    entry.digest = Some(digest.clone());
    (digest.clone(), (format!("/manifests/{digest}"), entry))
}

/// An image manifest (a `.sig` or `.att` tag's, or a referrer's) listing `layers`.
fn manifest(layers: &[serde_json::Value], extra: serde_json::Value) -> Vec<u8> {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": layers,
    });
    if let (Some(manifest), Some(extra)) = (manifest.as_object_mut(), extra.as_object()) {
        manifest.extend(extra.clone());
    }
    serde_json::to_vec(&manifest).expect("json")
}

/// A genuine DSSE envelope signed by `key`, about `digest`, of about `size` bytes; `n` makes it
/// distinct.
fn envelope(digest: &str, key: &KeyPair, size: usize, n: usize) -> Vec<u8> {
    // base64 makes the payload 4/3 larger.
    let padding = (size * 3 / 4).saturating_sub(400);
    let statement = testkit::in_toto_statement(
        "registry.example",
        "team/app",
        digest,
        SPDX_PREDICATE_TYPE,
        &json!({"SPDXID": "SPDXRef-DOCUMENT", "name": format!("sbom {n}"), "comment": "x".repeat(padding)}),
    );
    let payload = serde_json::to_vec(&statement).expect("json");
    testkit::dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &payload, key)
        .expect("envelope")
        .0
}

/// The `.att` descriptor of `envelope`, its size `declared`.
fn att_layer(envelope: &[u8], declared: usize) -> serde_json::Value {
    json!({
        "mediaType": DSSE,
        "size": declared,
        "digest": testkit::sha256_digest(envelope),
        "annotations": {"dev.cosignproject.cosign/signature": ""},
    })
}

/// A registry serving `count` distinct genuine attestations of about `size` bytes each in the
/// `.att` tag of the image, each descriptor declaring `declared(real size)` and each blob
/// announced (`Content-Length`) or not.
fn att_registry(
    key: &KeyPair,
    count: usize,
    size: usize,
    declared: fn(usize) -> usize,
    announced: bool,
) -> (Hostile, String) {
    let (digest, image_entry) = image();
    let mut entries = vec![image_entry];
    let mut layers = Vec::new();
    for n in 0..count {
        let envelope = envelope(&digest, key, size, n);
        layers.push(att_layer(&envelope, declared(envelope.len())));
        let mut blob = served("application/octet-stream", envelope);
        blob.announced = announced;
        entries.push((format!("/blobs/{}", testkit::sha256_digest(&blob.body)), blob));
    }
    entries.push((
        format!("/manifests/{}.att", digest.replace(':', "-")),
        served(MANIFEST, manifest(&layers, json!({}))),
    ));
    (registry(entries), digest)
}

/// A verifier of `server` with a budget of `budget` bytes (every other cap at its default).
fn verifier(server: &Hostile, budget: usize) -> Verifier {
    let mut config: VerifierConfig = verify_support::config(&[&server.host()], None);
    config.registry_timeout = std::time::Duration::from_secs(10);
    config.limits = DownloadLimits {
        max_verification_bytes: budget,
        // The process's pool (`--max-inflight-download-bytes`, tests/download_budget_inflight.rs)
        // out of the way: these tests are about the budget of one verification.
        max_inflight_download_bytes: 2 * budget,
        ..DownloadLimits::default()
    };
    Verifier::new(config).expect("verifier")
}

#[tokio::test]
async fn fifty_distinct_attestations_of_2_mib_pass_the_64_mib_budget_and_are_refused_naming_the_flag() {
    let key = KeyPair::ecdsa_p256().expect("key");
    // 50 distinct genuine envelopes of 2 MiB: each within the 8 MiB attestation cap, 100 MiB in
    // all (some 250 MiB held once decoded), each verified by the key.
    let (server, digest) = att_registry(&key, 50, 2 * MIB, |size| size, true);
    let image = format!("{}/team/app@{digest}", server.host());
    assert_eq!(DEFAULT_MAX_VERIFICATION_BYTES, 64 * MIB);
    let refused = verify_support::not_attested(
        &verifier(&server, DEFAULT_MAX_VERIFICATION_BYTES),
        verify_support::attestation_key_request(&image, &key),
    )
    .await;
    assert!(refused.contains(FLAG), "{refused}");
    assert!(
        refused.contains(&format!(
            "the total download of the verification of {image} is larger than the cap of {} bytes",
            64 * MIB
        )),
        "{refused}"
    );
    // Refused as soon as the budget was passed: not every blob was fetched.
    let fetched = server.requests("/blobs/").len();
    assert!(fetched <= 33, "{fetched} blobs fetched under a 64 MiB budget");
    // A budget above the total: every statement verified.
    let answer = verify_support::attested(
        &verifier(&server, 128 * MIB),
        verify_support::attestation_key_request(&image, &key),
    )
    .await;
    assert_eq!(answer.statements.len(), 50);
}

#[tokio::test]
async fn blobs_sent_larger_than_declared_are_read_no_further_than_declared() {
    let key = KeyPair::ecdsa_p256().expect("key");
    // Each descriptor declares 1,000 bytes; the registry sends 2 MiB, without `Content-Length`
    // (nothing in the answer says how long it is), then with it. Each blob is refused once it
    // passes the 1,000 bytes declared (go-containerregistry reads no further either), so the
    // budget is never reached: 50 blobs cost some 50 KB, not 100 MiB.
    for announced in [false, true] {
        let (server, digest) = att_registry(&key, 50, 2 * MIB, |_| 1_000, announced);
        let image = format!("{}/team/app@{digest}", server.host());
        let refused = verify_support::not_attested(
            &verifier(&server, DEFAULT_MAX_VERIFICATION_BYTES),
            verify_support::attestation_key_request(&image, &key),
        )
        .await;
        assert!(
            refused.contains("is larger than the 1000 bytes its descriptor declares"),
            "announced {announced}: {refused}"
        );
        assert!(!refused.contains(FLAG), "{refused}");
        assert!(!refused.contains("--max-attestation-bytes"), "{refused}");
    }
}

#[tokio::test]
async fn one_blob_repeated_by_every_descriptor_is_charged_once() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let (digest, image_entry) = image();
    let envelope = envelope(&digest, &key, 2 * MIB, 0);
    // 50 descriptors naming one 2 MiB blob, each annotated differently: downloaded once, so
    // charged once, within a 3 MiB budget (it would be 100 MiB counted per descriptor).
    let layers: Vec<_> = (0..50)
        .map(|n| {
            let mut layer = att_layer(&envelope, envelope.len());
            layer["annotations"]["n"] = json!(n.to_string());
            layer
        })
        .collect();
    let server = registry(vec![
        image_entry,
        (
            format!("/manifests/{}.att", digest.replace(':', "-")),
            served(MANIFEST, manifest(&layers, json!({}))),
        ),
        (
            format!("/blobs/{}", testkit::sha256_digest(&envelope)),
            served("application/octet-stream", envelope),
        ),
    ]);
    let image = format!("{}/team/app@{digest}", server.host());
    let answer = verify_support::attested(
        &verifier(&server, 3 * MIB),
        verify_support::attestation_key_request(&image, &key),
    )
    .await;
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(server.requests("/blobs/").len(), 1);
}

/// A genuine `.sig` layer of `digest` signed by `key`, padded to about `size` bytes; `n` makes
/// it distinct: its descriptor and its payload.
fn sig_layer(host: &str, digest: &str, key: &KeyPair, size: usize, n: usize) -> (serde_json::Value, Vec<u8>) {
    let annotations = BTreeMap::from([
        ("n".to_owned(), n.to_string()),
        ("pad".to_owned(), "x".repeat(size.saturating_sub(300))),
    ]);
    let payload = testkit::simple_signing_payload(host, "team/app", digest, &annotations).expect("payload");
    let signature = BASE64.encode(key.sign(&payload).expect("signed"));
    let descriptor = json!({
        "mediaType": SIMPLE_SIGNING,
        "size": payload.len(),
        "digest": testkit::sha256_digest(&payload),
        "annotations": {"dev.cosignproject.cosign/signature": signature},
    });
    (descriptor, payload)
}

/// The entries serving `layers` (descriptor, payload) in the `.sig` tag of `digest`.
fn sig_entries(digest: &str, layers: Vec<(serde_json::Value, Vec<u8>)>) -> Vec<(String, Served)> {
    let descriptors: Vec<_> = layers.iter().map(|(descriptor, _)| descriptor.clone()).collect();
    let mut entries = vec![(
        format!("/manifests/{}.sig", digest.replace(':', "-")),
        served(MANIFEST, manifest(&descriptors, json!({}))),
    )];
    for (_, payload) in layers {
        entries.push((
            format!("/blobs/{}", testkit::sha256_digest(&payload)),
            served("application/octet-stream", payload),
        ));
    }
    entries
}

#[tokio::test]
async fn fifty_distinct_signature_layers_over_the_budget_are_refused_naming_the_flag() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let (digest, image_entry) = image();
    // The host is only known once the server runs; the payloads name `registry.example`
    // (the constraints do not read it).
    let layers = (0..50)
        .map(|n| sig_layer("registry.example", &digest, &key, 200 * 1024, n))
        .collect();
    let mut entries = vec![image_entry];
    entries.extend(sig_entries(&digest, layers));
    let server = registry(entries);
    let image = format!("{}/team/app@{digest}", server.host());
    let request = || verify_support::pub_key_request(&image, &[key.public_key_pem()], None);
    // 50 layers of 200 KiB (within the 256 KiB layer cap), 10 MiB in all, under a 4 MiB budget.
    let refused = verify_support::failure(&verifier(&server, 4 * MIB), request()).await;
    assert!(
        refused.starts_with(&format!("cannot read the signatures of {image}: ")),
        "{refused}"
    );
    assert!(refused.contains(FLAG), "{refused}");
    assert!(server.requests("/blobs/").len() <= 21);
    // Within the default budget: verified.
    verify_support::verified(&verifier(&server, DEFAULT_MAX_VERIFICATION_BYTES), request()).await;
}

#[tokio::test]
async fn referrers_passing_the_budget_fail_a_verification_the_legacy_layer_alone_passes() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let (digest, image_entry) = image();
    let mut entries = vec![image_entry];
    // One genuine legacy signature of a few KiB.
    entries.extend(sig_entries(
        &digest,
        vec![sig_layer("registry.example", &digest, &key, 2 * 1024, 0)],
    ));
    // 50 distinct referrer bundles of 200 KiB each (within the 256 KiB signature layer cap):
    // 10 MiB of bytes that are no bundle, under a 4 MiB budget.
    let mut listed = Vec::new();
    for n in 0..50 {
        let mut bundle = vec![b' '; 200 * 1024];
        bundle.extend_from_slice(n.to_string().as_bytes());
        let layer = json!({"mediaType": BUNDLE, "size": bundle.len(), "digest": testkit::sha256_digest(&bundle)});
        let referrer = manifest(
            &[layer],
            json!({
                "artifactType": BUNDLE,
                "subject": {"mediaType": MANIFEST, "size": 1, "digest": digest},
            }),
        );
        let referrer_digest = testkit::sha256_digest(&referrer);
        listed.push(json!({
            "mediaType": MANIFEST,
            "size": referrer.len(),
            "digest": referrer_digest,
            "artifactType": BUNDLE,
        }));
        entries.push((format!("/manifests/{referrer_digest}"), served(MANIFEST, referrer)));
        entries.push((
            format!("/blobs/{}", testkit::sha256_digest(&bundle)),
            served("application/octet-stream", bundle),
        ));
    }
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": listed})).expect("json");
    entries.push(("/referrers/".to_owned(), served(INDEX, index)));
    let server = registry(entries);
    let image = format!("{}/team/app@{digest}", server.host());
    let request = || verify_support::pub_key_request(&image, &[key.public_key_pem()], None);
    let budget = verifier(&server, 4 * MIB);
    // The legacy tag alone is within the budget: verified.
    budget
        .verify_in(request(), SignatureFormat::Legacy)
        .await
        .expect("the legacy signature verifies");
    // Both formats share one budget, which the referrers pass: refused, not the legacy
    // signature's verification with the bundles' failure set aside.
    let refused = budget
        .verify_in(request(), SignatureFormat::Any)
        .await
        .err()
        .expect("over the budget")
        .to_string();
    assert!(refused.contains(FLAG), "{refused}");
    // The bundles alone: refused the same way.
    let refused = budget
        .verify_in(request(), SignatureFormat::Bundle)
        .await
        .err()
        .expect("over the budget")
        .to_string();
    assert!(refused.contains(FLAG), "{refused}");
    // Within a budget above the total, the legacy signature verifies both formats (the
    // bundles are rejected as bundles).
    verifier(&server, 64 * MIB)
        .verify_in(request(), SignatureFormat::Any)
        .await
        .expect("verified");
}

#[test]
fn every_command_reading_signatures_has_the_flag_with_its_default() {
    for command in ["run", "verify", "bench", "provider"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cip"))
            .args([command, "--help"])
            .output()
            .expect("cip runs");
        let help = String::from_utf8_lossy(&output.stdout);
        let (_, flag) = help
            .split_once("--max-verification-bytes <BYTES>")
            .unwrap_or_else(|| panic!("cip {command} has no --max-verification-bytes: {help}"));
        // Its help, up to the next flag.
        let flag = flag.split("\n      -").next().unwrap_or_default();
        assert!(flag.contains("[default: 67108864]"), "cip {command}: {flag}");
    }
}
