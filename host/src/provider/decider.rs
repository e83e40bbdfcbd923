//! What the provider asks for each key: a decision about one image in one namespace.

use std::time::{Instant, SystemTime};

use super::protocol::{Decision, ImageKey};
use crate::verify::CacheStats;

/// Decides about images. Implemented by the policy runtime (the module's `verify_images`
/// export); tests use small deciders of their own.
///
/// `decide` is synchronous and may block (CPU-bound wasm and blocking host calls): the provider
/// runs it on tokio's blocking pool, many keys at once, so implementations must be thread-safe.
pub trait Decider: Send + Sync + 'static {
    /// Decides about one key. An `Err` becomes that key's `error` in the response.
    fn decide(&self, key: &ImageKey) -> Result<Decision, String>;

    /// Decides about one key, giving up at `deadline` (the request's): the provider calls this
    /// one. Deciders that can stop work in progress (the policy runtime) override it; the
    /// default ignores the deadline.
    fn decide_by(&self, key: &ImageKey, deadline: Instant) -> Result<Decision, String> {
        let _ = deadline;
        self.decide(key)
    }

    /// Signature-verification cache counters, exported on `/metrics`; `None` if not cached.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }

    /// The verifier's process-wide download pool (`--max-inflight-download-bytes`), exported on
    /// `/metrics`; `None` for deciders that download nothing.
    fn download_pool_stats(&self) -> Option<DownloadPoolStats> {
        None
    }

    /// The settings served and how their reloads went, exported on `/metrics`; `None` for
    /// deciders without reloadable settings.
    fn settings_status(&self) -> Option<SettingsStatus> {
        None
    }

    /// A decider that decides every key of one request with the settings served when it is
    /// taken, whatever reloads happen meanwhile: the provider takes one per request (a
    /// `/validate` batch, a `/mutate` request) and asks it about all the request's keys. `None`
    /// (the default) for deciders whose settings never change: the decider itself is used.
    fn snapshot(&self) -> Option<std::sync::Arc<dyn Decider>> {
        None
    }

    /// The names of the policies served whose `match` reads the object's labels (a `selector`):
    /// `/mutate`, which Gatekeeper sends no labels, cannot tell whether they apply
    /// ([`super::mutation::label_scoped_policies`]). Empty for deciders without such policies.
    fn label_scoped_policies(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The bytes the verifications in flight hold in the process-wide download pool
/// ([`crate::registry::DownloadPool`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadPoolStats {
    /// The pool's size, `--max-inflight-download-bytes`.
    pub limit: u64,
    /// Bytes held now.
    pub in_use: u64,
    /// The most bytes held at once since start-up.
    pub high_water: u64,
    /// Verifications refused because the pool was full (transient failures).
    pub refusals: u64,
    /// Charges that had to wait for bytes others held (admitted in the end, or refused).
    pub waits: u64,
}

/// The settings a decider serves, and the outcome of the attempts to replace them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsStatus {
    /// SHA-256 (hex) of the settings served.
    pub digest: String,
    /// When the settings served were accepted (start-up or the last successful reload).
    pub applied_at: SystemTime,
    /// Settings changes applied since start-up.
    pub reloads: u64,
    /// Changed settings files that could not be used (unreadable, not YAML, refused by the
    /// module): the previous settings stayed served.
    pub reload_failures: u64,
    /// Why the current settings file is not served, while it is not: `None` once the file's
    /// settings are served.
    pub failing: Option<String>,
}
