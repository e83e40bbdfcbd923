//! Namespace `tracing`: log events emitted by the policy (the SDK's `KubewardenDrain`), forwarded
//! to the host's `tracing` subscriber under the target `policy`.

use serde_json::{Map, Value};

use super::{CapabilityError, parse, unknown_operation};

const LOG: &str = "kubewarden/tracing/log";

pub(super) fn dispatch(policy: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "log" => {
            let mut event: Map<String, Value> = parse(LOG, payload)?;
            let level = take_string(&mut event, "level");
            let message = take_string(&mut event, "message");
            for location in ["file", "line", "column"] {
                event.remove(location);
            }
            let fields = Value::Object(event);
            match level.as_str() {
                "trace" => tracing::trace!(target: "policy", policy, %fields, "{message}"),
                "debug" => tracing::debug!(target: "policy", policy, %fields, "{message}"),
                "warning" | "warn" => tracing::warn!(target: "policy", policy, %fields, "{message}"),
                "error" => tracing::error!(target: "policy", policy, %fields, "{message}"),
                _ => tracing::info!(target: "policy", policy, %fields, "{message}"),
            }
            Ok(Vec::new())
        }
        other => Err(unknown_operation(other)),
    }
}

fn take_string(event: &mut Map<String, Value>, key: &str) -> String {
    match event.remove(key) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
