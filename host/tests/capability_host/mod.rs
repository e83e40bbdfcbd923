//! Shared set-up of the capability tests: the tokio runtime the tests drive `cip` with, and a
//! `Host` (a real loopback registry, a runtime and `Capabilities` over a `Verifier` reaching the
//! registry over plain HTTP) that dispatches a capability the way a policy's host call does.

#![allow(dead_code)]

use std::sync::Arc;

use cip::capabilities::Capabilities;
use cip::registry::Sources;
use cip::verify::{Verifier, VerifierConfig};

/// A multi-thread runtime: 2 workers, 16 MiB stacks, I/O and time enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The manifest `repo@reference` as `registry` stores it, asked for with `accept`, read on
/// `runtime`.
pub fn stored_manifest(
    runtime: &tokio::runtime::Runtime,
    registry: &testkit::Registry,
    repo: &str,
    reference: &str,
    accept: &str,
) -> Vec<u8> {
    let url = format!("{}/v2/{repo}/manifests/{reference}", registry.url());
    runtime.block_on(async {
        reqwest::Client::new()
            .get(&url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("manifest")
            .bytes()
            .await
            .expect("manifest body")
            .to_vec()
    })
}

/// A registry, a runtime and capabilities reaching the registry over plain HTTP.
pub struct Host {
    pub registry: testkit::Registry,
    pub runtime: tokio::runtime::Runtime,
    pub capabilities: Capabilities,
}

impl Host {
    pub fn start() -> Self {
        let registry = testkit::Registry::start().expect("docker-registry");
        let runtime = runtime();
        let verifier = Verifier::new(VerifierConfig {
            sources: Sources {
                insecure_sources: vec![registry.host()],
                ..Sources::default()
            },
            ..VerifierConfig::default()
        })
        .expect("verifier");
        let capabilities = Capabilities::new(Arc::new(verifier), runtime.handle().clone());
        Self {
            registry,
            runtime,
            capabilities,
        }
    }

    /// The registry's `host:port`.
    pub fn host(&self) -> String {
        self.registry.host()
    }

    /// `cip`'s answer to the `kubewarden/oci/<operation>` call about `image`: its bytes, or the
    /// error's text.
    pub fn dispatch_oci(&self, operation: &str, image: &str) -> Result<Vec<u8>, String> {
        let payload = serde_json::to_vec(image).expect("json");
        self.capabilities
            .dispatch("test", None, "kubewarden", "oci", operation, &payload)
            .map_err(|e| e.to_string())
    }

    /// The manifest `repo@reference` as the registry stores it, asked for with `accept`.
    pub fn stored_manifest(&self, repo: &str, reference: &str, accept: &str) -> Vec<u8> {
        stored_manifest(&self.runtime, &self.registry, repo, reference, accept)
    }
}
