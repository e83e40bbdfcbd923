//! The trusted cosign signature layers of one image digest, fetched with sigstore-rs.
//!
//! sigstore-rs reads `repo:sha256-<hex>.sig` (and OCI referrers), keeps the layers whose payload
//! names the digest, whose Rekor bundle verifies against the trust root and (for certificates)
//! whose chain leads to a Fulcio CA; everything else is dropped silently. When that leaves the
//! user without an answer, [`explain`] fetches the raw signature manifest and says what was
//! wrong with each layer.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;
use sigstore::cosign::{Client, ClientBuilder, CosignCapabilities, SignatureLayer};
use sigstore::registry::OciReference;
use tokio::sync::OnceCell;

use super::VerifyError;
use crate::registry::{RegistryClient, RegistryError};
use crate::trust::TrustRoot;

const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Requests sigstore-rs makes to collect signatures: digest check, `.sig` manifest (twice),
/// its blobs, referrers. Bounds the whole fetch at this many registry timeouts.
const SIGNATURE_FETCH_ROUND_TRIPS: u32 = 6;

/// The signatures of one image digest.
pub struct SignatureSet {
    /// `registry/repository@sha256:…`
    pub image: String,
    /// The verified manifest digest.
    pub digest: String,
    /// Layers sigstore-rs trusts.
    pub layers: Vec<SignatureLayer>,
    explanation: OnceCell<Explanation>,
}

/// What was found in the raw signature manifest.
#[derive(Clone, Debug)]
pub enum Explanation {
    /// There is no signature manifest, or it has no layer.
    NoSignatures,
    /// Why each rejected layer was rejected (deduplicated, in layer order).
    Rejected(Vec<String>),
    /// The signature manifest could not be read.
    Unavailable(RegistryError),
}

impl SignatureSet {
    /// Why layers are missing, computed once per set.
    pub async fn explanation(&self, registry: &RegistryClient, trust: Option<&TrustRoot>) -> &Explanation {
        self.explanation
            .get_or_init(|| Box::pin(explain(registry, trust, &self.image, &self.digest)))
            .await
    }
}

/// Idle sigstore-rs clients kept between fetches: building one (TLS setup, trust material)
/// costs milliseconds, and a reused one keeps its connections and registry tokens.
#[derive(Default)]
pub struct CosignClients {
    idle: Mutex<Vec<Client>>,
}

/// Idle clients kept at most; more only exist while fetches run concurrently.
const MAX_IDLE_CLIENTS: usize = 8;

impl CosignClients {
    fn take(&self, registry: &RegistryClient, trust: Option<&TrustRoot>) -> Result<Client, VerifyError> {
        if let Some(client) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(client);
        }
        let mut builder = ClientBuilder::default().with_oci_client_config(registry.sigstore_config());
        if let Some(trust) = trust {
            builder = builder
                .with_trust_repository(trust)
                .map_err(|e| VerifyError::Trust(e.to_string()))?;
        }
        builder.build().map_err(|e| VerifyError::Trust(e.to_string()))
    }

    fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_CLIENTS {
            idle.push(client);
        }
    }
}

/// Fetches the trusted signature layers of `digest_image` (a digest reference).
pub async fn fetch(
    clients: &CosignClients,
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    reference: &Reference,
    digest: &str,
) -> Result<Arc<SignatureSet>, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let source: OciReference = image
        .parse()
        .map_err(|e| VerifyError::InvalidRequest(format!("invalid image reference {image}: {e}")))?;
    let mut client = clients.take(registry, trust)?;
    let auth = sigstore::registry::Auth::from(&registry.auth_for(reference));
    let limit = registry.timeout().saturating_mul(SIGNATURE_FETCH_ROUND_TRIPS);
    let layers = match tokio::time::timeout(limit, client.trusted_signature_layers(&auth, &source)).await {
        Ok(Ok(layers)) => {
            clients.give_back(client);
            layers
        }
        Ok(Err(e)) => {
            // When the registry is at fault, say which one and how.
            let digest_ref = Reference::with_digest(
                reference.registry().to_string(),
                reference.repository().to_string(),
                digest.to_string(),
            );
            registry.digest_of(&digest_ref).await?;
            return Err(VerifyError::Signatures {
                image,
                reason: e.to_string(),
            });
        }
        Err(_) => {
            return Err(VerifyError::Registry(RegistryError::Timeout {
                registry: reference.resolve_registry().to_string(),
                after: registry.timeout(),
            }));
        }
    };
    Ok(Arc::new(SignatureSet {
        image,
        digest: digest.to_string(),
        layers,
        explanation: OnceCell::new(),
    }))
}

#[derive(Deserialize)]
struct PayloadDoc {
    critical: CriticalDoc,
}

#[derive(Deserialize)]
struct CriticalDoc {
    image: ImageDoc,
}

#[derive(Deserialize)]
struct ImageDoc {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RekorBundleDoc {
    signed_entry_timestamp: String,
    payload: RekorPayloadDoc,
}

/// Field order is the canonical (sorted) JSON order Rekor signs.
#[derive(Deserialize, serde::Serialize)]
struct RekorPayloadDoc {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    #[serde(rename = "logIndex")]
    log_index: i64,
}

/// Reads the raw signature manifest of `image` and says why its layers are not trusted.
async fn explain(registry: &RegistryClient, trust: Option<&TrustRoot>, image: &str, digest: &str) -> Explanation {
    let Some((repository, _)) = image.rsplit_once('@') else {
        return Explanation::Rejected(Vec::new());
    };
    let tag = format!("{repository}:{}.sig", digest.replace(':', "-"));
    let reference = match RegistryClient::parse_reference(&tag) {
        Ok(reference) => reference,
        Err(e) => return Explanation::Unavailable(e),
    };
    let (manifest, blobs) = match registry.image_manifest_and_blobs(&reference).await {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Explanation::NoSignatures,
        Err(e) => return Explanation::Unavailable(e),
    };
    if manifest.layers.is_empty() {
        return Explanation::NoSignatures;
    }
    let mut reasons: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for (descriptor, data) in &blobs {
        if let Some(reason) = layer_problem(descriptor, data, digest, trust)
            && seen.insert(reason.clone())
        {
            reasons.push(reason);
        }
    }
    Explanation::Rejected(reasons)
}

/// Why sigstore-rs would not trust this layer, if it can be told from the outside.
fn layer_problem(descriptor: &OciDescriptor, data: &[u8], digest: &str, trust: Option<&TrustRoot>) -> Option<String> {
    if descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Some(format!(
            "signature layer has media type {}, not {SIMPLE_SIGNING_MEDIA_TYPE}",
            descriptor.media_type
        ));
    }
    let payload: PayloadDoc = match serde_json::from_slice(data) {
        Ok(payload) => payload,
        Err(e) => return Some(format!("signature payload is not a simple-signing document: {e}")),
    };
    let signed = payload.critical.image.docker_manifest_digest;
    if signed != digest {
        return Some(format!("signature payload is for digest {signed}, not {digest}"));
    }
    let annotations = descriptor.annotations.clone().unwrap_or_default();
    if !annotations.contains_key(SIGNATURE_ANNOTATION) {
        return Some("signature layer has no signature annotation".to_string());
    }
    let trust = trust?;
    let integrated_time = match annotations.get(BUNDLE_ANNOTATION) {
        Some(bundle) if !trust.rekor_public_keys().is_empty() => match verify_rekor_bundle(bundle, trust) {
            Ok(time) => Some(time),
            Err(reason) => return Some(reason),
        },
        _ => None,
    };
    let certificate = annotations.get(CERTIFICATE_ANNOTATION)?;
    if trust.fulcio_certificates().is_empty() {
        return None;
    }
    let Some(time) = integrated_time else {
        return Some("signing certificate comes without a Rekor bundle".to_string());
    };
    certificate_problem(certificate, trust, time)
}

/// Checks the SET of a cosign Rekor bundle; answers the integrated time.
fn verify_rekor_bundle(bundle: &str, trust: &TrustRoot) -> Result<i64, String> {
    let bundle: RekorBundleDoc = serde_json::from_str(bundle).map_err(|e| format!("Rekor bundle is malformed: {e}"))?;
    let Some(key) = trust.rekor_public_keys().get(&bundle.payload.log_id) else {
        return Err(format!(
            "Rekor bundle names log {}, which is not in the trust root",
            bundle.payload.log_id
        ));
    };
    let key = sigstore::crypto::CosignVerificationKey::try_from_der(key)
        .map_err(|e| format!("Rekor key of the trust root is unusable: {e}"))?;
    let canonical = serde_json::to_vec(&bundle.payload).map_err(|e| format!("Rekor bundle is malformed: {e}"))?;
    key.verify_signature(
        sigstore::crypto::Signature::Base64Encoded(bundle.signed_entry_timestamp.as_bytes()),
        &canonical,
    )
    .map_err(|_| "Rekor bundle is not signed by the trusted Rekor key".to_string())?;
    Ok(bundle.payload.integrated_time)
}

/// Whether the PEM certificate chains to the trust root's Fulcio CAs at `time`.
fn certificate_problem(certificate_pem: &str, trust: &TrustRoot, time: i64) -> Option<String> {
    let der = match CertificateDer::from_pem_slice(certificate_pem.as_bytes()) {
        Ok(der) => der,
        Err(_) => {
            // cosign stores the certificate PEM; tolerate base64 of the PEM too.
            let decoded = BASE64.decode(certificate_pem.trim()).ok()?;
            CertificateDer::from_pem_slice(&decoded).ok()?
        }
    };
    let roots: Vec<CertificateDer<'_>> = trust
        .fulcio_certificates()
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    match super::certificate::chains_to(&der, &roots, time) {
        Ok(()) => None,
        Err(reason) => Some(format!(
            "signing certificate is not trusted by the Fulcio CAs of the trust root: {reason}"
        )),
    }
}
