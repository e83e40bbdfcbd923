//! The decision for one image: which policies cover it, which authorities vouch for it, and
//! what the verdict is under each policy's mode.
//!
//! `validate` (admission) and `verify_images` (Gatekeeper, `cip verify`) both decide through
//! [`decide`], so they match, call the host and word their messages identically.

use serde::Serialize;

use crate::host::HostCalls;
use crate::matching::Subject;
use crate::reference::ImageReference;
use crate::settings::{Mode, NoMatchPolicy, Policy, Settings};

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
pub struct AuthorityOutcome {
    pub name: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What one policy said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome {
    pub name: String,
    pub mode: String,
    pub passed: bool,
    pub authorities: Vec<AuthorityOutcome>,
}

/// The decision for one image (the `verify_images` wire format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageVerdict {
    pub image: String,
    pub namespace: String,
    pub verdict: Verdict,
    /// The digest the passing authorities verified.
    pub digest: Option<String>,
    /// Why the image is refused or warned about; empty when allowed without remark.
    pub message: String,
    pub policies: Vec<PolicyOutcome>,
    /// One Kubernetes warning per failing `warn` policy.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The digest to pin the image to, when every enforcing policy passed, a passing authority
    /// verified signatures at that digest, and the image was not written with one.
    #[serde(skip)]
    pub pin: Option<String>,
}

/// Decides one image for a subject (namespace, resource, labels).
pub fn decide(settings: &Settings, subject: &Subject<'_>, image: &str, host: &mut dyn HostCalls) -> ImageVerdict {
    let mut verdict = ImageVerdict {
        image: image.to_owned(),
        namespace: subject.namespace.to_owned(),
        verdict: Verdict::Allow,
        digest: None,
        message: String::new(),
        policies: Vec::new(),
        warnings: Vec::new(),
        pin: None,
    };
    let reference = match ImageReference::parse(image) {
        Ok(r) => r,
        Err(e) => {
            verdict.verdict = Verdict::Deny;
            verdict.message = format!("image {} is not a valid image reference: {e}", printable(image));
            return verdict;
        }
    };
    let covering: Vec<&Policy> = settings
        .images
        .policies_for(&reference)
        .into_iter()
        .filter_map(|i| settings.policies.get(i))
        .filter(|p| p.applies_to(subject))
        .collect();
    if covering.is_empty() {
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
    for policy in covering {
        let (mut outcome, digest) = evaluate_policy(policy, &reference, host);
        if let Some(digest) = digest {
            match &verdict.digest {
                None => verdict.digest = Some(digest),
                Some(first) if *first != digest => {
                    outcome.passed = false;
                    outcome.authorities.push(AuthorityOutcome {
                        name: "digest".to_owned(),
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
            let reasons = if reasons.is_empty() {
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

/// Tries the policy's authorities in order until one passes.
fn evaluate_policy(
    policy: &Policy,
    reference: &ImageReference,
    host: &mut dyn HostCalls,
) -> (PolicyOutcome, Option<String>) {
    let mut outcome = PolicyOutcome {
        name: policy.name.clone(),
        mode: policy.mode.to_string(),
        passed: false,
        authorities: Vec::new(),
    };
    for authority in &policy.authorities {
        let result = authority
            .verify(reference, host)
            .and_then(|digest| match (digest, reference.digest()) {
                (Some(verified), Some(written)) if verified != written => Err(format!(
                    "the host verified digest {verified}, not the digest {written} the workload names"
                )),
                (digest, _) => Ok(digest),
            });
        match result {
            Ok(digest) => {
                outcome.passed = true;
                outcome.authorities.push(AuthorityOutcome {
                    name: authority.name.clone(),
                    passed: true,
                    reason: None,
                });
                return (outcome, digest);
            }
            Err(reason) => outcome.authorities.push(AuthorityOutcome {
                name: authority.name.clone(),
                passed: false,
                reason: Some(reason),
            }),
        }
    }
    (outcome, None)
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
