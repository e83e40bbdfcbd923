//! The OCI referrers API path (`GET /v2/<repo>/referrers/<digest>`), which the loopback
//! docker-registry (distribution v2.8) lacks: a small loopback registry that serves only the
//! API (no `sha256-<hex>` tag schema index, no `.sig` tag), so a pass proves the API was read.

mod verify_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cip::verify::{SignatureFormat, Verifier};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use testkit::{KeyPair, TestFulcio, TestRekor};
use verify_support::{config, pub_key_request};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Default)]
struct Content {
    /// Manifests and blobs by digest, with their media type.
    objects: HashMap<String, (String, Vec<u8>)>,
    /// The referrers index of each subject digest.
    referrers: HashMap<String, Vec<u8>>,
    /// Paths asked for, in order.
    asked: Vec<String>,
}

type Shared = Arc<Mutex<Content>>;

async fn serve(State(content): State<Shared>, uri: Uri) -> Response {
    let mut content = content.lock().expect("lock");
    content.asked.push(uri.to_string());
    let path = uri.path();
    let found = if path == "/v2/" {
        Some((String::from("application/json"), b"{}".to_vec()))
    } else if let Some(subject) = path.strip_prefix("/v2/team/app/referrers/") {
        content
            .referrers
            .get(subject)
            .map(|body| (INDEX.to_string(), body.clone()))
    } else {
        let wanted = path
            .strip_prefix("/v2/team/app/manifests/")
            .or_else(|| path.strip_prefix("/v2/team/app/blobs/"));
        wanted.and_then(|d| content.objects.get(d).cloned())
    };
    match found {
        Some((media_type, body)) => {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_str(&media_type).expect("header"));
            headers.insert(
                "docker-content-digest",
                HeaderValue::from_str(&digest(&body)).expect("header"),
            );
            (StatusCode::OK, headers, Bytes::from(body)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}).to_string(),
        )
            .into_response(),
    }
}

#[tokio::test]
async fn bundles_listed_by_the_referrers_api_verify_without_the_tag_schema() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let rekor = TestRekor::new().expect("rekor");
    let fulcio = TestFulcio::new().expect("fulcio");
    let config_blob = b"{}".to_vec();
    let image = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": digest(&config_blob)},
        "layers": [],
    }))
    .expect("json");
    let image_digest = digest(&image);
    let bundle = testkit::key_bundle(&image_digest, &key, Some(&rekor), &Default::default()).expect("bundle");
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": digest(&config_blob)},
        "layers": [{"mediaType": BUNDLE, "size": bundle.json.len(), "digest": digest(&bundle.json)}],
        "subject": {"mediaType": MANIFEST, "size": image.len(), "digest": image_digest},
    }))
    .expect("json");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": digest(&artifact), "size": artifact.len(), "artifactType": BUNDLE,
                       "annotations": {"dev.sigstore.bundle.predicateType": testkit::COSIGN_SIGN_PREDICATE}}],
    }))
    .expect("json");
    let content: Shared = Arc::default();
    {
        let mut c = content.lock().expect("lock");
        c.objects.insert(image_digest.clone(), (MANIFEST.into(), image.clone()));
        c.objects
            .insert(digest(&config_blob), ("application/json".into(), config_blob.clone()));
        c.objects.insert(digest(&artifact), (MANIFEST.into(), artifact.clone()));
        c.objects
            .insert(digest(&bundle.json), (BUNDLE.into(), bundle.json.clone()));
        c.referrers.insert(image_digest.clone(), index);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let app = Router::new().fallback(serve).with_state(Arc::clone(&content));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let trust = cip::trust::TrustRoot::from_json(&testkit::trust_config_json(&fulcio, &rekor)).expect("trust");
    let verifier = Verifier::new(config(&[&host], Some(trust))).expect("verifier");
    let image_ref = format!("{host}/team/app@{image_digest}");
    let answer = verifier
        .verify_in(
            pub_key_request(&image_ref, &[key.public_key_pem()], None),
            SignatureFormat::Bundle,
        )
        .await
        .expect("the bundle listed by the referrers API verifies");
    assert_eq!(answer.digest, image_digest);
    let asked = content.lock().expect("lock").asked.clone();
    assert!(
        asked
            .iter()
            .any(|p| p.starts_with(&format!("/v2/team/app/referrers/{image_digest}"))),
        "{asked:?}"
    );
    assert!(
        !asked.iter().any(|p| p.contains(&image_digest.replace(':', "-"))),
        "the tag schema was not needed: {asked:?}"
    );

    // Another key: listed, read, refused.
    let other = KeyPair::ecdsa_p256().expect("key");
    let refused = verifier
        .verify_in(
            pub_key_request(&image_ref, &[other.public_key_pem()], None),
            SignatureFormat::Bundle,
        )
        .await;
    assert!(refused.is_err());
    server.abort();
}
