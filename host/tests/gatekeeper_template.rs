//! The ConstraintTemplate's Rego (deploy/gatekeeper/constraint-template.yaml), evaluated with
//! regorus in Gatekeeper's rego v0 mode, with `external_data` calling a running provider over
//! TLS the way Gatekeeper does. Faults Gatekeeper can see (no answer, a key missing from the
//! answer) are injected in the builtin; everything else comes from the provider. A harness may
//! also model Gatekeeper's provider response cache (3.13+), which answers keys seen before
//! without calling the provider.

mod provider_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cip::provider::{Limits, RunningProvider};
use provider_support::*;
use serde_json::{Value, json};

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/gatekeeper/constraint-template.yaml"
);

/// What the `external_data` builtin does besides calling the provider.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// The provider cannot be reached: Gatekeeper leaves the builtin undefined.
    Unreachable,
    /// The answer lacks the item of the key whose image contains this text.
    DropKey(&'static str),
    /// The answer carries this `system_error` (whether or not keys were sent).
    SystemError(&'static str),
    /// The provider's answer, every key in it, comes with this HTTP status and no
    /// `system_error` (a proxy or a failing provider).
    Status(u16),
}

/// Gatekeeper's provider response cache: the items the provider answered, by key.
type ResponseCache = Mutex<HashMap<String, Value>>;

struct Harness {
    runtime: tokio::runtime::Runtime,
    provider: Option<RunningProvider>,
    client: reqwest::Client,
    /// `None`: the cache is disabled (`--external-data-provider-response-cache-ttl=0`).
    cache: Option<Arc<ResponseCache>>,
    /// Per `external_data` call: the keys sent to the provider and the `status_code` given to Rego.
    calls: Arc<Mutex<Vec<(usize, u64)>>>,
    _files: TlsFiles,
}

impl Harness {
    fn new(limits: Limits) -> TestResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let ca = Ca::new("serving CA")?;
        let gatekeeper_ca = Ca::new("gatekeeper CA")?;
        let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
        let provider = runtime.block_on(start(Arc::new(Scripted::default()), &files, true, limits))?;
        let client = tls13_client(&ca, Some(&gatekeeper_ca.client()?))?;
        Ok(Self {
            runtime,
            provider: Some(provider),
            client,
            cache: None,
            calls: Arc::default(),
            _files: files,
        })
    }

    /// With Gatekeeper's response cache; no entry expires during a test (the TTL is 3 minutes).
    fn with_response_cache(limits: Limits) -> TestResult<Self> {
        let mut harness = Self::new(limits)?;
        harness.cache = Some(Arc::default());
        Ok(harness)
    }

    /// The keys sent to the provider and the `status_code` of the last `external_data` call.
    fn last_call(&self) -> TestResult<(usize, u64)> {
        Ok(*self.calls.lock().map_err(|_| "poisoned")?.last().ok_or("no call")?)
    }

    /// The sorted violation messages of the template for `input`.
    fn violations(&self, input: Value, fault: Fault) -> TestResult<Vec<String>> {
        let spec: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(TEMPLATE)?)?;
        let rego = spec["spec"]["targets"][0]["rego"]
            .as_str()
            .ok_or("template has no rego")?;
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(true);
        engine.add_policy("template.rego".into(), rego.into())?;
        let handle = self.runtime.handle().clone();
        let client = self.client.clone();
        let cache = self.cache.clone();
        let calls = Arc::clone(&self.calls);
        let url = format!(
            "https://{}/validate",
            self.provider.as_ref().ok_or("no provider")?.addr()
        );
        engine.add_extension(
            "external_data".into(),
            1,
            Box::new(move |args: Vec<regorus::Value>| {
                let arg = serde_json::to_value(args.first().ok_or_else(|| anyhow::anyhow!("no argument"))?)?;
                if matches!(fault, Fault::Unreachable) {
                    return Ok(regorus::Value::Undefined);
                }
                let (answer, sent) = handle.block_on(external_data(&client, &url, &arg, fault, cache.as_deref()))?;
                calls
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push((sent, answer["status_code"].as_u64().unwrap_or_default()));
                regorus::Value::from_json_str(&answer.to_string())
            }),
        )?;
        engine.set_input(regorus::Value::from_json_str(&input.to_string())?);
        let result = engine.eval_rule("data.k8sclusterimagepolicy.violation".into())?;
        let result: Value = serde_json::to_value(&result)?;
        let mut messages: Vec<String> = result
            .as_array()
            .ok_or_else(|| format!("violation is not a set: {result}"))?
            .iter()
            .filter_map(|v| v["msg"].as_str().map(str::to_owned))
            .collect();
        messages.sort();
        Ok(messages)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            self.runtime.block_on(provider.shutdown());
        }
    }
}

/// Gatekeeper's `external_data` (frameworks' `externalDataBuiltin`): answer the keys found in the
/// response cache from it, POST the others (if any) and cache their items, then shape the
/// ProviderResponse as `{"responses": [[key, value]…], "errors": [[key, error]…], "status_code",
/// "system_error"}`. `status_code` and `system_error` keep Go's zero values (0, "") unless keys were
/// sent. Returns the answer and the number of keys sent.
async fn external_data(
    client: &reqwest::Client,
    url: &str,
    arg: &Value,
    fault: Fault,
    cache: Option<&ResponseCache>,
) -> anyhow::Result<(Value, usize)> {
    let poisoned = |_| anyhow::anyhow!("poisoned");
    let mut items = Vec::new();
    let mut send = Vec::new();
    for key in arg["keys"].as_array().into_iter().flatten() {
        let hit = match cache {
            Some(cache) => cache
                .lock()
                .map_err(poisoned)?
                .get(key.as_str().unwrap_or_default())
                .cloned(),
            None => None,
        };
        match hit {
            Some(item) => items.push(item),
            None => send.push(key.clone()),
        }
    }
    let mut status = 0;
    let mut system_error = json!("");
    if !send.is_empty() {
        let body = json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest", "request": {"keys": send}});
        let response = client.post(url).json(&body).send().await?;
        status = response.status().as_u16();
        let answer: Value = response.json().await?;
        let answered = answer["response"]["items"].as_array().cloned().unwrap_or_default();
        if let Some(cache) = cache {
            let mut cache = cache.lock().map_err(poisoned)?;
            for item in &answered {
                cache.insert(item["key"].as_str().unwrap_or_default().to_owned(), item.clone());
            }
        }
        items.extend(answered);
        system_error = answer["response"]["systemError"].clone();
    }
    if let Fault::SystemError(error) = fault {
        system_error = json!(error);
    }
    if let Fault::Status(code) = fault {
        status = code;
    }
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    for item in &items {
        let key = item["key"].as_str().unwrap_or_default();
        if let Fault::DropKey(text) = fault
            && key.contains(text)
        {
            continue;
        }
        match item.get("error") {
            Some(error) => errors.push(json!([key, error])),
            None => responses.push(json!([key, item["value"]])),
        }
    }
    let answer = json!({
        "responses": responses,
        "errors": errors,
        "status_code": status,
        "system_error": system_error,
    });
    Ok((answer, send.len()))
}

fn pod(namespace: &str, init: &[&str], containers: &[&str]) -> Value {
    let list = |images: &[&str]| -> Vec<Value> {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect()
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"initContainers": list(init), "containers": list(containers)}
    })
}

fn review(object: Value, verdicts: &[&str]) -> Value {
    let namespace = object["metadata"]["namespace"].clone();
    json!({
        "review": {"operation": "CREATE", "namespace": namespace,
                   "kind": {"kind": object["kind"]}, "object": object},
        "parameters": {"verdicts": verdicts},
    })
}

fn deployment(namespace: &str, containers: &[&str]) -> Value {
    let pod = pod(namespace, &[], containers);
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"template": {"metadata": {}, "spec": pod["spec"]}}
    })
}

#[test]
fn pod_violations_follow_the_constraints_verdicts() -> TestResult {
    let h = Harness::new(Limits::default())?;
    let object = pod(
        "prod",
        &["registry.example/init:warn"],
        &["registry.example/app:deny", "registry.example/side:v1"],
    );
    assert_eq!(
        h.violations(review(object.clone(), &["deny"]), Fault::None)?,
        vec!["image registry.example/app:deny denied by policy p"]
    );
    assert_eq!(
        h.violations(review(object.clone(), &["warn"]), Fault::None)?,
        vec!["image registry.example/init:warn failed warn policy p"]
    );
    let defaults = json!({"review": review(object, &[])["review"]});
    assert_eq!(
        h.violations(defaults, Fault::None)?,
        vec!["image registry.example/app:deny denied by policy p"],
        "without parameters the template reports deny verdicts"
    );
    Ok(())
}

#[test]
fn allowed_deployment_has_no_violation_and_errors_fail_closed() -> TestResult {
    let h = Harness::new(Limits::default())?;
    let good = deployment("prod", &["registry.example/app:v1", "registry.example/side:v1"]);
    assert_eq!(
        h.violations(review(good, &["deny"]), Fault::None)?,
        Vec::<String>::new()
    );

    let broken = deployment("prod", &["registry.example/app:v1", "registry.example/broken:v1"]);
    assert_eq!(
        h.violations(review(broken.clone(), &["deny"]), Fault::None)?,
        vec![
            "image verification provider cip-provider failed: 1 image(s) not decided, to be asked again: \
             image registry.example/broken:v1 in namespace prod: registry unreachable for registry.example/broken:v1"
        ]
    );
    let mut quiet = review(broken, &["warn"]);
    quiet["parameters"]["reportErrors"] = json!(false);
    assert_eq!(h.violations(quiet, Fault::None)?, Vec::<String>::new());
    Ok(())
}

#[test]
fn missing_answers_and_unreachable_provider_fail_closed() -> TestResult {
    let h = Harness::new(Limits::default())?;
    let object = deployment("prod", &["registry.example/app:v1", "registry.example/side:v1"]);
    assert_eq!(
        h.violations(review(object.clone(), &["deny"]), Fault::DropKey("side"))?,
        vec![
            "image registry.example/side:v1 could not be verified: \
             no answer from provider cip-provider"
        ]
    );
    assert_eq!(
        h.violations(review(object, &["deny"]), Fault::Unreachable)?,
        vec!["image verification provider cip-provider did not answer"]
    );
    Ok(())
}

#[test]
fn provider_system_error_fails_closed() -> TestResult {
    let h = Harness::new(Limits {
        max_keys: 1,
        ..Limits::default()
    })?;
    let object = pod("prod", &[], &["registry.example/a:v1", "registry.example/b:v1"]);
    assert_eq!(
        h.violations(review(object, &["deny"]), Fault::None)?,
        vec![
            "image verification provider cip-provider failed: \
             too many keys: 2 (at most 1 per request)"
        ]
    );
    Ok(())
}

#[test]
fn answers_from_gatekeepers_response_cache_are_decided_as_fresh_ones() -> TestResult {
    let h = Harness::with_response_cache(Limits::default())?;
    let denied = pod(
        "prod",
        &["registry.example/init:warn"],
        &["registry.example/app:deny", "registry.example/side:v1"],
    );
    let allowed = deployment("prod", &["registry.example/app:v1", "registry.example/side:v1"]);
    // Shares side:v1 with `denied`: its first call is mixed (one key cached, one sent). (In a
    // pod template an empty image is a container without one, refused without a key.)
    let unreadable = pod("prod", &[], &["registry.example/side:v1", ""]);
    let cases = [
        (
            "deny",
            denied.clone(),
            &["deny"],
            3,
            vec!["image registry.example/app:deny denied by policy p"],
        ),
        ("allow", allowed, &["deny"], 2, vec![]),
        (
            "a per-key error",
            unreadable,
            &["deny"],
            1,
            vec!["image  could not be verified: key has an empty image"],
        ),
        // The warn Constraint sends the deny one's keys: its cached warn verdict is reported.
        (
            "warn",
            denied,
            &["warn"],
            0,
            vec!["image registry.example/init:warn failed warn policy p"],
        ),
    ];
    for (what, object, verdicts, sent, expected) in cases {
        let first = h.violations(review(object.clone(), verdicts), Fault::None)?;
        assert_eq!(first, expected, "{what}");
        let status = if sent > 0 { 200 } else { 0 };
        assert_eq!(h.last_call()?, (sent, status), "{what}: first call");
        // A second replica, or a Pod re-created within the TTL: every key is cached, no request
        // is sent and status_code is 0, yet the decision is the first one.
        let again = h.violations(review(object, verdicts), Fault::None)?;
        assert_eq!(h.last_call()?, (0, 0), "{what}: answered from the cache");
        assert_eq!(again, first, "{what}: answered from the cache");
    }
    Ok(())
}

#[test]
fn an_undecided_image_is_asked_again_instead_of_denied_from_the_cache() -> TestResult {
    let h = Harness::with_response_cache(Limits::default())?;
    let object = deployment("prod", &["registry.example/app:v1", "registry.example/broken:v1"]);
    let denied = vec![
        "image verification provider cip-provider failed: 1 image(s) not decided, to be asked again: \
         image registry.example/broken:v1 in namespace prod: registry unreachable for registry.example/broken:v1",
    ];
    assert_eq!(h.violations(review(object.clone(), &["deny"]), Fault::None)?, denied);
    assert_eq!(h.last_call()?, (2, 200));
    // The decided image comes from Gatekeeper's cache; the undecided one is asked again (with an
    // `error` item it would have been denied from the cache for the TTL, provider recovered or not).
    assert_eq!(h.violations(review(object, &["deny"]), Fault::None)?, denied);
    assert_eq!(h.last_call()?, (1, 200));
    Ok(())
}

#[test]
fn a_cached_answer_missing_a_key_or_with_a_system_error_fails_closed() -> TestResult {
    let h = Harness::with_response_cache(Limits {
        max_keys: 1,
        ..Limits::default()
    })?;
    let object = pod("prod", &[], &["registry.example/app:v1"]);
    assert_eq!(
        h.violations(review(object.clone(), &["deny"]), Fault::None)?,
        Vec::<String>::new()
    );
    assert_eq!(
        h.violations(review(object.clone(), &["deny"]), Fault::DropKey("app"))?,
        vec![
            "image registry.example/app:v1 could not be verified: no answer from provider cip-provider",
            "image verification provider cip-provider answered HTTP 0",
        ]
    );
    assert_eq!(h.last_call()?, (0, 0));
    assert_eq!(
        h.violations(review(object, &["deny"]), Fault::SystemError("cache unavailable"))?,
        vec!["image verification provider cip-provider failed: cache unavailable"]
    );
    assert_eq!(h.last_call()?, (0, 0));
    // Mixed: app:v1 is cached, the two others are sent; the provider's status code is given.
    let more = pod(
        "prod",
        &[],
        &[
            "registry.example/app:v1",
            "registry.example/a:v1",
            "registry.example/b:v1",
        ],
    );
    assert_eq!(
        h.violations(review(more, &["deny"]), Fault::None)?,
        vec![
            "image verification provider cip-provider failed: \
             too many keys: 2 (at most 1 per request)"
        ]
    );
    assert_eq!(h.last_call()?, (2, 400));
    Ok(())
}

#[test]
fn an_http_error_without_a_system_error_fails_closed_though_every_key_is_answered() -> TestResult {
    // Found by a docs audit: docs/gatekeeper.md says any status but 200 fails closed; only 0 and
    // 400 (with a `system_error`) were tested. Every key answered, each image admitted, no
    // `system_error`: a 500 alone still denies, naming the status.
    let h = Harness::new(Limits::default())?;
    let object = pod("prod", &[], &["registry.example/app:v1"]);
    assert_eq!(
        h.violations(review(object.clone(), &["deny"]), Fault::None)?,
        Vec::<String>::new()
    );
    for code in [500, 502, 201] {
        assert_eq!(
            h.violations(review(object.clone(), &["deny"]), Fault::Status(code))?,
            vec![format!("image verification provider cip-provider answered HTTP {code}")],
            "status {code}"
        );
    }
    Ok(())
}

#[test]
fn cronjob_images_are_verified_in_the_requests_namespace() -> TestResult {
    let h = Harness::new(Limits::default())?;
    let pod = pod("", &[], &["registry.example/job:deny"]);
    let cronjob = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": pod["spec"]}}}}
    });
    let mut input = review(cronjob, &["deny"]);
    input["review"]["namespace"] = json!("batch");
    assert_eq!(
        h.violations(input, Fault::None)?,
        vec!["image registry.example/job:deny denied by policy p"]
    );
    Ok(())
}

#[test]
fn every_workload_kind_and_container_list_is_checked() -> TestResult {
    let h = Harness::new(Limits::default())?;
    for kind in [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "ReplicationController",
    ] {
        let mut object = deployment("prod", &["registry.example/app:v1"]);
        object["kind"] = json!(kind);
        object["spec"]["template"]["spec"]["initContainers"] =
            json!([{"name": "i", "image": "registry.example/init:deny"}]);
        assert_eq!(
            h.violations(review(object, &["deny"]), Fault::None)?,
            vec!["image registry.example/init:deny denied by policy p"],
            "{kind}"
        );
    }
    let mut debugged = pod("prod", &[], &["registry.example/app:v1"]);
    debugged["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "registry.example/debug:deny"}]);
    assert_eq!(
        h.violations(review(debugged, &["deny"]), Fault::None)?,
        vec!["image registry.example/debug:deny denied by policy p"]
    );
    let mut configmap = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "prod"}});
    configmap["data"] = json!({"image": "registry.example/app:deny"});
    assert_eq!(
        h.violations(review(configmap, &["deny"]), Fault::None)?,
        Vec::<String>::new()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The template against the real module: the keys it builds, decided by the module's
// `verify_images` exactly as the provider decides them, give the verdicts the module's own
// `validate` gives the same admission request.
// ---------------------------------------------------------------------------------------------

mod parity {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use cip::capabilities::Capabilities;
    use cip::provider::Decider;
    use cip::provider::PolicyDecider;
    use cip::provider::protocol::parse_key;
    use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
    use serde_json::{Value, json};

    use super::{TEMPLATE, TestResult};

    fn policy_path() -> PathBuf {
        std::env::var_os("CIP_POLICY_WASM").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
            PathBuf::from,
        )
    }

    /// Static authorities only, so the module decides without a registry.
    fn settings() -> Value {
        let policy = |name: &str, glob: &str, matches: Value, pass: bool, mode: &str| {
            let authority = if pass {
                json!({"static": {"action": "pass"}})
            } else {
                json!({"static": {"action": "fail", "message": format!("{name} says no")}})
            };
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"images": [{"glob": glob}], "match": matches, "mode": mode, "authorities": [authority]}
            })
        };
        json!({"policies": [
            policy("frozen-deployments", "registry.example/frozen/**",
                   json!([{"group": "apps", "version": "v1", "resource": "deployments"}]), false, "enforce"),
            policy("labelled", "registry.example/**",
                   json!([{"selector": {"matchLabels": {"signed": "required"}}}]), false, "warn"),
            policy("production", "registry.example/**", json!([{"namespaces": ["production"]}]), true, "enforce"),
            policy("data", "registry.example/data/**", json!([]), false, "enforce"),
        ]})
    }

    struct Harness {
        _runtime: tokio::runtime::Runtime,
        evaluator: Evaluator,
        decider: Arc<PolicyDecider>,
        settings: Value,
    }

    impl Harness {
        fn new() -> TestResult<Self> {
            Self::with(None, settings())
        }

        /// Verifying against the plain-HTTP registry `registry_host` (with `Some`), under `settings`.
        fn with(registry_host: Option<&str>, settings: Value) -> TestResult<Self> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let path = policy_path();
            let module = PolicyModule::from_file(&path)
                .map_err(|e| format!("{}: {e} (build it with `make policy.wasm`)", path.display()))?;
            let caps = match registry_host {
                None => Arc::new(Capabilities::without_registry(runtime.handle().clone())),
                Some(host) => {
                    let _inside = runtime.enter();
                    crate::provider_support::loopback_capabilities(host)?
                }
            };
            let evaluator = Evaluator::new(&module, caps, EvaluatorOptions::default())?;
            let decider = Arc::new(PolicyDecider::new(evaluator.clone(), settings.clone())?);
            Ok(Self {
                _runtime: runtime,
                evaluator,
                decider,
                settings,
            })
        }

        /// The module's answer to the AdmissionRequest.
        fn admission(&self, request: &Value) -> TestResult<Value> {
            Ok(serde_json::to_value(self.evaluator.validate(request, &self.settings)?)?)
        }

        /// The template's violations for the request, and the keys it sent.
        fn gatekeeper(
            &self,
            request: &Value,
            verdicts: &[&str],
            report_errors: bool,
        ) -> TestResult<(Vec<String>, Vec<Value>)> {
            let spec: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(TEMPLATE)?)?;
            let rego = spec["spec"]["targets"][0]["rego"]
                .as_str()
                .ok_or("template has no rego")?;
            let mut engine = regorus::Engine::new();
            engine.set_rego_v0(true);
            engine.add_policy("template.rego".into(), rego.into())?;
            let decider = Arc::clone(&self.decider);
            let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = Arc::clone(&sent);
            engine.add_extension(
                "external_data".into(),
                1,
                Box::new(move |args: Vec<regorus::Value>| {
                    let arg = serde_json::to_value(args.first().ok_or_else(|| anyhow::anyhow!("no argument"))?)?;
                    let mut responses = Vec::new();
                    let mut errors = Vec::new();
                    for key in arg["keys"].as_array().into_iter().flatten() {
                        let key = key.as_str().unwrap_or_default();
                        log.lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .push(serde_json::from_str::<Value>(key)?);
                        // What the provider does with one key.
                        match parse_key(key)
                            .map_err(|e| e.to_string())
                            .and_then(|k| decider.decide(&k))
                        {
                            Ok(decision) => responses.push(json!([key, decision])),
                            Err(error) => errors.push(json!([key, error])),
                        }
                    }
                    let answer =
                        json!({"responses": responses, "errors": errors, "status_code": 200, "system_error": ""});
                    regorus::Value::from_json_str(&answer.to_string())
                }),
            )?;
            let input = json!({"review": request, "parameters": {"verdicts": verdicts, "reportErrors": report_errors}});
            engine.set_input(regorus::Value::from_json_str(&input.to_string())?);
            let result: Value = serde_json::to_value(engine.eval_rule("data.k8sclusterimagepolicy.violation".into())?)?;
            let mut messages: Vec<String> = result
                .as_array()
                .ok_or_else(|| format!("violation is not a set: {result}"))?
                .iter()
                .filter_map(|v| v["msg"].as_str().map(str::to_owned))
                .collect();
            messages.sort();
            let keys = sent.lock().map_err(|_| "poisoned")?.clone();
            Ok((messages, keys))
        }
    }

    fn containers(images: &[&str]) -> Value {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect()
    }

    fn object(kind: &str, api_version: &str, labels: Value, spec: Value) -> Value {
        let metadata = json!({"name": "x", "labels": labels});
        match kind {
            "Pod" => json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}),
            "CronJob" => json!({"apiVersion": api_version, "kind": kind, "metadata": metadata,
                                "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            _ => json!({"apiVersion": api_version, "kind": kind, "metadata": metadata,
                        "spec": {"replicas": 2, "template": {"spec": spec}}}),
        }
    }

    fn request(operation: &str, kind: &str, namespace: &str, new: Value, old: Value) -> Value {
        let (group, resource) = match kind {
            "Pod" => ("", "pods"),
            "CronJob" => ("batch", "cronjobs"),
            _ => ("apps", "deployments"),
        };
        json!({
            "uid": "1", "operation": operation, "namespace": namespace,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "object": new, "oldObject": old,
        })
    }

    /// What a user sees: admitted or not, and the warnings.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        admitted: bool,
        warnings: Vec<String>,
    }

    #[test]
    fn the_template_and_admission_give_the_same_verdicts() -> TestResult {
        let h = Harness::new()?;
        let frozen = "registry.example/frozen/app:1";
        let signed = json!({"signed": "required"});
        let deployment = |labels: Value, images: &[&str]| {
            object(
                "Deployment",
                "apps/v1",
                labels,
                json!({"containers": containers(images)}),
            )
        };
        let pod = |images: &[&str], volumes: Value| {
            object(
                "Pod",
                "v1",
                json!({}),
                json!({"containers": containers(images), "volumes": volumes}),
            )
        };
        let mut scaled = deployment(json!({}), &[frozen]);
        scaled["spec"]["replicas"] = json!(0);
        let mut ephemeral = pod(&["registry.example/app:1"], json!([]));
        ephemeral["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": "registry.example/data/debug:1"}]);
        let mut ephemeral_request = request(
            "UPDATE",
            "Pod",
            "production",
            ephemeral,
            pod(&["registry.example/app:1"], json!([])),
        );
        ephemeral_request["subResource"] = json!("ephemeralcontainers");

        // A template's container without an image is refused whatever the settings, before any
        // image is decided: neither the labelled warn policy's warning nor frozen's denial.
        let mut imageless = deployment(signed.clone(), &["registry.example/app:1", frozen]);
        imageless["spec"]["template"]["spec"]["containers"][1] = json!({"name": "app"});
        let mut null_init = object(
            "CronJob",
            "batch/v1",
            signed.clone(),
            json!({"initContainers": [{"name": "i", "image": null}], "containers": containers(&["registry.example/app:2"])}),
        );
        null_init["metadata"]["namespace"] = json!("production");
        let mut empty_ephemeral = deployment(json!({}), &["registry.example/app:1"]);
        empty_ephemeral["spec"]["template"]["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "image": ""}]);
        let mut unnamed = deployment(json!({}), &["registry.example/app:1"]);
        unnamed["spec"]["template"]["spec"]["containers"] = json!([{"image": null}]);

        let cases: Vec<(&str, Value, bool, usize)> = vec![
            (
                "a Deployment's container without an image",
                request("CREATE", "Deployment", "default", imageless.clone(), Value::Null),
                false,
                0,
            ),
            (
                "a scale-down of a Deployment whose container has no image",
                request("UPDATE", "Deployment", "default", imageless.clone(), imageless),
                false,
                0,
            ),
            (
                "a CronJob's init container with a null image, under a label-scoped warn policy",
                request("CREATE", "CronJob", "", null_init, Value::Null),
                false,
                0,
            ),
            (
                "a template's ephemeral container with an empty image",
                request("CREATE", "Deployment", "production", empty_ephemeral, Value::Null),
                false,
                0,
            ),
            (
                "an unnamed template container with a null image",
                request("CREATE", "Deployment", "default", unnamed, Value::Null),
                false,
                0,
            ),
            (
                "a Deployment-scoped policy does not apply to a Pod",
                request("CREATE", "Pod", "default", pod(&[frozen], json!([])), Value::Null),
                true,
                1,
            ),
            (
                "a Deployment-scoped policy applies to a Deployment",
                request(
                    "CREATE",
                    "Deployment",
                    "default",
                    deployment(json!({}), &[frozen]),
                    Value::Null,
                ),
                false,
                0,
            ),
            (
                "a label-scoped warn policy",
                request(
                    "CREATE",
                    "Deployment",
                    "default",
                    deployment(signed.clone(), &["registry.example/app:1"]),
                    Value::Null,
                ),
                true,
                1,
            ),
            (
                "a namespace-scoped passing policy",
                request(
                    "CREATE",
                    "Pod",
                    "production",
                    pod(&["registry.example/app:1"], json!([])),
                    Value::Null,
                ),
                true,
                0,
            ),
            (
                "an image volume",
                request(
                    "CREATE",
                    "Pod",
                    "production",
                    pod(
                        &["registry.example/app:1"],
                        json!([{"name": "d", "image": {"reference": "registry.example/data/set:1"}}]),
                    ),
                    Value::Null,
                ),
                false,
                0,
            ),
            (
                "a CronJob's init and regular containers",
                request(
                    "CREATE",
                    "CronJob",
                    "production",
                    object(
                        "CronJob",
                        "batch/v1",
                        signed.clone(),
                        json!({"initContainers": containers(&["registry.example/init:1"]), "containers": containers(&["registry.example/app:2"])}),
                    ),
                    Value::Null,
                ),
                true,
                2,
            ),
            (
                "a scale-down changes no image",
                request(
                    "UPDATE",
                    "Deployment",
                    "default",
                    scaled,
                    deployment(json!({}), &[frozen]),
                ),
                true,
                0,
            ),
            (
                "an UPDATE bringing a new image",
                request(
                    "UPDATE",
                    "Deployment",
                    "default",
                    deployment(json!({}), &["registry.example/app:1", frozen]),
                    deployment(json!({}), &["registry.example/app:1"]),
                ),
                false,
                0,
            ),
            (
                "a relabelling that brings a Deployment under a label-scoped policy",
                request(
                    "UPDATE",
                    "Deployment",
                    "default",
                    deployment(signed.clone(), &["registry.example/app:1"]),
                    deployment(json!({}), &["registry.example/app:1"]),
                ),
                true,
                1,
            ),
            (
                "an image the old object held given to another container",
                request(
                    "UPDATE",
                    "Deployment",
                    "default",
                    deployment(json!({}), &[frozen, frozen]),
                    deployment(json!({}), &[frozen, "registry.example/app:1"]),
                ),
                false,
                0,
            ),
            (
                "an UPDATE that changes nothing a policy reads",
                request(
                    "UPDATE",
                    "Deployment",
                    "default",
                    deployment(signed.clone(), &[frozen]),
                    deployment(signed.clone(), &[frozen]),
                ),
                true,
                0,
            ),
            (
                "a DELETE",
                request(
                    "DELETE",
                    "Deployment",
                    "default",
                    deployment(json!({}), &[frozen]),
                    deployment(json!({}), &[frozen]),
                ),
                true,
                0,
            ),
            ("the ephemeralcontainers subresource", ephemeral_request, false, 0),
        ];
        for (what, request, admitted, warnings) in cases {
            let admission = h.admission(&request)?;
            let mut admission_warnings: Vec<String> = admission["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect();
            admission_warnings.sort();
            let expected = Outcome {
                admitted,
                warnings: admission_warnings.clone(),
            };
            assert_eq!(admission_warnings.len(), warnings, "{what}: admission {admission}");
            let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
            let (warned, _) = h.gatekeeper(&request, &["warn"], false)?;
            let gatekeeper = Outcome {
                admitted: denials.is_empty(),
                warnings: warned,
            };
            assert_eq!(
                gatekeeper, expected,
                "{what}: denials {denials:?}, keys {keys:?}, admission {admission}"
            );
            assert_eq!(admission["accepted"], admitted, "{what}: {admission}");
            let message = admission["message"].as_str().unwrap_or_default();
            for denial in &denials {
                assert!(
                    message.contains(denial.as_str()),
                    "{what}: {denial:?} not in {message:?}"
                );
            }
            // Every key names the object's resource and labels.
            for key in &keys {
                assert_eq!(key["resource"], request["resource"], "{what}: {key}");
                assert_eq!(key["labels"], request["object"]["metadata"]["labels"], "{what}: {key}");
            }
        }
        Ok(())
    }

    /// Found by a review: a Pod relabelled into a policy's selector keeps running what the kubelet
    /// pulled when it started (an unsigned image pushed as `app:x` under `env: dev`), while the
    /// re-decision verified what the tag names now (a signed manifest re-tagged as `app:x`). The
    /// update rewrites no image, so an image held at its place, written by tag, that a newly
    /// applying `enforce` policy verified is refused by both, with the same message; with only a
    /// `warn` policy newly applying, both admit with the same warning (the template asks the
    /// provider about such an image with the old labels too, to tell which policies newly apply).
    /// Written by digest, in a workload, or relabelled where no selector looks: as before.
    #[test]
    fn a_relabelled_pods_image_by_tag_is_refused_as_admission_refuses_it() -> TestResult {
        let registry = testkit::Registry::start()?;
        let host = registry.host();
        let key = testkit::KeyPair::ecdsa_p256()?;
        let signed = testkit::push_image(&host, "team/app", "signed", "relabel-signed")?;
        testkit::sign_with_key(&host, "team/app", &signed, &key, &testkit::annotations([]))?;
        // The attacker's unsigned image ran under `app:x`; the tag now names the signed manifest.
        testkit::push_image(&host, "team/app", "x", "relabel-unsigned")?;
        assert_eq!(testkit::retag(&host, "team/app", "signed", "x")?, signed);
        testkit::push_image(&host, "team/app", "unsigned", "relabel-unsigned")?;
        let policy = |name: &str, mode: &str, selector: Value| {
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"images": [{"glob": format!("{host}/**")}], "mode": mode,
                         "match": [{"selector": {"matchLabels": selector}}],
                         "authorities": [{"key": {"data": key.public_key_pem()}}]}
            })
        };
        let settings = json!({"noMatchPolicy": "allow", "policies": [
            policy("prod", "enforce", json!({"env": "prod"})),
            policy("front-audit", "warn", json!({"tier": "front"})),
        ]});
        let h = Harness::with(Some(&host), settings)?;
        let tag = format!("{host}/team/app:x");
        let pinned = format!("{tag}@{signed}");
        let unsigned = format!("{host}/team/app:unsigned");
        let relabel = |kind: &str, image: &str, new: Value, old: Value| {
            let object = |labels: Value| {
                let mut o = object(
                    kind,
                    if kind == "Pod" { "v1" } else { "apps/v1" },
                    labels,
                    json!({"containers": containers(&[image])}),
                );
                o["metadata"]["namespace"] = json!("default");
                o
            };
            request("UPDATE", kind, "default", object(new), object(old))
        };
        let refusal = format!(
            "image {tag} would now be checked by policy prod, but it is written by tag and this update does not change \
             it: the Pod may be running another image than the one verified now (the tag can move after the pull); \
             recreate the Pod (it is then verified and pinned), or write the image by digest ({tag}@{signed})"
        );
        let warning = format!(
            "image {tag} is now checked by policy front-audit (warn mode), which verified {signed}; the Pod may run \
             another image (pulled by tag): recreate it or write the image by digest"
        );
        // Cut as Kubernetes would cut it (both cut it alike).
        assert!(warning.len() > 256 && warning.is_ascii());
        let warning = format!("{}…", &warning[..253]);
        let dev = json!({"env": "dev"});
        let prod = json!({"env": "prod"});
        let cases: Vec<(&str, Value, Outcome, Option<String>)> = vec![
            (
                "the reviewer's scenario: relabelled env=prod, the tag now signed",
                relabel("Pod", &tag, prod.clone(), dev.clone()),
                Outcome {
                    admitted: false,
                    warnings: vec![],
                },
                Some(format!("Pod default/x: {refusal}")),
            ),
            (
                "the same image written with the digest the mutation pins",
                relabel("Pod", &pinned, prod.clone(), dev.clone()),
                Outcome {
                    admitted: true,
                    warnings: vec![],
                },
                None,
            ),
            (
                "an unsigned image, refused for its signature",
                relabel("Pod", &unsigned, prod.clone(), dev.clone()),
                Outcome {
                    admitted: false,
                    warnings: vec![],
                },
                None,
            ),
            (
                "only a warn policy newly applies",
                relabel("Pod", &tag, json!({"env": "dev", "tier": "front"}), dev.clone()),
                Outcome {
                    admitted: true,
                    warnings: vec![warning.clone()],
                },
                None,
            ),
            (
                "a label no selector reads",
                relabel("Pod", &tag, json!({"env": "prod", "team": "a"}), prod.clone()),
                Outcome {
                    admitted: true,
                    warnings: vec![],
                },
                None,
            ),
            (
                "a workload relabelled: its Pods are decided and pinned when created",
                relabel("Deployment", &tag, prod.clone(), dev.clone()),
                Outcome {
                    admitted: true,
                    warnings: vec![],
                },
                None,
            ),
        ];
        for (what, request, expected, message) in cases {
            let admission = h.admission(&request)?;
            let mut warnings: Vec<String> = admission["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect();
            warnings.sort();
            let module = Outcome {
                admitted: admission["accepted"] == true,
                warnings,
            };
            assert_eq!(module, expected, "{what}: admission {admission}");
            if let Some(message) = &message {
                assert_eq!(admission["message"], message.as_str(), "{what}");
            }
            let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
            let (warned, _) = h.gatekeeper(&request, &["warn"], false)?;
            let gatekeeper = Outcome {
                admitted: denials.is_empty(),
                warnings: warned,
            };
            assert_eq!(gatekeeper, expected, "{what}: denials {denials:?}, keys {keys:?}");
            let text = admission["message"].as_str().unwrap_or_default();
            for denial in &denials {
                assert!(text.contains(denial.as_str()), "{what}: {denial:?} not in {text:?}");
            }
            if message.is_some() {
                assert_eq!(denials, vec![refusal.clone()], "{what}");
            }
        }
        Ok(())
    }

    /// Found by a review: Pod UPDATEs are kept from Gatekeeper's mutation (helm-values.yaml's
    /// `mutatingWebhookMatchConditions`), so an image a Pod's UPDATE brings in by tag (`kubectl set
    /// image pod/…`) would be admitted unpinned, and the tag can move before the kubelet pulls it.
    /// The enforcing Constraint refuses it when an `enforce` policy verified it at a digest, as the
    /// module's validating twin (`modifyImagesWithDigest: false`) refuses it, in the same words up
    /// to "but" (the module itself pins it). Written `tag@digest`, in a workload (its Pods are
    /// pinned at CREATE), in a Pod's CREATE (pinned by the Assigns), through `pods/ephemeralcontainers`
    /// (mutated and pinned), held from the old object, or covered by no `enforce` policy that passed
    /// (an unsigned image under a `warn` policy: the warning as before): no refusal.
    #[test]
    fn an_image_a_pod_update_brings_in_by_tag_is_refused_with_the_digest_to_write() -> TestResult {
        let registry = testkit::Registry::start()?;
        let host = registry.host();
        let key = testkit::KeyPair::ecdsa_p256()?;
        let signed = testkit::push_image(&host, "team/app", "v2", "update-signed")?;
        testkit::sign_with_key(&host, "team/app", &signed, &key, &testkit::annotations([]))?;
        testkit::push_image(&host, "audit/tool", "v2", "update-unsigned")?;
        let policy = |name: &str, glob: &str, mode: &str| {
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"images": [{"glob": glob}], "mode": mode,
                         "authorities": [{"key": {"data": key.public_key_pem()}}]}
            })
        };
        let settings = json!({"noMatchPolicy": "allow", "policies": [
            policy("team", &format!("{host}/team/**"), "enforce"),
            policy("audit", &format!("{host}/audit/**"), "warn"),
        ]});
        let mut twin = settings.clone();
        twin["modifyImagesWithDigest"] = json!(false);
        let h = Harness::with(Some(&host), settings)?;
        let tag = format!("{host}/team/app:v2");
        let pinned = format!("{tag}@{signed}");
        let old = format!("{host}/team/app:v1");
        let unsigned = format!("{host}/audit/tool:v2");
        let labels = json!({"app": "a"});
        let object_of = |kind: &str, spec: Value| {
            let mut o = object(kind, if kind == "Pod" { "v1" } else { "apps/v1" }, labels.clone(), spec);
            o["metadata"]["namespace"] = json!("default");
            o
        };
        let update = |kind: &str, new: &[&str], was: &[&str]| {
            request(
                "UPDATE",
                kind,
                "default",
                object_of(kind, json!({"containers": containers(new)})),
                object_of(kind, json!({"containers": containers(was)})),
            )
        };
        let refusal = format!(
            "image {tag} was verified by tag (policy team verified {signed}), but Gatekeeper does not pin a Pod's \
             UPDATE and the tag can move before the pull: reference it by digest ({tag}@{signed})"
        );

        // `kubectl set image pod/x c0=…:v2`: refused by the enforcing Constraint, once an image.
        for (what, new) in [
            ("a Pod UPDATE changing an image to a signed tag", vec![tag.as_str()]),
            (
                "the same tag in two changed containers",
                vec![tag.as_str(), tag.as_str()],
            ),
        ] {
            let was = vec![old.as_str(); new.len()];
            let request = update("Pod", &new, &was);
            let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
            assert_eq!(denials, vec![refusal.clone()], "{what}: keys {keys:?}");
            let (warned, _) = h.gatekeeper(&request, &["warn"], false)?;
            assert!(warned.is_empty(), "{what}: {warned:?}");
            // The module pins it; its validating twin refuses it in the same words up to "but".
            let admission = h.admission(&request)?;
            assert_eq!(admission["accepted"], true, "{what}: {admission}");
            assert_eq!(
                admission["mutated_object"]["spec"]["containers"][0]["image"],
                pinned.as_str(),
                "{what}: {admission}"
            );
            let refused = serde_json::to_value(h.evaluator.validate(&request, &twin)?)?;
            assert_eq!(refused["accepted"], false, "{what}: {refused}");
            let text = refused["message"].as_str().unwrap_or_default();
            let (first, _) = refusal.split_once(" but ").ok_or("no `but`")?;
            assert!(
                text.starts_with(&format!("Pod default/x: {first} but ")),
                "{what}: {text:?}"
            );
            assert!(
                text.contains(&format!("reference it by digest ({pinned})")),
                "{what}: {text:?}"
            );
        }

        // Nothing else changes: no denial, the same warnings as the module.
        let ephemeral = {
            let was = object_of("Pod", json!({"containers": containers(&[&old])}));
            let mut new = was.clone();
            new["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": tag}]);
            let mut r = request("UPDATE", "Pod", "default", new, was);
            r["subResource"] = json!("ephemeralcontainers");
            r
        };
        let created = request(
            "CREATE",
            "Pod",
            "default",
            object_of("Pod", json!({"containers": containers(&[&tag])})),
            Value::Null,
        );
        let relabelled_only = {
            let mut r = update("Pod", &[&tag], &[&tag]);
            r["object"]["metadata"]["labels"] = json!({"app": "b"});
            r
        };
        let warning = format!("image {unsigned} not verified by policy audit (warn mode)");
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            ("the image written tag@digest", update("Pod", &[&pinned], &[&old]), None),
            (
                "a Deployment UPDATE by tag (its Pods are pinned at CREATE)",
                update("Deployment", &[&tag], &[&old]),
                None,
            ),
            ("a Pod CREATE (pinned by the Assigns)", created, None),
            (
                "kubectl debug's ephemeralcontainers (mutated and pinned)",
                ephemeral,
                None,
            ),
            ("the tag held at its place, the labels changed", relabelled_only, None),
            (
                "an unsigned tag only a warn policy covers",
                update("Pod", &[&unsigned], &[&old]),
                Some(warning.as_str()),
            ),
        ];
        for (what, request, warned) in cases {
            let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
            assert!(denials.is_empty(), "{what}: {denials:?}, keys {keys:?}");
            // The warn Constraint reports the provider's message whole; the module cuts its
            // warnings to 256 bytes as Kubernetes does (an ASCII message here).
            let (warnings, _) = h.gatekeeper(&request, &["warn"], false)?;
            let warnings: Vec<String> = warnings
                .into_iter()
                .map(|w| if w.len() > 256 { format!("{}…", &w[..253]) } else { w })
                .collect();
            let admission = h.admission(&request)?;
            assert_eq!(admission["accepted"], true, "{what}: {admission}");
            let mut module: Vec<String> = admission["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect();
            module.sort();
            assert_eq!(warnings, module, "{what}");
            match warned {
                Some(text) => assert!(
                    warnings.len() == 1 && warnings[0].contains(text),
                    "{what}: {warnings:?}"
                ),
                None => assert!(warnings.is_empty(), "{what}: {warnings:?}"),
            }
        }
        Ok(())
    }

    /// The user's words of one evaluation by the module: admitted or not, its warnings (sorted),
    /// and its message.
    fn module_outcome(admission: &Value) -> (Outcome, String) {
        let mut warnings: Vec<String> = admission["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect();
        warnings.sort();
        let outcome = Outcome {
            admitted: admission["accepted"] == true,
            warnings,
        };
        (outcome, admission["message"].as_str().unwrap_or_default().to_owned())
    }

    /// A relabelled Pod's image held by tag, when the policies newly applying are an `enforce`
    /// exemption (`static: pass`) beside a policy that verified a digest (one applying before and
    /// after, or a newly applying `warn` one): the exemption verified nothing, so the module
    /// admits (with the `warn` policy's warning). The template refused, counting any passing
    /// `enforce` policy once the answer carried a digest; it now reads each policy's `verified`
    /// and admits as the module does. With a verifying `enforce` policy newly applying after the
    /// exemption, both refuse naming it (the template named the exemption).
    #[test]
    fn a_relabelled_pods_newly_applying_exemption_beside_a_verified_digest_is_admitted_as_admission_admits_it()
    -> TestResult {
        let registry = testkit::Registry::start()?;
        let host = registry.host();
        let key = testkit::KeyPair::ecdsa_p256()?;
        let signed = testkit::push_image(&host, "team/app", "x", "exempt-relabel-signed")?;
        testkit::sign_with_key(&host, "team/app", &signed, &key, &testkit::annotations([]))?;
        let policy = |name: &str, mode: &str, selector: Option<Value>, authority: Value| {
            let mut p = json!({
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"images": [{"glob": format!("{host}/**")}], "mode": mode, "authorities": [authority]}
            });
            if let Some(selector) = selector {
                p["spec"]["match"] = json!([{"selector": {"matchLabels": selector}}]);
            }
            p
        };
        let by_key = json!({"key": {"data": key.public_key_pem()}});
        let exemption = json!({"static": {"action": "pass"}});
        let settings = json!({"noMatchPolicy": "allow", "policies": [
            policy("everywhere", "enforce", None, by_key.clone()),
            policy("prod-exempt", "enforce", Some(json!({"env": "prod"})), exemption),
            policy("secure", "enforce", Some(json!({"zone": "secure"})), by_key.clone()),
            policy("front-audit", "warn", Some(json!({"tier": "front"})), by_key),
        ]});
        let h = Harness::with(Some(&host), settings)?;
        let tag = format!("{host}/team/app:x");
        let relabel = |new: Value| {
            let object = |labels: Value| {
                let mut o = object("Pod", "v1", labels, json!({"containers": containers(&[&tag])}));
                o["metadata"]["namespace"] = json!("default");
                o
            };
            request("UPDATE", "Pod", "default", object(new), object(json!({"env": "dev"})))
        };
        let warning = format!(
            "image {tag} is now checked by policy front-audit (warn mode), which verified {signed}; the Pod may run \
             another image (pulled by tag): recreate it or write the image by digest"
        );
        let warning = if warning.len() > 256 {
            format!("{}…", &warning[..253])
        } else {
            warning
        };
        let refusal = format!(
            "image {tag} would now be checked by policy secure, but it is written by tag and this update does not \
             change it: the Pod may be running another image than the one verified now (the tag can move after the \
             pull); recreate the Pod (it is then verified and pinned), or write the image by digest ({tag}@{signed})"
        );
        let cases: Vec<(&str, Value, Outcome, Option<&str>)> = vec![
            (
                "an enforce exemption newly applies, a policy applying before verified the digest",
                relabel(json!({"env": "prod"})),
                Outcome {
                    admitted: true,
                    warnings: vec![],
                },
                None,
            ),
            (
                "an enforce exemption and a verifying warn policy newly apply",
                relabel(json!({"env": "prod", "tier": "front"})),
                Outcome {
                    admitted: true,
                    warnings: vec![warning],
                },
                None,
            ),
            (
                "an enforce exemption and, after it, a verifying enforce policy newly apply",
                relabel(json!({"env": "prod", "zone": "secure"})),
                Outcome {
                    admitted: false,
                    warnings: vec![],
                },
                Some(refusal.as_str()),
            ),
        ];
        for (what, request, expected, refused) in cases {
            let admission = h.admission(&request)?;
            let (module, message) = module_outcome(&admission);
            assert_eq!(module, expected, "{what}: admission {admission}");
            let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
            let (warned, _) = h.gatekeeper(&request, &["warn"], false)?;
            let gatekeeper = Outcome {
                admitted: denials.is_empty(),
                warnings: warned,
            };
            assert_eq!(gatekeeper, expected, "{what}: denials {denials:?}, keys {keys:?}");
            if let Some(refusal) = refused {
                assert_eq!(message, format!("Pod default/x: {refusal}"), "{what}");
                assert_eq!(denials, vec![refusal.to_owned()], "{what}");
            }
        }
        Ok(())
    }

    /// An image a Pod's UPDATE brings in by tag, under an `enforce` exemption (`static: pass`)
    /// beside a policy that verified its digest: with the verifying policy in `warn` mode, the
    /// module's validating twin admits it (no `enforce` policy verified it: a refusal would protect
    /// no pin), and the module pins it; the template refused it, counting the exemption once the
    /// answer carried a digest, and now reads each policy's `verified` and admits it. With a
    /// verifying `enforce` policy after the exemption, both refuse naming that policy (the
    /// template named the exemption).
    #[test]
    fn a_pod_updates_image_by_tag_under_an_exemption_beside_a_verified_digest_is_decided_as_the_twin_decides()
    -> TestResult {
        let registry = testkit::Registry::start()?;
        let host = registry.host();
        let key = testkit::KeyPair::ecdsa_p256()?;
        let team = testkit::push_image(&host, "team/app", "v2", "exempt-update-team")?;
        testkit::sign_with_key(&host, "team/app", &team, &key, &testkit::annotations([]))?;
        let secure = testkit::push_image(&host, "secure/app", "v2", "exempt-update-secure")?;
        testkit::sign_with_key(&host, "secure/app", &secure, &key, &testkit::annotations([]))?;
        let policy = |name: &str, glob: &str, mode: &str, authority: Value| {
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"images": [{"glob": glob}], "mode": mode, "authorities": [authority]}
            })
        };
        let by_key = json!({"key": {"data": key.public_key_pem()}});
        let settings = json!({"noMatchPolicy": "allow", "policies": [
            policy("exempt", &format!("{host}/**"), "enforce", json!({"static": {"action": "pass"}})),
            policy("audit", &format!("{host}/**"), "warn", by_key.clone()),
            policy("secure", &format!("{host}/secure/**"), "enforce", by_key),
        ]});
        let mut twin = settings.clone();
        twin["modifyImagesWithDigest"] = json!(false);
        let h = Harness::with(Some(&host), settings)?;
        let old = format!("{host}/team/app:v1");
        let update = |image: &str| {
            let object = |image: &str| {
                let mut o = object(
                    "Pod",
                    "v1",
                    json!({"app": "a"}),
                    json!({"containers": containers(&[image])}),
                );
                o["metadata"]["namespace"] = json!("default");
                o
            };
            request("UPDATE", "Pod", "default", object(image), object(&old))
        };

        // Only a warn policy verified the digest: admitted by all, pinned by the module.
        let tag = format!("{host}/team/app:v2");
        let request = update(&tag);
        let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
        assert!(denials.is_empty(), "{denials:?}, keys {keys:?}");
        let (warned, _) = h.gatekeeper(&request, &["warn"], false)?;
        assert!(warned.is_empty(), "{warned:?}");
        let twin_answer = serde_json::to_value(h.evaluator.validate(&request, &twin)?)?;
        assert_eq!(
            module_outcome(&twin_answer).0,
            Outcome {
                admitted: true,
                warnings: vec![]
            },
            "{twin_answer}"
        );
        let admission = h.admission(&request)?;
        assert_eq!(admission["accepted"], true, "{admission}");
        assert_eq!(
            admission["mutated_object"]["spec"]["containers"][0]["image"],
            format!("{tag}@{team}"),
            "{admission}"
        );

        // An enforce policy verified it too: refused by both, naming it.
        let tag = format!("{host}/secure/app:v2");
        let request = update(&tag);
        let refusal = format!(
            "image {tag} was verified by tag (policy secure verified {secure}), but Gatekeeper does not pin a Pod's \
             UPDATE and the tag can move before the pull: reference it by digest ({tag}@{secure})"
        );
        let (denials, keys) = h.gatekeeper(&request, &["deny"], true)?;
        assert_eq!(denials, vec![refusal.clone()], "keys {keys:?}");
        let twin_answer = serde_json::to_value(h.evaluator.validate(&request, &twin)?)?;
        assert_eq!(twin_answer["accepted"], false, "{twin_answer}");
        let (first, _) = refusal.split_once(" but ").ok_or("no `but`")?;
        let text = twin_answer["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(&format!("Pod default/x: {first} but ")), "{text:?}");
        Ok(())
    }

    /// Found by a review: the template admitted a pod template whose container has no image, which
    /// the module refuses whatever the settings. Every kind with a pod template, every container
    /// list, a missing, null or empty image: the module's very message, from the Constraint
    /// reporting deny verdicts (with or without errors); nothing from the warn Constraint, and no
    /// key asked about. A Pod's container without an image is left to the API server, as the module
    /// leaves it; a Pod's empty image is asked about and refused.
    #[test]
    fn a_template_container_without_an_image_is_refused_as_admission_refuses_it() -> TestResult {
        let h = Harness::new()?;
        for kind in [
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "ReplicationController",
            "CronJob",
        ] {
            for list in ["initContainers", "containers", "ephemeralContainers"] {
                for container in [
                    json!({"name": "late"}),
                    json!({"name": "late", "image": null}),
                    json!({"name": "late", "image": ""}),
                ] {
                    let mut spec = json!({"containers": containers(&["registry.example/app:1"])});
                    spec[list] =
                        json!([{"name": "first", "image": "registry.example/frozen/app:1"}, container.clone()]);
                    let mut new = object(kind, "apps/v1", json!({"signed": "required"}), spec);
                    new["metadata"]["namespace"] = json!("team-a");
                    let mut request = request("CREATE", kind, "", new, Value::Null);
                    request["kind"]["kind"] = json!(kind);
                    let what = format!("{kind} {list} {container}");
                    let admission = h.admission(&request)?;
                    assert_eq!(admission["accepted"], false, "{what}: {admission}");
                    assert_eq!(admission["warnings"], Value::Null, "{what}: {admission}");
                    let path = if kind == "CronJob" {
                        "spec.jobTemplate.spec.template.spec"
                    } else {
                        "spec.template.spec"
                    };
                    let expected = format!(
                        "{kind} team-a/x: container \"late\" has no image ({path}.{list}[1].image is missing or empty): \
                         what it will run cannot be verified; write its image in the template"
                    );
                    assert_eq!(admission["message"], expected.as_str(), "{what}");
                    for report_errors in [true, false] {
                        let (denials, keys) = h.gatekeeper(&request, &["deny"], report_errors)?;
                        assert_eq!(denials, vec![expected.clone()], "{what}");
                        assert_eq!(keys, Vec::<Value>::new(), "{what}");
                    }
                    let (warnings, keys) = h.gatekeeper(&request, &["warn"], false)?;
                    assert_eq!((warnings, keys), (vec![], vec![]), "{what}");
                }
            }
        }
        let mut pod = object(
            "Pod",
            "v1",
            json!({}),
            json!({"containers": containers(&["registry.example/app:1", "registry.example/app:1"])}),
        );
        pod["spec"]["containers"][1] = json!({"name": "late"});
        let request_of = |pod: &Value| request("CREATE", "Pod", "default", pod.clone(), Value::Null);
        assert_eq!(h.admission(&request_of(&pod))?["accepted"], true);
        assert_eq!(
            h.gatekeeper(&request_of(&pod), &["deny"], true)?.0,
            Vec::<String>::new()
        );
        pod["spec"]["containers"][1]["image"] = json!("");
        assert_eq!(h.admission(&request_of(&pod))?["accepted"], false);
        assert_eq!(
            h.gatekeeper(&request_of(&pod), &["deny"], true)?.0,
            vec!["image  could not be verified: key has an empty image"]
        );
        Ok(())
    }

    #[test]
    fn an_unreadable_workload_is_a_violation_as_admission_denies_it() -> TestResult {
        let h = Harness::new()?;
        for spec in [
            json!({"containers": {"image": "registry.example/frozen/app:1"}}),
            json!({"containers": [{"name": "c", "image": ["registry.example/frozen/app:1"]}]}),
            json!({"containers": [], "volumes": [{"name": "v", "image": {"reference": 5}}]}),
        ] {
            let request = request(
                "CREATE",
                "Pod",
                "default",
                object("Pod", "v1", json!({}), spec.clone()),
                Value::Null,
            );
            let admission = h.admission(&request)?;
            assert_eq!(admission["accepted"], false, "{spec}: {admission}");
            let (denials, _) = h.gatekeeper(&request, &["deny"], true)?;
            assert!(
                denials.iter().any(|d| d.starts_with("Pod x cannot be read as a Pod: ")),
                "{spec}: {denials:?}"
            );
        }
        let mut mislabelled = request(
            "CREATE",
            "Pod",
            "default",
            object("Deployment", "apps/v1", json!({}), json!({})),
            Value::Null,
        );
        mislabelled["object"]["spec"] = json!({"containers": []});
        assert_eq!(h.admission(&mislabelled)?["accepted"], false);
        assert_eq!(
            h.gatekeeper(&mislabelled, &["deny"], true)?.0,
            vec![
                "Pod x cannot be read as a Pod: the object is a Deployment, but the request is about a Pod; its images cannot be checked"
            ]
        );
        Ok(())
    }

    #[test]
    fn audit_reviews_without_resource_derive_it_from_the_object() -> TestResult {
        let h = Harness::new()?;
        let object = object(
            "Deployment",
            "apps/v1",
            json!({"team": "a"}),
            json!({"containers": containers(&["registry.example/frozen/app:1"])}),
        );
        let review = json!({"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "object": object, "namespace": "default"});
        let (denials, keys) = h.gatekeeper(&review, &["deny"], true)?;
        assert_eq!(
            keys,
            vec![json!({"image": "registry.example/frozen/app:1", "namespace": "default",
                        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                        "labels": {"team": "a"}})]
        );
        assert_eq!(denials.len(), 1, "{denials:?}");
        Ok(())
    }
}
