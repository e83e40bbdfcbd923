//! cosign attestations in the legacy format (`cosign attest`): the manifest
//! `repo:sha256-<hex>.att`, whose layers (media type `application/vnd.dsse.envelope.v1+json`)
//! are DSSE envelopes carrying an in-toto statement, annotated like `.sig` layers
//! (certificate, chain, Rekor bundle; the signature annotation is empty, the signature is in
//! the envelope).
//!
//! A statement is returned only when everything it claims was checked here:
//!
//! * the blob's SHA-256 is the descriptor's digest; the envelope's `payloadType` is
//!   `application/vnd.in-toto+json`; the payload is an in-toto statement (v0.1 or v1) whose
//!   `subject` lists the image digest;
//! * the envelope has exactly one signature (what `cosign attest` writes; more are refused before
//!   anything is done per signature), which verifies over the DSSE pre-authentication encoding
//!   (`DSSEv1 <len> <type> <len> <body>`) with the authority's key, or with a certificate that
//!   chains to a Fulcio CA valid when the entry was logged (and whose SCT verifies when the
//!   request demands it) — the same checks as for signature layers (`layers`);
//! * a Rekor bundle verifies under a log key of the trust root valid at its integration time,
//!   and its entry is the `intoto` entry cosign uploads for this very envelope: its
//!   `content.hash` is the SHA-256 of the envelope bytes (as cosign's `bundleHash` checks),
//!   its `payloadHash`, when present, the SHA-256 of the statement, and its key (0.0.1:
//!   `spec.publicKey`; 0.0.2: the envelope signature's `publicKey`) is this layer's
//!   certificate or a key verifying this signature.
//!
//! The authority's constraints are sigstore-rs' and ours ([`super::constraints`]), applied to a
//! layer whose signed data is the PAE: one plan serves signatures and attestations.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use sigstore::cosign::SignatureLayer;
use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::payload::simple_signing::{Critical, Identity, Image, SimpleSigning};
use sigstore::cosign::signature_layers::CertificateSubject;

use super::bundle::{self, COSIGN_SIGN_PREDICATE, Statement};
use super::cache::{Expiring, expiry_after};
use super::constraints::{HashAlgorithm, Plan};
use super::error::Reading;
use super::layers::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, TrustedLayer, certificate_der, trusted_certificate};
use super::signatures::{BundleKind, HeldDownloads};
use super::{KeylessRegexpRequest, SignatureFormat, VerificationRequest, Verifier, VerifyError, rekor, signatures};
use crate::go_json;
use crate::registry::{DownloadBudget, DownloadLimits, RegistryClient};
use crate::trust::TrustRoot;
use crate::unique_keys::UniqueKeys;

/// Media type of cosign's attestation layers.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub use super::bundle::{IN_TOTO_PAYLOAD_TYPE, pae};
/// `critical.type` of the layers the constraints see for attestations.
const ATTESTATION_TYPE_NAME: &str = "cosign container image attestation";
/// in-toto statement types accepted (`_type`).
const STATEMENT_TYPES: [&str; 2] = ["https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"];

/// Payload of `cluster-image-policy`/`oci`/`v1/verify_attestations`: who must have signed the
/// attestations, in the shape the module sends for signatures (docs/wire-protocol.md).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AttestationsRequest {
    /// A `kubewarden`/`oci`/`v2/verify` payload (key, keyless, certificate, GitHub Actions).
    V2Verify(SigstoreVerificationInputV2),
    /// A `cluster-image-policy`/`oci`/`v1/verify_keyless_regexp` payload.
    KeylessRegexp(KeylessRegexpRequest),
    /// A `SigstorePubKeyVerify` payload whose attestations must verify with `hash_algorithm`
    /// (`key.hashAlgorithm`), not the hash sigstore-rs picks for the key
    /// (`v1/verify_attestations_with_hash`).
    KeyWithHash {
        hash_algorithm: HashAlgorithm,
        request: SigstoreVerificationInputV2,
    },
}

/// The payload as the module sends it: one [`AttestationsRequest`] and, from the authority's
/// `signatureFormat`, where attestations are read (absent: both formats).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationsCall {
    #[serde(default)]
    v2_verify: Option<SigstoreVerificationInputV2>,
    #[serde(default)]
    keyless_regexp: Option<KeylessRegexpRequest>,
    #[serde(default)]
    signature_format: Option<SignatureFormat>,
}

impl AttestationsCall {
    /// The request and the storage to read; exactly one request must be given.
    pub fn into_parts(self) -> Result<(AttestationsRequest, SignatureFormat), VerifyError> {
        let request = match (self.v2_verify, self.keyless_regexp) {
            (Some(v2), None) => AttestationsRequest::V2Verify(v2),
            (None, Some(regexp)) => AttestationsRequest::KeylessRegexp(regexp),
            _ => {
                return Err(VerifyError::InvalidRequest(
                    "give exactly one of v2_verify and keyless_regexp".to_owned(),
                ));
            }
        };
        Ok((request, self.signature_format.unwrap_or(SignatureFormat::Any)))
    }
}

/// The payload of `cluster-image-policy`/`oci`/`v1/verify_attestations_with_hash`: the
/// `verify_attestations` payload of a key (`v2_verify`, a `SigstorePubKeyVerify`) and the hash
/// its attestations were signed over. `verify_attestations` itself refuses `hash_algorithm`
/// (an unknown field): a module never gets attestations verified with another hash than it
/// asked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationsHashCall {
    #[serde(deserialize_with = "super::pub_key_request")]
    v2_verify: SigstoreVerificationInputV2,
    hash_algorithm: HashAlgorithm,
    #[serde(default)]
    signature_format: Option<SignatureFormat>,
}

impl AttestationsHashCall {
    /// The request and the storage to read.
    pub fn into_parts(self) -> (AttestationsRequest, SignatureFormat) {
        (
            AttestationsRequest::KeyWithHash {
                hash_algorithm: self.hash_algorithm,
                request: self.v2_verify,
            },
            self.signature_format.unwrap_or(SignatureFormat::Any),
        )
    }
}

/// The answer: the verified digest and every statement one of its signers vouched for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttestationsAnswer {
    /// The image digest the statements name.
    pub digest: String,
    /// The verified statements, in layer order.
    pub statements: Vec<VerifiedStatement>,
    /// The budget of the downloads the statements were read from: what it took from the
    /// process's pool (`--max-inflight-download-bytes`) is given back once the answer (and
    /// every clone of it) is dropped, after the host has written it for the module.
    #[serde(skip)]
    held: HeldDownloads,
}

/// One verified in-toto statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedStatement {
    /// The attestation layer's digest (policy-controller's `id`).
    pub id: String,
    /// The statement's `predicateType`.
    pub predicate_type: String,
    /// The certificate's subject (keyless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The certificate's OIDC issuer (keyless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The whole statement (`_type`, `subject`, `predicateType`, `predicate`), as signed.
    pub statement: StatementText,
}

/// A statement's JSON text as signed (the DSSE payload's value, whitespace around it left
/// out), sent to the module as it is: a policy reads its numbers as written, and the module
/// refuses one that a 64-bit float would change (its `policy::numbers`, as CUE compares
/// numbers exactly). A `Value` would round `7.0000000000000001` to `7.0` before it could.
/// Layers of one envelope blob share one text (a clone is not a copy).
#[derive(Clone, Debug)]
pub struct StatementText(Arc<RawValue>);

impl Serialize for StatementText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StatementText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|text| Self(Arc::from(text)))
    }
}

impl StatementText {
    /// The text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Whether `other` is this very text, not a copy of it.
    pub fn is_shared_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The statement read as a `Value` (numbers as the nearest f64).
    pub fn value(&self) -> Value {
        // The text was read as JSON when it was made.
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for StatementText {
    fn eq(&self, other: &Self) -> bool {
        self.is_shared_with(other) || self.get() == other.get()
    }
}

impl AttestationsRequest {
    fn into_verification(self) -> Result<VerificationRequest, VerifyError> {
        let annotations = match &self {
            Self::V2Verify(input) | Self::KeyWithHash { request: input, .. } => match input {
                SigstoreVerificationInputV2::SigstorePubKeyVerify { annotations, .. }
                | SigstoreVerificationInputV2::SigstoreKeylessVerify { annotations, .. }
                | SigstoreVerificationInputV2::SigstoreKeylessPrefixVerify { annotations, .. }
                | SigstoreVerificationInputV2::SigstoreGithubActionsVerify { annotations, .. }
                | SigstoreVerificationInputV2::SigstoreCertificateVerify { annotations, .. } => annotations.as_ref(),
            },
            Self::KeylessRegexp(request) => request.annotations.as_ref(),
        };
        if annotations.is_some_and(|a| !a.is_empty()) {
            return Err(VerifyError::InvalidRequest(
                "annotations constrain signature payloads; attestations carry none: send no annotations".to_owned(),
            ));
        }
        // A hash is verified by the key's own check (`constraints::HashedKeyVerifier`, any
        // other request kind refused by `Plan`); a Rekor entry ties a layer to the key with any
        // hash (`rekor::check_verifier`).
        Ok(match self {
            Self::V2Verify(input) => VerificationRequest::V2(input),
            Self::KeylessRegexp(input) => VerificationRequest::KeylessRegexp(input),
            Self::KeyWithHash {
                hash_algorithm,
                request,
            } => VerificationRequest::KeyWithHash {
                hash: hash_algorithm,
                input: request,
            },
        })
    }
}

/// A layer whose envelope signature and evidence hold, with its statement.
#[derive(Debug)]
pub struct AttestationLayer {
    /// The layer as the constraints see it (signed data: the PAE).
    pub trusted: TrustedLayer,
    /// The statement's `predicateType`.
    pub predicate_type: String,
    /// The statement.
    pub statement: StatementText,
}

/// The outcome of checking one attestation layer.
#[derive(Debug, Default)]
pub struct CheckedAttestation {
    /// The layer, when its one envelope signature's evidence holds (at most one entry).
    pub trusted: Vec<AttestationLayer>,
    /// What was wrong with the layer or its signature.
    pub problems: Vec<String>,
}

impl CheckedAttestation {
    fn rejected(problem: String) -> Self {
        Self {
            trusted: Vec::new(),
            problems: vec![problem],
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

/// Checks one layer of the attestation manifest of `image` (`registry/repo@digest`).
pub fn check(
    descriptor: &OciDescriptor,
    data: &[u8],
    image: &str,
    digest: &str,
    trust: Option<&TrustRoot>,
) -> CheckedAttestation {
    if let Some(rejected) = wrong_media_type(descriptor) {
        return rejected;
    }
    let decoded = decode(&descriptor.digest, data, digest);
    check_decoded(descriptor, &decoded, image, digest, trust)
}

/// A layer that is not a DSSE envelope, rejected.
fn wrong_media_type(descriptor: &OciDescriptor) -> Option<CheckedAttestation> {
    (descriptor.media_type != DSSE_MEDIA_TYPE).then(|| {
        CheckedAttestation::rejected(format!(
            "attestation layer has media type {}, not {DSSE_MEDIA_TYPE}",
            descriptor.media_type
        ))
    })
}

/// What one envelope blob holds, read once however many descriptors name its digest: the
/// layers of one blob share its PAE and its statement (`Arc`s), whatever their annotations.
struct Decoded {
    /// SHA-256 of the envelope bytes, hex (the layer digest's).
    envelope_sha256: String,
    /// The PAE the signature covers.
    signed: Arc<[u8]>,
    /// SHA-256 of the statement bytes (the DSSE payload), hex.
    statement_sha256: String,
    /// The statement and its `predicateType`.
    statement: StatementText,
    predicate_type: String,
    /// The envelope's one signature as written, and its bytes (`Err` when it is not base64).
    signature_b64: String,
    signature: Result<Vec<u8>, ()>,
}

/// Reads the envelope blob `data` of the layer `layer_digest` of the attestations of `digest`:
/// everything that does not depend on the descriptor's annotations.
fn decode(layer_digest: &str, data: &[u8], digest: &str) -> Result<Decoded, String> {
    let envelope_sha256 = hex::encode(Sha256::digest(data));
    if layer_digest.strip_prefix("sha256:") != Some(envelope_sha256.as_str()) {
        return Err(format!(
            "attestation layer content has digest sha256:{envelope_sha256}, not {layer_digest}"
        ));
    }
    let envelope: Envelope =
        serde_json::from_slice(data).map_err(|e| format!("attestation layer is not a DSSE envelope: {e}"))?;
    // `cosign attest` writes exactly one signature (as a bundle's envelope must have, `bundle`).
    // More are refused before anything is done per signature: within the layer cap an envelope
    // can list hundreds of thousands, each of which would otherwise be a kept layer holding the
    // PAE and the statement, its Rekor bundle checked again.
    if envelope.signatures.len() > 1 {
        return Err(format!(
            "attestation envelope has {} signatures, not one",
            envelope.signatures.len()
        ));
    }
    serde_json::from_slice(data)
        .map_err(|e| e.to_string())
        .and_then(|document| go_json::read_alike(&document, go_json::ENVELOPE))
        .map_err(|reason| format!("attestation envelope is refused: {reason}"))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "attestation envelope has payloadType {}, not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    let payload = BASE64
        .decode(envelope.payload.as_bytes())
        .map_err(|_| "attestation envelope payload is not base64".to_owned())?;
    let (statement, predicate_type) = read_statement(&payload, digest)?;
    let Some(envelope_signature) = envelope.signatures.into_iter().next() else {
        return Err("attestation envelope has no signature".to_owned());
    };
    let signature = BASE64.decode(envelope_signature.sig.as_bytes()).map_err(|_| ());
    let statement_sha256 = hex::encode(Sha256::digest(&payload));
    let signed: Arc<[u8]> = pae(&envelope.payload_type, &payload).into();
    Ok(Decoded {
        envelope_sha256,
        signed,
        statement_sha256,
        statement,
        predicate_type,
        signature_b64: envelope_signature.sig,
        signature,
    })
}

/// Checks one layer whose blob was read as `decoded`: its annotations' certificate and Rekor
/// bundle against the envelope's signature.
fn check_decoded(
    descriptor: &OciDescriptor,
    decoded: &Result<Decoded, String>,
    image: &str,
    digest: &str,
    trust: Option<&TrustRoot>,
) -> CheckedAttestation {
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(reason) => return CheckedAttestation::rejected(reason.clone()),
    };
    let annotations = descriptor.annotations.as_ref();
    let annotation = |name: &str| annotations.and_then(|a| a.get(name)).map(String::as_str);
    let certificate = match annotation(CERTIFICATE_ANNOTATION).map(certificate_der) {
        None => None,
        Some(Some(der)) => Some(der),
        Some(None) => {
            return CheckedAttestation::rejected(
                "attestation certificate annotation is not a PEM certificate".to_owned(),
            );
        }
    };
    let Ok(signature) = &decoded.signature else {
        return CheckedAttestation::rejected("attestation envelope signature is not base64".to_owned());
    };
    let evidence = Evidence {
        envelope_sha256: &decoded.envelope_sha256,
        statement_sha256: &decoded.statement_sha256,
        signed: &decoded.signed,
        certificate: certificate.as_deref(),
    };
    let (mut trusted, problem) = match trusted_layer(
        &evidence,
        &decoded.signature_b64,
        signature,
        annotation(BUNDLE_ANNOTATION),
        trust,
    ) {
        Ok(checked) => checked,
        Err(reason) => return CheckedAttestation::rejected(reason),
    };
    trusted.layer.simple_signing = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: image.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_owned(),
            },
            type_name: ATTESTATION_TYPE_NAME.to_owned(),
        },
        optional: None,
    };
    trusted.layer.oci_digest = descriptor.digest.clone();
    // The layer shares the blob's PAE and statement: nothing is copied.
    CheckedAttestation {
        trusted: vec![AttestationLayer {
            trusted,
            predicate_type: decoded.predicate_type.clone(),
            statement: decoded.statement.clone(),
        }],
        problems: problem.into_iter().collect(),
    }
}

/// What one attestation layer holds, for the signature, certificate and Rekor checks.
struct Evidence<'a> {
    /// SHA-256 of the envelope blob, exactly as stored, hex.
    envelope_sha256: &'a str,
    /// SHA-256 of the decoded statement bytes (the DSSE payload), hex.
    statement_sha256: &'a str,
    /// The PAE the signature covers.
    signed: &'a Arc<[u8]>,
    /// DER of the layer's certificate.
    certificate: Option<&'a [u8]>,
}

/// The statement and its predicate type, when it is an in-toto statement about `digest`.
fn read_statement(payload: &[u8], digest: &str) -> Result<(StatementText, String), String> {
    let text: Box<RawValue> =
        serde_json::from_slice(payload).map_err(|e| format!("attestation payload is not JSON: {e}"))?;
    let statement: Value =
        serde_json::from_str(text.get()).map_err(|e| format!("attestation payload is not JSON: {e}"))?;
    // serde_json keeps the last of two equal keys; policy-controller hands CUE the payload's
    // bytes, and CUE unifies both values (a conflict when they differ). A statement read two
    // ways is refused, whichever policy language reads it.
    serde_json::from_slice::<UniqueKeys>(payload)
        .map_err(|e| format!("in-toto statement is refused: {e} (read differently by CUE and by JSON readers)"))?;
    go_json::read_alike(&statement, go_json::STATEMENT)
        .map_err(|reason| format!("in-toto statement is refused: {reason}"))?;
    let kind = statement.get("_type").and_then(Value::as_str).unwrap_or_default();
    if !STATEMENT_TYPES.contains(&kind) {
        return Err(format!(
            "attestation payload is not an in-toto statement (_type {kind:?})"
        ));
    }
    let Some(predicate_type) = statement.get("predicateType").and_then(Value::as_str) else {
        return Err("in-toto statement has no predicateType".to_owned());
    };
    // A cosign v3 signature is a `cosign sign` statement in a DSSE envelope: moved into a `.att`
    // layer it is still a signature, and never counts as an attestation (the bundle path skips
    // it before reading, docs/verification.md).
    if predicate_type == COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "in-toto statement of predicate type {COSIGN_SIGN_PREDICATE} is a signature, not an attestation"
        ));
    }
    let Some((algorithm, hex_digest)) = digest.split_once(':') else {
        return Err(format!("image digest {digest} is malformed"));
    };
    let subjects = statement.get("subject").and_then(Value::as_array);
    let names_digest = subjects.into_iter().flatten().any(|subject| {
        subject
            .get("digest")
            .and_then(|d| d.get(algorithm))
            .and_then(Value::as_str)
            == Some(hex_digest)
    });
    if !names_digest {
        return Err(format!("in-toto statement's subject does not name {digest}"));
    }
    Ok((StatementText(text.into()), predicate_type.to_owned()))
}

/// The layer for one envelope signature, once its Rekor bundle (if any) is bound and its
/// certificate (if any) chained; with what made the certificate untrusted.
fn trusted_layer(
    evidence: &Evidence<'_>,
    signature_b64: &str,
    signature: &[u8],
    bundle_json: Option<&str>,
    trust: Option<&TrustRoot>,
) -> Result<(TrustedLayer, Option<String>), String> {
    let rekor_keys = trust.filter(|t| !t.rekor_logs().is_empty());
    let bundle = match (bundle_json, rekor_keys) {
        (Some(bundle), Some(trust)) => Some(rekor::verify_bound_with(bundle, trust, |body| {
            bind_intoto(body, evidence, signature_b64, signature)
        })?),
        // Without Rekor keys the bundle cannot be checked and counts for nothing.
        _ => None,
    };
    let mut problem = None;
    let mut sct = Err("the attestation has no trusted certificate".to_owned());
    let certificate_signature = match (
        evidence.certificate,
        trust.filter(|t| !t.certificate_authorities().is_empty()),
    ) {
        (Some(der), Some(trust)) => match &bundle {
            None => {
                problem = Some("attestation certificate comes without a Rekor bundle".to_owned());
                None
            }
            Some(bound) => match trusted_certificate(der, trust, bound.integrated_time, evidence.signed, signature) {
                Ok((certificate_signature, sct_status)) => {
                    if let Err(reason) = &sct_status {
                        problem = Some(reason.clone());
                    }
                    sct = sct_status;
                    Some(certificate_signature)
                }
                Err(reason) => {
                    problem = Some(reason.replace("signing certificate", "attestation certificate"));
                    None
                }
            },
        },
        _ => None,
    };
    let layer = SignatureLayer {
        simple_signing: SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: String::new(),
                },
                image: Image {
                    docker_manifest_digest: String::new(),
                },
                type_name: String::new(),
            },
            optional: None,
        },
        oci_digest: String::new(),
        certificate_signature,
        signature: Some(signature_b64.to_owned()),
        raw_data: Vec::new(),
        bundle: bundle.as_ref().map(|b| BundleContent::RekorBundle(b.bundle.clone())),
    };
    Ok((
        TrustedLayer {
            layer,
            sct,
            rekor_verifier: bundle.map(|b| b.verifier_spki),
            signed: Arc::clone(evidence.signed),
        },
        problem,
    ))
}

/// Checks that the log entry `body` (base64 JSON) is the `intoto` entry of this envelope and
/// signature; answers the entry's key (DER SubjectPublicKeyInfo).
fn bind_intoto(body: &str, evidence: &Evidence<'_>, signature_b64: &str, signature: &[u8]) -> Result<Vec<u8>, String> {
    let mismatch = |what: &str| format!("Rekor bundle describes another attestation: {what}");
    let body = BASE64
        .decode(body)
        .map_err(|e| format!("Rekor bundle body is not base64: {e}"))?;
    let entry: Value = serde_json::from_slice(&body).map_err(|e| format!("Rekor bundle body is not JSON: {e}"))?;
    let kind = entry["kind"].as_str().unwrap_or_default();
    let version = entry["apiVersion"].as_str().unwrap_or_default();
    if kind != "intoto" || !matches!(version, "0.0.1" | "0.0.2") {
        return Err(format!(
            "Rekor bundle body is a {kind} {version} entry, not an intoto 0.0.1 or 0.0.2 entry"
        ));
    }
    let content = &entry["spec"]["content"];
    let hash_is = |hash: &Value, expected: &str| {
        hash["algorithm"] == "sha256" && hash["value"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(expected))
    };
    if !hash_is(&content["hash"], evidence.envelope_sha256) {
        return Err(mismatch("its hash is not the SHA-256 of this envelope"));
    }
    if !content["payloadHash"].is_null() && !hash_is(&content["payloadHash"], evidence.statement_sha256) {
        return Err(mismatch("its payloadHash is not the SHA-256 of this statement"));
    }
    let key_b64 = if version == "0.0.1" {
        entry["spec"]["publicKey"].as_str()
    } else {
        // Rekor stores each envelope signature base64-encoded once more.
        content["envelope"]["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s["sig"]
                    .as_str()
                    .and_then(|sig| BASE64.decode(sig).ok())
                    .is_some_and(|sig| sig == signature_b64.as_bytes())
            })
            .and_then(|s| s["publicKey"].as_str())
    };
    let key_pem = key_b64
        .and_then(|k| BASE64.decode(k.trim()).ok())
        .ok_or_else(|| mismatch("it records no key for this signature"))?;
    let verifier =
        rekor::pem_to_spki(&key_pem).ok_or_else(|| mismatch("its public key is not a PEM key or certificate"))?;
    rekor::check_verifier(&verifier, evidence.certificate, signature, evidence.signed)
        .map_err(|what| mismatch(&format!("its {what} this envelope's {}", what.object())))?;
    Ok(verifier.spki)
}

/// The attestation layers of one digest, with what was wrong with the others.
#[derive(Debug)]
pub struct AttestationSet {
    /// `registry/repository@sha256:…`
    pub image: String,
    /// Layers whose evidence holds.
    pub layers: Vec<AttestationLayer>,
    /// Why the others were rejected, deduplicated; `None` when there is no attestation.
    pub rejected: Option<Vec<String>>,
}

/// Fetches and checks the attestations of `digest` in `format`: the legacy `.att` layers, then
/// the sigstore bundles attached as referrers (cosign v3's `attest`). Each attestation is
/// capped by `--max-attestation-bytes`, manifests and counts like signatures, and every
/// download of both formats together by one budget of `--max-verification-bytes`: passing it
/// fails the fetch, whatever the format.
pub async fn fetch(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    format: SignatureFormat,
) -> Result<AttestationSet, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let budget = limits.verification_budget(image);
    fetch_within(registry, trust, limits, reference, digest, format, &budget).await
}

/// [`fetch`], every download charged to `budget` (which the caller keeps as long as it holds
/// the attestations: a budget drawing on the process's [`crate::registry::DownloadPool`] gives
/// its bytes back when dropped). A charge the pool cannot give waits for it until the
/// verification's deadline ([`crate::registry::with_pool_deadline`]), then fails the fetch
/// ([`VerifyError::Inflight`]).
pub async fn fetch_within(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    format: SignatureFormat,
    budget: &DownloadBudget,
) -> Result<AttestationSet, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    match format {
        SignatureFormat::Legacy => return fetch_legacy(registry, trust, limits, reference, digest, budget).await,
        SignatureFormat::Bundle => return fetch_bundles(registry, trust, limits, reference, digest, budget).await,
        SignatureFormat::Any => {}
    }
    let legacy = fetch_legacy(registry, trust, limits, reference, digest, budget).await?;
    // Unreadable referrers must not hide valid legacy attestations; the error still explains a
    // failure. A passed budget is no unreadable referrer: it fails the fetch, as it does in
    // either format alone (a statement left unread could be the one a policy denies on).
    let bundles = fetch_bundles(registry, trust, limits, reference, digest, budget)
        .await
        .unwrap_or_else(|e| AttestationSet {
            image: String::new(),
            layers: Vec::new(),
            rejected: Some(vec![format!("sigstore bundles unreadable: {e}")]),
        });
    if budget.exceeded() {
        return Err(VerifyError::download_failed(
            Reading::Attestations(&image),
            budget.over_budget(),
        ));
    }
    let mut layers = legacy.layers;
    layers.extend(bundles.layers);
    let rejected = match (legacy.rejected, bundles.rejected) {
        (None, None) => None,
        (legacy, bundles) => {
            let mut reasons = legacy.unwrap_or_default();
            for reason in bundles.into_iter().flatten() {
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            Some(reasons)
        }
    };
    Ok(AttestationSet {
        image: legacy.image,
        layers,
        rejected,
    })
}

/// The `.att` layers of `digest`, each checked end to end: a descriptor repeating an earlier
/// one (digest, media type and annotations) is that layer and is skipped; descriptors naming one
/// digest with other annotations share its download, PAE and statement, so a manifest holds at
/// most the blob, one PAE and one statement per distinct digest, whatever its descriptors.
async fn fetch_legacy(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    budget: &DownloadBudget,
) -> Result<AttestationSet, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let layer_cap = limits.attestation_layer();
    let blobs = match signatures::tagged_layers(registry, limits, reference, digest, "att", layer_cap, budget).await {
        Ok(Some(blobs)) => blobs,
        Ok(None) => {
            return Ok(AttestationSet {
                image,
                layers: Vec::new(),
                rejected: None,
            });
        }
        Err(e) => return Err(VerifyError::download_failed(Reading::Attestations(&image), e)),
    };
    let docker_reference = format!("{}/{}", reference.registry(), reference.repository());
    let mut layers = Vec::new();
    let mut reasons = Vec::new();
    let mut seen = BTreeSet::new();
    // Each blob read once, by layer digest: descriptors repeating a digest with other
    // annotations share its PAE and statement; exact repeats are skipped altogether.
    let mut decoded: Vec<(&str, Result<Decoded, String>)> = Vec::new();
    for (descriptor, data) in signatures::distinct_layers(&blobs) {
        let checked = match wrong_media_type(descriptor) {
            Some(rejected) => rejected,
            None => {
                let index = match decoded.iter().position(|(read, _)| *read == descriptor.digest) {
                    Some(index) => index,
                    None => {
                        decoded.push((&descriptor.digest, decode(&descriptor.digest, data, digest)));
                        decoded.len() - 1
                    }
                };
                check_decoded(descriptor, &decoded[index].1, &docker_reference, digest, trust)
            }
        };
        for reason in checked.problems {
            if seen.insert(reason.clone()) {
                reasons.push(reason);
            }
        }
        layers.extend(checked.trusted);
    }
    Ok(AttestationSet {
        image,
        layers,
        rejected: Some(reasons),
    })
}

/// The attestation bundles attached to `digest` as referrers (artifact type bundle v0.3), each
/// verified by [`bundle::verify`]; `cosign sign` bundles are skipped (by their predicate type
/// annotation, and by their statement when the annotation is missing, as in cosign's own
/// referrers tag schema index).
async fn fetch_bundles(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    budget: &DownloadBudget,
) -> Result<AttestationSet, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let referrers = signatures::bundle_referrers(registry, limits, reference, digest, BundleKind::Attestations, budget)
        .await
        .map_err(|e| VerifyError::download_failed(Reading::Attestations(&image), e))?;
    let docker_reference = format!("{}/{}", reference.registry(), reference.repository());
    let checked = signatures::check_bundles(&referrers, |descriptor, data| {
        bundle_attestation(&descriptor.digest, data, &docker_reference, digest, trust)
    });
    Ok(AttestationSet {
        image,
        layers: checked.kept,
        rejected: checked.found.then_some(checked.reasons),
    })
}

/// One attestation bundle of `digest`: `Ok(None)` for a `cosign sign` bundle; the second
/// element is what is wrong with its certificate, if anything.
fn bundle_attestation(
    layer_digest: &str,
    data: &[u8],
    docker_reference: &str,
    digest: &str,
    trust: Option<&TrustRoot>,
) -> Result<Option<(AttestationLayer, Option<String>)>, String> {
    let verified = bundle::verify(data, trust).map_err(|e| e.to_string())?;
    let parsed = Statement::parse(&verified.payload_type, &verified.payload)?;
    if parsed.predicate_type == COSIGN_SIGN_PREDICATE {
        return Ok(None);
    }
    let (statement, predicate_type) = read_statement(&verified.payload, digest)?;
    let (trusted, problem) = signatures::trusted_bundle_layer(
        verified,
        layer_digest,
        docker_reference.to_owned(),
        digest,
        ATTESTATION_TYPE_NAME,
        None,
    );
    Ok(Some((
        AttestationLayer {
            trusted,
            predicate_type,
            statement,
        },
        problem,
    )))
}

impl Verifier {
    /// `cluster-image-policy/oci/v1/verify_attestations`: the statements of the image's
    /// attestations signed as `request` demands, with the instant the answer must be
    /// forgotten.
    pub async fn verify_attestations_expiring(
        &self,
        request: AttestationsRequest,
        format: SignatureFormat,
    ) -> Expiring<Result<AttestationsAnswer, VerifyError>> {
        let value = self.verify_attestations_in(request, format).await;
        let ttl = match &value {
            Ok(_) => self.config.success_ttl,
            // Transient (the download pool was full): not kept, the next evaluation asks again.
            Err(error) if error.is_transient() => std::time::Duration::ZERO,
            Err(_) => self.config.failure_ttl,
        };
        Expiring {
            value,
            expires: expiry_after(std::time::Instant::now(), ttl),
        }
    }

    /// [`Verifier::verify_attestations_in`] reading both formats.
    pub async fn verify_attestations(&self, request: AttestationsRequest) -> Result<AttestationsAnswer, VerifyError> {
        self.verify_attestations_in(request, SignatureFormat::Any).await
    }

    /// [`Verifier::verify_attestations_expiring`] without the expiry.
    pub async fn verify_attestations_in(
        &self,
        request: AttestationsRequest,
        format: SignatureFormat,
    ) -> Result<AttestationsAnswer, VerifyError> {
        let request = request.into_verification()?;
        let plan = Plan::from_request(&request)?;
        self.check_trust(plan.trust, plan.require_sct)?;
        let reference = RegistryClient::parse_reference(&plan.image)?;
        let digest = self.resolve(&reference).await?;
        // Kept with the answer (or until the failure is made): the attestations read, several
        // times their bytes once decoded, are held as long as the bytes it took from the
        // process's pool.
        let budget = self.verification_budget(format!("{}/{}@{digest}", reference.registry(), reference.repository()));
        let set = fetch_within(
            &self.registry,
            self.config.trust.as_ref(),
            &self.config.limits,
            &reference,
            &digest,
            format,
            &budget,
        )
        .await?;
        let Some(reasons) = set.rejected else {
            return Err(VerifyError::Unsatisfied(format!(
                "no attestations found for {}",
                set.image
            )));
        };
        let mut statements: Vec<VerifiedStatement> = Vec::new();
        let verified = set
            .layers
            .into_iter()
            .filter(|layer| {
                plan.checks
                    .iter()
                    .all(|check| check.is_satisfied(std::slice::from_ref(&layer.trusted)))
            })
            .map(|layer| {
                let certificate = layer.trusted.layer.certificate_signature.as_ref();
                VerifiedStatement {
                    id: layer.trusted.layer.oci_digest.clone(),
                    predicate_type: layer.predicate_type,
                    subject: certificate.map(|c| match &c.subject {
                        CertificateSubject::Email(v) | CertificateSubject::Uri(v) => v.clone(),
                    }),
                    issuer: certificate.and_then(|c| c.issuer.clone()),
                    statement: layer.statement,
                }
            });
        // Layers of one blob (one `id`) vouched for by one signer are one statement to the
        // policy: it is sent once.
        for statement in verified {
            if !statements.contains(&statement) {
                statements.push(statement);
            }
        }
        if statements.is_empty() {
            let unmet: Vec<String> = plan
                .checks
                .iter()
                .map(|c| c.unmet().replace("signature", "attestation"))
                .collect();
            let mut message = format!("{} of {}", unmet.join("; "), set.image);
            if !reasons.is_empty() {
                message = format!("{message}; {}", reasons.join("; "));
            }
            return Err(VerifyError::Unsatisfied(message));
        }
        Ok(AttestationsAnswer {
            digest,
            statements,
            held: HeldDownloads::from(budget),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
    }

    #[test]
    fn statement_must_name_the_digest() {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "r/a", "digest": {"sha256": "ab"}}],
            "predicate": {},
        });
        let bytes = serde_json::to_vec(&statement).unwrap();
        assert!(read_statement(&bytes, "sha256:ab").is_ok());
        let error = read_statement(&bytes, "sha256:cd").unwrap_err();
        assert_eq!(error, "in-toto statement's subject does not name sha256:cd");
        let mut signature = statement.clone();
        signature["predicateType"] = COSIGN_SIGN_PREDICATE.into();
        let error = read_statement(&serde_json::to_vec(&signature).unwrap(), "sha256:ab").unwrap_err();
        assert!(error.contains("is a signature, not an attestation"), "{error}");
        // Two equal keys, at any depth, with equal or different values.
        for twice in [
            r#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","predicateType":"p","subject":[{"digest":{"sha256":"ab"}}]}"#,
            r#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[{"digest":{"sha256":"ab"}}],"predicate":{"scan":{"result":"fail","result":"pass"}}}"#,
            r#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[{"digest":{"sha256":"ab"}}],"predicate":[{"a":1,"b":2,"a":1}]}"#,
        ] {
            let error = read_statement(twice.as_bytes(), "sha256:ab").unwrap_err();
            assert!(error.contains("appears twice in one object"), "{error}");
        }
        let not_statement = serde_json::to_vec(&serde_json::json!({"_type": "x"})).unwrap();
        assert!(read_statement(&not_statement, "sha256:ab").is_err());
    }

    #[test]
    fn signature_and_attestation_readers_refuse_the_same_statements() {
        let head = r#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"p""#;
        let control = format!(r#"{head},"subject":[{{"digest":{{"sha256":"ab"}}}}]}}"#);
        assert!(read_statement(control.as_bytes(), "sha256:ab").is_ok());
        assert!(Statement::parse(bundle::IN_TOTO_PAYLOAD_TYPE, control.as_bytes()).is_ok());
        for forged in [
            format!(r#"{head},"subject":[{{"digest":{{"sha256":"cd","sha256":"ab"}}}}]}}"#),
            format!(r#"{head},"predicate_type":"q","subject":[{{"digest":{{"sha256":"ab"}}}}]}}"#),
            format!(r#"{head},"type":"x","subject":[{{"digest":{{"sha256":"ab"}}}}]}}"#),
            format!(r#"{head},"subject":[{{"digest":{{"sha256":"ab"}},"media_type":"x"}}]}}"#),
            format!(
                r#"{head},"Subject":[{{"digest":{{"sha256":"cd"}}}}],"subject":[{{"digest":{{"sha256":"ab"}}}}]}}"#
            ),
        ] {
            assert!(read_statement(forged.as_bytes(), "sha256:ab").is_err(), "{forged}");
            assert!(
                Statement::parse(bundle::IN_TOTO_PAYLOAD_TYPE, forged.as_bytes()).is_err(),
                "{forged}"
            );
        }
    }

    #[test]
    fn the_call_carries_one_request_and_an_optional_format() {
        let parse = |json: &str| serde_json::from_str::<AttestationsCall>(json).map(AttestationsCall::into_parts);
        let regexp = r#"{"keyless_regexp":{"image":"r/a:v1","issuer":"i","subject_regexp":".*"}}"#;
        let (_, format) = parse(regexp).expect("parsed").expect("one request");
        assert_eq!(format, SignatureFormat::Any);
        let legacy =
            r#"{"keyless_regexp":{"image":"r/a:v1","issuer":"i","subject_regexp":".*"},"signature_format":"legacy"}"#;
        let (_, format) = parse(legacy).expect("parsed").expect("one request");
        assert_eq!(format, SignatureFormat::Legacy);
        assert!(matches!(
            parse("{}").expect("parsed"),
            Err(VerifyError::InvalidRequest(_))
        ));
        assert!(parse(r#"{"signature_format":"other"}"#).is_err());
        assert!(parse(r#"{"unknown":1}"#).is_err());
    }

    /// `verify_attestations` refuses a `hash_algorithm` (a module never gets attestations
    /// verified with another hash than it asked); `verify_attestations_with_hash` requires one
    /// of policy-controller's names beside a key's request, and verifies with it.
    #[test]
    fn a_hash_is_read_by_verify_attestations_with_hash_only() {
        let key = r#"{"type":"SigstorePubKeyVerify","image":"r/a:v1","pub_keys":["k"],"annotations":null}"#;
        let with = |extra: &str| format!(r#"{{"v2_verify":{key}{extra}}}"#);
        let plain = |json: &str| serde_json::from_str::<AttestationsCall>(json).map(AttestationsCall::into_parts);
        assert!(matches!(
            plain(&with("")),
            Ok(Ok((AttestationsRequest::V2Verify(_), _)))
        ));
        assert!(plain(&with(r#","hash_algorithm":"sha256""#)).is_err());
        let hashed =
            |json: &str| serde_json::from_str::<AttestationsHashCall>(json).map(AttestationsHashCall::into_parts);
        let (request, format) =
            hashed(&with(r#","hash_algorithm":"sha384","signature_format":"bundle""#)).expect("read");
        assert_eq!(format, SignatureFormat::Bundle);
        let AttestationsRequest::KeyWithHash { hash_algorithm, .. } = request else {
            panic!("{request:?}");
        };
        assert_eq!(hash_algorithm, HashAlgorithm::Sha384);
        assert!(matches!(
            request.into_verification(),
            Ok(VerificationRequest::KeyWithHash {
                hash: HashAlgorithm::Sha384,
                input: SigstoreVerificationInputV2::SigstorePubKeyVerify { .. },
            })
        ));
        let (_, format) = hashed(&with(r#","hash_algorithm":"sha224""#)).expect("read");
        assert_eq!(format, SignatureFormat::Any);
        for refused in [
            with(""),
            with(r#","hash_algorithm":"md5""#),
            with(r#","hash_algorithm":"SHA256""#),
            with(r#","hash_algorithm":"sha256","unknown":1"#),
            r#"{"keyless_regexp":{"image":"r/a:v1","issuer":"i","subject_regexp":".*"},"hash_algorithm":"sha256"}"#
                .to_owned(),
            // Inside the key's request: a field it does not read (the hash put there would be
            // dropped), or a keyless request (found by the feature's review).
            r#"{"v2_verify":{"type":"SigstorePubKeyVerify","image":"r/a:v1","pub_keys":["k"],"annotations":null,"hash_algorithm":"sha256"},"hash_algorithm":"sha384"}"#
                .to_owned(),
            r#"{"v2_verify":{"type":"SigstoreKeylessVerify","image":"r/a:v1","keyless":[],"annotations":null},"hash_algorithm":"sha384"}"#
                .to_owned(),
        ] {
            assert!(hashed(&refused).is_err(), "{refused}");
        }
        // Annotations absent or given are read.
        let (request, _) = hashed(
            r#"{"v2_verify":{"type":"SigstorePubKeyVerify","image":"r/a:v1","pub_keys":["k"],"annotations":{"a":"b"}},"hash_algorithm":"sha384"}"#,
        )
        .expect("read");
        assert!(matches!(
            request,
            AttestationsRequest::KeyWithHash {
                request: SigstoreVerificationInputV2::SigstorePubKeyVerify {
                    annotations: Some(_),
                    ..
                },
                ..
            }
        ));
        assert!(
            hashed(r#"{"v2_verify":{"type":"SigstorePubKeyVerify","image":"r/a:v1","pub_keys":["k"]},"hash_algorithm":"sha384"}"#)
                .is_ok()
        );
    }

    #[test]
    fn annotations_are_refused() {
        let request = AttestationsRequest::KeylessRegexp(KeylessRegexpRequest {
            annotations: Some([("a".to_owned(), "b".to_owned())].into()),
            ..KeylessRegexpRequest::default()
        });
        assert!(matches!(
            request.into_verification(),
            Err(VerifyError::InvalidRequest(_))
        ));
    }
}
