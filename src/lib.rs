//! cluster-image-policy: sigstore `ClusterImagePolicy` rules enforced by Kubewarden.
//!
//! This crate is a waPC guest compiled to `wasm32-wasip1`. The functions below are its only
//! entry points; the host (Kubewarden's policy-server, kwctl, or `cip`) looks signatures up in
//! registries, the module decides. See `docs/wire-protocol.md` for every message exchanged.

pub mod admission;
#[cfg(any(target_os = "wasi", test))]
mod allocator;
mod answer;
mod ascii;
pub mod authority;
pub mod crypto;
pub mod decision;
pub mod glob;
pub mod host;
mod json_text;
pub mod kms_uri;
pub mod matching;
pub mod policy;
pub mod reference;
pub mod regexp;
pub mod settings;
pub mod workload;

#[cfg(test)]
mod tests;

use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::{CallResult, register_function};

use std::cell::RefCell;

use crate::host::{Memo, WapcHost};
use crate::settings::{Settings, SettingsCache};

/// wasi-libc's allocator called directly (src/allocator.rs).
#[cfg(target_os = "wasi")]
#[global_allocator]
static ALLOCATOR: allocator::LibcMalloc = allocator::LibcMalloc;

thread_local! {
    /// Settings parsed by earlier calls of this instance (hosts that reuse instances).
    static SETTINGS: RefCell<SettingsCache> = RefCell::default();
}

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", kubewarden_policy_sdk::protocol_version_guest);
    register_function("verify_images", verify_images);
}

/// Admission: `{"request": AdmissionRequest, "settings": Settings}` → `ValidationResponse`.
fn validate(payload: &[u8]) -> CallResult {
    let response = SETTINGS.with_borrow_mut(|cache| admission::validate(payload, cache, &mut Memo::new(WapcHost)));
    // One allocation of the answer's length instead of a buffer grown by doubling.
    let mut answer = Vec::with_capacity(answer::response_len(&response));
    answer::write_response(&mut answer, &response)?;
    Ok(answer)
}

/// Settings check run once at load: shape, meaning, and every key, certificate and regexp.
fn validate_settings(payload: &[u8]) -> CallResult {
    let outcome = std::str::from_utf8(payload)
        .map_err(|e| format!("settings: not UTF-8: {e}"))
        .and_then(|json| {
            let settings = Settings::parse(json).map_err(|e| e.to_string())?;
            settings.check_material().map_err(|e| e.to_string())?;
            Ok(settings.lint())
        });
    // Valid settings may carry remarks in `message` (hosts ignore it when `valid`; `cip`
    // prints it as a warning).
    let response = match outcome {
        Ok(remarks) => SettingsValidationResponse {
            valid: true,
            message: (!remarks.is_empty()).then(|| remarks.join("; ")),
        },
        Err(message) => SettingsValidationResponse {
            valid: false,
            message: Some(message),
        },
    };
    Ok(serde_json::to_vec(&response)?)
}

/// Verdicts for `{image, namespace}` pairs, for Gatekeeper and `cip verify`.
fn verify_images(payload: &[u8]) -> CallResult {
    SETTINGS
        .with_borrow_mut(|cache| admission::verify_images(payload, cache, &mut Memo::new(WapcHost)))
        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
}
