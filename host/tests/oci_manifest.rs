//! `kubewarden/oci/v1/oci_manifest` answered as policy-evaluator answers it, from a real
//! registry. policy-evaluator (`crates/policy-evaluator/src/callback_handler/oci.rs`,
//! `get_oci_manifest_cached` → `Client::manifest`) asks policy-fetcher's `Registry::manifest`
//! (`crates/policy-fetcher/src/registry/mod.rs`), which is oci-client's `Client::pull_manifest`:
//! the four Docker/OCI manifest media types accepted, `schemaVersion` 2 and a top-level
//! `mediaType` (when present) among those four required, the body read into oci-client's untagged
//! `OciManifest` (`Image(OciImageManifest)` | `ImageIndex(OciImageIndex)`); the callback handler
//! writes that value with `serde_json::to_vec`.
//!
//! So the reference answer here is oci-client's `pull_manifest` itself, serialised the same way:
//! field names, order and set are oci-client's, keys it does not know are dropped, annotations
//! are written sorted (`BTreeMap`). `cip` read the SDK's `OciManifestResponse` (oci-spec types)
//! instead: `artifactType` before `config`, descriptors keeping `data` and `platform`, an
//! index keeping `subject`, annotations in a `HashMap`'s arbitrary order, a platform's
//! `os.version` and `os.features` dropped (oci-spec 0.10 spells them `os_version`,
//! `os_features`), and a descriptor oci-spec refuses (a digest that is not `algorithm:encoded`,
//! a negative size) failing the call where policy-server answers. The Docker schema 2 manifest
//! and manifest list below were answered alike before (oci-spec and oci-client write their
//! fields the same way); those tests keep it so.

mod capability_host;

use capability_host::Host;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};
use testkit::{ManifestFormat, push_image, push_image_as, sha256_digest};

/// The OCI empty descriptor's content and media type (`{}`), as `oras` writes an artifact's config.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

impl Host {
    /// `cip`'s answer about `image`: its bytes, or the error's text.
    fn ask(&self, image: &str) -> Result<Vec<u8>, String> {
        self.dispatch_oci("v1/oci_manifest", image)
    }

    /// What policy-evaluator answers about `image`: oci-client's `pull_manifest` (what
    /// policy-fetcher's `Registry::manifest` calls) written with `serde_json::to_vec` (what its
    /// callback handler does); the error's text when oci-client fails.
    fn policy_evaluator_answer(&self, image: &str) -> Result<Vec<u8>, String> {
        let reference: oci_client::Reference = image.parse().expect("reference");
        let (manifest, _digest) = self
            .runtime
            .block_on(client().pull_manifest(&reference, &RegistryAuth::Anonymous))
            .map_err(|e| e.to_string())?;
        Ok(serde_json::to_vec(&manifest).expect("json"))
    }

    /// Pushes `content` as a blob of `repo`; its descriptor, described as `media_type`.
    fn blob(&self, repo: &str, content: &[u8], media_type: &str) -> Value {
        let digest = sha256_digest(content);
        let reference: oci_client::Reference = format!("{}/{repo}:unused", self.host()).parse().expect("reference");
        self.runtime
            .block_on(client().push_blob(&reference, content.to_vec(), &digest))
            .expect("blob pushed");
        json!({"mediaType": media_type, "digest": digest, "size": content.len()})
    }

    /// Pushes `manifest` byte for byte under `repo:tag`, its `mediaType` as content type (any
    /// manifest docker-registry stores: a Docker manifest list, a `subject`, fields no client
    /// writes); returns the reference by digest.
    fn push(&self, repo: &str, tag: &str, manifest: &Value) -> String {
        let media_type = manifest["mediaType"].as_str().expect("mediaType");
        let body = serde_json::to_vec(manifest).expect("json");
        let digest = sha256_digest(&body);
        let reference: oci_client::Reference = format!("{}/{repo}:{tag}", self.host()).parse().expect("reference");
        self.runtime
            .block_on(client().push_manifest_raw(&reference, body, media_type.parse().expect("content type")))
            .expect("manifest pushed");
        format!("{}/{repo}@{digest}", self.host())
    }

    /// Asserts that `cip` answers `image` byte for byte as policy-evaluator does; returns the
    /// answer as JSON.
    fn assert_same_answer(&self, image: &str) -> Value {
        let expected = self.policy_evaluator_answer(image).expect("policy-evaluator answers");
        let answer = self
            .ask(image)
            .unwrap_or_else(|e| panic!("oci_manifest of {image}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&answer),
            String::from_utf8_lossy(&expected),
            "cip's answer (left) is not policy-evaluator's (right) for {image}"
        );
        serde_json::from_slice(&answer).expect("json")
    }
}

/// The descriptor of the manifest `digest` of `repo` (its stored bytes' size and media type).
fn manifest_descriptor(host: &Host, repo: &str, digest: &str) -> Value {
    let accept = [
        OCI_IMAGE_MEDIA_TYPE,
        OCI_IMAGE_INDEX_MEDIA_TYPE,
        IMAGE_MANIFEST_MEDIA_TYPE,
        IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    ]
    .join(", ");
    let body = host.stored_manifest(repo, digest, &accept);
    let stored: Value = serde_json::from_slice(&body).expect("json");
    json!({"mediaType": stored["mediaType"], "digest": digest, "size": body.len()})
}

/// An oci-client reaching the test registry over plain HTTP, as policy-fetcher builds one for
/// an insecure source.
fn client() -> oci_client::Client {
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
}

#[test]
fn an_image_manifest_with_subject_artifact_type_and_annotations_is_answered_as_oci_client_reads_it() {
    let host = Host::start();
    let h = host.host();
    let repo = "team/app";
    let subject = push_image(&h, repo, "v1", "the subject").expect("image pushed");
    let config = host.blob(
        repo,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        "application/vnd.oci.image.config.v1+json",
    );
    let mut first = host.blob(repo, b"first layer", IMAGE_LAYER_GZIP_MEDIA_TYPE);
    first["annotations"] = json!({
        "org.opencontainers.image.title": "first.tar.gz",
        "dev.example.zeta": "z",
        "dev.example.alpha": "a",
        "dev.example.mid": "m",
    });
    let second = host.blob(repo, b"second layer", IMAGE_LAYER_GZIP_MEDIA_TYPE);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": config,
        "layers": [first, second],
        "subject": manifest_descriptor(&host, repo, &subject),
        "annotations": {
            "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
            "dev.example.zeta": "z",
            "dev.example.alpha": "a",
            "dev.example.beta": "b",
            "dev.example.mid": "m",
        },
    });
    let image = host.push(repo, "sbom", &manifest);

    let answer = host.assert_same_answer(&image);

    assert_eq!(answer["subject"]["digest"], json!(subject), "{answer}");
    assert_eq!(answer["artifactType"], manifest["artifactType"], "{answer}");
    assert_eq!(answer["annotations"], manifest["annotations"], "{answer}");
    assert_eq!(
        answer["layers"][0]["annotations"], manifest["layers"][0]["annotations"],
        "{answer}"
    );
}

#[test]
fn a_docker_schema2_manifest_is_answered_as_oci_client_reads_it() {
    let host = Host::start();
    let h = host.host();
    let digest = push_image_as(&h, "team/docker", "v1", "docker", ManifestFormat::DockerV2).expect("pushed");

    let answer = host.assert_same_answer(&format!("{h}/team/docker@{digest}"));

    assert_eq!(answer["mediaType"], json!(IMAGE_MANIFEST_MEDIA_TYPE), "{answer}");
    assert_eq!(
        answer["config"]["mediaType"],
        json!(IMAGE_DOCKER_CONFIG_MEDIA_TYPE),
        "{answer}"
    );
}

#[test]
fn an_oci_index_is_answered_as_oci_client_reads_it() {
    let host = Host::start();
    let h = host.host();
    let repo = "team/multi";
    let linux = push_image(&h, repo, "linux", "linux").expect("pushed");
    let windows = push_image(&h, repo, "windows", "windows").expect("pushed");
    let sbom = testkit::push_artifact(&h, repo, "sbom", "an sbom", b"{}", EMPTY_MEDIA_TYPE).expect("pushed");
    let mut linux_entry = manifest_descriptor(&host, repo, &linux);
    linux_entry["platform"] = json!({"architecture": "arm", "os": "linux", "variant": "v7"});
    let mut windows_entry = manifest_descriptor(&host, repo, &windows);
    windows_entry["platform"] = json!({
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.1879",
        "os.features": ["win32k"],
    });
    windows_entry["annotations"] = json!({"dev.example.b": "2", "dev.example.a": "1", "dev.example.c": "3"});
    let mut sbom_entry = manifest_descriptor(&host, repo, &sbom);
    sbom_entry["artifactType"] = json!("application/vnd.example.sbom.v1+json");
    sbom_entry["platform"] = json!({"architecture": "unknown", "os": "unknown"});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": [linux_entry, windows_entry, sbom_entry],
        "subject": manifest_descriptor(&host, repo, &linux),
        "annotations": {"dev.example.zeta": "z", "dev.example.alpha": "a", "dev.example.mid": "m"},
    });
    let image = host.push(repo, "v1", &index);

    let answer = host.assert_same_answer(&image);

    let digests: Vec<&Value> = answer["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| &m["digest"])
        .collect();
    assert_eq!(digests, [&json!(linux), &json!(windows), &json!(sbom)], "{answer}");
    assert_eq!(
        answer["manifests"][1]["platform"]["os.version"],
        json!("10.0.17763.1879"),
        "{answer}"
    );
    assert_eq!(
        answer["manifests"][1]["platform"]["os.features"],
        json!(["win32k"]),
        "{answer}"
    );
    // oci-client's index has no `subject`: policy-evaluator does not answer it.
    assert_eq!(answer.get("subject"), None, "{answer}");
}

#[test]
fn a_docker_manifest_list_is_answered_as_oci_client_reads_it() {
    let host = Host::start();
    let h = host.host();
    let repo = "team/list";
    let amd64 = push_image_as(&h, repo, "amd64", "amd64", ManifestFormat::DockerV2).expect("pushed");
    let arm = push_image_as(&h, repo, "arm", "arm", ManifestFormat::DockerV2).expect("pushed");
    let mut amd64_entry = manifest_descriptor(&host, repo, &amd64);
    amd64_entry["platform"] = json!({"architecture": "amd64", "os": "linux", "features": ["sse4"]});
    let mut arm_entry = manifest_descriptor(&host, repo, &arm);
    arm_entry["platform"] = json!({"architecture": "arm", "os": "linux", "variant": "v6"});
    let list = json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        "manifests": [amd64_entry, arm_entry],
    });
    let image = host.push(repo, "v1", &list);

    let answer = host.assert_same_answer(&image);

    assert_eq!(answer["mediaType"], json!(IMAGE_MANIFEST_LIST_MEDIA_TYPE), "{answer}");
    assert_eq!(
        answer["manifests"][0]["mediaType"],
        json!(IMAGE_MANIFEST_MEDIA_TYPE),
        "{answer}"
    );
    assert_eq!(answer["manifests"][1]["platform"]["variant"], json!("v6"), "{answer}");
}

#[test]
fn an_artifact_manifest_with_an_empty_config_is_answered_as_oci_client_reads_it() {
    let host = Host::start();
    let repo = "team/chart";
    // As `oras push` writes it: the empty descriptor, with its content inline (`data`).
    let mut config = host.blob(repo, b"{}", EMPTY_MEDIA_TYPE);
    config["data"] = json!("e30=");
    let mut layer = host.blob(
        repo,
        b"apiVersion: v2\nname: chart\n",
        "application/vnd.example.chart.layer.v1",
    );
    layer["annotations"] = json!({"org.opencontainers.image.title": "Chart.yaml"});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "artifactType": "application/vnd.example.chart.v1",
        "config": config,
        "layers": [layer],
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    });
    let image = host.push(repo, "v1", &manifest);

    let answer = host.assert_same_answer(&image);

    assert_eq!(answer["config"]["mediaType"], json!(EMPTY_MEDIA_TYPE), "{answer}");
    assert_eq!(answer["config"]["digest"], json!(sha256_digest(b"{}")), "{answer}");
    // oci-client's descriptor has no `data`.
    assert_eq!(answer["config"].get("data"), None, "{answer}");
}

/// A `subject` the registry stores as is (docker-registry checks the blobs and manifests a
/// manifest lists, not its `subject`) with a digest that is not `algorithm:encoded`: oci-client
/// reads a digest as a string, oci-spec refuses it. policy-evaluator answers the manifest;
/// `cip` failed the call, so the module's binding check and `fetchConfigFile` failed under
/// `cip` only.
#[test]
fn a_subject_oci_spec_refuses_does_not_fail_the_call() {
    let host = Host::start();
    let repo = "team/odd";
    let config = host.blob(repo, b"{}", EMPTY_MEDIA_TYPE);
    let layer = host.blob(repo, b"payload", "application/octet-stream");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": "sha256:not-a-digest", "size": -1},
    });
    let image = host.push(repo, "v1", &manifest);

    let answer = host.assert_same_answer(&image);

    assert_eq!(answer["layers"][0]["digest"], layer["digest"], "{answer}");
    assert_eq!(answer["subject"]["digest"], json!("sha256:not-a-digest"), "{answer}");
}

/// What neither reads: a layer without `mediaType` (required by oci-client's descriptor as by
/// oci-spec's). Both fail; `cip`'s failure is the registry's malformed answer.
#[test]
fn a_descriptor_without_a_media_type_fails_under_both() {
    let host = Host::start();
    let repo = "team/broken";
    let config = host.blob(repo, b"{}", EMPTY_MEDIA_TYPE);
    let layer = host.blob(repo, b"payload", "application/octet-stream");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": config,
        "layers": [{"digest": layer["digest"], "size": layer["size"]}],
    });
    let image = host.push(repo, "v1", &manifest);

    let expected = host.policy_evaluator_answer(&image);
    assert!(expected.is_err(), "oci-client reads it: {expected:?}");
    let error = host.ask(&image).expect_err("cip answered");
    assert!(error.contains("unexpected answer from registry"), "{error}");
}
