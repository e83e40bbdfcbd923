//! `azurekms://VAULT/KEY[/VERSION]` through Key Vault's REST API (`keys/get`, api-version
//! 7.4), with environment credentials: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
//! `AZURE_CLIENT_SECRET` → client-credentials token from `AZURE_AUTHORITY_HOST`. The key comes
//! back as a JWK and is turned into a PEM public key.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::config::{AzureConfig, Secret};
use super::error::KmsError;
use super::http;
use super::pem::{self, Curve};

const API_VERSION: &str = "7.4";

/// DNS suffixes of Key Vault and Managed HSM hosts, in Azure's public, China, US Government
/// and (retired) Germany clouds: the trusted endpoints of the Azure SDKs' Key Vault providers
/// (Microsoft.Data.SqlClient's list; azure-cli's `keyvault_dns` and `mhsm_dns` cloud suffixes).
/// The bearer token of an `azurekms://VAULT/…` key is sent only to a VAULT under one of them,
/// unless the operator named another endpoint.
pub const KEY_VAULT_DNS_SUFFIXES: &[&str] = &[
    ".vault.azure.net",
    ".managedhsm.azure.net",
    ".vault.azure.cn",
    ".managedhsm.azure.cn",
    ".vault.usgovcloudapi.net",
    ".managedhsm.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.microsoftazure.de",
];

/// Whether `vault` (the `host[:port]` of an `azurekms://` URI) is a Key Vault or Managed HSM
/// host: a DNS name (letters, digits, `-`, `.`; case ignored) ending in one of
/// [`KEY_VAULT_DNS_SUFFIXES`] after at least one label of its own, with at most a numeric port.
/// An IP address, a bare suffix, a suffix inside a longer name
/// (`x.vault.azure.net.example`) or glued to a label (`xvault.azure.net`) is not.
pub fn is_key_vault_host(vault: &str) -> bool {
    let host = match vault.split_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return false,
        None => vault,
    };
    let host = host.to_ascii_lowercase();
    KEY_VAULT_DNS_SUFFIXES.iter().any(|suffix| {
        host.strip_suffix(suffix).is_some_and(|name| {
            !name.is_empty()
                && name
                    .split('.')
                    .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        })
    })
}

/// Why `vault` is refused, and what the operator can do.
pub fn untrusted_vault_detail(vault: &str) -> String {
    format!(
        "{vault} is not an Azure Key Vault or Managed HSM host (a name under {}), and the Key Vault \
         access token is sent to no other: use the vault's own host (NAME.vault.azure.net), or, \
         for an emulator or a proxy the operator trusts, set --kms-azure-endpoint URL \
         (CIP_KMS_AZURE_ENDPOINT) or list {vault} with --kms-insecure-endpoint",
        KEY_VAULT_DNS_SUFFIXES.join(", ")
    )
}
const SCOPE: &str = "https://vault.azure.net/.default";

/// The Key Vault client with its token cache.
pub struct Azure {
    config: AzureConfig,
    token: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct KeyBundle {
    key: Jwk,
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
struct Attributes {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    key_ops: Vec<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: Option<u64>,
}

impl Azure {
    /// A client for `config`.
    pub fn new(config: AzureConfig) -> Self {
        Self {
            config,
            token: Mutex::new(None),
        }
    }

    /// Resolves an `azurekms://` key; `vault_url` is `https://VAULT` or the override.
    pub async fn public_key(
        &self,
        client: &reqwest::Client,
        uri: &str,
        vault_url: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<String, KmsError> {
        let token = self.token(client, uri).await?;
        let base = self
            .config
            .endpoint
            .as_deref()
            .unwrap_or(vault_url)
            .trim_end_matches('/');
        let url = match version {
            Some(v) => format!("{base}/keys/{key}/{v}"),
            None => format!("{base}/keys/{key}"),
        };
        let bundle: KeyBundle = http::json(
            uri,
            client
                .get(url)
                .query(&[("api-version", API_VERSION)])
                .bearer_auth(token.expose()),
        )
        .await?;
        let not_signing = |detail: String| KmsError::NotSigningKey {
            uri: uri.to_owned(),
            detail,
        };
        if bundle.attributes.and_then(|a| a.enabled) == Some(false) {
            return Err(not_signing("the key is disabled".to_owned()));
        }
        let jwk = bundle.key;
        if !jwk.key_ops.iter().any(|op| op == "sign") {
            return Err(not_signing(format!(
                "{} key whose operations are [{}]",
                jwk.kty,
                jwk.key_ops.join(", ")
            )));
        }
        jwk_pem(&jwk).map_err(|detail| KmsError::Answer {
            uri: uri.to_owned(),
            detail,
        })
    }

    async fn token(&self, client: &reqwest::Client, uri: &str) -> Result<Secret, KmsError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && *expires > Instant::now()
        {
            return Ok(token.clone());
        }
        let (Some(tenant), Some(client_id), Some(secret)) = (
            &self.config.tenant_id,
            &self.config.client_id,
            &self.config.client_secret,
        ) else {
            return Err(KmsError::Credentials {
                uri: uri.to_owned(),
                scheme: "azurekms",
                detail: "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal that may get the key)"
                    .to_owned(),
            });
        };
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.config.authority_host.trim_end_matches('/')
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.expose()),
            ("scope", SCOPE),
        ];
        let token: Token = http::json(
            uri,
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(http::form(form)),
        )
        .await
        .map_err(|e| match e {
            KmsError::AccessDenied { uri, detail }
            | KmsError::Answer { uri, detail }
            | KmsError::NotFound { uri, detail } => KmsError::AccessDenied {
                uri,
                detail: format!("Microsoft Entra ID refused the client credentials: {detail}"),
            },
            other => other,
        })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300).saturating_sub(60));
        let secret = Secret::new(token.access_token);
        *cached = Some((secret.clone(), Instant::now() + lifetime));
        Ok(secret)
    }
}

/// A JWK (EC or RSA, software or HSM) as a PEM public key.
fn jwk_pem(jwk: &Jwk) -> Result<String, String> {
    let part = |name: &str, value: &Option<String>| -> Result<Vec<u8>, String> {
        let text = value.as_deref().ok_or_else(|| format!("the JWK has no `{name}`"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("JWK `{name}` is not base64url: {e}"))
    };
    match jwk.kty.as_str() {
        "EC" | "EC-HSM" => {
            let crv = jwk.crv.as_deref().unwrap_or_default();
            let curve = Curve::from_jwk(crv).ok_or_else(|| format!("unsupported curve `{crv}`"))?;
            pem::ec_pem(curve, &part("x", &jwk.x)?, &part("y", &jwk.y)?)
        }
        "RSA" | "RSA-HSM" => pem::rsa_pem(&part("n", &jwk.n)?, &part("e", &jwk.e)?),
        other => Err(format!("key type `{other}` has no public key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_vault_hosts_of_every_cloud_are_accepted() {
        for vault in [
            "myvault.vault.azure.net",
            "MyVault.Vault.Azure.Net",
            "my-vault.vault.azure.net:443",
            "hsm.managedhsm.azure.net",
            "v.vault.azure.cn",
            "h.managedhsm.azure.cn",
            "v.vault.usgovcloudapi.net",
            "h.managedhsm.usgovcloudapi.net",
            "v.vault.microsoftazure.de",
            "h.managedhsm.microsoftazure.de",
            "a.b.vault.azure.net",
        ] {
            assert!(is_key_vault_host(vault), "{vault}");
        }
    }

    /// Hosts an attacker writing a policy would try to have the token sent to.
    #[test]
    fn other_hosts_are_refused() {
        for vault in [
            "evil.example",
            "127.0.0.1",
            "127.0.0.1:8443",
            "[::1]:443",
            "vault.azure.net",
            ".vault.azure.net",
            "xvault.azure.net",
            "evilvault.azure.net",
            "myvault.vault.azure.net.evil.example",
            "myvault.vault.azure.net.",
            "myvault.vault.azure.net:",
            "myvault.vault.azure.net:443:1",
            "myvault.vault.azure.net:https",
            "my_vault.vault.azure.net",
            "a..vault.azure.net",
            "myvault.vault.azure.com",
            "myvault.azure.net",
            "",
        ] {
            assert!(!is_key_vault_host(vault), "{vault}");
        }
    }

    #[test]
    fn the_refusal_names_the_host_and_the_ways_out() {
        let detail = untrusted_vault_detail("evil.example:443");
        assert!(
            detail.starts_with("evil.example:443 is not an Azure Key Vault"),
            "{detail}"
        );
        for part in [
            ".vault.azure.net",
            ".managedhsm.usgovcloudapi.net",
            "--kms-azure-endpoint",
            "--kms-insecure-endpoint",
        ] {
            assert!(detail.contains(part), "{part}: {detail}");
        }
    }
}
