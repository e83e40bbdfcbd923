//! The Rekor entry inside a cosign bundle (`dev.sigstore.cosign/bundle` annotation).
//!
//! The bundle is `{"SignedEntryTimestamp", "Payload": {"body", "integratedTime", "logIndex",
//! "logID"}}`; the host verifies the SignedEntryTimestamp over `Payload`, so `body` is what the
//! log recorded. `body` is base64 JSON of a `hashedrekord` (or `rekord`) v0.0.1 entry: the
//! SHA-256 of the signed payload, the signature and the signer's certificate (or key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::crypto::sole_pem_block;

/// What a `hashedrekord`/`rekord` entry says was signed, by whom.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// SHA-256 of the signed payload.
    pub payload_sha256: [u8; 32],
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// The PEM block of the signer: a `CERTIFICATE` or a `PUBLIC KEY`.
    pub signer: pem::Pem,
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "Payload")]
    payload: BundlePayload,
}

#[derive(Deserialize)]
struct BundlePayload {
    body: String,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    spec: Spec,
}

#[derive(Deserialize)]
struct Spec {
    data: Data,
    signature: Signature,
}

#[derive(Deserialize)]
struct Data {
    hash: Option<Hash>,
}

#[derive(Deserialize)]
struct Hash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct Signature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: PublicKey,
}

#[derive(Deserialize)]
struct PublicKey {
    content: String,
}

/// Reads the log entry of a cosign bundle annotation.
pub fn entry_of_bundle(bundle: &str) -> Result<LogEntry, String> {
    let bundle: Bundle = serde_json::from_str(bundle).map_err(|e| format!("the Rekor bundle cannot be read: {e}"))?;
    let body = STANDARD
        .decode(bundle.payload.body.as_bytes())
        .map_err(|e| format!("the Rekor entry body is not base64: {e}"))?;
    let body: Body = serde_json::from_slice(&body).map_err(|e| format!("the Rekor entry body cannot be read: {e}"))?;
    if !matches!(body.kind.as_str(), "hashedrekord" | "rekord") || body.api_version != "0.0.1" {
        return Err(format!(
            "the Rekor entry is a {} v{}, not a hashedrekord or rekord v0.0.1",
            body.kind, body.api_version
        ));
    }
    let hash = body
        .spec
        .data
        .hash
        .ok_or_else(|| "the Rekor entry names no hash of the payload".to_owned())?;
    if hash.algorithm != "sha256" {
        return Err(format!(
            "the Rekor entry hashes the payload with {}, not sha256",
            hash.algorithm
        ));
    }
    let payload_sha256 =
        parse_hex32(&hash.value).ok_or_else(|| format!("the Rekor entry hash `{}` is not a SHA-256", hash.value))?;
    let signature = STANDARD
        .decode(body.spec.signature.content.as_bytes())
        .map_err(|e| format!("the Rekor entry signature is not base64: {e}"))?;
    let signer_pem = STANDARD
        .decode(body.spec.signature.public_key.content.as_bytes())
        .map_err(|e| format!("the Rekor entry key is not base64: {e}"))?;
    let signer = sole_pem_block(&signer_pem).map_err(|e| format!("the Rekor entry key {e}"))?;
    Ok(LogEntry {
        payload_sha256,
        signature,
        signer,
    })
}

/// 64 hex digits (either case) as 32 bytes.
pub fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cosign bundle annotation whose entry names `sha256`, `signature` and `signer_pem`.
    pub fn bundle(kind: &str, sha256: &[u8; 32], signature: &[u8], signer_pem: &str) -> String {
        let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": kind,
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex}},
                "signature": {
                    "content": STANDARD.encode(signature),
                    "publicKey": {"content": STANDARD.encode(signer_pem)}
                }
            }
        });
        serde_json::json!({
            "SignedEntryTimestamp": "MEUCIQ==",
            "Payload": {
                "body": STANDARD.encode(body.to_string()),
                "integratedTime": 1_700_000_000,
                "logIndex": 1,
                "logID": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
            }
        })
        .to_string()
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";

    #[test]
    fn reads_hashedrekord_and_rekord_entries() {
        for kind in ["hashedrekord", "rekord"] {
            let entry = entry_of_bundle(&bundle(kind, &[0xab; 32], b"sig", CERT)).expect("entry");
            assert_eq!(entry.payload_sha256, [0xab; 32]);
            assert_eq!(entry.signature, b"sig");
            assert_eq!(entry.signer.tag(), "CERTIFICATE");
            assert_eq!(entry.signer.contents(), [1, 2, 3]);
        }
    }

    #[test]
    fn refuses_other_entry_kinds_and_garbage() {
        let intoto = bundle("intoto", &[0; 32], b"sig", CERT);
        assert!(entry_of_bundle(&intoto).unwrap_err().contains("not a hashedrekord"));
        assert!(entry_of_bundle("{}").is_err());
        assert!(
            entry_of_bundle(r#"{"Payload":{"body":"%%%"}}"#)
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn hex_digests_are_read_exactly() {
        assert_eq!(parse_hex32(&"0f".repeat(32)), Some([0x0f; 32]));
        assert_eq!(parse_hex32(&"0F".repeat(32)), Some([0x0f; 32]));
        assert_eq!(parse_hex32(&"0f".repeat(31)), None);
        assert_eq!(parse_hex32(&format!("{}zz", "0f".repeat(31))), None);
        assert_eq!(parse_hex32(&format!("{}+f", "0f".repeat(31))), None);
    }
}
