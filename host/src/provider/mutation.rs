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
//! | deny                                               | `value`: the image unchanged (the validating Constraint refuses it) |
//! | the image could not be decided (deadline, evaluation failure) | `error`: why (the Assign's failurePolicy applies) |
//!
//! A denial is not the mutation's to enforce. An `Assign` sees no old object: on every Pod
//! UPDATE that reaches it (a finalizer removed by the Job controller, `kubectl label`, unless the
//! webhook's matchConditions keep Pod UPDATEs away, deploy/gatekeeper/helm-values.yaml) it sends
//! every image of the Pod again, and an image denied *now* (its key rotated out, its registry down
//! under `enforce`) would have the UPDATE refused, although the validating Constraint deliberately
//! leaves out the images an UPDATE does not change (docs/lifecycle.md). So a denied image is
//! answered unchanged, and the Constraint, which runs after every mutation on the object as
//! mutated, with its labels and its old object, refuses what admission refuses. Only an image
//! the provider could not decide at all is an `error`: on a Pod's CREATE the Constraint would
//! ask again and fail closed too, but an image left unpinned there could be admitted by a
//! Constraint answered a moment later, unpinned.
//!
//! Gatekeeper's mutation sends only the value at the location (`dataSource: ValueAtLocation`;
//! the other source is the requester's `Username`): no labels, so each image is decided as in an
//! object without labels, and a policy scoped by a label `selector` cannot be told to apply. Its
//! images are therefore not pinned unless another policy verifies them; a denial the Pod's labels
//! could lift is left to the Constraint like any other. `cip provider` warns about such policies
//! when it loads the settings ([`LABEL_SCOPED_WARNING`]).
//!
//! The verdict's `digest` is only ever one a *passing* policy verified (a failing policy
//! contributes none, and a policy verifying another digest than an earlier one fails): with a
//! failing `warn` policy it is the digest the passing policies agree on.
//!
//! Gatekeeper only uses mutation answers marked `idempotent`, which ours are.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Logged (at `warn`, with the policies' names) when settings with label-scoped policies are
/// loaded, at start-up and at each reload.
pub const LABEL_SCOPED_WARNING: &str = "policies scoped by a label selector: Gatekeeper's digest pinning (/mutate) is sent no \
     labels, so their images are not pinned there (unless another policy verifies them); the validating Constraint, which \
     sends the labels, decides them (docs/gatekeeper.md, \
     Digest pinning). Write such images by digest, or scope those policies by namespace";

/// The names of the policies in `settings` whose `match` has an entry with a non-empty label
/// `selector` (`matchLabels` or `matchExpressions`), in settings order. Whether they apply to an
/// object depends on its labels, which Gatekeeper's mutation does not send.
pub fn label_scoped_policies(settings: &Value) -> Vec<String> {
    let non_empty = |v: Option<&Value>| match v {
        Some(Value::Object(map)) => !map.is_empty(),
        Some(Value::Array(list)) => !list.is_empty(),
        _ => false,
    };
    settings["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|policy| {
            policy["spec"]["match"].as_array().into_iter().flatten().any(|entry| {
                let selector = &entry["selector"];
                non_empty(selector.get("matchLabels")) || non_empty(selector.get("matchExpressions"))
            })
        })
        .map(|policy| policy["metadata"]["name"].as_str().unwrap_or("<unnamed>").to_owned())
        .collect()
}

/// Answers the images of one mutation request as the policy decides them in `namespace`.
pub async fn mutate(
    evaluator: &BatchEvaluator,
    namespace: &str,
    images: Vec<String>,
    started: Instant,
) -> Vec<MutationItem> {
    // One snapshot of the settings for the whole request: the label-scoped policies and every
    // image's decision come from the same settings, whatever reload happens meanwhile.
    let decider = evaluator.snapshot();
    let label_scoped = decider.label_scoped_policies();
    let keys: Vec<String> = images
        .iter()
        .map(|image| serde_json::json!({ "image": image, "namespace": namespace }).to_string())
        .collect();
    let answers = evaluator.evaluate_with(&decider, keys.clone(), started).await;
    let mut answered = std::collections::HashSet::new();
    images
        .into_iter()
        .zip(keys)
        .filter(|(image, _)| answered.insert(image.clone()))
        .map(|(image, key)| match answers.iter().find(|answer| answer.key == key) {
            Some(decided) => answer(image, &decided.outcome, &label_scoped),
            None => MutationItem {
                key: image,
                value: None,
                error: Some("no decision was made for this image".to_owned()),
            },
        })
        .collect()
}

/// Whether a denial decided without the object's labels holds whatever they are (only logged: a
/// denial is the validating Constraint's to enforce): the settings have no label-scoped policy,
/// or a policy reading no labels failed in `enforce` mode while no label-scoped policy applied.
fn denied_whatever_the_labels(decision: &Decision, label_scoped: &[String]) -> bool {
    label_scoped.is_empty()
        || (!decision.policies.iter().any(|p| label_scoped.contains(&p.name))
            && decision.policies.iter().any(|p| !p.passed && p.mode == "enforce"))
}

/// The mutation answer for `image` from its validation outcome. A denied image is answered
/// unchanged: the validating Constraint refuses it, on CREATE, and leaves it alone on an UPDATE
/// that does not change it (an Assign, without the old object, cannot tell). Gatekeeper keeps no
/// mutation answer beyond the request, so a key left undecided is an `error` item (the Assign's
/// failurePolicy applies).
fn answer(image: String, outcome: &Result<Decision, KeyFailure>, label_scoped: &[String]) -> MutationItem {
    let outcome = match outcome {
        Err(failure) => Err(failure.to_string()),
        Ok(decision) => match decision.verdict {
            Verdict::Deny => {
                tracing::debug!(
                    %image,
                    reason = %decision.message,
                    labels_could_lift_it = !denied_whatever_the_labels(decision, label_scoped),
                    "denied: left unchanged, the validating Constraint refuses it"
                );
                Ok(image.clone())
            }
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
    use crate::provider::protocol::PolicyOutcome;
    use crate::provider::{Decider, Limits, metrics::Metrics, protocol::ImageKey};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A decider whose settings change between any two questions asked of it (a reload at every
    /// key); its snapshots keep the settings of the moment they were taken.
    #[derive(Default)]
    struct ReloadingAlways {
        generation: AtomicUsize,
    }

    /// Settings `generation`, without label-scoped policies, verifying every image at a digest
    /// of their own.
    struct Snapshot {
        generation: usize,
    }

    fn verified_in(generation: usize) -> Decision {
        Decision {
            verdict: Verdict::Allow,
            digest: Some(format!("sha256:{generation:064}")),
            message: format!("settings {generation}"),
            policies: Vec::new(),
        }
    }

    impl Decider for ReloadingAlways {
        fn decide(&self, _: &ImageKey) -> Result<Decision, String> {
            Ok(verified_in(self.generation.fetch_add(1, Ordering::SeqCst)))
        }

        fn label_scoped_policies(&self) -> Vec<String> {
            self.generation.fetch_add(1, Ordering::SeqCst);
            vec!["scoped".to_owned()]
        }

        fn snapshot(&self) -> Option<Arc<dyn Decider>> {
            Some(Arc::new(Snapshot {
                generation: self.generation.fetch_add(1, Ordering::SeqCst),
            }))
        }
    }

    impl Decider for Snapshot {
        fn decide(&self, _: &ImageKey) -> Result<Decision, String> {
            Ok(verified_in(self.generation))
        }
    }

    /// F5: every key of one `/validate` batch and of one `/mutate` request is decided with the
    /// settings of one snapshot, and a mutation's label-scoped policies come from it too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_request_is_decided_with_one_snapshot_of_the_settings() {
        let decider: Arc<dyn Decider> = Arc::new(ReloadingAlways::default());
        let metrics = Arc::new(Metrics::new(Arc::clone(&decider)));
        let evaluator = BatchEvaluator::new(decider, metrics, Limits::default());
        let images: Vec<String> = (0..6).map(|i| format!("r.io/app{i}:v1")).collect();

        let keys = images
            .iter()
            .map(|image| serde_json::json!({ "image": image, "namespace": "n" }).to_string())
            .collect();
        let answers = evaluator.evaluate(keys, Instant::now()).await;
        let messages: std::collections::HashSet<String> = answers
            .iter()
            .map(|answer| answer.outcome.as_ref().map(|d| d.message.clone()).unwrap_or_default())
            .collect();
        assert_eq!(messages.len(), 1, "{messages:?}");

        let items = mutate(&evaluator, "n", images.clone(), Instant::now()).await;
        assert_eq!(items.len(), images.len());
        let digests: std::collections::HashSet<Option<String>> = items
            .iter()
            .map(|item| {
                item.value
                    .as_deref()
                    .and_then(|v| v.split_once('@'))
                    .map(|(_, d)| d.to_owned())
            })
            .collect();
        assert_eq!(digests.len(), 1, "{items:?}");
        assert!(digests.iter().all(Option::is_some), "{items:?}");
    }

    fn decided(verdict: Verdict, digest: Option<&str>, message: &str) -> Result<Decision, KeyFailure> {
        Ok(Decision {
            verdict,
            digest: digest.map(str::to_owned),
            message: message.to_owned(),
            policies: Vec::new(),
        })
    }

    /// [`answer`] under settings without label-scoped policies.
    fn no_label_scoped(image: String, outcome: &Result<Decision, KeyFailure>) -> MutationItem {
        answer(image, outcome, &[])
    }

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn verified_images_are_pinned_warned_or_not_denied_ones_left_and_undecided_ones_errors() {
        let pinned = no_label_scoped("r.io/app:v1".into(), &decided(Verdict::Allow, Some(D), ""));
        assert_eq!(pinned.value.as_deref(), Some(format!("r.io/app:v1@{D}").as_str()));
        let already = no_label_scoped(format!("r.io/app@{D}"), &decided(Verdict::Allow, Some(D), ""));
        assert_eq!(already.value, Some(format!("r.io/app@{D}")));
        let uncovered = no_label_scoped("r.io/free:v1".into(), &decided(Verdict::Allow, None, ""));
        assert_eq!(uncovered.value.as_deref(), Some("r.io/free:v1"));
        // A failing warn policy does not stop the pin (as under Kubewarden): the tag could move.
        let warned = no_label_scoped("r.io/dev:v1".into(), &decided(Verdict::Warn, Some(D), "not verified"));
        assert_eq!(warned.value.as_deref(), Some(format!("r.io/dev:v1@{D}").as_str()));
        assert_eq!(warned.error, None);
        let warned_pinned = no_label_scoped(
            format!("r.io/dev@{D}"),
            &decided(Verdict::Warn, Some(D), "not verified"),
        );
        assert_eq!(warned_pinned.value, Some(format!("r.io/dev@{D}")));
        // Warned without a verified digest (noMatchPolicy: warn, or no authority verified one).
        let unverified = no_label_scoped(
            "r.io/free:v2".into(),
            &decided(Verdict::Warn, None, "covered by no policy"),
        );
        assert_eq!(unverified.value.as_deref(), Some("r.io/free:v2"));
        // Denied (a key rotated out, a registry down under enforce): unchanged, not an error, or
        // every later UPDATE of a Pod running it (finalizer removal, a label) would be refused;
        // the validating Constraint refuses it where admission does.
        let denied = no_label_scoped("r.io/evil:v1".into(), &decided(Verdict::Deny, None, "no signature"));
        assert_eq!((denied.value.as_deref(), denied.error), (Some("r.io/evil:v1"), None));
        let denied_pinned = no_label_scoped(format!("r.io/evil@{D}"), &decided(Verdict::Deny, None, "no signature"));
        assert_eq!(
            (denied_pinned.value, denied_pinned.error),
            (Some(format!("r.io/evil@{D}")), None)
        );
        let failed = no_label_scoped(
            "r.io/x:v1".into(),
            &Err(KeyFailure::Undecided {
                image: "r.io/x:v1".into(),
                namespace: "prod".into(),
                reason: "deadline exceeded".into(),
            }),
        );
        assert_eq!(failed.error.as_deref(), Some("deadline exceeded"));
    }

    fn applied(name: &str, mode: &str, passed: bool) -> PolicyOutcome {
        PolicyOutcome {
            name: name.to_owned(),
            mode: mode.to_owned(),
            passed,
            verified: Some(passed),
            authorities: Vec::new(),
        }
    }

    /// Gatekeeper sends no labels to `/mutate`: whether or not the settings have label-scoped
    /// policies, and whether or not the labels could lift it, a denial leaves the image unchanged
    /// (not pinned) for the validating Constraint, which sees the labels.
    #[test]
    fn every_denial_leaves_the_image_to_validation() {
        let scoped = ["team-a".to_owned(), "not-exempt".to_owned()];
        let deny = |message: &str, policies: Vec<PolicyOutcome>| {
            Ok(Decision {
                verdict: Verdict::Deny,
                digest: None,
                message: message.to_owned(),
                policies,
            })
        };
        // No policy applied to the unlabelled object (noMatchPolicy: deny): team-a may apply.
        let uncovered = deny("no ClusterImagePolicy covers it", vec![]);
        for label_scoped in [&scoped[..], &[]] {
            let left = answer("r.io/team/app:1".into(), &uncovered, label_scoped);
            assert_eq!((left.value.as_deref(), left.error), (Some("r.io/team/app:1"), None));
        }
        // A label-scoped policy (DoesNotExist) applied to the unlabelled object and failed.
        let selected = deny("denied by not-exempt", vec![applied("not-exempt", "enforce", false)]);
        let left = answer("r.io/other/app:1".into(), &selected, &scoped);
        assert_eq!(left.value.as_deref(), Some("r.io/other/app:1"));
        // A failing enforce policy that reads no labels: denied whatever the labels, still left
        // to the Constraint (which refuses it on CREATE and on an UPDATE that brings it in).
        let frozen = deny("denied by frozen", vec![applied("frozen", "enforce", false)]);
        let left = answer("r.io/frozen/app:1".into(), &frozen, &scoped);
        assert_eq!((left.value.as_deref(), left.error), (Some("r.io/frozen/app:1"), None));
        // Pinning is unchanged: an allowed image is pinned whatever the label-scoped policies.
        let pinned = answer("r.io/app:v1".into(), &decided(Verdict::Allow, Some(D), ""), &scoped);
        assert_eq!(pinned.value, Some(format!("r.io/app:v1@{D}")));
    }

    #[test]
    fn label_scoped_policies_are_those_with_a_non_empty_selector() {
        let settings = serde_json::json!({"policies": [
            {"metadata": {"name": "everywhere"}, "spec": {"images": [{"glob": "**"}]}},
            {"metadata": {"name": "deployments"}, "spec": {"match": [{"resource": "deployments"}]}},
            {"metadata": {"name": "team-a"}, "spec": {"match": [
                {"namespaces": ["x"]}, {"selector": {"matchLabels": {"team": "a"}}}]}},
            {"metadata": {"name": "not-exempt"}, "spec": {"match": [
                {"selector": {"matchExpressions": [{"key": "exempt", "operator": "DoesNotExist"}]}}]}},
            {"metadata": {"name": "empty-selector"}, "spec": {"match": [{"selector": {}}]}},
        ]});
        assert_eq!(label_scoped_policies(&settings), ["team-a", "not-exempt"]);
        assert!(label_scoped_policies(&serde_json::json!({})).is_empty());
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
