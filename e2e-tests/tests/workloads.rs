//! Every workload kind, with containers, init containers and ephemeral containers, under the
//! article's `signed-images-policy`: each image is verified, each verified tag pinned in place,
//! and one unsigned image anywhere refuses the whole workload.

mod common;

use std::collections::BTreeMap;

use common::{Host, PodImages, WORKLOAD_KINDS, article, image_at, on_registry, settings, workload_request};
use e2e_tests::with_keys;
use serde_json::json;
use testkit::{KeyPair, Registry, push_image, sign_with_key};

#[test]
fn every_workload_kind_verifies_and_pins_containers_init_and_ephemeral_containers() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let mut signed = BTreeMap::new();
    for repo in ["init", "app", "debug"] {
        let digest = push_image(&host, repo, "1", repo)?;
        sign_with_key(&host, repo, &digest, &key, &BTreeMap::new())?;
        signed.insert(repo, (format!("{host}/{repo}:1"), digest));
    }
    push_image(&host, "unsigned", "1", "unsigned")?;
    let unsigned = format!("{host}/unsigned:1");
    let s = settings(
        &[on_registry(
            &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
            &host,
        )],
        json!({}),
    );
    let cip = Host::for_registry(&host);
    let (init, app, debug) = (&signed["init"].0, &signed["app"].0, &signed["debug"].0);

    for kind in &WORKLOAD_KINDS {
        let name = format!("web-{}", kind.kind.to_lowercase());
        let request = workload_request(
            kind,
            "default",
            &name,
            &PodImages {
                init: &[init],
                containers: &[app],
                ephemeral: &[debug],
            },
        );
        let response = cip.validate(&request, &s);
        response.assert_admitted(&format!("{} with signed images", kind.kind));
        let mutated = response
            .mutated()
            .unwrap_or_else(|| panic!("{}: verified tags are pinned: {response}", kind.kind));
        for (list, repo) in [
            ("initContainers", "init"),
            ("containers", "app"),
            ("ephemeralContainers", "debug"),
        ] {
            let (reference, digest) = &signed[repo];
            assert_eq!(
                image_at(mutated, kind.pod_spec, list, 0),
                Some(format!("{reference}@{digest}").as_str()),
                "{}: {list} pinned at {}: {response}",
                kind.kind,
                kind.pod_spec
            );
        }
        assert_eq!(
            mutated.pointer("/metadata/name"),
            Some(&json!(name)),
            "the rest of the object is kept"
        );

        for (slot, images) in [
            (
                "init container",
                PodImages {
                    init: &[&unsigned],
                    containers: &[app],
                    ephemeral: &[debug],
                },
            ),
            (
                "container",
                PodImages {
                    init: &[init],
                    containers: &[app, &unsigned],
                    ephemeral: &[debug],
                },
            ),
            (
                "ephemeral container",
                PodImages {
                    init: &[init],
                    containers: &[app],
                    ephemeral: &[&unsigned],
                },
            ),
        ] {
            let response = cip.validate(&workload_request(kind, "default", &name, &images), &s);
            let message = response.assert_refused(&format!("{} with an unsigned {slot}", kind.kind));
            let expected = format!(
                "{} default/{name}: image {unsigned} denied by policy signed-images-policy: authority authority-0: ",
                kind.kind
            );
            assert!(
                message.starts_with(&expected),
                "expected prefix: {expected}\ngot: {message}"
            );
        }
    }
    Ok(())
}

#[test]
fn ephemeral_containers_subresource_judges_only_the_ephemeral_containers() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let digest = push_image(&host, "debug", "1", "debug")?;
    sign_with_key(&host, "debug", &digest, &key, &BTreeMap::new())?;
    push_image(&host, "legacy", "1", "legacy")?;
    let (debug, legacy) = (format!("{host}/debug:1"), format!("{host}/legacy:1"));
    let s = settings(
        &[on_registry(
            &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
            &host,
        )],
        json!({}),
    );
    let cip = Host::for_registry(&host);

    // `kubectl debug` on a running Pod whose (already admitted) container is unsigned.
    let pod_kind = &WORKLOAD_KINDS[0];
    let attach = |ephemeral: &str| {
        let mut request = workload_request(
            pod_kind,
            "default",
            "running",
            &PodImages {
                containers: &[&legacy],
                ephemeral: &[ephemeral],
                ..PodImages::default()
            },
        );
        request["operation"] = json!("UPDATE");
        request["subResource"] = json!("ephemeralcontainers");
        // The stored Pod, without the debug container: the API server keeps its labels and spec
        // (the module refuses this update without it).
        let mut stored = request["object"].clone();
        if let Some(spec) = stored["spec"].as_object_mut() {
            spec.remove("ephemeralContainers");
        }
        request["oldObject"] = stored;
        request
    };
    let response = cip.validate(&attach(&debug), &s);
    response.assert_admitted("a signed debug container added to a running Pod");
    assert_eq!(
        response
            .mutated()
            .and_then(|o| image_at(o, "/spec", "ephemeralContainers", 0)),
        Some(format!("{debug}@{digest}").as_str()),
        "{response}"
    );
    let message = cip
        .validate(&attach(&legacy), &s)
        .assert_refused("an unsigned debug container")
        .to_owned();
    assert!(
        message.contains(&format!("image {legacy} denied by policy signed-images-policy")),
        "{message}"
    );
    Ok(())
}
