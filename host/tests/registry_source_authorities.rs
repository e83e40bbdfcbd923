//! A CA listed in `sources.yaml` is trusted for the registry it is listed under, and no other.
//!
//! `source_authorities` used to be merged into the one client of every registry: the holder of
//! a development registry's CA key could then pass for `ghcr.io` or `docker.io`, collect the
//! docker-config credentials `cip` sends there and answer forged tags, manifests and configs.
//! Here a TLS registry on 127.0.0.1 has a certificate issued by a private CA (its names:
//! `localhost` and `127.0.0.1`); listed under another registry's `host:port` (the attacker's
//! case), under the same host without its port or with another port, or under its other name,
//! that CA does not make it trusted by the registry client (signature verification and the
//! `oci/v1/*` capabilities) nor by the module puller (`cip pull`, `cip run registry://…`).
//! Listed under its own `host:port` (host case ignored), it does.

mod artifact_support;

use std::path::Path;
use std::time::Duration;

use cip::artifact::{ArtifactError, PolicyRegistry, parse_policy_uri};
use cip::registry::{BoundedError, DockerCredentials, DownloadLimits, RegistryClient, RegistryError, Sources};
use testkit::{Registry, RegistryOptions};

/// A TLS registry with a private CA, holding `team/app:v1`; its pushed digest.
fn tls_registry() -> (Registry, String) {
    let registry = Registry::start_with(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    })
    .expect("registry starts");
    let digest = testkit::push_image(&registry.host(), "team/app", "v1", "app-v1").expect("pushed");
    (registry, digest)
}

/// Sources listing `ca_pem` under each of `hosts`, as an operator writes them.
fn sources_listing(ca_pem: &str, hosts: &[&str]) -> Sources {
    let indented: String = ca_pem.lines().map(|line| format!("        {line}\n")).collect();
    let mut yaml = String::from("source_authorities:\n");
    for host in hosts {
        yaml.push_str(&format!("  \"{host}\":\n    - type: Data\n      data: |\n{indented}"));
    }
    Sources::from_yaml(&yaml, Path::new(".")).expect("valid sources")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// `digest_of` through a registry client with `sources` and a 5 s bound.
fn digest_of(sources: &Sources, image: &str) -> Result<String, BoundedError> {
    let client = RegistryClient::new(sources.clone(), DockerCredentials::default(), Duration::from_secs(5));
    let reference = RegistryClient::parse_reference(image).expect("valid reference");
    runtime().block_on(client.digest_of(&reference, &DownloadLimits::default()))
}

/// The module puller's digest look-up of `registry://image` with `sources` (oci-client).
fn puller_digest(sources: &Sources, image: &str) -> Result<String, ArtifactError> {
    let client = PolicyRegistry::new(sources, DockerCredentials::default());
    let reference = parse_policy_uri(&format!("registry://{image}")).expect("valid uri");
    runtime().block_on(client.digest(&reference))
}

/// The refusal of an untrusted certificate, as both clients report it.
fn assert_untrusted(error: &str, registry: &str) {
    assert!(error.contains(registry), "{error}");
    assert!(error.contains("UnknownIssuer"), "not a refused certificate: {error}");
}

#[test]
fn a_ca_listed_for_another_registry_is_not_trusted() {
    let (registry, _) = tls_registry();
    let host = registry.host();
    let port = registry.addr().port();
    let ca = registry.ca_pem().expect("TLS registry has a CA");
    let image = format!("{host}/team/app:v1");

    for listed_under in [
        // The review's probe: the CA of a development registry.
        "dev-registry.internal:5443".to_owned(),
        // The same host without its port, or on another port.
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        // The registry's other name: another `host:port`, another registry.
        format!("localhost:{port}"),
        // Names containing the registry's.
        format!("127.0.0.10:{port}"),
        format!("1127.0.0.1:{port}"),
    ] {
        let sources = sources_listing(ca, &[&listed_under]);

        let refused = match digest_of(&sources, &image) {
            Err(BoundedError::Registry(error @ RegistryError::Unreachable { .. })) => error.to_string(),
            other => panic!("CA listed under {listed_under}: registry client answered {other:?}"),
        };
        assert_untrusted(&refused, &host);
        let refused = puller_digest(&sources, &image).expect_err(&listed_under).to_string();
        assert_untrusted(&refused, &host);
    }
}

#[test]
fn a_ca_listed_for_its_own_registry_is_trusted_there_only() {
    let (registry, digest) = tls_registry();
    let host = registry.host();
    let port = registry.addr().port();
    let ca = registry.ca_pem().expect("TLS registry has a CA");
    let by_address = format!("{host}/team/app:v1");
    let by_name = format!("localhost:{port}/team/app:v1");

    // Listed under its address: trusted at that address, not under its other name.
    let sources = sources_listing(ca, &[&host, "dev-registry.internal:5443"]);
    assert_eq!(digest_of(&sources, &by_address).expect("trusted registry"), digest);
    assert_eq!(puller_digest(&sources, &by_address).expect("trusted registry"), digest);
    let refused = match digest_of(&sources, &by_name) {
        Err(error) => error.to_string(),
        Ok(answer) => panic!("localhost:{port} trusted through a CA listed for {host}: {answer}"),
    };
    assert_untrusted(&refused, &format!("localhost:{port}"));

    // Listed under its name, written in capitals: host names are compared ignoring case.
    let sources = sources_listing(ca, &[&format!("LocalHost:{port}")]);
    assert_eq!(digest_of(&sources, &by_name).expect("trusted registry"), digest);
    assert_eq!(puller_digest(&sources, &by_name).expect("trusted registry"), digest);
    assert_untrusted(
        &digest_of(&sources, &by_address).expect_err("other name").to_string(),
        &host,
    );
}

#[test]
fn sigstore_client_configuration_carries_the_registrys_own_cas_only() {
    let (registry, _) = tls_registry();
    let host = registry.host();
    let ca = registry.ca_pem().expect("TLS registry has a CA");
    let sources = sources_listing(ca, &["dev-registry.internal:5443"]);
    let client = RegistryClient::new(sources, DockerCredentials::default(), Duration::from_secs(5));

    assert_eq!(
        client
            .sigstore_config("dev-registry.internal:5443")
            .extra_root_certificates
            .len(),
        1
    );
    assert!(client.sigstore_config(&host).extra_root_certificates.is_empty());
    assert!(client.sigstore_config("ghcr.io").extra_root_certificates.is_empty());
    assert!(
        client
            .sigstore_config("index.docker.io")
            .extra_root_certificates
            .is_empty()
    );
}

/// `cip pull` as an operator runs it: a CA listed under another registry leaves the TLS registry
/// untrusted, and the message says where its CA must be listed; listed there, the registry is
/// reached (and its container image refused as not a policy).
#[test]
fn cip_pull_names_where_a_registrys_ca_belongs() {
    let (registry, _) = tls_registry();
    let host = registry.host();
    let ca = registry.ca_pem().expect("TLS registry has a CA");
    let home = tempfile::tempdir().expect("tempdir");
    let indented: String = ca.lines().map(|line| format!("        {line}\n")).collect();
    let sources_for = |key: &str| {
        let file = home.path().join(format!("sources-{}.yaml", key.replace(':', "_")));
        std::fs::write(
            &file,
            format!("source_authorities:\n  \"{key}\":\n    - type: Data\n      data: |\n{indented}"),
        )
        .expect("write sources");
        file
    };
    let uri = format!("registry://{host}/team/app:v1");
    let pull = |sources: &Path| {
        let out = home.path().join("out.wasm");
        let output = artifact_support::cip(
            home.path(),
            &[
                "pull",
                &uri,
                "-o",
                out.to_str().expect("utf-8 path"),
                "--sources-path",
                sources.to_str().expect("utf-8 path"),
            ],
        );
        assert!(!output.status.success(), "a container image is not a policy");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let stderr = pull(&sources_for("dev-registry.internal:5443"));
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(
        stderr.contains(&format!("list that CA under source_authorities.\"{host}\"")),
        "{stderr}"
    );

    let stderr = pull(&sources_for(&host));
    assert!(!stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(stderr.contains("a policy has one"), "{stderr}");
}
