//! A bounded, time-limited cache that coalesces concurrent look-ups of the same key.
//!
//! The first caller of a key computes the value; callers arriving while it runs wait for that
//! very computation instead of starting their own. A finished value is served until its time to
//! live, chosen per value (successes and failures live differently), runs out, and every answer
//! carries the instant its entry expires, so that memos built on top of this cache (the answer
//! memo of [`crate::capabilities`]) never outlive it. At most `max_entries` values are kept
//! (least recently used ones are evicted first): a stream of distinct images cannot grow the
//! process without bound. A cache of large values ([`TtlCache::with_byte_budget`]) also keeps
//! their estimated sizes under a byte budget, with moka's own weigher: a value heavier than the
//! whole budget is answered but not kept.

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
        Self::built(Cache::builder().max_capacity(max_entries))
    }

    /// An empty cache keeping at most `max_entries` values whose sizes, as `weigh` estimates
    /// them in bytes, add up to at most `max_bytes`; a value weighing more than `max_bytes` on
    /// its own is answered to its callers but not kept.
    ///
    /// Both bounds are moka's single weight bound (`max_capacity` as total weight): each entry
    /// weighs its estimated size but at least `max_bytes / max_entries` (rounded up), so that
    /// entries fitting in the budget are also at most `max_entries`. The budget is cut to
    /// `max_entries × u32::MAX` (moka weighs entries in `u32`), and a weight to `u32::MAX`.
    /// moka applies the bound in its housekeeping, soon after an insert
    /// ([`TtlCache::weighted_size`] runs it first); an expired entry weighs until it is removed.
    pub fn with_byte_budget(
        max_entries: u64,
        max_bytes: u64,
        weigh: impl Fn(&V) -> u64 + Send + Sync + 'static,
    ) -> Self {
        let max_entries = max_entries.max(1);
        let budget = max_bytes.max(1).min(max_entries.saturating_mul(u64::from(u32::MAX)));
        let floor = budget.div_ceil(max_entries);
        let weigher = move |_: &K, entry: &Expiring<V>| -> u32 {
            u32::try_from(weigh(&entry.value).max(floor)).unwrap_or(u32::MAX)
        };
        Self::built(Cache::builder().max_capacity(budget).weigher(weigher))
    }

    fn built(builder: moka::future::CacheBuilder<K, Expiring<V>, Cache<K, Expiring<V>>>) -> Self {
        Self {
            entries: builder.expire_after(AtStoredInstant).build(),
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

    /// Total weight of the values held now, after moka's pending evictions: their count for a
    /// cache built by [`TtlCache::new`], their estimated bytes (each at least the budget over
    /// the entry bound) for one built by [`TtlCache::with_byte_budget`].
    pub async fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
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

    /// A cache of byte strings weighed by their length.
    fn weighed(max_entries: u64, max_bytes: u64) -> TtlCache<u32, Vec<u8>> {
        TtlCache::with_byte_budget(max_entries, max_bytes, |v: &Vec<u8>| v.len() as u64)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_byte_budget_is_respected() {
        let cache = weighed(1_000, 10_000);
        for key in 0..50 {
            let value = cache.get_or_compute(key, async { vec![0; 1_000] }, |_| MINUTE).await;
            assert_eq!(value.value.len(), 1_000);
        }
        let weight = cache.weighted_size().await;
        assert!(weight <= 10_000, "{weight} bytes kept");
        assert!(
            cache.entry_count().await <= 10,
            "{} entries kept",
            cache.entry_count().await
        );
        assert!(cache.entry_count().await > 0, "entries within the budget are kept");
    }

    #[tokio::test]
    async fn a_value_over_the_budget_is_answered_but_not_kept() {
        let cache = weighed(1_000, 10_000);
        let runs = AtomicUsize::new(0);
        let compute = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            vec![1; 10_001]
        };
        for _ in 0..2 {
            assert_eq!(cache.get_or_compute(1, compute(), |_| MINUTE).await.value.len(), 10_001);
            cache.weighted_size().await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the heavy value was not kept");
        assert_eq!((cache.entry_count().await, cache.weighted_size().await), (0, 0));
        cache.get_or_compute(2, async { vec![2; 10] }, |_| MINUTE).await;
        assert_eq!(cache.entry_count().await, 1, "a light value is kept");
    }

    #[tokio::test]
    async fn a_byte_budget_still_bounds_the_number_of_entries() {
        let cache = weighed(50, 1 << 30);
        for key in 0..500 {
            cache.get_or_compute(key, async { vec![0; 1] }, |_| MINUTE).await;
        }
        let count = cache.entry_count().await;
        assert!((1..=50).contains(&count), "{count} entries kept");
        assert!(cache.weighted_size().await <= 1 << 30);
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
