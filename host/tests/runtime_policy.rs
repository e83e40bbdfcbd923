//! The runtime with the real policy module (`make policy.wasm`): settings validation, `validate`
//! and `verify_images` with static authorities (no host calls).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cip::capabilities::Capabilities;
use cip::runtime::{Evaluator, EvaluatorOptions, ImageKey, PolicyModule, Verdict};
use serde_json::{Value, json};

fn policy_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm");
    assert!(
        path.exists(),
        "{} is missing: build it with `make policy.wasm` \
         (cargo build -p cluster-image-policy --target wasm32-wasip1 --profile policy)",
        path.display()
    );
    path
}

fn evaluator() -> &'static (tokio::runtime::Runtime, Evaluator) {
    static EVALUATOR: OnceLock<(tokio::runtime::Runtime, Evaluator)> = OnceLock::new();
    EVALUATOR.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let module = PolicyModule::from_file(policy_path()).expect("the policy compiles");
        let caps = Arc::new(Capabilities::without_registry(runtime.handle().clone()));
        let evaluator = Evaluator::new(&module, caps, EvaluatorOptions::default()).expect("evaluator");
        (runtime, evaluator)
    })
}

fn settings() -> Value {
    let text = include_str!("fixtures/static-settings.yaml");
    serde_yaml::from_str(text).expect("settings fixture")
}

fn pod(image: &str) -> Value {
    let mut request: Value = serde_json::from_str(include_str!("fixtures/pod-library.json")).expect("pod fixture");
    request["object"]["spec"]["containers"][0]["image"] = json!(image);
    request
}

#[test]
fn speaks_kubewarden_protocol_v1() {
    assert_eq!(evaluator().1.protocol_version().expect("protocol_version"), "v1");
}

#[test]
fn validate_settings_accepts_good_settings_and_explains_bad_ones() {
    let evaluator = &evaluator().1;
    let good = evaluator.validate_settings(&settings()).expect("validate_settings");
    assert!(good.valid, "{:?}", good.message);
    let bad = evaluator
        .validate_settings(&json!({"policies": [{"kind": "ClusterImagePolicy", "spec": {"images": "nope"}}]}))
        .expect("validate_settings");
    assert!(!bad.valid);
    assert!(bad.message.is_some_and(|m| !m.is_empty()));
}

#[test]
fn validate_allows_and_denies_with_static_authorities() {
    let evaluator = &evaluator().1;
    let (allowed, stats) = evaluator
        .validate_with_stats(&pod("docker.io/library/nginx:1.27"), &settings())
        .expect("validate");
    assert!(allowed.accepted, "{:?}", allowed.message);
    assert_eq!(stats.host_calls, 0, "static authorities make no host call");

    let denied = evaluator
        .validate(&pod("evil.example.com/miner:v1"), &settings())
        .expect("validate");
    assert!(!denied.accepted);
    let message = denied.message.unwrap_or_default();
    assert!(message.contains("evil.example.com/miner:v1"), "{message}");
    assert!(message.contains("block-evil"), "{message}");
    assert!(message.contains("blocked by policy"), "{message}");
}

#[test]
fn verify_images_gives_one_verdict_per_image_in_order() {
    let evaluator = &evaluator().1;
    let keys: Vec<ImageKey> = [
        "docker.io/library/nginx:1.27",
        "evil.example.com/miner:v1",
        "Not A Reference",
    ]
    .into_iter()
    .map(|image| ImageKey::new(image, "default"))
    .collect();
    let verdicts = evaluator.verify_images(&settings(), &keys).expect("verify_images");
    let got: Vec<(&str, Verdict)> = verdicts.iter().map(|v| (v.image.as_str(), v.verdict)).collect();
    assert_eq!(
        got,
        vec![
            ("docker.io/library/nginx:1.27", Verdict::Allow),
            ("evil.example.com/miner:v1", Verdict::Deny),
            ("Not A Reference", Verdict::Deny),
        ]
    );
    let evil = &verdicts[1];
    assert_eq!(evil.policies[0].name, "block-evil");
    assert!(!evil.policies[0].authorities[0].passed);
    assert_eq!(
        evil.policies[0].authorities[0].reason.as_deref(),
        Some("blocked by policy")
    );
}

#[test]
fn warm_evaluations_reuse_instances() {
    let evaluator = &evaluator().1;
    let request = pod("docker.io/library/nginx:1.27");
    evaluator.validate_with_stats(&request, &settings()).expect("first");
    let (_, stats) = evaluator.validate_with_stats(&request, &settings()).expect("second");
    assert!(!stats.fresh_instance);
}
