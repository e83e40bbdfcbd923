//! The article's `attestation-policy`, pasted verbatim (only its key and the registry host
//! replaced), enforced by the real `policy.wasm` against a loopback registry holding
//! attestations made as `cosign attest` makes them (testkit): under `cip run`, and through
//! `verify_images`, the export the Gatekeeper provider calls. A keyless attestation logged in
//! a test Rekor is verified through a sigstore trust config.

mod common;

use cip::runtime::Verdict;
use common::{Host, HostOptions, article, cip_run, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::{Value, json};
use testkit::{
    KeyPair, LeafRequest, Registry, SPDX_PREDICATE_TYPE, SignerIdentity, TestFulcio, TestRekor, attest_keyless,
    attest_with_key, fetch_attestation_layers, push_attestation_layers, push_image,
};

fn sbom(spdx_id: &str) -> Value {
    json!({"SPDXID": spdx_id, "spdxVersion": "SPDX-2.3", "name": "app", "packages": []})
}

/// Pushes `app/<name>:v1`; returns its reference and digest.
fn image(host: &str, name: &str) -> anyhow::Result<(String, String)> {
    let repo = format!("app/{name}");
    let digest = push_image(host, &repo, "v1", &format!("{name}-content"))?;
    Ok((format!("{host}/{repo}:v1"), digest))
}

#[test]
fn attestation_policy_admits_a_valid_sbom_and_refuses_every_other_case() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let other_key = KeyPair::ecdsa_p256()?;

    let (valid, valid_digest) = image(&host, "valid")?;
    attest_with_key(
        &host,
        "app/valid",
        &valid_digest,
        &key,
        SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-DOCUMENT"),
        None,
    )?;
    let (none, _) = image(&host, "none")?;
    let (provenance, provenance_digest) = image(&host, "provenance")?;
    attest_with_key(
        &host,
        "app/provenance",
        &provenance_digest,
        &key,
        "https://slsa.dev/provenance/v0.2",
        &json!({"builder": {"id": "ci"}}),
        None,
    )?;
    let (failing, failing_digest) = image(&host, "failing")?;
    attest_with_key(
        &host,
        "app/failing",
        &failing_digest,
        &key,
        SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-OTHER"),
        None,
    )?;
    let (other_signer, other_digest) = image(&host, "other-signer")?;
    attest_with_key(
        &host,
        "app/other-signer",
        &other_digest,
        &other_key,
        SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-DOCUMENT"),
        None,
    )?;
    // The valid image's attestation (signed by the right key, about the valid digest) copied
    // under another image's `.att` tag.
    let (copied, copied_digest) = image(&host, "copied")?;
    let layers = fetch_attestation_layers(&host, "app/valid", &valid_digest)?;
    push_attestation_layers(&host, "app/copied", &copied_digest, &layers)?;

    let cip = with_keys(&article("attestation-policy"), &[key.public_key_pem()]);
    let s = settings(&[on_registry(&cip, &host)], json!({}));

    let run = cip_run(&pod("default", &[&valid]), &s, &host, None);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.response["allowed"], true, "a valid SPDX attestation: {run:#?}");
    assert!(
        run.patch()?
            .iter()
            .any(|op| op["value"] == json!(format!("{valid}@{valid_digest}"))),
        "pinned to the attested digest: {run:#?}"
    );

    let refusals = [
        (&none, "no attestations found for"),
        (
            &provenance,
            "attestation sbom: no verified attestation of type https://spdx.dev/Document (found: https://slsa.dev/provenance/v0.2)",
        ),
        (
            &failing,
            "attestation sbom: no spdx attestation satisfies its policy (cue): predicate.SPDXID: conflicting values",
        ),
        (&other_signer, "no attestation verified by the given key"),
        (&copied, "in-toto statement's subject does not name"),
    ];
    for (image, expected) in refusals {
        let run = cip_run(&pod("default", &[image]), &s, &host, None);
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert_eq!(run.response["allowed"], false, "{image}: {run:#?}");
        let message = run.response["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "Pod default/test: image {image} denied by policy attestation-policy: authority authority-0: "
            )) && message.contains(expected),
            "{image}: expected {expected:?} in {message}"
        );
    }

    // The Gatekeeper provider's path: the module's verify_images export, same verdicts.
    let library_host = Host::for_registry(&host);
    let verdicts = library_host.verify_images(
        &s,
        &[
            (&valid, "default"),
            (&none, "default"),
            (&provenance, "default"),
            (&failing, "default"),
            (&other_signer, "default"),
            (&copied, "default"),
        ],
    );
    assert_eq!(
        (verdicts[0].verdict, verdicts[0].digest.as_deref()),
        (Verdict::Allow, Some(valid_digest.as_str())),
        "{verdicts:#?}"
    );
    for (verdict, (image, expected)) in verdicts[1..].iter().zip(refusals) {
        assert_eq!(verdict.verdict, Verdict::Deny, "{image}: {verdict:#?}");
        assert!(verdict.message.contains(expected), "{image}: {verdict:#?}");
    }
    Ok(())
}

#[test]
fn keyless_attestations_are_bound_to_their_rekor_entry_and_identity() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let issuer = "https://accounts.example.com";
    let request = |who: &str| LeafRequest::new(SignerIdentity::Email(who.to_owned()), issuer);

    let (good, good_digest) = image(&host, "good")?;
    attest_keyless(
        &host,
        "app/good",
        &good_digest,
        &fulcio,
        &rekor,
        &request("ci@example.com"),
        SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-DOCUMENT"),
    )?;
    let (stranger, stranger_digest) = image(&host, "stranger")?;
    attest_keyless(
        &host,
        "app/stranger",
        &stranger_digest,
        &fulcio,
        &rekor,
        &request("mallory@example.com"),
        SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-DOCUMENT"),
    )?;
    // The good attestation with the stranger's Rekor bundle: the SET verifies, the entry
    // describes another envelope.
    let mut layer = fetch_attestation_layers(&host, "app/good", &good_digest)?.remove(0);
    let stranger_layer = fetch_attestation_layers(&host, "app/stranger", &stranger_digest)?.remove(0);
    layer.annotations.insert(
        testkit::BUNDLE_ANNOTATION.to_owned(),
        stranger_layer.annotations[testkit::BUNDLE_ANNOTATION].clone(),
    );
    push_attestation_layers(&host, "app/good", &good_digest, &[layer])?;

    let cip = format!(
        r#"apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: keyless-sbom
spec:
  images:
  - glob: "{host}/**"
  authorities:
  - name: ci
    keyless:
      url: https://fulcio.sigstore.dev
      identities:
      - issuer: {issuer}
        subject: ci@example.com
    attestations:
    - name: sbom
      predicateType: spdxjson
      policy:
        type: cue
        data: |
          predicate: SPDXID: "SPDXRef-DOCUMENT"
"#
    );
    let s = settings(&[cip], json!({}));
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let library_host = Host::new(HostOptions::for_registry(&host).with_trust_config(&trust));

    // The good image now carries the layer with the swapped bundle: refused.
    let response = library_host.validate(&pod("default", &[&good]), &s);
    let message = response.assert_refused("a keyless attestation whose Rekor bundle is another entry");
    assert!(
        message.contains("Rekor bundle describes another attestation"),
        "{message}"
    );

    // Restore the genuine layer: admitted, under cip run as well.
    let (fresh, fresh_digest) = image(&host, "fresh")?;
    attest_keyless(
        &host,
        "app/fresh",
        &fresh_digest,
        &fulcio,
        &rekor,
        &request("ci@example.com"),
        SPDX_PREDICATE_TYPE,
        &sbom("SPDXRef-DOCUMENT"),
    )?;
    library_host
        .validate(&pod("default", &[&fresh]), &s)
        .assert_admitted("a keyless SPDX attestation by ci@example.com");
    let run = cip_run(&pod("default", &[&fresh]), &s, &host, Some(&trust));
    assert_eq!(run.response["allowed"], true, "{run:#?}");

    let response = library_host.validate(&pod("default", &[&stranger]), &s);
    let message = response.assert_refused("a keyless attestation by another identity");
    assert!(message.contains("no keyless attestation by"), "{message}");
    Ok(())
}

/// CUE's `=~` is Go's regexp: `\d` is `[0-9]`. An SBOM whose version is written with
/// ARABIC-INDIC digits (U+0662, U+0663) does not satisfy `=~"^SPDX-\d+\.\d+$"` under
/// policy-controller, nor here; with `regex`'s Unicode `\d` it did.
#[test]
fn cue_regular_expressions_read_digits_as_go_does() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let attested = |name: &str, version: &str| -> anyhow::Result<String> {
        let (image, digest) = image(&host, name)?;
        let mut predicate = sbom("SPDXRef-DOCUMENT");
        predicate["spdxVersion"] = json!(version);
        attest_with_key(
            &host,
            &format!("app/{name}"),
            &digest,
            &key,
            SPDX_PREDICATE_TYPE,
            &predicate,
            None,
        )?;
        Ok(image)
    };
    let ascii = attested("ascii", "SPDX-2.3")?;
    let arabic = attested("arabic", "SPDX-\u{662}.\u{663}")?;

    // The article's CUE, its SPDXID constraint replaced (a CUE string: `\\d` is `\d`).
    let article_cue = r#"SPDXID: "SPDXRef-DOCUMENT""#;
    let policy = article("attestation-policy");
    assert!(policy.contains(article_cue), "{policy}");
    let cip = with_keys(
        &policy.replace(article_cue, r#"spdxVersion: =~"^SPDX-\\d+\\.\\d+$""#),
        &[key.public_key_pem()],
    );
    let s = settings(&[on_registry(&cip, &host)], json!({}));

    let run = cip_run(&pod("default", &[&ascii]), &s, &host, None);
    assert_eq!(run.response["allowed"], true, "SPDX-2.3: {run:#?}");
    let run = cip_run(&pod("default", &[&arabic]), &s, &host, None);
    assert_eq!(run.response["allowed"], false, "ARABIC-INDIC digits: {run:#?}");
    let message = run.response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("attestation sbom: no spdx attestation satisfies its policy (cue): predicate.spdxVersion"),
        "{message}"
    );
    Ok(())
}
