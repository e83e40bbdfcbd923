//! The HTTP side shared by the KMS clients (AWS, GCP, Azure, Vault): one reqwest client (the
//! one `cip` already uses for registries: rustls with the platform's roots), the reading of
//! answers under a cap, and the mapping of HTTP answers to [`KmsError`].
//!
//! Every answer of a KMS, of its token endpoint and of the AWS SDK's credential endpoints is
//! read at most [`MAX_ANSWER_BYTES`] (with the registry client's capped readers): a KMS URI
//! names its endpoint (`awskms://HOST/…`, `azurekms://VAULT/…` with an override), and an
//! endpoint streaming without end was read until the timeout.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::KmsError;

/// Longest error text kept from a KMS answer.
const DETAIL_LIMIT: usize = 300;

/// Cap of one KMS answer: a public key (a PEM, a JWK or a DER in JSON: under 2 KiB for RSA-4096),
/// a key's description, an OAuth token (a few KiB) or a credential document. Over it the answer
/// is refused as soon as it passes the cap (a `Content-Length` over it before any byte is read);
/// of an error answer, the first [`MAX_ANSWER_BYTES`] are read for the message.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Cap of an answer listing a key's versions: a page of Cloud KMS's `cryptoKeyVersions.list`
/// (as many versions as the server chooses, each a few hundred bytes) and Vault's transit key
/// (the public key of every version still available, under 1 KiB each: a key rotated daily for
/// a year stays under 400 KiB).
pub const MAX_LIST_ANSWER_BYTES: usize = 1024 * 1024;

/// A reqwest client for KMS and token endpoints; no redirects (a token must not follow one).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// `application/x-www-form-urlencoded` body of `pairs`.
pub fn form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Sends `request` and decodes a JSON answer read at most [`MAX_ANSWER_BYTES`], mapping
/// failures to [`KmsError`]s about `uri`.
pub async fn json<T: DeserializeOwned>(uri: &str, request: reqwest::RequestBuilder) -> Result<T, KmsError> {
    json_within(uri, request, MAX_ANSWER_BYTES).await
}

/// [`json`] with an answer read at most `cap` bytes.
pub async fn json_within<T: DeserializeOwned>(
    uri: &str,
    request: reqwest::RequestBuilder,
    cap: usize,
) -> Result<T, KmsError> {
    let mut response = request.send().await.map_err(|e| transport(uri, &e))?;
    let status = response.status();
    let body = answer(uri, &mut response, cap).await?;
    if !status.is_success() {
        return Err(status_error(uri, status, &body));
    }
    serde_json::from_slice(&body).map_err(|e| KmsError::Answer {
        uri: uri.to_owned(),
        detail: format!("HTTP {status} with a body that is not the expected JSON: {e}"),
    })
}

/// The body of `response` read under `cap`: a success answer whole (over the cap, an
/// [`KmsError::Answer`] naming it, the rest unread), an error answer's first `cap` bytes.
pub async fn answer(uri: &str, response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, KmsError> {
    let status = response.status();
    if !status.is_success() {
        let (prefix, _) = crate::registry::read_prefix(response, cap)
            .await
            .map_err(|e| transport(uri, &e))?;
        return Ok(prefix);
    }
    crate::registry::read_capped(response, cap)
        .await
        .map_err(|e| transport(uri, &e))?
        .ok_or_else(|| KmsError::Answer {
            uri: uri.to_owned(),
            detail: format!(
                "HTTP {status} with an answer over {cap} bytes, refused without reading the rest \
                 (a KMS answer is a few KiB)"
            ),
        })
}

/// A transport failure: timeout or no connection. reqwest's messages carry no headers.
pub fn transport(uri: &str, error: &reqwest::Error) -> KmsError {
    KmsError::Unreachable {
        uri: uri.to_owned(),
        detail: transport_detail(error),
    }
}

/// A reqwest error with its causes.
pub fn transport_detail(error: &reqwest::Error) -> String {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

/// An HTTP error status: 404 not found, 401/403 access denied, anything else unexpected.
pub fn status_error(uri: &str, status: reqwest::StatusCode, body: &[u8]) -> KmsError {
    let detail = format!("HTTP {status}: {}", error_text(body));
    let uri = uri.to_owned();
    match status.as_u16() {
        404 => KmsError::NotFound { uri, detail },
        401 | 403 => KmsError::AccessDenied { uri, detail },
        _ => KmsError::Answer { uri, detail },
    }
}

/// The human part of an error body: Google's and Azure's `error.message`, OAuth's
/// `error_description`, Vault's `errors`, else the start of the body.
pub fn error_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(value) => [
            value.pointer("/error/message"),
            value.get("error_description"),
            value.pointer("/errors/0"),
            value.get("message"),
            value.get("error"),
        ]
        .into_iter()
        .flatten()
        .find_map(Value::as_str)
        .map_or_else(|| value.to_string(), str::to_owned),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    match text.char_indices().nth(DETAIL_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "no details".to_owned(),
        None => text.to_owned(),
    }
}
