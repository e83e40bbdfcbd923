//! `cip provider`: serve the policy's verdicts to OPA Gatekeeper as an external data provider.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::duration::parse_duration;
use super::module_args::ModuleVerificationArgs;
use super::session::{LimitArgs, Session, VerifierArgs, parse_settings};
use crate::provider::settings_watch::{SettingsWatch, read_settings_file};
use crate::provider::{self, ConnectionLimits, Limits, PolicyDecider, ProviderConfig};

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
    /// `registry://` URI (whose signatures must satisfy the module verification flags).
    #[arg(value_name = "POLICY.wasm")]
    pub policy: String,
    /// Policy settings (YAML or JSON), validated by the policy at start-up; re-read when the
    /// file changes (see --settings-poll-interval).
    #[arg(long, short = 's', value_name = "FILE")]
    pub settings_path: PathBuf,
    /// How often the settings file is read again: a change read the same at two consecutive
    /// polls is validated as at start-up and served from then on; unusable files (an empty one
    /// included) are logged and reported on /metrics, and the previous settings stay served.
    /// `0s` reads the file only at start-up.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub settings_poll_interval: Duration,
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
    /// Boxed: keeps `cli::Command`'s variants of similar sizes (clippy's large_enum_variant).
    #[command(flatten)]
    pub module: Box<ModuleVerificationArgs>,
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
    /// Most request-body bytes in flight at once, across all connections (each request counts
    /// its Content-Length, or --max-body-bytes without one, until it is answered); a request
    /// beyond it is answered 503 with Retry-After and its connection closed. At least
    /// --max-body-bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub max_inflight_request_bytes: usize,
    /// Most images evaluated at once.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=4096), |n| n as usize))]
    pub max_concurrency: usize,
    /// Most images of one namespace evaluated or waiting for a shared slot at once, so that one
    /// namespace's slow images cannot hold every slot (default: a quarter of --max-concurrency,
    /// at least 1; at most --max-concurrency).
    #[arg(long, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=4096), |n| n as usize))]
    pub max_concurrency_per_namespace: Option<usize>,
    /// Most established TLS sessions served at once (with --client-ca-file: clients that
    /// presented a certificate of that CA); a session established beyond it is closed at once
    /// rather than queued. Connections still in their handshake count against
    /// --max-pending-handshakes instead.
    #[arg(long, default_value_t = 1024, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=1_000_000), |n| n as usize))]
    pub max_connections: usize,
    /// Most connections of --addr whose TLS handshake is not done, at once, shared between
    /// client addresses: when full, a new connection replaces another's (an address that
    /// completed an mTLS handshake in the last 10 minutes, Gatekeeper's, replaces those of
    /// addresses that did not; others replace the heaviest untrusted address's oldest, or their
    /// own oldest; see docs/hardening.md).
    #[arg(long, default_value_t = 128, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=1_000_000), |n| n as usize))]
    pub max_pending_handshakes: usize,
    /// Most connections of --metrics-addr (probes, metrics) at once, shared fairly between client
    /// addresses like --max-pending-handshakes; the header-read and idle timeouts apply there too.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=65_536), |n| n as usize))]
    pub max_metrics_connections: usize,
    /// Close a connection whose TLS handshake has not finished this long after it was accepted.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub tls_handshake_timeout: Duration,
    /// Close a connection whose request head has not fully arrived this long after its first byte.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,
    /// Answer 408 and close when a request body has not fully arrived this long after its head.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_read_timeout: Duration,
    /// Close a keep-alive connection that has waited this long for a new request. Keep it above
    /// Gatekeeper's 90 s client idle timeout: a POST Gatekeeper writes on a connection the
    /// provider is closing fails (Go does not retry it), and the review fails closed.
    #[arg(long, default_value = "120s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// On SIGTERM or SIGINT, keep serving this long with /readyz answering 503 (the Service's
    /// endpoints drop the pod asynchronously, so Gatekeeper may still connect meanwhile); then
    /// stop accepting, answer the requests in flight (at most --deadline plus 2 s) and exit.
    /// A second signal exits at once. `0s` stops accepting at once.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_delay: Duration,
}

/// Runs the provider until SIGINT or SIGTERM, then shuts it down gracefully
/// ([`provider::RunningProvider::shutdown_after`] with `--shutdown-delay`).
pub fn run(args: ProviderArgs) -> anyhow::Result<()> {
    let max_concurrency_per_namespace = per_namespace_share(args.max_concurrency, args.max_concurrency_per_namespace)?;
    let bytes = read_settings_file(&args.settings_path).map_err(anyhow::Error::msg)?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("cannot read {}", args.settings_path.display()))?;
    let settings = parse_settings(text).with_context(|| format!("settings file {}", args.settings_path.display()))?;
    let session = Session::open(&args.policy, &args.verifier, &args.limits, &args.module, None)?;
    let evaluator = session.evaluator.clone();
    let decider = PolicyDecider::new(evaluator, settings)
        .with_context(|| format!("settings file {}", args.settings_path.display()))?;
    let watch = (!args.settings_poll_interval.is_zero()).then(|| {
        SettingsWatch::new(
            args.settings_path.clone(),
            decider.clone(),
            parse_settings,
            bytes.clone(),
        )
    });
    let config = ProviderConfig {
        addr: args.addr,
        metrics_addr: args.metrics_addr,
        cert_path: args.tls_cert_file,
        key_path: args.tls_key_file,
        client_ca_path: args.client_ca_file,
        limits: Limits {
            max_keys: args.max_keys,
            max_body_bytes: args.max_body_bytes,
            max_inflight_body_bytes: args.max_inflight_request_bytes,
            max_concurrency: args.max_concurrency,
            max_concurrency_per_namespace,
            deadline: args.deadline,
        },
        connections: ConnectionLimits {
            max_connections: args.max_connections,
            max_pending_handshakes: args.max_pending_handshakes,
            max_metrics_connections: args.max_metrics_connections,
            tls_handshake_timeout: args.tls_handshake_timeout,
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            idle_timeout: args.idle_timeout,
        },
    };
    session.runtime.block_on(async move {
        let running = provider::start(config, Arc::new(decider)).await?;
        let watching = watch.map(|watch| tokio::spawn(watch.run(args.settings_poll_interval)));
        shutdown_signal().await;
        let delay = args.shutdown_delay;
        tracing::info!(
            shutdown_delay_ms = delay.as_millis(),
            drain_timeout_ms = running.drain_timeout().as_millis(),
            "shutting down: not ready, serving until the shutdown delay ends, then draining"
        );
        if let Some(watching) = watching {
            watching.abort();
        }
        tokio::select! {
            () = running.shutdown_after(tokio::time::sleep(delay)) => {}
            () = shutdown_signal() => tracing::warn!("second signal: exiting without draining"),
        }
        anyhow::Ok(())
    })
}

/// The evaluations one namespace may hold: as given (refused above `max_concurrency`, which
/// would make the bound meaningless), else a quarter of `max_concurrency`, at least 1.
fn per_namespace_share(max_concurrency: usize, given: Option<usize>) -> anyhow::Result<usize> {
    match given {
        Some(share) if share > max_concurrency => anyhow::bail!(
            "--max-concurrency-per-namespace {share} exceeds --max-concurrency {max_concurrency}: \
             give at most {max_concurrency}, or raise --max-concurrency"
        ),
        Some(share) => Ok(share),
        None => Ok((max_concurrency / 4).max(1)),
    }
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

#[cfg(test)]
mod tests {
    use super::{ProviderArgs, per_namespace_share};
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        provider: ProviderArgs,
    }

    fn parse(extra: &[&str]) -> ProviderArgs {
        let required = ["cip", "--settings-path=s.yaml", "--tls-cert-file=c", "--tls-key-file=k"];
        let args = required.iter().chain(extra).chain(&["policy.wasm"]);
        Command::try_parse_from(args).expect("arguments accepted").provider
    }

    /// The idle timeout outlives Gatekeeper's client's (90 s); the shutdown delay leaves the
    /// endpoints time to drop the pod, and `0s` is accepted (tests, local runs).
    #[test]
    fn shutdown_delay_and_idle_timeout_defaults() {
        let defaults = parse(&[]);
        assert_eq!(defaults.idle_timeout, Duration::from_secs(120));
        assert_eq!(defaults.shutdown_delay, Duration::from_secs(5));
        assert_eq!(parse(&["--shutdown-delay=0s"]).shutdown_delay, Duration::ZERO);
    }

    #[test]
    fn a_namespace_gets_a_quarter_unless_told_and_never_more_than_all() {
        assert_eq!(per_namespace_share(32, None).ok(), Some(8));
        assert_eq!(per_namespace_share(3, None).ok(), Some(1));
        assert_eq!(per_namespace_share(32, Some(32)).ok(), Some(32));
        let refused = per_namespace_share(4, Some(5)).expect_err("5 of 4 slots");
        assert!(
            refused
                .to_string()
                .contains("--max-concurrency-per-namespace 5 exceeds --max-concurrency 4")
        );
    }
}
