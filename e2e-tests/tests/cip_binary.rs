//! The `cip run` command (kwctl's `run`) on the real `policy.wasm`: the AdmissionResponse it
//! prints, the base64 JSON Patch pinning a verified tag, keyless signatures trusted through
//! `--sigstore-trust-config`, and invalid settings refused before any evaluation.

mod common;

use std::collections::BTreeMap;

use common::{CipRun, article, cip_run, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::{Value, json};
use testkit::{
    KeyPair, LeafRequest, Registry, SignerIdentity, SlowServer, TestFulcio, TestRekor, push_image, sign_keyless,
    sign_with_key,
};

#[track_caller]
fn assert_ran(run: &CipRun, what: &str) {
    assert_eq!(
        run.code,
        Some(0),
        "{what}: cip run exits 0 whether allowed or not\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.response.is_object(),
        "{what}: stdout is not JSON: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn cip_run_pins_a_verified_tag_with_a_json_patch() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let digest = push_image(&host, "myapp", "v1.0.0", "myapp-v1")?;
    sign_with_key(&host, "myapp", &digest, &key, &BTreeMap::new())?;
    push_image(&host, "unsigned", "latest", "unsigned")?;
    let s = settings(
        &[on_registry(
            &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
            &host,
        )],
        json!({}),
    );

    let signed = format!("{host}/myapp:v1.0.0");
    let request = pod("default", &[&signed]);
    let run = cip_run(&request, &s, &host, None);
    assert_ran(&run, "signed image");
    let response = &run.response;
    assert_eq!(response["allowed"], true, "{response:#}");
    assert_eq!(response["uid"], request["uid"], "{response:#}");
    assert_eq!(response["patchType"], "JSONPatch", "{response:#}");
    let patch = run.patch()?;
    let pinned = json!(format!("{signed}@{digest}"));
    assert!(
        patch.iter().any(|op| op["path"] == "/spec/containers/0/image"
            && op["value"] == pinned
            && (op["op"] == "replace" || op["op"] == "add")),
        "the patch pins the container image to {pinned}: {patch:#?}"
    );
    assert!(
        patch
            .iter()
            .all(|op| op["path"].as_str().is_some_and(|p| p.ends_with("/image"))),
        "the patch touches images only: {patch:#?}"
    );

    // A whole AdmissionReview is accepted as well, and the unsigned image is refused.
    let unsigned = format!("{host}/unsigned");
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": pod("default", &[&unsigned]),
    });
    let run = cip_run(&review, &s, &host, None);
    assert_ran(&run, "unsigned image");
    let response = &run.response;
    assert_eq!(response["allowed"], false, "{response:#}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "Pod default/test: image {unsigned} denied by policy signed-images-policy: authority authority-0: "
        )),
        "{response:#}"
    );
    assert!(run.patch()?.is_empty(), "nothing is patched on a refusal: {response:#}");
    Ok(())
}

#[test]
fn cip_run_trusts_keyless_signatures_through_the_sigstore_trust_config() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let digest = push_image(&host, "app", "v1", "app-v1")?;
    let identity = LeafRequest::new(
        SignerIdentity::Email("user@example.com".to_owned()),
        "https://accounts.google.com",
    );
    sign_keyless(&host, "app", &digest, &fulcio, &rekor, &identity, &Default::default())?;
    let s = settings(&[on_registry(&article("keyless-policy"), &host)], json!({}));
    let image = format!("{host}/app:v1");
    let request = pod("default", &[&image]);

    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let run = cip_run(&request, &s, &host, Some(&trust));
    assert_ran(&run, "keyless with a trust config");
    assert_eq!(run.response["allowed"], true, "{:#}", run.response);
    let patch = run.patch()?;
    assert!(
        patch.iter().any(|op| op["value"] == json!(format!("{image}@{digest}"))),
        "{patch:#?}"
    );

    let run = cip_run(&request, &s, &host, None);
    assert_ran(&run, "keyless without a trust config");
    assert_eq!(run.response["allowed"], false, "{:#}", run.response);
    Ok(())
}

#[test]
fn cip_run_refuses_invalid_settings_before_evaluating() {
    // The article's KMS policy with a key URI of no KMS cosign knows.
    let policy = article("kms-signed-policy").replace(
        "gcpkms://projects/PROJECT_ID/locations/us-central1/keyRings/cosign/cryptoKeys/cosign-key",
        "vault://cosign",
    );
    let s = settings(&[policy], json!({}));
    let run = cip_run(&pod("default", &["gcr.io/myproject/app:v1"]), &s, "127.0.0.1:1", None);
    assert_ne!(run.code, Some(0), "invalid settings make cip run fail: {run:#?}");
    assert!(
        run.stderr
            .contains("key.kms: `vault://cosign` is not a supported KMS URI"),
        "the settings error is shown: {}",
        run.stderr
    );
    assert_eq!(
        run.response,
        Value::Null,
        "no AdmissionResponse is printed: {}",
        run.stdout
    );
}

#[test]
fn cip_run_against_a_hanging_registry_refuses_instead_of_hanging() -> anyhow::Result<()> {
    let slow = SlowServer::start()?;
    let host = slow.host();
    let key = KeyPair::ecdsa_p256()?;
    let s = settings(
        &[on_registry(
            &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
            &host,
        )],
        json!({}),
    );
    let image = format!("{host}/app:v1");
    // cip_run's own hang guard (60 s) fails the test if the default timeouts do not apply.
    let run = cip_run(&pod("default", &[&image]), &s, &host, None);
    assert_ran(&run, "hanging registry");
    assert_eq!(run.response["allowed"], false, "{:#}", run.response);
    let message = run.response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("image {image} denied by policy signed-images-policy")),
        "{message}"
    );
    assert!(slow.connections() > 0, "cip did try the registry");
    Ok(())
}
