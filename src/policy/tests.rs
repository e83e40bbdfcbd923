//! `spec.policy` as the module evaluates it, with the host mocked: the article's
//! `multi-sig-policy` verbatim, policy-controller-style CUE and Rego policies, the input
//! document, and every settings refusal.

use serde_json::{Value, json};

use super::rego::CIP_POLICY_REGO;
use crate::admission::verify_images;
use crate::crypto::tests::{P256_PEM, P256_SECOND_PEM};
use crate::host::KUBEWARDEN_VERIFY_V2;
use crate::host::mock::{MockHost, trusted};
use crate::settings::SettingsCache;
use crate::tests::{DIGEST, article, check_settings, pod, run, settings, with_keys};

/// A host on which exactly the images signed by `keys` verify (answering `DIGEST`).
fn host_signed_by(keys: &'static [&'static str]) -> MockHost {
    MockHost::new(move |capability, payload| {
        assert_eq!(capability, KUBEWARDEN_VERIFY_V2, "{payload}");
        let key = payload["pub_keys"][0].as_str().unwrap_or_default();
        if keys.contains(&key) {
            trusted(DIGEST)
        } else {
            Err("no signature verified by the given key".to_owned())
        }
    })
}

fn multi_sig() -> Value {
    settings(
        &[with_keys(&article("multi-sig-policy"), &[P256_PEM, P256_SECOND_PEM])],
        json!({}),
    )
}

const IMAGE: &str = "myregistry.com/critical/app:v1";

#[test]
fn multi_sig_policy_verbatim_is_valid() {
    assert_eq!(check_settings(&multi_sig()), Ok(()));
}

#[test]
fn the_unused_import_of_the_article_is_named_as_a_remark() {
    let text = multi_sig().to_string();
    let parsed = crate::settings::Settings::parse(&text).expect("valid settings");
    assert_eq!(
        parsed.lint(),
        [
            "policy multi-sig-policy: spec.policy imports \"time\" but never uses it (accepted; real CUE refuses \
             unused imports)"
        ]
    );
    let without_import = settings(
        &[with_keys(&article("multi-sig-policy"), &[P256_PEM, P256_SECOND_PEM]).replace("import \"time\"", "")],
        json!({}),
    );
    let text = without_import.to_string();
    let parsed = crate::settings::Settings::parse(&text).expect("valid settings");
    assert!(parsed.lint().is_empty(), "{:?}", parsed.lint());
}

#[test]
fn multi_sig_policy_admits_an_image_signed_by_both_keys() {
    let mut host = host_signed_by(&[P256_PEM, P256_SECOND_PEM]);
    let response = run(&pod("default", &[IMAGE]), &multi_sig(), &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert!(response.get("warnings").is_none_or(Value::is_null), "{response}");
    assert_eq!(
        response["mutated_object"]["spec"]["containers"][0]["image"],
        format!("{IMAGE}@{DIGEST}")
    );
    assert_eq!(host.calls.len(), 2, "both authorities are asked");
}

#[test]
fn multi_sig_policy_refuses_an_image_signed_by_either_key_alone() {
    for (signer, missing) in [(P256_PEM, "release-team"), (P256_SECOND_PEM, "security-team")] {
        let keys: &'static [&'static str] = Box::leak(vec![signer].into_boxed_slice());
        let mut host = host_signed_by(keys);
        let response = run(&pod("default", &[IMAGE]), &multi_sig(), &mut host);
        assert_eq!(response["accepted"], false, "{response}");
        let message = response["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!(
                "Pod default/test: image {IMAGE} denied by policy multi-sig-policy: spec.policy (cue): \
                 authorizations.\"{missing}\": conflicting values true (policy) and false (input)"
            )
        );
        assert_eq!(host.calls.len(), 2, "no early exit with spec.policy");
    }
}

#[test]
fn multi_sig_policy_with_no_signature_fails_as_without_a_policy() {
    let mut host = host_signed_by(&[]);
    let response = run(&pod("default", &[IMAGE]), &multi_sig(), &mut host);
    let message = response["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Pod default/test: image {IMAGE} denied by policy multi-sig-policy: authority security-team: "
        )) && message.contains("authority release-team: "),
        "{message}"
    );
}

#[test]
fn warn_mode_policy_failure_is_a_warning_within_256_bytes() {
    let cip = with_keys(&article("multi-sig-policy"), &[P256_PEM, P256_SECOND_PEM])
        .replace("spec:\n", "spec:\n  mode: warn\n");
    let s = settings(&[cip], json!({}));
    let response = run(&pod("default", &[IMAGE]), &s, &mut host_signed_by(&[P256_PEM]));
    assert_eq!(response["accepted"], true, "{response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert_eq!(
        warning,
        format!(
            "image {IMAGE} not verified by policy multi-sig-policy (warn mode): spec.policy (cue): \
             authorizations.\"release-team\": conflicting values true (policy) and false (input)"
        )
    );
    assert!(warning.len() <= 256, "{warning}");
    // A long conflict is cut by the policy itself so the warning keeps its head.
    let long = super::shorten(&"x".repeat(400));
    assert_eq!(long.len(), super::MAX_FAILURE_LEN);
}

/// A CIP over `myregistry.com/**` with two key authorities and the given `spec.policy`.
fn two_keys_with(policy: Value) -> Value {
    json!({"policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "pol"},
        "spec": {
            "images": [{"glob": "myregistry.com/**"}],
            "authorities": [
                {"name": "first", "key": {"data": P256_PEM}},
                {"name": "second", "key": {"data": P256_SECOND_PEM}}
            ],
            "policy": policy
        }
    }]})
}

#[test]
fn input_document_has_authority_matches_authorizations_and_requested_object_parts() {
    let s = two_keys_with(json!({"type": "rego", "data": "package sigstore\nisCompliant = true\n",
        "includeSpec": true, "includeObjectMeta": true, "includeTypeMeta": true}));
    let inputs = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = inputs.clone();
    let mut host = MockHost::new(move |capability, payload| {
        if capability == CIP_POLICY_REGO {
            seen.borrow_mut().push(payload["input"].clone());
            return Ok(br#"{"compliant": true}"#.to_vec());
        }
        if payload["pub_keys"][0] == P256_PEM {
            trusted(DIGEST)
        } else {
            Err("no signature".into())
        }
    });
    let request = pod("default", &["myregistry.com/app:v1"]);
    let response = run(&request, &s, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    let object = &request["object"];
    assert_eq!(
        inputs.borrow()[0],
        json!({
            "authorityMatches": {"first": {"signatures": [{}]}},
            "authorizations": {"first": true, "second": false},
            "spec": object["spec"],
            "metadata": object["metadata"],
            "typemeta": {"apiVersion": "v1", "kind": "Pod"}
        })
    );
}

#[test]
fn verify_images_has_no_object_to_include() {
    // Gatekeeper's keys carry no object: a block that reads it cannot be judged, and does not
    // pass (evaluated without `metadata`, this constraint would hold vacuously and admit).
    let admitted_without = |policy: serde_json::Value| {
        let s = two_keys_with(policy);
        let payload = json!({"settings": s, "images": [{"image": "myregistry.com/app:v1", "namespace": "default"}]});
        let mut host = host_signed_by(&[P256_PEM]);
        let out = verify_images(payload.to_string().as_bytes(), &mut SettingsCache::default(), &mut host).unwrap();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["results"][0].clone()
    };
    for flag in ["includeSpec", "includeObjectMeta", "includeTypeMeta"] {
        let result = admitted_without(json!({"type": "cue", "data": "authorizations: first: true", flag: true}));
        assert_eq!(result["verdict"], "deny", "{flag}: {result}");
        let reason = result["message"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!(
                "spec.policy (cue): {flag} asks for the admitted object, which this request does not carry"
            )),
            "{flag}: {result}"
        );
    }
    // Without the flags the block is evaluated as under admission.
    let result = admitted_without(json!({"type": "cue", "data": "authorizations: first: true"}));
    assert_eq!(result["verdict"], "allow", "{result}");

    // Under admission the object is there: the same policy sees the Pod's metadata.
    let s = two_keys_with(json!({"type": "cue", "data": "metadata: namespace: \"elsewhere\"",
        "includeObjectMeta": true}));
    let response = run(
        &pod("default", &["myregistry.com/app:v1"]),
        &s,
        &mut host_signed_by(&[P256_PEM]),
    );
    assert!(
        response["message"].as_str().unwrap().ends_with(
            "spec.policy (cue): metadata.namespace: conflicting values \"elsewhere\" (policy) and \"default\" (input)"
        ),
        "{response}"
    );
}

#[test]
fn policy_controller_style_cue_over_authority_matches() {
    // Require at least one signature from each authority, the way policy-controller's docs do.
    let s = two_keys_with(json!({"type": "cue", "data":
        "package sigstore\nimport \"list\"\nauthorityMatches: {\n  first: signatures: list.MinItems(1)\n  second: signatures: list.MinItems(1)\n}\n"}));
    assert_eq!(check_settings(&s), Ok(()));
    let both = run(
        &pod("default", &["myregistry.com/app:v1"]),
        &s,
        &mut host_signed_by(&[P256_PEM, P256_SECOND_PEM]),
    );
    assert_eq!(both["accepted"], true, "{both}");
    // policy-controller's input has no entry for a failing authority, so a CUE constraint on it
    // holds vacuously: the same policy passes with one signature, as it does there.
    let one = run(
        &pod("default", &["myregistry.com/app:v1"]),
        &s,
        &mut host_signed_by(&[P256_PEM]),
    );
    assert_eq!(one["accepted"], true, "{one}");
    // `authorizations` is how to require it.
    let s = two_keys_with(json!({"type": "cue", "data": "authorizations: second: true"}));
    let one = run(
        &pod("default", &["myregistry.com/app:v1"]),
        &s,
        &mut host_signed_by(&[P256_PEM]),
    );
    assert_eq!(one["accepted"], false, "{one}");
}

#[test]
fn rego_policies_run_in_the_host_with_its_messages() {
    let s = two_keys_with(json!({"type": "rego", "data":
        "package sigstore\ndefault isCompliant = false\nisCompliant {\n  input.authorizations.first\n  input.authorizations.second\n}\n"}));
    assert_eq!(check_settings(&s), Ok(()));
    let answer = std::rc::Rc::new(std::cell::Cell::new(0));
    let which = answer.clone();
    let mut host = MockHost::new(move |capability, payload| {
        if capability == CIP_POLICY_REGO {
            assert!(payload["policy"].as_str().unwrap().starts_with("package sigstore"));
            return Ok(match which.get() {
                0 => br#"{"compliant": false, "error": "policy is not compliant for query 'isCompliant = data.sigstore.isCompliant'"}"#.to_vec(),
                _ => br#"{"compliant": true, "warning": "second key expires soon"}"#.to_vec(),
            });
        }
        trusted(DIGEST)
    });
    let response = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
    assert_eq!(
        response["message"],
        "Pod default/test: image myregistry.com/app:v1 denied by policy pol: spec.policy (rego): \
         policy is not compliant for query 'isCompliant = data.sigstore.isCompliant'"
    );
    // A compliant result with a warning does not pass either (policy-controller's `ValidatePolicy`:
    // `if warn != nil { return nil, … }`): denied under `enforce`, a warning under `warn`.
    answer.set(1);
    let response = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
    assert_eq!(response["accepted"], false, "{response}");
    assert_eq!(
        response["message"],
        "Pod default/test: image myregistry.com/app:v1 denied by policy pol: spec.policy (rego): \
         policy returned a warning: second key expires soon; a policy with a warning does not pass"
    );
    let mut warn = s.clone();
    warn["policies"][0]["spec"]["mode"] = json!("warn");
    let response = run(&pod("default", &["myregistry.com/app:v1"]), &warn, &mut host);
    assert_eq!(response["accepted"], true, "{response}");
    assert_eq!(
        response["warnings"],
        json!([
            "image myregistry.com/app:v1 not verified by policy pol (warn mode): spec.policy (rego): \
             policy returned a warning: second key expires soon; a policy with a warning does not pass"
        ])
    );
}

#[test]
fn rego_on_a_stock_host_fails_naming_the_capability() {
    let s = two_keys_with(json!({"type": "rego", "data": "package sigstore\nisCompliant = true\n"}));
    let mut host = MockHost::new(|capability, _| {
        if capability == CIP_POLICY_REGO {
            Err("unknown binding: cluster-image-policy".to_owned())
        } else {
            trusted(DIGEST)
        }
    });
    let response = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
    let message = response["message"].as_str().unwrap();
    assert!(
        message.contains(
            "spec.policy (rego): needs host capability cluster-image-policy/policy/v1/rego (the cip host): unknown binding"
        ),
        "{message}"
    );
}

#[test]
fn fetch_config_file_reads_the_config_at_the_verified_digest() {
    let s = two_keys_with(json!({"type": "cue", "fetchConfigFile": true, "data":
        "config: \"linux/amd64\": config: User: !=\"root\""}));
    for (user, accepted) in [("nobody", true), ("root", false)] {
        let mut host = MockHost::new(move |capability, payload| {
            if capability.operation == "v1/oci_manifest_config" {
                assert_eq!(payload, &json!(format!("myregistry.com/app@{DIGEST}")));
                let answer = json!({"manifest": {"config": {"digest": DIGEST}}, "digest": DIGEST,
                    "config": {"os": "linux", "architecture": "amd64", "config": {"User": user}}});
                return Ok(serde_json::to_vec(&answer).unwrap());
            }
            trusted(DIGEST)
        });
        let response = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(response["accepted"], accepted, "{response}");
    }
    let mut host = MockHost::new(|capability, _| {
        if capability.operation == "v1/oci_manifest_config" {
            Err("manifest unknown".into())
        } else {
            trusted(DIGEST)
        }
    });
    let response = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
    assert!(
        response["message"].as_str().unwrap().ends_with(&format!(
            "spec.policy (cue): fetchConfigFile: myregistry.com/app@{DIGEST}: host capability \
             kubewarden/oci/v1/oci_manifest_config failed: manifest unknown"
        )),
        "{response}"
    );
}

#[test]
fn static_authorities_appear_as_static_matches() {
    let mut s = two_keys_with(
        json!({"type": "cue", "data": "authorityMatches: pass: static: true\nauthorizations: first: false"}),
    );
    s["policies"][0]["spec"]["authorities"][1] = json!({"name": "pass", "static": {"action": "pass"}});
    let response = run(
        &pod("default", &["myregistry.com/app:v1"]),
        &s,
        &mut host_signed_by(&[]),
    );
    assert_eq!(response["accepted"], true, "{response}");
    assert!(
        response.get("mutated_object").is_none_or(Value::is_null),
        "nothing verified, nothing pinned"
    );
}

#[test]
fn settings_refusals_name_the_field_and_the_fix() {
    let cases = [
        (
            json!({"type": "cue", "data": "a: 1", "configMapRef": {"name": "x"}}),
            "policies[0].spec.policy.configMapRef: a policy module cannot read ConfigMaps: paste the policy into spec.policy.data",
        ),
        (
            json!({"type": "cue", "url": "https://example.com/p.cue"}),
            "policies[0].spec.policy.url: a policy module cannot fetch URLs: paste the policy into spec.policy.data",
        ),
        (
            json!({"type": "rego", "remote": {"url": "https://example.com/p.rego", "sha256sum": "00"}}),
            "policies[0].spec.policy.remote: a policy module cannot fetch URLs: paste the policy into spec.policy.data",
        ),
        (
            json!({"type": "yaml", "data": "a: 1"}),
            "policies[0].spec.policy.type: unknown type `yaml`: use cue or rego",
        ),
        (
            json!({"data": "a: 1"}),
            "policies[0].spec.policy.type: type is required: cue or rego",
        ),
        (
            json!({"type": "cue"}),
            "policies[0].spec.policy.data: data is required: the text of the CUE or Rego policy",
        ),
        (
            json!({"type": "cue", "data": "a: 1\nb: a + 1"}),
            "policies[0].spec.policy.data: CUE policy, line 2, column 6: the binary operator `+` is not supported (see the CUE subset in docs/policies.md)",
        ),
        (
            json!({"type": "rego", "data": "package main\nisCompliant = true"}),
            "policies[0].spec.policy.data: Rego policy, the package is `main`: it must be `package sigstore` (the decision is data.sigstore.isCompliant)",
        ),
        (
            json!({"type": "rego", "data": "isCompliant = true"}),
            "policies[0].spec.policy.data: Rego policy, the policy must begin with `package sigstore` (the decision is data.sigstore.isCompliant)",
        ),
    ];
    for (policy, expected) in cases {
        assert_eq!(check_settings(&two_keys_with(policy)), Err(expected.to_owned()));
    }
    let err = check_settings(&two_keys_with(
        json!({"type": "cue", "data": "a: 1", "includeSpecs": true}),
    ))
    .unwrap_err();
    assert!(
        err.starts_with("policies[0].spec.policy: unknown field `includeSpecs`"),
        "{err}"
    );
}

/// A policy with one keyless authority (`attestations` when given) and `spec.policy` in CUE.
fn keyless_with(attestations: Option<Value>, cue: &str) -> Value {
    let mut authority = json!({"name": "release", "keyless": {
        "url": "https://fulcio.sigstore.dev",
        "identities": [{"issuer": "https://token.actions.githubusercontent.com",
                        "subjectRegExp": "^https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/.*$"}]
    }});
    if let Some(attestations) = attestations {
        authority["attestations"] = attestations;
    }
    json!({"policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "pol"},
        "spec": {"images": [{"glob": "myregistry.com/**"}], "authorities": [authority],
                 "policy": {"type": "cue", "data": cue}}
    }]})
}

#[test]
fn certificate_details_the_module_does_not_supply_are_refused_in_spec_policy() {
    // Found by an audit: policy-controller fills the signature entries with the certificate's
    // subject, issuer and GitHub workflow fields; ours are empty, so this constraint held for
    // every branch the identity's regular expression allows.
    let pasted = r#"authorityMatches: release: signatures: [...{githubWorkflowRef: "refs/heads/main"}]"#;
    let refused = check_settings(&keyless_with(None, pasted)).unwrap_err();
    assert!(
        refused.starts_with(
            "policies[0].spec.policy: names `githubWorkflowRef`, which policy-controller gives spec.policy \
             for the signatures of authority `release` and this module does not"
        ),
        "{refused}"
    );
    assert!(refused.contains("keyless.identities"), "{refused}");
    for detail in ["subject", "issuer"] {
        let cue = format!(r#"authorityMatches: release: signatures: [...{{{detail}: =~"^https://github.com/acme/"}}]"#);
        let refused = check_settings(&keyless_with(None, &cue)).unwrap_err();
        assert!(refused.contains(&format!("names `{detail}`")), "{refused}");
    }
    // Attestation entries carry `subject` and `issuer`: only the GitHub fields are refused.
    let sbom = Some(json!([{"name": "sbom", "predicateType": "spdx"}]));
    let on_attestations = r#"authorityMatches: release: attestations: sbom: [...{issuer: "https://token.actions.githubusercontent.com"}]"#;
    assert_eq!(check_settings(&keyless_with(sbom.clone(), on_attestations)), Ok(()));
    let github = r#"authorityMatches: release: attestations: sbom: [...{githubWorkflowSha: "abc"}]"#;
    let refused = check_settings(&keyless_with(sbom, github)).unwrap_err();
    assert!(
        refused.contains("for the attestations of authority `release`"),
        "{refused}"
    );
    // The signature layer's `id` (policy-controller: its digest's hex) is in no signature entry
    // here, whatever the authority; an attestation's `payload` in no attestation entry.
    let revoked = r#"authorityMatches: release: signatures: [...{id: !="0123abcd"}]"#;
    let refused = check_settings(&keyless_with(None, revoked)).unwrap_err();
    assert!(
        refused.contains("names `id`") && refused.contains("which signature layer"),
        "{refused}"
    );
    let refused = check_settings(&two_keys_with(
        json!({"type": "cue", "data": "authorityMatches: first: signatures: [...{id: !=\"0123abcd\"}]"}),
    ))
    .unwrap_err();
    assert!(
        refused.contains("names `id`") && refused.contains("authority `first`"),
        "{refused}"
    );
    // Spelled with escapes in a quoted label (found by a review).
    for escaped in [r#""\u0069d""#, r#""i\u0064""#, r#""\u0069\u0064""#] {
        let cue = format!("authorityMatches: release: signatures: [...{{{escaped}: !=\"0123abcd\"}}]");
        let refused = check_settings(&keyless_with(None, &cue)).unwrap_err();
        assert!(refused.contains("names `id`"), "{escaped}: {refused}");
    }
    let sbom = Some(json!([{"name": "sbom", "predicateType": "spdx"}]));
    let on_ids = r#"authorityMatches: release: attestations: sbom: [...{id: !="0123abcd"}]"#;
    assert_eq!(check_settings(&keyless_with(sbom.clone(), on_ids)), Ok(()));
    let on_payload = r#"authorityMatches: release: attestations: sbom: [...{payload: string}]"#;
    let refused = check_settings(&keyless_with(sbom, on_payload)).unwrap_err();
    assert!(refused.contains("names `payload`"), "{refused}");
    // Names that merely contain one are not refused; nor is a key authority's policy, whose
    // entries policy-controller leaves without subject or issuer too.
    assert_eq!(
        check_settings(&keyless_with(None, "authorizations: release: true\nsubjects_seen: 1\n")),
        Ok(())
    );
    assert_eq!(
        check_settings(&two_keys_with(
            json!({"type": "cue", "data": "authorityMatches: first: signatures: [...{subject: string}]"})
        )),
        Ok(())
    );
}
