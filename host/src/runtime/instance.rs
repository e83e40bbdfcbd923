//! One live waPC instance of a policy module, and the per-call context its host callback reads.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wapc::WapcHost;
use wasmtime_provider::{EpochDeadlines, WasmtimeEngineProviderPre};

use crate::capabilities::Capabilities;

/// Time spent answering host calls during one guest call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCallStats {
    /// Number of host calls made.
    pub calls: u32,
    /// Wall-clock time spent inside the host callbacks.
    pub time: Duration,
}

#[derive(Default)]
struct CallState {
    host_call_deadline: Option<Instant>,
    stats: HostCallStats,
}

/// State shared between an evaluation and the host callback of its instance.
#[derive(Default)]
pub(crate) struct CallContext {
    state: Mutex<CallState>,
}

impl CallContext {
    fn lock(&self) -> std::sync::MutexGuard<'_, CallState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a guest call: host calls must answer before `host_call_deadline` (`None`: no
    /// deadline, host calls get their own upper bound).
    pub(crate) fn begin(&self, host_call_deadline: Option<Instant>) {
        *self.lock() = CallState {
            host_call_deadline,
            stats: HostCallStats::default(),
        };
    }

    /// Ends a guest call and returns its host call statistics.
    pub(crate) fn end(&self) -> HostCallStats {
        let mut state = self.lock();
        state.host_call_deadline = None;
        std::mem::take(&mut state.stats)
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock().host_call_deadline
    }

    fn record(&self, spent: Duration) {
        let mut state = self.lock();
        state.stats.calls = state.stats.calls.saturating_add(1);
        state.stats.time = state.stats.time.saturating_add(spent);
    }
}

/// A waPC instance with its call context.
pub(crate) struct Instance {
    pub(crate) host: WapcHost,
    pub(crate) context: Arc<CallContext>,
}

impl Instance {
    /// Instantiates the module and runs its waPC initialisation.
    pub(crate) fn new(
        pre: &WasmtimeEngineProviderPre,
        deadlines: EpochDeadlines,
        capabilities: Arc<Capabilities>,
        policy: Arc<str>,
    ) -> Result<Self, String> {
        let provider = pre.rehydrate(Some(deadlines)).map_err(|e| e.to_string())?;
        let context = Arc::new(CallContext::default());
        let callback_context = Arc::clone(&context);
        let callback = move |_id: u64, binding: &str, namespace: &str, operation: &str, payload: &[u8]| {
            let started = Instant::now();
            let result = capabilities.dispatch(
                &policy,
                callback_context.deadline(),
                binding,
                namespace,
                operation,
                payload,
            );
            callback_context.record(started.elapsed());
            result.map_err(|error| {
                tracing::debug!(policy = &*policy, binding, namespace, operation, %error, "host call failed");
                Box::new(error) as Box<dyn std::error::Error + Send + Sync>
            })
        };
        let host = WapcHost::new(Box::new(provider), Some(Box::new(callback))).map_err(|e| e.to_string())?;
        Ok(Self { host, context })
    }
}
