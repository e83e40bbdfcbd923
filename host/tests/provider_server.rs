//! The provider over real TLS on 127.0.0.1 with a scripted decider: protocol, limits, deadline,
//! TLS versions, mTLS and certificate rotation. Real-policy verdicts are in `provider_policy.rs`.

mod provider_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cip::provider::Limits;
use provider_support::*;
use serde_json::json;

struct Setup {
    ca: Ca,
    client_ca: Ca,
    files: TlsFiles,
    decider: Arc<Scripted>,
}

fn setup() -> TestResult<Setup> {
    let ca = Ca::new("serving CA")?;
    let client_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &client_ca)?;
    Ok(Setup {
        ca,
        client_ca,
        files,
        decider: Arc::new(Scripted::default()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_warn_deny_verdicts_are_returned_per_key_and_counted() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, false, Limits::default()).await?;
    let client = tls13_client(&s.ca, None)?;
    let keys = [
        key("registry.example/app:allow", "prod"),
        key("registry.example/app:warn", "prod"),
        key("registry.example/app:deny", "prod"),
    ];
    let (status, answer) = post(&client, &provider, &request(&keys)).await?;

    assert_eq!(status, 200);
    assert_eq!(answer["apiVersion"], "externaldata.gatekeeper.sh/v1beta1");
    assert_eq!(answer["kind"], "ProviderResponse");
    assert_eq!(answer["response"]["idempotent"], true);
    assert_eq!(answer["response"]["systemError"], "");
    let verdicts: Vec<_> = keys
        .iter()
        .map(|k| item(&answer, k).map(|i| i["value"]["verdict"].clone()))
        .collect();
    assert_eq!(
        verdicts,
        vec![Some(json!("allow")), Some(json!("warn")), Some(json!("deny"))]
    );
    let deny = item(&answer, &keys[2]).ok_or("no deny item")?;
    assert_eq!(
        deny["value"]["message"],
        "image registry.example/app:deny denied by policy p"
    );
    assert!(deny.get("error").is_none());

    let text = metrics(&provider).await?;
    for result in ["allow", "warn", "deny"] {
        let line = format!("cluster_image_policy_validations_total{{result=\"{result}\"}} 1");
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    assert!(text.contains("cluster_image_policy_evaluation_duration_seconds_count 3"));
    provider.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_get_per_key_errors_and_duplicates_are_evaluated_once() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, false, Limits::default()).await?;
    let client = tls13_client(&s.ca, None)?;
    let good = key("registry.example/app:v1", "prod");
    let same_image_other_spelling = r#"{ "namespace": "prod", "image": "registry.example/app:v1" }"#.to_owned();
    let keys = vec![
        good.clone(),
        good.clone(),
        same_image_other_spelling.clone(),
        "registry.example/app:v1".to_owned(),
        r#"{"image":"registry.example/app:v1","namespace":"prod","tag":"x"}"#.to_owned(),
        key("", "prod"),
        key("registry.example/app:broken", "prod"),
    ];
    let (status, answer) = post(&client, &provider, &request(&keys)).await?;

    assert_eq!(status, 200);
    let items = answer["response"]["items"].as_array().ok_or("no items")?;
    assert_eq!(
        items.len(),
        5,
        "one item per distinct key but the undecided one: {answer}"
    );
    for k in [&good, &same_image_other_spelling] {
        assert_eq!(item(&answer, k).ok_or("missing")?["value"]["verdict"], "allow");
    }
    let error = |k: &str| item(&answer, k).and_then(|i| i["error"].as_str()).unwrap_or("");
    assert!(
        error(&keys[3]).starts_with("key is not a JSON object"),
        "{}",
        error(&keys[3])
    );
    assert!(error(&keys[4]).contains("unknown field `tag`"), "{}", error(&keys[4]));
    assert_eq!(error(&keys[5]), "key has an empty image");
    // An evaluation that failed is no answer about the key: no item (Gatekeeper would keep an
    // `error` item for its cache TTL), the system error names it and fails the review closed.
    assert!(item(&answer, &keys[6]).is_none(), "{answer}");
    assert_eq!(
        answer["response"]["systemError"],
        "1 image(s) not decided, to be asked again: image registry.example/app:broken in namespace prod: \
         registry unreachable for registry.example/app:broken"
    );
    // app:v1 once (three spellings) + app:broken once.
    assert_eq!(s.decider.calls.load(Ordering::SeqCst), 2);
    let text = metrics(&provider).await?;
    assert!(
        text.contains("cluster_image_policy_validations_total{result=\"error\"} 4"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_body_is_a_400_with_a_system_error() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, false, Limits::default()).await?;
    let client = tls13_client(&s.ca, None)?;
    let url = format!("https://{}/validate", provider.addr());

    let response = client.post(&url).body("{not json").send().await?;
    assert_eq!(response.status().as_u16(), 400);
    let answer: serde_json::Value = response.json().await?;
    assert_eq!(answer["kind"], "ProviderResponse");
    let error = answer["response"]["systemError"].as_str().unwrap_or("");
    assert!(error.starts_with("request body is not a ProviderRequest"), "{error}");

    let wrong_kind = json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "AdmissionReview", "request": {"keys": []}});
    let (status, answer) = post(&client, &provider, &wrong_kind).await?;
    assert_eq!(status, 400);
    assert_eq!(
        answer["response"]["systemError"],
        "unsupported kind \"AdmissionReview\", expected \"ProviderRequest\""
    );
    assert_eq!(s.decider.calls.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_too_large_and_too_many_keys_are_refused() -> TestResult {
    let s = setup()?;
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_keys: 10,
        ..Limits::default()
    };
    let provider = start(s.decider.clone(), &s.files, false, limits).await?;
    let client = tls13_client(&s.ca, None)?;

    let huge = vec![key(&"r.example/a".repeat(1_000), "prod"); 10];
    let (status, answer) = post(&client, &provider, &request(&huge)).await?;
    assert_eq!(status, 413);
    assert_eq!(answer["response"]["systemError"], "request body exceeds 65536 bytes");

    let many: Vec<String> = (0..11).map(|i| key(&format!("r.example/a:{i}"), "p")).collect();
    let (status, answer) = post(&client, &provider, &request(&many)).await?;
    assert_eq!(status, 400);
    assert_eq!(
        answer["response"]["systemError"],
        "too many keys: 11 (at most 10 per request)"
    );
    assert_eq!(s.decider.calls.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_missing_the_deadline_are_left_undecided_and_the_answer_is_on_time() -> TestResult {
    let s = setup()?;
    let limits = Limits {
        deadline: Duration::from_millis(400),
        ..Limits::default()
    };
    let provider = start(s.decider.clone(), &s.files, false, limits).await?;
    let client = tls13_client(&s.ca, None)?;
    let slow = key("registry.example/slow:v1", "prod");
    let fast = key("registry.example/fast:v1", "prod");

    let started = Instant::now();
    let (status, answer) = post(&client, &provider, &request(&[slow.clone(), fast.clone()])).await?;
    let elapsed = started.elapsed();

    assert_eq!(status, 200);
    assert!(elapsed < Duration::from_millis(1_500), "answered after {elapsed:?}");
    assert!(item(&answer, &slow).is_none(), "{answer}");
    assert_eq!(
        answer["response"]["systemError"],
        "1 image(s) not decided, to be asked again: image registry.example/slow:v1 in namespace prod: \
         deadline exceeded: not evaluated within 400 ms"
    );
    assert_eq!(item(&answer, &fast).ok_or("no fast item")?["value"]["verdict"], "allow");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_clients_are_refused() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, false, Limits::default()).await?;
    let tls12 = client(&s.ca, None, &[&rustls::version::TLS12])?;
    let refused = post(&tls12, &provider, &request(&[])).await;
    assert!(refused.is_err(), "a TLS 1.2-only client was served");

    let tls13 = tls13_client(&s.ca, None)?;
    let (status, _) = post(&tls13, &provider, &request(&[])).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_accepts_gatekeepers_certificate_and_refuses_others() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, true, Limits::default()).await?;
    let keys = [key("registry.example/app:v1", "prod")];

    let gatekeeper = tls13_client(&s.ca, Some(&s.client_ca.client()?))?;
    let (status, answer) = post(&gatekeeper, &provider, &request(&keys)).await?;
    assert_eq!(status, 200);
    assert_eq!(item(&answer, &keys[0]).ok_or("no item")?["value"]["verdict"], "allow");

    let anonymous = tls13_client(&s.ca, None)?;
    assert!(post(&anonymous, &provider, &request(&keys)).await.is_err());

    let stranger = tls13_client(&s.ca, Some(&Ca::new("other CA")?.client()?))?;
    assert!(post(&stranger, &provider, &request(&keys)).await.is_err());
    assert_eq!(s.decider.calls.load(Ordering::SeqCst), 1);
    Ok(())
}

/// The status of a request on `client` (no matter its body), or the error.
async fn status_of(client: &reqwest::Client, provider: &cip::provider::RunningProvider) -> Result<u16, String> {
    let keys = [key("registry.example/app:v1", "prod")];
    client
        .post(format!("https://{}/validate", provider.addr()))
        .json(&request(&keys))
        .send()
        .await
        .map(|response| response.status().as_u16())
        .map_err(|error| format!("{error:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_ca_is_enforced_without_restart() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, true, Limits::default()).await?;
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let old_identity = s.client_ca.client()?;
    // Keeps its connection open across the rotation, as Gatekeeper's keep-alive does.
    let old_kept = tls13_client(&s.ca, Some(&old_identity))?;
    assert_eq!(status_of(&old_kept, &provider).await, Ok(200));

    // Gatekeeper's cert-controller rotates its CA: the mounted file is replaced.
    let new_ca = Ca::new("rotated gatekeeper CA")?;
    s.files.replace_client_ca(&new_ca.cert_pem)?;
    let new_client = fresh_connection_tls13_client(&s.ca, Some(&new_ca.client()?), loopback)?;
    assert_eq!(status_of(&new_client, &provider).await, Ok(200), "the new CA's client");
    let old_client = fresh_connection_tls13_client(&s.ca, Some(&old_identity), loopback)?;
    assert!(
        status_of(&old_client, &provider).await.is_err(),
        "a new connection of the old CA's client must fail its handshake"
    );
    // The old CA's client on its connection from before the rotation is refused too.
    let kept = status_of(&old_kept, &provider).await;
    assert!(kept.as_ref().is_err() || kept == Ok(403), "{kept:?}");
    // Its next connection offers to resume its TLS session from before the rotation (a resumed
    // session skips the client certificate): refused as well.
    assert!(
        status_of(&old_kept, &provider).await.is_err(),
        "the old CA's session resumed"
    );
    assert_eq!(
        s.decider.calls.load(Ordering::SeqCst),
        2,
        "the old client was not answered"
    );

    // A bundle of both CAs (a rotation's overlap) trusts both.
    s.files
        .replace_client_ca(&format!("{}{}", s.client_ca.cert_pem, new_ca.cert_pem))?;
    assert_eq!(status_of(&old_client, &provider).await, Ok(200));
    assert_eq!(status_of(&new_client, &provider).await, Ok(200));

    // An unusable file refuses every client (strict: neither the last CA nor no client auth),
    // until a usable one is in place again.
    s.files.replace_client_ca("not a certificate\n")?;
    assert!(
        status_of(&new_client, &provider).await.is_err(),
        "served with an unusable client CA"
    );
    assert!(
        status_of(&old_client, &provider).await.is_err(),
        "served with an unusable client CA"
    );
    let anonymous = fresh_connection_tls13_client(&s.ca, None, loopback)?;
    assert!(status_of(&anonymous, &provider).await.is_err(), "no client certificate");
    std::fs::remove_file(&s.files.client_ca)?;
    assert!(
        status_of(&new_client, &provider).await.is_err(),
        "served without a client CA file"
    );
    s.files.replace_client_ca(&new_ca.cert_pem)?;
    assert_eq!(status_of(&new_client, &provider).await, Ok(200));
    assert!(status_of(&old_client, &provider).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_is_served_without_restart() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, false, Limits::default()).await?;
    let (status, _) = post(&tls13_client(&s.ca, None)?, &provider, &request(&[])).await?;
    assert_eq!(status, 200);

    let rotated_ca = Ca::new("rotated CA")?;
    s.files.replace_serving(&rotated_ca.server()?)?;

    // New connections see the new certificate: clients trusting only the old CA fail.
    let (status, _) = post(&tls13_client(&rotated_ca, None)?, &provider, &request(&[])).await?;
    assert_eq!(status, 200);
    assert!(
        post(&tls13_client(&s.ca, None)?, &provider, &request(&[]))
            .await
            .is_err()
    );

    // A broken pair (key without its certificate) keeps the last good one in service.
    std::fs::write(&s.files.cert, "not a certificate")?;
    let (status, _) = post(&tls13_client(&rotated_ca, None)?, &provider, &request(&[])).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_on_the_metrics_port() -> TestResult {
    let s = setup()?;
    let provider = start(s.decider.clone(), &s.files, false, Limits::default()).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    for path in ["healthz", "readyz"] {
        let response = http
            .get(format!("http://{}/{path}", provider.metrics_addr()))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200, "/{path}");
    }
    Ok(())
}
