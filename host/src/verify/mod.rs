//! Verification of cosign signatures with sigstore-rs, as Kubewarden's policy-evaluator does it.
//!
//! A [`Verifier`] answers the module's `oci` host calls (`v1/verify`, `v2/verify`, our
//! `v1/verify_keyless_regexp`) and the `oci/v1/*` registry look-ups. A tag is resolved to its
//! digest, the signatures of that digest are fetched once (whatever the number of authorities
//! asking), checked against the request's constraints, and the outcome is cached: successes for
//! [`VerifierConfig::success_ttl`], failures for [`VerifierConfig::failure_ttl`].
//! Tag resolutions, signature sets and the answers of the `oci/v1/*` look-ups are reused for
//! [`EVALUATION_WINDOW`], never longer than the failure TTL.

pub mod attestations;
pub mod bundle;
pub mod cache;
pub mod certificate;
pub mod constraints;
mod error;
mod fulcio;
mod layers;
mod rekor;
mod sct;
mod signatures;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubewarden_policy_sdk::host_capabilities::verification::VerificationResponse;
use kubewarden_policy_sdk::host_capabilities::{SigstoreVerificationInputV1, SigstoreVerificationInputV2};
use oci_client::Reference;
use oci_client::manifest::OciManifest;
use serde::{Deserialize, Serialize};

use cache::{Expiring, TtlCache, expiry_after};
use constraints::{Plan, TrustNeed};
pub use error::VerifyError;
use signatures::{Explanation, SignatureSet};

pub use crate::registry::DownloadLimits;
use crate::registry::{DockerCredentials, DownloadBudget, DownloadPool, ManifestAndConfig, RegistryClient};

/// Default time a successful verification is reused (policy-evaluator's value).
pub const DEFAULT_SUCCESS_TTL: Duration = Duration::from_secs(60);
/// Default time a failed verification is reused.
pub const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(5);
/// Default bound of one registry round trip.
pub const DEFAULT_REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);
/// Tag resolutions and fetched signatures are reused this long (never longer than
/// [`VerifierConfig::failure_ttl`]), so that the authorities of one evaluation share a single
/// fetch per image digest.
pub const EVALUATION_WINDOW: Duration = Duration::from_secs(2);
/// Default bound of each verifier cache (verifications, tag resolutions, signature sets, `oci/v1/*`
/// answers).
pub const DEFAULT_CACHE_MAX_ENTRIES: u64 = 10_000;
/// Default byte budget of each of the two verifier caches holding large values, the
/// `oci/v1/oci_manifest` and `oci/v1/oci_manifest_config` answers (`--cache-max-bytes`), as
/// estimated by [`oci_manifest_bytes`] and [`manifest_and_config_bytes`].
///
/// A manifest is read up to 1 MiB and a config up to 1 MiB of JSON, several times that once
/// parsed: at 10,000 entries each, a registry serving many distinct images could make these
/// caches hold gigabytes. The Gatekeeper provider's pod is limited to 512 MiB
/// (deploy/gatekeeper/deployment.yaml); 64 MiB each, 128 MiB for both, is a quarter of it,
/// leaving the rest to the policy instances, the other caches and the answer memo, while still
/// holding thousands of typical answers (a few KiB each) or dozens of worst-case ones.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Everything a [`Verifier`] needs to reach registries and trust signatures.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// kwctl's sources.yaml: plain-HTTP hosts and extra CAs per host.
    pub sources: crate::registry::Sources,
    /// Directory holding a docker `config.json` with registry credentials (or the file itself).
    pub docker_config_dir: Option<PathBuf>,
    /// Fulcio CAs and Rekor keys; keyless and Rekor checks fail without it.
    pub trust: Option<crate::trust::TrustRoot>,
    /// How long a successful verification is reused.
    pub success_ttl: Duration,
    /// How long a failed verification is reused.
    pub failure_ttl: Duration,
    /// Upper bound for one registry round trip (also the connect and read timeouts).
    pub registry_timeout: Duration,
    /// Most entries each cache keeps (least recently used ones are evicted first).
    pub cache_max_entries: u64,
    /// Most bytes (estimated) each of the `oci/v1/oci_manifest` and `oci/v1/oci_manifest_config`
    /// answer caches keeps; an answer heavier than this alone is not kept.
    pub cache_max_bytes: u64,
    /// Caps on signature downloads.
    pub limits: DownloadLimits,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            sources: crate::registry::Sources::default(),
            docker_config_dir: None,
            trust: None,
            success_ttl: DEFAULT_SUCCESS_TTL,
            failure_ttl: DEFAULT_FAILURE_TTL,
            registry_timeout: DEFAULT_REGISTRY_TIMEOUT,
            cache_max_entries: DEFAULT_CACHE_MAX_ENTRIES,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            limits: DownloadLimits::default(),
        }
    }
}

/// Payload of `cluster-image-policy`/`oci`/`v1/verify_keyless_regexp` (docs/wire-protocol.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessRegexpRequest {
    /// Image reference to verify.
    pub image: String,
    /// Exact OIDC issuer.
    pub issuer: Option<String>,
    /// Issuer pattern, matched anchored.
    pub issuer_regexp: Option<String>,
    /// Exact email or URI subject.
    pub subject: Option<String>,
    /// Subject pattern, matched anchored.
    pub subject_regexp: Option<String>,
    /// Annotations the signature payload must carry.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Accept a certificate without a verified SCT (policy-controller's `insecureIgnoreSCT`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_ignore_sct: bool,
}

/// Which cosign signature storage a verification reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// The `sha256-<hex>.sig` tag only (what Kubewarden's `v1/verify` and `v2/verify` read).
    #[default]
    Legacy,
    /// Sigstore bundles attached as OCI referrers only (policy-controller's
    /// `signatureFormat: bundle`).
    Bundle,
    /// Both: the legacy tag, then the referrers.
    Any,
}

/// The verification inside a `cluster-image-policy`/`oci`/`v1/verify_with_format` payload.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FormatRequestKind {
    /// As `kubewarden`/`oci`/`v2/verify` takes it.
    V2(SigstoreVerificationInputV2),
    /// As `cluster-image-policy`/`oci`/`v1/verify_keyless_regexp` takes it.
    KeylessRegexp(KeylessRegexpRequest),
}

/// Payload of `cluster-image-policy`/`oci`/`v1/verify_with_format` (docs/wire-protocol.md).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatRequest {
    /// Where signatures are read.
    pub signature_format: SignatureFormat,
    /// What they must satisfy.
    pub request: FormatRequestKind,
}

impl FormatRequest {
    /// The verification request and its format.
    pub fn into_parts(self) -> (VerificationRequest, SignatureFormat) {
        (self.request.into(), self.signature_format)
    }
}

impl From<FormatRequestKind> for VerificationRequest {
    fn from(kind: FormatRequestKind) -> Self {
        match kind {
            FormatRequestKind::V2(input) => Self::V2(input),
            FormatRequestKind::KeylessRegexp(input) => Self::KeylessRegexp(input),
        }
    }
}

/// The answer of `cluster-image-policy`/`oci`/`v1/verify_legacy_then_bundle` (docs/wire-protocol.md):
/// which storage verified the request, or why each failed: `{"legacy":"sha256:…"}`,
/// `{"bundle":"sha256:…"}` or `{"unverified":["<legacy reason>","<bundle reason>"]}` (the module
/// reads this in every evaluation under a key rotation: the short form costs it less code and
/// fewer instructions than named fields). Every outcome is an answer, not a host error, so that
/// the module joins the two reasons itself, as it does after two calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LegacyThenBundle {
    /// The legacy `.sig` tag verified this digest (the module then checks its layers itself).
    Legacy(String),
    /// The legacy tag verified nothing; a sigstore bundle verified this digest.
    Bundle(String),
    /// Neither verified: why the legacy tag did not, then why no bundle did, each as the call
    /// reading that storage alone fails with it.
    Unverified(String, String),
}

/// One verification asked by a policy.
#[derive(Debug)]
pub enum VerificationRequest {
    /// `kubewarden`/`oci`/`v1/verify`.
    V1(SigstoreVerificationInputV1),
    /// `kubewarden`/`oci`/`v2/verify`.
    V2(SigstoreVerificationInputV2),
    /// `cluster-image-policy`/`oci`/`v1/verify_keyless_regexp`.
    KeylessRegexp(KeylessRegexpRequest),
    /// `cluster-image-policy`/`oci`/`v1/verify_key_with_hash`: a `SigstorePubKeyVerify`
    /// verified with `hash` (`key.hashAlgorithm`).
    KeyWithHash {
        hash: constraints::HashAlgorithm,
        input: SigstoreVerificationInputV2,
    },
}

/// Payload of `cluster-image-policy`/`oci`/`v1/verify_key_with_hash` (docs/wire-protocol.md): a
/// `SigstorePubKeyVerify` request whose signatures must verify with `hash_algorithm`, read from
/// `signature_format`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHashRequest {
    /// Where signatures are read.
    pub signature_format: SignatureFormat,
    /// The hash the signatures were made over (`key.hashAlgorithm`).
    pub hash_algorithm: constraints::HashAlgorithm,
    /// The keys and annotations.
    #[serde(deserialize_with = "pub_key_request")]
    pub request: SigstoreVerificationInputV2,
}

/// A `SigstorePubKeyVerify` request read strictly, for the operations that carry a hash: the
/// SDK's `SigstoreVerificationInputV2` ignores fields it does not know, so a `hash_algorithm`
/// put inside it by a caller would be dropped and the key verified with another hash; another
/// kind of request (keyless) is refused here, where the operation is read.
pub fn pub_key_request<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SigstoreVerificationInputV2, D::Error> {
    #[derive(Deserialize)]
    enum Kind {
        SigstorePubKeyVerify,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PubKeyVerify {
        #[serde(rename = "type")]
        _kind: Kind,
        image: String,
        pub_keys: Vec<String>,
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    let request = PubKeyVerify::deserialize(deserializer)?;
    Ok(SigstoreVerificationInputV2::SigstorePubKeyVerify {
        image: request.image,
        pub_keys: request.pub_keys,
        annotations: request.annotations,
    })
}

impl KeyHashRequest {
    /// The verification request and its format.
    pub fn into_parts(self) -> (VerificationRequest, SignatureFormat) {
        (
            VerificationRequest::KeyWithHash {
                hash: self.hash_algorithm,
                input: self.request,
            },
            self.signature_format,
        )
    }
}

impl VerificationRequest {
    /// Identity of the request for the result cache: its wire form.
    fn cache_key(&self) -> String {
        let encoded = match self {
            Self::V1(input) => serde_json::to_string(input).map(|s| format!("v1 {s}")),
            Self::V2(input) => serde_json::to_string(input).map(|s| format!("v2 {s}")),
            Self::KeylessRegexp(input) => serde_json::to_string(input).map(|s| format!("regexp {s}")),
            Self::KeyWithHash { hash, input } => serde_json::to_string(input).map(|s| format!("{hash} {s}")),
        };
        encoded.unwrap_or_else(|_| format!("{self:?}"))
    }
}

// Size estimates of the large cached answers: the heap bytes of their strings, collections and
// JSON nodes, walked once when the answer is inserted (no re-serialisation), allocator slack
// and collection spare capacity left out. A failure weighs nothing of its own (its entry
// still weighs the per-entry floor of `TtlCache::with_byte_budget`).

/// Bytes of a `String` field: its header and its text.
fn string_bytes(s: &str) -> u64 {
    (size_of::<String>() + s.len()) as u64
}

fn optional_string_bytes(s: &Option<String>) -> u64 {
    s.as_deref().map_or(0, string_bytes)
}

fn strings_bytes(list: &Option<Vec<String>>) -> u64 {
    list.iter().flatten().map(|s| string_bytes(s)).sum()
}

/// Bytes of an annotation map: both strings of each entry and the B-tree's pointers.
fn annotations_bytes(annotations: &Option<BTreeMap<String, String>>) -> u64 {
    annotations
        .iter()
        .flatten()
        .map(|(key, value)| string_bytes(key) + string_bytes(value) + 16)
        .sum()
}

fn descriptor_bytes(d: &oci_client::manifest::OciDescriptor) -> u64 {
    size_of_val(d) as u64
        + d.media_type.len() as u64
        + d.digest.len() as u64
        + strings_bytes(&d.urls)
        + annotations_bytes(&d.annotations)
        + optional_string_bytes(&d.artifact_type)
}

fn image_manifest_bytes(m: &oci_client::manifest::OciImageManifest) -> u64 {
    size_of_val(m) as u64
        + optional_string_bytes(&m.media_type)
        + descriptor_bytes(&m.config)
        + m.layers.iter().map(descriptor_bytes).sum::<u64>()
        + m.subject.as_ref().map_or(0, descriptor_bytes)
        + optional_string_bytes(&m.artifact_type)
        + annotations_bytes(&m.annotations)
}

/// Estimated bytes of a manifest or index kept by the `oci/v1/oci_manifest` cache.
pub fn oci_manifest_bytes(manifest: &OciManifest) -> u64 {
    match manifest {
        OciManifest::Image(m) => image_manifest_bytes(m),
        OciManifest::ImageIndex(index) => {
            let entries = index.manifests.iter().map(|e| {
                let platform = e.platform.as_ref().map_or(0, |p| {
                    size_of_val(p) as u64
                        + p.architecture.to_string().len() as u64
                        + p.os.to_string().len() as u64
                        + optional_string_bytes(&p.os_version)
                        + strings_bytes(&p.os_features)
                        + optional_string_bytes(&p.variant)
                        + strings_bytes(&p.features)
                });
                size_of_val(e) as u64
                    + e.media_type.len() as u64
                    + e.digest.len() as u64
                    + platform
                    + annotations_bytes(&e.annotations)
                    + optional_string_bytes(&e.artifact_type)
            });
            size_of_val(index) as u64
                + optional_string_bytes(&index.media_type)
                + entries.sum::<u64>()
                + optional_string_bytes(&index.artifact_type)
                + annotations_bytes(&index.annotations)
        }
    }
}

/// Estimated bytes of a parsed JSON value: every node, the text of strings and keys, and each
/// object entry's key header and B-tree pointers. Recursion is bounded by serde_json's nesting
/// limit (128) the config was parsed under.
pub fn json_bytes(value: &serde_json::Value) -> u64 {
    use serde_json::Value;
    size_of::<Value>() as u64
        + match value {
            Value::String(s) => s.len() as u64,
            Value::Array(items) => items.iter().map(json_bytes).sum(),
            Value::Object(map) => map.iter().map(|(key, v)| string_bytes(key) + 16 + json_bytes(v)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

/// Estimated bytes of an answer kept by the `oci/v1/oci_manifest_config` cache.
pub fn manifest_and_config_bytes(answer: &ManifestAndConfig) -> u64 {
    image_manifest_bytes(&answer.manifest) + string_bytes(&answer.digest) + json_bytes(&answer.config)
}

/// Cache counters, exported as metrics by the provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    /// Verifications answered from the cache (or by joining one in flight).
    pub hits: u64,
    /// Verifications that ran.
    pub misses: u64,
}

/// Verifies cosign signatures, caching results across evaluations.
pub struct Verifier {
    config: VerifierConfig,
    registry: RegistryClient,
    results: TtlCache<String, Result<String, VerifyError>>,
    digests: TtlCache<String, Result<String, VerifyError>>,
    signatures: TtlCache<String, Result<Arc<SignatureSet>, VerifyError>>,
    /// `oci/v1/oci_manifest` answers (the module's binding check reads `.sig` manifests).
    manifests: TtlCache<String, Result<OciManifest, VerifyError>>,
    /// `oci/v1/oci_manifest_config` answers.
    configs: TtlCache<String, Result<ManifestAndConfig, VerifyError>>,
    /// The bytes all verifications hold at once (`--max-inflight-download-bytes`): one pool
    /// per verifier, one verifier per process.
    downloads: Arc<DownloadPool>,
}

impl Verifier {
    /// Builds a verifier; fails when the docker config cannot be read.
    pub fn new(config: VerifierConfig) -> Result<Self, VerifyError> {
        let credentials = match &config.docker_config_dir {
            Some(path) => DockerCredentials::from_path(path).map_err(|e| VerifyError::Config(e.to_string()))?,
            None => DockerCredentials::default(),
        };
        let registry = RegistryClient::new(config.sources.clone(), credentials, config.registry_timeout);
        let max_entries = config.cache_max_entries.max(1);
        let max_bytes = config.cache_max_bytes;
        let downloads = Arc::new(DownloadPool::new(config.limits.max_inflight_download_bytes));
        Ok(Self {
            config,
            registry,
            results: TtlCache::new(max_entries),
            digests: TtlCache::new(max_entries),
            signatures: TtlCache::new(max_entries),
            manifests: TtlCache::with_byte_budget(
                max_entries,
                max_bytes,
                |answer: &Result<OciManifest, VerifyError>| answer.as_ref().map_or(0, oci_manifest_bytes),
            ),
            configs: TtlCache::with_byte_budget(
                max_entries,
                max_bytes,
                |answer: &Result<ManifestAndConfig, VerifyError>| answer.as_ref().map_or(0, manifest_and_config_bytes),
            ),
            downloads,
        })
    }

    /// The pool of the bytes the verifications of this verifier hold at once
    /// (`--max-inflight-download-bytes`): what is taken, the high-water mark, the refusals.
    pub fn download_pool(&self) -> &DownloadPool {
        &self.downloads
    }

    /// A budget of `--max-verification-bytes` for the verification of `image`, drawing on the
    /// pool past its allowance.
    fn verification_budget(&self, image: String) -> DownloadBudget {
        self.config.limits.verification_budget_in(&self.downloads, image)
    }

    /// Estimated bytes now held by the `oci/v1/oci_manifest` and the `oci/v1/oci_manifest_config`
    /// answer caches (each entry at least `--cache-max-bytes` over `--cache-max-entries`).
    pub async fn oci_answer_cache_bytes(&self) -> (u64, u64) {
        (self.manifests.weighted_size().await, self.configs.weighted_size().await)
    }

    /// Verifies the signatures `request` asks for; the answer names the verified digest.
    pub async fn verify(&self, request: VerificationRequest) -> Result<VerificationResponse, VerifyError> {
        self.verify_expiring(request).await.value
    }

    /// [`Verifier::verify`] reading the signatures stored in `format`.
    pub async fn verify_in(
        &self,
        request: VerificationRequest,
        format: SignatureFormat,
    ) -> Result<VerificationResponse, VerifyError> {
        self.verify_expiring_in(&request, format).await.value
    }

    /// [`Verifier::verify`], with the instant the cached answer expires: a memo of the answer
    /// must not keep it longer (a moved tag would be answered with its old digest).
    pub async fn verify_expiring(
        &self,
        request: VerificationRequest,
    ) -> Expiring<Result<VerificationResponse, VerifyError>> {
        self.verify_expiring_in(&request, SignatureFormat::Legacy).await
    }

    /// [`Verifier::verify_expiring`] reading the signatures stored in `format`.
    pub async fn verify_expiring_in(
        &self,
        request: &VerificationRequest,
        format: SignatureFormat,
    ) -> Expiring<Result<VerificationResponse, VerifyError>> {
        let key = match format {
            SignatureFormat::Legacy => request.cache_key(),
            other => format!("{other:?} {}", request.cache_key()),
        };
        let (success_ttl, failure_ttl) = (self.config.success_ttl, self.config.failure_ttl);
        let Expiring { value, expires } = self
            .results
            .get_or_compute(
                key,
                Box::pin(self.verify_uncached(request, format)),
                |outcome| match outcome {
                    Ok(_) => success_ttl,
                    // Transient: the next evaluation asks again (nothing is kept of a refusal that
                    // says nothing about the image).
                    Err(error) if error.is_transient() => Duration::ZERO,
                    Err(_) => failure_ttl,
                },
            )
            .await;
        Expiring {
            value: value.map(|digest| VerificationResponse {
                is_trusted: true,
                digest,
            }),
            expires,
        }
    }

    /// `v1/verify_legacy_then_bundle`: `request` on the legacy `.sig` tag, then, when that
    /// verified nothing, in sigstore bundles: the two verifications the module would otherwise
    /// ask one call each, from the same cached results (a key the legacy tag verifies fetches
    /// no referrers), with the earlier instant either cached answer expires.
    pub async fn verify_legacy_then_bundle_expiring(
        &self,
        request: VerificationRequest,
    ) -> Expiring<Result<LegacyThenBundle, VerifyError>> {
        let legacy = self.verify_expiring_in(&request, SignatureFormat::Legacy).await;
        let legacy_failure = match legacy.value {
            Ok(response) => {
                return Expiring {
                    value: Ok(LegacyThenBundle::Legacy(response.digest)),
                    expires: legacy.expires,
                };
            }
            Err(failure) => failure,
        };
        let bundle = self.verify_expiring_in(&request, SignatureFormat::Bundle).await;
        Expiring {
            value: Ok(match bundle.value {
                Ok(response) => LegacyThenBundle::Bundle(response.digest),
                Err(failure) => LegacyThenBundle::Unverified(legacy_failure.to_string(), failure.to_string()),
            }),
            expires: legacy.expires.min(bundle.expires),
        }
    }

    /// Verification counters of the result cache.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.results.hits(),
            misses: self.results.misses(),
        }
    }

    /// The registry client, configured like the verifier.
    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// `oci/v1/manifest_digest`: the digest of the manifest `image` names. Like the `oci/v1/*`
    /// look-ups below, reused for `Verifier::data_ttl` (the tag resolutions of verifications
    /// are the same entries): Kubewarden's policy-evaluator keeps these answers 60 s; here they
    /// follow the signature data they often are (a `.sig` manifest read by the module's binding
    /// check), which a verification reuses no longer either.
    pub async fn manifest_digest(&self, image: &str) -> Result<String, VerifyError> {
        self.manifest_digest_expiring(image).await.value
    }

    /// [`Verifier::manifest_digest`], with the instant the kept answer expires (as
    /// [`Verifier::verify_expiring`]: a memo of the answer must not keep it longer).
    pub async fn manifest_digest_expiring(&self, image: &str) -> Expiring<Result<String, VerifyError>> {
        match RegistryClient::parse_reference(image) {
            Ok(reference) => self.resolve_expiring(&reference).await,
            // Nothing was fetched or kept: a memo may keep the refusal as long as a failure.
            Err(error) => Expiring {
                value: Err(error.into()),
                expires: expiry_after(Instant::now(), self.data_ttl()),
            },
        }
    }

    /// `oci/v1/oci_manifest`: the manifest or index `image` names.
    pub async fn oci_manifest(&self, image: &str) -> Result<OciManifest, VerifyError> {
        self.oci_manifest_expiring(image).await.value
    }

    /// [`Verifier::oci_manifest`], with the instant the kept answer expires.
    pub async fn oci_manifest_expiring(&self, image: &str) -> Expiring<Result<OciManifest, VerifyError>> {
        let fetch = self.registry.oci_manifest(image, &self.config.limits);
        self.reused(&self.manifests, image, fetch).await
    }

    /// `oci/v1/oci_manifest_config`: the image manifest, its digest and its configuration.
    pub async fn oci_manifest_config(&self, image: &str) -> Result<ManifestAndConfig, VerifyError> {
        self.oci_manifest_config_expiring(image).await.value
    }

    /// [`Verifier::oci_manifest_config`], with the instant the kept answer expires.
    pub async fn oci_manifest_config_expiring(&self, image: &str) -> Expiring<Result<ManifestAndConfig, VerifyError>> {
        let fetch = self.registry.oci_manifest_config(image, &self.config.limits);
        self.reused(&self.configs, image, fetch).await
    }

    /// The answer of `fetch` about `image`, kept in `cache` for [`Verifier::data_ttl`] (a
    /// transient failure not at all), with the instant its entry expires.
    async fn reused<V: Clone + Send + Sync + 'static, E: Into<VerifyError>>(
        &self,
        cache: &TtlCache<String, Result<V, VerifyError>>,
        image: &str,
        fetch: impl Future<Output = Result<V, E>>,
    ) -> Expiring<Result<V, VerifyError>> {
        let fetch = async { fetch.await.map_err(Into::into) };
        cache
            .get_or_compute(image.to_owned(), Box::pin(fetch), |answer| match answer {
                Err(error) if error.is_transient() => Duration::ZERO,
                _ => self.data_ttl(),
            })
            .await
    }

    async fn verify_uncached(
        &self,
        request: &VerificationRequest,
        format: SignatureFormat,
    ) -> Result<String, VerifyError> {
        let plan = Plan::from_request(request)?;
        self.check_trust(plan.trust, plan.require_sct)?;
        let reference = RegistryClient::parse_reference(&plan.image)?;
        // Also for a digest reference: one quick round trip says whether the registry is up and
        // the manifest exists before sigstore-rs makes several.
        let digest = self.resolve(&reference).await?;
        let set = self.signature_set(&reference, &digest, format).await?;
        let unmet: Vec<&str> = plan
            .checks
            .iter()
            .filter(|check| !check.is_satisfied(&set.layers))
            .map(|check| check.unmet())
            .collect();
        if unmet.is_empty() {
            return Ok(digest);
        }
        Err(self.failure(&set, &unmet))
    }

    fn check_trust(&self, need: TrustNeed, require_sct: bool) -> Result<(), VerifyError> {
        let trust = self.config.trust.as_ref();
        match need {
            TrustNeed::None => Ok(()),
            TrustNeed::Keyless => match trust {
                None => Err(VerifyError::TrustConfigMissing("keyless verification")),
                Some(t) if t.fulcio_certificates().is_empty() => Err(VerifyError::Trust(
                    "it has no Fulcio certificate authority, needed for keyless verification".to_string(),
                )),
                Some(t) if t.rekor_public_keys().is_empty() => Err(VerifyError::Trust(
                    "it has no Rekor key, needed for keyless verification".to_string(),
                )),
                Some(t) if require_sct && t.ct_logs().is_empty() => Err(VerifyError::Trust(
                    "the trust root lacks CT log keys (ctlogs), needed to check the SCT of keyless certificates"
                        .to_string(),
                )),
                Some(_) => Ok(()),
            },
            TrustNeed::Rekor => match trust {
                None => Err(VerifyError::TrustConfigMissing("Rekor bundle verification")),
                Some(t) if t.rekor_public_keys().is_empty() => Err(VerifyError::Trust(
                    "it has no Rekor key, needed for Rekor bundle verification".to_string(),
                )),
                Some(_) => Ok(()),
            },
        }
    }

    /// How long tag resolutions and signature data are reused.
    fn data_ttl(&self) -> Duration {
        EVALUATION_WINDOW.min(self.config.failure_ttl)
    }

    /// The digest a reference points to (checked against the registry for a digest reference),
    /// shared by the look-ups of one evaluation.
    async fn resolve(&self, reference: &Reference) -> Result<String, VerifyError> {
        self.resolve_expiring(reference).await.value
    }

    /// [`Verifier::resolve`], with the instant the kept resolution expires.
    async fn resolve_expiring(&self, reference: &Reference) -> Expiring<Result<String, VerifyError>> {
        self.digests
            .get_or_compute(
                reference.whole(),
                Box::pin(async { Ok(self.registry.digest_of(reference, &self.config.limits).await?) }),
                |_| self.data_ttl(),
            )
            .await
    }

    /// The signatures of one digest, fetched once per evaluation window.
    async fn signature_set(
        &self,
        reference: &Reference,
        digest: &str,
        format: SignatureFormat,
    ) -> Result<Arc<SignatureSet>, VerifyError> {
        let key = format!(
            "{format:?} {}/{}@{digest}",
            reference.registry(),
            reference.repository()
        );
        self.signatures
            .get_or_compute(
                key,
                Box::pin(signatures::fetch(
                    &self.registry,
                    self.config.trust.as_ref(),
                    &self.config.limits,
                    &self.downloads,
                    reference,
                    digest,
                    format,
                )),
                |set| match set {
                    Err(error) if error.is_transient() => Duration::ZERO,
                    _ => self.data_ttl(),
                },
            )
            .await
            .value
    }

    /// The error for checks no trusted layer satisfied, with what was wrong with the others.
    fn failure(&self, set: &SignatureSet, unmet: &[&str]) -> VerifyError {
        let unmet = unmet.join("; ");
        match &set.explanation {
            Explanation::NoSignatures => VerifyError::NoSignatures {
                image: set.image.clone(),
            },
            Explanation::Rejected(reasons) if set.layers.is_empty() && !reasons.is_empty() => {
                VerifyError::Unsatisfied(reasons.join("; "))
            }
            Explanation::Rejected(reasons) if !reasons.is_empty() => {
                VerifyError::Unsatisfied(format!("{unmet}; {}", reasons.join("; ")))
            }
            _ => VerifyError::Unsatisfied(unmet),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: &T) {}

    /// `verify_key_with_hash` reads its key's request strictly: a field the SDK's request would
    /// drop (a `hash_algorithm` put inside it) or a keyless request is refused, not verified
    /// with another hash or planned and refused later (the attestation feature's review).
    #[test]
    fn a_key_hash_request_is_read_strictly() {
        let read = |request: &str| {
            serde_json::from_str::<KeyHashRequest>(&format!(
                r#"{{"signature_format":"legacy","hash_algorithm":"sha384","request":{request}}}"#
            ))
        };
        let key = r#"{"type":"SigstorePubKeyVerify","image":"r/a:v1","pub_keys":["k"],"annotations":null}"#;
        let (request, format) = read(key).expect("read").into_parts();
        assert_eq!(format, SignatureFormat::Legacy);
        assert!(matches!(
            request,
            VerificationRequest::KeyWithHash {
                hash: constraints::HashAlgorithm::Sha384,
                input: SigstoreVerificationInputV2::SigstorePubKeyVerify { .. },
            }
        ));
        for refused in [
            r#"{"type":"SigstorePubKeyVerify","image":"r/a:v1","pub_keys":["k"],"annotations":null,"hash_algorithm":"sha256"}"#,
            r#"{"type":"SigstoreKeylessVerify","image":"r/a:v1","keyless":[],"annotations":null}"#,
            r#"{"image":"r/a:v1","pub_keys":["k"]}"#,
        ] {
            assert!(read(refused).is_err(), "{refused}");
        }
    }

    /// The one-call answer's wire form, which the module reads (src/host.rs).
    #[test]
    fn legacy_then_bundle_answers_are_written_as_the_module_reads_them() {
        let written = |answer: LegacyThenBundle| serde_json::to_string(&answer).unwrap();
        assert_eq!(
            written(LegacyThenBundle::Legacy("sha256:1".into())),
            r#"{"legacy":"sha256:1"}"#
        );
        assert_eq!(
            written(LegacyThenBundle::Bundle("sha256:2".into())),
            r#"{"bundle":"sha256:2"}"#
        );
        assert_eq!(
            written(LegacyThenBundle::Unverified("no \"sig\"".into(), "none".into())),
            r#"{"unverified":["no \"sig\"","none"]}"#
        );
    }

    #[test]
    fn verifier_is_shareable_and_its_futures_can_be_spawned() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Verifier>();
        let verifier = Verifier::new(VerifierConfig::default()).expect("default config");
        let request = VerificationRequest::KeylessRegexp(KeylessRegexpRequest::default());
        send(&verifier.verify(request));
        send(&verifier.manifest_digest("example.com/app:v1"));
        send(&verifier.oci_manifest_config("example.com/app:v1"));
    }

    #[test]
    fn identical_requests_share_a_cache_key_and_different_ones_do_not() {
        let request = |image: &str| {
            VerificationRequest::V2(SigstoreVerificationInputV2::SigstorePubKeyVerify {
                image: image.to_string(),
                pub_keys: vec!["key".to_string()],
                annotations: None,
            })
        };
        assert_eq!(request("a:1").cache_key(), request("a:1").cache_key());
        assert_ne!(request("a:1").cache_key(), request("a:2").cache_key());
    }
}
