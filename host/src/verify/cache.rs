//! A bounded, time-limited cache that coalesces concurrent look-ups of the same key.
//!
//! The first caller of a key computes the value; callers arriving while it runs wait for that
//! very computation instead of starting their own. A finished value is served until its time to
//! live, chosen per value (successes and failures live differently), runs out, and every answer
//! carries the instant its entry expires, so that memos built on top of this cache (the answer
//! memo of [`crate::capabilities`]) never outlive it. At most `max_entries` values are kept
//! (least recently used ones are evicted first): a stream of distinct images cannot grow the
//! process without bound.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

/// Longest time to live honoured; longer ones (a huge `--cache-success-ttl`) are cut to this, so
/// that no expiry instant can overflow.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A value and the instant its cache entry expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiring<V> {
    /// The cached value.
    pub value: V,
    /// When the entry holding it expires; nothing derived from it should be kept longer.
    pub expires: Instant,
}

/// `now + ttl`, with `ttl` cut to [`MAX_TTL`]; never panics.
pub fn expiry_after(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl.min(MAX_TTL)).unwrap_or(now)
}

/// Expires each entry at the instant stored in it.
struct AtStoredInstant;

impl<K, V> Expiry<K, Expiring<V>> for AtStoredInstant {
    fn expire_after_create(&self, _key: &K, value: &Expiring<V>, created_at: Instant) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(created_at))
    }
}

/// Coalescing cache with per-value time to live, a size bound and hit/miss counters.
pub struct TtlCache<K, V> {
    entries: Cache<K, Expiring<V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K, V> TtlCache<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache keeping at most `max_entries` values.
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(AtStoredInstant)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached value of `key`, or the one `compute` produces, kept for `ttl(&value)`; with
    /// the instant its entry expires. Look-ups that join a computation in flight count as hits.
    pub async fn get_or_compute<F>(&self, key: K, compute: F, ttl: impl Fn(&V) -> Duration) -> Expiring<V>
    where
        F: Future<Output = V>,
    {
        let entry = self
            .entries
            .entry(key)
            .or_insert_with(async {
                let value = compute.await;
                let expires = expiry_after(Instant::now(), ttl(&value));
                Expiring { value, expires }
            })
            .await;
        let counter = if entry.is_fresh() { &self.misses } else { &self.hits };
        counter.fetch_add(1, Ordering::Relaxed);
        entry.into_value()
    }

    /// Look-ups answered without computing.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Look-ups that computed their value.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Values held now (approximate: evictions are applied lazily).
    pub async fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn second_lookup_is_a_hit_until_the_value_expires() {
        let cache: TtlCache<&str, u32> = TtlCache::new(100);
        let runs = AtomicUsize::new(0);
        let compute = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            7
        };
        let ttl = |_: &u32| Duration::from_millis(200);
        let first = cache.get_or_compute("k", compute(), ttl).await;
        let second = cache.get_or_compute("k", compute(), ttl).await;
        assert_eq!((first.value, second.value), (7, 7));
        assert_eq!(first.expires, second.expires, "a hit carries its entry's expiry");
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let third = cache.get_or_compute("k", compute(), ttl).await;
        assert!(third.expires > first.expires);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!((cache.hits(), cache.misses()), (1, 2));
    }

    #[tokio::test]
    async fn ttl_depends_on_the_value() {
        let cache: TtlCache<u8, Result<u8, u8>> = TtlCache::new(100);
        let ttl = |v: &Result<u8, u8>| {
            if v.is_ok() {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            }
        };
        assert_eq!(cache.get_or_compute(1, async { Err(1) }, ttl).await.value, Err(1));
        assert_eq!(cache.get_or_compute(1, async { Ok(2) }, ttl).await.value, Ok(2));
        assert_eq!(cache.get_or_compute(1, async { Ok(3) }, ttl).await.value, Ok(2));
    }

    #[tokio::test]
    async fn huge_ttls_do_not_overflow() {
        let cache: TtlCache<u8, u8> = TtlCache::new(100);
        let answer = cache.get_or_compute(1, async { 1 }, |_| Duration::MAX).await;
        assert!(answer.expires > Instant::now() + Duration::from_secs(3600));
        assert_eq!(cache.get_or_compute(1, async { 2 }, |_| Duration::MAX).await.value, 1);
    }

    #[tokio::test]
    async fn the_number_of_entries_is_bounded() {
        let cache: TtlCache<u32, u32> = TtlCache::new(50);
        for key in 0..500 {
            cache
                .get_or_compute(key, async move { key }, |_| Duration::from_secs(60))
                .await;
        }
        assert!(
            cache.entry_count().await <= 50,
            "{} entries kept",
            cache.entry_count().await
        );
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_computation() {
        let cache: Arc<TtlCache<u8, u8>> = Arc::new(TtlCache::new(100));
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let runs = Arc::clone(&runs);
                tokio::spawn(async move {
                    cache
                        .get_or_compute(
                            1,
                            async {
                                runs.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                9
                            },
                            |_| Duration::from_secs(1),
                        )
                        .await
                        .value
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task"), 9);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!((cache.hits(), cache.misses()), (7, 1));
    }
}
