//! `key`: signatures made with a cosign key pair (`cosign sign --key`).

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use serde::{Deserialize, Serialize};

use super::{Check, check_annotations};
use crate::crypto::check_public_key;
use crate::host::{CIP_KMS_PUBLIC_KEY, HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, verify_formats};
use crate::kms_uri::KmsUri;
use crate::reference::ImageReference;
use crate::settings::raw::RawKey;

/// Where the public key comes from.
#[derive(Debug)]
enum KeySource {
    /// `key.data`.
    Pem(String),
    /// `key.kms` alone: the host resolves it through [`CIP_KMS_PUBLIC_KEY`].
    Kms(KmsUri),
}

/// What the module sends to [`CIP_KMS_PUBLIC_KEY`].
#[derive(Serialize)]
struct KmsRequest<'a> {
    uri: &'a str,
}

/// What [`CIP_KMS_PUBLIC_KEY`] answers.
#[derive(Deserialize)]
struct KmsAnswer {
    pem: String,
}

/// A public key, verified through Kubewarden's `SigstorePubKeyVerify`.
#[derive(Debug)]
pub struct KeyAuthority {
    source: KeySource,
    annotations: Option<BTreeMap<String, String>>,
    format: SignatureFormat,
}

impl KeyAuthority {
    /// Parses the `key` block.
    pub fn parse(
        raw: RawKey,
        annotations: Option<BTreeMap<String, String>>,
        format: SignatureFormat,
    ) -> Result<Self, (String, String)> {
        if raw.secret_ref.is_some() {
            return Err((
                "key.secretRef".into(),
                "key.secretRef is not supported: a Kubewarden policy cannot read Secrets; paste the public key PEM into key.data".into(),
            ));
        }
        match raw.hash_algorithm.as_deref() {
            None | Some("sha256") => {}
            Some(other) => {
                return Err((
                    "key.hashAlgorithm".into(),
                    format!(
                        "hashAlgorithm {other} is not supported yet: cosign signs with sha256 by default; remove the field"
                    ),
                ));
            }
        }
        let source = match (raw.data, raw.kms) {
            (Some(_), Some(_)) => {
                return Err((
                    "key".into(),
                    "give key.data or key.kms, not both: only one key can be meant (policy-controller refuses both as well); remove data to resolve kms, or remove kms (`cip kms resolve` keeps the URI in an annotation)".into(),
                ));
            }
            (Some(data), None) if !data.trim().is_empty() => {
                if !data.contains("-----BEGIN") {
                    return Err((
                        "key.data".into(),
                        "key.data is not PEM: paste the content of cosign.pub, BEGIN/END lines included".into(),
                    ));
                }
                KeySource::Pem(data)
            }
            (None, Some(kms)) if kms.trim().is_empty() => {
                return Err((
                    "key.kms".into(),
                    "key.kms is empty: give a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://) or remove it"
                        .into(),
                ));
            }
            (None, Some(kms)) => {
                KeySource::Kms(KmsUri::parse(&kms).map_err(|e| ("key.kms".to_owned(), e.to_string()))?)
            }
            _ => {
                return Err((
                    "key.data".into(),
                    "key.data is required: paste the PEM public key (cosign.pub), or name the key with key.kms".into(),
                ));
            }
        };
        Ok(Self {
            source,
            annotations,
            format,
        })
    }

    /// The PEM to verify with: `key.data`, or the host's answer for `key.kms`.
    fn public_key(&self, host: &mut dyn HostCalls) -> Result<String, String> {
        let uri = match &self.source {
            KeySource::Pem(pem) => return Ok(pem.clone()),
            KeySource::Kms(uri) => uri.to_string(),
        };
        let payload =
            serde_json::to_vec(&KmsRequest { uri: &uri }).map_err(|e| format!("cannot encode the request: {e}"))?;
        // Hint first: warnings are cut at 256 characters. cip's reasons name the URI.
        let answer = host.call(CIP_KMS_PUBLIC_KEY, &payload).map_err(|e| {
            format!(
                "key.kms needs host capability {CIP_KMS_PUBLIC_KEY} (on Kubewarden run `cip kms resolve` to fill key.data): {e}"
            )
        })?;
        let answer: KmsAnswer = serde_json::from_slice(&answer)
            .map_err(|e| format!("unreadable answer from host capability {CIP_KMS_PUBLIC_KEY}: {e}"))?;
        check_public_key(&answer.pem).map_err(|e| format!("the public key of {uri} is not usable: {e}"))?;
        Ok(answer.pem)
    }
}

impl Check for KeyAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let request = SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.verification_target(),
            pub_keys: vec![self.public_key(host)?],
            annotations: self.annotations.clone(),
        };
        verify_formats(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format)
            .map(|verified| Some(verified.digest))
            .map_err(|e| format!("no signature verified by the key: {e}"))
    }

    fn attestation_requests(
        &self,
        image: &ImageReference,
        host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, super::attestations::SignerRequest)>, String> {
        let request = SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.verification_target(),
            pub_keys: vec![self.public_key(host)?],
            annotations: None,
        };
        Ok(vec![(
            "the key".to_owned(),
            super::attestations::SignerRequest::V2Verify(request),
        )])
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        check_annotations(&self.annotations)?;
        match &self.source {
            KeySource::Pem(pem) => check_public_key(pem).map(|_| ()).map_err(|e| ("key.data".into(), e)),
            // Only the host can reach the KMS; the URI's syntax was checked by `parse`.
            KeySource::Kms(_) => Ok(()),
        }
    }
}
