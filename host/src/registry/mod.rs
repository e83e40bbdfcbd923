//! Registry access shared by signature verification and the `oci/v1/*` host capabilities.
//!
//! One [`RegistryClient`] holds the sources (plain-HTTP hosts, extra CAs), the docker
//! credentials and the timeout; every round trip it makes is bounded by that timeout, and its
//! errors say which registry failed and how.
//!
//! The extra CAs of `sources.yaml` are trusted for the registry they are listed under and no
//! other: each such registry is reached with a client of its own (the platform's roots and its
//! CAs), every other registry with the client trusting the platform's roots alone.

mod bounded;
mod capped_auth;
mod capped_pull;
mod docker_config;
mod error;
mod sources;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use oci_client::Reference;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
    OciImageManifest, OciManifest,
};
use oci_client::secrets::RegistryAuth;

use crate::unique_keys::UniqueKeys;

pub use bounded::{
    BoundedError, DEFAULT_MAX_ATTESTATION_BYTES, DEFAULT_MAX_CONFIG_BYTES, DEFAULT_MAX_INFLIGHT_DOWNLOAD_BYTES,
    DEFAULT_MAX_LAYER_BYTES, DEFAULT_MAX_LAYERS, DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_VERIFICATION_BYTES,
    DEFAULT_POOL_WAIT, DEFAULT_VERIFICATION_ALLOWANCE, DownloadBudget, DownloadLimits, DownloadPool, IMAGE_MANIFEST,
    InflightExhausted, LayerCap, ManifestKind, REFERRER_MANIFEST, REFERRERS_INDEX, Referrer, Referrers,
    ReferrersSource, SIGNATURE_MANIFEST, with_pool_deadline,
};
pub use capped_auth::{ERROR_PREFIX_BYTES, MAX_TOKEN_BYTES, TOKEN_REUSE};
pub use docker_config::{DockerConfigError, DockerCredentials};
pub use error::RegistryError;
pub use sources::{SourceAuthority, Sources, SourcesError, registry_host};

/// The capped body readers, shared with `cip`'s other HTTP clients (the KMS clients).
pub(crate) use bounded::{read_capped, read_prefix};

/// Manifest media types accepted when a manifest is fetched as is.
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The answer of `oci/v1/oci_manifest_config`, written as policy-evaluator writes it (its
/// `ManifestAndConfigResponse` in `callback_handler/oci.rs`): the image manifest as oci-client
/// reads it, the digest of that manifest, and the config blob as JSON, whatever it holds.
///
/// The config is not read into the SDK's `OciManifestAndConfigResponse`, whose oci-spec
/// `ImageConfiguration` requires `architecture`, `os` and `rootfs` and keeps only the keys it
/// knows: an artifact's config (`{}`, a Helm chart's, a Wasm module's) would fail here and not
/// under policy-server, and a Docker config would lose `container_config`, `docker_version`, …
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ManifestAndConfig {
    /// The image manifest (the one of the host's platform when an index was named).
    pub manifest: OciImageManifest,
    /// The digest of `manifest`.
    pub digest: String,
    /// The config blob, any JSON value, keys and values as the registry stored them.
    pub config: serde_json::Value,
}

/// Talks to OCI registries with the configured sources, credentials and timeout.
#[derive(Clone)]
pub struct RegistryClient {
    /// For every registry request, each read under a cap where oci-client reads whole
    /// (manifests, configs, layers, digests, tokens). Follows at most 3 redirects (blobs are
    /// redirected to storage); reqwest drops `Authorization` when one leads to another host,
    /// port or scheme. One client per registry with extra CAs; see [`RegistryClient::http_for`].
    http: HttpClients,
    /// Outcomes of token exchanges, shared by the clones of this client.
    tokens: capped_auth::TokenCache,
    sources: Sources,
    credentials: DockerCredentials,
    timeout: Duration,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("sources", &self.sources)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RegistryClient {
    /// A client whose every round trip is bounded by `timeout`.
    pub fn new(sources: Sources, credentials: DockerCredentials, timeout: Duration) -> Self {
        let by_registry = sources
            .authority_registries()
            .into_iter()
            .map(|registry| {
                let client = http_client(timeout, &extra_roots(&sources, &registry));
                (registry, client)
            })
            .collect();
        let http = HttpClients {
            default: http_client(timeout, &[]),
            by_registry: Arc::new(by_registry),
        };
        Self {
            http,
            tokens: capped_auth::TokenCache::default(),
            sources,
            credentials,
            timeout,
        }
    }

    /// Upper bound of one round trip.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Parses an image reference the way the registry client will resolve it.
    pub fn parse_reference(image: &str) -> Result<Reference, RegistryError> {
        image.parse::<Reference>().map_err(|e| RegistryError::InvalidReference {
            image: image.to_string(),
            reason: e.to_string(),
        })
    }

    /// Credentials for the registry and repository of `reference` (a docker config key with a
    /// path serves the repositories below it only; see [`DockerCredentials::auth_for`]).
    pub fn auth_for(&self, reference: &Reference) -> RegistryAuth {
        self.credentials
            .auth_for(reference.resolve_registry(), reference.repository())
    }

    /// Configuration for a sigstore-rs cosign client reaching `registry` (`host[:port]`): the
    /// same plain-HTTP hosts, and the extra CAs listed for `registry` only (a cosign client
    /// trusts its extra CAs for every host it reaches, so it must reach no other registry).
    pub fn sigstore_config(&self, registry: &str) -> sigstore::registry::ClientConfig {
        sigstore::registry::ClientConfig {
            protocol: sigstore::registry::ClientProtocol::HttpsExcept(self.sources.insecure_sources.clone()),
            extra_root_certificates: extra_roots(&self.sources, registry)
                .into_iter()
                .map(|der| sigstore::registry::Certificate {
                    encoding: sigstore::registry::CertificateEncoding::Der,
                    data: der,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The digest of the manifest `reference` names, as oci-client's `fetch_manifest_digest`
    /// answers it (a `HEAD`, and a `GET` when the registry sends no `Docker-Content-Digest`),
    /// the `GET` read at most `limits.max_manifest_bytes` (`--max-signature-manifest-bytes`;
    /// over it, [`BoundedError::OverCap`]): oci-client reads it whole.
    pub async fn digest_of(&self, reference: &Reference, limits: &DownloadLimits) -> Result<String, BoundedError> {
        // `GET /v2/` and the realm, then the HEAD and the GET.
        let digest = self
            .within(
                reference,
                4,
                self.capped_manifest_digest(reference, limits.max_manifest_bytes),
            )
            .await?;
        // oci-client compares the answer with a pinned digest only when both name the same
        // algorithm: a registry answering `sha512:…` for `@sha256:…` would have that other
        // digest's signatures checked and reported for the pinned image.
        match reference.digest() {
            Some(pinned) if pinned != digest => Err(BoundedError::Registry(RegistryError::Malformed {
                image: reference.whole(),
                reason: format!("the registry answered digest {digest} for a reference pinned to {pinned}"),
            })),
            _ => Ok(digest),
        }
    }

    /// The manifest or index `image` names (`oci/v1/oci_manifest`), as policy-evaluator reads it
    /// (policy-fetcher's `Registry::manifest`): what oci-client's `pull_manifest` answers, which
    /// accepts the Docker and OCI manifest and index media types, checks the digest, requires
    /// `schemaVersion` 2 and a top-level `mediaType` (when present) among those four, and reads
    /// the body into its untagged [`OciManifest`]: oci-client's field names, order and set
    /// (unknown keys dropped, annotations sorted, an index's `subject` and a descriptor's `data`
    /// and `platform` not kept, a platform's `os.version` and `os.features` kept), a digest read
    /// as a string.
    ///
    /// Not `pull_manifest` itself, which reads the body whole: the manifest is read at most
    /// `limits.max_manifest_bytes` (`--max-signature-manifest-bytes`; over it,
    /// [`BoundedError::OverCap`]) and then given `pull_manifest`'s checks. The whole within one
    /// timeout, as before.
    ///
    /// Not the SDK's `OciManifestResponse`: its oci-spec types refuse a descriptor whose digest
    /// is not `algorithm:encoded` or whose size is negative (a `subject`, which docker-registry
    /// stores unchecked), and write another shape (`os.version` dropped, `artifactType` first,
    /// annotations in a `HashMap`'s order): a manifest policy-server answers failed or differed
    /// under `cip`.
    pub async fn oci_manifest(&self, image: &str, limits: &DownloadLimits) -> Result<OciManifest, BoundedError> {
        let reference = Self::parse_reference(image)?;
        let (manifest, _digest) = self
            .within(
                &reference,
                1,
                self.capped_pull_manifest(&reference, limits.max_manifest_bytes),
            )
            .await?;
        Ok(manifest)
    }

    /// The image manifest (the current platform's one for an index), its digest and its config
    /// (`oci/v1/oci_manifest_config`), as policy-evaluator answers them: what oci-client's
    /// `pull_manifest_and_config` answers (its default platform resolver at an index, no check of
    /// the config's media type), the config parsed as any JSON value.
    ///
    /// Not `pull_manifest_and_config` itself, which reads the manifests and the config whole:
    /// each manifest is read at most `limits.max_manifest_bytes` (`--max-signature-manifest-bytes`)
    /// and the config at most `limits.max_config_bytes` (`--max-image-config-bytes`; a declared
    /// size over it refused before the download), over which [`BoundedError::OverCap`]; each is
    /// given oci-client's checks. Index, platform manifest and config within three timeouts, as
    /// before.
    pub async fn oci_manifest_config(
        &self,
        image: &str,
        limits: &DownloadLimits,
    ) -> Result<ManifestAndConfig, BoundedError> {
        let reference = Self::parse_reference(image)?;
        let pull = async {
            let (manifest, digest) = self.capped_pull_image_manifest(&reference, limits).await?;
            let config = self.capped_pull_config(&reference, &manifest, limits).await?;
            Ok((manifest, digest, config))
        };
        // Index, platform manifest, config blob.
        let (manifest, digest, config) = self.within(&reference, 3, pull).await?;
        let parsed = serde_json::from_str(&config).map_err(|e| RegistryError::Malformed {
            image: image.to_string(),
            reason: format!("config is not JSON: {e}"),
        })?;
        // The container runtime and policy-controller decode it with Go, which merges two
        // objects under one key where serde_json (and the module after it) keeps the last.
        serde_json::from_str::<UniqueKeys>(&config).map_err(|e| RegistryError::Malformed {
            image: image.to_string(),
            reason: format!(
                "config is refused: {e} (Go, which the container runtime and policy-controller read it with, \
                 merges both; a policy would read the last alone)"
            ),
        })?;
        Ok(ManifestAndConfig {
            manifest,
            digest,
            config: parsed,
        })
    }

    /// Runs the capped download `operation` (at most `round_trips` requests) within
    /// `round_trips` timeouts.
    async fn within<T>(
        &self,
        reference: &Reference,
        round_trips: u32,
        operation: impl Future<Output = Result<T, BoundedError>>,
    ) -> Result<T, BoundedError> {
        let limit = self.timeout.saturating_mul(round_trips.max(1));
        match tokio::time::timeout(limit, Box::pin(operation)).await {
            Ok(result) => result,
            Err(_) => Err(BoundedError::Registry(RegistryError::Timeout {
                registry: reference.resolve_registry().to_string(),
                after: self.timeout,
            })),
        }
    }

    /// The HTTP client for requests to `registry` (`host[:port]`, as `resolve_registry` gives
    /// it) and for what it names (its token realm, a blob's redirect): the one trusting the
    /// registry's own `source_authorities` when it has some, else the platform's roots alone,
    /// never another registry's CAs.
    pub(crate) fn http_for(&self, registry: &str) -> &reqwest::Client {
        self.http
            .by_registry
            .get(&registry_host(registry))
            .unwrap_or(&self.http.default)
    }

    /// `http` or `https`, as oci-client's `ClientProtocol::HttpsExcept` chooses for `registry`.
    fn scheme_for(&self, registry: &str) -> &'static str {
        if self.sources.is_insecure(registry) {
            "http"
        } else {
            "https"
        }
    }

    /// A failed request to `reference`'s registry, classified as oci-client's request errors are.
    fn http_error(&self, reference: &Reference, error: reqwest::Error) -> RegistryError {
        let registry = reference.resolve_registry().to_string();
        if error.is_timeout() {
            RegistryError::Timeout {
                registry,
                after: self.timeout,
            }
        } else if error.is_connect() {
            RegistryError::Unreachable {
                registry,
                reason: error::innermost_cause(&error),
            }
        } else {
            RegistryError::Other {
                image: reference.whole(),
                registry,
                reason: error::innermost_cause(&error),
            }
        }
    }
}

/// The reqwest clients of a [`RegistryClient`].
#[derive(Clone)]
struct HttpClients {
    /// The platform's roots alone: registries without `source_authorities`.
    default: reqwest::Client,
    /// Per registry with `source_authorities` (keyed as [`registry_host`] writes it): the
    /// platform's roots and that registry's CAs.
    by_registry: Arc<HashMap<String, reqwest::Client>>,
}

/// A registry client bounded by `timeout`, trusting the platform's roots and `extra_roots`
/// (DER).
fn http_client(timeout: Duration, extra_roots: &[Vec<u8>]) -> reqwest::Client {
    let mut http = reqwest::Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3));
    let roots: Vec<reqwest::Certificate> = extra_roots
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect();
    if !roots.is_empty() {
        http = http.tls_certs_merge(roots);
    }
    // Building fails only when the TLS backend cannot start; the default client then trusts the
    // platform's roots alone (never more), and requests fail and say so.
    http.build().unwrap_or_default()
}

/// DER certificates of the extra CAs `sources` lists for `registry` (validated by
/// [`Sources::from_file`]).
fn extra_roots(sources: &Sources, registry: &str) -> Vec<Vec<u8>> {
    sources
        .authority_pems_for(registry)
        .iter()
        .filter_map(|pem| std::str::from_utf8(pem).ok())
        .filter_map(|pem| sources::pem_certificates(pem).ok())
        .flatten()
        .map(|der| der.as_ref().to_vec())
        .collect()
}
