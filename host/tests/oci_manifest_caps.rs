//! `kubewarden/oci/v1/oci_manifest` and `oci/v1/oci_manifest_config` read under caps.
//!
//! oci-client's `pull_manifest` and `pull_manifest_and_config` read a manifest, an index and a
//! config blob whole, with no size limit, so a registry (anyone who can push to one an image
//! names, or run one) could answer gigabytes and make `cip` and the Gatekeeper provider exhaust
//! memory. Both capabilities now read the manifest at most `--max-signature-manifest-bytes`
//! (`DownloadLimits::max_manifest_bytes`) and the config at most `--max-image-config-bytes`
//! (`DownloadLimits::max_config_bytes`), and fail past it with `BoundedError::OverCap` naming the
//! cap and the setting. On a real docker-registry (which sends `Content-Length`): a manifest or
//! config at the cap is answered, one byte over is refused. From a hostile loopback server that
//! streams without `Content-Length`: the read stops at the cap (the server manages to write
//! little of what it would send) and fails as over the cap, quickly.

mod capability_host;
mod hostile_registry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use capability_host::runtime;
use cip::capabilities::Capabilities;
use cip::registry::{BoundedError, DownloadLimits, Sources};
use cip::verify::{Verifier, VerifierConfig, VerifyError};
use hostile_registry::{ENDLESS_BUDGET, Hostile, Reply, ok};
use oci_client::manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use serde_json::json;

const MANIFEST_SETTING: &str = "--max-signature-manifest-bytes";
const CONFIG_SETTING: &str = "--max-image-config-bytes";

/// A verifier reaching `host` over plain HTTP with `limits`.
fn verifier(host: &str, limits: DownloadLimits) -> Verifier {
    Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![host.to_string()],
            ..Sources::default()
        },
        registry_timeout: Duration::from_secs(10),
        limits,
        ..VerifierConfig::default()
    })
    .expect("verifier")
}

/// The cap and setting of an over-cap refusal; panics on any other outcome.
fn over_cap<T: std::fmt::Debug>(outcome: Result<T, VerifyError>) -> (usize, &'static str) {
    match outcome {
        Err(VerifyError::OverCap(BoundedError::OverCap { cap, setting, .. })) => (cap, setting),
        other => panic!("expected an over-cap refusal, got {other:?}"),
    }
}

/// The size of the manifest `repo@digest` as the registry stores it.
fn stored_manifest_size(registry: &testkit::Registry, repo: &str, digest: &str) -> usize {
    capability_host::stored_manifest(
        &runtime(),
        registry,
        repo,
        digest,
        &format!("{OCI_IMAGE_MEDIA_TYPE}, {OCI_IMAGE_INDEX_MEDIA_TYPE}"),
    )
    .len()
}

#[test]
fn a_manifest_at_the_cap_is_answered_and_one_byte_over_is_refused_by_both_capabilities() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let h = registry.host();
    let digest = testkit::push_artifact(&h, "team/app", "v1", "app", b"{}", "application/vnd.oci.empty.v1+json")
        .expect("artifact pushed");
    let image = format!("{h}/team/app@{digest}");
    let size = stored_manifest_size(&registry, "team/app", &digest);
    let rt = runtime();

    let at_cap = verifier(
        &h,
        DownloadLimits {
            max_manifest_bytes: size,
            ..DownloadLimits::default()
        },
    );
    rt.block_on(at_cap.oci_manifest(&image)).expect("a manifest at the cap");
    let answer = rt
        .block_on(at_cap.oci_manifest_config(&image))
        .expect("a manifest at the cap");
    assert_eq!(answer.digest, digest);

    let over = Arc::new(verifier(
        &h,
        DownloadLimits {
            max_manifest_bytes: size - 1,
            ..DownloadLimits::default()
        },
    ));
    assert_eq!(
        over_cap(rt.block_on(over.oci_manifest(&image))),
        (size - 1, MANIFEST_SETTING)
    );
    assert_eq!(
        over_cap(rt.block_on(over.oci_manifest_config(&image))),
        (size - 1, MANIFEST_SETTING)
    );

    // Through the capabilities, the refusal names the cap and the setting.
    let capabilities = Capabilities::new(Arc::clone(&over), rt.handle().clone());
    let payload = serde_json::to_vec(&image).expect("json");
    for operation in ["v1/oci_manifest", "v1/oci_manifest_config"] {
        let error = capabilities
            .dispatch("test", None, "kubewarden", "oci", operation, &payload)
            .expect_err("over the cap");
        let message = error.to_string();
        assert!(
            message.contains(MANIFEST_SETTING) && message.contains(&format!("{} bytes", size - 1)),
            "{operation}: {message}"
        );
    }
}

#[test]
fn at_an_index_a_platform_manifest_over_the_cap_is_refused() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let h = registry.host();
    let artifact = testkit::push_artifact(&h, "team/multi", "a", "a", b"{}", "application/vnd.oci.empty.v1+json")
        .expect("artifact pushed");
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let platform = format!("{}/{architecture}", std::env::consts::OS);
    let index = testkit::push_index(&h, "team/multi", "v1", &[(&artifact, &platform)]).expect("index pushed");
    let index_size = stored_manifest_size(&registry, "team/multi", &index);
    let artifact_size = stored_manifest_size(&registry, "team/multi", &artifact);
    assert!(
        index_size < artifact_size,
        "index {index_size}, artifact {artifact_size}"
    );
    let rt = runtime();

    // The index fits, the manifest it resolves to does not.
    let over = verifier(
        &h,
        DownloadLimits {
            max_manifest_bytes: artifact_size - 1,
            ..DownloadLimits::default()
        },
    );
    let image = format!("{h}/team/multi@{index}");
    rt.block_on(over.oci_manifest(&image)).expect("the index fits");
    assert_eq!(
        over_cap(rt.block_on(over.oci_manifest_config(&image))),
        (artifact_size - 1, MANIFEST_SETTING)
    );
    let at_cap = verifier(
        &h,
        DownloadLimits {
            max_manifest_bytes: artifact_size,
            ..DownloadLimits::default()
        },
    );
    let answer = rt.block_on(at_cap.oci_manifest_config(&image)).expect("at the cap");
    assert_eq!(answer.digest, artifact);
}

#[test]
fn a_config_over_the_cap_is_refused_and_one_at_the_cap_is_answered() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let h = registry.host();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"padding": "x".repeat(4096)}},
    }))
    .expect("json");
    let digest = testkit::push_artifact(
        &h,
        "team/big",
        "v1",
        "big",
        &config,
        "application/vnd.oci.image.config.v1+json",
    )
    .expect("artifact pushed");
    let image = format!("{h}/team/big@{digest}");
    let rt = runtime();

    let at_cap = verifier(
        &h,
        DownloadLimits {
            max_config_bytes: config.len(),
            ..DownloadLimits::default()
        },
    );
    let answer = rt.block_on(at_cap.oci_manifest_config(&image)).expect("at the cap");
    assert_eq!(
        serde_json::to_vec(&answer.config).expect("json"),
        config,
        "the config as stored"
    );

    let over = verifier(
        &h,
        DownloadLimits {
            max_config_bytes: config.len() - 1,
            ..DownloadLimits::default()
        },
    );
    assert_eq!(
        over_cap(rt.block_on(over.oci_manifest_config(&image))),
        (config.len() - 1, CONFIG_SETTING)
    );
    // The manifest alone is no config.
    rt.block_on(over.oci_manifest(&image)).expect("manifest");
}

/// What the hostile server streams without end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endless {
    /// Every manifest.
    Manifest,
    /// Every blob (a small manifest is served, whose config declares a size, 2 bytes unless
    /// [`endless_registry_declaring`] says otherwise).
    Blob,
}

/// A loopback "registry" answering `/v2/` and streaming an endless body (no `Content-Length`,
/// delimited by closing the connection, which it never reaches unless the client reads
/// `ENDLESS_BUDGET`) for manifests or blobs; counts the bytes it manages to write.
fn endless_registry(endless: Endless) -> Hostile {
    endless_registry_declaring(endless, 2)
}

/// [`endless_registry`], its config descriptor declaring `config_size` bytes.
fn endless_registry_declaring(endless: Endless, config_size: i64) -> Hostile {
    Hostile::start(Arc::new(move |path: &str| {
        if path.contains("/manifests/") {
            if endless == Endless::Manifest {
                return Reply::endless_whitespace();
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": config_size,
                           "digest": testkit::sha256_digest(b"{}")},
                "layers": [],
            });
            ok(OCI_IMAGE_MEDIA_TYPE, serde_json::to_vec(&manifest).expect("json"))
        } else if path.contains("/blobs/") && endless == Endless::Blob {
            Reply::endless_whitespace()
        } else {
            ok("application/json", b"{}".to_vec())
        }
    }))
}

/// Asserts that `call` was refused over `setting`'s cap, quickly, the server having written
/// little of what it would send.
fn refused_while_streaming<T: std::fmt::Debug>(
    server: &Hostile,
    started: Instant,
    outcome: Result<T, VerifyError>,
    cap: usize,
    setting: &str,
) {
    let elapsed = started.elapsed();
    let written = server.written();
    assert_eq!(over_cap(outcome), (cap, setting));
    assert!(
        elapsed < Duration::from_secs(5),
        "refused after {elapsed:?} (the registry timeout is 10 s)"
    );
    assert!(
        written < ENDLESS_BUDGET / 4,
        "the server wrote {written} bytes: the body was read past the cap of {cap}"
    );
}

#[test]
fn an_endless_manifest_is_cut_at_the_cap_by_both_capabilities() {
    let cap = 64 * 1024;
    let limits = DownloadLimits {
        max_manifest_bytes: cap,
        ..DownloadLimits::default()
    };
    let rt = runtime();
    for config in [false, true] {
        let server = endless_registry(Endless::Manifest);
        let verifier = verifier(&server.host(), limits);
        let image = format!("{}/team/app:v1", server.host());
        let started = Instant::now();
        if config {
            let outcome = rt.block_on(verifier.oci_manifest_config(&image));
            refused_while_streaming(&server, started, outcome, cap, MANIFEST_SETTING);
        } else {
            let outcome = rt.block_on(verifier.oci_manifest(&image));
            refused_while_streaming(&server, started, outcome, cap, MANIFEST_SETTING);
        }
    }
}

#[test]
fn an_endless_config_blob_is_cut_at_the_cap() {
    let cap = 64 * 1024;
    // The config descriptor declares no size (`-1`, go-containerregistry's "unknown"): only
    // the cap stops the read.
    let server = endless_registry_declaring(Endless::Blob, -1);
    let verifier = verifier(
        &server.host(),
        DownloadLimits {
            max_config_bytes: cap,
            ..DownloadLimits::default()
        },
    );
    let image = format!("{}/team/app:v1", server.host());
    let rt = runtime();
    // The manifest is answered whole and small; its config declares 2 bytes.
    rt.block_on(verifier.oci_manifest(&image)).expect("the manifest");
    let started = Instant::now();
    let outcome = rt.block_on(verifier.oci_manifest_config(&image));
    refused_while_streaming(&server, started, outcome, cap, CONFIG_SETTING);
}

#[test]
fn an_endless_config_blob_is_cut_at_the_size_its_descriptor_declares() {
    let server = endless_registry(Endless::Blob);
    let verifier = verifier(&server.host(), DownloadLimits::default());
    let image = format!("{}/team/app:v1", server.host());
    let rt = runtime();
    // The manifest is answered whole and small; its config declares 2 bytes, and the registry
    // sends whitespace without end: refused once the body passes 2 bytes, as go-containerregistry
    // (cosign, policy-controller) reads a blob no further than its descriptor's size.
    rt.block_on(verifier.oci_manifest(&image)).expect("the manifest");
    let refused = rt
        .block_on(verifier.oci_manifest_config(&image))
        .expect_err("a config longer than its descriptor")
        .to_string();
    assert!(
        refused.contains(&format!(
            "blob {} is larger than the 2 bytes its descriptor declares",
            testkit::sha256_digest(b"{}")
        )),
        "{refused}"
    );
    let written = server.written();
    assert!(
        written < ENDLESS_BUDGET / 4,
        "the server wrote {written} bytes: the body was read past the 2 bytes declared"
    );
}

#[test]
fn a_config_descriptor_below_minus_one_or_at_the_cap_is_refused_as_lying() {
    let cap = 64 * 1024;
    let rt = runtime();
    // `-1` is go-containerregistry's "unknown"; `-5` is no size at all.
    let server = endless_registry_declaring(Endless::Blob, -5);
    let checker = verifier(&server.host(), DownloadLimits::default());
    let image = format!("{}/team/app:v1", server.host());
    rt.block_on(checker.oci_manifest(&image)).expect("the manifest");
    let refused = rt
        .block_on(checker.oci_manifest_config(&image))
        .expect_err("a negative size")
        .to_string();
    assert!(
        refused.contains(&format!(
            "blob {} has a descriptor declaring -5 bytes",
            testkit::sha256_digest(b"{}")
        )),
        "{refused}"
    );
    // Declared exactly at the cap, sent without end: the descriptor lies, whatever the cap.
    let cap_i64 = i64::try_from(cap).expect("cap");
    let server = endless_registry_declaring(Endless::Blob, cap_i64);
    let checker = verifier(
        &server.host(),
        DownloadLimits {
            max_config_bytes: cap,
            ..DownloadLimits::default()
        },
    );
    let image = format!("{}/team/app:v1", server.host());
    rt.block_on(checker.oci_manifest(&image)).expect("the manifest");
    let refused = rt
        .block_on(checker.oci_manifest_config(&image))
        .expect_err("a config longer than its descriptor")
        .to_string();
    assert!(
        refused.contains(&format!("is larger than the {cap} bytes its descriptor declares")),
        "{refused}"
    );
}
