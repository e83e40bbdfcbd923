//! Where each KMS is reached and with which credentials. [`KmsConfig::from_env`] reads each
//! cloud's usual environment; tests and embedders fill the fields directly.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A credential: never printed (its `Debug` says `<redacted>`).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential, to put into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the KMS resolver needs.
#[derive(Clone, Debug)]
pub struct KmsConfig {
    /// Bound of one resolution (all requests, token included).
    pub timeout: Duration,
    /// How long a resolved public key is reused; a rotated key is seen after at most this.
    pub cache_ttl: Duration,
    /// `host:port` endpoints named in `awskms://ENDPOINT/…` or `azurekms://VAULT/…` that are
    /// reached over plain HTTP instead of HTTPS (local emulators, test servers).
    pub insecure_endpoints: Vec<String>,
    /// AWS KMS.
    pub aws: AwsConfig,
    /// Google Cloud KMS.
    pub gcp: GcpConfig,
    /// Azure Key Vault.
    pub azure: AzureConfig,
    /// HashiCorp Vault / OpenBao transit.
    pub vault: VaultConfig,
}

impl Default for KmsConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(300),
            insecure_endpoints: Vec::new(),
            aws: AwsConfig::default(),
            gcp: GcpConfig::default(),
            azure: AzureConfig::default(),
            vault: VaultConfig::default(),
        }
    }
}

impl KmsConfig {
    /// The defaults plus the environment: `VAULT_ADDR`, `VAULT_TOKEN`,
    /// `TRANSIT_SECRET_ENGINE_PATH`; `GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST`;
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_AUTHORITY_HOST`.
    /// `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL` (AWS credentials and region are the SDK's:
    /// `aws-config` reads its environment and files itself, see `kms/aws.rs`).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        config.aws.endpoint_url = var("AWS_ENDPOINT_URL_KMS").or_else(|| var("AWS_ENDPOINT_URL"));
        config.vault.addr = var("VAULT_ADDR");
        config.vault.token = var("VAULT_TOKEN").map(Secret::new);
        if let Some(path) = var("TRANSIT_SECRET_ENGINE_PATH") {
            config.vault.transit_path = path;
        }
        config.gcp.credentials_file = var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from);
        config.gcp.well_known_file =
            var("HOME").map(|h| PathBuf::from(h).join(".config/gcloud/application_default_credentials.json"));
        if let Some(host) = var("GCE_METADATA_HOST") {
            config.gcp.metadata_host = host;
        }
        config.azure.tenant_id = var("AZURE_TENANT_ID");
        config.azure.client_id = var("AZURE_CLIENT_ID");
        config.azure.client_secret = var("AZURE_CLIENT_SECRET").map(Secret::new);
        if let Some(host) = var("AZURE_AUTHORITY_HOST") {
            config.azure.authority_host = host;
        }
        config
    }
}

/// AWS KMS: the endpoint (credentials and region come from the SDK's default chain, see
/// `kms/aws.rs`).
#[derive(Clone, Debug, Default)]
pub struct AwsConfig {
    /// Endpoint for URIs without one: `--kms-aws-endpoint`, `AWS_ENDPOINT_URL_KMS`,
    /// `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
}

/// Google Cloud KMS, with application default credentials.
#[derive(Clone, Debug)]
pub struct GcpConfig {
    /// Cloud KMS REST endpoint.
    pub endpoint: String,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a service account key or an authorized user file.
    pub credentials_file: Option<PathBuf>,
    /// gcloud's well-known ADC file, used when it exists.
    pub well_known_file: Option<PathBuf>,
    /// The metadata server (`GCE_METADATA_HOST`), last in the chain.
    pub metadata_host: String,
}

impl Default for GcpConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://cloudkms.googleapis.com".to_owned(),
            credentials_file: None,
            well_known_file: None,
            metadata_host: "metadata.google.internal".to_owned(),
        }
    }
}

/// Azure Key Vault, with environment (client secret) credentials.
#[derive(Clone, Debug)]
pub struct AzureConfig {
    /// Replaces `https://VAULT` (`--kms-azure-endpoint`).
    pub endpoint: Option<String>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `AZURE_CLIENT_SECRET`.
    pub client_secret: Option<Secret>,
    /// `AZURE_AUTHORITY_HOST` (Microsoft Entra ID).
    pub authority_host: String,
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            authority_host: "https://login.microsoftonline.com".to_owned(),
        }
    }
}

/// HashiCorp Vault or OpenBao, transit secrets engine.
#[derive(Clone, Debug)]
pub struct VaultConfig {
    /// `VAULT_ADDR`.
    pub addr: Option<String>,
    /// `VAULT_TOKEN` (else `~/.vault-token`).
    pub token: Option<Secret>,
    /// Mount path of the transit engine (`TRANSIT_SECRET_ENGINE_PATH`, default `transit`).
    pub transit_path: String,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            addr: None,
            token: None,
            transit_path: "transit".to_owned(),
        }
    }
}
