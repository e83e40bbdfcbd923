//! `cip push` / `cip pull` and the policy cache against a real loopback docker-registry.

mod artifact_support;

use std::path::Path;

use artifact_support::annotated_policy;
use cip::artifact::{
    ArtifactError, MAX_POLICY_MANIFEST_BYTES, PolicyRegistry, PolicyStore, manifest_annotations, parse_policy_uri,
    read_metadata,
};
use cip::registry::{DockerCredentials, RegistryError, Sources};
use oci_client::manifest::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use sha2::{Digest as _, Sha256};
use testkit::{Registry, RegistryOptions};

fn plain_http_sources(registry: &Registry) -> Sources {
    Sources::from_yaml(
        &format!("insecure_sources: [\"{}\"]\n", registry.host()),
        Path::new("."),
    )
    .expect("sources parse")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[test]
fn pushed_policy_pulls_back_identical_with_kubewarden_media_types() {
    let registry = Registry::start().expect("registry starts");
    let (module, metadata) = annotated_policy();
    let client = PolicyRegistry::new(&plain_http_sources(&registry), DockerCredentials::default());
    let uri = format!("registry://{}/policies/cluster-image-policy:v0.1.0", registry.host());
    let rt = runtime();

    let pushed = rt
        .block_on(client.push(module, &uri, manifest_annotations(metadata)))
        .expect("push succeeds");
    assert_eq!(pushed.uri, format!("{uri}@{}", pushed.digest));
    assert!(
        pushed.digest.starts_with("sha256:") && pushed.digest.len() == 71,
        "{}",
        pushed.digest
    );

    let pulled = rt
        .block_on(client.pull(&parse_policy_uri(&uri).expect("valid uri")))
        .expect("pull succeeds");
    assert!(pulled.module == *module, "pulled bytes differ from pushed bytes");
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(read_metadata(&pulled.module).expect("parses").as_ref(), Some(metadata));

    let manifest = pulled.manifest;
    assert_eq!(manifest.config.media_type, WASM_CONFIG_MEDIA_TYPE);
    assert_eq!(
        manifest.config.digest,
        sha256(b"{}"),
        "config blob is policy-fetcher's {{}}"
    );
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, WASM_LAYER_MEDIA_TYPE);
    assert_eq!(manifest.layers[0].digest, sha256(module));
    let annotations = manifest.annotations.expect("manifest annotations");
    assert_eq!(annotations["io.kubewarden.policy.title"], "cluster-image-policy");
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://github.com/cluster-image-policy/cluster-image-policy"
    );
    assert!(
        !annotations.contains_key("io.kubewarden.policy.usage"),
        "multi-line README must not become an OCI annotation"
    );

    // The immutable reference printed by push pulls the same module.
    let pinned = rt
        .block_on(client.pull(&parse_policy_uri(&pushed.uri).expect("valid pinned uri")))
        .expect("pull by digest succeeds");
    assert!(pinned.module == *module);
}

#[test]
fn private_registry_needs_the_docker_config_credentials() {
    let registry = Registry::start_with(RegistryOptions {
        basic_auth: true,
        ..Default::default()
    })
    .expect("registry starts");
    let (module, _) = annotated_policy();
    let sources = plain_http_sources(&registry);
    let uri = format!("registry://{}/private/cip:v1", registry.host());
    let rt = runtime();

    let anonymous = PolicyRegistry::new(&sources, DockerCredentials::default());
    let refused = rt
        .block_on(anonymous.push(module, &uri, Default::default()))
        .expect_err("anonymous push refused");
    assert!(
        matches!(refused, ArtifactError::Registry(RegistryError::Denied { .. })),
        "{refused}"
    );

    let config_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(config_dir.path().join("config.json"), registry.docker_config_json()).expect("write config");
    let credentials = DockerCredentials::from_path(config_dir.path()).expect("docker config parses");
    let client = PolicyRegistry::new(&sources, credentials);
    rt.block_on(client.push(module, &uri, Default::default()))
        .expect("push with credentials succeeds");
    let pulled = rt
        .block_on(client.pull(&parse_policy_uri(&uri).expect("valid uri")))
        .expect("pull with credentials succeeds");
    assert!(pulled.module == *module);
}

#[test]
fn tls_registry_is_trusted_through_source_authorities() {
    let registry = Registry::start_with(RegistryOptions {
        tls: true,
        ..Default::default()
    })
    .expect("registry starts");
    let ca = registry.ca_pem().expect("TLS registry has a CA");
    let indented: String = ca.lines().map(|line| format!("        {line}\n")).collect();
    let sources = Sources::from_yaml(
        &format!(
            "source_authorities:\n  \"{}\":\n    - type: Data\n      data: |\n{indented}",
            registry.host()
        ),
        Path::new("."),
    )
    .expect("sources parse");
    let (module, _) = annotated_policy();
    let uri = format!("registry://{}/tls/cip:v1", registry.host());
    let rt = runtime();

    let untrusting = PolicyRegistry::new(&Sources::default(), DockerCredentials::default());
    assert!(rt.block_on(untrusting.push(module, &uri, Default::default())).is_err());

    let client = PolicyRegistry::new(&sources, DockerCredentials::default());
    rt.block_on(client.push(module, &uri, Default::default()))
        .expect("push over TLS succeeds");
    let pulled = rt
        .block_on(client.pull(&parse_policy_uri(&uri).expect("valid uri")))
        .expect("pull over TLS succeeds");
    assert!(pulled.module == *module);
}

#[test]
fn policy_store_pulls_once_and_serves_pinned_references_offline() {
    let mut registry = Registry::start().expect("registry starts");
    let (module, metadata) = annotated_policy();
    let client = PolicyRegistry::new(&plain_http_sources(&registry), DockerCredentials::default());
    let uri = format!("registry://{}/policies/cip:v0.1.0", registry.host());
    let cache = tempfile::tempdir().expect("tempdir");
    let store = PolicyStore::at(cache.path().join("policies"));
    let rt = runtime();

    let pushed = rt
        .block_on(client.push(module, &uri, manifest_annotations(metadata)))
        .expect("push succeeds");
    let by_tag = rt.block_on(store.fetch(&uri, &client)).expect("fetch by tag");
    assert_eq!(by_tag, store.path_of(&pushed.digest).expect("valid digest"));
    assert!(std::fs::read(&by_tag).expect("cached file") == *module);
    let mut stored: Vec<_> = std::fs::read_dir(store.dir())
        .expect("cache dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    stored.sort();
    let manifest = store.manifest_path_of(&pushed.digest).expect("valid digest");
    assert_eq!(
        stored,
        vec![
            manifest.file_name().expect("name").to_owned(),
            by_tag.file_name().expect("name").to_owned()
        ],
        "only the manifest and the module are left in the cache"
    );

    registry.stop().expect("registry stops");
    let offline = rt
        .block_on(store.fetch(&pushed.uri, &client))
        .expect("pinned reference served from the cache without the registry");
    assert_eq!(offline, by_tag);
    let error = rt
        .block_on(store.fetch(&uri, &client))
        .expect_err("a tag needs the registry to be resolved");
    assert!(matches!(error, ArtifactError::Registry(_)), "{error}");
}

#[test]
fn a_missing_policy_is_reported_as_not_found() {
    let registry = Registry::start().expect("registry starts");
    let client = PolicyRegistry::new(&plain_http_sources(&registry), DockerCredentials::default());
    let uri = format!("registry://{}/policies/absent:v1", registry.host());
    let error = runtime()
        .block_on(client.pull(&parse_policy_uri(&uri).expect("valid uri")))
        .expect_err("nothing pushed");
    assert!(
        matches!(error, ArtifactError::Registry(RegistryError::NotFound { .. })),
        "{error}"
    );
}

#[test]
fn a_container_image_is_not_pulled_as_a_policy() {
    let registry = Registry::start().expect("registry starts");
    testkit::push_image(&registry.host(), "apps/web", "v1", "web").expect("image pushed");
    let client = PolicyRegistry::new(&plain_http_sources(&registry), DockerCredentials::default());
    let uri = format!("registry://{}/apps/web:v1", registry.host());
    let error = runtime()
        .block_on(client.pull(&parse_policy_uri(&uri).expect("valid uri")))
        .expect_err("an image is no policy");
    assert!(matches!(error, ArtifactError::UnexpectedArtifact { .. }), "{error}");
    assert!(error.to_string().contains("is not a policy artifact"), "{error}");
}

#[test]
fn a_policy_manifest_over_the_cap_is_refused_without_being_read_whole() {
    let registry = Registry::start().expect("registry starts");
    let (module, metadata) = annotated_policy();
    let client = PolicyRegistry::new(&plain_http_sources(&registry), DockerCredentials::default());
    let uri = format!("registry://{}/policies/bloated:v1", registry.host());
    let rt = runtime();
    let mut annotations = manifest_annotations(metadata);
    annotations.insert("padding".to_owned(), "x".repeat(MAX_POLICY_MANIFEST_BYTES));
    rt.block_on(client.push(module, &uri, annotations))
        .expect("the registry takes the bloated manifest");

    let error = rt
        .block_on(client.pull(&parse_policy_uri(&uri).expect("valid uri")))
        .expect_err("a manifest over the cap is refused");
    assert!(matches!(error, ArtifactError::UnexpectedArtifact { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&format!("larger than the cap of {MAX_POLICY_MANIFEST_BYTES} bytes")),
        "{error}"
    );
}
