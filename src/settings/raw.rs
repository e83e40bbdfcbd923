//! The settings exactly as users write them: sigstore `ClusterImagePolicy` documents plus our
//! few top-level options. Only the shape is checked here (unknown fields are refused, so a
//! typo never silently disables a rule); meaning is checked by [`super::Settings::parse`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Top-level settings of the policy.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSettings {
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
    pub no_match_policy: Option<String>,
    pub modify_images_with_digest: Option<bool>,
}

/// One `ClusterImagePolicy` document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPolicy {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<RawMetadata>,
    pub spec: Option<RawSpec>,
    /// Written by policy-controller; carried along untouched.
    pub status: Option<Value>,
}

/// `metadata` may carry anything (labels, annotations, ...); only the name is read, the rest
/// is skipped.
#[derive(Debug, Deserialize)]
pub struct RawMetadata {
    pub name: Option<String>,
}

/// `spec` of a `ClusterImagePolicy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSpec {
    pub images: Option<Vec<RawImagePattern>>,
    pub authorities: Option<Vec<RawAuthority>>,
    pub mode: Option<String>,
    #[serde(rename = "match")]
    pub match_: Option<Vec<RawMatch>>,
    pub policy: Option<Value>,
}

/// One entry of `spec.images`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImagePattern {
    pub glob: Option<String>,
    /// `regex` existed in `v1alpha1`; refused with a clear message.
    pub regex: Option<String>,
}

/// One entry of `spec.match`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub namespaces: Option<Vec<String>>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub resource: Option<String>,
    pub selector: Option<RawLabelSelector>,
}

/// A Kubernetes label selector.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<RawLabelSelectorRequirement>>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

/// One entry of `spec.authorities`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAuthority {
    pub name: Option<String>,
    pub key: Option<RawKey>,
    pub keyless: Option<RawKeyless>,
    #[serde(rename = "static")]
    pub static_: Option<RawStatic>,
    /// Extension (Kubewarden): a signing certificate instead of a key.
    pub certificate: Option<RawCertificate>,
    /// Extension (Kubewarden): keyless signatures made by GitHub Actions.
    pub github_actions: Option<RawGithubActions>,
    /// Extension (Kubewarden): annotations every accepted signature must carry.
    pub annotations: Option<BTreeMap<String, String>>,
    pub source: Option<Value>,
    pub ctlog: Option<Value>,
    pub attestations: Option<Value>,
    #[serde(rename = "rfc3161timestamp")]
    pub rfc3161_timestamp: Option<Value>,
    pub signature_format: Option<String>,
}

/// `key` authority.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawKey {
    pub data: Option<String>,
    pub kms: Option<String>,
    pub secret_ref: Option<Value>,
    pub hash_algorithm: Option<String>,
}

/// `keyless` authority.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawKeyless {
    pub url: Option<String>,
    pub identities: Option<Vec<RawIdentity>>,
    #[serde(rename = "ca-cert")]
    pub ca_cert: Option<Value>,
    pub trust_root_ref: Option<String>,
    #[serde(rename = "insecureIgnoreSCT")]
    pub insecure_ignore_sct: Option<bool>,
}

/// One keyless identity.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIdentity {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub issuer_reg_exp: Option<String>,
    pub subject_reg_exp: Option<String>,
}

/// `static` authority.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    pub action: Option<String>,
    pub message: Option<String>,
}

/// `certificate` authority (extension).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCertificate {
    pub data: Option<String>,
    pub chain: Option<String>,
    pub require_rekor_bundle: Option<bool>,
}

/// `githubActions` authority (extension).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGithubActions {
    pub owner: Option<String>,
    pub repo: Option<String>,
}
