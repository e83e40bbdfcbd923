//! The AWS SDK's HTTP client (`aws_smithy_runtime_api::client::http::HttpClient`) over the KMS
//! clients' reqwest client: `aws-config`'s credential and region providers (STS, SSO, the
//! container endpoint, IMDS) then use the TLS set-up `cip` already has, instead of the SDK's
//! default hyper/aws-lc client.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;

use super::http::MAX_ANSWER_BYTES;

/// An [`HttpClient`] sending through a reqwest client.
#[derive(Clone, Debug)]
pub struct ReqwestHttpClient {
    client: reqwest::Client,
}

impl ReqwestHttpClient {
    /// Sends through `client` (its timeouts, TLS roots and redirect policy).
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        // The SDK's connect + read timeouts bound each request (IMDS: 1 s each); the client's own
        // timeout and the resolver's deadline still apply.
        let timeout = match (settings.connect_timeout(), settings.read_timeout()) {
            (Some(connect), Some(read)) => Some(connect + read),
            (connect, read) => connect.or(read),
        };
        SharedHttpConnector::new(Connector {
            client: self.client.clone(),
            timeout,
        })
    }
}

#[derive(Debug)]
struct Connector {
    client: reqwest::Client,
    timeout: Option<std::time::Duration>,
}

fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let timeout = self.timeout;
        HttpConnectorFuture::new(async move {
            let method = reqwest::Method::from_bytes(request.method().as_bytes())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            // Credential requests have small in-memory bodies; a streaming body is refused.
            let body = request
                .body()
                .bytes()
                .ok_or_else(|| ConnectorError::other("streaming request bodies are not supported".into(), None))?
                .to_vec();
            let mut builder = client.request(method, request.uri()).body(body);
            for (name, value) in request.headers() {
                builder = builder.header(name, value);
            }
            if let Some(timeout) = timeout {
                builder = builder.timeout(timeout);
            }
            let mut response = builder.send().await.map_err(connector_error)?;
            let status =
                StatusCode::try_from(response.status().as_u16()).map_err(|e| ConnectorError::other(e.into(), None))?;
            let headers = response.headers().clone();
            // Credential answers (STS, SSO, the container endpoint, IMDS) are a few KiB.
            let bytes = crate::registry::read_capped(&mut response, MAX_ANSWER_BYTES)
                .await
                .map_err(connector_error)?
                .ok_or_else(|| {
                    ConnectorError::other(
                        format!("HTTP {status} answer over {MAX_ANSWER_BYTES} bytes, refused without reading the rest")
                            .into(),
                        None,
                    )
                })?;
            let mut answer = Response::new(status, SdkBody::from(bytes));
            for (name, value) in &headers {
                if let Ok(value) = value.to_str() {
                    answer.headers_mut().append(name.as_str().to_owned(), value.to_owned());
                }
            }
            Ok(answer)
        })
    }
}
