//! cosign's legacy signature storage: `repo:sha256-<hex>.sig`, an OCI manifest whose layers
//! are simple-signing payloads annotated with signatures (and certificates, chains, bundles).
//!
//! These are the low-level parts: build, read, replace, append, copy and corrupt layers. The
//! signing front ends live in [`crate::sign`].

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use serde_json::json;
use sigstore::cosign::payload::simple_signing::{Critical, Identity, Image, Optional, SimpleSigning};

use crate::oci::{self, sha256_digest};
use crate::rekor::TestRekor;
use crate::rt;

/// Media type of cosign simple-signing payload layers.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding the signer's PEM certificate (keyless / certificate signing).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the PEM chain (intermediates then root) of the certificate.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation holding the Rekor bundle (SET + entry) as JSON.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

const CRITICAL_TYPE: &str = "cosign container image signature";

/// One layer of a cosign signature manifest: the payload blob and its descriptor annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignLayer {
    /// The simple-signing JSON exactly as stored (and signed).
    pub payload: Vec<u8>,
    /// Descriptor annotations: signature, certificate, chain, bundle.
    pub annotations: BTreeMap<String, String>,
}

impl CosignLayer {
    /// The layer's blob digest; two signers of the same payload share it.
    pub fn digest(&self) -> String {
        sha256_digest(&self.payload)
    }

    /// The base64 signature annotation, if any.
    pub fn signature(&self) -> Option<&str> {
        self.annotations.get(SIGNATURE_ANNOTATION).map(String::as_str)
    }

    /// The same layer with one byte of the decoded signature flipped: still well-formed
    /// base64, no longer a valid signature.
    pub fn with_corrupted_signature(mut self) -> anyhow::Result<Self> {
        let encoded = self.signature().context("the layer has no signature to corrupt")?;
        let mut raw = BASE64
            .decode(encoded)
            .context("the signature annotation is not base64")?;
        let middle = raw.len() / 2;
        let byte = raw.get_mut(middle).context("the signature annotation is empty")?;
        *byte ^= 0x01;
        self.annotations
            .insert(SIGNATURE_ANNOTATION.to_owned(), BASE64.encode(raw));
        Ok(self)
    }

    /// The same layer with a Rekor bundle recording its signature, verifiable with
    /// `verifier_pem` (certificate or public key), integrated at `integrated_time` (Unix
    /// seconds): `cosign sign --key` with tlog upload, or a bundle integrated outside a
    /// certificate's validity for expiry tests.
    pub fn with_bundle(mut self, rekor: &TestRekor, verifier_pem: &str, integrated_time: i64) -> anyhow::Result<Self> {
        let signature = self
            .signature()
            .context("the layer has no signature to log")?
            .to_owned();
        let bundle = rekor.bundle_json(&self.payload, &signature, verifier_pem, integrated_time)?;
        self.annotations.insert(BUNDLE_ANNOTATION.to_owned(), bundle);
        Ok(self)
    }

    /// The same layer (same signature) over a payload with an extra optional annotation: the
    /// signature no longer matches the payload.
    pub fn with_tampered_payload(mut self) -> anyhow::Result<Self> {
        let mut payload: serde_json::Value =
            serde_json::from_slice(&self.payload).context("the payload is not JSON")?;
        let object = payload.as_object_mut().context("the payload is not a JSON object")?;
        object.insert("optional".to_owned(), json!({"tampered": "true"}));
        self.payload = serde_json::to_vec(&payload)?;
        Ok(self)
    }
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// cosign's simple-signing payload for `registry_host/repo@digest`, with `annotations` as the
/// `optional` section (`null` when empty), serialised the way cosign does.
pub fn simple_signing_payload(
    registry_host: &str,
    repo: &str,
    digest: &str,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    let optional = (!annotations.is_empty()).then(|| Optional {
        creator: None,
        timestamp: None,
        extra: annotations
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    });
    let payload = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: format!("{registry_host}/{repo}"),
            },
            image: Image {
                docker_manifest_digest: digest.to_owned(),
            },
            type_name: CRITICAL_TYPE.to_owned(),
        },
        optional,
    };
    Ok(serde_json::to_vec(&payload)?)
}

/// The layers currently stored at the signature tag of `digest`; empty when there is none.
pub fn fetch_signature_layers(registry_host: &str, repo: &str, digest: &str) -> anyhow::Result<Vec<CosignLayer>> {
    fetch_layers_at(registry_host, repo, &signature_tag(digest))
        .with_context(|| format!("reading the signatures of {registry_host}/{repo}@{digest}"))
}

/// The layers of the manifest at `repo:tag` with their annotations; empty when the tag does
/// not exist.
pub(crate) fn fetch_layers_at(registry_host: &str, repo: &str, tag: &str) -> anyhow::Result<Vec<CosignLayer>> {
    if !tag_exists(registry_host, repo, tag)? {
        return Ok(Vec::new());
    }
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let reference = oci::tag_ref(registry_host, repo, tag);
        let (body, _) = oci::pull_manifest_bytes(&client, &reference).await?;
        let manifest: OciImageManifest =
            serde_json::from_slice(&body).context("the manifest is not an image manifest")?;
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for descriptor in &manifest.layers {
            let mut payload = Vec::new();
            client.pull_blob(&reference, descriptor, &mut payload).await?;
            layers.push(CosignLayer {
                payload,
                annotations: descriptor.annotations.clone().unwrap_or_default(),
            });
        }
        Ok(layers)
    })
}

/// Replaces the signature manifest of `digest` with one holding exactly `layers`; returns
/// the signature manifest's digest. Layers may name any image or carry any annotations:
/// this is the tool for negative tests.
pub fn push_signature_layers(
    registry_host: &str,
    repo: &str,
    digest: &str,
    layers: &[CosignLayer],
) -> anyhow::Result<String> {
    if layers.is_empty() {
        bail!("a cosign signature manifest needs at least one layer");
    }
    push_layers_at(
        registry_host,
        repo,
        &signature_tag(digest),
        SIMPLE_SIGNING_MEDIA_TYPE,
        layers,
    )
    .with_context(|| format!("pushing the signatures of {registry_host}/{repo}@{digest}"))
}

/// Pushes an OCI manifest at `repo:tag` whose layers are `layers` (of `media_type`, with
/// their annotations), as cosign stores attachments; returns the manifest's digest.
pub(crate) fn push_layers_at(
    registry_host: &str,
    repo: &str,
    tag: &str,
    media_type: &str,
    layers: &[CosignLayer],
) -> anyhow::Result<String> {
    let config = b"{}".to_vec();
    let descriptors: Vec<_> = layers
        .iter()
        .map(|layer| {
            json!({
                "mediaType": media_type,
                "size": layer.payload.len(),
                "digest": layer.digest(),
                "annotations": layer.annotations,
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {"mediaType": IMAGE_CONFIG_MEDIA_TYPE, "size": config.len(), "digest": sha256_digest(&config)},
        "layers": descriptors,
    }))?;
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let reference = oci::tag_ref(registry_host, repo, tag);
        for layer in layers {
            oci::ensure_blob(&client, &reference, &layer.payload).await?;
        }
        oci::ensure_blob(&client, &reference, &config).await?;
        oci::push_manifest_bytes(&client, &reference, manifest, OCI_IMAGE_MEDIA_TYPE).await
    })
}

/// Adds `layer` to the signature manifest of `digest`, keeping earlier layers, as a second
/// `cosign sign` does. Returns the new signature manifest digest.
pub fn append_signature_layer(
    registry_host: &str,
    repo: &str,
    digest: &str,
    layer: CosignLayer,
) -> anyhow::Result<String> {
    let mut layers = fetch_signature_layers(registry_host, repo, digest)?;
    if !layers.contains(&layer) {
        layers.push(layer);
    }
    push_signature_layers(registry_host, repo, digest, &layers)
}

/// Copies the signature manifest of `from_repo@from_digest` to the signature tag of
/// `to_repo@to_digest` unchanged (payloads still name the source image).
pub fn copy_signatures(
    registry_host: &str,
    from_repo: &str,
    from_digest: &str,
    to_repo: &str,
    to_digest: &str,
) -> anyhow::Result<String> {
    let layers = fetch_signature_layers(registry_host, from_repo, from_digest)?;
    if layers.is_empty() {
        bail!("{registry_host}/{from_repo}@{from_digest} has no signatures to copy");
    }
    push_signature_layers(registry_host, to_repo, to_digest, &layers)
}

/// Deletes the signature manifest of `digest` (the `.sig` tag disappears).
pub fn delete_signatures(registry_host: &str, repo: &str, digest: &str) -> anyhow::Result<()> {
    let signature_digest = crate::image::resolve_digest(registry_host, repo, &signature_tag(digest))?;
    crate::image::delete_manifest(registry_host, repo, &signature_digest)
}

fn tag_exists(registry_host: &str, repo: &str, tag: &str) -> anyhow::Result<bool> {
    let path = format!("/v2/{repo}/manifests/{tag}");
    let status = rt::block_on(oci::raw_request(
        registry_host,
        reqwest::Method::HEAD,
        &path,
        Some(OCI_IMAGE_MEDIA_TYPE),
    ))?;
    match status {
        reqwest::StatusCode::OK => Ok(true),
        reqwest::StatusCode::NOT_FOUND => Ok(false),
        status => bail!("HEAD {path} on {registry_host}: HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tag_replaces_colon() {
        assert_eq!(signature_tag("sha256:abc"), "sha256-abc.sig");
    }

    #[test]
    fn payload_matches_cosign_layout() -> anyhow::Result<()> {
        let payload = simple_signing_payload("127.0.0.1:5000", "app", "sha256:ab", &BTreeMap::new())?;
        assert_eq!(
            String::from_utf8(payload)?,
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/app"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#
        );
        Ok(())
    }

    #[test]
    fn corrupting_keeps_base64_but_changes_signature() -> anyhow::Result<()> {
        let layer = CosignLayer {
            payload: b"{}".to_vec(),
            annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), BASE64.encode([1u8, 2, 3]))]),
        };
        let corrupted = layer.clone().with_corrupted_signature()?;
        assert_ne!(corrupted.signature(), layer.signature());
        assert_eq!(corrupted.signature().map(|s| BASE64.decode(s).is_ok()), Some(true));
        Ok(())
    }
}
