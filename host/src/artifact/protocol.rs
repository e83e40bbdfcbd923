//! Asks a waPC module which Kubewarden protocol it speaks, as `kwctl annotate` does before it
//! writes `protocolVersion` into the metadata.

use std::sync::Arc;

use kubewarden_policy_sdk::metadata::ProtocolVersion;

use crate::capabilities::Capabilities;
use crate::runtime::{Evaluator, EvaluatorOptions, PolicyModule};

/// Why the protocol version could not be learnt from the module.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("cannot load the module: {0}")]
    Load(String),
    #[error("the module did not answer `protocol_version` (is it a Kubewarden waPC policy?): {0}")]
    Call(String),
    #[error("the module answered `protocol_version` with {answer:?}, not a known protocol version")]
    Unknown { answer: String },
}

/// Runs the module's `protocol_version` guest function with the runtime of `cip run` (same
/// engine, time and memory limits), without registry access: answering must need none.
pub fn detect_protocol_version(module: &[u8]) -> Result<ProtocolVersion, ProtocolError> {
    let load = |error: &dyn std::fmt::Display| ProtocolError::Load(error.to_string());
    // Host calls would run on a tokio runtime; borrow the caller's, else make a small one.
    let own_runtime;
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle,
        Err(_) => {
            own_runtime = crate::async_runtime::current_thread().build().map_err(|e| load(&e))?;
            own_runtime.handle().clone()
        }
    };
    let policy = PolicyModule::from_bytes("policy", module).map_err(|e| load(&e))?;
    let options = EvaluatorOptions {
        pool_size: 0,
        ..EvaluatorOptions::default()
    };
    let capabilities = Arc::new(Capabilities::without_registry(handle));
    let evaluator = Evaluator::new(&policy, capabilities, options).map_err(|e| load(&e))?;
    let answer = evaluator
        .protocol_version()
        .map_err(|error| ProtocolError::Call(error.to_string()))?;
    match serde_json::from_value(serde_json::Value::String(answer.clone())) {
        Ok(ProtocolVersion::Unknown) | Err(_) => Err(ProtocolError::Unknown { answer }),
        Ok(version) => Ok(version),
    }
}
