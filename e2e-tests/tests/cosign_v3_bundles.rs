//! cosign v3's default signature storage (sigstore bundles attached as OCI referrers; the
//! loopback docker-registry has no referrers API, so the `sha256-<hex>` referrers tag schema is
//! what is read) through `cip run`, the real module and the real registry: key and keyless
//! bundles admit under the article's policies pasted as is, a bundle for another digest is
//! refused, `signatureFormat` picks the storage, and a host serving only Kubewarden's
//! capabilities is not asked for bundles.

mod common;

use common::{article, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::{Value, json};
use testkit::{BundleOptions, KeyPair, LeafRequest, Registry, SignerIdentity, TestFulcio, TestRekor, push_image};

fn allowed(run: &common::CipRun) -> bool {
    run.response["allowed"] == json!(true)
}

fn message(run: &common::CipRun) -> String {
    run.response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The article's key-rotation policy on `host`: the rotated-out key `old` first, then `new`.
fn rotation_policy(old: &KeyPair, new: &KeyPair, host: &str) -> Value {
    settings(
        &[on_registry(
            &with_keys(
                &article("key-rotation-policy"),
                &[old.public_key_pem(), new.public_key_pem()],
            ),
            host,
        )],
        json!({}),
    )
}

#[test]
fn cip_run_admits_key_and_keyless_bundles_and_refuses_a_bundle_for_another_digest() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let key = KeyPair::ecdsa_p256()?;

    let keyed = push_image(&host, "app", "keyed", "app:keyed")?;
    testkit::sign_with_key_bundle(&host, "app", &keyed, &key, Some(&rekor), &Default::default())?;
    let keyless = push_image(&host, "app", "keyless", "app:keyless")?;
    let request = LeafRequest::new(
        SignerIdentity::Email("user@example.com".to_owned()),
        "https://accounts.google.com",
    );
    testkit::sign_keyless_bundle(&host, "app", &keyless, &fulcio, &rekor, &request)?;
    // A genuine bundle of the keyed image, attached to another image.
    let moved = push_image(&host, "app", "moved", "app:moved")?;
    let bundle = testkit::key_bundle(&keyed, &key, Some(&rekor), &BundleOptions::default())?;
    testkit::attach_bundle(&host, "app", &moved, &bundle)?;

    let key_policy = settings(
        &[on_registry(
            &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
            &host,
        )],
        json!({}),
    );
    let keyless_policy = settings(&[on_registry(&article("keyless-policy"), &host)], json!({}));
    let run = |image: &str, s: &Value| common::cip_run(&pod("default", &[image]), s, &host, Some(&trust));

    let admitted = run(&format!("{host}/app:keyed"), &key_policy);
    assert!(allowed(&admitted), "{}{}", admitted.stdout, admitted.stderr);
    let admitted = run(&format!("{host}/app:keyless"), &keyless_policy);
    assert!(allowed(&admitted), "{}{}", admitted.stdout, admitted.stderr);

    let refused = run(&format!("{host}/app:moved"), &key_policy);
    assert!(!allowed(&refused), "{}", refused.stdout);
    assert!(
        message(&refused).contains(&format!("not {moved}")),
        "{}",
        message(&refused)
    );

    // signatureFormat: legacy reads the .sig tag only, so the bundle-signed image is refused.
    let mut legacy = key_policy.clone();
    legacy["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!("legacy");
    let refused = run(&format!("{host}/app:keyed"), &legacy);
    assert!(!allowed(&refused), "{}", refused.stdout);
    assert!(
        message(&refused).contains("no signatures found"),
        "{}",
        message(&refused)
    );
    // The host's reason as the host gave it, without waPC's `Host error: ` prefix (the module
    // reads a failing call's reason itself).
    assert!(!message(&refused).contains("Host error"), "{}", message(&refused));
    // signatureFormat: bundle reads the referrers only.
    let mut bundle_only = key_policy.clone();
    bundle_only["policies"][0]["spec"]["authorities"][0]["signatureFormat"] = json!("bundle");
    let admitted = run(&format!("{host}/app:keyed"), &bundle_only);
    assert!(allowed(&admitted), "{}{}", admitted.stdout, admitted.stderr);

    // The article's key rotation (the old key first) on an unsigned image: the first key is
    // looked for on the legacy tag, then in bundles; whether the host reads bundles is asked
    // once, after that first failure; the second key is looked for in both storages in one
    // call, which gives the reason the two calls gave.
    let old_key = KeyPair::ecdsa_p256()?;
    let rotation = rotation_policy(&old_key, &key, &host);
    let admitted = run(&format!("{host}/app:keyed"), &rotation);
    assert!(allowed(&admitted), "{}{}", admitted.stdout, admitted.stderr);
    push_image(&host, "app", "plain", "app:plain")?;
    let session = tempfile::NamedTempFile::new()?;
    let record = [
        "--record-host-capabilities-interactions",
        &session.path().to_string_lossy(),
    ];
    let plain = pod("default", &[&format!("{host}/app:plain")]);
    let refused = common::cip_run_with(&plain, &rotation, &host, Some(&trust), &record);
    assert!(!allowed(&refused), "{}", refused.stdout);
    let calls = std::fs::read_to_string(session.path())?;
    let count = |operation: &str| calls.matches(&format!("operation: {operation}\n")).count();
    assert_eq!(
        (
            calls.matches("!SigstorePubKeyVerify").count(),
            count("v1/verify_with_format"),
            count("v1/operations"),
            count("v1/verify_legacy_then_bundle"),
        ),
        (1, 1, 1, 1),
        "{calls}"
    );
    let unsigned = format!("no signatures found for {host}/app@");
    let refusal = message(&refused);
    let reasons: Vec<&str> = refusal
        .split("authority ")
        .skip(1)
        .map(|reason| reason.split_once(": ").map_or(reason, |(_, reason)| reason))
        .collect();
    let [first, second] = reasons[..] else {
        panic!("two authorities' reasons expected: {refusal}");
    };
    assert_eq!(first.trim_end_matches("; "), second.trim_end_matches("; "));
    assert!(
        first.starts_with(&format!("no signature verified by the key: {unsigned}"))
            && first.contains(&format!(" (cosign v3 bundles, read by cip only: {unsigned}")),
        "{first}"
    );

    // As stock Kubewarden: the module finds that the host reads no bundles (one question per
    // evaluation) and says so, instead of asking for them.
    let stock = |image: &str, s: &Value| {
        common::cip_run_with(
            &pod("default", &[image]),
            s,
            &host,
            Some(&trust),
            &["--kubewarden-capabilities-only"],
        )
    };
    for (image, policy) in [("keyed", &key_policy), ("keyless", &keyless_policy)] {
        let refused = stock(&format!("{host}/app:{image}"), policy);
        assert!(!allowed(&refused), "{image}: {}", refused.stdout);
        assert!(
            message(&refused).contains(
                "(cosign v3 bundles are read by cip only: this host lacks cluster-image-policy/oci/v1/verify_with_format)"
            ),
            "{image}: {}",
            message(&refused)
        );
    }
    Ok(())
}

/// The article's key rotation on a warm instance of the real module in `cip`: once the host is
/// known to read both storages in one call, each key costs one call an image, whichever storage
/// holds its signature, with the decisions and the reasons of the evaluation that found it out
/// with separate calls.
#[test]
fn a_warm_instance_asks_each_key_once_with_the_same_decisions_and_reasons() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (old_key, key) = (KeyPair::ecdsa_p256()?, KeyPair::ecdsa_p256()?);
    let bundled = push_image(&host, "app", "bundled", "app:bundled")?;
    testkit::sign_with_key_bundle(&host, "app", &bundled, &key, None, &Default::default())?;
    let legacy = push_image(&host, "app", "legacy", "app:legacy")?;
    testkit::sign_with_key(&host, "app", &legacy, &key, &Default::default())?;
    push_image(&host, "app", "plain", "app:plain")?;
    let rotation = rotation_policy(&old_key, &key, &host);
    let cip = common::Host::for_registry(&host);
    let evaluate = |tag: &str| cip.validate_counting(&pod("default", &[&format!("{host}/app:{tag}")]), &rotation);

    // The first evaluation finds out: old key on the legacy tag, the question, old key in
    // bundles; then the new key in one call.
    let (first, calls, _) = evaluate("plain");
    assert!(!first.accepted(), "{first}");
    assert_eq!(calls, 4);
    let (again, calls, fresh) = evaluate("plain");
    assert!(!fresh && !again.accepted(), "{again}");
    assert_eq!(calls, 2, "one call a key");
    assert_eq!(again.message(), first.message());

    let (bundle, calls, _) = evaluate("bundled");
    bundle.assert_admitted("signed with the current key in a bundle");
    assert_eq!(calls, 2);
    let (tag, calls, _) = evaluate("legacy");
    tag.assert_admitted("signed with the current key on the .sig tag");
    assert_eq!(calls, 2);
    Ok(())
}
