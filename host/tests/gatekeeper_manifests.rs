//! The manifests in deploy/gatekeeper and deploy/prometheus parse as YAML and say what the
//! provider and the template expect (names, ports, parameters, metrics). Their schemas, the
//! timeouts and mTLS are checked by scripts/check-deploy.py (`make check-deploy`).

use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn documents(relative: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    let text = std::fs::read_to_string(&path)?;
    let mut docs = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| format!("{relative}: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

#[test]
fn constraints_split_deny_and_warn_verdicts() -> TestResult {
    let docs = documents("deploy/gatekeeper/constraints/constraints.yaml")?;
    let constraints = of_kind(&docs, "K8sClusterImagePolicy");
    let modes: Vec<(String, String, bool)> = constraints
        .iter()
        .map(|c| {
            (
                c["spec"]["enforcementAction"].as_str().unwrap_or_default().to_owned(),
                c["spec"]["parameters"]["verdicts"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                c["spec"]["parameters"]["reportErrors"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            ("deny".into(), "deny".into(), true),
            ("warn".into(), "warn".into(), false)
        ]
    );
    for constraint in constraints {
        let kinds: Vec<&str> = constraint["spec"]["match"]["kinds"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|k| k["kinds"].as_sequence().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        for kind in [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "CronJob",
            "ReplicationController",
        ] {
            assert!(kinds.contains(&kind), "{kind} not matched");
        }
    }
    Ok(())
}

#[test]
fn provider_points_at_the_service_over_https_within_gatekeepers_timeout() -> TestResult {
    let provider = documents("deploy/gatekeeper/provider.yaml")?;
    let spec = &of_kind(&provider, "Provider").first().ok_or("no Provider")?["spec"];
    assert_eq!(
        spec["url"].as_str(),
        Some("https://cip-provider.gatekeeper-system.svc:8443/validate")
    );
    let timeout = spec["timeout"].as_f64().ok_or("no timeout")?;
    assert!(timeout > 2.5 && timeout <= 3.0, "timeout {timeout}");

    let template = documents("deploy/gatekeeper/constraint-template.yaml")?;
    let rego = template[0]["spec"]["targets"][0]["rego"].as_str().unwrap_or_default();
    assert!(rego.contains(r#"object.get(params, "provider", "cip-provider")"#));

    let deployment = documents("deploy/gatekeeper/deployment.yaml")?;
    let service = of_kind(&deployment, "Service");
    let ports: Vec<i64> = service[0]["spec"]["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(ports, vec![8443, 9090]);
    let certificates = documents("deploy/gatekeeper/certificate.yaml")?;
    let names: Vec<&str> = of_kind(&certificates, "Certificate")
        .iter()
        .flat_map(|c| c["spec"]["dnsNames"].as_sequence().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"cip-provider.gatekeeper-system.svc"));
    Ok(())
}

#[test]
fn assigns_pin_every_container_image_of_a_pod_through_the_mutation_provider() -> TestResult {
    let provider = documents("deploy/gatekeeper/mutation/provider.yaml")?;
    let url = of_kind(&provider, "Provider").first().ok_or("no Provider")?["spec"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(url.contains("/mutate/"), "{url}");
    let docs = documents("deploy/gatekeeper/mutation/assign.yaml")?;
    let mut locations = Vec::new();
    for assign in of_kind(&docs, "Assign") {
        let spec = &assign["spec"];
        let external = &spec["parameters"]["assign"]["externalData"];
        assert_eq!(external["provider"].as_str(), provider[0]["metadata"]["name"].as_str());
        assert_eq!(external["dataSource"].as_str(), Some("ValueAtLocation"));
        assert_eq!(external["failurePolicy"].as_str(), Some("Fail"));
        assert_eq!(spec["applyTo"][0]["kinds"][0].as_str(), Some("Pod"));
        let location = spec["location"].as_str().ok_or("Assign without location")?;
        locations.push(location);
    }
    locations.sort_unstable();
    assert_eq!(
        locations,
        vec![
            "spec.containers[name:*].image",
            "spec.ephemeralContainers[name:*].image",
            "spec.initContainers[name:*].image",
        ]
    );
    Ok(())
}

#[test]
fn alerts_cover_the_provider_and_kubewarden() -> TestResult {
    let rules = documents("deploy/prometheus/prometheus-rule.yaml")?;
    let exprs: Vec<&str> = rules[0]["spec"]["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
        .filter_map(|r| r["expr"].as_str())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains(r#"increase(cluster_image_policy_validations_total{result="deny"}[5m])) > 0"#))
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains(r#"kubewarden_policy_evaluations_total{policy_name=~"clusterwide-cluster-image-policy-.*",accepted="false"}[5m])) > 0"#))
    );
    // Settings the provider refused (it keeps serving the previous ones) and replicas serving
    // different settings, both exported by host/src/provider/metrics.rs.
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("(cluster_image_policy_provider_settings_reload_failing) > 0"))
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("(cluster_image_policy_provider_settings_info)) > 1"))
    );
    // Verifications refused by the process-wide download pool (host/src/registry/bounded.rs).
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("increase(cluster_image_policy_provider_download_pool_refusals_total[10m])) > 0"))
    );
    // A new pod refusing its settings exits before serving metrics: its stopped rollout is seen
    // through kube-state-metrics only.
    assert!(exprs.iter().any(|e| e.contains(
        r#"kube_deployment_status_condition{namespace="gatekeeper-system",deployment="cip-provider",condition="Progressing",status="false"}"#
    )));
    Ok(())
}

/// Every instruction that reads the provider's CA out of its Secret first waits for the
/// cert-manager Certificate that writes that Secret: run right after `kubectl apply -k`, the
/// Secret does not exist yet, `CA` is empty and the Provider is applied with a bundle that
/// verifies nothing (found by a review: step 3 of docs/gatekeeper.md read it at once).
#[test]
fn the_provider_ca_is_read_only_after_its_certificate_is_ready() -> TestResult {
    let certificates = documents("deploy/gatekeeper/certificate.yaml")?;
    let certificate = of_kind(&certificates, "Certificate")
        .into_iter()
        .find(|c| c["spec"]["isCA"].as_bool() == Some(true))
        .ok_or("no CA Certificate")?;
    let name = certificate["metadata"]["name"].as_str().ok_or("unnamed Certificate")?;
    let secret = certificate["spec"]["secretName"].as_str().ok_or("no secretName")?;
    let namespace = certificate["metadata"]["namespace"].as_str().ok_or("no namespace")?;
    let read = format!("get secret {secret} ");
    let wait = format!("kubectl wait --for=condition=Ready certificate/{name} -n {namespace}");
    for file in [
        "docs/gatekeeper.md",
        "deploy/gatekeeper/provider.yaml",
        "deploy/gatekeeper/mutation/provider.yaml",
    ] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file))?;
        let mut reads = 0;
        for (at, _) in text.match_indices(&read) {
            reads += 1;
            let before = &text[..at];
            let waited = before.rfind(&wait).is_some_and(|w| {
                // The wait belongs to the same set of commands: no other read in between.
                !before[w..].contains(&read)
            });
            assert!(waited, "{file}: reads the Secret {secret} without `{wait}` before it");
        }
        assert!(reads > 0, "{file}: no longer reads {secret}? update this test");
    }
    Ok(())
}
