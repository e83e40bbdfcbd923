//! The production [`Decider`]: the policy module's `verify_images` export, with the same settings
//! a ClusterAdmissionPolicy would give it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::decider::Decider;
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
#[derive(Debug, Clone)]
pub struct PolicyDecider {
    evaluator: Evaluator,
    settings: Arc<Value>,
}

impl PolicyDecider {
    /// Validates `settings` with the module's `validate_settings`; refuses invalid ones, so that
    /// a provider never starts with settings its ClusterAdmissionPolicy twin would reject.
    pub fn new(evaluator: Evaluator, settings: Value) -> Result<Self, PolicyDeciderError> {
        match evaluator.accept_settings(&settings) {
            Ok(Some(remarks)) => tracing::warn!(%remarks, "the settings are valid, with remarks"),
            Ok(None) => {}
            Err(SettingsError::Refused(reason)) => return Err(PolicyDeciderError::InvalidSettings(reason)),
            Err(SettingsError::Runtime(error)) => return Err(error.into()),
        }
        Ok(Self {
            evaluator,
            settings: Arc::new(settings),
        })
    }
}

impl PolicyDecider {
    fn decide_until(&self, key: &ImageKey, deadline: Option<Instant>) -> Result<Decision, String> {
        let verdicts = self
            .evaluator
            .verify_images_by(&self.settings, std::slice::from_ref(key), deadline)
            .map_err(|e| e.to_string())?;
        verdicts
            .into_iter()
            .next()
            .map(Decision::from)
            .ok_or_else(|| "the policy returned no verdict".to_owned())
    }
}

impl Decider for PolicyDecider {
    fn decide(&self, key: &ImageKey) -> Result<Decision, String> {
        self.decide_until(key, None)
    }

    /// The evaluation is interrupted at the request's deadline, host calls included.
    fn decide_by(&self, key: &ImageKey, deadline: Instant) -> Result<Decision, String> {
        self.decide_until(key, Some(deadline))
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        self.evaluator
            .capabilities()
            .verifier()
            .map(|verifier| verifier.cache_stats())
    }
}
