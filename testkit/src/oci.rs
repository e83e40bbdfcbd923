//! Plain-HTTP oci-client plumbing shared by the image and signature modules.

use oci_client::client::{ClientConfig, ClientProtocol};
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

/// An oci-client speaking plain HTTP, as the loopback registry does.
pub(crate) fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

pub(crate) const ANONYMOUS: RegistryAuth = RegistryAuth::Anonymous;

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
        .pull_manifest_raw(reference, &ANONYMOUS, MANIFEST_MEDIA_TYPES)
        .await?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&body)?
        .get("mediaType")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(OCI_IMAGE_MEDIA_TYPE)
        .to_owned();
    Ok((body.to_vec(), media_type))
}
