//! The `oci/v1/oci_manifest_config` answers kept by the verifier stay under `--cache-max-bytes`.
//!
//! A config is read up to 1 MiB of JSON and parsed into a value several times that; the cache
//! kept 10,000 of them whatever their size, so a registry serving many distinct images could
//! make it hold gigabytes. Each answer is now weighed (its estimated bytes) and the cache keeps
//! at most `cache_max_bytes` of them: here eight distinct configs of about 100 KiB each through a
//! 300 KiB budget, then one config over the whole budget, answered but not kept.

mod capability_host;

use std::time::Duration;

use capability_host::runtime;
use cip::registry::Sources;
use cip::verify::{Verifier, VerifierConfig};

const BUDGET: u64 = 300 * 1024;

/// A JSON config of `size` bytes naming `seed`.
fn config_of(seed: usize, size: usize) -> Vec<u8> {
    let head = format!("{{\"seed\":{seed},\"pad\":\"");
    let pad = "x".repeat(size - head.len() - 2);
    format!("{head}{pad}\"}}").into_bytes()
}

#[test]
fn config_answers_kept_by_the_verifier_stay_under_the_byte_budget() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let h = registry.host();
    let verifier = Verifier::new(VerifierConfig {
        sources: Sources {
            insecure_sources: vec![h.clone()],
            ..Sources::default()
        },
        registry_timeout: Duration::from_secs(10),
        cache_max_bytes: BUDGET,
        success_ttl: Duration::from_secs(600),
        failure_ttl: Duration::from_secs(600),
        ..VerifierConfig::default()
    })
    .expect("verifier");
    let rt = runtime();
    let push = |seed: usize, size: usize| {
        let config = config_of(seed, size);
        assert_eq!(config.len(), size);
        let digest = testkit::push_artifact(&h, "team/app", &format!("v{seed}"), "app", &config, "application/json")
            .expect("artifact pushed");
        format!("{h}/team/app@{digest}")
    };

    for seed in 0..8 {
        let image = push(seed, 100 * 1024);
        let answer = rt.block_on(verifier.oci_manifest_config(&image)).expect("answered");
        assert_eq!(answer.config["seed"], seed);
        let (_, configs) = rt.block_on(verifier.oci_answer_cache_bytes());
        assert!(configs <= BUDGET, "{configs} bytes kept after config {seed}");
    }
    let (_, configs) = rt.block_on(verifier.oci_answer_cache_bytes());
    assert!(
        configs > 100 * 1024,
        "configs within the budget are kept ({configs} bytes)"
    );

    let heavy = push(100, 400 * 1024);
    for _ in 0..2 {
        let answer = rt.block_on(verifier.oci_manifest_config(&heavy)).expect("answered");
        assert_eq!(answer.config["seed"], 100);
        let (_, configs) = rt.block_on(verifier.oci_answer_cache_bytes());
        assert!(configs <= BUDGET, "{configs} bytes kept after the heavy config");
    }
}
