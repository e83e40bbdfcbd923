//! docker `config.json` keys with a repository path: each serves its own repositories.
//!
//! `reg/team-a` and `reg/team-b` used to collapse onto `reg`, the keys' sorted order picking one
//! credential for every repository of the host: team B's password was sent for team A's images
//! (and for any other repository of the host). Here a password-protected registry on 127.0.0.1
//! holds an image in `team-a`, `team-b`, `team-ab` and `other`; the config grants `team-a` the
//! registry's real password and `team-b` a wrong one, so which key a request used shows in its
//! outcome. Matching is the kubelet's: the key's path on segment boundaries, the longest
//! matching key winning; a key with a path is used for no repository outside it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::artifact::{PolicyRegistry, parse_policy_uri};
use cip::registry::{BoundedError, DockerCredentials, DownloadLimits, RegistryClient, RegistryError, Sources};
use testkit::{Registry, RegistryOptions};

const REPOSITORIES: [&str; 4] = ["team-a/app", "team-b/app", "team-ab/app", "other/app"];

/// A password-protected registry holding `<repository>:v1` for each of [`REPOSITORIES`].
fn protected_registry() -> Registry {
    let registry = Registry::start_with(RegistryOptions {
        basic_auth: true,
        ..RegistryOptions::default()
    })
    .expect("registry starts");
    for repository in REPOSITORIES {
        testkit::push_image(&registry.host(), repository, "v1", repository).expect("pushed");
    }
    registry
}

/// The registry's real `auth` value (base64 of `user:password`), from its own config.json.
fn real_auth(registry: &Registry) -> String {
    let config: serde_json::Value = serde_json::from_str(&registry.docker_config_json()).expect("json");
    config["auths"][registry.host()]["auth"]
        .as_str()
        .expect("the registry has credentials")
        .to_owned()
}

/// Credentials from a config.json whose `auths` are `entries` (key, `auth` value).
fn credentials(entries: &[(String, String)]) -> DockerCredentials {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, auth)| (key.clone(), serde_json::json!({ "auth": auth })))
        .collect();
    DockerCredentials::from_json(&serde_json::json!({ "auths": auths }).to_string()).expect("valid config")
}

/// Each repository's outcome through the registry client: `Ok` or the refusal.
fn outcomes(registry: &Registry, credentials: &DockerCredentials) -> Vec<(&'static str, Result<(), String>)> {
    let host = registry.host();
    let client = RegistryClient::new(
        Sources {
            insecure_sources: vec![host.clone()],
            ..Sources::default()
        },
        credentials.clone(),
        Duration::from_secs(5),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    REPOSITORIES
        .iter()
        .map(|repository| {
            let reference = RegistryClient::parse_reference(&format!("{host}/{repository}:v1")).expect("reference");
            let outcome = match runtime.block_on(client.digest_of(&reference, &DownloadLimits::default())) {
                Ok(_) => Ok(()),
                Err(BoundedError::Registry(denied @ RegistryError::Denied { .. })) => Err(denied.to_string()),
                Err(other) => panic!("{repository}: not a refusal: {other}"),
            };
            (*repository, outcome)
        })
        .collect()
}

fn wrong_auth() -> String {
    BASE64.encode("intruder:not-the-password")
}

#[test]
fn each_team_key_serves_its_own_repositories_only() {
    let registry = protected_registry();
    let host = registry.host();
    let credentials = credentials(&[
        (format!("{host}/team-a"), real_auth(&registry)),
        (format!("https://{host}/v2/team-b/"), wrong_auth()),
    ]);

    let outcomes = outcomes(&registry, &credentials);

    assert_eq!(outcomes[0], ("team-a/app", Ok(())), "team A's key serves team A");
    for (repository, outcome) in &outcomes[1..] {
        // team-b: its own (wrong) key, not team A's; team-ab and other: no key at all.
        let refused = outcome.as_ref().expect_err(repository);
        assert!(
            refused.starts_with(&format!("registry {host} denied access to {host}/{repository}:v1")),
            "{repository}: {refused}"
        );
    }
}

#[test]
fn the_longest_matching_key_wins_and_the_host_key_serves_the_rest() {
    let registry = protected_registry();
    let host = registry.host();
    let credentials = credentials(&[
        (host.clone(), real_auth(&registry)),
        (format!("{host}/team-b"), wrong_auth()),
    ]);

    let outcomes = outcomes(&registry, &credentials);

    for (repository, outcome) in &outcomes {
        if *repository == "team-b/app" {
            assert!(outcome.is_err(), "team B's own key, not the host's: {outcome:?}");
        } else {
            assert_eq!(outcome, &Ok(()), "{repository}: the host's key");
        }
    }
}

/// `cip pull` and `cip run registry://…` read with the repository's key too, the manifest and
/// the module alike; a fresh puller (as `cip pull` is) reads a password-protected registry.
#[test]
fn the_module_puller_uses_the_repositorys_key_too() {
    let registry = protected_registry();
    let host = registry.host();
    let sources = Sources {
        insecure_sources: vec![host.clone()],
        ..Sources::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let module = b"\0asm\x01\0\0\0".to_vec();
    let pusher = PolicyRegistry::new(&sources, credentials(&[(host.clone(), real_auth(&registry))]));
    for repository in ["team-a/policy", "team-b/policy", "other/policy"] {
        let uri = format!("registry://{host}/{repository}:v1");
        runtime
            .block_on(pusher.push(&module, &uri, Default::default()))
            .expect("pushed with the host's key");
    }
    let puller = PolicyRegistry::new(
        &sources,
        credentials(&[
            (format!("{host}/team-a"), real_auth(&registry)),
            (format!("{host}/team-b"), wrong_auth()),
        ]),
    );
    let reference = |repository: &str| parse_policy_uri(&format!("registry://{host}/{repository}:v1")).expect("uri");

    let pulled = runtime
        .block_on(puller.pull(&reference("team-a/policy")))
        .expect("team A's key serves team A");
    assert_eq!(pulled.module, module);
    runtime
        .block_on(puller.digest(&reference("team-a/policy")))
        .expect("team A's key serves team A");
    for repository in ["team-b/policy", "other/policy"] {
        let refused = runtime
            .block_on(puller.digest(&reference(repository)))
            .expect_err(repository);
        assert!(refused.to_string().contains("denied"), "{repository}: {refused}");
        let refused = runtime
            .block_on(puller.pull(&reference(repository)))
            .expect_err(repository);
        assert!(refused.to_string().contains("denied"), "{repository}: {refused}");
    }
}

/// A puller that pushed nothing before (as `cip pull` and `cip run registry://…` are) reads the
/// module of a password-protected registry: oci-client's blob download sends only a credential
/// stored in its client by an earlier call, which a pull never made.
#[test]
fn a_fresh_puller_reads_a_protected_registrys_module() {
    let registry = protected_registry();
    let host = registry.host();
    let sources = Sources {
        insecure_sources: vec![host.clone()],
        ..Sources::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let module = b"\0asm\x01\0\0\0".to_vec();
    let config = credentials(&[(host.clone(), real_auth(&registry))]);
    let uri = format!("registry://{host}/team-a/policy:v1");
    runtime
        .block_on(PolicyRegistry::new(&sources, config.clone()).push(&module, &uri, Default::default()))
        .expect("pushed");

    let pulled = runtime
        .block_on(PolicyRegistry::new(&sources, config).pull(&parse_policy_uri(&uri).expect("uri")))
        .expect("a fresh puller reads the module with the configured credentials");

    assert_eq!(pulled.module, module);
}
