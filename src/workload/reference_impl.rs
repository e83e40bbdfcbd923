//! The workload reader as it was before the object was read as raw JSON text (commit 9386191),
//! copied verbatim (its tests excepted), but for what only words its errors (`WorkloadError`,
//! `FieldPath`, `item_pointer`), which it shares with the text reader, whose tests fix the
//! messages: the reference the property tests of [`super`] compare the raw reader with.
//! `lookup`, `set_image`, `describe` and the `Value` lookups of `admission.rs` (namespace,
//! labels, lifecycle) are the old semantics. Changed since, as the text reader was: a pod
//! template's container without an image, or with an empty one, is an error
//! ([`WorkloadError::NoImage`], found by a security review).

use serde_json::Value;

use super::{FieldPath, WorkloadError, item_pointer, no_image};
use crate::ascii;

/// Where the pod spec of each workload kind lives.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" => "/spec",
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" => {
            "/spec/template/spec"
        }
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    })
}

/// One image field of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSite {
    /// JSON pointer of the string field holding the image.
    pub pointer: String,
    /// The image as written.
    pub image: String,
}

/// The JSON type of a value, for messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(pointer: &str, expected: &'static str, found: &Value) -> WorkloadError {
    WorkloadError::WrongType {
        field: FieldPath(pointer).to_string(),
        expected,
        found: type_name(found),
    }
}

/// One reference token of a JSON pointer, unescaped (RFC 6901: `~1` is `/`, `~0` is `~`);
/// borrowed when it has no escape, as every pointer this module builds.
fn token(raw: &str) -> std::borrow::Cow<'_, str> {
    if ascii::contains(raw, b'~') {
        raw.replace("~1", "/").replace("~0", "~").into()
    } else {
        raw.into()
    }
}

/// An array index token as serde_json reads one: digits, no sign, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// [`Value::pointer`] without an allocation per token (the same lookups, the same answers).
fn lookup<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    let rest = pointer.strip_prefix('/')?;
    ascii::split(rest, b'/').try_fold(root, |target, raw| match target {
        Value::Object(map) => map.get(token(raw).as_ref()),
        Value::Array(list) => index(&token(raw)).and_then(|i| list.get(i)),
        _ => None,
    })
}

/// [`Value::pointer_mut`] without an allocation per token.
fn lookup_mut<'a>(root: &'a mut Value, pointer: &str) -> Option<&'a mut Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    let rest = pointer.strip_prefix('/')?;
    ascii::split(rest, b'/').try_fold(root, |target, raw| match target {
        Value::Object(map) => map.get_mut(token(raw).as_ref()),
        Value::Array(list) => index(&token(raw)).and_then(move |i| list.get_mut(i)),
        _ => None,
    })
}

/// The object at `pointer` when it is an object; `None` when it is absent or null.
fn object_at<'a>(root: &'a Value, pointer: &str) -> Result<Option<&'a serde_json::Map<String, Value>>, WorkloadError> {
    as_object(lookup(root, pointer), || pointer.to_owned())
}

/// [`object_at`] of a value already found; `pointer` names it, and is written only for an error.
fn as_object(
    value: Option<&Value>,
    pointer: impl FnOnce() -> String,
) -> Result<Option<&serde_json::Map<String, Value>>, WorkloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(wrong_type(&pointer(), "an object", other)),
    }
}

/// The list at `pointer` (empty when absent or null).
fn list_at<'a>(root: &'a Value, pointer: &str) -> Result<&'a [Value], WorkloadError> {
    match lookup(root, pointer) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(wrong_type(pointer, "a list", other)),
    }
}

/// The string `value`, or `None` when absent or null (the API server refuses a container
/// without an image, so there is nothing to verify); `pointer` names it, written only for an
/// error.
fn as_string(value: Option<&Value>, pointer: impl FnOnce() -> String) -> Result<Option<&str>, WorkloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(&pointer(), "a string", other)),
    }
}

/// Lists the images of `object`, the object of an admission request about kind `kind`.
///
/// For the `ephemeralcontainers` subresource of a Pod only the ephemeral containers are listed:
/// that request may change nothing else. Objects of other kinds hold no images. An object
/// whose `kind` differs from `kind`, or whose image fields (pod spec, container lists,
/// containers, images, image volumes) have the wrong shape, is an error.
pub fn image_sites(kind: &str, sub_resource: &str, object: &Value) -> Result<Vec<ImageSite>, WorkloadError> {
    match object.get("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(found)) if found == kind => {}
        Some(Value::String(found)) => {
            return Err(WorkloadError::KindMismatch {
                expected: kind.to_owned(),
                found: found.clone(),
            });
        }
        Some(other) => return Err(wrong_type("/kind", "a string", other)),
    }
    let Some(base) = pod_spec_pointer(kind) else {
        return Ok(Vec::new());
    };
    if !object.is_object() {
        return Err(wrong_type("", "an object", object));
    }
    // Every object on the way to the pod spec must be an object.
    let mut prefix = String::new();
    for part in base.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        if object_at(object, &prefix)?.is_none() {
            return Err(WorkloadError::NoPodSpec {
                field: FieldPath(base).to_string(),
                kind: kind.to_owned(),
            });
        }
    }
    let lists: &[&str] = if kind == "Pod" && sub_resource == "ephemeralcontainers" {
        &["ephemeralContainers"]
    } else {
        &["initContainers", "containers", "ephemeralContainers"]
    };
    let mut sites = Vec::new();
    for list in lists {
        let list_pointer = [base, "/", list].concat();
        // Each container is read where it is (no walk from the root, no pointer written for a
        // container without an image).
        for (i, item) in list_at(object, &list_pointer)?.iter().enumerate() {
            let Some(container) = as_object(Some(item), || item_pointer(&list_pointer, i, ""))? else {
                return Err(wrong_type(
                    &item_pointer(&list_pointer, i, ""),
                    "an object",
                    &Value::Null,
                ));
            };
            let pointer = || item_pointer(&list_pointer, i, "/image");
            match as_string(container.get("image"), pointer)? {
                Some("") | None if kind != "Pod" => {
                    let name = container.get("name").and_then(Value::as_str);
                    return Err(no_image(&item_pointer(&list_pointer, i, ""), name));
                }
                Some(image) => sites.push(ImageSite {
                    pointer: pointer(),
                    image: image.to_owned(),
                }),
                None => {}
            }
        }
    }
    if lists.len() > 1 {
        let volumes = [base, "/volumes"].concat();
        for (i, item) in list_at(object, &volumes)?.iter().enumerate() {
            let Some(volume) = as_object(Some(item), || item_pointer(&volumes, i, ""))? else {
                return Err(wrong_type(&item_pointer(&volumes, i, ""), "an object", &Value::Null));
            };
            let Some(image) = as_object(volume.get("image"), || item_pointer(&volumes, i, "/image"))? else {
                continue;
            };
            let pointer = || item_pointer(&volumes, i, "/image/reference");
            if let Some(reference) = as_string(image.get("reference"), pointer)? {
                sites.push(ImageSite {
                    pointer: pointer(),
                    image: reference.to_owned(),
                });
            }
        }
    }
    Ok(sites)
}

/// Writes `replacement` into the field at `pointer`; returns whether it was there.
pub fn set_image(object: &mut Value, pointer: &str, replacement: &str) -> bool {
    match lookup_mut(object, pointer) {
        Some(slot @ Value::String(_)) => {
            *slot = Value::String(replacement.to_owned());
            true
        }
        _ => false,
    }
}

/// The name and namespace of the object, for messages: `Kind namespace/name`.
pub fn describe(kind: &str, namespace: &str, object: &Value) -> String {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .or_else(|| object.pointer("/metadata/generateName").and_then(Value::as_str))
        .unwrap_or("<unnamed>");
    let kind = if kind.is_empty() { "object" } else { kind };
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

// The reference's own checks of its JSON pointers; what it answers for workloads is checked
// against the text reader by `workload::tests::the_raw_reader_is_the_value_reader`.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_are_looked_up_as_serde_json_does() {
        let doc = json!({"a/b": {"~c": [0, {"d": "x"}]}, "": {"": 1}, "e": ["y", "z"], "0": {"1": 2}});
        let pointers = [
            "",
            "/",
            "//",
            "/a~1b",
            "/a~1b/~0c",
            "/a~1b/~0c/1/d",
            "/a~1b/~0c/01",
            "/a~1b/~0c/+1",
            "/a~1b/~0c/-",
            "/a~1b/~0c/2",
            "/e/0",
            "/e/1",
            "/e/1/",
            "/e/00",
            "/0/1",
            "/0/01",
            "/a~2b",
            "/a~b",
            "/a~1b~",
            "a",
            "/e/18446744073709551616",
            "/e/ 1",
            "/missing/x",
        ];
        for p in pointers {
            assert_eq!(lookup(&doc, p), doc.pointer(p), "{p:?}");
            let (mut ours, mut theirs) = (doc.clone(), doc.clone());
            assert_eq!(
                lookup_mut(&mut ours, p).cloned(),
                theirs.pointer_mut(p).cloned(),
                "{p:?}"
            );
        }
        assert!(set_image(&mut doc.clone(), "/e/1", "w"));
        assert!(!set_image(&mut doc.clone(), "/e/01", "w"));
    }
}
