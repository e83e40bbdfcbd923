//! Why a verification failed, in words a user can act on.

use crate::registry::{BoundedError, RegistryError};

/// Why a verification failed; the text reaches the user through the policy's message.
#[derive(Clone, Debug, thiserror::Error)]
pub enum VerifyError {
    /// Any other failure.
    #[error("{0}")]
    Failed(String),
    /// The request itself is unusable (bad key, certificate, pattern or reference).
    #[error("{0}")]
    InvalidRequest(String),
    /// The host was started without the trust root this kind of check needs.
    #[error("{0} needs a sigstore trust config (--sigstore-trust-config)")]
    TrustConfigMissing(&'static str),
    /// The trust root cannot serve this check.
    #[error("sigstore trust config unusable: {0}")]
    Trust(String),
    /// The verifier's own configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A download passed a cap of `DownloadLimits` (always [`BoundedError::OverCap`], which
    /// names the cap and the setting raising it): e.g. the manifest `oci/v1/oci_manifest` reads.
    #[error(transparent)]
    OverCap(BoundedError),
    /// The downloads in flight of all verifications hold the whole of
    /// `--max-inflight-download-bytes`: transient; the image fails closed meanwhile.
    #[error(transparent)]
    Inflight(#[from] crate::registry::InflightExhausted),
    /// The image has no cosign signature.
    #[error("no signatures found for {image}")]
    NoSignatures { image: String },
    /// The signatures could not be read.
    #[error("cannot read the signatures of {image}: {reason}")]
    Signatures { image: String, reason: String },
    /// Signatures exist but none satisfies the request.
    #[error("{0}")]
    Unsatisfied(String),
}

impl VerifyError {
    /// Whether the failure says nothing about the image, only about the host's load now (the
    /// download pool was full): such a failure is not kept in any cache, so the next
    /// evaluation asks again.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Inflight(_))
    }
}

/// What a verification was reading when a capped download failed, which words the failure when a
/// cap was passed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reading<'a> {
    /// The signatures of `image` (`registry/repository@digest`).
    Signatures(&'a str),
    /// The attestations of `image`.
    Attestations(&'a str),
    /// Anything else (a manifest, a config): a passed cap is [`VerifyError::OverCap`].
    Other,
}

impl VerifyError {
    /// The failure of a verification whose capped download failed with `error` while reading
    /// `reading`: the registry's failure as such, the pool's refusal as such (transient), a
    /// passed cap in the words of what was read. The one mapping of [`BoundedError`].
    pub(crate) fn download_failed(reading: Reading<'_>, error: BoundedError) -> Self {
        match error {
            BoundedError::Registry(e) => Self::Registry(e),
            BoundedError::Inflight(refused) => Self::Inflight(refused),
            over @ BoundedError::OverCap { .. } => match reading {
                Reading::Signatures(image) => Self::Signatures {
                    image: image.to_owned(),
                    reason: over.to_string(),
                },
                Reading::Attestations(image) => {
                    Self::Failed(format!("cannot read the attestations of {image}: {over}"))
                }
                Reading::Other => Self::OverCap(over),
            },
        }
    }
}

impl From<BoundedError> for VerifyError {
    fn from(error: BoundedError) -> Self {
        Self::download_failed(Reading::Other, error)
    }
}
