//! A Pod relabelled into a policy's selector keeps running what the kubelet pulled when it
//! started (docs/lifecycle.md, "A relabelled Pod keeps running what it pulled"), against a real
//! registry and real signatures. The reviewer's scenario, with push access to a covered
//! repository and no signing key: an unsigned image pushed as `team/app:x` runs in a Pod labelled
//! `env: dev`, outside the prod-only policy (admitted unpinned); a signed manifest of the
//! repository is re-tagged as `:x`; the Pod relabelled `env: prod` would now verify by tag, while
//! the unsigned code keeps running with the prod label. The update does not rewrite the image, so
//! it is refused, naming the digest that verified; recreated, the Pod is verified and pinned.

mod common;

use common::{Host, pod, settings};
use serde_json::{Value, json};
use testkit::{KeyPair, Registry, push_image, retag, sign_with_key};

/// A policy of `mode` covering the registry's `team/**` for Pods labelled `env: prod`.
fn prod_policy(host: &str, key: &KeyPair, mode: &str) -> String {
    let pem = key.public_key_pem().replace('\n', "\n          ");
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: prod
spec:
  mode: {mode}
  images:
    - glob: {host}/team/**
  match:
    - version: v1
      resource: pods
      selector:
        matchLabels:
          env: prod
  authorities:
    - key:
        data: |
          {pem}
"
    )
}

/// A Pod `default/test` running `image`, labelled `env: <env>`.
fn labelled(image: &str, env: &str) -> Value {
    let mut request = pod("default", &[image]);
    request["object"]["metadata"]["labels"] = json!({"env": env});
    request
}

/// The UPDATE relabelling that Pod from `env: dev` to `env: prod`.
fn relabelled(image: &str) -> Value {
    let mut request = labelled(image, "prod");
    request["operation"] = json!("UPDATE");
    request["oldObject"] = labelled(image, "dev")["object"].clone();
    request
}

#[test]
fn a_pod_relabelled_into_a_policy_does_not_launder_an_image_run_by_tag() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let cip = Host::for_registry(&host);
    let enforce = settings(&[prod_policy(&host, &key, "enforce")], json!({}));
    cip.validate_settings(&enforce).map_err(anyhow::Error::msg)?;
    let tag = format!("{host}/team/app:x");

    // The unsigned image, pushed as `:x`, runs in a Pod labelled `env: dev`: no policy applies
    // (noMatchPolicy: warn), nothing is pinned.
    let unsigned = push_image(&host, "team/app", "x", "relabel-unsigned")?;
    let response = cip.validate(&labelled(&tag, "dev"), &enforce);
    response.assert_admitted("the unsigned image outside the prod-only policy");
    assert!(response.mutated().is_none(), "{response}");

    // A signed manifest of the repository, re-tagged as `:x`.
    let signed = push_image(&host, "team/app", "release", "relabel-signed")?;
    sign_with_key(&host, "team/app", &signed, &key, &testkit::annotations([]))?;
    assert_eq!(retag(&host, "team/app", "release", "x")?, signed);
    assert_ne!(signed, unsigned);

    // Relabelled `env: prod`: the tag verifies now, but the Pod runs what it pulled.
    let message = cip
        .validate(&relabelled(&tag), &enforce)
        .assert_refused("a Pod relabelled into the prod policy, its image by tag")
        .to_owned();
    assert_eq!(
        message,
        format!(
            "Pod default/test: image {tag} would now be checked by policy prod, but it is written by tag and this \
             update does not change it: the Pod may be running another image than the one verified now (the tag can \
             move after the pull); recreate the Pod (it is then verified and pinned), or write the image by digest \
             ({tag}@{signed})"
        )
    );

    // Recreated with the label, the Pod is verified and pinned to the signed digest.
    let response = cip.validate(&labelled(&tag, "prod"), &enforce);
    response.assert_admitted("the Pod recreated with the prod label");
    let pinned = response.mutated().expect("pinned")["spec"]["containers"][0]["image"].clone();
    assert_eq!(pinned, json!(format!("{tag}@{signed}")));

    // Written by digest, what runs is what is verified: the signed one passes, the unsigned one
    // the Pod pulled is refused for its signature.
    cip.validate(&relabelled(&format!("{tag}@{signed}")), &enforce)
        .assert_admitted("the signed image written by digest");
    let message = cip
        .validate(&relabelled(&format!("{tag}@{unsigned}")), &enforce)
        .assert_refused("the unsigned image written by digest")
        .to_owned();
    assert!(
        message.contains(&format!("image {tag}@{unsigned} denied by policy prod")),
        "{message}"
    );

    // Under a `warn` policy: admitted, with the warning.
    let warn = settings(&[prod_policy(&host, &key, "warn")], json!({}));
    let response = cip.validate(&relabelled(&tag), &warn);
    response.assert_admitted("a Pod relabelled into a warn policy");
    let warnings = response.warnings();
    assert!(
        warnings.iter().any(|w| w.starts_with(&format!(
            "image {tag} is now checked by policy prod (warn mode), which verified {signed}"
        ))),
        "{warnings:?}"
    );
    Ok(())
}
