//! Registry clients for the fixtures: plain HTTP for ordinary loopback registries, HTTPS with
//! the registry's own CA and Basic credentials for registries started with
//! [`RegistryOptions`](crate::RegistryOptions). Every fixture takes only a host string, so
//! per-host access is looked up in a process-wide table the registry fills while it runs.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

/// Manifest media types the fixtures read back.
pub(crate) const MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// How to reach one registry host: its CA when it serves HTTPS, its Basic credentials.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostAccess {
    pub ca_pem: Option<String>,
    pub credentials: Option<(String, String)>,
}

/// Bounds on every fixture request, so a test pointed at a hanging server fails instead of
/// hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

static HOSTS: Mutex<BTreeMap<String, HostAccess>> = Mutex::new(BTreeMap::new());

pub(crate) fn register_host(host: &str, access: HostAccess) {
    HOSTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(host.to_owned(), access);
}

pub(crate) fn unregister_host(host: &str) {
    HOSTS.lock().unwrap_or_else(PoisonError::into_inner).remove(host);
}

/// Lets `alias` (a proxy in front of `host`) be reached the way `host` is.
pub(crate) fn alias_host(alias: &str, host: &str) {
    let access = access(host);
    if access.ca_pem.is_some() || access.credentials.is_some() {
        register_host(alias, access);
    }
}

fn access(host: &str) -> HostAccess {
    HOSTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(host)
        .cloned()
        .unwrap_or_default()
}

/// An oci-client for `host`: plain HTTP, or HTTPS trusting only the registry's CA, with the
/// host's credentials stored for every later call.
pub(crate) async fn client(host: &str) -> Client {
    let client = unauthenticated_client(host);
    client.store_auth_if_needed(host, &auth(host)).await;
    client
}

fn unauthenticated_client(host: &str) -> Client {
    let config = match access(host).ca_pem {
        Some(ca_pem) => ClientConfig {
            protocol: ClientProtocol::Https,
            tls_certs_only: vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: ca_pem.into_bytes(),
            }],
            ..Default::default()
        },
        None => ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        },
    };
    Client::new(ClientConfig {
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..config
    })
}

/// Credentials for `host`: Basic when the registry requires them, anonymous otherwise.
pub(crate) fn auth(host: &str) -> RegistryAuth {
    match access(host).credentials {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    }
}

/// A raw HTTP request to `host` (for operations oci-client lacks), with TLS and credentials.
pub(crate) async fn raw_request(
    host: &str,
    method: reqwest::Method,
    path: &str,
    accept: Option<&str>,
) -> anyhow::Result<reqwest::StatusCode> {
    let access = access(host);
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(READ_TIMEOUT);
    let scheme = match &access.ca_pem {
        Some(ca_pem) => {
            builder = builder.tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?]);
            "https"
        }
        None => "http",
    };
    let mut request = builder.build()?.request(method, format!("{scheme}://{host}{path}"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    if let Some((user, password)) = &access.credentials {
        request = request.basic_auth(user, Some(password));
    }
    Ok(request.send().await?.status())
}

pub(crate) fn tag_ref(host: &str, repo: &str, tag: &str) -> Reference {
    Reference::with_tag(host.to_owned(), repo.to_owned(), tag.to_owned())
}

pub(crate) fn digest_ref(host: &str, repo: &str, digest: &str) -> Reference {
    Reference::with_digest(host.to_owned(), repo.to_owned(), digest.to_owned())
}

/// `sha256:<hex>` of `data`, the OCI content digest.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pushes a blob unless the registry already has it.
pub(crate) async fn ensure_blob(client: &Client, reference: &Reference, data: &[u8]) -> anyhow::Result<String> {
    let digest = sha256_digest(data);
    if !client.blob_exists(reference, &digest).await? {
        client.push_blob(reference, data.to_vec(), &digest).await?;
    }
    Ok(digest)
}

/// Pushes manifest bytes under `reference` exactly as given; returns their digest.
pub(crate) async fn push_manifest_bytes(
    client: &Client,
    reference: &Reference,
    body: Vec<u8>,
    media_type: &str,
) -> anyhow::Result<String> {
    let digest = sha256_digest(&body);
    client.push_manifest_raw(reference, body, media_type.parse()?).await?;
    Ok(digest)
}

/// Fetches manifest bytes and the media type they declare.
pub(crate) async fn pull_manifest_bytes(client: &Client, reference: &Reference) -> anyhow::Result<(Vec<u8>, String)> {
    let (body, _digest) = client
        .pull_manifest_raw(reference, &auth(reference.registry()), MANIFEST_MEDIA_TYPES)
        .await?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&body)?
        .get("mediaType")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(OCI_IMAGE_MEDIA_TYPE)
        .to_owned();
    Ok((body.to_vec(), media_type))
}
