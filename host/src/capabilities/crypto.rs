//! Namespace `crypto`: certificate trust checks, answered by the verification code.

use kubewarden_policy_sdk::host_capabilities::crypto_v1::CertificateVerificationRequest;

use super::{CapabilityError, answer, parse, unknown_operation};

const IS_CERTIFICATE_TRUSTED: &str = "kubewarden/crypto/v1/is_certificate_trusted";

pub(super) fn dispatch(operation: &str, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/is_certificate_trusted" => {
            let request: CertificateVerificationRequest = parse(IS_CERTIFICATE_TRUSTED, payload)?;
            let response = crate::verify::certificate::is_certificate_trusted(request);
            answer(IS_CERTIFICATE_TRUSTED, &response)
        }
        other => Err(unknown_operation(other)),
    }
}
