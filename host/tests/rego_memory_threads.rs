//! The Rego memory limit compares the process's allocated bytes, which regorus' allocator counts
//! per thread and publishes every 1 MiB of change, with `--rego-memory-limit`. Found by a
//! review: host-call answers are made on a runtime worker and freed on a blocking thread, and
//! blocking threads end after being idle; each ended with up to 1 MiB of frees unpublished, so
//! the total only grew (174 MiB in 200 rounds while nothing was held), until every Rego
//! evaluation would be refused. `cip`'s runtimes publish each thread's count when it stops.
//!
//! Its own test binary: it sets the process-wide limit.

use std::time::Duration;

/// The process's allocated bytes as regorus counts them: the limit set to one byte, the refusal
/// says how many are held (the limit is then taken away again).
fn counted() -> u64 {
    regorus::set_global_memory_limit(Some(1));
    let usage = match regorus::check_global_memory_limit() {
        Err(regorus::LimitError::MemoryLimitExceeded { usage, .. }) => usage,
        other => panic!("a limit of one byte was not exceeded: {other:?}"),
    };
    regorus::set_global_memory_limit(None);
    usage
}

#[test]
fn blocking_threads_that_end_leave_no_bytes_counted() {
    const ROUNDS: usize = 200;
    const ANSWER: usize = 900 * 1024;
    let runtime = cip::async_runtime::multi_thread(2)
        .thread_keep_alive(Duration::from_millis(1))
        .build()
        .expect("runtime");
    let before = counted();
    runtime.block_on(async {
        for _ in 0..ROUNDS {
            // An answer made on a worker (under the 1 MiB at which a thread publishes), freed on
            // a blocking thread, which then ends.
            let answer = tokio::spawn(async { vec![1u8; ANSWER] }).await.expect("worker");
            tokio::task::spawn_blocking(move || drop(answer))
                .await
                .expect("blocking");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    drop(runtime);
    cip::capabilities::flush_rego_memory_counters();
    let after = counted();
    let grown = after.saturating_sub(before);
    assert!(
        grown < 8 * 1024 * 1024,
        "{grown} bytes counted after {ROUNDS} rounds that hold nothing ({before} before, {after} after)"
    );
}
