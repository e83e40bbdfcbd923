//! `certificate` authorities: a layer signed by the key of a given certificate, the certificate
//! (and, with a `certificate_chain`, the path up to the chain's last certificate) valid at the
//! time the signature is known to have existed.
//!
//! sigstore-rs 0.15's `CertificateVerifier` checks the chain when it is built, at the current
//! time, every chain certificate a trust anchor (`CertificatePool::from_certificates(chain, [])`,
//! `verify_der_cert(cert, None)`), so an image signed under the chain stops verifying once its
//! certificate expires, whatever its Rekor bundle proves; and without a bundle it accepts a
//! certificate expired long ago (its `verify_validity` checks `notBefore` only). Here, as cosign
//! does (`CheckExpiry` at the log entry's time, or at the current time without time evidence):
//!
//! * the time is the integration time of the layer's bound Rekor bundle (a bundle is on a layer
//!   only once bound to it, `layers`, `attestations`, `bundle`), else the current time;
//! * the certificate must be valid at that time;
//! * with a chain, the certificate must chain through it at that time: its last certificate the
//!   only root, each certificate of the path valid then, code signing allowed along it, no
//!   more intermediates than any certificate's `pathLenConstraint` allows, the root's included
//!   ([`crate::verify::certificate::chains_through`], the Fulcio path's check). A chain that
//!   did not issue the certificate at all (checked at its `notBefore`, as cosign's
//!   `TrustedCert` does) is refused when the request is read.
//!
//! sigstore-rs' verifier is kept, without the chain, for what it checks well: the certificate's
//! key usages and SAN when the request is read, and the signature over the layer's signed bytes.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sigstore::cosign::SignatureLayer;
use sigstore::cosign::verification_constraint::{CertificateVerifier, VerificationConstraint};
use x509_cert::der::Decode as _;

use crate::verify::certificate::chains_through;

/// The certificate's key signed the layer, and the certificate (and chain) held at the layer's
/// time.
#[derive(Debug)]
pub struct CertificateAt {
    signed_by: CertificateVerifier,
    /// DER of the certificate.
    leaf: Vec<u8>,
    /// Its validity, Unix seconds (both ends included).
    not_before: i64,
    not_after: i64,
    /// DER of the chain, root last.
    chain: Option<Vec<Vec<u8>>>,
}

impl CertificateAt {
    /// The constraint for the PEM `certificate` and PEM `chain`; an unusable one is refused
    /// with the reason.
    pub fn from_pem(certificate: &[u8], require_rekor_bundle: bool, chain: Option<&[Vec<u8>]>) -> Result<Self, String> {
        let signed_by =
            CertificateVerifier::from_pem(certificate, require_rekor_bundle, None).map_err(|e| e.to_string())?;
        let leaf = CertificateDer::from_pem_slice(certificate)
            .map_err(|e| e.to_string())?
            .to_vec();
        let parsed = x509_cert::Certificate::from_der(&leaf).map_err(|e| e.to_string())?;
        let validity = &parsed.tbs_certificate.validity;
        let seconds =
            |time: x509_cert::time::Time| i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        let chain = chain
            .map(|chain| {
                if chain.is_empty() {
                    return Err("the certificate chain is empty".to_string());
                }
                chain
                    .iter()
                    .enumerate()
                    .map(|(index, pem)| {
                        let der = CertificateDer::from_pem_slice(pem).map_err(|e| {
                            format!("certificate #{} of the chain is not a PEM certificate: {e}", index + 1)
                        })?;
                        x509_cert::Certificate::from_der(&der).map_err(|e| {
                            format!("certificate #{} of the chain is not a certificate: {e}", index + 1)
                        })?;
                        Ok(der.to_vec())
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?;
        let not_before = seconds(validity.not_before);
        if let Some(chain) = &chain {
            // A chain that did not issue the certificate is refused when the request is read,
            // as cosign's `TrustedCert` refuses it (the path verified at the certificate's
            // `notBefore`); each layer's time is checked again below.
            let path: Vec<CertificateDer<'_>> = chain.iter().map(|der| CertificateDer::from(der.as_slice())).collect();
            chains_through(&CertificateDer::from(leaf.as_slice()), &path, not_before)
                .map_err(|reason| format!("it is not trusted through the certificate chain: {reason}"))?;
        }
        Ok(Self {
            signed_by,
            not_before,
            not_after: seconds(validity.not_after),
            leaf,
            chain,
        })
    }

    /// Whether the certificate, and its path through the chain, held at `time`.
    fn valid_at(&self, time: i64) -> bool {
        if time < self.not_before || time > self.not_after {
            return false;
        }
        let Some(chain) = &self.chain else {
            return true;
        };
        let chain: Vec<CertificateDer<'_>> = chain.iter().map(|der| CertificateDer::from(der.as_slice())).collect();
        chains_through(&CertificateDer::from(self.leaf.as_slice()), &chain, time).is_ok()
    }
}

impl VerificationConstraint for CertificateAt {
    fn verify(&self, layer: &SignatureLayer) -> sigstore::errors::Result<bool> {
        // The key's signature, and (sigstore-rs) a bundle's integration time inside the
        // certificate's validity, or no bundle when none is required.
        if !self.signed_by.verify(layer)? {
            return Ok(false);
        }
        let time = match &layer.bundle {
            Some(bundle) => bundle.integrated_time(),
            // No time evidence: the certificate must be valid now (cosign's `CheckExpiry` at
            // `time.Now()`).
            None => chrono::Utc::now().timestamp(),
        };
        Ok(self.valid_at(time))
    }
}
