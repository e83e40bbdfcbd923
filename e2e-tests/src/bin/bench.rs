//! `make bench`: the figures of the performance targets (issue 15), on real parts, in one run.
//!
//! Starts a loopback registry, publishes and signs 50 images (`team<i>/app:v1`), then for 1, 10
//! and 50 containers under 0, 1, 20 and 100 ClusterImagePolicies runs `cip bench` (the binary
//! next to this one, or `$CIP_BIN`) twice: with warm instances, and with a fresh instance per
//! evaluation (`--fresh-instances`, as Kubewarden's policy-server). After the warm-up every host
//! answer comes from `cip`'s caches, so the figures are those of the module and the host-call
//! path. Container `i` runs `team<i>/app:v1`; with `P` policies, policy `j` covers the teams
//! `i` with `i % P == j` (two key authorities, the first a key that signed nothing, as during
//! a key rotation), so every image is covered by exactly one policy and a policy beyond the
//! 50th covers nothing. With `BENCH_ROTATION=off` each policy has the current key only (one host
//! call per covered image instead of three: the rotated-out key's legacy and bundle look-ups
//! fail first; with `BENCH_STOCK=on`, as on a stock Kubewarden host, two: the rotated-out key's
//! legacy look-up fails, and the host is asked once per evaluation whether it reads bundles).
//! 0 policies is empty settings (`{}`: images covered by no policy are admitted with a warning).
//!
//! Then the `keyless` scenario: one container whose image a test Fulcio and Rekor signed for a
//! GitHub Actions workflow, under one keyless policy matching issuer and subject with regular
//! expressions (as the article writes it). Its host answer is cached too; the module still
//! compiles both expressions in each fresh instance and checks the layer's binding (an ECDSA
//! verification) in every evaluation.
//!
//! Last, `cip run` as a whole process on 10 containers × 20 policies: cold (empty compiled-module
//! cache) and warm (the module deserialised from the cache).
//!
//! For profiling (docs/benchmarks.md): `BENCH_ONLY=10x20` (or `keyless`) runs that scenario alone (and no
//! `cip run`), `BENCH_MODE=warm` or `fresh` only one of its two runs, and
//! `BENCH_WRAPPER="perf record -g -o perf.data --"` runs each `cip bench` under that command
//! (with `CIP_PROFILER=perfmap` for the module's function names).
//!
//! To compare modules on a noisy machine: `BENCH_MODULES=a.wasm:b.wasm` measures each scenario
//! with each module in turn, `BENCH_ROUNDS` times (rows tagged with the module's file name);
//! compare the smallest minimum of each. Or count instructions instead of time
//! (`scripts/count-instructions.sh`, which runs `cip` under valgrind with `BENCH_CACHE_DIR`, a
//! compiled-module cache kept between runs of one scenario).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const IMAGES: usize = 50;
const CONTAINERS: [usize; 3] = [1, 10, 50];
const POLICIES: [usize; 4] = [0, 1, 20, 100];
/// The identity of the keyless scenario's signature, and the patterns its policy matches it with.
const KEYLESS_ISSUER: &str = "https://token.actions.githubusercontent.com";
const KEYLESS_SUBJECT: &str = "https://github.com/myorg/app/.github/workflows/release.yml@refs/heads/main";
const KEYLESS_ISSUER_REGEXP: &str = r"https://token\.actions\.githubusercontent\.com";
const KEYLESS_SUBJECT_REGEXP: &str = r"https://github\.com/myorg/[^/]+/\.github/workflows/.*@refs/heads/main";

/// What one `cip bench` run of a scenario measured (`NaN` for a run not made).
#[derive(Clone, Copy)]
struct Run {
    /// Minimum and median of the evaluations, µs.
    min: f64,
    median: f64,
    /// Median time in host callbacks, µs.
    host: f64,
    /// Whether the request was accepted.
    accepted: bool,
    /// Minor page faults per evaluation.
    faults: f64,
}

impl Run {
    const SKIPPED: Self = Self {
        min: f64::NAN,
        median: f64::NAN,
        host: f64::NAN,
        accepted: false,
        faults: f64::NAN,
    };
}

struct Setup {
    cip: PathBuf,
    policy: PathBuf,
    host: String,
    key_pem: String,
    /// Each policy lists a rotated-out key before the current one (`BENCH_ROTATION`, default on).
    rotation: bool,
    /// `cip bench --kubewarden-capabilities-only`: the host-call path of a stock Kubewarden host
    /// (`BENCH_STOCK=on`).
    stock: bool,
    work: tempfile::TempDir,
    sources: PathBuf,
    /// The `ClientTrustConfig` of the test Fulcio and Rekor that signed `keyless/app`.
    trust: PathBuf,
    /// `cip`'s compiled-module cache: `$BENCH_CACHE_DIR` with `BENCH_ONLY`, else one of this
    /// run's own.
    cache: PathBuf,
}

impl Setup {
    fn write(&self, name: &str, value: &Value) -> Result<PathBuf> {
        let path = self.work.path().join(name);
        std::fs::write(&path, serde_json::to_vec(value)?)?;
        Ok(path)
    }

    fn settings(&self, policies: usize) -> Result<Value> {
        if policies == 0 {
            return Ok(json!({}));
        }
        let host = &self.host;
        let list = (0..policies)
            .map(|j| {
                let mut globs: Vec<Value> = (0..IMAGES)
                    .filter(|i| i % policies == j)
                    .map(|i| json!({"glob": format!("{host}/team{i}/**")}))
                    .collect();
                globs.push(json!({"glob": format!("{host}/shared/team{j}-*")}));
                let current = json!({"name": "current-key", "key": {"data": self.key_pem}});
                let authorities = if self.rotation {
                    let previous = testkit::KeyPair::ecdsa_p256()?.public_key_pem().to_owned();
                    vec![json!({"name": "previous-key", "key": {"data": previous}}), current]
                } else {
                    vec![current]
                };
                Ok(json!({
                    "apiVersion": "policy.sigstore.dev/v1beta1",
                    "kind": "ClusterImagePolicy",
                    "metadata": {"name": format!("policy-{j}")},
                    "spec": {
                        "match": [{"namespaces": ["production", format!("team{j}-*")]}],
                        "images": globs,
                        "authorities": authorities,
                        "mode": "enforce"
                    }
                }))
            })
            .collect::<Result<Vec<Value>>>()?;
        Ok(json!({"policies": list, "noMatchPolicy": "deny", "modifyImagesWithDigest": true}))
    }

    fn request(&self, containers: usize) -> Value {
        let list: Vec<Value> = (0..containers)
            .map(|i| json!({"name": format!("c{i}"), "image": format!("{}/team{i}/app:v1", self.host)}))
            .collect();
        json!({
            "uid": "bench",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "production",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "namespace": "production"},
                       "spec": {"containers": list}}
        })
    }

    /// A Pod running the keyless-signed image.
    fn keyless_request(&self) -> Value {
        let mut request = self.request(1);
        request["object"]["spec"]["containers"][0]["image"] = json!(format!("{}/keyless/app:v1", self.host));
        request
    }

    /// One keyless policy as the article writes it for GitHub Actions (issuer and subject as
    /// regular expressions): in a fresh instance both are compiled on every evaluation.
    fn keyless_settings(&self) -> Value {
        json!({"policies": [{
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "keyless-github-actions"},
            "spec": {
                "images": [{"glob": format!("{}/keyless/**", self.host)}],
                "authorities": [{"keyless": {
                    "url": "https://fulcio.sigstore.dev",
                    "identities": [{"issuerRegExp": KEYLESS_ISSUER_REGEXP, "subjectRegExp": KEYLESS_SUBJECT_REGEXP}]
                }}]
            }
        }], "noMatchPolicy": "deny"})
    }

    fn cip(&self) -> Command {
        let wrapper = std::env::var("BENCH_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(&self.cip);
                command
            }
            None => Command::new(&self.cip),
        };
        command.env("CIP_CACHE_DIR", &self.cache);
        command
    }

    /// `cip bench` on one scenario.
    fn bench(&self, module: &Path, request: &Path, settings: &Path, fresh: bool, iterations: &str) -> Result<Run> {
        let mut command = self.cip();
        command
            .args([
                "bench",
                "--output",
                "json",
                "--iterations",
                iterations,
                "--warmup",
                "20",
            ])
            .arg("--request-path")
            .arg(request)
            .arg("--settings-path")
            .arg(settings)
            .arg("--sources-path")
            .arg(&self.sources)
            .arg("--sigstore-trust-config")
            .arg(&self.trust);
        if fresh {
            command.arg("--fresh-instances");
        }
        if self.stock {
            command.arg("--kubewarden-capabilities-only");
        }
        let output = command.arg(module).output().context("running cip bench")?;
        if !output.status.success() {
            bail!("cip bench failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let report: Value = serde_json::from_slice(&output.stdout).context("cip bench --output json")?;
        let number = |part: &str, field: &str| report[part][field].as_f64().unwrap_or(f64::NAN);
        Ok(Run {
            min: number("evaluation", "min_us"),
            median: number("evaluation", "median_us"),
            host: number("host_callbacks", "median_us"),
            accepted: report["accepted"].as_bool().unwrap_or(false),
            faults: report["page_faults_per_evaluation"].as_f64().unwrap_or(f64::NAN),
        })
    }

    /// Wall-clock time of one `cip run` process.
    fn run_once(&self, request: &Path, settings: &Path) -> Result<Duration> {
        let started = Instant::now();
        let output = self
            .cip()
            .arg("run")
            .arg("--request-path")
            .arg(request)
            .arg("--settings-path")
            .arg(settings)
            .arg("--sources-path")
            .arg(&self.sources)
            .arg(&self.policy)
            .output()
            .context("running cip run")?;
        let spent = started.elapsed();
        if !output.status.success() {
            bail!("cip run failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(spent)
    }
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policy = std::env::var_os("CIP_POLICY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("policy.wasm"));
    let cip = std::env::var_os("CIP_BIN").map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .map(|p| p.with_file_name("cip"))
            .unwrap_or_default()
    });
    if !policy.exists() || !cip.exists() {
        bail!(
            "need {} and {} (make bench builds both)",
            policy.display(),
            cip.display()
        );
    }
    let warm_iterations = std::env::var("BENCH_ITERATIONS").unwrap_or_else(|_| "1000".to_owned());
    let fresh_iterations = std::env::var("BENCH_FRESH_ITERATIONS").unwrap_or_else(|_| "300".to_owned());
    // A cache kept between runs would make the cold `cip run` at the end warm: only for one
    // scenario (checked before the registry is filled).
    let kept_cache = match (std::env::var_os("BENCH_CACHE_DIR"), std::env::var_os("BENCH_ONLY")) {
        (Some(dir), Some(_)) => Some(PathBuf::from(dir)),
        (Some(_), None) => bail!("BENCH_CACHE_DIR is for runs of one scenario (BENCH_ONLY)"),
        (None, _) => None,
    };

    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let key = testkit::KeyPair::ecdsa_p256()?;
    for i in 0..IMAGES {
        let repo = format!("team{i}/app");
        let digest = testkit::push_image(&host, &repo, "v1", &format!("bench image {i}"))?;
        testkit::sign_with_key(&host, &repo, &digest, &key, &Default::default())?;
    }
    // The keyless scenario: one image signed through a test Fulcio and Rekor by a GitHub
    // Actions workflow, as the article's keyless policy expects.
    let fulcio = testkit::TestFulcio::new()?;
    let rekor = testkit::TestRekor::new()?;
    let digest = testkit::push_image(&host, "keyless/app", "v1", "bench keyless image")?;
    let identity = testkit::SignerIdentity::Uri(KEYLESS_SUBJECT.to_owned());
    let leaf = testkit::LeafRequest::new(identity, KEYLESS_ISSUER);
    testkit::sign_keyless(
        &host,
        "keyless/app",
        &digest,
        &fulcio,
        &rekor,
        &leaf,
        &Default::default(),
    )?;
    let work = tempfile::tempdir()?;
    let trust = work.path().join("trust.json");
    std::fs::write(&trust, testkit::trust_config_json(&fulcio, &rekor))?;
    let sources = work.path().join("sources.yaml");
    std::fs::write(&sources, format!("insecure_sources: [\"{host}\"]\n"))?;
    let cache = kept_cache.unwrap_or_else(|| work.path().join("cache"));
    let setup = Setup {
        cip,
        policy,
        host,
        key_pem: key.public_key_pem().to_owned(),
        rotation: std::env::var("BENCH_ROTATION").as_deref() != Ok("off"),
        stock: std::env::var("BENCH_STOCK").as_deref() == Ok("on"),
        work,
        sources,
        trust,
        cache,
    };

    println!(
        "policy.wasm: {} bytes",
        std::fs::metadata(&setup.policy).context("policy.wasm")?.len()
    );
    println!(
        "authorities per policy: {}",
        if setup.rotation {
            "a rotated-out key, then the current key (BENCH_ROTATION=off: the current key only)"
        } else {
            "the current key only (BENCH_ROTATION=off)"
        }
    );
    if setup.stock {
        println!("host: Kubewarden's capabilities only (`--kubewarden-capabilities-only`, BENCH_STOCK=on)");
    }
    println!(
        "validate through `cip bench`, host answers cached; min / median of {warm_iterations} (warm) and {fresh_iterations} (fresh) evaluations, µs"
    );
    println!(
        "(host: median time spent in host callbacks, included in the evaluation; faults: minor page faults of `cip` per evaluation)"
    );
    println!(
        "{:>10} {:>8} | {:>8} {:>8} {:>8} | {:>9} {:>8} {:>8} {:>6} | {:>11} | answer",
        "containers", "policies", "warm min", "median", "host", "fresh min", "median", "host", "faults", "fresh/empty"
    );
    let modules: Vec<PathBuf> = match std::env::var_os("BENCH_MODULES") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![setup.policy.clone()],
    };
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let tagged = modules.len() > 1 || rounds > 1;
    let only = std::env::var("BENCH_ONLY").ok();
    let mode = std::env::var("BENCH_MODE").ok();
    // Every scenario: (its `BENCH_ONLY` name, containers, policies as printed, request, settings).
    let mut scenarios = Vec::new();
    let settings = POLICIES
        .iter()
        .map(|policies| setup.write(&format!("settings-{policies}.json"), &setup.settings(*policies)?))
        .collect::<Result<Vec<_>>>()?;
    for containers in CONTAINERS {
        let request = setup.write(&format!("request-{containers}.json"), &setup.request(containers))?;
        for (policies, settings) in POLICIES.iter().zip(&settings) {
            let name = format!("{containers}x{policies}");
            scenarios.push((
                name,
                containers,
                policies.to_string(),
                request.clone(),
                settings.clone(),
            ));
        }
    }
    let request = setup.write("request-keyless.json", &setup.keyless_request())?;
    let settings = setup.write("settings-keyless.json", &setup.keyless_settings())?;
    scenarios.push(("keyless".to_owned(), 1, "keyless".to_owned(), request, settings));
    // Per number of containers and module: the fresh-instance minimum with empty settings.
    let mut empty_fresh = std::collections::HashMap::new();
    for (name, containers, policies, request, settings) in scenarios {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        for (round, (index, module)) in
            (1..=rounds).flat_map(|round| modules.iter().enumerate().map(move |m| (round, m)))
        {
            // `BENCH_MODE` names the one run to make; a run not made prints NaN.
            let run = |fresh: bool, iterations: &str| match mode.as_deref() {
                Some("warm") if fresh => Ok(None),
                Some("fresh") if !fresh => Ok(None),
                _ => setup.bench(module, &request, &settings, fresh, iterations).map(Some),
            };
            let warm = run(false, &warm_iterations)?;
            let fresh = run(true, &fresh_iterations)?;
            let accepted = warm.or(fresh).unwrap_or(Run::SKIPPED).accepted;
            let (warm, fresh) = (warm.unwrap_or(Run::SKIPPED), fresh.unwrap_or(Run::SKIPPED));
            if policies == "0" {
                empty_fresh.insert((containers, index), fresh.min);
            }
            if tagged {
                let name = module.file_name().unwrap_or_default().to_string_lossy();
                print!("{name} round {round}: ");
            }
            println!(
                "{containers:>10} {policies:>8} | {:>8.1} {:>8.1} {:>8.1} | {:>9.1} {:>8.1} {:>8.1} {:>6.1} | {:>10.2}x | {}",
                warm.min,
                warm.median,
                warm.host,
                fresh.min,
                fresh.median,
                fresh.host,
                fresh.faults,
                fresh.min / empty_fresh.get(&(containers, index)).copied().unwrap_or(f64::NAN),
                if accepted { "accepted" } else { "rejected" }
            );
        }
    }

    if only.is_some() {
        return Ok(());
    }
    // `cip run` as a process: cold (nothing cached) and warm (compiled module cached).
    let request = setup.write("run-request.json", &setup.request(10))?;
    let settings = setup.write("run-settings.json", &setup.settings(20)?)?;
    let _ = std::fs::remove_dir_all(&setup.cache);
    let cold = setup.run_once(&request, &settings)?;
    let warm = (0..3)
        .map(|_| setup.run_once(&request, &settings))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .min()
        .unwrap_or_default();
    println!(
        "cip run, 10 containers x 20 policies, whole process: cold (compiles, empty cache) {:.0} ms, warm (compiled module cached, best of 3) {:.0} ms: {:.2}x",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() / cold.as_secs_f64()
    );
    Ok(())
}
