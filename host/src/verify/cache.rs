//! A time-bounded cache that coalesces concurrent look-ups of the same key.
//!
//! The first caller of a key computes the value; callers arriving while it runs wait for that
//! very computation instead of starting their own. A finished value is served until its time to
//! live, chosen per value (successes and failures live differently), runs out.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// Entries beyond which expired ones are swept on insertion.
const SWEEP_THRESHOLD: usize = 1024;

struct Stored<V> {
    value: V,
    expires: Instant,
}

type Slot<V> = Arc<OnceCell<Stored<V>>>;

/// Coalescing cache with per-value time to live and hit/miss counters.
pub struct TtlCache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached value of `key`, or the one `compute` produces, kept for `ttl(&value)`.
    /// Look-ups that join a computation in flight count as hits.
    pub async fn get_or_compute<F>(&self, key: K, compute: F, ttl: impl Fn(&V) -> Duration) -> V
    where
        F: Future<Output = V>,
    {
        let slot = self.slot(key);
        let mut computed = false;
        let stored = slot
            .get_or_init(|| async {
                computed = true;
                let value = compute.await;
                let expires = Instant::now() + ttl(&value);
                Stored { value, expires }
            })
            .await;
        let counter = if computed { &self.misses } else { &self.hits };
        counter.fetch_add(1, Ordering::Relaxed);
        stored.value.clone()
    }

    /// The live slot of `key`, replacing an expired one.
    fn slot(&self, key: K) -> Slot<V> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let live = |slot: &Slot<V>| slot.get().is_none_or(|stored| stored.expires > now);
        if let Some(slot) = slots.get(&key).filter(|slot| live(slot)) {
            return Arc::clone(slot);
        }
        if slots.len() >= SWEEP_THRESHOLD {
            slots.retain(|_, slot| live(slot));
        }
        let slot: Slot<V> = Arc::new(OnceCell::new());
        slots.insert(key, Arc::clone(&slot));
        slot
    }

    /// Look-ups answered without computing.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Look-ups that computed their value.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn second_lookup_is_a_hit_until_the_value_expires() {
        let cache: TtlCache<&str, u32> = TtlCache::new();
        let runs = AtomicUsize::new(0);
        let compute = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            7
        };
        let ttl = |_: &u32| Duration::from_millis(200);
        assert_eq!(cache.get_or_compute("k", compute(), ttl).await, 7);
        assert_eq!(cache.get_or_compute("k", compute(), ttl).await, 7);
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        tokio::time::sleep(Duration::from_millis(250)).await;
        cache.get_or_compute("k", compute(), ttl).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!((cache.hits(), cache.misses()), (1, 2));
    }

    #[tokio::test]
    async fn ttl_depends_on_the_value() {
        let cache: TtlCache<u8, Result<u8, u8>> = TtlCache::new();
        let ttl = |v: &Result<u8, u8>| {
            if v.is_ok() {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            }
        };
        assert_eq!(cache.get_or_compute(1, async { Err(1) }, ttl).await, Err(1));
        assert_eq!(cache.get_or_compute(1, async { Ok(2) }, ttl).await, Ok(2));
        assert_eq!(cache.get_or_compute(1, async { Ok(3) }, ttl).await, Ok(2));
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_computation() {
        let cache: Arc<TtlCache<u8, u8>> = Arc::new(TtlCache::new());
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
