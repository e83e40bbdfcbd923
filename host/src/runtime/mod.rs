//! The policy runtime: loads a policy `.wasm` once and evaluates its waPC guest functions the
//! way Kubewarden's policy-evaluator does (wasmtime + waPC, WASI enabled), answering host calls
//! through [`crate::capabilities`].
//!
//! - [`PolicyModule`] compiles a module once; clones share the compiled code.
//!   [`CompiledModuleCache`] keeps compiled modules on disk between processes (`cip run`).
//! - [`Evaluator`] runs guest functions with a per-call timeout (epoch interruption, default
//!   2 s) and a memory limit (default 256 MiB). Healthy instances are kept warm per thread and
//!   reused; an instance that trapped, timed out or failed is discarded.
//! - Typed helpers: `validate_settings`, `validate`, `verify_images` ([`ImageKey`] in,
//!   [`ImageVerdict`] out), and raw `call`/`call_with_stats` (host-call timing for `cip bench`).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use cip::capabilities::Capabilities;
//! use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! let module = PolicyModule::from_file("policy.wasm")?;
//! let caps = Arc::new(Capabilities::without_registry(rt.handle().clone()));
//! let evaluator = Evaluator::new(&module, caps, EvaluatorOptions::default())?;
//! let verdict = evaluator.validate_settings(&serde_json::json!({"policies": []}))?;
//! println!("valid: {}", verdict.valid);
//! # Ok(()) }
//! ```

mod cache;
mod engine;
mod error;
mod evaluator;
mod instance;
mod module;
mod pool;
mod verdict;

pub use cache::{CacheUse, CompiledModuleCache};
pub use error::{RuntimeError, SettingsError};
pub use evaluator::{CallStats, Evaluator, EvaluatorOptions};
pub use instance::HostCallStats;
pub use module::PolicyModule;
pub use verdict::{AuthorityOutcome, ImageKey, ImageVerdict, PolicyOutcome, ResourceKey, Verdict};
