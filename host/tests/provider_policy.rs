//! The provider with the real policy module (`verify_images`), a real `docker-registry` on
//! 127.0.0.1 and real cosign signatures from testkit: allow, warn and deny end to end over TLS.
//!
//! Needs `target/wasm32-wasip1/policy/cluster_image_policy.wasm`
//! (`cargo build -p cluster-image-policy --target wasm32-wasip1 --profile policy`).

mod provider_support;

use std::sync::Arc;

use cip::provider::{Limits, PolicyDeciderError};
use provider_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_unsigned_and_warned_images_get_the_policys_verdicts() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let signed = testkit::push_image(&host, "team/app", "v1", "app-v1")?;
    testkit::push_image(&host, "team/other", "v1", "other-v1")?;
    let signer = testkit::KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "team/app", &signed, &signer, &testkit::annotations([]))?;

    let decider = Arc::new(policy_decider(&host, production_and_development_settings(signer.public_key_pem())).await??);
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("client CA")?)?;
    let provider = start(decider, &files, false, Limits::default()).await?;
    let client = tls13_client(&ca, None)?;

    let signed_prod = key(&format!("{host}/team/app:v1"), "production");
    let unsigned_prod = key(&format!("{host}/team/other:v1"), "production");
    let unsigned_dev = key(&format!("{host}/team/other:v1"), "development");
    let unchecked = key(&format!("{host}/team/other:v1"), "default");
    let invalid = key("Not A Reference!", "production");
    let keys = [
        signed_prod.clone(),
        unsigned_prod.clone(),
        unsigned_dev.clone(),
        unchecked.clone(),
        invalid.clone(),
    ];
    let (status, answer) = post(&client, &provider, &request(&keys)).await?;
    assert_eq!(status, 200, "{answer}");
    let value = |k: &str| item(&answer, k).map(|i| i["value"].clone()).unwrap_or_default();

    let allowed = value(&signed_prod);
    assert_eq!(allowed["verdict"], "allow", "{answer}");
    assert_eq!(allowed["digest"], signed.as_str());
    assert_eq!(allowed["policies"][0]["name"], "production-strict-policy");
    assert_eq!(allowed["policies"][0]["passed"], true);

    let denied = value(&unsigned_prod);
    assert_eq!(denied["verdict"], "deny", "{answer}");
    let message = denied["message"].as_str().unwrap_or_default();
    assert!(message.contains("production-strict-policy"), "{message}");
    assert_eq!(denied["policies"][0]["passed"], false);

    let warned = value(&unsigned_dev);
    assert_eq!(warned["verdict"], "warn", "{answer}");
    assert!(
        warned["message"]
            .as_str()
            .unwrap_or_default()
            .contains("dev-warn-policy")
    );

    assert_eq!(value(&unchecked)["verdict"], "allow", "noMatchPolicy: allow");
    assert_eq!(value(&invalid)["verdict"], "deny", "an invalid reference is denied");

    // Asking again is answered from the verification cache, visible on /metrics.
    let (status, again) = post(&client, &provider, &request(std::slice::from_ref(&signed_prod))).await?;
    assert_eq!(status, 200);
    assert_eq!(
        item(&again, &signed_prod).map(|i| i["value"]["verdict"].clone()),
        Some(json!("allow"))
    );
    let text = metrics(&provider).await?;
    let hits = text
        .lines()
        .find_map(|l| l.strip_prefix("cluster_image_policy_verification_cache_hits_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no cache hits metric in\n{text}"))?;
    assert!(hits >= 1, "{text}");
    // The real decider exports its verifier's process-wide download pool.
    let limit = text
        .lines()
        .find_map(|l| l.strip_prefix("cluster_image_policy_provider_download_pool_limit_bytes "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no download pool limit in\n{text}"))?;
    assert!(limit > 0, "{text}");
    assert!(
        text.contains("cluster_image_policy_provider_download_pool_refusals_total 0")
            && text.contains("cluster_image_policy_provider_download_pool_waits_total 0"),
        "{text}"
    );
    assert!(
        text.contains("cluster_image_policy_validations_total{result=\"deny\"} 2"),
        "{text}"
    );
    provider.shutdown().await;
    Ok(())
}

/// Gatekeeper's keys carry no object: a `spec.policy` reading it (`includeObjectMeta`) cannot be
/// judged by the provider, and does not pass, although the image is signed: denied under
/// `enforce`, a warning under `warn` (evaluated without `metadata`, this CUE constraint, which
/// Kubewarden's `validate` refuses for a Pod of another namespace, would hold vacuously).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_policy_reading_the_object_does_not_pass_without_one() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let signed = testkit::push_image(&host, "team/app", "v1", "app-v1")?;
    let signer = testkit::KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "team/app", &signed, &signer, &testkit::annotations([]))?;
    let mut settings = production_and_development_settings(signer.public_key_pem());
    for policy in settings["policies"].as_array_mut().ok_or("policies")? {
        policy["spec"]["policy"] = json!({"type": "cue", "data": "metadata: namespace: \"payments\"",
                                          "includeObjectMeta": true});
    }
    let decider = Arc::new(policy_decider(&host, settings).await??);
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("client CA")?)?;
    let provider = start(decider, &files, false, Limits::default()).await?;
    let client = tls13_client(&ca, None)?;

    let enforced = key(&format!("{host}/team/app:v1"), "production");
    let warned = key(&format!("{host}/team/app:v1"), "development");
    let (status, answer) = post(&client, &provider, &request(&[enforced.clone(), warned.clone()])).await?;
    assert_eq!(status, 200, "{answer}");
    let value = |k: &str| item(&answer, k).map(|i| i["value"].clone()).unwrap_or_default();
    let expected =
        "spec.policy (cue): includeObjectMeta asks for the admitted object, which this request does not carry";
    let denied = value(&enforced);
    assert_eq!(denied["verdict"], "deny", "{answer}");
    assert!(
        denied["message"].as_str().unwrap_or_default().contains(expected),
        "{answer}"
    );
    assert_eq!(
        denied["policies"][0]["authorities"][0]["passed"], true,
        "the signature verified: {answer}"
    );
    let warning = value(&warned);
    assert_eq!(warning["verdict"], "warn", "{answer}");
    assert!(
        warning["message"].as_str().unwrap_or_default().contains(expected),
        "{answer}"
    );
    provider.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_are_refused_at_start() -> TestResult {
    let bad = json!({"policies": [{"apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy", "metadata": {"name": "p"},
        "spec": {"images": [{"glob": "**"}], "mode": "sometimes",
            "authorities": [{"key": {"data": "not a key"}}]}}]});
    match policy_decider("127.0.0.1:1", bad).await? {
        Err(PolicyDeciderError::InvalidSettings(reason)) => {
            assert!(!reason.is_empty());
            Ok(())
        }
        Err(other) => Err(format!("unexpected error: {other}").into()),
        Ok(_) => Err("invalid settings were accepted".into()),
    }
}

/// Found by a review: the host keeps a verification for 60 s by the request as written (with
/// the tag) and what a tag names for 2 s. After a release moved `:v1` (the new image signed by
/// both keys), a Pod in `production` got the `all` policy's cached verification of the old
/// digest and the `prod` policy's fresh one of the new digest, and the signed image was refused
/// ("the tag moved during admission") until the cached answer expired. The module now asks once
/// which digest the tag names and judges every policy there: allowed, at the new digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_by_a_release_is_judged_at_its_new_digest_by_every_policy() -> TestResult {
    use cip::provider::Decider;
    use cip::runtime::{ImageKey, Verdict};

    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let all = testkit::KeyPair::ecdsa_p256()?;
    let prod = testkit::KeyPair::ecdsa_p256()?;
    let old = testkit::push_image(&host, "team/app", "v1", "app-v1-a")?;
    for key in [&all, &prod] {
        testkit::sign_with_key(&host, "team/app", &old, key, &testkit::annotations([]))?;
    }
    let policy = |name: &str, namespace: Option<&str>, pem: &str| {
        let mut spec = json!({
            "images": [{"glob": "**"}],
            "authorities": [{"name": "k", "key": {"data": pem}}],
            "mode": "enforce",
        });
        if let Some(namespace) = namespace {
            spec["match"] = json!([{"namespaces": [namespace]}]);
        }
        json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
               "metadata": {"name": name}, "spec": spec})
    };
    let settings = json!({
        "policies": [policy("all", None, all.public_key_pem()), policy("prod", Some("production"), prod.public_key_pem())],
        "noMatchPolicy": "allow",
    });
    let decider = Arc::new(policy_decider(&host, settings).await??);
    let image = format!("{host}/team/app:v1");
    let decide = |namespace: &'static str| {
        let decider = decider.clone();
        let image = image.clone();
        async move { tokio::task::spawn_blocking(move || decider.decide(&ImageKey::new(image, namespace))).await }
    };

    // `all` verifies the old digest (kept 60 s).
    let first = decide("dev").await??;
    assert_eq!(
        (first.verdict, first.digest.as_deref()),
        (Verdict::Allow, Some(old.as_str()))
    );

    // A release: the tag moves to a new image signed by both keys; past what the tag named is kept.
    let new = testkit::move_tag(&host, "team/app", "v1", "app-v1-b")?;
    for key in [&all, &prod] {
        testkit::sign_with_key(&host, "team/app", &new, key, &testkit::annotations([]))?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;

    let production = decide("production").await??;
    assert_eq!(
        (production.verdict, production.digest.as_deref()),
        (Verdict::Allow, Some(new.as_str())),
        "{}",
        production.message
    );
    Ok(())
}
