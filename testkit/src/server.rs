//! Servers started as child processes on a loopback port of their own.
//!
//! A port found free ([`unused_local_addr`]) is released before the child binds it: another
//! process (a parallel test's server, an outgoing connection's ephemeral port) may take it in
//! between. So a start is retried on fresh ports when the child could not bind
//! ([`StartError::PortTaken`], [`retry_on_taken_port`]), and [`Starting::wait_ready`] (how
//! [`ServerProcess`] and the [`Registry`](crate::Registry) wait for their child) counts a port
//! as the child's only once the kernel lists the port's listening socket among the child's own
//! file descriptors: no request is ever sent to a process that listened there first. A server
//! that listens on several ports (`cip provider`: HTTPS and metrics) is ready only once it
//! holds every one of them.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// How long a server may take from its spawn to its first good answer, unless its start says
/// otherwise.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound of each readiness request.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a server's output an error quotes.
const LOG_TAIL: usize = 2000;

/// A server child process listening on `127.0.0.1` ports of its own, its stdout and stderr in
/// a log file; killed (and waited for) on drop.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    process: Process,
    /// The ports it holds, in the order its start drew them.
    addrs: Vec<SocketAddr>,
    _log_dir: TempDir,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts a server on one port: [`ServerProcess::start_holding`] with one port and
    /// [`READY_TIMEOUT`].
    pub(crate) fn start(
        what: &str,
        next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
        command: &dyn Fn(SocketAddr) -> Command,
        ready: &dyn Fn(SocketAddr) -> bool,
    ) -> anyhow::Result<Self> {
        Self::start_holding(
            what,
            1,
            READY_TIMEOUT,
            next_addr,
            &|addrs| command(addrs[0]),
            &|addrs| ready(addrs[0]),
        )
    }

    /// [`ServerProcess::start`] on ports from [`unused_local_addr`].
    pub(crate) fn start_on_free_port(
        what: &str,
        command: &dyn Fn(SocketAddr) -> Command,
        ready: &dyn Fn(SocketAddr) -> bool,
    ) -> anyhow::Result<Self> {
        Self::start(what, &mut unused_local_addr, command, ready)
    }

    /// Starts `command(addrs)` on `ports` distinct ports drawn from `next_addr` (normally
    /// [`unused_local_addr`]), in the order drawn, and waits (at most `ready_timeout`) until
    /// the child holds every one of them and `ready(addrs)` (bounded requests to them) says it
    /// serves; `ready` is never called before. A child that exits because a port is in use,
    /// or finds any of its ports held by another process, is killed and started again on
    /// fresh ports, [`START_ATTEMPTS`] in all (a port drawn twice counts as taken).
    pub(crate) fn start_holding(
        what: &str,
        ports: usize,
        ready_timeout: Duration,
        next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
        command: &dyn Fn(&[SocketAddr]) -> Command,
        ready: &dyn Fn(&[SocketAddr]) -> bool,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(ports > 0, "{what}: a server listens on at least one port");
        retry_on_taken_port(what, || {
            let addrs = draw_addrs(ports, next_addr)?;
            Self::try_start(what, addrs, ready_timeout, command, ready)
        })
    }

    fn try_start(
        what: &str,
        addrs: Vec<SocketAddr>,
        ready_timeout: Duration,
        command: &dyn Fn(&[SocketAddr]) -> Command,
        ready: &dyn Fn(&[SocketAddr]) -> bool,
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
        let mut command = command(&addrs);
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {what} ({:?})", command.get_program()))
            .map_err(fatal)?;
        let mut server = Self {
            process: Process(child),
            addrs,
            _log_dir: log_dir,
            log,
        };
        Starting {
            what,
            child: &mut server.process.0,
            holder: Holder::Child,
            addrs: &server.addrs,
            log: &server.log,
        }
        .wait_ready(ready_timeout, ready)?;
        Ok(server)
    }

    /// `127.0.0.1:PORT`, the first port (the only one of a one-port server).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every port's `127.0.0.1:PORT`, in the order [`ServerProcess::start_holding`] drew them.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// Which process must hold the ports of a server being started.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Holder<'a> {
    /// The child process itself.
    Child,
    /// The process whose id the child writes to this file: a server the child starts and
    /// supervises (the [`Registry`](crate::Registry)'s shell). Unknown, so holding nothing,
    /// until the file holds a process id.
    PidFile(&'a Path),
}

/// A server child process being started, as [`Starting::wait_ready`] watches it: one
/// implementation of "the child serves on ports of its own" for every server the testkit starts
/// ([`ServerProcess`] and the [`Registry`](crate::Registry)).
pub(crate) struct Starting<'a> {
    /// What errors call the server (its name or its binary).
    pub(crate) what: &'a str,
    /// The process spawned; whether it still runs says whether the start can still succeed.
    pub(crate) child: &'a mut Child,
    /// The process that must hold every port.
    pub(crate) holder: Holder<'a>,
    /// The ports it was told to listen on.
    pub(crate) addrs: &'a [SocketAddr],
    /// Where its stdout and stderr go; errors quote the end.
    pub(crate) log: &'a Path,
}

impl Starting<'_> {
    /// Waits (at most `ready_timeout`) until the holder holds every port and `ready(addrs)`
    /// (bounded requests to them) says it serves; `ready` is never called before, so no
    /// request reaches another process. Answers the holder's process id.
    ///
    /// A child that exits saying its address is in use, or a port held by another process,
    /// is [`StartError::PortTaken`] (the caller kills the child and tries fresh ports); a child
    /// that exits otherwise, or is not ready in time, is [`StartError::Fatal`]. Both name
    /// `what`, its addresses and the end of its log.
    pub(crate) fn wait_ready(
        &mut self,
        ready_timeout: Duration,
        ready: &dyn Fn(&[SocketAddr]) -> bool,
    ) -> Result<u32, StartError> {
        let deadline = Instant::now() + ready_timeout;
        loop {
            self.check_running()?;
            let holder = self.holder_pid();
            let mut held = 0;
            if let Some(pid) = holder {
                for addr in self.addrs {
                    match port_owner(addr.port(), pid).map_err(StartError::Fatal)? {
                        PortOwner::Process => held += 1,
                        PortOwner::Other => {
                            // The child may have exited in between: its own report is the better one.
                            self.check_running()?;
                            return Err(StartError::PortTaken(anyhow::anyhow!(
                                "{}: port {} is held by another process",
                                self.what,
                                addr.port()
                            )));
                        }
                        PortOwner::Nobody => {}
                    }
                }
            }
            // Still the one listening after a good answer: it did not exit after answering.
            if let Some(pid) = holder
                && held == self.addrs.len()
                && ready(self.addrs)
            {
                self.check_running()?;
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(anyhow::anyhow!(
                    "{} on {} not ready after {ready_timeout:?} (holding {held} of its ports): {}",
                    self.what,
                    addrs_text(self.addrs),
                    log_tail(self.log)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The id of the process that must hold the ports, once known.
    fn holder_pid(&self) -> Option<u32> {
        match self.holder {
            Holder::Child => Some(self.child.id()),
            Holder::PidFile(path) => fs::read_to_string(path).ok()?.trim().parse().ok(),
        }
    }

    /// An error when the child has exited: [`StartError::PortTaken`] when it says the address
    /// was in use.
    fn check_running(&mut self) -> Result<(), StartError> {
        let what = self.what;
        let status = self
            .child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))
            .map_err(StartError::Fatal)?;
        let Some(status) = status else {
            return Ok(());
        };
        let log = log_tail(self.log);
        let error = anyhow::anyhow!(
            "{what} on {} exited at start-up with {status}: {log}",
            addrs_text(self.addrs)
        );
        Err(if log.to_ascii_lowercase().contains("address already in use") {
            StartError::PortTaken(error)
        } else {
            StartError::Fatal(error)
        })
    }
}

/// The end of what a server wrote to its log (stdout and stderr).
fn log_tail(log: &Path) -> String {
    let log = fs::read_to_string(log).unwrap_or_default();
    let start = log.len().saturating_sub(LOG_TAIL);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    log[start..].trim().to_owned()
}

/// The addresses, `127.0.0.1:PORT, 127.0.0.1:PORT`.
fn addrs_text(addrs: &[SocketAddr]) -> String {
    let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    addrs.join(", ")
}

/// `count` addresses from `next_addr` on distinct ports; a port drawn twice is
/// [`StartError::PortTaken`] (the child could not bind it twice), so the start draws afresh.
fn draw_addrs(
    count: usize,
    next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
) -> Result<Vec<SocketAddr>, StartError> {
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(count);
    for _ in 0..count {
        let addr = next_addr().map_err(StartError::Fatal)?;
        if addrs.iter().any(|drawn| drawn.port() == addr.port()) {
            return Err(StartError::PortTaken(anyhow::anyhow!(
                "port {} was drawn twice for one server",
                addr.port()
            )));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

/// Asserts that nobody connected to `squatter` (a non-blocking listener standing for another
/// process on a port): its `accept()` would block.
#[cfg(test)]
#[track_caller]
pub(crate) fn assert_never_contacted(squatter: &std::net::TcpListener) {
    let contacted = squatter.accept();
    assert!(
        matches!(&contacted, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "the squatter was contacted: {contacted:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::net::TcpListener;

    use crate::kms::test_tool;

    /// A server that listens on each port given (after `DELAY` seconds between two binds)
    /// and sleeps; a port it cannot bind is skipped, not an exit: it then holds some of its
    /// ports only.
    const LISTENER: &str = r#"
import socket, sys, time
held = []
for i, port in enumerate(sys.argv[2:]):
    if i:
        time.sleep(float(sys.argv[1]))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(port)))
        s.listen()
        held.append(s)
    except OSError:
        pass
time.sleep(60)
"#;

    fn listener(delay: &str) -> anyhow::Result<impl Fn(&[SocketAddr]) -> Command> {
        let python = test_tool("python")?;
        let delay = delay.to_owned();
        Ok(move |addrs: &[SocketAddr]| {
            let mut command = Command::new(&python);
            command.arg("-c").arg(LISTENER).arg(&delay);
            command.args(addrs.iter().map(|addr| addr.port().to_string()));
            command
        })
    }

    /// The addresses from `first`, fresh ones after them; counts the draws.
    fn these_then_free<'a>(
        first: Vec<SocketAddr>,
        draws: &'a Cell<usize>,
    ) -> impl FnMut() -> anyhow::Result<SocketAddr> + 'a {
        let mut first = first.into_iter();
        move || {
            draws.set(draws.get() + 1);
            first.next().map_or_else(unused_local_addr, Ok)
        }
    }

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

    #[test]
    fn a_server_holding_one_of_its_ports_while_another_process_holds_the_other_is_started_again() -> anyhow::Result<()>
    {
        let squatter = TcpListener::bind("127.0.0.1:0")?;
        squatter.set_nonblocking(true)?;
        let taken = squatter.local_addr()?;
        let draws = Cell::new(0);
        let asked = RefCell::new(Vec::new());
        let server = ServerProcess::start_holding(
            "listener",
            2,
            READY_TIMEOUT,
            &mut these_then_free(vec![unused_local_addr()?, taken], &draws),
            &listener("0")?,
            &|addrs| {
                asked.borrow_mut().push(addrs.to_vec());
                true
            },
        )?;
        let addrs = server.addrs().to_vec();
        assert_eq!((addrs.len(), draws.get()), (2, 4), "{addrs:?}");
        assert!(
            !addrs.contains(&taken) && addrs[0].port() != addrs[1].port(),
            "{addrs:?}"
        );
        assert_eq!(
            *asked.borrow(),
            std::slice::from_ref(&addrs),
            "ready is asked only of a server holding all"
        );
        for addr in &addrs {
            assert_eq!(port_owner(addr.port(), server.process.0.id())?, PortOwner::Process);
        }
        assert_never_contacted(&squatter);
        Ok(())
    }

    #[test]
    fn ready_is_asked_only_once_every_port_is_held() -> anyhow::Result<()> {
        let pending = Cell::new(0);
        let server = ServerProcess::start_holding(
            "listener",
            2,
            READY_TIMEOUT,
            &mut unused_local_addr,
            &listener("1")?,
            &|addrs| {
                // Someone (the child: not this process) listens on each.
                for addr in addrs {
                    if port_owner(addr.port(), std::process::id()).is_ok_and(|owner| owner != PortOwner::Other) {
                        pending.set(pending.get() + 1);
                    }
                }
                true
            },
        )?;
        assert_eq!(pending.get(), 0, "ready was asked before the second port was held");
        assert_eq!(server.addrs().len(), 2);
        Ok(())
    }

    #[test]
    fn a_port_drawn_twice_is_given_up_before_any_start() -> anyhow::Result<()> {
        let port = unused_local_addr()?;
        let draws = Cell::new(0);
        let starts = Cell::new(0);
        let command = listener("0")?;
        let server = ServerProcess::start_holding(
            "listener",
            2,
            READY_TIMEOUT,
            &mut these_then_free(vec![port, port], &draws),
            &|addrs| {
                starts.set(starts.get() + 1);
                command(addrs)
            },
            &|_| true,
        )?;
        assert_eq!((draws.get(), starts.get()), (4, 1));
        assert_ne!(server.addrs()[0].port(), server.addrs()[1].port());
        Ok(())
    }
}
