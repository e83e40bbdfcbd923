//! Policy modules as OCI artifacts, laid out as Kubewarden's policy-fetcher pushes and pulls
//! them: one layer `application/vnd.wasm.content.layer.v1+wasm` holding the module, config
//! `{}` typed `application/vnd.wasm.config.v1+json`, the metadata's one-line annotations on
//! the manifest.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
    OciDescriptor, OciImageManifest, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};

use super::ArtifactError;
use super::metadata::{ANNOTATION_SOURCE, Metadata};
use crate::registry::{
    BoundedError, DockerCredentials, DownloadLimits, ERROR_PREFIX_BYTES, IMAGE_MANIFEST, ManifestKind, RegistryClient,
    RegistryError, Sources, read_prefix, registry_host,
};

/// Scheme of policy URIs, as in a ClusterAdmissionPolicy's `module`.
pub const REGISTRY_SCHEME: &str = "registry://";

/// The OCI annotation kwctl derives from `io.kubewarden.policy.source`.
const OCI_SOURCE_ANNOTATION: &str = "org.opencontainers.image.source";

/// Config blob of a policy artifact: policy-fetcher pushes an empty JSON object.
const WASM_CONFIG: &[u8] = b"{}";

/// Bound of one registry round trip; a module is a few MB at most.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default cap on a downloaded policy module (`--max-module-bytes`): 64 MiB, far above any
/// Kubewarden policy (this one is under 2 MB) and far below what hurts a host.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest policy manifest read: a policy manifest lists one layer and a few annotations, so a
/// larger one is not a policy (and is not read whole into memory).
pub const MAX_POLICY_MANIFEST_BYTES: usize = 256 * 1024;
/// The manifest of a policy artifact, for the message naming its cap.
const POLICY_MANIFEST: ManifestKind = ManifestKind {
    what: "the policy manifest",
    setting: "a policy manifest is one layer and its annotations; this cap is fixed",
};

/// A policy pushed to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedPolicy {
    /// `registry://host/repository:tag@sha256:…`: the immutable name to deploy.
    pub uri: String,
    /// Digest of the pushed manifest.
    pub digest: String,
}

/// A policy pulled from a registry.
#[derive(Clone, Debug)]
pub struct PulledPolicy {
    /// The module bytes (digest checked against the manifest).
    pub module: Vec<u8>,
    /// Digest of the manifest that was pulled.
    pub digest: String,
    /// The manifest itself, for `cip inspect`-like display.
    pub manifest: OciImageManifest,
    /// The manifest as the registry sent it (its SHA-256 is `digest`).
    pub raw_manifest: Vec<u8>,
}

/// Parses `registry://host/repository[:tag][@digest]` into an OCI reference.
pub fn parse_policy_uri(uri: &str) -> Result<Reference, ArtifactError> {
    let invalid = |reason: String| ArtifactError::InvalidUri {
        uri: uri.to_owned(),
        reason,
    };
    let rest = uri
        .strip_prefix(REGISTRY_SCHEME)
        .ok_or_else(|| invalid(format!("expected {REGISTRY_SCHEME}host/repository:tag")))?;
    if rest.split('/').next().is_none_or(|host| host.is_empty()) || !rest.contains('/') {
        return Err(invalid(
            "the registry host must be given, like registry://ghcr.io/org/policy:v1".to_owned(),
        ));
    }
    rest.parse::<Reference>().map_err(|error| invalid(error.to_string()))
}

/// The `registry://` form of a reference.
pub fn policy_uri(reference: &Reference) -> String {
    format!("{REGISTRY_SCHEME}{}", reference.whole())
}

/// Manifest annotations for a module, as `kwctl push` builds them: every one-line metadata
/// annotation (trimmed; OCI annotations cannot hold the README) plus
/// `org.opencontainers.image.source` from `io.kubewarden.policy.source`.
pub fn manifest_annotations(metadata: &Metadata) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(_, value)| value.lines().count() <= 1)
        .map(|(key, value)| (key.clone(), value.trim().to_owned()))
        .collect();
    if let Some(source) = annotations.get(ANNOTATION_SOURCE).cloned() {
        annotations.entry(OCI_SOURCE_ANNOTATION.to_owned()).or_insert(source);
    }
    annotations
}

/// Registry credentials from the docker `config.json` in `docker_config_dir`, or, when none is
/// given, from docker's own (`$DOCKER_CONFIG`, else `~/.docker`) if it exists, as kwctl does;
/// anonymous otherwise.
pub fn load_credentials(docker_config_dir: Option<&Path>) -> Result<DockerCredentials, ArtifactError> {
    if let Some(dir) = docker_config_dir {
        return Ok(DockerCredentials::from_path(dir)?);
    }
    let default_dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
    match default_dir.map(|dir| dir.join("config.json")) {
        Some(file) if file.is_file() => Ok(DockerCredentials::from_path(&file)?),
        _ => Ok(DockerCredentials::default()),
    }
}

/// Pushes and pulls policy artifacts with the sources' plain-HTTP hosts and CAs and the docker
/// credentials.
///
/// Pulls and digest look-ups go through a [`RegistryClient`], every answer read under a cap.
/// Each push has an oci-client of its own ([`PolicyRegistry::client_for`]):
/// an oci-client trusts its extra CAs for every host it reaches, and keeps one credential per
/// registry (the first it is given, which its blob download uses): a registry's
/// `source_authorities` are trusted for that registry only, and a docker config key with a path
/// serves the repositories below it only.
pub struct PolicyRegistry {
    /// Registries reached over plain HTTP.
    insecure_sources: Vec<String>,
    /// The CAs (PEM) of each registry with `source_authorities` (keyed as [`registry_host`]
    /// writes it).
    authorities: HashMap<String, Vec<Vec<u8>>>,
    /// Reads the manifest, its digest and the module under caps, and asks for tokens with the
    /// capped exchange (oci-client reads each whole); oci-client is left the push.
    manifests: RegistryClient,
    credentials: DockerCredentials,
    max_module_bytes: u64,
}

impl PolicyRegistry {
    /// A client for the given sources and credentials.
    pub fn new(sources: &Sources, credentials: DockerCredentials) -> Self {
        let authorities = sources
            .authority_registries()
            .into_iter()
            .map(|registry| {
                let pems = sources.authority_pems_for(&registry);
                (registry, pems)
            })
            .collect();
        Self {
            insecure_sources: sources.insecure_sources.clone(),
            authorities,
            manifests: RegistryClient::new(sources.clone(), credentials.clone(), ROUND_TRIP_TIMEOUT),
            credentials,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
        }
    }

    /// Refuses modules larger than `max_bytes` (default [`DEFAULT_MAX_MODULE_BYTES`]), checked
    /// on the manifest's declared size and again while downloading.
    #[must_use]
    pub fn with_max_module_bytes(mut self, max_bytes: u64) -> Self {
        self.max_module_bytes = max_bytes;
        self
    }

    /// An oci-client for `reference`'s repository, and the credentials it holds: trusting the
    /// platform's roots and the `source_authorities` of `reference`'s registry (no other
    /// registry's), holding the docker config's credentials for that repository (stored in it,
    /// as its blob download uses only a stored credential).
    async fn client_for(&self, reference: &Reference) -> (Client, RegistryAuth) {
        let registry = reference.resolve_registry();
        let extra_roots = self
            .authorities
            .get(&registry_host(registry))
            .into_iter()
            .flatten()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.insecure_sources.clone()),
            extra_root_certificates: extra_roots,
            read_timeout: Some(ROUND_TRIP_TIMEOUT),
            connect_timeout: Some(ROUND_TRIP_TIMEOUT),
            ..Default::default()
        });
        let auth = self.credentials.auth_for(registry, reference.repository());
        client.store_auth_if_needed(registry, &auth).await;
        (client, auth)
    }

    /// The module size cap in force.
    pub fn max_module_bytes(&self) -> u64 {
        self.max_module_bytes
    }

    /// Pushes `module` to `uri` (`registry://host/repository:tag`) with the given manifest
    /// annotations, and returns its immutable name.
    pub async fn push(
        &self,
        module: &[u8],
        uri: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<PushedPolicy, ArtifactError> {
        let reference = parse_policy_uri(uri)?;
        let layers = [ImageLayer::new(module.to_vec(), WASM_LAYER_MEDIA_TYPE.to_owned(), None)];
        let config = Config::new(WASM_CONFIG.to_vec(), WASM_CONFIG_MEDIA_TYPE.to_owned(), None);
        let annotations = (!annotations.is_empty()).then_some(annotations);
        let manifest = OciImageManifest::build(&layers, &config, annotations);
        let (client, auth) = self.client_for(&reference).await;
        let response = client
            .push(&reference, &layers, config, &auth, Some(manifest))
            .await
            .map_err(|error| registry_error(error, &reference))?;
        let digest = match digest_from_manifest_url(&response.manifest_url) {
            Some(digest) => digest,
            None => self.digest(&reference).await?,
        };
        let pinned = format!("{}@{digest}", policy_uri(&reference));
        Ok(PushedPolicy { uri: pinned, digest })
    }

    /// Pulls the module at `reference`; refuses artifacts that are not a single wasm layer, a
    /// manifest whose digest differs from the one the reference names, and modules over the
    /// size cap (declared or streamed). The module's SHA-256 is checked against the manifest.
    pub async fn pull(&self, reference: &Reference) -> Result<PulledPolicy, ArtifactError> {
        let uri = policy_uri(reference);
        let raw_manifest = self
            .manifests
            .capped_manifest(reference, MAX_POLICY_MANIFEST_BYTES, POLICY_MANIFEST)
            .await
            .map_err(|error| capped_error(error, reference))?;
        // The digest of what was read, not what the registry says it is.
        let digest = sha256_digest(&raw_manifest);
        if let Some(wanted) = reference.digest()
            && wanted != digest
        {
            return Err(ArtifactError::UnexpectedArtifact {
                uri,
                reason: format!("manifest digest is {digest}, the reference names {wanted}"),
            });
        }
        let (manifest, layer) = parse_policy_manifest(&uri, &raw_manifest, &digest)?;
        check_size(&uri, layer.size, self.max_module_bytes)?;
        let module = self.download_module(reference, &uri, &layer.digest).await?;
        Ok(PulledPolicy {
            module,
            digest,
            manifest,
            raw_manifest,
        })
    }

    /// The manifest digest `reference` currently names: a `HEAD` of the manifest, and a `GET`
    /// when the registry sends no `Docker-Content-Digest`, as oci-client's
    /// `fetch_manifest_digest` asks, but through [`RegistryClient::digest_of`]: the `GET` read
    /// at most [`MAX_POLICY_MANIFEST_BYTES`] (oci-client reads it whole, before the module's
    /// signatures are checked), the token asked with the capped exchange (whose realm must be
    /// safe to send the credentials to), an error answer read for its first bytes only.
    pub async fn digest(&self, reference: &Reference) -> Result<String, ArtifactError> {
        let limits = DownloadLimits {
            max_manifest_bytes: MAX_POLICY_MANIFEST_BYTES,
            ..DownloadLimits::default()
        };
        self.manifests
            .digest_of(reference, &limits)
            .await
            .map_err(|error| capped_error(error, reference))
    }

    /// The module blob `layer_digest` of `reference`'s repository, read as oci-client's
    /// `pull_blob_stream` fetches it (same request; redirects to storage followed, credentials
    /// not sent to another host) but never past the caps: the token asked with the capped
    /// exchange ([`RegistryClient::send_authorized_get`]; oci-client reads the token answer
    /// whole), a `Content-Length` over `--max-module-bytes` refused before the body, the body
    /// streamed and cut as soon as it passes the cap and hashed as it arrives (SHA-256, checked
    /// against `layer_digest`), an error answer quoted for its first [`ERROR_PREFIX_BYTES`]
    /// only (oci-client reads it whole into its message).
    async fn download_module(
        &self,
        reference: &Reference,
        uri: &str,
        layer_digest: &str,
    ) -> Result<Vec<u8>, ArtifactError> {
        if !is_sha256_digest(layer_digest) {
            return Err(ArtifactError::UnexpectedArtifact {
                uri: uri.to_owned(),
                reason: format!("its layer digest {layer_digest:?} is not sha256:<64 hex digits>"),
            });
        }
        let path = format!("blobs/{layer_digest}");
        let mut response = self
            .manifests
            .send_authorized_get(reference, &path, &BLOB_ACCEPT.join(", "))
            .await
            .map_err(|error| capped_error(error, reference))?;
        let status = response.status();
        if !status.is_success() {
            if status == reqwest::StatusCode::UNAUTHORIZED {
                self.manifests.forget_authorization(reference);
            }
            let (prefix, cut) = read_prefix(&mut response, ERROR_PREFIX_BYTES)
                .await
                .map_err(|error| ArtifactError::Registry(self.manifests.request_error(reference, error)))?;
            return Err(ArtifactError::Registry(blob_error(
                reference, &path, status, &prefix, cut,
            )));
        }
        if response
            .content_length()
            .is_some_and(|length| length > self.max_module_bytes)
        {
            return Err(ArtifactError::TooLarge {
                uri: uri.to_owned(),
                size: response.content_length().unwrap_or_default().to_string(),
                cap: self.max_module_bytes,
            });
        }
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        read_capped(uri, stream, self.max_module_bytes, layer_digest).await
    }
}

/// A capped read's failure about `reference`: the registry's as is; the manifest over its cap
/// as an artifact that is no policy (naming the policy manifest's cap); any other cap passed
/// (the token answer's) as the registry's failure, naming the cap.
fn capped_error(error: BoundedError, reference: &Reference) -> ArtifactError {
    match error {
        BoundedError::Registry(error) => ArtifactError::Registry(error),
        BoundedError::OverCap { what, .. } if what == POLICY_MANIFEST.what || what == IMAGE_MANIFEST.what => {
            ArtifactError::UnexpectedArtifact {
                uri: policy_uri(reference),
                reason: POLICY_MANIFEST
                    .over_cap(reference, MAX_POLICY_MANIFEST_BYTES)
                    .to_string(),
            }
        }
        other => ArtifactError::Registry(RegistryError::Other {
            image: reference.whole(),
            registry: reference.resolve_registry().to_owned(),
            reason: other.to_string(),
        }),
    }
}

/// The Accept header of oci-client's blob requests (its manifest media types, in its order).
const BLOB_ACCEPT: &[&str] = &[
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
];

/// Whether `digest` is `sha256:<64 lowercase hex>`, the only digest a module is checked by.
fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A blob request of `reference` answered `status` (not 2xx), its body's first bytes `prefix`
/// (`cut` when there was more) quoted: 404 reads as not found, 401 and 403 as access denied.
fn blob_error(
    reference: &Reference,
    path: &str,
    status: reqwest::StatusCode,
    prefix: &[u8],
    cut: bool,
) -> RegistryError {
    let mut body = format!("{:?}", String::from_utf8_lossy(prefix));
    if cut {
        body.push_str(&format!(" … (first {ERROR_PREFIX_BYTES} bytes)"));
    }
    let registry = reference.resolve_registry().to_owned();
    match status {
        reqwest::StatusCode::NOT_FOUND => RegistryError::NotFound {
            image: reference.whole(),
            registry,
        },
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => RegistryError::Denied {
            image: reference.whole(),
            registry,
            reason: format!("HTTP {}: {body}", status.as_u16()),
        },
        _ => RegistryError::Other {
            image: reference.whole(),
            registry,
            reason: format!("GET {path} answered {status}: {body}"),
        },
    }
}

/// Classifies an oci-client failure: a container image where a policy was expected is named as
/// such, and a bare 401/403 answer (a blob upload refused for want of credentials) reads as
/// access denied, like the registry's structured errors.
fn registry_error(error: oci_client::errors::OciDistributionError, reference: &Reference) -> ArtifactError {
    use oci_client::errors::OciDistributionError::{IncompatibleLayerMediaTypeError, PullNoLayersError};
    match &error {
        IncompatibleLayerMediaTypeError(media_type) => {
            return ArtifactError::UnexpectedArtifact {
                uri: policy_uri(reference),
                reason: format!("it has a {media_type} layer, a policy has one {WASM_LAYER_MEDIA_TYPE} layer"),
            };
        }
        PullNoLayersError => {
            return ArtifactError::UnexpectedArtifact {
                uri: policy_uri(reference),
                reason: "it has no layer".to_owned(),
            };
        }
        _ => {}
    }
    if let oci_client::errors::OciDistributionError::ServerError {
        code: code @ (401 | 403),
        message,
        ..
    } = &error
    {
        return ArtifactError::Registry(RegistryError::Denied {
            image: reference.whole(),
            registry: reference.resolve_registry().to_owned(),
            reason: format!("HTTP {code}: {message}"),
        });
    }
    ArtifactError::Registry(RegistryError::from_oci(error, reference, ROUND_TRIP_TIMEOUT))
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `raw` is the manifest of `digest` and describes a policy: one wasm layer (whose
/// descriptor is returned). Used for downloads and for the cache alike.
pub(crate) fn parse_policy_manifest(
    uri: &str,
    raw: &[u8],
    digest: &str,
) -> Result<(OciImageManifest, OciDescriptor), ArtifactError> {
    let unexpected = |reason: String| ArtifactError::UnexpectedArtifact {
        uri: uri.to_owned(),
        reason,
    };
    let actual = sha256_digest(raw);
    if actual != digest {
        return Err(ArtifactError::DigestMismatch {
            what: format!("manifest of {uri}"),
            expected: digest.to_owned(),
            actual,
        });
    }
    let manifest: OciImageManifest = serde_json::from_slice(raw)
        .map_err(|e| unexpected(format!("its manifest is not an OCI image manifest: {e}")))?;
    if let Some(other) = manifest
        .layers
        .iter()
        .find(|layer| layer.media_type != WASM_LAYER_MEDIA_TYPE)
    {
        return Err(unexpected(format!(
            "it has a {} layer, a policy has one {WASM_LAYER_MEDIA_TYPE} layer",
            other.media_type
        )));
    }
    let layer = match manifest.layers.as_slice() {
        [layer] => layer.clone(),
        [] => return Err(unexpected("it has no layer".to_owned())),
        layers => {
            return Err(unexpected(format!(
                "a policy artifact has exactly one {WASM_LAYER_MEDIA_TYPE} layer, this one has {}",
                layers.len()
            )));
        }
    };
    Ok((manifest, layer))
}

/// Refuses a declared size over the cap (a negative size is refused too).
fn check_size(uri: &str, declared: i64, cap: u64) -> Result<(), ArtifactError> {
    match u64::try_from(declared) {
        Ok(size) if size <= cap => Ok(()),
        _ => Err(ArtifactError::TooLarge {
            uri: uri.to_owned(),
            size: declared.to_string(),
            cap,
        }),
    }
}

/// Reads a blob stream, failing as soon as it exceeds `cap` bytes, and checks its SHA-256.
pub(crate) async fn read_capped<S, E>(
    uri: &str,
    mut stream: S,
    cap: u64,
    digest: &str,
) -> Result<Vec<u8>, ArtifactError>
where
    S: futures::Stream<Item = Result<E, std::io::Error>> + Unpin,
    E: AsRef<[u8]>,
{
    let mut module = Vec::new();
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| ArtifactError::Download {
            uri: uri.to_owned(),
            source,
        })?;
        let chunk = chunk.as_ref();
        if u64::try_from(module.len().saturating_add(chunk.len())).unwrap_or(u64::MAX) > cap {
            return Err(ArtifactError::TooLarge {
                uri: uri.to_owned(),
                size: format!("more than {cap}"),
                cap,
            });
        }
        hasher.update(chunk);
        module.extend_from_slice(chunk);
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        return Err(ArtifactError::DigestMismatch {
            what: format!("module of {uri}"),
            expected: digest.to_owned(),
            actual,
        });
    }
    Ok(module)
}

/// `…/manifests/sha256:<64 hex>` → `sha256:<64 hex>`, as policy-fetcher reads the push answer.
fn digest_from_manifest_url(url: &str) -> Option<String> {
    let (_, digest) = url.rsplit_once('/')?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_uri_needs_scheme_and_host() {
        let reference = parse_policy_uri("registry://127.0.0.1:5000/policies/cip:v0.1.0").expect("valid");
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "policies/cip");
        assert_eq!(reference.tag(), Some("v0.1.0"));
        assert!(parse_policy_uri("ghcr.io/org/policy:v1").is_err());
        assert!(parse_policy_uri("registry://policy").is_err());
        assert!(parse_policy_uri("registry://ghcr.io/Org/policy:v1").is_err());
    }

    #[test]
    fn manifest_annotations_follow_kwctl() {
        let mut metadata = Metadata::from_yaml("rules: []\nmutating: false\n").expect("parses");
        metadata.set_annotation(ANNOTATION_SOURCE, "https://github.com/o/r".to_owned());
        metadata.set_annotation("io.kubewarden.policy.usage", "line one\nline two\n".to_owned());
        metadata.set_annotation("io.kubewarden.policy.description", " ends with newline\n".to_owned());
        let annotations = manifest_annotations(&metadata);
        assert_eq!(annotations[OCI_SOURCE_ANNOTATION], "https://github.com/o/r");
        assert_eq!(annotations["io.kubewarden.policy.description"], "ends with newline");
        assert!(!annotations.contains_key("io.kubewarden.policy.usage"));
    }

    fn chunks(
        parts: &[&'static [u8]],
    ) -> futures::stream::Iter<std::vec::IntoIter<Result<&'static [u8], std::io::Error>>> {
        futures::stream::iter(parts.iter().map(|part| Ok(*part)).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn downloads_stop_at_the_cap_and_are_checked_against_their_digest() {
        let whole = sha256_digest(b"0123456789");
        let read = read_capped("u", chunks(&[b"01234", b"56789"]), 10, &whole).await;
        assert_eq!(read.expect("within the cap"), b"0123456789");

        let error = read_capped("u", chunks(&[b"01234", b"56789"]), 9, &whole)
            .await
            .expect_err("over the cap");
        assert!(matches!(error, ArtifactError::TooLarge { cap: 9, .. }), "{error}");
        assert!(error.to_string().contains("--max-module-bytes"), "{error}");

        let error = read_capped("u", chunks(&[b"01234", b"5678X"]), 10, &whole)
            .await
            .expect_err("other bytes");
        assert!(matches!(error, ArtifactError::DigestMismatch { .. }), "{error}");
    }

    #[test]
    fn declared_sizes_over_the_cap_or_negative_are_refused() {
        assert!(check_size("u", 10, 10).is_ok());
        assert!(check_size("u", 11, 10).is_err());
        assert!(check_size("u", -1, 10).is_err());
    }

    #[test]
    fn digest_is_read_from_the_manifest_url() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_from_manifest_url(&format!("http://r/v2/x/manifests/{digest}")),
            Some(digest)
        );
        assert_eq!(digest_from_manifest_url("http://r/v2/x/manifests/v1"), None);
        assert_eq!(digest_from_manifest_url("http://r/v2/x/manifests/sha256:abc"), None);
    }
}
