//! The memory bound on Rego evaluations: regorus' `allocator-memory-limits`.
//!
//! What it bounds (regorus 0.14.1, `src/utils/limits/memory.rs` and `regorus-mimalloc`'s
//! `src/limits.rs`): with the feature, regorus makes its mimalloc shim the process's global
//! allocator (`mimalloc::assign_global!()` in its `lib.rs`), which counts the live
//! bytes every thread of the process holds (each thread publishes its count to a process-wide
//! total at every 1 MiB of change). regorus' interpreter, the `Engine::eval_*` path `cip` uses,
//! compares that total with one process-wide limit before every statement and every loop
//! iteration, inside the looping builtins (`graph.reachable_paths`, `walk`, the aggregates…),
//! and when compiling a policy; past the limit the evaluation fails with
//! [`regorus::LimitError::MemoryLimitExceeded`]. The allocator itself never refuses memory: the
//! rest of `cip` is not affected, and a single builtin call is not interrupted (its result is
//! bounded by its operands or by `cip`'s caps, see [`super::bounded`]). regorus' per-execution
//! budgets (`MemoryBudgetConfig`) apply only to its RVM, which `cip` does not use.
//!
//! Because the total is the process's, an evaluation running while another holds the process
//! past the limit fails too (not compliant), until that one is stopped and its memory freed.

use std::sync::atomic::{AtomicU64, Ordering};

const MIB: u64 = 1024 * 1024;

/// The default limit, in MiB: for the provider's pod limit of 512 MiB (`deploy/gatekeeper`),
/// see docs/hardening.md for the arithmetic.
pub const DEFAULT_LIMIT_MIB: u64 = 256;

/// The limit in MiB, as set by [`set_limit_mib`] or [`DEFAULT_LIMIT_MIB`].
static LIMIT_MIB: AtomicU64 = AtomicU64::new(DEFAULT_LIMIT_MIB);

/// Sets the process-wide limit, in MiB, on the memory `cip` may hold while a Rego policy is
/// evaluated (`--rego-memory-limit`). At least 1.
pub fn set_limit_mib(mib: u64) {
    let mib = mib.max(1);
    LIMIT_MIB.store(mib, Ordering::Relaxed);
    regorus::set_global_memory_limit(Some(mib.saturating_mul(MIB)));
}

/// Publishes the calling thread's count of allocated bytes to the process total the limit is
/// compared with. Every thread that allocates must call it before it ends (the runtimes of
/// [`crate::async_runtime`] do it in `on_thread_stop`): regorus' allocator publishes a thread's
/// count every 1 MiB of change only, and what a thread ends without publishing stays in the total
/// for good.
pub fn flush_thread_counters() {
    regorus::flush_thread_memory_counters();
}

/// Applies the limit before regorus compiles or evaluates (the default when none was set).
pub(super) fn apply() {
    if regorus::global_memory_limit().is_none() {
        regorus::set_global_memory_limit(Some(LIMIT_MIB.load(Ordering::Relaxed).saturating_mul(MIB)));
    }
}

/// The message for a regorus error that is the memory limit, found by its type; `None` for
/// any other error.
pub(super) fn exceeded(error: &anyhow::Error) -> Option<String> {
    error
        .chain()
        .find_map(|cause| match cause.downcast_ref::<regorus::LimitError>() {
            Some(regorus::LimitError::MemoryLimitExceeded { usage, limit }) => Some(format!(
                "cip held {} MiB, more than the {} MiB it allows while a Rego policy is evaluated \
             (--rego-memory-limit): the evaluation was stopped",
                usage.div_ceil(MIB),
                limit / MIB
            )),
            _ => None,
        })
}
