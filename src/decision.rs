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

/// The longest reason kept for one authority or one `spec.policy`: a host's failure can quote a
/// registry's error body, which a hostile registry makes as large as it likes, and every reason
/// is copied into the admission response (its message, the audit annotation) and into
/// `verify_images` answers.
pub const MAX_REASON_LEN: usize = 1024;

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
    /// Whether the policy passed by verifying the image at a digest: a passing authority that
    /// checks signatures or attestations (not `static: pass`), or a `spec.policy` that read the
    /// image's config (`fetchConfigFile`). False when it did not pass, or passed by exemption
    /// only: such a pass vouches for no digest, so admission's rules on images written by tag
    /// (the validating twin, a relabelled Pod) and Gatekeeper's template ask for this.
    pub verified: bool,
    pub authorities: Vec<AuthorityOutcome<'a>>,
    /// Why `spec.policy` failed (it names the language and the conflict, the Rego rule or the
    /// Rego warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Two of its authorities verified different digests of the tag the image is written with:
    /// the tag moved, or the host's answers were read at different times (`decide` then asks once
    /// which digest the tag names and judges the image again at that digest).
    #[serde(skip)]
    pub tag_moved: bool,
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

impl<'a> ImageVerdict<'a> {
    /// An image allowed without remark, before any policy is read.
    fn allowing(image: &'a str, namespace: String) -> Self {
        Self {
            image,
            namespace,
            verdict: Verdict::Allow,
            digest: None,
            message: String::new(),
            policies: Vec::new(),
            warnings: Vec::new(),
            pin: None,
            invalid_settings: None,
        }
    }
}

/// Decides one image for a subject (namespace, resource, labels).
pub fn decide<'a>(
    settings: &'a Settings,
    subject: &Subject<'_>,
    image: &'a str,
    host: &mut dyn HostCalls,
) -> ImageVerdict<'a> {
    let mut verdict = ImageVerdict::allowing(image, subject.namespace.to_owned());
    let reference = match ImageReference::parse(image) {
        Ok(r) => r,
        Err(e) => {
            verdict.verdict = Verdict::Deny;
            // Bounded: the submitter writes the image, of any length.
            verdict.message = bounded(format!(
                "image {} is not a valid image reference: {e}",
                printable(image)
            ));
            return verdict;
        }
    };
    let mut covering = covering_policies(settings, &reference, subject).peekable();
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
    let moved = judge(settings, subject, &reference, &reference, covering, host, &mut verdict);
    // Authorities verified different digests of the tag: the host's answers were read at different
    // times (each is kept for its own while: a tag moved by a release between them), or the tag
    // moved during this admission. Asked once which digest the tag names, every covering policy
    // judges the image again at that digest, so that all of them see one image and the image is
    // pinned to it (policy-controller resolves every tag to a digest before judging). Stock
    // Kubewarden answers that question from a cache of its own (60 s), so the digest may be the
    // tag's previous one: every policy then verifies that one, and the image is pinned there. A
    // second disagreement, or no answer to the question, keeps the refusal.
    if moved && reference.digest().is_none() {
        let Ok(digest) = crate::policy::config_file::tagged_digest(&reference, host) else {
            return verdict;
        };
        let Ok(at_digest) = ImageReference::parse(&format!("{reference}@{digest}")) else {
            return verdict;
        };
        let mut again = ImageVerdict::allowing(image, std::mem::take(&mut verdict.namespace));
        let covering = covering_policies(settings, &reference, subject);
        judge(settings, subject, &reference, &at_digest, covering, host, &mut again);
        return again;
    }
    verdict
}

/// The policies covering `reference` whose `match` selects `subject`, read as they are used (no
/// list of them per image); with the error of its `match` when it cannot be read: such a policy
/// denies.
fn covering_policies<'s>(
    settings: &'s Settings,
    reference: &ImageReference,
    subject: &Subject<'_>,
) -> impl Iterator<Item = (&'s Policy, Option<&'s SettingsError>)> {
    settings
        .covering(reference)
        .filter_map(|p| match settings.applies(p, subject) {
            Ok(true) => Some((p, None)),
            Ok(false) => None,
            Err(e) => Some((p, Some(e))),
        })
}

/// Judges an image written as `written` under the `covering` policies (at least one), verifying
/// it at `verified_at` (`written` itself, or `written` with the digest its tag names), and writes
/// the verdict. Returns whether two policies, or two authorities of one `spec.policy`, verified
/// different digests of the tag.
fn judge<'a>(
    settings: &'a Settings,
    subject: &Subject<'_>,
    written: &ImageReference,
    verified_at: &ImageReference,
    covering: impl Iterator<Item = (&'a Policy, Option<&'a SettingsError>)>,
    host: &mut dyn HostCalls,
    verdict: &mut ImageVerdict<'a>,
) -> bool {
    let image = verdict.image;
    let mut moved = false;
    let mut denials = Vec::new();
    let mut warnings = Vec::new();
    // Whether a covering policy keeps the image from `noMatchPolicy`: one that requires a
    // signature, or one that admits without (a `static: pass` authority, `mode: warn`) whose
    // globs cover the image as policy-controller's would. Our wider readings (a tag glob covering
    // the repository's digests, a repository glob every tag) only ever add policies: they must
    // not turn an image `noMatchPolicy: deny` refuses into one an exemption admits.
    let mut kept_from_no_match = false;
    let mut exempting = Vec::new();
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
                return moved;
            }
        };
        if !kept_from_no_match {
            let admits_unsigned = policy.mode == Mode::Warn || body.authorities.iter().any(|a| a.passes_unsigned());
            if !admits_unsigned || settings.covers_narrowly(policy, written, subject) {
                kept_from_no_match = true;
            } else if settings.no_match != NoMatchPolicy::Allow {
                // Which `match` entry reads wider here, and what to write, when that is why: for
                // the message `noMatchPolicy` gives (none when it allows).
                exempting.push(match settings.match_wider_than_policy_controller(policy, subject) {
                    Some(why) => format!("{}: {why}", policy.name),
                    None => policy.name.clone(),
                });
            }
        }
        let (mut outcome, digest) = evaluate_policy(policy, body, verified_at, subject, host);
        moved |= outcome.tag_moved;
        outcome.policy = outcome.policy.map(bounded);
        if let Some(digest) = digest {
            match &verdict.digest {
                None => verdict.digest = Some(digest),
                Some(first) if *first != digest => {
                    moved = true;
                    outcome.passed = false;
                    outcome.verified = false;
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
    if !kept_from_no_match {
        let why = format!(
            "image {image} is covered only by policies that admit it without a signature ({}), through a reading of \
             their globs or `match` wider than policy-controller's (a tag glob covering a digest of the repository, a \
             repository glob covering every tag, `**` matching no segment, a `match` entry leaving out group, version \
             or resource, giving `*` for a group or resource, or naming objects policy-controller's kind table does \
             not apply it to: group apps for daemonsets, replicasets, replicationcontrollers, a version other than v1 \
             or *)",
            exempting.join("; ")
        );
        match settings.no_match {
            NoMatchPolicy::Allow => {}
            NoMatchPolicy::Warn => warnings.push(format!("{why}: noMatchPolicy: warn applies")),
            NoMatchPolicy::Deny => denials.push(format!("{why}: noMatchPolicy: deny applies")),
        }
    }
    if !denials.is_empty() {
        verdict.verdict = Verdict::Deny;
        verdict.message = denials.join("; ");
        return moved;
    }
    if !warnings.is_empty() {
        verdict.verdict = Verdict::Warn;
        verdict.warnings = warnings.iter().map(|w| truncate(w)).collect();
        verdict.message = warnings.join("; ");
    }
    // Every enforcing policy passed: what runs must be what was verified, whatever the warn
    // policies said, or the tag could move between this check and the pull.
    if written.digest().is_none() {
        verdict.pin = verdict.digest.clone();
    }
    moved
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
        verified: false,
        authorities: Vec::with_capacity(body.authorities.len()),
        policy: None,
        tag_moved: false,
    };
    if let Some(block) = &body.policy {
        let digest = evaluate_policy_block(body, block, reference, subject, host, &mut outcome);
        return (outcome, digest);
    }
    for authority in &body.authorities {
        match verify_authority(authority, reference, host) {
            Ok(verified) => {
                outcome.passed = true;
                outcome.verified = !authority.passes_unsigned();
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
    authority.verify(reference, host).map_err(bounded).and_then(|verified| {
        match (&verified.digest, reference.digest()) {
            (Some(digest), Some(written)) if digest != written => Err(format!(
                "the host verified digest {digest}, not the digest {written} the workload names"
            )),
            _ => Ok(verified),
        }
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
    // Whether a passing authority checked signatures or attestations (`verified` below).
    let mut signed = false;
    for authority in &body.authorities {
        let result =
            verify_authority(authority, reference, host).and_then(|verified| match (&digest, &verified.digest) {
                (Some(first), Some(other)) if first != other => {
                    outcome.tag_moved = true;
                    Err(format!(
                        "verified digest {other}, but an earlier authority verified {first}: the tag moved during admission"
                    ))
                }
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
                signed |= !authority.passes_unsigned();
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
            outcome.verified = signed || block.fetch_config_file;
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
    format!("{}…", prefix_within(text, MAX_WARNING_LEN - '…'.len_utf8()))
}

/// `reason` cut to [`MAX_REASON_LEN`] bytes on a character boundary, saying how much was cut.
fn bounded(reason: String) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let kept = prefix_within(&reason, MAX_REASON_LEN);
    format!("{kept}… ({} more bytes not shown)", reason.len() - kept.len())
}

/// The longest prefix of `text` of at most `limit` bytes ending on a character boundary.
fn prefix_within(text: &str, limit: usize) -> &str {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Escapes control and invisible characters of an untrusted string for a message.
fn printable(text: &str) -> String {
    text.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    //! A policy that admits without a signature covers no more, for `noMatchPolicy`, than
    //! policy-controller's `glob.Match` would have it cover (the review's exemption by tag).

    use serde_json::{Value, json};

    use crate::crypto::tests::P256_PEM;
    use crate::host::mock::{MockHost, trusted};
    use crate::tests::{pod, run};

    const D: &str = "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

    fn policy(name: &str, glob: &str, mode: &str, authorities: Value) -> Value {
        json!({"metadata": {"name": name},
               "spec": {"images": [{"glob": glob}], "mode": mode, "authorities": authorities}})
    }

    fn settings(no_match: &str, policies: &[Value]) -> Value {
        json!({"noMatchPolicy": no_match, "policies": policies})
    }

    fn exemption(glob: &str) -> Value {
        policy("dev-exempt", glob, "enforce", json!([{"static": {"action": "pass"}}]))
    }

    fn admitted(settings: &Value, image: &str, host: &mut MockHost) -> (bool, Value) {
        let response = run(&pod("default", &[image]), settings, host);
        (response["accepted"] == true, response)
    }

    /// Found by the property test against policy-controller's `glob.Match`: an exemption written
    /// `**/**/**` covers `r.io/a` here (consecutive `**` merge into `**`), but policy-controller's
    /// `.*/.*/.*` wants two `/`: it must not keep the image from `noMatchPolicy: deny`. `**`
    /// alone covers it there too.
    #[test]
    fn an_exemption_of_several_double_stars_needs_their_slashes() {
        let (accepted, response) = admitted(
            &settings("deny", &[exemption("**/**/**")]),
            "r.io/a",
            &mut MockHost::failing(),
        );
        assert!(!accepted, "{response}");
        assert!(
            response["message"]
                .as_str()
                .unwrap_or_default()
                .ends_with("noMatchPolicy: deny applies"),
            "{response}"
        );
        for image in ["r.io/a/b", "r.io/a/b/c:1"] {
            let (accepted, response) = admitted(
                &settings("deny", &[exemption("**/**/**")]),
                image,
                &mut MockHost::failing(),
            );
            assert!(accepted, "{image}: {response}");
        }
        // The mutation audit's case: Docker Hub's `index.docker.io/library/nginx` has two `/`.
        let (accepted, response) = admitted(
            &settings("deny", &[exemption("**/**/**/**")]),
            "nginx",
            &mut MockHost::failing(),
        );
        assert!(!accepted, "{response}");
        let (accepted, response) = admitted(
            &settings("deny", &[exemption("**")]),
            "r.io/a",
            &mut MockHost::failing(),
        );
        assert!(accepted, "{response}");
    }

    /// Found by a review: after a release moved `r.io/app:1` from `OLD` to `NEW` (both signed),
    /// one policy's answer was still the host's cached verification of `OLD` (kept 60 s) while
    /// another's was fresh (`NEW`), and the signed image was refused for a minute: "the tag
    /// moved during admission". The module now asks once which digest the tag names and judges
    /// the image again there: admitted, pinned to `NEW`, every policy asked at `NEW`. Without an
    /// answer to that question the image is refused as before. Across two authorities of one
    /// `spec.policy`, the same.
    #[test]
    fn answers_read_at_different_times_are_judged_again_at_the_digest_the_tag_names() {
        use crate::crypto::tests::P256_SECOND_PEM;
        use crate::host::{KUBEWARDEN_MANIFEST_DIGEST, KUBEWARDEN_VERIFY_V2};

        const OLD: &str = "sha256:0101010101010101010101010101010101010101010101010101010101010101";
        const NEW: &str = "sha256:0202020202020202020202020202020202020202020202020202020202020202";
        let key = |name: &str, pem: &str| json!({"name": name, "key": {"data": pem}});
        // The P-256 key's answer for the tag is the cached one; the P-384 key's is fresh.
        // What the host answers for the tag's digest: `NEW`, another digest, or no answer.
        let answering = |named: Option<&'static str>| {
            MockHost::new(move |capability, payload| {
                if capability == KUBEWARDEN_MANIFEST_DIGEST {
                    assert_eq!(*payload, json!("r.io/app:1"));
                    return match named {
                        Some(digest) => Ok(serde_json::to_vec(&json!({ "digest": digest })).unwrap()),
                        None => Err("registry unavailable".to_owned()),
                    };
                }
                assert_eq!(capability, KUBEWARDEN_VERIFY_V2, "{payload}");
                match (payload["image"].as_str(), payload["pub_keys"][0].as_str()) {
                    (Some("r.io/app:1"), Some(P256_PEM)) => trusted(OLD),
                    (Some("r.io/app:1"), _) => trusted(NEW),
                    (Some(image), _) if image == format!("r.io/app@{NEW}") => trusted(NEW),
                    _ => Err("no signatures found".to_owned()),
                }
            })
        };
        let host = |resolves: bool| answering(resolves.then_some(NEW));
        let two_policies = settings(
            "deny",
            &[
                policy("all", "r.io/**", "enforce", json!([key("old", P256_PEM)])),
                policy("prod", "r.io/**", "enforce", json!([key("new", P256_SECOND_PEM)])),
            ],
        );
        let mut block = policy(
            "both",
            "r.io/**",
            "enforce",
            json!([key("old", P256_PEM), key("new", P256_SECOND_PEM)]),
        );
        block["spec"]["policy"] =
            json!({"type": "cue", "data": "authorityMatches: {old: signatures: [_], new: signatures: [_]}"});
        let one_block = settings("deny", &[block]);
        for (what, s) in [("two policies", &two_policies), ("one spec.policy", &one_block)] {
            let mut registry = host(true);
            let (accepted, response) = admitted(s, "r.io/app:1", &mut registry);
            assert!(accepted, "{what}: {response}");
            assert_eq!(
                response["mutated_object"]["spec"]["containers"][0]["image"],
                format!("r.io/app:1@{NEW}"),
                "{what}: pinned to what the tag names now: {response}"
            );
            let asked_at_digest = registry
                .calls
                .iter()
                .filter(|(c, p)| *c == KUBEWARDEN_VERIFY_V2 && p["image"] == format!("r.io/app@{NEW}"))
                .count();
            assert_eq!(asked_at_digest, 2, "{what}: both keys asked again at the digest");
        }
        // The tag's digest unknown: refused as before, saying why.
        let (accepted, response) = admitted(&two_policies, "r.io/app:1", &mut host(false));
        assert!(!accepted, "{response}");
        let message = response["message"].as_str().unwrap_or_default();
        assert!(message.contains("the tag moved during admission"), "{message}");
        // The tag named, when asked, a third digest no key signed (a registry moving it again),
        // or a digest that is not sha256: refused, never admitted at it.
        for named in [
            "sha256:0303030303030303030303030303030303030303030303030303030303030303",
            "sha512:0202",
        ] {
            let (accepted, response) = admitted(&two_policies, "r.io/app:1", &mut answering(Some(named)));
            assert!(!accepted, "{named}: {response}");
            assert!(response["mutated_object"].is_null(), "{named}: {response}");
        }
        // A warn policy disagreeing with the enforcing one: both judged again at `NEW`, admitted
        // there without a warning.
        let mixed = settings(
            "deny",
            &[
                policy("all", "r.io/**", "enforce", json!([key("old", P256_PEM)])),
                policy(
                    "audit",
                    "r.io/**",
                    "warn",
                    json!([key("new", P256_SECOND_PEM), key("old", P256_PEM)]),
                ),
            ],
        );
        let (accepted, response) = admitted(&mixed, "r.io/app:1", &mut host(true));
        assert!(accepted && response["warnings"].is_null(), "{response}");
        assert_eq!(
            response["mutated_object"]["spec"]["containers"][0]["image"],
            format!("r.io/app:1@{NEW}")
        );
        // Written by digest, nothing is asked again: the disagreement is the host's own.
        let mut registry = host(true);
        let (accepted, _) = admitted(&two_policies, &format!("r.io/app:1@{OLD}"), &mut registry);
        assert!(!accepted);
        assert!(registry.calls.iter().all(|(c, _)| *c != KUBEWARDEN_MANIFEST_DIGEST));
    }

    /// The review's reproduction: `myregistry.com/app:dev-*` exempt, `noMatchPolicy: deny`.
    /// policy-controller matches a digest reference as `registry/repository@digest` (or as
    /// written), so the exemption covers neither `app:prod-1@…` nor `app@…` there, and both are
    /// denied; here they were admitted unsigned, through rule 2 (a tag glob covers the digests).
    #[test]
    fn a_tag_glob_exemption_does_not_exempt_other_digests() {
        let s = settings("deny", &[exemption("myregistry.com/app:dev-*")]);
        for image in [
            "myregistry.com/app:prod-1".to_owned(),
            format!("myregistry.com/app:prod-1@{D}"),
            format!("myregistry.com/app@{D}"),
        ] {
            let (accepted, response) = admitted(&s, &image, &mut MockHost::failing());
            assert!(!accepted, "{image}: {response}");
        }
        let (_, response) = admitted(&s, &format!("myregistry.com/app@{D}"), &mut MockHost::failing());
        let message = response["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("covered only by policies that admit it without a signature (dev-exempt)")
                && message.ends_with("noMatchPolicy: deny applies"),
            "{message}"
        );
        // What policy-controller's exemption covers stays exempt: the tag written beside the
        // digest (what the pinning twin writes), and the tag itself.
        for image in [
            format!("myregistry.com/app:dev-1@{D}"),
            "myregistry.com/app:dev-1".to_owned(),
        ] {
            let (accepted, response) = admitted(&s, &image, &mut MockHost::failing());
            assert!(accepted, "{image}: {response}");
            assert!(response["warnings"].is_null(), "{response}");
        }

        // `warn` and `allow` apply as they would: a warning, nothing.
        let image = format!("myregistry.com/app@{D}");
        let (accepted, response) = admitted(
            &settings("warn", &[exemption("myregistry.com/app:dev-*")]),
            &image,
            &mut MockHost::failing(),
        );
        assert!(accepted, "{response}");
        assert!(
            response["warnings"][0]
                .as_str()
                .is_some_and(|w| w.contains("covered only by policies that admit it without a signature")),
            "{response}"
        );
        let (accepted, response) = admitted(
            &settings("allow", &[exemption("myregistry.com/app:dev-*")]),
            &image,
            &mut MockHost::failing(),
        );
        assert!(accepted && response["warnings"].is_null(), "{response}");
    }

    /// A repository glob covers every tag here (rule 1), `latest` only in policy-controller; `**`
    /// matches no segment here, one or more there. An exemption keeps only what policy-controller
    /// reads from `noMatchPolicy`; spellings of one image (Docker Hub's names) stay one image.
    #[test]
    fn exemptions_keep_from_no_match_only_what_policy_controller_covers() {
        let s = settings("deny", &[exemption("myregistry.com/app")]);
        for (image, expected) in [
            ("myregistry.com/app", true),
            ("myregistry.com/app:latest", true),
            ("myregistry.com/app:v2", false),
        ] {
            assert_eq!(admitted(&s, image, &mut MockHost::failing()).0, expected, "{image}");
        }
        let s = settings("deny", &[exemption("r.io/**/dev:*")]);
        for (image, expected) in [("r.io/x/dev:1", true), ("r.io/x/y/dev:1", true), ("r.io/dev:1", false)] {
            assert_eq!(admitted(&s, image, &mut MockHost::failing()).0, expected, "{image}");
        }
        let s = settings("deny", &[exemption("docker.io/library/nginx:*")]);
        for image in [
            "nginx:1.25",
            "index.docker.io/library/nginx:1.25",
            "docker.io/nginx:1.25",
        ] {
            assert!(admitted(&s, image, &mut MockHost::failing()).0, "{image}");
        }
        // A glob ending in a literal tag does not cover that tag written beside any digest: the
        // runtime pulls the digest, and policy-controller matches `name@digest` or the reference
        // as written (the fix review's reproduction).
        for (glob, image) in [
            ("myregistry.com/app:dev", format!("myregistry.com/app:dev@{D}")),
            ("myregistry.com/app", format!("myregistry.com/app:latest@{D}")),
            ("docker.io/library/nginx:1.25", format!("nginx:1.25@{D}")),
            ("*.com/app:dev", format!("myregistry.com/app:dev@{D}")),
            ("**/app:dev", format!("myregistry.com/app:dev@{D}")),
        ] {
            let s = settings("deny", &[exemption(glob)]);
            assert!(
                !admitted(&s, &image, &mut MockHost::failing()).0,
                "{glob} exempted {image}"
            );
        }
        let s = settings("deny", &[exemption("**")]);
        assert!(admitted(&s, &format!("evil.io/x@{D}"), &mut MockHost::failing()).0);
    }

    /// A hostile registry's error body, quoted by the host, is cut in the message (and so in the
    /// audit annotation and the Gatekeeper answer): the review's 2 MB host error gave a 2 MB
    /// response.
    #[test]
    fn a_huge_host_failure_is_cut() {
        let key = json!([{"name": "release", "key": {"data": P256_PEM}}]);
        let s = settings("deny", &[policy("prod", "r.io/**", "enforce", key)]);
        let huge = format!("registry said: {}", "é".repeat(1_000_000));
        let mut host = MockHost::new(move |_, _| Err(huge.clone()));
        let (accepted, response) = admitted(&s, "r.io/app:1", &mut host);
        assert!(!accepted);
        let message = response["message"].as_str().unwrap_or_default();
        assert!(message.len() < 2 * super::MAX_REASON_LEN, "{} bytes", message.len());
        assert!(
            message.contains("authority release: no signature verified by the key: registry said: éé"),
            "{message}"
        );
        assert!(message.ends_with("more bytes not shown)"), "{message}");
        assert!(response.to_string().len() < 8 * super::MAX_REASON_LEN);
    }

    /// `verified` (the `verify_images` answer's, which the Gatekeeper template reads, and the one
    /// admission's rules on images written by tag read): set when the policy passed by verifying
    /// the image at a digest, for each kind of authority. A key that verifies: set; `static: pass`:
    /// not, also after a failing key; `spec.policy` with `fetchConfigFile` over a static pass
    /// (the config read at the digest the tag names, pinned there): set; without it: not; a failing
    /// policy: not.
    #[test]
    fn verified_says_whether_a_policy_passed_at_a_digest() {
        use crate::admission::verify_images;
        use crate::host::{KUBEWARDEN_MANIFEST_DIGEST, KUBEWARDEN_OCI_MANIFEST_CONFIG, KUBEWARDEN_VERIFY_V2};
        use crate::settings::SettingsCache;

        let key = json!({"name": "k", "key": {"data": P256_PEM}});
        let pass = json!({"name": "exempt", "static": {"action": "pass"}});
        let cue = "config: \"linux/amd64\": config: User: \"65532\"";
        let with_block = |fetch: bool| {
            let mut p = policy("p", "r.io/**", "enforce", json!([pass.clone()]));
            p["spec"]["policy"] = json!({"type": "cue", "fetchConfigFile": fetch, "data": cue});
            p
        };
        // A stock host over one signed image: `D` is what `r.io/app:1` names, its config amd64.
        let registry = || {
            MockHost::new(|capability, payload| {
                if capability == KUBEWARDEN_VERIFY_V2 {
                    return trusted(D);
                }
                if capability == KUBEWARDEN_MANIFEST_DIGEST {
                    return Ok(serde_json::to_vec(&json!({"digest": D})).unwrap());
                }
                assert_eq!(capability, KUBEWARDEN_OCI_MANIFEST_CONFIG, "{payload}");
                Ok(serde_json::to_vec(&json!({
                    "manifest": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 1},
                        "layers": []},
                    "digest": D,
                    "config": {"architecture": "amd64", "os": "linux", "config": {"User": "65532"},
                        "rootfs": {"type": "layers", "diff_ids": []}},
                }))
                .unwrap())
            })
        };
        let cases: Vec<(&str, Value, MockHost, bool, bool)> = vec![
            (
                "a key that verifies",
                policy("p", "r.io/**", "enforce", json!([key.clone()])),
                registry(),
                true,
                true,
            ),
            (
                "a warn policy's key",
                policy("p", "r.io/**", "warn", json!([key.clone()])),
                registry(),
                true,
                true,
            ),
            (
                "static: pass",
                policy("p", "r.io/**", "enforce", json!([pass.clone()])),
                registry(),
                true,
                false,
            ),
            (
                "static: pass after a key that fails",
                policy("p", "r.io/**", "enforce", json!([key.clone(), pass.clone()])),
                MockHost::failing(),
                true,
                false,
            ),
            (
                "a key that fails",
                policy("p", "r.io/**", "enforce", json!([key.clone()])),
                MockHost::failing(),
                false,
                false,
            ),
            (
                "fetchConfigFile over static: pass",
                with_block(true),
                registry(),
                true,
                true,
            ),
            (
                "spec.policy over static: pass, no fetchConfigFile",
                with_block(false),
                registry(),
                true,
                false,
            ),
        ];
        for (what, policy, mut host, passed, verified) in cases {
            let payload = json!({"settings": settings("allow", &[policy]),
                                 "images": [{"image": "r.io/app:1", "namespace": "default"}]});
            let answer = verify_images(payload.to_string().as_bytes(), &mut SettingsCache::default(), &mut host)
                .expect("verify_images answers");
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            let outcome = &answer["results"][0]["policies"][0];
            assert_eq!(outcome["passed"], passed, "{what}: {answer}");
            assert_eq!(outcome["verified"], verified, "{what}: {answer}");
            if verified {
                assert_eq!(answer["results"][0]["digest"], D, "{what}: {answer}");
            }
        }
    }

    /// A `warn` policy admits without a signature too: its wider coverage does not keep an
    /// image from `noMatchPolicy: deny` (it still warns). A policy that requires a signature
    /// keeps its wider coverage: a digest reference of a repository a tag glob names must be
    /// signed, and is admitted when it is.
    #[test]
    fn only_policies_that_admit_unsigned_are_read_narrowly() {
        let key = json!([{"key": {"data": P256_PEM}}]);
        let warn = policy("dev-warn", "myregistry.com/app:dev-*", "warn", key.clone());
        let (accepted, response) = admitted(
            &settings("deny", &[warn]),
            &format!("myregistry.com/app@{D}"),
            &mut MockHost::failing(),
        );
        assert!(!accepted, "{response}");
        assert!(
            response["message"].as_str().is_some_and(|m| m.contains("(dev-warn)")),
            "{response}"
        );

        let enforce = policy("prod", "myregistry.com/app:prod-*", "enforce", key);
        let s = settings("deny", &[enforce, exemption("myregistry.com/app:dev-*")]);
        let mut signed = MockHost::new(|_, _| trusted(D));
        let (accepted, response) = admitted(&s, &format!("myregistry.com/app@{D}"), &mut signed);
        assert!(accepted, "{response}");
        let (accepted, _) = admitted(&s, &format!("myregistry.com/app@{D}"), &mut MockHost::failing());
        assert!(!accepted, "unsigned: the enforcing policy denies");
    }
}
