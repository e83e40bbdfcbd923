//! Where KMS credentials may go, and how much of a KMS answer is read.
//!
//! * An `azurekms://VAULT/KEY` URI is written by a policy's author; its VAULT used to receive the
//!   Key Vault bearer token whatever host it named. The token is now sent only to a Key Vault or
//!   Managed HSM host (`*.vault.azure.net`, `*.managedhsm.azure.net` and the other clouds'), or to
//!   the endpoint the operator set (`--kms-azure-endpoint`, or a vault listed with
//!   `--kms-insecure-endpoint`); any other is refused before any request, the token's included.
//! * KMS answers used to be read whole (`Response::bytes`), bounded by the timeout alone. They are
//!   now read under a cap (64 KiB; 1 MiB for answers listing a key's versions): a hostile
//!   loopback server streaming without end, or announcing a huge length, is cut off having
//!   written little of the 256 MiB it would send, and the error names the cap.

mod hostile_registry;
mod kms_support;

use std::sync::Arc;
use std::time::Duration;

use cip::kms::{KmsConfig, KmsError, KmsResolver, Secret};
use hostile_registry::{Hostile, Reply, ok};
use kms_support::{AZURE_CLIENT, AZURE_SECRET, AZURE_TENANT, AzureEmulator, TestResult};
use testkit::ClosedPort;

/// Most bytes a hostile server may have written of an answer refused at a cap (the cap, and
/// what the socket buffers between the two ends hold); it sends 256 MiB to a client reading
/// whole.
const WRITTEN_BOUND: usize = 8 * 1024 * 1024;

/// A configuration that reaches nothing by accident: no credentials, no metadata server.
fn isolated() -> KmsConfig {
    let mut config = KmsConfig {
        timeout: Duration::from_secs(10),
        cache_ttl: Duration::ZERO,
        ..KmsConfig::default()
    };
    static METADATA: std::sync::OnceLock<ClosedPort> = std::sync::OnceLock::new();
    let closed = METADATA.get_or_init(|| ClosedPort::new().expect("closed port"));
    config.gcp.metadata_host = closed.addr().to_string();
    config
}

/// Azure client credentials whose token endpoint (Entra ID) is `authority`.
fn azure_credentials(config: &mut KmsConfig, authority: String) {
    config.azure.authority_host = authority;
    config.azure.tenant_id = Some(AZURE_TENANT.to_owned());
    config.azure.client_id = Some(AZURE_CLIENT.to_owned());
    config.azure.client_secret = Some(Secret::new(AZURE_SECRET));
}

fn resolver(config: KmsConfig) -> KmsResolver {
    KmsResolver::new(config).expect("resolver")
}

/// An Entra ID token answer.
fn token() -> Reply {
    ok(
        "application/json",
        br#"{"access_token":"the-key-vault-token","expires_in":3600,"token_type":"Bearer"}"#.to_vec(),
    )
}

// ------------------------------------------------------------------ azurekms:// hosts

/// The attacker's URIs name their own host (here a loopback server that records every request,
/// which also plays Entra ID): each is refused with a message naming it and the operator's
/// ways out, and no request is made, the token's neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_token_goes_to_key_vault_hosts_only() {
    let attacker = Hostile::serve(Arc::new(|request: &hostile_registry::Request| {
        if request.path.contains("/oauth2/") {
            token()
        } else {
            ok("application/json", b"{}".to_vec())
        }
    }));
    let mut config = isolated();
    azure_credentials(&mut config, format!("http://{}", attacker.host()));
    let kms = resolver(config);

    for vault in [
        attacker.host(),
        "evil.example".to_owned(),
        "myvault.vault.azure.net.evil.example".to_owned(),
        "evilvault.azure.net".to_owned(),
        "vault.azure.net".to_owned(),
        "localhost:443".to_owned(),
    ] {
        let uri = format!("azurekms://{vault}/cosign");
        let error = kms.public_key(&uri).await.expect_err(&uri);
        assert!(matches!(error, KmsError::UntrustedEndpoint { .. }), "{uri}: {error}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("{uri}: {vault} is not an Azure Key Vault or Managed HSM host")),
            "{message}"
        );
        assert!(message.contains("--kms-azure-endpoint"), "{message}");
        assert!(!message.contains("the-key-vault-token"), "{message}");
    }
    assert!(
        attacker.requests("").is_empty(),
        "requests were made: {:?}",
        attacker.requests("").iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

/// The operator's endpoints are theirs to choose: `--kms-azure-endpoint` (any URI's key is read
/// there) and a vault listed with `--kms-insecure-endpoint`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_azure_endpoints_are_used() -> TestResult {
    let emulator = AzureEmulator::start()?;

    let mut overridden = isolated();
    azure_credentials(&mut overridden, emulator.url());
    overridden.azure.endpoint = Some(emulator.url());
    let kms = resolver(overridden);
    for uri in [
        "azurekms://myvault.vault.azure.net/cosign",
        "azurekms://keys.internal/cosign",
    ] {
        let pem = kms.public_key(uri).await?;
        assert!(pem.contains("-----BEGIN PUBLIC KEY-----"), "{uri}: {pem}");
    }

    let mut listed = isolated();
    azure_credentials(&mut listed, emulator.url());
    listed.insecure_endpoints = vec![emulator.vault()];
    let pem = resolver(listed)
        .public_key(&format!("azurekms://{}/cosign", emulator.vault()))
        .await?;
    assert!(pem.contains("-----BEGIN PUBLIC KEY-----"), "{pem}");
    Ok(())
}

// ------------------------------------------------------------------ answer caps

/// The Azure key answer (64 KiB cap) endless, announced huge, or an endless error; the token
/// answer endless. Each is refused having been read little.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_answers_over_the_cap_are_refused_unread() {
    for (name, key_reply, token_reply) in [
        (
            "endless key answer",
            Reply::endless_whitespace as fn() -> Reply,
            token as fn() -> Reply,
        ),
        (
            "announced key answer",
            || Reply::Announced {
                length: 1 << 40,
                fill: b' ',
            },
            token,
        ),
        ("endless token answer", token, Reply::endless_whitespace),
    ] {
        let server = Hostile::serve(Arc::new(move |request: &hostile_registry::Request| {
            if request.path.contains("/oauth2/") {
                token_reply()
            } else {
                key_reply()
            }
        }));
        let mut config = isolated();
        azure_credentials(&mut config, format!("http://{}", server.host()));
        config.azure.endpoint = Some(format!("http://{}", server.host()));
        let error = resolver(config)
            .public_key("azurekms://myvault.vault.azure.net/cosign")
            .await
            .expect_err(name);

        let message = error.to_string();
        assert!(message.contains("answer over 65536 bytes"), "{name}: {message}");
        assert!(
            server.written() < WRITTEN_BOUND,
            "{name}: {} bytes written",
            server.written()
        );
    }
}

/// An endless error answer: the status is reported from the answer's first bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_answer_is_reported_from_its_start() {
    let server = Hostile::serve(Arc::new(|request: &hostile_registry::Request| {
        if request.path.contains("/oauth2/") {
            token()
        } else {
            Reply::endless_error(500)
        }
    }));
    let mut config = isolated();
    azure_credentials(&mut config, format!("http://{}", server.host()));
    config.azure.endpoint = Some(format!("http://{}", server.host()));

    let error = resolver(config)
        .public_key("azurekms://myvault.vault.azure.net/cosign")
        .await
        .expect_err("an error answer");

    assert!(matches!(error, KmsError::Answer { .. }), "{error}");
    assert!(error.to_string().contains("HTTP 500"), "{error}");
    assert!(server.written() < WRITTEN_BOUND, "{} bytes written", server.written());
}

/// Vault's transit key answer lists every version's public key: its cap is 1 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_answer_over_the_cap_is_refused_unread() {
    let server = Hostile::start(Arc::new(|_: &str| Reply::endless_whitespace()));
    let mut config = isolated();
    config.vault.addr = Some(format!("http://{}", server.host()));
    config.vault.token = Some(Secret::new("vault-token"));

    let error = resolver(config)
        .public_key("hashivault://cosign")
        .await
        .expect_err("endless answer");

    assert!(matches!(error, KmsError::Answer { .. }), "{error}");
    assert!(error.to_string().contains("answer over 1048576 bytes"), "{error}");
    assert!(server.written() < WRITTEN_BOUND, "{} bytes written", server.written());
}

/// GCP's metadata server, last in the credentials chain, answering its token without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcp_token_answer_over_the_cap_is_refused_unread() {
    let server = Hostile::start(Arc::new(|_: &str| Reply::endless_whitespace()));
    let mut config = isolated();
    config.gcp.metadata_host = server.host();
    config.gcp.endpoint = format!("http://{}", server.host());

    let error = resolver(config)
        .public_key("gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1")
        .await
        .expect_err("endless token answer");

    assert!(error.to_string().contains("answer over 65536 bytes"), "{error}");
    assert!(server.written() < WRITTEN_BOUND, "{} bytes written", server.written());
}

/// `cip kms resolve` (a process of its own: the AWS SDK reads its environment) with an
/// `awskms://` key on a loopback server, and `extra_env`.
fn resolve_aws(server: &Hostile, extra_env: &[(&str, String)]) -> TestResult<String> {
    let dir = tempfile::tempdir()?;
    let policy =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/testdata/article/kms-signed-policy.yaml");
    let text = std::fs::read_to_string(policy)?.replace(
        "gcpkms://projects/PROJECT_ID/locations/us-central1/keyRings/cosign/cryptoKeys/cosign-key",
        &format!("awskms://{}/alias/cosign", server.host()),
    );
    let input = dir.path().join("policy.yaml");
    std::fs::write(&input, text)?;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["kms", "resolve", "--kms-timeout", "20s", "--kms-insecure-endpoint"])
        .arg(server.host())
        .arg("-f")
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("out.yaml"))
        .stdin(std::process::Stdio::null());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let run = testkit::run_bounded(&mut command, Duration::from_secs(120))?;
    assert!(!run.status.success(), "resolved from an endless answer");
    Ok(String::from_utf8_lossy(&run.stderr).into_owned())
}

/// AWS KMS's `GetPublicKey` answer, and a credential endpoint's (the AWS SDK's HTTP client is
/// `cip`'s), endless: each refused at 64 KiB.
#[test]
fn aws_answers_over_the_cap_are_refused_unread() -> TestResult {
    let kms = Hostile::start(Arc::new(|_: &str| Reply::endless_whitespace()));
    let stderr = resolve_aws(
        &kms,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "secret".to_owned()),
        ],
    )?;
    assert!(stderr.contains("answer over 65536 bytes"), "{stderr}");
    assert!(kms.written() < WRITTEN_BOUND, "{} bytes written", kms.written());

    let credentials = Hostile::start(Arc::new(|_: &str| Reply::endless_whitespace()));
    let stderr = resolve_aws(
        &credentials,
        &[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{}/creds", credentials.host()),
        )],
    )?;
    assert!(stderr.contains("answer over 65536 bytes"), "{stderr}");
    assert!(
        credentials.written() < WRITTEN_BOUND,
        "{} bytes written",
        credentials.written()
    );
    Ok(())
}
