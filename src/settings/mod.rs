//! The policy's settings: `ClusterImagePolicy` documents parsed once into a validated model.
//!
//! [`Settings::parse`] does everything `validate` needs (shape, meaning, compiled globs) and is
//! cheap; [`Settings::check_material`] adds the expensive checks of keys, certificates and
//! regular expressions, which `validate_settings` runs once when the policy is loaded.
//! Every error names the path of the field and says how to fix it.

pub mod raw;

use std::fmt;
use std::rc::Rc;

use crate::authority::{self, Authority};
use crate::matching::{
    ImageMatcher, LabelExpression, LabelSelector, MatchRule, Subject, check_glob_syntax, normalise_image_glob,
};
use crate::policy::{Language, PolicyBlock};
use raw::{RawLabelSelector, RawPolicy, RawSettings};

const API_VERSIONS: [&str; 2] = ["policy.sigstore.dev/v1beta1", "policy.sigstore.dev/v1alpha1"];

/// A settings error: the path of the offending field and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SettingsError {
    pub path: String,
    pub message: String,
}

impl SettingsError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What happens when a policy does not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The workload is refused.
    Enforce,
    /// The workload is admitted with a warning.
    Warn,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
        })
    }
}

/// What happens to an image that no policy covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMatchPolicy {
    Allow,
    Warn,
    Deny,
}

/// One `ClusterImagePolicy`, validated.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub mode: Mode,
    /// `spec.match`; empty means everywhere.
    pub rules: Vec<MatchRule>,
    /// Tried in order; the first that passes is enough (all are tried when `policy` is set).
    pub authorities: Vec<Authority>,
    /// `spec.policy`, compiled: decides over the results of every authority.
    pub policy: Option<PolicyBlock>,
}

impl Policy {
    /// Whether the policy's `match` covers the subject (namespace, resource, labels).
    pub fn applies_to(&self, subject: &Subject<'_>) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.matches(subject))
    }
}

/// Keeps the model of the last settings seen, so that an instance evaluating many requests
/// under the same settings parses them once. The whole settings text is the key: equal text,
/// equal model.
#[derive(Default)]
pub struct SettingsCache {
    last: Option<(String, Rc<Settings>)>,
}

impl SettingsCache {
    /// The model of `json`, parsed now or reused.
    pub fn get(&mut self, json: &str) -> Result<Rc<Settings>, SettingsError> {
        if let Some((text, settings)) = &self.last
            && text == json
        {
            return Ok(Rc::clone(settings));
        }
        let settings = Rc::new(Settings::parse(json)?);
        self.last = Some((json.to_owned(), Rc::clone(&settings)));
        Ok(settings)
    }
}

/// The validated settings.
pub struct Settings {
    pub policies: Vec<Policy>,
    pub no_match: NoMatchPolicy,
    pub pin_digests: bool,
    pub images: ImageMatcher,
    /// Every glob with the path of its field, for the syntax check of `check_material`.
    globs: Vec<(String, String)>,
}

impl Settings {
    /// Parses settings JSON into the validated model (no deep key checks).
    pub fn parse(json: &str) -> Result<Self, SettingsError> {
        // The plain parser is twice as fast; the path-tracking one only runs to explain an error.
        let raw: RawSettings = match serde_json::from_str(json) {
            Ok(raw) => raw,
            Err(_) => {
                let de = &mut serde_json::Deserializer::from_str(json);
                let error = match serde_path_to_error::deserialize::<_, RawSettings>(de) {
                    Ok(_) => return Err(SettingsError::new("settings", "cannot be read")),
                    Err(e) => e,
                };
                let path = error.path().to_string();
                let path = if path == "." { "settings".to_owned() } else { path };
                return Err(SettingsError::new(path, error.into_inner().to_string()));
            }
        };
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> Result<Self, SettingsError> {
        let no_match = match raw.no_match_policy.as_deref() {
            // policy-controller ships `warn`: an image no policy covers is admitted, visibly.
            None | Some("warn") => NoMatchPolicy::Warn,
            Some("allow") => NoMatchPolicy::Allow,
            Some("deny") => NoMatchPolicy::Deny,
            Some(other) => {
                return Err(SettingsError::new(
                    "noMatchPolicy",
                    format!("unknown value `{other}`: use allow, warn or deny"),
                ));
            }
        };
        let mut policies = Vec::with_capacity(raw.policies.len());
        let mut patterns = Vec::new();
        let mut all_globs = Vec::new();
        for (index, raw_policy) in raw.policies.into_iter().enumerate() {
            let (policy, globs) = parse_policy(raw_policy, index, &mut all_globs)?;
            if let Some(other) = policies.iter().position(|p: &Policy| p.name == policy.name) {
                return Err(SettingsError::new(
                    format!("policies[{index}].metadata.name"),
                    format!(
                        "`{}` is already the name of policies[{other}]: names must be unique",
                        policy.name
                    ),
                ));
            }
            patterns.extend(globs.into_iter().map(|g| (g, index)));
            policies.push(policy);
        }
        let images = ImageMatcher::new(patterns);
        Ok(Self {
            policies,
            no_match,
            pin_digests: raw.modify_images_with_digest.unwrap_or(true),
            images,
            globs: all_globs,
        })
    }

    /// Remarks on valid settings that are probably not what the author meant (for now: CUE
    /// imports a policy never uses, which real CUE refuses). `cip` prints them as warnings.
    pub fn lint(&self) -> Vec<String> {
        self.policies
            .iter()
            .filter_map(|p| match &p.policy {
                Some(PolicyBlock {
                    language: Language::Cue(program),
                    ..
                }) if !program.unused_imports().is_empty() => Some(format!(
                    "policy {}: spec.policy imports {} but never uses it (accepted; real CUE refuses unused imports)",
                    p.name,
                    program
                        .unused_imports()
                        .iter()
                        .map(|i| format!("\"{i}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => None,
            })
            .collect()
    }

    /// Deep checks of every glob, key, certificate and regular expression.
    pub fn check_material(&self) -> Result<(), SettingsError> {
        for (path, glob) in &self.globs {
            check_glob_syntax(glob).map_err(|e| SettingsError::new(path, format!("glob `{glob}`: {e}")))?;
        }
        self.policies
            .iter()
            .flat_map(|p| &p.authorities)
            .try_for_each(Authority::check_material)
    }
}

/// Parses one policy; its globs are returned for the matcher and recorded, with their field
/// paths, in `syntax_checks`.
fn parse_policy(
    raw: RawPolicy,
    index: usize,
    syntax_checks: &mut Vec<(String, String)>,
) -> Result<(Policy, Vec<String>), SettingsError> {
    let path = format!("policies[{index}]");
    let err = |field: &str, message: String| SettingsError::new(format!("{path}.{field}"), message);
    if let Some(api) = raw.api_version.as_deref()
        && !API_VERSIONS.contains(&api)
    {
        return Err(err(
            "apiVersion",
            format!("unknown apiVersion `{api}`: use policy.sigstore.dev/v1beta1"),
        ));
    }
    if let Some(kind) = raw.kind.as_deref()
        && kind != "ClusterImagePolicy"
    {
        return Err(err("kind", format!("kind `{kind}` is not a ClusterImagePolicy")));
    }
    let name = match raw.metadata.and_then(|m| m.name) {
        Some(n) if !n.trim().is_empty() => n,
        _ => {
            return Err(err(
                "metadata.name",
                "every policy needs a name: it is quoted in every message".to_owned(),
            ));
        }
    };
    let spec = raw
        .spec
        .ok_or_else(|| err("spec", "the policy has no spec: give at least spec.images".to_owned()))?;
    let policy_block = spec
        .policy
        .as_ref()
        .map(|raw| PolicyBlock::parse(raw, &format!("{path}.spec.policy")))
        .transpose()?;
    let mode = match spec.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("warn") => Mode::Warn,
        Some(other) => return Err(err("spec.mode", format!("unknown mode `{other}`: use enforce or warn"))),
    };
    let images = spec.images.unwrap_or_default();
    if images.is_empty() {
        return Err(err(
            "spec.images",
            "spec.images is empty: list the image globs the policy covers (\"**\" for all)".to_owned(),
        ));
    }
    let mut globs = Vec::new();
    for (i, image) in images.into_iter().enumerate() {
        let field = format!("spec.images[{i}]");
        if image.regex.is_some() {
            return Err(err(
                &format!("{field}.regex"),
                "regex is not supported (it was dropped in v1beta1): use glob".to_owned(),
            ));
        }
        let glob = image
            .glob
            .ok_or_else(|| err(&format!("{field}.glob"), "glob is required".to_owned()))?;
        let normalised = normalise_image_glob(&glob).map_err(|e| err(&format!("{field}.glob"), e))?;
        syntax_checks.extend(normalised.iter().map(|g| (format!("{path}.{field}.glob"), g.clone())));
        globs.extend(normalised);
    }
    let rules = spec
        .match_
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let field = format!("spec.match[{i}]");
            if m.namespaces.is_none()
                && m.resource.is_none()
                && m.group.is_none()
                && m.version.is_none()
                && m.selector.is_none()
            {
                return Err(err(
                    &field,
                    "the match entry is empty: give namespaces, resource or selector".to_owned(),
                ));
            }
            if m.namespaces.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    &format!("{field}.namespaces"),
                    "namespaces is empty, so this entry would match no namespace and the policy would never apply through it: list the namespaces, or remove the field to match every namespace".to_owned(),
                ));
            }
            for (j, ns) in m.namespaces.iter().flatten().enumerate() {
                if ns.contains(['*', '?']) {
                    syntax_checks.push((format!("{path}.{field}.namespaces[{j}]"), ns.clone()));
                }
            }
            let selector = m
                .selector
                .map(|s| parse_selector(s).map_err(|e| err(&format!("{field}.selector"), e)))
                .transpose()?;
            MatchRule::new(m.namespaces, m.group, m.version, m.resource, selector)
                .map_err(|e| err(&format!("{field}.namespaces"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let authorities = spec
        .authorities
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, a)| authority::parse(a, i, &format!("{path}.spec.authorities[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((i, dup)) = authorities
        .iter()
        .enumerate()
        .find(|(i, a)| authorities[..*i].iter().any(|b| b.name == a.name))
    {
        return Err(err(
            &format!("spec.authorities[{i}].name"),
            format!("`{}` names two authorities: names must be unique", dup.name),
        ));
    }
    Ok((
        Policy {
            name,
            mode,
            rules,
            authorities,
            policy: policy_block,
        },
        globs,
    ))
}

fn parse_selector(raw: RawLabelSelector) -> Result<LabelSelector, String> {
    let mut selector = LabelSelector {
        match_labels: raw.match_labels.unwrap_or_default(),
        expressions: Vec::new(),
    };
    for (i, e) in raw.match_expressions.unwrap_or_default().into_iter().enumerate() {
        let values = e.values.unwrap_or_default();
        let expr = match (e.operator.as_str(), values.is_empty()) {
            ("In", false) => LabelExpression::In(e.key, values),
            ("NotIn", false) => LabelExpression::NotIn(e.key, values),
            ("Exists", true) => LabelExpression::Exists(e.key),
            ("DoesNotExist", true) => LabelExpression::DoesNotExist(e.key),
            ("In" | "NotIn", true) => return Err(format!("matchExpressions[{i}]: {} needs values", e.operator)),
            ("Exists" | "DoesNotExist", false) => {
                return Err(format!("matchExpressions[{i}]: {} takes no values", e.operator));
            }
            (other, _) => {
                return Err(format!(
                    "matchExpressions[{i}]: unknown operator `{other}` (In, NotIn, Exists, DoesNotExist)"
                ));
            }
        };
        selector.expressions.push(expr);
    }
    Ok(selector)
}
