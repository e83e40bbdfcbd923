//! cosign v3's default signature storage: a sigstore bundle v0.3 (DSSE envelope over an in-toto
//! statement, leaf certificate, Rekor entry with inclusion proof) attached to the image as an
//! OCI 1.1 referrer. distribution v2.8 has no referrers API, so the referrer is also listed in
//! the referrers tag schema index (`repo:sha256-<hex>`), where OCI clients fall back to.

use std::collections::BTreeMap;

use anyhow::Context;
use oci_client::manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use serde_json::json;

use crate::fulcio::{LeafRequest, TestFulcio};
use crate::oci::{self, sha256_digest};
use crate::rekor::TestRekor;
use crate::rt;

/// Media type of a sigstore bundle v0.3 layer (and the referrer's artifact type).
pub const SIGSTORE_BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Keyless signing as cosign v3 does by default (`--new-bundle-format`): a fresh leaf for the
/// request, a bundle attached to `registry_host/repo@digest` as a referrer. Returns the
/// referrer manifest digest.
pub fn sign_keyless_bundle(
    registry_host: &str,
    repo: &str,
    digest: &str,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    request: &LeafRequest,
) -> anyhow::Result<String> {
    let bundle = crate::bundle::keyless_bundle(digest, fulcio, rekor, request, &Default::default())?;
    crate::bundle::attach_bundle(registry_host, repo, digest, &bundle)
}

/// Pushes a one-layer artifact whose `subject` is `repo@digest` and lists it in the referrers
/// tag schema index of `digest`. Returns the artifact manifest digest.
pub(crate) fn attach_referrer(
    registry_host: &str,
    repo: &str,
    digest: &str,
    artifact_type: &str,
    layer: Vec<u8>,
    annotations: BTreeMap<String, String>,
) -> anyhow::Result<String> {
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let subject_ref = oci::digest_ref(registry_host, repo, digest);
        let (subject_body, subject_type) = oci::pull_manifest_bytes(&client, &subject_ref).await?;
        let empty = b"{}".to_vec();
        oci::ensure_blob(&client, &subject_ref, &empty).await?;
        oci::ensure_blob(&client, &subject_ref, &layer).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "size": empty.len(), "digest": sha256_digest(&empty)},
            "layers": [{"mediaType": artifact_type, "size": layer.len(), "digest": sha256_digest(&layer)}],
            "subject": {"mediaType": subject_type, "size": subject_body.len(), "digest": digest},
            "annotations": annotations,
        }))?;
        let manifest_digest = sha256_digest(&manifest);
        let manifest_size = manifest.len();
        let artifact_ref = oci::digest_ref(registry_host, repo, &manifest_digest);
        oci::push_manifest_bytes(&client, &artifact_ref, manifest, OCI_IMAGE_MEDIA_TYPE).await?;

        let index_ref = oci::tag_ref(registry_host, repo, &digest.replace(':', "-"));
        // No index yet is the normal first case; a broken one is replaced.
        let mut entries: Vec<serde_json::Value> = match oci::pull_manifest_bytes(&client, &index_ref).await {
            Ok((body, _)) => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|index| index.get("manifests").and_then(|m| m.as_array()).cloned())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        entries.push(json!({
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": manifest_size,
            "artifactType": artifact_type,
            "annotations": annotations,
        }));
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": entries,
        }))?;
        oci::push_manifest_bytes(&client, &index_ref, index, OCI_IMAGE_INDEX_MEDIA_TYPE).await?;
        Ok(manifest_digest)
    })
    .with_context(|| format!("attaching a referrer to {registry_host}/{repo}@{digest}"))
}
