//! `cip run`: kwctl's `run` — evaluate one admission request and print the AdmissionResponse.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::module_args::ModuleVerificationArgs;
use super::session::{LimitArgs, Session, SettingsArgs, VerifierArgs};
use crate::admission::{AdmissionResponse, request_from_document};
use crate::capabilities::recording::Interactions;

/// Evaluate an admission request with a policy and print the AdmissionResponse.
#[derive(Debug, Args)]
#[command(
    after_help = "The output is the AdmissionResponse kwctl prints (`patch` is a base64 JSON Patch).
Exit status: 0 whether the request is allowed or denied; non-zero when the evaluation could not
run (unreadable file, invalid settings, trap, timeout).

A registry:// module runs only if its signatures satisfy --verification-config-path (kwctl's
format) or the --verification-key / --cert-email + --cert-oidc-issuer / --github-owner flags;
with none of them it is refused (kwctl would run it) unless --insecure-skip-module-verification
is given. Local files run as they are.

Examples:
  cip run --request-path pod.json --settings-path settings.yaml policy.wasm
  cip run --request-path review.json --settings-json '{\"policies\":[]}' \\
      --sources-path sources.yaml --sigstore-trust-config trust.json policy.wasm
  cip run -r pod.json -s settings.yaml --record-host-capabilities-interactions session.yml policy.wasm
  cip run -r pod.json -s settings.yaml --replay-host-capabilities-interactions session.yml policy.wasm
  cip run -r pod.json -s settings.yaml --verification-key policy-signer.pub \\
      registry://ghcr.io/org/cluster-image-policy:v0.1.0"
)]
pub struct RunArgs {
    /// AdmissionRequest or whole AdmissionReview, JSON or YAML.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub request_path: PathBuf,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Record every host capability call and its answer to FILE (kwctl's session format), to
    /// be replayed later with --replay-host-capabilities-interactions.
    #[arg(long, value_name = "FILE", conflicts_with = "replay_host_capabilities_interactions")]
    pub record_host_capabilities_interactions: Option<PathBuf>,
    /// Answer the host capability calls from a recorded session (FILE) instead of reaching
    /// registries: reproducible, offline policy tests. A call that differs from the recorded
    /// one fails.
    #[arg(long, value_name = "FILE")]
    pub replay_host_capabilities_interactions: Option<PathBuf>,
    #[command(flatten)]
    pub module: ModuleVerificationArgs,
    /// The policy: a .wasm file or a registry:// URI.
    #[arg(value_name = "POLICY")]
    pub policy: String,
}

/// Runs `cip run`.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.request_path)
        .with_context(|| format!("cannot read {}", args.request_path.display()))?;
    let request =
        request_from_document(&text).with_context(|| format!("request file {}", args.request_path.display()))?;
    let settings = args.settings.load()?;
    let interactions = match (
        &args.record_host_capabilities_interactions,
        &args.replay_host_capabilities_interactions,
    ) {
        (Some(path), _) => Some(Interactions::record(path)?),
        (None, Some(path)) => Some(Interactions::replay(path)?),
        (None, None) => None,
    };
    let session = Session::open_with(
        &args.policy,
        &args.verifier,
        &args.limits,
        &args.module,
        None,
        interactions,
    )?;
    session.check_settings(&settings)?;
    let response = session.evaluator.validate(&request, &settings)?;
    let admission = AdmissionResponse::from_validation(&request, &response)?;
    println!("{}", serde_json::to_string(&admission)?);
    Ok(())
}
