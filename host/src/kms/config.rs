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
    /// `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, `AWS_WEB_IDENTITY_TOKEN_FILE`,
    /// `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`, `AWS_ENDPOINT_URL_STS`,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, `AWS_CONTAINER_CREDENTIALS_FULL_URI`,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
    /// `AWS_EC2_METADATA_DISABLED`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        config.aws.endpoint_url = var("AWS_ENDPOINT_URL_KMS").or_else(|| var("AWS_ENDPOINT_URL"));
        config.aws.region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
        config.aws.access_key_id = var("AWS_ACCESS_KEY_ID");
        config.aws.secret_access_key = var("AWS_SECRET_ACCESS_KEY").map(Secret::new);
        config.aws.session_token = var("AWS_SESSION_TOKEN").map(Secret::new);
        if let Some(profile) = var("AWS_PROFILE") {
            config.aws.profile = profile;
        }
        if let Some(path) = var("AWS_SHARED_CREDENTIALS_FILE") {
            config.aws.credentials_file = PathBuf::from(path);
        }
        if let Some(path) = var("AWS_CONFIG_FILE") {
            config.aws.config_file = PathBuf::from(path);
        }
        config.aws.web_identity = var("AWS_WEB_IDENTITY_TOKEN_FILE").map(|file| WebIdentity {
            token_file: PathBuf::from(file),
            role_arn: var("AWS_ROLE_ARN"),
            session_name: var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "cip".to_owned()),
            sts_endpoint: var("AWS_ENDPOINT_URL_STS").or_else(|| var("AWS_ENDPOINT_URL")),
        });
        let container_url = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .map(|path| format!("http://169.254.170.2{path}"))
            .or_else(|| var("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
        config.aws.container = container_url.map(|url| ContainerCredentials {
            url,
            token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from),
            token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
        });
        if let Some(endpoint) = var("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            config.aws.imds_endpoint = endpoint;
        }
        config.aws.imds_disabled = var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
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

/// AWS KMS: endpoint, region and static credentials (see `kms/aws.rs` for the sources read).
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// Endpoint for URIs without one: `--kms-aws-endpoint`, `AWS_ENDPOINT_URL_KMS`,
    /// `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<Secret>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<Secret>,
    /// `AWS_PROFILE` (default `default`).
    pub profile: String,
    /// `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`).
    pub credentials_file: PathBuf,
    /// `AWS_CONFIG_FILE` (default `~/.aws/config`).
    pub config_file: PathBuf,
    /// Web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`.
    pub web_identity: Option<WebIdentity>,
    /// The container credentials endpoint, when the environment names one.
    pub container: Option<ContainerCredentials>,
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default `http://169.254.169.254`).
    pub imds_endpoint: String,
    /// `AWS_EC2_METADATA_DISABLED=true`.
    pub imds_disabled: bool,
}

/// Web identity federation: STS `AssumeRoleWithWebIdentity` with the token of a file.
#[derive(Clone, Debug)]
pub struct WebIdentity {
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` (read at each fetch: the kubelet rotates it).
    pub token_file: PathBuf,
    /// `AWS_ROLE_ARN`.
    pub role_arn: Option<String>,
    /// `AWS_ROLE_SESSION_NAME` (default `cip`).
    pub session_name: String,
    /// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL` (default `https://sts.REGION.amazonaws.com`).
    pub sts_endpoint: Option<String>,
}

/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on `http://169.254.170.2`) or `_FULL_URI`, with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
#[derive(Clone, Debug)]
pub struct ContainerCredentials {
    /// Where the credentials are fetched.
    pub url: String,
    /// A file holding the `Authorization` header's value (read at each fetch).
    pub token_file: Option<PathBuf>,
    /// The `Authorization` header's value.
    pub token: Option<Secret>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            profile: "default".to_owned(),
            credentials_file: super::aws::home_aws_file("credentials"),
            config_file: super::aws::home_aws_file("config"),
            web_identity: None,
            container: None,
            imds_endpoint: "http://169.254.169.254".to_owned(),
            imds_disabled: false,
        }
    }
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
