//! `validate` reads a policy's `match`, authorities and `spec.policy` only when the policy's
//! images cover an image of the request; `validate_settings` still reads and checks everything.

use serde_json::{Value, json};

use super::{DIGEST, P256_PEM, article, check_settings, host_trusting_key, pod, run, settings, with_keys};
use crate::host::mock::MockHost;
use crate::settings::{Settings, SettingsCache};

/// A policy on `other.io/**` whose authorities `validate_settings` refuses (`bad`).
fn other_policy(bad: Value) -> Value {
    json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
           "metadata": {"name": "other-policy"},
           "spec": {"images": [{"glob": "other.io/**"}], "authorities": [bad]}})
}

fn with_policy(extra: Value) -> Value {
    let mut s = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}));
    s["policies"].as_array_mut().unwrap().push(extra);
    s
}

/// Authority blocks refused by `validate_settings`, with the start of the message.
fn refused_authorities() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"key": {"dta": "x"}}),
            "policies[1].spec.authorities[0].key.dta: unknown field `dta`",
        ),
        (
            json!({"key": {"data": 3}}),
            "policies[1].spec.authorities[0].key.data: key.data is not a string",
        ),
        (
            json!({"static": {"action": "maybe"}}),
            "policies[1].spec.authorities[0].static.action: unknown action",
        ),
        (
            json!({"key": {"kms": "gcpkms://x"}}),
            "policies[1].spec.authorities[0].key.kms: malformed gcpkms URI",
        ),
        (json!(7), "policies[1].spec.authorities[0]: invalid type"),
    ]
}

/// `match` lists refused by `validate_settings`, with the start of the message.
fn refused_matches() -> Vec<(Value, &'static str)> {
    vec![
        (json!([{}]), "policies[1].spec.match[0]: the match entry is empty"),
        (
            json!([{"namespaces": []}]),
            "policies[1].spec.match[0].namespaces: namespaces is empty",
        ),
        (
            json!([{"namespaces": ["Prod"]}]),
            "policies[1].spec.match[0].namespaces: namespace `Prod`: character 'P' is not allowed",
        ),
        (
            json!([{"namespace": ["a"]}]),
            "policies[1].spec.match[0].namespace: unknown field `namespace`",
        ),
        (
            json!([{"selector": {"matchLabels": {"a": 1}}}]),
            "policies[1].spec.match[0].selector.matchLabels.a: invalid type",
        ),
        (json!({"namespaces": ["a"]}), "policies[1].spec.match: invalid type"),
    ]
}

/// Policies on `other.io/**` that `validate_settings` refuses, by their authorities or their
/// `match`, with the start of the message.
fn refused_policies() -> Vec<(Value, &'static str)> {
    let authorities = refused_authorities().into_iter().map(|(bad, m)| (other_policy(bad), m));
    let matches = refused_matches().into_iter().map(|(bad, m)| {
        let mut policy = other_policy(json!({"static": {"action": "pass"}}));
        policy["spec"]["match"] = bad;
        (policy, m)
    });
    authorities.chain(matches).collect()
}

#[test]
fn a_policy_that_covers_no_image_of_the_request_is_not_read_further() {
    for (bad, message) in refused_policies() {
        let s = with_policy(bad.clone());
        // validate_settings refuses it, naming the field ...
        let err = check_settings(&s).unwrap_err();
        assert!(err.starts_with(message), "{bad}: {err}");
        // ... and `validate` of a request whose images it does not cover decides without it.
        let r = run(
            &pod("default", &["myregistry.com/app:v1"]),
            &s,
            &mut host_trusting_key(P256_PEM),
        );
        assert_eq!(r["accepted"], true, "{bad}: {r}");
    }
}

#[test]
fn a_covering_policy_whose_match_or_authorities_cannot_be_read_refuses_the_request_in_any_mode() {
    for mode in ["enforce", "warn"] {
        for (bad, message) in refused_policies() {
            let mut policy = bad.clone();
            policy["spec"]["mode"] = json!(mode);
            let s = with_policy(policy);
            let r = run(
                &pod("default", &["myregistry.com/app:v1", "other.io/app:v1"]),
                &s,
                &mut host_trusting_key(P256_PEM),
            );
            assert_eq!(r["accepted"], false, "{mode} {bad}: {r}");
            // verify_images fails as with any invalid settings; without the image, it answers.
            let keys = |images: &[&str]| {
                let images: Vec<Value> = images
                    .iter()
                    .map(|i| json!({"image": i, "namespace": "default"}))
                    .collect();
                json!({"settings": s, "images": images}).to_string()
            };
            let err = crate::admission::verify_images(
                keys(&["other.io/app:v1"]).as_bytes(),
                &mut SettingsCache::default(),
                &mut host_trusting_key(P256_PEM),
            )
            .err()
            .unwrap_or_default();
            assert!(err.starts_with(&format!("invalid policy settings: {message}")), "{err}");
            assert!(
                crate::admission::verify_images(
                    keys(&["myregistry.com/app:v1"]).as_bytes(),
                    &mut SettingsCache::default(),
                    &mut host_trusting_key(P256_PEM),
                )
                .is_ok()
            );
            let m = r["message"].as_str().unwrap();
            assert!(
                m.starts_with(&format!("invalid policy settings: {message}")),
                "{mode} {bad}: {m}"
            );
        }
    }
}

/// The field named by an error in an authority after a `key.data` (kept as its JSON text) is
/// the field at fault: the path-tracking second reading reads the kept text as the first did.
#[test]
fn an_error_after_a_key_is_named_by_its_path() {
    let mut policy = other_policy(json!({"key": {"data": P256_PEM}}));
    policy["spec"]["authorities"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": {"data": P256_PEM, "dta": 1}}));
    let err = check_settings(&with_policy(policy)).unwrap_err();
    assert!(
        err.starts_with("policies[1].spec.authorities[1].key.dta: unknown field `dta`"),
        "{err}"
    );
}

#[test]
fn a_covering_policy_with_an_unreadable_spec_policy_denies() {
    let mut policy = other_policy(json!({"static": {"action": "pass"}}));
    policy["spec"]["policy"] = json!({"type": "cue", "data": "predicateType: 1 +"});
    let s = with_policy(policy.clone());
    assert!(
        check_settings(&s)
            .unwrap_err()
            .starts_with("policies[1].spec.policy.data: CUE policy")
    );
    let r = run(&pod("default", &["other.io/app:v1"]), &s, &mut MockHost::failing());
    assert_eq!(r["accepted"], false);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid policy settings: policies[1].spec.policy.data: CUE policy"),
        "{r}"
    );
    // Not covering: not read.
    let r = run(
        &pod("default", &["myregistry.com/app:v1"]),
        &s,
        &mut host_trusting_key(P256_PEM),
    );
    assert_eq!(r["accepted"], true, "{r}");
}

#[test]
fn what_decides_coverage_is_still_checked_for_every_policy() {
    // Shape and meaning of names, modes and globs are read for every policy, so `validate`
    // refuses them even for a request the policy would not cover (`match` decides only for a
    // policy whose images cover an image: the tests above).
    for (field, value, message) in [
        (
            "/spec/mode",
            json!("audit"),
            "policies[1].spec.mode: unknown mode `audit`",
        ),
        (
            "/spec/images/0/glob",
            json!("bad glob"),
            "policies[1].spec.images[0].glob: character ' '",
        ),
        (
            "/spec/unknown",
            json!(1),
            "policies[1].spec.unknown: unknown field `unknown`",
        ),
        (
            "/metadata/name",
            json!("signed-images-policy"),
            "policies[1].metadata.name: `signed-images-policy` is already",
        ),
    ] {
        let mut policy = other_policy(json!({"static": {"action": "pass"}}));
        let (parent, key) = field.rsplit_once('/').unwrap();
        policy.pointer_mut(parent).unwrap()[key] = value;
        let s = with_policy(policy);
        let r = run(
            &pod("default", &["myregistry.com/app:v1"]),
            &s,
            &mut host_trusting_key(P256_PEM),
        );
        assert_eq!(r["accepted"], false, "{field}");
        let m = r["message"].as_str().unwrap();
        assert!(
            m.starts_with(&format!("invalid policy settings: {message}")),
            "{field}: {m}"
        );
    }
}

#[test]
fn escaped_strings_in_the_settings_are_read_as_their_values() {
    // JSON encoders may escape `/` or any character as \uXXXX; borrowed strings must not
    // refuse them.
    let text = settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}))
        .to_string()
        .replace("myregistry.com/**", "myregistry.com\\/**")
        .replace("signed-images-policy", "signed-\\u0069mages-policy");
    let parsed = Settings::parse_lazy(&text).unwrap();
    assert_eq!(parsed.policies[0].name, "signed-images-policy");
    let payload = format!(
        "{{\"request\": {}, \"settings\": {text}}}",
        pod("default", &["myregistry.com/app:v1"])
    );
    let r = crate::admission::validate(
        payload.as_bytes(),
        &mut SettingsCache::default(),
        &mut host_trusting_key(P256_PEM),
    );
    assert!(r.accepted, "{:?}", r.message);
    let mutated: serde_json::Value = serde_json::from_str(&r.mutated_object.unwrap()).unwrap();
    assert_eq!(
        mutated["spec"]["containers"][0]["image"],
        format!("myregistry.com/app:v1@{DIGEST}")
    );
}

#[test]
fn a_lazily_read_model_checks_as_the_whole_parse() {
    // `check_material` on a lazily read model reads every deferred part.
    for (bad, message) in refused_policies() {
        let text = with_policy(bad).to_string();
        let lazy = Settings::parse_lazy(&text).unwrap();
        let err = lazy.check_material().unwrap_err().to_string();
        assert!(err.starts_with(message), "{err}");
    }
}

/// A decision keeps room for what it holds until the answer is written: one policy outcome for
/// an image one policy covers, and one authority outcome an authority tried (a `Vec` grown by
/// `push` starts with room for four).
#[test]
fn a_decision_keeps_room_for_its_outcomes_only() {
    use crate::decision::{Verdict, decide};
    use crate::host::Memo;
    use crate::matching::{Labels, Subject};

    let subject = Subject {
        namespace: "default",
        group: "",
        version: "v1",
        resource: "pods",
        labels: Labels::None,
        object: None,
    };
    // Under the rotation the second key signed: the first authority fails, the second passes.
    for (policy, keys, tried) in [
        ("signed-images-policy", vec![P256_PEM], 1),
        ("key-rotation-policy", vec![super::P256_SECOND_PEM, P256_PEM], 2),
    ] {
        let text = settings(&[with_keys(&article(policy), &keys)], json!({})).to_string();
        let settings = Settings::parse_lazy(&text).unwrap();
        let mut host = Memo::new(host_trusting_key(P256_PEM));
        let verdict = decide(&settings, &subject, "myregistry.com/app:v1", &mut host);
        assert_eq!(verdict.verdict, Verdict::Allow, "{}", verdict.message);
        assert_eq!((verdict.policies.len(), verdict.policies.capacity()), (1, 1));
        let authorities = &verdict.policies[0].authorities;
        assert_eq!((authorities.len(), authorities.capacity()), (tried, keys.len()));
    }
}

/// A keyless identity whose `subjectRegExp` has a class with a `-` after `\w`, as Go reads it
/// (`\w`, `-` and `.`; sigstore writes its own HashiVault reference pattern so): both readings
/// of the settings accept the policy, and a signer the pattern names is admitted, one it does
/// not name is not, although the host trusts both. (go-regexp refused such a class, which
/// `regex_syntax` takes for a range starting at `\w`.)
#[test]
fn a_subject_regexp_with_a_dash_after_a_class_is_read_as_go_reads_it() {
    use crate::authority::binding::tests::{PAYLOAD, Signer, serving};
    use crate::authority::fulcio::tests::CertSpec;

    let google = "https://accounts.google.com";
    let mut s = settings(&[article("keyless-policy")], json!({}));
    s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] =
        json!([{"issuer": google, "subjectRegExp": "^[\\w-.]+@example\\.com$"}]);
    let answer = crate::validate_settings(s.to_string().as_bytes()).expect("an answer");
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(answer["valid"], true, "{answer}");
    for (subject, admitted) in [("ci-bot.v2@example.com", true), ("ci+bot@example.com", false)] {
        let signer = Signer::p256(&CertSpec::email(subject, google), 1);
        let mut host = serving(&[signer.layer(PAYLOAD)], |_, _| crate::host::mock::trusted(DIGEST));
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], admitted, "{subject}: {r}");
    }
}
