//! Re-reads the settings file while the provider serves, so that a changed ConfigMap reaches
//! the provider without a restart.
//!
//! The file is polled: it is read every `--settings-poll-interval` and compared with the content
//! last handled. Reading the path follows symlinks, so the kubelet's atomic swap of a ConfigMap
//! volume's `..data` symlink is seen like an edit in place. A change is acted on only once the
//! file reads the same at two consecutive polls (a whole poll interval apart): a writer that
//! truncates the file and writes it within the interval is never caught half-way, and a file
//! missing or unreadable at one poll only (an editor's rename-save) is not a failure. Content
//! stable across the interval is then parsed and validated exactly as at start-up
//! ([`PolicyDecider::replace_settings`]); an empty or blank file is refused (an empty document
//! would mean "no policies"). A writer that pauses longer than the interval in the middle of
//! the file can still have a prefix of it applied when that prefix is valid settings: write
//! the new file elsewhere and rename it over the settings (the kubelet does). A file that
//! cannot be used leaves the previous settings served, is logged at `error` and counted once
//! (not at every poll), and is reported on `/metrics` until a usable file replaces it. Every
//! switch is logged at `warn`, with the previous and new digests and the number of policies.
//! A file that reads differently at [`UNSETTLED_POLLS_REPORTED`] polls in a row (a writer that
//! never stops, two writers fighting) is never applied: that is reported once, like a refused
//! file, until the file settles.
//!
//! The file is read as at start-up ([`read_settings_file`]): at most
//! [`MAX_SETTINGS_BYTES`], and only a regular file (after symlinks), never a FIFO or a device.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::policy_decider::PolicyDecider;

/// The largest settings file read, at start-up and when polled.
pub const MAX_SETTINGS_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the settings file at `path`, following symlinks: refused unless it is a regular file of
/// at most [`MAX_SETTINGS_BYTES`] (the read itself is bounded, so a file growing meanwhile is
/// refused too). A FIFO is opened without blocking and refused.
pub fn read_settings_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let not_regular =
        |kind: &str| format!("cannot read {shown}: not a regular file ({kind}); the settings must be a file");
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(not_regular(file_kind(&metadata)));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let opened = file.metadata().map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !opened.is_file() {
        return Err(not_regular(file_kind(&opened)));
    }
    let too_large = || {
        format!(
            "cannot read {shown}: the settings file is larger than {} MiB",
            MAX_SETTINGS_BYTES / (1024 * 1024)
        )
    };
    if opened.len() > MAX_SETTINGS_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len()).unwrap_or(0));
    file.take(MAX_SETTINGS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SETTINGS_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if metadata.is_dir() { "a directory" } else { "not a file" }
}

/// After this many polls in a row at which the file read differently from the poll before (and
/// from the file last handled), the watcher reports that it cannot settle: at the default
/// interval, 10 s of a file changing at every look.
pub const UNSETTLED_POLLS_REPORTED: u32 = 5;

/// The number of policies in `settings` (its `policies` list).
pub fn policy_count(settings: &Value) -> usize {
    settings["policies"].as_array().map_or(0, Vec::len)
}

/// What reading the file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content(Vec<u8>),
    Unreadable(String),
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The file reads as when last handled.
    Unchanged,
    /// The file differs from the one last handled but not (yet) from the previous poll's: it is
    /// looked at again at the next poll and acted on if it still reads the same.
    Unsettled,
    /// New settings are served.
    Applied,
    /// The file holds the settings served again, after a file that could not be used.
    Restored,
    /// The file cannot be used (the reason); the previous settings are still served. Also
    /// reported, once, for a file that has not read the same at two polls in a row for
    /// [`UNSETTLED_POLLS_REPORTED`] polls.
    Refused(String),
}

/// Watches one settings file for a [`PolicyDecider`].
pub struct SettingsWatch {
    path: PathBuf,
    decider: PolicyDecider,
    parse: fn(&str) -> anyhow::Result<Value>,
    /// What the file read when last handled (applied, restored or refused).
    last: Seen,
    /// What the previous poll read (at first, the file read at start-up): a file that differs
    /// from `last` is acted on when a poll reads the same as the one before.
    previous: Seen,
    /// The content whose settings are served.
    served: Vec<u8>,
    /// Why the file last handled was refused (`None` when it was applied or restored).
    last_problem: Option<String>,
    /// Polls in a row that read the file differently from the poll before (whatever they read:
    /// a file switching back and forth to the file last handled counts too).
    unsettled_polls: u32,
    /// Whether the current run of unsettled polls has been reported.
    unsettled_reported: bool,
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
            previous: Seen::Content(served.clone()),
            served,
            last_problem: None,
            unsettled_polls: 0,
            unsettled_reported: false,
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

    /// Reads the file once; if it differs from the file last handled and read the same at the
    /// previous poll, switches to its settings or reports why not.
    pub async fn poll(&mut self) -> Polled {
        let seen = self.read().await;
        let changed = seen != self.previous;
        self.previous.clone_from(&seen);
        if seen == self.last {
            if changed {
                return self.unsettled(Polled::Unchanged);
            }
            self.settled();
            return Polled::Unchanged;
        }
        if changed {
            return self.unsettled(Polled::Unsettled);
        }
        self.unsettled_polls = 0;
        self.unsettled_reported = false;
        let path = self.path.display().to_string();
        if let Seen::Content(bytes) = &seen
            && *bytes == self.served
        {
            self.last = seen;
            self.last_problem = None;
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
        self.last_problem = outcome.as_ref().err().cloned();
        match outcome {
            Ok(()) => Polled::Applied,
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

    /// A poll read the file differently from the previous poll: `otherwise`, except that the
    /// [`UNSETTLED_POLLS_REPORTED`]th such poll in a row is reported as a failure, once.
    fn unsettled(&mut self, otherwise: Polled) -> Polled {
        self.unsettled_polls = self.unsettled_polls.saturating_add(1);
        if self.unsettled_reported || self.unsettled_polls < UNSETTLED_POLLS_REPORTED {
            return otherwise;
        }
        self.unsettled_reported = true;
        let problem = format!(
            "the settings file {} changed at each of the last {} polls: it is applied once it reads the same at two \
             polls in a row (is something rewriting it continuously?)",
            self.path.display(),
            self.unsettled_polls
        );
        tracing::error!(
            path = %self.path.display(),
            %problem,
            "settings file not applied: the previous settings are still served"
        );
        self.decider.record_failure(problem.clone());
        Polled::Refused(problem)
    }

    /// The file reads as the file last handled at two polls in a row: a reported run of
    /// unsettled polls is over, and the problem of the file last handled (if any) is the current
    /// one again.
    fn settled(&mut self) {
        self.unsettled_polls = 0;
        if std::mem::take(&mut self.unsettled_reported) {
            self.decider.resume_failure(self.last_problem.clone());
        }
    }

    /// Parses and validates `bytes`, then serves them, logging the switch at `warn`.
    async fn apply(&self, bytes: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
        // `parse` refuses an empty or blank file, as at start-up (it would mean "no policies").
        let settings = (self.parse)(text).map_err(|e| format!("{e:#}"))?;
        let policies = policy_count(&settings);
        let previous = cip_digest(&self.decider);
        let decider = self.decider.clone();
        let digest = tokio::task::spawn_blocking(move || decider.replace_settings(settings))
            .await
            .map_err(|e| format!("validation failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let path = self.path.display().to_string();
        if policies == 0 {
            tracing::warn!(
                %path,
                previous_sha256 = %previous,
                sha256 = %digest,
                policies,
                "settings changed: the new settings, which have NO policies, are served (every image \
                 is decided by noMatchPolicy alone)"
            );
        } else {
            tracing::warn!(
                %path,
                previous_sha256 = %previous,
                sha256 = %digest,
                policies,
                "settings changed: the new settings are served"
            );
        }
        Ok(())
    }

    async fn read(&self) -> Seen {
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || read_settings_file(&path)).await {
            Ok(Ok(bytes)) => Seen::Content(bytes),
            Ok(Err(reason)) => Seen::Unreadable(reason),
            Err(error) => Seen::Unreadable(format!("cannot read {}: {error}", self.path.display())),
        }
    }
}

/// The digest of the settings `decider` serves now.
fn cip_digest(decider: &PolicyDecider) -> String {
    super::decider::Decider::settings_status(decider).map_or_else(String::new, |status| status.digest)
}
