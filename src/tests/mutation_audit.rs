//! Negative tests found by a mutation audit of the module: each fails when the check it names is
//! taken out of the module (the mutant is named in each test's comment), and passes on the module
//! as it is. They assert what a user sees: the admission decision and its message.

use serde_json::{Value, json};

use super::{DIGEST, pod, run, settings};
use crate::authority::binding::tests::{Layer, PAYLOAD, Signer, serving};
use crate::authority::fulcio::tests::CertSpec;
use crate::authority::rekor::tests::bundle;
use crate::crypto::signature::tests::{p256_key, p256_spki};
use crate::host::mock::trusted;

/// A policy covering `myregistry.com/**` whose one authority is the certificate of `signer`.
fn certificate_policy(signer: &Signer) -> Value {
    settings(
        &[format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: release\nspec:\n  images:\n  - glob: \"myregistry.com/**\"\n  authorities:\n  - name: release\n    certificate:\n      data: {}\n",
            serde_json::to_string(&signer.cert_pem).expect("a JSON string is YAML")
        )],
        json!({}),
    )
}

/// The layer of `signer` over [`PAYLOAD`] whose Rekor bundle records `public_key_pem` as the
/// signer (the payload digest and the signature are the layer's own).
fn with_rekor_signer(signer: &Signer, public_key_pem: &str) -> Layer {
    let genuine = signer.layer(PAYLOAD);
    Layer {
        bundle: Some(bundle(
            "hashedrekord",
            &genuine.digest,
            &genuine.signature,
            public_key_pem,
        )),
        ..genuine
    }
}

/// A `certificate` authority's layer is bound by its Rekor entry only when the entry names the
/// certificate or the certificate's own public key: an entry naming another public key is
/// refused, although the host trusts the signatures and the layer's signature verifies.
/// (Mutant: binding.rs, `"PUBLIC KEY" => signer.contents() == certificate.spki` made `true`.)
#[test]
fn a_rekor_entry_naming_another_public_key_does_not_bind_a_certificate_layer() {
    let signer = Signer::p256(
        &CertSpec::email("release@example.com", "https://accounts.google.com"),
        5,
    );
    let s = certificate_policy(&signer);
    let stock = |_: crate::host::Capability, _: &Value| trusted(DIGEST);
    let image = pod("default", &["myregistry.com/app:v1"]);

    let other_key = pem::encode(&pem::Pem::new("PUBLIC KEY", p256_spki(&p256_key(2))));
    let mut host = serving(&[with_rekor_signer(&signer, &other_key)], stock);
    let r = run(&image, &s, &mut host);
    assert_eq!(r["accepted"], false, "{r}");
    let message = r["message"].as_str().expect("a message");
    assert!(message.contains("signature layer 0"), "{message}");
    assert!(
        message.contains("its Rekor entry records another signer's certificate"),
        "{message}"
    );
    assert!(r.get("mutated_object").is_none_or(Value::is_null), "{r}");

    // The same layer whose entry names the certificate's own key is admitted and pinned.
    let certificate = crate::authority::fulcio::SignerCertificate::from_der(&signer.cert_der).expect("certificate");
    let own_key = pem::encode(&pem::Pem::new("PUBLIC KEY", certificate.spki.clone()));
    let mut host = serving(&[with_rekor_signer(&signer, &own_key)], stock);
    let r = run(&image, &s, &mut host);
    assert_eq!(r["accepted"], true, "{r}");
}

/// A `NotIn` requirement with several values leaves out an object whose label is any one of
/// them: a policy requiring a signature for every tier but `dev` and `test` does not apply to a
/// `dev` Pod (admitted under `noMatchPolicy: allow`), and applies to a `prod` Pod (denied when
/// nothing verifies). (Mutant: matching.rs, `NotIn` read as "some listed value differs".)
#[test]
fn a_not_in_selector_leaves_out_every_listed_value() {
    let s = json!({"noMatchPolicy": "allow", "policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "signed-tiers"},
        "spec": {
            "images": [{"glob": "myregistry.com/**"}],
            "authorities": [{"static": {"action": "fail", "message": "unsigned tier"}}],
            "match": [{"version": "v1", "resource": "pods", "selector": {"matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["dev", "test"]}
            ]}}]
        }
    }]});
    let labelled = |tier: &str| {
        let mut request = pod("default", &["myregistry.com/app:v1"]);
        request["object"]["metadata"]["labels"] = json!({ "tier": tier });
        request
    };
    for tier in ["dev", "test"] {
        let r = run(&labelled(tier), &s, &mut crate::host::mock::MockHost::failing());
        assert_eq!(r["accepted"], true, "{tier}: {r}");
    }
    let r = run(&labelled("prod"), &s, &mut crate::host::mock::MockHost::failing());
    assert_eq!(r["accepted"], false, "{r}");
    let message = r["message"].as_str().expect("a message");
    assert!(message.contains("denied by policy signed-tiers"), "{message}");
    assert!(message.contains("unsigned tier"), "{message}");
}

/// The module reads a keyless identity's exact subject and issuer as whole values: a genuine,
/// bound layer by `eviluser@example.com`, or by `user@example.com` from an issuer that only
/// begins with Google's, is no layer by `user@example.com` from Google, so a host that trusts
/// the signatures anyway (a stock host fooled elsewhere) is not believed.
/// (Mutant: keyless.rs, `Pattern::Exact(e) => e == value` made `value.contains(e)`.)
#[test]
fn an_exact_identity_is_not_found_inside_a_longer_subject_or_issuer() {
    only_the_identitys_layers_admitted(
        None,
        &[
            ("eviluser@example.com", "https://accounts.google.com"),
            ("user@example.com.evil", "https://accounts.google.com"),
            ("user@example.com", "https://accounts.google.com.evil"),
        ],
    );
}

/// `signatureFormat: legacy` reads the `.sig` tag only, and its layers are checked by the
/// module as without the field: a keyless authority so restricted still refuses a manifest with
/// no layer by its identity although the host trusts it. (Mutant: host.rs, the legacy answer of
/// `signatureFormat: legacy` read as a bundle's, which skips the module's check of the layers;
/// before this test only the certificate authority's tests caught it.)
#[test]
fn signature_format_legacy_keeps_the_check_of_the_layers() {
    only_the_identitys_layers_admitted(
        Some("legacy"),
        &[("attacker@example.com", "https://accounts.google.com")],
    );
}

/// The article's keyless policy for `user@example.com` from Google (with `signatureFormat` when
/// given), under a stock host that trusts every signature: a manifest holding one genuine, bound
/// layer by each stranger (subject, issuer) is refused, naming the identity; one by the identity
/// itself is admitted.
fn only_the_identitys_layers_admitted(signature_format: Option<&str>, strangers: &[(&str, &str)]) {
    let mut s = settings(&[super::article("keyless-policy")], json!({}));
    let authority = &mut s["policies"][0]["spec"]["authorities"][0];
    if let Some(format) = signature_format {
        authority["signatureFormat"] = json!(format);
    }
    authority["keyless"]["identities"] =
        json!([{"issuer": "https://accounts.google.com", "subject": "user@example.com"}]);
    let stock = |_: crate::host::Capability, _: &Value| trusted(DIGEST);
    let image = pod("default", &["myregistry.com/app:v1"]);
    for (seed, (subject, issuer)) in (6..).zip(strangers) {
        let stranger = Signer::p256(&CertSpec::email(subject, issuer), seed);
        let mut host = serving(&[stranger.layer(PAYLOAD)], stock);
        let r = run(&image, &s, &mut host);
        assert_eq!(r["accepted"], false, "{subject} from {issuer}: {r}");
        let message = r["message"].as_str().expect("a message");
        assert!(
            message.contains("holds no layer by user@example.com from https://accounts.google.com"),
            "{message}"
        );
    }
    // The identity's own layer is admitted.
    let own = Signer::p256(&CertSpec::email("user@example.com", "https://accounts.google.com"), 1);
    let mut host = serving(&[own.layer(PAYLOAD)], stock);
    assert_eq!(run(&image, &s, &mut host)["accepted"], true);
}

/// A `githubActions` authority counts only layers whose certificate GitHub Actions' issuer
/// issued: a genuine, bound layer naming the repository `my-org/app` (URI SAN and repository
/// extension) but issued for another OIDC issuer is no layer by a workflow of `my-org/app`, so
/// a host that trusts the signatures anyway is not believed.
/// (Mutant: github_actions.rs, `certificate.is_github_actions() &&` dropped.)
#[test]
fn a_github_actions_authority_ignores_a_certificate_of_another_issuer() {
    let s = settings(
        &["apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: ci\nspec:\n  images:\n  - glob: \"myregistry.com/**\"\n  authorities:\n  - name: ci\n    githubActions:\n      owner: my-org\n      repo: app\n".to_owned()],
        json!({}),
    );
    let stock = |_: crate::host::Capability, _: &Value| trusted(DIGEST);
    let image = pod("default", &["myregistry.com/app:v1"]);
    let impostor = Signer::p256(
        &CertSpec {
            issuer_v1: Some("https://issuer.example.com".to_owned()),
            ..CertSpec::workflow("my-org/app")
        },
        8,
    );
    let mut host = serving(&[impostor.layer(PAYLOAD)], stock);
    let r = run(&image, &s, &mut host);
    assert_eq!(r["accepted"], false, "{r}");
    let message = r["message"].as_str().expect("a message");
    assert!(
        message.contains("holds no layer by a GitHub Actions workflow of my-org/app"),
        "{message}"
    );
    let workflow = Signer::p256(&CertSpec::workflow("my-org/app"), 4);
    let mut host = serving(&[workflow.layer(PAYLOAD)], stock);
    assert_eq!(run(&image, &s, &mut host)["accepted"], true);
}

/// A policy's `match` entries are any-of, as policy-controller reads them: a policy listing Pods
/// and Deployments applies to a Pod (matched by the first entry only) and to a Deployment
/// (matched by the second only), so an unsigned image is denied by it in both, although
/// `noMatchPolicy: allow` would admit an image no policy applies to.
/// (Mutant: settings/mod.rs, `rules.iter().any(|r| r.matches(subject))` made `all`.)
#[test]
fn a_policy_applies_to_what_any_of_its_match_entries_selects() {
    let s = json!({"noMatchPolicy": "allow", "policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "signed-workloads"},
        "spec": {
            "images": [{"glob": "myregistry.com/**"}],
            "authorities": [{"static": {"action": "fail", "message": "unsigned workload"}}],
            "match": [
                {"group": "", "version": "v1", "resource": "pods"},
                {"group": "apps", "version": "v1", "resource": "deployments"}
            ]
        }
    }]});
    let image = "myregistry.com/app:v1";
    let mut deployment = pod("default", &[image]);
    deployment["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    deployment["resource"] = json!({"group": "apps", "version": "v1", "resource": "deployments"});
    let containers = deployment["object"]["spec"].clone();
    deployment["object"] = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": containers}}
    });
    for request in [pod("default", &[image]), deployment] {
        let r = run(&request, &s, &mut crate::host::mock::MockHost::failing());
        assert_eq!(r["accepted"], false, "{r}");
        let message = r["message"].as_str().expect("a message");
        assert!(
            message.contains("image myregistry.com/app:v1 denied by policy signed-workloads"),
            "{message}"
        );
        assert!(message.contains("unsigned workload"), "{message}");
    }
    // A resource neither entry selects is left to `noMatchPolicy: allow`.
    let mut job = pod("default", &[image]);
    job["kind"] = json!({"group": "batch", "version": "v1", "kind": "Job"});
    job["resource"] = json!({"group": "batch", "version": "v1", "resource": "jobs"});
    let containers = job["object"]["spec"].clone();
    job["object"] = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "namespace": "default"},
        "spec": {"template": {"spec": containers}}
    });
    let r = run(&job, &s, &mut crate::host::mock::MockHost::failing());
    assert_eq!(r["accepted"], true, "{r}");
}

/// `?` is no wildcard in an image glob (policy-controller's `glob.Match` reads it literally, and
/// a registry never names an image with it): `validate_settings` refuses the settings, naming
/// the field, and `validate` refuses the request, so a `?` is never matched as a wildcard
/// against an image. (Why the mutant "glob.rs: `?` always a wildcard" is harmless: only a
/// namespace glob, where `?` is a wildcard, reaches the matcher with one.)
#[test]
fn a_question_mark_in_an_image_glob_is_refused_naming_the_field() {
    let s = json!({"policies": [{
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "apps"},
        "spec": {
            "images": [{"glob": "myregistry.com/**"}, {"glob": "myregistry.com/app?"}],
            "authorities": [{"static": {"action": "fail"}}]
        }
    }]});
    let answer = crate::validate_settings(s.to_string().as_bytes()).expect("an answer");
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(answer["valid"], false, "{answer}");
    let message = answer["message"].as_str().expect("a message");
    assert!(
        message.starts_with("policies[0].spec.images[1].glob: character '?' is not allowed in an image glob"),
        "{message}"
    );
    let r = run(
        &pod("default", &["myregistry.com/app1"]),
        &s,
        &mut crate::host::mock::MockHost::failing(),
    );
    assert_eq!(r["accepted"], false, "{r}");
    let refusal = r["message"].as_str().expect("a message");
    assert!(refusal.contains(message), "{refusal}");
}

/// A `githubActions` authority counts only layers of workflows of its owner: a genuine, bound
/// layer of a workflow of `evil-org/app` (GitHub Actions' issuer, the same repository name) is
/// no layer by a workflow of `my-org/app`, and one of `evil-org/tools` is none by a workflow of
/// `my-org` (an authority without `repo`), so a host that trusts the signatures anyway is not
/// believed. (Mutant: github_actions.rs, `*owner == self.owner &&` dropped.)
#[test]
fn a_github_actions_authority_ignores_a_workflow_of_another_owner() {
    let stock = |_: crate::host::Capability, _: &Value| trusted(DIGEST);
    let image = pod("default", &["myregistry.com/app:v1"]);
    for (seed, (repo, impostor, who)) in (10..).zip([
        (Some("app"), "evil-org/app", "my-org/app"),
        (None, "evil-org/tools", "my-org"),
    ]) {
        let mut s = settings(
            &["apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: ci\nspec:\n  images:\n  - glob: \"myregistry.com/**\"\n  authorities:\n  - name: ci\n    githubActions:\n      owner: my-org\n".to_owned()],
            json!({}),
        );
        if let Some(repo) = repo {
            s["policies"][0]["spec"]["authorities"][0]["githubActions"]["repo"] = json!(repo);
        }
        let stranger = Signer::p256(&CertSpec::workflow(impostor), seed);
        let mut host = serving(&[stranger.layer(PAYLOAD)], stock);
        let r = run(&image, &s, &mut host);
        assert_eq!(r["accepted"], false, "{impostor}: {r}");
        let message = r["message"].as_str().expect("a message");
        assert!(
            message.contains(&format!("holds no layer by a GitHub Actions workflow of {who}")),
            "{message}"
        );
        // A workflow of the owner (and repository) is admitted.
        let workflow = Signer::p256(&CertSpec::workflow("my-org/app"), 4);
        let mut host = serving(&[workflow.layer(PAYLOAD)], stock);
        assert_eq!(run(&image, &s, &mut host)["accepted"], true, "{who}");
    }
}

/// `Exists` and `DoesNotExist` requirements select by the label's presence alone: a policy
/// requiring a signature for every Pod labelled `signed` (whatever the value) applies to a Pod
/// with `signed: ""`, and one requiring it for every Pod not labelled `exempt` applies to a Pod
/// without labels; both deny it when nothing verifies. The other Pod of each is admitted under
/// `noMatchPolicy: allow`. (Mutants: matching.rs, `Exists` read as `DoesNotExist`, and
/// `DoesNotExist` read as `Exists`.)
#[test]
fn exists_and_does_not_exist_selectors_select_by_the_labels_presence() {
    let labelled = |labels: Value| {
        let mut request = pod("default", &["myregistry.com/app:v1"]);
        request["object"]["metadata"]["labels"] = labels;
        request
    };
    for (operator, key, selected, left_out) in [
        ("Exists", "signed", json!({"signed": ""}), json!({})),
        ("DoesNotExist", "exempt", json!({}), json!({"exempt": "true"})),
    ] {
        let s = json!({"noMatchPolicy": "allow", "policies": [{
            "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
            "metadata": {"name": "selected"},
            "spec": {
                "images": [{"glob": "myregistry.com/**"}],
                "authorities": [{"static": {"action": "fail", "message": "unsigned pod"}}],
                "match": [{"version": "v1", "resource": "pods", "selector": {"matchExpressions": [
                    {"key": key, "operator": operator}
                ]}}]
            }
        }]});
        let r = run(&labelled(selected), &s, &mut crate::host::mock::MockHost::failing());
        assert_eq!(r["accepted"], false, "{operator}: {r}");
        let message = r["message"].as_str().expect("a message");
        assert!(message.contains("denied by policy selected"), "{message}");
        assert!(message.contains("unsigned pod"), "{message}");
        let r = run(&labelled(left_out), &s, &mut crate::host::mock::MockHost::failing());
        assert_eq!(r["accepted"], true, "{operator}: {r}");
    }
}

/// Each keyless identity is checked against its own layers: when the host trusts the image for
/// `user@example.com` (a host fooled elsewhere) and refuses `other@example.com`, a manifest
/// whose only layer is by `other@example.com` (self-consistent and bound, but from a CA the
/// host does not trust) does not admit the image through `user@example.com`, although both
/// identities are accepted by the authority. (Mutant: keyless.rs, the layers of any identity of
/// the authority counted for the identity the host vouched for.)
#[test]
fn a_layer_of_another_accepted_identity_does_not_stand_for_the_one_the_host_vouched_for() {
    let mut s = settings(&[super::article("keyless-policy")], json!({}));
    s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] = json!([
        {"issuer": "https://accounts.google.com", "subject": "user@example.com"},
        {"issuer": "https://accounts.google.com", "subject": "other@example.com"}
    ]);
    // Trusts every request for `user@example.com` only.
    let fooled = |capability: crate::host::Capability, payload: &Value| {
        if capability == crate::host::KUBEWARDEN_VERIFY_V2 && payload["keyless"][0]["subject"] == "user@example.com" {
            trusted(DIGEST)
        } else {
            Err("no signature verified".to_owned())
        }
    };
    let image = pod("default", &["myregistry.com/app:v1"]);
    let other = Signer::p256(&CertSpec::email("other@example.com", "https://accounts.google.com"), 12);
    let mut host = serving(&[other.layer(PAYLOAD)], fooled);
    let r = run(&image, &s, &mut host);
    assert_eq!(r["accepted"], false, "{r}");
    let message = r["message"].as_str().expect("a message");
    assert!(
        message.contains("holds no layer by user@example.com from https://accounts.google.com"),
        "{message}"
    );
    // The identity's own layer is admitted.
    let own = Signer::p256(&CertSpec::email("user@example.com", "https://accounts.google.com"), 1);
    let mut host = serving(&[own.layer(PAYLOAD)], fooled);
    assert_eq!(run(&image, &s, &mut host)["accepted"], true);
}

/// An authority's `annotations` go with every request that verifies signatures, whatever the
/// authority's kind: a host that checks them (as Kubewarden's verifications do) refuses a
/// signature lacking `env: prod`, and the image is denied with the host's reason; the same
/// signature carrying `env: prod` is admitted. Checked for an exact keyless identity, a keyless
/// regular expression, `githubActions` and `key.kms` (the certificate authority and `key.data`
/// have tests of their own). (Mutants: keyless.rs, github_actions.rs and key.rs, each request
/// sent without the annotations, which lets any signature by the signer pass.)
#[test]
fn an_authoritys_annotations_are_asked_of_the_host_by_every_kind() {
    let google = "https://accounts.google.com";
    let user = Signer::p256(&CertSpec::email("user@example.com", google), 1);
    let workflow = Signer::p256(&CertSpec::workflow("my-org/app"), 4);
    let keyless = |identity: Value| {
        let mut s = settings(&[super::article("keyless-policy")], json!({}));
        s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] = json!([identity]);
        s
    };
    let github_actions = settings(
        &["apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: ci\nspec:\n  images:\n  - glob: \"myregistry.com/**\"\n  authorities:\n  - name: ci\n    githubActions:\n      owner: my-org\n      repo: app\n".to_owned()],
        json!({}),
    );
    let mut kms = settings(&[super::article("kms-signed-policy")], json!({}));
    kms["policies"][0]["spec"]["images"] = json!([{"glob": "myregistry.com/**"}]);
    for (kind, mut s, layer) in [
        (
            "keyless",
            keyless(json!({"issuer": google, "subject": "user@example.com"})),
            user.layer(PAYLOAD),
        ),
        (
            "keyless subjectRegExp",
            keyless(json!({"issuer": google, "subjectRegExp": "user@example\\.com"})),
            user.layer(PAYLOAD),
        ),
        ("githubActions", github_actions, workflow.layer(PAYLOAD)),
        ("key.kms", kms, user.layer(PAYLOAD)),
    ] {
        s["policies"][0]["spec"]["authorities"][0]["annotations"] = json!({"env": "prod"});
        // A host whose one signature carries the annotations `signed` (the KMS key is P-256).
        let host = |signed: Value| {
            serving(std::slice::from_ref(&layer), move |capability, payload: &Value| {
                if capability == crate::host::CIP_KMS_PUBLIC_KEY {
                    let pem = crate::crypto::tests::P256_PEM;
                    return Ok(json!({ "pem": pem }).to_string().into_bytes());
                }
                let asked = payload["annotations"].as_object().cloned().unwrap_or_default();
                if asked.iter().all(|(k, v)| signed.get(k) == Some(v)) {
                    trusted(DIGEST)
                } else {
                    Err("the signature does not carry the annotations asked for".to_owned())
                }
            })
        };
        let image = pod("default", &["myregistry.com/app:v1"]);
        let r = run(&image, &s, &mut host(json!({})));
        assert_eq!(r["accepted"], false, "{kind}: {r}");
        let message = r["message"].as_str().expect("a message");
        assert!(message.contains("denied by policy"), "{kind}: {message}");
        assert!(
            message.contains("the signature does not carry the annotations asked for"),
            "{kind}: {message}"
        );
        let r = run(&image, &s, &mut host(json!({"env": "prod"})));
        assert_eq!(r["accepted"], true, "{kind}: {r}");
    }
}

/// A `githubActions` authority's `repo` goes with the requests the module cannot check itself
/// (cip's bundles, which cip binds to the image, and attestations): signatures and attestations
/// of a workflow of `my-org/tools` do not admit an image for `my-org/app` through a host that
/// verifies what it is asked (as cip does), and admit it for `my-org/tools`.
/// (Mutants: github_actions.rs, the bundle request and the attestation request sent without
/// `repo`, which asks for any workflow of the owner.)
#[test]
fn a_github_actions_repo_is_asked_of_the_host_for_bundles_and_attestations() {
    // cip, holding one bundle and one SPDX attestation by a workflow of `my-org/tools`.
    let cip = || {
        crate::host::mock::MockHost::cip(|capability, payload| {
            let request = if capability == crate::host::CIP_VERIFY_ATTESTATIONS {
                &payload["v2_verify"]
            } else {
                assert_eq!(capability, crate::host::CIP_VERIFY_WITH_FORMAT, "{payload}");
                &payload["request"]["v2"]
            };
            assert_eq!(request["type"], "SigstoreGithubActionsVerify", "{payload}");
            if request["owner"] != "my-org" || !(request["repo"].is_null() || request["repo"] == "tools") {
                return Err("no workflow of the repository asked for signed it".to_owned());
            }
            if capability == crate::host::CIP_VERIFY_ATTESTATIONS {
                let statement = json!({
                    "_type": "https://in-toto.io/Statement/v0.1",
                    "predicateType": "https://spdx.dev/Document",
                    "subject": [{"name": "myregistry.com/app", "digest": {"sha256": DIGEST.trim_start_matches("sha256:")}}],
                    "predicate": {"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3"},
                });
                let answer = json!({"digest": DIGEST, "statements": [{
                    "id": format!("sha256:{:064}", 0), "predicateType": "https://spdx.dev/Document", "statement": statement
                }]});
                return Ok(answer.to_string().into_bytes());
            }
            trusted(DIGEST)
        })
    };
    let image = pod("default", &["myregistry.com/app:v1"]);
    for attestations in [false, true] {
        for (repo, admitted) in [("app", false), ("tools", true)] {
            let mut authority = json!({"name": "ci", "githubActions": {"owner": "my-org", "repo": repo}});
            if attestations {
                authority["attestations"] = json!([{"name": "sbom", "predicateType": "spdxjson"}]);
            } else {
                authority["signatureFormat"] = json!("bundle");
            }
            let s = json!({"policies": [{
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": "ci"},
                "spec": {"images": [{"glob": "myregistry.com/**"}], "authorities": [authority]}
            }]});
            let r = run(&image, &s, &mut cip());
            assert_eq!(
                r["accepted"], admitted,
                "attestations: {attestations}, repo {repo}: {r}"
            );
            if !admitted {
                let message = r["message"].as_str().expect("a message");
                assert!(message.contains("denied by policy ci"), "{message}");
                assert!(
                    message.contains("no workflow of the repository asked for signed it"),
                    "{message}"
                );
            }
        }
    }
}
