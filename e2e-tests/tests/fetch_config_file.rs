//! `spec.policy.fetchConfigFile` on multi-platform images, end to end: the module in `cip`
//! reads, from a real registry and through the stock `oci/v1/oci_manifest_config` and
//! `oci/v1/oci_manifest` capabilities, the config of every platform of a signed index, as
//! policy-controller does. A constraint on a platform other than the one `cip` runs on is
//! judged (it held vacuously when only the host's platform was read), and an index without the
//! host's platform (where `oci_manifest_config` alone fails) is read too.

mod common;

use std::collections::BTreeMap;

use common::{Host, pod};
use serde_json::{Value, json};
use testkit::{KeyPair, Registry, push_index, push_platform_image, sign_with_key};

/// Every platform of the image must run as 65532 (distroless' `nonroot`).
const NONROOT: &str = "config: \"linux/amd64\": config: User: \"65532\"\n\
                       config: \"linux/arm64\": config: User: \"65532\"\n\
                       config: \"linux/arm/v7\": config: User: \"65532\"\n";

/// One key authority on `registry_host` and [`NONROOT`] with `fetchConfigFile`.
fn settings(registry_host: &str, key: &KeyPair) -> Value {
    json!({"policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "nonroot-everywhere"},
        "spec": {
            "images": [{"glob": format!("{registry_host}/**")}],
            "authorities": [{"name": "release", "key": {"data": key.public_key_pem()}}],
            "policy": {"type": "cue", "fetchConfigFile": true, "data": NONROOT}
        }
    }]})
}

/// Pushes one image per `(platform, user)` and an index of them under `repo:tag`, signs the
/// index (as `cosign sign repo:tag` does) and returns its digest.
fn signed_index(host: &str, key: &KeyPair, repo: &str, tag: &str, platforms: &[(&str, &str)]) -> String {
    let mut manifests = Vec::new();
    for (platform, user) in platforms {
        let seed = format!("{repo}-{tag}-{platform}-{user}");
        let digest = push_platform_image(host, repo, &seed.replace('/', "-"), &seed, platform, user).expect("pushed");
        manifests.push((digest, *platform));
    }
    let entries: Vec<(&str, &str)> = manifests.iter().map(|(d, p)| (d.as_str(), *p)).collect();
    let index = push_index(host, repo, tag, &entries).expect("index pushed");
    sign_with_key(host, repo, &index, key, &BTreeMap::new()).expect("signed");
    index
}

#[test]
fn every_platform_of_a_signed_index_is_judged() {
    let registry = Registry::start().expect("registry");
    let host = registry.host();
    let key = KeyPair::ecdsa_p256().expect("key");
    let cip = Host::for_registry(&host);
    let s = settings(&host, &key);

    let good = signed_index(
        &host,
        &key,
        "app",
        "good",
        &[("linux/amd64", "65532"), ("linux/arm64", "65532")],
    );
    let image = format!("{host}/app:good");
    let response = cip.validate(&pod("default", &[&image]), &s);
    response.assert_admitted("every platform runs as 65532");
    assert_eq!(
        response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
        Some(&json!(format!("{image}@{good}"))),
        "pinned to the signed index: {response}"
    );

    // Signed by the right key, but its arm64 image runs as root: only the platform `cip` runs on
    // was judged before.
    signed_index(
        &host,
        &key,
        "app",
        "root-on-arm64",
        &[("linux/amd64", "65532"), ("linux/arm64", "0")],
    );
    let image = format!("{host}/app:root-on-arm64");
    let message = cip
        .validate(&pod("default", &[&image]), &s)
        .assert_refused("the arm64 image runs as root")
        .to_owned();
    assert!(
        message.contains(&format!(
            "image {image} denied by policy nonroot-everywhere: spec.policy (cue): config.\"linux/arm64\".config.User"
        )),
        "{message}"
    );

    // No image of the platform `cip` runs on: `oci_manifest_config` at the index fails there,
    // and the index is read.
    signed_index(
        &host,
        &key,
        "app",
        "arm-only",
        &[("linux/arm64", "65532"), ("linux/arm/v7", "65532")],
    );
    cip.validate(&pod("default", &[&format!("{host}/app:arm-only")]), &s)
        .assert_admitted("both arm images run as 65532");
    signed_index(
        &host,
        &key,
        "app",
        "root-on-armv7",
        &[("linux/arm64", "65532"), ("linux/arm/v7", "0")],
    );
    let image = format!("{host}/app:root-on-armv7");
    let message = cip
        .validate(&pod("default", &[&image]), &s)
        .assert_refused("the arm/v7 image runs as root")
        .to_owned();
    assert!(message.contains("config.\"linux/arm/v7\".config.User"), "{message}");
}
