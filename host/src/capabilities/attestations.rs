//! `cluster-image-policy`/`oci`/`v1/verify_attestations`: the verified in-toto statements of
//! an image's cosign attestations ([`crate::verify::attestations`]). A failure is a host
//! error carrying the reason, as for signature verification.

use std::time::Instant;

use super::{Call, CapabilityError, answer, parse};
use crate::verify::VerifyError;
use crate::verify::attestations::AttestationsCall;

/// The operation's name, for errors and the answer memo.
pub(super) const VERIFY_ATTESTATIONS: &str = "cluster-image-policy/oci/v1/verify_attestations";

/// Answers one `v1/verify_attestations` call.
pub(super) fn verify(call: &Call<'_>, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    call.memoized(VERIFY_ATTESTATIONS, payload, || {
        let call_payload: AttestationsCall = parse(VERIFY_ATTESTATIONS, payload).map_err(|e| (e, None))?;
        let (request, format) = call_payload
            .into_parts()
            .map_err(|e: VerifyError| (CapabilityError::Verify(e), None))?;
        let verifier = call.verifier(VERIFY_ATTESTATIONS).map_err(|e| (e, None))?;
        let outcome = call
            .run(VERIFY_ATTESTATIONS, async move {
                Ok(verifier.verify_attestations_expiring(request, format).await)
            })
            .map_err(|e| (e, None))?;
        let expires: Instant = outcome.expires;
        match outcome.value {
            Ok(found) => Ok((answer(VERIFY_ATTESTATIONS, &found).map_err(|e| (e, None))?, expires)),
            Err(error) => Err((CapabilityError::Verify(error), Some(expires))),
        }
    })
}
