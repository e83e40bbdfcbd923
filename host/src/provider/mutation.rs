//! Digest pinning under Gatekeeper: the answer to an external-data mutation
//! (`Assign` with `parameters.assign.externalData`, `dataSource: ValueAtLocation`), served at
//! `POST /mutate/{namespace}`.
//!
//! Gatekeeper sends the values at the Assign's location (container images; image volumes are not
//! pinned, docs/gatekeeper.md) as keys and puts each item's `value` back at that location. The answer pins
//! exactly as the policy does under Kubewarden (`modifyImagesWithDigest`, `decision::decide`),
//! for the namespace named in the path: every image that passed all its `enforce` policies is
//! pinned to the digest the passing authorities verified, whatever the `warn` policies said, or
//! the tag could move between the check and the pull.
//!
//! | verdict in that namespace                          | item                                     |
//! |----------------------------------------------------|------------------------------------------|
//! | allow or warn, with a verified digest, none in the image | `value`: `image@sha256:…` (pinned) |
//! | allow or warn without a verified digest (no policy covers it, `static` authorities only), or already pinned | `value`: the image unchanged |
//! | deny, or the image could not be decided            | `error`: why (the Assign's failurePolicy applies) |
//!
//! The verdict's `digest` is only ever one a *passing* policy verified (a failing policy
//! contributes none, and a policy verifying another digest than an earlier one fails): with a
//! failing `warn` policy it is the digest the passing policies agree on.
//!
//! Gatekeeper only uses mutation answers marked `idempotent`, which ours are.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::batch::BatchEvaluator;
use super::protocol::{API_VERSION, Decision, KeyFailure, RESPONSE_KIND, Verdict};

/// The body answering a mutation request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MutationResponse {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub response: MutationBody,
}

/// Per-image answers plus an error about the request as a whole.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MutationBody {
    pub idempotent: bool,
    pub items: Vec<MutationItem>,
    #[serde(rename = "systemError")]
    pub system_error: String,
}

/// The new value of one image, or why it has none.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MutationItem {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MutationResponse {
    /// A response carrying per-image items.
    pub fn items(items: Vec<MutationItem>) -> Self {
        Self::new(items, String::new())
    }

    /// A response refusing the whole request.
    pub fn system_error(error: impl Into<String>) -> Self {
        Self::new(Vec::new(), error.into())
    }

    fn new(items: Vec<MutationItem>, system_error: String) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: RESPONSE_KIND.to_owned(),
            response: MutationBody {
                idempotent: true,
                items,
                system_error,
            },
        }
    }
}

/// Why the namespace of a mutation path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a namespace name: the Provider's url must end with /mutate/NAMESPACE, NAMESPACE being the \
     namespace whose policies decide (a DNS label: lowercase letters, digits and '-', at most 63)"
)]
pub struct InvalidNamespace(pub String);

/// Checks the `{namespace}` path segment (an RFC 1123 label, as Kubernetes namespace names).
pub fn check_namespace(namespace: &str) -> Result<(), InvalidNamespace> {
    let bytes = namespace.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if valid {
        Ok(())
    } else {
        Err(InvalidNamespace(namespace.to_owned()))
    }
}

/// Answers the images of one mutation request as the policy decides them in `namespace`.
pub async fn mutate(
    evaluator: &BatchEvaluator,
    namespace: &str,
    images: Vec<String>,
    started: Instant,
) -> Vec<MutationItem> {
    let keys: Vec<String> = images
        .iter()
        .map(|image| serde_json::json!({ "image": image, "namespace": namespace }).to_string())
        .collect();
    let answers = evaluator.evaluate(keys.clone(), started).await;
    let mut answered = std::collections::HashSet::new();
    images
        .into_iter()
        .zip(keys)
        .filter(|(image, _)| answered.insert(image.clone()))
        .map(|(image, key)| match answers.iter().find(|answer| answer.key == key) {
            Some(decided) => answer(image, &decided.outcome),
            None => MutationItem {
                key: image,
                value: None,
                error: Some("no decision was made for this image".to_owned()),
            },
        })
        .collect()
}

/// The mutation answer for `image` from its validation outcome. Gatekeeper keeps no mutation
/// answer beyond the request, so a key left undecided is an `error` item (the Assign's
/// failurePolicy applies).
fn answer(image: String, outcome: &Result<Decision, KeyFailure>) -> MutationItem {
    let outcome = match outcome {
        Err(failure) => Err(failure.to_string()),
        Ok(decision) => match decision.verdict {
            Verdict::Deny => Err(if decision.message.is_empty() {
                format!("image {image} is denied by the cluster image policies")
            } else {
                decision.message.clone()
            }),
            // As `decide` sets `pin`: any verdict but deny, whatever the warn policies said.
            Verdict::Allow | Verdict::Warn => Ok(match &decision.digest {
                Some(digest) if !image.contains('@') => format!("{image}@{digest}"),
                _ => image.clone(),
            }),
        },
    };
    match outcome {
        Ok(value) => MutationItem {
            key: image,
            value: Some(value),
            error: None,
        },
        Err(error) => MutationItem {
            key: image,
            value: None,
            error: Some(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(verdict: Verdict, digest: Option<&str>, message: &str) -> Result<Decision, KeyFailure> {
        Ok(Decision {
            verdict,
            digest: digest.map(str::to_owned),
            message: message.to_owned(),
            policies: Vec::new(),
        })
    }

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn verified_images_are_pinned_warned_or_not_and_denied_ones_are_errors() {
        let pinned = answer("r.io/app:v1".into(), &decided(Verdict::Allow, Some(D), ""));
        assert_eq!(pinned.value.as_deref(), Some(format!("r.io/app:v1@{D}").as_str()));
        let already = answer(format!("r.io/app@{D}"), &decided(Verdict::Allow, Some(D), ""));
        assert_eq!(already.value, Some(format!("r.io/app@{D}")));
        let uncovered = answer("r.io/free:v1".into(), &decided(Verdict::Allow, None, ""));
        assert_eq!(uncovered.value.as_deref(), Some("r.io/free:v1"));
        // A failing warn policy does not stop the pin (as under Kubewarden): the tag could move.
        let warned = answer("r.io/dev:v1".into(), &decided(Verdict::Warn, Some(D), "not verified"));
        assert_eq!(warned.value.as_deref(), Some(format!("r.io/dev:v1@{D}").as_str()));
        assert_eq!(warned.error, None);
        let warned_pinned = answer(
            format!("r.io/dev@{D}"),
            &decided(Verdict::Warn, Some(D), "not verified"),
        );
        assert_eq!(warned_pinned.value, Some(format!("r.io/dev@{D}")));
        // Warned without a verified digest (noMatchPolicy: warn, or no authority verified one).
        let unverified = answer(
            "r.io/free:v2".into(),
            &decided(Verdict::Warn, None, "covered by no policy"),
        );
        assert_eq!(unverified.value.as_deref(), Some("r.io/free:v2"));
        let denied = answer("r.io/evil:v1".into(), &decided(Verdict::Deny, None, "no signature"));
        assert_eq!((denied.value, denied.error.as_deref()), (None, Some("no signature")));
        let failed = answer(
            "r.io/x:v1".into(),
            &Err(KeyFailure::Undecided {
                image: "r.io/x:v1".into(),
                namespace: "prod".into(),
                reason: "deadline exceeded".into(),
            }),
        );
        assert_eq!(failed.error.as_deref(), Some("deadline exceeded"));
    }

    #[test]
    fn namespaces_are_dns_labels() {
        for ok in ["default", "prod-1", "a"] {
            assert!(check_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Prod", "-a", "a-", "a/b", "a.b", &"x".repeat(64)] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_response_is_idempotent() {
        let json = serde_json::to_value(MutationResponse::items(vec![])).expect("json");
        assert_eq!(json["response"]["idempotent"], true);
        assert_eq!(json["kind"], "ProviderResponse");
    }
}
