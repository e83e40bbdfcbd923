//! The article's key-based ClusterImagePolicies, pasted verbatim (only the key and the registry
//! host replaced), evaluated by the real `policy.wasm` through the `cip` library against a
//! loopback `docker-registry` holding images signed with sigstore-rs.

mod common;

use std::collections::BTreeMap;

use cip::runtime::Verdict;
use common::{Host, article, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::json;
use testkit::{KeyPair, Registry, push_image, sign_with_key};

/// An image `repo:tag` on the registry, signed by `key` when given; returns its digest.
fn image(registry: &str, repo: &str, tag: &str, key: Option<&KeyPair>) -> anyhow::Result<String> {
    let digest = push_image(registry, repo, tag, &format!("{repo}:{tag}"))?;
    if let Some(key) = key {
        sign_with_key(registry, repo, &digest, key, &BTreeMap::new())?;
    }
    Ok(digest)
}

#[test]
fn signed_images_policy_admits_signed_and_refuses_unsigned() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let digest = image(&host, "myapp", "v1.0.0", Some(&key))?;
    image(&host, "unsigned", "latest", None)?;
    let s = settings(
        &[on_registry(
            &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
            &host,
        )],
        json!({}),
    );
    let cip = Host::for_registry(&host);

    let signed = format!("{host}/myapp:v1.0.0");
    let response = cip.validate(&pod("default", &[&signed]), &s);
    response.assert_admitted("a Pod running an image signed by the policy's key");
    assert!(response.warnings().is_empty(), "{response}");
    assert_eq!(
        response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
        Some(&json!(format!("{signed}@{digest}"))),
        "the verified tag is pinned to the digest whose signature was verified: {response}"
    );

    let unsigned = format!("{host}/unsigned");
    let response = cip.validate(&pod("default", &[&unsigned]), &s);
    let message = response.assert_refused("a Pod running an unsigned image");
    let expected = format!(
        "Pod default/test: image {unsigned} denied by policy signed-images-policy: authority authority-0: \
         no signature verified by the key: "
    );
    assert!(
        message.starts_with(&expected),
        "the refusal names the resource, image, policy and authority.\nexpected prefix: {expected}\ngot: {message}"
    );
    assert!(response.mutated().is_none(), "{response}");

    // Signed by someone else: refused just the same.
    let stranger = KeyPair::ecdsa_p256()?;
    image(&host, "other", "v1", Some(&stranger))?;
    let other = format!("{host}/other:v1");
    let message = cip
        .validate(&pod("default", &[&other]), &s)
        .assert_refused("an image signed by another key")
        .to_owned();
    assert!(message.contains("denied by policy signed-images-policy"), "{message}");

    // Images outside the policy's glob are none of its business.
    let response = cip.validate(&pod("default", &["nginx:1.25"]), &s);
    response.assert_admitted("an image no policy covers (noMatchPolicy defaults to warn)");
    assert!(response.mutated().is_none(), "{response}");
    assert_eq!(
        response.warnings(),
        ["image nginx:1.25 is covered by no ClusterImagePolicy"],
        "{response}"
    );
    Ok(())
}

#[test]
fn production_strict_and_dev_warn_policies_split_by_namespace() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let digest = image(&host, "app", "signed", Some(&key))?;
    image(&host, "app", "unsigned", None)?;
    let cips = [
        on_registry(
            &with_keys(&article("production-strict-policy"), &[key.public_key_pem()]),
            &host,
        ),
        on_registry(&with_keys(&article("dev-warn-policy"), &[key.public_key_pem()]), &host),
    ];
    let cip = Host::for_registry(&host);
    let unsigned = format!("{host}/app:unsigned");
    let signed = format!("{host}/app:signed");

    for no_match in ["allow", "warn", "deny"] {
        let s = settings(&cips, json!({"noMatchPolicy": no_match}));

        let response = cip.validate(&pod("production", &[&unsigned]), &s);
        let message = response.assert_refused("an unsigned image in production");
        assert!(
            message.starts_with(&format!(
                "Pod production/test: image {unsigned} denied by policy production-strict-policy: authority authority-0: "
            )),
            "{message}"
        );

        let response = cip.validate(&pod("production", &[&signed]), &s);
        response.assert_admitted("a signed image in production");
        assert_eq!(
            response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
            Some(&json!(format!("{signed}@{digest}"))),
            "{response}"
        );

        let response = cip.validate(&pod("development", &[&unsigned]), &s);
        response.assert_admitted("an unsigned image in development (dev-warn-policy is in warn mode)");
        let warnings = response.warnings();
        assert_eq!(warnings.len(), 1, "{response}");
        assert!(
            warnings[0].starts_with(&format!(
                "image {unsigned} not verified by policy dev-warn-policy (warn mode): authority authority-0: "
            )),
            "{response}"
        );
        assert!(
            response.mutated().is_none(),
            "nothing is pinned for an unverified image: {response}"
        );

        // Neither policy covers `sandbox`: noMatchPolicy decides.
        let response = cip.validate(&pod("sandbox", &[&unsigned]), &s);
        match no_match {
            "allow" => {
                response.assert_admitted("an image no policy covers, noMatchPolicy: allow");
                assert!(
                    response.warnings().is_empty() && response.mutated().is_none(),
                    "{response}"
                );
            }
            "warn" => {
                response.assert_admitted("an image no policy covers, noMatchPolicy: warn");
                assert_eq!(
                    response.warnings(),
                    [format!("image {unsigned} is covered by no ClusterImagePolicy")],
                    "{response}"
                );
            }
            _ => {
                let message = response.assert_refused("an image no policy covers, noMatchPolicy: deny");
                assert!(message.contains("no ClusterImagePolicy covers it"), "{message}");
            }
        }
    }

    // The Gatekeeper provider and `cip verify` reach the same verdicts through `verify_images`.
    let s = settings(&cips, json!({}));
    let verdicts = cip.verify_images(
        &s,
        &[
            (&signed, "production"),
            (&unsigned, "production"),
            (&unsigned, "development"),
            (&unsigned, "sandbox"),
        ],
    );
    let summary: Vec<(Verdict, Option<&str>)> = verdicts.iter().map(|v| (v.verdict, v.digest.as_deref())).collect();
    assert_eq!(
        summary,
        [
            (Verdict::Allow, Some(digest.as_str())),
            (Verdict::Deny, None),
            (Verdict::Warn, None),
            // Covered by no policy: noMatchPolicy defaults to warn.
            (Verdict::Warn, None)
        ],
        "{verdicts:#?}"
    );
    assert!(
        verdicts[1]
            .message
            .starts_with(&format!("image {unsigned} denied by policy production-strict-policy: ")),
        "{verdicts:#?}"
    );
    Ok(())
}

#[test]
fn key_rotation_policy_admits_old_and_new_keys_and_refuses_a_third() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (old, new, third) = (KeyPair::ecdsa_p256()?, KeyPair::ecdsa_p256()?, KeyPair::ecdsa_p256()?);
    let old_digest = image(&host, "myapp", "v1", Some(&old))?;
    let new_digest = image(&host, "myapp", "v2", Some(&new))?;
    image(&host, "myapp", "v3", Some(&third))?;
    let s = settings(
        &[on_registry(
            &with_keys(
                &article("key-rotation-policy"),
                &[old.public_key_pem(), new.public_key_pem()],
            ),
            &host,
        )],
        json!({}),
    );
    let cip = Host::for_registry(&host);

    for (tag, digest, signer) in [("v1", &old_digest, "old key"), ("v2", &new_digest, "new key")] {
        let reference = format!("{host}/myapp:{tag}");
        let response = cip.validate(&pod("default", &[&reference]), &s);
        response.assert_admitted(&format!("an image signed by the {signer}"));
        assert_eq!(
            response.mutated().and_then(|o| o.pointer("/spec/containers/0/image")),
            Some(&json!(format!("{reference}@{digest}"))),
            "{response}"
        );
    }

    let reference = format!("{host}/myapp:v3");
    let response = cip.validate(&pod("default", &[&reference]), &s);
    let message = response.assert_refused("an image signed by a key the policy does not list");
    assert!(
        message.contains(&format!("image {reference} denied by policy key-rotation-policy"))
            && message.contains("authority current-key: ")
            && message.contains("authority new-key: "),
        "the refusal names both authorities tried: {message}"
    );
    Ok(())
}

#[test]
fn allow_system_images_admits_kube_system_library_images_with_a_warning() {
    // The policy has no authorities: no registry is needed, and none is configured.
    let cip = Host::offline();
    let s = settings(&[article("allow-system-images")], json!({}));

    for image in ["nginx:1.25", "docker.io/library/busybox:1.36", "k8s.gcr.io/pause:3.9"] {
        let response = cip.validate(&pod("kube-system", &[image]), &s);
        response.assert_admitted(&format!("{image} in kube-system"));
        assert_eq!(
            response.warnings(),
            [format!(
                "image {image} not verified by policy allow-system-images (warn mode): \
                 the policy has no authorities, so no signature can satisfy it"
            )],
            "{response}"
        );
        assert!(response.mutated().is_none(), "{response}");
    }

    // Outside kube-system, and for other registries, the policy does not apply: the image is
    // covered by no policy (noMatchPolicy: warn by default).
    for (namespace, image) in [("default", "nginx:1.25"), ("kube-system", "quay.io/coreos/etcd:v3.5")] {
        let response = cip.validate(&pod(namespace, &[image]), &s);
        response.assert_admitted(&format!("{image} in {namespace}"));
        assert_eq!(
            response.warnings(),
            [format!("image {image} is covered by no ClusterImagePolicy")],
            "{image} in {namespace}: {response}"
        );
    }
}

#[test]
fn kms_signed_policy_is_valid_and_a_host_without_kms_access_names_the_capability_and_the_command() {
    // With KMS access (cip run, the provider) the policy runs: e2e-tests/tests/kms.rs.
    let cip = Host::offline();
    let s = settings(&[article("kms-signed-policy")], json!({}));
    if let Err(message) = cip.validate_settings(&s) {
        panic!("a gcpkms:// URI of cosign's shape is valid: {message}");
    }
    let response = cip.validate(&pod("default", &["gcr.io/myproject/app:v1"]), &s);
    let message = response.assert_refused("key.kms on a host without KMS access");
    assert!(
        message.contains(
            "key.kms needs host capability cluster-image-policy/kms/v1/public_key (on Kubewarden run `cip kms resolve` to fill key.data)"
        ),
        "{message}"
    );
}
