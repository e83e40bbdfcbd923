//! The policy module's download (`cip run/verify/bench/provider/pull registry://…`) reads every
//! answer under a cap, before the module's signatures are checked.
//!
//! It used oci-client for the tag's digest and the module blob: `fetch_manifest_digest` reads
//! the whole manifest when the registry's `HEAD` answer carries no `Docker-Content-Digest`, its
//! token exchange (`_auth`, also reached from `pull_blob_stream`) reads the token answer whole,
//! and `pull_blob_stream` reads a blob's error answer whole into its message. A registry named
//! in a `registry://` module reference (a settings file, a `ClusterAdmissionPolicy`'s module)
//! made `cip` read hundreds of MiB before any check. Now the digest's `GET` is read at most the
//! policy manifest's cap (256 KiB), the token answer at most 64 KiB (through the registry
//! client's capped exchange, whose token serves the manifest and the blob alike), and a blob's
//! error answer for its first 4 KiB, quoted. The hostile loopback server counts the bytes of its
//! endless answers it manages to write: each refusal leaves it having written little.
//!
//! Controls: the digest of a tag answered without the header is the SHA-256 of the manifest, and
//! the module is then pulled and stored; a registry requiring a token is asked once for the
//! manifest and the blob; a module over `--max-module-bytes` (announced or streamed) is refused as
//! before, and a module that is not its digest too (now as a digest mismatch: oci-client's
//! verifying stream reported it as an I/O error of the download).

mod hostile_registry;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cip::artifact::{ArtifactError, PolicyRegistry, PolicyStore, parse_policy_uri};
use cip::registry::{DockerCredentials, ERROR_PREFIX_BYTES, MAX_TOKEN_BYTES, RegistryError, Sources};
use hostile_registry::{Hostile, Reply, Request, ok};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use serde_json::json;

/// Most bytes a refused answer may have had written (the cap, and what the socket buffers hold
/// besides); the hostile server sends 256 MiB to a client reading whole.
const WRITTEN_BOUND: usize = 2 * 1024 * 1024;
/// The token the realm grants.
const TOKEN: &str = "granted-token";
/// The policy module served.
const MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// A policy manifest whose one layer is `MODULE`.
fn policy_manifest() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {"mediaType": WASM_CONFIG_MEDIA_TYPE, "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": [{"mediaType": WASM_LAYER_MEDIA_TYPE, "size": MODULE.len(),
                    "digest": testkit::sha256_digest(MODULE)}],
    }))
    .expect("json")
}

/// How the hostile registry answers.
struct Answers {
    /// The token realm's answer to its `n`th request (from 0); `None`: no token auth.
    token: Option<Box<dyn Fn(usize) -> Reply + Send + Sync>>,
    /// Whether a `HEAD` of the manifest carries `Docker-Content-Digest`.
    digest_header: bool,
    /// The manifest `GET`.
    manifest: Box<dyn Fn() -> Reply + Send + Sync>,
    /// The blob `GET`.
    blob: Box<dyn Fn() -> Reply + Send + Sync>,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            token: None,
            digest_header: true,
            manifest: Box::new(|| {
                let body = policy_manifest();
                let digest = testkit::sha256_digest(&body);
                ok(OCI_IMAGE_MEDIA_TYPE, body).with_header("Docker-Content-Digest", digest)
            }),
            blob: Box::new(|| ok("application/octet-stream", MODULE.to_vec())),
        }
    }
}

/// A 401 answer, as a registry gives to a request without the right token.
fn unauthorized() -> Reply {
    Reply::Fixed {
        status: 401,
        content_type: "application/json",
        body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
    }
}

/// A hostile registry answering `team/policy` as `answers` says; its token requests counted.
fn registry(answers: Answers) -> (Hostile, Arc<AtomicUsize>) {
    let tokens = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&tokens);
    let server = Hostile::serve(Arc::new(move |request: &Request| {
        let wants_token = answers.token.is_some();
        if request.path == "/v2/" {
            return if wants_token {
                unauthorized().with_header(
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="http://{}/token",service="loopback""#, request.host),
                )
            } else {
                ok("application/json", b"{}".to_vec())
            };
        }
        if request.path.starts_with("/token") {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            return match &answers.token {
                Some(token) => token(n),
                None => unauthorized(),
            };
        }
        if wants_token && request.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
            return unauthorized();
        }
        if request.path.contains("/manifests/") {
            if request.method == "HEAD" {
                let reply = ok(OCI_IMAGE_MEDIA_TYPE, Vec::new());
                return if answers.digest_header {
                    reply.with_header("Docker-Content-Digest", testkit::sha256_digest(&policy_manifest()))
                } else {
                    reply
                };
            }
            return (answers.manifest)();
        }
        if request.path.contains("/blobs/") {
            return (answers.blob)();
        }
        unauthorized()
    }));
    (server, tokens)
}

/// A module puller reaching `server` over plain HTTP, anonymous.
fn puller(server: &Hostile) -> PolicyRegistry {
    let sources = Sources {
        insecure_sources: vec![server.host()],
        ..Sources::default()
    };
    PolicyRegistry::new(&sources, DockerCredentials::default())
}

fn tag_uri(server: &Hostile) -> String {
    format!("registry://{}/team/policy:v1", server.host())
}

fn pinned_uri(server: &Hostile) -> String {
    format!(
        "registry://{}/team/policy:v1@{}",
        server.host(),
        testkit::sha256_digest(&policy_manifest())
    )
}

/// A granted token answer.
fn granted() -> Reply {
    ok("application/json", format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes())
}

/// Asserts the server wrote little of what it would send.
fn little_written(server: &Hostile, started: Instant) {
    let written = server.written();
    eprintln!(
        "refused after {:?}, the server having written {written} bytes",
        started.elapsed()
    );
    assert!(
        written < WRITTEN_BOUND,
        "the server wrote {written} bytes: the answer was read past its cap"
    );
}

#[test]
fn a_tag_without_a_digest_header_is_resolved_reading_the_manifest_under_the_policy_cap() {
    let rt = runtime();
    for (what, manifest) in [
        (
            "endless",
            Box::new(Reply::endless_whitespace) as Box<dyn Fn() -> Reply + Send + Sync>,
        ),
        (
            "announced",
            Box::new(|| Reply::Announced {
                length: 600 * 1024 * 1024,
                fill: b' ',
            }),
        ),
    ] {
        let (server, _) = registry(Answers {
            digest_header: false,
            manifest,
            ..Answers::default()
        });
        let client = puller(&server);
        let reference = parse_policy_uri(&tag_uri(&server)).expect("uri");
        let started = Instant::now();
        let error = rt.block_on(client.digest(&reference)).expect_err(what);
        little_written(&server, started);
        assert!(
            matches!(error, ArtifactError::UnexpectedArtifact { .. }),
            "{what}: {error:?}"
        );
        assert!(
            error.to_string().contains("larger than the cap of 262144 bytes"),
            "{what}: {error}"
        );

        // The path of `cip run registry://…:tag` (the digest resolved before the signature check).
        let cache = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let error = rt
            .block_on(PolicyStore::at(cache.path().join("policies")).load(&tag_uri(&server), &client, None))
            .expect_err(what);
        little_written(&server, started);
        assert!(error.to_string().contains("larger than the cap"), "{what}: {error}");
    }
}

#[test]
fn a_tag_without_a_digest_header_resolves_to_its_manifest_and_pulls_control() {
    let (server, _) = registry(Answers {
        digest_header: false,
        manifest: Box::new(|| ok(OCI_IMAGE_MEDIA_TYPE, policy_manifest())),
        ..Answers::default()
    });
    let client = puller(&server);
    let rt = runtime();
    let reference = parse_policy_uri(&tag_uri(&server)).expect("uri");
    let digest = rt.block_on(client.digest(&reference)).expect("digest");
    assert_eq!(digest, testkit::sha256_digest(&policy_manifest()));
    let cache = tempfile::tempdir().expect("tempdir");
    let loaded = rt
        .block_on(PolicyStore::at(cache.path().join("policies")).load(&tag_uri(&server), &client, None))
        .expect("pulled");
    assert_eq!(loaded.bytes, MODULE);
    assert_eq!(loaded.digest.as_deref(), Some(digest.as_str()));
}

#[test]
fn the_token_answer_is_read_under_its_cap_for_the_digest_and_the_module() {
    let rt = runtime();
    // The digest look-up: the token answer is endless.
    let (server, _) = registry(Answers {
        token: Some(Box::new(|_| Reply::endless_whitespace())),
        ..Answers::default()
    });
    let client = puller(&server);
    let started = Instant::now();
    let error = rt
        .block_on(client.digest(&parse_policy_uri(&tag_uri(&server)).expect("uri")))
        .expect_err("an endless token answer");
    little_written(&server, started);
    assert!(
        error.to_string().contains(&format!(
            "token answer of {}/team/policy:v1 is larger than the cap of {MAX_TOKEN_BYTES} bytes",
            server.host()
        )),
        "{error}"
    );

    // The module: the first token serves the manifest and the blob; any later exchange (the one
    // oci-client's blob download made) would be answered without end.
    let (server, tokens) = registry(Answers {
        token: Some(Box::new(
            |n| if n == 0 { granted() } else { Reply::endless_whitespace() },
        )),
        ..Answers::default()
    });
    let client = puller(&server);
    let started = Instant::now();
    let pulled = rt
        .block_on(client.pull(&parse_policy_uri(&pinned_uri(&server)).expect("uri")))
        .expect("pulled with the first token");
    little_written(&server, started);
    assert_eq!(pulled.module, MODULE);
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        1,
        "one exchange for the manifest and the module"
    );
    assert_eq!(server.asked("/blobs/"), [true], "the blob request carries the token");
}

#[test]
fn a_blob_error_answer_is_quoted_for_its_first_bytes_only() {
    let rt = runtime();
    for (status, expect) in [(500, "answered 500"), (403, "denied access"), (404, "not found")] {
        let (server, _) = registry(Answers {
            blob: Box::new(move || Reply::endless_error(status)),
            ..Answers::default()
        });
        let client = puller(&server);
        let started = Instant::now();
        let error = rt
            .block_on(client.pull(&parse_policy_uri(&pinned_uri(&server)).expect("uri")))
            .expect_err("an endless error answer");
        little_written(&server, started);
        let message = error.to_string();
        assert!(message.contains(expect), "{status}: {message}");
        assert!(
            message.len() < 2 * ERROR_PREFIX_BYTES,
            "{status}: {} bytes of message",
            message.len()
        );
        if status != 404 {
            assert!(matches!(error, ArtifactError::Registry(_)), "{error:?}");
            assert!(
                message.contains("BLOB_UNKNOWN"),
                "the body's start is quoted: {message}"
            );
            assert!(
                message.contains(&format!("(first {ERROR_PREFIX_BYTES} bytes)")),
                "{message}"
            );
        } else {
            assert!(
                matches!(error, ArtifactError::Registry(RegistryError::NotFound { .. })),
                "{error:?}"
            );
        }
    }
}

#[test]
fn a_module_over_the_cap_or_not_its_digest_is_refused() {
    let rt = runtime();
    for (what, blob) in [
        (
            "announced",
            Box::new(|| Reply::Announced {
                length: 600 * 1024 * 1024,
                fill: 0,
            }) as Box<dyn Fn() -> Reply + Send + Sync>,
        ),
        ("endless", Box::new(Reply::endless_whitespace)),
    ] {
        let (server, _) = registry(Answers {
            blob,
            ..Answers::default()
        });
        let client = puller(&server).with_max_module_bytes(1024);
        let started = Instant::now();
        let error = rt
            .block_on(client.pull(&parse_policy_uri(&pinned_uri(&server)).expect("uri")))
            .expect_err(what);
        little_written(&server, started);
        assert!(
            matches!(error, ArtifactError::TooLarge { cap: 1024, .. }),
            "{what}: {error:?}"
        );
        assert!(error.to_string().contains("--max-module-bytes"), "{error}");
    }

    let (server, _) = registry(Answers {
        blob: Box::new(|| ok("application/octet-stream", b"\0asm\x01\0\0\x01".to_vec())),
        ..Answers::default()
    });
    let error = runtime()
        .block_on(puller(&server).pull(&parse_policy_uri(&pinned_uri(&server)).expect("uri")))
        .expect_err("another module");
    assert!(matches!(error, ArtifactError::DigestMismatch { .. }), "{error:?}");
}
