//! From an admission request to Kubewarden's `ValidationResponse`, and from a list of
//! `{image, namespace, resource?, labels?}` keys to verdicts (`verify_images`).
//!
//! The object's lifecycle is followed the way sigstore policy-controller follows it, with no
//! host call where nothing new can run: DELETE and CONNECT requests, UPDATEs of an object
//! already being deleted, and updates of the `status` subresource are admitted as they are; an
//! UPDATE verifies (and pins) only the images its object holds that its old object did not, so
//! scaling, relabelling or removing a finalizer never depends on a registry, and pinning never
//! rewrites a field the API server refuses to change (a Job's pod template, a Pod's volumes).
//! An update of a Pod's `ephemeralcontainers` subresource is decided on the Pod as the API
//! server will store it: the old object's metadata and spec with the object's ephemeral
//! containers (docs/lifecycle.md).
//!
//! The request's `object` and `oldObject` are not read into `serde_json::Value` trees: they stay
//! the JSON text they are in the payload (borrowed from it, or from the copy the cached-settings
//! path reads), and `crate::workload` reads from that text the images, their places, and the
//! few metadata fields the policy needs. A pinned object is the object's text with the images'
//! string tokens spliced, byte for byte the rest. The object is read as a `Value` only when a
//! `spec.policy` block includes it ([`LazyObject`]). So that a request is refused exactly when
//! reading its objects as `Value`s refused it (a number out of range, a lone surrogate, too
//! deep a nesting, which serde_json's raw reader lets pass), an object the `Value` reader might
//! refuse (`value_may_refuse`) is read again that way, alone (`read_as_value`).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::answer::Response;
use crate::decision::{ImageVerdict, Verdict, decide};
use crate::host::HostCalls;
use crate::json_text::quote_or_backslash;
use crate::matching::{Labels, Subject};
use crate::reference::ImageReference;
use crate::settings::{Mode, Settings, SettingsCache, SettingsError};
use crate::workload::{ImageSite, LazyObject, ObjectText, WorkloadError, describe, pin, sites_in};

/// The parts of an AdmissionRequest the policy reads. (The SDK's own type reads `resource`
/// as `kind`, losing it, so the request is read here.) `object` and `old_object` are the JSON
/// text of the objects, borrowed; absent and `null` are both `None`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AdmissionRequest<'a> {
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    sub_resource: String,
    namespace: String,
    operation: String,
    #[serde(borrow)]
    object: Option<&'a RawValue>,
    #[serde(borrow)]
    old_object: Option<&'a RawValue>,
}

/// [`AdmissionRequest`] as it was read before: its objects as `Value`s (the reference of
/// `objects_a_value_refuses_are_refused_as_before`).
#[cfg(test)]
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[allow(dead_code)] // Read for its errors alone.
struct ValueRequest {
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    sub_resource: String,
    namespace: String,
    operation: String,
    object: serde_json::Value,
    old_object: serde_json::Value,
}

impl<'a> AdmissionRequest<'a> {
    /// The object's JSON text (`null` when absent).
    fn object(&self) -> &'a str {
        self.object.map_or("null", RawValue::get)
    }

    /// The old object's JSON text (`null` when absent).
    fn old_object(&self) -> &'a str {
        self.old_object.map_or("null", RawValue::get)
    }

    /// Whether reading an object as a `Value` might refuse what the raw reading accepted.
    fn value_may_refuse(&self) -> bool {
        value_may_refuse(self.object().as_bytes()) || value_may_refuse(self.old_object().as_bytes())
    }

    /// Whether the API server keeps of the object only its `spec.ephemeralContainers`, put in
    /// the stored object (`oldObject`), as it does for an update of the `ephemeralcontainers`
    /// subresource of a Pod (`dropNonEphemeralContainerUpdates`: the stored Pod's metadata,
    /// labels included, and the rest of its spec are kept). The images are the object's
    /// ephemeral containers, and everything else the decision reads is the stored object's.
    fn stores_only_ephemeral_containers(&self) -> bool {
        self.sub_resource == "ephemeralcontainers"
    }

    /// Whether nothing in the request can make a container run an image it did not run
    /// before, so that it is admitted without looking at images at all.
    ///
    /// `metadata.deletionTimestamp` is trusted only when the stored object (`oldObject`) carries
    /// it too: on CREATE the API server clears the field after mutating admission, so a
    /// client could otherwise set it to walk past this policy.
    fn changes_no_image_by_lifecycle(&self) -> bool {
        let being_deleted = |object: &str| ObjectText::new(object).metadata_is_set("deletionTimestamp");
        match self.operation.as_str() {
            "DELETE" | "CONNECT" => true,
            "UPDATE" => {
                self.sub_resource == "status" || (being_deleted(self.old_object()) && being_deleted(self.object()))
            }
            _ => false,
        }
    }
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
struct GroupVersionKind {
    kind: String,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
struct GroupVersionResource {
    group: String,
    version: String,
    resource: String,
}

/// The payload of `validate`; `R` is [`AdmissionRequest`] (the tests also read it with the
/// request as it was read before, its objects as `Value`s).
#[derive(Deserialize)]
struct ValidatePayload<'a, R> {
    request: R,
    #[serde(borrow)]
    settings: &'a RawValue,
}

/// The payload of `validate` without its last member, the settings recognised by
/// [`SettingsCache::split_cached`]; a second `settings` member makes the payload unreadable, as
/// in [`ValidatePayload`].
#[derive(Deserialize)]
struct RequestMembers<'a> {
    #[serde(borrow)]
    request: AdmissionRequest<'a>,
    #[serde(default)]
    settings: Present,
}

/// Whether a member is present, whatever its value (an `Option` would read `null` as absent).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// Why a `validate` payload could not be read.
#[derive(Debug, thiserror::Error)]
enum PayloadError {
    #[error("cannot read the admission request: {0}")]
    Unreadable(serde_json::Error),
    #[error("invalid policy settings: {0}")]
    Settings(SettingsError),
}

/// The request and the settings model of a `validate` payload.
///
/// Kubewarden sends the settings with every request, as the payload's last member. When they are
/// the cached text, only the rest is read: the payload minus its last member, closed with `}`,
/// read as an object with a `request` and no other `settings`. That object plus the member
/// `"settings": <cached text>` is exactly the payload (a JSON object is its members separated by
/// commas), so the answer is the one of reading the payload whole. Otherwise (a fresh instance,
/// new settings) [`read_request_first`] reads a payload written as hosts write it with one scan
/// of the settings, and any other payload is read whole.
///
/// The request's objects borrow from `payload`, or from `members`, the caller's buffer, which
/// then holds the payload's head (so that both live as long as the evaluation). A request whose
/// objects a `Value` might refuse ([`value_may_refuse`]) is read whole, where each such object is
/// read again as a `Value` ([`read_as_value`]): the three paths give the same answer, so the
/// request is refused where reading it with `Value` objects refused it.
fn read_payload<'a>(
    payload: &'a [u8],
    cache: &mut SettingsCache,
    members: &'a mut Vec<u8>,
) -> Result<(AdmissionRequest<'a>, Rc<Settings<'a>>), PayloadError> {
    if let Some((head, settings)) = cache.split_cached(payload) {
        members.clear();
        members.reserve(head.len() + 1);
        members.extend_from_slice(head);
        members.push(b'}');
        let members: &'a [u8] = members;
        if let Ok(RequestMembers {
            request,
            settings: Present(false),
        }) = serde_json::from_slice::<RequestMembers<'a>>(members)
            && !request.value_may_refuse()
        {
            return Ok((request, settings));
        }
    }
    if let Some(read) = read_request_first(payload, cache) {
        return Ok(read);
    }
    read_whole_payload(payload, cache)
}

/// A payload written as `{"request":R,"settings":S}` (Kubewarden's hosts and `cip` write it so),
/// read with one scan of the settings `S` instead of two: `R` is read as the first value of
/// the payload past `{"request":`, and what follows it, past `,"settings":` and up to the last
/// `}`, is read as the settings ([`SettingsCache::get`] reads a text that is exactly one JSON
/// value, surrounded by JSON whitespace at most). When all of that succeeds the payload is that
/// object of two members, and reading it whole gives the same request and settings (property
/// test `reading_request_first_is_reading_whole`). `None` when any step fails: the payload is
/// then read whole, which gives the answer, or the error, of every other payload. So is a
/// request nested deeper than [`MAX_REQUEST_FIRST_DEPTH`]: read whole it sits one level deeper,
/// where serde_json's recursion limit (128) may refuse it.
fn read_request_first<'a>(
    payload: &'a [u8],
    cache: &mut SettingsCache,
) -> Option<(AdmissionRequest<'a>, Rc<Settings<'a>>)> {
    const REQUEST: &[u8] = b"{\"request\":";
    const SETTINGS: &[u8] = b",\"settings\":";
    let members = payload.strip_prefix(REQUEST)?.strip_suffix(b"}")?;
    let mut values = serde_json::Deserializer::from_slice(members).into_iter::<AdmissionRequest<'a>>();
    let request = values.next()?.ok()?;
    let (request_text, rest) = members.split_at(values.byte_offset());
    if nesting_depth(request_text) > MAX_REQUEST_FIRST_DEPTH {
        return None;
    }
    if request.value_may_refuse() {
        return None;
    }
    let settings = rest.strip_prefix(SETTINGS)?;
    let text = crate::ascii::text(settings)?;
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let settings = cache.get(text).ok()?;
    Some((request, settings))
}

/// Deepest nesting of a request [`read_request_first`] reads, well below serde_json's limit.
const MAX_REQUEST_FIRST_DEPTH: usize = 100;

/// How deeply arrays and objects nest in `json`, a valid JSON text (brackets within strings
/// are not counted).
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in json {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// [`read_payload`] reading every member, the settings included. An object a `Value` might
/// refuse ([`value_may_refuse`]) is read again as one ([`read_as_value`]): the payload is refused
/// where reading it with `Value` objects refused it.
fn read_whole_payload<'a>(
    payload: &'a [u8],
    cache: &mut SettingsCache,
) -> Result<(AdmissionRequest<'a>, Rc<Settings<'a>>), PayloadError> {
    let payload: ValidatePayload<'a, AdmissionRequest<'a>> =
        serde_json::from_slice(payload).map_err(PayloadError::Unreadable)?;
    for object in [payload.request.object(), payload.request.old_object()] {
        if value_may_refuse(object.as_bytes()) {
            read_as_value(object).map_err(PayloadError::Unreadable)?;
        }
    }
    let settings = cache.get(payload.settings.get()).map_err(PayloadError::Settings)?;
    Ok((payload.request, settings))
}

/// Deepest nesting of an object of the request that serde_json reads as a `Value` inside the
/// payload: its limit is 128 levels from the payload's root, and an object's own outermost level
/// is the payload's third.
const MAX_OBJECT_DEPTH: usize = 125;

/// Reads `object`, an object of the request, as a `Value` inside the payload would be read: its
/// error (whose position is then within the object) where that reading fails.
fn read_as_value(object: &str) -> Result<(), serde_json::Error> {
    if nesting_depth(object.as_bytes()) > MAX_OBJECT_DEPTH {
        return Err(serde::de::Error::custom("recursion limit exceeded"));
    }
    serde_json::from_str::<serde_json::Value>(object).map(drop)
}

/// Whether reading `json`, a valid JSON text, as a `serde_json::Value` might fail although
/// serde_json's raw reading (`RawValue`) accepted it: a `\u` escape of a surrogate (a lone one
/// is refused), a number with an exponent or longer than 300 bytes (out of `f64`'s range), or
/// arrays and objects nested more than 100 deep (serde_json's limit is 128 from the payload's
/// root; an object sits 3 deep at most). Texts written by Kubernetes have none of these: they
/// are read once.
fn value_may_refuse(json: &[u8]) -> bool {
    const MAX_DEPTH: usize = 100;
    const MAX_NUMBER: usize = 300;
    let (mut i, mut depth) = (0, 0usize);
    while i < json.len() {
        match json[i] {
            b'"' => {
                i = quote_or_backslash(json, i + 1);
                while i < json.len() && json[i] == b'\\' {
                    let surrogate = json.get(i + 1) == Some(&b'u')
                        && matches!(json.get(i + 2), Some(b'd' | b'D'))
                        && matches!(json.get(i + 3), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'));
                    if surrogate {
                        return true;
                    }
                    i = quote_or_backslash(json, i + 2);
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len() && matches!(json[i], b'-' | b'+' | b'.' | b'0'..=b'9' | b'e' | b'E') {
                    if matches!(json[i], b'e' | b'E') {
                        return true;
                    }
                    i += 1;
                }
                if i - start > MAX_NUMBER {
                    return true;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

fn reject(message: String) -> Response {
    Response {
        accepted: false,
        message: Some(message),
        ..Response::default()
    }
}

/// Evaluates an admission request. Never fails: a request that cannot be read is refused with
/// the reason.
pub fn validate(payload: &[u8], cache: &mut SettingsCache, host: &mut dyn HostCalls) -> Response {
    let mut members = Vec::new();
    let (request, settings) = match read_payload(payload, cache, &mut members) {
        Ok(read) => read,
        Err(e) => return reject(e.to_string()),
    };
    let response = evaluate(&request, &settings, host);
    cache.retire(settings);
    response
}

/// [`validate`] of a request read with its settings.
fn evaluate(request: &AdmissionRequest<'_>, settings: &Settings<'_>, host: &mut dyn HostCalls) -> Response {
    if request.changes_no_image_by_lifecycle() {
        return accept(None, Vec::new(), HashMap::new());
    }
    if request.kind.kind.is_empty() {
        return reject("the admission request has no kind: cannot tell where its images are".to_owned());
    }
    let object = ObjectText::new(request.object());
    // The object as it will be stored, whose metadata (labels, namespace, name) the decision
    // reads: the object, but for the ephemeralcontainers subresource (`stored`).
    let stored = request
        .stores_only_ephemeral_containers()
        .then(|| ObjectText::new(request.old_object()));
    let meta = stored.as_ref().unwrap_or(&object);
    let from_object;
    let namespace = if request.namespace.is_empty() {
        from_object = meta.metadata_string("namespace").unwrap_or_default();
        from_object.as_ref()
    } else {
        request.namespace.as_str()
    };
    if stored.is_some() && request.kind.kind != "Pod" {
        return reject(format!(
            "an object of kind {} on the ephemeralcontainers subresource: only a Pod is read there (Kubernetes before 1.23 \
             sent an EphemeralContainers object, which this policy does not read); refused",
            request.kind.kind
        ));
    }
    if stored.is_some_and(|old| !old.is_object()) {
        return reject(format!(
            "{}: an update of the ephemeralcontainers subresource without the stored Pod (oldObject is \
             missing or not an object): the API server keeps the stored Pod's labels and spec, so the \
             policies that apply cannot be told; refused",
            describe(&request.kind.kind, namespace, &object)
        ));
    }
    let sites = match sites_in(&request.kind.kind, &request.sub_resource, &object) {
        Ok(sites) => sites,
        // Denied whatever the settings, as an image that is not a valid reference is.
        Err(e @ WorkloadError::NoImage { .. }) => {
            return reject(format!("{}: {e}", describe(&request.kind.kind, namespace, meta)));
        }
        Err(e) => {
            return reject(format!(
                "{} cannot be read as a {}: {e}; its images cannot be checked",
                describe(&request.kind.kind, namespace, meta),
                request.kind.kind
            ));
        }
    };
    let lazy = match &stored {
        None => LazyObject::new(object.text()),
        Some(old) => LazyObject::stored_pod(old.text(), object.spec_member("ephemeralContainers")),
    };
    let subject = Subject {
        namespace,
        group: &request.resource.group,
        version: &request.resource.version,
        resource: &request.resource.resource,
        labels: meta.metadata_object("labels").map_or(Labels::None, Labels::Json),
        object: Some(&lazy),
    };
    // An UPDATE's old object, and the subject it was decided as (its labels; the rest is the
    // request's): what the images it held were decided with.
    let old_object = (request.operation == "UPDATE").then(|| ObjectText::new(request.old_object()));
    let old = old_object.as_ref().map(|old_object| {
        let old_subject = Subject {
            labels: old_object.metadata_object("labels").map_or(Labels::None, Labels::Json),
            ..subject.clone()
        };
        (old_object, old_subject)
    });
    let old = old.as_ref().map(|(object, subject)| (*object, subject));
    let (sites, pinnable) = sites_to_decide(request, settings, &subject, old, sites);
    if sites.is_empty() {
        return accept(None, Vec::new(), HashMap::new());
    }

    // One decision per distinct image, in the order of first appearance; each site's is noted
    // (looked up again for the pins, an image's text was compared byte by byte once more: ≈ 600
    // instructions a site in wasm).
    let mut verdicts: Vec<ImageVerdict> = Vec::new();
    let mut by_image: HashMap<&str, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(sites.len(), foldhash::fast::RandomState::default());
    let mut verdict_of_site = Vec::with_capacity(sites.len());
    for site in &sites {
        let verdict = *by_image.entry(site.image.as_ref()).or_insert_with(|| {
            verdicts.push(decide(settings, &subject, &site.image, host));
            verdicts.len() - 1
        });
        verdict_of_site.push(verdict);
    }

    if let Some(e) = verdicts.iter().find_map(|v| v.invalid_settings.as_ref()) {
        return reject(format!("invalid policy settings: {e}"));
    }

    // A Pod relabelled into a policy's scope keeps the images it runs (docs/lifecycle.md): those
    // written by tag are refused (or warned about) when a newly applying policy verified them.
    let (retagged, retagged_warnings) = if request.kind.kind == "Pod" && request.sub_resource.is_empty() {
        held_by_tag(
            settings,
            &subject,
            old.map(|(_, old_subject)| old_subject),
            &sites,
            &verdict_of_site,
            &pinnable,
            &verdicts,
        )
    } else {
        (Vec::new(), Vec::new())
    };

    let denials: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict == Verdict::Deny)
        .map(|v| v.message.as_str())
        .chain(retagged.iter().map(String::as_str))
        .collect();
    if !denials.is_empty() {
        return reject(format!(
            "{}: {}",
            describe(&request.kind.kind, namespace, meta),
            denials.join("; ")
        ));
    }

    // `modifyImagesWithDigest: false` (the validating twin of a pinning policy, docs/deploy.md
    // "Two webhooks"): an image that would have been pinned here (verified by an `enforce`
    // policy at the digest its tag named, written without a digest, at a place this request
    // writes) is not rewritten, so it would run by tag, and the tag can move between this check
    // and the pull. policy-controller's validating webhook refuses every reference that is not
    // a digest (`refOrFieldError`); refused here too, naming the digest to write. What the
    // pinning twin writes (`tag@digest`), images no `enforce` policy verified (`warn` policies,
    // `static: pass` exemptions, no policy) and images an UPDATE leaves in place pass as before.
    if !settings.pin_digests {
        let unpinned = unpinned_images(&sites, &verdict_of_site, &pinnable, &verdicts);
        if !unpinned.is_empty() {
            return reject(format!(
                "{}: {}",
                describe(&request.kind.kind, namespace, meta),
                unpinned.join("; ")
            ));
        }
    }

    let mut audit = HashMap::new();
    let unverified: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict == Verdict::Warn)
        .map(|v| v.message.as_str())
        .collect();
    if !unverified.is_empty() {
        audit.insert("unverified-images".to_owned(), unverified.join("; "));
    }

    // The verdicts are taken apart: their warnings go to the answer (moved, not copied), their
    // pins into the object's text, spliced where each pinned image's string is; the object is
    // returned only when one was written.
    let mut warnings = Vec::new();
    let mut pins = Vec::with_capacity(verdicts.len());
    for verdict in verdicts {
        warnings.extend(verdict.warnings);
        pins.push(verdict.pin);
    }
    warnings.extend(retagged_warnings.iter().map(|w| crate::decision::truncate(w)));
    let mut spliced = Vec::new();
    if settings.pin_digests {
        for ((site, &verdict), _) in sites.iter().zip(&verdict_of_site).zip(&pinnable).filter(|(_, p)| **p) {
            if let Some(digest) = pins.get(verdict).and_then(Option::as_deref) {
                spliced.push((site.token.clone(), site.image.as_ref(), digest));
            }
        }
    }
    let mutated = (!spliced.is_empty()).then(|| pin(object.text(), &mut spliced));
    accept(mutated, warnings, audit)
}

/// Under `modifyImagesWithDigest: false`, why each image that would have been pinned (a
/// pinnable site whose verdict carries a pin, verified by an `enforce` policy) is refused, once
/// an image.
fn unpinned_images(
    sites: &[ImageSite<'_>],
    verdict_of_site: &[usize],
    pinnable: &[bool],
    verdicts: &[ImageVerdict<'_>],
) -> Vec<String> {
    let mut refused = vec![false; verdicts.len()];
    let mut messages = Vec::new();
    for ((site, &index), _) in sites.iter().zip(verdict_of_site).zip(pinnable).filter(|(_, p)| **p) {
        let verdict = &verdicts[index];
        let Some(digest) = verdict.pin.as_deref() else { continue };
        if std::mem::replace(&mut refused[index], true) {
            continue;
        }
        let Some(policy) = verifying_policy(verdict, Mode::Enforce, |_| true) else {
            continue;
        };
        let image = site.image.as_ref();
        messages.push(format!(
            "image {image} was verified by tag (policy {policy} verified {digest}), but this policy does not pin \
             (modifyImagesWithDigest: false) and the tag can move before the pull: reference it by digest \
             ({image}@{digest}), or let the mutating policy (modifyImagesWithDigest: true) pin it"
        ));
    }
    messages
}

/// The name of the first policy of `mode`, among those `among` keeps, that passed `verdict` by
/// verifying the image at a digest
/// ([`PolicyOutcome::verified`](crate::decision::PolicyOutcome::verified)). `None` when only
/// other policies or exemptions vouched for it.
fn verifying_policy<'v>(verdict: &ImageVerdict<'v>, mode: Mode, among: impl Fn(&str) -> bool) -> Option<&'v str> {
    verdict
        .policies
        .iter()
        .find(|outcome| outcome.mode == mode.as_str() && outcome.verified && among(outcome.name))
        .map(|outcome| outcome.name)
}

/// On an UPDATE of a Pod, the images decided again at their old place ([`sites_to_decide`]: not
/// pinnable) that are written without a digest and that a policy applying to the new object and
/// not to the old one (its selector reads labels that changed) verified at a digest. The kubelet
/// pulled the tag when the Pod started, and may run another image than the one the tag names
/// now; the update does not rewrite the image (its field may be immutable, and a container's
/// image changed in place restarts it), so a verification of the tag vouches for nothing that
/// runs. With such an `enforce` policy the image is refused (the first reason list); with only
/// `warn` policies it is admitted with a warning (the second). Once an image.
fn held_by_tag(
    settings: &Settings<'_>,
    subject: &Subject<'_>,
    old_subject: Option<&Subject<'_>>,
    sites: &[ImageSite<'_>],
    verdict_of_site: &[usize],
    pinnable: &[bool],
    verdicts: &[ImageVerdict<'_>],
) -> (Vec<String>, Vec<String>) {
    let (mut refused, mut warned) = (Vec::new(), Vec::new());
    let Some(old_subject) = old_subject.filter(|_| !pinnable.iter().all(|p| *p)) else {
        return (refused, warned);
    };
    let mut seen = vec![false; verdicts.len()];
    for ((site, &index), _) in sites.iter().zip(verdict_of_site).zip(pinnable).filter(|(_, p)| !**p) {
        if std::mem::replace(&mut seen[index], true) {
            continue;
        }
        let verdict = &verdicts[index];
        // Set when the image has no digest and no `enforce` policy denied it.
        let Some(digest) = verdict.pin.as_deref() else { continue };
        let Ok(reference) = ImageReference::parse(&site.image) else {
            continue;
        };
        let newly: Vec<&str> = settings
            .covering(&reference)
            .filter(|p| {
                matches!(settings.applies(p, subject), Ok(true))
                    && !matches!(settings.applies(p, old_subject), Ok(true))
            })
            .map(|p| p.name.as_str())
            .collect();
        let verifying = |mode| verifying_policy(verdict, mode, |name| newly.contains(&name));
        let image = site.image.as_ref();
        if let Some(policy) = verifying(Mode::Enforce) {
            refused.push(format!(
                "image {image} would now be checked by policy {policy}, but it is written by tag and this update does \
                 not change it: the Pod may be running another image than the one verified now (the tag can move after \
                 the pull); recreate the Pod (it is then verified and pinned), or write the image by digest \
                 ({image}@{digest})"
            ));
        } else if let Some(policy) = verifying(Mode::Warn) {
            warned.push(format!(
                "image {image} is now checked by policy {policy} (warn mode), which verified {digest}; the Pod may run \
                 another image (pulled by tag): recreate it or write the image by digest"
            ));
        }
    }
    (refused, warned)
}

/// The sites to decide, and for each whether it may be pinned. Not an UPDATE (`old`, the old
/// object and the subject it was decided as, is `None`): every site, each
/// pinnable. An UPDATE: every site whose place (list and index) held another image in the old
/// object (a container changed, added, or given an image another container had), pinnable since
/// its field is being written anyway; and every site holding the same image at the same place
/// whose decision may differ for the new object ([`decision_may_change`]: a relabelled Pod that a
/// policy's selector now covers), decided but never rewritten (a Job's template and a Pod's
/// volumes are immutable: rewriting an unchanged image would make the API server refuse the
/// update; on a Pod, such an image written by tag that a newly applying policy verified is
/// refused or warned about instead: [`held_by_tag`]). The rest was decided, with the same labels
/// and settings, when it was written: an
/// update that changes no image and nothing a covering policy reads (scaling, a finalizer, an
/// annotation, labels no selector looks at) makes no host call, so it never depends on a
/// registry being reachable. An old object that cannot be read vouches for nothing.
fn sites_to_decide<'a>(
    request: &AdmissionRequest<'_>,
    settings: &Settings<'_>,
    subject: &Subject<'_>,
    old: Option<(&ObjectText<'_>, &Subject<'_>)>,
    sites: Vec<ImageSite<'a>>,
) -> (Vec<ImageSite<'a>>, Vec<bool>) {
    let every_site = |sites: Vec<ImageSite<'a>>| {
        let pinnable = vec![true; sites.len()];
        (sites, pinnable)
    };
    let Some((old_object, old_subject)) = old else {
        return every_site(sites);
    };
    let Ok(old_sites) = sites_in(&request.kind.kind, &request.sub_resource, old_object) else {
        return every_site(sites);
    };
    let held: HashMap<(u8, usize), &str> = old_sites.iter().map(|s| (s.place, s.image.as_ref())).collect();
    let mut may_change: HashMap<&str, bool> = HashMap::new();
    // `None`: not decided; `Some(pinnable)`.
    let decided: Vec<Option<bool>> = sites
        .iter()
        .map(|site| {
            if held.get(&site.place) != Some(&site.image.as_ref()) {
                return Some(true);
            }
            let changes = *may_change
                .entry(site.image.as_ref())
                .or_insert_with(|| decision_may_change(settings, &site.image, subject, old_subject));
            changes.then_some(false)
        })
        .collect();
    sites
        .into_iter()
        .zip(decided)
        .filter_map(|(site, decided)| decided.map(|pinnable| (site, pinnable)))
        .unzip()
}

/// Whether the decision about `image`, held at the same place by an UPDATE's old object, may
/// differ for the new object under these settings: a policy covering it applies to one object
/// and not the other (its `match` selects labels that changed), or applies to both and reads
/// the object itself (`spec.policy` with `includeSpec`, `includeObjectMeta` or
/// `includeTypeMeta`). Settings that cannot be read say yes (deciding denies). An image that
/// cannot be read is denied whatever the object: no.
fn decision_may_change(settings: &Settings<'_>, image: &str, new: &Subject<'_>, old: &Subject<'_>) -> bool {
    let Ok(reference) = ImageReference::parse(image) else {
        return false;
    };
    settings.covering(&reference).any(
        |policy| match (settings.applies(policy, new), settings.applies(policy, old)) {
            (Ok(false), Ok(false)) => false,
            (Ok(true), Ok(true)) => settings.body(policy).map_or(true, |body| {
                body.policy.as_ref().is_some_and(|block| block.object_flag().is_some())
            }),
            _ => true,
        },
    )
}

fn accept(mutated_object: Option<String>, warnings: Vec<String>, audit: HashMap<String, String>) -> Response {
    Response {
        accepted: true,
        message: None,
        code: None,
        mutated_object,
        audit_annotations: (!audit.is_empty()).then_some(audit),
        warnings: (!warnings.is_empty()).then_some(warnings),
    }
}

/// One key of `verify_images`: an image and where it is used. Without `resource` the image is
/// decided as in a Pod (`{"group": "", "version": "v1", "resource": "pods"}`); without
/// `labels`, as in an object without labels.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageKey {
    pub image: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub resource: Option<ResourceKey>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The resource of an [`ImageKey`], as in an AdmissionRequest's `resource`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceKey {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub resource: String,
}

impl ImageKey {
    /// Refuses a key a policy's `match` could misread: an empty resource or version would
    /// match no resource rule, so a policy scoped to a resource would silently not apply.
    fn check(&self, index: usize) -> Result<(), String> {
        if let Some(r) = &self.resource
            && (r.resource.trim().is_empty() || r.version.trim().is_empty())
        {
            return Err(format!(
                "images[{index}].resource: give version and resource (e.g. {{\"group\": \"apps\", \"version\": \"v1\", \"resource\": \"deployments\"}}), or leave resource out to mean pods"
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyImagesPayload<'a> {
    #[serde(borrow)]
    settings: &'a RawValue,
    images: Vec<ImageKey>,
}

/// The answer of `verify_images`.
#[derive(Serialize)]
pub struct VerifyImagesResponse<'a> {
    pub results: Vec<ImageVerdict<'a>>,
}

/// Decides each image as admission decides it in an object of the key's namespace, resource
/// and labels; the answer is the JSON text of a [`VerifyImagesResponse`] (whose verdicts borrow
/// from the payload and the settings).
pub fn verify_images(payload: &[u8], cache: &mut SettingsCache, host: &mut dyn HostCalls) -> Result<Vec<u8>, String> {
    let payload: VerifyImagesPayload<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("cannot read the verify_images request: {e}"))?;
    let settings = cache
        .get(payload.settings.get())
        .map_err(|e| format!("invalid policy settings: {e}"))?;
    let answer = verify_keys(&payload.images, &settings, host);
    cache.retire(settings);
    answer
}

/// [`verify_images`] of keys read with their settings.
fn verify_keys(images: &[ImageKey], settings: &Settings<'_>, host: &mut dyn HostCalls) -> Result<Vec<u8>, String> {
    for (index, key) in images.iter().enumerate() {
        key.check(index)?;
    }
    let results = images
        .iter()
        .map(|key| {
            let (group, version, resource) = match &key.resource {
                Some(r) => (r.group.as_str(), r.version.as_str(), r.resource.as_str()),
                None => ("", "v1", "pods"),
            };
            let subject = Subject {
                namespace: &key.namespace,
                group,
                version,
                resource,
                labels: key.labels.as_ref().map_or(Labels::None, Labels::Strings),
                object: None,
            };
            decide(settings, &subject, &key.image, host)
        })
        .collect::<Vec<_>>();
    if let Some(e) = results.iter().find_map(|v| v.invalid_settings.as_ref()) {
        return Err(format!("invalid policy settings: {e}"));
    }
    serde_json::to_vec(&VerifyImagesResponse { results }).map_err(|e| format!("cannot encode the verdicts: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Settings as a host writes them: compact, one policy.
    const SETTINGS: &str = r#"{"policies":[{"metadata":{"name":"p"},"spec":{"images":[{"glob":"r.io/**"}],"authorities":[{"static":{"action":"pass"}}]}}]}"#;

    fn warm_cache(text: &str) -> SettingsCache {
        let mut cache = SettingsCache::default();
        // An instance keeps the settings it reads a second time.
        for _ in 0..2 {
            cache.get(text).expect("the test settings read");
        }
        cache
    }

    /// A request, comparable: its objects as their text.
    type Read = (GroupVersionKind, GroupVersionResource, [String; 3], [Option<String>; 2]);

    /// What `read_payload` answers, comparable: the request and the settings text, or the error.
    fn outcome(read: Result<(AdmissionRequest<'_>, Rc<Settings<'_>>), PayloadError>) -> Result<(Read, String), String> {
        read.map(|(r, settings)| {
            let text = |o: Option<&RawValue>| o.map(|o| o.get().to_owned());
            (
                (
                    r.kind,
                    r.resource,
                    [r.sub_resource, r.namespace, r.operation],
                    [text(r.object), text(r.old_object)],
                ),
                settings.source().to_owned(),
            )
        })
        .map_err(|e| e.to_string())
    }

    /// What reading the payload whole with `Value` objects answers (as before the objects were
    /// read as text): the error, or the objects.
    fn as_values(payload: &str) -> Result<[Value; 2], String> {
        serde_json::from_str::<ValidatePayload<'_, ValueRequest>>(payload)
            .map(|p| [p.request.object, p.request.old_object])
            .map_err(|e| PayloadError::Unreadable(e).to_string())
    }

    /// Objects serde_json's raw reading accepts and its `Value` reading refuses (numbers out of
    /// range, lone surrogates, deep nesting) are refused as before, with the same message, on
    /// every path; those near them are read, as the same values.
    /// A serde_json message without its ` at line L column C`.
    fn without_position(message: &str) -> &str {
        message.rsplit_once(" at line ").map_or(message, |(m, _)| m)
    }

    #[test]
    fn objects_a_value_refuses_are_refused_as_before() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = [
            "1e400".to_owned(),
            "-1e400".to_owned(),
            "1e5".to_owned(),
            "1E-400".to_owned(),
            "9".repeat(400),
            format!("0.{}", "9".repeat(400)),
            "9".repeat(300),
            r#""\ud800""#.to_owned(),
            r#""\uDC00x""#.to_owned(),
            r#""\ud83d\ude00""#.to_owned(),
            r#""\ud83d\u0041""#.to_owned(),
            r#""\\ud800""#.to_owned(),
            r#"{"k\udfff": 1}"#.to_owned(),
            deep(99),
            deep(101),
            deep(124),
            deep(125),
            deep(126),
            deep(127),
        ];
        for object in &objects {
            for (field, other) in [("object", "oldObject"), ("oldObject", "object")] {
                let request = format!(
                    r#"{{"kind":{{"kind":"Pod"}},"operation":"UPDATE","{field}":{{"spec":{object}}},"{other}":{{}}}}"#
                );
                let payload = format!(r#"{{"request":{request},"settings":{SETTINGS}}}"#);
                let before = as_values(&payload);
                for read in [
                    outcome(read_payload(
                        payload.as_bytes(),
                        &mut SettingsCache::default(),
                        &mut Vec::new(),
                    )),
                    outcome(read_payload(
                        payload.as_bytes(),
                        &mut warm_cache(SETTINGS),
                        &mut Vec::new(),
                    )),
                    outcome(read_whole_payload(payload.as_bytes(), &mut SettingsCache::default())),
                ] {
                    match (&before, read) {
                        // The same error; its position is counted within the object once the
                        // payload was read.
                        (Err(before), Err(read)) => {
                            assert_eq!(without_position(before), without_position(&read), "{field}: {object}")
                        }
                        (Ok(values), Ok(((_, _, _, texts), _))) => {
                            let read = texts.map(|t| serde_json::from_str::<Value>(&t.unwrap()).unwrap());
                            assert_eq!(values, &read, "{field}: {object}");
                        }
                        (before, read) => panic!("{field}: {object}: {before:?} vs {read:?}"),
                    }
                }
                // Unreadable elsewhere as well: refused either way.
                let broken = payload.replace("\"settings\":{", "\"settings\":{\"x\":");
                assert!(outcome(read_whole_payload(broken.as_bytes(), &mut SettingsCache::default())).is_err());
                assert!(as_values(&broken).is_err());
            }
        }
        assert!(as_values(&format!(r#"{{"request":{{"object":{}}},"settings":{{}}}}"#, objects[0])).is_err());
    }

    #[test]
    fn cached_settings_are_recognised_only_as_the_exact_last_member() {
        let cache = warm_cache(SETTINGS);
        let request = r#"{"request":{"kind":{"kind":"Pod"},"operation":"CREATE"}"#;
        let split = |payload: String| cache.split_cached(payload.as_bytes()).map(|(head, _)| head.to_vec());
        assert_eq!(
            split(format!("{request},\"settings\":{SETTINGS}}}")),
            Some(request.as_bytes().to_vec())
        );
        // Spaced, reordered, other settings, or nothing after the settings' end: read whole.
        assert_eq!(split(format!("{request}, \"settings\":{SETTINGS}}}")), None);
        assert_eq!(split(format!("{request},\"settings\":{SETTINGS} }}")), None);
        assert_eq!(split(format!("{{\"settings\":{SETTINGS},{}}}", &request[1..])), None);
        assert_eq!(
            split(format!(
                "{request},\"settings\":{}}}",
                SETTINGS.replace("\"p\"", "\"q\"")
            )),
            None
        );
        assert_eq!(split(format!("{request},\"settings\":{SETTINGS}")), None);
        assert_eq!(
            SettingsCache::default()
                .split_cached(format!("{request},\"settings\":{SETTINGS}}}").as_bytes())
                .map(|_| ()),
            None
        );
    }

    /// A request nested as deeply as serde_json allows at the top level is one level too deep
    /// inside the payload: refused as when read whole, not read first.
    #[test]
    fn a_request_nested_too_deeply_for_the_payload_is_refused_as_when_read_whole() {
        for depth in [90, 100, 101, 126, 127, 130] {
            let nested = format!("{}{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
            let request = format!(r#"{{"kind":{{"kind":"Pod"}},"object":{nested}}}"#);
            assert_eq!(nesting_depth(request.as_bytes()), depth);
            let payload = format!(r#"{{"request":{request},"settings":{SETTINGS}}}"#);
            let first = outcome(read_payload(
                payload.as_bytes(),
                &mut SettingsCache::default(),
                &mut Vec::new(),
            ));
            let whole = outcome(read_whole_payload(payload.as_bytes(), &mut SettingsCache::default()));
            assert_eq!(first, whole, "depth {depth}");
            // `object` is read as a `Value`: 127 levels, 128 with the payload's, are refused.
            assert_eq!(first.is_ok(), depth < 127, "depth {depth}: {first:?}");
        }
    }

    #[test]
    fn nesting_depth_skips_brackets_in_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[{\"}","b":[{}]}"#), 3);
        assert_eq!(nesting_depth(b"1"), 0);
    }

    #[test]
    fn a_second_settings_member_is_refused_as_when_read_whole() {
        for second in ["null", "{}", SETTINGS] {
            let payload =
                format!(r#"{{"settings":{second},"request":{{"kind":{{"kind":"Pod"}}}},"settings":{SETTINGS}}}"#);
            let fast = outcome(read_payload(
                payload.as_bytes(),
                &mut warm_cache(SETTINGS),
                &mut Vec::new(),
            ));
            let error = fast.expect_err("two settings members");
            assert!(error.contains("duplicate field `settings`"), "{error}");
        }
    }

    /// JSON fragments, some of them dangerous around a cut: quotes and backslashes that could
    /// open or escape a string, brackets, a settings member inside the request, the cached
    /// text itself.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just(" ".to_owned()),
            Just("null".to_owned()),
            Just("1".to_owned()),
            Just("\"request\":".to_owned()),
            Just("\"settings\":".to_owned()),
            Just(",\"settings\":".to_owned()),
            Just("\"x\":".to_owned()),
            Just("\"a,\\\"settings\\\":\"".to_owned()),
            Just(
                r#"{"kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"image":"r.io/a"}]}}}"#
                    .to_owned()
            ),
            Just(SETTINGS.to_owned()),
            Just("{}".to_owned()),
            "[a-z\"\\{}:, ]{0,6}",
        ]
    }

    /// JSON values whose strings and keys hold what could confuse a cut at the settings
    /// member: quotes, backslashes, a settings member, the cached text.
    fn json_value() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            Just(",\"settings\":".to_owned()),
            Just(SETTINGS.to_owned()),
            Just("settings".to_owned()),
            Just("request".to_owned()),
            "[a-z\"\\{}:, ]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// A request object: a Pod, with members of any kind beside.
    fn request_json() -> impl Strategy<Value = String> {
        (json_value(), prop::bool::ANY).prop_map(|(extra, with_pod)| {
            let mut request = serde_json::json!({"kind": {"kind": "Pod"}, "operation": "CREATE"});
            if with_pod {
                request["object"] = serde_json::json!({"spec": {"containers": [{"name": "a", "image": "r.io/a"}]}});
            }
            request["extra"] = extra;
            request.to_string()
        })
    }

    /// Payloads as a host writes them (`{"request":…,"settings":…}`, with other members, a
    /// second request or settings), then cut, spliced or left whole, most ending with the cached
    /// settings as last member.
    fn payload() -> impl Strategy<Value = String> {
        let member = (
            prop_oneof![Just("x"), Just("settings"), Just("Settings"), Just("request")],
            prop_oneof![json_value().prop_map(|v| v.to_string()), request_json()],
        )
            .prop_map(|(key, value)| format!(",\"{key}\":{value}"));
        let splice = prop::collection::vec(fragment(), 0..4).prop_map(|f| f.concat());
        (
            request_json(),
            prop::collection::vec(member, 0..3),
            prop_oneof![
                3 => Just(format!(",\"settings\":{SETTINGS}}}")),
                1 => Just(",\"settings\":{}}".to_owned()),
                1 => Just(format!(",\"Settings\":{SETTINGS}}}")),
                1 => Just(format!(",\"settings\": {SETTINGS}\n}}")),
                1 => Just("}".to_owned()),
            ],
            prop_oneof![3 => Just(None), 1 => (any::<prop::sample::Index>(), splice).prop_map(Some)],
        )
            .prop_map(|(request, members, tail, splice)| {
                let mut head = format!("{{\"request\":{request}{}", members.concat());
                if let Some((at, text)) = splice {
                    let mut cut = at.index(head.len() + 1);
                    while !head.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    head.insert_str(cut, &text);
                }
                head + &tail
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Recognising the cached settings gives what reading the payload whole gives: the same
        /// request and settings, or the same error.
        #[test]
        fn reading_past_cached_settings_is_reading_whole(payload in payload()) {
            let fast = outcome(read_payload(payload.as_bytes(), &mut warm_cache(SETTINGS), &mut Vec::new()));
            let whole = outcome(read_whole_payload(payload.as_bytes(), &mut warm_cache(SETTINGS)));
            prop_assert_eq!(fast, whole);
        }

        /// With nothing cached (a fresh instance), reading a payload with the request first
        /// gives what reading it whole gives, and so does reading it again (the settings read
        /// again and kept) and a third time (the settings cached).
        #[test]
        fn reading_request_first_is_reading_whole(payload in payload()) {
            let mut cache = SettingsCache::default();
            let whole = outcome(read_whole_payload(payload.as_bytes(), &mut SettingsCache::default()));
            for _ in 0..3 {
                let read = outcome(read_payload(payload.as_bytes(), &mut cache, &mut Vec::new()));
                prop_assert_eq!(&read, &whole);
            }
        }
    }
}
