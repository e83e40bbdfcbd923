//! `kubewarden/oci/v1/oci_manifest_config` answered as policy-evaluator answers it, from a real
//! registry: its `ManifestAndConfigResponse` (`callback_handler/oci.rs`) holds oci-client's
//! `OciImageManifest`, the manifest digest and the config blob parsed as a `serde_json::Value`
//! (policy-fetcher's `Registry::manifest_and_config`), written with `serde_json::to_vec`. So an
//! artifact's `{}` config is answered as `{}`, and keys no image config has are kept; the SDK's
//! `OciManifestAndConfigResponse` (oci-spec's `ImageConfiguration`) fails the first and drops the
//! second.

mod capability_host;

use capability_host::Host;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use serde::Serialize;
use serde_json::{Value, json};

/// policy-evaluator's `ManifestAndConfigResponse`, field for field.
#[derive(Serialize)]
struct PolicyEvaluatorAnswer {
    manifest: OciImageManifest,
    digest: String,
    config: Value,
}

impl Host {
    /// `cip`'s answer bytes about `image`.
    fn ask(&self, image: &str) -> Vec<u8> {
        self.dispatch_oci("v1/oci_manifest_config", image)
            .unwrap_or_else(|e| panic!("oci_manifest_config of {image}: {e}"))
    }

    /// What policy-evaluator answers for the image manifest `repo@digest` whose config blob is
    /// `config`: the stored manifest read by oci-client, the config parsed as JSON.
    fn policy_evaluator_answer(&self, repo: &str, digest: &str, config: &[u8]) -> Vec<u8> {
        let body = self.stored_manifest(repo, digest, OCI_IMAGE_MEDIA_TYPE);
        serde_json::to_vec(&PolicyEvaluatorAnswer {
            manifest: serde_json::from_slice(&body).expect("an image manifest"),
            digest: digest.to_owned(),
            config: serde_json::from_slice(config).expect("a JSON config"),
        })
        .expect("json")
    }
}

/// The platform oci-client's default resolver picks at an index on this machine.
fn this_platform() -> String {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{architecture}", std::env::consts::OS)
}

fn config_of(answer: &[u8]) -> Value {
    let answer: Value = serde_json::from_slice(answer).expect("json");
    answer["config"].clone()
}

#[test]
fn an_artifact_whose_config_is_empty_is_answered_with_that_empty_config() {
    let host = Host::start();
    let h = host.host();
    let config = b"{}";
    let digest = testkit::push_artifact(
        &h,
        "team/chart",
        "v1",
        "chart",
        config,
        "application/vnd.oci.empty.v1+json",
    )
    .expect("artifact pushed");

    let answer = host.ask(&format!("{h}/team/chart@{digest}"));

    assert_eq!(config_of(&answer), json!({}), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        String::from_utf8_lossy(&answer),
        String::from_utf8_lossy(&host.policy_evaluator_answer("team/chart", &digest, config))
    );
}

#[test]
fn a_config_with_keys_no_image_config_has_is_answered_with_every_key() {
    let host = Host::start();
    let h = host.host();
    // A Docker-built image's config (keys oci-spec does not know) and a vendor's own key.
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"User": "65532", "Hostname": "builder", "ArgsEscaped": true},
        "container_config": {"Cmd": ["/bin/sh", "-c", "make"]},
        "docker_version": "24.0.7",
        "dev.example.build": {"pipeline": 42, "steps": ["lint", "test"]},
    }))
    .expect("json");
    let digest = testkit::push_artifact(
        &h,
        "team/app",
        "docker",
        "docker-built",
        &config,
        "application/vnd.oci.image.config.v1+json",
    )
    .expect("image pushed");

    let answer = host.ask(&format!("{h}/team/app@{digest}"));

    let answered = config_of(&answer);
    assert_eq!(answered["docker_version"], json!("24.0.7"), "{answered}");
    assert_eq!(answered["config"]["Hostname"], json!("builder"), "{answered}");
    assert_eq!(answered["dev.example.build"]["pipeline"], json!(42), "{answered}");
    assert_eq!(
        String::from_utf8_lossy(&answer),
        String::from_utf8_lossy(&host.policy_evaluator_answer("team/app", &digest, &config))
    );
}

#[test]
fn at_an_index_the_artifact_of_this_platform_is_answered_with_its_empty_config() {
    let host = Host::start();
    let h = host.host();
    let other = testkit::push_platform_image(&h, "team/multi", "other", "other", "plan9/mips64", "0").expect("pushed");
    let config = b"{}";
    let artifact = testkit::push_artifact(
        &h,
        "team/multi",
        "artifact",
        "artifact",
        config,
        "application/vnd.oci.empty.v1+json",
    )
    .expect("artifact pushed");
    let platform = this_platform();
    let index = testkit::push_index(
        &h,
        "team/multi",
        "v1",
        &[(&other, "plan9/mips64"), (&artifact, &platform)],
    )
    .expect("index pushed");

    // oci-client's platform resolver picks the entry of this machine's platform: the artifact,
    // answered under its own digest (not the index's).
    let answer = host.ask(&format!("{h}/team/multi@{index}"));

    let answered: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answered["digest"], json!(artifact), "{answered}");
    assert_eq!(answered["config"], json!({}), "{answered}");
    assert_eq!(
        String::from_utf8_lossy(&answer),
        String::from_utf8_lossy(&host.policy_evaluator_answer("team/multi", &artifact, config))
    );
}
