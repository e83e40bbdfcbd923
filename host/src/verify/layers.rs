//! One cosign signature layer (legacy `.sig` format) turned into a sigstore-rs
//! [`SignatureLayer`] only after everything it claims was checked here:
//!
//! * the blob's SHA-256 is the descriptor's digest, it is a simple-signing payload, and the
//!   payload names the image digest (`critical.image.docker-manifest-digest`);
//! * a Rekor bundle verifies under a log key of the trust root valid at its integration time
//!   *and* its entry records this payload's hash, this signature and this certificate (or a key
//!   verifying this signature) — see [`super::rekor`];
//! * a certificate counts (`certificate_signature`) only with such a bundle, when it chains to a
//!   Fulcio CA valid at the integration time, is itself valid then, and the layer's signature
//!   verifies with its key over the exact payload bytes; its embedded SCT is checked too and
//!   the outcome kept for the requests that demand it.
//!
//! sigstore-rs 0.15's `SignatureLayer::new` does the first point and the SET, and chains the
//! certificate, but never verifies the signature with the certificate's key nor compares the
//! bundle with the layer: a forger could copy the certificate and bundle of any logged keyless
//! signature onto a payload naming another digest.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::manifest::OciDescriptor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use sigstore::cosign::SignatureLayer;
use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::payload::simple_signing::SimpleSigning;
use sigstore::crypto::Signature;

use super::{fulcio, rekor, sct};
use crate::go_json;
use crate::trust::TrustRoot;

pub(crate) const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub(crate) const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub(crate) const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub(crate) const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// A layer whose every present claim was verified.
#[derive(Debug)]
pub struct TrustedLayer {
    /// The layer in sigstore-rs' type, for its verification constraints.
    pub layer: SignatureLayer,
    /// For a trusted certificate: whether its SCT verified (and why not).
    pub sct: Result<(), String>,
    /// DER SubjectPublicKeyInfo of the key the bound Rekor entry names.
    pub rekor_verifier: Option<Vec<u8>>,
    /// The bytes the signature covers (the simple-signing payload, or the DSSE PAE), shared by
    /// every layer of one blob: `layer.raw_data` is left empty and filled only for the moment
    /// a constraint checks the layer ([`super::constraints`]), so that descriptors repeating a
    /// digest do not each hold a copy of it.
    pub signed: Arc<[u8]>,
}

impl TrustedLayer {
    /// The layer as sigstore-rs' constraints read it: with its signed bytes in `raw_data`.
    pub fn with_signed_bytes(&self) -> std::borrow::Cow<'_, SignatureLayer> {
        if self.layer.raw_data.is_empty() && !self.signed.is_empty() {
            let mut layer = self.layer.clone();
            layer.raw_data = self.signed.to_vec();
            std::borrow::Cow::Owned(layer)
        } else {
            std::borrow::Cow::Borrowed(&self.layer)
        }
    }
}

/// The outcome of checking one layer: the trusted layer, if any, and what was wrong.
pub struct Checked {
    /// The layer, when its signature and any bundle hold.
    pub trusted: Option<TrustedLayer>,
    /// What made the layer or its certificate untrusted.
    pub problem: Option<String>,
}

impl Checked {
    fn rejected(problem: String) -> Self {
        Self {
            trusted: None,
            problem: Some(problem),
        }
    }
}

/// Checks one layer of the signature manifest of `digest`; the layer keeps `data` (shared, not
/// copied) as its signed bytes.
pub fn check(descriptor: &OciDescriptor, data: &Arc<[u8]>, digest: &str, trust: Option<&TrustRoot>) -> Checked {
    if descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Checked::rejected(format!(
            "signature layer has media type {}, not {SIMPLE_SIGNING_MEDIA_TYPE}",
            descriptor.media_type
        ));
    }
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    if actual != descriptor.digest {
        return Checked::rejected(format!(
            "signature layer content has digest {actual}, not {}",
            descriptor.digest
        ));
    }
    let simple_signing: SimpleSigning = match serde_json::from_slice(data) {
        Ok(payload) => payload,
        Err(e) => return Checked::rejected(format!("signature payload is not a simple-signing document: {e}")),
    };
    let read_alike = serde_json::from_slice(data)
        .map_err(|e| e.to_string())
        .and_then(|payload| go_json::read_alike(&payload, go_json::SIMPLE_SIGNING));
    if let Err(reason) = read_alike {
        return Checked::rejected(format!("signature payload is refused: {reason}"));
    }
    let signed = &simple_signing.critical.image.docker_manifest_digest;
    if signed != digest {
        return Checked::rejected(format!("signature payload is for digest {signed}, not {digest}"));
    }
    let annotations = descriptor.annotations.clone().unwrap_or_default();
    let Some(signature_b64) = annotations.get(SIGNATURE_ANNOTATION) else {
        return Checked::rejected("signature layer has no signature annotation".to_string());
    };
    let signature = match Signature::Base64Encoded(signature_b64.as_bytes()).decode_bytes() {
        Ok(bytes) => bytes,
        Err(_) => return Checked::rejected("signature annotation is not base64".to_string()),
    };
    let certificate_der = match annotations.get(CERTIFICATE_ANNOTATION).map(|pem| certificate_der(pem)) {
        None => None,
        Some(Some(der)) => Some(der),
        Some(None) => return Checked::rejected("signing certificate annotation is not a PEM certificate".to_string()),
    };
    let rekor_keys = trust.filter(|t| !t.rekor_logs().is_empty());
    let bundle = match (annotations.get(BUNDLE_ANNOTATION), rekor_keys) {
        (Some(bundle), Some(trust)) => {
            let evidence = rekor::LayerEvidence {
                payload: data,
                signature: &signature,
                certificate_der: certificate_der.as_deref(),
            };
            match rekor::verify_bound(bundle, trust, &evidence) {
                Ok(bound) => Some(bound),
                Err(reason) => return Checked::rejected(reason),
            }
        }
        // Without Rekor keys the bundle cannot be checked and counts for nothing.
        _ => None,
    };
    let mut problem = None;
    let mut sct_status = Err("the signature has no trusted certificate".to_string());
    let certificate_signature = match (
        &certificate_der,
        trust.filter(|t| !t.certificate_authorities().is_empty()),
    ) {
        (Some(der), Some(trust)) => match &bundle {
            None => {
                problem = Some("signing certificate comes without a Rekor bundle".to_string());
                None
            }
            Some(bound) => match trusted_certificate(der, trust, bound.integrated_time, data, &signature) {
                Ok((certificate_signature, sct)) => {
                    if let Err(reason) = &sct {
                        problem = Some(reason.clone());
                    }
                    sct_status = sct;
                    Some(certificate_signature)
                }
                Err(reason) => {
                    problem = Some(reason);
                    None
                }
            },
        },
        _ => None,
    };
    Checked {
        trusted: Some(TrustedLayer {
            layer: SignatureLayer {
                simple_signing,
                oci_digest: descriptor.digest.clone(),
                certificate_signature,
                signature: Some(signature_b64.clone()),
                raw_data: Vec::new(),
                bundle: bundle.as_ref().map(|b| BundleContent::RekorBundle(b.bundle.clone())),
            },
            sct: sct_status,
            rekor_verifier: bundle.map(|b| b.verifier_spki),
            signed: Arc::clone(data),
        }),
        problem,
    }
}

/// A certificate chained at `time`, whose key made `signature` over `payload`; with the
/// outcome of its SCT check.
pub(super) fn trusted_certificate(
    der: &[u8],
    trust: &TrustRoot,
    time: i64,
    payload: &[u8],
    signature: &[u8],
) -> Result<
    (
        sigstore::cosign::signature_layers::CertificateSignature,
        Result<(), String>,
    ),
    String,
> {
    let chained = fulcio::chain_at(der, trust, time)?;
    let certificate_signature = fulcio::certificate_signature(&chained.leaf)?;
    certificate_signature
        .verification_key
        .verify_signature(Signature::Raw(signature), payload)
        .map_err(|_| "signature does not verify with the signing certificate's key over the payload".to_string())?;
    let sct = sct::verify_embedded(&chained.leaf, &chained.issuer, trust);
    Ok((certificate_signature, sct))
}

/// DER of a PEM certificate annotation (cosign stores PEM; base64 of the PEM is tolerated).
pub(super) fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    if let Ok(der) = CertificateDer::from_pem_slice(pem.as_bytes()) {
        return Some(der.as_ref().to_vec());
    }
    let decoded = BASE64.decode(pem.trim()).ok()?;
    CertificateDer::from_pem_slice(&decoded)
        .ok()
        .map(|der| der.as_ref().to_vec())
}
