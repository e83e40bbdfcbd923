//! `certificate` (Kubewarden extension): signatures made with a key bound to a certificate,
//! optionally checked against a chain and a Rekor bundle.

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;

use super::binding::{Vouch, require_bound};
use super::fulcio::SignerCertificate;
use super::{Check, check_annotations, required};
use crate::crypto::check_certificates;
use crate::host::{HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, verify_formats};
use crate::reference::ImageReference;
use crate::settings::raw::RawCertificate;

/// A signing certificate, verified through Kubewarden's `SigstoreCertificateVerify`.
#[derive(Debug)]
pub struct CertificateAuthority {
    certificate: String,
    chain: Option<Vec<String>>,
    require_rekor_bundle: bool,
    annotations: Option<BTreeMap<String, String>>,
    /// The certificate parsed, for the binding check (`check_material` explains a failure).
    parsed: Result<SignerCertificate, String>,
    format: SignatureFormat,
}

impl CertificateAuthority {
    /// Parses the `certificate` block. `requireRekorBundle` defaults to true: without a bundle
    /// nothing proves the signature was made while the certificate was valid.
    pub fn parse(
        raw: RawCertificate,
        annotations: Option<BTreeMap<String, String>>,
        format: SignatureFormat,
    ) -> Result<Self, (String, String)> {
        let certificate = required(raw.data, "certificate.data", "paste the PEM signing certificate")?;
        let chain = match raw.chain {
            Some(pem) => Some(
                pem::parse_many(&pem)
                    .map_err(|e| ("certificate.chain".to_owned(), format!("not a valid PEM document: {e}")))?
                    .iter()
                    .map(pem::encode)
                    .collect(),
            ),
            None => None,
        };
        let parsed = SignerCertificate::from_pem(&certificate);
        Ok(Self {
            parsed,
            certificate,
            chain,
            require_rekor_bundle: raw.require_rekor_bundle.unwrap_or(true),
            annotations,
            format,
        })
    }
}

impl CertificateAuthority {
    /// Kubewarden's `SigstoreCertificateVerify` of `image` with this certificate.
    fn request(
        &self,
        image: &ImageReference,
        annotations: Option<BTreeMap<String, String>>,
    ) -> SigstoreVerificationInputV2 {
        SigstoreVerificationInputV2::SigstoreCertificateVerify {
            image: image.verification_target().into_owned(),
            certificate: self.certificate.as_bytes().to_vec(),
            certificate_chain: self
                .chain
                .as_ref()
                .map(|c| c.iter().map(|p| p.as_bytes().to_vec()).collect()),
            require_rekor_bundle: self.require_rekor_bundle,
            annotations,
        }
    }
}

impl Check for CertificateAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let request = self.request(image, self.annotations.clone());
        let verified = verify_formats(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format)
            .map_err(|e| format!("no signature verified by the certificate: {e}"))?;
        let digest = verified.digest;
        if verified.bundle {
            // cip bound the bundle to the image itself; there is no `.sig` layer to check.
            return Ok(Some(digest));
        }
        let certificate = self
            .parsed
            .as_ref()
            .map_err(|e| format!("certificate.data cannot be used: {e}"))?;
        require_bound(
            host,
            image,
            &digest,
            &Vouch::Certificate {
                certificate,
                require_bundle: self.require_rekor_bundle,
            },
        )?;
        Ok(Some(digest))
    }

    fn attestation_requests(
        &self,
        image: &ImageReference,
        _host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, super::attestations::SignerRequest)>, String> {
        let request = self.request(image, None);
        Ok(vec![(
            "the certificate".to_owned(),
            super::attestations::SignerRequest::V2Verify(request),
        )])
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        check_annotations(&self.annotations)?;
        match check_certificates(&self.certificate, "certificate.data") {
            Ok(1) => {}
            Ok(n) => {
                return Err((
                    "certificate.data".into(),
                    format!("holds {n} certificates: put the signing certificate in data and the others in chain"),
                ));
            }
            Err(e) => return Err(("certificate.data".into(), e)),
        }
        if let Some(chain) = &self.chain {
            check_certificates(&chain.concat(), "certificate.chain")
                .map_err(|e| ("certificate.chain".to_owned(), e))?;
        }
        Ok(())
    }
}
