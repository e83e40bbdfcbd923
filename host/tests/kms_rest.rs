//! `KmsResolver` against real and emulated KMSs: HashiCorp Vault's API served by OpenBao's dev
//! server, and the Google Cloud KMS and Azure Key Vault emulators of `kms_support` (no local
//! server exists for those two). Each error a user can meet has its test: unknown scheme,
//! malformed URI, key not found, access denied, not a signing key, unreachable, slow.

mod kms_support;

use std::time::{Duration, Instant};

use cip::kms::{KmsConfig, KmsError, KmsResolver, KmsUriError, Secret};
use kms_support::*;
use testkit::{ClosedPort, OPENBAO_ROOT_TOKEN, OpenBao, SlowServer};

/// A configuration that reaches nothing by accident: no credentials, no metadata server.
fn isolated() -> KmsConfig {
    let mut config = KmsConfig {
        timeout: Duration::from_secs(3),
        ..KmsConfig::default()
    };
    // One port held closed for the whole test binary: GCP's metadata server is never reached.
    static METADATA: std::sync::OnceLock<ClosedPort> = std::sync::OnceLock::new();
    let closed = METADATA.get_or_init(|| ClosedPort::new().expect("closed port"));
    config.gcp.metadata_host = closed.addr().to_string();
    config
}

fn resolver(config: KmsConfig) -> KmsResolver {
    KmsResolver::new(config).expect("resolver")
}

fn der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

// ------------------------------------------------------------------ URIs

#[tokio::test]
async fn unknown_schemes_and_malformed_uris_are_refused_before_any_request() {
    let kms = resolver(isolated());
    let error = kms.public_key("k8s://cosign/key").await.unwrap_err();
    assert!(matches!(error, KmsError::Uri(KmsUriError::UnknownScheme(_))), "{error}");
    assert!(
        error
            .to_string()
            .contains("use awskms://, gcpkms://, azurekms:// or hashivault://")
    );
    let error = kms.public_key("gcpkms://projects/p/keyRings/r").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "malformed gcpkms URI: expected gcpkms://projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY[/cryptoKeyVersions/VERSION]"
    );
}

// ------------------------------------------------------------------ Vault (OpenBao)

fn vault_config(bao: &OpenBao, token: &str) -> KmsConfig {
    let mut config = isolated();
    config.vault.addr = Some(bao.addr());
    config.vault.token = Some(Secret::new(token));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_keys_are_cached_for_their_ttl_and_a_rotated_key_is_picked_up_after_it() -> TestResult {
    let bao = OpenBao::start()?;
    bao.create_key("cosign", "ecdsa-p256")?;
    let mut long = vault_config(&bao, OPENBAO_ROOT_TOKEN);
    long.cache_ttl = Duration::from_secs(3600);
    let long = resolver(long);
    let mut short = vault_config(&bao, OPENBAO_ROOT_TOKEN);
    short.cache_ttl = Duration::from_millis(200);
    let short = resolver(short);
    let before = long.public_key("hashivault://cosign").await?;
    assert_eq!(short.public_key("hashivault://cosign").await?, before);

    bao.rotate_key("cosign")?;
    let answer = bao.request("GET", "/v1/transit/keys/cosign", None)?;
    let rotated = answer["data"]["keys"]["2"]["public_key"]
        .as_str()
        .ok_or("no version 2")?;
    assert_ne!(rotated, before);
    // Cached for its TTL (an hour): still the key read before the rotation.
    assert_eq!(long.public_key("hashivault://cosign").await?, before);
    // Once the TTL has passed, the KMS is asked again and the new version is answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(short.public_key("hashivault://cosign").await?, rotated);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_transit_keys_resolve_to_the_newest_version_and_errors_are_told_apart() -> TestResult {
    let bao = OpenBao::start()?;
    bao.create_key("cosign", "ecdsa-p256")?;
    bao.create_key("edkey", "ed25519")?;
    bao.create_key("aes", "aes256-gcm96")?;
    let mut config = vault_config(&bao, OPENBAO_ROOT_TOKEN);
    config.cache_ttl = Duration::ZERO;
    let kms = resolver(config);

    let pem = kms.public_key("hashivault://cosign").await?;
    let answer = bao.request("GET", "/v1/transit/keys/cosign", None)?;
    assert_eq!(answer["data"]["keys"]["1"]["public_key"].as_str(), Some(pem.as_str()));

    // A rotation adds version 2: that is the key cosign signs with from now on.
    bao.rotate_key("cosign")?;
    let rotated = kms.public_key("hashivault://cosign").await?;
    let answer = bao.request("GET", "/v1/transit/keys/cosign", None)?;
    assert_eq!(
        answer["data"]["keys"]["2"]["public_key"].as_str(),
        Some(rotated.as_str())
    );
    assert_ne!(pem, rotated);

    // Ed25519 keys come back as raw bytes and are wrapped into a PEM public key.
    let ed = kms.public_key("hashivault://edkey").await?;
    assert!(ed.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{ed}");
    assert_eq!(der(&ed).len(), 44, "Ed25519 SPKI");

    let error = kms.public_key("hashivault://aes").await.unwrap_err();
    assert!(matches!(error, KmsError::NotSigningKey { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "hashivault://aes: not a signing key (transit key type aes256-gcm96 cannot sign): cosign needs an asymmetric signing key"
    );

    let error = kms.public_key("hashivault://missing").await.unwrap_err();
    assert!(matches!(error, KmsError::NotFound { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("hashivault://missing: key not found (HTTP 404"),
        "{error}"
    );

    let denied = resolver(vault_config(&bao, "not-a-token"));
    let error = denied.public_key("hashivault://cosign").await.unwrap_err();
    assert!(matches!(error, KmsError::AccessDenied { .. }), "{error}");
    assert!(
        !error.to_string().contains("not-a-token"),
        "the token never shows: {error}"
    );
    Ok(())
}

#[tokio::test]
async fn vault_without_address_or_reachable_server_says_so() -> TestResult {
    let kms = resolver(isolated());
    let error = kms.public_key("hashivault://cosign").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "hashivault://cosign: no hashivault credentials: set VAULT_ADDR to the Vault (or OpenBao) address"
    );

    let mut config = isolated();
    let closed = ClosedPort::new()?;
    config.vault.addr = Some(format!("http://{}", closed.addr()));
    config.vault.token = Some(Secret::new("s.secret-token"));
    let error = resolver(config).public_key("hashivault://cosign").await.unwrap_err();
    assert!(matches!(error, KmsError::Unreachable { .. }), "{error}");
    assert!(!error.to_string().contains("s.secret-token"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_that_never_answers_is_cut_at_the_timeout() -> TestResult {
    let slow = SlowServer::start()?;
    let mut config = isolated();
    config.timeout = Duration::from_millis(500);
    config.vault.addr = Some(format!("http://{}", slow.host()));
    config.vault.token = Some(Secret::new("t"));
    let kms = resolver(config);
    let started = Instant::now();
    let error = kms.public_key("hashivault://cosign").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "hang guard");
    assert!(
        matches!(error, KmsError::Timeout { .. } | KmsError::Unreachable { .. }),
        "{error}"
    );
    assert!(error.to_string().starts_with("hashivault://cosign: "), "{error}");
    Ok(())
}

// ------------------------------------------------------------------ Google Cloud KMS (emulator)

fn gcp_config(emulator: &GcpEmulator, dir: &tempfile::TempDir) -> TestResult<KmsConfig> {
    let file = dir.path().join("sa.json");
    std::fs::write(&file, emulator.credentials_json()?)?;
    let mut config = isolated();
    config.gcp.endpoint = emulator.url();
    config.gcp.credentials_file = Some(file);
    Ok(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_service_account_credentials_resolve_the_newest_enabled_version() -> TestResult {
    let emulator = GcpEmulator::start()?;
    let dir = tempfile::tempdir()?;
    let kms = resolver(gcp_config(&emulator, &dir)?);

    let pem = kms.public_key(&GcpEmulator::uri("cosign")).await?;
    assert_eq!(pem, emulator.key_b.public_key_pem(), "version 10 is newer than 2 and 1");
    let pinned = kms
        .public_key(&format!("{}/cryptoKeyVersions/1", GcpEmulator::uri("cosign")))
        .await?;
    assert_eq!(pinned, emulator.key_a.public_key_pem());

    // Cached: a second look-up asks nothing.
    let before = emulator.hits("/publicKey");
    kms.public_key(&GcpEmulator::uri("cosign")).await?;
    assert_eq!(emulator.hits("/publicKey"), before);
    assert_eq!(emulator.hits("/token"), 1, "the token is reused");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_errors_are_told_apart() -> TestResult {
    let emulator = GcpEmulator::start()?;
    let dir = tempfile::tempdir()?;
    let kms = resolver(gcp_config(&emulator, &dir)?);

    let error = kms.public_key(&GcpEmulator::uri("missing")).await.unwrap_err();
    assert!(matches!(error, KmsError::NotFound { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("CryptoKey projects/project/locations/global/keyRings/ring/cryptoKeys/missing not found"),
        "{error}"
    );

    let error = kms.public_key(&GcpEmulator::uri("forbidden")).await.unwrap_err();
    assert!(matches!(error, KmsError::AccessDenied { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("Permission 'cloudkms.cryptoKeys.get' denied"),
        "{error}"
    );

    let error = kms.public_key(&GcpEmulator::uri("encrypt")).await.unwrap_err();
    assert!(matches!(error, KmsError::NotSigningKey { .. }), "{error}");
    assert!(error.to_string().contains("(purpose ENCRYPT_DECRYPT)"), "{error}");

    let error = kms
        .public_key(&format!("{}/cryptoKeyVersions/7", GcpEmulator::uri("cosign")))
        .await
        .unwrap_err();
    assert!(matches!(error, KmsError::NotFound { .. }), "{error}");

    // A service account key the token endpoint does not know: its JWT signature fails.
    let stranger = KeyPair::generate(sigstore::crypto::SigningScheme::RSA_PKCS1_SHA256(2048))?;
    let mut forged: serde_json::Value = serde_json::from_str(&emulator.credentials_json()?)?;
    forged["private_key"] = stranger.private_key_pem()?.into();
    let file = dir.path().join("forged.json");
    std::fs::write(&file, forged.to_string())?;
    let mut config = gcp_config(&emulator, &dir)?;
    config.gcp.credentials_file = Some(file);
    let error = resolver(config)
        .public_key(&GcpEmulator::uri("cosign"))
        .await
        .unwrap_err();
    assert!(matches!(error, KmsError::AccessDenied { .. }), "{error}");
    assert!(
        error.to_string().contains("token endpoint refused the credentials"),
        "{error}"
    );
    assert!(!error.to_string().contains("PRIVATE KEY"), "{error}");

    // Slow: cut at the timeout.
    let mut config = gcp_config(&emulator, &dir)?;
    config.timeout = Duration::from_millis(700);
    let started = Instant::now();
    let error = resolver(config)
        .public_key(&GcpEmulator::uri("slow"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "hang guard");
    assert!(
        matches!(error, KmsError::Timeout { .. } | KmsError::Unreachable { .. }),
        "{error}"
    );
    Ok(())
}

use testkit::KeyPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_falls_back_to_the_metadata_server_and_says_when_there_is_none() -> TestResult {
    let emulator = GcpEmulator::start()?;
    let mut config = isolated();
    config.gcp.endpoint = emulator.url();
    config.gcp.metadata_host = emulator.served.addr.to_string();
    let pem = resolver(config).public_key(&GcpEmulator::uri("cosign")).await?;
    assert_eq!(pem, emulator.key_b.public_key_pem());

    let mut config = isolated();
    config.gcp.endpoint = emulator.url();
    let error = resolver(config)
        .public_key(&GcpEmulator::uri("cosign"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, KmsError::Credentials { scheme: "gcpkms", .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("no GOOGLE_APPLICATION_CREDENTIALS"),
        "{error}"
    );
    Ok(())
}

// ------------------------------------------------------------------ Azure Key Vault (emulator)

fn azure_config(emulator: &AzureEmulator, secret: &str) -> KmsConfig {
    let mut config = isolated();
    config.insecure_endpoints = vec![emulator.vault()];
    config.azure.authority_host = emulator.url();
    config.azure.tenant_id = Some(AZURE_TENANT.to_owned());
    config.azure.client_id = Some(AZURE_CLIENT.to_owned());
    config.azure.client_secret = Some(Secret::new(secret));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_jwks_become_the_same_public_keys() -> TestResult {
    let emulator = AzureEmulator::start()?;
    let kms = resolver(azure_config(&emulator, AZURE_SECRET));
    let vault = emulator.vault();

    let pem = kms.public_key(&format!("azurekms://{vault}/cosign")).await?;
    assert_eq!(der(&pem), emulator.p256.public_key_der());
    let pem = kms.public_key(&format!("azurekms://{vault}/p384/0123abcd")).await?;
    assert_eq!(der(&pem), emulator.p384.public_key_der(), "EC-HSM keys too");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_errors_are_told_apart() -> TestResult {
    let emulator = AzureEmulator::start()?;
    let kms = resolver(azure_config(&emulator, AZURE_SECRET));
    let vault = emulator.vault();
    let uri = |key: &str| format!("azurekms://{vault}/{key}");

    let error = kms.public_key(&uri("missing")).await.unwrap_err();
    assert!(matches!(error, KmsError::NotFound { .. }), "{error}");
    assert!(
        error.to_string().contains("A key with (name/id) missing was not found"),
        "{error}"
    );
    let error = kms.public_key(&uri("forbidden")).await.unwrap_err();
    assert!(matches!(error, KmsError::AccessDenied { .. }), "{error}");
    let error = kms.public_key(&uri("encrypt")).await.unwrap_err();
    assert!(matches!(error, KmsError::NotSigningKey { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("operations are [encrypt, decrypt, wrapKey, unwrapKey]"),
        "{error}"
    );
    let error = kms.public_key(&uri("disabled")).await.unwrap_err();
    assert!(matches!(error, KmsError::NotSigningKey { .. }), "{error}");

    let wrong = resolver(azure_config(&emulator, "wrong-secret"));
    let error = wrong.public_key(&uri("cosign")).await.unwrap_err();
    assert!(matches!(error, KmsError::AccessDenied { .. }), "{error}");
    assert!(error.to_string().contains("AADSTS7000215"), "{error}");
    assert!(!error.to_string().contains("wrong-secret"), "{error}");

    let mut none = isolated();
    none.insecure_endpoints = vec![vault.clone()];
    let error = resolver(none).public_key(&uri("cosign")).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"),
        "{error}"
    );
    Ok(())
}
