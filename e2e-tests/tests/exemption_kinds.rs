//! An exemption (`static: pass`) scoped by `match` entries, under `noMatchPolicy: deny`, with
//! the real `policy.wasm` in `cip` and images on a loopback `docker-registry`: an entry keeps an
//! image from `noMatchPolicy` only where policy-controller's kind table would apply it too
//! (DaemonSets in the core group, no ReplicaSets), and the denial names the entry and the fix
//! (docs/matching.md, "`match` entries: fields left out").

mod common;

use std::collections::BTreeMap;

use common::{Host, PodImages, WORKLOAD_KINDS, settings, workload_request};
use serde_json::{Value, json};
use testkit::{KeyPair, Registry, push_image, sign_with_key};

/// The exemption `tools` for `<registry>/tools/**`, with `entries` as its `match`.
fn exemption(registry: &str, entries: Value) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "tools"},
        "spec": {
            "images": [{"glob": format!("{registry}/tools/**")}],
            "authorities": [{"static": {"action": "pass"}}],
            "match": entries,
        },
    }))
    .expect("JSON")
}

#[test]
fn an_exemption_keeps_images_from_no_match_only_where_policy_controller_applies_its_entry() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let digest = push_image(&host, "app", "1", "app")?;
    sign_with_key(&host, "app", &digest, &key, &BTreeMap::new())?;
    push_image(&host, "tools/debug", "1", "debug")?;
    let (app, tools) = (format!("{host}/app:1"), format!("{host}/tools/debug:1"));
    // Signatures required for the app's repository only (not for the exemption's tools).
    let signed = serde_json::to_string(&json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "signed"},
        "spec": {
            "images": [{"glob": format!("{host}/app")}],
            "authorities": [{"key": {"data": key.public_key_pem()}}],
        },
    }))?;
    let cip = Host::for_registry(&host);
    let kind = |name: &str| WORKLOAD_KINDS.iter().find(|k| k.kind == name).expect("a kind");
    let request = |name: &str| {
        workload_request(
            kind(name),
            "default",
            "web",
            &PodImages {
                containers: &[&app, &tools],
                ..PodImages::default()
            },
        )
    };

    // Written as Kubernetes names the objects.
    let kubernetes = settings(
        &[
            signed.clone(),
            exemption(
                &host,
                json!([
                    {"group": "apps", "version": "v1", "resource": "deployments"},
                    {"group": "apps", "version": "v1", "resource": "replicasets"},
                    {"group": "apps", "version": "v1", "resource": "daemonsets"},
                ]),
            ),
        ],
        json!({"noMatchPolicy": "deny"}),
    );
    let response = cip.validate(&request("Deployment"), &kubernetes);
    response.assert_admitted("a Deployment: policy-controller applies {apps, v1, deployments}");
    assert_eq!(
        response
            .mutated()
            .and_then(|o| o.pointer("/spec/template/spec/containers/0/image")),
        Some(&json!(format!("{app}@{digest}"))),
        "the signed image is pinned: {response}"
    );
    let message = response_message(&cip, &request("ReplicaSet"), &kubernetes);
    assert!(
        message.contains(&format!(
            "image {tools} is covered only by policies that admit it without a signature (tools: spec.match[1]: \
             policy-controller applies no entry naming a resource to replicasets"
        )) && message.ends_with("noMatchPolicy: deny applies"),
        "{message}"
    );
    let message = response_message(&cip, &request("DaemonSet"), &kubernetes);
    assert!(
        message.contains(
            "(tools: spec.match[2]: policy-controller's kind table puts DaemonSets in the core group, so it applies \
             group: apps, resource: daemonsets to none: write group: \"\""
        ),
        "{message}"
    );

    // Written as the denials say: DaemonSets in the core group, ReplicaSets by namespace.
    let as_told = settings(
        &[
            signed,
            exemption(
                &host,
                json!([
                    {"group": "apps", "version": "v1", "resource": "deployments"},
                    {"namespaces": ["default"]},
                    {"group": "", "version": "v1", "resource": "daemonsets"},
                ]),
            ),
        ],
        json!({"noMatchPolicy": "deny"}),
    );
    for name in ["Deployment", "ReplicaSet", "DaemonSet"] {
        cip.validate(&request(name), &as_told)
            .assert_admitted(&format!("a {name} under the entries as the denial says"));
    }
    // An unsigned image the exemption does not cover is still refused, whatever the kind.
    push_image(&host, "unsigned", "1", "unsigned")?;
    let unsigned = format!("{host}/unsigned:1");
    let refused = workload_request(
        kind("DaemonSet"),
        "default",
        "web",
        &PodImages {
            containers: &[&unsigned],
            ..PodImages::default()
        },
    );
    cip.validate(&refused, &as_told)
        .assert_refused("an unsigned image no policy exempts");
    Ok(())
}

/// The denial message of `request`, which must be refused.
fn response_message(cip: &Host, request: &Value, settings: &Value) -> String {
    cip.validate(request, settings)
        .assert_refused("an image only the exemption covers, through an entry policy-controller does not apply")
        .to_owned()
}
