//! The bearer-token exchange and the digest look-up read a registry's answers under caps.
//!
//! oci-client 0.18's `Client::auth` reads the token endpoint's answer whole (`Response::text`),
//! on success and on failure, and `fetch_manifest_digest` reads the whole manifest when the
//! registry's `HEAD` answer carries no `Docker-Content-Digest`. Anyone who can create a Pod can
//! name their own registry in an image, whose `/v2/` challenge can name a token endpoint (the
//! `realm`) streaming without end, or whose manifest GET does: `cip` and the Gatekeeper provider
//! read it until the timeout. Now the token answer is read at most 64 KiB (a fixed cap), an
//! error answer of the token endpoint only for its first 4 KiB, and the digest GET at most
//! `--max-signature-manifest-bytes`. The hostile loopback server here counts the bytes it manages
//! to write of its endless or huge answers: each refusal leaves it having written little.
//!
//! Controls: a registry requiring a bearer token from its realm is read as before (Basic
//! credentials sent to the realm, the token sent to the registry) and asked for a token once for
//! several requests of one repository (no longer once per request); a token answer at the cap passes; a manifest at the cap without a digest
//! header answers its SHA-256, and a pinned reference whose manifest is another is refused.
//!
//! The kept tokens: each serves only its own registry and repository; one said to expire within
//! seconds is not kept; a `/v2/` failing without a challenge is not kept (the next look-up asks
//! for a token); a kept token the registry refuses (401) is forgotten and asked for anew.

mod capability_host;
mod hostile_registry;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capability_host::runtime;
use cip::registry::{BoundedError, DownloadLimits, MAX_TOKEN_BYTES, RegistryError, Sources};
use cip::verify::{Verifier, VerifierConfig, VerifyError};
use hostile_registry::{Hostile, Reply, Request, ok};
use oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
use serde_json::json;

const MANIFEST_SETTING: &str = "--max-signature-manifest-bytes";
/// The token answer's cap, 64 KiB.
const TOKEN_CAP: usize = MAX_TOKEN_BYTES;
/// Most bytes a refused answer may have had written (the cap, and what the socket buffers hold
/// besides); the hostile server sends 256 MiB to a client reading whole.
const WRITTEN_BOUND: usize = 1024 * 1024;
/// The token the realm grants.
const TOKEN: &str = "granted-token";

/// A verifier reaching `host` over plain HTTP with `limits`, the credentials of
/// `docker_config_dir`, a 10 s timeout.
fn verifier(host: &str, limits: DownloadLimits, docker_config_dir: Option<&Path>) -> Verifier {
    Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![host.to_string()],
            ..Sources::default()
        },
        docker_config_dir: docker_config_dir.map(Path::to_path_buf),
        registry_timeout: Duration::from_secs(10),
        limits,
        ..VerifierConfig::default()
    })
    .expect("verifier")
}

/// A small image manifest.
fn manifest() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": testkit::sha256_digest(b"{}")},
        "layers": [],
    }))
    .expect("json")
}

/// `/v2/` answered 401 with a bearer challenge whose realm is `/token` on the same server.
fn challenge(request: &Request) -> Reply {
    Reply::Fixed {
        status: 401,
        content_type: "application/json",
        body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
    }
    .with_header(
        "WWW-Authenticate",
        format!(
            r#"Bearer realm="http://{}/token",service="loopback",scope="repository:team/app:pull""#,
            request.host
        ),
    )
}

/// A 401 answer, as a registry gives to a request without the right token.
fn unauthorized() -> Reply {
    Reply::Fixed {
        status: 401,
        content_type: "application/json",
        body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
    }
}

/// A registry challenging for a bearer token at its `/token` realm, answered by `token`; the
/// manifest of `team/app` (HEAD with its digest, GET) served to requests bearing [`TOKEN`].
fn token_registry(token: impl Fn() -> Reply + Send + Sync + 'static) -> Hostile {
    Hostile::serve(Arc::new(move |request: &Request| route(request, &token)))
}

/// The answers of [`token_registry`]: its challenge, `token` at the realm, and the manifest to
/// requests bearing [`TOKEN`].
fn route(request: &Request, token: &dyn Fn() -> Reply) -> Reply {
    if request.path == "/v2/" {
        challenge(request)
    } else if request.path.starts_with("/token") {
        token()
    } else if request.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        unauthorized()
    } else if request.path.contains("/manifests/") {
        let body = manifest();
        let digest = testkit::sha256_digest(&body);
        let body = if request.method == "HEAD" { Vec::new() } else { body };
        ok(OCI_IMAGE_MEDIA_TYPE, body).with_header("Docker-Content-Digest", digest)
    } else {
        unauthorized()
    }
}

/// The cap and setting of an over-cap refusal; panics on any other outcome.
fn over_cap<T: std::fmt::Debug>(outcome: Result<T, VerifyError>) -> (usize, &'static str) {
    match outcome {
        Err(VerifyError::OverCap(BoundedError::OverCap { cap, setting, .. })) => (cap, setting),
        other => panic!("expected an over-cap refusal, got {other:?}"),
    }
}

/// Asserts the server wrote little of what it would send (the time taken is printed, not
/// asserted).
fn little_written(server: &Hostile, started: Instant) {
    let written = server.written();
    let elapsed = started.elapsed();
    eprintln!("refused after {elapsed:?}, the server having written {written} bytes");
    assert!(
        written < WRITTEN_BOUND,
        "the server wrote {written} bytes: the answer was read past its cap"
    );
}

#[test]
fn an_endless_or_huge_token_answer_is_refused_at_its_cap() {
    let rt = runtime();
    for announced in [false, true] {
        let server = token_registry(move || {
            if announced {
                Reply::Announced {
                    length: 10 << 30,
                    fill: b' ',
                }
            } else {
                Reply::Endless {
                    status: 200,
                    content_type: "application/json",
                    start: br#"{"token":""#,
                    fill: b'a',
                }
            }
        });
        let host = server.host();
        let image = format!("{host}/team/app:v1");
        // `oci/v1/oci_manifest` and `oci/v1/manifest_digest`, as a policy asks them.
        let started = Instant::now();
        let outcome = rt.block_on(verifier(&host, DownloadLimits::default(), None).oci_manifest(&image));
        assert_eq!(over_cap(outcome).0, TOKEN_CAP, "announced: {announced}");
        little_written(&server, started);
        let outcome = rt.block_on(verifier(&host, DownloadLimits::default(), None).manifest_digest(&image));
        assert_eq!(over_cap(outcome).0, TOKEN_CAP, "announced: {announced}");
        little_written(&server, started);
        assert!(
            server.requests("/manifests/").is_empty(),
            "the registry was asked without a token"
        );
    }
}

#[test]
fn an_endless_error_answer_of_the_token_endpoint_is_read_only_for_its_message() {
    let server = token_registry(|| Reply::endless_error(401));
    let host = server.host();
    let image = format!("{host}/team/app:v1");
    let rt = runtime();
    let started = Instant::now();
    // The exchange failed: the requests go without a token, and the registry refuses them.
    let outcome = rt.block_on(verifier(&host, DownloadLimits::default(), None).oci_manifest(&image));
    assert!(
        matches!(outcome, Err(VerifyError::Registry(RegistryError::Denied { .. }))),
        "{outcome:?}"
    );
    little_written(&server, started);
    let outcome = rt.block_on(verifier(&host, DownloadLimits::default(), None).manifest_digest(&image));
    assert!(
        matches!(outcome, Err(VerifyError::Registry(RegistryError::Denied { .. }))),
        "{outcome:?}"
    );
    little_written(&server, started);
}

#[test]
fn a_registry_granting_a_bearer_token_is_read_with_it_and_asked_for_it_once() {
    for field in ["token", "access_token"] {
        let server = token_registry(move || ok("application/json", json!({ field: TOKEN }).to_string().into_bytes()));
        let host = server.host();
        let config = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            config.path().join("config.json"),
            json!({"auths": {host.clone(): {"username": "user", "password": "secret"}}}).to_string(),
        )
        .expect("config.json");
        let verifier = verifier(&host, DownloadLimits::default(), Some(config.path()));
        let image = format!("{host}/team/app:v1");
        let rt = runtime();
        let manifest_json: serde_json::Value = serde_json::from_slice(&manifest()).expect("json");
        let answered = rt.block_on(verifier.oci_manifest(&image)).expect("the manifest");
        assert_eq!(
            serde_json::to_value(&answered).expect("json")["config"],
            manifest_json["config"]
        );
        assert_eq!(
            rt.block_on(verifier.manifest_digest(&image)).expect("the digest"),
            testkit::sha256_digest(&manifest())
        );
        // Another tag of the repository: the token is reused (oci-client's `auth`, which each
        // capped read called, asked for one every time).
        rt.block_on(verifier.oci_manifest(&format!("{host}/team/app:v2")))
            .expect("the other manifest");
        let exchanges = server.requests("/token");
        assert_eq!(
            exchanges.len(),
            1,
            "one token exchange for the three look-ups: {exchanges:?}"
        );
        let exchange = &exchanges[0];
        assert!(
            exchange.path.contains("scope=repository%3Ateam%2Fapp%3Apull")
                && exchange.path.contains("service=loopback"),
            "{}",
            exchange.path
        );
        assert_eq!(
            exchange.authorization.as_deref(),
            Some("Basic dXNlcjpzZWNyZXQ="),
            "the credentials go to the realm"
        );
        for request in server.requests("/manifests/") {
            assert_eq!(request.authorization.as_deref(), Some(&*format!("Bearer {TOKEN}")));
        }
    }
}

#[test]
fn a_token_answer_at_the_cap_is_read_and_one_byte_over_is_refused() {
    let rt = runtime();
    for size in [TOKEN_CAP, TOKEN_CAP + 1] {
        // `{"token":"granted-token","padding":"…"}` of `size` bytes.
        let empty = json!({"token": TOKEN, "padding": ""}).to_string();
        let padding = "x".repeat(size - empty.len());
        let answer = json!({"token": TOKEN, "padding": padding}).to_string().into_bytes();
        assert_eq!(answer.len(), size);
        let server = token_registry(move || ok("application/json", answer.clone()));
        let host = server.host();
        let outcome = rt
            .block_on(verifier(&host, DownloadLimits::default(), None).manifest_digest(&format!("{host}/team/app:v1")));
        if size == TOKEN_CAP {
            assert_eq!(outcome.expect("the digest"), testkit::sha256_digest(&manifest()));
        } else {
            assert_eq!(over_cap(outcome).0, TOKEN_CAP);
        }
    }
}

/// A registry without token auth whose manifest `HEAD` carries no digest header, its `GET`
/// answered by `get`.
fn headerless_registry(get: impl Fn() -> Reply + Send + Sync + 'static) -> Hostile {
    Hostile::serve(Arc::new(move |request: &Request| {
        if request.path.contains("/manifests/") {
            if request.method == "HEAD" {
                ok(OCI_IMAGE_MEDIA_TYPE, Vec::new())
            } else {
                get()
            }
        } else {
            ok("application/json", b"{}".to_vec())
        }
    }))
}

#[test]
fn a_digest_read_from_an_endless_or_huge_manifest_is_refused_at_the_manifest_cap() {
    let cap = 64 * 1024;
    let limits = DownloadLimits {
        max_manifest_bytes: cap,
        ..DownloadLimits::default()
    };
    let rt = runtime();
    for announced in [false, true] {
        let server = headerless_registry(move || {
            if announced {
                Reply::Announced {
                    length: 10 << 30,
                    fill: b' ',
                }
            } else {
                Reply::endless_whitespace()
            }
        });
        let host = server.host();
        let started = Instant::now();
        let outcome = rt.block_on(verifier(&host, limits, None).manifest_digest(&format!("{host}/team/app:v1")));
        assert_eq!(over_cap(outcome), (cap, MANIFEST_SETTING), "announced: {announced}");
        little_written(&server, started);
        assert_eq!(server.requests("/manifests/").len(), 2, "a HEAD, then a GET");
    }
}

#[test]
fn a_digest_without_header_is_the_body_s_up_to_the_cap_and_a_pinned_digest_is_checked() {
    let rt = runtime();
    let body = manifest();
    let digest = testkit::sha256_digest(&body);
    let server = headerless_registry({
        let body = body.clone();
        move || ok(OCI_IMAGE_MEDIA_TYPE, body.clone())
    });
    let host = server.host();
    let limits = |max_manifest_bytes| DownloadLimits {
        max_manifest_bytes,
        ..DownloadLimits::default()
    };
    let image = format!("{host}/team/app:v1");
    assert_eq!(
        rt.block_on(verifier(&host, limits(body.len()), None).manifest_digest(&image))
            .expect("the digest"),
        digest
    );
    assert_eq!(
        over_cap(rt.block_on(verifier(&host, limits(body.len() - 1), None).manifest_digest(&image))),
        (body.len() - 1, MANIFEST_SETTING)
    );
    // Pinned to its own digest, it is answered; pinned to another, refused.
    let pinned = format!("{host}/team/app@{digest}");
    assert_eq!(
        rt.block_on(verifier(&host, limits(body.len()), None).manifest_digest(&pinned))
            .expect("the digest"),
        digest
    );
    let other = format!("{host}/team/app@{}", testkit::sha256_digest(b"another manifest"));
    let outcome = rt.block_on(verifier(&host, limits(body.len()), None).manifest_digest(&other));
    match outcome {
        Err(VerifyError::Registry(RegistryError::Malformed { reason, .. })) => {
            assert!(reason.contains("Invalid digest"), "{reason}")
        }
        other => panic!("expected the digest mismatch refused, got {other:?}"),
    }
}

/// A registry whose realm grants, for each request, a token naming the registry and the scope
/// asked (`<host>/<scope as in the query>`), and whose manifests answer only the token of their
/// own registry and repository.
fn scoped_token_registry() -> Hostile {
    Hostile::serve(Arc::new(|request: &Request| {
        if request.path == "/v2/" {
            return challenge(request);
        }
        if request.path.starts_with("/token") {
            let scope = request
                .path
                .split(['?', '&'])
                .find_map(|pair| pair.strip_prefix("scope="))
                .unwrap_or_default();
            let token = format!("{}/{scope}", request.host);
            return ok("application/json", json!({ "token": token }).to_string().into_bytes());
        }
        let Some(repository) = request
            .path
            .strip_prefix("/v2/")
            .and_then(|rest| rest.split_once("/manifests/"))
            .map(|(repository, _)| repository)
        else {
            return unauthorized();
        };
        let expected = format!(
            "Bearer {}/repository%3A{}%3Apull",
            request.host,
            repository.replace('/', "%2F")
        );
        if request.authorization.as_deref() != Some(&expected) {
            return unauthorized();
        }
        let body = manifest();
        let digest = testkit::sha256_digest(&body);
        let body = if request.method == "HEAD" { Vec::new() } else { body };
        ok(OCI_IMAGE_MEDIA_TYPE, body).with_header("Docker-Content-Digest", digest)
    }))
}

#[test]
fn a_kept_token_serves_only_its_own_registry_and_repository() {
    let first = scoped_token_registry();
    let second = scoped_token_registry();
    let (a, b) = (first.host(), second.host());
    let verifier = Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![a.clone(), b.clone()],
            ..Sources::default()
        },
        registry_timeout: Duration::from_secs(10),
        ..VerifierConfig::default()
    })
    .expect("verifier");
    let rt = runtime();
    // Each look-up is answered only with its own registry's token for its own repository: one
    // repository's (or registry's) kept token sent elsewhere would be refused.
    for image in [
        format!("{a}/team/app:v1"),
        format!("{a}/team/other:v1"),
        format!("{b}/team/app:v1"),
        format!("{a}/team/app:v2"),
        format!("{b}/team/other:v1"),
    ] {
        rt.block_on(verifier.manifest_digest(&image))
            .unwrap_or_else(|e| panic!("{image}: {e:?}"));
    }
    // One exchange per registry and repository, each for its own scope.
    let scopes = |server: &Hostile| {
        let mut scopes: Vec<String> = server.requests("/token").into_iter().map(|r| r.path).collect();
        scopes.sort();
        scopes
    };
    let expected = [
        "/token?scope=repository%3Ateam%2Fapp%3Apull&service=loopback",
        "/token?scope=repository%3Ateam%2Fother%3Apull&service=loopback",
    ];
    assert_eq!(scopes(&first), expected);
    assert_eq!(scopes(&second), expected);
    for (server, host) in [(&first, &a), (&second, &b)] {
        for request in server.requests("/manifests/") {
            let bearer = request.authorization.expect("a token");
            assert!(
                bearer.starts_with(&format!("Bearer {host}/")),
                "{bearer} sent to {host}"
            );
        }
    }
}

#[test]
fn a_token_said_to_expire_within_seconds_is_not_kept() {
    let server = token_registry(|| {
        ok(
            "application/json",
            json!({"token": TOKEN, "expires_in": 5}).to_string().into_bytes(),
        )
    });
    let host = server.host();
    let verifier = verifier(&host, DownloadLimits::default(), None);
    let rt = runtime();
    for tag in ["v1", "v2", "v3"] {
        rt.block_on(verifier.manifest_digest(&format!("{host}/team/app:{tag}")))
            .expect("the digest");
    }
    assert_eq!(server.requests("/token").len(), 3, "one exchange per look-up");
}

#[test]
fn a_v2_failing_without_a_challenge_does_not_leave_the_repository_without_its_token() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let probes = Arc::new(AtomicUsize::new(0));
    let server = Hostile::serve(Arc::new({
        let probes = Arc::clone(&probes);
        move |request: &Request| {
            // The first `/v2/` fails as a proxy in front of a restarting registry would.
            if request.path == "/v2/" && probes.fetch_add(1, Ordering::SeqCst) == 0 {
                return Reply::Fixed {
                    status: 502,
                    content_type: "text/plain",
                    body: b"bad gateway".to_vec(),
                };
            }
            token_route(request)
        }
    }));
    let host = server.host();
    let verifier = verifier(&host, DownloadLimits::default(), None);
    let rt = runtime();
    let outcome = rt.block_on(verifier.manifest_digest(&format!("{host}/team/app:v1")));
    assert!(
        matches!(outcome, Err(VerifyError::Registry(RegistryError::Denied { .. }))),
        "{outcome:?}"
    );
    // The registry is back: the next look-up asks for a token again and is answered.
    assert_eq!(
        rt.block_on(verifier.manifest_digest(&format!("{host}/team/app:v2")))
            .expect("the digest"),
        testkit::sha256_digest(&manifest())
    );
}

/// [`token_registry`]'s answers, its realm granting [`TOKEN`].
fn token_route(request: &Request) -> Reply {
    route(request, &|| {
        ok("application/json", json!({ "token": TOKEN }).to_string().into_bytes())
    })
}

#[test]
fn a_kept_token_the_registry_refuses_is_exchanged_anew() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let issued = Arc::new(AtomicUsize::new(0));
    let revoked = Arc::new(AtomicBool::new(false));
    // The realm grants `t1`, `t2`, …; the registry answers the latest token, unless `t1` was
    // revoked.
    let server = Hostile::serve(Arc::new({
        let (issued, revoked) = (Arc::clone(&issued), Arc::clone(&revoked));
        move |request: &Request| {
            if request.path == "/v2/" {
                return challenge(request);
            }
            if request.path.starts_with("/token") {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                return ok(
                    "application/json",
                    json!({ "token": format!("t{n}") }).to_string().into_bytes(),
                );
            }
            let n = issued.load(Ordering::SeqCst);
            let valid = request.authorization.as_deref() == Some(&format!("Bearer t{n}"))
                && !(n == 1 && revoked.load(Ordering::SeqCst));
            if !valid || !request.path.contains("/manifests/") {
                return unauthorized();
            }
            let body = manifest();
            let digest = testkit::sha256_digest(&body);
            let body = if request.method == "HEAD" { Vec::new() } else { body };
            ok(OCI_IMAGE_MEDIA_TYPE, body).with_header("Docker-Content-Digest", digest)
        }
    }));
    let host = server.host();
    let verifier = verifier(&host, DownloadLimits::default(), None);
    let rt = runtime();
    // `oci/v1/manifest_digest` (HEAD, then GET) and `oci/v1/oci_manifest` (GET) alike, each on
    // a repository of its own.
    for repository in ["team/app", "team/web"] {
        let lookup = |tag: &str| {
            let image = format!("{host}/{repository}:{tag}");
            if repository == "team/app" {
                rt.block_on(verifier.manifest_digest(&image)).map(|_| ())
            } else {
                rt.block_on(verifier.oci_manifest(&image)).map(|_| ())
            }
        };
        issued.store(0, Ordering::SeqCst);
        revoked.store(false, Ordering::SeqCst);
        lookup("v1").expect("answered with t1");
        revoked.store(true, Ordering::SeqCst);
        let refused = lookup("v2");
        assert!(
            matches!(refused, Err(VerifyError::Registry(RegistryError::Denied { .. }))),
            "the kept t1 refused: {refused:?}"
        );
        lookup("v3").expect("a new token asked for and answered");
        assert_eq!(issued.load(Ordering::SeqCst), 2, "{repository}");
    }
}
