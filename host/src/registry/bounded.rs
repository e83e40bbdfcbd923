//! Size- and count-capped downloads of signature manifests and their layers, and of the
//! manifests and configs the `oci/v1/oci_manifest*` capabilities answer.
//!
//! oci-client reads a manifest (and a config through `pull_manifest_and_config`) whole
//! (`Response::bytes`), and the body of an error answer to a blob request whole (`pull_blob`,
//! `pull_blob_stream`), so manifests, configs and signature and attestation layers are fetched
//! here with our own HTTP client (same plain-HTTP hosts, extra CAs, credentials and timeouts) and
//! read chunk by chunk, stopping as soon as the cap is passed; an error answer's body is not read.
//!
//! Beside the cap of each download, the downloads of one verification (the signature or
//! attestation manifest and its layers, the referrers index, each referrer manifest and its
//! bundle) share one [`DownloadBudget`] (`--max-verification-bytes`), charged with the bytes as
//! they are read, whatever sizes the registry declared. Beside it, every verification's bytes
//! past a small allowance ([`DEFAULT_VERIFICATION_ALLOWANCE`]) are also taken from one pool of
//! the process, [`DownloadPool`] (`--max-inflight-download-bytes`), and given back when the
//! verification's budget is dropped: the sum of what concurrent verifications hold is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use oci_client::Reference;
use oci_client::manifest::{OciDescriptor, OciImageManifest};

use super::capped_pull::DigestMismatch;
use super::{MANIFEST_MEDIA_TYPES, RegistryClient, RegistryError};

/// Default cap of a signature manifest (`--max-signature-manifest-bytes`).
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Default cap of one signature layer (`--max-signature-layer-bytes`).
pub const DEFAULT_MAX_LAYER_BYTES: usize = 256 * 1024;
/// Default cap of the layers of one signature manifest (`--max-signature-layers`), cosign's
/// `COSIGN_MAX_ATTACHMENTS` default.
pub const DEFAULT_MAX_LAYERS: usize = 50;
/// Default cap of one attestation (`.att` layer or sigstore bundle of an attestation,
/// `--max-attestation-bytes`): SPDX SBOMs of large images pass the signature layer cap.
pub const DEFAULT_MAX_ATTESTATION_BYTES: usize = 8 * 1024 * 1024;
/// Default cap of the config blob `oci/v1/oci_manifest_config` reads (`--max-image-config-bytes`):
/// the manifest cap. Image configs are a few KiB (Docker's, with one `history` entry per build
/// step, stay in the tens of KiB; an artifact's is `{}`), and the blob is parsed into a
/// `serde_json::Value` several times its size and kept in the answer cache.
pub const DEFAULT_MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Default cap of all the bytes one verification downloads (`--max-verification-bytes`): the
/// signature or attestation manifest, its layers, the referrers index, the referrer manifests
/// and their bundles, together. What cosign writes for an image is a few layers of a few KiB
/// (signatures) to a few MiB (SBOM attestations): 64 MiB holds eight attestations at the 8 MiB
/// attestation cap, or the 50 layers of a manifest at the signature layer cap five times over,
/// while 50 distinct attestations at the cap (400 MiB read, about 1 GiB held once decoded) are
/// refused at a sixth of their download.
pub const DEFAULT_MAX_VERIFICATION_BYTES: usize = 64 * 1024 * 1024;
/// Default cap of the bytes all the verifications of the process hold at once, past each one's
/// allowance (`--max-inflight-download-bytes`). The Gatekeeper provider's pod has 512 MiB: its
/// peak RSS under load was 142 MiB (key-signed images) to 190 MiB (keyless; docs/benchmarks.md),
/// the two answer caches and the answer memo may hold 3 × 64 MiB (`--cache-max-bytes`), which
/// leaves 130 MiB; a verification holds at its peak up to 2.8 times what it downloaded (60 MiB
/// of genuine attestations: 168 MiB of heap while decoded; tests/download_budget_measure.rs),
/// and the allowances of 32 evaluations (`--max-concurrency`) add 8 MiB:
/// (32 MiB + 8 MiB) × 2.8 = 112 MiB. Also the most one verification may hold past its allowance
/// at once, below `--max-verification-bytes` (64 MiB, whose 2.8 times would be 179 MiB).
pub const DEFAULT_MAX_INFLIGHT_DOWNLOAD_BYTES: usize = 32 * 1024 * 1024;
/// The bytes of each verification not taken from the [`DownloadPool`]: the signature layer cap.
/// What an honest verification reads is a manifest and a layer or two of a few KiB (a keyless
/// signature with its certificate and Rekor bundle: about 10 KiB; a provenance attestation:
/// tens of KiB), so honest verifications never draw on the pool and cannot be refused by
/// hostile ones holding it; 32 verifications in flight hold 8 MiB of allowances.
pub const DEFAULT_VERIFICATION_ALLOWANCE: usize = 256 * 1024;

/// Caps applied while downloading signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadLimits {
    /// Largest signature manifest read, bytes.
    pub max_manifest_bytes: usize,
    /// Largest signature layer read, bytes.
    pub max_layer_bytes: usize,
    /// Most layers one signature manifest may list.
    pub max_layers: usize,
    /// Largest attestation read (an `.att` layer or an attestation's sigstore bundle), bytes.
    pub max_attestation_bytes: usize,
    /// Largest config blob `oci/v1/oci_manifest_config` reads, bytes (the manifests it and
    /// `oci/v1/oci_manifest` read are capped by `max_manifest_bytes`).
    pub max_config_bytes: usize,
    /// Most bytes one verification downloads, every manifest, layer and bundle it reads
    /// together, counted as they are read ([`DownloadBudget`]).
    pub max_verification_bytes: usize,
    /// Most bytes all verifications of the process hold at once past their allowances
    /// ([`DownloadPool`], built once per process from this value by the verifier).
    pub max_inflight_download_bytes: usize,
}

/// The cap of the layers of one download, and how a message names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerCap {
    /// Largest layer read, bytes.
    pub bytes: usize,
    /// One layer, as a message names it.
    pub what: &'static str,
    /// The setting that raises the cap.
    pub setting: &'static str,
}

impl LayerCap {
    /// The size `descriptor` declares for a blob of `reference`, refused when negative or over
    /// this cap: checked before a blob is read, and before one already read is used again for
    /// another descriptor.
    pub(crate) fn declared(self, reference: &Reference, descriptor: &OciDescriptor) -> Result<u64, BoundedError> {
        match u64::try_from(descriptor.size) {
            Ok(size) if usize::try_from(size).is_ok_and(|size| size <= self.bytes) => Ok(size),
            _ => Err(self.over_cap(reference)),
        }
    }

    /// A blob of `reference` passed this cap.
    pub(crate) fn over_cap(self, reference: &Reference) -> BoundedError {
        ManifestKind {
            what: self.what,
            setting: self.setting,
        }
        .over_cap(reference, self.bytes)
    }
}

impl DownloadLimits {
    /// The cap of one signature layer or signature bundle.
    pub fn signature_layer(&self) -> LayerCap {
        LayerCap {
            bytes: self.max_layer_bytes,
            what: "a signature layer",
            setting: "--max-signature-layer-bytes",
        }
    }

    /// The cap of one attestation layer or attestation bundle.
    pub fn attestation_layer(&self) -> LayerCap {
        LayerCap {
            bytes: self.max_attestation_bytes,
            what: "an attestation",
            setting: "--max-attestation-bytes",
        }
    }

    /// The cap of the config blob `oci/v1/oci_manifest_config` reads.
    pub fn image_config(&self) -> LayerCap {
        LayerCap {
            bytes: self.max_config_bytes,
            what: "the config blob",
            setting: "--max-image-config-bytes",
        }
    }

    /// A fresh budget of `max_verification_bytes` for the verification of `image`
    /// (`registry/repository@digest`), which its messages name.
    pub fn verification_budget(&self, image: impl Into<String>) -> DownloadBudget {
        DownloadBudget::new(self.max_verification_bytes, image)
    }

    /// [`DownloadLimits::verification_budget`], its bytes past `pool`'s allowance also taken
    /// from `pool` (and given back when the budget is dropped).
    pub fn verification_budget_in(&self, pool: &Arc<DownloadPool>, image: impl Into<String>) -> DownloadBudget {
        DownloadBudget::new(self.max_verification_bytes, image).drawing_on(pool)
    }
}

/// The bytes all the verifications of a process may hold at once (`--max-inflight-download-bytes`),
/// past each one's allowance: each [`DownloadBudget`] drawing on the pool takes the bytes it is
/// charged beyond its allowance as they are read (or, for a declared size, before the download),
/// and gives them all back when it is dropped (however the verification ended: an answer, an
/// error, a deadline dropping its future).
///
/// A charge the pool cannot give now waits for bytes to be given back, first come first served
/// (tokio's fair [`tokio::sync::Semaphore`]: a waiter is given bytes as they come back, and
/// nobody passes it while it waits), until the verification's deadline ([`with_pool_deadline`];
/// [`DEFAULT_POOL_WAIT`] after its budget was made when it has none): at the deadline it fails as
/// [`InflightExhausted`] (transient). A charge that alone needs more than the whole pool never
/// waits: it fails at once, for good.
///
/// Waiting cannot hang. A verification may hold bytes while it waits for more, and the one it
/// waits behind may be waiting for those: A holds 20 of 32 MiB and waits for 15 more, B holds
/// 10 and waits, behind A, for 5. Neither can go on until one gives its bytes back, and first
/// come first served does not break the cycle (letting B pass A would only starve A, the
/// larger). What breaks it is the deadline: every wait ends by it, the verification whose
/// deadline comes first fails and its budget, dropped, gives back all it held and all a wait had
/// been given, and the others go on. So the cycle costs at most the earliest deadline, never a
/// hang; its verifications fail as a full pool would have failed them before waiting existed.
/// A verification dropped while it waits (its caller's deadline, an aborted task) leaves the
/// queue and gives back what its wait had been given.
#[derive(Debug)]
pub struct DownloadPool {
    cap: usize,
    allowance: usize,
    /// One permit per byte, `cap` of them (at most [`tokio::sync::Semaphore::MAX_PERMITS`]);
    /// taken permits are forgotten and added back when given back.
    permits: tokio::sync::Semaphore,
    high_water: AtomicUsize,
    refusals: AtomicU64,
    waits: AtomicU64,
}

/// The longest a charge waits for the [`DownloadPool`] when the verification runs without a
/// deadline ([`with_pool_deadline`]): the provider's default `--deadline`.
pub const DEFAULT_POOL_WAIT: std::time::Duration = std::time::Duration::from_millis(2_500);

tokio::task_local! {
    /// The instant the verification running in this task stops waiting for the pool.
    static POOL_DEADLINE: tokio::time::Instant;
}

/// Runs `verification` with `deadline` as the instant its charges stop waiting for the
/// [`DownloadPool`] and fail as [`InflightExhausted`]: every [`DownloadBudget`] made while it
/// runs keeps it. Pass an instant a little before the caller's own deadline, so that the
/// refusal, rather than the caller's timeout, reaches the caller.
pub async fn with_pool_deadline<F: std::future::Future>(deadline: std::time::Instant, verification: F) -> F::Output {
    POOL_DEADLINE
        .scope(tokio::time::Instant::from_std(deadline), verification)
        .await
}

/// The pool's wait was not answered.
struct Refused;

impl DownloadPool {
    /// A pool of `cap` bytes, each verification's first [`DEFAULT_VERIFICATION_ALLOWANCE`] bytes
    /// not taken from it.
    pub fn new(cap: usize) -> Self {
        Self::with_allowance(cap, DEFAULT_VERIFICATION_ALLOWANCE)
    }

    /// A pool of `cap` bytes, each verification's first `allowance` bytes not taken from it.
    pub fn with_allowance(cap: usize, allowance: usize) -> Self {
        let cap = cap.min(tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            cap,
            allowance,
            permits: tokio::sync::Semaphore::new(cap),
            high_water: AtomicUsize::new(0),
            refusals: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    /// The pool's cap, bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The bytes of each verification not taken from the pool.
    pub fn allowance(&self) -> usize {
        self.allowance
    }

    /// The bytes taken now (with those already given to a verification still waiting for more).
    pub fn in_use(&self) -> usize {
        self.cap - self.permits.available_permits().min(self.cap)
    }

    /// The most bytes ever taken at once (never above the cap).
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::SeqCst)
    }

    /// How many verifications the pool refused: one per refused verification, whether it waited
    /// until its deadline, wanted more than the whole pool, or was dropped while it waited.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::SeqCst)
    }

    /// How many charges had to wait for bytes others held (admitted or refused in the end).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::SeqCst)
    }

    /// Takes `bytes` (at most the cap), waiting for them until `deadline`; [`Refused`] (nothing
    /// taken) when the wait ends first. Dropped while it waits, what it had been given goes back
    /// to the pool.
    async fn take(&self, bytes: usize, deadline: tokio::time::Instant) -> Result<(), Refused> {
        /// The pieces taken so far (one piece holds at most `u32::MAX` bytes): given back when
        /// the wait for the next one fails, or when the future is dropped while it waits.
        struct Taking<'p> {
            pool: &'p DownloadPool,
            taken: usize,
        }
        impl Drop for Taking<'_> {
            fn drop(&mut self) {
                self.pool.give_back(self.taken);
            }
        }
        let mut taking = Taking { pool: self, taken: 0 };
        let mut left = bytes;
        let mut waited = false;
        while left > 0 {
            let piece = u32::try_from(left).unwrap_or(u32::MAX);
            let permit = match self.permits.try_acquire_many(piece) {
                Ok(permit) => permit,
                Err(_) => {
                    if !waited {
                        waited = true;
                        self.waits.fetch_add(1, Ordering::SeqCst);
                    }
                    match tokio::time::timeout_at(deadline, self.permits.acquire_many(piece)).await {
                        Ok(Ok(permit)) => permit,
                        Ok(Err(_)) | Err(_) => return Err(Refused),
                    }
                }
            };
            permit.forget();
            taking.taken += piece as usize;
            left -= piece as usize;
        }
        // All taken: the budget now holds them.
        taking.taken = 0;
        self.high_water.fetch_max(self.in_use(), Ordering::SeqCst);
        Ok(())
    }

    /// Gives back `bytes` taken.
    fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.permits.add_permits(bytes);
        }
    }
}

/// A verification refused because the downloads in flight of all verifications of the process
/// held the whole of `--max-inflight-download-bytes` until its deadline: transient, unlike a
/// verification over its own `--max-verification-bytes`; the image fails closed like any
/// unverified one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the verification of {image} was refused: the downloads of the verifications in flight hold the \
     {cap} bytes of --max-inflight-download-bytes (transient: it passes once they end)"
)]
pub struct InflightExhausted {
    /// `registry/repository@digest` of the refused verification.
    pub image: String,
    /// The pool's cap, bytes.
    pub cap: usize,
}

/// The bytes one verification may still download (`--max-verification-bytes`), shared by all
/// its downloads: each is charged as its body is read, chunk by chunk (a registry declaring
/// small sizes and sending more is charged what it sent), and a declared size (a descriptor's,
/// a `Content-Length`) over what is left is refused before the download. Once passed, the
/// budget stays passed: the verification fails ([`DownloadBudget::exceeded`]). Drawing on a
/// [`DownloadPool`], the bytes charged past the pool's allowance are also taken from it (a
/// declared size's before the download, waiting for them if need be), and given back when the
/// budget is dropped; a charge the pool refuses passes the budget too, and
/// [`DownloadBudget::over_budget`] then says so ([`BoundedError::Inflight`]).
#[derive(Debug)]
pub struct DownloadBudget {
    cap: usize,
    used: AtomicUsize,
    exceeded: AtomicBool,
    image: String,
    pool: Option<Arc<DownloadPool>>,
    /// When a wait for the pool ends: [`with_pool_deadline`] of the task that made the budget
    /// drawing on the pool, else [`DEFAULT_POOL_WAIT`] after it was made.
    deadline: tokio::time::Instant,
    /// Bytes taken from `pool`, given back on drop: always at least what of `used` is past the
    /// allowance, more while a declared size is being read.
    pooled: AtomicUsize,
    /// Whether `pool` refused a charge (rather than the budget's own cap).
    pool_refused: AtomicBool,
    /// Whether what the pool refused was more than the whole pool on its own: no amount of
    /// waiting would make it fit.
    alone_over_pool: AtomicBool,
}

impl DownloadBudget {
    /// A budget of `cap` bytes for the verification of `image`.
    pub fn new(cap: usize, image: impl Into<String>) -> Self {
        Self {
            cap,
            used: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
            image: image.into(),
            pool: None,
            deadline: tokio::time::Instant::now(),
            pooled: AtomicUsize::new(0),
            pool_refused: AtomicBool::new(false),
            alone_over_pool: AtomicBool::new(false),
        }
    }

    /// This budget, its bytes past `pool`'s allowance also taken from `pool`, waiting for them
    /// until the deadline of the task making it ([`with_pool_deadline`]), or for
    /// [`DEFAULT_POOL_WAIT`] from now when it has none.
    pub fn drawing_on(mut self, pool: &Arc<DownloadPool>) -> Self {
        self.pool = Some(Arc::clone(pool));
        self.deadline = POOL_DEADLINE
            .try_with(|deadline| *deadline)
            .unwrap_or_else(|_| tokio::time::Instant::now() + DEFAULT_POOL_WAIT);
        self
    }

    /// The bytes taken from the pool now.
    pub fn pooled(&self) -> usize {
        self.pooled.load(Ordering::SeqCst)
    }

    /// Whether the pool refused a charge of this budget.
    pub fn refused_by_pool(&self) -> bool {
        self.pool_refused.load(Ordering::SeqCst)
    }

    /// The pool refused this budget (the first refusal counted by the pool): the budget is
    /// passed, and says why.
    fn refused(&self, pool: &DownloadPool, alone: bool) -> bool {
        if alone {
            self.alone_over_pool.store(true, Ordering::SeqCst);
        }
        if !self.pool_refused.swap(true, Ordering::SeqCst) {
            pool.refusals.fetch_add(1, Ordering::SeqCst);
        }
        self.exceeded.store(true, Ordering::SeqCst);
        false
    }

    /// Makes what this budget took from the pool cover its first `total` bytes past the
    /// allowance, waiting for the difference; false (the budget passed) when it is more than the
    /// whole pool, or the wait ends first. A budget dropped while it waits counts as refused.
    async fn hold(&self, pool: &DownloadPool, total: usize) -> bool {
        let wanted = total.saturating_sub(pool.allowance);
        if wanted > pool.cap {
            return self.refused(pool, true);
        }
        let held = self.pooled();
        if wanted <= held {
            return true;
        }
        // Counts the refusal if the verification is dropped while it waits.
        let waiting = DroppedWhileWaiting { budget: self, pool };
        let taken = pool.take(wanted - held, self.deadline).await;
        std::mem::forget(waiting);
        match taken {
            Ok(()) => {
                self.pooled.fetch_add(wanted - held, Ordering::SeqCst);
                true
            }
            Err(Refused) => self.refused(pool, false),
        }
    }

    /// After a download, successful or not: gives back to the pool what was taken for a declared
    /// size and not read. Found by a review: a registry declaring an 8 MiB layer and sending ten
    /// bytes (or nothing) kept 8 MiB of the pool for the rest of the verification without
    /// spending any bandwidth.
    fn settle(&self) {
        let Some(pool) = &self.pool else {
            return;
        };
        let wanted = self.used().saturating_sub(pool.allowance);
        let mut held = self.pooled();
        while held > wanted {
            match self
                .pooled
                .compare_exchange(held, wanted, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    pool.give_back(held - wanted);
                    return;
                }
                Err(now) => held = now,
            }
        }
    }

    /// The bytes charged so far (a refused chunk included).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Whether a download passed the budget (or declared a size over what was left).
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    /// The budget's cap, bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether `declared` bytes still fit; when not, the budget is passed. Drawing on a pool,
    /// what of them is past the allowance is taken from it before the download (waiting for it
    /// if need be), and the bytes then read are charged against it.
    async fn admits(&self, declared: u64) -> bool {
        let left = self.cap.saturating_sub(self.used());
        let fits = !self.exceeded() && usize::try_from(declared).is_ok_and(|declared| declared <= left);
        if !fits {
            self.exceeded.store(true, Ordering::SeqCst);
            return false;
        }
        // Within the cap, so `declared` fits a usize.
        match &self.pool {
            Some(pool) => self.hold(pool, self.used().saturating_add(declared as usize)).await,
            None => true,
        }
    }

    /// Charges `bytes` read; false (and the budget passed) when they take it over its cap, or
    /// when the pool cannot give what of them is past the allowance (by the deadline).
    async fn charge(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::SeqCst);
        if before.saturating_add(bytes) > self.cap {
            self.exceeded.store(true, Ordering::SeqCst);
        }
        if self.exceeded() {
            return false;
        }
        match &self.pool {
            Some(pool) => self.hold(pool, before.saturating_add(bytes)).await,
            None => true,
        }
    }

    /// The error of a verification whose downloads passed this budget: it names the cap and
    /// `--max-verification-bytes`; or, when the pool refused a charge, the pool's cap and
    /// `--max-inflight-download-bytes`: transient ([`BoundedError::Inflight`]) when other
    /// verifications held the pool until the deadline, an [`BoundedError::OverCap`] when this one
    /// alone wanted more than the whole pool.
    pub fn over_budget(&self) -> BoundedError {
        if let Some(pool) = &self.pool
            && self.refused_by_pool()
        {
            // More than the pool for this verification alone: it can never pass, whatever the
            // others do (not transient).
            if self.alone_over_pool.load(Ordering::SeqCst) {
                return BoundedError::OverCap {
                    what: "the total download of the verification (past its first bytes, which the pool does not count)",
                    image: self.image.clone(),
                    cap: pool.cap,
                    unit: "bytes",
                    setting: "--max-inflight-download-bytes, the most all verifications in flight may hold",
                };
            }
            return BoundedError::Inflight(InflightExhausted {
                image: self.image.clone(),
                cap: pool.cap,
            });
        }
        BoundedError::OverCap {
            what: "the total download of the verification",
            image: self.image.clone(),
            cap: self.cap,
            unit: "bytes",
            setting: "--max-verification-bytes",
        }
    }
}

/// Armed while a budget waits for the pool: dropped (the verification's future dropped
/// mid-wait), it counts the budget refused.
struct DroppedWhileWaiting<'a> {
    budget: &'a DownloadBudget,
    pool: &'a DownloadPool,
}

impl Drop for DroppedWhileWaiting<'_> {
    fn drop(&mut self) {
        self.budget.refused(self.pool, false);
    }
}

impl Drop for DownloadBudget {
    /// Gives back what was taken from the pool, however the verification ended.
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(*self.pooled.get_mut());
        }
    }
}

impl Default for DownloadLimits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_layer_bytes: DEFAULT_MAX_LAYER_BYTES,
            max_layers: DEFAULT_MAX_LAYERS,
            max_attestation_bytes: DEFAULT_MAX_ATTESTATION_BYTES,
            max_config_bytes: DEFAULT_MAX_CONFIG_BYTES,
            max_verification_bytes: DEFAULT_MAX_VERIFICATION_BYTES,
            max_inflight_download_bytes: DEFAULT_MAX_INFLIGHT_DOWNLOAD_BYTES,
        }
    }
}

/// What a capped manifest is, for the message naming its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestKind {
    /// The manifest, as a message names it.
    pub what: &'static str,
    /// The setting that raises its cap.
    pub setting: &'static str,
}

impl ManifestKind {
    /// `reference`'s manifest of this kind passed `cap` bytes.
    pub(crate) fn over_cap(self, reference: &Reference, cap: usize) -> BoundedError {
        BoundedError::OverCap {
            what: self.what,
            image: reference.whole(),
            cap,
            unit: "bytes",
            setting: self.setting,
        }
    }
}

/// The manifest of an image's signatures (`sha256-<digest>.sig`).
pub const SIGNATURE_MANIFEST: ManifestKind = ManifestKind {
    what: "the signature manifest",
    setting: "--max-signature-manifest-bytes",
};

/// A manifest or index read by `oci/v1/oci_manifest` or `oci/v1/oci_manifest_config` (the
/// image's, or the platform manifest an index resolves to).
pub const IMAGE_MANIFEST: ManifestKind = ManifestKind {
    what: "the manifest",
    setting: "--max-signature-manifest-bytes",
};

/// Why a capped download failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundedError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A cap was passed.
    #[error("{what} of {image} is larger than the cap of {cap} {unit} ({setting})")]
    OverCap {
        what: &'static str,
        image: String,
        cap: usize,
        unit: &'static str,
        setting: &'static str,
    },
    /// The downloads in flight of all verifications hold the whole pool
    /// (`--max-inflight-download-bytes`): transient.
    #[error(transparent)]
    Inflight(#[from] InflightExhausted),
}

/// The referrers index of an image (`GET /v2/<repo>/referrers/<digest>`), or the index of the
/// referrers tag schema (`<repo>:sha256-<hex>`) on registries without the API.
pub const REFERRERS_INDEX: ManifestKind = ManifestKind {
    what: "the referrers index",
    setting: "--max-signature-manifest-bytes",
};

/// The manifest of one referrer (a sigstore bundle artifact).
pub const REFERRER_MANIFEST: ManifestKind = ManifestKind {
    what: "a referrer manifest",
    setting: "--max-signature-manifest-bytes",
};

/// One entry of a referrers index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    /// Media type of the referrer's manifest.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referrer's manifest.
    pub digest: String,
    /// Its size, bytes.
    #[serde(default)]
    pub size: i64,
    /// `artifactType` of the referrer.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Its annotations.
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Where the referrers of an image were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The referrers tag schema (`sha256-<hex>` index tag).
    TagSchema,
    /// Neither holds anything.
    None,
}

/// The referrers of one image of the wanted artifact type, and the one-layer artifacts they are.
#[derive(Debug)]
pub struct Referrers {
    /// Where they were listed.
    pub source: ReferrersSource,
    /// Each referrer with its single layer's descriptor and bytes (shared by referrers naming
    /// one layer digest).
    pub artifacts: Vec<(Referrer, OciDescriptor, SharedBytes)>,
    /// Referrers listed with the type but unreadable as a one-layer artifact of that type, and why.
    pub unreadable: Vec<(Referrer, String)>,
}

#[derive(serde::Deserialize)]
struct ReferrersIndex {
    #[serde(default)]
    manifests: Vec<Referrer>,
}

/// The bytes of one downloaded layer, shared (not copied) by every descriptor naming its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedBytes(std::sync::Arc<[u8]>);

impl std::ops::Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<SharedBytes> for std::sync::Arc<[u8]> {
    /// The shared bytes themselves (not a copy), for whoever keeps them.
    fn from(bytes: SharedBytes) -> Self {
        bytes.0
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq<[u8]> for SharedBytes {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&[u8]> for SharedBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        *self.0 == **other
    }
}

/// A successful answer read under a cap.
#[derive(Debug)]
pub(crate) struct CappedResponse {
    /// Its status (2xx).
    pub status: reqwest::StatusCode,
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
    /// Its body, at most the cap.
    pub body: Vec<u8>,
}

impl RegistryClient {
    /// The referrers of `digest` in `reference`'s repository whose `artifactType` is
    /// `artifact_type` and which satisfy `keep` (e.g. a predicate type annotation), each read as a
    /// one-layer artifact: the referrers API first, the referrers tag schema (`sha256-<hex>`) when
    /// the registry has no API (404) or lists nothing there. Every download is capped like a
    /// signature manifest and its layers; more than `limits.max_layers` wanted referrers fail.
    /// Every download (the index, each referrer manifest and bundle) is charged to `budget`,
    /// which the verification's other downloads share.
    #[allow(clippy::too_many_arguments)]
    pub async fn capped_referrers_within(
        &self,
        reference: &Reference,
        digest: &str,
        artifact_type: &str,
        keep: &(dyn Fn(&Referrer) -> bool + Sync),
        limits: &DownloadLimits,
        layer_cap: LayerCap,
        budget: &DownloadBudget,
    ) -> Result<Referrers, BoundedError> {
        let malformed = |reason: String| {
            BoundedError::Registry(RegistryError::Malformed {
                image: format!("{}@{digest}", reference.whole()),
                reason,
            })
        };
        let mut source = ReferrersSource::None;
        let mut listed = Vec::new();
        let api_path = format!("referrers/{digest}?artifactType={}", artifact_type.replace('+', "%2B"));
        match self
            .capped_get(
                reference,
                &api_path,
                oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
                limits.max_manifest_bytes,
                REFERRERS_INDEX,
                Some(budget),
            )
            .await
        {
            Ok(body) => {
                let index: ReferrersIndex =
                    serde_json::from_slice(&body).map_err(|e| malformed(format!("referrers index: {e}")))?;
                if !index.manifests.is_empty() {
                    source = ReferrersSource::Api;
                    listed = index.manifests;
                }
            }
            // No referrers API: registries answer 404 (distribution v2.8) or 400/405.
            Err(BoundedError::Registry(RegistryError::NotFound { .. } | RegistryError::Other { .. })) => {}
            Err(other) => return Err(other),
        }
        if source == ReferrersSource::None {
            let tag = format!(
                "{}/{}:{}",
                reference.registry(),
                reference.repository(),
                digest.replace(':', "-")
            );
            let tag_ref = Self::parse_reference(&tag)?;
            match self
                .capped_get(
                    &tag_ref,
                    &format!("manifests/{}", digest.replace(':', "-")),
                    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
                    limits.max_manifest_bytes,
                    REFERRERS_INDEX,
                    Some(budget),
                )
                .await
            {
                Ok(body) => {
                    let index: ReferrersIndex = serde_json::from_slice(&body)
                        .map_err(|e| malformed(format!("referrers tag schema index {tag}: {e}")))?;
                    source = ReferrersSource::TagSchema;
                    listed = index.manifests;
                }
                Err(BoundedError::Registry(RegistryError::NotFound { .. })) => {}
                Err(other) => return Err(other),
            }
        }
        let wanted: Vec<Referrer> = listed
            .into_iter()
            .filter(|r| r.artifact_type.as_deref() == Some(artifact_type) && keep(r))
            .collect();
        if wanted.len() > limits.max_layers {
            return Err(BoundedError::OverCap {
                what: "the number of sigstore bundle referrers",
                image: format!("{}@{digest}", reference.whole()),
                cap: limits.max_layers,
                unit: "referrers",
                setting: "--max-signature-layers",
            });
        }
        let mut artifacts = Vec::new();
        let mut unreadable = Vec::new();
        // Layers already read, by digest: referrers naming one layer share one download.
        let mut read = Vec::new();
        for referrer in wanted {
            match self
                .referrer_artifact(
                    reference,
                    digest,
                    &referrer,
                    artifact_type,
                    limits,
                    layer_cap,
                    budget,
                    &mut read,
                )
                .await
            {
                Ok(Ok((descriptor, data))) => artifacts.push((referrer, descriptor, data)),
                Ok(Err(reason)) => unreadable.push((referrer, reason)),
                Err(e) => return Err(e),
            }
        }
        Ok(Referrers {
            source,
            artifacts,
            unreadable,
        })
    }

    /// The single layer of the referrer artifact, checked against its manifest: `Ok(Err)` when
    /// it is not a one-layer artifact of `artifact_type` whose subject is `digest`. A layer whose
    /// digest is in `read` is not read again (its bytes are shared); one read is added to it.
    #[allow(clippy::too_many_arguments)]
    async fn referrer_artifact(
        &self,
        reference: &Reference,
        digest: &str,
        referrer: &Referrer,
        artifact_type: &str,
        limits: &DownloadLimits,
        layer_cap: LayerCap,
        budget: &DownloadBudget,
        read: &mut Vec<(String, SharedBytes)>,
    ) -> Result<Result<(OciDescriptor, SharedBytes), String>, BoundedError> {
        let artifact = format!(
            "{}/{}@{}",
            reference.registry(),
            reference.repository(),
            referrer.digest
        );
        let artifact_ref = match Self::parse_reference(&artifact) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let body = match self
            .capped_manifest_within(
                &artifact_ref,
                limits.max_manifest_bytes,
                REFERRER_MANIFEST,
                Some(budget),
            )
            .await
        {
            Ok(body) => body,
            Err(BoundedError::Registry(e)) if e.is_not_found() => {
                return Ok(Err(format!("referrer {} is listed but missing", referrer.digest)));
            }
            Err(e) => return Err(e),
        };
        let actual = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)));
        if actual != referrer.digest {
            return Ok(Err(format!(
                "referrer manifest {} has digest {actual}",
                referrer.digest
            )));
        }
        let manifest: OciImageManifest = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Err(format!(
                    "referrer {} is not an image manifest: {e}",
                    referrer.digest
                )));
            }
        };
        if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
            return Ok(Err(format!("referrer {} has another subject", referrer.digest)));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Ok(Err(format!(
                "referrer {} has {} layers, not one",
                referrer.digest,
                manifest.layers.len()
            )));
        };
        if layer.media_type != artifact_type {
            return Ok(Err(format!(
                "referrer {} holds a {} layer, not {artifact_type}",
                referrer.digest, layer.media_type
            )));
        }
        layer_cap.declared(&artifact_ref, layer)?;
        if let Some((_, data)) = read.iter().find(|(read_digest, _)| *read_digest == layer.digest) {
            // As a first read of it would be: refused for every format.
            self.check_blob_size(&artifact_ref, layer, data.len())?;
            return Ok(Ok((layer.clone(), data.clone())));
        }
        let data = self.capped_blob(&artifact_ref, layer, layer_cap, budget).await?;
        let actual = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)));
        if actual != layer.digest {
            return Ok(Err(format!(
                "the layer of referrer {} has digest {actual}, not {}",
                referrer.digest, layer.digest
            )));
        }
        let data = SharedBytes(data.into());
        read.push((layer.digest.clone(), data.clone()));
        Ok(Ok((layer.clone(), data)))
    }

    /// The image manifest `reference` names and its layers' bytes, every download capped (each
    /// layer by `layer_cap`). Descriptors naming one digest (a manifest may repeat a descriptor
    /// up to `--max-signature-layers` times) share one download and one copy of its bytes.
    /// The manifest and every layer read are charged to `budget`, which the verification's other
    /// downloads share.
    pub async fn capped_manifest_and_layers_within(
        &self,
        reference: &Reference,
        limits: &DownloadLimits,
        layer_cap: LayerCap,
        budget: &DownloadBudget,
    ) -> Result<(OciImageManifest, Vec<(OciDescriptor, SharedBytes)>), BoundedError> {
        let body = self
            .capped_manifest_within(reference, limits.max_manifest_bytes, SIGNATURE_MANIFEST, Some(budget))
            .await?;
        let manifest: OciImageManifest = serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
            image: reference.whole(),
            reason: format!("not an image manifest: {e}"),
        })?;
        if manifest.layers.len() > limits.max_layers {
            return Err(BoundedError::OverCap {
                what: "the layer count of the signature manifest",
                image: reference.whole(),
                cap: limits.max_layers,
                unit: "layers",
                setting: "--max-signature-layers",
            });
        }
        let mut layers: Vec<(OciDescriptor, SharedBytes)> = Vec::new();
        for descriptor in &manifest.layers {
            if let Some((_, data)) = layers.iter().find(|(d, _)| d.digest == descriptor.digest) {
                // As a first read of it would be: a size over the cap (or negative), then any
                // size but the blob's, refused.
                layer_cap.declared(reference, descriptor)?;
                self.check_blob_size(reference, descriptor, data.len())?;
                // The same bytes, not a copy of them.
                let data = data.clone();
                layers.push((descriptor.clone(), data));
                continue;
            }
            let data = self.capped_blob(reference, descriptor, layer_cap, budget).await?;
            layers.push((descriptor.clone(), SharedBytes(data.into())));
        }
        Ok((manifest, layers))
    }

    /// One layer of a signature or attestation manifest (or of a referrer), read by
    /// [`RegistryClient::capped_verified_blob`]: a declared size over `layer_cap` (or negative) is
    /// refused before the download, the body cut as soon as it passes the cap, an error answer's
    /// body left unread, and the body checked against the descriptor's digest and the
    /// registry's `Docker-Content-Digest` (a mismatch reported as `pull_blob_stream`, which read
    /// layers before, reported it). A declared size over what is left of `budget` is refused
    /// before the download too, and the bytes read are charged to it.
    async fn capped_blob(
        &self,
        reference: &Reference,
        descriptor: &OciDescriptor,
        layer_cap: LayerCap,
        budget: &DownloadBudget,
    ) -> Result<Vec<u8>, BoundedError> {
        let size = layer_cap.declared(reference, descriptor)?;
        if !budget.admits(size).await {
            return Err(budget.over_budget());
        }
        let _settle = Settle(Some(budget));
        // Blob and its redirect, each bounded by the read timeout; the whole by two round trips.
        self.within(
            reference,
            2,
            self.capped_verified_blob(
                reference,
                descriptor,
                layer_cap,
                DigestMismatch::StreamError,
                Some(budget),
            ),
        )
        .await
    }

    /// The raw manifest `reference` names, read at most `cap` bytes; `kind` names it when it is
    /// over the cap.
    pub(crate) async fn capped_manifest(
        &self,
        reference: &Reference,
        cap: usize,
        kind: ManifestKind,
    ) -> Result<Vec<u8>, BoundedError> {
        self.capped_manifest_within(reference, cap, kind, None).await
    }

    /// [`RegistryClient::capped_manifest`], the bytes read charged to `budget` when given.
    async fn capped_manifest_within(
        &self,
        reference: &Reference,
        cap: usize,
        kind: ManifestKind,
        budget: Option<&DownloadBudget>,
    ) -> Result<Vec<u8>, BoundedError> {
        let target = reference.digest().or(reference.tag()).unwrap_or("latest");
        let path = format!("manifests/{target}");
        self.capped_get(reference, &path, &MANIFEST_MEDIA_TYPES.join(", "), cap, kind, budget)
            .await
    }

    /// `GET /v2/<repository>/<path>` of `reference`'s registry, read at most `cap` bytes, the
    /// bytes read charged to `budget` when given.
    async fn capped_get(
        &self,
        reference: &Reference,
        path: &str,
        accept: &str,
        cap: usize,
        kind: ManifestKind,
        budget: Option<&DownloadBudget>,
    ) -> Result<Vec<u8>, BoundedError> {
        Ok(self
            .capped_response(reference, path, accept, cap, kind, budget)
            .await?
            .body)
    }

    /// [`RegistryClient::capped_get`], with the status and headers of the answer. A status other
    /// than 2xx fails (its body unread); a `Content-Length` over `cap` fails before the body is
    /// read, and a body passing `cap` as soon as it does; so does, with `budget`, one over what
    /// is left of it ([`DownloadBudget::over_budget`]), each chunk charged to it as it is read.
    pub(crate) async fn capped_response(
        &self,
        reference: &Reference,
        path: &str,
        accept: &str,
        cap: usize,
        kind: ManifestKind,
        budget: Option<&DownloadBudget>,
    ) -> Result<CappedResponse, BoundedError> {
        self.capped_response_or(reference, path, accept, cap, || kind.over_cap(reference, cap), budget)
            .await
    }

    /// [`RegistryClient::capped_response`], a body over `cap` (or announced over it) reported
    /// as `over_cap` makes it.
    pub(crate) async fn capped_response_or(
        &self,
        reference: &Reference,
        path: &str,
        accept: &str,
        cap: usize,
        over_cap: impl FnOnce() -> BoundedError,
        budget: Option<&DownloadBudget>,
    ) -> Result<CappedResponse, BoundedError> {
        let registry = reference.resolve_registry().to_string();
        let request = self.authorized_get(reference, path, accept).await?;
        let http_error = |e: reqwest::Error| self.http_error(reference, e);
        let read = async {
            let mut response = request.send().await.map_err(http_error)?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(BoundedError::Registry(RegistryError::NotFound {
                    image: reference.whole(),
                    registry: registry.clone(),
                }));
            }
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                if status == reqwest::StatusCode::UNAUTHORIZED {
                    self.forget_authorization(reference);
                }
                return Err(BoundedError::Registry(RegistryError::Denied {
                    image: reference.whole(),
                    registry: registry.clone(),
                    reason: status.to_string(),
                }));
            }
            if !status.is_success() {
                return Err(BoundedError::Registry(RegistryError::Other {
                    image: reference.whole(),
                    registry: registry.clone(),
                    reason: format!("GET {path} answered {status}"),
                }));
            }
            let headers = std::mem::take(response.headers_mut());
            let body = match read_within(&mut response, cap, budget).await.map_err(http_error)? {
                Read::Body(body) => body,
                Read::OverCap => return Err(over_cap()),
                Read::OverBudget(budget) => return Err(budget.over_budget()),
            };
            Ok(CappedResponse { status, headers, body })
        };
        match tokio::time::timeout(self.timeout.saturating_mul(2), read).await {
            Ok(result) => result,
            Err(_) => Err(BoundedError::Registry(RegistryError::Timeout {
                registry,
                after: self.timeout,
            })),
        }
    }
}

/// The body of `response`, read at most `cap` bytes: `None` when a `Content-Length` over `cap`
/// is announced (nothing read) or the body passes `cap` (read no further).
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    Ok(match read_within(response, cap, None).await? {
        Read::Body(body) => Some(body),
        Read::OverCap | Read::OverBudget(_) => None,
    })
}

/// What [`read_within`] read.
enum Read<'a> {
    /// The whole body, within the cap and the budget.
    Body(Vec<u8>),
    /// The body passes the cap (or announces a `Content-Length` over it).
    OverCap,
    /// The body passes what is left of the budget (or announces it).
    OverBudget(&'a DownloadBudget),
}

/// Settles a budget ([`DownloadBudget::settle`]) when a download ends, however it ends (an answer,
/// an error, a timeout dropping the future).
struct Settle<'a>(Option<&'a DownloadBudget>);

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        if let Some(budget) = self.0 {
            budget.settle();
        }
    }
}

/// The body of `response`, read at most `cap` bytes and, with `budget`, each chunk charged to
/// it as it arrives: nothing is read past a `Content-Length` over either, and reading stops at
/// the chunk passing either. The cap, the narrower bound, is checked first.
async fn read_within<'a>(
    response: &mut reqwest::Response,
    cap: usize,
    budget: Option<&'a DownloadBudget>,
) -> Result<Read<'a>, reqwest::Error> {
    if let Some(length) = response.content_length() {
        if usize::try_from(length).map_or(true, |length| length > cap) {
            return Ok(Read::OverCap);
        }
        if let Some(budget) = budget
            && !budget.admits(length).await
        {
            return Ok(Read::OverBudget(budget));
        }
    }
    let _settle = Settle(budget);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(Read::OverCap);
        }
        if let Some(budget) = budget
            && !budget.charge(chunk.len()).await
        {
            return Ok(Read::OverBudget(budget));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Read::Body(body))
}

/// The first `limit` bytes of `response`'s body (for an error message), and whether there was
/// more; the rest is not read.
pub(crate) async fn read_prefix(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut prefix = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - prefix.len();
        if chunk.len() > room {
            prefix.extend_from_slice(&chunk[..room]);
            return Ok((prefix, true));
        }
        prefix.extend_from_slice(&chunk);
        if prefix.len() == limit {
            // More only if the body goes on.
            let more = response.content_length().is_none_or(|length| length > limit as u64);
            return Ok((prefix, more));
        }
    }
    Ok((prefix, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_budget_admits_what_is_left_charges_what_is_read_and_stays_passed() {
        let budget = DownloadBudget::new(10, "registry.example/team/app@sha256:00");
        assert!(budget.admits(10).await, "a declared size of all that is left");
        assert!(budget.charge(6).await);
        assert!(!budget.exceeded());
        assert!(budget.admits(4).await);
        assert!(!budget.admits(5).await, "a declared size over what is left");
        assert!(budget.exceeded());
        // Once passed, nothing more is admitted or charged.
        assert!(!budget.admits(0).await);
        assert!(!budget.charge(0).await);
        let budget = DownloadBudget::new(10, "registry.example/team/app@sha256:00");
        assert!(budget.charge(10).await);
        assert!(
            !budget.charge(1).await,
            "bytes read past the cap, whatever was declared"
        );
        assert_eq!(budget.used(), 11);
        assert!(!budget.admits(u64::MAX).await);
        assert_eq!(
            budget.over_budget().to_string(),
            "the total download of the verification of registry.example/team/app@sha256:00 is larger than the \
             cap of 10 bytes (--max-verification-bytes)"
        );
    }

    const IMAGE: &str = "registry.example/team/app@sha256:00";

    /// A budget drawing on `pool` whose waits end at once (its deadline is now).
    fn impatient(pool: &Arc<DownloadPool>, image: &str) -> DownloadBudget {
        POOL_DEADLINE.sync_scope(tokio::time::Instant::now(), || {
            DownloadBudget::new(1_000, image).drawing_on(pool)
        })
    }

    #[tokio::test]
    async fn a_pool_gives_what_fits_refuses_what_does_not_by_the_deadline_and_keeps_its_high_water_mark() {
        let pool = DownloadPool::with_allowance(10, 0);
        let now = tokio::time::Instant::now();
        assert!(pool.take(6, now).await.is_ok());
        assert!(pool.take(4, now).await.is_ok(), "up to the cap");
        assert!(
            pool.take(1, now).await.is_err(),
            "past the cap: refused at the deadline"
        );
        assert_eq!((pool.in_use(), pool.waits()), (10, 1));
        pool.give_back(7);
        assert!(pool.take(0, now).await.is_ok() && pool.take(7, now).await.is_ok());
        pool.give_back(10);
        assert_eq!((pool.in_use(), pool.high_water()), (0, 10));
    }

    #[tokio::test]
    async fn a_budget_takes_from_the_pool_only_past_its_allowance_and_gives_it_back_on_drop() {
        let pool = Arc::new(DownloadPool::with_allowance(100, 10));
        let budget = impatient(&pool, IMAGE);
        assert!(budget.charge(10).await, "the allowance");
        assert_eq!(pool.in_use(), 0, "the allowance is not taken from the pool");
        assert!(budget.charge(5).await);
        assert_eq!((pool.in_use(), budget.pooled()), (5, 5));
        // A chunk straddling nothing: all of it past the allowance.
        assert!(budget.charge(20).await);
        assert_eq!(pool.in_use(), 25);
        let other = impatient(&pool, IMAGE);
        assert!(other.charge(8).await, "within its own allowance");
        assert!(
            other.charge(77).await,
            "2 of the allowance, 75 from the pool: the pool is full"
        );
        assert_eq!(pool.in_use(), 100);
        drop(budget);
        assert_eq!(pool.in_use(), 75, "given back on drop");
        drop(other);
        assert_eq!((pool.in_use(), pool.high_water(), pool.waits()), (0, 100, 0));
        // A chunk crossing the allowance takes only its part past it.
        let budget = impatient(&pool, IMAGE);
        assert!(budget.charge(7).await && budget.charge(6).await);
        assert_eq!(pool.in_use(), 3);
        // A declared size is taken before the download, and the bytes then read within it take
        // nothing more.
        assert!(budget.admits(20).await);
        assert_eq!(pool.in_use(), 23);
        assert!(budget.charge(20).await);
        assert_eq!((pool.in_use(), budget.pooled()), (23, 23));
    }

    /// Found by a review: a declared size was taken from the pool before the download and kept
    /// for the whole verification, however little was sent. A download ending (read, failed or
    /// dropped) gives back what it did not read.
    #[tokio::test]
    async fn a_declared_size_not_read_goes_back_to_the_pool_when_the_download_ends() {
        let pool = Arc::new(DownloadPool::with_allowance(100, 10));
        let budget = impatient(&pool, IMAGE);
        assert!(
            budget.admits(90).await,
            "80 past the allowance, taken before the download"
        );
        assert_eq!(pool.in_use(), 80);
        {
            let _download = Settle(Some(&budget));
            assert!(budget.charge(12).await, "ten bytes of allowance, two past it");
            assert_eq!(pool.in_use(), 80, "read within what was taken");
        }
        assert_eq!(
            (pool.in_use(), budget.pooled()),
            (2, 2),
            "the 78 bytes not read given back"
        );
        // Read in full: nothing to give back; settling twice changes nothing.
        assert!(budget.admits(30).await);
        assert!(budget.charge(30).await);
        budget.settle();
        budget.settle();
        assert_eq!((pool.in_use(), budget.pooled()), (32, 32));
        drop(budget);
        assert_eq!(pool.in_use(), 0);
    }

    /// Found by a review: a hold of more than `u32::MAX` bytes is taken in pieces, and a wait
    /// dropped after the first piece kept it for good. It is given back.
    #[tokio::test]
    async fn a_wait_dropped_after_its_first_piece_gives_the_piece_back() {
        let cap = u32::MAX as usize + 10;
        let pool = DownloadPool::with_allowance(cap, 0);
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        assert!(pool.take(5, far).await.is_ok());
        let wait = pool.take(cap, far);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), wait)
                .await
                .is_err(),
            "waits for the five bytes held"
        );
        assert_eq!(pool.in_use(), 5, "the piece taken before the wait given back");
    }

    #[tokio::test]
    async fn a_charge_the_pool_cannot_give_by_the_deadline_fails_the_verification_with_its_own_error() {
        let pool = Arc::new(DownloadPool::with_allowance(10, 4));
        let holder = impatient(&pool, IMAGE);
        assert!(holder.charge(12).await, "4 of the allowance, 8 from the pool");
        let refused = impatient(&pool, "registry.example/team/other@sha256:11");
        assert!(
            refused.charge(4).await,
            "an allowance is never refused, the pool full or not"
        );
        assert!(refused.admits(2).await, "2 bytes past the allowance still fit");
        assert!(!refused.admits(3).await, "a declared size the pool has no room for");
        assert!(refused.refused_by_pool() && refused.exceeded());
        assert!(!refused.charge(0).await, "once refused, the budget stays passed");
        let error = refused.over_budget();
        assert_eq!(
            error,
            BoundedError::Inflight(InflightExhausted {
                image: "registry.example/team/other@sha256:11".to_owned(),
                cap: 10,
            })
        );
        let message = error.to_string();
        assert!(message.contains("--max-inflight-download-bytes"), "{message}");
        assert!(message.contains("transient"), "{message}");
        assert!(!message.contains("--max-verification-bytes"), "{message}");
        drop(refused);
        // Refused while reading (no size declared): nothing of the refused chunk is taken.
        let reading = impatient(&pool, IMAGE);
        assert!(reading.charge(4).await);
        assert!(!reading.charge(3).await);
        assert!(matches!(reading.over_budget(), BoundedError::Inflight(_)));
        assert_eq!((pool.in_use(), reading.pooled()), (8, 0));
        drop((holder, reading));
        assert_eq!((pool.in_use(), pool.high_water(), pool.refusals()), (0, 10, 2));
        // The budget's own cap comes first, and keeps its own error.
        let own = DownloadBudget::new(5, IMAGE).drawing_on(&pool);
        assert!(!own.charge(6).await);
        assert!(!own.refused_by_pool());
        assert!(matches!(own.over_budget(), BoundedError::OverCap { .. }));
        // More than the whole pool alone: refused at once, for good, without waiting.
        let alone = DownloadBudget::new(1_000, IMAGE).drawing_on(&pool);
        assert!(!alone.admits(15).await);
        assert!(matches!(alone.over_budget(), BoundedError::OverCap { cap: 10, .. }));
        assert_eq!((pool.in_use(), pool.refusals(), pool.waits()), (0, 3, 2));
    }

    #[tokio::test]
    async fn a_charge_waits_for_bytes_given_back_before_its_deadline_first_come_first_served() {
        let pool = Arc::new(DownloadPool::with_allowance(10, 0));
        let holder = DownloadBudget::new(1_000, IMAGE).drawing_on(&pool);
        assert!(holder.charge(8).await);
        let first = Arc::new(DownloadBudget::new(1_000, IMAGE).drawing_on(&pool));
        let second = Arc::new(DownloadBudget::new(1_000, IMAGE).drawing_on(&pool));
        let waiting = {
            let first = Arc::clone(&first);
            tokio::spawn(async move { first.admits(6).await })
        };
        while pool.waits() < 1 {
            tokio::task::yield_now().await;
        }
        let behind = {
            let second = Arc::clone(&second);
            tokio::spawn(async move { second.charge(1).await })
        };
        while pool.waits() < 2 {
            tokio::task::yield_now().await;
        }
        // One byte is free, yet the later, smaller charge does not pass the earlier one.
        assert!(!behind.is_finished());
        drop(holder);
        assert!(
            waiting.await.expect("task"),
            "admitted once the holder gave its bytes back"
        );
        assert!(behind.await.expect("task"));
        assert_eq!((pool.in_use(), pool.refusals()), (7, 0));
        drop((first, second));
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn a_verification_dropped_at_its_deadline_gives_its_bytes_back() {
        let pool = Arc::new(DownloadPool::with_allowance(100, 0));
        let verification = {
            let pool = Arc::clone(&pool);
            async move {
                let budget = DownloadBudget::new(1_000, IMAGE).drawing_on(&pool);
                assert!(budget.charge(60).await);
                // A registry that never answers again.
                std::future::pending::<()>().await;
                drop(budget);
            }
        };
        let handle = tokio::spawn(verification);
        while pool.in_use() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.in_use(), 60);
        // A verification waiting for the pool, dropped while it waits: what its wait had been
        // given goes back, and it counts as refused.
        let waiter = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                let budget = DownloadBudget::new(1_000, IMAGE).drawing_on(&pool);
                budget.charge(50).await
            })
        };
        while pool.waits() == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        assert!(waiter.await.expect_err("aborted").is_cancelled());
        assert_eq!((pool.in_use(), pool.refusals()), (60, 1));
        // What the evaluation deadline does (`Capabilities::run` aborts the task).
        handle.abort();
        assert!(handle.await.expect_err("aborted").is_cancelled());
        assert_eq!(pool.in_use(), 0);
        // A future dropped by a timeout, as a verification under `tokio::time::timeout`.
        let budget_future = async {
            let budget = DownloadBudget::new(1_000, IMAGE).drawing_on(&pool);
            assert!(budget.charge(30).await);
            std::future::pending::<()>().await;
        };
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(1), budget_future).await;
        assert!(timed_out.is_err());
        assert_eq!(pool.in_use(), 0);
        assert!(pool.high_water() >= 60 && pool.high_water() <= 100);
    }
}
