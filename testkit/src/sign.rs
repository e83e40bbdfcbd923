//! Signing images the way cosign 2 does (legacy `.sig` tag): with a key, keyless through the
//! test Fulcio and Rekor, or with a given certificate.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::fulcio::{LeafCertificate, LeafRequest, TestFulcio};
use crate::keys::KeyPair;
use crate::rekor::TestRekor;
use crate::signature::{self, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, CosignLayer, SIGNATURE_ANNOTATION};

/// Builds an annotation map from pairs: `annotations([("env", "prod")])`.
pub fn annotations<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// A signed layer for `registry_host/repo@digest`, not pushed: `cosign sign --key` with
/// `-a key=value` annotations and no transparency log upload.
pub fn key_signature_layer(
    registry_host: &str,
    repo: &str,
    digest: &str,
    key: &KeyPair,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<CosignLayer> {
    let payload = signature::simple_signing_payload(registry_host, repo, digest, annotations)?;
    let signature = BASE64.encode(key.sign(&payload)?);
    Ok(CosignLayer {
        payload,
        annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), signature)]),
    })
}

/// Signs `registry_host/repo@digest` with `key` and adds the layer to its `.sig` manifest,
/// keeping earlier signatures. Returns the pushed layer.
pub fn sign_with_key(
    registry_host: &str,
    repo: &str,
    digest: &str,
    key: &KeyPair,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<CosignLayer> {
    let layer = key_signature_layer(registry_host, repo, digest, key, annotations)?;
    signature::append_signature_layer(registry_host, repo, digest, layer.clone())?;
    Ok(layer)
}

/// A layer signed by `leaf`'s key carrying its certificate, the `chain_pem` when given, and a
/// Rekor bundle when `rekor` is given (integrated now). Not pushed.
pub fn certificate_signature_layer(
    registry_host: &str,
    repo: &str,
    digest: &str,
    leaf: &LeafCertificate,
    chain_pem: Option<&str>,
    rekor: Option<&TestRekor>,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<CosignLayer> {
    let mut layer = key_signature_layer(registry_host, repo, digest, &leaf.key, annotations)?;
    layer
        .annotations
        .insert(CERTIFICATE_ANNOTATION.to_owned(), leaf.cert_pem.clone());
    if let Some(chain) = chain_pem {
        layer.annotations.insert(CHAIN_ANNOTATION.to_owned(), chain.to_owned());
    }
    match rekor {
        Some(rekor) => layer.with_bundle(rekor, &leaf.cert_pem, integrated_time_for(leaf)),
        None => Ok(layer),
    }
}

/// Signs with a certificate and its key (`cosign sign --certificate --certificate-chain`),
/// with a Rekor bundle when `rekor` is given, and appends the layer. Returns the layer.
pub fn sign_with_certificate(
    registry_host: &str,
    repo: &str,
    digest: &str,
    leaf: &LeafCertificate,
    chain_pem: &str,
    rekor: Option<&TestRekor>,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<CosignLayer> {
    let layer = certificate_signature_layer(registry_host, repo, digest, leaf, Some(chain_pem), rekor, annotations)?;
    signature::append_signature_layer(registry_host, repo, digest, layer.clone())?;
    Ok(layer)
}

/// Keyless signing as `cosign sign` does it against Fulcio and Rekor: a fresh leaf for the
/// request's identity and issuer, the chain, a bundle; appended to the `.sig` manifest.
pub fn sign_keyless(
    registry_host: &str,
    repo: &str,
    digest: &str,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    request: &LeafRequest,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<CosignLayer> {
    let leaf = fulcio.issue(request)?;
    sign_with_certificate(
        registry_host,
        repo,
        digest,
        &leaf,
        &fulcio.chain_pem(),
        Some(rekor),
        annotations,
    )
}

/// Rekor integrates entries when they arrive: now, or inside the certificate's validity when
/// a test issued a certificate in the past (so expiry tests fail on the certificate, not here).
pub(crate) fn integrated_time_for(leaf: &LeafCertificate) -> i64 {
    let now = chrono::Utc::now();
    if now >= leaf.not_before && now <= leaf.not_after {
        now.timestamp()
    } else {
        leaf.not_before.timestamp()
    }
}
