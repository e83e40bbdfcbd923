//! Runs async registry code from sync callers, including callers that are themselves inside a
//! tokio runtime (`#[tokio::test]`), where `Runtime::block_on` would panic.

use std::future::Future;

/// Drives `fut` to completion on a fresh current-thread runtime in a scoped thread.
///
/// A scoped thread lets `fut` borrow from the caller while staying outside any runtime the
/// caller may already be running in.
pub(crate) fn block_on<F, T>(fut: F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>> + Send,
    T: Send,
{
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(fut)
        });
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
