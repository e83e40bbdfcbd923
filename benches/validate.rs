//! Native figures for the module's own work in `validate` (no wasm, no host round trip): a Pod
//! with 10 containers under 20 ClusterImagePolicies, host answers served from memory.
//! `cargo bench -p cluster-image-policy`; the end-to-end figure through `cip` is `make bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cluster_image_policy::admission::validate;
use cluster_image_policy::host::{Capability, HostCalls, Memo};
use cluster_image_policy::settings::{Settings, SettingsCache};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Trusts every image, as a host with a warm verification cache does.
struct TrustingHost;

impl HostCalls for TrustingHost {
    fn call(&mut self, _: Capability, _: &[u8]) -> Result<Vec<u8>, String> {
        Ok(br#"{"is_trusted":true,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}"#.to_vec())
    }
}

/// Trusts every image and serves a signature manifest holding one genuine keyless layer (a
/// real P-256 signature, certificate and Rekor bundle), for the module's binding check.
struct KeylessHost {
    manifest: Vec<u8>,
}

impl KeylessHost {
    fn new(email: &str, issuer: &str) -> Self {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use p256::pkcs8::EncodePublicKey;

        let key = p256::ecdsa::SigningKey::from_slice(&[1; 32]).expect("key");
        let spki = key.verifying_key().to_public_key_der().expect("SPKI");
        let ca = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let ca = rcgen::Issuer::new(rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA"), ca);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .subject_alt_names
            .push(rcgen::SanType::Rfc822Name(email.try_into().expect("email")));
        params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
            issuer.as_bytes().to_vec(),
        ));
        let public = rcgen::SubjectPublicKeyInfo::from_der(spki.as_bytes()).expect("SPKI");
        let cert = params.signed_by(&public, &ca).expect("certificate").pem();
        let digest: [u8; 32] = Sha256::digest(b"payload").into();
        let signature: p256::ecdsa::Signature = key.sign_prehash(&digest).expect("sign");
        let signature = STANDARD.encode(signature.to_der().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let body = json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex}},
            "signature": {"content": signature, "publicKey": {"content": STANDARD.encode(&cert)}}}});
        let bundle = json!({"SignedEntryTimestamp": "", "Payload": {"body": STANDARD.encode(body.to_string()),
            "integratedTime": 1, "logIndex": 1, "logID": "00"}});
        let manifest = json!({"schemaVersion": 2, "layers": [{"digest": format!("sha256:{hex}"), "annotations": {
            "dev.cosignproject.cosign/signature": signature,
            "dev.sigstore.cosign/certificate": cert,
            "dev.sigstore.cosign/bundle": bundle.to_string()}}]});
        Self {
            manifest: manifest.to_string().into_bytes(),
        }
    }
}

impl HostCalls for KeylessHost {
    fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
        if capability.operation == "v1/oci_manifest" {
            Ok(self.manifest.clone())
        } else {
            TrustingHost.call(capability, payload)
        }
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
    if std::env::var_os("BENCH_PARSE_LAZY_ONLY").is_some() {
        // For a profiler: only what `validate` reads of the settings.
        let text = settings.to_string();
        for _ in 0..100_000 {
            assert!(black_box(Settings::parse_lazy(&text)).is_ok());
        }
        return;
    }
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
        if containers == 10 && std::env::var_os("BENCH_VALIDATE_CACHED_ONLY").is_some() {
            // For a profiler: the warm path (settings cached), 10 covered images.
            for _ in 0..50_000 {
                let response = validate(payload.as_bytes(), &mut cache, &mut Memo::new(TrustingHost));
                assert!(black_box(response).accepted);
            }
            return;
        }
        measure(
            &format!("validate, {containers} containers, settings cached"),
            2000,
            || {
                let response = validate(payload.as_bytes(), &mut cache, &mut Memo::new(TrustingHost));
                assert!(black_box(response).accepted);
            },
        );
    }
    // Keyless: every image is checked by the module's binding defence after the host's answer.
    let issuer = "https://accounts.google.com";
    let policies: Vec<_> = (0..20)
        .map(|i| {
            json!({"metadata": {"name": format!("team{i}-policy")}, "spec": {
                "images": [{"glob": format!("registry.internal:5000/team{i}/**")}],
                "authorities": [{"name": "ci", "keyless": {"identities": [
                    {"issuer": issuer, "subject": format!("ci{i}@example.com")}]}}]}})
        })
        .collect();
    let keyless_settings = json!({"policies": policies});
    for containers in [1usize, 10] {
        let list: Vec<_> = (0..containers)
            .map(|i| json!({"name": format!("c{i}"), "image": format!("registry.internal:5000/team0/app:v{i}")}))
            .collect();
        let payload = json!({"request": {"kind": {"kind": "Pod"}, "resource": {"version": "v1", "resource": "pods"},
            "namespace": "production", "object": {"metadata": {"name": "bench"}, "spec": {"containers": list}}},
            "settings": keyless_settings})
        .to_string();
        let mut host = KeylessHost::new("ci0@example.com", issuer);
        let mut cache = SettingsCache::default();
        // A warm instance remembers the signatures it verified (src/crypto/memo.rs); a fresh
        // one, as Kubewarden's policy-server gives every evaluation, verifies them again.
        for (remembered, what) in [
            (true, "signature outcomes remembered"),
            (false, "memo emptied before each evaluation"),
        ] {
            measure(
                &format!("validate, {containers} keyless images, binding checked, {what}"),
                500,
                || {
                    if !remembered {
                        cluster_image_policy::crypto::memo::forget();
                    }
                    let response = validate(payload.as_bytes(), &mut cache, &mut Memo::new(&mut host));
                    assert!(black_box(response).accepted);
                },
            );
        }
    }

    let text = settings.to_string();
    measure("Settings::parse, 20 policies", 2000, || {
        assert!(black_box(Settings::parse(&text)).is_ok());
    });
    measure("Settings::parse_lazy, 20 policies (what validate reads)", 2000, || {
        assert!(black_box(Settings::parse_lazy(&text)).is_ok());
    });
    measure("Settings::check_material, 20 policies", 200, || {
        let parsed = Settings::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(black_box(parsed.check_material()).is_ok());
    });
}
