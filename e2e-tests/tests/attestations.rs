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
    CueAnswer, CueVerdict, IN_TOTO_PAYLOAD_TYPE, KeyPair, LeafRequest, Registry, SPDX_PREDICATE_TYPE, SignerIdentity,
    TestFulcio, TestRekor, append_attestation_layer, attest_keyless, attest_with_key, envelope_layer,
    fetch_attestation_layers, in_toto_statement, push_attestation_layers, push_image,
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

/// CUE compares numbers as exact decimals; the module holds 64-bit floats. A statement whose
/// predicate writes `7.0000000000000001` (the float 7.0, above 7 for CUE) is refused by real CUE
/// under `score: <=7` and must not pass here: the host hands the module the statement as
/// signed, and the module refuses a number a float does not keep, naming it. Each image's
/// signed statement text is also decided by real CUE (cue-wasm, `make test-tools`): where the
/// module admits, CUE admits.
#[test]
fn attested_numbers_a_float_cannot_hold_do_not_pass_a_cue_bound() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    // Signs a statement whose predicate's `score` is written `score` verbatim.
    let attested = |name: &str, score: &str| -> anyhow::Result<(String, String)> {
        let (image, digest) = image(&host, name)?;
        let repo = format!("app/{name}");
        let mut predicate = sbom("SPDXRef-DOCUMENT");
        predicate["score"] = json!("SCORE");
        let statement = in_toto_statement(&host, &repo, &digest, SPDX_PREDICATE_TYPE, &predicate);
        let text = serde_json::to_string(&statement)?.replace("\"SCORE\"", score);
        let layer = envelope_layer(IN_TOTO_PAYLOAD_TYPE, text.as_bytes(), &statement, &key)?;
        append_attestation_layer(&host, &repo, &digest, layer)?;
        Ok((image, text))
    };
    let bound = attested("bound", "7")?;
    let above = attested("above", "7.5")?;
    let digits = attested("digits", "7.0000000000000001")?;
    let below_digits = attested("below-digits", "6.99999999999999999999")?;
    let exact_int = attested("exact-int", "9007199254740993")?;
    // A float's own 17-digit decimal, which serde_json reads one float too low without
    // `float_roundtrip` (as the module did): below the bound then, above it for CUE.
    let seventeen = attested("seventeen", "7.2316896362404055")?;
    // Written 100000000000000020, held as 100000000000000016: above the bound for CUE.
    let large = attested("large", "1.0000000000000002e17")?;

    let article_cue = r#"SPDXID: "SPDXRef-DOCUMENT""#;
    let policy = article("attestation-policy");
    assert!(policy.contains(article_cue), "{policy}");
    let cip = with_keys(&policy.replace(article_cue, "score: <=7"), &[key.public_key_pem()]);
    let s = settings(&[on_registry(&cip, &host)], json!({}));
    // The same check for an integer beyond 2^53 against the float bound it rounds to.
    let float_bound = with_keys(
        &policy.replace(article_cue, "score: <=9007199254740992.0"),
        &[key.public_key_pem()],
    );
    let s_float = settings(&[on_registry(&float_bound, &host)], json!({}));
    let close_bound = with_keys(
        &policy.replace(article_cue, "score: <=7.231689636240405"),
        &[key.public_key_pem()],
    );
    let s_close = settings(&[on_registry(&close_bound, &host)], json!({}));
    let integer_bound = with_keys(
        &policy.replace(article_cue, "score: <100000000000000018"),
        &[key.public_key_pem()],
    );
    let s_integer = settings(&[on_registry(&integer_bound, &host)], json!({}));

    let cue = |bound: &str, text: &str| -> anyhow::Result<bool> {
        let policy = format!("predicate: {{\n  {bound}\n}}\n");
        let answers = testkit::cue_verdicts(&[(policy, vec![text.to_owned()])])?;
        match &answers[0] {
            CueAnswer::Verdicts(v) => match &v[0] {
                CueVerdict::Ok { .. } => Ok(true),
                CueVerdict::Conflict(_) => Ok(false),
                CueVerdict::Unknown(m) => anyhow::bail!("CUE: {m}"),
            },
            other => anyhow::bail!("CUE: {other:?}"),
        }
    };
    let cases = [
        (&bound, &s, "score: <=7", Some(true)),
        (&above, &s, "score: <=7", Some(false)),
        (&digits, &s, "score: <=7", Some(false)),
        // CUE admits it (below 7); read as 7.0 it would compare otherwise elsewhere: refused.
        (&below_digits, &s, "score: <=7", None),
        (&exact_int, &s_float, "score: <=9007199254740992.0", Some(false)),
        (&seventeen, &s_close, "score: <=7.231689636240405", Some(false)),
        (&large, &s_integer, "score: <100000000000000018", Some(false)),
    ];
    for ((image, text), settings, bound, admitted) in cases {
        let by_cue = cue(bound, text)?;
        let run = cip_run(&pod("default", &[image]), settings, &host, None);
        let allowed = run.response["allowed"] == true;
        assert!(
            !allowed || by_cue,
            "{text} under {bound}: admitted here, refused by CUE: {run:#?}"
        );
        match admitted {
            Some(expected) => {
                assert_eq!(by_cue, expected, "CUE on {text} under {bound}");
                assert_eq!(allowed, expected, "{text} under {bound}: {run:#?}");
            }
            None => {
                assert!(!allowed, "{text}: {run:#?}");
                let message = run.response["status"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("6.99999999999999999999") && message.contains("64-bit float"),
                    "{message}"
                );
            }
        }
    }
    let run = cip_run(&pod("default", &[&digits.0]), &s, &host, None);
    let message = run.response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("7.0000000000000001") && message.contains("more digits than a 64-bit float keeps"),
        "{message}"
    );
    Ok(())
}

/// policy-controller does not hand an attestation's policy the signed statement's bytes: it
/// decodes them with Go into in-toto-golang's statement (by the predicate type as written, a
/// typed struct for `slsaprovenance`) and encodes that again. A signed statement without a
/// `predicate` is `"predicate": null` there, so the article's `SPDXID: "SPDXRef-DOCUMENT"`
/// fails; a provenance whose builder is written `"Builder": {"ID": …}` is `builder.id` there.
/// Read as written, both passed here (the constraint held vacuously over a missing field).
#[test]
fn statements_are_judged_as_policy_controller_reads_them() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let attested = |name: &str, predicate_type: &str, predicate: Option<Value>| -> anyhow::Result<String> {
        let (image, digest) = image(&host, name)?;
        let repo = format!("app/{name}");
        let mut statement = in_toto_statement(&host, &repo, &digest, predicate_type, &json!({}));
        match predicate {
            Some(predicate) => statement["predicate"] = predicate,
            None => {
                statement.as_object_mut().expect("an object").remove("predicate");
            }
        }
        let text = serde_json::to_vec(&statement)?;
        append_attestation_layer(
            &host,
            &repo,
            &digest,
            envelope_layer(IN_TOTO_PAYLOAD_TYPE, &text, &statement, &key)?,
        )?;
        Ok(image)
    };
    let spdx = with_keys(&article("attestation-policy"), &[key.public_key_pem()]);
    let s_spdx = settings(&[on_registry(&spdx, &host)], json!({}));
    let provenance = spdx
        .replace("predicateType: spdx", "predicateType: slsaprovenance")
        .replace(
            r#"SPDXID: "SPDXRef-DOCUMENT""#,
            r#"builder: id: "https://ci.example.com/trusted""#,
        );
    assert_ne!(provenance, spdx);
    let s_provenance = settings(&[on_registry(&provenance, &host)], json!({}));

    let cases = [
        (
            attested("sbom", SPDX_PREDICATE_TYPE, Some(sbom("SPDXRef-DOCUMENT")))?,
            &s_spdx,
            true,
        ),
        (attested("no-predicate", SPDX_PREDICATE_TYPE, None)?, &s_spdx, false),
        (
            attested(
                "trusted-builder",
                "https://slsa.dev/provenance/v0.2",
                Some(json!({"builder": {"id": "https://ci.example.com/trusted"}, "buildType": "b"})),
            )?,
            &s_provenance,
            true,
        ),
        (
            attested(
                "other-builder",
                "https://slsa.dev/provenance/v0.2",
                Some(json!({"Builder": {"ID": "https://evil.example.com"}, "buildType": "b"})),
            )?,
            &s_provenance,
            false,
        ),
    ];
    for (image, settings, admitted) in cases {
        let run = cip_run(&pod("default", &[&image]), settings, &host, None);
        assert_eq!(run.response["allowed"], admitted, "{image}: {run:#?}");
    }
    Ok(())
}
