//! The trusted cosign signature layers of one image digest.
//!
//! The signature manifest `repo:sha256-<hex>.sig` and its layers are downloaded by our own
//! registry client, every download capped in size and count and every round trip bounded in
//! time (sigstore-rs' client has no timeouts nor caps). Each layer is then checked end to end
//! in [`super::layers`]; what was wrong with the others is kept to explain a failure.
//!
//! cosign v3's sigstore bundles, attached as OCI referrers (the referrers API, or the
//! `sha256-<hex>` referrers tag schema index), are read too unless the request asks for the
//! legacy format only ([`super::SignatureFormat`]): each is verified by [`super::bundle`], must
//! be a `cosign sign` statement whose subject is the image digest, and becomes a
//! [`TrustedLayer`] whose signed bytes are the DSSE pre-authentication encoding, so that the
//! same constraints apply to both formats.

use std::collections::BTreeSet;
use std::sync::Arc;

use oci_client::Reference;
use oci_client::manifest::OciDescriptor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sigstore::cosign::SignatureLayer;
use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::payload::simple_signing::{Critical, Identity, Image, Optional, SimpleSigning};

use super::bundle::{
    self, BUNDLE_MEDIA_TYPE_V03, COSIGN_SIGN_PREDICATE, PREDICATE_TYPE_ANNOTATION, Signer, Statement, VerifiedBundle,
};
use super::error::Reading;
use super::layers::{self, TrustedLayer};
use super::{SignatureFormat, VerifyError};
use crate::registry::{
    BoundedError, DownloadBudget, DownloadLimits, DownloadPool, LayerCap, Referrer, Referrers, RegistryClient,
};
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
    /// The budget of the downloads this set was read from, kept with it: what it took from the
    /// process's [`DownloadPool`] is given back when the set is dropped (by the last evaluation
    /// using it, or by the cache of the evaluation window), not while its layers are still held.
    _held: HeldDownloads,
}

/// The [`DownloadBudget`] of a verification, kept with what was read under it (a
/// [`SignatureSet`], an attestations answer and its clones): what the budget took from the
/// process's [`DownloadPool`] is given back when the last of them is dropped. Not part of what
/// they say: every two are equal.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeldDownloads {
    _budget: Option<Arc<DownloadBudget>>,
}

impl From<DownloadBudget> for HeldDownloads {
    fn from(budget: DownloadBudget) -> Self {
        Self {
            _budget: Some(Arc::new(budget)),
        }
    }
}

impl PartialEq for HeldDownloads {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What was found in the raw signature manifest.
#[derive(Clone, Debug)]
pub enum Explanation {
    /// There is no signature manifest, or it has no layer.
    NoSignatures,
    /// Why each rejected layer (or certificate) was rejected, deduplicated, in layer order.
    Rejected(Vec<String>),
}

/// Fetches and checks the signatures of `digest` in `format`: the legacy `.sig` layers first,
/// then the bundles attached as referrers. Every download of both shares one budget of
/// `limits.max_verification_bytes`: passing it fails the fetch, whatever the format. The
/// budget draws on `pool` (`--max-inflight-download-bytes`) past its allowance, and is kept
/// with the set: a charge the pool cannot give waits for it until the verification's deadline
/// ([`crate::registry::with_pool_deadline`]), then fails the fetch ([`VerifyError::Inflight`]).
/// The signatures and the attestations of one digest are fetched apart (a call each, cached
/// apart), each within a budget of its own.
pub async fn fetch(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    pool: &Arc<DownloadPool>,
    reference: &Reference,
    digest: &str,
    format: SignatureFormat,
) -> Result<Arc<SignatureSet>, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let budget = limits.verification_budget_in(pool, image.clone());
    let legacy = match format {
        SignatureFormat::Bundle => None,
        _ => Some(fetch_legacy(registry, trust, limits, reference, digest, &budget).await?),
    };
    let bundles = match format {
        SignatureFormat::Legacy => None,
        SignatureFormat::Bundle => Some(fetch_bundles(registry, trust, limits, reference, digest, &budget).await?),
        // Both formats: unreadable referrers must not hide valid legacy signatures; the error
        // still explains a failure. A passed budget is no unreadable referrer: it fails the
        // fetch (below), as it does in either format alone.
        SignatureFormat::Any => Some(
            fetch_bundles(registry, trust, limits, reference, digest, &budget)
                .await
                .unwrap_or_else(|e| SignatureSet {
                    image: String::new(),
                    layers: Vec::new(),
                    explanation: Explanation::Rejected(vec![format!("sigstore bundles unreadable: {e}")]),
                    _held: HeldDownloads::default(),
                }),
        ),
    };
    if budget.exceeded() {
        return Err(VerifyError::download_failed(
            Reading::Signatures(&image),
            budget.over_budget(),
        ));
    }
    let mut layers = Vec::new();
    let mut reasons = Vec::new();
    let mut found = false;
    for set in [legacy, bundles].into_iter().flatten() {
        if let Explanation::Rejected(rejected) = set.explanation {
            found = true;
            for reason in rejected {
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
        }
        layers.extend(set.layers);
    }
    Ok(Arc::new(SignatureSet {
        image,
        layers,
        explanation: if found {
            Explanation::Rejected(reasons)
        } else {
            Explanation::NoSignatures
        },
        _held: HeldDownloads::from(budget),
    }))
}

/// The sigstore bundles attached to `digest` as referrers, each checked end to end.
async fn fetch_bundles(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    budget: &DownloadBudget,
) -> Result<SignatureSet, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let referrers = match bundle_referrers(registry, limits, reference, digest, BundleKind::Signatures, budget).await {
        Ok(found) => found,
        Err(error) => return Err(VerifyError::download_failed(Reading::Signatures(&image), error)),
    };
    if referrers.artifacts.is_empty() && referrers.unreadable.is_empty() {
        return Ok(SignatureSet {
            image,
            layers: Vec::new(),
            explanation: Explanation::NoSignatures,
            _held: HeldDownloads::default(),
        });
    }
    let checked = check_bundles(&referrers, |descriptor, data| {
        bundle_layer(&descriptor.digest, data, reference, digest, trust)
    });
    Ok(SignatureSet {
        image,
        layers: checked.kept,
        explanation: Explanation::Rejected(checked.reasons),
        _held: HeldDownloads::default(),
    })
}

/// Which bundles of an image are wanted: they share the artifact type, and cosign names the
/// predicate in the referrer's annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BundleKind {
    /// `cosign sign` bundles (capped as signature layers).
    Signatures,
    /// Every other predicate (capped as attestations).
    Attestations,
}

/// The bundle referrers of `digest` of `kind`, each capped as its kind, all of them charged to
/// `budget`; referrers without the predicate annotation are kept (cosign's tag schema index may
/// drop it): their statement tells.
pub(crate) async fn bundle_referrers(
    registry: &RegistryClient,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    kind: BundleKind,
    budget: &DownloadBudget,
) -> Result<Referrers, BoundedError> {
    let keep = |referrer: &Referrer| {
        referrer
            .annotations
            .as_ref()
            .and_then(|a| a.get(PREDICATE_TYPE_ANNOTATION))
            .is_none_or(|predicate| (predicate == COSIGN_SIGN_PREDICATE) == (kind == BundleKind::Signatures))
    };
    let cap = match kind {
        BundleKind::Signatures => limits.signature_layer(),
        BundleKind::Attestations => limits.attestation_layer(),
    };
    registry
        .capped_referrers_within(reference, digest, BUNDLE_MEDIA_TYPE_V03, &keep, limits, cap, budget)
        .await
}

/// What [`check_bundles`] kept and why it rejected the rest.
pub(crate) struct CheckedBundles<T> {
    /// The bundles `check` kept.
    pub(crate) kept: Vec<T>,
    /// Why unreadable or rejected bundles were, deduplicated, in order.
    pub(crate) reasons: Vec<String>,
    /// Whether any bundle was of the wanted kind (kept, rejected or unreadable).
    pub(crate) found: bool,
}

/// Each bundle of `referrers` through `check`: `Ok(None)` for a bundle of another kind, `Ok(Some(
/// (item, problem)))` for one kept (with what is wrong with its certificate), `Err` for one
/// rejected.
pub(crate) fn check_bundles<T>(
    referrers: &Referrers,
    mut check: impl FnMut(&OciDescriptor, &[u8]) -> Result<Option<(T, Option<String>)>, String>,
) -> CheckedBundles<T> {
    let mut checked = CheckedBundles {
        kept: Vec::new(),
        reasons: referrers
            .unreadable
            .iter()
            .map(|(_, reason)| format!("sigstore bundle {reason}"))
            .collect(),
        found: !referrers.unreadable.is_empty(),
    };
    // Referrers naming one bundle layer (one digest, hence one blob) are one bundle: it is
    // verified once and kept once, however many referrers list it.
    let mut checked_layers = BTreeSet::new();
    for (referrer, descriptor, data) in &referrers.artifacts {
        if !checked_layers.insert(descriptor.digest.as_str()) {
            continue;
        }
        let problem = match check(descriptor, data) {
            Ok(None) => continue,
            Ok(Some((item, problem))) => {
                checked.kept.push(item);
                problem
            }
            Err(reason) => Some(format!("sigstore bundle {}: {reason}", referrer.digest)),
        };
        checked.found = true;
        if let Some(problem) = problem
            && !checked.reasons.contains(&problem)
        {
            checked.reasons.push(problem);
        }
    }
    checked
}

/// One bundle as a trusted layer of `digest`: `Ok(None)` for a bundle that is not a signature
/// (an attestation); the second element is what is wrong with its certificate, if anything.
fn bundle_layer(
    layer_digest: &str,
    data: &[u8],
    reference: &Reference,
    digest: &str,
    trust: Option<&TrustRoot>,
) -> Result<Option<(TrustedLayer, Option<String>)>, String> {
    let verified = bundle::verify(data, trust).map_err(|e| e.to_string())?;
    let statement = Statement::parse(&verified.payload_type, &verified.payload)?;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Ok(None);
    }
    let subject = statement.subject_for(digest).ok_or_else(|| {
        let named: Vec<String> = statement
            .subject
            .iter()
            .filter_map(|s| s.digest.get("sha256").map(|hex| format!("sha256:{hex}")))
            .collect();
        format!("it signs {}, not {digest}", named.join(", "))
    })?;
    let optional = subject.annotations.as_ref().map(|annotations| Optional {
        creator: None,
        timestamp: None,
        extra: annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    });
    let docker_reference = format!("{}/{}", reference.registry(), reference.repository());
    Ok(Some(trusted_bundle_layer(
        verified,
        layer_digest,
        docker_reference,
        digest,
        COSIGN_SIGN_PREDICATE,
        optional,
    )))
}

/// A verified bundle of `digest` as the layer the constraints check (signed bytes: the PAE;
/// evidence: its bound log entry and trusted certificate), with what is wrong with its
/// certificate, if anything. Signatures and attestations share it.
pub(crate) fn trusted_bundle_layer(
    verified: VerifiedBundle,
    layer_digest: &str,
    docker_reference: String,
    digest: &str,
    type_name: &str,
    optional: Option<Optional>,
) -> (TrustedLayer, Option<String>) {
    let signature = BASE64.encode(&verified.signature);
    let signed: Arc<[u8]> = verified.signed_bytes().into();
    let rekor_verifier = verified.tlog.as_ref().map(|t| t.verifier_spki.clone());
    let bundle = verified.tlog.map(|t| BundleContent::SigstoreBundle(t.entry));
    let (certificate_signature, sct, problem) = match verified.signer {
        Signer::Key { .. } => (None, Err("the signature has no trusted certificate".to_string()), None),
        Signer::Certificate {
            trusted, sct, problem, ..
        } => (trusted.map(|identity| *identity), sct, problem),
    };
    let layer = SignatureLayer {
        simple_signing: SimpleSigning {
            critical: Critical {
                identity: Identity { docker_reference },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                type_name: type_name.to_string(),
            },
            optional,
        },
        oci_digest: layer_digest.to_string(),
        certificate_signature,
        signature: Some(signature),
        raw_data: Vec::new(),
        bundle,
    };
    (
        TrustedLayer {
            layer,
            sct,
            rekor_verifier,
            signed,
        },
        problem,
    )
}

/// The legacy `.sig` layers of `digest`, each checked end to end.
async fn fetch_legacy(
    registry: &RegistryClient,
    trust: Option<&TrustRoot>,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    budget: &DownloadBudget,
) -> Result<SignatureSet, VerifyError> {
    let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
    let layer_cap = limits.signature_layer();
    let blobs = match tagged_layers(registry, limits, reference, digest, "sig", layer_cap, budget).await {
        Ok(Some(blobs)) => blobs,
        Ok(None) => {
            return Ok(SignatureSet {
                image,
                layers: Vec::new(),
                explanation: Explanation::NoSignatures,
                _held: HeldDownloads::default(),
            });
        }
        Err(error) => return Err(VerifyError::download_failed(Reading::Signatures(&image), error)),
    };
    let mut trusted = Vec::new();
    let mut reasons = Vec::new();
    let mut seen = BTreeSet::new();
    for (descriptor, data) in distinct_layers(&blobs) {
        let checked = layers::check(descriptor, data, digest, trust);
        if let Some(reason) = checked.problem
            && seen.insert(reason.clone())
        {
            reasons.push(reason);
        }
        trusted.extend(checked.trusted);
    }
    Ok(SignatureSet {
        image,
        layers: trusted,
        explanation: Explanation::Rejected(reasons),
        _held: HeldDownloads::default(),
    })
}

/// The layers of `blobs` less exact repeats: a descriptor with the digest, media type and
/// annotations of an earlier one is the same layer, checked and kept once (cosign's own dupe
/// detection, `pkg/cosign/remote` `dd.Find`, takes a layer with an attached layer's digest,
/// media type and annotations for that layer and does not attach it again). Descriptors
/// repeating a digest with other annotations are other layers, sharing the blob.
pub(crate) fn distinct_layers(
    blobs: &[(OciDescriptor, Arc<[u8]>)],
) -> impl Iterator<Item = &(OciDescriptor, Arc<[u8]>)> {
    let mut seen: Vec<&OciDescriptor> = Vec::new();
    blobs.iter().filter(move |(descriptor, _)| {
        let repeat = seen.iter().any(|earlier| {
            earlier.digest == descriptor.digest
                && earlier.media_type == descriptor.media_type
                && earlier.annotations == descriptor.annotations
        });
        if !repeat {
            seen.push(descriptor);
        }
        !repeat
    })
}

/// The layers of cosign's manifest `<repo>:sha256-<hex>.<suffix>` (`sig`, `att`) of `digest`,
/// each capped by `layer_cap`, all of them charged to `budget`: `None` when there is no such
/// manifest or it has no layer. Descriptors naming one digest share one copy of its bytes.
pub(crate) async fn tagged_layers(
    registry: &RegistryClient,
    limits: &DownloadLimits,
    reference: &Reference,
    digest: &str,
    suffix: &str,
    layer_cap: LayerCap,
    budget: &DownloadBudget,
) -> Result<Option<Vec<(OciDescriptor, Arc<[u8]>)>>, BoundedError> {
    let tag = format!(
        "{}/{}:{}.{suffix}",
        reference.registry(),
        reference.repository(),
        digest.replace(':', "-")
    );
    let tagged = RegistryClient::parse_reference(&tag)?;
    match registry
        .capped_manifest_and_layers_within(&tagged, limits, layer_cap, budget)
        .await
    {
        Ok((manifest, _)) if manifest.layers.is_empty() => Ok(None),
        Ok((_, blobs)) => Ok(Some(
            blobs
                .into_iter()
                .map(|(descriptor, data)| (descriptor, Arc::<[u8]>::from(data)))
                .collect(),
        )),
        Err(BoundedError::Registry(e)) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sha2::{Digest as _, Sha256};

    use super::*;

    const IMAGE_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn descriptor(media_type: &str, data: &[u8], annotations: &[(&str, &str)]) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_owned(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(data))),
            size: data.len() as i64,
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..OciDescriptor::default()
        }
    }

    /// A simple-signing payload about `IMAGE_DIGEST` (a layer is kept whatever its signature:
    /// the constraints judge it).
    fn payload() -> Arc<[u8]> {
        serde_json::to_vec(&serde_json::json!({
            "critical": {
                "identity": {"docker-reference": "registry.example/team/app"},
                "image": {"docker-manifest-digest": IMAGE_DIGEST},
                "type": "cosign container image signature",
            },
            "optional": null,
        }))
        .expect("json")
        .into()
    }

    #[test]
    fn a_repeated_sig_descriptor_is_checked_once_and_its_blob_never_copied() {
        let data = payload();
        let repeated = descriptor(
            layers::SIMPLE_SIGNING_MEDIA_TYPE,
            &data,
            &[(layers::SIGNATURE_ANNOTATION, "AAAA")],
        );
        // The layer cap's worth of one descriptor: one layer.
        let blobs: Vec<_> = (0..50).map(|_| (repeated.clone(), Arc::clone(&data))).collect();
        assert_eq!(distinct_layers(&blobs).count(), 1);
        // One digest, other annotations (or another media type): other layers, each kept, none
        // holding a copy of the blob.
        let mut blobs: Vec<_> = (0..50)
            .map(|i| {
                let signature = BASE64.encode(format!("signature {i}"));
                let descriptor = descriptor(
                    layers::SIMPLE_SIGNING_MEDIA_TYPE,
                    &data,
                    &[(layers::SIGNATURE_ANNOTATION, &signature)],
                );
                (descriptor, Arc::clone(&data))
            })
            .collect();
        blobs.push((
            descriptor("other", &data, &[(layers::SIGNATURE_ANNOTATION, "AAAA")]),
            Arc::clone(&data),
        ));
        blobs.push((repeated, Arc::clone(&data)));
        assert_eq!(distinct_layers(&blobs).count(), 52);
        let kept: Vec<TrustedLayer> = distinct_layers(&blobs)
            .filter_map(|(descriptor, data)| layers::check(descriptor, data, IMAGE_DIGEST, None).trusted)
            .collect();
        assert_eq!(kept.len(), 51, "the other media type is refused");
        for layer in &kept {
            assert!(layer.layer.raw_data.is_empty(), "a layer holds a copy of the blob");
            assert!(Arc::ptr_eq(&layer.signed, &data), "a layer holds a copy of the blob");
        }
        // The constraints still read the signed bytes.
        assert_eq!(*kept[0].with_signed_bytes().raw_data, *data);
    }
}
