//! The policy's settings: `ClusterImagePolicy` documents parsed once into a validated model.
//!
//! `validate` reads settings with [`Settings::parse_lazy`]: of every policy what decides whether
//! its images cover an image (name, mode, globs), with strings borrowed from the settings text;
//! a policy's `match` is parsed the first time its globs cover an image of a request
//! ([`Settings::applies`]), its authorities and `spec.policy` the first time it covers one
//! ([`Settings::body`]), so a policy that covers nothing costs no namespace, key, identity or
//! CUE parsing (Kubewarden's policy-server reads the settings again in every fresh instance).
//! The deferred parts are still checked as JSON when the skeleton is read. That skeleton, and the
//! `match` and key authorities of a policy that covers an image, are read by walking the
//! settings text when it is written plainly (`skeleton.rs`), by serde's derive ([`raw`])
//! otherwise: the derive is the reference, and names the field of every error.
//! [`Settings::parse`] reads every policy whole, and [`Settings::check_material`] adds the
//! expensive checks of keys, certificates and regular expressions: `validate_settings` runs both
//! when the policy is loaded.
//! Every error names the path of the field and says how to fix it.

pub mod raw;
mod skeleton;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;

use serde_json::Value;

use crate::authority::{self, Authority};
use crate::matching::{
    GlobReader, ImageGlob, ImageMatcher, LabelExpression, LabelSelector, MatchRule, Subject, check_glob_syntax,
    label_key_error, label_value_error,
};
use crate::policy::{Language, PolicyBlock};
use crate::reference::ImageReference;
use raw::{JsonText, RawAuthority, RawLabelSelector, RawMatch, RawPolicy, RawSettings, RawSpec};

const API_VERSIONS: [&str; 2] = ["policy.sigstore.dev/v1beta1", "policy.sigstore.dev/v1alpha1"];

/// Why settings without `policies` are refused, and the fix.
pub const MISSING_POLICIES: &str = "required, and missing: list the ClusterImagePolicy documents to enforce here, or \
     write `policies: []` to mean no policies (every image then gets noMatchPolicy). Kubewarden passes `{}` when a \
     ClusterAdmissionPolicy has no spec.settings: refused, rather than admitting every image";

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

impl Mode {
    /// The mode as written in `spec.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// Position in `policies`, for the paths of messages.
    index: usize,
    /// Where `spec.match`, `spec.authorities` and `spec.policy` are in the settings text.
    deferred: Deferred,
    /// `spec.match` (empty: everywhere), parsed the first time the policy covers an image
    /// ([`Settings::applies`]).
    rules: OnceCell<Box<Result<Vec<MatchRule>, SettingsError>>>,
    /// The authorities and `spec.policy`, parsed on first use ([`Settings::body`]).
    ///
    /// Both boxed: most policies of a request cover none of its images and never parse them,
    /// and a fresh instance writes every `Policy` into pages it touches for the first time
    /// (168 bytes a policy in wasm unboxed, 64 boxed; docs/benchmarks.md, twenty-second pass).
    body: OnceCell<Box<Result<PolicyBody, SettingsError>>>,
}

/// What a policy decides with, parsed only for a policy that covers an image.
#[derive(Debug)]
pub struct PolicyBody {
    /// Tried in order; the first that passes is enough (all are tried when `policy` is set).
    pub authorities: Vec<Authority>,
    /// `spec.policy`, compiled: decides over the results of every authority.
    pub policy: Option<PolicyBlock>,
}

/// Byte ranges of a policy's deferred fields in the settings text.
#[derive(Debug)]
struct Deferred {
    match_: Option<Range<usize>>,
    authorities: Option<Range<usize>>,
    policy: Option<Range<usize>>,
}

/// Keeps the model of the last settings seen, so that an instance evaluating many requests
/// under the same settings parses them once. The whole settings text is the key: equal text,
/// equal model.
///
/// Keeping a model means keeping a copy of its text (the deferred fields are read from it, and
/// the next payload's settings are compared with it), and a fresh instance (Kubewarden's
/// policy-server gives one to every evaluation) would write that copy into pages of its memory
/// touched for nothing: tens of KB, a page fault each 4 KiB (docs/benchmarks.md, twenty-first
/// pass). So the first settings an instance reads are read from the payload and not kept; an
/// instance that reads settings a second time serves several calls, and keeps them from then
/// on.
#[derive(Default)]
pub struct SettingsCache {
    last: Option<Rc<Settings<'static>>>,
    /// The model of the first settings this instance read, without their text
    /// ([`SettingsCache::retire`]), freed when it reads settings again.
    retired: Option<Settings<'static>>,
    /// Whether settings were read before in this instance.
    read_before: bool,
}

impl SettingsCache {
    /// The model of `json`, read now (lazily: [`Settings::parse_lazy`]) or reused. The caller
    /// hands it back to [`SettingsCache::retire`] when its call ends.
    pub fn get<'p>(&mut self, json: &'p str) -> Result<Rc<Settings<'p>>, SettingsError> {
        if let Some(settings) = &self.last
            && same_text(&settings.source, json)
        {
            return Ok(Rc::clone(settings));
        }
        self.retired = None;
        let settings = Settings::parse_lazy(json)?;
        if !std::mem::replace(&mut self.read_before, true) {
            return Ok(Rc::new(settings));
        }
        let settings = Rc::new(settings.into_owned());
        self.last = Some(Rc::clone(&settings));
        Ok(settings)
    }

    /// Takes back a model [`SettingsCache::get`] gave for one call. The model of the first
    /// settings an instance reads, which is not kept, is not freed now either: freeing its
    /// hundreds of allocations one by one costs ≈ 50,000 instructions for 20 policies
    /// (docs/benchmarks.md, twenty-first pass), which a fresh instance, thrown away after this
    /// call, need not pay. Its text (the caller's) is let go, and the rest is freed when the
    /// instance reads settings again.
    pub fn retire(&mut self, settings: Rc<Settings<'_>>) {
        if let Ok(settings) = Rc::try_unwrap(settings) {
            self.retired = Some(settings.with_source(Cow::Borrowed("")));
        }
    }

    /// Whether a model is retired (tests).
    #[cfg(test)]
    pub(crate) fn holds_retired(&self) -> bool {
        self.retired.is_some()
    }

    /// When `payload` ends with the cached settings as its last member
    /// (`…,"settings":<cached text>}`, as Kubewarden's hosts and `cip` write it), the payload
    /// before that member and the cached model: the caller then reads only the rest of the
    /// payload, instead of scanning tens of KB of settings text to find where it ends
    /// (docs/benchmarks.md). `None` when nothing is cached or the payload ends otherwise.
    pub fn split_cached<'p>(&self, payload: &'p [u8]) -> Option<(&'p [u8], Rc<Settings<'static>>)> {
        const MEMBER: &[u8] = b",\"settings\":";
        let settings = self.last.as_ref()?;
        let text = settings.source.as_bytes();
        let body = payload.strip_suffix(b"}")?;
        let at = body.len().checked_sub(text.len())?;
        let (head, tail) = body.split_at(at);
        (same_bytes(tail, text) && head.ends_with(MEMBER))
            .then(|| (&head[..head.len() - MEMBER.len()], Rc::clone(settings)))
    }
}

/// `a == b`, 32 bytes at a time. The settings (tens of KB with their keys) come with every
/// request and are compared with the cached text each time; in wasm `memcmp` compares one byte
/// per step, which made this comparison ≈ 10 % of a warm evaluation, and one word per step
/// still ≈ 4 % (docs/benchmarks.md): each step of a loop pays its bounds and epoch checks, so
/// four words are compared per step, with one branch.
fn same_text(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same_text`] on bytes.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |chunk: &[u8], at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&chunk[at..at + 8]);
        u64::from_ne_bytes(bytes)
    };
    let (blocks_a, blocks_b) = (a.chunks_exact(32), b.chunks_exact(32));
    let (rest_a, rest_b) = (blocks_a.remainder(), blocks_b.remainder());
    let differ = |x: &[u8], y: &[u8]| {
        [0, 8, 16, 24]
            .iter()
            .fold(0, |bits, &at| bits | (word(x, at) ^ word(y, at)))
    };
    blocks_a.zip(blocks_b).all(|(x, y)| differ(x, y) == 0) && rest_a == rest_b
}

/// The validated settings, read from the text `'s` borrows (or owns: [`Settings::into_owned`]).
pub struct Settings<'s> {
    pub policies: Vec<Policy>,
    pub no_match: NoMatchPolicy,
    pub pin_digests: bool,
    pub images: ImageMatcher,
    /// Every glob with the path of its field, for the syntax check of `check_material` (not
    /// recorded by [`Settings::parse_lazy`]).
    globs: Option<Vec<(String, String)>>,
    /// The settings text (the deferred fields are read from it).
    source: Cow<'s, str>,
}

/// For the fuzz targets (built with `--cfg fuzzing`): `Ok` when the skeleton walk
/// (`skeleton.rs`) leaves `json` to serde's derive, or reads it exactly as the derive does;
/// otherwise what differs.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn skeleton_walk_agrees(json: &str) -> Result<(), String> {
    skeleton::agreement(json)
}

/// Reads `json` as `T`; on failure, reads it again tracking the path to name the field (the
/// plain parser is twice as fast, the path-tracking one only runs to explain an error).
/// `prefix` is the path of the document inside the settings.
fn read<'a, T: serde::Deserialize<'a>>(json: &'a str, prefix: &dyn fmt::Display) -> Result<T, SettingsError> {
    if let Ok(value) = serde_json::from_str(json) {
        return Ok(value);
    }
    let prefix = prefix.to_string();
    let prefix = prefix.as_str();
    let de = &mut serde_json::Deserializer::from_str(json);
    let error = match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(_) => return Err(SettingsError::new(prefix_or_settings(prefix), "cannot be read")),
        Err(e) => e,
    };
    let path = error.path().to_string();
    let path = match (prefix, path.as_str()) {
        (_, ".") => prefix_or_settings(prefix).to_owned(),
        ("", _) => path,
        (_, p) if p.starts_with('[') => format!("{prefix}{p}"),
        (_, p) => format!("{prefix}.{p}"),
    };
    Err(SettingsError::new(path, error.into_inner().to_string()))
}

fn prefix_or_settings(prefix: &str) -> &str {
    if prefix.is_empty() { "settings" } else { prefix }
}

impl<'t> Settings<'t> {
    /// The settings text this model was read from (tests compare models by it).
    #[cfg(test)]
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Parses settings JSON into the validated model, every policy whole (no deep key checks):
    /// [`Settings::parse_lazy`], then the `match` of every policy, then its authorities and
    /// `spec.policy`.
    pub fn parse(json: &'t str) -> Result<Self, SettingsError> {
        let mut settings = Self::read(json, true)?;
        // Every policy's `match` first: an error in any `match` is reported before an error in
        // any authority.
        let mut namespaces = Vec::new();
        for policy in &settings.policies {
            settings.rules(policy, Some(&mut namespaces)).map_err(Clone::clone)?;
        }
        if let Some(globs) = settings.globs.as_mut() {
            globs.extend(namespaces);
        }
        for policy in &settings.policies {
            settings.body(policy).map_err(Clone::clone)?;
        }
        Ok(settings)
    }

    /// Reads settings JSON for `validate`: the top level, and of every policy what decides
    /// whether it covers an image (name, mode, `images`). A policy's `spec.match` is parsed the
    /// first time its images cover one ([`Settings::applies`]), its `spec.authorities` and
    /// `spec.policy` the first time it covers one that way ([`Settings::body`]);
    /// `validate_settings` parses everything ([`Settings::parse`]) and refuses what would fail
    /// then.
    pub fn parse_lazy(json: &'t str) -> Result<Self, SettingsError> {
        Self::read(json, false)
    }

    /// [`Settings::parse_lazy`]; `check_globs`: also record every glob with the path of its
    /// field, for [`Settings::check_material`].
    fn read(json: &'t str, check_globs: bool) -> Result<Self, SettingsError> {
        let base = json.as_ptr() as usize;
        let range = |raw: JsonText<'_>| {
            let start = raw.0.as_ptr() as usize - base;
            start..start + raw.0.len()
        };
        let raw: RawSettings<'_> = match skeleton::read(json) {
            Some(raw) => raw,
            None => read(json, &"")?,
        };
        let mut globs = GlobReader::default();
        let mut settings = Self::build(raw, check_globs, |raw_policy, index, syntax_checks, patterns| {
            parse_policy(raw_policy, index, syntax_checks, &mut globs, patterns, |spec| {
                Deferred {
                    match_: spec.match_.map(range),
                    authorities: spec.authorities.map(range),
                    policy: spec.policy.map(range),
                }
            })
        })?;
        settings.source = Cow::Borrowed(json);
        Ok(settings)
    }

    /// The same model, with its own copy of the text, to be kept beyond the text's lifetime
    /// (what the deferred fields parsed so far hold is kept as it is).
    pub fn into_owned(self) -> Settings<'static> {
        let source = Cow::Owned(self.source.to_string());
        self.with_source(source)
    }

    /// The same model read from `source` (the same text, or none for a model no longer read).
    fn with_source<'u>(self, source: Cow<'u, str>) -> Settings<'u> {
        Settings {
            policies: self.policies,
            no_match: self.no_match,
            pin_digests: self.pin_digests,
            images: self.images,
            globs: self.globs,
            source,
        }
    }

    /// The policies whose globs cover `reference`, in the order of the settings (their `match`
    /// not asked yet).
    pub fn covering<'s, 'r>(&'s self, reference: &'r ImageReference) -> impl Iterator<Item = &'s Policy> + use<'s, 'r> {
        self.images.policies_for(reference).filter_map(|i| self.policies.get(i))
    }

    /// Whether `policy` covers `reference` in `subject` as policy-controller would at most: its
    /// globs read narrowly ([`ImageMatcher::covers_narrowly`]), and its `match` (if any) by an
    /// entry read narrowly ([`MatchRule::matches_narrowly`]: an entry that leaves out some of
    /// `group`, `version` and `resource`, gives `*` for a group or resource, or names objects
    /// policy-controller's kind table does not apply it to, applies here more widely than in
    /// policy-controller). Asked of the policies that admit without a signature.
    pub fn covers_narrowly(&self, policy: &Policy, reference: &ImageReference, subject: &Subject<'_>) -> bool {
        self.images.covers_narrowly(policy.index, reference)
            && self
                .rules(policy, None)
                .is_ok_and(|rules| rules.is_empty() || rules.iter().any(|rule| rule.matches_narrowly(subject)))
    }

    /// When `policy` applies to `subject` through its `match` only as this module reads it, not
    /// as policy-controller would ([`MatchRule::matches_narrowly`]), each entry that does so and
    /// why (`spec.match[0]: …`), for a denial's message; `None` when an entry applies narrowly
    /// or the policy has no `match` (then its globs are why).
    pub fn match_wider_than_policy_controller(&self, policy: &Policy, subject: &Subject<'_>) -> Option<String> {
        let rules = self.rules(policy, None).ok()?;
        if rules.is_empty() || rules.iter().any(|rule| rule.matches_narrowly(subject)) {
            return None;
        }
        let reasons: Vec<String> = rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.matches(subject))
            .map(
                |(i, rule)| match (rule.policy_controller_gap(), rule.partial_resource()) {
                    (Some(gap), _) => format!("spec.match[{i}]: {gap}"),
                    (None, Some(missing)) => format!(
                        "spec.match[{i}] leaves out {}, which policy-controller compares as \"\": give all three",
                        missing.join(" and ")
                    ),
                    (None, None) => format!("spec.match[{i}]"),
                },
            )
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Whether `policy` (one of [`Settings::policies`]), whose images cover an image, applies to
    /// `subject` (namespace, resource, labels) by its `match`, parsed on first use. An error when
    /// its `match` cannot be read (`validate_settings` refuses such settings).
    pub fn applies<'s>(&'s self, policy: &'s Policy, subject: &Subject<'_>) -> Result<bool, &'s SettingsError> {
        let rules = self.rules(policy, None)?;
        Ok(rules.is_empty() || rules.iter().any(|r| r.matches(subject)))
    }

    /// The `match` rules of `policy`, parsed on first use; `namespaces`: also record every
    /// namespace glob with the path of its field, for [`Settings::check_material`].
    fn rules<'s>(
        &'s self,
        policy: &'s Policy,
        namespaces: Option<&mut Vec<(String, String)>>,
    ) -> Result<&'s [MatchRule], &'s SettingsError> {
        let rules: &Result<Vec<MatchRule>, SettingsError> = policy.rules.get_or_init(|| {
            Box::new(
                self.deferred_list(&policy.deferred.match_, skeleton::matches, policy.index, "match")
                    .and_then(|entries| parse_rules(entries, policy.index, namespaces)),
            )
        });
        rules.as_deref()
    }

    /// The text of one of a policy's deferred fields (`None` when the policy does not give it).
    fn deferred_text(&self, range: &Option<Range<usize>>) -> Option<&str> {
        range.clone().and_then(|r| self.source.get(r))
    }

    /// One of a policy's deferred lists (`spec.match`, `spec.authorities`; empty when not
    /// given): the plain shape read in one pass by `walk`, anything else by the derive, which
    /// names the field of an error (`policies[index].spec.<field>…`).
    fn deferred_list<'s, T: serde::Deserialize<'s>>(
        &'s self,
        range: &Option<Range<usize>>,
        walk: impl FnOnce(&'s str) -> Option<Vec<T>>,
        index: usize,
        field: &str,
    ) -> Result<Vec<T>, SettingsError> {
        let Some(json) = self.deferred_text(range) else {
            return Ok(Vec::new());
        };
        match walk(json) {
            Some(list) => Ok(list),
            None => read(json, &format_args!("policies[{index}].spec.{field}")),
        }
    }

    /// The authorities and `spec.policy` of `policy` (one of [`Settings::policies`]), parsed on
    /// first use.
    pub fn body<'s>(&'s self, policy: &'s Policy) -> Result<&'s PolicyBody, &'s SettingsError> {
        let body: &Result<PolicyBody, SettingsError> = policy.body.get_or_init(|| Box::new(self.read_body(policy)));
        body.as_ref()
    }

    /// Parses the authorities and `spec.policy` of `policy` ([`Settings::body`]).
    fn read_body(&self, policy: &Policy) -> Result<PolicyBody, SettingsError> {
        let authorities = self.deferred_list(
            &policy.deferred.authorities,
            skeleton::authorities,
            policy.index,
            "authorities",
        )?;
        let block = match self.deferred_text(&policy.deferred.policy) {
            Some(json) => {
                let field = format!("policies[{}].spec.policy", policy.index);
                // A slice of valid JSON: it reads.
                let raw: Value = serde_json::from_str(json).map_err(|e| SettingsError::new(&field, e.to_string()))?;
                let block = PolicyBlock::parse(&raw, &field)?;
                if let Some(data) = raw.get("data").and_then(Value::as_str) {
                    refuse_unsupplied_signature_details(data, &authorities, &field)?;
                }
                Some(block)
            }
            None => None,
        };
        parse_body(block, authorities, policy.index)
    }

    fn build(
        raw: RawSettings<'_>,
        check_globs: bool,
        mut parse: impl FnMut(
            RawPolicy<'_>,
            usize,
            Option<&mut Vec<(String, String)>>,
            &mut Vec<(ImageGlob, usize)>,
        ) -> Result<Policy, SettingsError>,
    ) -> Result<Self, SettingsError> {
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
        // Kubewarden passes `{}` to a policy whose ClusterAdmissionPolicy gives no
        // `spec.settings`: read as "no policies", it would admit every image with a warning.
        let Some(raw_policies) = raw.policies else {
            return Err(SettingsError::new("policies", MISSING_POLICIES));
        };
        let mut policies: Vec<Policy> = Vec::with_capacity(raw_policies.len());
        // (hash of a name, index of its policy), sorted: a name given twice is found without a
        // copy of any name.
        let mut names: Vec<(u64, usize)> = Vec::with_capacity(raw_policies.len());
        // Every policy's globs, with the index of their policy, pushed in place: room for all.
        let globs = raw_policies.iter().map(RawPolicy::glob_count).sum();
        let mut patterns = Vec::with_capacity(globs);
        let mut all_globs = check_globs.then(Vec::new);
        for (index, raw_policy) in raw_policies.into_iter().enumerate() {
            let policy = parse(raw_policy, index, all_globs.as_mut(), &mut patterns)?;
            let hash = crate::matching::fnv1a(&policy.name);
            if let Some(other) = same_name(&mut names, hash, &policy.name, policies.len(), |i| &policies[i].name) {
                return Err(SettingsError::new(
                    format!("policies[{index}].metadata.name"),
                    format!(
                        "`{}` is already the name of policies[{other}]: names must be unique",
                        policy.name
                    ),
                ));
            }
            policies.push(policy);
        }
        let images = ImageMatcher::new(patterns);
        Ok(Self {
            policies,
            no_match,
            pin_digests: raw.modify_images_with_digest.unwrap_or(true),
            images,
            globs: all_globs,
            source: Cow::Borrowed(""),
        })
    }

    /// Remarks on valid settings that are probably not what the author meant: CUE imports a
    /// policy never uses (real CUE refuses them), and `match` entries that give some of
    /// `group`, `version` and `resource` but not all in a policy that admits images without a
    /// signature ([`Settings::partial_match_remarks`]). `validate_settings` returns them in its
    /// message; `cip` prints them as warnings.
    pub fn lint(&self) -> Vec<String> {
        let mut remarks = self.unused_import_remarks();
        remarks.extend(self.partial_match_remarks());
        remarks
    }

    /// A remark for each `match` entry that gives some of `group`, `version` and `resource`
    /// but not all, or all three naming objects policy-controller's kind table does not apply
    /// them to ([`MatchRule::policy_controller_gap`]), in a policy that admits images without a
    /// verified signature (a `static: pass` authority, or `mode: warn`). Left out, those fields
    /// match anything here, while policy-controller compares all three (an omitted one is `""`:
    /// the core group, a version that matches nothing): such an entry copied from
    /// policy-controller makes the policy exempt more objects here. A policy that requires
    /// signatures only demands more of the objects it covers beyond them, so its entries are not
    /// remarked upon; nor are entries that give none of the three (`namespaces` or `selector`
    /// alone, which policy-controller does not have or refuses: not copied from it).
    fn partial_match_remarks(&self) -> Vec<String> {
        let mut remarks = Vec::new();
        for p in &self.policies {
            let why = if p.mode == Mode::Warn {
                "mode: warn"
            } else if self
                .body(p)
                .is_ok_and(|body| body.authorities.iter().any(Authority::passes_unsigned))
            {
                "a static pass authority"
            } else {
                continue;
            };
            let Ok(rules) = self.rules(p, None) else {
                continue;
            };
            for (i, rule) in rules.iter().enumerate() {
                if let Some(gap) = rule.policy_controller_gap() {
                    remarks.push(format!(
                        "policy {}: spec.match[{i}]: {gap}; with {why}, the entry keeps no image of those objects \
                         from noMatchPolicy (as in policy-controller)",
                        p.name
                    ));
                }
                let Some(missing) = rule.partial_resource() else {
                    continue;
                };
                remarks.push(format!(
                    "policy {}: spec.match[{i}] leaves out {}, which here matches any, while policy-controller \
                     compares group, version and resource exactly (an omitted group is the core group \"\", an \
                     omitted version matches nothing); with {why} the policy admits images without a signature \
                     in more objects than it would there: give all three (e.g. group: \"\", version: v1, \
                     resource: pods; version: \"*\" for any version)",
                    p.name,
                    missing.join(" and ")
                ));
            }
        }
        remarks
    }

    /// A remark for each policy whose CUE program imports a package it never uses.
    fn unused_import_remarks(&self) -> Vec<String> {
        self.policies
            .iter()
            .filter_map(|p| match self.body(p) {
                Ok(PolicyBody {
                    policy:
                        Some(PolicyBlock {
                            language: Language::Cue(program),
                            ..
                        }),
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

    /// Deep checks of every glob, key, certificate and regular expression (and the parse of
    /// every policy's authorities and `spec.policy`, when not done yet).
    pub fn check_material(&self) -> Result<(), SettingsError> {
        let Some(globs) = &self.globs else {
            // Read lazily: read again, whole.
            return Settings::parse(&self.source)?.check_material();
        };
        for (path, glob) in globs {
            check_glob_syntax(glob).map_err(|e| SettingsError::new(path, format!("glob `{glob}`: {e}")))?;
        }
        for policy in &self.policies {
            let body = self.body(policy).map_err(Clone::clone)?;
            body.authorities.iter().try_for_each(Authority::check_material)?;
        }
        Ok(())
    }
}

/// The index of an earlier name equal to `name` (whose hash is `hash`), found through `names`:
/// the hashes of the `count` earlier names, sorted, with their indices (`name_of` gives the name
/// of an index). Else `None`, and `name` is added to `names` with index `count`. Names with the
/// same hash are all kept, and compared (property test `a_repeated_name_is_found_as_a_map_finds_it`).
fn same_name<'n>(
    names: &mut Vec<(u64, usize)>,
    hash: u64,
    name: &str,
    count: usize,
    name_of: impl Fn(usize) -> &'n str,
) -> Option<usize> {
    let at = names.partition_point(|&(h, _)| h < hash);
    let same = names[at..]
        .iter()
        .take_while(|&&(h, _)| h == hash)
        .map(|&(_, i)| i)
        .find(|&i| name_of(i) == name);
    if same.is_none() {
        names.insert(at, (hash, count));
    }
    same
}

/// Parses one policy; its globs are pushed to `patterns` for the matcher, with `index`, and
/// recorded, with their field paths, in `syntax_checks` when given; `defer` notes where its
/// `match`, authorities and `spec.policy` are.
fn parse_policy(
    raw: RawPolicy<'_>,
    index: usize,
    mut syntax_checks: Option<&mut Vec<(String, String)>>,
    globs_read: &mut GlobReader,
    patterns: &mut Vec<(ImageGlob, usize)>,
    defer: impl FnOnce(&RawSpec<'_>) -> Deferred,
) -> Result<Policy, SettingsError> {
    // Paths are written only for errors and syntax checks: a fresh instance reads every
    // policy's skeleton on every evaluation.
    let err = |field: &str, message: String| SettingsError::new(format!("policies[{index}].{field}"), message);
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
        Some(n) if !n.trim().is_empty() => n.0.into_owned(),
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
    let deferred = defer(&spec);
    // policy-controller validates `spec.Mode != "" && !validModes.Has(spec.Mode)` and warns only
    // on `warn`: an empty mode is `enforce` there, so here too.
    let mode = match spec.mode.as_deref() {
        None | Some("" | "enforce") => Mode::Enforce,
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
    for (i, image) in images.into_iter().enumerate() {
        let field = |leaf: &str| format!("spec.images[{i}].{leaf}");
        if image.regex.is_some() {
            return Err(err(
                &field("regex"),
                "regex is not supported (it was dropped in v1beta1): use glob".to_owned(),
            ));
        }
        let glob = image
            .glob
            .ok_or_else(|| err(&field("glob"), "glob is required".to_owned()))?;
        let normalised = globs_read.read(&glob).map_err(|e| err(&field("glob"), e))?;
        if let Some(checks) = syntax_checks.as_deref_mut() {
            checks.extend(
                normalised
                    .patterns()
                    .into_iter()
                    .map(|g| (format!("policies[{index}].{}", field("glob")), g)),
            );
        }
        patterns.push((normalised, index));
    }
    Ok(Policy {
        name,
        mode,
        index,
        deferred,
        rules: OnceCell::new(),
        body: OnceCell::new(),
    })
}

/// Parses the `match` entries of `policies[index]`; its namespace globs are recorded, with their
/// field paths, in `syntax_checks` when given.
fn parse_rules(
    entries: Vec<RawMatch>,
    index: usize,
    mut syntax_checks: Option<&mut Vec<(String, String)>>,
) -> Result<Vec<MatchRule>, SettingsError> {
    let err = |field: &str, message: String| SettingsError::new(format!("policies[{index}].{field}"), message);
    convert_each(entries, |i, m| {
        let field = |leaf: &str| match leaf {
            "" => format!("spec.match[{i}]"),
            leaf => format!("spec.match[{i}].{leaf}"),
        };
        if m.namespaces.is_none()
            && m.resource.is_none()
            && m.group.is_none()
            && m.version.is_none()
            && m.selector.is_none()
        {
            return Err(err(
                &field(""),
                "the match entry is empty: give namespaces, resource or selector".to_owned(),
            ));
        }
        if m.namespaces.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                &field("namespaces"),
                "namespaces is empty, so this entry would match no namespace and the policy would never apply through it: list the namespaces, or remove the field to match every namespace".to_owned(),
            ));
        }
        if let Some(checks) = syntax_checks.as_deref_mut() {
            for (j, ns) in m.namespaces.iter().flatten().enumerate() {
                if ns.contains(['*', '?']) {
                    checks.push((format!("policies[{index}].{}[{j}]", field("namespaces")), ns.clone()));
                }
            }
        }
        let selector = m
            .selector
            .map(|s| parse_selector(s).map_err(|e| err(&field("selector"), e)))
            .transpose()?;
        MatchRule::new(m.namespaces, m.group, m.version, m.resource, selector).map_err(|(f, e)| err(&field(f), e))
    })
}

/// `f` of each item of `items` (with its index), in a vector of its own: the first error
/// stops. Not `into_iter().map(f).collect()`: the standard library collects in place, into
/// the allocation of `items`, when the new items fit in it, and keeps it whole (in wasm, a
/// policy's one `Authority` of 44 bytes kept 1,320 of the 1,344 bytes of room for four raw
/// ones, for as long as the model lives; its one `MatchRule` the 304 bytes of four raw
/// entries). Here `items` is freed, and its room serves the next policy read
/// (docs/benchmarks.md, twenty-second pass).
fn convert_each<T, U, E>(items: Vec<T>, mut f: impl FnMut(usize, T) -> Result<U, E>) -> Result<Vec<U>, E> {
    let mut converted = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        converted.push(f(i, item)?);
    }
    Ok(converted)
}

/// What policy-controller hands `spec.policy` about a certificate that signed
/// (`authorityMatches.<name>.signatures[]` and `.attestations.<name>[]`: `PolicySignature`), which
/// this module does not: its signature entries are empty (`{}`), its attestation entries carry
/// `id`, `predicateType`, `subject` and `issuer` only.
const CERTIFICATE_DETAILS: [&str; 7] = [
    "subject",
    "issuer",
    "githubWorkflowTrigger",
    "githubWorkflowSha",
    "githubWorkflowName",
    "githubWorkflowRepo",
    "githubWorkflowRef",
];

/// Refuses a `spec.policy` whose text names a field policy-controller hands it and this module
/// does not:
/// - for signatures (any authority without `attestations`, but `static`): `id`, the signature
///   layer's digest (Kubewarden's verify answers only whether signatures verified and at which
///   digest, not which layer), and for `keyless` or `githubActions` every certificate detail;
/// - for attestations: `payload` (the statement's bytes), and for `keyless` or `githubActions`
///   the `githubWorkflow*` details.
///
/// A constraint on an absent field holds whatever the value (CUE unifies it, a Rego negation of
/// it holds): pasted from policy-controller, such a policy would admit any workflow, branch or
/// signature the authority allows. The text is searched for the names as words (a comment
/// naming one is refused too: the message says why).
fn refuse_unsupplied_signature_details(
    data: &str,
    authorities: &[RawAuthority<'_>],
    field: &str,
) -> Result<(), SettingsError> {
    // A quoted label may spell the name with escapes (`"\u0069d"` is `id` for CUE and Rego):
    // the text is searched as written and with `\uXXXX`/`\UXXXXXXXX` escapes decoded.
    let decoded = decode_unicode_escapes(data);
    let names_word = |word: &str| {
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        [data, decoded.as_str()].into_iter().any(|text| {
            text.match_indices(word).any(|(at, _)| {
                let before = at.checked_sub(1).and_then(|i| text.as_bytes().get(i));
                let after = text.as_bytes().get(at + word.len());
                !before.is_some_and(|&b| is_ident(b)) && !after.is_some_and(|&b| is_ident(b))
            })
        })
    };
    for (i, authority) in authorities.iter().enumerate() {
        if authority.static_.is_some() {
            continue;
        }
        let certificates = authority.keyless.is_some() || authority.github_actions.is_some();
        let attestations = authority.attestations.is_some();
        let (entries, own) = if attestations {
            ("attestations", "payload")
        } else {
            ("signatures", "id")
        };
        let details = CERTIFICATE_DETAILS
            .iter()
            .filter(|detail| certificates && (!attestations || detail.starts_with("github")));
        let Some(detail) = std::iter::once(&own).chain(details).find(|detail| names_word(detail)) else {
            continue;
        };
        let name = authority.name.clone().unwrap_or_else(|| format!("authority-{i}"));
        let fix = if *detail == own {
            "this module cannot supply it (Kubewarden's verification answers which digest verified, not \
             which signature layer and what it held); constrain the signer in the authority instead"
        } else {
            "its entries carry no certificate details; check the signer in the authority instead \
             (keyless.identities: issuer and subject, or their regular expressions)"
        };
        return Err(SettingsError::new(
            field,
            format!(
                "names `{detail}`, which policy-controller gives spec.policy for the {entries} of \
                 authority `{name}` and this module does not: a constraint on it would hold whatever \
                 signed. {fix}, and remove `{detail}` from spec.policy"
            ),
        ));
    }
    Ok(())
}

/// `text` with every `\uXXXX` and `\UXXXXXXXX` escape of a scalar value replaced by its
/// character (others, and surrogates, left as written).
fn decode_unicode_escapes(text: &str) -> String {
    let mut decoded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        decoded.push_str(&rest[..at]);
        let escape = &rest[at..];
        let digits = match escape.as_bytes().get(1) {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => 0,
        };
        let scalar = escape
            .get(2..2 + digits)
            .filter(|hex| digits > 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match scalar {
            Some(c) => {
                decoded.push(c);
                rest = &escape[2 + digits..];
            }
            None => {
                decoded.push('\\');
                rest = &escape[1..];
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// Parses the authorities of `policies[index]` and puts them with its `spec.policy`.
fn parse_body(
    policy: Option<PolicyBlock>,
    authorities: Vec<RawAuthority<'_>>,
    index: usize,
) -> Result<PolicyBody, SettingsError> {
    let path = |authority| authority::AuthorityPath {
        policy: index,
        authority,
    };
    let authorities = convert_each(authorities, |i, a| authority::parse(a, path(i)))?;
    if let Some((i, dup)) = authorities
        .iter()
        .enumerate()
        .find(|(i, a)| authorities[..*i].iter().any(|b| b.name == a.name))
    {
        return Err(SettingsError::new(
            format!("{}.name", path(i)),
            format!("`{}` names two authorities: names must be unique", dup.name),
        ));
    }
    Ok(PolicyBody { authorities, policy })
}

/// Parses a label selector, refusing what Kubernetes' `metav1.LabelSelectorAsSelector` refuses
/// (policy-controller then denies every image of the policy; here the selector would never match
/// and the policy would silently stop applying): keys and values that are not label keys and
/// values, unknown operators, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with some.
fn parse_selector(raw: RawLabelSelector) -> Result<LabelSelector, String> {
    const NEVER: &str = "no object can carry it, so the selector would never match (policy-controller refuses it)";
    let mut selector = LabelSelector {
        match_labels: raw.match_labels.unwrap_or_default(),
        expressions: Vec::new(),
    };
    for (key, value) in &selector.match_labels {
        if let Some(e) = label_key_error(key) {
            return Err(format!("matchLabels: {e}: {NEVER}"));
        }
        if let Some(e) = label_value_error(value) {
            return Err(format!("matchLabels.{key}: {e}: {NEVER}"));
        }
    }
    for (i, e) in raw.match_expressions.unwrap_or_default().into_iter().enumerate() {
        if let Some(error) = label_key_error(&e.key) {
            return Err(format!("matchExpressions[{i}].key: {error}: {NEVER}"));
        }
        let values = e.values.unwrap_or_default();
        if let Some((j, error)) = values
            .iter()
            .enumerate()
            .find_map(|(j, v)| label_value_error(v).map(|error| (j, error)))
        {
            return Err(format!("matchExpressions[{i}].values[{j}]: {error}: {NEVER}"));
        }
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

#[cfg(test)]
mod tests {
    use super::{Settings, convert_each, same_bytes, same_name, same_text};
    use crate::crypto::tests::{P256_PEM, P256_SECOND_PEM};
    use proptest::prelude::*;
    use serde_json::json;

    /// A policy read for `validate` keeps its authorities and `match` rules in vectors of their
    /// size, not in the room of the raw lists they were read from (the standard library's
    /// in-place `collect` kept that: 1,320 bytes for one key authority in wasm).
    #[test]
    fn a_policy_keeps_no_room_beyond_its_authorities_and_rules() {
        let keys = [P256_PEM, P256_SECOND_PEM, P256_PEM, P256_SECOND_PEM, P256_PEM];
        for count in 1..=keys.len() {
            let authorities: Vec<_> = (0..count)
                .map(|i| json!({"name": format!("key-{i}"), "key": {"data": keys[i]}}))
                .collect();
            let matches: Vec<_> = (0..count)
                .map(|i| json!({"namespaces": [format!("team{i}")]}))
                .collect();
            let text = json!({"policies": [{"metadata": {"name": "p"},
                "spec": {"images": [{"glob": "r.io/**"}], "authorities": authorities, "match": matches}}]})
            .to_string();
            let settings = Settings::parse_lazy(&text).unwrap();
            let policy = &settings.policies[0];
            let body = settings.body(policy).unwrap();
            assert_eq!(body.authorities.len(), count);
            assert_eq!(body.authorities.capacity(), count, "{count} authorities");
            assert_eq!(settings.rules(policy, None).unwrap().len(), count);
            let rules: &Result<Vec<_>, _> = policy.rules.get().unwrap();
            assert_eq!(rules.as_ref().unwrap().capacity(), count, "{count} match entries");
        }
    }

    /// A fresh instance writes a `Policy` for every policy of the settings, most of which cover
    /// no image of the request: what is parsed only for a covering one is boxed (64 bytes in
    /// wasm, 16 words; 168 unboxed).
    #[test]
    fn a_policy_holds_its_lazily_parsed_parts_boxed() {
        assert!(
            std::mem::size_of::<super::Policy>() <= 16 * std::mem::size_of::<usize>(),
            "{} bytes",
            std::mem::size_of::<super::Policy>()
        );
    }

    /// `convert_each` converts in order with each index, stops at the first error, and gives
    /// a vector of the exact size.
    #[test]
    fn convert_each_stops_at_the_first_error() {
        let converted = convert_each(vec![3u64, 4, 5], |i, n| Ok::<_, ()>((i, n as u8))).unwrap();
        assert_eq!(converted, [(0, 3), (1, 4), (2, 5)]);
        assert_eq!(converted.capacity(), 3);
        let mut seen = Vec::new();
        let failed = convert_each(vec!["a", "b", "c"], |i, s| {
            seen.push(s);
            if i == 1 { Err(format!("{s} at {i}")) } else { Ok(s) }
        });
        assert_eq!(failed, Err("b at 1".to_owned()));
        assert_eq!(seen, ["a", "b"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Names are refused at the first one given before, naming that one, as a map of the
        /// names seen finds it; with every hash colliding too.
        #[test]
        fn a_repeated_name_is_found_as_a_map_finds_it(
            list in proptest::collection::vec("[ab]{0,2}", 0..10),
            colliding in any::<bool>(),
        ) {
            let mut names = Vec::new();
            let mut seen = std::collections::HashMap::new();
            for (i, name) in list.iter().enumerate() {
                let hash = if colliding { 7 } else { crate::matching::fnv1a(name) };
                let found = same_name(&mut names, hash, name, i, |j| list[j].as_str());
                prop_assert_eq!(found, seen.insert(name.clone(), i), "{:?} at {}", list, i);
                if found.is_some() {
                    break;
                }
            }
        }

        /// `same_text` is `==`, on equal texts, texts one byte apart anywhere (words and tail),
        /// and texts of other lengths.
        #[test]
        fn same_text_is_equality(text in "\\PC{0,80}", at in 0usize..160, byte in 0u8..128, cut in 0usize..160) {
            prop_assert!(same_text(&text, &text.clone()));
            let mut other = text.clone().into_bytes();
            if !other.is_empty() {
                let i = at % other.len();
                other[i] = byte;
                if let Ok(other) = String::from_utf8(other) {
                    prop_assert_eq!(same_text(&text, &other), text == other);
                }
            }
            let shorter: String = text.chars().take(cut).collect();
            prop_assert_eq!(same_text(&text, &shorter), text == shorter);
        }

        /// `same_bytes` is `==` on texts one byte apart at any place of the blocks of 32, the
        /// words in them, and the tail.
        #[test]
        fn same_bytes_is_equality(bytes in prop::collection::vec(any::<u8>(), 0..200), at in 0usize..200, flip in 1u8..=255) {
            prop_assert!(same_bytes(&bytes, &bytes.clone()));
            if !bytes.is_empty() {
                let mut other = bytes.clone();
                other[at % bytes.len()] ^= flip;
                prop_assert!(!same_bytes(&bytes, &other));
            }
        }
    }
}
