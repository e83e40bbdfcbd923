//! The article's `multi-sig-policy`, pasted verbatim (only its two keys and the registry host
//! replaced), enforced by the real `policy.wasm` under `cip run` against a loopback registry
//! holding images signed with sigstore-rs: both signatures are required, as its comment says.
//! The same rule written in Rego runs through `cip`'s Rego capability.

mod common;

use std::collections::BTreeMap;

use common::{Host, article, cip_run, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::{Value, json};
use testkit::{KeyPair, Registry, push_image, sign_with_key};

/// Pushes `critical/<name>:v1` signed by `keys`; returns its reference and digest.
fn critical_image(host: &str, name: &str, keys: &[&KeyPair]) -> anyhow::Result<(String, String)> {
    let repo = format!("critical/{name}");
    let digest = push_image(host, &repo, "v1", &format!("{name}-content"))?;
    for key in keys {
        sign_with_key(host, &repo, &digest, key, &BTreeMap::new())?;
    }
    Ok((format!("{host}/{repo}:v1"), digest))
}

#[test]
fn multi_sig_policy_requires_both_signatures_under_cip_run() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let security = KeyPair::ecdsa_p256()?;
    let release = KeyPair::ecdsa_p256()?;
    let (both, both_digest) = critical_image(&host, "both", &[&security, &release])?;
    let (security_only, _) = critical_image(&host, "security-only", &[&security])?;
    let (release_only, _) = critical_image(&host, "release-only", &[&release])?;
    let (unsigned, _) = critical_image(&host, "unsigned", &[])?;
    let cip = with_keys(
        &article("multi-sig-policy"),
        &[security.public_key_pem(), release.public_key_pem()],
    );
    let s = settings(&[on_registry(&cip, &host)], json!({}));

    let run = cip_run(&pod("default", &[&both]), &s, &host, None);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.response["allowed"], true, "signed by both keys: {run:#?}");
    let patch = run.patch()?;
    assert!(
        patch
            .iter()
            .any(|op| op["value"] == json!(format!("{both}@{both_digest}"))),
        "the image is pinned to the digest both signatures cover: {patch:?}"
    );

    for (image, missing) in [(&security_only, "release-team"), (&release_only, "security-team")] {
        let run = cip_run(&pod("default", &[image]), &s, &host, None);
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert_eq!(run.response["allowed"], false, "{image}: {run:#?}");
        let message = run.response["status"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            message,
            format!(
                "Pod default/test: image {image} denied by policy multi-sig-policy: spec.policy (cue): \
                 authorizations.\"{missing}\": conflicting values true (policy) and false (input)"
            ),
            "{run:#?}"
        );
    }

    let run = cip_run(&pod("default", &[&unsigned]), &s, &host, None);
    assert_eq!(run.response["allowed"], false, "{run:#?}");
    let message = run.response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("authority security-team: ") && message.contains("authority release-team: "),
        "with no passing authority the policy fails as without spec.policy: {message}"
    );
    Ok(())
}

/// The multi-signature rule in Rego, evaluated by `cip`'s `cluster-image-policy/policy/v1/rego`.
const REGO_BOTH: &str = r#"package sigstore
default isCompliant = false
isCompliant {
  input.authorizations["security-team"]
  input.authorizations["release-team"]
  count(input.authorityMatches) == 2
}
"#;

#[test]
fn the_same_rule_in_rego_runs_in_the_cip_host() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let security = KeyPair::ecdsa_p256()?;
    let release = KeyPair::ecdsa_p256()?;
    let (both, _) = critical_image(&host, "both", &[&security, &release])?;
    let (security_only, _) = critical_image(&host, "security-only", &[&security])?;
    let cip = with_keys(
        &article("multi-sig-policy"),
        &[security.public_key_pem(), release.public_key_pem()],
    );
    let mut s = settings(&[on_registry(&cip, &host)], json!({}));
    s["policies"][0]["spec"]["policy"] = json!({"type": "rego", "data": REGO_BOTH});
    let cip_host = Host::for_registry(&host);
    cip_host.validate_settings(&s).map_err(anyhow::Error::msg)?;

    cip_host
        .validate(&pod("default", &[&both]), &s)
        .assert_admitted("signed by both keys, Rego policy");
    let response = cip_host.validate(&pod("default", &[&security_only]), &s);
    let message = response.assert_refused("signed by one key, Rego policy");
    assert_eq!(
        message,
        format!(
            "Pod default/test: image {security_only} denied by policy multi-sig-policy: spec.policy (rego): \
             policy is not compliant for query 'isCompliant = data.sigstore.isCompliant'"
        )
    );

    // A Rego text that does not compile is reported by the host, naming the policy and language.
    s["policies"][0]["spec"]["policy"] =
        json!({"type": "rego", "data": "package sigstore\nisCompliant { input.x == }\n"});
    let response = cip_host.validate(&pod("default", &[&both]), &s);
    let message: Value = json!(response.assert_refused("a Rego policy that does not compile"));
    assert!(
        message.as_str().is_some_and(
            |m| m.contains("denied by policy multi-sig-policy: spec.policy (rego): ")
                && m.contains("the Rego policy does not compile")
        ),
        "{message}"
    );
    Ok(())
}
