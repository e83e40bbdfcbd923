//! Namespace `oci`: signature verification and registry look-ups.
//!
//! A failed verification is a host error carrying the reason, as in policy-evaluator (which
//! never answers `is_trusted: false`).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use kubewarden_policy_sdk::host_capabilities::oci::ManifestDigestResponse;
use kubewarden_policy_sdk::host_capabilities::{SigstoreVerificationInputV1, SigstoreVerificationInputV2};
use serde::Serialize;

use super::{Call, CapabilityError, answer, parse, unknown_operation};
use crate::verify::{
    FormatRequest, FormatRequestKind, KeyHashRequest, KeylessRegexpRequest, SignatureFormat, VerificationRequest,
    Verifier, VerifyError, cache::Expiring,
};

const V1_VERIFY: &str = "kubewarden/oci/v1/verify";
const V2_VERIFY: &str = "kubewarden/oci/v2/verify";
const MANIFEST_DIGEST: &str = "kubewarden/oci/v1/manifest_digest";
const OCI_MANIFEST: &str = "kubewarden/oci/v1/oci_manifest";
const OCI_MANIFEST_CONFIG: &str = "kubewarden/oci/v1/oci_manifest_config";
const KEYLESS_REGEXP: &str = "cluster-image-policy/oci/v1/verify_keyless_regexp";
const WITH_FORMAT: &str = "cluster-image-policy/oci/v1/verify_with_format";
const LEGACY_THEN_BUNDLE: &str = "cluster-image-policy/oci/v1/verify_legacy_then_bundle";
const KEY_WITH_HASH: &str = "cluster-image-policy/oci/v1/verify_key_with_hash";

/// Binding `kubewarden`, namespace `oci`.
pub(super) fn kubewarden(call: &Call<'_>, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/verify" => call.memoized(V1_VERIFY, payload, || {
            let input: SigstoreVerificationInputV1 = parse(V1_VERIFY, payload).map_err(|e| (e, None))?;
            verify(call, V1_VERIFY, VerificationRequest::V1(input))
        }),
        "v2/verify" => call.memoized(V2_VERIFY, payload, || {
            let input: SigstoreVerificationInputV2 = parse(V2_VERIFY, payload).map_err(|e| (e, None))?;
            verify(call, V2_VERIFY, VerificationRequest::V2(input))
        }),
        "v1/manifest_digest" => look_up(call, MANIFEST_DIGEST, payload, |verifier, image| async move {
            let Expiring { value, expires } = verifier.manifest_digest_expiring(&image).await;
            Expiring {
                value: value.map(|digest| ManifestDigestResponse { digest }),
                expires,
            }
        }),
        "v1/oci_manifest" => look_up(call, OCI_MANIFEST, payload, |verifier, image| async move {
            verifier.oci_manifest_expiring(&image).await
        }),
        "v1/oci_manifest_config" => look_up(call, OCI_MANIFEST_CONFIG, payload, |verifier, image| async move {
            verifier.oci_manifest_config_expiring(&image).await
        }),
        other => Err(unknown_operation(other)),
    }
}

/// An `oci/v1/*` registry look-up about the image named by `payload`: answered from the memo
/// while the verifier keeps the answer it came from, else asked of the verifier (which reuses
/// it for its data window) and serialised once. The binding check reads a `.sig` manifest in
/// every keyless evaluation: serialising it again (its annotations hold a certificate and a
/// Rekor bundle) and a round trip through the async runtime cost more than the module's own
/// work once it remembers the signature (docs/benchmarks.md, fourteenth pass).
fn look_up<T, F>(
    call: &Call<'_>,
    name: &'static str,
    payload: &[u8],
    fetch: impl FnOnce(Arc<Verifier>, String) -> F,
) -> Result<Vec<u8>, CapabilityError>
where
    T: Serialize + Send + 'static,
    F: Future<Output = Expiring<Result<T, VerifyError>>> + Send + 'static,
{
    call.memoized(name, payload, || {
        let image: String = parse(name, payload).map_err(|e| (e, None))?;
        expiring_answer(call, name, |verifier| fetch(verifier, image))
    })
}

/// What the verifier answers through `ask` (run on the runtime), serialised, with the instant
/// the verifier's entry expires, which bounds the memo; a verifier failure comes with it too.
fn expiring_answer<T, F>(
    call: &Call<'_>,
    name: &'static str,
    ask: impl FnOnce(Arc<Verifier>) -> F,
) -> Result<(Vec<u8>, Instant), (CapabilityError, Option<Instant>)>
where
    T: Serialize + Send + 'static,
    F: Future<Output = Expiring<Result<T, VerifyError>>> + Send + 'static,
{
    let asked = ask(call.verifier(name).map_err(|e| (e, None))?);
    let outcome = call.run(name, async move { Ok(asked.await) }).map_err(|e| (e, None))?;
    match outcome.value {
        Ok(value) => Ok((answer(name, &value).map_err(|e| (e, None))?, outcome.expires)),
        Err(error) => Err((CapabilityError::Verify(error), Some(outcome.expires))),
    }
}

/// Binding `cluster-image-policy`, namespace `oci`: what Kubewarden's API cannot express.
pub(super) fn cluster_image_policy(
    call: &Call<'_>,
    operation: &str,
    payload: &[u8],
) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/verify_keyless_regexp" => call.memoized(KEYLESS_REGEXP, payload, || {
            let input: KeylessRegexpRequest = parse(KEYLESS_REGEXP, payload).map_err(|e| (e, None))?;
            verify(call, KEYLESS_REGEXP, VerificationRequest::KeylessRegexp(input))
        }),
        "v1/verify_attestations" => super::attestations::verify(call, payload),
        "v1/verify_attestations_with_hash" => super::attestations::verify_with_hash(call, payload),
        "v1/verify_with_format" => call.memoized(WITH_FORMAT, payload, || {
            let input: FormatRequest = parse(WITH_FORMAT, payload).map_err(|e| (e, None))?;
            let (request, format) = input.into_parts();
            verify_in(call, WITH_FORMAT, request, format)
        }),
        "v1/verify_key_with_hash" => call.memoized(KEY_WITH_HASH, payload, || {
            let input: KeyHashRequest = parse(KEY_WITH_HASH, payload).map_err(|e| (e, None))?;
            let (request, format) = input.into_parts();
            verify_in(call, KEY_WITH_HASH, request, format)
        }),
        // Both storages in one call for an authority without `signatureFormat`: every outcome
        // is an answer (which storage verified, or each one's reason), kept by the memo until
        // the earlier of the two cached verifications expires.
        "v1/verify_legacy_then_bundle" => call.memoized(LEGACY_THEN_BUNDLE, payload, || {
            let input: FormatRequestKind = parse(LEGACY_THEN_BUNDLE, payload).map_err(|e| (e, None))?;
            expiring_answer(call, LEGACY_THEN_BUNDLE, |verifier| async move {
                verifier.verify_legacy_then_bundle_expiring(input.into()).await
            })
        }),
        other => Err(unknown_operation(other)),
    }
}

/// Verifies `request`; the answer (or verification failure) comes with the instant the
/// verifier's cache entry expires, which bounds the memo.
fn verify(
    call: &Call<'_>,
    name: &'static str,
    request: VerificationRequest,
) -> Result<(Vec<u8>, Instant), (CapabilityError, Option<Instant>)> {
    verify_in(call, name, request, SignatureFormat::Legacy)
}

/// [`verify`] reading the signatures stored in `format`.
fn verify_in(
    call: &Call<'_>,
    name: &'static str,
    request: VerificationRequest,
    format: SignatureFormat,
) -> Result<(Vec<u8>, Instant), (CapabilityError, Option<Instant>)> {
    expiring_answer(call, name, |verifier| async move {
        verifier.verify_expiring_in(&request, format).await
    })
}
