//! Every settings block shipped in deploy/kubewarden/ and examples/ passes the real policy's
//! `validate_settings`, and every ClusterAdmissionPolicy is deployable as the metadata says.

mod artifact_support;

use std::path::PathBuf;
use std::sync::Arc;

use artifact_support::{policy_wasm_path, repo_file, repo_root};
use cip::artifact::Metadata;
use cip::capabilities::Capabilities;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use serde::Deserialize as _;
use serde_json::Value;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display())))
        .collect()
}

/// `(file, ClusterAdmissionPolicy)` for every policy in deploy/kubewarden/.
fn cluster_admission_policies() -> Vec<(PathBuf, Value)> {
    yaml_files("deploy/kubewarden")
        .into_iter()
        .flat_map(|path| documents(&path).into_iter().map(move |doc| (path.clone(), doc)))
        .filter(|(_, doc)| doc["kind"] == "ClusterAdmissionPolicy")
        .collect()
}

fn evaluator(runtime: &tokio::runtime::Runtime) -> Evaluator {
    let module = PolicyModule::from_file(policy_wasm_path()).expect("wasmtime loads the policy");
    let capabilities = Arc::new(Capabilities::without_registry(runtime.handle().clone()));
    Evaluator::new(&module, capabilities, EvaluatorOptions::default()).expect("evaluator")
}

#[test]
fn every_shipped_settings_block_passes_validate_settings() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let evaluator = evaluator(&runtime);
    let mut checked = Vec::new();
    for (path, policy) in cluster_admission_policies() {
        checked.push((path, policy["spec"]["settings"].clone()));
    }
    for path in yaml_files("examples") {
        let mut docs = documents(&path);
        assert_eq!(docs.len(), 1, "{} holds one settings document", path.display());
        checked.push((path, docs.remove(0)));
    }
    assert!(
        checked.len() >= 10,
        "expected 5 scenarios in deploy/ and examples/, found {}",
        checked.len()
    );
    for (path, settings) in checked {
        let answer = evaluator
            .validate_settings(&settings)
            .unwrap_or_else(|e| panic!("{}: validate_settings failed: {e}", path.display()));
        assert!(
            answer.valid,
            "{}: settings refused by the policy: {}",
            path.display(),
            answer.message.unwrap_or_default()
        );
    }
}

#[test]
fn cluster_admission_policies_match_the_examples_and_the_metadata() {
    let metadata = Metadata::from_yaml(&repo_file("metadata.yml")).expect("metadata.yml parses");
    let rules = serde_json::to_value(&metadata.rules).expect("rules serialise");
    let module = format!(
        "registry://ghcr.io/cluster-image-policy/policies/cluster-image-policy:v{}",
        env!("CARGO_PKG_VERSION")
    );
    let policies = cluster_admission_policies();
    let scenarios: Vec<String> = policies
        .iter()
        .filter_map(|(path, _)| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .collect();
    // Each scenario: the mutating policy (pins digests), then its validating twin.
    let twice = |name: &str| [name.to_string(), name.to_string()];
    assert_eq!(
        scenarios,
        [
            twice("allow-system-images"),
            twice("key-rotation"),
            twice("keyless"),
            twice("namespace-specific"),
            twice("signed-images")
        ]
        .concat()
    );
    for pair in policies.chunks(2) {
        let [(path, policy), (_, twin)] = pair else {
            unreachable!("checked above")
        };
        let spec = &policy["spec"];
        let file = path.display();
        assert_eq!(policy["apiVersion"], "policies.kubewarden.io/v1", "{file}");
        assert_eq!(spec["module"], module.as_str(), "{file}");
        assert_eq!(spec["mutating"], true, "{file}");
        assert_eq!(spec["backgroundAudit"], true, "{file}");
        assert_eq!(spec["rules"], rules, "{file}: rules differ from metadata.yml");
        let example = repo_root().join("examples").join(path.file_name().expect("file name"));
        let example = documents(&example).remove(0);
        assert_eq!(spec["settings"], example, "{file}: settings differ from examples/");
        assert_eq!(
            spec["settings"]["modifyImagesWithDigest"], true,
            "{file}: the mutating policy pins"
        );

        // The twin decides the object as stored, after every mutating webhook: the same policy
        // but validating, not pinning, and leaving the background audit to the first.
        let name = policy["metadata"]["name"].as_str().expect("name");
        assert_eq!(twin["metadata"]["name"], format!("{name}-validating"), "{file}");
        let mut expected = policy.clone();
        expected["metadata"]["name"] = twin["metadata"]["name"].clone();
        expected["spec"]["mutating"] = false.into();
        expected["spec"]["backgroundAudit"] = false.into();
        expected["spec"]["settings"]["modifyImagesWithDigest"] = false.into();
        assert_eq!(
            twin, &expected,
            "{file}: the validating twin differs from the policy beyond what it must"
        );
    }
}
