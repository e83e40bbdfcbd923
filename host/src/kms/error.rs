//! Why a KMS key could not be resolved. Every message names the key URI and never carries a
//! credential (tokens, secrets and signed assertions stay out of errors, logs and metrics).

use std::time::Duration;

use super::uri::KmsUriError;

/// A failed resolution of a `key.kms` URI.
#[derive(Clone, Debug, thiserror::Error)]
pub enum KmsError {
    /// Unknown scheme or malformed URI.
    #[error(transparent)]
    Uri(#[from] KmsUriError),
    /// The KMS has no such key (or version).
    #[error("{uri}: key not found ({detail})")]
    NotFound {
        /// The key URI.
        uri: String,
        /// What the KMS said.
        detail: String,
    },
    /// The credentials were refused, or may not read this key.
    #[error("{uri}: access denied ({detail}): check the credentials and that they may read the key's public key")]
    AccessDenied {
        /// The key URI.
        uri: String,
        /// What the KMS said.
        detail: String,
    },
    /// The key exists but cannot make signatures (encryption key, disabled, no public key).
    #[error("{uri}: not a signing key ({detail}): cosign needs an asymmetric signing key")]
    NotSigningKey {
        /// The key URI.
        uri: String,
        /// Why.
        detail: String,
    },
    /// No connection to the KMS (or to its token service).
    #[error("{uri}: KMS unreachable: {detail}")]
    Unreachable {
        /// The key URI.
        uri: String,
        /// The transport error.
        detail: String,
    },
    /// The KMS did not answer in time.
    #[error("{uri}: no answer from the KMS within {after:?}")]
    Timeout {
        /// The key URI.
        uri: String,
        /// The bound that was reached.
        after: Duration,
    },
    /// No credentials could be found for the scheme.
    #[error("{uri}: no {scheme} credentials: {detail}")]
    Credentials {
        /// The key URI.
        uri: String,
        /// `awskms`, `gcpkms`, `azurekms` or `hashivault`.
        scheme: &'static str,
        /// What is missing and how to provide it.
        detail: String,
    },
    /// The URI names an endpoint the scheme's credentials must not be sent to (an
    /// `azurekms://` vault outside Azure's Key Vault and Managed HSM domains).
    #[error("{uri}: {detail}")]
    UntrustedEndpoint {
        /// The key URI.
        uri: String,
        /// Which host, why, and how to allow it.
        detail: String,
    },
    /// The KMS answered something that is not a usable public key.
    #[error("{uri}: unexpected answer from the KMS: {detail}")]
    Answer {
        /// The key URI.
        uri: String,
        /// What was wrong.
        detail: String,
    },
}
