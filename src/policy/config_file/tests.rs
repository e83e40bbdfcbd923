//! `fetchConfigFile` with a stock Kubewarden host mocked over a small registry: a single
//! manifest costs one call as before; a multi-platform index gives every platform's config (a
//! constraint on another platform than the host's is judged), also when the host has no
//! manifest of its own platform; nested indexes; the bound on manifests; every failed read
//! fails the policy; platform keys as go-containerregistry spells them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{MAX_MANIFESTS, Manifest, ManifestAndConfig, platform_key};
use crate::crypto::tests::{P256_PEM, P256_SECOND_PEM};
use crate::host::mock::{MockHost, trusted};
use crate::host::{
    Capability, HostCalls, KUBEWARDEN_MANIFEST_DIGEST, KUBEWARDEN_OCI_MANIFEST, KUBEWARDEN_OCI_MANIFEST_CONFIG,
    KUBEWARDEN_VERIFY_V2,
};
use crate::policy::go_json::GoReadError;
use crate::policy::image_config;
use crate::policy::rego::CIP_POLICY_REGO;
use crate::tests::{pod, run};

const REPOSITORY: &str = "myregistry.com/app";
const IMAGE: &str = "myregistry.com/app:v1";
/// The digest cosign signed (`cosign sign app:v1` signs what the tag names: the index).
const INDEX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const AMD64: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ARM64: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// buildkit's attestation manifest of a platform: its config says `unknown/unknown`.
const ATTESTATION: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const ARMV7: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const NESTED: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const SECOND_ARM64: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// The CUE policy of the tests: the arm64 image must run as 65532 (distroless' `nonroot`).
const ARM64_NONROOT: &str = "config: \"linux/arm64\": config: User: \"65532\"";

/// What a digest names in the mocked registry.
#[derive(Clone)]
enum Stored {
    /// An image manifest, with its config.
    Image(Value),
    /// An index, with the digests it lists.
    Index(Vec<String>),
}

fn config(os: &str, architecture: &str, variant: Option<&str>, user: &str) -> Value {
    let mut config = json!({"architecture": architecture, "os": os, "config": {"User": user},
        "created": "2024-01-01T00:00:00Z", "rootfs": {"type": "layers", "diff_ids": []}});
    if let Some(variant) = variant {
        config["variant"] = json!(variant);
    }
    config
}

/// A made-up config digest for the manifest `digest` (only compared by the module).
fn config_digest(digest: &str) -> String {
    format!(
        "sha256:{}",
        digest.trim_start_matches("sha256:").chars().rev().collect::<String>()
    )
}

/// A stock Kubewarden host over `stored` (digests of `myregistry.com/app`, the tag `v1` naming
/// the first): every signature verifies at that first digest; `oci/v1/manifest_digest` answers
/// the digest; `oci/v1/oci_manifest` answers the manifest or index; `oci/v1/oci_manifest_config` answers as policy-evaluator (oci-client)
/// does: an image manifest's config with its digest, and at an index the first manifest whose
/// `platform` is linux/amd64 (the platform the host runs on), or fails. `failing` configs fail.
fn kubewarden(stored: Vec<(&str, Stored)>, failing: &[&str]) -> MockHost {
    let tagged = stored[0].0.to_owned();
    let stored: HashMap<String, Stored> = stored.into_iter().map(|(d, s)| (d.to_owned(), s)).collect();
    let failing: Vec<String> = failing.iter().map(|d| (*d).to_owned()).collect();
    let lookup = move |payload: &Value| -> Result<(String, Stored), String> {
        let image = payload.as_str().expect("a JSON string");
        let digest = match (image.strip_prefix(REPOSITORY), image) {
            (Some(rest), _) if rest.starts_with('@') => rest[1..].to_owned(),
            (_, IMAGE) => tagged.clone(),
            _ => return Err(format!("manifest unknown: {image}")),
        };
        stored
            .get(&digest)
            .cloned()
            .map(|s| (digest, s))
            .ok_or_else(|| format!("manifest unknown: {image}"))
    };
    let platform = |stored: &Stored| match stored {
        Stored::Image(config) => {
            let mut platform = json!({"os": config["os"], "architecture": config["architecture"]});
            if let Some(variant) = config.get("variant") {
                platform["variant"] = variant.clone();
            }
            Some(platform)
        }
        Stored::Index(_) => None,
    };
    MockHost::new(move |capability, payload| {
        if capability == KUBEWARDEN_VERIFY_V2 {
            let (digest, _) = lookup(&payload["image"])?;
            return trusted(&digest);
        }
        let (digest, found) = lookup(payload)?;
        if capability == KUBEWARDEN_MANIFEST_DIGEST {
            return Ok(serde_json::to_vec(&json!({ "digest": digest })).unwrap());
        }
        let image_answer = |digest: &str, config: &Value| {
            Ok(serde_json::to_vec(&json!({
                "manifest": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest(digest), "size": 1},
                    "layers": []},
                "digest": digest,
                "config": config,
            }))
            .unwrap())
        };
        if capability == KUBEWARDEN_OCI_MANIFEST_CONFIG {
            let resolved = match &found {
                Stored::Image(_) => digest,
                Stored::Index(entries) => entries
                    .iter()
                    .find(|entry| {
                        lookup(&json!(format!("{REPOSITORY}@{entry}")))
                            .is_ok_and(|(_, s)| platform(&s) == Some(json!({"os": "linux", "architecture": "amd64"})))
                    })
                    .cloned()
                    .ok_or("no entry found in image index manifest matching client's default platform")?,
            };
            if failing.contains(&resolved) {
                return Err(format!("blob unknown: config of {resolved}"));
            }
            let Ok((_, Stored::Image(config))) = lookup(&json!(format!("{REPOSITORY}@{resolved}"))) else {
                return Err("received Image Index manifest instead".to_owned());
            };
            return image_answer(&resolved, &config);
        }
        assert_eq!(capability, KUBEWARDEN_OCI_MANIFEST, "{payload}");
        let answer = match found {
            Stored::Image(_) => json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest(&digest), "size": 1},
                "layers": []}),
            Stored::Index(entries) => {
                let manifests: Vec<Value> = entries
                    .iter()
                    .map(|entry| {
                        let child = lookup(&json!(format!("{REPOSITORY}@{entry}"))).map(|(_, s)| s);
                        let mut descriptor = json!({"digest": entry, "size": 1, "mediaType": match child {
                            Ok(Stored::Index(_)) => "application/vnd.oci.image.index.v1+json",
                            _ => "application/vnd.oci.image.manifest.v1+json",
                        }});
                        if let Some(platform) = child.ok().as_ref().and_then(platform) {
                            descriptor["platform"] = platform;
                        }
                        descriptor
                    })
                    .collect();
                json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": manifests})
            }
        };
        Ok(serde_json::to_vec(&answer).unwrap())
    })
}

/// A linux/amd64 + linux/arm64 image built by buildkit (with an attestation manifest), the arm64
/// image running as `arm64_user`.
fn two_platforms(arm64_user: &str) -> Vec<(&'static str, Stored)> {
    vec![
        (
            INDEX,
            Stored::Index(vec![AMD64.into(), ARM64.into(), ATTESTATION.into()]),
        ),
        (AMD64, Stored::Image(config("linux", "amd64", None, "65532"))),
        (ARM64, Stored::Image(config("linux", "arm64", None, arm64_user))),
        (ATTESTATION, Stored::Image(config("unknown", "unknown", None, ""))),
    ]
}

/// A policy with two key authorities and `spec.policy` in `language` with `fetchConfigFile`.
fn fetching(language: &str, data: &str) -> Value {
    json!({"policies": [{
        "metadata": {"name": "pol"},
        "spec": {
            "images": [{"glob": "myregistry.com/**"}],
            "authorities": [{"name": "first", "key": {"data": P256_PEM}}, {"name": "second", "key": {"data": P256_SECOND_PEM}}],
            "policy": {"type": language, "fetchConfigFile": true, "data": data}
        }
    }]})
}

/// The images read through each capability, in order.
fn asked(host: &MockHost, capability: Capability) -> Vec<String> {
    host.calls
        .iter()
        .filter(|(c, _)| *c == capability)
        .map(|(_, payload)| payload.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn at(digest: &str) -> String {
    format!("{REPOSITORY}@{digest}")
}

fn message(response: &Value) -> &str {
    response["message"].as_str().unwrap_or_default()
}

#[test]
fn a_single_manifest_costs_one_call_as_before() {
    let mut host = kubewarden(
        vec![(AMD64, Stored::Image(config("linux", "amd64", None, "65532")))],
        &[],
    );
    let s = fetching("cue", "config: \"linux/amd64\": config: User: \"65532\"");
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG), [at(AMD64)]);
    assert!(asked(&host, KUBEWARDEN_OCI_MANIFEST).is_empty());
}

/// The soundness gap: reading the host's platform only, a constraint on arm64 held vacuously.
#[test]
fn a_constraint_on_another_platform_than_the_hosts_is_judged() {
    let mut host = kubewarden(two_platforms("root"), &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    assert!(
        message(&response).starts_with(
            "Pod default/test: image myregistry.com/app:v1 denied by policy pol: spec.policy (cue): config.\"linux/arm64\""
        ),
        "{response}"
    );

    let mut host = kubewarden(two_platforms("65532"), &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        response["mutated_object"]["spec"]["containers"][0]["image"],
        format!("{IMAGE}@{INDEX}"),
        "pinned to the index both keys signed"
    );
    // The host's own platform is read once (its config came with the first answer).
    assert_eq!(
        asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG),
        [at(INDEX), at(ARM64), at(ATTESTATION)]
    );
    assert_eq!(asked(&host, KUBEWARDEN_OCI_MANIFEST), [at(INDEX)]);
}

#[test]
fn the_policy_sees_every_platform_attestation_manifests_included() {
    let inputs = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = inputs.clone();
    let mut registry = kubewarden(two_platforms("root"), &[]);
    let mut host = MockHost::new(move |capability, payload| {
        if capability == CIP_POLICY_REGO {
            seen.borrow_mut().push(payload["input"]["config"].clone());
            return Ok(br#"{"compliant": true}"#.to_vec());
        }
        registry.call(capability, &serde_json::to_vec(payload).unwrap())
    });
    let s = fetching("rego", "package sigstore\nisCompliant = true\n");
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        *inputs.borrow(),
        [json!({
            "linux/amd64": config("linux", "amd64", None, "65532"),
            "linux/arm64": config("linux", "arm64", None, "root"),
            // Go omits an empty `User`.
            "unknown/unknown": {"architecture": "unknown", "os": "unknown", "config": {},
                "created": "2024-01-01T00:00:00Z", "rootfs": {"type": "layers", "diff_ids": []}},
        })]
    );
}

/// Kubewarden's `oci_manifest_config` fails at an index without the host's platform.
#[test]
fn an_index_without_the_hosts_platform_is_read() {
    let stored = |user: &str| {
        vec![
            (INDEX, Stored::Index(vec![ARM64.into(), ARMV7.into()])),
            (ARM64, Stored::Image(config("linux", "arm64", None, user))),
            (ARMV7, Stored::Image(config("linux", "arm", Some("v7"), "65532"))),
        ]
    };
    let s = fetching(
        "cue",
        "config: \"linux/arm64\": config: User: \"65532\"\nconfig: \"linux/arm/v7\": config: User: \"65532\"",
    );
    let mut host = kubewarden(stored("65532"), &[]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG),
        [at(INDEX), at(ARM64), at(ARMV7)]
    );
    let mut host = kubewarden(stored("0"), &[]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert!(message(&response).contains("config.\"linux/arm64\""), "{response}");
}

#[test]
fn a_platform_that_cannot_be_read_fails_the_policy() {
    let mut host = kubewarden(two_platforms("65532"), &[ARM64]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(
        message(&response),
        format!(
            "Pod default/test: image {IMAGE} denied by policy pol: spec.policy (cue): fetchConfigFile: {}: host \
             capability kubewarden/oci/v1/oci_manifest_config failed: blob unknown: config of {ARM64}",
            at(ARM64)
        )
    );
    // The index itself unreadable, after the host failed its platform's config: the config's
    // failure is the reason (the manifest was read only to tell an index from an image).
    let mut registry = kubewarden(two_platforms("65532")[..1].to_vec(), &[]);
    let mut host = MockHost::new(move |capability, payload| {
        if capability == KUBEWARDEN_OCI_MANIFEST {
            return Err("unauthorized".to_owned());
        }
        registry.call(capability, &serde_json::to_vec(payload).unwrap())
    });
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {}: host capability kubewarden/oci/v1/oci_manifest_config failed: no entry found in \
             image index manifest matching client's default platform",
            at(INDEX)
        )),
        "{response}"
    );
}

#[test]
fn an_index_of_more_than_64_manifests_is_refused_before_reading_them() {
    let digests: Vec<String> = (0..=MAX_MANIFESTS)
        .map(|i| format!("sha256:{:064x}", i + 0x100))
        .collect();
    let registry = |listed: usize| {
        let mut stored = vec![(INDEX, Stored::Index(digests[..listed].to_vec()))];
        for (i, digest) in digests[..listed].iter().enumerate() {
            let variant = format!("v{i}");
            stored.push((
                digest.as_str(),
                Stored::Image(config("linux", "arm64", Some(&variant), "65532")),
            ));
        }
        stored
    };
    let mut host = kubewarden(registry(MAX_MANIFESTS + 1), &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(
        message(&response),
        format!(
            "Pod default/test: image {IMAGE} denied by policy pol: spec.policy (cue): fetchConfigFile: the image \
             index {} lists 65 manifests, more than the 64 whose configs are read for one image: refused, so that \
             one image cannot make an admission read without bound",
            at(INDEX)
        )
    );
    assert_eq!(
        asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG),
        [at(INDEX)],
        "none of its manifests"
    );

    let mut host = kubewarden(registry(MAX_MANIFESTS), &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG).len(), 1 + MAX_MANIFESTS);
}

#[test]
fn nested_indexes_are_read_and_share_the_bound() {
    let nested = |user: &str| {
        vec![
            (INDEX, Stored::Index(vec![AMD64.into(), NESTED.into()])),
            (AMD64, Stored::Image(config("linux", "amd64", None, "65532"))),
            (NESTED, Stored::Index(vec![ARM64.into()])),
            (ARM64, Stored::Image(config("linux", "arm64", None, user))),
        ]
    };
    let mut host = kubewarden(nested("root"), &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(message(&response).contains("config.\"linux/arm64\""), "{response}");
    let mut host = kubewarden(nested("65532"), &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(response["accepted"], true, "{response}");

    // 2 listed by the index, 63 by the one it nests: 65.
    let digests: Vec<String> = (0..63).map(|i| format!("sha256:{:064x}", i + 0x100)).collect();
    let mut stored = vec![
        (INDEX, Stored::Index(vec![AMD64.into(), NESTED.into()])),
        (AMD64, Stored::Image(config("linux", "amd64", None, "65532"))),
        (NESTED, Stored::Index(digests.clone())),
    ];
    for digest in &digests {
        stored.push((digest.as_str(), Stored::Image(config("linux", "arm64", None, "65532"))));
    }
    let mut host = kubewarden(stored, &[]);
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: the nested image index {} lists 63 manifests, more than the 62 left of the 64 whose \
             configs are read for one image: refused, so that one image cannot make an admission read without bound",
            at(NESTED)
        )),
        "{response}"
    );
}

/// policy-controller keeps whichever of two configs of one platform its goroutines answer last,
/// and a node runs the manifest its index entry names: two configs of one platform that differ
/// are refused, whichever order; the same config twice, or buildkit's `unknown/unknown`
/// attestation manifests (one per platform, each its own), are read.
#[test]
fn two_configs_of_one_platform_must_agree() {
    for (first, second) in [("65532", "root"), ("root", "65532")] {
        let mut host = kubewarden(
            vec![
                (INDEX, Stored::Index(vec![ARM64.into(), SECOND_ARM64.into()])),
                (ARM64, Stored::Image(config("linux", "arm64", None, first))),
                (SECOND_ARM64, Stored::Image(config("linux", "arm64", None, second))),
            ],
            &[],
        );
        let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
        assert!(
            message(&response).ends_with(&format!(
                "fetchConfigFile: {}: its config is for linux/arm64, as another manifest's of the image is, and they \
                 differ: policy-controller judges one of them at random and a node runs the one its index entry \
                 names, so the image is refused",
                at(SECOND_ARM64)
            )),
            "{response}"
        );
    }
    let mut host = kubewarden(
        vec![
            (
                INDEX,
                Stored::Index(vec![
                    ARM64.into(),
                    SECOND_ARM64.into(),
                    ATTESTATION.into(),
                    NESTED.into(),
                ]),
            ),
            (ARM64, Stored::Image(config("linux", "arm64", None, "65532"))),
            (SECOND_ARM64, Stored::Image(config("linux", "arm64", None, "65532"))),
            (ATTESTATION, Stored::Image(config("unknown", "unknown", None, "a"))),
            (NESTED, Stored::Image(config("unknown", "unknown", None, "b"))),
        ],
        &[],
    );
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert_eq!(response["accepted"], true, "{response}");
}

/// A node picks a manifest by its index entry's `platform`, policy-controller keys its config
/// by the config's own: an index listing the root arm64 image for linux/amd64 (whose config says
/// linux/arm64) is refused, whichever key a policy names.
#[test]
fn a_manifest_listed_for_another_platform_than_its_config_is_refused() {
    let mut registry = kubewarden(two_platforms("0"), &[]);
    let mut host = MockHost::new(move |capability, payload| {
        let answer = registry.call(capability, &serde_json::to_vec(payload).unwrap())?;
        if capability != KUBEWARDEN_OCI_MANIFEST {
            return Ok(answer);
        }
        let mut answer: Value = serde_json::from_slice(&answer).unwrap();
        for entry in answer["manifests"].as_array_mut().into_iter().flatten() {
            if entry["digest"] == ARM64 {
                entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
            }
        }
        Ok(serde_json::to_vec(&answer).unwrap())
    });
    let nonroot_amd64 = "config: \"linux/amd64\": config: User: \"65532\"";
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", nonroot_amd64), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {}: the index lists it for linux/amd64, but its config says linux/arm64: a node runs it \
             as linux/amd64, and policy-controller judges it as linux/arm64, so the image is refused",
            at(ARM64)
        )),
        "{response}"
    );
}

/// The platform a node runs a manifest as is its index entry's, normalised as containerd
/// normalises it: a config saying another variant is refused (its key would be
/// `linux/amd64/v9`, which a policy about `linux/amd64` does not name), one spelling the same
/// platform otherwise is read (`arm64` with and without `v8`), and a config naming its platform
/// as no node does (`x86_64`) is refused.
#[test]
fn configs_are_keyed_as_a_node_names_its_platform() {
    let nonroot_amd64 = "config: \"linux/amd64\": config: User: \"65532\"";
    let rewritten = |edit: fn(&mut Value)| {
        let mut registry = kubewarden(two_platforms("0"), &[]);
        MockHost::new(move |capability, payload| {
            let answer = registry.call(capability, &serde_json::to_vec(payload).unwrap())?;
            let mut answer: Value = serde_json::from_slice(&answer).unwrap();
            edit(&mut answer);
            Ok(serde_json::to_vec(&answer).unwrap())
        })
    };
    // The amd64 image's config says variant v9, its entry none.
    let mut host = rewritten(|answer| {
        if answer["config"]["architecture"] == "amd64" {
            answer["config"]["variant"] = json!("v9");
        }
    });
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", nonroot_amd64), &mut host);
    assert!(
        message(&response).contains("the index lists it for linux/amd64, but its config says linux/amd64/v9"),
        "{response}"
    );
    // The arm64 entry says v8, its config no variant: the same platform for a node.
    let mut host = rewritten(|answer| {
        for entry in answer["manifests"].as_array_mut().into_iter().flatten() {
            if entry["platform"]["architecture"] == "arm64" {
                entry["platform"]["variant"] = json!("v8");
            }
        }
    });
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).contains("config.\"linux/arm64\".config.User"),
        "{response}"
    );
    // A config spelling its architecture `x86_64`, which a node runs as amd64.
    let mut host = rewritten(|answer| {
        if answer["config"]["architecture"] == "amd64" {
            answer["config"]["architecture"] = json!("x86_64");
        }
        for entry in answer["manifests"].as_array_mut().into_iter().flatten() {
            if entry["platform"]["architecture"] == "amd64" {
                entry["platform"]["architecture"] = json!("x86_64");
            }
        }
    });
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", nonroot_amd64), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {}: its config says linux/x86_64, which a node runs as linux/amd64: a policy about \
             linux/amd64 would not judge it, so the image is refused",
            at(AMD64)
        )),
        "{response}"
    );
}

#[test]
fn hostile_answers_fail_the_policy() {
    let sha512 = format!("sha512:{}", "a".repeat(128));
    let mut host = kubewarden(
        vec![
            (INDEX, Stored::Index(vec![AMD64.into(), sha512.clone()])),
            (AMD64, Stored::Image(config("linux", "amd64", None, "65532"))),
        ],
        &[],
    );
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: the image index {} lists a manifest by digest \"{sha512}\": only sha256 digests are read",
            at(INDEX)
        )),
        "{response}"
    );

    // An index entry without a digest.
    let mut registry = kubewarden(two_platforms("65532"), &[]);
    let mut host = MockHost::new(move |capability, payload| {
        let answer = registry.call(capability, &serde_json::to_vec(payload).unwrap())?;
        if capability != KUBEWARDEN_OCI_MANIFEST {
            return Ok(answer);
        }
        let mut answer: Value = serde_json::from_slice(&answer).unwrap();
        answer["manifests"][1] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1});
        Ok(serde_json::to_vec(&answer).unwrap())
    });
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {}: unreadable answer from host capability kubewarden/oci/v1/oci_manifest: a manifest \
             of the index has no `digest`",
            at(INDEX)
        )),
        "{response}"
    );
    assert_eq!(
        asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG),
        [at(INDEX)],
        "none of its manifests"
    );

    // An image manifest, whose config the host answers under another digest.
    let mut host = config_answers_rewritten(
        vec![(AMD64, Stored::Image(config("linux", "amd64", None, "65532")))],
        |answer| answer["digest"] = json!(ARM64),
    );
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {} names an image manifest, but host capability kubewarden/oci/v1/oci_manifest_config \
             answered the config of another one ({ARM64})",
            at(AMD64)
        )),
        "{response}"
    );

    // A config Go refuses (a platform field that is not a string).
    let mut host = kubewarden(
        vec![(AMD64, Stored::Image(json!({"os": "linux", "architecture": 64})))],
        &[],
    );
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {}: its image config is not read here as policy-controller and the container runtime \
             read it: `architecture` is a number, where Go's encoding/json (policy-controller) reads a string: it \
             refuses this",
            at(AMD64)
        )),
        "{response}"
    );

    // A config holding a number a 64-bit float rounds (`policy::numbers`): CUE would compare it
    // exactly, this module cannot.
    let mut registry = kubewarden(
        vec![(AMD64, Stored::Image(config("linux", "amd64", None, "65532")))],
        &[],
    );
    let mut host = MockHost::new(move |capability, payload| {
        let answer = registry.call(capability, &serde_json::to_vec(payload).unwrap())?;
        if capability != KUBEWARDEN_OCI_MANIFEST_CONFIG {
            return Ok(answer);
        }
        let text = String::from_utf8(answer).unwrap();
        Ok(text
            .replacen("\"config\":{", "\"config\":{\"size\":1.00000000000000001,", 1)
            .into_bytes())
    });
    let response = run(&pod("default", &[IMAGE]), &fetching("cue", ARM64_NONROOT), &mut host);
    assert!(
        message(&response).ends_with(&format!(
            "fetchConfigFile: {}: unreadable answer from host capability kubewarden/oci/v1/oci_manifest_config: \
             it holds the number 1.00000000000000001, which has more digits than a 64-bit float keeps (it reads as 1); \
             CUE compares numbers exactly, so a policy cannot decide on it here as it does in policy-controller",
            at(AMD64)
        )),
        "{response}"
    );
}

/// A stock host holding `stored` whose `oci_manifest_config` answers are changed by `rewrite`:
/// a host (or registry) answering for another manifest than the one asked.
fn config_answers_rewritten(stored: Vec<(&str, Stored)>, rewrite: fn(&mut Value)) -> MockHost {
    let mut registry = kubewarden(stored, &[]);
    MockHost::new(move |capability, payload| {
        let answer = registry.call(capability, &serde_json::to_vec(payload).unwrap())?;
        if capability != KUBEWARDEN_OCI_MANIFEST_CONFIG {
            return Ok(answer);
        }
        let mut answer: Value = serde_json::from_slice(&answer).unwrap();
        rewrite(&mut answer);
        Ok(serde_json::to_vec(&answer).unwrap())
    })
}

/// Only static authorities passed: no digest was verified. The host is asked which digest the
/// tag names and the image is read there, every manifest of an index from that one index, and
/// the image is pinned to it: the node runs the configs judged, whatever the tag does later
/// (before, the tag was read and the image left unpinned).
#[test]
fn without_a_verified_digest_the_tags_digest_is_read_and_pinned() {
    let mut s = fetching("cue", ARM64_NONROOT);
    s["policies"][0]["spec"]["authorities"] = json!([{"name": "pass", "static": {"action": "pass"}}]);
    let mut host = kubewarden(two_platforms("root"), &[]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert!(message(&response).contains("config.\"linux/arm64\""), "{response}");
    assert_eq!(asked(&host, KUBEWARDEN_MANIFEST_DIGEST), [IMAGE]);
    assert_eq!(asked(&host, KUBEWARDEN_OCI_MANIFEST), [at(INDEX)]);
    assert_eq!(
        asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG),
        [at(INDEX), at(ARM64), at(ATTESTATION)]
    );

    let mut host = kubewarden(two_platforms("65532"), &[]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        response["mutated_object"]["spec"]["containers"][0]["image"],
        format!("{IMAGE}@{INDEX}"),
        "pinned to the index judged"
    );

    let mut host = kubewarden(
        vec![(ARM64, Stored::Image(config("linux", "arm64", None, "65532")))],
        &[],
    );
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        response["mutated_object"]["spec"]["containers"][0]["image"],
        format!("{IMAGE}@{ARM64}")
    );
    assert_eq!(asked(&host, KUBEWARDEN_OCI_MANIFEST_CONFIG), [at(ARM64)]);
    assert_eq!(asked(&host, KUBEWARDEN_OCI_MANIFEST), Vec::<String>::new());

    // Written by digest: read there, nothing to ask nor to pin.
    let mut host = kubewarden(two_platforms("65532"), &[]);
    let response = run(&pod("default", &[&at(INDEX)]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert!(response.get("mutated_object").is_none_or(Value::is_null), "{response}");
    assert_eq!(asked(&host, KUBEWARDEN_MANIFEST_DIGEST), Vec::<String>::new());

    // The digest look-up failing, or answering what is not a sha256 digest, fails the policy.
    for (answer, expected) in [
        (
            Err("registry down".to_owned()),
            format!(
                "fetchConfigFile: {IMAGE}: host capability kubewarden/oci/v1/manifest_digest failed: registry down"
            ),
        ),
        (
            Ok(json!({"digest": "sha512:00"})),
            format!(
                "fetchConfigFile: {IMAGE}: unreadable answer from host capability kubewarden/oci/v1/manifest_digest: \
                 the digest \"sha512:00\" is not a sha256 digest: only sha256 digests are read"
            ),
        ),
        (
            Ok(json!({"digest": 1})),
            format!(
                "fetchConfigFile: {IMAGE}: unreadable answer from host capability kubewarden/oci/v1/manifest_digest: \
                 `digest` (a string) is missing"
            ),
        ),
    ] {
        let mut stock = kubewarden(two_platforms("65532"), &[]);
        let mut host = MockHost::new(move |capability, payload| {
            if capability == KUBEWARDEN_MANIFEST_DIGEST {
                return answer.clone().map(|a| serde_json::to_vec(&a).unwrap());
            }
            stock.call(capability, &serde_json::to_vec(&payload).unwrap())
        });
        let response = run(&pod("default", &[IMAGE]), &s, &mut host);
        assert_eq!(response["accepted"], false, "{response}");
        assert!(message(&response).ends_with(&expected), "{response}");
    }
}

fn key(config: Value) -> Result<String, GoReadError> {
    let Value::Object(config) = config else {
        panic!("not an object: {config}");
    };
    image_config::go_view(config).map(|config| platform_key(&config))
}

/// go-containerregistry's `Platform.String` of `{os, architecture, variant, os.version}`.
#[test]
fn platform_keys_are_spelled_as_go_containerregistry_spells_them() {
    let cases = [
        (json!({"os": "linux", "architecture": "amd64"}), "linux/amd64"),
        (
            json!({"os": "linux", "architecture": "arm", "variant": "v7"}),
            "linux/arm/v7",
        ),
        (
            json!({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}),
            "windows/amd64:10.0.17763.1",
        ),
        (json!({"os": "unknown", "architecture": "unknown"}), "unknown/unknown"),
        (json!({"os": "linux", "variant": "v8"}), "linux/v8"),
        (json!({"os": "linux", "architecture": "", "variant": null}), "linux"),
        (json!({"architecture": "amd64"}), ""),
        (json!({}), ""),
    ];
    for (config, expected) in cases {
        assert_eq!(key(config.clone()).as_deref(), Ok(expected), "{config}");
    }
    // Keys as Go matches them.
    assert_eq!(
        key(json!({"OS": "linux", "Architecture": "arm64", "VARIANT": "v8"})).as_deref(),
        Ok("linux/arm64/v8")
    );
    assert!(matches!(
        key(json!({"os": "linux", "architecture": 64})),
        Err(GoReadError::WrongType { path, .. }) if path == "architecture"
    ));
}

#[test]
fn answers_are_read_as_the_sdk_writes_them() {
    let index = json!({"schemaVersion": 2, "manifests": [{"digest": AMD64, "size": 1}]});
    assert!(matches!(Manifest::read(index), Ok(Manifest::Index(entries)) if entries.len() == 1));
    let image = json!({"schemaVersion": 2, "config": {"digest": "sha256:c", "size": 1}, "layers": []});
    assert!(matches!(Manifest::read(image), Ok(Manifest::Image)));
    for (answer, expected) in [
        (
            json!({"is_trusted": true}),
            "neither an image index (`manifests`) nor an image manifest (`config.digest`)",
        ),
        (json!({"manifests": {}}), "the index's `manifests` is not a list"),
        (json!([]), "not a JSON object"),
    ] {
        assert_eq!(Manifest::read(answer).err().as_deref(), Some(expected));
    }

    let answer = json!({"manifest": {"config": {"digest": "sha256:c"}}, "digest": AMD64, "config": {"os": "linux"}});
    let read = ManifestAndConfig::read(answer).expect("readable");
    assert_eq!(
        (read.digest.as_str(), Value::Object(read.config)),
        (AMD64, json!({"os": "linux"}))
    );
    for answer in [
        json!({"manifest": {}, "digest": AMD64, "config": {}}),
        json!({"manifest": {"config": {"digest": "sha256:c"}}, "digest": AMD64, "config": "{}"}),
        json!({"manifest": {"config": {"digest": "sha256:c"}}, "config": {}}),
        json!({"manifest": {"config": {"digest": 1}}, "digest": AMD64, "config": {}}),
    ] {
        assert_eq!(
            ManifestAndConfig::read(answer).err().as_deref(),
            Some("`digest`, `config` (an object) or `manifest.config.digest` is missing")
        );
    }
}
