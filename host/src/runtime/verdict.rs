//! Types of the `verify_images` guest export (docs/wire-protocol.md): one verdict per
//! `{image, namespace}` item, used by `cip verify` and the Gatekeeper provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One image to decide on, with where it is used: the namespace, and optionally the resource
/// and labels of the object, which a policy's `match` may select on (docs/wire-protocol.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageKey {
    /// The image reference as the workload names it.
    pub image: String,
    /// The namespace the workload lives in.
    pub namespace: String,
    /// The resource of the object; a Pod (`v1` `pods`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceKey>,
    /// The labels of the object (`metadata.labels`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageKey {
    /// A key in the old form: an image used by a Pod without labels in `namespace`.
    pub fn new(image: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            namespace: namespace.into(),
            ..Self::default()
        }
    }
}

/// The resource of an [`ImageKey`], as in an AdmissionRequest's `resource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceKey {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
}

/// The decision for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every enforcing policy passed.
    Allow,
    /// Allowed, but a policy in warn mode failed (or no policy matched under `noMatchPolicy: warn`).
    Warn,
    /// An enforcing policy failed, the reference is invalid, or no policy matched under
    /// `noMatchPolicy: deny`.
    Deny,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Warn => "warn",
            Verdict::Deny => "deny",
        })
    }
}

/// The verdict on one [`ImageKey`], with the policies that matched it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageVerdict {
    /// The image as given.
    pub image: String,
    /// The namespace as given.
    pub namespace: String,
    /// The decision.
    pub verdict: Verdict,
    /// The digest every passing policy verified, when there is one.
    #[serde(default)]
    pub digest: Option<String>,
    /// Why the image is denied or warned about; empty when allowed without remark.
    #[serde(default)]
    pub message: String,
    /// The policies that matched the image, in settings order.
    #[serde(default)]
    pub policies: Vec<PolicyOutcome>,
}

/// How one matching policy judged an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    /// Name of the ClusterImagePolicy.
    pub name: String,
    /// `enforce` or `warn`.
    pub mode: String,
    /// Whether one of its authorities verified the image.
    pub passed: bool,
    /// Whether it passed by verifying the image at a digest (a signature or attestation
    /// authority, or `spec.policy` with `fetchConfigFile`), not by `static: pass` alone. `None`
    /// from a module that does not say (older than the field): passed through as absent, so
    /// that the ConstraintTemplate falls back to its former reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The authorities tried, in order.
    #[serde(default)]
    pub authorities: Vec<AuthorityOutcome>,
}

/// The result of one authority of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityOutcome {
    /// Name of the authority.
    pub name: String,
    /// Whether it verified the image.
    pub passed: bool,
    /// Why it did not, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Payload of the `verify_images` export.
#[derive(Serialize)]
pub(crate) struct VerifyImagesRequest<'a> {
    pub settings: &'a serde_json::Value,
    pub images: &'a [ImageKey],
}

/// Answer of the `verify_images` export.
#[derive(Deserialize)]
pub(crate) struct VerifyImagesResponse {
    pub results: Vec<ImageVerdict>,
}
