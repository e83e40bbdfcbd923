//! Size- and count-capped downloads of signature manifests and their layers.
//!
//! oci-client reads a manifest whole (`Response::bytes`), so the manifest is fetched here with
//! our own HTTP client (same plain-HTTP hosts, extra CAs, credentials and timeouts) and read
//! chunk by chunk; layers are streamed through oci-client's `pull_blob_stream`. Either stops as
//! soon as the cap is passed.

use futures::StreamExt as _;
use oci_client::Reference;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;

use super::{MANIFEST_MEDIA_TYPES, RegistryClient, RegistryError};

/// Default cap of a signature manifest (`--max-signature-manifest-bytes`).
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Default cap of one signature layer (`--max-signature-layer-bytes`).
pub const DEFAULT_MAX_LAYER_BYTES: usize = 256 * 1024;
/// Default cap of the layers of one signature manifest (`--max-signature-layers`), cosign's
/// `COSIGN_MAX_ATTACHMENTS` default.
pub const DEFAULT_MAX_LAYERS: usize = 50;

/// Caps applied while downloading signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadLimits {
    /// Largest signature manifest read, bytes.
    pub max_manifest_bytes: usize,
    /// Largest signature layer read, bytes.
    pub max_layer_bytes: usize,
    /// Most layers one signature manifest may list.
    pub max_layers: usize,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_layer_bytes: DEFAULT_MAX_LAYER_BYTES,
            max_layers: DEFAULT_MAX_LAYERS,
        }
    }
}

/// What a capped manifest is, for the message naming its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestKind {
    /// The manifest, as a message names it.
    pub what: &'static str,
    /// The setting that raises its cap.
    pub setting: &'static str,
}

/// The manifest of an image's signatures (`sha256-<digest>.sig`).
pub const SIGNATURE_MANIFEST: ManifestKind = ManifestKind {
    what: "the signature manifest",
    setting: "--max-signature-manifest-bytes",
};

/// Why a capped download failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundedError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A cap was passed.
    #[error("{what} of {image} is larger than the cap of {cap} {unit} ({setting})")]
    OverCap {
        what: &'static str,
        image: String,
        cap: usize,
        unit: &'static str,
        setting: &'static str,
    },
}

impl RegistryClient {
    /// The image manifest `reference` names and its layers' bytes, every download capped.
    pub async fn capped_manifest_and_layers(
        &self,
        reference: &Reference,
        limits: &DownloadLimits,
    ) -> Result<(OciImageManifest, Vec<(OciDescriptor, Vec<u8>)>), BoundedError> {
        let body = self
            .capped_manifest(reference, limits.max_manifest_bytes, SIGNATURE_MANIFEST)
            .await?;
        let manifest: OciImageManifest = serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
            image: reference.whole(),
            reason: format!("not an image manifest: {e}"),
        })?;
        if manifest.layers.len() > limits.max_layers {
            return Err(BoundedError::OverCap {
                what: "the layer count of the signature manifest",
                image: reference.whole(),
                cap: limits.max_layers,
                unit: "layers",
                setting: "--max-signature-layers",
            });
        }
        let mut layers: Vec<(OciDescriptor, Vec<u8>)> = Vec::new();
        for descriptor in &manifest.layers {
            if let Some((_, data)) = layers.iter().find(|(d, _)| d.digest == descriptor.digest) {
                let data = data.clone();
                layers.push((descriptor.clone(), data));
                continue;
            }
            let data = self.capped_blob(reference, descriptor, limits.max_layer_bytes).await?;
            layers.push((descriptor.clone(), data));
        }
        Ok((manifest, layers))
    }

    async fn capped_blob(
        &self,
        reference: &Reference,
        descriptor: &OciDescriptor,
        cap: usize,
    ) -> Result<Vec<u8>, BoundedError> {
        let over = || BoundedError::OverCap {
            what: "a signature layer",
            image: reference.whole(),
            cap,
            unit: "bytes",
            setting: "--max-signature-layer-bytes",
        };
        if usize::try_from(descriptor.size).map_or(true, |size| size > cap) {
            return Err(over());
        }
        let read = async {
            let mut stream = self.client.pull_blob_stream(reference, descriptor).await?;
            let mut data = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if data.len() + chunk.len() > cap {
                    return Ok(None);
                }
                data.extend_from_slice(&chunk);
            }
            Ok(Some(data))
        };
        // Blob and its redirect, each bounded by the read timeout; the whole by two round trips.
        match self.bounded(reference, 2, read).await? {
            Some(data) => Ok(data),
            None => Err(over()),
        }
    }

    /// The raw manifest `reference` names, read at most `cap` bytes; `kind` names it when it is
    /// over the cap.
    pub(crate) async fn capped_manifest(
        &self,
        reference: &Reference,
        cap: usize,
        kind: ManifestKind,
    ) -> Result<Vec<u8>, BoundedError> {
        let over = || BoundedError::OverCap {
            what: kind.what,
            image: reference.whole(),
            cap,
            unit: "bytes",
            setting: kind.setting,
        };
        let auth = self.auth_for(reference);
        let registry = reference.resolve_registry().to_string();
        let token = self
            .bounded(
                reference,
                2,
                self.client.auth(reference, &auth, oci_client::RegistryOperation::Pull),
            )
            .await
            // Registries without token auth answer the first request themselves.
            .unwrap_or(None);
        let scheme = if self.sources.is_insecure(&registry) {
            "http"
        } else {
            "https"
        };
        let target = reference.digest().or(reference.tag()).unwrap_or("latest");
        let url = format!("{scheme}://{registry}/v2/{}/manifests/{target}", reference.repository());
        let mut request = self.http.get(&url).header("Accept", MANIFEST_MEDIA_TYPES.join(", "));
        request = match (&token, &auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            _ => request,
        };
        let timeout = self.timeout;
        let http_error = |e: reqwest::Error| {
            if e.is_timeout() {
                RegistryError::Timeout {
                    registry: registry.clone(),
                    after: timeout,
                }
            } else if e.is_connect() {
                RegistryError::Unreachable {
                    registry: registry.clone(),
                    reason: super::error::innermost_cause(&e),
                }
            } else {
                RegistryError::Other {
                    image: reference.whole(),
                    registry: registry.clone(),
                    reason: super::error::innermost_cause(&e),
                }
            }
        };
        let read = async {
            let mut response = request.send().await.map_err(http_error)?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(BoundedError::Registry(RegistryError::NotFound {
                    image: reference.whole(),
                    registry: registry.clone(),
                }));
            }
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                return Err(BoundedError::Registry(RegistryError::Denied {
                    image: reference.whole(),
                    registry: registry.clone(),
                    reason: status.to_string(),
                }));
            }
            if !status.is_success() {
                return Err(BoundedError::Registry(RegistryError::Other {
                    image: reference.whole(),
                    registry: registry.clone(),
                    reason: format!("manifest request answered {status}"),
                }));
            }
            if response
                .content_length()
                .is_some_and(|length| usize::try_from(length).map_or(true, |length| length > cap))
            {
                return Err(over());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(http_error)? {
                if body.len() + chunk.len() > cap {
                    return Err(over());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        match tokio::time::timeout(self.timeout.saturating_mul(2), read).await {
            Ok(result) => result,
            Err(_) => Err(BoundedError::Registry(RegistryError::Timeout {
                registry,
                after: self.timeout,
            })),
        }
    }
}
