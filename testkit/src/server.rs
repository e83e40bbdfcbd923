//! Servers started as child processes on a loopback port of their own.
//!
//! A port found free ([`unused_local_addr`]) is released before the child binds it: another
//! process (a parallel test's server, an outgoing connection's ephemeral port) may take it in
//! between. So a start is retried on a fresh port when the child could not bind
//! ([`StartError::PortTaken`], [`retry_on_taken_port`]), and [`ServerProcess::start`] counts
//! the port as the child's only once the kernel lists the port's listening socket among the
//! child's own file descriptors: no request is ever sent to a process that listened there
//! first.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tempfile::TempDir;

use crate::registry::unused_local_addr;

/// How many ports a start tries before it gives up.
pub(crate) const START_ATTEMPTS: usize = 5;

/// Why one start attempt failed.
pub(crate) enum StartError {
    /// The port was taken by another process: another port may work.
    PortTaken(anyhow::Error),
    /// Anything else: retrying would fail the same way.
    Fatal(anyhow::Error),
}

impl From<StartError> for anyhow::Error {
    fn from(error: StartError) -> Self {
        match error {
            StartError::PortTaken(error) | StartError::Fatal(error) => error,
        }
    }
}

/// Runs `attempt` until it succeeds, at most [`START_ATTEMPTS`] times and only while it fails
/// with [`StartError::PortTaken`]; the error names the last failure.
pub(crate) fn retry_on_taken_port<T>(
    what: &str,
    mut attempt: impl FnMut() -> Result<T, StartError>,
) -> anyhow::Result<T> {
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        match attempt() {
            Ok(started) => return Ok(started),
            Err(StartError::PortTaken(error)) => last_error = Some(error),
            Err(StartError::Fatal(error)) => return Err(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no start attempt made"))
        .context(format!(
            "{what} could not bind a free port in {START_ATTEMPTS} attempts"
        )))
}

/// A child process killed (and waited for) on drop.
#[derive(Debug)]
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Who holds the listening socket of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortOwner {
    /// No socket listens on the port.
    Nobody,
    /// The process asked about.
    Process,
    /// Some other process.
    Other,
}

/// Who listens on `port` (on any local address, IPv4 or IPv6): the kernel's socket tables
/// (`/proc/net/tcp*`) give the listening sockets' inodes, `/proc/PID/fd` the sockets `pid` holds.
pub(crate) fn port_owner(port: u16, pid: u32) -> anyhow::Result<PortOwner> {
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match fs::read_to_string(table) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && table.ends_with('6') => continue,
            Err(error) => return Err(error).with_context(|| format!("reading {table}")),
        };
        listening.extend(listening_inodes(&text, port));
    }
    if listening.is_empty() {
        return Ok(PortOwner::Nobody);
    }
    let fd_dir = format!("/proc/{pid}/fd");
    // An exited child has no descriptors left: the socket is then someone else's.
    let Ok(fds) = fs::read_dir(&fd_dir) else {
        return Ok(PortOwner::Other);
    };
    for fd in fds.flatten() {
        if let Ok(target) = fs::read_link(fd.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
            && listening.iter().any(|l| l == inode)
        {
            return Ok(PortOwner::Process);
        }
    }
    Ok(PortOwner::Other)
}

/// The inodes of the sockets in LISTEN state (`0A`) on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let port = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            (local_port == port && *fields.get(3)? == "0A").then(|| fields.get(9).map(|i| (*i).to_owned()))?
        })
        .collect()
}

/// How long a server may take from its spawn to its first good answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound of each readiness request.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a server's output an error quotes.
const LOG_TAIL: usize = 2000;

/// A server child process listening on its own `127.0.0.1` port, its stdout and stderr in a
/// log file; killed (and waited for) on drop.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    process: Process,
    addr: SocketAddr,
    _log_dir: TempDir,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `command(addr)` on a port from `next_addr` (normally [`unused_local_addr`]) and
    /// waits until the child holds the port and `ready(addr)` (a bounded request to it) says
    /// it serves. A child that exits because the port is in use, or finds the port held by
    /// another process, is killed and started again on the next port, [`START_ATTEMPTS`] in
    /// all.
    pub(crate) fn start(
        what: &str,
        next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
        command: &dyn Fn(SocketAddr) -> Command,
        ready: &dyn Fn(SocketAddr) -> bool,
    ) -> anyhow::Result<Self> {
        retry_on_taken_port(what, || {
            let addr = next_addr().map_err(StartError::Fatal)?;
            Self::try_start(what, addr, command, ready)
        })
    }

    /// [`ServerProcess::start`] on ports from [`unused_local_addr`].
    pub(crate) fn start_on_free_port(
        what: &str,
        command: &dyn Fn(SocketAddr) -> Command,
        ready: &dyn Fn(SocketAddr) -> bool,
    ) -> anyhow::Result<Self> {
        Self::start(what, &mut unused_local_addr, command, ready)
    }

    fn try_start(
        what: &str,
        addr: SocketAddr,
        command: &dyn Fn(SocketAddr) -> Command,
        ready: &dyn Fn(SocketAddr) -> bool,
    ) -> Result<Self, StartError> {
        let fatal = |error: anyhow::Error| StartError::Fatal(error);
        let log_dir = tempfile::Builder::new()
            .prefix("testkit-server-")
            .tempdir()
            .context("creating a log directory")
            .map_err(fatal)?;
        let log = log_dir.path().join("server.log");
        let out = fs::File::create(&log)
            .context("creating the server log")
            .map_err(fatal)?;
        let err = out.try_clone().context("duplicating the log handle").map_err(fatal)?;
        let mut command = command(addr);
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {what} ({:?})", command.get_program()))
            .map_err(fatal)?;
        let mut server = Self {
            process: Process(child),
            addr,
            _log_dir: log_dir,
            log,
        };
        server.wait_ready(what, ready)?;
        Ok(server)
    }

    fn wait_ready(&mut self, what: &str, ready: &dyn Fn(SocketAddr) -> bool) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_running(what)?;
            match port_owner(self.addr.port(), self.process.0.id()).map_err(StartError::Fatal)? {
                PortOwner::Process => {
                    if ready(self.addr) {
                        // Still the one listening: it did not exit after answering.
                        return self.check_running(what);
                    }
                }
                PortOwner::Other => {
                    // The child may have exited in between: its own report is the better one.
                    self.check_running(what)?;
                    return Err(StartError::PortTaken(anyhow::anyhow!(
                        "{what}: port {} is held by another process",
                        self.addr.port()
                    )));
                }
                PortOwner::Nobody => {}
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(anyhow::anyhow!(
                    "{what} on {} not ready after {READY_TIMEOUT:?}: {}",
                    self.addr,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An error when the child has exited: [`StartError::PortTaken`] when it says the address
    /// was in use.
    fn check_running(&mut self, what: &str) -> Result<(), StartError> {
        let status = self
            .process
            .0
            .try_wait()
            .with_context(|| format!("waiting for {what}"))
            .map_err(StartError::Fatal)?;
        let Some(status) = status else {
            return Ok(());
        };
        let log = self.log_tail();
        let error = anyhow::anyhow!("{what} on {} exited at start-up with {status}: {log}", self.addr);
        Err(if log.to_ascii_lowercase().contains("address already in use") {
            StartError::PortTaken(error)
        } else {
            StartError::Fatal(error)
        })
    }

    /// The end of what the server wrote to stdout and stderr.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(LOG_TAIL);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].trim().to_owned()
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_listening_sockets_of_a_port_from_the_kernel_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:B32F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1397185 1 0 100 0 0 10 0\n\
            1: 0100007F:DEFA 0100007F:B32F 06 00000000:00000000 03:00001762 00000000     0        0 0 3 0\n\
            2: 0100007F:B32F 0100007F:DEFE 01 00000000:00000000 00:00000000 00000000     0        0 1397999 1 0\n";
        assert_eq!(listening_inodes(table, 0xB32F), ["1397185"]);
        assert!(listening_inodes(table, 0xDEFA).is_empty());
    }

    #[test]
    fn tells_our_listener_from_another_process_and_from_none() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        assert_eq!(port_owner(port, std::process::id())?, PortOwner::Process);
        let other = Process(Command::new("sleep").arg("30").stdin(Stdio::null()).spawn()?);
        assert_eq!(port_owner(port, other.0.id())?, PortOwner::Other);
        drop(listener);
        assert_eq!(port_owner(port, std::process::id())?, PortOwner::Nobody);
        Ok(())
    }

    #[test]
    fn a_bounded_number_of_taken_ports_then_the_last_error() {
        let mut attempts = 0;
        let error = retry_on_taken_port::<()>("server", || {
            attempts += 1;
            Err(StartError::PortTaken(anyhow::anyhow!("port {attempts} taken")))
        })
        .expect_err("every port taken");
        assert_eq!(attempts, START_ATTEMPTS);
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!(
                "server could not bind a free port in {START_ATTEMPTS} attempts"
            )) && message.contains(&format!("port {START_ATTEMPTS} taken")),
            "{message}"
        );

        let mut attempts = 0;
        let error = retry_on_taken_port::<()>("server", || {
            attempts += 1;
            Err(StartError::Fatal(anyhow::anyhow!("broken")))
        })
        .expect_err("fatal");
        assert_eq!((attempts, format!("{error}")), (1, "broken".to_owned()));
    }
}
