//! Digest pinning under Gatekeeper: `POST /mutate/{namespace}` with the real policy module, a
//! real loopback registry and real signatures answers Gatekeeper's external-data mutation with
//! the pinned reference for images that pass and an error for images that are denied, in the
//! same cases as admission (`/validate`) decides them.

mod provider_support;

use std::sync::Arc;

use cip::provider::Limits;
use provider_support::*;
use serde_json::{Value, json};

async fn post_to(
    client: &reqwest::Client,
    provider: &cip::provider::RunningProvider,
    path: &str,
    body: &Value,
) -> TestResult<(u16, Value)> {
    let response = client
        .post(format!("https://{}{path}", provider.addr()))
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_images_are_pinned_and_denied_images_are_errors_as_in_admission() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "team/app", "v1", "mutate-app")?;
    testkit::push_image(&host, "team/other", "v1", "mutate-other")?;
    let signer = testkit::KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "team/app", &digest, &signer, &testkit::annotations([]))?;

    let decider = Arc::new(policy_decider(&host, production_and_development_settings(signer.public_key_pem())).await??);
    let ca = Ca::new("serving CA")?;
    let client_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &client_ca)?;
    // mTLS on, as deployed: the client presents a certificate of Gatekeeper's CA.
    let provider = start(decider, &files, true, Limits::default()).await?;
    let client = tls13_client(&ca, Some(&client_ca.client()?))?;

    let signed = format!("{host}/team/app:v1");
    let unsigned = format!("{host}/team/other:v1");
    let already_pinned = format!("{host}/team/app@{digest}");
    let invalid = "Not A Reference!".to_owned();
    let images = [
        signed.clone(),
        unsigned.clone(),
        already_pinned.clone(),
        invalid.clone(),
    ];

    // (namespace, image) -> expected mutation: Some(new value) or None (an error).
    let expected = |namespace: &str, image: &str| -> Option<String> {
        match (namespace, image) {
            (_, i) if i == invalid => None,
            // Verified by the production and development policies: pinned there.
            ("production" | "development", i) if i == signed => Some(format!("{signed}@{digest}")),
            ("production", i) if i == unsigned => None,
            (_, i) => Some(i.to_owned()),
        }
    };

    for namespace in ["production", "development", "default"] {
        let (status, mutation) =
            post_to(&client, &provider, &format!("/mutate/{namespace}"), &request(&images)).await?;
        assert_eq!(status, 200, "{mutation}");
        assert_eq!(
            mutation["response"]["idempotent"], true,
            "Gatekeeper needs idempotent answers"
        );
        assert_eq!(mutation["response"]["systemError"], "");
        let keys: Vec<String> = images.iter().map(|image| key(image, namespace)).collect();
        let (status, admission) = post_to(&client, &provider, "/validate", &request(&keys)).await?;
        assert_eq!(status, 200, "{admission}");
        for image in &images {
            let item = item(&mutation, image).ok_or_else(|| format!("no item for {image} in {mutation}"))?;
            let verdict = item_verdict(&admission, &key(image, namespace));
            match expected(namespace, image) {
                Some(value) => {
                    assert_eq!(item["value"], json!(value), "{namespace} {image}: {mutation}");
                    assert!(item.get("error").is_none(), "{item}");
                    assert_ne!(verdict, "deny", "{namespace} {image}: admission and mutation disagree");
                }
                None => {
                    assert!(item.get("value").is_none(), "{namespace} {image}: {item}");
                    assert!(!item["error"].as_str().unwrap_or_default().is_empty(), "{item}");
                    assert_eq!(verdict, "deny", "{namespace} {image}: admission and mutation disagree");
                }
            }
        }
    }

    let (status, refused) = post_to(&client, &provider, "/mutate/Not_A_Namespace", &request(&images)).await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["response"]["systemError"]
            .as_str()
            .unwrap_or_default()
            .contains("/mutate/NAMESPACE"),
        "{refused}"
    );
    provider.shutdown().await;
    Ok(())
}

/// The verdict `/validate` gave for `key` (`"error"` for a per-key error).
fn item_verdict(answer: &Value, key: &str) -> String {
    match item(answer, key) {
        Some(item) if item.get("error").is_some() => "deny".to_owned(),
        Some(item) => item["value"]["verdict"].as_str().unwrap_or_default().to_owned(),
        None => "missing".to_owned(),
    }
}
