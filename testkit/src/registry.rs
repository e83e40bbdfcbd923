//! A real Docker distribution v2.8 registry (`/usr/bin/docker-registry`) on a free loopback
//! port, with its own storage directory, stopped and deleted when dropped.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
use crate::server::{StartError, retry_on_taken_port};

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

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `docker-registry` process serving plain HTTP on `127.0.0.1:<port>`.
///
/// Dropping it kills the process, waits for it and removes its storage directory, also when
/// the test that owns it panics; the process also dies with the test process.
#[derive(Debug)]
pub struct Registry {
    /// The supervising shell; its stdin is the registry's lifeline.
    child: Option<Child>,
    registry_pid: Option<u32>,
    addr: SocketAddr,
    dir: TempDir,
    options: RegistryOptions,
    ca_pem: Option<String>,
}

impl Registry {
    /// Starts a registry on a free port and waits until `GET /v2/` answers 200.
    ///
    /// Retries with another port when a parallel test grabbed the port between picking and
    /// binding it.
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
        retry_on_taken_port("docker-registry", || Self::try_start(binary, options))
    }

    fn try_start(binary: &Path, options: RegistryOptions) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-registry-")
            .tempdir()
            .context("creating the registry directory")
            .map_err(StartError::Fatal)?;
        let addr = unused_local_addr().map_err(StartError::Fatal)?;
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
            .with_context(|| format!("spawning {}", binary.display()))
            .map_err(StartError::Fatal)?;
        let mut registry = Registry {
            child: Some(child),
            registry_pid: None,
            addr,
            dir,
            options,
            ca_pem,
        };
        registry.wait_ready()?;
        registry.registry_pid = fs::read_to_string(registry.dir.path().join("registry.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse().ok());
        oci::register_host(
            &registry.host(),
            HostAccess {
                ca_pem: registry.ca_pem.clone(),
                credentials: options
                    .basic_auth
                    .then(|| (REGISTRY_USER.to_owned(), REGISTRY_PASSWORD.to_owned())),
            },
        );
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = self.log();
                let error = anyhow::anyhow!("docker-registry exited with {status}: {log}");
                return Err(if log.contains("address already in use") {
                    StartError::PortTaken(error)
                } else {
                    StartError::Fatal(error)
                });
            }
            // A TLS registry answers plain HTTP with 400, an auth registry with 401: both mean
            // it is serving.
            if let Ok(response) = http::request(self.addr, "GET", "/v2/", &[], Duration::from_millis(500))
                && matches!(response.status, 200 | 400 | 401)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(anyhow::anyhow!(
                    "docker-registry on {} not ready after {READY_TIMEOUT:?}: {}",
                    self.addr,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
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
        oci::unregister_host(&self.host());
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
