//! Registries behind TLS with a private CA (`sources.yaml` `source_authorities`), behind Basic
//! authentication (docker `config.json`), and multi-platform images.

mod verify_support;

use std::path::Path;
use std::time::Duration;

use cip::registry::Sources;
use cip::verify::{Verifier, VerifierConfig};
use oci_client::manifest::OciManifest;
use testkit::{KeyPair, Registry, RegistryOptions};
use verify_support::{failure, pub_key_request, verified};

/// A registry started with `options`, holding a key-signed `team/app:v1`.
fn signed_registry(options: RegistryOptions) -> (Registry, String, KeyPair) {
    let registry = Registry::start_with(options).expect("registry starts");
    let host = registry.host();
    let digest = testkit::push_image(&host, "team/app", "v1", "app-v1").expect("pushed");
    let key = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&host, "team/app", &digest, &key, &Default::default()).expect("signed");
    (registry, digest, key)
}

fn verifier(sources: Sources, docker_config_dir: Option<&Path>) -> Verifier {
    Verifier::new(VerifierConfig {
        sources,
        docker_config_dir: docker_config_dir.map(Path::to_path_buf),
        failure_ttl: Duration::ZERO,
        registry_timeout: Duration::from_secs(2),
        ..VerifierConfig::default()
    })
    .expect("verifier")
}

#[tokio::test]
async fn a_tls_registry_is_trusted_through_its_source_authority() {
    let (registry, digest, key) = signed_registry(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let host = registry.host();
    let ca_pem = registry.ca_pem().expect("TLS registry has a CA");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), ca_pem).expect("write CA");
    let sources_file = dir.path().join("sources.yaml");
    std::fs::write(
        &sources_file,
        format!("source_authorities:\n  \"{host}\":\n    - type: Path\n      path: ca.pem\n"),
    )
    .expect("write sources");
    let image = format!("{host}/team/app:v1");

    let trusted = verifier(Sources::from_file(&sources_file).expect("valid sources"), None);
    let verified_digest = verified(&trusted, pub_key_request(&image, &[key.public_key_pem()], None)).await;
    let untrusted = failure(
        &verifier(Sources::default(), None),
        pub_key_request(&image, &[key.public_key_pem()], None),
    )
    .await;

    assert_eq!(verified_digest, digest);
    assert!(
        untrusted.starts_with(&format!("registry {host} unreachable: ")),
        "{untrusted}"
    );
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
}

#[tokio::test]
async fn a_password_protected_registry_is_read_with_docker_config_credentials() {
    let (registry, digest, key) = signed_registry(RegistryOptions {
        basic_auth: true,
        ..RegistryOptions::default()
    });
    let host = registry.host();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.json"), registry.docker_config_json()).expect("write config");
    let sources = Sources {
        insecure_sources: vec![host.clone()],
        ..Sources::default()
    };
    let image = format!("{host}/team/app:v1");

    let with_credentials = verifier(sources.clone(), Some(dir.path()));
    let verified_digest = verified(
        &with_credentials,
        pub_key_request(&image, &[key.public_key_pem()], None),
    )
    .await;
    let anonymous = failure(
        &verifier(sources, None),
        pub_key_request(&image, &[key.public_key_pem()], None),
    )
    .await;

    assert_eq!(verified_digest, digest);
    assert!(
        anonymous.starts_with(&format!("registry {host} denied access to {image}")),
        "{anonymous}"
    );
}

#[tokio::test]
async fn an_unreadable_docker_config_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = VerifierConfig {
        docker_config_dir: Some(dir.path().to_path_buf()),
        ..VerifierConfig::default()
    };

    let error = Verifier::new(config).err().expect("no config.json in the directory");

    assert!(
        error.to_string().starts_with(&format!(
            "cannot read docker config {}",
            dir.path().join("config.json").display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_signed_multi_platform_index_verifies_and_is_served_as_an_index() {
    let registry = Registry::start().expect("registry");
    let host = registry.host();
    let amd64 = testkit::push_image(&host, "team/multi", "amd64", "multi-amd64").expect("pushed");
    let arm64 = testkit::push_image(&host, "team/multi", "arm64", "multi-arm64").expect("pushed");
    let index = testkit::push_index(
        &host,
        "team/multi",
        "v1",
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64")],
    )
    .expect("index pushed");
    let key = KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&host, "team/multi", &index, &key, &Default::default()).expect("signed");
    let verifier = verifier(
        Sources {
            insecure_sources: vec![host.clone()],
            ..Sources::default()
        },
        None,
    );
    let image = format!("{host}/team/multi:v1");

    let verified_digest = verified(&verifier, pub_key_request(&image, &[key.public_key_pem()], None)).await;
    let manifest = verifier.oci_manifest(&image).await.expect("index");

    assert_eq!(verified_digest, index);
    let OciManifest::ImageIndex(index_manifest) = manifest else {
        panic!("expected an image index");
    };
    assert_eq!(index_manifest.manifests.len(), 2);
}
