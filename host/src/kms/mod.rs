//! KMS keys: the public key behind a `key.kms` URI (cosign's `awskms://`, `gcpkms://`,
//! `azurekms://`, `hashivault://`), for the module's `cluster-image-policy/kms/v1/public_key`
//! host capability and for `cip kms resolve`.
//!
//! One file per scheme; [`KmsResolver`] parses the URI (the module's own parser), bounds each
//! resolution by [`KmsConfig::timeout`], and keeps public keys for [`KmsConfig::cache_ttl`]
//! (concurrent look-ups of one key share one request; failures are not kept). Credentials
//! never appear in errors or logs: they live in [`Secret`]s.

mod aws;
mod aws_sdk_http;
mod azure;
mod config;
mod error;
mod gcp;
mod http;
mod pem;
pub mod uri;
mod vault;

use std::sync::Arc;

pub use config::{AwsConfig, AzureConfig, GcpConfig, KmsConfig, Secret, VaultConfig};
pub use error::KmsError;
pub use uri::{KmsUri, KmsUriError};

/// The AWS SDK crates whose tracing events `cip` never shows: they carry raw HTTP answers of
/// credential endpoints (see `cli::init_tracing`).
pub const AWS_SDK_LOG_TARGETS: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_types",
];

/// Most public keys kept.
const CACHE_CAPACITY: u64 = 1_000;

/// Resolves KMS URIs to PEM public keys.
pub struct KmsResolver {
    config: KmsConfig,
    /// The HTTP client of every KMS; a TLS set-up failure is reported when a KMS is asked,
    /// so that hosts whose policies name no KMS key never fail because of it.
    http: Result<reqwest::Client, String>,
    gcp: gcp::Gcp,
    azure: azure::Azure,
    cache: moka::future::Cache<KmsUri, Arc<str>>,
    /// The AWS SDK's configuration (credentials chain, region), loaded at the first `awskms://`.
    aws_sdk: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl std::fmt::Debug for KmsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsResolver")
            .field("timeout", &self.config.timeout)
            .field("cache_ttl", &self.config.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl KmsResolver {
    /// A resolver for `config`.
    pub fn new(config: KmsConfig) -> Result<Self, KmsError> {
        let http = http::client(config.timeout);
        let cache = moka::future::Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .time_to_live(config.cache_ttl.max(std::time::Duration::from_millis(1)))
            .build();
        Ok(Self {
            http,
            gcp: gcp::Gcp::new(config.gcp.clone()),
            azure: azure::Azure::new(config.azure.clone()),
            cache,
            aws_sdk: tokio::sync::OnceCell::new(),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &KmsConfig {
        &self.config
    }

    /// The PEM public key behind `uri`, from the cache or the KMS.
    pub async fn public_key(&self, uri: &str) -> Result<String, KmsError> {
        let parsed = KmsUri::parse(uri)?;
        if self.config.cache_ttl.is_zero() {
            return self.fetch(&parsed).await;
        }
        self.cache
            .try_get_with(parsed.clone(), async {
                self.fetch(&parsed).await.map(Arc::<str>::from)
            })
            .await
            .map(|pem| pem.to_string())
            .map_err(|e| (*e).clone())
    }

    /// Asks the KMS, within the timeout.
    async fn fetch(&self, uri: &KmsUri) -> Result<String, KmsError> {
        let text = uri.to_string();
        let http = || {
            self.http.as_ref().map_err(|detail| KmsError::Unreachable {
                uri: text.clone(),
                detail: detail.clone(),
            })
        };
        let ask = async {
            match uri {
                KmsUri::Aws { endpoint, key } => {
                    let client = http()?;
                    let sdk = self.aws_sdk.get_or_init(|| aws::load_sdk_config(client)).await;
                    aws::public_key(client, sdk, &self.config, &text, endpoint.as_deref(), key).await
                }
                KmsUri::Gcp { key_name, version } => {
                    self.gcp.public_key(http()?, &text, key_name, version.as_deref()).await
                }
                KmsUri::Azure { vault, key, version } => {
                    let insecure = self.config.insecure_endpoints.iter().any(|e| e == vault);
                    // The vault's token goes to the host the URI names, which the policy's
                    // author chose: only Azure's own, unless the operator named another.
                    if self.config.azure.endpoint.is_none() && !insecure && !azure::is_key_vault_host(vault) {
                        return Err(KmsError::UntrustedEndpoint {
                            uri: text.clone(),
                            detail: azure::untrusted_vault_detail(vault),
                        });
                    }
                    let scheme = if insecure { "http" } else { "https" };
                    let vault_url = format!("{scheme}://{vault}");
                    self.azure
                        .public_key(http()?, &text, &vault_url, key, version.as_deref())
                        .await
                }
                KmsUri::HashiVault { key } => vault::public_key(http()?, &self.config.vault, &text, key).await,
            }
        };
        let pem = tokio::time::timeout(self.config.timeout, ask)
            .await
            .map_err(|_| KmsError::Timeout {
                uri: text.clone(),
                after: self.config.timeout,
            })??;
        tracing::debug!(uri = %text, "resolved a KMS public key");
        Ok(pem)
    }
}
