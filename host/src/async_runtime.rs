//! The tokio runtimes `cip` builds, configured in one place.
//!
//! Every thread they start (workers and the blocking pool's threads, which end after 10 s idle)
//! publishes its count of allocated bytes to the process total when it stops. The Rego memory
//! limit (`--rego-memory-limit`, [`crate::capabilities::set_rego_memory_limit_mib`]) compares
//! that total, which regorus' allocator keeps per thread and publishes every 1 MiB of change,
//! with the limit; a thread ending with its change unpublished would leave it in the total for
//! good. Host-call answers are made on a worker and freed on the evaluating (blocking) thread,
//! so without the flush the total only grew, until every Rego evaluation was refused. Library
//! users running `cip` on a runtime of their own must do the same
//! (`on_thread_stop(cip::capabilities::flush_rego_memory_counters)`).

use tokio::runtime::Builder;

use crate::capabilities::flush_rego_memory_counters;

/// Stack size of every thread: registry and sigstore futures are large, and debug builds need
/// more than tokio's 2 MiB.
const THREAD_STACK: usize = 16 * 1024 * 1024;

/// A multi-threaded runtime of `workers` worker threads, every I/O and time driver on.
pub fn multi_thread(workers: usize) -> Builder {
    let mut builder = Builder::new_multi_thread();
    builder
        .worker_threads(workers)
        .thread_stack_size(THREAD_STACK)
        .on_thread_stop(flush_rego_memory_counters)
        .enable_all();
    builder
}

/// A runtime on the calling thread (its blocking pool's threads flushed when they stop).
pub fn current_thread() -> Builder {
    let mut builder = Builder::new_current_thread();
    builder
        .thread_stack_size(THREAD_STACK)
        .on_thread_stop(flush_rego_memory_counters)
        .enable_all();
    builder
}
