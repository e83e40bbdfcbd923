//! Images in and out of every workload kind.
//!
//! The object is read as plain JSON, not as typed Kubernetes structs: a malformed object must
//! never make the policy fail to answer, and the typed structs would double the module's size.
//! Every image is found with the JSON pointer of its field, so pinning it to a digest is a
//! targeted write.

use serde_json::Value;

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

/// Lists the images of `object`, a workload of kind `kind`. For the `ephemeralcontainers`
/// subresource of a Pod only the ephemeral containers are listed: that request may change
/// nothing else. Unknown kinds and objects without a pod spec hold no images.
pub fn image_sites(kind: &str, sub_resource: &str, object: &Value) -> Vec<ImageSite> {
    let Some(base) = pod_spec_pointer(kind) else {
        return Vec::new();
    };
    let Some(spec) = object.pointer(base) else {
        return Vec::new();
    };
    let lists: &[&str] = if kind == "Pod" && sub_resource == "ephemeralcontainers" {
        &["ephemeralContainers"]
    } else {
        &["initContainers", "containers", "ephemeralContainers"]
    };
    let mut sites = Vec::new();
    for list in lists {
        if let Some(items) = spec.get(list).and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                if let Some(image) = item.get("image").and_then(Value::as_str) {
                    sites.push(ImageSite {
                        pointer: format!("{base}/{list}/{i}/image"),
                        image: image.to_owned(),
                    });
                }
            }
        }
    }
    if lists.len() > 1
        && let Some(volumes) = spec.get("volumes").and_then(Value::as_array)
    {
        for (i, volume) in volumes.iter().enumerate() {
            if let Some(image) = volume.pointer("/image/reference").and_then(Value::as_str) {
                sites.push(ImageSite {
                    pointer: format!("{base}/volumes/{i}/image/reference"),
                    image: image.to_owned(),
                });
            }
        }
    }
    sites
}

/// Writes `replacement` into the field at `pointer`; returns whether it was there.
pub fn set_image(object: &mut Value, pointer: &str, replacement: &str) -> bool {
    match object.pointer_mut(pointer) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "initContainers": [{"name": "i", "image": "init:1"}],
            "containers": [{"name": "a", "image": "app:1"}, {"name": "b", "image": "sidecar:2"}, {"name": "noimage"}],
            "ephemeralContainers": [{"name": "e", "image": "debug:1"}],
            "volumes": [{"name": "v", "image": {"reference": "data:1"}}, {"name": "cfg", "configMap": {"name": "x"}}]
        })
    }

    #[test]
    fn every_workload_kind_and_every_image_field() {
        let wrap = |kind: &str| -> Value {
            match kind {
                "Pod" => json!({"spec": spec()}),
                "CronJob" => json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec()}}}}}),
                _ => json!({"spec": {"template": {"spec": spec()}}}),
            }
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
            let sites = image_sites(kind, "", &wrap(kind));
            let images: Vec<_> = sites.iter().map(|s| s.image.as_str()).collect();
            assert_eq!(images, ["init:1", "app:1", "sidecar:2", "debug:1", "data:1"], "{kind}");
            let mut object = wrap(kind);
            for site in &sites {
                assert!(
                    set_image(&mut object, &site.pointer, "pinned"),
                    "{kind} {}",
                    site.pointer
                );
            }
            assert!(image_sites(kind, "", &object).iter().all(|s| s.image == "pinned"));
        }
    }

    #[test]
    fn ephemeral_subresource_only_lists_ephemeral_containers() {
        let sites = image_sites("Pod", "ephemeralcontainers", &json!({"spec": spec()}));
        assert_eq!(sites.len(), 1);
        assert_eq!(sites[0].pointer, "/spec/ephemeralContainers/0/image");
    }

    #[test]
    fn malformed_objects_hold_no_images() {
        for object in [
            json!(null),
            json!({}),
            json!({"spec": null}),
            json!({"spec": {"containers": "x"}}),
            json!({"spec": {"containers": [null, 3, {"image": 7}]}}),
        ] {
            assert!(image_sites("Pod", "", &object).is_empty(), "{object}");
        }
        assert!(image_sites("Service", "", &json!({"spec": spec()})).is_empty());
    }

    #[test]
    fn describe_names_the_object() {
        assert_eq!(
            describe("Pod", "prod", &json!({"metadata": {"name": "web"}})),
            "Pod prod/web"
        );
        assert_eq!(describe("Deployment", "", &json!({})), "Deployment <unnamed>");
    }
}
