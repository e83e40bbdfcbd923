//! Warm instances kept per thread for reuse.
//!
//! waPC instances are not `Send`, so each thread keeps its own small pool per evaluator. An
//! instance goes back to the pool only after a call that returned normally; a trap, timeout or
//! guest error discards it. Entries of dropped evaluators are purged on the next checkout on
//! that thread (or when the thread exits).

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use super::evaluator::Shared;
use super::instance::Instance;

struct Entry {
    owner: Weak<Shared>,
    instances: Vec<Instance>,
}

thread_local! {
    static POOL: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

fn owned_by(entry: &Entry, shared: &Arc<Shared>) -> bool {
    std::ptr::eq(entry.owner.as_ptr(), Arc::as_ptr(shared))
}

/// Takes a warm instance of `shared`'s module on this thread, if any.
pub(crate) fn checkout(shared: &Arc<Shared>) -> Option<Instance> {
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.retain(|entry| entry.owner.strong_count() > 0);
        pool.iter_mut()
            .find(|entry| owned_by(entry, shared))
            .and_then(|entry| entry.instances.pop())
    })
    .ok()
    .flatten()
}

/// Returns a healthy instance to this thread's pool, dropping it when the pool is full.
pub(crate) fn checkin(shared: &Arc<Shared>, instance: Instance, capacity: usize) {
    // If the thread is being torn down the instance is simply dropped.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        match pool.iter_mut().find(|entry| owned_by(entry, shared)) {
            Some(entry) if entry.instances.len() < capacity => entry.instances.push(instance),
            Some(_) => {}
            None if capacity > 0 => pool.push(Entry {
                owner: Arc::downgrade(shared),
                instances: vec![instance],
            }),
            None => {}
        }
    });
}
