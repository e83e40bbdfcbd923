//! `cip provider` (Gatekeeper's external data provider) started by a test as a child process,
//! on two loopback ports of its own: `--addr` (HTTPS, `POST /validate`) and `--metrics-addr`
//! (plain HTTP, `/healthz`, `/readyz`, `/metrics`).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::http;
use crate::registry::unused_local_addr;
use crate::server::{PROBE_TIMEOUT, ServerProcess};

/// How long a provider may take from its spawn to its first ready answer: it compiles the
/// policy module first (seconds in a debug build, more on a machine busy with other tests).
const PROVIDER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The provider's readiness probe: `GET /readyz` on its metrics port answers `200 ready` once
/// both listeners serve.
fn provider_ready(metrics_addr: SocketAddr) -> bool {
    http::request(metrics_addr, "GET", "/readyz", &[], PROBE_TIMEOUT)
        .is_ok_and(|response| response.status == 200 && response.body.trim_ascii() == b"ready")
}

/// A `cip provider` process on `127.0.0.1` ports of its own, killed (and waited for) on drop;
/// its stdout and stderr go to a log that a failed start quotes.
#[derive(Debug)]
pub struct ProviderProcess {
    server: ServerProcess,
}

impl ProviderProcess {
    /// Runs `command()`, a `cip provider …` command line (any binary and environment) without
    /// `--addr` and `--metrics-addr`: this appends both, on ports from [`unused_local_addr`].
    ///
    /// Returns once this very process holds both ports (the kernel lists both listening
    /// sockets among its file descriptors) and answers `GET /readyz` with `200 ready` on its
    /// metrics port, within 60 s; no request is sent before, so none reaches another process.
    /// A provider that exits because a port is in use, or finds either port held by another
    /// process, is killed and started again on two fresh ports, up to 5 times. A provider that
    /// exits for another reason fails the start with the end of its output.
    pub fn start(command: impl Fn() -> Command) -> anyhow::Result<Self> {
        Self::start_on(&mut unused_local_addr, command)
    }

    /// [`ProviderProcess::start`] with the ports drawn from `next_addr`, two per attempt
    /// (`--addr` first, then `--metrics-addr`): for tests of the start itself, which hand it
    /// taken ports.
    pub fn start_on(
        next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
        command: impl Fn() -> Command,
    ) -> anyhow::Result<Self> {
        let command = |addrs: &[SocketAddr]| {
            let mut command = command();
            command
                .arg("--addr")
                .arg(addrs[0].to_string())
                .arg("--metrics-addr")
                .arg(addrs[1].to_string());
            command
        };
        let server = ServerProcess::start_holding(
            "cip provider",
            2,
            PROVIDER_READY_TIMEOUT,
            next_addr,
            &command,
            &|addrs| provider_ready(addrs[1]),
        )?;
        Ok(Self { server })
    }

    /// `127.0.0.1:PORT` of `--addr`, where Gatekeeper's HTTPS requests go.
    pub fn addr(&self) -> SocketAddr {
        self.server.addrs()[0]
    }

    /// `127.0.0.1:PORT` of `--metrics-addr`: `/healthz`, `/readyz` and `/metrics` over plain HTTP.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.server.addrs()[1]
    }
}
