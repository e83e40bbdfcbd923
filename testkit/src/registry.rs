//! A real Docker distribution v2.8 registry (`/usr/bin/docker-registry`) on a free loopback
//! port, with its own storage directory, stopped and deleted when dropped.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, SanType,
};
use serde_json::json;
use tempfile::TempDir;

use crate::http;
use crate::oci::{self, HostAccess};
use crate::server::{Holder, PROBE_TIMEOUT, StartError, Starting, retry_on_taken_port};

/// User name of registries started with `basic_auth`.
pub const REGISTRY_USER: &str = "testkit";
/// Password of registries started with `basic_auth`.
pub const REGISTRY_PASSWORD: &str = "testkit-password";
/// bcrypt of [`REGISTRY_PASSWORD`] (distribution's htpasswd accepts bcrypt only).
const REGISTRY_PASSWORD_BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuKu3qrzfivQ9Ty16bCQTknpEk682L7BK";

/// How a [`Registry`] is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate for `127.0.0.1` issued by a fresh CA
    /// ([`Registry::ca_pem`]); for `source_authorities` tests.
    pub tls: bool,
    /// Require HTTP Basic credentials ([`REGISTRY_USER`] / [`REGISTRY_PASSWORD`]); for
    /// docker `config.json` tests.
    pub basic_auth: bool,
}

/// Where Debian's `docker-registry` package installs the registry binary.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// Runs the registry (`$0 serve $1`, pid written to `$2`) under `sh`, which kills it as soon as
/// its stdin reaches end of file. Only this process holds the pipe's write end, so the
/// registry dies when [`Registry`] stops it and also when the test process dies without
/// dropping it (killed by a timeout, aborted, or a registry kept in a `static`).
const SUPERVISOR: &str = r#"exec 3<&0
"$0" serve "$1" </dev/null 3<&- &
pid=$!
echo "$pid" > "$2"
(read -r _ <&3; kill -9 "$pid" 2>/dev/null) &
exec 3<&-
wait "$pid"
"#;

/// How long a registry may take from its spawn to its first good answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The registry's readiness probe: `GET /v2/` answers 200, or 400 from a TLS registry asked in
/// plain HTTP, or 401 from one that wants credentials: each means it serves.
fn registry_answers(addr: SocketAddr) -> bool {
    http::request(addr, "GET", "/v2/", &[], PROBE_TIMEOUT)
        .is_ok_and(|response| matches!(response.status, 200 | 400 | 401))
}

/// A running `docker-registry` process serving plain HTTP on `127.0.0.1:<port>`.
///
/// Dropping it kills the process, waits for it and removes its storage directory, also when
/// the test that owns it panics; the process also dies with the test process.
#[derive(Debug)]
pub struct Registry {
    /// The supervising shell; its stdin is the registry's lifeline.
    child: Option<Child>,
    registry_pid: Option<u32>,
    /// Whether its access is registered for the testkit's own clients ([`oci::register_host`]):
    /// only a started registry's is, and only that is unregistered on drop (a failed start's
    /// port may be another registry's).
    registered: bool,
    addr: SocketAddr,
    dir: TempDir,
    options: RegistryOptions,
    ca_pem: Option<String>,
}

impl Registry {
    /// Starts a registry on a free port and waits until the registry process holds the port
    /// (the kernel lists the listening socket among its file descriptors) and `GET /v2/`
    /// answers 200; no request is sent before, so none reaches another process.
    ///
    /// Retries with another port, up to 5 times, when a parallel test grabbed the port between
    /// picking and binding it: the registry exits because the address is in use, or another
    /// process listens there.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(RegistryOptions::default())
    }

    /// Starts a registry serving HTTPS and/or requiring credentials. The testkit's own push
    /// and sign functions know how to reach it by its host; clients under test must be given
    /// [`Registry::ca_pem`] and [`Registry::docker_config_json`].
    pub fn start_with(options: RegistryOptions) -> anyhow::Result<Self> {
        Self::start_with_binary(Path::new(REGISTRY_BINARY), options)
    }

    /// Like [`Registry::start_with`] with another registry binary (for tests of the fixture
    /// itself).
    pub fn start_with_binary(binary: &Path, options: RegistryOptions) -> anyhow::Result<Self> {
        if !binary.exists() {
            bail!(
                "{} not found: install the registry with `apt-get install docker-registry`",
                binary.display()
            );
        }
        Self::start_on(binary, options, &mut unused_local_addr)
    }

    /// [`Registry::start_with_binary`] on ports drawn from `next_addr`, one per attempt: for
    /// tests of the start itself, which hand it taken ports.
    fn start_on(
        binary: &Path,
        options: RegistryOptions,
        next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let what = binary.display().to_string();
        retry_on_taken_port(&what, || {
            let addr = next_addr().map_err(StartError::Fatal)?;
            Self::try_start(binary, &what, options, addr)
        })
    }

    fn try_start(binary: &Path, what: &str, options: RegistryOptions, addr: SocketAddr) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-registry-")
            .tempdir()
            .context("creating the registry directory")
            .map_err(StartError::Fatal)?;
        let ca_pem = write_support_files(dir.path(), options).map_err(StartError::Fatal)?;
        let config = config_yaml(dir.path(), addr, options);
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config)
            .context("writing the registry configuration")
            .map_err(StartError::Fatal)?;
        let log = fs::File::create(dir.path().join("registry.log"))
            .context("creating the registry log")
            .map_err(StartError::Fatal)?;
        let log_err = log
            .try_clone()
            .context("duplicating the registry log handle")
            .map_err(StartError::Fatal)?;
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(binary)
            .arg(&config_path)
            .arg(dir.path().join("registry.pid"))
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("spawning {what} on {addr}"))
            .map_err(StartError::Fatal)?;
        let mut registry = Registry {
            child: Some(child),
            registry_pid: None,
            registered: false,
            addr,
            dir,
            options,
            ca_pem,
        };
        // Stopped by its drop if it fails: the supervisor then kills the registry.
        registry.wait_ready(what)?;
        oci::register_host(
            &registry.host(),
            HostAccess {
                ca_pem: registry.ca_pem.clone(),
                credentials: options
                    .basic_auth
                    .then(|| (REGISTRY_USER.to_owned(), REGISTRY_PASSWORD.to_owned())),
            },
        );
        registry.registered = true;
        Ok(registry)
    }

    /// Waits until the registry process (not its supervisor: the pid it writes) holds the port
    /// and answers, through the start every testkit server shares ([`Starting::wait_ready`]).
    fn wait_ready(&mut self, what: &str) -> Result<(), StartError> {
        let pid_file = self.dir.path().join("registry.pid");
        let log = self.log_path();
        let child = self
            .child
            .as_mut()
            .context("the registry's supervisor is not running")
            .map_err(StartError::Fatal)?;
        let pid = Starting {
            what,
            child,
            holder: Holder::PidFile(&pid_file),
            addrs: std::slice::from_ref(&self.addr),
            log: &log,
        }
        .wait_ready(READY_TIMEOUT, &|addrs| registry_answers(addrs[0]))?;
        self.registry_pid = Some(pid);
        Ok(())
    }

    /// `127.0.0.1:PORT`, the registry part of image references (`127.0.0.1:PORT/repo:tag`).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address the registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://…` for a TLS registry.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// How the registry is served.
    pub fn options(&self) -> RegistryOptions {
        self.options
    }

    /// The PEM of the CA that issued a TLS registry's certificate (what a `sources.yaml`
    /// `source_authorities` entry must hold); `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A docker `config.json` granting access to this registry
    /// (`{"auths":{"127.0.0.1:PORT":{"auth":"<base64 user:password>"}}}`), or with no entries
    /// when the registry needs no credentials.
    pub fn docker_config_json(&self) -> String {
        let mut auths = serde_json::Map::new();
        if self.options.basic_auth {
            auths.insert(
                self.host(),
                json!({"auth": BASE64.encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"))}),
            );
        }
        json!({ "auths": auths }).to_string()
    }

    /// The `docker-registry` process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and(self.registry_pid)
    }

    /// The directory holding the configuration, the log and the blob storage.
    pub fn root_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the registry wrote to stdout/stderr so far (errors only, plus start-up failures).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the registry and waits for it: its port refuses connections afterwards, which
    /// is how tests simulate "registry down". Storage stays until the value is dropped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // Closing the lifeline makes the supervisor kill the registry and exit after
            // reaping it, so the port is closed once `wait` returns.
            drop(child.stdin.take());
            child.wait().context("waiting for docker-registry to exit")?;
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if self.registered {
            oci::unregister_host(&self.host());
        }
        if let Err(error) = self.stop() {
            eprintln!("testkit: stopping docker-registry on {}: {error:#}", self.addr);
        }
    }
}

fn config_yaml(dir: &Path, addr: SocketAddr, options: RegistryOptions) -> String {
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n",
        dir.join("storage").display()
    );
    if options.tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("tls.crt").display(),
            dir.join("tls.key").display()
        ));
    }
    if options.basic_auth {
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: testkit\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    yaml
}

/// Writes the htpasswd file and the TLS certificate and key the options need; returns the
/// CA PEM of a TLS registry.
fn write_support_files(dir: &Path, options: RegistryOptions) -> anyhow::Result<Option<String>> {
    if options.basic_auth {
        fs::write(
            dir.join("htpasswd"),
            format!("{REGISTRY_USER}:{REGISTRY_PASSWORD_BCRYPT}\n"),
        )
        .context("writing htpasswd")?;
    }
    if !options.tls {
        return Ok(None);
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "testkit registry CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).context("self-signing the registry CA")?;
    let ca_issuer = Issuer::new(ca, ca_key);

    let server_key = rcgen::KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    server.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &ca_issuer)
        .context("issuing the registry certificate")?;
    fs::write(dir.join("tls.crt"), server_cert.pem()).context("writing tls.crt")?;
    fs::write(dir.join("tls.key"), server_key.serialize_pem()).context("writing tls.key")?;
    Ok(Some(ca_cert.pem()))
}

/// A loopback port that was free a moment ago, for a server to bind right away.
///
/// Another process may take it in between; for a port that must stay closed ("registry
/// down"), use [`ClosedPort`].
pub fn unused_local_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A loopback port held closed for as long as this value lives: a TCP socket bound to it that
/// never listens, so connections are refused and no other server (another test's registry,
/// started in parallel) can bind the port meanwhile, which an address merely found free cannot
/// promise.
pub struct ClosedPort {
    _socket: socket2::Socket,
    addr: SocketAddr,
}

impl ClosedPort {
    /// Binds a free loopback port without listening on it.
    pub fn new() -> anyhow::Result<Self> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .context("creating a TCP socket")?;
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        socket.bind(&any_port.into()).context("binding 127.0.0.1:0")?;
        let addr = socket
            .local_addr()?
            .as_socket()
            .context("the bound address is not an IP address")?;
        Ok(Self { _socket: socket, addr })
    }

    /// The closed address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use crate::server::{PortOwner, START_ATTEMPTS, assert_never_contacted, port_owner};

    /// A non-blocking listener standing for another process on a loopback port.
    fn squatter() -> anyhow::Result<(TcpListener, SocketAddr)> {
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        squatter.set_nonblocking(true)?;
        let addr = squatter.local_addr()?;
        Ok((squatter, addr))
    }

    #[test]
    fn a_squatted_port_is_given_up_for_a_fresh_one_without_contacting_the_squatter() -> anyhow::Result<()> {
        let (squatter, taken) = squatter()?;
        let mut draws = 0;
        let registry = Registry::start_on(Path::new(REGISTRY_BINARY), RegistryOptions::default(), &mut || {
            draws += 1;
            if draws == 1 { Ok(taken) } else { unused_local_addr() }
        })?;
        assert_eq!(draws, 2, "one start on the squatted port, one on a fresh port");
        assert_ne!(registry.addr(), taken);
        assert_never_contacted(&squatter);
        let pid = registry.pid().context("a started registry has a pid")?;
        assert_eq!(port_owner(registry.addr().port(), pid)?, PortOwner::Process);
        assert!(registry_answers(registry.addr()), "{}", registry.log());
        Ok(())
    }

    #[test]
    fn a_registry_that_does_not_hold_its_port_is_never_taken_for_the_listener_there() -> anyhow::Result<()> {
        // A "registry" that runs and never binds: only the ownership check can tell it from
        // the squatter listening on its port.
        let dir = tempfile::tempdir()?;
        let binary = dir.path().join("never-binds");
        // Written by a child process: a file this process held open for writing could be
        // inherited by a child another test spawns meanwhile, and running it would then fail
        // with ETXTBSY.
        let written = crate::run_bounded(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"printf '#!/bin/sh\nexec sleep 30\n' > "$0" && chmod +x "$0""#)
                .arg(&binary),
            Duration::from_secs(30),
        )?;
        assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
        let (squatter, taken) = squatter()?;
        let mut draws = 0;
        let started = Instant::now();
        let error = Registry::start_on(&binary, RegistryOptions::default(), &mut || {
            draws += 1;
            Ok(taken)
        })
        .expect_err("the port is never the registry's");
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "given up at once, not after a readiness timeout"
        );
        assert_eq!(draws, START_ATTEMPTS);
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!(
                "{} could not bind a free port in {START_ATTEMPTS} attempts",
                binary.display()
            )) && message.contains(&format!("port {} is held by another process", taken.port())),
            "{message}"
        );
        assert_never_contacted(&squatter);
        Ok(())
    }

    #[test]
    fn config_names_storage_and_address() {
        let addr: SocketAddr = ([127, 0, 0, 1], 5123).into();
        let yaml = config_yaml(Path::new("/tmp/x"), addr, RegistryOptions::default());
        assert!(yaml.contains("rootdirectory: /tmp/x/storage\n"));
        assert!(yaml.contains("addr: 127.0.0.1:5123\n"));
        assert!(yaml.contains("enabled: true\n"));
        assert!(!yaml.contains("tls:") && !yaml.contains("htpasswd"));
        let secured = config_yaml(
            Path::new("/tmp/x"),
            addr,
            RegistryOptions {
                tls: true,
                basic_auth: true,
            },
        );
        assert!(secured.contains("  tls:\n    certificate: /tmp/x/tls.crt\n    key: /tmp/x/tls.key\n"));
        assert!(secured.contains("auth:\n  htpasswd:\n    realm: testkit\n    path: /tmp/x/htpasswd\n"));
    }

    #[test]
    fn missing_binary_says_how_to_install() {
        let error = Registry::start_with_binary(Path::new("/nonexistent/docker-registry"), RegistryOptions::default())
            .expect_err("a missing binary cannot start");
        assert!(format!("{error}").contains("apt-get install docker-registry"));
    }
}
