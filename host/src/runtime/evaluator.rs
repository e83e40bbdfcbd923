//! Evaluating guest functions: timeouts, memory limits, warm instances, typed helpers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wasmtime_provider::{EpochDeadlines, ResourceLimits, WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

use super::instance::{HostCallStats, Instance};
use super::verdict::{ImageKey, ImageVerdict, VerifyImagesRequest, VerifyImagesResponse};
use super::{PolicyModule, RuntimeError, SettingsError, engine, pool};
use crate::capabilities::Capabilities;

/// Limits and reuse policy of an [`Evaluator`].
#[derive(Clone, Debug)]
pub struct EvaluatorOptions {
    /// Longest a guest call may run, host calls included (Kubewarden's default: 2 s).
    pub timeout: Duration,
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_limit: usize,
    /// Warm instances kept per thread for reuse; 0 makes every call use a fresh instance.
    pub pool_size: usize,
}

impl Default for EvaluatorOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            memory_limit: 256 * 1024 * 1024,
            pool_size: 4,
        }
    }
}

/// Timing of one guest call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Wall-clock time of the whole call, instantiation included.
    pub total: Duration,
    /// Part of `total` spent answering host calls.
    pub host: Duration,
    /// Number of host calls.
    pub host_calls: u32,
    /// Whether a fresh instance had to be created for this call.
    pub fresh_instance: bool,
}

/// Evaluates a [`PolicyModule`]'s guest functions. Cheap to clone, `Send + Sync`.
///
/// The synchronous methods block the calling thread (host calls run on the capabilities'
/// tokio runtime), so from async code use the `*_async` variants, which run on
/// `spawn_blocking` threads.
#[derive(Clone)]
pub struct Evaluator {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    name: Arc<str>,
    pre: WasmtimeEngineProviderPre,
    capabilities: Arc<Capabilities>,
    options: EvaluatorOptions,
    deadlines: EpochDeadlines,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("policy", &self.shared.name)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Evaluator {
    /// Prepares `module` for evaluation with the given host capabilities and limits.
    pub fn new(
        module: &PolicyModule,
        capabilities: Arc<Capabilities>,
        options: EvaluatorOptions,
    ) -> Result<Self, RuntimeError> {
        let limits = ResourceLimits {
            max_memory_size: Some(options.memory_limit),
            max_table_elements: Some(100_000),
        };
        let pre = WasmtimeEngineProviderBuilder::new()
            .engine(engine::engine()?)
            .module(module.module().clone())
            .enable_resource_limits(limits)
            .build_pre()
            .map_err(|e| RuntimeError::Instantiate {
                name: module.name().to_owned(),
                message: e.to_string(),
            })?;
        let ticks = engine::ticks(options.timeout);
        // Distinguishes evaluators in logs when the same module is loaded twice.
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(policy = module.name(), id, ?options, "evaluator ready");
        Ok(Self {
            shared: Arc::new(Shared {
                name: Arc::from(module.name()),
                pre,
                capabilities,
                options,
                deadlines: EpochDeadlines {
                    wapc_init: ticks,
                    wapc_func: ticks,
                },
            }),
        })
    }

    /// The policy's name (its file name).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The limits in force.
    pub fn options(&self) -> &EvaluatorOptions {
        &self.shared.options
    }

    /// The host capabilities answering this evaluator's host calls.
    pub fn capabilities(&self) -> &Arc<Capabilities> {
        &self.shared.capabilities
    }

    /// Calls the guest function `function` with a raw payload.
    pub fn call(&self, function: &str, payload: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        self.call_with_stats(function, payload).map(|(answer, _)| answer)
    }

    /// Calls `function` and reports where the time went.
    pub fn call_with_stats(&self, function: &str, payload: &[u8]) -> Result<(Vec<u8>, CallStats), RuntimeError> {
        self.call_with_stats_by(function, payload, None)
    }

    /// Calls `function`, interrupting it at `deadline` if that comes before the evaluation
    /// timeout (a provider request's deadline reaches the evaluation it started): the guest's
    /// epoch deadline is the smaller of the two, and its host calls get what is left of it.
    ///
    /// The epoch deadline of an instance is fixed when it is created (wasmtime-provider), so a
    /// call whose budget is shorter than the timeout runs on a fresh instance made for it, which
    /// is not kept for reuse.
    pub fn call_with_stats_by(
        &self,
        function: &str,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(Vec<u8>, CallStats), RuntimeError> {
        let started = Instant::now();
        let shared = &self.shared;
        let timeout = shared.options.timeout;
        let budget = deadline.map_or(timeout, |deadline| {
            deadline.saturating_duration_since(started).min(timeout)
        });
        let shortened = budget < timeout;
        if budget.is_zero() {
            return Err(self.deadline_error(function, budget));
        }
        let (instance, fresh_instance) = if shortened {
            let ticks = engine::ticks(budget);
            let deadlines = EpochDeadlines {
                wapc_init: ticks,
                wapc_func: ticks,
            };
            (self.instantiate_with(deadlines)?, true)
        } else {
            match pool::checkout(shared) {
                Some(instance) => (instance, false),
                None => (self.instantiate_with(shared.deadlines)?, true),
            }
        };
        // Leave the guest a moment after a host call gives up, so it can turn the failure into
        // a proper answer (e.g. a denial naming the unreachable registry) instead of a timeout.
        let margin = (budget / 10).min(Duration::from_millis(100));
        instance
            .context
            .begin(started.checked_add(budget.saturating_sub(margin)));
        let outcome = catch_unwind(AssertUnwindSafe(|| instance.host.call(function, payload)));
        let HostCallStats { calls, time } = instance.context.end();
        let stats = CallStats {
            total: started.elapsed(),
            host: time,
            host_calls: calls,
            fresh_instance,
        };
        match outcome {
            Ok(Ok(answer)) => {
                if !shortened {
                    pool::checkin(shared, instance, shared.options.pool_size);
                }
                Ok((answer, stats))
            }
            Ok(Err(error)) if shortened && is_interruption(&error) => Err(self.deadline_error(function, budget)),
            Ok(Err(error)) => Err(self.guest_error(function, error)),
            Err(panic) => Err(RuntimeError::Guest {
                name: shared.name.to_string(),
                function: function.to_owned(),
                message: format!("the host panicked while serving the call: {}", panic_text(&*panic)),
            }),
        }
    }

    /// Runs the module's `validate_settings`.
    pub fn validate_settings(&self, settings: &Value) -> Result<SettingsValidationResponse, RuntimeError> {
        self.call_json("validate_settings", settings)
    }

    /// Whether the settings can be served: the module's `validate_settings` accepts them (as
    /// policy-server checks at start-up) and every Rego `spec.policy` compiles (the host's half of
    /// the policy language). `Ok` carries the module's remarks on valid settings, if any.
    pub fn accept_settings(&self, settings: &Value) -> Result<Option<String>, SettingsError> {
        let response = self.validate_settings(settings)?;
        if !response.valid {
            return Err(SettingsError::Refused(
                response.message.unwrap_or_else(|| "no reason given".to_owned()),
            ));
        }
        crate::capabilities::check_rego_policies(settings).map_err(SettingsError::Refused)?;
        Ok(response.message)
    }

    /// Runs the module's `validate` on an AdmissionRequest (not a whole AdmissionReview).
    pub fn validate(&self, request: &Value, settings: &Value) -> Result<ValidationResponse, RuntimeError> {
        self.validate_with_stats(request, settings)
            .map(|(response, _)| response)
    }

    /// [`Evaluator::validate`] with timing.
    pub fn validate_with_stats(
        &self,
        request: &Value,
        settings: &Value,
    ) -> Result<(ValidationResponse, CallStats), RuntimeError> {
        #[derive(Serialize)]
        struct Payload<'a> {
            request: &'a Value,
            settings: &'a Value,
        }
        self.call_json_with_stats("validate", &Payload { request, settings })
    }

    /// Runs the module's `verify_images` export: one verdict per item, in order.
    pub fn verify_images(&self, settings: &Value, items: &[ImageKey]) -> Result<Vec<ImageVerdict>, RuntimeError> {
        self.verify_images_by(settings, items, None)
    }

    /// [`Evaluator::verify_images`], interrupted at `deadline` if it comes before the timeout.
    pub fn verify_images_by(
        &self,
        settings: &Value,
        items: &[ImageKey],
        deadline: Option<Instant>,
    ) -> Result<Vec<ImageVerdict>, RuntimeError> {
        let (response, _): (VerifyImagesResponse, _) = self.call_json_by(
            "verify_images",
            &VerifyImagesRequest {
                settings,
                images: items,
            },
            deadline,
        )?;
        if response.results.len() != items.len() {
            return Err(self.invalid_answer(
                "verify_images",
                format!("{} results for {} images", response.results.len(), items.len()),
            ));
        }
        Ok(response.results)
    }

    /// Runs the module's `protocol_version` (`"v1"` for Kubewarden SDK policies).
    pub fn protocol_version(&self) -> Result<String, RuntimeError> {
        let answer = self.call("protocol_version", b"")?;
        serde_json::from_slice(&answer).map_err(|e| self.invalid_answer("protocol_version", e.to_string()))
    }

    /// [`Evaluator::validate_settings`] on a blocking thread.
    pub async fn validate_settings_async(&self, settings: Value) -> Result<SettingsValidationResponse, RuntimeError> {
        let this = self.clone();
        blocking(move || this.validate_settings(&settings)).await
    }

    /// [`Evaluator::validate`] on a blocking thread.
    pub async fn validate_async(&self, request: Value, settings: Value) -> Result<ValidationResponse, RuntimeError> {
        let this = self.clone();
        blocking(move || this.validate(&request, &settings)).await
    }

    /// [`Evaluator::verify_images`] on a blocking thread.
    pub async fn verify_images_async(
        &self,
        settings: Arc<Value>,
        items: Vec<ImageKey>,
    ) -> Result<Vec<ImageVerdict>, RuntimeError> {
        let this = self.clone();
        blocking(move || this.verify_images(&settings, &items)).await
    }

    fn call_json<P: Serialize + ?Sized, A: DeserializeOwned>(
        &self,
        function: &str,
        payload: &P,
    ) -> Result<A, RuntimeError> {
        self.call_json_with_stats(function, payload).map(|(answer, _)| answer)
    }

    fn call_json_with_stats<P: Serialize + ?Sized, A: DeserializeOwned>(
        &self,
        function: &str,
        payload: &P,
    ) -> Result<(A, CallStats), RuntimeError> {
        self.call_json_by(function, payload, None)
    }

    fn call_json_by<P: Serialize + ?Sized, A: DeserializeOwned>(
        &self,
        function: &str,
        payload: &P,
        deadline: Option<Instant>,
    ) -> Result<(A, CallStats), RuntimeError> {
        let payload = serde_json::to_vec(payload).map_err(|source| RuntimeError::Payload {
            function: function.to_owned(),
            source,
        })?;
        let (answer, stats) = self.call_with_stats_by(function, &payload, deadline)?;
        let answer = serde_json::from_slice(&answer).map_err(|e| self.invalid_answer(function, e.to_string()))?;
        Ok((answer, stats))
    }

    fn instantiate_with(&self, deadlines: EpochDeadlines) -> Result<Instance, RuntimeError> {
        let shared = &self.shared;
        Instance::new(
            &shared.pre,
            deadlines,
            Arc::clone(&shared.capabilities),
            Arc::clone(&shared.name),
        )
        .map_err(|message| RuntimeError::Instantiate {
            name: shared.name.to_string(),
            message,
        })
    }

    fn guest_error(&self, function: &str, error: wapc::errors::Error) -> RuntimeError {
        let message = match error {
            wapc::errors::Error::GuestCallFailure(message) => message,
            other => other.to_string(),
        };
        if message.contains(INTERRUPTION) {
            RuntimeError::Timeout {
                name: self.shared.name.to_string(),
                function: function.to_owned(),
                timeout: self.shared.options.timeout,
            }
        } else {
            RuntimeError::Guest {
                name: self.shared.name.to_string(),
                function: function.to_owned(),
                message,
            }
        }
    }

    fn deadline_error(&self, function: &str, budget: Duration) -> RuntimeError {
        RuntimeError::Deadline {
            name: self.shared.name.to_string(),
            function: function.to_owned(),
            budget,
        }
    }

    fn invalid_answer(&self, function: &str, message: String) -> RuntimeError {
        RuntimeError::InvalidAnswer {
            name: self.shared.name.to_string(),
            function: function.to_owned(),
            message,
        }
    }
}

/// What wasmtime says when the epoch deadline interrupts a guest (waPC passes only text on).
const INTERRUPTION: &str = "execution deadline exceeded";

fn is_interruption(error: &wapc::errors::Error) -> bool {
    match error {
        wapc::errors::Error::GuestCallFailure(message) => message.contains(INTERRUPTION),
        other => other.to_string().contains(INTERRUPTION),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RuntimeError::Join(e.to_string()))?
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
