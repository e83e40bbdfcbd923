//! A synchronous memo of verification answers, so a warm evaluation answers repeated look-ups
//! without leaving the evaluating thread (the verifier's own cache is async and costs a hop to
//! the runtime). Same TTLs as the verifier: successes for `success_ttl`, failures (verification
//! errors only, never deadline or transport-to-runtime problems) for `failure_ttl`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most answers kept; beyond it expired ones are dropped, then everything if still full.
const CAPACITY: usize = 10_000;

/// Hits and misses of the answer memo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCacheStats {
    /// Look-ups answered from the memo.
    pub hits: u64,
    /// Look-ups that went to the verifier.
    pub misses: u64,
}

/// An answer as the guest receives it: the JSON bytes or the host error text.
pub(super) type Answer = Result<Vec<u8>, String>;

/// An operation (`binding/namespace/operation`) and its payload.
type Key = (&'static str, Vec<u8>);

pub(super) struct AnswerCache {
    success_ttl: Duration,
    failure_ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, Answer)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl AnswerCache {
    pub(super) fn new(success_ttl: Duration, failure_ttl: Duration) -> Self {
        Self {
            success_ttl,
            failure_ttl,
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(super) fn get(&self, call: &'static str, payload: &[u8]) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries
            .get(&(call, payload.to_vec()))
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, answer)| answer.clone());
        drop(entries);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(super) fn put(&self, call: &'static str, payload: &[u8], answer: Answer) {
        let ttl = if answer.is_ok() {
            self.success_ttl
        } else {
            self.failure_ttl
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert((call, payload.to_vec()), (now + ttl, answer));
    }

    pub(super) fn stats(&self) -> AnswerCacheStats {
        AnswerCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_with_their_ttl() {
        let cache = AnswerCache::new(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(cache.get("c", b"p"), None);
        cache.put("c", b"p", Ok(b"yes".to_vec()));
        cache.put("c", b"q", Err("no".to_owned()));
        assert_eq!(cache.get("c", b"p"), Some(Ok(b"yes".to_vec())));
        assert_eq!(cache.get("c", b"q"), None, "a zero failure TTL caches no failure");
        assert_eq!(cache.get("other", b"p"), None, "the operation is part of the key");
        assert_eq!(cache.stats(), AnswerCacheStats { hits: 1, misses: 3 });
    }

    #[test]
    fn failures_are_kept_for_the_failure_ttl() {
        let cache = AnswerCache::new(Duration::from_secs(60), Duration::from_millis(20));
        cache.put("c", b"p", Err("no signature".to_owned()));
        assert_eq!(cache.get("c", b"p"), Some(Err("no signature".to_owned())));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get("c", b"p"), None);
    }
}
