//! `awskms://[ENDPOINT]/KEY`: AWS KMS `GetPublicKey` (JSON 1.1 protocol,
//! `X-Amz-Target: TrentService.GetPublicKey`), signed with AWS's SigV4 crate (`aws-sigv4`) and
//! sent with the REST clients' reqwest client.
//!
//! Why not the official SDK: it changes the features of crates already in `cip` (hyper-rustls)
//! and adds ~20 crates; one signed POST is all `cip` needs. What the SDK's default chain reads and
//! this module reads as well, in the SDK's order:
//!
//! * credentials, first found: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+
//!   `AWS_SESSION_TOKEN`); the static keys (`aws_access_key_id`, `aws_secret_access_key`,
//!   `aws_session_token`) of profile `AWS_PROFILE` (default `default`) in
//!   `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`), then `AWS_CONFIG_FILE`
//!   (`~/.aws/config`, `[profile NAME]`); the container credentials endpoint
//!   (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on ECS, `AWS_CONTAINER_CREDENTIALS_FULL_URI` with
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`, which EKS Pod Identity sets); EC2 instance
//!   metadata, IMDSv2 only (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_EC2_METADATA_DISABLED`).
//!   Web identity (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
//!   `AWS_ROLE_SESSION_NAME`; STS at `AWS_ENDPOINT_URL_STS`/`AWS_ENDPOINT_URL`, else
//!   `https://sts.REGION.amazonaws.com`) comes after the profiles and before the container
//!   endpoint, as in the SDK. **Not read**: profiles that assume a role, use SSO or
//!   `credential_process` (refused naming the setting).
//!   Credentials are fetched per resolution (public keys are cached, not credentials).
//! * region: the key's ARN, else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`,
//!   the instance metadata's region (when instance metadata is not disabled).
//! * endpoint: `awskms://ENDPOINT/…` (HTTPS, or HTTP for [`KmsConfig::insecure_endpoints`]),
//!   else `--kms-aws-endpoint`, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, else
//!   `https://kms.REGION.amazonaws.com`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::config::{AwsConfig, KmsConfig, Secret};
use super::error::KmsError;
use super::{http, pem};

/// The JSON 1.1 target of `GetPublicKey`.
const TARGET: &str = "TrentService.GetPublicKey";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What `GetPublicKey` answers (the fields `cip` reads).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    public_key: Option<String>,
    key_usage: Option<String>,
}

/// An AWS JSON protocol error body: `{"__type": "…#NotFoundException", "message": "…"}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
}

/// Static credentials, whichever source gave them.
struct StaticCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    /// Where they came from, for messages (never the values).
    source: String,
}

/// Resolves an `awskms://` key.
pub async fn public_key(
    client: &reqwest::Client,
    config: &KmsConfig,
    uri: &str,
    endpoint: Option<&str>,
    key: &str,
) -> Result<String, KmsError> {
    let no_credentials = |detail: String| KmsError::Credentials {
        uri: uri.to_owned(),
        scheme: "awskms",
        detail,
    };
    let profile = Profile::load(&config.aws);
    let mut region = key
        .strip_prefix("arn:")
        .and_then(|arn| arn.split(':').nth(2))
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .or_else(|| config.aws.region.clone())
        .or_else(|| profile.get("region").map(str::to_owned));
    if region.is_none() && !config.aws.imds_disabled {
        region = imds::region(client, &config.aws.imds_endpoint).await.ok();
    }
    let region = region.ok_or_else(|| {
        no_credentials("no AWS region: set AWS_REGION (or the profile's region), or name the key by its ARN".to_owned())
    })?;
    let credentials = credentials(client, &config.aws, &profile, &region)
        .await
        .map_err(no_credentials)?;
    let url = match endpoint {
        Some(endpoint) => {
            let scheme = if config.insecure_endpoints.iter().any(|e| e == endpoint) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{endpoint}/")
        }
        None => match &config.aws.endpoint_url {
            Some(url) => format!("{}/", url.trim_end_matches('/')),
            None => format!("https://kms.{region}.amazonaws.com/"),
        },
    };
    let body = serde_json::json!({ "KeyId": key }).to_string();

    let identity = Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_owned(),
        credentials.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "cip",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("kms")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| no_credentials(format!("cannot sign the request: {e}")))?
        .into();
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| KmsError::Answer {
        uri: uri.to_owned(),
        detail: format!("cannot build the request to {url}: {e}"),
    })?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| no_credentials(format!("cannot sign the request: {e}")))?
        .into_parts();
    let mut request = client.post(&url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }

    let response = request.send().await.map_err(|e| http::transport(uri, &e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| http::transport(uri, &e))?;
    if !status.is_success() {
        return Err(error(uri, status, &bytes, &credentials.source));
    }
    let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| KmsError::Answer {
        uri: uri.to_owned(),
        detail: format!("GetPublicKey answered HTTP {status} with a body that is not the expected JSON: {e}"),
    })?;
    if answer.key_usage.as_deref() != Some("SIGN_VERIFY") {
        return Err(KmsError::NotSigningKey {
            uri: uri.to_owned(),
            detail: format!("key usage {}", answer.key_usage.as_deref().unwrap_or("unknown")),
        });
    }
    let der = answer
        .public_key
        .and_then(|k| STANDARD.decode(k).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| KmsError::Answer {
            uri: uri.to_owned(),
            detail: "GetPublicKey answered no (base64) public key".to_owned(),
        })?;
    Ok(pem::der_to_pem(&der))
}

/// Maps an AWS error answer by its HTTP status and `__type` (the protocol's error code).
fn error(uri: &str, status: reqwest::StatusCode, body: &[u8], source: &str) -> KmsError {
    let code = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.kind)
        .map(|k| k.rsplit('#').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let detail = format!("HTTP {status} {code}: {}", http::error_text(body));
    let uri = uri.to_owned();
    match code.as_str() {
        "NotFoundException" => KmsError::NotFound { uri, detail },
        "DisabledException"
        | "InvalidKeyUsageException"
        | "UnsupportedOperationException"
        | "KMSInvalidStateException" => KmsError::NotSigningKey { uri, detail },
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "ExpiredTokenException" => KmsError::AccessDenied {
            uri,
            detail: format!("{detail}; credentials from {source}"),
        },
        _ => match status.as_u16() {
            401 | 403 => KmsError::AccessDenied {
                uri,
                detail: format!("{detail}; credentials from {source}"),
            },
            404 => KmsError::NotFound { uri, detail },
            _ => KmsError::Answer { uri, detail },
        },
    }
}

/// The first credentials of the chain (see the module's documentation).
async fn credentials(
    client: &reqwest::Client,
    config: &AwsConfig,
    profile: &Profile,
    region: &str,
) -> Result<StaticCredentials, String> {
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        return Ok(StaticCredentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: config.session_token.clone(),
            source: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned(),
        });
    }
    if let (Some(id), Some(secret)) = (profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")) {
        return Ok(StaticCredentials {
            access_key_id: id.to_owned(),
            secret_access_key: Secret::new(secret),
            session_token: profile.get("aws_session_token").map(Secret::new),
            source: format!("profile {} ({})", profile.name, profile.origin),
        });
    }
    let unsupported = [
        "role_arn",
        "credential_process",
        "sso_session",
        "sso_start_url",
        "web_identity_token_file",
    ];
    if let Some(setting) = unsupported.iter().find(|s| profile.get(s).is_some()) {
        return Err(format!(
            "profile {} uses {setting}, which cip does not support: give static keys (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile's aws_access_key_id/aws_secret_access_key), or run `cip kms resolve` where the AWS CLI works and deploy its output",
            profile.name
        ));
    }
    if let Some(web_identity) = &config.web_identity {
        return sts::assume_role_with_web_identity(client, web_identity, region).await;
    }
    if let Some(container) = &config.container {
        return container::credentials(client, container).await;
    }
    if !config.imds_disabled {
        match imds::credentials(client, &config.imds_endpoint).await {
            Ok(credentials) => return Ok(credentials),
            Err(imds::ImdsError::Unreachable(_)) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Err(format!(
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile {} static keys in {} or {}; no web identity token file or container credentials endpoint is set and no EC2 instance metadata answered (cip reads no SSO, role or credential_process profiles)",
        profile.name,
        config.credentials_file.display(),
        config.config_file.display()
    ))
}

/// The JSON of the container credentials endpoint and of IMDS' security-credentials.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemporaryCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

impl TemporaryCredentials {
    fn into_static(self, source: String) -> StaticCredentials {
        StaticCredentials {
            access_key_id: self.access_key_id,
            secret_access_key: Secret::new(self.secret_access_key),
            session_token: self.token.filter(|t| !t.is_empty()).map(Secret::new),
            source,
        }
    }
}

/// The container credentials endpoint (ECS task roles, EKS Pod Identity).
mod container {
    use super::{StaticCredentials, TemporaryCredentials};
    use crate::kms::config::ContainerCredentials;

    /// Hosts plain HTTP may reach, as the SDK allows: loopback, ECS's and EKS' link-local
    /// agents.
    fn allowed_http_host(host: &url::Host<&str>) -> bool {
        match host {
            url::Host::Domain(name) => *name == "localhost",
            url::Host::Ipv4(ip) => {
                ip.is_loopback() || ip.octets() == [169, 254, 170, 2] || ip.octets() == [169, 254, 170, 23]
            }
            url::Host::Ipv6(ip) => ip.is_loopback() || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23],
        }
    }

    pub(super) async fn credentials(
        client: &reqwest::Client,
        config: &ContainerCredentials,
    ) -> Result<StaticCredentials, String> {
        let url = url::Url::parse(&config.url)
            .map_err(|e| format!("the container credentials URI {} is not a URL: {e}", config.url))?;
        let plain_ok = url.host().is_some_and(|h| allowed_http_host(&h));
        if url.scheme() != "https" && !(url.scheme() == "http" && plain_ok) {
            return Err(format!(
                "the container credentials URI {} must be https, or http to a loopback or ECS/EKS agent address",
                config.url
            ));
        }
        let mut request = client.get(url.clone());
        match (&config.token_file, &config.token) {
            (Some(path), _) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                        path.display()
                    )
                })?;
                request = request.header("authorization", token.trim());
            }
            (None, Some(token)) => request = request.header("authorization", token.expose()),
            (None, None) => {}
        }
        let source = format!("the container credentials endpoint {url}");
        let response = request
            .send()
            .await
            .map_err(|e| format!("{source} is unreachable: {}", super::http::transport_detail(&e)))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("{source}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{source} answered HTTP {status}: {}",
                super::http::error_text(&body)
            ));
        }
        let credentials: TemporaryCredentials =
            serde_json::from_slice(&body).map_err(|e| format!("{source} answered no credentials: {e}"))?;
        Ok(credentials.into_static(source))
    }
}

/// STS `AssumeRoleWithWebIdentity` (EKS IRSA): an unsigned query-protocol call with the token
/// of `AWS_WEB_IDENTITY_TOKEN_FILE`; the answer is XML.
mod sts {
    use super::{Secret, StaticCredentials};
    use crate::kms::config::WebIdentity;

    /// The text of the first `<name>…</name>` element (STS answers carry no prefixes).
    fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
        let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(xml[start..end].trim())
    }

    pub(super) async fn assume_role_with_web_identity(
        client: &reqwest::Client,
        config: &WebIdentity,
        region: &str,
    ) -> Result<StaticCredentials, String> {
        let role_arn = config
            .role_arn
            .as_deref()
            .ok_or("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not")?;
        let token = std::fs::read_to_string(&config.token_file).map_err(|e| {
            format!(
                "cannot read AWS_WEB_IDENTITY_TOKEN_FILE {}: {e}",
                config.token_file.display()
            )
        })?;
        let endpoint = config.sts_endpoint.as_deref().map_or_else(
            || format!("https://sts.{region}.amazonaws.com"),
            |e| e.trim_end_matches('/').to_owned(),
        );
        let body = super::http::form([
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", config.session_name.as_str()),
            ("WebIdentityToken", token.trim()),
        ]);
        let source = format!("web identity (role {role_arn}, STS {endpoint})");
        let response = client
            .post(format!("{endpoint}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{source}: STS unreachable: {}", super::http::transport_detail(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{source}: {e}"))?;
        if !status.is_success() {
            let code = element(&text, "Code").unwrap_or_default();
            let message = element(&text, "Message").unwrap_or_default();
            return Err(format!("{source}: STS answered HTTP {status} {code}: {message}"));
        }
        let credentials =
            element(&text, "Credentials").ok_or_else(|| format!("{source}: no Credentials in the answer"))?;
        let field = |name: &str| {
            element(credentials, name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{source}: no {name} in the answer"))
        };
        Ok(StaticCredentials {
            access_key_id: field("AccessKeyId")?.to_owned(),
            secret_access_key: Secret::new(field("SecretAccessKey")?),
            session_token: element(credentials, "SessionToken")
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            source,
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn elements_are_found_by_name() {
            let xml = "<R><Result><Credentials><AccessKeyId> A </AccessKeyId><SessionToken></SessionToken></Credentials></Result></R>";
            let credentials = super::element(xml, "Credentials").unwrap();
            assert_eq!(super::element(credentials, "AccessKeyId"), Some("A"));
            assert_eq!(super::element(credentials, "SessionToken"), Some(""));
            assert_eq!(super::element(credentials, "SecretAccessKey"), None);
        }
    }
}

/// EC2 instance metadata, IMDSv2 (session token) only.
mod imds {
    use std::time::Duration;

    use super::{StaticCredentials, TemporaryCredentials};

    /// The SDK's bound for instance metadata: off EC2 the address does not answer.
    const TIMEOUT: Duration = Duration::from_secs(1);

    #[derive(Debug, thiserror::Error)]
    pub(super) enum ImdsError {
        /// Nothing answers: not on EC2 (or metadata blocked).
        #[error("EC2 instance metadata unreachable: {0}")]
        Unreachable(String),
        /// It answered, but gave no credentials.
        #[error("EC2 instance metadata: {0}")]
        Refused(String),
    }

    async fn get(request: reqwest::RequestBuilder) -> Result<String, ImdsError> {
        let response = request
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| ImdsError::Unreachable(super::http::transport_detail(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| ImdsError::Refused(e.to_string()))?;
        if !status.is_success() {
            return Err(ImdsError::Refused(format!(
                "HTTP {status}: {}",
                super::http::error_text(text.as_bytes())
            )));
        }
        Ok(text)
    }

    async fn token(client: &reqwest::Client, endpoint: &str) -> Result<String, ImdsError> {
        get(client
            .put(format!("{endpoint}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600"))
        .await
    }

    /// The instance's region.
    pub(super) async fn region(client: &reqwest::Client, endpoint: &str) -> Result<String, ImdsError> {
        let endpoint = endpoint.trim_end_matches('/');
        let token = token(client, endpoint).await?;
        let region = get(client
            .get(format!("{endpoint}/latest/meta-data/placement/region"))
            .header("x-aws-ec2-metadata-token", token))
        .await?;
        Ok(region.trim().to_owned())
    }

    /// The instance role's credentials.
    pub(super) async fn credentials(client: &reqwest::Client, endpoint: &str) -> Result<StaticCredentials, ImdsError> {
        let endpoint = endpoint.trim_end_matches('/');
        let token = token(client, endpoint).await?;
        let base = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
        let roles = get(client.get(&base).header("x-aws-ec2-metadata-token", &token)).await?;
        let role = roles
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or_else(|| ImdsError::Refused("the instance has no IAM role".to_owned()))?
            .to_owned();
        let body = get(client
            .get(format!("{base}{role}"))
            .header("x-aws-ec2-metadata-token", &token))
        .await?;
        let credentials: TemporaryCredentials = serde_json::from_str(&body)
            .map_err(|e| ImdsError::Refused(format!("role {role}: no credentials in the answer: {e}")))?;
        Ok(credentials.into_static(format!("EC2 instance metadata (role {role})")))
    }
}

/// One profile of the shared files: the credentials file's section first, then the config
/// file's (`[profile NAME]`, or `[default]`).
struct Profile {
    name: String,
    origin: String,
    settings: BTreeMap<String, String>,
}

impl Profile {
    fn load(config: &AwsConfig) -> Self {
        let mut settings = BTreeMap::new();
        let mut origins = Vec::new();
        let name = config.profile.clone();
        let config_section = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        for (path, section) in [
            (&config.credentials_file, name.as_str()),
            (&config.config_file, config_section.as_str()),
        ] {
            let found = read_section(path, section);
            if !found.is_empty() {
                origins.push(path.display().to_string());
            }
            for (k, v) in found {
                settings.entry(k).or_insert(v);
            }
        }
        Self {
            name,
            origin: origins.join(", "),
            settings,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The `key = value` lines of `[section]` in an INI file (missing file: none).
fn read_section(path: &Path, section: &str) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    parse_section(&text, section)
}

fn parse_section(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            out.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    out
}

/// `~/.aws/NAME`.
pub(super) fn home_aws_file(name: &str) -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".aws"), |h| PathBuf::from(h).join(".aws"))
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_their_sections() {
        let text = "[default]\naws_access_key_id = A\n[profile dev]\nregion=eu-west-1\n# c\n[dev]\naws_secret_access_key = S\n";
        assert_eq!(parse_section(text, "default").get("aws_access_key_id").unwrap(), "A");
        assert_eq!(parse_section(text, "profile dev").get("region").unwrap(), "eu-west-1");
        assert_eq!(parse_section(text, "dev").get("aws_secret_access_key").unwrap(), "S");
        assert!(parse_section(text, "other").is_empty());
    }

    #[test]
    fn errors_map_by_the_protocol_code() {
        let body = br#"{"__type":"com.amazonaws.kms#NotFoundException","message":"no"}"#;
        assert!(matches!(
            error("u", reqwest::StatusCode::BAD_REQUEST, body, "env"),
            KmsError::NotFound { .. }
        ));
        let body = br#"{"__type":"AccessDeniedException","message":"no"}"#;
        assert!(matches!(
            error("u", reqwest::StatusCode::BAD_REQUEST, body, "env"),
            KmsError::AccessDenied { .. }
        ));
        assert!(matches!(
            error("u", reqwest::StatusCode::FORBIDDEN, b"<xml/>", "env"),
            KmsError::AccessDenied { .. }
        ));
        assert!(matches!(
            error("u", reqwest::StatusCode::INTERNAL_SERVER_ERROR, b"", "env"),
            KmsError::Answer { .. }
        ));
    }
}
