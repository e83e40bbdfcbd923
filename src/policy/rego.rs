//! Rego policies, evaluated by the host with regorus (`cip` implements
//! [`CIP_POLICY_REGO`]; a stock Kubewarden host does not, and such a policy then fails
//! naming the missing capability).
//!
//! As policy-controller: Rego v0 syntax, `package sigstore`, the decision
//! `data.sigstore.isCompliant`, either a boolean or a set of
//! `{"result": bool, "error": string, "warning": string}` objects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::{Capability, HostCalls};

/// Our Rego evaluation, implemented by `cip` only.
pub const CIP_POLICY_REGO: Capability = Capability {
    binding: "cluster-image-policy",
    namespace: "policy",
    operation: "v1/rego",
};

/// The request of [`CIP_POLICY_REGO`].
#[derive(Debug, Serialize)]
pub struct RegoRequest<'a> {
    pub policy: &'a str,
    pub input: &'a Value,
}

/// The answer of [`CIP_POLICY_REGO`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RegoAnswer {
    /// Whether `isCompliant` holds.
    pub compliant: bool,
    /// Why not, as policy-controller words it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A warning of a compliant (or not) result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A Rego policy: its text, checked for `package sigstore` (the host compiles it).
#[derive(Debug)]
pub struct RegoPolicy {
    text: String,
}

impl RegoPolicy {
    /// Checks what the module can: the package clause policy-controller queries.
    pub fn parse(text: &str) -> Result<Self, String> {
        let package = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .find(|l| !l.is_empty());
        match package.map(|l| l.split_whitespace().collect::<Vec<_>>()) {
            Some(words) if words.len() == 2 && words[0] == "package" && words[1] == "sigstore" => {
                Ok(Self { text: text.to_owned() })
            }
            Some(words) if words.first() == Some(&"package") => Err(format!(
                "the package is `{}`: it must be `package sigstore` (the decision is data.sigstore.isCompliant)",
                words[1..].join(" ")
            )),
            _ => Err(
                "the policy must begin with `package sigstore` (the decision is data.sigstore.isCompliant)".to_owned(),
            ),
        }
    }

    /// Asks the host to evaluate the policy over `input`.
    pub fn evaluate(&self, input: &Value, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let payload = serde_json::to_vec(&RegoRequest {
            policy: &self.text,
            input,
        })
        .map_err(|e| format!("cannot encode the Rego request: {e}"))?;
        let answer = host
            .call(CIP_POLICY_REGO, &payload)
            .map_err(|e| format!("needs host capability {CIP_POLICY_REGO} (the cip host): {e}"))?;
        let answer: RegoAnswer = serde_json::from_slice(&answer)
            .map_err(|e| format!("unreadable answer from host capability {CIP_POLICY_REGO}: {e}"))?;
        if answer.compliant {
            Ok(answer.warning.filter(|w| !w.is_empty()))
        } else {
            Err(answer
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "data.sigstore.isCompliant is not true".to_owned()))
        }
    }
}
