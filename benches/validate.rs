//! Native figures for the module's own work in `validate` (no wasm, no host round trip): a Pod
//! with 10 containers under 20 ClusterImagePolicies, host answers served from memory.
//! `cargo bench -p cluster-image-policy`; the end-to-end figure through `cip` is `make bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cluster_image_policy::admission::validate;
use cluster_image_policy::host::{Capability, HostCalls, Memo};
use cluster_image_policy::settings::{Settings, SettingsCache};
use serde_json::json;

/// Trusts every image, as a host with a warm verification cache does.
struct TrustingHost;

impl HostCalls for TrustingHost {
    fn call(&mut self, _: Capability, _: &[u8]) -> Result<Vec<u8>, String> {
        Ok(br#"{"is_trusted":true,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}"#.to_vec())
    }
}

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<45} min {:>9.1?}  median {:>9.1?}  p99 {:>9.1?}",
        pick(0.0),
        pick(0.5),
        pick(0.99)
    );
}

fn main() {
    let key = include_str!("../src/testdata/p256.pub");
    let policies: Vec<_> = (0..20)
        .map(|i| {
            json!({"metadata": {"name": format!("team{i}-policy")}, "spec": {
                "match": [{"namespaces": ["production", format!("team{i}-*")]}],
                "images": [{"glob": format!("registry.internal:5000/team{i}/**")},
                           {"glob": format!("registry.internal:5000/shared/team{i}-*")}],
                "authorities": [{"name": "previous-key", "key": {"data": key}}, {"name": "current-key", "key": {"data": key}}]}})
        })
        .collect();
    let settings = json!({"policies": policies});
    for containers in [1usize, 10, 50] {
        let list: Vec<_> = (0..containers)
            .map(|i| json!({"name": format!("c{i}"), "image": format!("registry.internal:5000/team{}/app:v{i}", i % 20)}))
            .collect();
        let payload = json!({"request": {"kind": {"kind": "Pod"}, "resource": {"version": "v1", "resource": "pods"},
            "namespace": "production", "object": {"metadata": {"name": "bench"}, "spec": {"containers": list}}},
            "settings": settings})
        .to_string();
        measure(
            &format!("validate, {containers} containers, settings parsed"),
            2000,
            || {
                let response = validate(
                    payload.as_bytes(),
                    &mut SettingsCache::default(),
                    &mut Memo::new(TrustingHost),
                );
                assert!(black_box(response).accepted);
            },
        );
        let mut cache = SettingsCache::default();
        measure(
            &format!("validate, {containers} containers, settings cached"),
            2000,
            || {
                let response = validate(payload.as_bytes(), &mut cache, &mut Memo::new(TrustingHost));
                assert!(black_box(response).accepted);
            },
        );
    }
    let text = settings.to_string();
    measure("Settings::parse, 20 policies", 2000, || {
        assert!(black_box(Settings::parse(&text)).is_ok());
    });
    measure("Settings::check_material, 20 policies", 200, || {
        let parsed = Settings::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(black_box(parsed.check_material()).is_ok());
    });
}
