//! kwctl's `run` output: the Kubernetes `AdmissionResponse` built from a policy's
//! `ValidationResponse`, field for field as Kubewarden's policy-evaluator builds it
//! (`AdmissionResponse::from_policy_validation_response`).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kubewarden_policy_sdk::response::ValidationResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a request file or a policy answer cannot be turned into an admission response.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The request document is not JSON/YAML.
    #[error("the request is neither JSON nor YAML: {0}")]
    Parse(String),
    /// The document is neither an AdmissionRequest nor an AdmissionReview.
    #[error("the request must be an AdmissionRequest or an AdmissionReview with a `request` object")]
    NotARequest,
    /// The JSON patch could not be serialised.
    #[error("cannot serialise the JSON patch: {0}")]
    Patch(#[from] serde_json::Error),
}

/// admission/v1 `AdmissionResponse`, serialised exactly like kwctl prints it: `patchType`,
/// `patch` and `status` absent when unused, `auditAnnotations` and `warnings` always present
/// (null when unused).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// Copied from the request.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<PatchType>,
    /// Base64 of the RFC 6902 JSON patch turning the request object into the mutated one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Message and code of a rejection (or of an acceptance with a message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AdmissionResponseStatus>,
    /// Audit annotations set by the policy.
    pub audit_annotations: Option<HashMap<String, String>>,
    /// Warnings returned to the API client.
    pub warnings: Option<Vec<String>>,
}

/// The only patch type Kubernetes accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    #[default]
    #[serde(rename = "JSONPatch")]
    JsonPatch,
}

/// `status` of an admission response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionResponseStatus {
    /// Human-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Suggested HTTP code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// Message given when a policy mutates a DELETE request (which has no object), as
/// policy-evaluator words it.
pub const MUTATION_WITHOUT_OBJECT: &str = "Incoming object is null, which happens only with DELETE operations, but the policy is attempting a mutation. This is not allowed";

impl AdmissionResponse {
    /// Builds the response to `request` (an AdmissionRequest) from the policy's answer.
    pub fn from_validation(request: &Value, response: &ValidationResponse) -> Result<Self, AdmissionError> {
        let uid = request
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let object = request.get("object").filter(|o| !o.is_null());
        if response.mutated_object.is_some() && object.is_none() {
            return Ok(Self {
                uid,
                allowed: false,
                status: Some(AdmissionResponseStatus {
                    message: Some(MUTATION_WITHOUT_OBJECT.to_owned()),
                    code: None,
                }),
                ..Self::default()
            });
        }
        let patch = match (&response.mutated_object, object) {
            (Some(mutated), Some(original)) => {
                let diff = json_patch::diff(original, mutated);
                if diff.0.is_empty() {
                    None
                } else {
                    Some(STANDARD.encode(serde_json::to_string(&diff)?))
                }
            }
            _ => None,
        };
        let status = (response.message.is_some() || response.code.is_some()).then(|| AdmissionResponseStatus {
            message: response.message.clone(),
            code: response.code,
        });
        Ok(Self {
            uid,
            allowed: response.accepted,
            patch_type: patch.as_ref().map(|_| PatchType::JsonPatch),
            patch,
            status,
            audit_annotations: response.audit_annotations.clone(),
            warnings: response.warnings.clone(),
        })
    }

    /// The decoded JSON patch, if any (handy for tests and for printing).
    pub fn decoded_patch(&self) -> Option<Value> {
        let bytes = STANDARD.decode(self.patch.as_ref()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Extracts the AdmissionRequest from a request file: either the request itself or a whole
/// AdmissionReview (`{"request": {...}}`). JSON or YAML.
pub fn request_from_document(text: &str) -> Result<Value, AdmissionError> {
    let document: Value = serde_json::from_str(text)
        .or_else(|_| serde_yaml::from_str(text))
        .map_err(|e| AdmissionError::Parse(e.to_string()))?;
    let request = match document.get("request") {
        Some(request)
            if document.get("kind").and_then(Value::as_str) == Some("AdmissionReview")
                || !looks_like_request(&document) =>
        {
            request.clone()
        }
        _ => document,
    };
    if looks_like_request(&request) {
        Ok(request)
    } else {
        Err(AdmissionError::NotARequest)
    }
}

fn looks_like_request(value: &Value) -> bool {
    value.is_object()
        && ["uid", "kind", "object", "operation"]
            .iter()
            .any(|k| value.get(k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy_answer(value: Value) -> ValidationResponse {
        serde_json::from_value(value).expect("ValidationResponse")
    }

    #[test]
    fn accepted_without_remarks_has_only_uid_allowed_and_nulls() {
        let response = AdmissionResponse::from_validation(
            &json!({"uid": "abc", "object": {"a": 1}}),
            &policy_answer(
                json!({"accepted": true, "message": null, "code": null, "mutated_object": null,
                                  "audit_annotations": null, "warnings": null}),
            ),
        )
        .expect("response");
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            json!({"uid": "abc", "allowed": true, "auditAnnotations": null, "warnings": null})
        );
    }

    #[test]
    fn rejection_carries_message_and_code() {
        let response = AdmissionResponse::from_validation(
            &json!({"uid": "abc", "object": {}}),
            &policy_answer(
                json!({"accepted": false, "message": "nope", "code": 403, "mutated_object": null,
                                  "audit_annotations": null, "warnings": ["w"]}),
            ),
        )
        .expect("response");
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            json!({"uid": "abc", "allowed": false, "status": {"message": "nope", "code": 403},
                   "auditAnnotations": null, "warnings": ["w"]})
        );
    }

    #[test]
    fn mutation_becomes_a_base64_json_patch() {
        let original = json!({"spec": {"containers": [{"image": "app:v1"}]}});
        let mutated = json!({"spec": {"containers": [{"image": "app:v1@sha256:abc"}]}});
        let response = AdmissionResponse::from_validation(
            &json!({"uid": "u", "object": original}),
            &policy_answer(
                json!({"accepted": true, "message": null, "code": null, "mutated_object": mutated,
                                  "audit_annotations": null, "warnings": null}),
            ),
        )
        .expect("response");
        assert_eq!(response.patch_type, Some(PatchType::JsonPatch));
        assert_eq!(
            response.decoded_patch(),
            Some(json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "app:v1@sha256:abc"}]))
        );
        let printed = serde_json::to_value(&response).expect("json");
        assert_eq!(printed["patchType"], "JSONPatch");
    }

    #[test]
    fn identical_mutated_object_gives_no_patch() {
        let object = json!({"a": 1});
        let response = AdmissionResponse::from_validation(
            &json!({"uid": "u", "object": object}),
            &policy_answer(
                json!({"accepted": true, "message": null, "code": null, "mutated_object": object,
                                  "audit_annotations": null, "warnings": null}),
            ),
        )
        .expect("response");
        assert_eq!(response.patch, None);
        assert_eq!(response.patch_type, None);
    }

    #[test]
    fn mutating_a_delete_request_is_refused() {
        let response = AdmissionResponse::from_validation(
            &json!({"uid": "u", "operation": "DELETE", "object": null}),
            &policy_answer(
                json!({"accepted": true, "message": null, "code": null, "mutated_object": {"a": 1},
                                  "audit_annotations": null, "warnings": null}),
            ),
        )
        .expect("response");
        assert!(!response.allowed);
        assert_eq!(
            response.status.and_then(|s| s.message).as_deref(),
            Some(MUTATION_WITHOUT_OBJECT)
        );
    }

    #[test]
    fn request_files_may_be_requests_or_reviews_in_json_or_yaml() {
        let request = json!({"uid": "u", "kind": {"kind": "Pod"}, "object": {}});
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        assert_eq!(request_from_document(&request.to_string()).expect("request"), request);
        assert_eq!(request_from_document(&review.to_string()).expect("review"), request);
        let yaml = "uid: u\nkind:\n  kind: Pod\nobject: {}\n";
        assert_eq!(request_from_document(yaml).expect("yaml"), request);
        assert!(matches!(
            request_from_document("[1, 2]"),
            Err(AdmissionError::NotARequest)
        ));
        assert!(matches!(request_from_document("{"), Err(AdmissionError::Parse(_))));
    }
}
