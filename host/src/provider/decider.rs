//! What the provider asks for each key: a decision about one image in one namespace.

use std::time::Instant;

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
}
