//! The ConstraintTemplate's Rego (deploy/gatekeeper/constraint-template.yaml), evaluated with
//! regorus in Gatekeeper's rego v0 mode, with `external_data` calling a running provider over
//! TLS the way Gatekeeper does. Faults Gatekeeper can see (no answer, a key missing from the
//! answer) are injected in the builtin; everything else comes from the provider.

mod provider_support;

use std::sync::Arc;

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
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    provider: Option<RunningProvider>,
    client: reqwest::Client,
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
            _files: files,
        })
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
                let answer = handle.block_on(external_data(&client, &url, &arg, fault))?;
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

/// Gatekeeper's `external_data`: POST the keys, then shape the ProviderResponse as
/// `{"responses": [[key, value]…], "errors": [[key, error]…], "status_code", "system_error"}`.
async fn external_data(client: &reqwest::Client, url: &str, arg: &Value, fault: Fault) -> anyhow::Result<Value> {
    let keys = arg["keys"].clone();
    let body = json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest", "request": {"keys": keys}});
    let response = client.post(url).json(&body).send().await?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await?;
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    for item in answer["response"]["items"].as_array().into_iter().flatten() {
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
    Ok(json!({
        "responses": responses,
        "errors": errors,
        "status_code": status,
        "system_error": answer["response"]["systemError"],
    }))
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
            "image registry.example/broken:v1 could not be verified: \
             registry unreachable for registry.example/broken:v1"
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
