//! Load benchmark of the provider (not a test: `#[ignore]`d, run on demand):
//!
//! ```text
//! cargo test --release -p cip --test provider_loadtest -- --ignored --nocapture
//! ```
//!
//! The real policy module, a real `docker-registry` with signed images, the provider over TLS on
//! 127.0.0.1 and a reqwest client in the same process. Phase 1 sends 20,000 requests (4 keys
//! each, verifications cached after the first) with 64 in flight and reports keys/s and latency
//! percentiles; phase 2 paces 5,000 requests at 500 requests/s and reports latency. Every answer
//! must be a verdict (no per-key error, no HTTP error), and before the load the signed images
//! must be allowed. `provider_load` signs with a key, `provider_load_keyless` keyless (a test
//! Fulcio and Rekor). Figures go to docs/benchmarks.md.

mod provider_support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cip::capabilities::Capabilities;
use cip::provider::{Limits, PolicyDecider};
use cip::registry::Sources;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use cip::trust::TrustRoot;
use cip::verify::{Verifier, VerifierConfig};
use provider_support::*;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const REQUESTS: usize = 20_000;
const IN_FLIGHT: usize = 64;
const PACED_REQUESTS: usize = 5_000;
const PACED_RATE: u64 = 500;

/// One policy named `name` covering every image in production and staging, with `authority`.
fn settings(name: &str, authority: Value) -> Value {
    json!({
        "policies": [{
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": name},
            "spec": {
                "match": [{"namespaces": ["production", "staging"]}],
                "images": [{"glob": "**"}],
                "authorities": [authority],
            }
        }],
        "noMatchPolicy": "allow",
    })
}

struct Stats {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

impl Stats {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
        sorted.get(index).copied().unwrap_or_default()
    }

    fn report(&self, name: &str, keys_per_request: usize) {
        let requests = self.latencies.len() as f64;
        let seconds = self.elapsed.as_secs_f64();
        println!(
            "{name}: {} requests in {:.2} s = {:.0} requests/s, {:.0} keys/s; \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; errors {}",
            self.latencies.len(),
            seconds,
            requests / seconds,
            requests * keys_per_request as f64 / seconds,
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.percentile(1.0).as_secs_f64() * 1e3,
            self.errors,
        );
    }
}

/// One request; an error is counted when any key is not answered with a verdict.
async fn one(client: &reqwest::Client, url: &str, body: &Value, keys: usize) -> (Duration, bool) {
    let started = Instant::now();
    let ok = match client.post(url).json(body).send().await {
        Ok(response) if response.status().is_success() => match response.json::<Value>().await {
            Ok(answer) => {
                let items = answer["response"]["items"].as_array();
                items
                    .is_some_and(|items| items.len() == keys && items.iter().all(|i| i["value"]["verdict"].is_string()))
            }
            Err(_) => false,
        },
        _ => false,
    };
    (started.elapsed(), ok)
}

async fn saturate(client: &reqwest::Client, url: &str, body: &Value, keys: usize) -> Stats {
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|worker| {
            let per_worker = REQUESTS / IN_FLIGHT + usize::from(worker < REQUESTS % IN_FLIGHT);
            let (client, url, body, errors) = (client.clone(), url.to_owned(), body.clone(), Arc::clone(&errors));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let (latency, ok) = one(&client, &url, &body, keys).await;
                    latencies.push(latency);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for worker in workers {
        latencies.extend(worker.await.unwrap_or_default());
    }
    Stats {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

async fn paced(client: &reqwest::Client, url: &str, body: &Value, keys: usize) -> Stats {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(PACED_REQUESTS);
    for _ in 0..PACED_REQUESTS {
        ticker.tick().await;
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            one(&client, &url, &body, keys).await
        }));
    }
    let mut latencies = Vec::with_capacity(PACED_REQUESTS);
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((latency, ok)) => {
                latencies.push(latency);
                errors += u64::from(!ok);
            }
            Err(_) => errors += 1,
        }
    }
    Stats {
        latencies,
        errors,
        elapsed: started.elapsed(),
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn provider_load() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let signer = testkit::KeyPair::ecdsa_p256()?;
    let mut images = Vec::new();
    for name in ["app", "sidecar", "init"] {
        let digest = testkit::push_image(&host, &format!("team/{name}"), "v1", name)?;
        testkit::sign_with_key(
            &host,
            &format!("team/{name}"),
            &digest,
            &signer,
            &testkit::annotations([]),
        )?;
        images.push(format!("{host}/team/{name}:v1"));
    }
    let authority = json!({"name": "team-key", "key": {"data": signer.public_key_pem()}});
    load(&host, &images, settings("signed-images-policy", authority), None).await
}

/// The same load on images signed keyless (a test Fulcio and Rekor), under the article's
/// `keyless-policy` shape: every allowed key also goes through the module's binding check (one
/// P-256 verification of the layer signature, remembered by each warm instance) and its
/// `oci/v1/oci_manifest` look-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn provider_load_keyless() -> TestResult {
    const EMAIL: &str = "release@example.com";
    const ISSUER: &str = "https://accounts.google.com";
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (testkit::TestFulcio::new()?, testkit::TestRekor::new()?);
    let mut images = Vec::new();
    for name in ["app", "sidecar", "init"] {
        let repo = format!("team/{name}");
        let digest = testkit::push_image(&host, &repo, "v1", name)?;
        let leaf = testkit::LeafRequest::new(testkit::SignerIdentity::Email(EMAIL.to_owned()), ISSUER);
        testkit::sign_keyless(&host, &repo, &digest, &fulcio, &rekor, &leaf, &testkit::annotations([]))?;
        images.push(format!("{host}/{repo}:v1"));
    }
    let authority = json!({"name": "release", "keyless": {"identities": [{"issuer": ISSUER, "subject": EMAIL}]}});
    let trust = TrustRoot::from_json(&testkit::trust_config_json(&fulcio, &rekor))?;
    load(&host, &images, settings("keyless-policy", authority), Some(trust)).await
}

/// Serves `settings` through the provider and measures it on three images of `images`' registry
/// (`host`): keys in production and staging (covered, must be allowed) and one in a namespace no
/// policy matches (allowed: `noMatchPolicy: allow`).
async fn load(host: &str, images: &[String], settings: Value, trust: Option<TrustRoot>) -> TestResult {
    let keys = vec![
        key(&images[0], "production"),
        key(&images[1], "production"),
        key(&images[2], "staging"),
        key(&images[0], "default"),
    ];

    let wasm = std::env::var("CIP_POLICY_WASM").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        Into::into,
    );
    let module = PolicyModule::from_file(&wasm)?;
    let verifier = Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![host.to_owned()],
            ..Sources::default()
        },
        trust,
        ..VerifierConfig::default()
    })?;
    let capabilities = Arc::new(Capabilities::new(Arc::new(verifier), tokio::runtime::Handle::current()));
    let evaluator = Evaluator::new(&module, capabilities, EvaluatorOptions::default())?;
    let decider = tokio::task::spawn_blocking(move || PolicyDecider::new(evaluator, settings)).await??;

    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &ca)?;
    let provider = start(Arc::new(decider), &files, false, Limits::default()).await?;
    let client = tls13_client(&ca, None)?;
    let url = format!("https://{}/validate", provider.addr());
    let body = request(&keys);

    // What is measured must be the signed images allowed, not a fast refusal.
    let answer: Value = client.post(&url).json(&body).send().await?.json().await?;
    let verdicts: Vec<&str> = answer["response"]["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["value"]["verdict"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(verdicts, ["allow"; 4], "{answer:#}");

    // Warm up: verify once (registry round trips), warm instances on the blocking threads.
    let warm = saturate_n(&client, &url, &body, keys.len(), 200).await;
    assert_eq!(warm, 0, "warm-up requests failed");

    let burst = saturate(&client, &url, &body, keys.len()).await;
    burst.report("saturated (64 in flight)", keys.len());
    let steady = paced(&client, &url, &body, keys.len()).await;
    steady.report("paced (500 requests/s)", keys.len());
    println!(
        "peak RSS (provider + client): {} MiB",
        peak_rss_kib().unwrap_or(0) / 1024
    );
    println!(
        "{}",
        metrics(&provider)
            .await?
            .lines()
            .filter(|l| l.contains("cache"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert_eq!(burst.errors + steady.errors, 0, "every key must get a verdict");
    provider.shutdown().await;
    Ok(())
}

async fn saturate_n(client: &reqwest::Client, url: &str, body: &Value, keys: usize, n: usize) -> u64 {
    let mut errors = 0;
    for _ in 0..n {
        let (_, ok) = one(client, url, body, keys).await;
        errors += u64::from(!ok);
    }
    errors
}
