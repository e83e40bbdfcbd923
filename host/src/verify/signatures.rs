//! The trusted cosign signature layers of one image digest.
//!
//! The signature manifest `repo:sha256-<hex>.sig` and its layers are downloaded by our own
//! registry client, every download capped in size and count and every round trip bounded in
//! time (sigstore-rs' client has no timeouts nor caps). Each layer is then checked end to end
//! in [`super::layers`]; what was wrong with the others is kept to explain a failure.
//!
//! Only the legacy `.sig` format is read: cosign v3's sigstore bundles stored as OCI referrers
//! are not (see docs/verification.md).

use std::collections::BTreeSet;
use std::sync::Arc;

use oci_client::Reference;

use super::VerifyError;
use super::layers::{self, TrustedLayer};
use crate::registry::{BoundedError, DownloadLimits, RegistryClient};
use crate::trust::TrustRoot;

/// The signatures of one image digest.
#[derive(Debug)]
pub struct SignatureSet {
    /// `registry/repository@sha256:…`
    pub image: String,
    /// Layers whose signature and evidence hold.
    pub layers: Vec<TrustedLayer>,
    /// What was found beside them.
    pub explanation: Explanation,
}

/// What was found in the raw signature manifest.
#[derive(Clone, Debug)]
pub enum Explanation {
    /// There is no signature manifest, or it has no layer.
    NoSignatures,
    /// Why each rejected layer (or certificate) was rejected, deduplicated, in layer order.
    Rejected(Vec<String>),
}

/// Fetches and checks the signature layers of `digest`.
pub async fn fetch(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
) -> Result<Arc<SignatureSet>, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let tag = format!(
        "{}/{}:{}.sig",
        reference.registry(),
        reference.repository(),
        digest.replace(':', "-")
    );
    let signature_ref = RegistryClient::parse_reference(&tag)?;
    let no_signatures = |image: String| SignatureSet {
        image,
        layers: Vec::new(),
        explanation: Explanation::NoSignatures,
    };
    let (manifest, blobs) = match registry.capped_manifest_and_layers(&signature_ref, limits).await {
        Ok(found) => found,
        Err(BoundedError::Registry(e)) if e.is_not_found() => return Ok(Arc::new(no_signatures(image))),
        Err(BoundedError::Registry(e)) => return Err(VerifyError::Registry(e)),
        Err(over @ BoundedError::OverCap { .. }) => {
            return Err(VerifyError::Signatures {
                image,
                reason: over.to_string(),
            });
        }
    };
    if manifest.layers.is_empty() {
        return Ok(Arc::new(no_signatures(image)));
    }
    let mut trusted = Vec::new();
    let mut reasons = Vec::new();
    let mut seen = BTreeSet::new();
    for (descriptor, data) in &blobs {
        let checked = layers::check(descriptor, data, digest, trust);
        if let Some(reason) = checked.problem
            && seen.insert(reason.clone())
        {
            reasons.push(reason);
        }
        trusted.extend(checked.trusted);
    }
    Ok(Arc::new(SignatureSet {
        image,
        layers: trusted,
        explanation: Explanation::Rejected(reasons),
    }))
}
