//! Re-reads the settings file while the provider serves, so that a changed ConfigMap reaches
//! the provider without a restart.
//!
//! The file is polled: its content is read every `--settings-poll-interval` and compared with
//! the content last handled. Reading the path follows symlinks, so the kubelet's atomic swap of
//! a ConfigMap volume's `..data` symlink is seen like an edit in place. Changed content is read
//! a second time after [`SETTLE`] and used only if both reads agree (a writer that truncates and
//! rewrites in place is not caught half-way), then parsed and validated exactly as at start-up
//! ([`PolicyDecider::replace_settings`]). A file that cannot be used leaves the previous settings
//! served, is logged at `error` and counted once (not at every poll), and is reported on
//! `/metrics` until a usable file replaces it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::policy_decider::PolicyDecider;

/// Time between the two reads of changed content.
const SETTLE: Duration = Duration::from_millis(100);

/// What reading the file gave, as last handled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content(Vec<u8>),
    Unreadable(String),
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The content is the one last handled.
    Unchanged,
    /// The content was changing between two reads: looked at again at the next poll.
    Unsettled,
    /// New settings are served.
    Applied,
    /// The file holds the settings served again, after a file that could not be used.
    Restored,
    /// The file cannot be used (the reason); the previous settings are still served.
    Refused(String),
}

/// Watches one settings file for a [`PolicyDecider`].
pub struct SettingsWatch {
    path: PathBuf,
    decider: PolicyDecider,
    parse: fn(&str) -> anyhow::Result<Value>,
    last: Seen,
    /// The content whose settings are served.
    served: Vec<u8>,
}

impl std::fmt::Debug for SettingsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsWatch")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SettingsWatch {
    /// Watches `path`, whose content `served` the decider serves now (read at start-up);
    /// `parse` turns a file's text into settings, as at start-up.
    pub fn new(
        path: PathBuf,
        decider: PolicyDecider,
        parse: fn(&str) -> anyhow::Result<Value>,
        served: Vec<u8>,
    ) -> Self {
        Self {
            path,
            decider,
            parse,
            last: Seen::Content(served.clone()),
            served,
        }
    }

    /// Polls every `interval` until the task is dropped or aborted.
    pub async fn run(mut self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.poll().await;
        }
    }

    /// Reads the file once and, if it changed, switches to its settings or reports why not.
    pub async fn poll(&mut self) -> Polled {
        let seen = self.read().await;
        if seen == self.last {
            return Polled::Unchanged;
        }
        if let Seen::Content(_) = &seen {
            tokio::time::sleep(SETTLE).await;
            if self.read().await != seen {
                return Polled::Unsettled;
            }
        }
        let path = self.path.display().to_string();
        if let Seen::Content(bytes) = &seen
            && *bytes == self.served
        {
            self.last = seen;
            self.decider.clear_failure();
            tracing::info!(%path, "settings file usable again: it holds the settings served");
            return Polled::Restored;
        }
        let outcome = match &seen {
            Seen::Unreadable(reason) => Err(reason.clone()),
            Seen::Content(bytes) => self.apply(bytes).await,
        };
        if let (Ok(_), Seen::Content(bytes)) = (&outcome, &seen) {
            self.served.clone_from(bytes);
        }
        self.last = seen;
        match outcome {
            Ok(digest) => {
                tracing::info!(%path, sha256 = %digest, "settings changed: the new settings are served");
                Polled::Applied
            }
            Err(problem) => {
                tracing::error!(
                    %path,
                    %problem,
                    "settings file not applied: the previous settings are still served"
                );
                self.decider.record_failure(problem.clone());
                Polled::Refused(problem)
            }
        }
    }

    /// Parses and validates `bytes`, then serves them; the digest of the settings now served.
    async fn apply(&self, bytes: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
        let settings = (self.parse)(text).map_err(|e| format!("{e:#}"))?;
        let decider = self.decider.clone();
        tokio::task::spawn_blocking(move || decider.replace_settings(settings))
            .await
            .map_err(|e| format!("validation failed: {e}"))?
            .map_err(|e| e.to_string())
    }

    async fn read(&self) -> Seen {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => Seen::Content(bytes),
            Err(error) => Seen::Unreadable(format!("cannot read {}: {error}", self.path.display())),
        }
    }
}
