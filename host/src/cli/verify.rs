//! `cip verify`: a dry run for CI — which images would be admitted in a namespace, and why.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};

use super::module_args::ModuleVerificationArgs;
use super::session::{LimitArgs, Session, SettingsArgs, VerifierArgs};
use crate::runtime::{ImageKey, ImageVerdict, Verdict};

/// Check images against the policies of a namespace, without a cluster.
#[derive(Debug, Args)]
#[command(
    after_help = "Not kwctl verify: `kwctl verify` checks the signature of a policy module; `cip verify`
checks the signatures of container images against the ClusterImagePolicy settings, as the
policy does at admission.

Uses the policy's verify_images export: the same matching, look-ups and messages as an
admission. Prints, per image, the matched policies, the authorities tried, which verified, the
digest and the verdict. Exit status: 1 if any image is denied, 0 otherwise (warnings included).

Examples:
  cip verify --settings-path settings.yaml policy.wasm myregistry.com/app:v1
  cip verify -s settings.yaml --namespace production --sources-path sources.yaml \\
      --verification-key policy-signer.pub \\
      --policy registry://ghcr.io/org/cluster-image-policy:v0.1.0 myregistry.com/app:v1 myregistry.com/db:v2
  cip verify -s settings.yaml --output json policy.wasm myregistry.com/app:v1 | jq ."
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Namespace whose policies and modes apply.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub module: ModuleVerificationArgs,
    /// The policy (.wasm file or registry:// URI); when given, every positional is an image.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = VerifyFormat::Table)]
    pub output: VerifyFormat,
    /// POLICY.wasm followed by the images (or only images with --policy).
    #[arg(value_name = "[POLICY] IMAGE", required = true, num_args = 1..)]
    pub args: Vec<String>,
}

/// How `cip verify` prints verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// Human-readable table with the policies and authorities of each image.
    Table,
    /// `{"results": [ImageVerdict]}` as the verify_images export answers.
    Json,
}

/// Runs `cip verify`; the exit code is 1 when an image is denied.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (policy, images) = match &args.policy {
        Some(policy) => (policy.clone(), args.args.clone()),
        None => match args.args.split_first() {
            Some((policy, images)) if !images.is_empty() => (policy.clone(), images.to_vec()),
            _ => bail!("give the policy and at least one image: cip verify [OPTIONS] POLICY.wasm IMAGE..."),
        },
    };
    let settings = args.settings.load()?;
    let session = Session::open(&policy, &args.verifier, &args.limits, &args.module, None)?;
    session.check_settings(&settings)?;
    let keys: Vec<ImageKey> = images
        .into_iter()
        .map(|image| ImageKey::new(image, args.namespace.clone()))
        .collect();
    let verdicts = session.evaluator.verify_images(&settings, &keys)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        VerifyFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "results": verdicts }))?;
            writeln!(out)?;
        }
        VerifyFormat::Table => write_table(&mut out, &verdicts)?,
    }
    let denied = verdicts.iter().any(|v| v.verdict == Verdict::Deny);
    Ok(if denied { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Writes the human report: one summary line per image, then its policies and authorities.
pub fn write_table(out: &mut impl Write, verdicts: &[ImageVerdict]) -> std::io::Result<()> {
    let width = verdicts.iter().map(|v| v.image.len()).max().unwrap_or(5).max(5);
    writeln!(
        out,
        "{:<width$}  {:<12}  {:<7}  DIGEST",
        "IMAGE", "NAMESPACE", "VERDICT"
    )?;
    for verdict in verdicts {
        writeln!(
            out,
            "{:<width$}  {:<12}  {:<7}  {}",
            verdict.image,
            verdict.namespace,
            verdict.verdict.to_string().to_uppercase(),
            verdict.digest.as_deref().unwrap_or("-"),
        )?;
        for policy in &verdict.policies {
            let result = if policy.passed { "passed" } else { "failed" };
            writeln!(out, "  policy {} ({}): {result}", policy.name, policy.mode)?;
            for authority in &policy.authorities {
                match (&authority.passed, &authority.reason) {
                    (true, _) => writeln!(out, "    authority {}: verified", authority.name)?,
                    (false, Some(reason)) => writeln!(out, "    authority {}: failed: {reason}", authority.name)?,
                    (false, None) => writeln!(out, "    authority {}: failed", authority.name)?,
                }
            }
        }
        if verdict.policies.is_empty() {
            writeln!(out, "  no policy matches this image")?;
        }
        if !verdict.message.is_empty() {
            writeln!(out, "  {}", verdict.message)?;
        }
    }
    Ok(())
}
