//! `spec.policy`: a CUE or Rego policy over the results of a ClusterImagePolicy's authorities
//! (policy-controller's "CIP level policy").
//!
//! [`PolicyBlock::parse`] compiles the text once, when the settings are parsed (and cached
//! with them); [`PolicyBlock::evaluate`] decides over any JSON document, so attestation-level
//! policies can reuse it with an in-toto statement as input. CUE runs in the module
//! ([`cue`]); Rego runs in the host through [`rego::CIP_POLICY_REGO`], as regorus does not fit
//! in the module beside everything else.

pub mod config_file;
pub mod cue;
pub mod go_json;
pub mod image_config;
pub mod input;
pub mod numbers;
pub(crate) mod platform;
pub mod rego;
pub mod statement;
pub(crate) mod time;

use serde::Deserialize;
use serde_json::Value;

use crate::host::HostCalls;
use crate::settings::SettingsError;

/// The most a policy failure may take of a message, so that the image, the policy's name and
/// the failure fit in Kubernetes' 256-character warnings.
pub const MAX_FAILURE_LEN: usize = 150;

/// `spec.policy` as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPolicyBlock {
    #[serde(rename = "type")]
    type_: Option<String>,
    data: Option<String>,
    config_map_ref: Option<Value>,
    url: Option<String>,
    sha256sum: Option<String>,
    /// v1beta1's `remote: {url, sha256sum}`: refused as `url` is, rather than as an unknown
    /// field (which would point the reader at the top-level `url`).
    remote: Option<Value>,
    fetch_config_file: Option<bool>,
    include_spec: Option<bool>,
    include_object_meta: Option<bool>,
    include_type_meta: Option<bool>,
}

/// The language of a policy, compiled.
#[derive(Debug)]
pub enum Language {
    Cue(cue::Program),
    Rego(rego::RegoPolicy),
}

/// `spec.policy`, validated and compiled.
#[derive(Debug)]
pub struct PolicyBlock {
    pub language: Language,
    /// `fetchConfigFile`: the image's config under `config`.
    pub fetch_config_file: bool,
    /// `includeSpec`: the object's `spec` under `spec`.
    pub include_spec: bool,
    /// `includeObjectMeta`: the object's `metadata` under `metadata`.
    pub include_object_meta: bool,
    /// `includeTypeMeta`: `apiVersion` and `kind` under `typemeta`.
    pub include_type_meta: bool,
}

impl PolicyBlock {
    /// The first of `includeSpec`, `includeObjectMeta` and `includeTypeMeta` that is set: the
    /// block reads the admitted object.
    pub fn object_flag(&self) -> Option<&'static str> {
        [
            (self.include_spec, "includeSpec"),
            (self.include_object_meta, "includeObjectMeta"),
            (self.include_type_meta, "includeTypeMeta"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }

    /// Validates and compiles `spec.policy` found at `path` (e.g. `policies[0].spec.policy`).
    pub fn parse(raw: &Value, path: &str) -> Result<Self, SettingsError> {
        let err = |field: &str, message: String| SettingsError::new(format!("{path}{field}"), message);
        let raw: RawPolicyBlock =
            serde_json::from_value(raw.clone()).map_err(|e| err("", format!("{e} (see docs/policies.md)")))?;
        if raw.config_map_ref.is_some() {
            return Err(err(
                ".configMapRef",
                "a policy module cannot read ConfigMaps: paste the policy into spec.policy.data".to_owned(),
            ));
        }
        if raw.remote.is_some() {
            return Err(err(
                ".remote",
                "a policy module cannot fetch URLs: paste the policy into spec.policy.data".to_owned(),
            ));
        }
        if raw.url.is_some() || raw.sha256sum.is_some() {
            return Err(err(
                ".url",
                "a policy module cannot fetch URLs: paste the policy into spec.policy.data".to_owned(),
            ));
        }
        let data = match raw.data {
            Some(d) if !d.trim().is_empty() => d,
            _ => {
                return Err(err(
                    ".data",
                    "data is required: the text of the CUE or Rego policy".to_owned(),
                ));
            }
        };
        let language = match raw.type_.as_deref() {
            Some("cue") => {
                Language::Cue(cue::Program::compile(&data).map_err(|e| err(".data", format!("CUE policy, {e}")))?)
            }
            Some("rego") => {
                Language::Rego(rego::RegoPolicy::parse(&data).map_err(|e| err(".data", format!("Rego policy, {e}")))?)
            }
            Some(other) => return Err(err(".type", format!("unknown type `{other}`: use cue or rego"))),
            None => return Err(err(".type", "type is required: cue or rego".to_owned())),
        };
        Ok(Self {
            language,
            fetch_config_file: raw.fetch_config_file.unwrap_or(false),
            include_spec: raw.include_spec.unwrap_or(false),
            include_object_meta: raw.include_object_meta.unwrap_or(false),
            include_type_meta: raw.include_type_meta.unwrap_or(false),
        })
    }

    /// `cue` or `rego`.
    pub fn language_name(&self) -> &'static str {
        match self.language {
            Language::Cue(_) => "cue",
            Language::Rego(_) => "rego",
        }
    }

    /// Decides over `input`: `Ok(None)` passes, `Ok(Some(warning))` is a compliant Rego result
    /// with a warning (which, as in policy-controller, satisfies neither `spec.policy` nor an
    /// attestation: the callers say so), `Err` is why it fails (the conflict or the Rego rule),
    /// at most [`MAX_FAILURE_LEN`] long.
    pub fn evaluate(&self, input: &Value, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        match &self.language {
            Language::Cue(program) => program.check(input).map(|()| None).map_err(|c| shorten(&c.to_string())),
            Language::Rego(policy) => policy
                .evaluate(input, host)
                .map(|w| w.map(|w| shorten(&w)))
                .map_err(|e| shorten(&e)),
        }
    }
}

/// Cuts `text` to [`MAX_FAILURE_LEN`] bytes on a character boundary.
pub fn shorten(text: &str) -> String {
    if text.len() <= MAX_FAILURE_LEN {
        return text.to_owned();
    }
    let mut end = MAX_FAILURE_LEN - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests;
