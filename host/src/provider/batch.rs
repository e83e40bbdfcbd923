//! Answers one ProviderRequest: parses keys, evaluates distinct images concurrently under a
//! concurrency bound shared fairly between namespaces ([`EvaluationSlots`]), and reports keys
//! that miss the deadline as undecided instead of answering late.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::{AbortHandle, JoinHandle};

use super::decider::Decider;
use super::metrics::Metrics;
use super::protocol::{Answer, Decision, ImageKey, KeyFailure, parse_key, verdict_name};
use super::slots::EvaluationSlots;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Keys accepted in one request.
    pub max_keys: usize,
    /// Request body size in bytes.
    pub max_body_bytes: usize,
    /// Request bodies in flight at once, in bytes, across all connections: each request reserves
    /// its `Content-Length` (`max_body_bytes` without one) until it is answered; a request that
    /// does not fit is answered 503 with `Retry-After`. Raised to `max_body_bytes` if below.
    pub max_inflight_body_bytes: usize,
    /// Evaluations running at once, across all requests.
    pub max_concurrency: usize,
    /// Evaluations of one namespace's keys running or queued for a shared slot at once.
    pub max_concurrency_per_namespace: usize,
    /// Time from receiving a request to answering it; must stay below Gatekeeper's timeout.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_keys: 1_000,
            max_body_bytes: 1024 * 1024,
            max_inflight_body_bytes: 32 * 1024 * 1024,
            max_concurrency: 32,
            max_concurrency_per_namespace: 8,
            deadline: Duration::from_millis(2_500),
        }
    }
}

/// Evaluates keys with a [`Decider`], shared by all connections.
pub struct BatchEvaluator {
    decider: Arc<dyn Decider>,
    slots: Arc<EvaluationSlots>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

type Outcome = Result<Decision, String>;

/// A key as received, with the index of its image key or why it cannot be parsed.
type ParsedKey = (String, Result<usize, String>);

impl BatchEvaluator {
    /// A new evaluator; the concurrency limits are clamped as [`EvaluationSlots::new`] says.
    pub fn new(decider: Arc<dyn Decider>, metrics: Arc<Metrics>, limits: Limits) -> Self {
        Self {
            slots: Arc::new(EvaluationSlots::new(
                limits.max_concurrency,
                limits.max_concurrency_per_namespace,
            )),
            decider,
            metrics,
            limits,
        }
    }

    /// The limits this evaluator enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The decider for one request: the settings served now, for all its keys
    /// ([`Decider::snapshot`]).
    pub fn snapshot(&self) -> Arc<dyn Decider> {
        self.decider.snapshot().unwrap_or_else(|| Arc::clone(&self.decider))
    }

    /// Answers `keys` received at `started` with one [`BatchEvaluator::snapshot`]:
    /// [`BatchEvaluator::evaluate_with`].
    pub async fn evaluate(&self, keys: Vec<String>, started: Instant) -> Vec<Answer> {
        self.evaluate_with(&self.snapshot(), keys, started).await
    }

    /// Answers `keys` received at `started` with `decider` (one request's snapshot, so that every
    /// key is decided with the same settings): one answer per distinct key string, in request
    /// order; a key whose evaluation failed or missed the deadline is [`KeyFailure::Undecided`].
    pub async fn evaluate_with(&self, decider: &Arc<dyn Decider>, keys: Vec<String>, started: Instant) -> Vec<Answer> {
        let deadline = deadline_after(started, self.limits.deadline);

        let (parsed, unique) = distinct(keys);
        let mut tasks: Vec<JoinHandle<Outcome>> = unique
            .iter()
            .map(|key| self.spawn(Arc::clone(decider), Arc::clone(key), deadline))
            .collect();
        let _abort_late = AbortOnDrop(tasks.iter().map(JoinHandle::abort_handle).collect());
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(tasks.len());
        for task in &mut tasks {
            let outcome = match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), task).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(join_error)) => Err(format!("evaluation failed: {join_error}")),
                Err(_elapsed) => Err(format!(
                    "deadline exceeded: not evaluated within {} ms",
                    self.limits.deadline.as_millis()
                )),
            };
            outcomes.push(outcome);
        }

        parsed
            .into_iter()
            .map(|(key, slot)| {
                let outcome = match slot {
                    Ok(i) => match unique.get(i) {
                        Some(image_key) => {
                            let outcome = outcomes
                                .get(i)
                                .cloned()
                                .unwrap_or_else(|| Err("internal error: evaluation missing".to_owned()));
                            self.record(&image_key.image, &image_key.namespace, &outcome);
                            outcome.map_err(|reason| KeyFailure::Undecided {
                                image: image_key.image.clone(),
                                namespace: image_key.namespace.clone(),
                                reason,
                            })
                        }
                        None => Err(KeyFailure::Unreadable("internal error: key missing".to_owned())),
                    },
                    Err(error) => {
                        self.record(&key, "", &Err(error.clone()));
                        Err(KeyFailure::Unreadable(error))
                    }
                };
                Answer { key, outcome }
            })
            .collect()
    }

    /// Starts one evaluation: waits for a slot of the key's namespace, then decides on the
    /// blocking pool with the request's deadline, which interrupts the evaluation itself (guest
    /// code and host calls) when it is reached. Dropping the handle after the deadline also stops
    /// a queued evaluation from ever starting (the slot wait is aborted with the task).
    fn spawn(&self, decider: Arc<dyn Decider>, key: Arc<ImageKey>, deadline: Instant) -> JoinHandle<Outcome> {
        let slots = Arc::clone(&self.slots);
        let metrics = Arc::clone(&self.metrics);
        tokio::spawn(async move {
            let slot = slots
                .acquire(&key.namespace)
                .await
                .map_err(|_| "provider is shutting down".to_owned())?;
            let blocking = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let started = Instant::now();
                let outcome = decider.decide_by(&key, deadline);
                metrics.record_evaluation(started.elapsed());
                outcome
            });
            blocking.await.map_err(|e| format!("evaluation failed: {e}"))?
        })
    }

    fn record(&self, image: &str, namespace: &str, outcome: &Outcome) {
        match outcome {
            Ok(decision) => {
                self.metrics.record_validation(verdict_name(decision.verdict));
                tracing::info!(
                    image,
                    namespace,
                    verdict = verdict_name(decision.verdict),
                    digest = decision.digest.as_deref().unwrap_or(""),
                    reason = %decision.message,
                    "decision"
                );
            }
            Err(error) => {
                self.metrics.record_validation("error");
                tracing::warn!(image, namespace, verdict = "error", reason = %error, "decision");
            }
        }
    }
}

/// `started + limit`, saturating far in the future instead of overflowing.
fn deadline_after(started: Instant, limit: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
    started
        .checked_add(limit)
        .or_else(|| started.checked_add(FAR))
        .unwrap_or(started)
}

/// Longest key, in bytes, that is read: the ConstraintTemplate's keys (an image reference, a
/// namespace, a resource and the object's labels, which Kubernetes caps at 63-character names
/// and values) stay far below it; a longer key gets an error item of its own (the other keys of
/// the request are answered), so that the copies a key costs while it is evaluated stay bounded.
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// Each distinct key string with the index of its image key in the second list, or why it
/// cannot be parsed (a key over [`MAX_KEY_BYTES`] included); the second list holds each distinct
/// image key once (keys spelled differently but meaning the same image and namespace are
/// evaluated once). Each key string is kept once (moved, not copied), and each image key once.
fn distinct(keys: Vec<String>) -> (Vec<ParsedKey>, Vec<Arc<ImageKey>>) {
    let first: Vec<bool> = {
        let mut seen: HashSet<&str> = HashSet::with_capacity(keys.len());
        keys.iter().map(|key| seen.insert(key.as_str())).collect()
    };
    let mut parsed = Vec::with_capacity(keys.len());
    let mut index_of: HashMap<Arc<ImageKey>, usize> = HashMap::new();
    for (key, first) in keys.into_iter().zip(first) {
        if !first {
            continue;
        }
        let slot = if key.len() > MAX_KEY_BYTES {
            Err(format!(
                "key is {} bytes long, over the {MAX_KEY_BYTES} bytes a key may have",
                key.len()
            ))
        } else {
            parse_key(&key).map_err(|e| e.to_string()).map(|image_key| {
                let next = index_of.len();
                *index_of.entry(Arc::new(image_key)).or_insert(next)
            })
        };
        parsed.push((key, slot));
    }
    let mut unique: Vec<Option<Arc<ImageKey>>> = vec![None; index_of.len()];
    for (image_key, i) in index_of {
        if let Some(place) = unique.get_mut(i) {
            *place = Some(image_key);
        }
    }
    (parsed, unique.into_iter().flatten().collect())
}

/// Aborts evaluations still queued when a request is answered (deadline) or abandoned
/// (client gone); aborting a finished task does nothing.
struct AbortOnDrop(Vec<AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_KEY_BYTES, deadline_after, distinct};
    use std::time::{Duration, Instant};

    #[test]
    fn huge_deadlines_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(3600));
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }

    #[test]
    fn duplicate_keys_and_spellings_of_one_image_are_evaluated_once() {
        let keys = vec![
            r#"{"image":"a:1","namespace":"n"}"#.to_owned(),
            r#"{"image":"a:1","namespace":"n"}"#.to_owned(),
            r#"{ "namespace": "n", "image": "a:1" }"#.to_owned(),
            r#"{"image":"a:1","namespace":"m"}"#.to_owned(),
            "garbage".to_owned(),
        ];
        let (parsed, unique) = distinct(keys);
        assert_eq!(parsed.len(), 4);
        assert_eq!(unique.len(), 2);
        let slots: Vec<_> = parsed.iter().map(|(_, slot)| slot.clone().ok()).collect();
        assert_eq!(slots, vec![Some(0), Some(0), Some(1), None]);
        assert_eq!((unique[0].namespace.as_str(), unique[1].namespace.as_str()), ("n", "m"));
    }

    #[test]
    fn a_key_over_the_cap_gets_an_error_of_its_own() {
        let key = |image: &str| format!(r#"{{"image":"{image}","namespace":"n"}}"#);
        let at_cap = key(&"a".repeat(MAX_KEY_BYTES - key("").len()));
        let over = key(&"b".repeat(MAX_KEY_BYTES + 1 - key("").len()));
        assert_eq!((at_cap.len(), over.len()), (MAX_KEY_BYTES, MAX_KEY_BYTES + 1));
        let (parsed, unique) = distinct(vec![at_cap, over]);
        assert_eq!(parsed[0].1, Ok(0));
        assert_eq!(
            parsed[1].1,
            Err(format!(
                "key is {} bytes long, over the {MAX_KEY_BYTES} bytes a key may have",
                MAX_KEY_BYTES + 1
            ))
        );
        assert_eq!(unique.len(), 1);
    }
}
