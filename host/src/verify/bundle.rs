//! Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`, and the v0.1/v0.2 media
//! types): what cosign v3 attaches to an image as an OCI referrer for `cosign sign` (a DSSE
//! envelope over an in-toto statement of predicate type [`COSIGN_SIGN_PREDICATE`]) and for
//! `cosign attest` (the same envelope over the attestation's statement).
//!
//! [`verify`] checks a bundle on its own, in our code, the way `layers` checks a legacy
//! layer:
//!
//! * the content is a DSSE envelope with exactly one signature (a message signature carries no
//!   payload, so it cannot say which image it signs: refused);
//! * a transparency log entry, when the trust root has Rekor keys, must carry a signed entry
//!   timestamp (SET) that verifies under the trust root's key for its log id, valid at its
//!   integration time; its inclusion proof (required from v0.2 on) must verify against a
//!   checkpoint signed by the same key, of the proof's tree size and root; and its
//!   canonicalized body must be a `dsse` 0.0.1 entry recording the SHA-256 of this payload,
//!   this signature and this certificate (or a key verifying this signature) — see
//!   `bind_dsse_entry`;
//! * a certificate counts only with such an entry: chained to a Fulcio CA of the trust root
//!   valid at the integration time (`fulcio::chain_at`), its key verifying the DSSE
//!   signature over the pre-authentication encoding (PAE), its SCT checked
//!   (`sct::verify_embedded`);
//! * a key-signed bundle (`publicKey` hint) names no key: the caller's key must verify
//!   [`VerifiedBundle::signature`] over [`VerifiedBundle::signed_bytes`].
//!
//! The answer says what was verified: the payload type and payload bytes, the signature, the
//! trusted certificate identity if any, the bound log entry. What the payload must say (which
//! image, which predicate) is the caller's business: [`Statement`] reads an in-toto statement
//! and [`Statement::subject_for`] finds the subject naming a digest.
//!
//! sigstore-rs 0.15 has the same checks in `SignatureLayer::from_sigstore_bundle`, but
//! crate-private, for keyless v0.3 only, without the DSSE signature check with the
//! certificate's key, `validFor` or SCTs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sigstore::cosign::signature_layers::CertificateSignature;
use sigstore::crypto::{CosignVerificationKey, Signature};
use sigstore_protobuf_specs::dev::sigstore::bundle::v1::{Bundle, bundle, verification_material};
use sigstore_protobuf_specs::dev::sigstore::rekor::v1::TransparencyLogEntry;

use super::{fulcio, rekor, sct};
use crate::go_json;
use crate::trust::TrustRoot;
use crate::unique_keys::UniqueKeys;

/// Media type of a v0.3 bundle (also the referrer's artifact type and layer media type).
pub const BUNDLE_MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every bundle media type read.
pub const BUNDLE_MEDIA_TYPES: &[&str] = &[
    BUNDLE_MEDIA_TYPE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
/// Predicate type of the statement `cosign sign` signs in the bundle format.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Referrer annotation naming the statement's predicate type (cosign writes it).
pub const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// Why a bundle is not trusted; the text reaches the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle we can read.
    #[error("sigstore bundle is malformed: {0}")]
    Malformed(String),
    /// A well-formed bundle of a kind not verified here.
    #[error("sigstore bundle is not supported: {0}")]
    Unsupported(String),
    /// Its transparency log entry does not hold or does not describe it.
    #[error("sigstore bundle's transparency log entry is not trusted: {0}")]
    Tlog(String),
}

/// What signed the bundle, as far as it was verified.
#[derive(Debug)]
pub enum Signer {
    /// A key named only by a hint: the caller's key must verify the signature.
    Key {
        /// `verificationMaterial.publicKey.hint` (informative only).
        hint: String,
    },
    /// A leaf certificate (v0.3 `certificate`, or the first of a v0.1/v0.2 chain).
    Certificate {
        /// DER of the leaf.
        der: Vec<u8>,
        /// The identity, when the certificate chained to the trust root at the integration
        /// time and its key verified the signature.
        trusted: Option<Box<CertificateSignature>>,
        /// The outcome of its SCT check (an `Err` also when it is not trusted).
        sct: Result<(), String>,
        /// Why it is not trusted.
        problem: Option<String>,
    },
}

/// A transparency log entry bound to the bundle's content.
#[derive(Clone, Debug)]
pub struct BoundEntry {
    /// The entry as it came, for sigstore-rs' constraints.
    pub entry: TransparencyLogEntry,
    /// When the log integrated it (Unix seconds, covered by the verified SET).
    pub integrated_time: i64,
    /// DER SubjectPublicKeyInfo of the key the entry says verifies the signature.
    pub verifier_spki: Vec<u8>,
}

/// A bundle whose present claims were verified.
#[derive(Debug)]
pub struct VerifiedBundle {
    /// `mediaType` of the bundle.
    pub media_type: String,
    /// The DSSE payload type.
    pub payload_type: String,
    /// The DSSE payload, exactly as signed.
    pub payload: Vec<u8>,
    /// The DSSE signature.
    pub signature: Vec<u8>,
    /// Who signed it.
    pub signer: Signer,
    /// The bound log entry, when the trust root has Rekor keys and the bundle one.
    pub tlog: Option<BoundEntry>,
}

impl VerifiedBundle {
    /// What the signature covers: the DSSE pre-authentication encoding of the payload.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Whether the DSSE signature verifies with `key` (DER SubjectPublicKeyInfo).
    pub fn is_signed_by(&self, spki: &[u8]) -> bool {
        CosignVerificationKey::try_from_der(spki)
            .and_then(|key| key.verify_signature(Signature::Raw(&self.signature), &self.signed_bytes()))
            .is_ok()
    }

    /// The trusted certificate identity, if any.
    pub fn certificate_signature(&self) -> Option<&CertificateSignature> {
        match &self.signer {
            Signer::Certificate { trusted, .. } => trusted.as_deref(),
            Signer::Key { .. } => None,
        }
    }
}

/// DSSE pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// Verifies `bundle_json` against `trust` (see the module documentation).
pub fn verify(bundle_json: &[u8], trust: Option<&TrustRoot>) -> Result<VerifiedBundle, BundleError> {
    let malformed = |e: String| BundleError::Malformed(e);
    let bundle: Bundle = serde_json::from_slice(bundle_json).map_err(|e| malformed(e.to_string()))?;
    if !BUNDLE_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
        return Err(BundleError::Unsupported(format!(
            "media type `{}` is none of {}",
            bundle.media_type,
            BUNDLE_MEDIA_TYPES.join(", ")
        )));
    }
    let envelope = match bundle.content {
        Some(bundle::Content::DsseEnvelope(envelope)) => envelope,
        Some(bundle::Content::MessageSignature(_)) => {
            return Err(BundleError::Unsupported(
                "it holds a message signature, which does not carry what it signs; cosign signs images and attestations with a DSSE envelope".to_string(),
            ));
        }
        None => return Err(malformed("it has no content".to_string())),
    };
    let [signature] = envelope.signatures.as_slice() else {
        return Err(BundleError::Unsupported(format!(
            "its DSSE envelope has {} signatures, not one",
            envelope.signatures.len()
        )));
    };
    let signature = signature.sig.clone();
    let material = bundle
        .verification_material
        .ok_or_else(|| malformed("it has no verificationMaterial".to_string()))?;
    let certificate_der = match material.content {
        Some(verification_material::Content::Certificate(c)) => Some(c.raw_bytes),
        Some(verification_material::Content::X509CertificateChain(chain)) => Some(
            chain
                .certificates
                .into_iter()
                .next()
                .ok_or_else(|| malformed("its certificate chain is empty".to_string()))?
                .raw_bytes,
        ),
        Some(verification_material::Content::PublicKey(key)) => {
            return finish(
                bundle.media_type,
                envelope.payload_type,
                envelope.payload,
                signature,
                None,
                Some(key.hint),
                material.tlog_entries,
                trust,
            );
        }
        None => {
            return Err(malformed(
                "its verificationMaterial names no key nor certificate".to_string(),
            ));
        }
    };
    finish(
        bundle.media_type,
        envelope.payload_type,
        envelope.payload,
        signature,
        certificate_der,
        None,
        material.tlog_entries,
        trust,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    media_type: String,
    payload_type: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
    certificate_der: Option<Vec<u8>>,
    hint: Option<String>,
    entries: Vec<TransparencyLogEntry>,
    trust: Option<&TrustRoot>,
) -> Result<VerifiedBundle, BundleError> {
    if entries.len() > 1 {
        return Err(BundleError::Unsupported(format!(
            "it carries {} transparency log entries, not one",
            entries.len()
        )));
    }
    let signed = pae(&payload_type, &payload);
    let rekor_trust = trust.filter(|t| !t.rekor_logs().is_empty());
    let tlog = match (entries.into_iter().next(), rekor_trust) {
        (Some(entry), Some(trust)) => {
            let require_proof = media_type != BUNDLE_MEDIA_TYPES[2];
            let evidence = Evidence {
                payload: &payload,
                signed: &signed,
                signature: &signature,
                certificate_der: certificate_der.as_deref(),
            };
            Some(bind_entry(entry, trust, require_proof, &evidence).map_err(BundleError::Tlog)?)
        }
        // Without Rekor keys an entry cannot be checked and counts for nothing.
        _ => None,
    };
    let signer = match (certificate_der, hint) {
        (Some(der), _) => certificate_signer(der, trust, tlog.as_ref(), &signed, &signature),
        (None, hint) => Signer::Key {
            hint: hint.unwrap_or_default(),
        },
    };
    Ok(VerifiedBundle {
        media_type,
        payload_type,
        payload,
        signature,
        signer,
        tlog,
    })
}

fn certificate_signer(
    der: Vec<u8>,
    trust: Option<&TrustRoot>,
    tlog: Option<&BoundEntry>,
    signed: &[u8],
    signature: &[u8],
) -> Signer {
    let untrusted = |der: Vec<u8>, problem: String| Signer::Certificate {
        der,
        trusted: None,
        sct: Err("the signature has no trusted certificate".to_string()),
        problem: Some(problem),
    };
    let Some(trust) = trust.filter(|t| !t.certificate_authorities().is_empty()) else {
        return untrusted(der, "no Fulcio certificate authority is trusted".to_string());
    };
    let Some(entry) = tlog else {
        return untrusted(
            der,
            "signing certificate comes without a bound transparency log entry".to_string(),
        );
    };
    let checked = (|| {
        let chained = fulcio::chain_at(&der, trust, entry.integrated_time)?;
        let identity = fulcio::certificate_signature(&chained.leaf)?;
        identity
            .verification_key
            .verify_signature(Signature::Raw(signature), signed)
            .map_err(|_| {
                "signature does not verify with the signing certificate's key over the DSSE envelope".to_string()
            })?;
        Ok::<_, String>((identity, sct::verify_embedded(&chained.leaf, &chained.issuer, trust)))
    })();
    match checked {
        Ok((identity, sct)) => {
            let problem = sct.as_ref().err().cloned();
            Signer::Certificate {
                der,
                trusted: Some(Box::new(identity)),
                sct,
                problem,
            }
        }
        Err(problem) => untrusted(der, problem),
    }
}

/// What the bundle holds, for the comparison with its log entry.
struct Evidence<'a> {
    payload: &'a [u8],
    signed: &'a [u8],
    signature: &'a [u8],
    certificate_der: Option<&'a [u8]>,
}

/// Verifies the entry's SET and inclusion proof and binds its body to the bundle.
fn bind_entry(
    entry: TransparencyLogEntry,
    trust: &TrustRoot,
    require_proof: bool,
    evidence: &Evidence<'_>,
) -> Result<BoundEntry, String> {
    let log_id = entry
        .log_id
        .as_ref()
        .map(|id| hex::encode(&id.key_id))
        .ok_or("it names no log")?;
    let promise = entry
        .inclusion_promise
        .as_ref()
        .ok_or("it has no signed entry timestamp (inclusion promise)")?;
    let body_b64 = BASE64.encode(&entry.canonicalized_body);
    let log_key = rekor::verify_promise(
        &log_id,
        &body_b64,
        entry.integrated_time,
        entry.log_index,
        &promise.signed_entry_timestamp,
        trust,
        rekor::SIGSTORE_BUNDLE_ENTRY,
    )?;
    match &entry.inclusion_proof {
        Some(proof) => verify_inclusion(&entry, proof, &log_key)?,
        None if require_proof => return Err("it has no inclusion proof".to_string()),
        None => {}
    }
    let kind = entry.kind_version.as_ref().ok_or("it names no kind")?;
    if kind.kind != "dsse" || kind.version != "0.0.1" {
        return Err(format!(
            "it is a {} {} entry, not a dsse 0.0.1 entry",
            kind.kind, kind.version
        ));
    }
    let verifier_spki = bind_dsse_entry(&entry.canonicalized_body, evidence)?;
    Ok(BoundEntry {
        integrated_time: entry.integrated_time,
        entry,
        verifier_spki,
    })
}

/// The inclusion proof: checkpoint signed by the log key, its tree size and root the proof's,
/// the body the leaf at the proof's index (sigstore-rs' public `InclusionProof::verify`).
///
/// The root is compared here as sigstore-go does (rekor's `VerifyCheckpointSignature`), and the
/// size besides (a Rekor v1 log signs both from one tree head): sigstore-rs 0.15 ties the proof
/// to the checkpoint with an empty consistency proof, which for a checkpoint of the empty tree
/// (size 0) checks only that the checkpoint holds the empty tree's hash, so the log's
/// empty-tree checkpoint would vouch for any self-made one-leaf proof.
fn verify_inclusion(
    entry: &TransparencyLogEntry,
    proof: &sigstore_protobuf_specs::dev::sigstore::rekor::v1::InclusionProof,
    log_key: &[u8],
) -> Result<(), String> {
    use sigstore::rekor::models::checkpoint::SignedCheckpoint;
    use sigstore::rekor::models::inclusion_proof::InclusionProof;
    let bad = |what: &str| format!("its inclusion proof is malformed: {what}");
    let root_hash: [u8; 32] = proof.root_hash.as_slice().try_into().map_err(|_| bad("root hash"))?;
    let hashes = proof
        .hashes
        .iter()
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).map_err(|_| bad("hash")))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = proof.checkpoint.as_ref().ok_or_else(|| bad("no checkpoint"))?;
    let checkpoint: SignedCheckpoint = serde_json::from_value(serde_json::Value::String(envelope.envelope.clone()))
        .map_err(|e| bad(&format!("checkpoint: {e}")))?;
    let tree_size = u64::try_from(proof.tree_size).map_err(|_| bad("tree size"))?;
    if checkpoint.note.size != tree_size || checkpoint.note.hash != root_hash {
        return Err(format!(
            "its inclusion proof does not verify: it is for a tree of size {tree_size} with root {}, but its \
             checkpoint is for a tree of size {} with root {}",
            hex::encode(root_hash),
            checkpoint.note.size,
            hex::encode(checkpoint.note.hash)
        ));
    }
    let key = CosignVerificationKey::try_from_der(log_key).map_err(|e| format!("Rekor key is unusable: {e}"))?;
    InclusionProof::new(proof.log_index, root_hash, tree_size, hashes, Some(checkpoint))
        .verify(&entry.canonicalized_body, &key)
        .map_err(|e| format!("its inclusion proof does not verify: {e}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseEntryDoc {
    api_version: String,
    kind: String,
    spec: DsseSpecDoc,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseSpecDoc {
    payload_hash: HashDoc,
    signatures: Vec<DsseSignatureDoc>,
}

#[derive(Deserialize)]
struct HashDoc {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct DsseSignatureDoc {
    signature: String,
    /// base64 of a PEM certificate or public key.
    verifier: String,
}

/// Checks that the `dsse` entry `body` records this payload's hash, this signature and this
/// certificate (or a key verifying the signature); answers the entry's key. The envelope hash
/// is not compared: Rekor hashes the envelope as the client sent it, which the bundle does not
/// keep byte for byte, and everything it covers (payload type, payload, signature) is bound
/// through the payload hash and the signature over the PAE.
fn bind_dsse_entry(body: &[u8], evidence: &Evidence<'_>) -> Result<Vec<u8>, String> {
    let mismatch = |what: &str| format!("it describes another signature: {what}");
    let entry: DsseEntryDoc = serde_json::from_slice(body).map_err(|e| format!("its body is not a dsse entry: {e}"))?;
    if entry.kind != "dsse" || entry.api_version != "0.0.1" {
        return Err(format!(
            "its body is a {} {} entry, not a dsse 0.0.1 entry",
            entry.kind, entry.api_version
        ));
    }
    let payload_hash = hex::encode(Sha256::digest(evidence.payload));
    if entry.spec.payload_hash.algorithm != "sha256"
        || !entry.spec.payload_hash.value.eq_ignore_ascii_case(&payload_hash)
    {
        return Err(mismatch("its payload hash is not the SHA-256 of this payload"));
    }
    let [logged] = entry.spec.signatures.as_slice() else {
        return Err(mismatch("it does not record exactly one signature"));
    };
    let logged_signature = BASE64
        .decode(logged.signature.trim())
        .map_err(|_| mismatch("its signature is not base64"))?;
    if logged_signature != evidence.signature {
        return Err(mismatch("its signature is not this bundle's signature"));
    }
    let verifier_pem = BASE64
        .decode(logged.verifier.trim())
        .map_err(|_| mismatch("its verifier is not base64"))?;
    let verifier =
        rekor::pem_to_spki(&verifier_pem).ok_or_else(|| mismatch("its verifier is not a PEM key or certificate"))?;
    match evidence.certificate_der {
        Some(certificate) => {
            if verifier.certificate_der.as_deref() != Some(certificate) {
                return Err(mismatch("its certificate is not this bundle's certificate"));
            }
        }
        // The same tie-in as a legacy layer's: any hash a `key.hashAlgorithm` may name; the
        // authority's own check pins the hash.
        None => match rekor::check_verifier(&verifier, None, evidence.signature, evidence.signed) {
            Ok(()) => {}
            Err(rekor::VerifierMismatch::Unusable) => return Err(mismatch("its public key is not usable")),
            Err(_) => return Err(mismatch("its public key does not verify this bundle's signature")),
        },
    }
    Ok(verifier.spki)
}

/// An in-toto statement (v0.1 or v1), as far as signatures and attestations need it.
#[derive(Clone, Debug, Deserialize)]
pub struct Statement {
    /// `https://in-toto.io/Statement/v1` (or `/v0.1`).
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The predicate's type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate (any JSON).
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// One subject of a statement.
#[derive(Clone, Debug, Deserialize)]
pub struct Subject {
    /// Optional name (cosign leaves it out for signatures).
    #[serde(default)]
    pub name: Option<String>,
    /// Digests by algorithm (`sha256` → hex).
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
    /// cosign v3 puts `cosign sign -a` annotations here.
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Statement {
    /// Parses a DSSE payload of type [`IN_TOTO_PAYLOAD_TYPE`]; refuses a statement with a key
    /// twice in one object, or a key that Go's decoder or protojson reads as another field than
    /// serde does (`go_json::STATEMENT`), as the attestation path does.
    pub fn parse(payload_type: &str, payload: &[u8]) -> Result<Self, String> {
        if payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(format!(
                "its DSSE payload type is {payload_type}, not {IN_TOTO_PAYLOAD_TYPE}"
            ));
        }
        // protojson (cosign v3, sigstore-go) refuses a key twice in one object, even a map's
        // (`digest`); serde keeps the last, CUE unifies both. The attestation path refuses it
        // too (`attestations::read_statement`).
        serde_json::from_slice::<UniqueKeys>(payload)
            .map_err(|e| format!("its in-toto statement is refused: {e} (read differently by other readers)"))?;
        let statement: Statement =
            serde_json::from_slice(payload).map_err(|e| format!("its payload is not an in-toto statement: {e}"))?;
        serde_json::from_slice(payload)
            .map_err(|e| e.to_string())
            .and_then(|document| go_json::read_alike(&document, go_json::STATEMENT))
            .map_err(|reason| format!("its in-toto statement is refused: {reason}"))?;
        if !matches!(
            statement.statement_type.as_str(),
            "https://in-toto.io/Statement/v1" | "https://in-toto.io/Statement/v0.1"
        ) {
            return Err(format!(
                "its payload is a {} document, not an in-toto statement",
                statement.statement_type
            ));
        }
        Ok(statement)
    }

    /// The subject whose `sha256` is `digest` (`sha256:<hex>`), compared exactly (lowercase hex).
    pub fn subject_for(&self, digest: &str) -> Option<&Subject> {
        let hex = digest.strip_prefix("sha256:")?;
        self.subject
            .iter()
            .find(|s| s.digest.get("sha256").is_some_and(|d| d == hex))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use testkit::{BundleOptions, KeyPair, TestRekor};

    use super::*;

    /// A genuine key bundle logged in a trusted test Rekor, and its parts for forgeries.
    struct Logged {
        rekor: TestRekor,
        trust: TrustRoot,
        bundle: Value,
    }

    impl Logged {
        fn new() -> Self {
            let rekor = TestRekor::new().expect("rekor");
            let trust = TrustRoot::from_json(&testkit::trust_config_value(&[], &[&rekor]).to_string()).expect("trust");
            let key = KeyPair::ecdsa_p256().expect("key");
            let digest = format!("sha256:{}", "ab".repeat(32));
            let bundle = testkit::key_bundle(&digest, &key, Some(&rekor), &BundleOptions::default())
                .and_then(|b| b.value())
                .expect("bundle");
            Self { rekor, trust, bundle }
        }

        fn verify(&self, bundle: &Value) -> Result<VerifiedBundle, BundleError> {
            verify(&serde_json::to_vec(bundle).expect("json"), Some(&self.trust))
        }

        /// The bundle with its log entry changed by `change`.
        fn with_entry(&self, change: impl FnOnce(&mut Value)) -> Value {
            let mut bundle = self.bundle.clone();
            change(
                bundle
                    .pointer_mut("/verificationMaterial/tlogEntries/0")
                    .expect("entry"),
            );
            bundle
        }

        /// The entry's canonicalized body, parsed.
        fn body(&self) -> Value {
            let body = self.bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
                .as_str()
                .expect("body");
            serde_json::from_slice(&BASE64.decode(body).expect("base64")).expect("body json")
        }

        /// The bundle with the entry a log that accepted `body` answers (SET and proof genuine).
        fn with_logged_body(&self, body: &Value) -> Value {
            let at = self.bundle["verificationMaterial"]["tlogEntries"][0]["integratedTime"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("integratedTime");
            let entry = self.rekor.log_entry(body, at).expect("logged");
            let mut bundle = self.bundle.clone();
            bundle["verificationMaterial"]["tlogEntries"] = json!([entry]);
            bundle
        }
    }

    fn tlog_error(result: Result<VerifiedBundle, BundleError>) -> String {
        match result {
            Err(BundleError::Tlog(reason)) => reason,
            Err(other) => panic!("expected an untrusted log entry, got {other}"),
            Ok(_) => panic!("expected an untrusted log entry, the bundle verified"),
        }
    }

    #[test]
    fn a_genuine_empty_tree_checkpoint_does_not_vouch_for_a_self_made_proof() {
        let logged = Logged::new();
        assert!(logged.verify(&logged.bundle).expect("control").tlog.is_some());
        // The forger computes the root of a one-leaf tree holding the entry's body, and
        // presents it with a checkpoint the log did sign: the one of its empty tree.
        let body = logged.bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
            .as_str()
            .and_then(|b| BASE64.decode(b).ok())
            .expect("body");
        let leaf = Sha256::new_with_prefix([0u8]).chain_update(&body).finalize().to_vec();
        let one_leaf_proof = |checkpoint_root: &[u8], checkpoint_size: u64| {
            let checkpoint = logged
                .rekor
                .signed_checkpoint(checkpoint_root, checkpoint_size)
                .expect("checkpoint");
            logged.with_entry(|entry| {
                entry["inclusionProof"] = json!({"logIndex": "0", "treeSize": "1", "rootHash": BASE64.encode(&leaf),
                    "hashes": [], "checkpoint": {"envelope": checkpoint}});
            })
        };
        // Control: the same proof with the log's checkpoint of that one-leaf tree verifies.
        assert!(logged.verify(&one_leaf_proof(&leaf, 1)).is_ok());
        let empty_tree_root = Sha256::digest(b"").to_vec();
        let reason = tlog_error(logged.verify(&one_leaf_proof(&empty_tree_root, 0)));
        assert!(
            reason.contains("inclusion proof does not verify: it is for a tree of size 1")
                && reason.contains("checkpoint is for a tree of size 0"),
            "{reason}"
        );
        // A checkpoint of the proof's size but another root is refused too.
        let reason = tlog_error(logged.verify(&one_leaf_proof(&[7; 32], 1)));
        assert!(
            reason.contains("checkpoint is for a tree of size 1 with root 0707"),
            "{reason}"
        );
        // And one of the proof's root but another size, by the size comparison itself.
        let reason = tlog_error(logged.verify(&one_leaf_proof(&leaf, 2)));
        assert!(
            reason.contains("it is for a tree of size 1 with root")
                && reason.contains("checkpoint is for a tree of size 2 with root"),
            "{reason}"
        );
    }

    #[test]
    fn the_integration_time_counts_only_under_its_signed_entry_timestamp() {
        let logged = Logged::new();
        assert!(logged.verify(&logged.bundle).is_ok());
        // The inclusion proof is intact, but it says nothing of the time.
        let unpromised = logged.with_entry(|entry| {
            entry.as_object_mut().expect("entry").remove("inclusionPromise");
        });
        let reason = tlog_error(logged.verify(&unpromised));
        assert!(reason.contains("no signed entry timestamp"), "{reason}");
        let earlier = logged.with_entry(|entry| {
            let at: i64 = entry["integratedTime"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("time");
            entry["integratedTime"] = json!((at - 3600).to_string());
        });
        assert!(matches!(logged.verify(&earlier), Err(BundleError::Tlog(_))));
    }

    #[test]
    fn bundles_of_another_shape_than_cosign_writes_are_refused() {
        let logged = Logged::new();
        let entry = logged.bundle["verificationMaterial"]["tlogEntries"][0].clone();
        let mut twice = logged.bundle.clone();
        twice["verificationMaterial"]["tlogEntries"] = json!([entry, entry]);
        match logged.verify(&twice) {
            Err(BundleError::Unsupported(reason)) => {
                assert!(reason.contains("2 transparency log entries"), "{reason}")
            }
            other => panic!("two entries: {:?}", other.map(|_| "verified")),
        }
        // The envelope's signature as a message signature over a digest: it says nothing of
        // what it signs.
        let mut message = logged.bundle.clone();
        let envelope = message
            .as_object_mut()
            .expect("bundle")
            .remove("dsseEnvelope")
            .expect("envelope");
        message["messageSignature"] = json!({"messageDigest": {"algorithm": "SHA2_256",
            "digest": BASE64.encode(Sha256::digest(b"artifact"))}, "signature": envelope["signatures"][0]["sig"]});
        match logged.verify(&message) {
            Err(BundleError::Unsupported(reason)) => assert!(reason.contains("message signature"), "{reason}"),
            other => panic!("message signature: {:?}", other.map(|_| "verified")),
        }
    }

    #[test]
    fn a_logged_dsse_entry_must_record_one_signature_and_a_sha256_payload_hash() {
        let logged = Logged::new();
        // Control: the genuine body, logged again, verifies.
        assert!(logged.verify(&logged.with_logged_body(&logged.body())).is_ok());
        let mut two_signatures = logged.body();
        let signature = two_signatures["spec"]["signatures"][0].clone();
        let other = KeyPair::ecdsa_p256().expect("key");
        let mut second = signature.clone();
        second["signature"] = json!(BASE64.encode(other.sign(b"another payload").expect("sign")));
        second["verifier"] = json!(BASE64.encode(other.public_key_pem()));
        for signatures in [json!([signature, second]), json!([second, signature]), json!([])] {
            two_signatures["spec"]["signatures"] = signatures.clone();
            let reason = tlog_error(logged.verify(&logged.with_logged_body(&two_signatures)));
            assert!(
                reason.contains("does not record exactly one signature"),
                "{signatures}: {reason}"
            );
        }
        // The payload's SHA-256, labelled another algorithm.
        for algorithm in ["sha384", "SHA256", "sha512"] {
            let mut relabelled = logged.body();
            relabelled["spec"]["payloadHash"]["algorithm"] = json!(algorithm);
            let reason = tlog_error(logged.verify(&logged.with_logged_body(&relabelled)));
            assert!(reason.contains("payload hash"), "{algorithm}: {reason}");
        }
    }

    #[test]
    fn statements_read_otherwise_by_protojson_are_refused() {
        let h = "ab".repeat(32);
        let o = "cd".repeat(32);
        let head =
            r#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://sigstore.dev/cosign/sign/v1""#;
        let control = format!(r#"{head},"subject":[{{"digest":{{"sha256":"{h}"}}}}],"predicate":{{}}}}"#);
        let statement = Statement::parse(IN_TOTO_PAYLOAD_TYPE, control.as_bytes()).expect("control");
        assert!(statement.subject_for(&format!("sha256:{h}")).is_some());
        for (forged, why) in [
            (
                format!(r#"{head},"subject":[{{"digest":{{"sha256":"{o}","sha256":"{h}"}}}}]}}"#),
                "appears twice",
            ),
            (
                format!(r#"{head},"subject":[{{"digest":{{"sha256":"{h}"}}}}],"predicate":{{"a":1,"a":2}}}}"#),
                "appears twice",
            ),
            (
                format!(
                    r#"{head},"predicate_type":"https://slsa.dev/provenance/v1","subject":[{{"digest":{{"sha256":"{h}"}}}}]}}"#
                ),
                "proto field name",
            ),
            (
                format!(r#"{head},"type":"https://example.com/other","subject":[{{"digest":{{"sha256":"{h}"}}}}]}}"#),
                "proto field name",
            ),
        ] {
            let error = Statement::parse(IN_TOTO_PAYLOAD_TYPE, forged.as_bytes()).expect_err(&forged);
            assert!(error.contains(why), "{forged}: {error}");
        }
    }

    #[test]
    fn pae_follows_the_dsse_spec() {
        assert_eq!(
            pae(IN_TOTO_PAYLOAD_TYPE, b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
        );
    }

    #[test]
    fn garbage_and_unknown_media_types_are_refused_not_panicked_on() {
        assert!(matches!(verify(b"not json", None), Err(BundleError::Malformed(_))));
        let other = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v9+json"}"#;
        assert!(matches!(verify(other, None), Err(BundleError::Unsupported(_))));
        let empty = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        assert!(matches!(verify(empty, None), Err(BundleError::Malformed(_))));
    }

    #[test]
    fn statements_name_their_subject_exactly() {
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"p","predicate":{}}"#;
        let statement = Statement::parse(IN_TOTO_PAYLOAD_TYPE, payload).expect("statement");
        assert!(statement.subject_for("sha256:ab").is_some());
        assert!(statement.subject_for("sha256:AB").is_none());
        assert!(statement.subject_for("sha512:ab").is_none());
        assert!(Statement::parse("text/plain", payload).is_err());
    }
}
