//! `cluster-image-policy`/`oci`/`v1/verify_attestations`: the verified in-toto statements of
//! an image's cosign attestations ([`crate::verify::attestations`]). A failure is a host
//! error carrying the reason, as for signature verification.

use std::time::Instant;

use super::{Call, CapabilityError, answer, parse};
use crate::verify::attestations::{AttestationsCall, AttestationsHashCall, AttestationsRequest};
use crate::verify::{SignatureFormat, VerifyError};

/// The operation's name, for errors and the answer memo.
pub(super) const VERIFY_ATTESTATIONS: &str = "cluster-image-policy/oci/v1/verify_attestations";
/// `v1/verify_attestations` of a key with a chosen hash (`key.hashAlgorithm`).
pub(super) const VERIFY_ATTESTATIONS_WITH_HASH: &str = "cluster-image-policy/oci/v1/verify_attestations_with_hash";

/// Answers one `v1/verify_attestations` call.
pub(super) fn verify(call: &Call<'_>, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    verify_as(call, VERIFY_ATTESTATIONS, payload, |payload| {
        parse::<AttestationsCall>(VERIFY_ATTESTATIONS, payload)?
            .into_parts()
            .map_err(|e: VerifyError| CapabilityError::Verify(e))
    })
}

/// Answers one `v1/verify_attestations_with_hash` call.
pub(super) fn verify_with_hash(call: &Call<'_>, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    verify_as(call, VERIFY_ATTESTATIONS_WITH_HASH, payload, |payload| {
        parse::<AttestationsHashCall>(VERIFY_ATTESTATIONS_WITH_HASH, payload).map(AttestationsHashCall::into_parts)
    })
}

/// Answers the call `name`, whose payload `read` turns into a request and a storage.
fn verify_as(
    call: &Call<'_>,
    name: &'static str,
    payload: &[u8],
    read: impl FnOnce(&[u8]) -> Result<(AttestationsRequest, SignatureFormat), CapabilityError>,
) -> Result<Vec<u8>, CapabilityError> {
    call.memoized(name, payload, || {
        let (request, format) = read(payload).map_err(|e| (e, None))?;
        let verifier = call.verifier(name).map_err(|e| (e, None))?;
        let outcome = call
            .run(name, async move {
                Ok(verifier.verify_attestations_expiring(request, format).await)
            })
            .map_err(|e| (e, None))?;
        let expires: Instant = outcome.expires;
        match outcome.value {
            Ok(found) => Ok((answer(name, &found).map_err(|e| (e, None))?, expires)),
            Err(error) => Err((CapabilityError::Verify(error), Some(expires))),
        }
    })
}
