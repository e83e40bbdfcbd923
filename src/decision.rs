//! The decision for one image: which policies cover it, which authorities vouch for it, and
//! what the verdict is under each policy's mode.
//!
//! `validate` (admission) and `verify_images` (Gatekeeper, `cip verify`) both decide through
//! [`decide`], so they match, call the host and word their messages identically.

use serde::Serialize;

use crate::host::HostCalls;
use crate::matching::Subject;
use crate::policy::{PolicyBlock, input};
use crate::reference::ImageReference;
use crate::settings::{Mode, NoMatchPolicy, Policy, PolicyBody, Settings, SettingsError};

/// Kubernetes truncates longer warnings.
pub const MAX_WARNING_LEN: usize = 256;

/// The outcome for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Warn,
    Deny,
}

/// What one authority said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityOutcome<'a> {
    /// Borrowed from the settings, like every name of an outcome: a verdict lives for one
    /// evaluation, and copying the names of every policy and authority it tried showed in the
    /// profile of a warm evaluation.
    pub name: &'a str,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What one policy said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome<'a> {
    pub name: &'a str,
    pub mode: &'static str,
    pub passed: bool,
    pub authorities: Vec<AuthorityOutcome<'a>>,
    /// Why `spec.policy` failed (it names the language and the conflict, the Rego rule or the
    /// Rego warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// The decision for one image (the `verify_images` wire format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageVerdict<'a> {
    pub image: &'a str,
    pub namespace: String,
    pub verdict: Verdict,
    /// The digest the passing authorities verified.
    pub digest: Option<String>,
    /// Why the image is refused or warned about; empty when allowed without remark.
    pub message: String,
    pub policies: Vec<PolicyOutcome<'a>>,
    /// One Kubernetes warning per failing `warn` policy.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The digest to pin the image to, when every enforcing policy passed, a passing authority
    /// verified signatures at that digest, and the image was not written with one.
    #[serde(skip)]
    pub pin: Option<String>,
    /// The settings of a covering policy could not be read (its authorities or `spec.policy`,
    /// read on first use): the request is refused as with any invalid settings.
    #[serde(skip)]
    pub invalid_settings: Option<SettingsError>,
}

/// Decides one image for a subject (namespace, resource, labels).
pub fn decide<'a>(
    settings: &'a Settings,
    subject: &Subject<'_>,
    image: &'a str,
    host: &mut dyn HostCalls,
) -> ImageVerdict<'a> {
    let mut verdict = ImageVerdict {
        image,
        namespace: subject.namespace.to_owned(),
        verdict: Verdict::Allow,
        digest: None,
        message: String::new(),
        policies: Vec::new(),
        warnings: Vec::new(),
        pin: None,
        invalid_settings: None,
    };
    let reference = match ImageReference::parse(image) {
        Ok(r) => r,
        Err(e) => {
            verdict.verdict = Verdict::Deny;
            verdict.message = format!("image {} is not a valid image reference: {e}", printable(image));
            return verdict;
        }
    };
    // Read as they are used (no list of them per image).
    let mut covering = settings
        .covering(&reference)
        // With the error of its `match` when it cannot be read: such a policy denies below.
        .filter_map(|p| match settings.applies(p, subject) {
            Ok(true) => Some((p, None)),
            Ok(false) => None,
            Err(e) => Some((p, Some(e))),
        })
        .peekable();
    if covering.peek().is_none() {
        match settings.no_match {
            NoMatchPolicy::Allow => {}
            NoMatchPolicy::Warn => {
                verdict.verdict = Verdict::Warn;
                verdict.message = format!("image {image} is covered by no ClusterImagePolicy");
                verdict.warnings.push(truncate(&verdict.message));
            }
            NoMatchPolicy::Deny => {
                verdict.verdict = Verdict::Deny;
                verdict.message =
                    format!("image {image} denied: no ClusterImagePolicy covers it (noMatchPolicy: deny)");
            }
        }
        return verdict;
    }

    let mut denials = Vec::new();
    let mut warnings = Vec::new();
    // Room for one outcome, and one authority outcome an authority below: an image is usually
    // covered by one policy, and the decisions are kept until the answer is written (a `Vec`
    // starts with room for four: 168 bytes too many a covered image in wasm).
    verdict.policies.reserve_exact(1);
    for (policy, unreadable_match) in covering {
        // A policy's `match` and authorities are read the first time it covers an image.
        // Settings that cannot be read deny, whatever the policy's mode (`validate_settings`
        // refuses them).
        let body = match unreadable_match.map_or_else(|| settings.body(policy), Err) {
            Ok(body) => body,
            Err(e) => {
                verdict.verdict = Verdict::Deny;
                verdict.message = format!(
                    "image {image} denied by policy {}: invalid policy settings: {e}",
                    policy.name
                );
                verdict.invalid_settings = Some(e.clone());
                return verdict;
            }
        };
        let (mut outcome, digest) = evaluate_policy(policy, body, &reference, subject, host);
        if let Some(digest) = digest {
            match &verdict.digest {
                None => verdict.digest = Some(digest),
                Some(first) if *first != digest => {
                    outcome.passed = false;
                    outcome.authorities.push(AuthorityOutcome {
                        name: "digest",
                        passed: false,
                        reason: Some(format!(
                            "verified digest {digest}, but another policy verified {first}: the tag moved during admission"
                        )),
                    });
                }
                Some(_) => {}
            }
        }
        if !outcome.passed {
            let reasons: Vec<String> = outcome
                .authorities
                .iter()
                .filter_map(|a| a.reason.as_ref().map(|r| format!("authority {}: {r}", a.name)))
                .collect();
            let reasons = if let Some(failure) = &outcome.policy {
                failure.clone()
            } else if reasons.is_empty() {
                "the policy has no authorities, so no signature can satisfy it".to_owned()
            } else {
                reasons.join("; ")
            };
            match policy.mode {
                Mode::Enforce => denials.push(format!("image {image} denied by policy {}: {reasons}", policy.name)),
                Mode::Warn => warnings.push(format!(
                    "image {image} not verified by policy {} (warn mode): {reasons}",
                    policy.name
                )),
            }
        }
        verdict.policies.push(outcome);
    }
    if !denials.is_empty() {
        verdict.verdict = Verdict::Deny;
        verdict.message = denials.join("; ");
        return verdict;
    }
    if !warnings.is_empty() {
        verdict.verdict = Verdict::Warn;
        verdict.warnings = warnings.iter().map(|w| truncate(w)).collect();
        verdict.message = warnings.join("; ");
    }
    // Every enforcing policy passed: what runs must be what was verified, whatever the warn
    // policies said, or the tag could move between this check and the pull.
    if reference.digest().is_none() {
        verdict.pin = verdict.digest.clone();
    }
    verdict
}

/// Tries the policy's authorities in order until one passes; with `spec.policy`, tries them
/// all and lets the policy decide over the results.
fn evaluate_policy<'a>(
    policy: &'a Policy,
    body: &'a PolicyBody,
    reference: &ImageReference,
    subject: &Subject<'_>,
    host: &mut dyn HostCalls,
) -> (PolicyOutcome<'a>, Option<String>) {
    let mut outcome = PolicyOutcome {
        name: &policy.name,
        mode: policy.mode.as_str(),
        passed: false,
        authorities: Vec::with_capacity(body.authorities.len()),
        policy: None,
    };
    if let Some(block) = &body.policy {
        let digest = evaluate_policy_block(body, block, reference, subject, host, &mut outcome);
        return (outcome, digest);
    }
    for authority in &body.authorities {
        match verify_authority(authority, reference, host) {
            Ok(verified) => {
                outcome.passed = true;
                outcome.authorities.push(AuthorityOutcome {
                    name: &authority.name,
                    passed: true,
                    reason: None,
                });
                return (outcome, verified.digest);
            }
            Err(reason) => outcome.authorities.push(AuthorityOutcome {
                name: &authority.name,
                passed: false,
                reason: Some(reason),
            }),
        }
    }
    (outcome, None)
}

/// One authority's verdict: the digest it verified (`None` for a static pass) and the
/// attestations it vouched for.
fn verify_authority(
    authority: &crate::authority::Authority,
    reference: &ImageReference,
    host: &mut dyn HostCalls,
) -> Result<crate::authority::Verified, String> {
    authority
        .verify(reference, host)
        .and_then(|verified| match (&verified.digest, reference.digest()) {
            (Some(digest), Some(written)) if digest != written => Err(format!(
                "the host verified digest {digest}, not the digest {written} the workload names"
            )),
            _ => Ok(verified),
        })
}

/// `spec.policy` (policy-controller's semantics): every authority is evaluated; with none
/// passing the policy fails as without `spec.policy`; otherwise the CUE or Rego policy decides
/// over `authorityMatches` and `authorizations`. Returns the verified digest when it passes.
fn evaluate_policy_block<'a>(
    body: &'a PolicyBody,
    block: &PolicyBlock,
    reference: &ImageReference,
    subject: &Subject<'_>,
    host: &mut dyn HostCalls,
    outcome: &mut PolicyOutcome<'a>,
) -> Option<String> {
    let mut results = Vec::with_capacity(body.authorities.len());
    let mut digest: Option<String> = None;
    for authority in &body.authorities {
        let result =
            verify_authority(authority, reference, host).and_then(|verified| match (&digest, &verified.digest) {
                (Some(first), Some(other)) if first != other => Err(format!(
                    "verified digest {other}, but an earlier authority verified {first}: the tag moved during admission"
                )),
                _ => Ok(verified),
            });
        let matched = match result {
            Ok(verified) => {
                let kind = match (verified.attestations, &verified.digest) {
                    (Some(attestations), _) => input::Match::Attestations(attestations),
                    (None, Some(_)) => input::Match::Signature,
                    (None, None) => input::Match::Static,
                };
                digest = digest.or(verified.digest);
                outcome.authorities.push(AuthorityOutcome {
                    name: &authority.name,
                    passed: true,
                    reason: None,
                });
                Some(kind)
            }
            Err(reason) => {
                outcome.authorities.push(AuthorityOutcome {
                    name: &authority.name,
                    passed: false,
                    reason: Some(reason),
                });
                None
            }
        };
        results.push((authority.name.as_str(), matched));
    }
    if results.iter().all(|(_, m)| m.is_none()) {
        return None;
    }
    let language = block.language_name();
    // A block that reads the object cannot be judged without it (`verify_images`: Gatekeeper's
    // external data carries image keys, not objects): evaluated on a document without `spec` or
    // `metadata`, a constraint on them would hold vacuously and a rule forbidding what they hold
    // would pass. It does not pass.
    if subject.object.is_none()
        && let Some(flag) = block.object_flag()
    {
        outcome.policy = Some(format!(
            "spec.policy ({language}): {flag} asks for the admitted object, which this request does not carry \
             (Gatekeeper's external data sends image keys only): the policy cannot be evaluated, so it does not \
             pass; check it with Kubewarden, or move what it checks of the object to a Gatekeeper constraint"
        ));
        return None;
    }
    let config = if block.fetch_config_file {
        // Every platform's config of a multi-platform image, as policy-controller reads them.
        // With only static authorities passing, at the digest the tag names: the image is then
        // pinned to it, so that the node runs the configs judged.
        match crate::policy::config_file::read(reference, digest.as_deref(), host) {
            Ok((config, judged)) => {
                digest = Some(judged);
                Some(config)
            }
            Err(e) => {
                outcome.policy = Some(format!("spec.policy ({language}): fetchConfigFile: {e}"));
                return None;
            }
        }
    } else {
        None
    };
    let object = match subject.object.map(|o| o.value()).transpose() {
        Ok(object) => object,
        Err(e) => {
            outcome.policy = Some(format!("spec.policy ({language}): {e}"));
            return None;
        }
    };
    let document = input::document(
        &results,
        config,
        object,
        block.include_spec,
        block.include_object_meta,
        block.include_type_meta,
    );
    match block.evaluate(&document, host) {
        Ok(None) => {
            outcome.passed = true;
            digest
        }
        // As policy-controller (`ValidatePolicy`: `if warn != nil { return nil, … }`): a compliant
        // Rego result with a warning fails the ClusterImagePolicy, denied under `enforce`, a
        // warning under `warn`.
        Ok(Some(warning)) => {
            outcome.policy = Some(format!(
                "spec.policy ({language}): policy returned a warning: {warning}; a policy with a warning does not pass"
            ));
            None
        }
        Err(failure) => {
            outcome.policy = Some(format!("spec.policy ({language}): {failure}"));
            None
        }
    }
}

/// Cuts a warning to what Kubernetes shows, on a character boundary.
pub fn truncate(text: &str) -> String {
    if text.len() <= MAX_WARNING_LEN {
        return text.to_owned();
    }
    let mut end = MAX_WARNING_LEN - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Escapes control and invisible characters of an untrusted string for a message.
fn printable(text: &str) -> String {
    text.escape_debug().to_string()
}
