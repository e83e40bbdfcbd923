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

/// The annotated policy pushed as `policies/cip:<tag>` to a fresh loopback registry, and an
/// empty store in a temporary cache directory.
struct Published {
    registry: Registry,
    sources: Sources,
    client: PolicyRegistry,
    /// The tag's `registry://` URI.
    uri: String,
    pushed: cip::artifact::PushedPolicy,
    cache: tempfile::TempDir,
    store: PolicyStore,
    rt: tokio::runtime::Runtime,
}

impl Published {
    fn new(tag: &str) -> Self {
        let registry = Registry::start().expect("registry starts");
        let (module, metadata) = annotated_policy();
        let sources = plain_http_sources(&registry);
        let client = PolicyRegistry::new(&sources, DockerCredentials::default());
        let uri = format!("registry://{}/policies/cip:{tag}", registry.host());
        let cache = tempfile::tempdir().expect("tempdir");
        let store = PolicyStore::at(cache.path().join("policies"));
        let rt = runtime();
        let pushed = rt
            .block_on(client.push(module, &uri, manifest_annotations(metadata)))
            .expect("push succeeds");
        Self {
            registry,
            sources,
            client,
            uri,
            pushed,
            cache,
            store,
            rt,
        }
    }
}

#[test]
fn policy_store_pulls_once_and_serves_pinned_references_offline() {
    let Published {
        mut registry,
        client,
        uri,
        pushed,
        store,
        rt,
        ..
    } = Published::new("v0.1.0");
    let (module, _) = annotated_policy();
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

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The files of a store's directory.
fn stored_files(store: &PolicyStore) -> Vec<std::ffi::OsString> {
    let mut files: Vec<_> = std::fs::read_dir(store.dir())
        .map(|dir| dir.map(|entry| entry.expect("entry").file_name()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// `load` of `uri` without signature check, run on a thread of its own and given 60 s: a store
/// that hangs `cip` (a FIFO opened for reading blocks until a writer comes) fails the test
/// instead of hanging the run.
fn load_bounded(
    store: &PolicyStore,
    sources: &Sources,
    uri: &str,
) -> Result<cip::artifact::LoadedModule, ArtifactError> {
    let (send, receive) = std::sync::mpsc::channel();
    let (store, sources, uri) = (store.clone(), sources.clone(), uri.to_owned());
    std::thread::spawn(move || {
        let client = PolicyRegistry::new(&sources, DockerCredentials::default());
        let _ = send.send(runtime().block_on(store.load(&uri, &client, None)));
    });
    receive
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the load returned within 60 s")
}

#[test]
fn a_store_another_user_can_write_is_neither_read_nor_written() {
    let Published {
        mut registry,
        client,
        uri,
        pushed,
        cache,
        store,
        rt,
        ..
    } = Published::new("v1");
    let (module, _) = annotated_policy();
    let kept = rt.block_on(store.fetch(&pushed.uri, &client)).expect("stored");
    let files = stored_files(&store);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        std::fs::metadata(&kept)
            .map(|m| std::os::unix::fs::MetadataExt::mode(&m) & 0o777)
            .expect("file"),
        0o600,
        "stored for this user alone"
    );

    // The directory above the store writable by others (not sticky): another user could have
    // replaced the store's files, or could point it elsewhere.
    chmod(cache.path(), 0o777);
    let loaded = rt
        .block_on(store.load(&uri, &client, None))
        .expect("pulled, not stored");
    assert!(loaded.bytes == *module, "the registry's module");
    assert_eq!(loaded.path, None, "not stored");
    assert_eq!(stored_files(&store), files, "nothing written");
    let error = rt.block_on(store.fetch(&uri, &client)).expect_err("`cip pull` refuses");
    assert!(matches!(error, ArtifactError::NotStored { .. }), "{error}");
    assert!(error.to_string().contains("nothing stored"), "{error}");
    // Not read either: without the registry, the pinned reference the store holds is not served.
    registry.stop().expect("registry stops");
    let error = rt
        .block_on(store.load(&pushed.uri, &client, None))
        .expect_err("the store is not read");
    assert!(matches!(error, ArtifactError::Registry(_)), "{error}");
    chmod(cache.path(), 0o700);
    let served = rt
        .block_on(store.load(&pushed.uri, &client, None))
        .expect("a private store is read again");
    assert!(served.bytes == *module);
    assert_eq!(served.path.as_deref(), Some(kept.as_path()));
}

#[test]
fn stored_files_that_could_hang_flood_or_redirect_cip_are_refused() {
    // The registry stays up (held by `_registry`): a refused file must not be pulled over.
    let Published {
        registry: _registry,
        sources,
        client,
        pushed,
        store,
        rt,
        ..
    } = Published::new("v1");
    let module_path = rt.block_on(store.fetch(&pushed.uri, &client)).expect("stored");
    let manifest_path = store.manifest_path_of(&pushed.digest).expect("valid digest");
    let genuine_module = std::fs::read(&module_path).expect("module");
    let genuine_manifest = std::fs::read(&manifest_path).expect("manifest");
    let restore = || {
        for (path, bytes) in [(&module_path, &genuine_module), (&manifest_path, &genuine_manifest)] {
            let _ = std::fs::remove_file(path);
            std::fs::write(path, bytes).expect("restore");
            chmod(path, 0o600);
        }
    };
    let elsewhere = tempfile::tempdir().expect("tempdir");

    let fifo = |path: &Path| {
        std::fs::remove_file(path).expect("remove");
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success(), "mkfifo");
    };
    let sparse = |path: &Path, size: u64| {
        std::fs::remove_file(path).expect("remove");
        let file = std::fs::File::create(path).expect("create");
        file.set_len(size).expect("a sparse file");
        chmod(path, 0o600);
    };
    let link = |path: &Path| {
        let target = elsewhere.path().join("target");
        let _ = std::fs::remove_file(&target);
        std::fs::copy(path, &target).expect("copy");
        chmod(&target, 0o600);
        std::fs::remove_file(path).expect("remove");
        std::os::unix::fs::symlink(&target, path).expect("symlink");
    };
    let shared = |path: &Path| chmod(path, 0o666);
    type Break<'a> = &'a dyn Fn(&Path);
    let one_tebibyte = |path: &Path| sparse(path, 1 << 40);
    let cases: [(&str, &Path, Break, &str); 8] = [
        ("the module a FIFO", &module_path, &fifo, "is not a regular file"),
        ("the manifest a FIFO", &manifest_path, &fifo, "is not a regular file"),
        (
            "the module a sparse TiB",
            &module_path,
            &one_tebibyte,
            "over the cap of",
        ),
        (
            "the manifest a sparse TiB",
            &manifest_path,
            &one_tebibyte,
            "larger than the cap of",
        ),
        ("the module a link", &module_path, &link, "is a symbolic link"),
        ("the manifest a link", &manifest_path, &link, "is a symbolic link"),
        (
            "the module writable by others",
            &module_path,
            &shared,
            "writable by its group or by others",
        ),
        (
            "the manifest writable by others",
            &manifest_path,
            &shared,
            "writable by its group or by others",
        ),
    ];
    for (what, path, break_it, message) in cases {
        break_it(path);
        let error = load_bounded(&store, &sources, &pushed.uri).expect_err(what);
        assert!(error.to_string().contains(message), "{what}: {error}");
        // A stored module over the cap may be one pulled under a higher `--max-module-bytes`:
        // its error says how to raise the cap; the others say how to get rid of the file.
        if message != "over the cap of" {
            assert!(error.to_string().contains("delete it to pull again"), "{what}: {error}");
        }
        restore();
        let served = load_bounded(&store, &sources, &pushed.uri).expect("restored");
        assert!(served.bytes == genuine_module, "{what}: restored");
    }
}
