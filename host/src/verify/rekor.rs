//! cosign's Rekor bundle (`dev.sigstore.cosign/bundle`): the signed entry timestamp (SET) of a
//! transparency log entry, checked under a log key of the trust root valid at the entry's
//! integration time, and the entry itself, which must describe exactly this payload, this
//! signature and this certificate or key.
//!
//! sigstore-rs 0.15 (`cosign::bundle::Bundle::verify_bundle`) checks only the SET; the body it
//! signs is never compared with the layer, so a bundle copied from any other logged signature
//! passes there. Here it does not.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sigstore::cosign::bundle::{Bundle, Payload};
use sigstore::crypto::{CosignVerificationKey, Signature};

use crate::trust::TrustRoot;

/// A bundle whose SET verified and whose entry describes the layer.
#[derive(Clone, Debug)]
pub struct BoundBundle {
    /// The bundle as sigstore-rs types it (for its verification constraints).
    pub bundle: Bundle,
    /// When the log integrated the entry, Unix seconds.
    pub integrated_time: i64,
    /// DER SubjectPublicKeyInfo of the key the entry says verifies the signature.
    pub verifier_spki: Vec<u8>,
}

/// What the layer holds, for the comparison with the log entry.
pub struct LayerEvidence<'a> {
    /// The payload blob, exactly as stored.
    pub payload: &'a [u8],
    /// The decoded signature.
    pub signature: &'a [u8],
    /// DER of the layer's certificate, if it carries one.
    pub certificate_der: Option<&'a [u8]>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BundleDoc {
    signed_entry_timestamp: String,
    payload: PayloadDoc,
}

/// Field order is the canonical (sorted) JSON order Rekor signs.
#[derive(Deserialize, Serialize)]
struct PayloadDoc {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    #[serde(rename = "logIndex")]
    log_index: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryDoc {
    api_version: String,
    kind: String,
    spec: SpecDoc,
}

#[derive(Deserialize)]
struct SpecDoc {
    data: DataDoc,
    signature: SignatureDoc,
}

#[derive(Deserialize)]
struct DataDoc {
    hash: Option<HashDoc>,
    /// `rekord` may carry the data itself, base64.
    content: Option<String>,
}

#[derive(Deserialize)]
struct HashDoc {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureDoc {
    content: String,
    public_key: PublicKeyDoc,
}

#[derive(Deserialize)]
struct PublicKeyDoc {
    /// base64 of a PEM certificate or public key.
    content: String,
}

/// Verifies the SET of `bundle_json` and binds its entry to `layer`.
pub fn verify_bound(bundle_json: &str, trust: &TrustRoot, layer: &LayerEvidence<'_>) -> Result<BoundBundle, String> {
    verify_bound_with(bundle_json, trust, |body| bind_entry(body, layer))
}

/// Verifies the SET of `bundle_json`, then `bind` checks that the entry body (base64 JSON)
/// describes the signed object and answers the DER SubjectPublicKeyInfo of the entry's key.
pub fn verify_bound_with(
    bundle_json: &str,
    trust: &TrustRoot,
    bind: impl FnOnce(&str) -> Result<Vec<u8>, String>,
) -> Result<BoundBundle, String> {
    let doc: BundleDoc = serde_json::from_str(bundle_json).map_err(|e| format!("Rekor bundle is malformed: {e}"))?;
    let payload = &doc.payload;
    // A SET that is not base64 is, like a wrong one, not signed by the log.
    let set = BASE64.decode(doc.signed_entry_timestamp.as_bytes()).unwrap_or_default();
    verify_promise(
        &payload.log_id,
        &payload.body,
        payload.integrated_time,
        payload.log_index,
        &set,
        trust,
        LEGACY_BUNDLE,
    )?;
    let verifier_spki = bind(&payload.body)?;
    Ok(BoundBundle {
        bundle: Bundle {
            signed_entry_timestamp: doc.signed_entry_timestamp.clone(),
            payload: Payload {
                body: payload.body.clone(),
                integrated_time: payload.integrated_time,
                log_index: payload.log_index,
                log_id: payload.log_id.clone(),
            },
        },
        integrated_time: payload.integrated_time,
        verifier_spki,
    })
}

/// Checks that the log entry `body` (base64 JSON) records this payload, signature and
/// certificate (or a key that verifies the signature); answers the entry's key.
fn bind_entry(body: &str, layer: &LayerEvidence<'_>) -> Result<Vec<u8>, String> {
    let mismatch = |what: &str| format!("Rekor bundle describes another signature: {what}");
    let body = BASE64
        .decode(body)
        .map_err(|e| format!("Rekor bundle body is not base64: {e}"))?;
    let entry: EntryDoc = serde_json::from_slice(&body)
        .map_err(|e| format!("Rekor bundle body is not a hashedrekord or rekord entry: {e}"))?;
    if !matches!(entry.kind.as_str(), "hashedrekord" | "rekord") || entry.api_version != "0.0.1" {
        return Err(format!(
            "Rekor bundle body is a {} {} entry, not a hashedrekord or rekord 0.0.1 entry",
            entry.kind, entry.api_version
        ));
    }
    let payload_hash = hex::encode(Sha256::digest(layer.payload));
    let hash_matches = match (&entry.spec.data.hash, &entry.spec.data.content) {
        (Some(hash), _) => hash.algorithm == "sha256" && hash.value.eq_ignore_ascii_case(&payload_hash),
        (None, Some(content)) => BASE64.decode(content).is_ok_and(|data| data == layer.payload),
        (None, None) => false,
    };
    if !hash_matches {
        return Err(mismatch("its hash is not the SHA-256 of this payload"));
    }
    let logged_signature = BASE64
        .decode(entry.spec.signature.content.trim())
        .map_err(|_| mismatch("its signature is not base64"))?;
    if logged_signature != layer.signature {
        return Err(mismatch("its signature is not this layer's signature"));
    }
    let verifier_pem = BASE64
        .decode(entry.spec.signature.public_key.content.trim())
        .map_err(|_| mismatch("its public key is not base64"))?;
    let verifier =
        pem_to_spki(&verifier_pem).ok_or_else(|| mismatch("its public key is not a PEM key or certificate"))?;
    check_verifier(&verifier, layer.certificate_der, layer.signature, layer.payload)
        .map_err(|what| mismatch(&format!("its {what} this layer's {}", what.object())))?;
    Ok(verifier.spki)
}

/// Why a log entry's key does not vouch for a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VerifierMismatch {
    /// The layer has a certificate and the entry another one (or a bare key).
    Certificate,
    /// The entry's key cannot be used.
    Unusable,
    /// The entry's key does not verify the layer's signature.
    Signature,
}

impl VerifierMismatch {
    /// What the entry's key failed to match.
    pub(super) fn object(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::Unusable | Self::Signature => "signature",
        }
    }
}

impl std::fmt::Display for VerifierMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Certificate => "certificate is not",
            Self::Unusable => "public key is not usable for",
            Self::Signature => "public key does not verify",
        })
    }
}

/// The entry's key vouches for a layer: it is the layer's certificate, or (without one) a key
/// verifying `signature` over `signed`, with the hash sigstore-rs picks for the key or any other
/// a `key.hashAlgorithm` may name (a P-384 key signed over SHA-256 by older cosign): this only
/// ties the entry to the layer; the authority's own check pins the hash
/// ([`super::constraints::HashedKeyVerifier`], or sigstore-rs' for the stock request).
pub(super) fn check_verifier(
    verifier: &Verifier,
    certificate_der: Option<&[u8]>,
    signature: &[u8],
    signed: &[u8],
) -> Result<(), VerifierMismatch> {
    match certificate_der {
        Some(certificate) if verifier.certificate_der.as_deref() != Some(certificate) => {
            Err(VerifierMismatch::Certificate)
        }
        Some(_) => Ok(()),
        None => {
            let key = CosignVerificationKey::try_from_der(&verifier.spki).map_err(|_| VerifierMismatch::Unusable)?;
            if key.verify_signature(Signature::Raw(signature), signed).is_ok()
                || super::constraints::HashAlgorithm::ALL.iter().any(|hash| {
                    super::constraints::HashedKeyVerifier::from_spki_der(&verifier.spki, *hash)
                        .is_ok_and(|key| key.verifies(signed, signature))
                })
            {
                Ok(())
            } else {
                Err(VerifierMismatch::Signature)
            }
        }
    }
}

/// The key (and certificate, if it is one) a log entry names.
pub(super) struct Verifier {
    /// DER SubjectPublicKeyInfo.
    pub(super) spki: Vec<u8>,
    /// DER of the certificate, when the entry names one.
    pub(super) certificate_der: Option<Vec<u8>>,
}

/// How SET failures name what carried the SET.
#[derive(Clone, Copy, Debug)]
pub(super) struct PromiseCarrier {
    /// What names the log and was integrated (`Rekor bundle`).
    pub(super) entry: &'static str,
    /// What is (not) signed by the log key.
    pub(super) set: &'static str,
}

/// cosign's `dev.sigstore.cosign/bundle` annotation.
pub(super) const LEGACY_BUNDLE: PromiseCarrier = PromiseCarrier {
    entry: "Rekor bundle",
    set: "Rekor bundle",
};

/// The transparency log entry of a sigstore bundle.
pub(super) const SIGSTORE_BUNDLE_ENTRY: PromiseCarrier = PromiseCarrier {
    entry: "its Rekor entry",
    set: "its Rekor entry's signed entry timestamp",
};

/// Verifies a signed entry timestamp (SET): `set` signs the canonical JSON of the entry's
/// `body` (base64), integration time, log id and index, under the trust root's key for
/// `log_id` (hex), which must be valid at `integrated_time`. Answers that log key (DER).
/// Failures name the SET as `carrier` says.
pub(super) fn verify_promise(
    log_id: &str,
    body_b64: &str,
    integrated_time: i64,
    log_index: i64,
    set: &[u8],
    trust: &TrustRoot,
    carrier: PromiseCarrier,
) -> Result<Vec<u8>, String> {
    let Some(log) = trust.rekor_logs().get(log_id) else {
        return Err(format!(
            "{} names log {log_id}, which is not in the trust root",
            carrier.entry
        ));
    };
    let key = CosignVerificationKey::try_from_der(&log.der)
        .map_err(|e| format!("Rekor key of the trust root is unusable: {e}"))?;
    let canonical = serde_json::to_vec(&PayloadDoc {
        body: body_b64.to_owned(),
        integrated_time,
        log_id: log_id.to_owned(),
        log_index,
    })
    .map_err(|e| format!("the Rekor entry cannot be encoded: {e}"))?;
    key.verify_signature(Signature::Raw(set), &canonical)
        .map_err(|_| format!("{} is not signed by the trusted Rekor key", carrier.set))?;
    if !log.valid_for.contains(integrated_time) {
        return Err(format!(
            "{} was integrated at {}, outside the validity of Rekor log key {log_id} ({})",
            carrier.entry,
            show_time(integrated_time),
            log.valid_for
        ));
    }
    Ok(log.der.clone())
}

/// The key of a PEM certificate or public key.
pub(super) fn pem_to_spki(pem: &[u8]) -> Option<Verifier> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
    use x509_cert::der::{Decode as _, Encode as _};
    if let Ok(certificate) = CertificateDer::from_pem_slice(pem) {
        let parsed = x509_cert::Certificate::from_der(certificate.as_ref()).ok()?;
        let spki = parsed.tbs_certificate.subject_public_key_info.to_der().ok()?;
        return Some(Verifier {
            spki,
            certificate_der: Some(certificate.as_ref().to_vec()),
        });
    }
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).ok()?;
    Some(Verifier {
        spki: spki.as_ref().to_vec(),
        certificate_der: None,
    })
}

/// RFC 3339 form of a Unix time, for messages.
pub fn show_time(time: i64) -> String {
    chrono::DateTime::from_timestamp(time, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| time.to_string())
}

#[cfg(test)]
mod tests {
    use p384::ecdsa::signature::hazmat::PrehashSigner as _;
    use p384::pkcs8::EncodePublicKey as _;
    use sha2::Sha384;

    use super::*;

    /// A P-384 key's DER SPKI and its signature (DER) over `payload` hashed with `H`.
    fn p384_signed<H: sha2::Digest>(seed: u8, payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let key = p384::ecdsa::SigningKey::from_slice(&[seed; 48]).expect("a P-384 scalar");
        let spki = key.verifying_key().to_public_key_der().expect("SPKI").into_vec();
        let signature: p384::ecdsa::Signature = key.sign_prehash(&H::digest(payload)).expect("signed");
        (spki, signature.to_der().as_bytes().to_vec())
    }

    /// Found by a review of `key.hashAlgorithm`: a Rekor bundle of a P-384 key signing over
    /// SHA-256 (older cosign, `hashAlgorithm: sha256`) was refused as describing another
    /// signature, since sigstore-rs verifies P-384 keys over SHA-384 only. The tie-in takes any
    /// hash a `hashAlgorithm` may name; the authority's own check pins the hash.
    #[test]
    fn a_rekor_entry_of_a_p384_key_ties_its_layer_whatever_the_hash() {
        let payload = b"{\"critical\":{}}";
        for (spki, signature) in [p384_signed::<Sha256>(7, payload), p384_signed::<Sha384>(7, payload)] {
            let verifier = Verifier {
                spki,
                certificate_der: None,
            };
            assert_eq!(check_verifier(&verifier, None, &signature, payload), Ok(()));
            // Not over these bytes, nor by this key: no tie.
            assert_eq!(
                check_verifier(&verifier, None, &signature, b"{\"critical\":{\"other\":1}}"),
                Err(VerifierMismatch::Signature)
            );
            let (other_key, _) = p384_signed::<Sha256>(9, payload);
            let other = Verifier {
                spki: other_key,
                certificate_der: None,
            };
            assert_eq!(
                check_verifier(&other, None, &signature, payload),
                Err(VerifierMismatch::Signature)
            );
        }
    }
}
