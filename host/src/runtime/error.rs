//! Errors of the policy runtime.

use std::time::Duration;

/// Why a policy module could not be loaded or a guest function could not be evaluated.
///
/// A policy that *rejects* a request is not an error: it is a normal answer. These errors mean
/// the evaluation itself could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The shared wasmtime engine could not be created.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The policy file could not be read.
    #[error("cannot read policy module {path}: {source}")]
    Read {
        /// The file that was read.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly module.
    #[error("cannot compile policy module {name}: {message}")]
    Compile {
        /// Name of the module (usually its file name).
        name: String,
        /// The compiler's reason.
        message: String,
    },
    /// The module could not be instantiated or its waPC initialisation failed.
    #[error("cannot instantiate policy module {name}: {message}")]
    Instantiate {
        /// Name of the module.
        name: String,
        /// The reason given by wasmtime or waPC.
        message: String,
    },
    /// The guest function ran longer than the evaluation timeout and was interrupted.
    #[error("policy {name}: `{function}` exceeded the evaluation timeout of {timeout:?} and was interrupted")]
    Timeout {
        /// Name of the module.
        name: String,
        /// The guest function called.
        function: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The caller's deadline (a provider request's) came before the evaluation timeout and the
    /// guest function was interrupted there.
    #[error("policy {name}: `{function}` was interrupted at the caller's deadline ({budget:?} were left for it)")]
    Deadline {
        /// Name of the module.
        name: String,
        /// The guest function called.
        function: String,
        /// The time that was left when the call started.
        budget: Duration,
    },
    /// The guest function trapped or reported an error (including memory exhaustion and
    /// unknown functions).
    #[error("policy {name}: `{function}` failed: {message}")]
    Guest {
        /// Name of the module.
        name: String,
        /// The guest function called.
        function: String,
        /// The trap or guest error message.
        message: String,
    },
    /// The guest answered with something that is not the expected JSON document.
    #[error("policy {name}: `{function}` returned an invalid answer: {message}")]
    InvalidAnswer {
        /// Name of the module.
        name: String,
        /// The guest function called.
        function: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// A payload for the guest could not be serialised.
    #[error("cannot serialise the payload of `{function}`: {source}")]
    Payload {
        /// The guest function.
        function: String,
        /// The serialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking evaluation task could not be joined (async API only).
    #[error("evaluation task failed: {0}")]
    Join(String),
}

/// Why settings cannot be served (see `Evaluator::accept_settings`).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The module or the host refused them; the reason names the field.
    #[error("the settings are not valid: {0}")]
    Refused(String),
    /// `validate_settings` could not run.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}
