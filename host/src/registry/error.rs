//! Registry failures, phrased for the person reading a policy's message.

use std::time::Duration;

use oci_client::Reference;
use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Why a registry request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The image reference cannot be parsed.
    #[error("invalid image reference {image:?}: {reason}")]
    InvalidReference { image: String, reason: String },
    /// No connection could be made.
    #[error("registry {registry} unreachable: {reason}")]
    Unreachable { registry: String, reason: String },
    /// The registry did not answer in time.
    #[error("registry {registry} did not answer within {after:?}")]
    Timeout { registry: String, after: Duration },
    /// The manifest or repository does not exist.
    #[error("{image} not found in registry {registry}")]
    NotFound { image: String, registry: String },
    /// The registry refused the credentials (or their absence).
    #[error("registry {registry} denied access to {image}: {reason}")]
    Denied {
        image: String,
        registry: String,
        reason: String,
    },
    /// The registry answered with something unusable.
    #[error("unexpected answer from registry about {image}: {reason}")]
    Malformed { image: String, reason: String },
    /// Any other failure.
    #[error("registry {registry} failed for {image}: {reason}")]
    Other {
        image: String,
        registry: String,
        reason: String,
    },
}

impl RegistryError {
    /// Classifies an oci-client error about `reference`.
    pub(crate) fn from_oci(error: OciDistributionError, reference: &Reference, timeout: Duration) -> Self {
        let registry = reference.resolve_registry().to_string();
        let image = reference.whole();
        match error {
            OciDistributionError::RequestError(e) if e.is_timeout() => Self::Timeout {
                registry,
                after: timeout,
            },
            OciDistributionError::RequestError(e) if e.is_connect() => Self::Unreachable {
                registry,
                reason: innermost_cause(&e),
            },
            OciDistributionError::RequestError(e) => Self::Other {
                image,
                registry,
                reason: innermost_cause(&e),
            },
            OciDistributionError::ImageManifestNotFoundError(_) => Self::NotFound { image, registry },
            OciDistributionError::ServerError { code: 404, .. } => Self::NotFound { image, registry },
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::BlobUnknown
                    )
                }) =>
            {
                Self::NotFound { image, registry }
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
            {
                Self::Denied {
                    image,
                    registry,
                    reason: envelope.to_string(),
                }
            }
            e @ (OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_)) => {
                Self::Denied {
                    image,
                    registry,
                    reason: e.to_string(),
                }
            }
            e @ (OciDistributionError::DigestError(_)
            | OciDistributionError::ManifestParsingError(_)
            | OciDistributionError::VersionedParsingError(_)
            | OciDistributionError::UnsupportedSchemaVersionError(_)
            | OciDistributionError::UnsupportedMediaTypeError(_)
            | OciDistributionError::JsonError(_)
            | OciDistributionError::SpecViolationError(_)) => Self::Malformed {
                image,
                reason: e.to_string(),
            },
            e => Self::Other {
                image,
                registry,
                reason: e.to_string(),
            },
        }
    }

    /// Whether the failure says the manifest does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// The deepest cause of an error chain: "Connection refused (os error 111)" rather than
/// "error sending request for url (…)".
pub(crate) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
