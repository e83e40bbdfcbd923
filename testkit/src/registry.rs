//! A real Docker distribution v2.8 registry (`/usr/bin/docker-registry`) on a free loopback
//! port, with its own storage directory, stopped and deleted when dropped.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::http;

/// Where Debian's `docker-registry` package installs the registry binary.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `docker-registry` process serving plain HTTP on `127.0.0.1:<port>`.
///
/// Dropping it kills the process, waits for it and removes its storage directory, also when
/// the test that owns it panics.
#[derive(Debug)]
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: TempDir,
}

impl Registry {
    /// Starts a registry on a free port and waits until `GET /v2/` answers 200.
    ///
    /// Retries with another port when a parallel test grabbed the port between picking and
    /// binding it.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_binary(Path::new(REGISTRY_BINARY))
    }

    /// Like [`Registry::start`] with another registry binary (for tests of the fixture itself).
    pub fn start_with_binary(binary: &Path) -> anyhow::Result<Self> {
        if !binary.exists() {
            bail!(
                "{} not found: install the registry with `apt-get install docker-registry`",
                binary.display()
            );
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(binary) {
                Ok(registry) => return Ok(registry),
                Err(StartError::PortTaken(error)) => last_error = Some(error),
                Err(StartError::Fatal(error)) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no start attempt made"))
            .context(format!(
                "docker-registry could not bind a free port in {START_ATTEMPTS} attempts"
            )))
    }

    fn try_start(binary: &Path) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-registry-")
            .tempdir()
            .context("creating the registry directory")
            .map_err(StartError::Fatal)?;
        let addr = unused_local_addr().map_err(StartError::Fatal)?;
        let config = config_yaml(&dir.path().join("storage"), addr);
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
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))
            .map_err(StartError::Fatal)?;
        let mut registry = Registry {
            child: Some(child),
            addr,
            dir,
        };
        registry.wait_ready()?;
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
            if let Ok(response) = http::request(self.addr, "GET", "/v2/", &[], Duration::from_millis(500))
                && response.status == 200
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

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id while the registry runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
            // kill fails only when the process already exited; wait reaps it either way.
            let _ = child.kill();
            child.wait().context("waiting for docker-registry to exit")?;
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("testkit: stopping docker-registry on {}: {error:#}", self.addr);
        }
    }
}

enum StartError {
    PortTaken(anyhow::Error),
    Fatal(anyhow::Error),
}

impl From<StartError> for anyhow::Error {
    fn from(error: StartError) -> Self {
        match error {
            StartError::PortTaken(error) | StartError::Fatal(error) => error,
        }
    }
}

fn config_yaml(storage: &Path, addr: SocketAddr) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n",
        storage.display()
    )
}

/// A loopback address with nothing listening on it: connections are refused.
///
/// The port was free a moment ago; another process may take it later, so use it right away.
pub fn unused_local_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_storage_and_address() {
        let addr: SocketAddr = ([127, 0, 0, 1], 5123).into();
        let yaml = config_yaml(Path::new("/tmp/x"), addr);
        assert!(yaml.contains("rootdirectory: /tmp/x\n"));
        assert!(yaml.contains("addr: 127.0.0.1:5123\n"));
        assert!(yaml.contains("enabled: true\n"));
    }

    #[test]
    fn missing_binary_says_how_to_install() {
        let error = Registry::start_with_binary(Path::new("/nonexistent/docker-registry"))
            .expect_err("a missing binary cannot start");
        assert!(format!("{error}").contains("apt-get install docker-registry"));
    }
}
