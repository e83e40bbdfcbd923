//! The process-wide wasmtime engine and the epoch ticker that enforces evaluation timeouts.
//!
//! Like Kubewarden's policy-server, timeouts use wasmtime's epoch interruption: a background
//! thread increments the engine epoch every [`TICK`], and every call sets a deadline counted in
//! ticks. Sharing one engine lets all modules and evaluators share that single thread.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime_provider::wasmtime;

use super::RuntimeError;

/// Granularity of the timeout: a call is interrupted at most one tick after its deadline.
pub const TICK: Duration = Duration::from_millis(10);

static ENGINE: OnceLock<Result<wasmtime::Engine, String>> = OnceLock::new();

/// The shared engine, created (with its ticker thread) on first use.
pub(crate) fn engine() -> Result<wasmtime::Engine, RuntimeError> {
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.epoch_interruption(true);
            // wasmtime-provider reports only the top-level message of a trap; without
            // backtraces that message is the trap itself ("wasm trap: ...").
            config.wasm_backtrace_max_frames(None);
            // `CIP_PROFILER=perfmap`: name the module's compiled functions in /tmp/perf-<pid>.map,
            // for `perf record` (docs/benchmarks.md, "How to profile the module").
            if std::env::var_os("CIP_PROFILER").is_some_and(|v| v == "perfmap") {
                config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            let engine = wasmtime::Engine::new(&config).map_err(|e| e.to_string())?;
            let ticker = engine.weak();
            std::thread::Builder::new()
                .name("cip-epoch-ticker".to_owned())
                .spawn(move || {
                    while let Some(engine) = ticker.upgrade() {
                        engine.increment_epoch();
                        drop(engine);
                        std::thread::sleep(TICK);
                    }
                })
                .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))?;
            Ok(engine)
        })
        .clone()
        .map_err(RuntimeError::Engine)
}

/// Most ticks granted: wasmtime adds the deadline to the current epoch, which must not
/// overflow (about 29 million years of ticks).
const MAX_TICKS: u64 = u64::MAX / 4;

/// Number of ticks granting at least `timeout` of execution (capped at [`MAX_TICKS`]).
pub(crate) fn ticks(timeout: Duration) -> u64 {
    let ticks = timeout.as_nanos().div_ceil(TICK.as_nanos()).max(1) + 1;
    u64::try_from(ticks).unwrap_or(MAX_TICKS).min(MAX_TICKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_timeout_and_never_overflow_the_epoch() {
        assert_eq!(ticks(Duration::ZERO), 2);
        assert_eq!(ticks(Duration::from_millis(25)), 4);
        assert_eq!(ticks(Duration::MAX), MAX_TICKS);
        assert!(MAX_TICKS.checked_add(u64::MAX / 2).is_some());
    }
}
