//! `key`: signatures made with a cosign key pair (`cosign sign --key`).

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;

use super::{Check, check_annotations};
use crate::crypto::check_public_key;
use crate::host::{HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, verify_formats};
use crate::reference::ImageReference;
use crate::settings::raw::RawKey;

/// A public key, verified through Kubewarden's `SigstorePubKeyVerify`.
#[derive(Debug)]
pub struct KeyAuthority {
    pem: String,
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
        let pem = match (raw.data, raw.kms) {
            (Some(_), Some(_)) => {
                return Err((
                    "key".into(),
                    "give key.data or key.kms, not both: only data would be used (policy-controller refuses both as well); remove kms".into(),
                ));
            }
            (Some(data), None) if !data.trim().is_empty() => data,
            (None, Some(kms)) => {
                return Err((
                    "key.kms".into(),
                    format!(
                        "a Kubewarden host cannot reach a KMS ({kms}); export the public key with `cosign public-key --key {kms}` and paste it into key.data in place of kms"
                    ),
                ));
            }
            _ => {
                return Err((
                    "key.data".into(),
                    "key.data is required: paste the PEM public key (cosign.pub)".into(),
                ));
            }
        };
        if !pem.contains("-----BEGIN") {
            return Err((
                "key.data".into(),
                "key.data is not PEM: paste the content of cosign.pub, BEGIN/END lines included".into(),
            ));
        }
        Ok(Self {
            pem,
            annotations,
            format,
        })
    }
}

impl Check for KeyAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let request = SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.verification_target(),
            pub_keys: vec![self.pem.clone()],
            annotations: self.annotations.clone(),
        };
        verify_formats(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format)
            .map(|verified| Some(verified.digest))
            .map_err(|e| format!("no signature verified by the key: {e}"))
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        check_annotations(&self.annotations)?;
        check_public_key(&self.pem)
            .map(|_| ())
            .map_err(|e| ("key.data".into(), e))
    }
}
