//! The validating twin of a pinning policy (docs/deploy.md, "Two webhooks": `mutating: false`,
//! `modifyImagesWithDigest: false`), against a real registry and real signatures. It sees the
//! object as it will be stored, including images a later mutating webhook added by tag (a
//! sidecar injector). Such an image, verified by tag, would run by tag, and the tag can move
//! between admission and the pull: it is refused, naming the digest that verified, and admitted
//! once written with it, as policy-controller's validating webhook admits only digests.

mod common;

use std::collections::BTreeMap;

use common::{Host, article, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::{Value, json};
use testkit::{KeyPair, Registry, move_tag, push_image, sign_with_key};

/// The mutated object's containers' images.
fn images(object: &Value) -> Vec<&str> {
    object["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["image"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn a_sidecar_added_by_tag_after_the_pinning_policy_is_refused_until_written_by_digest() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let cip = Host::for_registry(&host);
    let policy = on_registry(
        &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
        &host,
    );
    let mutating = settings(std::slice::from_ref(&policy), json!({}));
    let validating = settings(&[policy], json!({"modifyImagesWithDigest": false}));
    cip.validate_settings(&validating).map_err(anyhow::Error::msg)?;

    let app = push_image(&host, "app", "v1", "app-v1")?;
    sign_with_key(&host, "app", &app, &key, &BTreeMap::new())?;
    let proxy = push_image(&host, "proxy", "1", "proxy-1")?;
    sign_with_key(&host, "proxy", &proxy, &key, &BTreeMap::new())?;
    push_image(&host, "unsigned", "1", "unsigned-1")?;

    // The pinning policy pins the workload's image.
    let request = pod("default", &[&format!("{host}/app:v1")]);
    let response = cip.validate(&request, &mutating);
    response.assert_admitted("the signed app, by the pinning policy");
    let pinned = response.mutated().expect("pinned").clone();
    assert_eq!(images(&pinned), [format!("{host}/app:v1@{app}")]);

    // The validating twin admits what the pinning policy wrote, unchanged.
    let mut stored = request.clone();
    stored["object"] = pinned.clone();
    let response = cip.validate(&stored, &validating);
    response.assert_admitted("the pinned app, by the validating twin");
    assert!(response.mutated().is_none(), "{response}");

    // A sidecar injector, called after the pinning policy, adds its proxy by tag: signed, but
    // it would run by tag.
    let proxy_tag = format!("{host}/proxy:1");
    let mut injected = stored.clone();
    injected["object"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "proxy", "image": proxy_tag}));
    let message = cip
        .validate(&injected, &validating)
        .assert_refused("a signed sidecar added by tag")
        .to_owned();
    assert_eq!(
        message,
        format!(
            "Pod default/test: image {proxy_tag} was verified by tag (policy signed-images-policy verified {proxy}), \
             but this policy does not pin (modifyImagesWithDigest: false) and the tag can move before the pull: \
             reference it by digest ({proxy_tag}@{proxy}), or let the mutating policy (modifyImagesWithDigest: true) \
             pin it"
        )
    );

    // The tag moves to an unsigned image: the reference the message gave still names what was
    // verified, and is admitted as written.
    let moved = move_tag(&host, "proxy", "1", "proxy-1-rebuilt-unsigned")?;
    assert_ne!(moved, proxy);
    injected["object"]["spec"]["containers"][1]["image"] = json!(format!("{proxy_tag}@{proxy}"));
    let response = Host::for_registry(&host).validate(&injected, &validating);
    response.assert_admitted("the sidecar written by the digest the refusal named");
    assert!(response.mutated().is_none(), "{response}");

    // An unsigned sidecar is refused as before, for its signature.
    injected["object"]["spec"]["containers"][1]["image"] = json!(format!("{host}/unsigned:1"));
    let message = cip
        .validate(&injected, &validating)
        .assert_refused("an unsigned sidecar")
        .to_owned();
    assert!(
        message.contains(&format!(
            "image {host}/unsigned:1 denied by policy signed-images-policy"
        )),
        "{message}"
    );

    // Images no `enforce` policy verified pass as before: one no policy covers.
    injected["object"]["spec"]["containers"][1]["image"] = json!("docker.io/library/busybox:1");
    cip.validate(&injected, &validating)
        .assert_admitted("an image no policy covers (noMatchPolicy: warn)");
    Ok(())
}
