//! `key`: signatures made with a cosign key pair (`cosign sign --key`).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use serde::{Deserialize, Serialize};

use super::{Check, check_annotations};
use crate::crypto::check_public_key;
use crate::host::{CIP_KMS_PUBLIC_KEY, HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, verify_formats_json};
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
    /// For `key.data`: what follows the image in every request of this authority
    /// ([`PubKeyRequest::suffix`]), serialised on first use and then copied, not re-encoded.
    request_suffix: OnceCell<String>,
}

/// The JSON text of a `SigstorePubKeyVerify` request, byte for byte what `serde_json` writes for
/// the SDK's `SigstoreVerificationInputV2::SigstorePubKeyVerify` (fields `type`, `image`,
/// `pub_keys`, `annotations`, in that order), built from a part that depends on the image and
/// a part that does not.
struct PubKeyRequest;

impl PubKeyRequest {
    const PREFIX: &'static str = r#"{"type":"SigstorePubKeyVerify","image":"#;

    /// `,"pub_keys":[…],"annotations":…}`: the key written as a JSON string by
    /// [`crate::answer::push_string`] (`serde_json`'s writer costs ≈ 40 instructions for each
    /// byte of the PEM in wasm, and a fresh instance writes this for every authority it tries).
    fn suffix(pem: &str, annotations: Option<&BTreeMap<String, String>>) -> Result<String, String> {
        let mut text = String::with_capacity(pem.len() + 48);
        text.push_str(r#","pub_keys":["#);
        crate::answer::push_string(&mut text, pem);
        text.push_str(r#"],"annotations":"#);
        match annotations {
            Some(annotations) => text
                .push_str(&serde_json::to_string(annotations).map_err(|e| format!("cannot encode the request: {e}"))?),
            None => text.push_str("null"),
        }
        text.push('}');
        Ok(text)
    }

    /// The whole request for `image`.
    /// (Strings pushed together into one allocation: no UTF-8 check of the whole text, ≈ 400
    /// bytes with its key.)
    fn text(image: &str, suffix: &str) -> String {
        let mut text = String::with_capacity(Self::PREFIX.len() + image.len() + 2 + suffix.len());
        text.push_str(Self::PREFIX);
        crate::answer::push_string(&mut text, image);
        text.push_str(suffix);
        text
    }
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
            request_suffix: OnceCell::new(),
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

impl KeyAuthority {
    /// The `SigstorePubKeyVerify` request for `image` as JSON text.
    fn request(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<String, String> {
        let target = image.verification_target();
        let annotations = self.annotations.as_ref();
        match &self.source {
            KeySource::Pem(pem) => {
                let suffix = match self.request_suffix.get() {
                    Some(suffix) => suffix,
                    None => {
                        let suffix = PubKeyRequest::suffix(pem, annotations)?;
                        self.request_suffix.get_or_init(|| suffix)
                    }
                };
                Ok(PubKeyRequest::text(&target, suffix))
            }
            // The key can change between calls (rotation in the KMS): encoded each time.
            KeySource::Kms(_) => Ok(PubKeyRequest::text(
                &target,
                &PubKeyRequest::suffix(&self.public_key(host)?, annotations)?,
            )),
        }
    }
}

impl Check for KeyAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let request = self.request(image, host)?;
        verify_formats_json(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format)
            .map(|verified| Some(verified.digest))
            .map_err(|e| format!("no signature verified by the key: {e}"))
    }

    fn attestation_requests(
        &self,
        image: &ImageReference,
        host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, super::attestations::SignerRequest)>, String> {
        let request = SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.verification_target().into_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sdk_request(image: &str, pem: &str, annotations: Option<BTreeMap<String, String>>) -> String {
        serde_json::to_string(&SigstoreVerificationInputV2::SigstorePubKeyVerify {
            image: image.to_owned(),
            pub_keys: vec![pem.to_owned()],
            annotations,
        })
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The request built from parts is the request the SDK's type serialises to, byte for
        /// byte: hosts (and cip's answer cache, keyed by payload) see no difference.
        #[test]
        fn requests_are_what_the_sdk_writes(
            image in "\\PC{0,40}|[\"\\\\\u{0}-\u{1f}]{0,8}",
            pem in "\\PC{0,60}|-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]{0,80}\n-----END PUBLIC KEY-----\n",
            annotations in proptest::option::of(proptest::collection::btree_map("\\PC{0,8}", "[\\PC\"\\\\\n]{0,8}", 0..4)),
        ) {
            let suffix = PubKeyRequest::suffix(&pem, annotations.as_ref()).unwrap();
            prop_assert_eq!(PubKeyRequest::text(&image, &suffix), sdk_request(&image, &pem, annotations));
        }
    }

    #[test]
    fn a_key_authority_sends_the_sdk_request() {
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        let annotations = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        let authority = KeyAuthority::parse(
            RawKey {
                data: Some(pem.to_owned()),
                kms: None,
                secret_ref: None,
                hash_algorithm: None,
            },
            Some(annotations.clone()),
            SignatureFormat::Legacy,
        )
        .unwrap();
        let image = ImageReference::parse("r.io/app:v1").unwrap();
        let mut host = crate::host::mock::MockHost::failing();
        for _ in 0..2 {
            assert_eq!(
                authority.request(&image, &mut host).unwrap(),
                sdk_request("r.io/app:v1", pem, Some(annotations.clone()))
            );
        }
    }
}
