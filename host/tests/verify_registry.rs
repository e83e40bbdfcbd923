//! Registry behaviour of the verifier: caching and coalescing (requests counted by a proxy in
//! front of a real registry), dead and slow registries, and the `oci/v1/*` look-ups.

mod verify_support;

use std::time::{Duration, Instant};

use cip::verify::{Verifier, VerifierConfig};
use oci_client::manifest::OciManifest;
use testkit::{CountingProxy, KeyPair, SlowServer};
use verify_support::{World, config, failure, pub_key_request, verified};

/// A signed world reached through a counting proxy.
struct Proxied {
    world: World,
    proxy: CountingProxy,
    keys: [KeyPair; 2],
}

impl Proxied {
    fn new() -> Self {
        let world = World::new();
        let proxy = CountingProxy::start(world.registry.addr()).expect("proxy");
        let keys = [KeyPair::ecdsa_p256().expect("key"), KeyPair::ecdsa_p256().expect("key")];
        for key in &keys {
            testkit::sign_with_key(&world.host, &world.repo, &world.digest, key, &Default::default()).expect("signed");
        }
        Self { world, proxy, keys }
    }

    fn image(&self) -> String {
        format!("{}/{}:v1", self.proxy.host(), self.world.repo)
    }

    fn verifier(&self, tweak: impl FnOnce(&mut VerifierConfig)) -> Verifier {
        let mut config = config(&[&self.proxy.host()], None);
        config.failure_ttl = Duration::from_secs(5);
        tweak(&mut config);
        Verifier::new(config).expect("verifier")
    }
}

#[tokio::test]
async fn a_second_verification_is_answered_from_the_cache_without_registry_requests() {
    let p = Proxied::new();
    let verifier = p.verifier(|_| {});
    let request = || pub_key_request(&p.image(), &[p.keys[0].public_key_pem()], None);

    verified(&verifier, request()).await;
    let first = p.proxy.request_count();
    p.proxy.reset();
    let digest = verified(&verifier, request()).await;

    assert!(first > 0);
    assert_eq!(p.proxy.request_count(), 0, "{:?}", p.proxy.requests());
    assert_eq!(digest, p.world.digest);
    let stats = verifier.cache_stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

#[tokio::test]
async fn the_authorities_of_one_evaluation_share_one_signature_fetch() {
    let p = Proxied::new();
    let verifier = p.verifier(|_| {});
    let sig_tag = testkit::signature_tag(&p.world.digest);

    verified(
        &verifier,
        pub_key_request(&p.image(), &[p.keys[0].public_key_pem()], None),
    )
    .await;
    let after_one = (p.proxy.count("GET", &sig_tag), p.proxy.count("HEAD", "/manifests/v1"));
    verified(
        &verifier,
        pub_key_request(&p.image(), &[p.keys[1].public_key_pem()], None),
    )
    .await;
    let after_two = (p.proxy.count("GET", &sig_tag), p.proxy.count("HEAD", "/manifests/v1"));

    assert!(after_one.0 > 0, "{:?}", p.proxy.requests());
    assert_eq!(after_one.1, 1);
    assert_eq!(after_two, after_one, "{:?}", p.proxy.requests());
    assert_eq!(verifier.cache_stats().misses, 2);
}

#[tokio::test]
async fn concurrent_identical_verifications_are_coalesced() {
    let p = Proxied::new();
    let request = || pub_key_request(&p.image(), &[p.keys[0].public_key_pem()], None);
    verified(&p.verifier(|_| {}), request()).await;
    let one_verification = p.proxy.request_count();
    p.proxy.reset();
    let verifier = p.verifier(|_| {});

    let outcomes = futures::future::join_all((0..8).map(|_| verifier.verify(request()))).await;

    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().is_ok_and(|r| r.digest == p.world.digest))
    );
    assert_eq!(p.proxy.request_count(), one_verification, "{:?}", p.proxy.requests());
    let stats = verifier.cache_stats();
    assert_eq!((stats.hits, stats.misses), (7, 1));
}

#[tokio::test]
async fn failures_are_cached_for_the_failure_ttl_only() {
    let p = Proxied::new();
    let newcomer = KeyPair::ecdsa_p256().expect("key");
    let verifier = p.verifier(|c| c.failure_ttl = Duration::from_millis(700));
    let request = || pub_key_request(&p.image(), &[newcomer.public_key_pem()], None);

    let before = failure(&verifier, request()).await;
    testkit::sign_with_key(
        &p.world.host,
        &p.world.repo,
        &p.world.digest,
        &newcomer,
        &Default::default(),
    )
    .expect("signed");
    p.proxy.reset();
    let cached = failure(&verifier, request()).await;
    let requests_while_cached = p.proxy.request_count();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let digest = verified(&verifier, request()).await;

    assert_eq!(before, "no signature verified by the given key");
    assert_eq!(cached, before);
    assert_eq!(requests_while_cached, 0);
    assert_eq!(digest, p.world.digest);
}

#[tokio::test]
async fn successes_expire_after_the_success_ttl() {
    let p = Proxied::new();
    let verifier = p.verifier(|c| {
        c.success_ttl = Duration::from_millis(300);
        // Signature data is reused no longer than failures are.
        c.failure_ttl = Duration::from_millis(300);
    });
    let request = || pub_key_request(&p.image(), &[p.keys[0].public_key_pem()], None);

    verified(&verifier, request()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    p.proxy.reset();
    verified(&verifier, request()).await;

    assert!(p.proxy.request_count() > 0);
    assert_eq!(verifier.cache_stats().misses, 2);
}

#[tokio::test]
async fn a_registry_that_is_down_fails_at_once_with_its_address() {
    // Held closed for the whole test: a registry started by a parallel test cannot take it.
    let closed = testkit::ClosedPort::new().expect("closed port");
    let host = closed.addr().to_string();
    let verifier = Verifier::new(config(&[&host], None)).expect("verifier");
    let key = KeyPair::ecdsa_p256().expect("key");

    for image in [
        format!("{host}/team/app:v1"),
        format!("{host}/team/app@sha256:{}", "a".repeat(64)),
    ] {
        let started = Instant::now();
        let reason = failure(&verifier, pub_key_request(&image, &[key.public_key_pem()], None)).await;
        assert!(
            reason.starts_with(&format!("registry {host} unreachable: ")),
            "{reason}"
        );
        assert!(reason.to_lowercase().contains("connection refused"), "{reason}");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_registry_that_never_answers_fails_within_the_timeout() {
    let slow = SlowServer::start().expect("slow server");
    let host = slow.host();
    let mut config = config(&[&host], None);
    config.registry_timeout = Duration::from_millis(400);
    let verifier = Verifier::new(config).expect("verifier");
    let key = KeyPair::ecdsa_p256().expect("key");

    for image in [
        format!("{host}/team/app:v1"),
        format!("{host}/team/app@sha256:{}", "b".repeat(64)),
    ] {
        let started = Instant::now();
        let reason = failure(&verifier, pub_key_request(&image, &[key.public_key_pem()], None)).await;
        let elapsed = started.elapsed();
        assert_eq!(reason, format!("registry {host} did not answer within 400ms"));
        assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
    }
    assert!(slow.connections() > 0);
}

#[tokio::test]
async fn a_missing_image_is_reported_as_not_found() {
    let world = World::new();
    let verifier = world.verifier();
    let key = KeyPair::ecdsa_p256().expect("key");
    let missing_tag = format!("{}/{}:nope", world.host, world.repo);
    let missing_digest = format!("{}/{}@sha256:{}", world.host, world.repo, "c".repeat(64));

    let by_tag = failure(&verifier, pub_key_request(&missing_tag, &[key.public_key_pem()], None)).await;
    let by_digest = failure(
        &verifier,
        pub_key_request(&missing_digest, &[key.public_key_pem()], None),
    )
    .await;

    assert_eq!(by_tag, format!("{missing_tag} not found in registry {}", world.host));
    assert_eq!(
        by_digest,
        format!("{missing_digest} not found in registry {}", world.host)
    );
}

#[tokio::test]
async fn oci_lookups_are_reused_within_the_data_window_then_fetched_again() {
    let p = Proxied::new();
    // The data window is the evaluation window (2 s) or the failure TTL, whichever is shorter.
    let verifier = p.verifier(|c| c.failure_ttl = Duration::from_millis(400));
    let image = p.image();
    let signatures = format!(
        "{}/{}:{}.sig",
        p.proxy.host(),
        p.world.repo,
        p.world.digest.replace(':', "-")
    );
    let look_up = || async {
        let digest = verifier.manifest_digest(&image).await.expect("digest");
        let manifest = verifier.oci_manifest(&signatures).await.expect("signature manifest");
        let config = verifier.oci_manifest_config(&image).await.expect("manifest and config");
        (digest, manifest, config.digest)
    };

    let (digest, manifest, config_digest) = look_up().await;
    let first = p.proxy.request_count();
    p.proxy.reset();
    let (again, manifest_again, config_again) = look_up().await;
    let while_fresh = p.proxy.request_count();
    tokio::time::sleep(Duration::from_millis(500)).await;
    look_up().await;

    assert!(first >= 3, "{:?}", p.proxy.requests());
    assert_eq!(while_fresh, 0, "{:?}", p.proxy.requests());
    assert!(p.proxy.request_count() >= 3, "{:?}", p.proxy.requests());
    assert_eq!((&digest, &config_digest), (&p.world.digest, &p.world.digest));
    assert_eq!((again, config_again), (digest, config_digest));
    let layers = |m: &OciManifest| match m {
        OciManifest::Image(image) => image.layers.len(),
        OciManifest::ImageIndex(_) => panic!("a signature manifest is an image manifest"),
    };
    // The two keys' signatures, the same from the cache.
    assert_eq!((layers(&manifest), layers(&manifest_again)), (2, 2));
}

#[tokio::test]
async fn oci_lookups_answer_digest_manifest_and_config() {
    let world = World::new();
    let verifier = world.verifier();

    let digest = verifier.manifest_digest(&world.tag_ref()).await.expect("digest");
    let manifest = verifier.oci_manifest(&world.tag_ref()).await.expect("manifest");
    let with_config = verifier
        .oci_manifest_config(&world.digest_ref())
        .await
        .expect("manifest and config");
    let missing = verifier
        .manifest_digest(&format!("{}/{}:nope", world.host, world.repo))
        .await
        .expect_err("missing tag");

    assert_eq!(digest, world.digest);
    let OciManifest::Image(image) = manifest else {
        panic!("an image manifest was pushed, got an index");
    };
    assert_eq!(image.layers.len(), 1);
    assert_eq!(with_config.digest, world.digest);
    assert_eq!(with_config.manifest.layers.len(), 1);
    assert_eq!(
        missing.to_string(),
        format!(
            "{}/{}:nope not found in registry {}",
            world.host, world.repo, world.host
        )
    );
}

/// A registry that answers every manifest request with `Docker-Content-Digest: sha512:…`,
/// whatever digest was asked for.
async fn serve_another_algorithm(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if uri.path() == "/v2/" {
        return (axum::http::StatusCode::OK, "{}").into_response();
    }
    (
        axum::http::StatusCode::OK,
        [
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ("docker-content-digest", SHA512_ANSWER),
        ],
        r#"{"schemaVersion":2}"#,
    )
        .into_response()
}

const SHA512_ANSWER: &str = "sha512:ee26b0dd4af7e749aa1a8ee3c10ae9923f618980772e473f8819a5d4940e0db27ac185f8a0e1d5f84f88bc887fd67b143732c304cc5fa9ad8e6f57f50028a8ff";

#[tokio::test]
async fn a_registry_answering_another_digest_for_a_pinned_reference_is_refused() {
    // oci-client compares the answer with the pinned digest only when both name the same
    // algorithm: a `sha512:` answer for a `@sha256:` reference passes it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let app = axum::Router::new().fallback(serve_another_algorithm);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let verifier = Verifier::new(config(&[&host], None)).expect("verifier");
    let pinned = format!("sha256:{}", "ab".repeat(32));
    let image = format!("{host}/team/app@{pinned}");

    let error = verifier
        .manifest_digest(&image)
        .await
        .expect_err("the answer is not the pinned digest");
    let expected = format!("the registry answered digest {SHA512_ANSWER} for a reference pinned to {pinned}");
    assert!(error.to_string().contains(&expected), "{error}");

    // Verification stops there too: the other digest's signatures are never looked up.
    let key = KeyPair::ecdsa_p256().expect("key");
    let Err(error) = verifier
        .verify(pub_key_request(&image, &[key.public_key_pem()], None))
        .await
    else {
        panic!("verified against a registry that answered another digest");
    };
    assert!(error.to_string().contains(&expected), "{error}");

    // A tag is resolved to whatever the registry says (the module checks a pinned image's
    // answer against its own digest).
    let resolved = verifier
        .manifest_digest(&format!("{host}/team/app:v1"))
        .await
        .expect("a tag resolves");
    assert_eq!(resolved, SHA512_ANSWER);
    server.abort();
}
