//! Kubewarden policy metadata: the model of `metadata.yml` and of the JSON that `kwctl annotate`
//! stores in the module, with the checks policy-evaluator applies (and a few more that catch
//! typos before a release).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kubewarden_policy_sdk::metadata::ProtocolVersion;
use serde::{Deserialize, Serialize};

use super::host_capability::HostCapability;

/// Annotation holding the policy name.
pub const ANNOTATION_TITLE: &str = "io.kubewarden.policy.title";
/// Annotation holding the policy version (semver, without a leading `v`).
pub const ANNOTATION_VERSION: &str = "io.kubewarden.policy.version";
/// Annotation holding the one-line description.
pub const ANNOTATION_DESCRIPTION: &str = "io.kubewarden.policy.description";
/// Annotation holding the usage documentation (the README with `cip annotate -u`).
pub const ANNOTATION_USAGE: &str = "io.kubewarden.policy.usage";
/// Annotation holding the source repository URL.
pub const ANNOTATION_SOURCE: &str = "io.kubewarden.policy.source";
/// Annotation holding the OCI repository the policy is published to (no tag).
pub const ANNOTATION_OCI_URL: &str = "io.kubewarden.policy.ociUrl";

/// Annotations every policy annotated by `cip` must carry.
const REQUIRED_ANNOTATIONS: [&str; 3] = [ANNOTATION_TITLE, ANNOTATION_VERSION, ANNOTATION_DESCRIPTION];

/// Top-level keys of Kubewarden's `metadata.yml` (policy-evaluator's `Metadata` as of
/// Kubewarden 1.3x), so that a misspelt key is an error instead of a setting silently ignored
/// by every host.
const KNOWN_KEYS: [&str; 10] = [
    "protocolVersion",
    "rules",
    "annotations",
    "mutating",
    "backgroundAudit",
    "contextAwareResources",
    "executionMode",
    "policyType",
    "minimumKubewardenVersion",
    "hostCapabilities",
];

/// Keys older metadata used that Kubewarden reads no more, with what to write instead.
const RETIRED_KEYS: [(&str, &str); 2] = [
    (
        "contextAware",
        "contextAware is no longer a Kubewarden metadata key: a policy is context aware when it lists \
         the resource kinds it reads in contextAwareResources (leave it out when it reads none)",
    ),
    (
        "labels",
        "labels is not a Kubewarden metadata key: put the information in annotations \
         (io.kubewarden.policy.* or io.artifacthub.*)",
    ),
];

/// Admission operation a rule subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    #[serde(rename = "CREATE")]
    Create,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "CONNECT")]
    Connect,
    #[serde(rename = "*")]
    All,
}

/// One admission rule, as in a `ValidatingWebhookConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub operations: Vec<Operation>,
}

/// How the policy-server runs the module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionMode {
    #[default]
    #[serde(rename = "kubewarden-wapc")]
    KubewardenWapc,
    #[serde(rename = "opa")]
    Opa,
    #[serde(rename = "gatekeeper")]
    Gatekeeper,
    #[serde(rename = "wasi")]
    Wasi,
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::KubewardenWapc => "kubewarden-wapc",
            Self::Opa => "opa",
            Self::Gatekeeper => "gatekeeper",
            Self::Wasi => "wasi",
        })
    }
}

/// Whether the policy evaluates Kubernetes admission requests or raw JSON documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyType {
    #[default]
    Kubernetes,
    Raw,
}

/// A Kubernetes resource kind a context-aware policy may read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextAwareResource {
    pub api_version: String,
    pub kind: String,
}

/// The metadata of a Kubewarden policy (`metadata.yml`, or the JSON of the
/// `io.kubewarden.metadata` custom section).
///
/// Field names and defaults follow policy-evaluator's `Metadata`, so a module annotated by
/// `cip` is read the same way by kwctl and policy-server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// waPC protocol the module speaks; `cip annotate` asks the module itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    pub mutating: bool,
    #[serde(default = "default_true")]
    pub background_audit: bool,
    /// The Kubernetes resources the policy reads; empty for a policy that is not context aware.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub context_aware_resources: BTreeSet<ContextAwareResource>,
    /// The host capability calls the policy makes (`None`: not declared, kwctl warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_capabilities: Option<BTreeSet<HostCapability>>,
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    #[serde(default)]
    pub policy_type: PolicyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_kubewarden_version: Option<String>,
}

fn default_true() -> bool {
    true
}

/// One thing wrong with a metadata document, named by its path (`rules[1].resources`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a metadata document was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata is not valid YAML or has a wrong field type: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("metadata in the module is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("metadata is invalid: {}", join(.0))]
    Invalid(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
}

impl Metadata {
    /// Parses `metadata.yml`, refusing unknown top-level keys.
    ///
    /// The result is not validated yet: [`Metadata::validate`] runs once the protocol version
    /// is known.
    pub fn from_yaml(text: &str) -> Result<Self, MetadataError> {
        let document: serde_yaml::Value = serde_yaml::from_str(text)?;
        let unknown: Vec<Problem> = document
            .as_mapping()
            .into_iter()
            .flat_map(|mapping| mapping.keys())
            .filter_map(|key| {
                let name = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
                if KNOWN_KEYS.contains(&name.as_str()) {
                    return None;
                }
                let message = RETIRED_KEYS.iter().find(|(retired, _)| *retired == name).map_or_else(
                    || format!("unknown key, expected one of {}", KNOWN_KEYS.join(", ")),
                    |(_, message)| (*message).to_owned(),
                );
                Some(Problem { path: name, message })
            })
            .collect();
        if !unknown.is_empty() {
            return Err(MetadataError::Invalid(unknown));
        }
        Ok(serde_yaml::from_value(document)?)
    }

    /// Parses the JSON stored in a module's custom section (lenient: unknown keys written by
    /// newer tools are ignored, as policy-evaluator does).
    pub fn from_json(bytes: &[u8]) -> Result<Self, MetadataError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Whether the policy reads Kubernetes resources (lists any in `contextAwareResources`).
    pub fn is_context_aware(&self) -> bool {
        !self.context_aware_resources.is_empty()
    }

    /// An annotation value, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .as_ref()
            .and_then(|annotations| annotations.get(key))
            .map(String::as_str)
    }

    /// Sets (or replaces) an annotation.
    pub fn set_annotation(&mut self, key: &str, value: String) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value);
    }

    /// Checks everything policy-evaluator checks (rules as the Kubernetes API server checks
    /// them, protocol version of waPC modules) plus the annotations a published policy needs.
    /// Every problem is reported, not only the first.
    pub fn validate(&self) -> Result<(), MetadataError> {
        let mut problems = Vec::new();
        if self.execution_mode == ExecutionMode::KubewardenWapc
            && matches!(self.protocol_version, None | Some(ProtocolVersion::Unknown))
        {
            problems.push(problem(
                "protocolVersion",
                "a kubewarden-wapc module must speak a known protocol version (v1)",
            ));
        }
        if self.policy_type == PolicyType::Kubernetes && self.rules.is_empty() {
            problems.push(problem(
                "rules",
                "a Kubernetes policy needs at least one rule, or it never runs",
            ));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            validate_rule(&format!("rules[{index}]"), rule, &mut problems);
        }
        for key in REQUIRED_ANNOTATIONS {
            match self.annotation(key) {
                Some(value) if !value.trim().is_empty() => {}
                _ => problems.push(problem(
                    &format!("annotations.{key}"),
                    "required annotation is missing or empty",
                )),
            }
        }
        if let Some(version) = self.annotation(ANNOTATION_VERSION)
            && !version.trim().is_empty()
            && !is_semver(version)
        {
            problems.push(problem(
                &format!("annotations.{ANNOTATION_VERSION}"),
                &format!("{version:?} is not a semantic version like 1.2.3 (no leading v)"),
            ));
        }
        if let Some(oci_url) = self.annotation(ANNOTATION_OCI_URL)
            && (oci_url.contains("://") || oci_url.rsplit('/').next().is_some_and(|last| last.contains(':')))
        {
            problems.push(problem(
                &format!("annotations.{ANNOTATION_OCI_URL}"),
                &format!("{oci_url:?} must be a repository without scheme or tag, like ghcr.io/org/policy"),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(MetadataError::Invalid(problems))
        }
    }
}

fn problem(path: &str, message: &str) -> Problem {
    Problem {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

fn validate_rule(path: &str, rule: &Rule, problems: &mut Vec<Problem>) {
    for (field, values) in [("apiGroups", &rule.api_groups), ("apiVersions", &rule.api_versions)] {
        if values.is_empty() {
            problems.push(problem(&format!("{path}.{field}"), "must list at least one value"));
        } else if values.len() > 1 && values.iter().any(|value| value == "*") {
            problems.push(problem(
                &format!("{path}.{field}"),
                "no other value may be listed with '*'",
            ));
        }
    }
    if rule.operations.is_empty() {
        problems.push(problem(
            &format!("{path}.operations"),
            "must list at least one operation",
        ));
    } else if rule.operations.len() > 1 && rule.operations.contains(&Operation::All) {
        problems.push(problem(
            &format!("{path}.operations"),
            "no other operation may be listed with '*'",
        ));
    }
    if rule.resources.is_empty() {
        problems.push(problem(&format!("{path}.resources"), "must list at least one resource"));
    } else if let Err(message) = check_resources(&rule.resources) {
        problems.push(problem(&format!("{path}.resources"), &message));
    }
}

/// The Kubernetes API server's check of a rule's resources (wildcards and sub-resources),
/// as policy-evaluator transposes it.
fn check_resources(resources: &[String]) -> Result<(), String> {
    let mut with_wildcard_subresource = BTreeSet::new();
    let mut subresource_of_wildcard = BTreeSet::new();
    let mut has_double_wildcard = false;
    let mut has_single_wildcard = false;
    let mut has_plain_resource = false;
    for resource in resources {
        if resource.is_empty() {
            return Err("an empty resource is not allowed".to_owned());
        }
        match resource.as_str() {
            "*/*" => has_double_wildcard = true,
            "*" => has_single_wildcard = true,
            _ => {}
        }
        let Some((name, sub)) = resource.split_once('/') else {
            has_plain_resource |= resource != "*";
            continue;
        };
        if with_wildcard_subresource.contains(name) {
            return Err(format!("'{name}/*' is present, so {resource} must not be listed"));
        }
        if subresource_of_wildcard.contains(sub) {
            return Err(format!("'*/{sub}' is present, so {resource} must not be listed"));
        }
        if sub == "*" {
            with_wildcard_subresource.insert(name);
        }
        if name == "*" {
            subresource_of_wildcard.insert(sub);
        }
    }
    if resources.len() > 1 && has_double_wildcard {
        return Err("'*/*' is present, so no other resource may be listed".to_owned());
    }
    if has_single_wildcard && has_plain_resource {
        return Err("'*' is present, so no other resource without sub-resource may be listed".to_owned());
    }
    Ok(())
}

/// `MAJOR.MINOR.PATCH` with optional `-pre` and `+build` parts.
fn is_semver(version: &str) -> bool {
    let core = version.split_once('+').map_or(version, |(core, _)| core);
    let core = core.split_once('-').map_or(core, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && (part.len() == 1 || !part.starts_with('0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods", "pods/ephemeralcontainers"]
    operations: ["CREATE", "UPDATE"]
mutating: true
annotations:
  io.kubewarden.policy.title: demo
  io.kubewarden.policy.version: 1.2.3
  io.kubewarden.policy.description: a demo
"#;

    fn valid() -> Metadata {
        let mut metadata = Metadata::from_yaml(VALID).expect("fixture parses");
        metadata.protocol_version = Some(ProtocolVersion::V1);
        metadata
    }

    #[test]
    fn defaults_match_policy_evaluator() {
        let metadata = valid();
        assert!(metadata.background_audit);
        assert!(!metadata.is_context_aware());
        assert!(metadata.host_capabilities.is_none());
        assert_eq!(metadata.execution_mode, ExecutionMode::KubewardenWapc);
        assert_eq!(metadata.policy_type, PolicyType::Kubernetes);
        assert!(metadata.validate().is_ok());
    }

    #[test]
    fn json_uses_kubewarden_field_names() {
        let json = serde_json::to_value(valid()).expect("serialises");
        assert_eq!(json["protocolVersion"], "v1");
        assert_eq!(json["executionMode"], "kubewarden-wapc");
        assert_eq!(json["backgroundAudit"], true);
        assert_eq!(json["rules"][0]["apiVersions"][0], "v1");
        assert!(json.get("contextAwareResources").is_none());
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let text = VALID.replace("mutating: true", "mutating: true\nmutatng: false");
        let error = Metadata::from_yaml(&text).expect_err("typo refused").to_string();
        assert!(
            error.starts_with("metadata is invalid: mutatng: unknown key"),
            "{error}"
        );
    }

    #[test]
    fn retired_keys_say_what_to_write_instead() {
        let text = format!("{VALID}contextAware: false\nlabels:\n  tier: security\n");
        let error = Metadata::from_yaml(&text).expect_err("retired keys").to_string();
        assert!(
            error.contains("contextAware: contextAware is no longer a Kubewarden metadata key"),
            "{error}"
        );
        assert!(
            error.contains("labels: labels is not a Kubewarden metadata key"),
            "{error}"
        );
    }

    #[test]
    fn host_capabilities_are_kubewarden_call_paths() {
        let text = format!("{VALID}hostCapabilities:\n  - oci/v2/verify\n  - oci/v1/*\n");
        let metadata = Metadata::from_yaml(&text).expect("known calls");
        let json = serde_json::to_value(&metadata).expect("serialises");
        assert_eq!(
            json["hostCapabilities"],
            serde_json::json!(["oci/v1/*", "oci/v2/verify"])
        );
        let text = format!("{VALID}hostCapabilities:\n  - oci/v2/verify_everything\n");
        let error = Metadata::from_yaml(&text).expect_err("unknown call").to_string();
        assert!(error.contains("oci/v2/verify_everything"), "{error}");
    }

    #[test]
    fn json_of_older_modules_with_retired_keys_still_reads() {
        let json = br#"{"protocolVersion":"v1","rules":[],"mutating":false,"contextAware":false,"labels":{"a":"b"}}"#;
        let metadata = Metadata::from_json(json).expect("lenient");
        assert!(!metadata.is_context_aware());
    }

    #[test]
    fn unknown_execution_mode_is_refused() {
        let text = format!("{VALID}executionMode: docker\n");
        let error = Metadata::from_yaml(&text).expect_err("bad mode").to_string();
        assert!(error.contains("docker"), "{error}");
    }

    #[test]
    fn missing_protocol_version_is_refused_for_wapc() {
        let mut metadata = valid();
        metadata.protocol_version = None;
        let error = metadata.validate().expect_err("no protocol").to_string();
        assert!(error.contains("protocolVersion"), "{error}");
        metadata.execution_mode = ExecutionMode::Opa;
        assert!(metadata.validate().is_ok());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut metadata = valid();
        metadata.rules[0].api_groups = vec![String::new(), "*".to_owned()];
        metadata.rules[0].operations = vec![Operation::All, Operation::Create];
        metadata.set_annotation(ANNOTATION_VERSION, "v1.2".to_owned());
        metadata.annotations.as_mut().map(|a| a.remove(ANNOTATION_TITLE));
        let MetadataError::Invalid(problems) = metadata.validate().expect_err("invalid") else {
            panic!("expected validation problems");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "rules[0].apiGroups",
                "rules[0].operations",
                "annotations.io.kubewarden.policy.title",
                "annotations.io.kubewarden.policy.version",
            ]
        );
    }

    #[test]
    fn resources_follow_the_api_server_rules() {
        let ok = |r: &[&str]| check_resources(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&["*", "a/b", "a/*", "*/b"]).is_ok());
        assert!(ok(&["a/*", "a"]).is_ok());
        assert!(ok(&["*", "a"]).is_err());
        assert!(ok(&["a/*", "a/x"]).is_err());
        assert!(ok(&["*/a", "x/a"]).is_err());
        assert!(ok(&["*/*", "pods"]).is_err());
        assert!(ok(&[""]).is_err());
    }

    #[test]
    fn no_rules_is_refused_for_kubernetes_policies() {
        let mut metadata = valid();
        metadata.rules.clear();
        assert!(metadata.validate().is_err());
    }

    #[test]
    fn semver_check() {
        assert!(is_semver("0.1.0"));
        assert!(is_semver("1.0.0-rc.1+build.5"));
        assert!(!is_semver("v0.1.0"));
        assert!(!is_semver("0.1"));
        assert!(!is_semver("01.1.0"));
    }

    #[test]
    fn oci_url_with_tag_is_refused() {
        let mut metadata = valid();
        metadata.set_annotation(ANNOTATION_OCI_URL, "ghcr.io/org/policy:v1".to_owned());
        assert!(metadata.validate().is_err());
        metadata.set_annotation(ANNOTATION_OCI_URL, "localhost:5000/org/policy".to_owned());
        assert!(metadata.validate().is_ok());
    }
}
