//! `awskms://[ENDPOINT]/KEY`: AWS KMS `GetPublicKey` (JSON 1.1 protocol,
//! `X-Amz-Target: TrentService.GetPublicKey`), signed with AWS's SigV4 crate (`aws-sigv4`) and
//! sent with the REST clients' reqwest client.
//!
//! Credentials and region come from the official SDK's default chain (`aws-config`), loaded
//! once per resolver, whose own HTTP calls (STS, SSO, container endpoint, IMDS) go through the
//! same reqwest client ([`super::aws_sdk_http`]). The SDK's service client for KMS is not used:
//! one signed POST is all `cip` needs.
//!
//! * credentials: the SDK's default chain, first found: environment (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); profile `AWS_PROFILE` of
//!   `AWS_CONFIG_FILE`/`AWS_SHARED_CREDENTIALS_FILE` (static keys, `role_arn` with
//!   `source_profile` or `credential_source`, `credential_process`, SSO, web identity);
//!   web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`);
//!   the container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`/`_FULL_URI`,
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`); EC2 instance metadata
//!   (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_EC2_METADATA_DISABLED`). STS and SSO honour
//!   `AWS_ENDPOINT_URL_STS`/`AWS_ENDPOINT_URL` (the SDK's service endpoints).
//! * region: the key's ARN, else the SDK's (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
//!   `region`, instance metadata).
//! * endpoint: `awskms://ENDPOINT/…` (HTTPS, or HTTP for [`KmsConfig::insecure_endpoints`]),
//!   else `--kms-aws-endpoint`, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL` (or the profile's
//!   `endpoint_url`), else `https://kms.REGION.amazonaws.com`.

use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::config::KmsConfig;
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

/// The SDK's shared configuration (credentials chain, region), its HTTP calls made by `client`.
pub async fn load_sdk_config(client: &reqwest::Client) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(super::aws_sdk_http::ReqwestHttpClient::new(client.clone()))
        .load()
        .await
}

/// Resolves an `awskms://` key.
pub async fn public_key(
    client: &reqwest::Client,
    sdk: &SdkConfig,
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
    let region = key
        .strip_prefix("arn:")
        .and_then(|arn| arn.split(':').nth(2))
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .or_else(|| sdk.region().map(|r| r.as_ref().to_owned()))
        .ok_or_else(|| {
            no_credentials(
                "no AWS region: set AWS_REGION (or the profile's region), or name the key by its ARN".to_owned(),
            )
        })?;
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| no_credentials("the AWS SDK configured no credentials provider".to_owned()))?;
    // The SDK's errors name the sources tried and never the secrets (its `Credentials` redacts).
    let credentials = provider.provide_credentials().await.map_err(|e| {
        no_credentials(format!(
            "the AWS SDK's default chain (environment, profile {}, web identity, container endpoint, instance metadata) gave none: {}",
            profile_name(),
            error_chain(&e)
        ))
    })?;
    let source = format!("the AWS SDK's default chain (profile {})", profile_name());
    let url = match endpoint {
        Some(endpoint) => {
            let scheme = if config.insecure_endpoints.iter().any(|e| e == endpoint) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{endpoint}/")
        }
        None => match config.aws.endpoint_url.as_deref().or(sdk.endpoint_url()) {
            Some(url) => format!("{}/", url.trim_end_matches('/')),
            None => format!("https://kms.{region}.amazonaws.com/"),
        },
    };
    let body = serde_json::json!({ "KeyId": key }).to_string();

    // An empty session token is none (no `X-Amz-Security-Token` header).
    let credentials = match credentials.session_token() {
        Some("") => Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            None,
            credentials.expiry(),
            "cip",
        ),
        _ => credentials,
    };
    let identity = credentials.into();
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

    let mut response = request.send().await.map_err(|e| http::transport(uri, &e))?;
    let status = response.status();
    let bytes = http::answer(uri, &mut response, http::MAX_ANSWER_BYTES).await?;
    if !status.is_success() {
        return Err(error(uri, status, &bytes, &source));
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

/// An error and its causes, each once (the SDK's messages name sources, never secrets).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `AWS_PROFILE`, as the SDK reads it (default `default`), for messages.
fn profile_name() -> String {
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "default".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

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
