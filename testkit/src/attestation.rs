//! Attestations the way `cosign attest` stores them (legacy format): an in-toto statement
//! (v0.1) about the image, wrapped in a DSSE envelope signed over the pre-authentication
//! encoding, pushed as a layer of media type `application/vnd.dsse.envelope.v1+json` under
//! the tag `sha256-<hex>.att`, annotated like signature layers (empty signature annotation,
//! certificate, chain, Rekor bundle) plus `predicateType`. With a [`TestRekor`] the bundle
//! records the `intoto` 0.0.2 entry Rekor makes of the envelope.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::fulcio::{LeafCertificate, LeafRequest, TestFulcio};
use crate::keys::KeyPair;
use crate::rekor::TestRekor;
use crate::signature::{
    self, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, CosignLayer, SIGNATURE_ANNOTATION,
};

/// Media type of cosign's attestation layers.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of the statements `cosign attest` writes.
pub const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// cosign's predicate type for `--type spdx` / `spdxjson`.
pub const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document";
/// Layer annotation cosign adds with the statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// The tag cosign stores the attestations of `digest` under: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &str) -> String {
    format!("{}.att", digest.replace(':', "-"))
}

/// cosign's in-toto statement about `registry_host/repo@digest`.
pub fn in_toto_statement(
    registry_host: &str,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    predicate: &Value,
) -> Value {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    json!({
        "_type": IN_TOTO_STATEMENT_V01,
        "predicateType": predicate_type,
        "subject": [{"name": format!("{registry_host}/{repo}"), "digest": {algorithm: hex}}],
        "predicate": predicate,
    })
}

/// DSSE's pre-authentication encoding.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope of `payload` (of `payload_type`) signed by `key`, serialised as cosign
/// does; with the base64 signature.
pub fn dsse_envelope(payload_type: &str, payload: &[u8], key: &KeyPair) -> anyhow::Result<(Vec<u8>, String)> {
    let signature = BASE64.encode(key.sign(&dsse_pae(payload_type, payload))?);
    let envelope = json!({
        "payloadType": payload_type,
        "payload": BASE64.encode(payload),
        "signatures": [{"keyid": "", "sig": signature}],
    });
    Ok((serde_json::to_vec(&envelope)?, signature))
}

/// An attestation layer for the `statement` signed by `key` (`cosign attest --key`, no
/// transparency log upload). Not pushed.
pub fn key_attestation_layer(statement: &Value, key: &KeyPair) -> anyhow::Result<CosignLayer> {
    envelope_layer(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(statement)?, statement, key)
}

/// An attestation layer whose envelope has any `payload_type` and `payload` (negative tests).
pub fn envelope_layer(
    payload_type: &str,
    payload: &[u8],
    statement: &Value,
    key: &KeyPair,
) -> anyhow::Result<CosignLayer> {
    let (envelope, _) = dsse_envelope(payload_type, payload, key)?;
    let predicate_type = statement["predicateType"].as_str().unwrap_or_default().to_owned();
    Ok(CosignLayer {
        payload: envelope,
        annotations: BTreeMap::from([
            (SIGNATURE_ANNOTATION.to_owned(), String::new()),
            (PREDICATE_TYPE_ANNOTATION.to_owned(), predicate_type),
        ]),
    })
}

/// The Rekor bundle of an attestation layer: the `intoto` 0.0.2 entry Rekor canonicalises
/// from the envelope (signatures base64-encoded once more, keys as base64 PEM), integrated
/// at `integrated_time`, verifiable with `verifier_pem` (public key or certificate).
pub fn intoto_bundle_json(
    rekor: &TestRekor,
    envelope: &[u8],
    verifier_pem: &str,
    integrated_time: i64,
) -> anyhow::Result<String> {
    let parsed: Value = serde_json::from_slice(envelope).context("the envelope is not JSON")?;
    let payload = BASE64
        .decode(parsed["payload"].as_str().unwrap_or_default())
        .context("the envelope payload is not base64")?;
    let signatures: Vec<Value> = parsed["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            json!({
                "sig": BASE64.encode(s["sig"].as_str().unwrap_or_default()),
                "publicKey": BASE64.encode(verifier_pem),
            })
        })
        .collect();
    let entry = json!({
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {"content": {
            "envelope": {"payloadType": parsed["payloadType"], "signatures": signatures},
            "hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(envelope))},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))},
        }},
    });
    rekor.sign_bundle(&entry, integrated_time)
}

/// The layer with a Rekor bundle for its envelope (see [`intoto_bundle_json`]).
pub fn with_intoto_bundle(
    mut layer: CosignLayer,
    rekor: &TestRekor,
    verifier_pem: &str,
    integrated_time: i64,
) -> anyhow::Result<CosignLayer> {
    let bundle = intoto_bundle_json(rekor, &layer.payload, verifier_pem, integrated_time)?;
    layer.annotations.insert(BUNDLE_ANNOTATION.to_owned(), bundle);
    Ok(layer)
}

/// `cosign attest --key` of `predicate` (of `predicate_type`) on `registry_host/repo@digest`,
/// with a Rekor bundle when `rekor` is given; appended to the `.att` manifest. Returns the layer.
pub fn attest_with_key(
    registry_host: &str,
    repo: &str,
    digest: &str,
    key: &KeyPair,
    predicate_type: &str,
    predicate: &Value,
    rekor: Option<&TestRekor>,
) -> anyhow::Result<CosignLayer> {
    let statement = in_toto_statement(registry_host, repo, digest, predicate_type, predicate);
    let mut layer = key_attestation_layer(&statement, key)?;
    if let Some(rekor) = rekor {
        layer = with_intoto_bundle(layer, rekor, key.public_key_pem(), chrono::Utc::now().timestamp())?;
    }
    append_attestation_layer(registry_host, repo, digest, layer.clone())?;
    Ok(layer)
}

/// An attestation layer signed by `leaf`'s key carrying its certificate, the chain and a Rekor
/// bundle (keyless `cosign attest`). Not pushed.
pub fn certificate_attestation_layer(
    statement: &Value,
    leaf: &LeafCertificate,
    chain_pem: &str,
    rekor: &TestRekor,
) -> anyhow::Result<CosignLayer> {
    let mut layer = key_attestation_layer(statement, &leaf.key)?;
    layer
        .annotations
        .insert(CERTIFICATE_ANNOTATION.to_owned(), leaf.cert_pem.clone());
    layer
        .annotations
        .insert(CHAIN_ANNOTATION.to_owned(), chain_pem.to_owned());
    with_intoto_bundle(layer, rekor, &leaf.cert_pem, crate::sign::integrated_time_for(leaf))
}

/// Keyless `cosign attest`: a fresh leaf for the request's identity, the chain, a Rekor
/// bundle; appended to the `.att` manifest. Returns the layer.
#[allow(clippy::too_many_arguments, reason = "mirrors cosign attest's inputs")]
pub fn attest_keyless(
    registry_host: &str,
    repo: &str,
    digest: &str,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    request: &LeafRequest,
    predicate_type: &str,
    predicate: &Value,
) -> anyhow::Result<CosignLayer> {
    let leaf = fulcio.issue(request)?;
    let statement = in_toto_statement(registry_host, repo, digest, predicate_type, predicate);
    let layer = certificate_attestation_layer(&statement, &leaf, &fulcio.chain_pem(), rekor)?;
    append_attestation_layer(registry_host, repo, digest, layer.clone())?;
    Ok(layer)
}

/// The layers stored at the attestation tag of `digest`; empty when there is none.
pub fn fetch_attestation_layers(registry_host: &str, repo: &str, digest: &str) -> anyhow::Result<Vec<CosignLayer>> {
    signature::fetch_layers_at(registry_host, repo, &attestation_tag(digest))
        .with_context(|| format!("reading the attestations of {registry_host}/{repo}@{digest}"))
}

/// Replaces the attestation manifest of `digest` with one holding exactly `layers` (any
/// content: the tool for negative tests). Returns the manifest's digest.
pub fn push_attestation_layers(
    registry_host: &str,
    repo: &str,
    digest: &str,
    layers: &[CosignLayer],
) -> anyhow::Result<String> {
    signature::push_layers_at(registry_host, repo, &attestation_tag(digest), DSSE_MEDIA_TYPE, layers)
        .with_context(|| format!("pushing the attestations of {registry_host}/{repo}@{digest}"))
}

/// Adds `layer` to the attestation manifest of `digest`, keeping earlier layers, as a second
/// `cosign attest` does. Returns the manifest digest.
pub fn append_attestation_layer(
    registry_host: &str,
    repo: &str,
    digest: &str,
    layer: CosignLayer,
) -> anyhow::Result<String> {
    let mut layers = fetch_attestation_layers(registry_host, repo, digest)?;
    if !layers.contains(&layer) {
        layers.push(layer);
    }
    push_attestation_layers(registry_host, repo, digest, &layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world").
        assert_eq!(
            dsse_pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn statement_names_the_digest_like_cosign() {
        let statement = in_toto_statement("r:5000", "app", "sha256:ab", SPDX_PREDICATE_TYPE, &json!({}));
        assert_eq!(statement["subject"][0]["digest"]["sha256"], "ab");
        assert_eq!(statement["subject"][0]["name"], "r:5000/app");
        assert_eq!(attestation_tag("sha256:ab"), "sha256-ab.att");
    }
}
