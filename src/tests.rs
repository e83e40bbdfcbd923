//! Behaviour of the module as Kubewarden sees it: settings validation and admission decisions,
//! with the host capabilities mocked. The article's policies are used exactly as published, only
//! their truncated example keys replaced by real ones.

use serde_json::{Value, json};

use crate::admission::{validate, verify_images};
use crate::authority::binding::tests::{Layer, PAYLOAD, Signer, serving};
use crate::authority::fulcio::tests::CertSpec;
use crate::crypto::tests::{CERT_PEM, P256_PEM, P256_SECOND_PEM, RSA2048_PEM};
use crate::host::mock::{MockHost, trusted};
use crate::host::{
    CIP_HOST_OPERATIONS, CIP_VERIFY_KEYLESS_REGEXP, CIP_VERIFY_LEGACY_THEN_BUNDLE, CIP_VERIFY_WITH_FORMAT,
    KUBEWARDEN_OCI_MANIFEST, KUBEWARDEN_VERIFY_V2, Memo,
};
use crate::settings::{Settings, SettingsCache};

pub(crate) const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// An article policy, verbatim.
pub(crate) fn article(name: &str) -> String {
    let path = format!("{}/src/testdata/article/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replaces the article's placeholder PEM blocks, in order, by real keys (indentation kept).
pub(crate) fn with_keys(yaml: &str, keys: &[&str]) -> String {
    let mut out = String::new();
    let mut keys = keys.iter();
    let mut lines = yaml.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "-----BEGIN PUBLIC KEY-----" {
            let indent = &line[..line.len() - line.trim_start().len()];
            let key = keys.next().expect("more placeholder blocks than keys");
            for body in key.lines().filter(|l| !l.starts_with("-----")) {
                out.push_str(indent);
                out.push_str(body);
                out.push('\n');
            }
            for skipped in lines.by_ref() {
                if skipped.trim() == "-----END PUBLIC KEY-----" {
                    out.push_str(skipped);
                    out.push('\n');
                    break;
                }
            }
        }
    }
    out
}

/// Settings JSON made of CIP documents (YAML, as users paste them) and extra top-level fields.
pub(crate) fn settings(cips: &[String], extra: Value) -> Value {
    let policies: Vec<Value> = cips
        .iter()
        .map(|y| serde_yaml::from_str(y).expect("valid YAML"))
        .collect();
    let mut s = json!({ "policies": policies });
    if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    s
}

pub(crate) fn check_settings(settings: &Value) -> Result<(), String> {
    let text = settings.to_string();
    let parsed = Settings::parse(&text).map_err(|e| e.to_string())?;
    parsed.check_material().map_err(|e| e.to_string())
}

pub(crate) fn pod(namespace: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": "CREATE",
        "object": {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "test", "namespace": namespace},
            "spec": {"containers": containers}
        }
    })
}

pub(crate) fn run(request: &Value, settings: &Value, host: &mut MockHost) -> Value {
    let payload = json!({"request": request, "settings": settings}).to_string();
    serde_json::to_value(validate(payload.as_bytes(), &mut SettingsCache::default(), host))
        .expect("serialisable response")
}

/// A host that trusts exactly the images signed by `key` (answering with `DIGEST`).
fn host_trusting_key(key: &'static str) -> MockHost {
    MockHost::new(move |capability, payload| {
        assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
        if payload["pub_keys"][0] == key {
            trusted(DIGEST)
        } else {
            Err("no signature verified by the given key".to_owned())
        }
    })
}

mod gatekeeper_parity;
mod kms_uri_reference;
mod lazy_settings;
mod lifecycle;
mod mutation_audit;
mod no_escape;
mod readings_agree;

mod settings_validation {
    use super::*;

    #[test]
    fn article_policies_with_real_keys_are_valid() {
        for cips in [
            vec![with_keys(&article("signed-images-policy"), &[P256_PEM])],
            vec![
                with_keys(&article("production-strict-policy"), &[P256_PEM]),
                with_keys(&article("dev-warn-policy"), &[P256_PEM]),
            ],
            vec![article("keyless-policy")],
            vec![article("allow-system-images")],
            vec![with_keys(&article("key-rotation-policy"), &[P256_PEM, P256_SECOND_PEM])],
        ] {
            assert_eq!(check_settings(&settings(&cips, json!({}))), Ok(()), "{cips:?}");
        }
    }

    #[test]
    fn article_placeholder_keys_are_refused_with_the_field_path() {
        let err = check_settings(&settings(&[article("signed-images-policy")], json!({}))).unwrap_err();
        assert!(err.starts_with("policies[0].spec.authorities[0].key.data: "), "{err}");
    }

    #[test]
    fn kms_keys_are_valid_and_their_uri_syntax_checked() {
        assert_eq!(
            check_settings(&settings(&[article("kms-signed-policy")], json!({}))),
            Ok(())
        );
        // kms beside data: only one key can be meant; refused, as policy-controller refuses it.
        let mut s = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        s["policies"][0]["spec"]["authorities"][0]["key"]["kms"] = json!("awskms:///alias/cosign");
        let err = check_settings(&s).unwrap_err();
        assert!(
            err.starts_with("policies[0].spec.authorities[0].key: give key.data or key.kms, not both"),
            "{err}"
        );
    }

    #[test]
    fn attestation_policy_with_a_placeholder_key_is_refused_on_the_key() {
        let err = check_settings(&settings(&[article("attestation-policy")], json!({}))).unwrap_err();
        assert!(err.starts_with("policies[0].spec.authorities[0].key.data: "), "{err}");
    }

    #[test]
    fn unsupported_authority_fields_are_refused() {
        for (field, value) in [
            ("source", json!([{"oci": "x"}])),
            ("ctlog", json!({"url": "https://rekor"})),
            ("rfc3161timestamp", json!({"trustRootRef": "x"})),
        ] {
            let mut s = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
            s["policies"][0]["spec"]["authorities"][0][field] = value;
            let err = check_settings(&s).unwrap_err();
            assert!(
                err.starts_with(&format!("policies[0].spec.authorities[0].{field}: ")),
                "{err}"
            );
            assert!(err.contains("not supported yet"), "{err}");
        }
    }

    #[test]
    fn signature_format_is_legacy_or_bundle_and_never_on_a_static_authority() {
        let base = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        for format in ["legacy", "bundle"] {
            let mut s = base.clone();
            s["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!(format);
            check_settings(&s).expect(format);
        }
        let mut s = base.clone();
        s["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!("sideways");
        let err = check_settings(&s).unwrap_err();
        assert!(
            err.starts_with(
                "policies[0].spec.authorities[0].signatureFormat: unknown signatureFormat `sideways`: give legacy"
            ),
            "{err}"
        );
        let mut s = base;
        s["policies"][0]["spec"]["authorities"][0] = json!({"static": {"action": "pass"}, "signatureFormat": "bundle"});
        let err = check_settings(&s).unwrap_err();
        assert!(err.contains("static authority reads none"), "{err}");
    }

    #[test]
    fn typos_never_pass() {
        let base = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        let mut s = base.clone();
        s["policies"][0]["spec"]["authorities"][0]["key"]["dta"] = json!("x");
        let err = check_settings(&s).unwrap_err();
        assert!(
            err.starts_with("policies[0].spec.authorities[0].key.dta: unknown field `dta`"),
            "{err}"
        );
        let mut s = base.clone();
        s["policies"][0]["spec"]["imagez"] = json!([]);
        let err = check_settings(&s).unwrap_err();
        assert!(
            err.starts_with("policies[0].spec.imagez: unknown field `imagez`"),
            "{err}"
        );
        let mut s = base.clone();
        s["noMatchPolicyy"] = json!("deny");
        assert!(
            check_settings(&s)
                .unwrap_err()
                .contains("unknown field `noMatchPolicyy`")
        );
        // metadata and status may carry anything.
        let mut s = base;
        s["policies"][0]["metadata"]["labels"] = json!({"team": "sec"});
        s["policies"][0]["status"] = json!({"conditions": []});
        assert_eq!(check_settings(&s), Ok(()));
    }

    #[test]
    fn every_malformed_setting_names_its_field() {
        let base = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "/policies/0/spec/mode",
                json!("audit"),
                "policies[0].spec.mode: unknown mode `audit`",
            ),
            (
                "/policies/0/spec/images",
                json!([]),
                "policies[0].spec.images: spec.images is empty",
            ),
            (
                "/policies/0/spec/images/0/glob",
                json!("myregistry.com/{a,b}"),
                "policies[0].spec.images[0].glob: character '{'",
            ),
            (
                "/policies/0/spec/images/0/glob",
                json!("myregistry.com/**x"),
                "policies[0].spec.images[0].glob: ",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({}),
                "policies[0].spec.authorities[0]: the authority has no kind",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"key": {"data": P256_PEM}, "static": {"action": "pass"}}),
                "policies[0].spec.authorities[0]: the authority has several kinds (key, static)",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"static": {"action": "maybe"}}),
                "policies[0].spec.authorities[0].static.action: unknown action `maybe`",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"keyless": {"identities": []}}),
                "policies[0].spec.authorities[0].keyless.identities: keyless.identities is required",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"keyless": {"identities": [{"issuer": "https://accounts.google.com", "subjectRegExp": "(unclosed"}]}}),
                "policies[0].spec.authorities[0].keyless.identities[0].subjectRegExp: invalid regular expression",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"keyless": {"identities": [{"issuer": "a", "issuerRegExp": "b", "subject": "c"}]}}),
                "policies[0].spec.authorities[0].keyless.identities[0]: give either issuer or issuerRegExp, not both",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"key": {"data": RSA2048_PEM, "hashAlgorithm": "md5"}}),
                "policies[0].spec.authorities[0].key.hashAlgorithm: hashAlgorithm md5 is unknown: write sha256",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"key": {"secretRef": {"name": "k"}}}),
                "policies[0].spec.authorities[0].key.secretRef: ",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"certificate": {"data": "junk"}}),
                "policies[0].spec.authorities[0].certificate.data: ",
            ),
            (
                "/policies/0/spec/authorities/0",
                json!({"githubActions": {"owner": "org/repo"}}),
                "policies[0].spec.authorities[0].githubActions.owner: ",
            ),
            (
                "/policies/0/spec/match",
                json!([{"namespaces": ["Prod"]}]),
                "policies[0].spec.match[0].namespaces: namespace `Prod`",
            ),
            (
                "/policies/0/spec/match",
                json!([{}]),
                "policies[0].spec.match[0]: the match entry is empty",
            ),
            (
                "/policies/0/metadata",
                json!({}),
                "policies[0].metadata.name: every policy needs a name",
            ),
            (
                "/policies/0/kind",
                json!("ImagePolicy"),
                "policies[0].kind: kind `ImagePolicy` is not a ClusterImagePolicy",
            ),
            ("/noMatchPolicy", json!("maybe"), "noMatchPolicy: unknown value `maybe`"),
        ];
        for (pointer, value, expected) in cases {
            let mut s = base.clone();
            let (parent, field) = pointer.rsplit_once('/').unwrap();
            let parent = if parent.is_empty() {
                Some(&mut s)
            } else {
                s.pointer_mut(parent)
            };
            match parent.unwrap() {
                Value::Object(map) => {
                    map.insert(field.to_owned(), value);
                }
                Value::Array(items) => items[field.parse::<usize>().unwrap()] = value,
                other => panic!("{pointer}: {other}"),
            }
            let err = check_settings(&s).unwrap_err();
            assert!(
                err.starts_with(expected),
                "{pointer}: got {err:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn settings_are_parsed_once_per_distinct_text() {
        let text = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({})).to_string();
        let mut cache = SettingsCache::default();
        // The first settings an instance reads are read from the caller's text and not kept (a
        // fresh instance serves one call); read again, the instance serves several: kept, with
        // their own copy of the text, and reused while the text stays the same.
        // Handed back, the first model is not freed until settings are read again.
        let first = cache.get(&text).unwrap();
        assert!(std::ptr::eq(first.source(), text.as_str()));
        cache.retire(first);
        assert!(cache.holds_retired());
        let kept = cache.get(&text).unwrap();
        assert!(!cache.holds_retired());
        assert!(!std::ptr::eq(kept.source(), text.as_str()));
        assert_eq!(kept.source(), text);
        assert!(std::rc::Rc::ptr_eq(&kept, &cache.get(&text).unwrap()));
        assert!(std::rc::Rc::ptr_eq(&kept, &cache.get(&text.clone()).unwrap()));
        // A kept model handed back stays kept, and nothing is retired.
        cache.retire(std::rc::Rc::clone(&kept));
        assert!(!cache.holds_retired());
        assert!(std::rc::Rc::ptr_eq(&kept, &cache.get(&text).unwrap()));
        let other = text.replace("signed-images-policy", "renamed-policy");
        let second = cache.get(&other).unwrap();
        assert_eq!(second.policies[0].name, "renamed-policy");
        assert!(cache.get("{\"policies\": 1}").is_err());
        assert_eq!(cache.get(&other).unwrap().policies[0].name, "renamed-policy");
    }

    #[test]
    fn duplicate_policy_names_are_refused() {
        let p = with_keys(&article("signed-images-policy"), &[P256_PEM]);
        let err = check_settings(&settings(&[p.clone(), p], json!({}))).unwrap_err();
        assert!(
            err.starts_with("policies[1].metadata.name: `signed-images-policy` is already"),
            "{err}"
        );
    }

    #[test]
    fn regexps_that_could_escape_their_anchors_are_refused() {
        for (pattern, why) in [
            ("a)|(.*", "must be complete on its own"),
            // Go has no `(?x)`, whose comment would swallow the `)$` of the anchors.
            (
                "(?x)user@example\\.com|evil#",
                "the flag `x` at offset 2 is not read as Go's regexp",
            ),
            ("[a-z&&[^x]]@example\\.com", "a class set operation"),
            ("(", "must be complete on its own"),
        ] {
            let mut s = settings(&[article("keyless-policy")], json!({}));
            s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] =
                json!([{"issuer": "https://accounts.google.com", "subjectRegExp": pattern}]);
            // Refused by `validate` as well as `validate_settings`: the host never sees it.
            let err = Settings::parse(&s.to_string())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with("policies[0].spec.authorities[0].keyless.identities[0].subjectRegExp: "),
                "{pattern}: {err}"
            );
            assert!(err.contains(why), "{pattern}: {err}");
        }
        let mut s = settings(&[article("keyless-policy")], json!({}));
        s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] =
            json!([{"issuerRegExp": "https://(accounts\\.google|github)\\.com", "subjectRegExp": ".*@example\\.com"}]);
        assert_eq!(check_settings(&s), Ok(()));
    }

    #[test]
    fn certificate_and_github_authorities_are_accepted() {
        let mut s = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        s["policies"][0]["spec"]["authorities"] = json!([
            {"name": "release-cert", "certificate": {"data": CERT_PEM, "chain": CERT_PEM, "requireRekorBundle": true}, "annotations": {"env": "prod"}},
            {"name": "ci", "githubActions": {"owner": "my-org", "repo": "app"}}
        ]);
        assert_eq!(check_settings(&s), Ok(()));
    }
}

mod admission {
    use super::*;

    fn signed_images() -> Value {
        settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}))
    }

    #[test]
    fn signed_image_is_admitted_and_pinned() {
        let mut host = host_trusting_key(P256_PEM);
        let response = run(
            &pod("default", &["myregistry.com/myapp:v1.0.0"]),
            &signed_images(),
            &mut host,
        );
        assert_eq!(response["accepted"], true, "{response}");
        assert_eq!(
            response["mutated_object"]["spec"]["containers"][0]["image"],
            format!("myregistry.com/myapp:v1.0.0@{DIGEST}")
        );
        assert_eq!(host.calls.len(), 1);
        assert_eq!(
            host.calls[0].1,
            json!({"type": "SigstorePubKeyVerify", "image": "myregistry.com/myapp:v1.0.0", "pub_keys": [P256_PEM], "annotations": null})
        );
    }

    #[test]
    fn unsigned_image_is_refused_naming_resource_image_policy_and_authority() {
        let mut host = host_trusting_key(P256_SECOND_PEM);
        let response = run(
            &pod("default", &["myregistry.com/unsigned"]),
            &signed_images(),
            &mut host,
        );
        assert_eq!(response["accepted"], false);
        assert_eq!(
            response["message"],
            "Pod default/test: image myregistry.com/unsigned denied by policy signed-images-policy: authority authority-0: no signature verified by the key: no signature verified by the given key (cosign v3 bundles are read by cip only: this host lacks cluster-image-policy/oci/v1/verify_with_format)"
        );
        assert_eq!(host.calls[0].1["image"], "myregistry.com/unsigned:latest");
        assert!(response["mutated_object"].is_null());
    }

    #[test]
    fn pinning_can_be_switched_off() {
        let mut s = signed_images();
        s["modifyImagesWithDigest"] = json!(false);
        // Nothing is rewritten: an image verified by tag is refused, with the digest to write
        // (the tag could move before the pull; tests/lifecycle.rs, `validating_twin`), and the
        // image written with that digest is admitted as it is.
        let response = run(
            &pod("default", &["myregistry.com/myapp:v1"]),
            &s,
            &mut host_trusting_key(P256_PEM),
        );
        assert_eq!(response["accepted"], false);
        assert!(
            response["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("reference it by digest (myregistry.com/myapp:v1@{DIGEST})"))),
            "{response}"
        );
        let pinned = format!("myregistry.com/myapp:v1@{DIGEST}");
        let response = run(&pod("default", &[&pinned]), &s, &mut host_trusting_key(P256_PEM));
        assert_eq!(response["accepted"], true);
        assert!(response["mutated_object"].is_null());
    }

    #[test]
    fn images_outside_every_glob_make_no_host_call() {
        let mut host = MockHost::failing();
        let response = run(
            &pod("default", &["nginx", "myregistry.com.evil.io/x"]),
            &signed_images(),
            &mut host,
        );
        assert_eq!(response["accepted"], true);
        assert!(host.calls.is_empty());
    }

    #[test]
    fn production_enforces_development_warns_elsewhere_untouched() {
        let s = settings(
            &[
                with_keys(&article("production-strict-policy"), &[P256_PEM]),
                with_keys(&article("dev-warn-policy"), &[P256_PEM]),
            ],
            json!({"noMatchPolicy": "allow"}),
        );
        let image = "myregistry.com/unsigned:latest";
        let refused = run(
            &pod("production", &[image]),
            &s,
            &mut host_trusting_key(P256_SECOND_PEM),
        );
        assert_eq!(refused["accepted"], false);
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("denied by policy production-strict-policy")
        );

        let warned = run(
            &pod("development", &[image]),
            &s,
            &mut host_trusting_key(P256_SECOND_PEM),
        );
        assert_eq!(warned["accepted"], true);
        let warnings = warned["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1);
        let w = warnings[0].as_str().unwrap();
        assert!(w.starts_with("image myregistry.com/unsigned:latest not verified by policy dev-warn-policy (warn mode): authority authority-0: "), "{w}");
        assert!(w.len() <= 256);
        assert!(
            warned["audit_annotations"]["unverified-images"]
                .as_str()
                .unwrap()
                .contains("dev-warn-policy")
        );
        assert!(
            warned["mutated_object"].is_null(),
            "nothing is pinned for an image that failed"
        );

        let mut host = MockHost::failing();
        let untouched = run(&pod("sandbox", &[image]), &s, &mut host);
        assert_eq!(untouched["accepted"], true);
        assert!(untouched["warnings"].is_null());
        assert!(host.calls.is_empty());
    }

    #[test]
    fn no_match_policy_warn_and_deny() {
        let warn = settings(
            &[with_keys(&article("signed-images-policy"), &[P256_PEM])],
            json!({"noMatchPolicy": "warn"}),
        );
        let r = run(&pod("default", &["nginx"]), &warn, &mut MockHost::failing());
        assert_eq!(r["accepted"], true);
        assert_eq!(r["warnings"][0], "image nginx is covered by no ClusterImagePolicy");
        let deny = settings(
            &[with_keys(&article("signed-images-policy"), &[P256_PEM])],
            json!({"noMatchPolicy": "deny"}),
        );
        let r = run(&pod("default", &["nginx"]), &deny, &mut MockHost::failing());
        assert_eq!(r["accepted"], false);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("no ClusterImagePolicy covers it")
        );
    }

    #[test]
    fn system_images_exemption_admits_with_a_visible_warning() {
        let s = settings(&[article("allow-system-images")], json!({}));
        let mut host = MockHost::failing();
        let r = run(&pod("kube-system", &["nginx:1.25"]), &s, &mut host);
        assert_eq!(r["accepted"], true);
        assert!(host.calls.is_empty());
        assert_eq!(
            r["warnings"][0],
            "image nginx:1.25 not verified by policy allow-system-images (warn mode): the policy has no authorities, so no signature can satisfy it"
        );
        // The same policy in enforce mode refuses.
        let mut enforce = s.clone();
        enforce["policies"][0]["spec"]["mode"] = json!("enforce");
        let r = run(&pod("kube-system", &["nginx:1.25"]), &enforce, &mut MockHost::failing());
        assert_eq!(r["accepted"], false);
    }

    #[test]
    fn key_rotation_accepts_either_key_and_stops_at_the_first_that_passes() {
        let s = settings(
            &[with_keys(&article("key-rotation-policy"), &[P256_PEM, P256_SECOND_PEM])],
            json!({}),
        );
        let mut old = host_trusting_key(P256_PEM);
        assert_eq!(
            run(&pod("default", &["myregistry.com/myapp:v1"]), &s, &mut old)["accepted"],
            true
        );
        assert_eq!(old.calls.len(), 1);
        let mut new = host_trusting_key(P256_SECOND_PEM);
        assert_eq!(
            run(&pod("default", &["myregistry.com/myapp:v2"]), &s, &mut new)["accepted"],
            true
        );
        assert_eq!(new.calls.len(), 2);
        let mut third = host_trusting_key(RSA2048_PEM);
        let r = run(&pod("default", &["myregistry.com/myapp:v3"]), &s, &mut third);
        assert_eq!(r["accepted"], false);
        let m = r["message"].as_str().unwrap();
        assert!(
            m.contains("authority current-key: ") && m.contains("authority new-key: "),
            "{m}"
        );
    }

    #[test]
    fn one_host_call_per_distinct_image_and_authority() {
        let s = settings(
            &[
                with_keys(&article("production-strict-policy"), &[P256_PEM]),
                with_keys(&article("signed-images-policy"), &[P256_PEM]),
            ],
            json!({}),
        );
        let images = ["myregistry.com/app:v1"; 10];
        let payload = json!({"request": pod("production", &images), "settings": s}).to_string();
        let mut host = Memo::new(host_trusting_key(P256_PEM));
        let response = validate(payload.as_bytes(), &mut SettingsCache::default(), &mut host);
        assert!(response.accepted);
        assert_eq!(host.inner().calls.len(), 1);
    }

    #[test]
    fn static_authorities_make_no_host_call() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["authorities"] =
            json!([{"static": {"action": "fail", "message": "images from myregistry.com are frozen"}}]);
        let mut host = MockHost::failing();
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], false);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .ends_with("authority authority-0: images from myregistry.com are frozen")
        );
        s["policies"][0]["spec"]["authorities"] = json!([{"static": {"action": "pass"}}]);
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], true);
        assert!(r["mutated_object"].is_null(), "no digest is known without a host call");
        assert!(host.calls.is_empty());
    }

    #[test]
    fn keyless_identities_are_any_of_one_call_each() {
        let mut s = settings(&[article("keyless-policy")], json!({}));
        s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] = json!([
            {"issuer": "https://accounts.google.com", "subject": "user@example.com"},
            {"issuer": "https://github.com/login/oauth", "subject": "release@example.com"}
        ]);
        let release = Signer::p256(
            &CertSpec::email("release@example.com", "https://github.com/login/oauth"),
            1,
        );
        let mut host = serving(&[release.layer(PAYLOAD)], |capability, p| {
            assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
            assert_eq!(p["type"], "SigstoreKeylessVerify");
            if p["keyless"][0]["subject"] == "release@example.com" {
                trusted(DIGEST)
            } else {
                Err("no matching certificate".into())
            }
        });
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        // Two verifications, then the signature manifest for the module's own binding check.
        assert_eq!(host.calls.len(), 3);
        assert_eq!(
            host.calls[0].1["keyless"],
            json!([{"issuer": "https://accounts.google.com", "subject": "user@example.com"}])
        );
    }

    #[test]
    fn cosign_v3_bundles_are_read_through_cip_after_the_legacy_tag_and_need_no_sig_manifest() {
        let s = settings(&[article("keyless-policy")], json!({}));
        let mut cip = MockHost::cip(|capability, p| {
            if capability == KUBEWARDEN_VERIFY_V2 {
                return Err("no signatures found".into());
            }
            assert_eq!(capability, CIP_VERIFY_WITH_FORMAT);
            assert_eq!(p["signature_format"], "bundle");
            assert_eq!(p["request"]["v2"]["type"], "SigstoreKeylessVerify");
            trusted(DIGEST)
        });
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut cip);
        assert_eq!(r["accepted"], true, "{r}");
        // The legacy verification, then the bundle one; no `.sig` manifest read.
        let asked: Vec<_> = cip.calls.iter().map(|(c, _)| *c).collect();
        assert_eq!(asked, [KUBEWARDEN_VERIFY_V2, CIP_VERIFY_WITH_FORMAT]);
    }

    /// The article's key rotation (the rotated-out key first) over three images: a stock host
    /// is asked once whether it reads bundles, and then never for bundles; `cip` is asked once
    /// too, after the first key the legacy tag did not verify (whose bundles it is then asked
    /// for), and from then on each key is one call reading both storages.
    #[test]
    fn a_host_that_reads_no_bundles_is_not_asked_for_them_by_every_failing_key() {
        let s = settings(
            &[with_keys(&article("key-rotation-policy"), &[P256_SECOND_PEM, P256_PEM])],
            json!({}),
        );
        let images = ["myregistry.com/a:v1", "myregistry.com/b:v1", "myregistry.com/c:v1"];
        let payload = json!({"request": pod("default", &images), "settings": s}).to_string();
        let evaluate = |host: MockHost| {
            let mut memo = Memo::new(host);
            let response = validate(payload.as_bytes(), &mut SettingsCache::default(), &mut memo);
            let value = serde_json::to_value(response).expect("serialisable response");
            assert_eq!(value["accepted"], true, "{value}");
            let host = memo.inner();
            let asked: Vec<_> = host.calls.iter().map(|(c, _)| *c).collect();
            (asked, host.unrecorded.clone())
        };

        let (asked, unrecorded) = evaluate(host_trusting_key(P256_PEM));
        assert_eq!(
            asked, [KUBEWARDEN_VERIFY_V2; 6],
            "each key of each image on the legacy tag"
        );
        assert_eq!(unrecorded, [CIP_HOST_OPERATIONS], "asked once, no bundle call");

        let (asked, unrecorded) = evaluate(MockHost::cip(|capability, p| match capability {
            c if c == KUBEWARDEN_VERIFY_V2 && p["pub_keys"][0] == P256_PEM => trusted(DIGEST),
            _ => Err("no signatures found".into()),
        }));
        let first_image = [
            KUBEWARDEN_VERIFY_V2,
            CIP_VERIFY_WITH_FORMAT,
            CIP_VERIFY_LEGACY_THEN_BUNDLE,
        ];
        let [.., one_call] = first_image;
        assert_eq!(asked, [&first_image[..], &[one_call; 4]].concat());
        assert_eq!(unrecorded, [CIP_HOST_OPERATIONS]);
    }

    /// Under the article's key rotation on an unsigned image, the first key is asked in two
    /// calls (the host is not yet known to serve both storages in one), the second in one: the
    /// two give the same reason, and that one call wraps exactly the legacy call's request.
    #[test]
    fn both_storages_in_one_call_give_the_reason_two_calls_give() {
        let s = settings(
            &[with_keys(&article("key-rotation-policy"), &[P256_SECOND_PEM, P256_PEM])],
            json!({}),
        );
        let mut memo = Memo::new(MockHost::cip(|_, _| Err("no signatures found".into())));
        let payload = json!({"request": pod("default", &["myregistry.com/app:v1"]), "settings": s}).to_string();
        let response = validate(payload.as_bytes(), &mut SettingsCache::default(), &mut memo);
        let r = serde_json::to_value(response).expect("serialisable response");
        assert_eq!(r["accepted"], false, "{r}");
        let message = r["message"].as_str().unwrap_or_default();
        let reason = "no signatures found (cosign v3 bundles, read by cip only: no signatures found)";
        assert_eq!(message.matches(reason).count(), 2, "{message}");
        let calls = &memo.inner().calls;
        let asked: Vec<_> = calls.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            asked,
            [
                KUBEWARDEN_VERIFY_V2,
                CIP_VERIFY_WITH_FORMAT,
                CIP_VERIFY_LEGACY_THEN_BUNDLE
            ]
        );
        assert_eq!(calls[0].1["pub_keys"], json!([P256_SECOND_PEM]));
        let mut second = calls[0].1.clone();
        second["pub_keys"] = json!([P256_PEM]);
        assert_eq!(calls[2].1, json!({"v2": second}));
    }

    /// When the one call says the legacy tag verified, the module still checks the `.sig`
    /// layers itself: a forged layer the host trusts is refused, a genuine one admitted; when
    /// it says a bundle verified, no `.sig` manifest is read (`cip` bound the bundle).
    #[test]
    fn a_legacy_answer_of_the_one_call_still_has_its_layers_checked() {
        let genuine = user().layer(PAYLOAD);
        let forged = genuine.moved();
        let s = keyless_user(json!({}));
        let payload = json!({"request": pod("default", &["myregistry.com/app:v1"]), "settings": s}).to_string();
        let evaluate = |layer: &Layer, legacy_trusts: bool| {
            let host = serving(std::slice::from_ref(layer), move |capability, _: &Value| {
                if capability == KUBEWARDEN_VERIFY_V2 && !legacy_trusts {
                    return Err("no signatures found".into());
                }
                trusted(DIGEST)
            });
            let mut memo = Memo::new(host.into_cip());
            // Known to serve both storages in one call, as a warm instance's host is.
            assert_eq!(
                crate::host::HostCalls::bundle_reading(&mut memo),
                crate::host::BundleReading::InOneCall
            );
            let response = validate(payload.as_bytes(), &mut SettingsCache::default(), &mut memo);
            let r = serde_json::to_value(response).expect("serialisable response");
            let asked: Vec<_> = memo.inner().calls.iter().map(|(c, _)| *c).collect();
            (r, asked)
        };
        let (r, asked) = evaluate(&forged, true);
        assert_eq!(r["accepted"], false, "{r}");
        assert!(r["message"].as_str().unwrap().contains("is forged or corrupt"), "{r}");
        assert_eq!(asked, [CIP_VERIFY_LEGACY_THEN_BUNDLE, KUBEWARDEN_OCI_MANIFEST]);
        let (r, _) = evaluate(&genuine, true);
        assert_eq!(r["accepted"], true, "{r}");
        let (r, asked) = evaluate(&forged, false);
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(asked, [CIP_VERIFY_LEGACY_THEN_BUNDLE]);
    }

    #[test]
    fn the_bundle_call_wraps_exactly_the_request_of_the_legacy_call() {
        let s = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        let mut cip = MockHost::cip(|capability, _| {
            if capability == KUBEWARDEN_VERIFY_V2 {
                return Err("no signatures found".into());
            }
            trusted(DIGEST)
        });
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut cip);
        assert_eq!(r["accepted"], true, "{r}");
        let [(legacy, request), (bundle, wrapped)] = &cip.calls[..] else {
            panic!("two calls expected: {:?}", cip.calls);
        };
        assert_eq!((*legacy, *bundle), (KUBEWARDEN_VERIFY_V2, CIP_VERIFY_WITH_FORMAT));
        assert_eq!(request["type"], "SigstorePubKeyVerify");
        assert_eq!(request["pub_keys"], json!([P256_PEM]));
        assert_eq!(
            *wrapped,
            json!({"signature_format": "bundle", "request": {"v2": request}})
        );
    }

    #[test]
    fn signature_format_picks_one_capability_and_bundle_says_what_stock_hosts_lack() {
        let mut s = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
        s["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!("bundle");
        let mut stock = MockHost::new(|_, _| Err("unexpected call".into()));
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut stock);
        assert_eq!(r["accepted"], false, "{r}");
        let message = r["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("cluster-image-policy/oci/v1/verify_with_format")
                && message.contains("--new-bundle-format=false --use-signing-config=false"),
            "{message}"
        );
        assert!(stock.calls.is_empty());

        let mut cip = MockHost::cip(|capability, p| {
            assert_eq!(capability, CIP_VERIFY_WITH_FORMAT);
            assert_eq!(p["request"]["v2"]["type"], "SigstorePubKeyVerify");
            trusted(DIGEST)
        });
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut cip);
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(cip.calls.len(), 1);

        s["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!("legacy");
        let mut legacy = MockHost::cip(|capability, _| {
            assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
            Err("no signatures found".into())
        });
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut legacy);
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(legacy.calls.len(), 1);
    }

    #[test]
    fn keyless_regexps_use_the_cip_capability_and_say_when_it_is_missing() {
        let mut s = settings(&[article("keyless-policy")], json!({}));
        s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] =
            json!([{"issuer": "https://accounts.google.com", "subjectRegExp": ".*@example\\.com"}]);
        let user = Signer::p256(&CertSpec::email("user@example.com", "https://accounts.google.com"), 1);
        let mut cip = serving(&[user.layer(PAYLOAD)], |capability, p| {
            assert_eq!(capability, CIP_VERIFY_KEYLESS_REGEXP);
            assert_eq!(
                p,
                &json!({"image": "myregistry.com/app:v1", "issuer": "https://accounts.google.com", "issuer_regexp": null,
                        "subject": null, "subject_regexp": ".*@example\\.com", "annotations": null})
            );
            trusted(DIGEST)
        });
        assert_eq!(
            run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut cip)["accepted"],
            true
        );

        let mut stock = MockHost::new(|c, _| Err(format!("unknown binding: {}", c.binding)));
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut stock);
        assert_eq!(r["accepted"], false);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("need the host capability cluster-image-policy/oci/v1/verify_keyless_regexp")
        );
    }

    /// The keyless policy of the article with one identity, `user@example.com` from Google.
    fn keyless_user(extra: Value) -> Value {
        let mut s = settings(&[article("keyless-policy")], json!({}));
        let keyless = &mut s["policies"][0]["spec"]["authorities"][0]["keyless"];
        keyless["identities"] = json!([{"issuer": "https://accounts.google.com", "subject": "user@example.com"}]);
        if let (Some(k), Some(extra)) = (keyless.as_object_mut(), extra.as_object()) {
            k.extend(extra.clone());
        }
        s
    }

    fn user() -> Signer {
        Signer::p256(&CertSpec::email("user@example.com", "https://accounts.google.com"), 1)
    }

    #[test]
    fn a_forged_keyless_layer_is_refused_although_the_host_trusts_it() {
        // A stock host (sigstore-rs) trusts a layer whose certificate and bundle were copied
        // from a genuine signature onto the attacker's payload; the module does not.
        let genuine = user().layer(PAYLOAD);
        let forged = genuine.moved();
        let stock = || {
            move |capability, _: &Value| {
                assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
                trusted(DIGEST)
            }
        };
        let s = keyless_user(json!({}));
        let mut host = serving(&[forged], stock());
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], false, "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("is forged or corrupt"), "{message}");
        assert!(message.contains("myregistry.com/app:sha256-1111"), "{message}");

        let mut host = serving(&[genuine], stock());
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], true, "{r}");
    }

    #[test]
    fn github_actions_and_certificate_authorities_are_defended_too() {
        let workflow = Signer::p256(&CertSpec::workflow("my-org/app"), 4);
        let mut s = signed_images();
        s["policies"][0]["spec"]["authorities"] =
            json!([{"name": "ci", "githubActions": {"owner": "my-org", "repo": "app"}}]);
        let stock = |_: crate::host::Capability, _: &Value| trusted(DIGEST);
        let mut host = serving(&[workflow.layer(PAYLOAD)], stock);
        assert_eq!(
            run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host)["accepted"],
            true
        );
        let forged = workflow.layer(PAYLOAD).moved();
        let mut host = serving(std::slice::from_ref(&forged), stock);
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], false, "{r}");
        assert!(r["message"].as_str().unwrap().contains("is forged or corrupt"), "{r}");
        // A workflow of another repository of the owner is not checked for this authority.
        s["policies"][0]["spec"]["authorities"][0]["githubActions"]["repo"] = json!("other");
        let mut host = serving(&[forged], stock);
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("holds no layer by a GitHub Actions workflow of my-org/other"),
            "{r}"
        );

        let signer = Signer::p256(
            &CertSpec::email("release@example.com", "https://accounts.google.com"),
            5,
        );
        s["policies"][0]["spec"]["authorities"] =
            json!([{"name": "release", "certificate": {"data": signer.cert_pem}}]);
        let mut back_dated = signer.layer(PAYLOAD);
        back_dated.bundle = signer.layer(crate::authority::binding::tests::OTHER_PAYLOAD).bundle;
        let mut host = serving(&[back_dated], stock);
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert!(
            r["message"].as_str().unwrap().contains("records another payload"),
            "{r}"
        );
        let mut host = serving(&[signer.layer(PAYLOAD)], stock);
        assert_eq!(
            run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host)["accepted"],
            true
        );
    }

    /// The attack on a stock host: a layer whose certificate annotation holds two PEM blocks,
    /// an attacker's genuine Fulcio certificate (B) then one naming the victim (A).
    /// sigstore-rs checks B's chain but takes the signer from A (pem-rfc7468 skips the
    /// preamble up to A), so it trusts the layer as the victim's; a module reading B would
    /// skip the layer and be satisfied by a genuine victim layer copied from another image.
    fn two_certificates(preamble: &str, attacker: &Signer, victim: &Signer, copied: &Layer) -> Layer {
        Layer {
            digest: <sha2::Sha256 as sha2::Digest>::digest(PAYLOAD.as_bytes()).into(),
            signature: b"not a signature".to_vec(),
            certificate: Some(format!("{preamble}{}{}", attacker.cert_pem, victim.cert_pem)),
            bundle: copied.bundle.clone(),
        }
    }

    #[test]
    fn a_certificate_annotation_with_two_certificates_is_refused() {
        let stock = |_: crate::host::Capability, _: &Value| trusted(DIGEST);
        let attacker = Signer::p256(
            &CertSpec::email("attacker@example.com", "https://accounts.google.com"),
            9,
        );
        let victim = user();
        let copied = victim.layer(crate::authority::binding::tests::OTHER_PAYLOAD);
        let s = keyless_user(json!({}));
        for preamble in ["x", " ", "\n", ""] {
            let forged = two_certificates(preamble, &attacker, &victim, &copied);
            let mut host = serving(&[forged, copied.clone()], stock);
            let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
            assert_eq!(r["accepted"], false, "{preamble:?}: {r}");
            let message = r["message"].as_str().unwrap();
            assert!(message.contains("signature layer 0"), "{message}");
            assert!(message.contains("not one PEM block"), "{message}");
            assert!(r.get("mutated_object").is_none_or(Value::is_null), "{r}");
        }

        // The same with a GitHub Actions authority.
        let workflow = Signer::p256(&CertSpec::workflow("my-org/app"), 4);
        let intruder = Signer::p256(&CertSpec::workflow("evil-org/x"), 7);
        let copied = workflow.layer(crate::authority::binding::tests::OTHER_PAYLOAD);
        let mut s = signed_images();
        s["policies"][0]["spec"]["authorities"] =
            json!([{"name": "ci", "githubActions": {"owner": "my-org", "repo": "app"}}]);
        let forged = two_certificates(" ", &intruder, &workflow, &copied);
        let mut host = serving(&[forged, copied.clone()], stock);
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], false, "{r}");
        assert!(r["message"].as_str().unwrap().contains("not one PEM block"), "{r}");

        // A genuine annotation with whitespace around it (as some tools write it) still binds.
        let mut spaced = workflow.layer(PAYLOAD);
        spaced.certificate = Some(format!("\n{}\n\n", workflow.cert_pem));
        let mut host = serving(&[spaced], stock);
        assert_eq!(
            run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host)["accepted"],
            true
        );
    }

    #[test]
    fn insecure_ignore_sct_goes_to_the_cip_capability_with_an_escaped_identity() {
        let s = keyless_user(json!({"insecureIgnoreSCT": true}));
        let mut cip = serving(&[user().layer(PAYLOAD)], |capability, p| {
            assert_eq!(capability, CIP_VERIFY_KEYLESS_REGEXP);
            assert_eq!(
                p,
                &json!({"image": "myregistry.com/app:v1", "issuer": null, "issuer_regexp": "https://accounts\\.google\\.com",
                        "subject": null, "subject_regexp": "user@example\\.com", "annotations": null,
                        "insecure_ignore_sct": true})
            );
            trusted(DIGEST)
        });
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut cip);
        assert_eq!(r["accepted"], true, "{r}");

        // A stock host lacks the capability: the authority fails and says which one.
        let mut stock = MockHost::new(|c, _| Err(format!("unknown binding: {}", c.binding)));
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut stock);
        assert_eq!(r["accepted"], false);
        let message = r["message"].as_str().unwrap();
        assert!(
            message.contains(
                "insecureIgnoreSCT need the host capability cluster-image-policy/oci/v1/verify_keyless_regexp"
            ),
            "{message}"
        );

        // `insecureIgnoreSCT: false` keeps Kubewarden's capability (where cip checks the SCT).
        let s = keyless_user(json!({"insecureIgnoreSCT": false}));
        let mut host = serving(&[user().layer(PAYLOAD)], |capability, p| {
            assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
            assert!(p.get("insecure_ignore_sct").is_none());
            trusted(DIGEST)
        });
        assert_eq!(
            run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host)["accepted"],
            true
        );
    }

    #[test]
    fn verification_is_bound_to_the_digest() {
        let s = signed_images();
        let by_digest = format!("myregistry.com/app@{DIGEST}");
        let mut host = host_trusting_key(P256_PEM);
        let r = run(&pod("default", &[&by_digest]), &s, &mut host);
        assert_eq!(r["accepted"], true);
        assert_eq!(host.calls[0].1["image"], by_digest);
        assert!(r["mutated_object"].is_null(), "already pinned");

        let other = format!("myregistry.com/app:v1@{OTHER_DIGEST}");
        let mut host = host_trusting_key(P256_PEM);
        let r = run(&pod("default", &[&other]), &s, &mut host);
        assert_eq!(r["accepted"], false);
        assert!(r["message"].as_str().unwrap().contains(&format!(
            "the host verified digest {DIGEST}, not the digest {OTHER_DIGEST}"
        )));
    }

    #[test]
    fn untrusted_or_malformed_host_answers_deny() {
        for answer in [
            json!({"is_trusted": false, "digest": DIGEST}),
            json!({"is_trusted": true, "digest": "sha256:short"}),
            json!({"unexpected": true}),
        ] {
            let mut host = MockHost::new(move |_, _| Ok(answer.to_string().into_bytes()));
            let r = run(&pod("default", &["myregistry.com/app:v1"]), &signed_images(), &mut host);
            assert_eq!(r["accepted"], false, "{r}");
        }
    }

    #[test]
    fn host_errors_deny_in_enforce_and_warn_in_warn_mode() {
        let mut s = signed_images();
        let down = || MockHost::new(|_, _| Err("registry myregistry.com unreachable: connection refused".into()));
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut down());
        assert_eq!(r["accepted"], false);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("unreachable: connection refused")
        );
        s["policies"][0]["spec"]["mode"] = json!("warn");
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut down());
        assert_eq!(r["accepted"], true);
        assert!(r["warnings"][0].as_str().unwrap().contains("unreachable"));
    }

    #[test]
    fn long_warnings_are_cut_to_256_bytes() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["mode"] = json!("warn");
        let mut host = MockHost::new(|_, _| Err("é".repeat(400)));
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        let w = r["warnings"][0].as_str().unwrap();
        assert!(w.len() <= 256 && w.ends_with('…'), "{}", w.len());
        // The audit annotation keeps the whole reason.
        assert!(r["audit_annotations"]["unverified-images"].as_str().unwrap().len() > 800);
    }

    #[test]
    fn every_workload_kind_is_checked_and_pinned() {
        let spec = json!({
            "initContainers": [{"name": "i", "image": "myregistry.com/init:1"}],
            "containers": [{"name": "c", "image": "myregistry.com/app:1"}],
            "ephemeralContainers": [{"name": "e", "image": "myregistry.com/debug:1"}]
        });
        for (kind, resource, group, object) in [
            (
                "Deployment",
                "deployments",
                "apps",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
            (
                "CronJob",
                "cronjobs",
                "batch",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            ),
            (
                "ReplicationController",
                "replicationcontrollers",
                "",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
        ] {
            let request = json!({
                "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": resource},
                "namespace": "default", "operation": "CREATE", "object": object
            });
            let mut host = host_trusting_key(P256_PEM);
            let r = run(&request, &signed_images(), &mut host);
            assert_eq!(r["accepted"], true, "{kind}");
            assert_eq!(host.calls.len(), 3, "{kind}");
            let mutated = r["mutated_object"].to_string();
            let images = crate::workload::image_sites(kind, "", &mutated).unwrap();
            assert_eq!(images.len(), 3);
            assert!(
                images.iter().all(|s| s.image.ends_with(&format!("@{DIGEST}"))),
                "{kind}: {images:?}"
            );
        }
    }

    #[test]
    fn ephemeral_container_subresource() {
        let mut request = pod("default", &["myregistry.com/unsigned:1"]);
        request["operation"] = json!("UPDATE");
        request["subResource"] = json!("ephemeralcontainers");
        request["oldObject"] = request["object"].clone();
        request["object"]["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "image": "myregistry.com/debug:1"}]);
        let mut host = MockHost::new(|_, p| {
            if p["image"] == "myregistry.com/debug:1" {
                trusted(DIGEST)
            } else {
                Err("unsigned".into())
            }
        });
        let r = run(&request, &signed_images(), &mut host);
        assert_eq!(r["accepted"], true, "only the ephemeral container is judged: {r}");
        assert_eq!(host.calls.len(), 1);
    }

    #[test]
    fn match_by_resource_and_labels() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["match"] =
            json!([{"version": "v1", "resource": "pods", "selector": {"matchLabels": {"signed": "required"}}}]);
        let mut unlabelled = MockHost::failing();
        assert_eq!(
            run(&pod("default", &["myregistry.com/app:1"]), &s, &mut unlabelled)["accepted"],
            true
        );
        let mut request = pod("default", &["myregistry.com/app:1"]);
        request["object"]["metadata"]["labels"] = json!({"signed": "required"});
        assert_eq!(run(&request, &s, &mut MockHost::failing())["accepted"], false);
    }

    #[test]
    fn malformed_requests_are_answered_never_panicked() {
        let s = signed_images();
        for payload in [
            "".to_owned(),
            "not json".to_owned(),
            "{}".to_owned(),
            json!({"request": null, "settings": s}).to_string(),
            json!({"request": {"kind": 5}, "settings": s}).to_string(),
            r#"{"request": {"kind": {"kind": "Pod"}, "object": {"spec": {"containers": [{"image": "\udc00"}]}}}, "settings": {}}"#.to_owned(),
        ] {
            let r = validate(payload.as_bytes(), &mut SettingsCache::default(), &mut MockHost::failing());
            assert!(!r.accepted, "{payload}");
            assert!(r.message.is_some_and(|m| !m.is_empty()));
        }
        // Bad settings are reported, not panicked on.
        let r = run(
            &pod("default", &["nginx"]),
            &json!({"policies": 3}),
            &mut MockHost::failing(),
        );
        assert_eq!(r["accepted"], false);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid policy settings: policies: ")
        );
        // DELETE has no object; unknown kinds hold no images.
        for request in [
            json!({"kind": {"kind": "Pod"}, "operation": "DELETE", "object": null}),
            json!({"kind": {"kind": "ConfigMap"}, "object": {"data": {"image": "myregistry.com/x"}}}),
        ] {
            assert_eq!(
                run(&request, &s, &mut MockHost::failing())["accepted"],
                true,
                "{request}"
            );
        }
    }

    #[test]
    fn odd_image_references_are_refused_with_the_reason() {
        let r = run(
            &pod("default", &["myregistry.com/App:1", "ok.io/x\u{202e}"]),
            &signed_images(),
            &mut MockHost::failing(),
        );
        assert_eq!(r["accepted"], false);
        let m = r["message"].as_str().unwrap();
        assert!(
            m.contains(
                "image myregistry.com/App:1 is not a valid image reference: invalid repository path component `App`"
            ),
            "{m}"
        );
        assert!(m.contains("\\u{202e}"), "control characters are escaped: {m}");
    }

    #[test]
    fn a_thousand_containers() {
        let images: Vec<String> = (0..1000).map(|i| format!("myregistry.com/app{}:v{i}", i % 7)).collect();
        let refs: Vec<&str> = images.iter().map(String::as_str).collect();
        let mut host = Memo::new(host_trusting_key(P256_PEM));
        let payload = json!({"request": pod("default", &refs), "settings": signed_images()}).to_string();
        let r = validate(payload.as_bytes(), &mut SettingsCache::default(), &mut host);
        assert!(r.accepted);
        assert_eq!(host.inner().calls.len(), 1000);
        let mutated: Value = serde_json::from_str(&r.mutated_object.unwrap()).unwrap();
        assert_eq!(
            mutated["spec"]["containers"][999]["image"],
            format!("myregistry.com/app5:v999@{DIGEST}")
        );
    }
}

mod verify_images_export {
    use super::*;

    #[test]
    fn verdicts_per_image_and_namespace() {
        let s = settings(
            &[
                with_keys(&article("production-strict-policy"), &[P256_PEM]),
                with_keys(&article("dev-warn-policy"), &[P256_PEM]),
            ],
            json!({}),
        );
        let payload = json!({"settings": s, "images": [
            {"image": "myregistry.com/signed:1", "namespace": "production"},
            {"image": "myregistry.com/unsigned:1", "namespace": "production"},
            {"image": "myregistry.com/unsigned:1", "namespace": "development"},
            {"image": "myregistry.com/unsigned:1", "namespace": "other"},
            {"image": "Bad Ref", "namespace": "production"}
        ]})
        .to_string();
        let mut host = MockHost::new(|_, p| {
            if p["image"] == "myregistry.com/signed:1" {
                trusted(DIGEST)
            } else {
                Err("no signature".into())
            }
        });
        let out: Value = serde_json::from_slice(
            &verify_images(payload.as_bytes(), &mut SettingsCache::default(), &mut host).unwrap(),
        )
        .unwrap();
        let results = out["results"].as_array().unwrap();
        let verdicts: Vec<&str> = results.iter().map(|r| r["verdict"].as_str().unwrap()).collect();
        // `other` is covered by no policy: noMatchPolicy defaults to warn.
        assert_eq!(verdicts, ["allow", "deny", "warn", "warn", "deny"]);
        assert_eq!(results[0]["digest"], DIGEST);
        assert_eq!(
            results[1]["policies"][0],
            json!({"name": "production-strict-policy", "mode": "enforce", "passed": false, "verified": false,
                   "authorities": [{"name": "authority-0", "passed": false, "reason": "no signature verified by the key: no signature (cosign v3 bundles are read by cip only: this host lacks cluster-image-policy/oci/v1/verify_with_format)"}]})
        );
        assert!(
            verify_images(
                b"{\"images\": []}",
                &mut SettingsCache::default(),
                &mut MockHost::failing()
            )
            .is_err()
        );
        assert!(
            verify_images(
                json!({"settings": {}, "images": [{"image": "x", "nmespace": "y"}]})
                    .to_string()
                    .as_bytes(),
                &mut SettingsCache::default(),
                &mut MockHost::failing()
            )
            .is_err()
        );
    }
}

mod kms_keys {
    //! `key.kms` without `data`: the module asks the host for the public key, then verifies
    //! with it through the stock `v2/verify`.

    use super::*;
    use crate::host::CIP_KMS_PUBLIC_KEY;

    const URI: &str = "gcpkms://projects/PROJECT_ID/locations/us-central1/keyRings/cosign/cryptoKeys/cosign-key";

    fn kms_settings(mode: &str) -> Value {
        let mut s = settings(&[article("kms-signed-policy")], json!({}));
        s["policies"][0]["spec"]["mode"] = json!(mode);
        s
    }

    /// A host resolving `URI` to `pem` and trusting images signed by `P256_PEM`.
    fn kms_host(pem: &'static str) -> MockHost {
        MockHost::new(move |capability, p| {
            if capability == CIP_KMS_PUBLIC_KEY {
                assert_eq!(p, &json!({"uri": URI}));
                return Ok(json!({"pem": pem}).to_string().into_bytes());
            }
            assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
            assert_eq!(p["type"], "SigstorePubKeyVerify");
            if p["pub_keys"] == json!([P256_PEM]) {
                trusted(DIGEST)
            } else {
                Err("no signature verified by the given key".to_owned())
            }
        })
    }

    #[test]
    fn the_host_resolves_the_key_and_the_stock_capability_verifies() {
        let mut host = kms_host(P256_PEM);
        let r = run(
            &pod("default", &["gcr.io/myproject/app:v1"]),
            &kms_settings("enforce"),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(host.calls.len(), 2);
        assert_eq!(host.calls[0].0, CIP_KMS_PUBLIC_KEY);
        assert_eq!(host.calls[1].1["pub_keys"], json!([P256_PEM]));

        // Another key behind the URI: not the signer's.
        let mut host = kms_host(P256_SECOND_PEM);
        let r = run(
            &pod("default", &["gcr.io/myproject/app:v1"]),
            &kms_settings("enforce"),
            &mut host,
        );
        assert_eq!(r["accepted"], false, "{r}");
    }

    #[test]
    fn one_evaluation_resolves_a_key_once() {
        let mut host = Memo::new(kms_host(P256_PEM));
        let payload = json!({
            "request": pod("default", &["gcr.io/myproject/a:v1", "gcr.io/myproject/b:v1"]),
            "settings": kms_settings("enforce"),
        })
        .to_string();
        let r = serde_json::to_value(validate(payload.as_bytes(), &mut SettingsCache::default(), &mut host)).unwrap();
        assert_eq!(r["accepted"], true, "{r}");
        let kms_calls = host
            .inner()
            .calls
            .iter()
            .filter(|(c, _)| *c == CIP_KMS_PUBLIC_KEY)
            .count();
        assert_eq!(kms_calls, 1);
    }

    #[test]
    fn a_stock_host_denies_in_enforce_and_warns_in_warn_naming_the_capability_and_the_command() {
        let stock = || MockHost::new(|c, _| Err(format!("unknown binding: {}", c.binding)));
        let r = run(
            &pod("default", &["gcr.io/myproject/app:v1"]),
            &kms_settings("enforce"),
            &mut stock(),
        );
        assert_eq!(r["accepted"], false, "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(
            message.ends_with(
                "authority authority-0: key.kms needs host capability cluster-image-policy/kms/v1/public_key \
                 (on Kubewarden run `cip kms resolve` to fill key.data): unknown binding: cluster-image-policy"
            ),
            "{message}"
        );

        let r = run(
            &pod("default", &["gcr.io/myproject/app:v1"]),
            &kms_settings("warn"),
            &mut stock(),
        );
        assert_eq!(r["accepted"], true, "{r}");
        let warning = r["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("cluster-image-policy/kms/v1/public_key") && warning.contains("cip kms resolve"),
            "{warning}"
        );
    }

    #[test]
    fn host_failures_and_bad_answers_deny() {
        for (answer, expected) in [
            (
                Err("gcpkms key not found: projects/x".to_owned()),
                "gcpkms key not found",
            ),
            (
                Ok(b"not json".to_vec()),
                "unreadable answer from host capability cluster-image-policy/kms/v1/public_key",
            ),
            (
                Ok(
                    json!({"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"})
                        .to_string()
                        .into_bytes(),
                ),
                "is not usable",
            ),
        ] {
            let mut host = MockHost::new(move |c, _| {
                assert_eq!(c, CIP_KMS_PUBLIC_KEY, "no verification without a key");
                answer.clone()
            });
            let r = run(
                &pod("default", &["gcr.io/myproject/app:v1"]),
                &kms_settings("enforce"),
                &mut host,
            );
            assert_eq!(r["accepted"], false, "{r}");
            assert!(r["message"].as_str().unwrap().contains(expected), "{r}");
        }
    }

    #[test]
    fn malformed_or_empty_uris_are_refused_by_validate_settings() {
        for (kms, expected) in [
            (
                "awskms:///not-a-key",
                "malformed awskms URI: expected awskms://[ENDPOINT]/KEY",
            ),
            (
                "gcpkms://projects/p",
                "malformed gcpkms URI: expected gcpkms://projects/PROJECT",
            ),
            ("azurekms://vault", "malformed azurekms URI"),
            ("hashivault://a/b", "malformed hashivault URI"),
            ("k8s://ns/name", "is not a supported KMS URI"),
            (" ", "key.kms is empty"),
        ] {
            let mut s = kms_settings("enforce");
            s["policies"][0]["spec"]["authorities"][0]["key"]["kms"] = json!(kms);
            let err = check_settings(&s).unwrap_err();
            assert!(err.starts_with("policies[0].spec.authorities[0].key.kms: "), "{err}");
            assert!(err.contains(expected), "{kms}: {err}");
        }
    }
}
