//! Sigstore bundles v0.3 as cosign v3 writes them for `cosign sign`: a DSSE envelope over an
//! in-toto statement (predicate type `https://sigstore.dev/cosign/sign/v1`, subject the image
//! digest, `-a` annotations on the subject), signed with a key (`publicKey` hint) or a Fulcio
//! leaf (`certificate`), with a Rekor v1 `dsse` entry (SET and inclusion proof).
//!
//! [`SigstoreBundle`] holds the JSON; its `with_*` methods make the forgeries negative tests
//! need; [`attach_bundle`] pushes one as a referrer of an image (listed in the referrers tag
//! schema index, where distribution v2.8 clients fall back to).

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sigstore_protobuf_specs::dev::sigstore::bundle::v1::{Bundle, VerificationMaterial, bundle, verification_material};
use sigstore_protobuf_specs::dev::sigstore::common::v1::{PublicKeyIdentifier, X509Certificate};
use sigstore_protobuf_specs::io::intoto::{Envelope, Signature};

use crate::fulcio::{LeafCertificate, LeafRequest, TestFulcio};
use crate::keys::KeyPair;
use crate::referrers::{SIGSTORE_BUNDLE_MEDIA_TYPE, attach_referrer};
use crate::rekor::TestRekor;

/// Predicate type of `cosign sign`'s statement.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";

/// How a bundle departs from what cosign writes.
#[derive(Clone, Debug, Default)]
pub struct BundleOptions {
    /// `cosign sign -a` annotations, on the statement's subject.
    pub annotations: BTreeMap<String, String>,
    /// The statement's predicate type (cosign's sign predicate when `None`).
    pub predicate_type: Option<String>,
    /// The predicate (`{}` when `None`).
    pub predicate: Option<Value>,
    /// No transparency log entry (`cosign sign --tlog-upload=false`).
    pub no_tlog: bool,
    /// Integration time (Unix seconds; now when `None`).
    pub integrated_time: Option<i64>,
}

/// A sigstore bundle's JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigstoreBundle {
    /// The bundle as stored in the referrer's layer.
    pub json: Vec<u8>,
    /// The statement's predicate type (the referrer's annotation).
    pub predicate_type: String,
}

impl SigstoreBundle {
    fn edit(&self, change: impl FnOnce(&mut Value) -> Option<()>) -> anyhow::Result<Self> {
        let mut value: Value = serde_json::from_slice(&self.json)?;
        change(&mut value).context("the bundle does not have the field to change")?;
        Ok(Self {
            json: serde_json::to_vec(&value)?,
            predicate_type: self.predicate_type.clone(),
        })
    }

    /// The parsed JSON.
    pub fn value(&self) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&self.json)?)
    }

    /// One bit of the base64 string at `pointer` flipped.
    fn with_flipped_bit(&self, pointer: &str) -> anyhow::Result<Self> {
        self.edit(|v| {
            let field = v.pointer_mut(pointer)?;
            *field = Value::String(flip_b64(field.as_str()?)?);
            Some(())
        })
    }

    /// One bit of the DSSE signature flipped (the log entry keeps the original).
    pub fn with_corrupted_signature(&self) -> anyhow::Result<Self> {
        self.with_flipped_bit("/dsseEnvelope/signatures/0/sig")
    }

    /// One bit of the signed entry timestamp flipped.
    pub fn with_tampered_set(&self) -> anyhow::Result<Self> {
        self.with_flipped_bit("/verificationMaterial/tlogEntries/0/inclusionPromise/signedEntryTimestamp")
    }

    /// One bit of the inclusion proof's root hash flipped (the checkpoint no longer matches).
    pub fn with_tampered_inclusion_proof(&self) -> anyhow::Result<Self> {
        self.with_flipped_bit("/verificationMaterial/tlogEntries/0/inclusionProof/rootHash")
    }

    /// One bit of the inclusion proof's first path hash flipped (the computed root no longer
    /// matches the checkpoint).
    pub fn with_tampered_inclusion_hash(&self) -> anyhow::Result<Self> {
        self.with_flipped_bit("/verificationMaterial/tlogEntries/0/inclusionProof/hashes/0")
    }

    /// The inclusion proof removed (the SET stays).
    pub fn without_inclusion_proof(&self) -> anyhow::Result<Self> {
        self.edit(|v| {
            v.pointer_mut("/verificationMaterial/tlogEntries/0")?
                .as_object_mut()?
                .remove("inclusionProof")?;
            Some(())
        })
    }

    /// The transparency log entry replaced by `other`'s (a genuine entry for another artifact).
    pub fn with_tlog_entry_of(&self, other: &SigstoreBundle) -> anyhow::Result<Self> {
        let entry = other
            .value()?
            .pointer("/verificationMaterial/tlogEntries/0")
            .cloned()
            .context("the other bundle has no log entry")?;
        self.edit(|v| {
            *v.pointer_mut("/verificationMaterial/tlogEntries/0")? = entry;
            Some(())
        })
    }

    /// The verification material (certificate or key hint) replaced by `other`'s.
    pub fn with_verification_material_of(&self, other: &SigstoreBundle) -> anyhow::Result<Self> {
        let material = other
            .value()?
            .get("verificationMaterial")
            .cloned()
            .context("the other bundle has no verification material")?;
        self.edit(|v| {
            *v.get_mut("verificationMaterial")? = material;
            Some(())
        })
    }

    /// The bundle padded with an ignored field to `size` bytes at least.
    pub fn padded_to(&self, size: usize) -> anyhow::Result<Self> {
        self.edit(|v| {
            v.as_object_mut()?
                .insert("padding".to_owned(), Value::String("x".repeat(size)));
            Some(())
        })
    }
}

fn flip_b64(encoded: &str) -> Option<String> {
    let mut raw = BASE64.decode(encoded).ok()?;
    let middle = raw.len() / 2;
    *raw.get_mut(middle)? ^= 0x01;
    Some(BASE64.encode(raw))
}

/// The statement cosign v3 signs for `digest` (protobuf JSON: no subject name, `{}` predicate).
fn statement(digest: &str, options: &BundleOptions) -> anyhow::Result<Vec<u8>> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("{digest} is not a sha256 digest"))?;
    let mut subject = json!({"digest": {"sha256": hex}});
    if !options.annotations.is_empty() {
        subject["annotations"] = json!(options.annotations);
    }
    Ok(serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [subject],
        "predicateType": options.predicate_type.as_deref().unwrap_or(COSIGN_SIGN_PREDICATE),
        "predicate": options.predicate.clone().unwrap_or_else(|| json!({})),
    }))?)
}

fn dsse_bundle(
    digest: &str,
    sign: &dyn Fn(&[u8]) -> anyhow::Result<Vec<u8>>,
    verifier_pem: &str,
    content: verification_material::Content,
    rekor: Option<&TestRekor>,
    options: &BundleOptions,
) -> anyhow::Result<SigstoreBundle> {
    let payload = statement(digest, options)?;
    dsse_bundle_over(IN_TOTO_MEDIA_TYPE, payload, sign, verifier_pem, content, rekor, options)
}

/// A bundle over any DSSE payload (attestations use it with their own statements).
fn dsse_bundle_over(
    payload_type: &str,
    payload: Vec<u8>,
    sign: &dyn Fn(&[u8]) -> anyhow::Result<Vec<u8>>,
    verifier_pem: &str,
    content: verification_material::Content,
    rekor: Option<&TestRekor>,
    options: &BundleOptions,
) -> anyhow::Result<SigstoreBundle> {
    let signature = sign(&pae(payload_type, &payload))?;
    let envelope = Envelope {
        payload: payload.clone(),
        payload_type: payload_type.to_owned(),
        signatures: vec![Signature {
            sig: signature.clone(),
            keyid: String::new(),
        }],
    };
    let tlog_entries = match rekor.filter(|_| !options.no_tlog) {
        Some(rekor) => {
            let envelope_json = serde_json::to_vec(&envelope)?;
            let at = options
                .integrated_time
                .unwrap_or_else(|| chrono::Utc::now().timestamp());
            vec![rekor.dsse_log_entry(&envelope_json, &payload, &signature, verifier_pem, at)?]
        }
        None => Vec::new(),
    };
    let bundle = Bundle {
        media_type: SIGSTORE_BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: Some(VerificationMaterial {
            content: Some(content),
            tlog_entries,
            timestamp_verification_data: None,
        }),
        content: Some(bundle::Content::DsseEnvelope(envelope)),
    };
    let predicate_type = serde_json::from_slice::<Value>(&payload)
        .ok()
        .and_then(|v| v.get("predicateType").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Ok(SigstoreBundle {
        json: serde_json::to_vec(&bundle)?,
        predicate_type,
    })
}

/// `cosign sign --key` in the bundle format for `digest`, logged in `rekor` when given.
pub fn key_bundle(
    digest: &str,
    key: &KeyPair,
    rekor: Option<&TestRekor>,
    options: &BundleOptions,
) -> anyhow::Result<SigstoreBundle> {
    let hint = BASE64.encode(Sha256::digest(key.public_key_der()));
    dsse_bundle(
        digest,
        &|message| key.sign(message),
        key.public_key_pem(),
        verification_material::Content::PublicKey(PublicKeyIdentifier { hint }),
        rekor,
        options,
    )
}

/// Keyless `cosign sign` in the bundle format for `digest`: a fresh leaf for `request`.
pub fn keyless_bundle(
    digest: &str,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    request: &LeafRequest,
    options: &BundleOptions,
) -> anyhow::Result<SigstoreBundle> {
    let leaf = fulcio.issue(request)?;
    dsse_bundle(
        digest,
        &|message| leaf.key.sign(message),
        &leaf.cert_pem,
        verification_material::Content::Certificate(X509Certificate {
            raw_bytes: leaf.cert_der.clone(),
        }),
        Some(rekor),
        options,
    )
}

/// A bundle for `digest` whose verification material is `leaf`'s certificate, signed by
/// `signer` and logged in `rekor` (when given) as verified by `leaf`. With `signer` the leaf's
/// own key it is what [`keyless_bundle`] makes; with another key it is a forgery: a genuine
/// certificate next to a signature its key does not verify, which a log accepting anything
/// recorded.
pub fn certificate_bundle(
    digest: &str,
    leaf: &LeafCertificate,
    signer: &KeyPair,
    rekor: Option<&TestRekor>,
    options: &BundleOptions,
) -> anyhow::Result<SigstoreBundle> {
    dsse_bundle(
        digest,
        &|message| signer.sign(message),
        &leaf.cert_pem,
        verification_material::Content::Certificate(X509Certificate {
            raw_bytes: leaf.cert_der.clone(),
        }),
        rekor,
        options,
    )
}

/// A key-signed bundle over any DSSE payload (`cosign attest --key` statements).
pub fn key_dsse_bundle(
    payload_type: &str,
    payload: Vec<u8>,
    key: &KeyPair,
    rekor: Option<&TestRekor>,
    options: &BundleOptions,
) -> anyhow::Result<SigstoreBundle> {
    let hint = BASE64.encode(Sha256::digest(key.public_key_der()));
    dsse_bundle_over(
        payload_type,
        payload,
        &|message| key.sign(message),
        key.public_key_pem(),
        verification_material::Content::PublicKey(PublicKeyIdentifier { hint }),
        rekor,
        options,
    )
}

/// Attaches `bundle` to `registry_host/repo@digest` as a referrer with cosign's annotations.
/// Returns the referrer's manifest digest.
pub fn attach_bundle(registry_host: &str, repo: &str, digest: &str, bundle: &SigstoreBundle) -> anyhow::Result<String> {
    let annotations = BTreeMap::from([
        ("dev.sigstore.bundle.content".to_owned(), "dsse-envelope".to_owned()),
        (
            "dev.sigstore.bundle.predicateType".to_owned(),
            bundle.predicate_type.clone(),
        ),
    ]);
    attach_referrer(
        registry_host,
        repo,
        digest,
        SIGSTORE_BUNDLE_MEDIA_TYPE,
        bundle.json.clone(),
        annotations,
    )
}

/// `cosign sign --key` as cosign v3 does by default: a key bundle for `digest` (logged in
/// `rekor` when given) attached as a referrer. Returns the referrer's manifest digest.
pub fn sign_with_key_bundle(
    registry_host: &str,
    repo: &str,
    digest: &str,
    key: &KeyPair,
    rekor: Option<&TestRekor>,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let options = BundleOptions {
        annotations: annotations.clone(),
        ..Default::default()
    };
    attach_bundle(registry_host, repo, digest, &key_bundle(digest, key, rekor, &options)?)
}

/// DSSE pre-authentication encoding: what a DSSE signature covers.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_follows_the_dsse_spec() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
        );
    }

    #[test]
    fn key_bundles_carry_the_statement_and_forgeries_change_what_they_say() -> anyhow::Result<()> {
        let key = KeyPair::ecdsa_p256()?;
        let rekor = TestRekor::new()?;
        let digest = format!("sha256:{}", "ab".repeat(32));
        let bundle = key_bundle(&digest, &key, Some(&rekor), &BundleOptions::default())?;
        let value = bundle.value()?;
        assert_eq!(value["mediaType"], SIGSTORE_BUNDLE_MEDIA_TYPE);
        assert!(value.pointer("/verificationMaterial/publicKey/hint").is_some());
        let payload = BASE64.decode(value["dsseEnvelope"]["payload"].as_str().context("payload")?)?;
        let statement: Value = serde_json::from_slice(&payload)?;
        assert_eq!(statement["predicateType"], COSIGN_SIGN_PREDICATE);
        assert_eq!(statement["subject"][0]["digest"]["sha256"], "ab".repeat(32));
        assert_ne!(bundle.with_corrupted_signature()?, bundle);
        assert_ne!(bundle.with_tampered_set()?, bundle);
        assert_ne!(bundle.with_tampered_inclusion_proof()?, bundle);
        assert!(
            bundle
                .without_inclusion_proof()?
                .value()?
                .pointer("/verificationMaterial/tlogEntries/0/inclusionProof")
                .is_none()
        );
        Ok(())
    }
}
