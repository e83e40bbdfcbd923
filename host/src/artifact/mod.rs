//! The policy as a Kubewarden artifact: metadata embedded in the wasm module (`cip annotate`,
//! `cip inspect`), OCI push and pull (`cip push`, `cip pull`) and the local module cache behind
//! `cip run registry://…` ([`fetch_policy`]).

mod annotate;
pub mod host_capability;
pub mod metadata;
mod oci;
mod protocol;
mod store;
pub mod verification;
mod wasm;

use std::path::PathBuf;

pub use annotate::annotate;
pub use metadata::{Metadata, MetadataError};
pub use oci::{
    DEFAULT_MAX_MODULE_BYTES, MAX_POLICY_MANIFEST_BYTES, PolicyRegistry, PulledPolicy, PushedPolicy, REGISTRY_SCHEME,
    load_credentials, manifest_annotations, parse_policy_uri, policy_uri,
};
pub use protocol::{ProtocolError, detect_protocol_version};
pub use store::{CACHE_DIR_ENV, LoadedModule, PolicyStore, cache_root, fetch_policy, load_policy};
pub use wasm::{METADATA_SECTION, WasmError, read_metadata, write_metadata};

use crate::registry::{DockerConfigError, RegistryError};

/// Why an artifact operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Wasm(#[from] WasmError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
    #[error("invalid policy URI {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("invalid manifest digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("{uri} is not a policy artifact: {reason}")]
    UnexpectedArtifact { uri: String, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cache directory: set CIP_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    #[error("cannot use the stored file {}: {reason}: delete it to pull again", path.display())]
    UntrustedFile {
        path: PathBuf,
        reason: crate::private_dir::Untrusted,
    },
    #[error(
        "nothing stored: the policy store {} is not used (another user could write it; see the warning above)",
        dir.display()
    )]
    NotStored { dir: PathBuf },
    #[error("{uri}: the module is {size} bytes, over the cap of {cap} bytes (raise it with --max-module-bytes)")]
    TooLarge { uri: String, size: String, cap: u64 },
    #[error("{what} has digest {actual}, expected {expected}: the file is corrupt or was tampered with")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("cannot download {uri}: {source}")]
    Download { uri: String, source: std::io::Error },
    #[error(transparent)]
    Verification(#[from] verification::ModuleVerificationError),
}
