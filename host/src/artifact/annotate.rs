//! `cip annotate`: validated metadata written into the module, as `kwctl annotate` does.

use kubewarden_policy_sdk::metadata::ProtocolVersion;

use super::ArtifactError;
use super::metadata::{ANNOTATION_USAGE, ExecutionMode, Metadata};
use super::protocol::detect_protocol_version;
use super::wasm::write_metadata;

/// The module with `metadata_yaml` (plus `usage` as `io.kubewarden.policy.usage`, when given)
/// in its `io.kubewarden.metadata` section, and the metadata written.
///
/// The protocol version is asked from the module itself for `kubewarden-wapc` policies (so a
/// module that is not a waPC policy is refused); the metadata is validated before anything is
/// written. An earlier annotation is replaced.
pub fn annotate(
    module: &[u8],
    metadata_yaml: &str,
    usage: Option<String>,
) -> Result<(Vec<u8>, Metadata), ArtifactError> {
    let mut metadata = Metadata::from_yaml(metadata_yaml)?;
    if let Some(usage) = usage {
        metadata.set_annotation(ANNOTATION_USAGE, usage);
    }
    metadata.protocol_version = Some(match metadata.execution_mode {
        ExecutionMode::KubewardenWapc => detect_protocol_version(module)?,
        ExecutionMode::Opa | ExecutionMode::Gatekeeper | ExecutionMode::Wasi => ProtocolVersion::Unknown,
    });
    metadata.validate()?;
    let annotated = write_metadata(module, &metadata)?;
    Ok((annotated, metadata))
}
