//! `certificate` (Kubewarden extension): signatures made with a key bound to a certificate,
//! optionally checked against a chain and a Rekor bundle.
//!
//! With `annotations`, a stock host checks them apart from the signature: policy-evaluator's
//! `verify_certificate` pushes a `CertificateVerifier` and an `AnnotationVerifier` as two
//! constraints, each satisfied by any layer, and the second reads the payload of a layer
//! whatever its signature (an unsigned one included). The module therefore also asks
//! `SigstorePubKeyVerify` with the certificate's public key and the annotations, which a stock
//! host checks on one layer signed by that key ([`CertificateAuthority::annotations_signed`]).

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;

use super::binding::{Vouch, require_bound};
use super::fulcio::SignerCertificate;
use super::{Check, check_annotations, required};
use crate::crypto::check_certificates;
use crate::host::{HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, Verified, verify_formats};
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

    /// That one layer signed by `certificate`'s key carries `annotations` and names `digest`
    /// (what the certificate request verified): Kubewarden's `SigstorePubKeyVerify` with the
    /// certificate's public key. A stock host checks a certificate request's annotations on any
    /// layer, signed or not (module docs); its key request checks them on the layer whose
    /// signature the key verifies. `cip` checks both on one layer; asked the same there.
    fn annotations_signed(
        image: &ImageReference,
        host: &mut dyn HostCalls,
        certificate: &SignerCertificate,
        annotations: &BTreeMap<String, String>,
        digest: &str,
    ) -> Result<(), String> {
        let key = pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", certificate.spki.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        let request = SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.verification_target().into_owned(),
            pub_keys: vec![key],
            annotations: Some(annotations.clone()),
        };
        let unmet = |reason: &str| {
            let listed: Vec<String> = annotations.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "the annotations {} were not found on a layer signed by the certificate's key: {reason}",
                listed.join(", ")
            )
        };
        // The certificate verified the legacy `.sig` tag: its key is asked about the same tag.
        match verify_formats(host, KUBEWARDEN_VERIFY_V2, "v2", &request, SignatureFormat::Legacy) {
            Ok(Verified { digest: signed, .. }) if signed == digest => Ok(()),
            Ok(Verified { digest: signed, .. }) => Err(unmet(&format!("the host verified {signed}, not {digest}"))),
            Err(e) => Err(unmet(&e)),
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
        if let Some(annotations) = &self.annotations {
            Self::annotations_signed(image, host, certificate, annotations, &digest)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::binding::tests::{IMAGE_DIGEST, PAYLOAD, Signer, image, serving};
    use crate::authority::fulcio::tests::CertSpec;
    use crate::host::mock::{MockHost, trusted};
    use crate::host::{CIP_VERIFY_WITH_FORMAT, Capability};
    use serde_json::Value;

    const OTHER_DIGEST: &str = "sha256:9999999999999999999999999999999999999999999999999999999999999999";

    fn signer() -> Signer {
        Signer::p256(
            &CertSpec::email("release@example.com", "https://accounts.google.com"),
            7,
        )
    }

    fn prod() -> BTreeMap<String, String> {
        BTreeMap::from([("env".to_owned(), "prod".to_owned())])
    }

    fn authority(signer: &Signer, annotations: Option<BTreeMap<String, String>>) -> CertificateAuthority {
        let raw = RawCertificate {
            data: Some(signer.cert_pem.clone()),
            chain: None,
            require_rekor_bundle: None,
        };
        CertificateAuthority::parse(raw, annotations, SignatureFormat::Legacy).expect("authority")
    }

    /// Which request a `v2/verify` payload is.
    fn kind(request: &Value) -> &str {
        request["type"].as_str().unwrap_or_default()
    }

    /// A stock host serving one genuine layer by `signer` (its payload without annotations):
    /// its certificate request is trusted for [`IMAGE_DIGEST`] whatever the annotations (an
    /// unsigned layer may carry them, policy-evaluator's `AnnotationVerifier` checks no
    /// signature); its key request answers `by_key`.
    fn stock(signer: &Signer, by_key: fn() -> Result<Vec<u8>, String>) -> MockHost {
        serving(
            &[signer.layer(PAYLOAD)],
            move |capability: Capability, request: &Value| {
                assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
                match kind(request) {
                    "SigstoreCertificateVerify" => trusted(IMAGE_DIGEST),
                    "SigstorePubKeyVerify" => by_key(),
                    other => panic!("unexpected request {other}"),
                }
            },
        )
    }

    fn verify_requests(host: &MockHost) -> Vec<&Value> {
        host.calls
            .iter()
            .filter(|(capability, _)| *capability == KUBEWARDEN_VERIFY_V2)
            .map(|(_, request)| request)
            .collect()
    }

    #[test]
    fn annotations_found_only_on_an_unsigned_layer_fail_the_authority() {
        let signer = signer();
        let authority = authority(&signer, Some(prod()));
        // The key request finds no layer signed by the key with env=prod, or one for another
        // image.
        let not_found = || Err("Image verification failed: missing signatures".to_owned());
        let elsewhere = || trusted(OTHER_DIGEST);
        for (by_key, reason) in [
            (not_found as fn() -> _, "missing signatures"),
            (elsewhere, "the host verified sha256:9999"),
        ] {
            let mut host = stock(&signer, by_key);
            let message = authority.verify(&image(), &mut host).expect_err("annotations unsigned");
            assert!(
                message.contains("the annotations env=prod were not found on a layer signed by the certificate's key"),
                "{message}"
            );
            assert!(message.contains(reason), "{message}");
        }
    }

    #[test]
    fn annotations_on_a_layer_signed_by_the_certificate_key_pass() {
        let signer = signer();
        let authority = authority(&signer, Some(prod()));
        let mut host = stock(&signer, || trusted(IMAGE_DIGEST));
        assert_eq!(authority.verify(&image(), &mut host), Ok(Some(IMAGE_DIGEST.to_owned())));
        let requests = verify_requests(&host);
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert_eq!(kind(requests[0]), "SigstoreCertificateVerify");
        let by_key = requests[1];
        assert_eq!(kind(by_key), "SigstorePubKeyVerify");
        assert_eq!(by_key["image"], "myregistry.com/app:v1");
        assert_eq!(by_key["annotations"], serde_json::json!({"env": "prod"}));
        // The certificate's public key, as a PEM block any host reads.
        let keys = by_key["pub_keys"].as_array().expect("pub_keys");
        assert_eq!(keys.len(), 1);
        let pem_key = keys[0].as_str().expect("a PEM string");
        let block = pem::parse(pem_key).expect("PEM");
        assert_eq!(block.tag(), "PUBLIC KEY");
        assert_eq!(
            block.contents(),
            SignerCertificate::from_pem(&signer.cert_pem).unwrap().spki
        );
        assert!(!pem_key.contains('\r'), "{pem_key:?}");
        crate::crypto::check_public_key(pem_key).expect("a usable public key");
    }

    #[test]
    fn without_annotations_one_verification_is_asked() {
        let signer = signer();
        let authority = authority(&signer, None);
        let mut host = stock(&signer, || panic!("no key request without annotations"));
        assert_eq!(authority.verify(&image(), &mut host), Ok(Some(IMAGE_DIGEST.to_owned())));
        let requests = verify_requests(&host);
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(kind(requests[0]), "SigstoreCertificateVerify");
        assert_eq!(requests[0]["annotations"], Value::Null);
    }

    #[test]
    fn under_cip_a_legacy_answer_asks_the_key_too_and_a_bundle_answer_does_not() {
        let signer = signer();
        let raw = RawCertificate {
            data: Some(signer.cert_pem.clone()),
            chain: None,
            require_rekor_bundle: None,
        };
        let authority = CertificateAuthority::parse(raw, Some(prod()), SignatureFormat::Both).expect("authority");

        // The legacy tag verified (the one-call answer says so): the key is asked as on a stock
        // host, about the legacy tag.
        let mut host = stock(&signer, || Err("no layer signed by the key with env=prod".to_owned())).into_cip();
        let message = authority.verify(&image(), &mut host).expect_err("key request failed");
        assert!(message.contains("env=prod were not found"), "{message}");
        let mut host = stock(&signer, || trusted(IMAGE_DIGEST)).into_cip();
        assert_eq!(authority.verify(&image(), &mut host), Ok(Some(IMAGE_DIGEST.to_owned())));
        assert_eq!(verify_requests(&host).len(), 2);

        // A bundle verified: cip bound it to the image and checked its annotations itself.
        let mut host = MockHost::cip(|capability, request| {
            if capability == KUBEWARDEN_VERIFY_V2 {
                Err(format!("no .sig tag ({})", kind(request)))
            } else {
                assert_eq!(capability, CIP_VERIFY_WITH_FORMAT);
                trusted(IMAGE_DIGEST)
            }
        });
        assert_eq!(authority.verify(&image(), &mut host), Ok(Some(IMAGE_DIGEST.to_owned())));
        assert!(
            host.calls
                .iter()
                .all(|(_, request)| !request.to_string().contains("SigstorePubKeyVerify")),
            "{:?}",
            host.calls
        );
    }
}
