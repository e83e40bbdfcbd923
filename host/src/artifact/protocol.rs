//! Asks a waPC module which Kubewarden protocol it speaks, as `kwctl annotate` does before it
//! writes `protocolVersion` into the metadata.

use kubewarden_policy_sdk::metadata::ProtocolVersion;
use wapc::WapcHost;
use wasmtime_provider::WasmtimeEngineProviderBuilder;

/// Why the protocol version could not be learnt from the module.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("cannot load the module with wasmtime: {0}")]
    Load(String),
    #[error("the module did not answer `protocol_version` (is it a Kubewarden waPC policy?): {0}")]
    Call(String),
    #[error("the module answered `protocol_version` with {answer:?}, not a known protocol version")]
    Unknown { answer: String },
}

/// Instantiates the module and calls its `protocol_version` guest function.
///
/// The module gets no host capabilities: answering this call must not need any.
pub fn detect_protocol_version(module: &[u8]) -> Result<ProtocolVersion, ProtocolError> {
    let engine = WasmtimeEngineProviderBuilder::new()
        .module_bytes(module)
        .build()
        .map_err(|error| ProtocolError::Load(error.to_string()))?;
    let host = WapcHost::new(
        Box::new(engine),
        Some(Box::new(|_, binding, namespace, operation, _| {
            Err(
                format!("host call {binding}/{namespace}/{operation} refused while detecting the protocol version")
                    .into(),
            )
        })),
    )
    .map_err(|error| ProtocolError::Load(error.to_string()))?;
    let answer = host
        .call("protocol_version", b"")
        .map_err(|error| ProtocolError::Call(error.to_string()))?;
    match ProtocolVersion::try_from(answer.clone()) {
        Ok(ProtocolVersion::Unknown) | Err(_) => Err(ProtocolError::Unknown {
            answer: String::from_utf8_lossy(&answer).into_owned(),
        }),
        Ok(version) => Ok(version),
    }
}
