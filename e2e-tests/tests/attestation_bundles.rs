//! cosign v3's default attestation storage (`cosign attest` without
//! `--new-bundle-format=false`: a sigstore bundle attached as an OCI referrer; the loopback
//! docker-registry has no referrers API, so the `sha256-<hex>` referrers tag schema is read)
//! under the article's `attestation-policy` pasted as is (key and registry host replaced),
//! through `cip run`, the real module and the real registry: an SPDX attestation bundle of the
//! image admits it; a genuine bundle of another digest attached to an image is refused;
//! `signatureFormat: legacy` reads the `.att` tag only.

mod common;

use common::{article, cip_run, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::json;
use testkit::{
    BundleOptions, KeyPair, Registry, SPDX_PREDICATE_TYPE, TestFulcio, TestRekor, attach_bundle, key_bundle, push_image,
};

#[test]
fn attestation_policy_admits_an_spdx_bundle_referrer_and_refuses_one_for_another_digest() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let key = KeyPair::ecdsa_p256()?;
    let spdx = BundleOptions {
        predicate_type: Some(SPDX_PREDICATE_TYPE.to_owned()),
        predicate: Some(json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3", "packages": []})),
        ..BundleOptions::default()
    };

    let valid = push_image(&host, "app", "valid", "app:valid")?;
    attach_bundle(&host, "app", &valid, &key_bundle(&valid, &key, Some(&rekor), &spdx)?)?;
    // The valid image's genuine attestation bundle, attached to another image.
    let moved = push_image(&host, "app", "moved", "app:moved")?;
    attach_bundle(&host, "app", &moved, &key_bundle(&valid, &key, Some(&rekor), &spdx)?)?;

    let cip = with_keys(&article("attestation-policy"), &[key.public_key_pem()]);
    let s = settings(&[on_registry(&cip, &host)], json!({}));

    let image = format!("{host}/app:valid");
    let run = cip_run(&pod("default", &[&image]), &s, &host, Some(&trust));
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.response["allowed"], true, "an SPDX attestation bundle: {run:#?}");
    assert!(
        run.patch()?
            .iter()
            .any(|op| op["value"] == json!(format!("{image}@{valid}"))),
        "pinned to the attested digest: {run:#?}"
    );

    let image = format!("{host}/app:moved");
    let run = cip_run(&pod("default", &[&image]), &s, &host, Some(&trust));
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.response["allowed"], false, "{run:#?}");
    let message = run.response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "Pod default/test: image {image} denied by policy attestation-policy: authority authority-0: "
        )) && message.contains(&format!("in-toto statement's subject does not name {moved}")),
        "{message}"
    );

    // signatureFormat: legacy reads the .att tag only, so the bundle-attested image is refused.
    let mut legacy = s.clone();
    legacy["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!("legacy");
    let image = format!("{host}/app:valid");
    let run = cip_run(&pod("default", &[&image]), &legacy, &host, Some(&trust));
    assert_eq!(run.response["allowed"], false, "{run:#?}");
    let message = run.response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no attestations found for"), "{message}");
    Ok(())
}
