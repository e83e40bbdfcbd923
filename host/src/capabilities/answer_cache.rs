//! A synchronous memo of verification answers and `oci/v1/*` registry answers (as the bytes the
//! guest receives), so a warm evaluation answers repeated look-ups without leaving the
//! evaluating thread (the verifier's own cache is async and costs a hop to the runtime).
//!
//! One expiry per answer: an answer is kept exactly until the verifier's cache entry it came
//! from expires (the verifier hands that instant over with the answer), never a fresh TTL on
//! top of it, so a moved tag is not answered with its old digest once the verifier forgot it.
//! Only answers and verification failures are memoised, never deadline or runtime problems.
//! The memo is bounded in entries (`--cache-max-entries`) and in bytes (`--cache-max-bytes`:
//! `oci/v1/*` answers are manifests and configs of up to 1 MiB each, so a registry serving many
//! distinct images could otherwise fill it with gigabytes); moka evicts by its own policy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

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

/// An answer and the instant it must be forgotten.
#[derive(Clone)]
struct Memo {
    answer: Answer,
    expires: Instant,
}

struct AtStoredInstant;

impl Expiry<Key, Memo> for AtStoredInstant {
    fn expire_after_create(&self, _key: &Key, memo: &Memo, created_at: Instant) -> Option<Duration> {
        Some(memo.expires.saturating_duration_since(created_at))
    }
}

pub(super) struct AnswerCache {
    entries: Cache<Key, Memo, foldhash::quality::RandomState>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What one memo costs besides its key's and answer's bytes (the key's `&'static str`, the
/// `Vec` and `Result` headers, the instant, moka's entry), roughly.
const MEMO_OVERHEAD: u64 = 128;

impl AnswerCache {
    /// A memo of at most `max_entries` answers and about `max_bytes` bytes: each memo weighs its
    /// payload, its answer and [`MEMO_OVERHEAD`], but at least `max_bytes / max_entries`, so
    /// that moka's one capacity bounds both. A memo weighing more than the whole budget is not
    /// kept (the answer is returned all the same).
    pub(super) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        // moka weighs in u32.
        let budget = max_bytes.max(1).min(max_entries.saturating_mul(u64::from(u32::MAX)));
        let floor = budget.div_ceil(max_entries);
        let weigher = move |(_, payload): &Key, memo: &Memo| -> u32 {
            let answer = match &memo.answer {
                Ok(bytes) => bytes.len(),
                Err(text) => text.len(),
            };
            let weight = (payload.len() as u64)
                .saturating_add(answer as u64)
                .saturating_add(MEMO_OVERHEAD)
                .max(floor);
            u32::try_from(weight).unwrap_or(u32::MAX)
        };
        Self {
            entries: Cache::builder()
                .max_capacity(budget)
                .weigher(weigher)
                .expire_after(AtStoredInstant)
                // Keys are request payloads of hundreds of bytes, hashed on every look-up of a
                // warm evaluation: SipHash (the default) was ≈ 2 % of one (docs/benchmarks.md,
                // ninth pass). foldhash's quality hasher is seeded per process, as SipHash's
                // `RandomState` is.
                .build_with_hasher(foldhash::quality::RandomState::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(super) fn get(&self, call: &'static str, payload: &[u8]) -> Option<Answer> {
        let now = Instant::now();
        let found = self
            .entries
            .get(&(call, payload.to_vec()))
            // The cache's own clock check is coarse-grained; the stored instant is the rule.
            .filter(|memo| memo.expires > now)
            .map(|memo| memo.answer);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers `answer` until `expires` (the verifier entry's expiry); nothing when that
    /// instant has passed already.
    pub(super) fn put(&self, call: &'static str, payload: &[u8], answer: Answer, expires: Instant) {
        if expires <= Instant::now() {
            return;
        }
        self.entries.insert((call, payload.to_vec()), Memo { answer, expires });
    }

    pub(super) fn stats(&self) -> AnswerCacheStats {
        AnswerCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_ms(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn answers_are_kept_until_the_instant_given() {
        let cache = AnswerCache::new(100, 1 << 20);
        assert_eq!(cache.get("c", b"p"), None);
        cache.put("c", b"p", Ok(b"yes".to_vec()), in_ms(60_000));
        cache.put("c", b"q", Err("no".to_owned()), Instant::now());
        assert_eq!(cache.get("c", b"p"), Some(Ok(b"yes".to_vec())));
        assert_eq!(cache.get("c", b"q"), None, "an answer already expired is not kept");
        assert_eq!(cache.get("other", b"p"), None, "the operation is part of the key");
        assert_eq!(cache.stats(), AnswerCacheStats { hits: 1, misses: 3 });
    }

    #[test]
    fn an_answer_is_forgotten_at_its_expiry() {
        let cache = AnswerCache::new(100, 1 << 20);
        cache.put("c", b"p", Err("no signature".to_owned()), in_ms(30));
        assert_eq!(cache.get("c", b"p"), Some(Err("no signature".to_owned())));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("c", b"p"), None);
    }

    #[test]
    fn the_number_of_answers_is_bounded() {
        let cache = AnswerCache::new(20, 1 << 20);
        for i in 0..200u32 {
            cache.put("c", &i.to_be_bytes(), Ok(Vec::new()), in_ms(60_000));
        }
        assert!(cache.len() <= 20, "{} answers kept", cache.len());
    }

    #[test]
    fn the_bytes_of_answers_are_bounded() {
        // 100 answers of 10 KB into 50 KB: at most 5 kept, whatever the count allows.
        let cache = AnswerCache::new(1_000, 50_000);
        for i in 0..100u32 {
            cache.put("c", &i.to_be_bytes(), Ok(vec![b'x'; 10_000]), in_ms(60_000));
        }
        assert!(cache.len() <= 5, "{} answers of 10 KB kept", cache.len());
        assert!(cache.len() >= 1, "small enough answers are kept");
        // One answer larger than the whole budget is not kept (once moka's pending work, which
        // `len` runs, has been done).
        let cache = AnswerCache::new(1_000, 50_000);
        cache.put("c", b"big", Ok(vec![b'x'; 60_000]), in_ms(60_000));
        assert_eq!(cache.len(), 0);
        assert!(cache.get("c", b"big").is_none());
    }
}
