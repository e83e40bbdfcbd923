//! Shared fixtures of the end-to-end suite: the real `policy.wasm` compiled once per test
//! binary, the article's ClusterImagePolicies with real keys and a loopback registry, a `cip`
//! host (library) wired to that registry, admission requests for every workload kind, and a
//! runner for the `cip` binary.
//!
//! Every test starts its own `docker-registry` (testkit's `Registry`, stopped and deleted on
//! drop, also when the test panics), so tests run in parallel without sharing state.

#![allow(dead_code, reason = "each test binary uses its own subset of the fixtures")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::capabilities::Capabilities;
use cip::registry::Sources;
use cip::runtime::{Evaluator, EvaluatorOptions, ImageKey, ImageVerdict, PolicyModule};
use cip::trust::TrustRoot;
use cip::verify::{Verifier, VerifierConfig};
use serde_json::{Value, json};

/// The placeholder registry of the article's policies.
pub const ARTICLE_REGISTRY: &str = "myregistry.com";

/// Where the workspace lives (the e2e crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The policy module under test: `$CIP_POLICY_WASM` (set by the Makefile to the wasm-opt'd
/// `policy.wasm`), else the cargo build output.
pub fn policy_wasm_path() -> PathBuf {
    let path = std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || workspace_root().join("target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the policy module {} is missing: build it with `make policy.wasm` or \
         `cargo build -p cluster-image-policy --target wasm32-wasip1 --profile policy` \
         (or point CIP_POLICY_WASM at it)",
        path.display()
    );
    path
}

/// The policy module, compiled once per test binary (seconds in a debug build).
pub fn policy_module() -> PolicyModule {
    static MODULE: OnceLock<PolicyModule> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let path = policy_wasm_path();
            PolicyModule::from_file(&path).unwrap_or_else(|e| panic!("compiling {}: {e}", path.display()))
        })
        .clone()
}

/// The text of one of the article's ClusterImagePolicies, verbatim.
pub fn article(name: &str) -> String {
    let path = workspace_root().join(format!("src/testdata/article/{name}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Moves an article policy onto the test registry: `myregistry.com` becomes `registry_host`.
pub fn on_registry(yaml: &str, registry_host: &str) -> String {
    yaml.replace(ARTICLE_REGISTRY, registry_host)
}

/// Settings JSON made of CIP documents (YAML, as users paste them) plus top-level fields.
pub fn settings(cips: &[String], extra: Value) -> Value {
    let policies: Vec<Value> = cips
        .iter()
        .map(|y| serde_yaml::from_str(y).unwrap_or_else(|e| panic!("invalid YAML ({e}):\n{y}")))
        .collect();
    let mut settings = json!({ "policies": policies });
    if let (Some(s), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    settings
}

/// How the `cip` host of a test is configured.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Registries reached over plain HTTP (`127.0.0.1:PORT`).
    pub insecure: Vec<String>,
    /// Fulcio CAs and Rekor keys for keyless signatures.
    pub trust: Option<TrustRoot>,
    /// Bound of one registry round trip.
    pub registry_timeout: Duration,
    /// Bound of one guest call.
    pub evaluation_timeout: Duration,
}

impl HostOptions {
    /// Plain HTTP to `registry_host`, short timeouts so nothing in the suite can hang.
    pub fn for_registry(registry_host: &str) -> Self {
        Self {
            insecure: vec![registry_host.to_owned()],
            trust: None,
            registry_timeout: Duration::from_secs(1),
            evaluation_timeout: Duration::from_secs(2),
        }
    }

    /// Adds a sigstore trust config (ClientTrustConfig JSON).
    pub fn with_trust_config(mut self, trust_config_json: &str) -> Self {
        self.trust = Some(
            TrustRoot::from_json(trust_config_json)
                .unwrap_or_else(|e| panic!("the test trust config is refused by cip: {e}")),
        );
        self
    }
}

/// A `cip` host built from the library, as `cip run` builds it: verifier, capabilities,
/// evaluator of the real module.
pub struct Host {
    // Field order is drop order: the evaluator goes before the runtime its host calls use.
    evaluator: Evaluator,
    runtime: tokio::runtime::Runtime,
}

impl Host {
    /// A fresh host (empty caches) with `options`.
    pub fn new(options: HostOptions) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("starting a tokio runtime: {e}"));
        let config = VerifierConfig {
            sources: Sources {
                insecure_sources: options.insecure,
                ..Sources::default()
            },
            trust: options.trust,
            registry_timeout: options.registry_timeout,
            ..VerifierConfig::default()
        };
        let verifier = Verifier::new(config).unwrap_or_else(|e| panic!("building the verifier: {e}"));
        let capabilities = Arc::new(Capabilities::new(Arc::new(verifier), runtime.handle().clone()));
        let evaluator = Evaluator::new(
            &policy_module(),
            capabilities,
            EvaluatorOptions {
                timeout: options.evaluation_timeout,
                ..EvaluatorOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("preparing the evaluator: {e}"));
        Self { evaluator, runtime }
    }

    /// A host reaching `registry_host` over plain HTTP.
    pub fn for_registry(registry_host: &str) -> Self {
        Self::new(HostOptions::for_registry(registry_host))
    }

    /// A host configured with no registry at all (policies without authorities).
    pub fn offline() -> Self {
        Self::new(HostOptions {
            insecure: Vec::new(),
            ..HostOptions::for_registry("")
        })
    }

    /// The module's `validate_settings`: `Ok(())` or the refusal message.
    pub fn validate_settings(&self, settings: &Value) -> Result<(), String> {
        let answer = self
            .evaluator
            .validate_settings(settings)
            .unwrap_or_else(|e| panic!("validate_settings could not run: {e}"));
        if answer.valid {
            Ok(())
        } else {
            Err(answer.message.unwrap_or_default())
        }
    }

    /// The module's `validate` on an AdmissionRequest; the settings must be valid.
    pub fn validate(&self, request: &Value, settings: &Value) -> Response {
        self.validate_counting(request, settings).0
    }

    /// The module's `verify_images` export (what `cip verify` and the Gatekeeper provider use).
    pub fn verify_images(&self, settings: &Value, items: &[(&str, &str)]) -> Vec<ImageVerdict> {
        let items: Vec<ImageKey> = items
            .iter()
            .map(|(image, namespace)| ImageKey::new(*image, *namespace))
            .collect();
        self.evaluator
            .verify_images(settings, &items)
            .unwrap_or_else(|e| panic!("verify_images could not run: {e}"))
    }

    /// [`Host::validate`] with the number of host calls it made and whether a fresh instance
    /// served it.
    pub fn validate_counting(&self, request: &Value, settings: &Value) -> (Response, u32, bool) {
        if let Err(message) = self.validate_settings(settings) {
            panic!("the test settings are refused: {message}\n{settings:#}");
        }
        self.validate_unchecked_counting(request, settings)
    }

    /// The module's `validate`, without checking the settings first.
    pub fn validate_unchecked(&self, request: &Value, settings: &Value) -> Response {
        self.validate_unchecked_counting(request, settings).0
    }

    /// [`Host::validate_unchecked`] with the number of host calls it made and whether a fresh
    /// instance served it.
    fn validate_unchecked_counting(&self, request: &Value, settings: &Value) -> (Response, u32, bool) {
        let (response, stats) = self
            .evaluator
            .validate_with_stats(request, settings)
            .unwrap_or_else(|e| panic!("validate could not run: {e}"));
        let response = serde_json::to_value(response).unwrap_or_else(|e| panic!("serialising a response: {e}"));
        (Response(response), stats.host_calls, stats.fresh_instance)
    }
}

/// The module's answer, as JSON for easy assertions and readable failure output.
#[derive(Clone, Debug)]
pub struct Response(pub Value);

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl Response {
    /// Whether the request is admitted.
    pub fn accepted(&self) -> bool {
        self.0["accepted"] == json!(true)
    }

    /// The refusal message ("" when there is none).
    pub fn message(&self) -> &str {
        self.0["message"].as_str().unwrap_or_default()
    }

    /// The warnings shown to the user.
    pub fn warnings(&self) -> Vec<String> {
        self.0["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The mutated object, if the policy changed the workload.
    pub fn mutated(&self) -> Option<&Value> {
        self.0.get("mutated_object").filter(|v| !v.is_null())
    }

    /// Asserts admission without warnings or refusal.
    #[track_caller]
    pub fn assert_admitted(&self, what: &str) {
        assert!(self.accepted(), "{what}: expected admission, got {self}");
    }

    /// Asserts refusal; returns the message.
    #[track_caller]
    pub fn assert_refused(&self, what: &str) -> &str {
        assert!(!self.accepted(), "{what}: expected a refusal, got {self}");
        self.message()
    }
}

/// A workload kind and where its pod spec lives.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadKind {
    /// `kind` of the object.
    pub kind: &'static str,
    /// API group ("" for core).
    pub group: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
    /// JSON pointer of the pod spec inside the object.
    pub pod_spec: &'static str,
}

/// Every workload kind the policy checks.
pub const WORKLOAD_KINDS: [WorkloadKind; 8] = [
    WorkloadKind {
        kind: "Pod",
        group: "",
        resource: "pods",
        pod_spec: "/spec",
    },
    WorkloadKind {
        kind: "Deployment",
        group: "apps",
        resource: "deployments",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        kind: "ReplicaSet",
        group: "apps",
        resource: "replicasets",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        kind: "StatefulSet",
        group: "apps",
        resource: "statefulsets",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        kind: "DaemonSet",
        group: "apps",
        resource: "daemonsets",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        kind: "Job",
        group: "batch",
        resource: "jobs",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        kind: "CronJob",
        group: "batch",
        resource: "cronjobs",
        pod_spec: "/spec/jobTemplate/spec/template/spec",
    },
    WorkloadKind {
        kind: "ReplicationController",
        group: "",
        resource: "replicationcontrollers",
        pod_spec: "/spec/template/spec",
    },
];

/// Images of a pod spec by container list.
#[derive(Clone, Debug, Default)]
pub struct PodImages<'a> {
    /// `initContainers`.
    pub init: &'a [&'a str],
    /// `containers`.
    pub containers: &'a [&'a str],
    /// `ephemeralContainers`.
    pub ephemeral: &'a [&'a str],
}

fn container_list(prefix: &str, images: &[&str]) -> Value {
    Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("{prefix}{i}"), "image": image}))
            .collect(),
    )
}

/// A CREATE AdmissionRequest for a `kind` object named `name` in `namespace`.
pub fn workload_request(kind: &WorkloadKind, namespace: &str, name: &str, images: &PodImages<'_>) -> Value {
    let mut spec = json!({ "containers": container_list("c", images.containers) });
    if !images.init.is_empty() {
        spec["initContainers"] = container_list("init", images.init);
    }
    if !images.ephemeral.is_empty() {
        spec["ephemeralContainers"] = container_list("debug", images.ephemeral);
    }
    let mut object = json!({
        "apiVersion": if kind.group.is_empty() { "v1".to_owned() } else { format!("{}/v1", kind.group) },
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": namespace},
    });
    // Build the nesting down to the pod spec ("/spec/template/spec" …).
    let mut slot = &mut object;
    for segment in kind.pod_spec.trim_start_matches('/').split('/') {
        slot = &mut slot[segment];
    }
    *slot = spec;
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": kind.group, "version": "v1", "kind": kind.kind},
        "resource": {"group": kind.group, "version": "v1", "resource": kind.resource},
        "name": name,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": "e2e"},
        "object": object,
        "dryRun": false,
    })
}

/// A Pod `test` in `namespace` running `images` as its containers.
pub fn pod(namespace: &str, images: &[&str]) -> Value {
    workload_request(
        &WORKLOAD_KINDS[0],
        namespace,
        "test",
        &PodImages {
            containers: images,
            ..PodImages::default()
        },
    )
}

/// The image of container `index` of `list` in an object whose pod spec is at `pod_spec`.
pub fn image_at<'a>(object: &'a Value, pod_spec: &str, list: &str, index: usize) -> Option<&'a str> {
    object
        .pointer(&format!("{pod_spec}/{list}/{index}/image"))
        .and_then(Value::as_str)
}

/// Runs `f` and fails the test if it took longer than `bound`: a guard against calls that
/// outlive their configured timeouts, not a speed test.
#[track_caller]
pub fn within<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(
        took <= bound,
        "{what} took {took:?}, more than the {bound:?} hang guard"
    );
    out
}

/// The `cip` binary built by `cargo build -p cip` (or `$CIP_BIN`).
pub fn cip_binary() -> PathBuf {
    let path = std::env::var_os("CIP_BIN").map_or_else(|| workspace_root().join("target/debug/cip"), PathBuf::from);
    assert!(
        path.is_file(),
        "the cip binary {} is missing: build it with `cargo build -p cip` (or point CIP_BIN at it)",
        path.display()
    );
    path
}

/// Longest a `cip run` may take before it is killed and the test fails (a hang guard).
const CIP_RUN_HANG_GUARD: Duration = Duration::from_secs(60);

/// What one `cip run` printed and how it exited.
#[derive(Debug)]
pub struct CipRun {
    /// Exit status code.
    pub code: Option<i32>,
    /// The AdmissionResponse JSON printed on stdout (`Null` if stdout was not JSON).
    pub response: Value,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
}

impl CipRun {
    /// The decoded JSON Patch of the response (empty when none).
    pub fn patch(&self) -> anyhow::Result<Vec<Value>> {
        match self.response.get("patch") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(encoded)) => {
                let bytes = BASE64.decode(encoded).context("the patch is not base64")?;
                serde_json::from_slice(&bytes).context("the patch is not a JSON array")
            }
            Some(other) => bail!("the patch is not a string: {other}"),
        }
    }
}

/// Runs `cip run` on `request` with `settings`, reaching `registry_host` over plain HTTP,
/// with a sigstore trust config when given. Files go to a temporary directory removed after.
pub fn cip_run(request: &Value, settings: &Value, registry_host: &str, trust_config: Option<&str>) -> CipRun {
    cip_run_with(request, settings, registry_host, trust_config, &[])
}

/// [`cip_run`] with more `cip run` options (`options`, before the module).
pub fn cip_run_with(
    request: &Value,
    settings: &Value,
    registry_host: &str,
    trust_config: Option<&str>,
    options: &[&str],
) -> CipRun {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    };
    let request_path = write("request.json", request.to_string());
    let settings_path = write("settings.json", settings.to_string());
    let sources_path = write("sources.yaml", format!("insecure_sources: [\"{registry_host}\"]\n"));
    let mut command = Command::new(cip_binary());
    command
        .arg("run")
        .arg("--request-path")
        .arg(&request_path)
        .arg("--settings-path")
        .arg(&settings_path)
        .arg("--sources-path")
        .arg(&sources_path);
    if let Some(trust) = trust_config {
        command
            .arg("--sigstore-trust-config")
            .arg(write("trust.json", trust.to_owned()));
    }
    command.args(options).arg(policy_wasm_path());
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let file = |path: &Path| std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    command.stdout(file(&stdout_path)).stderr(file(&stderr_path));
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", cip_binary().display()));
    let deadline = Instant::now() + CIP_RUN_HANG_GUARD;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // Best effort: the process may exit between the check and the kill.
                let _ = child.kill();
                let _ = child.wait();
                panic!("cip run did not finish within {CIP_RUN_HANG_GUARD:?}: killed");
            }
            Err(e) => panic!("waiting for cip run: {e}"),
        }
    };
    let read =
        |path: &Path| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let stdout = read(&stdout_path);
    CipRun {
        code: status.code(),
        response: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: read(&stderr_path),
    }
}
