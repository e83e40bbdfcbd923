//! Attestation authorities with the host mocked: settings refusals, predicate types, the
//! article's CUE policy on the statement, Rego through the host, any-of identities, and the
//! `authorityMatches` a CIP-level policy sees.

use serde_json::{Value, json};

use super::predicate_uri;
use crate::crypto::tests::P256_PEM;
use crate::host::mock::MockHost;
use crate::host::{CIP_VERIFY_ATTESTATIONS, Capability};
use crate::policy::rego::CIP_POLICY_REGO;
use crate::tests::{DIGEST, article, check_settings, pod, run, settings, with_keys};

const IMAGE: &str = "myregistry.com/app:v1";

fn statement(predicate_type: &str, predicate: Value) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": "myregistry.com/app", "digest": {"sha256": DIGEST.trim_start_matches("sha256:")}}],
        "predicate": predicate,
    })
}

fn spdx(spdx_id: &str) -> Value {
    statement(
        "https://spdx.dev/Document",
        json!({"SPDXID": spdx_id, "spdxVersion": "SPDX-2.3"}),
    )
}

/// A host whose attestation capability answers `statements` for the key request.
fn host_with(statements: Vec<Value>) -> MockHost {
    MockHost::new(move |capability, payload| {
        assert_eq!(capability, CIP_VERIFY_ATTESTATIONS, "{payload}");
        assert_eq!(payload["v2_verify"]["type"], "SigstorePubKeyVerify", "{payload}");
        assert_eq!(payload["v2_verify"]["pub_keys"][0], P256_PEM);
        let answers: Vec<Value> = statements
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"id": format!("sha256:{i:064}"), "predicateType": s["predicateType"], "statement": s}))
            .collect();
        Ok(serde_json::to_vec(&json!({"digest": DIGEST, "statements": answers})).unwrap_or_default())
    })
}

fn article_settings() -> Value {
    settings(&[with_keys(&article("attestation-policy"), &[P256_PEM])], json!({}))
}

#[test]
fn cosign_short_names_map_as_cosign_maps_them() {
    for (short, uri) in [
        ("custom", "https://cosign.sigstore.dev/attestation/v1"),
        ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ("spdx", "https://spdx.dev/Document"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("link", "https://in-toto.io/Link/v1"),
        ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        ("openvex", "https://openvex.dev/ns"),
        (
            "https://example.com/my-predicate/v1",
            "https://example.com/my-predicate/v1",
        ),
    ] {
        assert_eq!(predicate_uri(short).as_deref(), Ok(uri), "{short}");
    }
    for bad in ["sbom", "spdx json", "://x", "1http://x"] {
        let error = predicate_uri(bad).unwrap_err();
        assert!(error.contains("neither one of cosign's types"), "{bad}: {error}");
    }
}

#[test]
fn the_article_policy_is_valid_with_a_real_key() {
    assert_eq!(check_settings(&article_settings()), Ok(()));
}

#[test]
fn bad_entries_are_refused_naming_the_field() {
    let cases: [(Value, &str); 7] = [
        (
            json!([]),
            "policies[0].spec.authorities[0].attestations: attestations must be a non-empty list",
        ),
        (
            json!([{"predicateType": "spdx"}]),
            "policies[0].spec.authorities[0].attestations[0].name: name is required",
        ),
        (
            json!([{"name": "a"}]),
            "policies[0].spec.authorities[0].attestations[0].predicateType: predicateType is required",
        ),
        (
            json!([{"name": "a", "predicateType": "sbom"}]),
            "policies[0].spec.authorities[0].attestations[0].predicateType: predicateType `sbom` is neither",
        ),
        (
            json!([{"name": "a", "predicateType": "spdx"}, {"name": "a", "predicateType": "vuln"}]),
            "policies[0].spec.authorities[0].attestations[1].name: `a` names two attestations",
        ),
        (
            json!([{"name": "a", "predicateType": "spdx", "typ": "x"}]),
            "policies[0].spec.authorities[0].attestations[0]: unknown field `typ`",
        ),
        (
            json!([{"name": "a", "predicateType": "spdx", "policy": {"type": "cue", "data": "predicate: {", "includeSpec": true}}]),
            "policies[0].spec.authorities[0].attestations[0].policy.data: CUE policy",
        ),
    ];
    for (attestations, expected) in cases {
        let mut s = article_settings();
        s["policies"][0]["spec"]["authorities"][0]["attestations"] = attestations.clone();
        let error = check_settings(&s).unwrap_err();
        assert!(error.starts_with(expected), "{attestations}: {error}");
    }
    let mut s = article_settings();
    s["policies"][0]["spec"]["authorities"][0]["attestations"][0]["policy"]["includeSpec"] = json!(true);
    let error = check_settings(&s).unwrap_err();
    assert!(
        error.starts_with("policies[0].spec.authorities[0].attestations[0].policy: fetchConfigFile, includeSpec"),
        "{error}"
    );
    let mut s = article_settings();
    s["policies"][0]["spec"]["authorities"][0]["annotations"] = json!({"env": "prod"});
    let error = check_settings(&s).unwrap_err();
    assert!(
        error.starts_with("policies[0].spec.authorities[0].annotations: annotations constrain signature payloads"),
        "{error}"
    );
    let mut s = article_settings();
    let authority = &mut s["policies"][0]["spec"]["authorities"][0];
    if let Some(a) = authority.as_object_mut() {
        a.remove("key");
    }
    authority["static"] = json!({"action": "pass"});
    let error = check_settings(&s).unwrap_err();
    assert!(
        error.starts_with("policies[0].spec.authorities[0].attestations: a static authority signs nothing"),
        "{error}"
    );
}

#[test]
fn a_valid_spdx_attestation_passes_the_article_policy() {
    let mut host = host_with(vec![spdx("SPDXRef-DOCUMENT")]);
    let response = run(&pod("default", &[IMAGE]), &article_settings(), &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        host.calls.len(),
        1,
        "attestations replace the signature check: {:?}",
        host.calls
    );
    assert_eq!(host.calls[0].1["v2_verify"]["image"], IMAGE);
}

#[test]
fn a_predicate_failing_the_cue_policy_is_refused_with_the_conflict() {
    let mut host = host_with(vec![spdx("SPDXRef-OTHER")]);
    let response = run(&pod("default", &[IMAGE]), &article_settings(), &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    let message = response["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("authority authority-0: attestation sbom: no spdx attestation satisfies its policy (cue): predicate.SPDXID: conflicting values"),
        "{message}"
    );
}

#[test]
fn another_predicate_type_is_refused_naming_what_was_found() {
    let mut host = host_with(vec![statement("https://slsa.dev/provenance/v0.2", json!({}))]);
    let response = run(&pod("default", &[IMAGE]), &article_settings(), &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    let message = response["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("attestation sbom: no verified attestation of type https://spdx.dev/Document (found: https://slsa.dev/provenance/v0.2)"),
        "{message}"
    );
}

#[test]
fn one_satisfying_statement_among_several_is_enough() {
    let mut host = host_with(vec![spdx("SPDXRef-OTHER"), spdx("SPDXRef-DOCUMENT")]);
    let response = run(&pod("default", &[IMAGE]), &article_settings(), &mut host);
    assert_eq!(response["accepted"], true, "{response}");
}

#[test]
fn a_statement_go_cannot_read_does_not_count_even_without_a_policy() {
    // policy-controller reads every statement into the struct of its type
    // (`AttestationToPayloadJSON`) before looking for a policy, and skips those Go refuses.
    let mut s = article_settings();
    s["policies"][0]["spec"]["authorities"][0]["attestations"] = json!([{"name": "scan", "predicateType": "vuln"}]);
    assert_eq!(check_settings(&s), Ok(()));
    let vuln = "https://cosign.sigstore.dev/attestation/vuln/v1";
    for predicate in [
        json!({"metadata": {"scanStartedOn": "yesterday"}}),
        json!({"scanner": "not-a-struct"}),
        json!({"invocation": {"uri": 5}}),
    ] {
        let mut host = host_with(vec![statement(vuln, predicate.clone())]);
        let response = run(&pod("default", &[IMAGE]), &s, &mut host);
        assert_eq!(response["accepted"], false, "{predicate}: {response}");
        assert!(
            response["message"]
                .as_str()
                .unwrap_or_default()
                .contains("not read here as policy-controller reads it"),
            "{response}"
        );
    }
    let readable = json!({"metadata": {"scanStartedOn": "2026-12-06T10:00:00Z"}, "scanner": {"uri": "trivy"}});
    let mut host = host_with(vec![statement(vuln, readable)]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
}

#[test]
fn every_listed_attestation_is_required() {
    let mut s = article_settings();
    if let Some(list) = s["policies"][0]["spec"]["authorities"][0]["attestations"].as_array_mut() {
        list.push(json!({"name": "provenance", "predicateType": "slsaprovenance1"}));
    }
    let mut host = host_with(vec![spdx("SPDXRef-DOCUMENT")]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    assert!(
        response["message"]
            .as_str()
            .unwrap_or_default()
            .contains("attestation provenance: no verified attestation of type https://slsa.dev/provenance/v1"),
        "{response}"
    );
    let mut host = host_with(vec![
        spdx("SPDXRef-DOCUMENT"),
        statement("https://slsa.dev/provenance/v1", json!({})),
    ]);
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
}

#[test]
fn a_stock_host_fails_naming_the_missing_capability() {
    let mut host = MockHost::new(|capability: Capability, _| Err(format!("unknown binding: {}", capability.binding)));
    let response = run(&pod("default", &[IMAGE]), &article_settings(), &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    let message = response["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("host capability cluster-image-policy/oci/v1/verify_attestations, which only cip implements: on a stock Kubewarden host run `cip run` or the cip Gatekeeper provider"),
        "{message}"
    );
}

#[test]
fn a_malformed_answer_or_digest_is_a_failure() {
    for answer in [json!({"statements": []}), json!({"digest": "latest", "statements": []})] {
        let mut host = MockHost::new(move |_, _| Ok(serde_json::to_vec(&answer).unwrap_or_default()));
        let response = run(&pod("default", &[IMAGE]), &article_settings(), &mut host);
        assert_eq!(response["accepted"], false, "{response}");
    }
}

#[test]
fn rego_attestation_policies_run_in_the_host_on_the_statement() {
    let rego = "package sigstore\nisCompliant { input.predicate.SPDXID == \"SPDXRef-DOCUMENT\" }\n";
    let mut s = article_settings();
    s["policies"][0]["spec"]["authorities"][0]["attestations"][0]["policy"] = json!({"type": "rego", "data": rego});
    let mut host = MockHost::new(|capability, payload| {
        if capability == CIP_POLICY_REGO {
            assert_eq!(
                payload["input"]["predicateType"], "https://spdx.dev/Document",
                "the whole statement: {payload}"
            );
            let compliant = payload["input"]["predicate"]["SPDXID"] == "SPDXRef-DOCUMENT";
            return Ok(serde_json::to_vec(&json!({"compliant": compliant})).unwrap_or_default());
        }
        let statement = spdx("SPDXRef-DOCUMENT");
        Ok(serde_json::to_vec(&json!({"digest": DIGEST, "statements": [{"id": "sha256:00", "predicateType": statement["predicateType"], "statement": statement}]})).unwrap_or_default())
    });
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(host.calls.iter().filter(|(c, _)| *c == CIP_POLICY_REGO).count(), 1);
}

/// A host whose statements are `spdx(id)` for each of `ids`, and whose Rego capability answers
/// compliant for `SPDXRef-DOCUMENT`, with `warning` when `SPDXRef-WARNED`, and not compliant
/// otherwise.
fn host_with_rego_warning(ids: &'static [&'static str], warning: &'static str) -> MockHost {
    MockHost::new(move |capability, payload| {
        if capability == CIP_POLICY_REGO {
            let answer = match payload["input"]["predicate"]["SPDXID"].as_str() {
                Some("SPDXRef-DOCUMENT") => json!({"compliant": true}),
                Some("SPDXRef-WARNED") => json!({"compliant": true, "warning": warning}),
                _ => json!({"compliant": false, "error": "wrong SBOM"}),
            };
            return Ok(serde_json::to_vec(&answer).unwrap_or_default());
        }
        let statements: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let s = spdx(id);
                json!({"id": format!("sha256:{i:064}"), "predicateType": s["predicateType"], "statement": s})
            })
            .collect();
        Ok(serde_json::to_vec(&json!({"digest": DIGEST, "statements": statements})).unwrap_or_default())
    })
}

#[test]
fn a_compliant_rego_result_with_a_warning_does_not_satisfy_the_attestation() {
    // policy-controller skips such a statement (`err != nil || warn != nil`).
    let rego = "package sigstore\nisCompliant[r] { r := {\"result\": true, \"warning\": \"SBOM is stale\"} }\n";
    let mut s = article_settings();
    s["policies"][0]["spec"]["authorities"][0]["attestations"][0]["policy"] = json!({"type": "rego", "data": rego});

    let mut host = host_with_rego_warning(&["SPDXRef-WARNED"], "SBOM is stale");
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    let message = response["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "authority authority-0: attestation sbom: no spdx attestation satisfies its policy (rego): \
             policy returned a warning: SBOM is stale; an attestation with a warning does not satisfy it"
        ),
        "{message}"
    );

    // Another statement of the type without a warning still satisfies it.
    let mut host = host_with_rego_warning(&["SPDXRef-WARNED", "SPDXRef-DOCUMENT"], "SBOM is stale");
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert!(response["warnings"].is_null(), "{response}");

    // A non-compliant one is refused with its error, as before.
    let mut host = host_with_rego_warning(&["SPDXRef-OTHER"], "SBOM is stale");
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    assert!(
        response["message"]
            .as_str()
            .unwrap_or_default()
            .contains("(rego): wrong SBOM"),
        "{response}"
    );
}

#[test]
fn keyless_identities_are_any_of_and_cip_level_policies_see_the_attestations() {
    let cip = r#"apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: keyless-sbom
spec:
  images:
  - glob: "myregistry.com/**"
  authorities:
  - name: ci
    keyless:
      url: https://fulcio.sigstore.dev
      identities:
      - issuer: https://accounts.example.com
        subject: first@example.com
      - issuer: https://accounts.example.com
        subjectRegExp: .*@example.com
    attestations:
    - name: sbom
      predicateType: spdxjson
  policy:
    type: cue
    data: |
      authorityMatches: ci: attestations: sbom: [{id: "00", predicateType: "spdxjson", issuer: "https://accounts.example.com"}]
"#;
    let s = settings(&[cip.to_owned()], json!({}));
    assert_eq!(check_settings(&s), Ok(()));
    let mut host = MockHost::new(|capability, payload| {
        assert_eq!(capability, CIP_VERIFY_ATTESTATIONS);
        if payload.get("v2_verify").is_some() {
            assert_eq!(payload["v2_verify"]["type"], "SigstoreKeylessVerify", "{payload}");
            return Err("no attestation by first@example.com".to_owned());
        }
        assert_eq!(
            payload["keyless_regexp"]["subject_regexp"], ".*@example.com",
            "{payload}"
        );
        let statement = spdx("SPDXRef-DOCUMENT");
        Ok(serde_json::to_vec(&json!({"digest": DIGEST, "statements": [{
            "id": "sha256:00", "predicateType": statement["predicateType"], "statement": statement,
            "subject": "second@example.com", "issuer": "https://accounts.example.com"}]}))
        .unwrap_or_default())
    });
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(host.calls.len(), 2, "{:?}", host.calls);

    // The CIP-level policy really reads the attestations: another issuer there is a conflict.
    let strict = settings(
        &[cip.replace(
            "issuer: \"https://accounts.example.com\"}]",
            "issuer: \"https://other.example\"}]",
        )],
        json!({}),
    );
    assert_ne!(strict, s);
    let response = run(&pod("default", &[IMAGE]), &strict, &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    let message = response["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.policy (cue): authorityMatches.ci.attestations.sbom")
            && message.contains("conflicting values"),
        "{message}"
    );
}

#[test]
fn a_kms_key_signs_attestations_with_the_key_the_host_resolves() {
    use crate::host::CIP_KMS_PUBLIC_KEY;
    const URI: &str = "hashivault://cosign";
    let mut s = article_settings();
    s["policies"][0]["spec"]["authorities"][0]["key"] = json!({"kms": URI});
    assert_eq!(check_settings(&s), Ok(()));
    let answer = json!({
        "digest": DIGEST,
        "statements": [{"id": format!("sha256:{:064}", 0), "predicateType": "https://spdx.dev/Document",
                        "statement": spdx("SPDXRef-DOCUMENT")}],
    });
    let mut host = MockHost::new(move |capability, payload| {
        if capability == CIP_KMS_PUBLIC_KEY {
            assert_eq!(payload, &json!({"uri": URI}));
            return Ok(json!({"pem": P256_PEM}).to_string().into_bytes());
        }
        assert_eq!(capability, CIP_VERIFY_ATTESTATIONS, "{payload}");
        assert_eq!(
            payload["v2_verify"]["pub_keys"],
            json!([P256_PEM]),
            "the resolved key is the signer"
        );
        Ok(answer.to_string().into_bytes())
    });
    let response = run(&pod("default", &[IMAGE]), &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(host.calls.len(), 2, "{:?}", host.calls);

    // A stock host cannot resolve the key: the authority fails naming what is missing.
    let mut stock = MockHost::new(|_, _| Err("unknown binding: cluster-image-policy".to_owned()));
    let response = run(&pod("default", &[IMAGE]), &s, &mut stock);
    assert_eq!(response["accepted"], false, "{response}");
    assert!(
        response["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cip kms resolve"),
        "{response}"
    );
}

#[test]
fn signature_format_says_where_attestations_are_read_and_absent_sends_nothing() {
    for (format, sent) in [
        (None, None),
        (Some("legacy"), Some("legacy")),
        (Some("bundle"), Some("bundle")),
    ] {
        let mut s = article_settings();
        if let Some(format) = format {
            s["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!(format);
        }
        let mut host = host_with(vec![spdx("SPDXRef-DOCUMENT")]);
        let response = run(&pod("default", &[IMAGE]), &s, &mut host);
        assert_eq!(response["accepted"], true, "{format:?}: {response}");
        let payload = &host.calls[0].1;
        assert_eq!(
            payload.get("signature_format").and_then(Value::as_str),
            sent,
            "{payload}"
        );
        assert_eq!(payload["v2_verify"]["image"], IMAGE, "{payload}");
    }
}

/// The article's attestation policy with its key replaced by `pem` and `hashAlgorithm`.
fn key_settings(pem: &str, hash: Option<&str>, format: Option<&str>) -> Value {
    let mut s = article_settings();
    let authority = &mut s["policies"][0]["spec"]["authorities"][0];
    authority["key"] = json!({"data": pem});
    if let Some(hash) = hash {
        authority["key"]["hashAlgorithm"] = json!(hash);
    }
    if let Some(format) = format {
        authority["signatureFormat"] = json!(format);
    }
    s
}

/// A `cip` host answering either attestation capability with one SPDX statement.
fn cip_attesting() -> MockHost {
    MockHost::cip(|_, _| {
        let answer = json!({
            "digest": DIGEST,
            "statements": [{"id": format!("sha256:{:064}", 0), "predicateType": "https://spdx.dev/Document",
                            "statement": spdx("SPDXRef-DOCUMENT")}],
        });
        Ok(answer.to_string().into_bytes())
    })
}

/// Attestations of a key are verified with exactly `key.hashAlgorithm`, as policy-controller
/// verifies them (`ValidatePolicyAttestationsForAuthority`: `signature.LoadVerifier(k,
/// authority.Key.HashAlgorithmCode)`). When that is the hash sigstore-rs picks for the key the
/// request is `verify_attestations`' as before, byte for byte; otherwise it goes to
/// `verify_attestations_with_hash`, carrying the hash (and `signatureFormat`).
#[test]
fn attestations_of_a_key_carry_its_hash_when_not_the_one_picked_for_the_key() {
    use crate::crypto::tests::P384_PEM;
    use crate::host::CIP_VERIFY_ATTESTATIONS_WITH_HASH;
    for (pem, hash, format, carried) in [
        (P256_PEM, None, None, None),
        (P256_PEM, Some("sha384"), None, Some("sha384")),
        (P384_PEM, None, None, Some("sha256")),
        (P384_PEM, Some("sha256"), Some("bundle"), Some("sha256")),
        (P384_PEM, Some("sha384"), None, None),
        (P384_PEM, Some("sha512"), Some("legacy"), Some("sha512")),
    ] {
        let case = format!("{pem} {hash:?} {format:?}");
        let s = key_settings(pem, hash, format);
        assert_eq!(check_settings(&s), Ok(()), "{case}");
        let mut host = cip_attesting();
        let response = run(&pod("default", &[IMAGE]), &s, &mut host);
        assert_eq!(response["accepted"], true, "{case}: {response}");
        let [(capability, payload)] = host.calls.as_slice() else {
            panic!("{case}: one call expected: {:?}", host.calls);
        };
        let expected = if carried.is_some() {
            CIP_VERIFY_ATTESTATIONS_WITH_HASH
        } else {
            CIP_VERIFY_ATTESTATIONS
        };
        assert_eq!(*capability, expected, "{case}");
        assert_eq!(payload.get("hash_algorithm").and_then(Value::as_str), carried, "{case}");
        assert_eq!(
            payload.get("signature_format").and_then(Value::as_str),
            format,
            "{case}"
        );
        assert_eq!(payload["v2_verify"]["type"], "SigstorePubKeyVerify", "{case}");
        assert_eq!(payload["v2_verify"]["pub_keys"], json!([pem]), "{case}");
        assert_eq!(payload["v2_verify"]["annotations"], Value::Null, "{case}");
        let fields = payload.as_object().map_or(0, serde_json::Map::len);
        assert_eq!(
            fields,
            1 + usize::from(carried.is_some()) + usize::from(format.is_some()),
            "{case}"
        );
    }
}

/// An older `cip` (not listing `verify_attestations_with_hash`) is never asked for attestations
/// of a key whose hash is not the one it would verify them with: it would refuse the hash (a
/// `cip` ignoring it would verify with the other hash). Refused saying what to do, though the
/// host would answer anything. A stock host verifies no attestation: refused naming the
/// capability, as for any attestation.
#[test]
fn attestations_with_a_hash_are_not_asked_of_a_host_that_does_not_list_it() {
    use crate::crypto::tests::P384_PEM;
    let s = key_settings(P384_PEM, None, None);
    let older = cip_attesting().listing(
        r#"{"operations":["host/v1/operations","kms/v1/public_key","oci/v1/verify_attestations","oci/v1/verify_key_with_hash","oci/v1/verify_keyless_regexp","oci/v1/verify_legacy_then_bundle","oci/v1/verify_with_format","policy/v1/rego"]}"#,
    );
    let stock = MockHost::new(|_, _| Err("unknown binding: cluster-image-policy".to_owned()));
    for (mut host, expected) in [
        (
            older,
            "attestations with key.hashAlgorithm sha256 and a P-384 key need host capability cluster-image-policy/oci/v1/verify_attestations_with_hash, which this cip is too old to serve (it verifies attestations of P-384 keys with sha384 only): upgrade cip, or sign them with sha384 and set key.hashAlgorithm: sha384",
        ),
        (
            stock,
            "unknown binding: cluster-image-policy (attestations are verified by the host capability cluster-image-policy/oci/v1/verify_attestations_with_hash, which only cip implements: on a stock Kubewarden host run `cip run` or the cip Gatekeeper provider)",
        ),
    ] {
        let response = run(&pod("default", &[IMAGE]), &s, &mut host);
        assert_eq!(response["accepted"], false, "{response}");
        let message = response["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{message}");
        // The older cip is never asked; the stock host is, and refuses the call (its mock does
        // not record refused calls), as it refuses every attestation call.
        assert!(host.calls.is_empty(), "{:?}", host.calls);
    }
}
