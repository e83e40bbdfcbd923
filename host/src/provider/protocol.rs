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

/// Why a key got no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFailure {
    /// The key cannot be read: asking again fails the same way.
    #[error("{0}")]
    Unreadable(String),
    /// The image was not decided this time (the deadline passed, the evaluation failed): asking
    /// again may decide it.
    #[error("{reason}")]
    Undecided {
        image: String,
        namespace: String,
        reason: String,
    },
}

/// The answer about one key as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub key: String,
    pub outcome: Result<Decision, KeyFailure>,
}

/// Images named in a `systemError` before the rest are counted.
const UNDECIDED_NAMED: usize = 5;

impl ProviderResponse {
    /// A response carrying per-key items.
    pub fn items(items: Vec<Item>) -> Self {
        Self::new(items, String::new())
    }

    /// The answer to a validation request. Decided keys get a `value` and unreadable ones an
    /// `error`. Keys left undecided this time get no item, and `systemError` names their images:
    /// Gatekeeper keeps every item it receives for its response-cache TTL (3 minutes by default),
    /// so an `error` item for a passing failure (a deadline missed while the provider was busy)
    /// would deny that image until the entry expired; a key without an item is asked again at the
    /// next admission. The `systemError` fails the review closed, as the `error` item would.
    pub fn answering(answers: Vec<Answer>) -> Self {
        let mut items = Vec::with_capacity(answers.len());
        let mut undecided = Vec::new();
        for Answer { key, outcome } in answers {
            match outcome {
                Ok(decision) => items.push(Item::value(key, decision)),
                Err(KeyFailure::Unreadable(error)) => items.push(Item::error(key, error)),
                Err(KeyFailure::Undecided {
                    image,
                    namespace,
                    reason,
                }) => undecided.push(format!("image {image} in namespace {namespace}: {reason}")),
            }
        }
        let system_error = match undecided.len() {
            0 => String::new(),
            count => {
                let mut text = format!(
                    "{count} image(s) not decided, to be asked again: {}",
                    undecided[..count.min(UNDECIDED_NAMED)].join("; ")
                );
                if count > UNDECIDED_NAMED {
                    text.push_str(&format!("; and {} more", count - UNDECIDED_NAMED));
                }
                text
            }
        };
        Self::new(items, system_error)
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
    /// The policies that matched the image, as the module reported them, each with `passed`
    /// and `verified` (passed by verifying the image at a digest, not by `static: pass` alone):
    /// the ConstraintTemplate's rules on images written by tag read `verified`.
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

    /// The provider passes the module's `verified` through to Gatekeeper for each policy (the
    /// template's rules on images written by tag read it); an answer without it (a module older
    /// than the field) is passed on without it, for the template's fallback.
    #[test]
    fn each_policys_verified_reaches_gatekeeper_as_the_module_said() {
        let module = serde_json::json!({
            "image": "r.io/app:1", "namespace": "default", "verdict": "allow", "digest": "sha256:00", "message": "",
            "policies": [
                {"name": "exempt", "mode": "enforce", "passed": true, "verified": false,
                 "authorities": [{"name": "pass", "passed": true}]},
                {"name": "signed", "mode": "warn", "passed": true, "verified": true,
                 "authorities": [{"name": "key", "passed": true}]},
                {"name": "older", "mode": "enforce", "passed": true, "authorities": []},
            ]
        });
        let verdict: ImageVerdict = serde_json::from_value(module).unwrap();
        let answered = serde_json::to_value(Decision::from(verdict)).unwrap();
        let policies = answered["policies"].as_array().unwrap();
        assert_eq!(policies[0]["verified"], false, "{answered}");
        assert_eq!(policies[1]["verified"], true, "{answered}");
        assert!(policies[2].get("verified").is_none(), "{answered}");
    }

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

    fn allowed() -> Decision {
        Decision {
            verdict: Verdict::Allow,
            digest: None,
            message: String::new(),
            policies: Vec::new(),
        }
    }

    fn undecided(i: usize) -> Answer {
        Answer {
            key: format!("slow{i}"),
            outcome: Err(KeyFailure::Undecided {
                image: format!("r.io/slow:{i}"),
                namespace: "prod".into(),
                reason: "deadline exceeded".into(),
            }),
        }
    }

    #[test]
    fn undecided_keys_get_no_item_and_a_system_error() {
        let answers = vec![
            Answer {
                key: "ok".into(),
                outcome: Ok(allowed()),
            },
            Answer {
                key: "bad".into(),
                outcome: Err(KeyFailure::Unreadable("key has an empty image".into())),
            },
            undecided(1),
        ];
        let response = ProviderResponse::answering(answers).response;
        let keys: Vec<&str> = response.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["ok", "bad"]);
        assert_eq!(response.items[1].error.as_deref(), Some("key has an empty image"));
        assert_eq!(
            response.system_error,
            "1 image(s) not decided, to be asked again: image r.io/slow:1 in namespace prod: deadline exceeded"
        );

        let decided = ProviderResponse::answering(vec![Answer {
            key: "ok".into(),
            outcome: Ok(allowed()),
        }]);
        assert_eq!(decided.response.system_error, "");
    }

    #[test]
    fn a_system_error_names_five_images_and_counts_the_rest() {
        let response = ProviderResponse::answering((0..8).map(undecided).collect()).response;
        assert!(response.items.is_empty());
        assert!(response.system_error.starts_with("8 image(s) not decided"));
        assert!(response.system_error.contains("r.io/slow:4 "));
        assert!(!response.system_error.contains("r.io/slow:5 "));
        assert!(
            response.system_error.ends_with("; and 3 more"),
            "{}",
            response.system_error
        );
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
