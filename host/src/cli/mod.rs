//! The `cip` command line: kwctl-like commands on the cluster-image-policy module.

pub mod artifact;
pub mod bench;
pub mod duration;
pub mod kms;
pub mod module_args;
pub mod provider;
pub mod run;
pub mod session;
pub mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Run the cluster-image-policy Kubewarden module outside a cluster.
#[derive(Debug, Parser)]
#[command(name = "cip", version, about, propagate_version = true)]
#[command(after_help = "Examples:
  cip run --request-path pod.json --settings-path settings.yaml policy.wasm
  cip verify --settings-path settings.yaml --namespace production policy.wasm myregistry.com/app:v1
  cip bench --request-path pod.json --settings-path settings.yaml policy.wasm
  cip provider --settings-path settings.yaml --tls-cert-file tls.crt --tls-key-file tls.key policy.wasm
  cip kms resolve -f settings.yaml -o settings.yaml

Logs go to stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).")]
pub struct Cli {
    /// More logs on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The most memory, in MiB, `cip` may hold while a Rego policy is evaluated: an evaluation
    /// that finds the process past it stops and fails (the authority does not verify). Counted
    /// for the whole process (docs/hardening.md).
    #[arg(
        long,
        global = true,
        env = "CIP_REGO_MEMORY_LIMIT",
        value_name = "MIB",
        default_value_t = crate::capabilities::DEFAULT_REGO_MEMORY_LIMIT_MIB,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub rego_memory_limit: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate an admission request and print the AdmissionResponse (kwctl run).
    Run(run::RunArgs),
    /// Evaluate a request repeatedly and print timing percentiles.
    Bench(bench::BenchArgs),
    /// Check images for CI (kwctl verify checks a policy's own signature)
    Verify(verify::VerifyArgs),
    /// Serve the policy as an OPA Gatekeeper external data provider.
    Provider(provider::ProviderArgs),
    /// Write Kubewarden metadata into a policy module.
    Annotate(artifact::AnnotateArgs),
    /// Show the Kubewarden metadata of a policy module.
    Inspect(artifact::InspectArgs),
    /// Push an annotated policy module to an OCI registry.
    Push(artifact::PushArgs),
    /// Pull a policy module from an OCI registry.
    Pull(artifact::PullArgs),
    /// KMS keys: fill key.data from key.kms for hosts without KMS access.
    #[command(subcommand)]
    Kms(kms::KmsCommand),
}

/// Entry point of the `cip` binary: parses arguments, runs the command, maps errors to exit
/// status 1 with the whole error chain on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    crate::capabilities::set_rego_memory_limit_mib(cli.rego_memory_limit);
    match execute(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<ExitCode> {
    let ok = |()| ExitCode::SUCCESS;
    match command {
        Command::Run(args) => run::run(&args).map(ok),
        Command::Bench(args) => bench::run(&args).map(ok),
        Command::Verify(args) => verify::run(&args),
        Command::Provider(args) => provider::run(args).map(ok),
        Command::Annotate(args) => artifact::run_annotate(&args).map(ok),
        Command::Inspect(args) => block_on(artifact::run_inspect(&args)).map(ok),
        Command::Push(args) => block_on(artifact::run_push(&args)).map(ok),
        Command::Pull(args) => block_on(artifact::run_pull(&args)).map(ok),
        Command::Kms(command) => kms::run(&command).map(ok),
    }
}

fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    crate::async_runtime::multi_thread(2)
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The AWS SDK's own events print raw HTTP answers (an IMDS session token, say): always off;
    // its errors reach the user through the KMS messages.
    for target in crate::kms::AWS_SDK_LOG_TARGETS {
        if let Ok(directive) = format!("{target}=off").parse() {
            filter = filter.add_directive(directive);
        }
    }
    // A second initialisation (tests calling main twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
