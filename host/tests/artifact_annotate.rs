//! `cip annotate` / `cip inspect` on the real policy module and the repository's metadata.yml.

mod artifact_support;

use std::sync::Arc;

use artifact_support::{annotated_policy, policy_wasm, repo_file};
use cip::artifact::metadata::{ExecutionMode, Operation};
use cip::artifact::{ArtifactError, METADATA_SECTION, Metadata, annotate, read_metadata};
use cip::capabilities::Capabilities;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use kubewarden_policy_sdk::metadata::ProtocolVersion;

fn custom_sections(module: &[u8]) -> Vec<String> {
    wasmparser::Parser::new(0)
        .parse_all(module)
        .filter_map(|payload| match payload.expect("annotated module parses") {
            wasmparser::Payload::CustomSection(section) => Some(section.name().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn annotated_module_carries_metadata_yml_with_protocol_version_and_readme() {
    let (annotated, written) = annotated_policy();
    let read = read_metadata(annotated)
        .expect("annotated module parses")
        .expect("metadata section present");
    assert_eq!(&read, written);

    assert_eq!(read.protocol_version, Some(ProtocolVersion::V1));
    assert_eq!(read.execution_mode, ExecutionMode::KubewardenWapc);
    assert!(read.mutating && read.background_audit && !read.is_context_aware());
    let resources: Vec<&str> = read
        .rules
        .iter()
        .flat_map(|rule| &rule.resources)
        .map(String::as_str)
        .collect();
    for kind in [
        "pods",
        "pods/ephemeralcontainers",
        "replicationcontrollers",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
    ] {
        assert!(resources.contains(&kind), "metadata.yml has no rule for {kind}");
    }
    assert!(
        read.rules
            .iter()
            .all(|rule| rule.operations == [Operation::Create, Operation::Update])
    );
    assert_eq!(
        read.annotation("io.kubewarden.policy.version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        read.annotation("io.kubewarden.policy.usage"),
        Some("# Usage\n\nTest README.\n")
    );
    assert_eq!(
        read.annotation("io.kubewarden.policy.ociUrl"),
        Some("ghcr.io/cluster-image-policy/policies/cluster-image-policy")
    );
}

#[test]
fn metadata_json_uses_the_field_names_kubewarden_hosts_read() {
    let (annotated, _) = annotated_policy();
    let data = wasmparser::Parser::new(0)
        .parse_all(annotated)
        .find_map(|payload| match payload.expect("parses") {
            wasmparser::Payload::CustomSection(section) if section.name() == METADATA_SECTION => {
                Some(section.data().to_vec())
            }
            _ => None,
        })
        .expect("metadata section present");
    let json: serde_json::Value = serde_json::from_slice(&data).expect("section holds JSON");
    assert_eq!(json["protocolVersion"], "v1");
    assert_eq!(json["executionMode"], "kubewarden-wapc");
    assert_eq!(json["mutating"], true);
    assert_eq!(json["backgroundAudit"], true);
    assert!(
        json.get("contextAware").is_none(),
        "Kubewarden reads contextAwareResources only"
    );
    assert_eq!(
        json["hostCapabilities"],
        serde_json::json!([
            "oci/v1/manifest_digest",
            "oci/v1/oci_manifest",
            "oci/v1/oci_manifest_config",
            "oci/v2/verify"
        ])
    );
    assert_eq!(json["rules"][1]["apiGroups"][0], "apps");
    assert_eq!(
        json["annotations"]["io.kubewarden.policy.title"],
        "cluster-image-policy"
    );
}

#[test]
fn annotated_module_still_evaluates() {
    let (annotated, _) = annotated_policy();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let capabilities = Arc::new(Capabilities::without_registry(runtime.handle().clone()));
    let module = PolicyModule::from_bytes("annotated-policy.wasm", annotated).expect("wasmtime loads it");
    let evaluator = Evaluator::new(&module, capabilities, EvaluatorOptions::default()).expect("evaluator");

    assert_eq!(evaluator.protocol_version().expect("protocol_version"), "v1");
    let settings: serde_json::Value =
        serde_yaml::from_str(&repo_file("examples/signed-images.yaml")).expect("example settings parse");
    let accepted = evaluator.validate_settings(&settings).expect("validate_settings");
    assert!(accepted.valid, "{:?}", accepted.message);
    let refused = evaluator
        .validate_settings(&serde_json::json!({"noMatchPolicy": "sometimes"}))
        .expect("validate_settings");
    assert!(!refused.valid);
}

#[test]
fn annotating_an_annotated_module_replaces_its_metadata() {
    let (annotated, _) = annotated_policy();
    let (again, metadata) = annotate(annotated, &repo_file("metadata.yml"), None).expect("re-annotates");
    assert_eq!(
        custom_sections(&again)
            .iter()
            .filter(|name| *name == METADATA_SECTION)
            .count(),
        1
    );
    let read = read_metadata(&again).expect("parses").expect("metadata present");
    assert_eq!(read, metadata);
    // Without -u the usage of metadata.yml is kept, not the README of the first annotation.
    assert!(
        read.annotation("io.kubewarden.policy.usage")
            .is_some_and(|usage| usage.starts_with("Verifies the cosign signatures"))
    );
    // Everything but the metadata section is untouched: same code, same size give or take it.
    let original = policy_wasm();
    assert!(again.len() > original.len());
    assert_eq!(
        custom_sections(&original)
            .into_iter()
            .filter(|name| name != METADATA_SECTION)
            .collect::<Vec<_>>(),
        custom_sections(&again)
            .into_iter()
            .filter(|name| name != METADATA_SECTION)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_module_that_is_not_a_wapc_policy_is_refused() {
    let empty_module = b"\0asm\x01\0\0\0";
    let error = annotate(empty_module, &repo_file("metadata.yml"), None).expect_err("no waPC exports");
    assert!(matches!(error, ArtifactError::Protocol(_)), "{error}");
}

#[test]
fn invalid_metadata_is_refused_naming_every_problem() {
    let metadata = repo_file("metadata.yml")
        .replace("io.kubewarden.policy.title: cluster-image-policy", "")
        .replace(
            "operations: [\"CREATE\", \"UPDATE\"]\n  - apiGroups: [\"apps\"]",
            "operations: []\n  - apiGroups: [\"apps\"]",
        );
    let error = annotate(&policy_wasm(), &metadata, None)
        .expect_err("invalid metadata")
        .to_string();
    assert!(error.contains("rules[0].operations"), "{error}");
    assert!(error.contains("annotations.io.kubewarden.policy.title"), "{error}");

    let typo = repo_file("metadata.yml").replace("backgroundAudit:", "backgroundAudits:");
    let error = annotate(&policy_wasm(), &typo, None)
        .expect_err("unknown key")
        .to_string();
    assert!(error.contains("backgroundAudits"), "{error}");
}

#[test]
fn a_module_without_metadata_reads_as_none() {
    assert_eq!(read_metadata(&policy_wasm()).expect("parses"), None::<Metadata>);
}
