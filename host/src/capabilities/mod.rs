//! Host capabilities: the answers to a policy's `host_call(binding, namespace, operation,
//! payload)`, byte-compatible with Kubewarden's policy-evaluator (docs/wire-protocol.md).
//!
//! One file per namespace. The waPC callback is synchronous: asynchronous work (registry,
//! verification, DNS) is spawned on the tokio runtime given to [`Capabilities::new`] and awaited
//! through a channel, bounded by what is left of the evaluation deadline. That runtime must be
//! able to make progress while the evaluating thread waits: use a multi-thread runtime, or
//! evaluate outside it (the runtime's `*_async` helpers use `spawn_blocking`). Verification
//! answers can also be memoised on the evaluating thread ([`Capabilities::with_answer_cache`]).

mod answer_cache;
mod attestations;
mod crypto;
mod host;
mod kms;
mod logging;
mod net;
mod oci;
pub mod recording;
mod rego;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kms::{KmsError, KmsResolver};
use crate::verify::{Verifier, VerifyError};

use answer_cache::AnswerCache;
pub use answer_cache::AnswerCacheStats;
use recording::Interactions;
pub use rego::check_settings as check_rego_policies;
pub use rego::memory::{
    DEFAULT_LIMIT_MIB as DEFAULT_REGO_MEMORY_LIMIT_MIB, flush_thread_counters as flush_rego_memory_counters,
    set_limit_mib as set_rego_memory_limit_mib,
};

/// Everything host calls need: the verifier (registry and signatures) and the runtime that
/// drives it.
pub struct Capabilities {
    verifier: Option<Arc<Verifier>>,
    handle: tokio::runtime::Handle,
    answers: Option<AnswerCache>,
    kms: Option<Arc<KmsResolver>>,
    interactions: Option<Interactions>,
    /// Whether only Kubewarden's capabilities are served ([`Capabilities::kubewarden_only`]).
    kubewarden_only: bool,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("verifier", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

/// A host call that failed; its text is what the policy receives as the host error.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// No capability is served under this binding.
    #[error("unknown binding: {0}")]
    UnknownBinding(String),
    /// The binding has no such namespace.
    #[error("unknown namespace: {namespace} (binding {binding})")]
    UnknownNamespace {
        /// The binding asked for.
        binding: String,
        /// The namespace asked for.
        namespace: String,
    },
    /// The namespace has no such operation.
    #[error("unknown operation: {operation} (binding {binding}, namespace {namespace})")]
    UnknownOperation {
        /// The binding asked for.
        binding: String,
        /// The namespace asked for.
        namespace: String,
        /// The operation asked for.
        operation: String,
    },
    /// The payload is not what the operation expects.
    #[error("invalid payload for {call}: {source}")]
    Payload {
        /// `binding/namespace/operation`.
        call: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The operation needs registry access but the host was built without a verifier.
    #[error("{0}: this host has no registry access configured")]
    NoVerifier(&'static str),
    /// Verification or registry look-up failed; the text is the reason shown to users.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A KMS key could not be resolved; the text names the key and the reason.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// A verification failure remembered from an earlier identical look-up.
    #[error("{0}")]
    Cached(String),
    /// The evaluation deadline was reached while waiting for the answer.
    #[error("{call}: no answer within the evaluation deadline ({waited:?})")]
    Deadline {
        /// `binding/namespace/operation`.
        call: &'static str,
        /// How long the call waited.
        waited: Duration,
    },
    /// Any other failure of the operation.
    #[error("{call}: {message}")]
    Failed {
        /// `binding/namespace/operation`.
        call: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl Capabilities {
    /// Capabilities backed by `verifier`, whose async work runs on `handle`.
    pub fn new(verifier: Arc<Verifier>, handle: tokio::runtime::Handle) -> Self {
        Self {
            verifier: Some(verifier),
            handle,
            answers: None,
            kms: None,
            interactions: None,
            kubewarden_only: false,
        }
    }

    /// Serves only Kubewarden's capabilities, as a stock host (policy-server, kwctl) does: every
    /// call under the `cluster-image-policy` binding fails as an unknown binding.
    #[must_use]
    pub fn kubewarden_only(mut self) -> Self {
        self.kubewarden_only = true;
        self
    }

    /// Remembers verification answers (and verification failures) and `oci/v1/*` registry
    /// answers on the evaluating thread, so warm evaluations skip the hop to the runtime. Each
    /// answer is kept exactly as long as the verifier's cache entry it came from, and at most
    /// `max_entries` answers and about `max_bytes` bytes of them are kept.
    #[must_use]
    pub fn with_answer_cache(mut self, max_entries: u64, max_bytes: u64) -> Self {
        self.answers = Some(AnswerCache::new(max_entries, max_bytes));
        self
    }

    /// Serves `cluster-image-policy/kms/v1/public_key` with `resolver` (without it, the
    /// capability answers that this host has no KMS access).
    #[must_use]
    pub fn with_kms(mut self, resolver: Arc<KmsResolver>) -> Self {
        self.kms = Some(resolver);
        self
    }

    /// Records the host calls to a kwctl session file, or answers them from one
    /// ([`recording`]).
    #[must_use]
    pub fn with_interactions(mut self, interactions: Interactions) -> Self {
        self.interactions = Some(interactions);
        self
    }

    /// Hits and misses of the answer memo (zero when it is not enabled).
    pub fn answer_cache_stats(&self) -> AnswerCacheStats {
        self.answers.as_ref().map(AnswerCache::stats).unwrap_or_default()
    }

    /// Capabilities without registry access: `oci` calls fail with a clear error, the others
    /// (tracing, DNS, certificate checks) work. Useful for policies that make no look-ups.
    pub fn without_registry(handle: tokio::runtime::Handle) -> Self {
        Self {
            verifier: None,
            handle,
            answers: None,
            kms: None,
            interactions: None,
            kubewarden_only: false,
        }
    }

    /// The verifier, if any (for cache statistics).
    pub fn verifier(&self) -> Option<&Arc<Verifier>> {
        self.verifier.as_ref()
    }

    /// Answers one host call made by `policy`; `deadline` bounds any waiting.
    pub fn dispatch(
        &self,
        policy: &str,
        deadline: Option<Instant>,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, CapabilityError> {
        match &self.interactions {
            Some(interactions) => interactions.dispatch(binding, namespace, operation, payload, || {
                self.dispatch_to_host(policy, deadline, binding, namespace, operation, payload)
            }),
            None => self.dispatch_to_host(policy, deadline, binding, namespace, operation, payload),
        }
    }

    fn dispatch_to_host(
        &self,
        policy: &str,
        deadline: Option<Instant>,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, CapabilityError> {
        if self.kubewarden_only && binding == "cluster-image-policy" {
            return Err(CapabilityError::UnknownBinding(binding.to_owned()));
        }
        let call = Call { caps: self, deadline };
        match (binding, namespace) {
            ("kubewarden", "oci") => oci::kubewarden(&call, operation, payload),
            ("kubewarden", "crypto") => crypto::dispatch(operation, payload),
            ("kubewarden", "net") => net::dispatch(&call, operation, payload),
            ("kubewarden", "tracing") => logging::dispatch(policy, operation, payload),
            ("cluster-image-policy", "oci") => oci::cluster_image_policy(&call, operation, payload),
            ("cluster-image-policy", "policy") => rego::dispatch(operation, payload, deadline),
            ("cluster-image-policy", "kms") => kms::dispatch(&call, operation, payload),
            ("cluster-image-policy", "host") => host::dispatch(operation),
            ("kubewarden" | "cluster-image-policy", _) => Err(CapabilityError::UnknownNamespace {
                binding: binding.to_owned(),
                namespace: namespace.to_owned(),
            }),
            _ => Err(CapabilityError::UnknownBinding(binding.to_owned())),
        }
        .map_err(|e| match e {
            CapabilityError::UnknownOperation { operation, .. } => CapabilityError::UnknownOperation {
                binding: binding.to_owned(),
                namespace: namespace.to_owned(),
                operation,
            },
            other => other,
        })
    }
}

/// One host call in flight: access to the capabilities plus its deadline.
struct Call<'a> {
    caps: &'a Capabilities,
    deadline: Option<Instant>,
}

impl Call<'_> {
    /// Answers a verification look-up from the memo, or asks `compute` and remembers the
    /// outcome, when it is an answer or a verification failure, until the instant `compute`
    /// says the verifier forgets it.
    fn memoized(
        &self,
        call: &'static str,
        payload: &[u8],
        compute: impl FnOnce() -> Result<(Vec<u8>, Instant), (CapabilityError, Option<Instant>)>,
    ) -> Result<Vec<u8>, CapabilityError> {
        let Some(answers) = &self.caps.answers else {
            return compute().map(|(bytes, _)| bytes).map_err(|(error, _)| error);
        };
        if let Some(answer) = answers.get(call, payload) {
            return answer.map_err(CapabilityError::Cached);
        }
        match compute() {
            Ok((bytes, expires)) => {
                answers.put(call, payload, Ok(bytes.clone()), expires);
                Ok(bytes)
            }
            Err((CapabilityError::Verify(error), Some(expires))) => {
                answers.put(call, payload, Err(error.to_string()), expires);
                Err(CapabilityError::Verify(error))
            }
            Err((error, _)) => Err(error),
        }
    }

    fn kms(&self, call: &'static str) -> Result<Arc<KmsResolver>, CapabilityError> {
        self.caps.kms.clone().ok_or(CapabilityError::Failed {
            call,
            message: "this host has no KMS access configured".to_owned(),
        })
    }

    fn verifier(&self, call: &'static str) -> Result<Arc<Verifier>, CapabilityError> {
        self.caps.verifier.clone().ok_or(CapabilityError::NoVerifier(call))
    }

    /// Runs `fut` on the runtime and waits for it, giving up at the evaluation deadline.
    ///
    /// The future runs on a runtime worker rather than on the evaluating thread: registry and
    /// signature futures are large, and the evaluating thread is deep inside wasm frames. Waiting
    /// on a channel (not `block_on`) also keeps this safe to call from any thread.
    fn run<T: Send + 'static>(
        &self,
        call: &'static str,
        fut: impl Future<Output = Result<T, CapabilityError>> + Send + 'static,
    ) -> Result<T, CapabilityError> {
        let started = Instant::now();
        let remaining = match self.deadline {
            Some(deadline) => deadline.saturating_duration_since(started),
            None => UNBOUNDED_WAIT,
        };
        if remaining.is_zero() {
            return Err(CapabilityError::Deadline {
                call,
                waited: Duration::ZERO,
            });
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // A verification waiting for the process-wide download pool stops waiting a little
        // before this call's deadline, so that the pool's transient refusal (kept in no cache,
        // naming `--max-inflight-download-bytes`) reaches the policy rather than the deadline;
        // without a deadline, after the pool's own default wait.
        let pool_wait = match self.deadline {
            Some(_) => remaining.saturating_sub(POOL_DEADLINE_MARGIN),
            None => crate::registry::DEFAULT_POOL_WAIT,
        };
        let pool_deadline = started + pool_wait;
        let task = self.caps.handle.spawn(async move {
            let answer = crate::registry::with_pool_deadline(pool_deadline, fut).await;
            // The receiver may be gone after a deadline; nothing is waiting for the answer then.
            let _ = tx.send(answer);
        });
        match rx.recv_timeout(remaining) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                task.abort();
                Err(CapabilityError::Deadline {
                    call,
                    waited: started.elapsed(),
                })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(CapabilityError::Failed {
                call,
                message: "the host task ended without an answer (runtime shutting down?)".to_owned(),
            }),
        }
    }
}

/// How long before a host call's deadline a verification stops waiting for the download pool.
const POOL_DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Upper bound of a host call made outside an evaluation deadline.
const UNBOUNDED_WAIT: Duration = Duration::from_secs(300);

/// `UnknownOperation` with only the operation filled; `dispatch` adds binding and namespace.
fn unknown_operation(operation: &str) -> CapabilityError {
    CapabilityError::UnknownOperation {
        binding: String::new(),
        namespace: String::new(),
        operation: operation.to_owned(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(call: &'static str, payload: &[u8]) -> Result<T, CapabilityError> {
    serde_json::from_slice(payload).map_err(|source| CapabilityError::Payload { call, source })
}

fn answer<T: serde::Serialize>(call: &'static str, value: &T) -> Result<Vec<u8>, CapabilityError> {
    serde_json::to_vec(value).map_err(|e| CapabilityError::Failed {
        call,
        message: format!("cannot serialise the answer: {e}"),
    })
}
