//! `gcpkms://projects/…/cryptoKeys/K[/cryptoKeyVersions/V]` through Cloud KMS's REST API:
//! `cryptoKeys.get` (the key must be `ASYMMETRIC_SIGN`), `cryptoKeyVersions.list` for the
//! newest enabled version when none is given, then `cryptoKeyVersions.getPublicKey`.
//!
//! Credentials are Google's application default credentials: the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS` (service account key → signed JWT → token, or
//! authorized user → refresh token → token), gcloud's well-known file, else the metadata
//! server. Tokens are reused until a minute before they expire.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::config::{GcpConfig, Secret};
use super::error::KmsError;
use super::http;

const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Pages of versions read at most when looking for the newest enabled one.
const MAX_PAGES: usize = 10;

/// The Cloud KMS client with its token cache.
pub struct Gcp {
    config: GcpConfig,
    token: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CryptoKey {
    purpose: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionList {
    #[serde(default)]
    crypto_key_versions: Vec<Version>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Version {
    name: String,
    state: Option<String>,
}

#[derive(Deserialize)]
struct PublicKey {
    pem: String,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: Option<u64>,
}

/// A credentials file: `type` decides which fields it has.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

impl Gcp {
    /// A client for `config`.
    pub fn new(config: GcpConfig) -> Self {
        Self {
            config,
            token: Mutex::new(None),
        }
    }

    /// Resolves a `gcpkms://` key.
    pub async fn public_key(
        &self,
        client: &reqwest::Client,
        uri: &str,
        key_name: &str,
        version: Option<&str>,
    ) -> Result<String, KmsError> {
        let token = self.token(client, uri).await?;
        let base = self.config.endpoint.trim_end_matches('/');
        let get = |path: String| client.get(format!("{base}/v1/{path}")).bearer_auth(token.expose());

        let key: CryptoKey = http::json(uri, get(key_name.to_owned())).await?;
        if key.purpose.as_deref() != Some("ASYMMETRIC_SIGN") {
            return Err(KmsError::NotSigningKey {
                uri: uri.to_owned(),
                detail: format!("purpose {}", key.purpose.as_deref().unwrap_or("unknown")),
            });
        }
        let version_name = match version {
            Some(v) => format!("{key_name}/cryptoKeyVersions/{v}"),
            None => self.newest_enabled(uri, key_name, &get).await?,
        };
        let public: PublicKey = http::json(uri, get(format!("{version_name}/publicKey"))).await?;
        if !public.pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(KmsError::Answer {
                uri: uri.to_owned(),
                detail: "getPublicKey answered no PEM public key".to_owned(),
            });
        }
        Ok(public.pem)
    }

    /// The enabled version with the highest number (names compare as numbers: 10 > 9).
    async fn newest_enabled(
        &self,
        uri: &str,
        key_name: &str,
        get: &impl Fn(String) -> reqwest::RequestBuilder,
    ) -> Result<String, KmsError> {
        let mut best: Option<(u64, String)> = None;
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut request = get(format!("{key_name}/cryptoKeyVersions")).query(&[("filter", "state=ENABLED")]);
            if let Some(token) = &page_token {
                request = request.query(&[("pageToken", token)]);
            }
            let page: VersionList = http::json_within(uri, request, http::MAX_LIST_ANSWER_BYTES).await?;
            for version in page.crypto_key_versions {
                if version.state.as_deref().is_some_and(|s| s != "ENABLED") {
                    continue;
                }
                let number = version.name.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
                if let Some(number) = number
                    && best.as_ref().is_none_or(|(b, _)| number > *b)
                {
                    best = Some((number, version.name));
                }
            }
            page_token = page.next_page_token.filter(|t| !t.is_empty());
            if page_token.is_none() {
                break;
            }
        }
        best.map(|(_, name)| name).ok_or_else(|| KmsError::NotFound {
            uri: uri.to_owned(),
            detail: "the key has no enabled version".to_owned(),
        })
    }

    /// An access token, reused while valid.
    async fn token(&self, client: &reqwest::Client, uri: &str) -> Result<Secret, KmsError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && *expires > Instant::now()
        {
            return Ok(token.clone());
        }
        let token = self.fetch_token(client, uri).await?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300).saturating_sub(60));
        let secret = Secret::new(token.access_token);
        *cached = Some((secret.clone(), Instant::now() + lifetime));
        Ok(secret)
    }

    async fn fetch_token(&self, client: &reqwest::Client, uri: &str) -> Result<Token, KmsError> {
        let file = match &self.config.credentials_file {
            Some(path) => Some(path.clone()),
            None => self.config.well_known_file.clone().filter(|p| p.is_file()),
        };
        match file {
            Some(path) => self.token_from_file(client, uri, &path).await,
            None => {
                let url = format!(
                    "http://{}/computeMetadata/v1/instance/service-accounts/default/token",
                    self.config.metadata_host
                );
                http::json(uri, client.get(url).header("Metadata-Flavor", "Google"))
                    .await
                    .map_err(|e| match e {
                        KmsError::Unreachable { uri, detail } => KmsError::Credentials {
                            uri,
                            scheme: "gcpkms",
                            detail: format!(
                                "no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application default credentials, and the metadata server is unreachable ({detail})"
                            ),
                        },
                        other => other,
                    })
            }
        }
    }

    async fn token_from_file(&self, client: &reqwest::Client, uri: &str, path: &Path) -> Result<Token, KmsError> {
        let credentials = |detail: String| KmsError::Credentials {
            uri: uri.to_owned(),
            scheme: "gcpkms",
            detail: format!("credentials file {}: {detail}", path.display()),
        };
        let text = std::fs::read_to_string(path).map_err(|e| credentials(format!("cannot read it: {e}")))?;
        let file: CredentialsFile =
            serde_json::from_str(&text).map_err(|e| credentials(format!("not a credentials JSON file: {e}")))?;
        let token_uri = file.token_uri.clone().unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let missing = |field: &str| credentials(format!("{field} is missing"));
        let form: Vec<(&str, String)> = match file.kind.as_str() {
            "service_account" => {
                let email = file.client_email.ok_or_else(|| missing("client_email"))?;
                let key = file.private_key.ok_or_else(|| missing("private_key"))?;
                let assertion = signed_assertion(&email, &key, &token_uri).map_err(credentials)?;
                vec![
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()),
                    ("assertion", assertion),
                ]
            }
            "authorized_user" => vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", file.client_id.ok_or_else(|| missing("client_id"))?),
                (
                    "client_secret",
                    file.client_secret.ok_or_else(|| missing("client_secret"))?,
                ),
                (
                    "refresh_token",
                    file.refresh_token.ok_or_else(|| missing("refresh_token"))?,
                ),
            ],
            other => {
                return Err(credentials(format!(
                    "credentials of type `{other}` are not supported (service_account or authorized_user)"
                )));
            }
        };
        // The token endpoint's answers are about the credentials, not the key.
        http::json(
            uri,
            client
                .post(&token_uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(http::form(form.iter().map(|(k, v)| (*k, v.as_str())))),
        )
        .await
        .map_err(|e| match e {
            KmsError::AccessDenied { uri, detail }
            | KmsError::Answer { uri, detail }
            | KmsError::NotFound { uri, detail } => KmsError::AccessDenied {
                uri,
                detail: format!("token endpoint refused the credentials: {detail}"),
            },
            other => other,
        })
    }
}

/// An RS256 JWT asserting `email` for the Cloud KMS scope, signed with the service account key.
fn signed_assertion(email: &str, private_key_pem: &str, token_uri: &str) -> Result<String, String> {
    let der = match rustls_pemfile::private_key(&mut private_key_pem.as_bytes()) {
        Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(der))) => der,
        Ok(_) => return Err("private_key is not a PKCS#8 PEM key".to_owned()),
        Err(e) => return Err(format!("private_key is not PEM: {e}")),
    };
    let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|e| format!("private_key is not an RSA key: {e}"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD
        .encode(json!({"iss": email, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600}).to_string());
    let signing_input = format!("{header}.{claims}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the token request failed".to_owned())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
