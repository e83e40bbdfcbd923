//! Gatekeeper's external data wire format (`externaldata.gatekeeper.sh/v1beta1`) and the
//! `{"image","namespace","resource"?,"labels"?}` keys our ConstraintTemplate sends.

use serde::{Deserialize, Serialize};

pub use crate::runtime::{ImageKey, ImageVerdict, PolicyOutcome, ResourceKey, Verdict};

/// API version of both the request and the response.
pub const API_VERSION: &str = "externaldata.gatekeeper.sh/v1beta1";
/// `kind` of the request Gatekeeper sends.
pub const REQUEST_KIND: &str = "ProviderRequest";
/// `kind` of the response the provider sends back.
pub const RESPONSE_KIND: &str = "ProviderResponse";

/// The body Gatekeeper POSTs to the provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProviderRequest {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub request: RequestBody,
}

/// The keys Gatekeeper asks about; only keys it has not cached are sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RequestBody {
    pub keys: Vec<String>,
}

/// Why a request body was refused as a whole (HTTP 400 with `systemError`).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not a ProviderRequest: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported apiVersion {0:?}, expected {API_VERSION:?}")]
    ApiVersion(String),
    #[error("unsupported kind {0:?}, expected {REQUEST_KIND:?}")]
    Kind(String),
    #[error("too many keys: {count} (at most {max} per request)")]
    TooManyKeys { count: usize, max: usize },
}

impl ProviderRequest {
    /// Parses and checks a request body, refusing more than `max_keys` keys.
    pub fn parse(body: &[u8], max_keys: usize) -> Result<Self, RequestError> {
        let request: ProviderRequest = serde_json::from_slice(body)?;
        if request.api_version != API_VERSION {
            return Err(RequestError::ApiVersion(request.api_version));
        }
        if request.kind != REQUEST_KIND {
            return Err(RequestError::Kind(request.kind));
        }
        let count = request.request.keys.len();
        if count > max_keys {
            return Err(RequestError::TooManyKeys { count, max: max_keys });
        }
        Ok(request)
    }
}

/// The body the provider answers with.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ProviderResponse {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub response: ResponseBody,
}

/// Per-key answers plus an error about the request as a whole.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ResponseBody {
    /// Verdicts only depend on the key (and the signatures in the registry), so Gatekeeper may
    /// cache them.
    pub idempotent: bool,
    pub items: Vec<Item>,
    #[serde(rename = "systemError")]
    pub system_error: String,
}

/// The answer about one key: a value or an error, never both.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Item {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Item {
    /// A successful answer.
    pub fn value(key: String, decision: Decision) -> Self {
        Self {
            key,
            value: Some(decision),
            error: None,
        }
    }

    /// A per-key failure; the ConstraintTemplate turns it into a violation (fail closed).
    pub fn error(key: String, error: impl Into<String>) -> Self {
        Self {
            key,
            value: None,
            error: Some(error.into()),
        }
    }
}

impl ProviderResponse {
    /// A response carrying per-key items.
    pub fn items(items: Vec<Item>) -> Self {
        Self::new(items, String::new())
    }

    /// A response refusing the whole request.
    pub fn system_error(error: impl Into<String>) -> Self {
        Self::new(Vec::new(), error.into())
    }

    fn new(items: Vec<Item>, system_error: String) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: RESPONSE_KIND.to_owned(),
            response: ResponseBody {
                idempotent: true,
                items,
                system_error,
            },
        }
    }
}

/// Why a key could not be understood; reported as that key's `error`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyError {
    #[error(
        "key is not a JSON object {{\"image\",\"namespace\",\"resource\"?:{{\"group\",\"version\",\"resource\"}},\"labels\"?:{{…}}}}: {0}"
    )]
    Malformed(String),
    #[error("key has an empty image")]
    EmptyImage,
    #[error("key has an empty namespace")]
    EmptyNamespace,
    #[error("key has a resource without version or resource name")]
    EmptyResource,
}

/// Parses a key as the ConstraintTemplate builds it:
/// `json.marshal({"image": i, "namespace": n, "resource": {"group", "version", "resource"}, "labels": l})`;
/// the old form `{"image", "namespace"}` (a Pod without labels) is still accepted. Unknown fields
/// are refused so that a template sending more than we honour fails loudly.
pub fn parse_key(key: &str) -> Result<ImageKey, KeyError> {
    let parsed: ImageKey = serde_json::from_str(key).map_err(|e| KeyError::Malformed(e.to_string()))?;
    if parsed.image.trim().is_empty() {
        return Err(KeyError::EmptyImage);
    }
    if parsed.namespace.trim().is_empty() {
        return Err(KeyError::EmptyNamespace);
    }
    if let Some(resource) = &parsed.resource
        && (resource.version.trim().is_empty() || resource.resource.trim().is_empty())
    {
        return Err(KeyError::EmptyResource);
    }
    Ok(parsed)
}

/// The lowercase name of a verdict, as used on the wire, in logs and as a metric label.
pub fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::Warn => "warn",
        Verdict::Deny => "deny",
    }
}

/// The `value` of an item: the module's [`ImageVerdict`] without the echoed image and namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// Digest every passing policy verified, when one did.
    pub digest: Option<String>,
    /// Why; empty when allowed without remark.
    pub message: String,
    /// The policies that matched the image, as the module reported them.
    #[serde(default)]
    pub policies: Vec<PolicyOutcome>,
}

impl From<ImageVerdict> for Decision {
    fn from(v: ImageVerdict) -> Self {
        Self {
            verdict: v.verdict,
            digest: v.digest,
            message: v.message,
            policies: v.policies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_with_unknown_field_is_refused() {
        let err = parse_key(r#"{"image":"a","namespace":"b","x":1}"#).unwrap_err();
        assert!(matches!(err, KeyError::Malformed(m) if m.contains("unknown field")));
    }

    #[test]
    fn key_needs_image_and_namespace() {
        assert_eq!(parse_key(r#"{"image":" ","namespace":"b"}"#), Err(KeyError::EmptyImage));
        assert_eq!(
            parse_key(r#"{"image":"a","namespace":""}"#),
            Err(KeyError::EmptyNamespace)
        );
        assert!(matches!(parse_key("nginx:latest"), Err(KeyError::Malformed(_))));
    }

    #[test]
    fn key_may_carry_resource_and_labels() {
        let key = parse_key(
            r#"{"image":"a","namespace":"b","resource":{"group":"apps","version":"v1","resource":"deployments"},"labels":{"app":"web"}}"#,
        )
        .unwrap();
        assert_eq!(
            key.resource,
            Some(ResourceKey {
                group: "apps".into(),
                version: "v1".into(),
                resource: "deployments".into()
            })
        );
        assert_eq!(key.labels.unwrap()["app"], "web");
        // The core group may be left out; the old form stays valid.
        let core = parse_key(r#"{"image":"a","namespace":"b","resource":{"version":"v1","resource":"pods"}}"#).unwrap();
        assert_eq!(core.resource.map(|r| r.group), Some(String::new()));
        assert_eq!(
            parse_key(r#"{"image":"a","namespace":"b"}"#),
            Ok(ImageKey::new("a", "b"))
        );
        for bad in [
            r#"{"image":"a","namespace":"b","resource":"apps/v1/deployments"}"#,
            r#"{"image":"a","namespace":"b","resource":{"version":"v1","resource":"pods","kind":"Pod"}}"#,
            r#"{"image":"a","namespace":"b","labels":{"app":1}}"#,
        ] {
            assert!(matches!(parse_key(bad), Err(KeyError::Malformed(_))), "{bad}");
        }
        assert_eq!(
            parse_key(r#"{"image":"a","namespace":"b","resource":{"version":"v1","resource":""}}"#),
            Err(KeyError::EmptyResource)
        );
    }

    #[test]
    fn request_checks_version_kind_and_size() {
        let body = br#"{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":["a","b"]}}"#;
        assert_eq!(
            ProviderRequest::parse(body, 2).map(|r| r.request.keys.len()).ok(),
            Some(2)
        );
        assert!(matches!(
            ProviderRequest::parse(body, 1),
            Err(RequestError::TooManyKeys { count: 2, max: 1 })
        ));
        let wrong = br#"{"apiVersion":"v1","kind":"ProviderRequest","request":{"keys":[]}}"#;
        assert!(matches!(
            ProviderRequest::parse(wrong, 1),
            Err(RequestError::ApiVersion(_))
        ));
    }

    #[test]
    fn items_serialize_value_or_error_only() {
        let item = Item::error("k".into(), "boom");
        assert_eq!(
            serde_json::to_value(&item).ok(),
            Some(serde_json::json!({"key":"k","error":"boom"}))
        );
    }
}
