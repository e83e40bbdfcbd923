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
use testkit::{KeyPair, Registry, push_artifact, push_index, push_platform_image, sign_with_key};

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

/// The media type of an OCI image config.
const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A registry, a key, `cip` on the registry and [`settings`] for them.
struct World {
    _registry: Registry,
    host: String,
    key: KeyPair,
    cip: Host,
    s: Value,
}

impl World {
    fn start() -> Self {
        let registry = Registry::start().expect("registry");
        let host = registry.host();
        let key = KeyPair::ecdsa_p256().expect("key");
        Self {
            cip: Host::for_registry(&host),
            s: settings(&host, &key),
            _registry: registry,
            host,
            key,
        }
    }
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
    let World {
        _registry,
        host,
        key,
        cip,
        s,
    } = World::start();

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

/// Only a `static` authority passes (nothing signed): the configs are read at the digest the
/// tag names, and the image is pinned to it, so that the node runs the configs the policy
/// judged. Before, the tag was read and left as written: a tag pushed again after the admission
/// ran an image nobody judged. The tag moved to a root image afterwards changes nothing for the
/// admitted Pod, and is judged (and refused) at the next admission.
#[test]
fn a_static_pass_pins_the_image_whose_configs_were_judged() {
    let World {
        _registry, host, cip, ..
    } = World::start();
    let mut s = settings(&host, &KeyPair::ecdsa_p256().expect("key"));
    s["policies"][0]["spec"]["authorities"] = json!([{"name": "any", "static": {"action": "pass"}}]);
    let nonroot = [("linux/amd64", "65532"), ("linux/arm64", "65532")];
    let mut entries = Vec::new();
    for (platform, user) in nonroot {
        let seed = format!("static-{platform}-{user}");
        let digest = push_platform_image(&host, "app", &seed.replace('/', "-"), &seed, platform, user).expect("pushed");
        entries.push((digest, platform));
    }
    let listed: Vec<(&str, &str)> = entries.iter().map(|(d, p)| (d.as_str(), *p)).collect();
    let index = push_index(&host, "app", "static", &listed).expect("index pushed");

    let image = format!("{host}/app:static");
    let response = cip.validate(&pod("default", &[&image]), &s);
    response.assert_admitted("every platform runs as 65532");
    assert_eq!(
        response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
        Some(&json!(format!("{image}@{index}"))),
        "pinned to the index judged: {response}"
    );

    // The tag pushed again: a host that has not cached the tag's digest (a new `cip`; stock
    // hosts keep it for 60 s) reads the new image.
    let root = push_platform_image(&host, "app", "static", "static-root", "linux/amd64", "0").expect("pushed");
    let cip = Host::for_registry(&host);
    let message = cip
        .validate(&pod("default", &[&image]), &s)
        .assert_refused("the tag now names a root image")
        .to_owned();
    assert!(message.contains("config.\"linux/amd64\".config.User"), "{message}");
    let pinned = format!("{image}@{index}");
    cip.validate(&pod("default", &[&pinned]), &s)
        .assert_admitted("the pinned index is still the one judged");
    assert_ne!(root, index);
}

/// An index may list an artifact beside its images (an SBOM, a chart, anything pushed with
/// `oras`): its config is often `{}` (the OCI empty descriptor), with no `os` or `architecture`.
/// policy-evaluator answers `oci_manifest_config` with the config blob as JSON, whatever it
/// holds, so under policy-server the artifact's config is read as `{}` (keyed `""`, as
/// policy-controller keys a config without `os`) and the images' constraints decide. `cip`
/// answered it only when it decoded as an OCI image config: the policy failed.
#[test]
fn an_artifact_with_an_empty_config_in_an_index_is_read_as_under_policy_server() {
    let World {
        _registry,
        host,
        key,
        cip,
        s,
    } = World::start();

    let mut manifests = Vec::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let seed = format!("with-artifact-{platform}");
        let digest =
            push_platform_image(&host, "app", &seed.replace('/', "-"), &seed, platform, "65532").expect("pushed");
        manifests.push((digest, platform));
    }
    let artifact = push_artifact(
        &host,
        "app",
        "sbom",
        "an sbom",
        b"{}",
        "application/vnd.oci.empty.v1+json",
    )
    .expect("artifact pushed");
    manifests.push((artifact, "unknown/unknown"));
    let entries: Vec<(&str, &str)> = manifests.iter().map(|(d, p)| (d.as_str(), *p)).collect();
    let index = push_index(&host, "app", "with-artifact", &entries).expect("index pushed");
    sign_with_key(&host, "app", &index, &key, &BTreeMap::new()).expect("signed");

    let image = format!("{host}/app:with-artifact");
    let response = cip.validate(&pod("default", &[&image]), &s);
    response.assert_admitted("both images run as 65532; the artifact's `{}` config is read, as under policy-server");
    assert_eq!(
        response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
        Some(&json!(format!("{image}@{index}"))),
        "pinned to the signed index: {response}"
    );
}

/// One plain-HTTP request to the test registry (`Connection: close`): its status code and body.
/// For a manifest no testkit helper writes.
fn registry_request(host: &str, request: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).expect("registry reachable");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "{request}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .expect("request sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer read");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let status = std::str::from_utf8(&answer[..split])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    (status.expect("a status line"), answer[split + 4..].to_vec())
}

/// An index with a `subject` whose digest is not `algorithm:encoded` (docker-registry stores a
/// manifest's `subject` unchecked). policy-evaluator reads `oci/v1/oci_manifest` with
/// oci-client, whose descriptors hold the digest as a string, and answers it; `cip` decoded it
/// with oci-spec, which refuses such a digest, so `fetchConfigFile` failed under `cip` only.
#[test]
fn an_index_with_a_subject_oci_spec_refuses_is_read_as_under_policy_server() {
    let World {
        _registry,
        host,
        key,
        cip,
        s,
    } = World::start();

    let plain = signed_index(
        &host,
        &key,
        "app",
        "plain",
        &[("linux/amd64", "65532"), ("linux/arm64", "65532")],
    );
    let (status, body) = registry_request(
        &host,
        &format!("GET /v2/app/manifests/{plain} HTTP/1.1\r\nAccept: application/vnd.oci.image.index.v1+json"),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut index: Value = serde_json::from_slice(&body).expect("index");
    index["subject"] = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:not-a-digest",
        "size": 2,
    });
    let body = serde_json::to_vec(&index).expect("json");
    let (status, answer) = registry_request(
        &host,
        "PUT /v2/app/manifests/with-subject HTTP/1.1\r\nContent-Type: application/vnd.oci.image.index.v1+json",
        &body,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let digest = testkit::sha256_digest(&body);
    sign_with_key(&host, "app", &digest, &key, &BTreeMap::new()).expect("signed");

    let image = format!("{host}/app:with-subject");
    let response = cip.validate(&pod("default", &[&image]), &s);
    response.assert_admitted("both images run as 65532; the index is read as policy-evaluator reads it");
    assert_eq!(
        response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
        Some(&json!(format!("{image}@{digest}"))),
        "pinned to the signed index: {response}"
    );
}

/// A signed image whose config the JSON as written and Go read differently: Go (containerd,
/// CRI-O, policy-controller's go-containerregistry) matches keys without regard to case, merges
/// two objects under one key, and refuses a field of the wrong type. A policy must judge the
/// config the node runs, not the JSON as written: each of these ran as root and was admitted,
/// its `User: "65532"` holding vacuously over a config that had no `User` key.
#[test]
fn a_config_is_judged_as_the_runtime_reads_it() {
    let World {
        _registry,
        host,
        key,
        cip,
        s,
    } = World::start();

    let cases: [(&str, &str, Option<&str>); 5] = [
        (
            "nonroot",
            r#"{"architecture":"amd64","os":"linux","config":{"User":"65532"}}"#,
            None,
        ),
        // The runtime runs it as root (`User` is `0` for Go).
        (
            "lower-case",
            r#"{"architecture":"amd64","os":"linux","config":{"user":"0"}}"#,
            Some("config.\"linux/amd64\".config.User"),
        ),
        (
            "both-cases",
            r#"{"architecture":"amd64","os":"linux","config":{"User":"65532","user":"0"}}"#,
            Some("both name `config.User` for Go's encoding/json"),
        ),
        // Go merges both objects: `User` is `0`; serde_json keeps the second alone.
        (
            "twice",
            r#"{"architecture":"amd64","os":"linux","config":{"User":"0"},"config":{"Env":["A=1"]}}"#,
            Some("the key \"config\" appears twice in one object"),
        ),
        (
            "wrong-type",
            r#"{"architecture":"amd64","os":"linux","config":{"User":0}}"#,
            Some("`config.User` is a number, where Go's encoding/json (policy-controller) reads a string"),
        ),
    ];
    for (tag, config, refusal) in cases {
        let digest = push_artifact(&host, "app", tag, tag, config.as_bytes(), IMAGE_CONFIG).expect("pushed");
        sign_with_key(&host, "app", &digest, &key, &BTreeMap::new()).expect("signed");
        let image = format!("{host}/app:{tag}");
        let response = cip.validate(&pod("default", &[&image]), &s);
        match refusal {
            None => {
                response.assert_admitted(tag);
            }
            Some(reason) => {
                let message = response.assert_refused(tag);
                assert!(
                    message.contains(&format!("image {image} denied by policy nonroot-everywhere"))
                        && message.contains(reason),
                    "{tag}: {message}"
                );
            }
        }
    }
}

/// A signed image manifest naming a nonroot config under `config` and a root one under
/// `Config`, written after it: oci-client (serde) reads the first, Go (containerd, CRI-O,
/// policy-controller's go-containerregistry) the last. The policy judged the nonroot config of
/// an image that runs as root; the manifest is refused now, as Go and serde read it differently.
#[test]
fn a_manifest_naming_another_config_for_go_is_refused() {
    let World {
        _registry,
        host,
        key,
        cip,
        s,
    } = World::start();

    let nonroot = br#"{"architecture":"amd64","os":"linux","config":{"User":"65532"}}"#;
    let root = br#"{"architecture":"amd64","os":"linux","config":{"User":"0"}}"#;
    let nonroot_digest = push_artifact(&host, "app", "nonroot", "layer", nonroot, IMAGE_CONFIG).expect("pushed");
    push_artifact(&host, "app", "root", "layer", root, IMAGE_CONFIG).expect("pushed");
    let (status, body) = registry_request(
        &host,
        &format!(
            "GET /v2/app/manifests/{nonroot_digest} HTTP/1.1\r\nAccept: application/vnd.oci.image.manifest.v1+json"
        ),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).expect("utf-8");
    let root_config = json!({"mediaType": IMAGE_CONFIG, "size": root.len(), "digest": testkit::sha256_digest(root)});
    let two_configs = format!("{},\"Config\":{root_config}}}", text.trim_end().trim_end_matches('}'));
    let (status, answer) = registry_request(
        &host,
        "PUT /v2/app/manifests/two-configs HTTP/1.1\r\nContent-Type: application/vnd.oci.image.manifest.v1+json",
        two_configs.as_bytes(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let digest = testkit::sha256_digest(two_configs.as_bytes());
    sign_with_key(&host, "app", &digest, &key, &BTreeMap::new()).expect("signed");

    let image = format!("{host}/app:two-configs");
    let message = cip
        .validate(&pod("default", &[&image]), &s)
        .assert_refused("the node runs the root config")
        .to_owned();
    assert!(
        message.contains("its key \"Config\" names the field \"config\" for Go's JSON decoder"),
        "{message}"
    );
    cip.validate(&pod("default", &[&format!("{host}/app:nonroot")]), &{
        let mut s = s.clone();
        s["policies"][0]["spec"]["authorities"] = json!([{"name": "any", "static": {"action": "pass"}}]);
        s
    })
    .assert_admitted("the control: the nonroot manifest alone is read");
}

/// A Rego rule tells a field from none (`not cfg.config.User`). Go omits an empty `User`, so
/// in policy-controller a config saying `"User": ""` (which runs as root) has no `User` and
/// fails such a rule; given the JSON as written, the rule saw `""` and passed.
#[test]
fn an_empty_user_is_no_user_for_rego_as_for_go() {
    let World {
        _registry,
        host,
        key,
        cip,
        mut s,
    } = World::start();
    s["policies"][0]["spec"]["policy"] = json!({"type": "rego", "fetchConfigFile": true, "data":
        "package sigstore\n\
         default isCompliant = false\n\
         runs_as_root { cfg := input.config[_]; not cfg.config.User }\n\
         runs_as_root { cfg := input.config[_]; cfg.config.User == \"0\" }\n\
         isCompliant { not runs_as_root }\n"});
    for (tag, config, admitted) in [
        (
            "named",
            r#"{"architecture":"amd64","os":"linux","config":{"User":"65532"}}"#,
            true,
        ),
        (
            "empty",
            r#"{"architecture":"amd64","os":"linux","config":{"User":""}}"#,
            false,
        ),
        ("none", r#"{"architecture":"amd64","os":"linux","config":{}}"#, false),
    ] {
        let digest = push_artifact(&host, "app", tag, tag, config.as_bytes(), IMAGE_CONFIG).expect("pushed");
        sign_with_key(&host, "app", &digest, &key, &BTreeMap::new()).expect("signed");
        let response = cip.validate(&pod("default", &[&format!("{host}/app:{tag}")]), &s);
        if admitted {
            response.assert_admitted(tag);
        } else {
            response.assert_refused(tag);
        }
    }
}
