//! `cip provider`: serve the policy's verdicts to OPA Gatekeeper as an external data provider.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::duration::parse_duration;
use super::session::{LimitArgs, Session, VerifierArgs, parse_settings};
use crate::provider::{self, Limits, PolicyDecider, ProviderConfig};

/// Serve `POST /validate` for Gatekeeper's `external_data` over HTTPS (TLS 1.3).
///
/// Each key is `{"image":"…","namespace":"…"}` (JSON); each answer is the policy's verdict
/// `{"verdict":"allow|warn|deny","digest","message","policies"}`. Probes and Prometheus
/// metrics are served on a separate plain-HTTP port.
///
/// Example:
///   cip provider --settings-path settings.yaml --tls-cert-file tls.crt --tls-key-file tls.key \
///     --client-ca-file gatekeeper-ca.crt policy.wasm
#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// The policy module (the same policy.wasm a ClusterAdmissionPolicy runs), a file or a
    /// `registry://` URI.
    #[arg(value_name = "POLICY.wasm")]
    pub policy: String,
    /// Policy settings (YAML or JSON), validated by the policy at start-up.
    #[arg(long, short = 's', value_name = "FILE")]
    pub settings_path: PathBuf,
    /// PEM certificate chain served to Gatekeeper; re-read when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: PathBuf,
    /// PEM private key of the certificate; re-read when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: PathBuf,
    /// Require client certificates signed by this PEM CA (Gatekeeper's webhook CA).
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// HTTPS address for Gatekeeper.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Plain-HTTP address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Answer every request within this time (keys not done get a "deadline exceeded" error);
    /// keep it below the Provider's `timeout`, itself below Gatekeeper's webhook timeout.
    #[arg(long, default_value = "2.5s", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Most keys accepted in one request.
    #[arg(long, default_value_t = 1_000)]
    pub max_keys: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most images evaluated at once.
    #[arg(long, default_value_t = 32)]
    pub max_concurrency: usize,
}

/// Runs the provider until SIGINT or SIGTERM.
pub fn run(args: ProviderArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.settings_path)
        .with_context(|| format!("cannot read {}", args.settings_path.display()))?;
    let settings = parse_settings(&text).with_context(|| format!("settings file {}", args.settings_path.display()))?;
    let session = Session::open(&args.policy, &args.verifier, &args.limits, None)?;
    let evaluator = session.evaluator.clone();
    let decider = PolicyDecider::new(evaluator, settings)
        .with_context(|| format!("settings file {}", args.settings_path.display()))?;
    let config = ProviderConfig {
        addr: args.addr,
        metrics_addr: args.metrics_addr,
        cert_path: args.tls_cert_file,
        key_path: args.tls_key_file,
        client_ca_path: args.client_ca_file,
        limits: Limits {
            max_keys: args.max_keys,
            max_body_bytes: args.max_body_bytes,
            max_concurrency: args.max_concurrency,
            deadline: args.deadline,
        },
    };
    session.runtime.block_on(async move {
        let running = provider::start(config, Arc::new(decider)).await?;
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.shutdown().await;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
