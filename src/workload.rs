//! Images in and out of every workload kind, read from the object's JSON text.
//!
//! The object is the raw JSON text of the admission request's `object`, borrowed from the
//! payload (which serde_json has checked to be valid JSON): no `serde_json::Value` tree is built
//! for it. Only the path to the pod spec of the kind is walked (with the functions of
//! `crate::json_text`, shared with the settings skeleton); every object on the way is split
//! into its members, the last of duplicate keys winning as in a `Value`, keys compared after
//! their escapes are decoded (`"im\u0061ge"` is `image`). Every image is found with the byte
//! range of its JSON string token in the text, so pinning it to a digest splices the token
//! ([`pin`]) and leaves every other byte of the object as it was. The typed Kubernetes structs
//! are not used either: they would double the module's size.
//!
//! An object of a workload kind whose image fields have the wrong shape is an error
//! ([`WorkloadError`]), never "no images": a policy that cannot see an image must not admit it.
//! The `metadata` lookups ([`ObjectText`]'s, [`describe`]) are lenient: a field of the wrong
//! type is absent.
//!
//! The reader that built a `Value` first is kept as the reference of the property tests
//! (`src/workload/reference_impl.rs`): sites, errors, metadata answers and pinned objects are
//! compared on generated object texts.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::ops::Range;

use serde_json::Value;

use crate::json_text::{Type, get, get_each, is_set, items, string, string_at, trim, type_name, type_of, value_at};

#[cfg(test)]
mod reference_impl;

/// Where the pod spec of each workload kind lives.
fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" => {
            &["spec", "template", "spec"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// One image field of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSite<'a> {
    /// The image as written (its JSON escapes decoded).
    pub image: Cow<'a, str>,
    /// The byte range of the field's JSON string token (quotes included) in the object text.
    pub token: Range<usize>,
    /// Where the field is in the pod spec: the list (0 `initContainers`, 1 `containers`,
    /// 2 `ephemeralContainers`, 3 `volumes`) and the item's index in it; the same place in an
    /// UPDATE's old object is the same container or volume as far as the API server lets one
    /// change (a Pod's lists cannot be reordered).
    pub place: (u8, usize),
}

/// Why an object cannot be read as its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The object says it is of another kind than the request.
    #[error("the object is a {found}, but the request is about a {expected}")]
    KindMismatch { expected: String, found: String },
    /// A field on the way to an image has the wrong JSON type.
    #[error("{field} is {found}, not {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// The object has no pod spec where its kind keeps it.
    #[error("{field} is missing: a {kind} keeps its pod spec there")]
    NoPodSpec { field: String, kind: String },
    /// A container of a pod template (a Deployment's, a Job's, …) without an image, or with an
    /// empty one. The API server refuses such a container in a Pod, but a template may be
    /// written without the image, for other configuration or a webhook to fill in later: what
    /// it will run cannot be verified (policy-controller, failing to read the empty reference,
    /// denies it too).
    #[error(
        "container {container}has no image ({field} is missing or empty): what it will run cannot be verified; write its image in the template"
    )]
    NoImage {
        field: String,
        /// The container's name, quoted, followed by a space (empty when it has none).
        container: String,
    },
    /// A string on the way to an image whose escapes do not decode (a lone surrogate). The
    /// request is read so that this cannot happen (such an object is refused as unreadable,
    /// as a `Value` refuses it); kept so that no image is ever read as something else.
    #[error("{field} is not a readable JSON string")]
    Unreadable { field: String },
}

/// The object as a `Value`, read only when asked for (by a `spec.policy` block that includes
/// the object's spec, metadata or type meta), once.
pub struct LazyObject<'a> {
    text: &'a str,
    /// `Some(list)`: `text` is the stored Pod of a `pods/ephemeralcontainers` update, and the
    /// object is that Pod with `list` (the body's `spec.ephemeralContainers`; `None` when the
    /// body has none) as its `spec.ephemeralContainers` ([`LazyObject::stored_pod`]).
    ephemeral_containers: Option<Option<&'a str>>,
    value: OnceCell<Result<Value, String>>,
}

impl<'a> LazyObject<'a> {
    pub fn new(text: &'a str) -> Self {
        LazyObject {
            text,
            ephemeral_containers: None,
            value: OnceCell::new(),
        }
    }

    /// The Pod an update of its `ephemeralcontainers` subresource stores: `old`, the text of the
    /// stored Pod (`oldObject`), whose `spec.ephemeralContainers` is replaced by `ephemeral`, the
    /// text of the body's. The API server keeps nothing else of the body
    /// (`dropNonEphemeralContainerUpdates`). A body without the list (`None`) leaves the old
    /// Pod's: it cannot remove them (the API server refuses an update that removes an
    /// ephemeral container), and a Pod without any stays so.
    pub fn stored_pod(old: &'a str, ephemeral: Option<&'a str>) -> Self {
        LazyObject {
            text: old,
            ephemeral_containers: Some(ephemeral),
            value: OnceCell::new(),
        }
    }

    /// The object as a `Value`, or why it cannot be read as one.
    pub fn value(&self) -> Result<&Value, &str> {
        self.value
            .get_or_init(|| {
                let mut value = serde_json::from_str(self.text).map_err(|e| format!("cannot read the object: {e}"))?;
                if let Some(ephemeral) = self.ephemeral_containers {
                    with_ephemeral_containers(&mut value, ephemeral)?;
                }
                Ok(value)
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Gives `pod` (an object) `ephemeral`, the JSON text of a list, as its
/// `spec.ephemeralContainers` (`None`: leaves it as it is); an error when `pod` or its `spec` is
/// not an object. (Nothing is removed from a map: that would add 4 KB of `BTreeMap` code.)
fn with_ephemeral_containers(pod: &mut Value, ephemeral: Option<&str>) -> Result<(), String> {
    let Some(ephemeral) = ephemeral else {
        return Ok(());
    };
    let ephemeral = serde_json::from_str::<Value>(ephemeral)
        .map_err(|e| format!("cannot read the object's spec.ephemeralContainers: {e}"))?;
    let Value::Object(pod) = pod else {
        return Err("cannot read the object: the stored Pod (oldObject) is not an object".to_owned());
    };
    let spec = pod
        .entry("spec")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if spec.is_null() {
        *spec = Value::Object(serde_json::Map::new());
    }
    let Value::Object(spec) = spec else {
        return Err("cannot read the object: the stored Pod's spec is not an object".to_owned());
    };
    spec.insert("ephemeralContainers".to_owned(), ephemeral);
    Ok(())
}

impl fmt::Debug for LazyObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LazyObject").field(&self.text).finish()
    }
}

/// A JSON pointer written the way users read fields: `/spec/containers/0/image` →
/// `spec.containers[0].image`.
struct FieldPath<'a>(&'a str);

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for part in self.0.split('/').filter(|p| !p.is_empty()) {
            if part.bytes().all(|b| b.is_ascii_digit()) {
                write!(f, "[{part}]")?;
            } else {
                if !first {
                    f.write_str(".")?;
                }
                f.write_str(part)?;
            }
            first = false;
        }
        if first {
            f.write_str("the object")?;
        }
        Ok(())
    }
}

fn wrong_type(pointer: &str, expected: &'static str, found: &str) -> WorkloadError {
    WorkloadError::WrongType {
        field: FieldPath(pointer).to_string(),
        expected,
        found: type_name(found),
    }
}

/// The object `value` (`None` when absent or null); `pointer` names it, written only for an
/// error.
fn as_object(value: Option<&str>, pointer: impl FnOnce() -> String) -> Result<Option<&str>, WorkloadError> {
    match value.map(|v| (v, type_of(v))) {
        None | Some((_, Type::Null)) => Ok(None),
        Some((v, Type::Object)) => Ok(Some(v)),
        Some((other, _)) => Err(wrong_type(&pointer(), "an object", other)),
    }
}

/// The items of the list `value` (none when absent or null); `pointer` names it.
fn as_list<'a>(value: Option<&'a str>, pointer: &str) -> Result<Option<&'a str>, WorkloadError> {
    match value.map(|v| (v, type_of(v))) {
        None | Some((_, Type::Null)) => Ok(None),
        Some((v, Type::List)) => Ok(Some(v)),
        Some((other, _)) => Err(wrong_type(pointer, "a list", other)),
    }
}

/// The string token `value`, or `None` when absent or null (the API server refuses a Pod's
/// container without an image, so there is nothing to verify; a template's is refused by the
/// caller, [`no_image`]); `pointer` names it, written only for an error.
fn as_string(value: Option<&str>, pointer: impl Fn() -> String) -> Result<Option<&str>, WorkloadError> {
    match value.map(|v| (v, type_of(v))) {
        None | Some((_, Type::Null)) => Ok(None),
        Some((v, Type::String)) => Ok(Some(v)),
        Some((other, _)) => Err(wrong_type(&pointer(), "a string", other)),
    }
}

/// [`WorkloadError::NoImage`] of the container at `pointer` (whose image field is at
/// `{pointer}/image`), named `name` when it has a name.
fn no_image(pointer: &str, name: Option<&str>) -> WorkloadError {
    WorkloadError::NoImage {
        field: FieldPath(&[pointer, "/image"].concat()).to_string(),
        container: name.map(|n| format!("{n:?} ")).unwrap_or_default(),
    }
}

/// `{list}/{i}{tail}`: the pointer of item `i` of a list, or of a field below it (for messages).
/// Pushed, not `format!`ted: the formatting machinery is slow in wasm.
fn item_pointer(list: &str, i: usize, tail: &str) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = i;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut pointer = String::with_capacity(list.len() + 1 + (digits.len() - at) + tail.len());
    pointer.push_str(list);
    pointer.push('/');
    pointer.extend(digits[at..].iter().map(|&d| char::from(d)));
    pointer.push_str(tail);
    pointer
}

/// The JSON text of an object with its members `kind`, `metadata` and `spec` found (one pass
/// over its members, read by every lookup below).
#[derive(Clone, Copy, Debug)]
pub struct ObjectText<'a> {
    text: &'a str,
    root: &'a str,
    kind: Option<&'a str>,
    metadata: Option<&'a str>,
    spec: Option<&'a str>,
}

impl<'a> ObjectText<'a> {
    /// `text`: the object's JSON text (`null` when the request has none).
    pub fn new(text: &'a str) -> Self {
        let root = trim(text);
        let mut found = [None; 3];
        get_each(root, &["kind", "metadata", "spec"], &mut found);
        let [kind, metadata, spec] = found;
        ObjectText {
            text,
            root,
            kind,
            metadata,
            spec,
        }
    }

    /// The text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The string at `metadata.{name}`; `None` when absent or not a string.
    pub fn metadata_string(&self, name: &str) -> Option<Cow<'a, str>> {
        string_at(self.metadata?, &[name])
    }

    /// Whether `metadata.{name}` is there and not null.
    pub fn metadata_is_set(&self, name: &str) -> bool {
        self.metadata.is_some_and(|m| is_set(m, &[name]))
    }

    /// The text of the object `metadata.{name}` (`None` when absent or not an object).
    pub fn metadata_object(&self, name: &str) -> Option<&'a str> {
        value_at(self.metadata?, &[name]).filter(|v| type_of(v) == Type::Object)
    }

    /// Whether the text is a JSON object.
    pub fn is_object(&self) -> bool {
        type_of(self.root) == Type::Object
    }

    /// The text of `spec.{name}` (`None` when absent, or when `spec` is not an object).
    pub fn spec_member(&self, name: &str) -> Option<&'a str> {
        get(self.spec?, name)
    }
}

/// Lists the images of `object`, the JSON text of the object of an admission request about
/// kind `kind` (`null` when the request has none).
///
/// For the `ephemeralcontainers` subresource of a Pod only the ephemeral containers are listed:
/// that request may change nothing else. Objects of other kinds hold no images. An object
/// whose `kind` differs from `kind`, or whose image fields (pod spec, container lists,
/// containers, images, image volumes) have the wrong shape, is an error.
pub fn image_sites<'a>(kind: &str, sub_resource: &str, object: &'a str) -> Result<Vec<ImageSite<'a>>, WorkloadError> {
    sites_in(kind, sub_resource, &ObjectText::new(object))
}

/// [`image_sites`] of an object already split into its members.
pub fn sites_in<'a>(
    kind: &str,
    sub_resource: &str,
    object_text: &ObjectText<'a>,
) -> Result<Vec<ImageSite<'a>>, WorkloadError> {
    let ObjectText { text: object, root, .. } = *object_text;
    match object_text.kind {
        None => {}
        Some(found) => match type_of(found) {
            Type::Null => {}
            Type::String => match string(found) {
                Some(found) if found == kind => {}
                Some(found) => {
                    return Err(WorkloadError::KindMismatch {
                        expected: kind.to_owned(),
                        found: found.into_owned(),
                    });
                }
                None => {
                    return Err(WorkloadError::Unreadable {
                        field: "kind".to_owned(),
                    });
                }
            },
            _ => return Err(wrong_type("/kind", "a string", found)),
        },
    }
    let Some(path) = pod_spec_path(kind) else {
        return Ok(Vec::new());
    };
    if type_of(root) != Type::Object {
        return Err(wrong_type("", "an object", root));
    }
    // Every object on the way to the pod spec must be an object (the first is `spec`, found).
    let mut base = String::new();
    let mut spec = root;
    for (i, part) in path.iter().enumerate() {
        base.push('/');
        base.push_str(part);
        let member = if i == 0 { object_text.spec } else { get(spec, part) };
        match as_object(member, || base.clone())? {
            Some(inner) => spec = inner,
            None => {
                let pointer = path.iter().map(|p| ["/", p].concat()).collect::<String>();
                return Err(WorkloadError::NoPodSpec {
                    field: FieldPath(&pointer).to_string(),
                    kind: kind.to_owned(),
                });
            }
        }
    }
    let offset = |token: &str| {
        let start = token.as_ptr() as usize - object.as_ptr() as usize;
        start..start + token.len()
    };
    let site =
        |token: &'a str, place: (u8, usize), pointer: &dyn Fn() -> String| -> Result<ImageSite<'a>, WorkloadError> {
            let image = string(token).ok_or_else(|| WorkloadError::Unreadable {
                field: FieldPath(&pointer()).to_string(),
            })?;
            Ok(ImageSite {
                image,
                token: offset(token),
                place,
            })
        };
    // A pod template: a container without an image is refused ([`WorkloadError::NoImage`]).
    let template = kind != "Pod";
    let lists: &[&str] = if kind == "Pod" && sub_resource == "ephemeralcontainers" {
        &["ephemeralContainers"]
    } else {
        &["initContainers", "containers", "ephemeralContainers"]
    };
    let mut found = [None; 4];
    get_each(
        spec,
        &["initContainers", "containers", "ephemeralContainers", "volumes"],
        &mut found,
    );
    let [init_containers, containers, ephemeral_containers, volumes] = found;
    let found = |list: &str| match list {
        "initContainers" => (0, init_containers),
        "containers" => (1, containers),
        _ => (2, ephemeral_containers),
    };
    let mut sites = Vec::new();
    for list in lists {
        let list_pointer = [base.as_str(), "/", list].concat();
        let (which, list) = found(list);
        let Some(containers) = as_list(list, &list_pointer)? else {
            continue;
        };
        for (i, item) in items(containers).enumerate() {
            let Some(container) = as_object(Some(item), || item_pointer(&list_pointer, i, ""))? else {
                return Err(wrong_type(&item_pointer(&list_pointer, i, ""), "an object", "null"));
            };
            let pointer = || item_pointer(&list_pointer, i, "/image");
            match as_string(get(container, "image"), pointer)? {
                // A template's container without an image, or with an empty one (`""`).
                Some("\"\"") | None if template => {
                    let name = get(container, "name")
                        .filter(|n| type_of(n) == Type::String)
                        .and_then(string);
                    return Err(no_image(&item_pointer(&list_pointer, i, ""), name.as_deref()));
                }
                Some(image) => sites.push(site(image, (which, i), &pointer)?),
                None => {}
            }
        }
    }
    if lists.len() > 1 {
        let pointer = [base.as_str(), "/volumes"].concat();
        if let Some(list) = as_list(volumes, &pointer)? {
            let volumes = pointer;
            for (i, item) in items(list).enumerate() {
                let Some(volume) = as_object(Some(item), || item_pointer(&volumes, i, ""))? else {
                    return Err(wrong_type(&item_pointer(&volumes, i, ""), "an object", "null"));
                };
                let Some(image) = as_object(get(volume, "image"), || item_pointer(&volumes, i, "/image"))? else {
                    continue;
                };
                let pointer = || item_pointer(&volumes, i, "/image/reference");
                if let Some(reference) = as_string(get(image, "reference"), pointer)? {
                    sites.push(site(reference, (3, i), &pointer)?);
                }
            }
        }
    }
    Ok(sites)
}

/// `object` with the string token at each range replaced by the JSON string `image@digest` of
/// its pin (the ranges of distinct [`ImageSite`]s of `object`: they never overlap), every other
/// byte kept.
pub fn pin(object: &str, pins: &mut [(Range<usize>, &str, &str)]) -> String {
    pins.sort_unstable_by_key(|(range, _, _)| range.start);
    let extra: usize = pins
        .iter()
        .map(|(_, image, digest)| image.len() + digest.len() + 3)
        .sum();
    let mut out = String::with_capacity(object.len() + extra);
    let mut at = 0;
    for &(ref range, image, digest) in pins.iter() {
        debug_assert!(range.start >= at, "overlapping image tokens");
        out.push_str(&object[at..range.start]);
        crate::answer::push_joined_string(&mut out, &[image, "@", digest]);
        at = range.end;
    }
    out.push_str(&object[at..]);
    out
}

/// The name and namespace of the object, for messages: `Kind namespace/name`.
pub fn describe(kind: &str, namespace: &str, object: &ObjectText<'_>) -> String {
    let name = object
        .metadata_string("name")
        .or_else(|| object.metadata_string("generateName"))
        .unwrap_or(Cow::Borrowed("<unnamed>"));
    let kind = if kind.is_empty() { "object" } else { kind };
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::reference_impl as before;
    use super::*;
    use crate::json_text::generate::{J, Words, render};
    use crate::matching::Labels;
    use proptest::prelude::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "initContainers": [{"name": "i", "image": "init:1"}],
            "containers": [{"name": "a", "image": "app:1"}, {"name": "b", "image": "sidecar:2"}, {"name": "noimage"}],
            "ephemeralContainers": [{"name": "e", "image": "debug:1"}],
            "volumes": [{"name": "v", "image": {"reference": "data:1"}}, {"name": "cfg", "configMap": {"name": "x"}}]
        })
    }

    fn images<'a>(sites: &'a [ImageSite<'_>]) -> Vec<&'a str> {
        sites.iter().map(|s| s.image.as_ref()).collect()
    }

    proptest::proptest! {
        /// The pushed pointer is the `format!`ted one, for every index (the ends of `usize`
        /// included) and any list pointer and tail.
        #[test]
        fn item_pointers_are_the_formatted_ones(
            list in "[a-z/~]{0,12}",
            i in proptest::prop_oneof![0usize..1000, proptest::num::usize::ANY, proptest::strategy::Just(usize::MAX)],
            tail in "(|/image|/image/reference)",
        ) {
            proptest::prop_assert_eq!(item_pointer(&list, i, &tail), format!("{list}/{i}{tail}"));
        }
    }

    #[test]
    fn every_workload_kind_and_every_image_field() {
        // A template's container without an image is an error (below); a Pod's holds none.
        let template_spec = || {
            let mut spec = spec();
            spec["containers"].as_array_mut().unwrap().pop();
            spec
        };
        let wrap = |kind: &str| -> String {
            match kind {
                "Pod" => json!({"spec": spec()}),
                "CronJob" => json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": template_spec()}}}}}),
                _ => json!({"spec": {"template": {"spec": template_spec()}}}),
            }
            .to_string()
        };
        for kind in [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "CronJob",
            "ReplicationController",
        ] {
            let text = wrap(kind);
            let sites = image_sites(kind, "", &text).unwrap();
            assert_eq!(
                images(&sites),
                ["init:1", "app:1", "sidecar:2", "debug:1", "data:1"],
                "{kind}"
            );
            for site in &sites {
                assert_eq!(text[site.token.clone()], format!("\"{}\"", site.image), "{kind}");
            }
            let mut pins: Vec<_> = sites
                .iter()
                .rev()
                .map(|s| (s.token.clone(), "pinned", "sha256:0"))
                .collect();
            let pinned = pin(&text, &mut pins);
            assert!(
                image_sites(kind, "", &pinned)
                    .unwrap()
                    .iter()
                    .all(|s| s.image == "pinned@sha256:0")
            );
        }
    }

    #[test]
    fn ephemeral_subresource_only_lists_ephemeral_containers() {
        let text = json!({"spec": spec()}).to_string();
        let sites = image_sites("Pod", "ephemeralcontainers", &text).unwrap();
        assert_eq!(images(&sites), ["debug:1"]);
    }

    /// The last of duplicate keys wins, keys are compared decoded, strings are decoded, and
    /// pinning rewrites only the image's token.
    #[test]
    fn duplicates_escapes_and_whitespace_are_read_as_a_value_reads_them() {
        let text = "{ \"spec\" : {\"containers\":[{\"image\":7}]},\n \"sp\\u0065c\":{\"containers\" :\t[ {\"image\":\"first\", \"im\\u0061ge\" : \"r.io/\\u00e9\\/x\" } , {\"image\":null}]} }";
        let sites = image_sites("Pod", "", text).unwrap();
        assert_eq!(images(&sites), ["r.io/é/x"]);
        assert_eq!(&text[sites[0].token.clone()], "\"r.io/\\u00e9\\/x\"");
        let pinned = pin(text, &mut [(sites[0].token.clone(), "r.io/é/x", "sha256:\"1")]);
        assert_eq!(
            pinned,
            text.replace("\"r.io/\\u00e9\\/x\"", "\"r.io/é/x@sha256:\\\"1\"")
        );
        let mut value: Value = serde_json::from_str(text).unwrap();
        assert!(before::set_image(
            &mut value,
            "/spec/containers/0/image",
            "r.io/é/x@sha256:\"1"
        ));
        assert_eq!(serde_json::from_str::<Value>(&pinned).unwrap(), value);
        // The first duplicate alone would be an error.
        assert_eq!(
            image_sites(
                "Pod",
                "",
                "{\"sp\\u0065c\":{\"containers\":[{\"image\":\"a\"}]},\"spec\":{\"containers\":[{\"image\":7}]}}"
            )
            .map_err(|e| e.to_string()),
            Err("spec.containers[0].image is a number, not a string".to_owned())
        );
    }

    #[test]
    fn malformed_workloads_are_errors_naming_the_field() {
        for (kind, object, message) in [
            ("Pod", json!(null), "the object is null, not an object"),
            ("Pod", json!({}), "spec is missing: a Pod keeps its pod spec there"),
            (
                "Pod",
                json!({"spec": null}),
                "spec is missing: a Pod keeps its pod spec there",
            ),
            ("Pod", json!({"spec": []}), "spec is a list, not an object"),
            (
                "Pod",
                json!({"spec": {"containers": "x"}}),
                "spec.containers is a string, not a list",
            ),
            (
                "Pod",
                json!({"spec": {"containers": [null]}}),
                "spec.containers[0] is null, not an object",
            ),
            (
                "Pod",
                json!({"spec": {"initContainers": [3]}}),
                "spec.initContainers[0] is a number, not an object",
            ),
            (
                "Pod",
                json!({"spec": {"containers": [{"image": 7}]}}),
                "spec.containers[0].image is a number, not a string",
            ),
            (
                "Pod",
                json!({"spec": {"containers": [], "ephemeralContainers": {"image": "x"}}}),
                "spec.ephemeralContainers is an object, not a list",
            ),
            (
                "Pod",
                json!({"spec": {"volumes": [{"image": "x"}]}}),
                "spec.volumes[0].image is a string, not an object",
            ),
            (
                "Pod",
                json!({"spec": {"volumes": [{"image": {"reference": ["x"]}}]}}),
                "spec.volumes[0].image.reference is a list, not a string",
            ),
            (
                "Pod",
                json!({"kind": "ConfigMap", "spec": spec()}),
                "the object is a ConfigMap, but the request is about a Pod",
            ),
            (
                "Pod",
                json!({"kind": 3, "spec": spec()}),
                "kind is a number, not a string",
            ),
            (
                "ConfigMap",
                json!({"kind": "Pod", "spec": spec()}),
                "the object is a Pod, but the request is about a ConfigMap",
            ),
            (
                "Deployment",
                json!({"spec": {"template": "x"}}),
                "spec.template is a string, not an object",
            ),
            (
                "Deployment",
                json!({"spec": {}}),
                "spec.template.spec is missing: a Deployment keeps its pod spec there",
            ),
            (
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": {}}}}}}}),
                "spec.jobTemplate.spec.template.spec.containers is an object, not a list",
            ),
        ] {
            assert_eq!(
                image_sites(kind, "", &object.to_string()).map_err(|e| e.to_string()),
                Err(message.to_owned()),
                "{kind} {object}"
            );
        }
        // Containers and volumes without an image hold none; other kinds hold none.
        let text =
            json!({"spec": {"containers": [{"name": "a", "image": null}], "volumes": [{"name": "v"}, {"image": {}}]}})
                .to_string();
        assert_eq!(image_sites("Pod", "", &text), Ok(Vec::new()));
        assert_eq!(
            image_sites("Service", "", &json!({"spec": spec()}).to_string()),
            Ok(Vec::new())
        );
        assert_eq!(
            image_sites("Scale", "", r#"{"kind": "Scale", "spec": {"replicas": 1}}"#),
            Ok(Vec::new())
        );
    }

    /// The Pod a `pods/ephemeralcontainers` update stores: the old object, its
    /// `spec.ephemeralContainers` replaced by the body's (kept when the body has none: the API
    /// server refuses to remove them).
    #[test]
    fn the_stored_pod_is_the_old_object_with_the_bodys_ephemeral_containers() {
        let list = r#"[{"name": "d", "image": "r.io/debug:1"}]"#;
        for (old, ephemeral, expected) in [
            (
                json!({"metadata": {"labels": {"env": "prod"}}, "spec": {"containers": [], "ephemeralContainers": [{"name": "x"}]}}),
                Some(list),
                Ok(
                    json!({"metadata": {"labels": {"env": "prod"}}, "spec": {"containers": [], "ephemeralContainers": [{"name": "d", "image": "r.io/debug:1"}]}}),
                ),
            ),
            (
                json!({"spec": {"containers": [], "ephemeralContainers": [{"name": "x"}]}}),
                None,
                Ok(json!({"spec": {"containers": [], "ephemeralContainers": [{"name": "x"}]}})),
            ),
            (
                json!({"spec": {"containers": []}}),
                None,
                Ok(json!({"spec": {"containers": []}})),
            ),
            (
                json!({}),
                Some("null"),
                Ok(json!({"spec": {"ephemeralContainers": null}})),
            ),
            (
                json!({"spec": null}),
                Some("[]"),
                Ok(json!({"spec": {"ephemeralContainers": []}})),
            ),
            (
                json!({"spec": 3}),
                Some("[]"),
                Err("cannot read the object: the stored Pod's spec is not an object"),
            ),
            (
                json!([1]),
                Some("[]"),
                Err("cannot read the object: the stored Pod (oldObject) is not an object"),
            ),
        ] {
            let text = old.to_string();
            let stored = LazyObject::stored_pod(&text, ephemeral);
            assert_eq!(stored.value().cloned(), expected.clone(), "{old} {ephemeral:?}");
            // Read once.
            assert_eq!(stored.value().cloned(), expected, "{old} {ephemeral:?}");
        }
        assert!(LazyObject::stored_pod("{}", Some("[")).value().is_err());
    }

    /// Found by a security review: a template's container without an image was admitted as
    /// holding none. Absent, null or empty, it is an error naming the container; a Pod's (the
    /// API server refuses it) holds none, and an empty one is a site (an invalid reference).
    #[test]
    fn a_templates_container_without_an_image_is_an_error_naming_it() {
        let containers = |kind: &str, containers: Value| -> String {
            let spec = json!({"containers": [{"name": "app", "image": "app:1"}], "initContainers": containers});
            match kind {
                "Pod" => json!({"spec": spec}),
                "CronJob" => json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
                _ => json!({"spec": {"template": {"spec": spec}}}),
            }
            .to_string()
        };
        for kind in ["Deployment", "CronJob", "Job", "StatefulSet"] {
            let base = if kind == "CronJob" {
                "spec.jobTemplate.spec.template.spec"
            } else {
                "spec.template.spec"
            };
            for (container, named) in [
                (json!({"name": "setup"}), "\"setup\" "),
                (json!({"name": "setup", "image": null}), "\"setup\" "),
                (json!({"name": "setup", "image": ""}), "\"setup\" "),
                (json!({"name": "set\"up\n", "image": ""}), "\"set\\\"up\\n\" "),
                (json!({}), ""),
                (json!({"name": 3, "image": ""}), ""),
            ] {
                let text = containers(kind, json!([{"name": "ok", "image": "init:1"}, container]));
                let error = image_sites(kind, "", &text).unwrap_err();
                assert_eq!(
                    error.to_string(),
                    format!(
                        "container {named}has no image ({base}.initContainers[1].image is missing or empty): what it will run cannot be verified; write its image in the template"
                    ),
                    "{kind} {container}"
                );
            }
            // A wrong type is still named as one; an image of spaces is a site (an invalid
            // reference, denied when decided).
            let text = containers(kind, json!([{"name": "x", "image": 1}]));
            assert!(matches!(
                image_sites(kind, "", &text),
                Err(WorkloadError::WrongType { .. })
            ));
            let text = containers(kind, json!([{"name": "x", "image": " "}]));
            assert_eq!(images(&image_sites(kind, "", &text).unwrap()), [" ", "app:1"]);
        }
        // A Pod's: none (absent, null), or the empty reference.
        let text = containers(
            "Pod",
            json!([{"name": "a"}, {"name": "b", "image": null}, {"name": "c", "image": ""}]),
        );
        assert_eq!(images(&image_sites("Pod", "", &text).unwrap()), ["", "app:1"]);
    }

    #[test]
    fn describe_names_the_object() {
        let describe = |kind, namespace, text| describe(kind, namespace, &ObjectText::new(text));
        assert_eq!(
            describe("Pod", "prod", r#"{"metadata": {"name": "web"}}"#),
            "Pod prod/web"
        );
        assert_eq!(
            describe("Pod", "", r#"{"metadata": {"name": 1, "generateName": "web-"}}"#),
            "Pod web-"
        );
        assert_eq!(describe("Deployment", "", "{}"), "Deployment <unnamed>");
    }

    const WORDS: Words = Words {
        texts: &["r.io/a", "r.io/b:1", "Pod", "Deployment", "web"],
        keys: &["image", "spec", "kind", "containers", "metadata", "Image", "imag", "x"],
    };

    fn text() -> BoxedStrategy<String> {
        WORDS.text()
    }

    fn junk() -> BoxedStrategy<J> {
        WORDS.junk()
    }

    fn object_with(keys: Vec<(&'static str, BoxedStrategy<J>)>) -> BoxedStrategy<J> {
        WORDS.object_with(keys)
    }

    fn list_of(item: BoxedStrategy<J>) -> BoxedStrategy<J> {
        WORDS.list_of(item)
    }

    fn image() -> BoxedStrategy<J> {
        prop_oneof![6 => text().prop_map(J::String), 1 => Just(J::Null), 1 => junk()].boxed()
    }

    fn pod_spec() -> BoxedStrategy<J> {
        let container = || object_with(vec![("image", image()), ("name", image())]);
        let volume = object_with(vec![("image", object_with(vec![("reference", image())]))]);
        object_with(vec![
            ("initContainers", list_of(container())),
            ("containers", list_of(container())),
            ("ephemeralContainers", list_of(container())),
            ("volumes", list_of(volume)),
        ])
    }

    fn workload() -> BoxedStrategy<J> {
        let template = || object_with(vec![("template", object_with(vec![("spec", pod_spec())]))]);
        let spec = prop_oneof![
            pod_spec(),
            template(),
            object_with(vec![("jobTemplate", object_with(vec![("spec", template())]))]),
        ]
        .boxed();
        let labels = object_with(vec![("app", image()), ("tier", image())]);
        let metadata = object_with(vec![
            ("name", image()),
            ("generateName", image()),
            ("namespace", image()),
            ("labels", labels),
            ("deletionTimestamp", image()),
        ]);
        let kind = prop_oneof![
            3 => prop::sample::select(KINDS).prop_map(|k| J::String(k.to_owned())),
            1 => junk(),
        ]
        .boxed();
        object_with(vec![("kind", kind), ("metadata", metadata), ("spec", spec)])
    }

    const KINDS: &[&str] = &[
        "Pod",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
        "ConfigMap",
        "Scale",
        "",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]

        /// The raw reader answers what the `Value` reader answers: the same images in the same
        /// order or the same error, the same metadata, and pinning any set of its sites gives
        /// an object equal, as a `Value`, to the one the `Value` reader writes.
        #[test]
        fn the_raw_reader_is_the_value_reader(
            object in workload(),
            style in prop::collection::vec(any::<u8>(), 1..64),
            kind in prop::sample::select(KINDS),
            sub_resource in prop::sample::select(&["", "ephemeralcontainers", "status"][..]),
            chosen in any::<u64>(),
            digest in prop_oneof![Just("sha256:0123"), Just("x\"\\é")],
        ) {
            let mut styles = style.iter().copied().cycle();
            let mut text = String::new();
            render(&object, &mut || styles.next().unwrap_or_default(), &mut text);
            let value: Value = serde_json::from_str(&text).expect("the rendering is JSON");
            let old = before::image_sites(kind, sub_resource, &value);
            let new = image_sites(kind, sub_resource, &text);
            match (&old, &new) {
                (Ok(old), Ok(new)) => {
                    let old_images: Vec<&str> = old.iter().map(|s| s.image.as_str()).collect();
                    prop_assert_eq!(&old_images, &images(new));
                    let mut pinned = value.clone();
                    let mut pins = Vec::new();
                    for (i, (o, n)) in old.iter().zip(new).enumerate() {
                        // The place names the list and index of the reference's pointer.
                        let (list, index) = n.place;
                        let name = ["initContainers", "containers", "ephemeralContainers", "volumes"][usize::from(list)];
                        let field = format!("/{name}/{index}/image");
                        prop_assert!(
                            o.pointer.ends_with(&field) || o.pointer.ends_with(&format!("{field}/reference")),
                            "{} at {:?}", o.pointer, n.place
                        );
                        if chosen >> (i % 64) & 1 == 1 {
                            let replacement = [o.image.as_str(), "@", digest].concat();
                            prop_assert!(before::set_image(&mut pinned, &o.pointer, &replacement));
                            pins.push((n.token.clone(), o.image.as_str(), digest));
                        }
                    }
                    let spliced = pin(&text, &mut pins);
                    prop_assert_eq!(serde_json::from_str::<Value>(&spliced).expect("spliced JSON"), pinned);
                }
                (Err(old), Err(new)) => prop_assert_eq!(old.to_string(), new.to_string()),
                _ => prop_assert!(false, "{:?} vs {:?}", old, new),
            }
            prop_assert_eq!(pin(&text, &mut []), text.clone());
            for namespace in ["", "prod"] {
                prop_assert_eq!(
                    describe(kind, namespace, &ObjectText::new(&text)),
                    before::describe(kind, namespace, &value)
                );
            }
            let namespace = string_at(&text, &["metadata", "namespace"]);
            prop_assert_eq!(
                namespace.as_deref(),
                value.pointer("/metadata/namespace").and_then(Value::as_str)
            );
            prop_assert_eq!(
                is_set(&text, &["metadata", "deletionTimestamp"]),
                value.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
            );
            // The same lookups from the members found once.
            let object_text = ObjectText::new(&text);
            prop_assert_eq!(object_text.metadata_string("namespace"), namespace);
            // Each label, as a selector looks it up, is the string a `Map` holds.
            let labels = object_text.metadata_object("labels").map_or(Labels::None, Labels::Json);
            let map = value.pointer("/metadata/labels").and_then(Value::as_object);
            prop_assert_eq!(matches!(labels, Labels::None), map.is_none());
            let mut keys: Vec<&str> = map.iter().flat_map(|m| m.keys().map(String::as_str)).collect();
            keys.extend(["app", "tier", "", "ap"]);
            for key in keys {
                let found = labels.get(key);
                prop_assert_eq!(
                    found.as_deref(),
                    map.and_then(|m| m.get(key)).and_then(Value::as_str),
                    "label {:?} of {}", key, text
                );
            }
            prop_assert_eq!(
                object_text.metadata_is_set("deletionTimestamp"),
                value.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
            );
            let lazy = LazyObject::new(&text);
            prop_assert_eq!(lazy.value(), Ok(&value));
        }
    }
}
