//! From an admission request to Kubewarden's `ValidationResponse`, and from a list of
//! `{image, namespace}` pairs to verdicts (`verify_images`).

use std::collections::HashMap;

use kubewarden_policy_sdk::response::ValidationResponse;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::decision::{ImageVerdict, Verdict, decide};
use crate::host::HostCalls;
use crate::matching::Subject;
use crate::settings::SettingsCache;
use crate::workload::{describe, image_sites, set_image};

/// The parts of an AdmissionRequest the policy reads. (The SDK's own type reads `resource`
/// as `kind`, losing it, so the request is read here.)
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AdmissionRequest {
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    sub_resource: String,
    namespace: String,
    object: serde_json::Value,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct GroupVersionKind {
    kind: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct GroupVersionResource {
    group: String,
    version: String,
    resource: String,
}

/// The payload of `validate`.
#[derive(Deserialize)]
struct ValidatePayload<'a> {
    request: AdmissionRequest,
    #[serde(borrow)]
    settings: &'a RawValue,
}

fn reject(message: String) -> ValidationResponse {
    ValidationResponse {
        accepted: false,
        message: Some(message),
        code: None,
        mutated_object: None,
        audit_annotations: None,
        warnings: None,
    }
}

/// Evaluates an admission request. Never fails: a request that cannot be read is refused with
/// the reason.
pub fn validate(payload: &[u8], cache: &mut SettingsCache, host: &mut dyn HostCalls) -> ValidationResponse {
    let payload: ValidatePayload<'_> = match serde_json::from_slice(payload) {
        Ok(p) => p,
        Err(e) => return reject(format!("cannot read the admission request: {e}")),
    };
    let settings = match cache.get(payload.settings.get()) {
        Ok(s) => s,
        Err(e) => return reject(format!("invalid policy settings: {e}")),
    };
    let request = payload.request;
    if request.kind.kind.is_empty() && !request.object.is_null() {
        return reject("the admission request has no kind: cannot tell where its images are".to_owned());
    }
    let object = &request.object;
    let namespace = if request.namespace.is_empty() {
        object
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    } else {
        request.namespace.as_str()
    };
    let sites = image_sites(&request.kind.kind, &request.sub_resource, object);
    if sites.is_empty() {
        return accept(None, Vec::new(), HashMap::new());
    }
    let subject = Subject {
        namespace,
        group: &request.resource.group,
        version: &request.resource.version,
        resource: &request.resource.resource,
        labels: object.pointer("/metadata/labels").and_then(|v| v.as_object()),
        object: Some(object),
    };

    let mut verdicts: Vec<ImageVerdict> = Vec::new();
    for site in &sites {
        if !verdicts.iter().any(|v| v.image == site.image) {
            verdicts.push(decide(&settings, &subject, &site.image, host));
        }
    }

    let denials: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict == Verdict::Deny)
        .map(|v| v.message.as_str())
        .collect();
    if !denials.is_empty() {
        return reject(format!(
            "{}: {}",
            describe(&request.kind.kind, namespace, object),
            denials.join("; ")
        ));
    }

    let warnings: Vec<String> = verdicts.iter().flat_map(|v| v.warnings.iter().cloned()).collect();
    let mut audit = HashMap::new();
    let unverified: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict == Verdict::Warn)
        .map(|v| v.message.as_str())
        .collect();
    if !unverified.is_empty() {
        audit.insert("unverified-images".to_owned(), unverified.join("; "));
    }

    let mut mutated = None;
    if settings.pin_digests {
        let mut copy = object.clone();
        let mut changed = false;
        for site in &sites {
            let pin = verdicts
                .iter()
                .find(|v| v.image == site.image)
                .and_then(|v| v.pin.as_deref());
            if let Some(digest) = pin {
                changed |= set_image(&mut copy, &site.pointer, &format!("{}@{digest}", site.image));
            }
        }
        if changed {
            mutated = Some(copy);
        }
    }
    accept(mutated, warnings, audit)
}

fn accept(
    mutated_object: Option<serde_json::Value>,
    warnings: Vec<String>,
    audit: HashMap<String, String>,
) -> ValidationResponse {
    ValidationResponse {
        accepted: true,
        message: None,
        code: None,
        mutated_object,
        audit_annotations: (!audit.is_empty()).then_some(audit),
        warnings: (!warnings.is_empty()).then_some(warnings),
    }
}

/// One `{image, namespace}` pair of `verify_images`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageKey {
    pub image: String,
    #[serde(default)]
    pub namespace: String,
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
pub struct VerifyImagesResponse {
    pub results: Vec<ImageVerdict>,
}

/// Decides each image as it would be decided in a Pod of its namespace.
pub fn verify_images(
    payload: &[u8],
    cache: &mut SettingsCache,
    host: &mut dyn HostCalls,
) -> Result<VerifyImagesResponse, String> {
    let payload: VerifyImagesPayload<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("cannot read the verify_images request: {e}"))?;
    let settings = cache
        .get(payload.settings.get())
        .map_err(|e| format!("invalid policy settings: {e}"))?;
    let results = payload
        .images
        .iter()
        .map(|key| {
            let subject = Subject {
                namespace: &key.namespace,
                group: "",
                version: "v1",
                resource: "pods",
                labels: None,
                object: None,
            };
            decide(&settings, &subject, &key.image, host)
        })
        .collect();
    Ok(VerifyImagesResponse { results })
}
