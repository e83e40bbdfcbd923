//! The production [`Decider`]: the policy module's `verify_images` export, with the same settings
//! a ClusterAdmissionPolicy would give it; the settings can be replaced while it serves
//! ([`PolicyDecider::replace_settings`], driven by [`super::settings_watch`]).

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::decider::{Decider, DownloadPoolStats, SettingsStatus};
use super::protocol::{Decision, ImageKey};
use crate::runtime::{Evaluator, RuntimeError, SettingsError};
use crate::verify::CacheStats;

/// Why the policy cannot serve decisions.
#[derive(Debug, thiserror::Error)]
pub enum PolicyDeciderError {
    #[error("the policy refused its settings: {0}")]
    InvalidSettings(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Decides with a loaded policy module and validated settings.
///
/// Clones share the settings: [`PolicyDecider::replace_settings`] on one switches them all.
#[derive(Debug, Clone)]
pub struct PolicyDecider {
    evaluator: Evaluator,
    /// The settings served: each request takes the current ones once ([`Decider::snapshot`]:
    /// one read lock and an `Arc` clone) and decides all its keys with them, so a switch never
    /// mixes two settings in one verdict nor in one request.
    settings: Arc<RwLock<Arc<Value>>>,
    status: Arc<Mutex<SettingsStatus>>,
}

impl PolicyDecider {
    /// Validates `settings` with the module's `validate_settings`; refuses invalid ones, so that
    /// a provider never starts with settings its ClusterAdmissionPolicy twin would reject.
    pub fn new(evaluator: Evaluator, settings: Value) -> Result<Self, PolicyDeciderError> {
        accept(&evaluator, &settings)?;
        let status = SettingsStatus {
            digest: digest(&settings),
            applied_at: SystemTime::now(),
            reloads: 0,
            reload_failures: 0,
            failing: None,
        };
        Ok(Self {
            evaluator,
            settings: Arc::new(RwLock::new(Arc::new(settings))),
            status: Arc::new(Mutex::new(status)),
        })
    }

    /// Validates `settings` exactly as [`PolicyDecider::new`] does and, if the module accepts
    /// them, serves them from the next evaluation on (evaluations running keep the settings they
    /// started with); returns their digest. Refused settings change nothing: the previous
    /// settings stay served (the caller reports the failure, [`PolicyDecider::record_failure`]).
    ///
    /// Nothing cached has to be dropped: the provider keeps no verdicts, and the verifier's and
    /// the answer memo's entries are keyed by the whole host call (image and authority: keys,
    /// identities, annotations…), which settings without that authority no longer make.
    ///
    /// Blocking: runs the module's `validate_settings`.
    pub fn replace_settings(&self, settings: Value) -> Result<String, PolicyDeciderError> {
        accept(&self.evaluator, &settings)?;
        let digest = digest(&settings);
        *self.settings.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.digest.clone_from(&digest);
        status.applied_at = SystemTime::now();
        status.reloads += 1;
        status.failing = None;
        Ok(digest)
    }

    /// Records that a settings file could not be used (unreadable, not YAML, refused by the
    /// module): the previous settings stay served, and [`Decider::settings_status`] reports the
    /// problem until settings are replaced.
    pub fn record_failure(&self, problem: String) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.reload_failures += 1;
        status.failing = Some(problem);
    }

    /// Records that the settings file holds the settings served again (after a failure).
    pub fn clear_failure(&self) {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).failing = None;
    }

    /// Reports `failing` again as the current problem (or none), without counting a new failure:
    /// the settings file went back to a file already handled, whose problem (if any) was counted
    /// when it was refused.
    pub fn resume_failure(&self, failing: Option<String>) {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).failing = failing;
    }

    /// The settings served now.
    pub fn settings(&self) -> Arc<Value> {
        Arc::clone(&self.settings.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One evaluation of `key` under `settings`, interrupted at `deadline` if given.
fn decide_until(
    evaluator: &Evaluator,
    settings: &Value,
    key: &ImageKey,
    deadline: Option<Instant>,
) -> Result<Decision, String> {
    let verdicts = evaluator
        .verify_images_by(settings, std::slice::from_ref(key), deadline)
        .map_err(|e| e.to_string())?;
    verdicts
        .into_iter()
        .next()
        .map(Decision::from)
        .ok_or_else(|| "the policy returned no verdict".to_owned())
}

/// A [`PolicyDecider`] pinned to the settings served when it was taken
/// ([`Decider::snapshot`]): every key of one request is decided with them, and a reload
/// meanwhile applies from the next request on.
#[derive(Debug)]
struct Pinned {
    evaluator: Evaluator,
    settings: Arc<Value>,
}

impl Decider for Pinned {
    fn decide(&self, key: &ImageKey) -> Result<Decision, String> {
        decide_until(&self.evaluator, &self.settings, key, None)
    }

    fn decide_by(&self, key: &ImageKey, deadline: Instant) -> Result<Decision, String> {
        decide_until(&self.evaluator, &self.settings, key, Some(deadline))
    }

    fn label_scoped_policies(&self) -> Vec<String> {
        super::mutation::label_scoped_policies(&self.settings)
    }
}

/// The module's verdict on `settings` (remarks on valid settings are logged).
fn accept(evaluator: &Evaluator, settings: &Value) -> Result<(), PolicyDeciderError> {
    match evaluator.accept_settings(settings) {
        Ok(Some(remarks)) => tracing::warn!(%remarks, "the settings are valid, with remarks"),
        Ok(None) => {}
        Err(SettingsError::Refused(reason)) => return Err(PolicyDeciderError::InvalidSettings(reason)),
        Err(SettingsError::Runtime(error)) => return Err(error.into()),
    }
    let label_scoped = super::mutation::label_scoped_policies(settings);
    if !label_scoped.is_empty() {
        tracing::warn!(
            policies = %label_scoped.join(", "),
            "{}",
            super::mutation::LABEL_SCOPED_WARNING
        );
    }
    Ok(())
}

/// SHA-256 of the settings' JSON form, hex: replicas serving the same settings report the same
/// digest.
fn digest(settings: &Value) -> String {
    let json = serde_json::to_vec(settings).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}

impl Decider for PolicyDecider {
    fn decide(&self, key: &ImageKey) -> Result<Decision, String> {
        decide_until(&self.evaluator, &self.settings(), key, None)
    }

    /// The evaluation is interrupted at the request's deadline, host calls included.
    fn decide_by(&self, key: &ImageKey, deadline: Instant) -> Result<Decision, String> {
        decide_until(&self.evaluator, &self.settings(), key, Some(deadline))
    }

    /// The settings served now, for all the keys of one request.
    fn snapshot(&self) -> Option<Arc<dyn Decider>> {
        Some(Arc::new(Pinned {
            evaluator: self.evaluator.clone(),
            settings: self.settings(),
        }))
    }

    fn label_scoped_policies(&self) -> Vec<String> {
        super::mutation::label_scoped_policies(&self.settings())
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        self.evaluator
            .capabilities()
            .verifier()
            .map(|verifier| verifier.cache_stats())
    }

    fn download_pool_stats(&self) -> Option<DownloadPoolStats> {
        self.evaluator.capabilities().verifier().map(|verifier| {
            let pool = verifier.download_pool();
            let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            DownloadPoolStats {
                limit: bytes(pool.cap()),
                in_use: bytes(pool.in_use()),
                high_water: bytes(pool.high_water()),
                refusals: pool.refusals(),
                waits: pool.waits(),
            }
        })
    }

    fn settings_status(&self) -> Option<SettingsStatus> {
        Some(self.status.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}
