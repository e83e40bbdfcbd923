//! Signatures made by a signer outside the testkit (a KMS, an HSM): the caller signs cosign's
//! payload however it likes and the testkit stores the layer, exactly as `cosign sign --key
//! awskms://…` does.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::signature::{self, CosignLayer, SIGNATURE_ANNOTATION};

/// A layer for `registry_host/repo@digest` signed by `sign`, which receives cosign's payload
/// and returns the signature bytes (ASN.1 DER for ECDSA). Not pushed.
pub fn external_signature_layer(
    registry_host: &str,
    repo: &str,
    digest: &str,
    annotations: &BTreeMap<String, String>,
    sign: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<CosignLayer> {
    let payload = signature::simple_signing_payload(registry_host, repo, digest, annotations)?;
    let signature = BASE64.encode(sign(&payload)?);
    Ok(CosignLayer {
        payload,
        annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), signature)]),
    })
}

/// Signs `registry_host/repo@digest` with `sign` and appends the layer to its `.sig` manifest.
pub fn sign_with_external(
    registry_host: &str,
    repo: &str,
    digest: &str,
    annotations: &BTreeMap<String, String>,
    sign: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<CosignLayer> {
    let layer = external_signature_layer(registry_host, repo, digest, annotations, sign)?;
    signature::append_signature_layer(registry_host, repo, digest, layer.clone())?;
    Ok(layer)
}
