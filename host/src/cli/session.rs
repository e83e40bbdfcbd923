//! What `run`, `bench` and `verify` share: flags for the verifier, limits and settings, and a
//! [`Session`] holding the async runtime and the evaluator built from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::duration::parse_duration;
use super::module_args::{ModuleVerificationArgs, check_local};
use crate::artifact::verification::{ModuleVerification, ModuleVerificationError};
use crate::artifact::{REGISTRY_SCHEME, cache_root, load_policy};
use crate::capabilities::Capabilities;
use crate::capabilities::recording::Interactions;
use crate::registry::Sources;
use crate::runtime::{CompiledModuleCache, Evaluator, EvaluatorOptions, PolicyModule};
use crate::trust::TrustRoot;
use crate::verify::{Verifier, VerifierConfig};

/// Registry access and signature trust, as kwctl's flags.
#[derive(Debug, Args)]
pub struct VerifierArgs {
    /// kwctl's sources.yaml: hosts reached over plain HTTP, extra CAs per host.
    #[arg(long, value_name = "FILE")]
    pub sources_path: Option<PathBuf>,
    /// Sigstore ClientTrustConfig (or trusted_root.json) with the Fulcio CAs and Rekor keys
    /// that keyless signatures must chain to.
    #[arg(long, value_name = "FILE")]
    pub sigstore_trust_config: Option<PathBuf>,
    /// Directory holding a docker config.json with registry credentials.
    #[arg(long, value_name = "DIR")]
    pub docker_config_json_path: Option<PathBuf>,
    /// How long a successful verification is reused.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub cache_success_ttl: Duration,
    /// How long a failed verification is reused.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub cache_failure_ttl: Duration,
    /// Most entries each verification cache keeps (least recently used evicted first).
    #[arg(long, default_value_t = crate::verify::DEFAULT_CACHE_MAX_ENTRIES, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_entries: u64,
    /// Most bytes (estimated) each of the `oci/v1/oci_manifest` and `oci/v1/oci_manifest_config`
    /// answer caches keeps, and the answer memo of the evaluating threads, beside
    /// --cache-max-entries; an answer larger than this is not kept.
    #[arg(long, default_value_t = crate::verify::DEFAULT_CACHE_MAX_BYTES, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_bytes: u64,
    /// Largest signature manifest read, in bytes; also the largest manifest or index the
    /// `oci/v1/oci_manifest` and `oci/v1/oci_manifest_config` capabilities read.
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_MANIFEST_BYTES, value_name = "BYTES")]
    pub max_signature_manifest_bytes: usize,
    /// Largest signature layer read, in bytes.
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_LAYER_BYTES, value_name = "BYTES")]
    pub max_signature_layer_bytes: usize,
    /// Most layers a signature manifest may list.
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_LAYERS, value_name = "COUNT")]
    pub max_signature_layers: usize,
    /// Largest attestation read (an `.att` layer or an attestation's sigstore bundle), in bytes.
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_ATTESTATION_BYTES, value_name = "BYTES")]
    pub max_attestation_bytes: usize,
    /// Largest image config blob the `oci/v1/oci_manifest_config` capability reads, in bytes.
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_CONFIG_BYTES, value_name = "BYTES")]
    pub max_image_config_bytes: usize,
    /// Most bytes one signature or attestation verification downloads: its manifests, layers,
    /// referrers and bundles together, counted as they are read. Over it the verification fails
    /// (the authority fails).
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_VERIFICATION_BYTES, value_name = "BYTES")]
    pub max_verification_bytes: usize,
    /// KMS access for authorities that name their key by `key.kms`.
    #[command(flatten)]
    pub kms: super::kms::KmsArgs,
    /// Serve only what a stock Kubewarden host (policy-server, kwctl) serves: every
    /// `cluster-image-policy/…` call fails as an unknown binding, as it does there. Shows (and
    /// measures) what the policy decides under stock Kubewarden.
    #[arg(long)]
    pub kubewarden_capabilities_only: bool,
}

impl VerifierArgs {
    /// The sources file, parsed (empty when not given).
    pub fn sources(&self) -> anyhow::Result<Sources> {
        match &self.sources_path {
            Some(path) => Sources::from_file(path).with_context(|| format!("sources file {}", path.display())),
            None => Ok(Sources::default()),
        }
    }

    fn config(&self) -> anyhow::Result<VerifierConfig> {
        let trust = match &self.sigstore_trust_config {
            Some(path) => {
                Some(TrustRoot::from_file(path).with_context(|| format!("sigstore trust config {}", path.display()))?)
            }
            None => None,
        };
        Ok(VerifierConfig {
            sources: self.sources()?,
            docker_config_dir: self.docker_config_json_path.clone(),
            trust,
            success_ttl: self.cache_success_ttl,
            failure_ttl: self.cache_failure_ttl,
            cache_max_entries: self.cache_max_entries,
            cache_max_bytes: self.cache_max_bytes,
            limits: crate::registry::DownloadLimits {
                max_manifest_bytes: self.max_signature_manifest_bytes,
                max_layer_bytes: self.max_signature_layer_bytes,
                max_layers: self.max_signature_layers,
                max_attestation_bytes: self.max_attestation_bytes,
                max_config_bytes: self.max_image_config_bytes,
                max_verification_bytes: self.max_verification_bytes,
                // LimitArgs' --max-inflight-download-bytes, set by `Session::open_with`.
                ..crate::registry::DownloadLimits::default()
            },
            ..VerifierConfig::default()
        })
    }
}

/// Limits of one evaluation.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Longest an evaluation may run, registry look-ups included.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Largest memory the policy may use, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub memory_limit: usize,
    /// Most bytes all the signature and attestation verifications of the process hold at once,
    /// past the first 256 KiB of each (which honest verifications do not pass). A verification
    /// the rest does not fit fails at once, as unverified (transient: others hold the bytes).
    #[arg(long, default_value_t = crate::registry::DEFAULT_MAX_INFLIGHT_DOWNLOAD_BYTES, value_name = "BYTES")]
    pub max_inflight_download_bytes: usize,
}

/// The policy settings, from a file (YAML or JSON) or inline JSON; `{}` when neither is given.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Settings file, YAML or JSON.
    #[arg(long, short = 's', value_name = "FILE", conflicts_with = "settings_json")]
    pub settings_path: Option<PathBuf>,
    /// Settings as a JSON document.
    #[arg(long, value_name = "JSON")]
    pub settings_json: Option<String>,
}

impl SettingsArgs {
    /// Reads the settings.
    pub fn load(&self) -> anyhow::Result<Value> {
        if let Some(path) = &self.settings_path {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            return parse_settings(&text).with_context(|| format!("settings file {}", path.display()));
        }
        if let Some(json) = &self.settings_json {
            return serde_json::from_str(json).context("--settings-json is not valid JSON");
        }
        Ok(Value::Object(serde_json::Map::new()))
    }
}

/// Parses YAML or JSON settings. An empty (or blank) file is refused: far likelier a mistake
/// (a CI variable or artifact missing, a ConfigMap key left out, a file being written) than a
/// wish to decide with no policies, which would admit every image; `policies: []` says that.
pub fn parse_settings(text: &str) -> anyhow::Result<Value> {
    if text.trim().is_empty() {
        bail!(
            "the settings file is empty (or blank): refused, as a file being written or a missing \
             value can be; to decide with no policies, write `policies: []`"
        );
    }
    let nesting = flow_nesting(text);
    if nesting > MAX_FLOW_NESTING {
        bail!(
            "the settings open `[` or `{{` {nesting} levels deep, more than {MAX_FLOW_NESTING}: refused \
             before parsing (the YAML reader takes time growing with the square of that depth, and \
             refuses more than 128 levels of nesting anyway); settings nest a handful of levels"
        );
    }
    let value: Value = serde_yaml::from_str(text).context("not valid YAML or JSON")?;
    if !value.is_object() {
        bail!("settings must be a mapping, not {value}");
    }
    Ok(value)
}

/// The deepest `[`/`{` nesting [`parse_settings`] hands to serde_yaml: its flow collections
/// cost time quadratic in their depth before its recursion limit (128) refuses them (100,000
/// levels, a 600 KB file, took 84 s). Brackets in strings count too, so the bound is well above
/// that limit: 1,000 levels parse in a few milliseconds.
const MAX_FLOW_NESTING: usize = 1_000;

/// How deep `[` and `{` nest in `text`, quoting aside (an upper bound of YAML's flow nesting).
fn flow_nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The async runtime that serves host calls, and the evaluator of the policy.
pub struct Session {
    /// Runs registry and verification work for host calls.
    pub runtime: tokio::runtime::Runtime,
    /// The loaded policy.
    pub evaluator: Evaluator,
    /// The verifier answering the policy's look-ups.
    pub verifier: Arc<Verifier>,
}

impl Session {
    /// Loads `policy` (a file or a `registry://` URI) with the given verifier and limits. A
    /// `registry://` module is refused unless its signatures satisfy `module`'s requirements
    /// (or `--insecure-skip-module-verification` is given).
    pub fn open(
        policy: &str,
        verifier: &VerifierArgs,
        limits: &LimitArgs,
        module: &ModuleVerificationArgs,
        pool_size: Option<usize>,
    ) -> anyhow::Result<Self> {
        Self::open_with(policy, verifier, limits, module, pool_size, None)
    }

    /// [`Session::open`], with host calls recorded to or replayed from a kwctl session file.
    pub fn open_with(
        policy: &str,
        verifier: &VerifierArgs,
        limits: &LimitArgs,
        module: &ModuleVerificationArgs,
        pool_size: Option<usize>,
        interactions: Option<Interactions>,
    ) -> anyhow::Result<Self> {
        let runtime = crate::async_runtime::multi_thread(2)
            .thread_name("cip-host")
            .build()
            .context("cannot start the async runtime")?;
        let mut config = verifier.config()?;
        config.limits.max_inflight_download_bytes = limits.max_inflight_download_bytes;
        let verifier_handle = Arc::new(Verifier::new(config)?);
        let verification = module.resolve()?;
        check_local(policy, &verification)?;
        let requirements = match &verification {
            ModuleVerification::Required(config) => Some((verifier_handle.as_ref(), config)),
            ModuleVerification::InsecureSkip => {
                if policy.starts_with(REGISTRY_SCHEME) {
                    tracing::warn!(policy, "running a registry module WITHOUT verifying its signatures");
                }
                None
            }
            ModuleVerification::Unspecified if policy.starts_with(REGISTRY_SCHEME) => {
                return Err(ModuleVerificationError::NoVerificationOption {
                    module: policy.to_owned(),
                }
                .into());
            }
            ModuleVerification::Unspecified => None,
        };
        let loading = spinner(format!("loading {policy}"));
        let loaded = runtime
            .block_on(load_policy(
                policy,
                &verifier.sources()?,
                verifier.docker_config_json_path.as_deref(),
                module.max_module_bytes,
                requirements,
            ))
            .with_context(|| format!("cannot load {policy}"))?;
        loading.finish_and_clear();
        // The module's file name (a pulled module not stored is named by its reference).
        let name = loaded
            .path
            .as_deref()
            .and_then(|path| path.file_name())
            .map_or_else(|| policy.to_owned(), |n| n.to_string_lossy().into_owned());
        let compiling = spinner(format!("compiling {name}"));
        let module = match (module.no_module_cache, cache_root()) {
            (false, Ok(root)) => {
                let cache = CompiledModuleCache::at(root.join("compiled"));
                PolicyModule::from_bytes_cached(name, &loaded.bytes, &cache)?.0
            }
            (false, Err(e)) => {
                tracing::info!(error = %e, "no compiled-module cache");
                PolicyModule::from_bytes(name, &loaded.bytes)?
            }
            (true, _) => PolicyModule::from_bytes(name, &loaded.bytes)?,
        };
        compiling.finish_and_clear();
        let mut capabilities = Capabilities::new(Arc::clone(&verifier_handle), runtime.handle().clone())
            .with_answer_cache(verifier.cache_max_entries, verifier.cache_max_bytes)
            .with_kms(verifier.kms.resolver()?);
        if let Some(interactions) = interactions {
            capabilities = capabilities.with_interactions(interactions);
        }
        if verifier.kubewarden_capabilities_only {
            capabilities = capabilities.kubewarden_only();
        }
        let capabilities = Arc::new(capabilities);
        let defaults = EvaluatorOptions::default();
        let options = EvaluatorOptions {
            timeout: limits.timeout,
            memory_limit: limits.memory_limit.saturating_mul(1024 * 1024),
            pool_size: pool_size.unwrap_or(defaults.pool_size),
        };
        let evaluator = Evaluator::new(&module, capabilities, options)?;
        Ok(Self {
            runtime,
            evaluator,
            verifier: verifier_handle,
        })
    }

    /// Runs `validate_settings` and fails with the policy's message when they are invalid.
    /// The module's `validate_settings`, its remarks on valid settings printed as warnings, and
    /// every Rego `spec.policy` compiled as `cip` will run it.
    pub fn check_settings(&self, settings: &Value) -> anyhow::Result<()> {
        if let Some(remarks) = self.evaluator.accept_settings(settings)? {
            eprintln!("warning: {remarks}");
        }
        Ok(())
    }
}

/// A spinner on stderr, hidden when stderr is not a terminal.
pub fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::{MAX_FLOW_NESTING, parse_settings};

    #[test]
    fn settings_nesting_too_deep_are_refused_before_parsing() {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let deep = format!("policies: {}1{}", open.repeat(100_000), close.repeat(100_000));
            let error = format!("{:#}", parse_settings(&deep).expect_err("100,000 levels"));
            assert!(
                error.contains("100000 levels deep") && error.contains("refused"),
                "{error}"
            );
        }
        // At the bound, the reader itself answers (its recursion limit), and at once.
        let at_bound = format!(
            "policies: {}1{}",
            "[".repeat(MAX_FLOW_NESTING),
            "]".repeat(MAX_FLOW_NESTING)
        );
        let error = format!("{:#}", parse_settings(&at_bound).expect_err("over serde_yaml's limit"));
        assert!(error.contains("recursion limit"), "{error}");
        // Settings as they are written still parse, brackets in strings included.
        let settings = parse_settings("policies: []\nnote: \"[[[{{\"\n").expect("ordinary settings");
        assert_eq!(settings["policies"], serde_json::json!([]));
    }
}
