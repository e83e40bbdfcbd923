//! Error answers to a signature or attestation layer's blob GET are not read.
//!
//! oci-client 0.18's `pull_blob_stream` (what `RegistryClient::capped_blob` called) reads the
//! body of a non-2xx answer whole (`response.bytes()` in `stream_from_response`) to build its
//! error, so a registry answering a layer request with an endless 4xx/5xx body made `cip` and the
//! Gatekeeper provider buffer it, bounded only by the read timeout (the whole 256 MiB these
//! servers send). The layers are now read with the capped GET the manifests and the config use,
//! which fails on the status without reading the body: a 500 or 404 answer fails at once, with
//! the server writing little, for the `.sig` tag's layers and for a referrer's layer. A blob
//! redirected to storage on another host is read from there, without the registry's credentials;
//! storage answering an endless error body is not read either.

mod capability_host;
mod hostile_registry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use capability_host::runtime;
use cip::registry::{BoundedError, DockerCredentials, DownloadLimits, RegistryClient, RegistryError, Sources};
use hostile_registry::{Hostile, Reply, ok};
use serde_json::json;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The layer the signature manifests list.
const LAYER: &[u8] = br#"{"critical":{}}"#;

fn sha256(bytes: &[u8]) -> String {
    testkit::sha256_digest(bytes)
}

/// A cosign signature manifest with one layer, `LAYER`.
fn signature_manifest() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": sha256(b"{}")},
        "layers": [{"mediaType": SIMPLE_SIGNING, "size": LAYER.len(), "digest": sha256(LAYER)}],
    }))
    .expect("json")
}

/// A registry whose `.sig` manifest lists one layer, answered by `blob`; everything else 404.
fn signature_registry(blob: impl Fn() -> Reply + Send + Sync + 'static) -> Hostile {
    Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            ok("application/json", b"{}".to_vec())
        } else if path.contains("/manifests/") {
            ok(MANIFEST, signature_manifest())
        } else if path.contains("/blobs/") {
            blob()
        } else {
            Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
            }
        }
    }))
}

/// A client reaching `hosts` over plain HTTP, with a 10 s timeout.
fn client(hosts: &[&str], credentials: DockerCredentials) -> RegistryClient {
    RegistryClient::new(
        Sources {
            insecure_sources: hosts.iter().map(|h| h.to_string()).collect(),
            ..Sources::default()
        },
        credentials,
        Duration::from_secs(10),
    )
}

/// The `.sig` tag of an image of `host`.
fn sig_tag(host: &str) -> oci_client::Reference {
    let digest = sha256(b"the image").replace(':', "-");
    RegistryClient::parse_reference(&format!("{host}/team/app:{digest}.sig")).expect("reference")
}

/// Asserts that the failure came quickly, the server having written little of its endless body.
fn refused_unread(server: &Hostile, started: Instant) {
    let elapsed = started.elapsed();
    let written = server.written();
    eprintln!("failed after {elapsed:?}, the server having written {written} bytes of its error body");
    assert!(
        elapsed < Duration::from_secs(5),
        "failed after {elapsed:?} (the registry timeout is 10 s)"
    );
    assert!(
        written < 16 * 1024 * 1024,
        "the server wrote {written} bytes: the error body was read"
    );
}

#[test]
fn a_signature_layer_answered_500_with_an_endless_body_fails_unread() {
    let server = signature_registry(|| Reply::endless_error(500));
    let registry = client(&[&server.host()], DockerCredentials::default());
    let limits = DownloadLimits::default();
    let started = Instant::now();
    let outcome = runtime().block_on(registry.capped_manifest_and_layers_within(
        &sig_tag(&server.host()),
        &limits,
        limits.signature_layer(),
        &limits.verification_budget("team/app"),
    ));
    refused_unread(&server, started);
    match outcome {
        Err(BoundedError::Registry(RegistryError::Other { .. })) => {}
        other => panic!("expected the registry's failure, got {other:?}"),
    }
}

#[test]
fn an_attestation_layer_answered_404_with_an_endless_body_fails_unread_as_not_found() {
    let server = signature_registry(|| Reply::endless_error(404));
    let registry = client(&[&server.host()], DockerCredentials::default());
    let limits = DownloadLimits::default();
    let started = Instant::now();
    let outcome = runtime().block_on(registry.capped_manifest_and_layers_within(
        &sig_tag(&server.host()),
        &limits,
        limits.attestation_layer(),
        &limits.verification_budget("team/app"),
    ));
    refused_unread(&server, started);
    match outcome {
        Err(BoundedError::Registry(e)) if e.is_not_found() => {}
        other => panic!("expected the layer not found, got {other:?}"),
    }
}

#[test]
fn a_referrer_layer_answered_500_with_an_endless_body_fails_unread() {
    let subject = sha256(b"the image");
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": sha256(b"{}")},
        "layers": [{"mediaType": BUNDLE, "size": LAYER.len(), "digest": sha256(LAYER)}],
        "subject": {"mediaType": MANIFEST, "size": 10, "digest": subject},
    }))
    .expect("json");
    let referrer_digest = sha256(&referrer);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": referrer_digest, "size": referrer.len(),
                       "artifactType": BUNDLE}],
    }))
    .expect("json");
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            ok("application/json", b"{}".to_vec())
        } else if path.contains("/referrers/") {
            ok(INDEX, index.clone())
        } else if path.contains("/manifests/") {
            ok(MANIFEST, referrer.clone())
        } else {
            Reply::endless_error(500)
        }
    }));
    let registry = client(&[&server.host()], DockerCredentials::default());
    let limits = DownloadLimits::default();
    let image = RegistryClient::parse_reference(&format!("{}/team/app@{subject}", server.host())).expect("reference");
    let started = Instant::now();
    let outcome = runtime().block_on(registry.capped_referrers_within(
        &image,
        &subject,
        BUNDLE,
        &|_| true,
        &limits,
        limits.signature_layer(),
        &limits.verification_budget(image.whole()),
    ));
    refused_unread(&server, started);
    assert_eq!(server.asked("/blobs/").len(), 1, "the layer was asked for");
    match outcome {
        Err(BoundedError::Registry(RegistryError::Other { .. })) => {}
        other => panic!("expected the registry's failure, got {other:?}"),
    }
}

#[test]
fn a_layer_redirected_to_storage_is_read_there_without_credentials_and_an_error_there_unread() {
    for storage_fails in [true, false] {
        let storage = Hostile::start(Arc::new(move |_: &str| {
            if storage_fails {
                Reply::endless_error(403)
            } else {
                ok("application/octet-stream", LAYER.to_vec())
            }
        }));
        // Another port of the loopback host: another origin, to which reqwest sends no credentials.
        let location = format!("http://{}/storage/layer?signature=presigned", storage.host());
        let server = signature_registry(move || Reply::Redirect {
            location: location.clone(),
        });
        let credentials = DockerCredentials::from_json(
            &json!({"auths": {server.host(): {"username": "user", "password": "secret"}}}).to_string(),
        )
        .expect("credentials");
        let registry = client(&[&server.host(), &storage.host()], credentials);
        let limits = DownloadLimits::default();
        let started = Instant::now();
        let outcome = runtime().block_on(registry.capped_manifest_and_layers_within(
            &sig_tag(&server.host()),
            &limits,
            limits.signature_layer(),
            &limits.verification_budget("team/app"),
        ));
        if storage_fails {
            refused_unread(&storage, started);
            match outcome {
                Err(BoundedError::Registry(RegistryError::Denied { .. } | RegistryError::Other { .. })) => {}
                other => panic!("expected storage's failure, got {other:?}"),
            }
        } else {
            let (_, layers) = outcome.expect("the redirected layer");
            assert_eq!(layers.len(), 1);
            assert_eq!(layers[0].1, LAYER);
        }
        assert_eq!(
            server.asked("/blobs/"),
            [true],
            "the registry is asked with the credentials"
        );
        assert_eq!(storage.asked("/storage/"), [false], "storage is asked without them");
    }
}
