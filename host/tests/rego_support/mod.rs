//! What the Rego tests share: `cip`'s answer to the module's `cluster-image-policy/policy/v1/rego`
//! call.

use cip::capabilities::Capabilities;
use serde_json::{Value, json};

/// `cip`'s answer for `policy` on `input` (`{"compliant": …, "error": …, "warning": …}`), or the
/// evaluation's error.
pub fn rego_answer(capabilities: &Capabilities, policy: &str, input: &Value) -> Result<Value, String> {
    let payload = serde_json::to_vec(&json!({"policy": policy, "input": input})).unwrap();
    let answer = capabilities
        .dispatch("rego-test", None, "cluster-image-policy", "policy", "v1/rego", &payload)
        .map_err(|e| e.to_string())?;
    Ok(serde_json::from_slice(&answer).unwrap())
}
