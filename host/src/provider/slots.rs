//! Evaluation slots shared between namespaces: at most `total` evaluations run at once, and at
//! most `per_namespace` of them (running or queued for a shared slot) for any one namespace.
//!
//! Without the second bound, the Pods of one namespace with many images on a slow registry take
//! every slot, and the keys of every other namespace wait in line behind them until the request
//! deadline fails them. With it, one namespace holds at most `per_namespace` slots and has at most
//! that many keys in the shared queue, so another namespace's key waits behind at most
//! `per_namespace` keys of each busy namespace. The queues are tokio's semaphores (first come,
//! first served); a namespace's semaphore lives only while one of its keys holds or waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// The slots, shared by every request.
#[derive(Debug)]
pub struct EvaluationSlots {
    shared: Arc<Semaphore>,
    per_namespace: usize,
    namespaces: Arc<Mutex<HashMap<Box<str>, Tenant>>>,
}

/// A namespace's own semaphore and how many keys hold or wait for it.
#[derive(Debug)]
struct Tenant {
    semaphore: Arc<Semaphore>,
    users: usize,
}

/// A running evaluation's slot; dropping it frees the slot for the next key in line.
#[derive(Debug)]
pub struct Slot {
    // Fields drop in this order: both permits before the tenant's use is counted out.
    _shared: OwnedSemaphorePermit,
    _own: OwnedSemaphorePermit,
    _tenant: TenantUse,
}

/// One key's use of its namespace's semaphore: counted in when made, out when dropped, and the
/// namespace forgotten when no key uses it any longer (whether it ran or its wait was dropped).
#[derive(Debug)]
struct TenantUse {
    semaphore: Arc<Semaphore>,
    namespace: Box<str>,
    namespaces: Arc<Mutex<HashMap<Box<str>, Tenant>>>,
}

impl EvaluationSlots {
    /// `total` slots, at most `per_namespace` for one namespace; both clamped to at least 1,
    /// `per_namespace` to at most `total`.
    pub fn new(total: usize, per_namespace: usize) -> Self {
        let total = total.max(1);
        Self {
            shared: Arc::new(Semaphore::new(total)),
            per_namespace: per_namespace.clamp(1, total),
            namespaces: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Waits for a slot for a key of `namespace`: first one of the namespace's own, then a shared
    /// one. Dropping the future gives up the wait (and any slot of the namespace already held).
    pub async fn acquire(&self, namespace: &str) -> Result<Slot, AcquireError> {
        let tenant = TenantUse::enter(&self.namespaces, namespace, self.per_namespace);
        let own = Arc::clone(&tenant.semaphore).acquire_owned().await?;
        let shared = Arc::clone(&self.shared).acquire_owned().await?;
        Ok(Slot {
            _shared: shared,
            _own: own,
            _tenant: tenant,
        })
    }

    /// Namespaces with a key holding or waiting for a slot.
    #[cfg(test)]
    fn namespaces_in_use(&self) -> usize {
        self.namespaces.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl TenantUse {
    fn enter(namespaces: &Arc<Mutex<HashMap<Box<str>, Tenant>>>, namespace: &str, per_namespace: usize) -> Self {
        let mut map = namespaces.lock().unwrap_or_else(PoisonError::into_inner);
        let tenant = map.entry(namespace.into()).or_insert_with(|| Tenant {
            semaphore: Arc::new(Semaphore::new(per_namespace)),
            users: 0,
        });
        tenant.users += 1;
        Self {
            semaphore: Arc::clone(&tenant.semaphore),
            namespace: namespace.into(),
            namespaces: Arc::clone(namespaces),
        }
    }
}

impl Drop for TenantUse {
    fn drop(&mut self) {
        let mut map = self.namespaces.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tenant) = map.get_mut(&self.namespace) {
            tenant.users = tenant.users.saturating_sub(1);
            if tenant.users == 0 {
                map.remove(&self.namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EvaluationSlots;
    use std::time::Duration;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn one_namespace_never_holds_more_than_its_share() {
        let slots = EvaluationSlots::new(4, 2);
        let a1 = slots.acquire("a").await.expect("slot");
        let _a2 = slots.acquire("a").await.expect("slot");
        assert!(
            tokio::time::timeout(SHORT, slots.acquire("a")).await.is_err(),
            "a third slot for namespace a"
        );
        // Two shared slots are still free for others.
        let _b1 = slots.acquire("b").await.expect("slot");
        let _c1 = slots.acquire("c").await.expect("slot");
        assert!(
            tokio::time::timeout(SHORT, slots.acquire("d")).await.is_err(),
            "a fifth slot"
        );
        drop(a1);
        let _a3 = tokio::time::timeout(SHORT, slots.acquire("a"))
            .await
            .expect("a's freed slot serves a")
            .expect("slot");
    }

    #[tokio::test]
    async fn a_busy_namespace_queues_at_most_its_share_ahead_of_others() {
        let slots = std::sync::Arc::new(EvaluationSlots::new(2, 1));
        let a = slots.acquire("a").await.expect("slot");
        let b = slots.acquire("b").await.expect("slot");
        // Many keys of a wait; only one of them can be in the shared queue.
        let mut waiting = Vec::new();
        for _ in 0..10 {
            let slots = std::sync::Arc::clone(&slots);
            waiting.push(tokio::spawn(async move { slots.acquire("a").await.map(drop) }));
        }
        tokio::time::sleep(SHORT).await;
        let slots_c = std::sync::Arc::clone(&slots);
        let c = tokio::spawn(async move { slots_c.acquire("c").await.map(|_slot| ()) });
        tokio::time::sleep(SHORT).await;
        drop(b);
        // b's shared slot goes to c (a's keys wait for a's own slot, still held).
        tokio::time::timeout(SHORT * 4, c)
            .await
            .expect("c served before a's queue")
            .expect("task")
            .expect("slot");
        drop(a);
        for task in waiting {
            tokio::time::timeout(SHORT * 10, task)
                .await
                .expect("a's keys served in turn")
                .expect("task")
                .expect("slot");
        }
    }

    #[tokio::test]
    async fn namespaces_are_forgotten_when_unused_even_after_abandoned_waits() {
        let slots = EvaluationSlots::new(1, 1);
        let held = slots.acquire("a").await.expect("slot");
        for i in 0..100 {
            // Each wait is dropped before it gets a slot.
            assert!(
                tokio::time::timeout(Duration::from_millis(1), slots.acquire(&format!("n{i}")))
                    .await
                    .is_err()
            );
        }
        assert_eq!(slots.namespaces_in_use(), 1);
        drop(held);
        assert_eq!(slots.namespaces_in_use(), 0);
        let _again = slots.acquire("a").await.expect("slot");
        assert_eq!(slots.namespaces_in_use(), 1);
    }

    #[test]
    fn shares_are_clamped() {
        let slots = EvaluationSlots::new(0, 0);
        assert_eq!((slots.shared.available_permits(), slots.per_namespace), (1, 1));
        let slots = EvaluationSlots::new(4, 9);
        assert_eq!(slots.per_namespace, 4);
    }
}
