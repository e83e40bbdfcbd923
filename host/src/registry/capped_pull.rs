//! oci-client's `pull_manifest` and `pull_manifest_and_config`, read under caps.
//!
//! oci-client 0.18 reads a manifest, an index and a config blob whole (`Response::bytes`, and
//! `pull_blob` into a `Vec`), with no size limit: a registry answering a multi-gigabyte manifest
//! or config would make `cip` (and the Gatekeeper provider) exhaust memory. Here each body is
//! read through [`RegistryClient::capped_response`] (a `Content-Length` over the cap refused
//! before the body, a body passing it cut as soon as it does), and then given exactly the checks
//! oci-client applies (`_pull_manifest_raw`, `_pull_manifest`, `validate_image_manifest`,
//! `_pull_image_manifest_and_list_digest`, `pull_blob`), failing with the errors oci-client
//! raises, so an answer within the caps is the one oci-client's functions give.

use oci_client::Reference;
use oci_client::client::current_platform_resolver;
use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
    OciDescriptor, OciImageManifest, OciManifest, Versioned,
};
use sha2::Digest as _;

use super::bounded::{
    BoundedError, DownloadBudget, DownloadLimits, IMAGE_MANIFEST, LayerCap, read_capped, read_prefix,
};
use super::capped_auth::ERROR_PREFIX_BYTES;
use super::{RegistryClient, RegistryError};
use crate::go_json;

/// The Accept header of oci-client's manifest requests (`MIME_TYPES_DISTRIBUTION_MANIFEST`),
/// in its order.
const OCI_CLIENT_MANIFEST_ACCEPT: &[&str] = &[
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
];

/// How a blob that is not the digest it should be is reported, as the oci-client function the
/// read replaces reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestMismatch {
    /// `pull_blob`: a digest error ([`RegistryError::Malformed`]).
    DigestError,
    /// `pull_blob_stream`: an I/O error of its verifying stream, wrapping the digest error
    /// ([`RegistryError::Other`], naming the registry).
    StreamError,
}

/// The header a registry states a manifest's or blob's digest in.
const DOCKER_DIGEST_HEADER: &str = "Docker-Content-Digest";

impl RegistryClient {
    /// oci-client's `_pull_manifest` under `cap`: the manifest or index `reference` names, and
    /// its digest (the registry's `Docker-Content-Digest` when sent, else the reference's
    /// digest, else the SHA-256 of the body), every digest given checked against the body;
    /// `schemaVersion` 2 and a top-level `mediaType`, when present, among the four manifest
    /// types, required.
    pub(crate) async fn capped_pull_manifest(
        &self,
        reference: &Reference,
        cap: usize,
    ) -> Result<(OciManifest, String), BoundedError> {
        let target = reference.digest().or(reference.tag()).unwrap_or("latest");
        let response = self
            .capped_response(
                reference,
                &format!("manifests/{target}"),
                &OCI_CLIENT_MANIFEST_ACCEPT.join(", "),
                cap,
                IMAGE_MANIFEST,
                None,
            )
            .await?;
        let failed = |error: OciDistributionError| self.oci_error(error, reference);
        // `validate_registry_response`: another 2xx than 200 is a spec violation.
        if response.status != reqwest::StatusCode::OK {
            return Err(failed(OciDistributionError::SpecViolationError(format!(
                "Expected HTTP Status {}, got {} instead",
                reqwest::StatusCode::OK,
                response.status,
            ))));
        }
        let body = response.body;
        let header = digest_header_value(&response.headers).map_err(|e| failed(e.into()))?;
        let digest = validate_digest(&body, header, reference.digest()).map_err(|e| failed(e.into()))?;
        let versioned: Versioned = serde_json::from_slice(&body)
            .map_err(|e| failed(OciDistributionError::VersionedParsingError(e.to_string())))?;
        if versioned.schema_version != 2 {
            return Err(failed(OciDistributionError::UnsupportedSchemaVersionError(
                versioned.schema_version,
            )));
        }
        if let Some(media_type) = versioned.media_type
            && !OCI_CLIENT_MANIFEST_ACCEPT.contains(&media_type.as_str())
        {
            return Err(failed(OciDistributionError::UnsupportedMediaTypeError(media_type)));
        }
        let manifest = serde_json::from_slice(&body)
            .map_err(|e| failed(OciDistributionError::ManifestParsingError(e.to_string())))?;
        // Read by the node (and policy-controller) with Go: it must name what it names here,
        // and be one kind of document, as containerd's `validateMediaType` demands.
        serde_json::from_slice(&body)
            .map_err(|e| e.to_string())
            .and_then(|document| {
                go_json::read_alike(&document, go_json::MANIFEST)?;
                one_kind(&document, &manifest)
            })
            .map_err(|reason| failed(OciDistributionError::ManifestParsingError(reason)))?;
        Ok((manifest, digest))
    }

    /// oci-client's `_pull_image_manifest` under `limits.max_manifest_bytes`: the image manifest
    /// `reference` names and its digest; at an index, the entry oci-client's default platform
    /// resolver picks (the one `Client` is configured with), read by its digest and answered
    /// under the digest the index lists.
    pub(crate) async fn capped_pull_image_manifest(
        &self,
        reference: &Reference,
        limits: &DownloadLimits,
    ) -> Result<(OciImageManifest, String), BoundedError> {
        let (manifest, digest) = self.capped_pull_manifest(reference, limits.max_manifest_bytes).await?;
        let index = match manifest {
            OciManifest::Image(manifest) => return Ok((manifest, digest)),
            OciManifest::ImageIndex(index) => index,
        };
        let Some(platform_digest) = current_platform_resolver(&index.manifests) else {
            return Err(self.oci_error(
                OciDistributionError::ImageManifestNotFoundError(
                    "no entry found in image index manifest matching client's default platform".to_string(),
                ),
                reference,
            ));
        };
        let entry = reference.clone_with_digest(platform_digest.clone());
        match self.capped_pull_manifest(&entry, limits.max_manifest_bytes).await? {
            (OciManifest::Image(manifest), _) => Ok((manifest, platform_digest)),
            (OciManifest::ImageIndex(_), _) => Err(self.oci_error(
                OciDistributionError::ImageManifestNotFoundError("received Image Index manifest instead".to_string()),
                &entry,
            )),
        }
    }

    /// oci-client's `pull_blob` of `manifest`'s config under `limits.max_config_bytes`: a
    /// declared size over the cap is refused before the download, a body passing it cut; the
    /// body checked against the registry's `Docker-Content-Digest` (when sent) and the
    /// descriptor's digest; then read as UTF-8, as `pull_manifest_and_config` does.
    pub(crate) async fn capped_pull_config(
        &self,
        reference: &Reference,
        manifest: &OciImageManifest,
        limits: &DownloadLimits,
    ) -> Result<String, BoundedError> {
        let cap = limits.image_config();
        let descriptor = &manifest.config;
        // A negative size (docker-registry stores what it is given) is no claim: the read is
        // capped all the same.
        if u64::try_from(descriptor.size).is_ok_and(|size| usize::try_from(size).map_or(true, |size| size > cap.bytes))
        {
            return Err(cap.over_cap(reference));
        }
        let body = self
            .capped_verified_blob(reference, descriptor, cap, DigestMismatch::DigestError, None)
            .await?;
        String::from_utf8(body).map_err(|e| {
            self.oci_error(
                OciDistributionError::GenericError(Some(format!("Cannot parse config as UTF-8 string: {e}"))),
                reference,
            )
        })
    }

    /// `GET blobs/<digest>` of `reference`'s repository, as oci-client's `pull_blob` and
    /// `pull_blob_stream` fetch a blob (their Accept header; redirects to storage followed,
    /// credentials not sent to another host), but read through
    /// [`RegistryClient::capped_response`]: an error answer fails on its status with its body
    /// unread (oci-client reads it whole), a `Content-Length` over `cap` fails before the body
    /// and a body passing `cap` as soon as it does ([`BoundedError::OverCap`] naming
    /// `cap.setting`). Then checked as oci-client checks a blob: `digest` and the registry's
    /// `Docker-Content-Digest` (when sent) must name SHA-256, SHA-384 or SHA-512 (refused before
    /// the body is read, as oci-client makes their digesters) and both be the body's, a body
    /// that is not reported as `mismatch` says. A body that is not of the descriptor's `size`
    /// is refused as [`RegistryError::Malformed`], one longer as soon as it passes that size (a
    /// `Content-Length` over it before the body is read): the descriptor lies about the blob
    /// it names, and go-containerregistry (hence cosign and policy-controller) refuses it too
    /// (`verify.ReadCloser`). A size of `-1` is no claim (go-containerregistry's "unknown"), and
    /// one below it is refused; the caller refuses `-1` where it must. With `budget`, the bytes
    /// read are charged to it (a body passing what is left of it fails as soon as it does). The
    /// caller checks the declared size against the cap and bounds the time.
    pub(crate) async fn capped_verified_blob(
        &self,
        reference: &Reference,
        descriptor: &OciDescriptor,
        cap: LayerCap,
        mismatch: DigestMismatch,
        budget: Option<&DownloadBudget>,
    ) -> Result<Vec<u8>, BoundedError> {
        let digest = descriptor.digest.as_str();
        let failed = |error: OciDistributionError| self.oci_error(error, reference);
        check_supported(digest).map_err(|e| failed(e.into()))?;
        if descriptor.size < -1 {
            return Err(failed(OciDistributionError::SpecViolationError(format!(
                "blob {digest} has a descriptor declaring {} bytes",
                descriptor.size
            ))));
        }
        // Read no further than the descriptor declares (go-containerregistry's `LimitReader`):
        // a body longer than its descriptor is refused as soon as it passes it, as the lie it is
        // when the declared size is within the cap.
        let declared = u64::try_from(descriptor.size).ok();
        let within_cap = declared
            .and_then(|size| usize::try_from(size).ok())
            .filter(|size| *size <= cap.bytes);
        let limit = within_cap.unwrap_or(cap.bytes);
        let over_cap = || match within_cap {
            Some(size) => failed(OciDistributionError::SpecViolationError(format!(
                "blob {digest} is larger than the {size} bytes its descriptor declares"
            ))),
            None => cap.over_cap(reference),
        };
        let response = self
            .capped_response_or(
                reference,
                &format!("blobs/{digest}"),
                &OCI_CLIENT_MANIFEST_ACCEPT.join(", "),
                limit,
                over_cap,
                budget,
            )
            .await?;
        let header = digest_header_value(&response.headers).map_err(|e| failed(e.into()))?;
        if let Some(expected) = &header {
            check_supported(expected).map_err(|e| failed(e.into()))?;
        }
        let mismatched = |e: DigestError| {
            failed(match mismatch {
                DigestMismatch::DigestError => e.into(),
                DigestMismatch::StreamError => OciDistributionError::IoError(std::io::Error::other(e)),
            })
        };
        if let Some(expected) = &header {
            verify(&response.body, expected).map_err(mismatched)?;
        }
        verify(&response.body, digest).map_err(mismatched)?;
        self.check_blob_size(reference, descriptor, response.body.len())?;
        Ok(response.body)
    }

    /// Refuses a blob of `length` bytes whose `descriptor` declares another size (a negative
    /// size declares none): read once and named again by another descriptor, it is checked
    /// against each (go-containerregistry checks every descriptor it reads a blob by).
    pub(crate) fn check_blob_size(
        &self,
        reference: &Reference,
        descriptor: &OciDescriptor,
        length: usize,
    ) -> Result<(), BoundedError> {
        match u64::try_from(descriptor.size) {
            Ok(size) if u64::try_from(length).ok() != Some(size) => Err(self.oci_error(
                OciDistributionError::SpecViolationError(format!(
                    "blob {} is {length} bytes, not the {size} bytes its descriptor declares",
                    descriptor.digest
                )),
                reference,
            )),
            _ => Ok(()),
        }
    }

    /// oci-client's `fetch_manifest_digest` under `cap`: a `HEAD` of the manifest (oci-client's
    /// Accept header and authorization); its `Docker-Content-Digest` is the answer when sent
    /// (after `validate_registry_response` and, when the reference is pinned by a digest of the
    /// same algorithm, their comparison); else a `GET`, whose body is read at most `cap` bytes
    /// ([`BoundedError::OverCap`] as a manifest over `--max-signature-manifest-bytes`; oci-client
    /// reads it whole), an error answer's first [`super::capped_auth::ERROR_PREFIX_BYTES`] only,
    /// and the digest checked as oci-client's `validate_digest` checks it. The caller bounds the
    /// time.
    pub(crate) async fn capped_manifest_digest(
        &self,
        reference: &Reference,
        cap: usize,
    ) -> Result<String, BoundedError> {
        let registry = reference.resolve_registry();
        let target = reference.digest().or(reference.tag()).unwrap_or("latest");
        let namespace = reference.namespace().map(|ns| format!("?ns={ns}")).unwrap_or_default();
        let url = format!(
            "{}://{registry}/v2/{}/manifests/{target}{namespace}",
            self.scheme_for(registry),
            reference.repository()
        );
        let failed = |error: OciDistributionError| self.oci_error(error, reference);
        let http_error = |e: reqwest::Error| BoundedError::Registry(self.http_error(reference, e));
        let accept = OCI_CLIENT_MANIFEST_ACCEPT.join(", ");
        let authorization = self.authorization(reference).await?;
        let head = authorization
            .apply(self.http_for(registry).head(&url).header("Accept", &accept))
            .send()
            .await
            .map_err(http_error)?;
        if let Some(digest) = digest_header_value(head.headers()).map_err(|e| failed(e.into()))? {
            // A HEAD answer has no body.
            validate_registry_response(head.status(), &[], &url).map_err(failed)?;
            if let Some(pinned) = reference.digest() {
                let (answered_algorithm, _) = digest
                    .split_once(':')
                    .ok_or_else(|| failed(DigestError::MissingAlgorithm.into()))?;
                let (pinned_algorithm, _) = pinned
                    .split_once(':')
                    .ok_or_else(|| failed(DigestError::MissingAlgorithm.into()))?;
                if answered_algorithm == pinned_algorithm && digest != pinned {
                    return Err(failed(
                        DigestError::VerificationError {
                            expected: pinned.to_string(),
                            actual: digest,
                        }
                        .into(),
                    ));
                }
            }
            return Ok(digest);
        }
        drop(head);
        let mut response = authorization
            .apply(self.http_for(registry).get(&url).header("Accept", &accept))
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = if status.is_success() {
            read_capped(&mut response, cap)
                .await
                .map_err(http_error)?
                .ok_or_else(|| IMAGE_MANIFEST.over_cap(reference, cap))?
        } else if status == reqwest::StatusCode::UNAUTHORIZED {
            self.forget_authorization(reference);
            // Its body is not part of the error.
            Vec::new()
        } else {
            read_prefix(&mut response, ERROR_PREFIX_BYTES)
                .await
                .map_err(http_error)?
                .0
        };
        validate_registry_response(status, &body, &url).map_err(failed)?;
        let header = digest_header_value(&headers).map_err(|e| failed(e.into()))?;
        validate_digest(&body, header, reference.digest()).map_err(|e| failed(e.into()))
    }

    /// An oci-client error about `reference`, classified as every registry failure is.
    fn oci_error(&self, error: OciDistributionError, reference: &Reference) -> BoundedError {
        BoundedError::Registry(RegistryError::from_oci(error, reference, self.timeout))
    }
}

/// Whether `document`, read as `manifest`, is one kind of document: an index (`manifests`, no
/// `config` or `layers`) or an image manifest (no `manifests`), and of the kind its `mediaType`
/// names when it names one. Read as an image here (oci-client tries that first) and as an index
/// by another reader, one document could name two images; containerd refuses such documents
/// (`validateMediaType`, CVE-2021-41190).
fn one_kind(document: &serde_json::Value, manifest: &OciManifest) -> Result<(), String> {
    let has = |field: &str| document.get(field).is_some_and(|value| !value.is_null());
    if has("manifests") && (has("config") || has("layers")) {
        return Err(
            "the document has both `manifests` and `config` or `layers`: an index and an image at once".to_owned(),
        );
    }
    let media_type = document.get("mediaType").and_then(serde_json::Value::as_str);
    let is_index_type = matches!(
        media_type,
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE)
    );
    let is_image_type = matches!(media_type, Some(OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE));
    match manifest {
        OciManifest::Image(_) if is_index_type => Err(format!(
            "its mediaType is {}, but it is an image manifest",
            media_type.unwrap_or_default()
        )),
        OciManifest::ImageIndex(_) if is_image_type => Err(format!(
            "its mediaType is {}, but it is an index",
            media_type.unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

/// oci-client's `validate_registry_response`: 200 passes; 401 is unauthorized; another 2xx a
/// spec violation; a 4xx the OCI error envelope of `body`, or a server error with `body` as its
/// message, as is any other status.
fn validate_registry_response(status: reqwest::StatusCode, body: &[u8], url: &str) -> Result<(), OciDistributionError> {
    match status {
        reqwest::StatusCode::OK => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED => Err(OciDistributionError::UnauthorizedError { url: url.to_string() }),
        s if s.is_success() => Err(OciDistributionError::SpecViolationError(format!(
            "Expected HTTP Status {}, got {} instead",
            reqwest::StatusCode::OK,
            status,
        ))),
        s if s.is_client_error() => match serde_json::from_slice::<OciEnvelope>(body) {
            Ok(envelope) => Err(OciDistributionError::RegistryError {
                envelope,
                url: url.to_string(),
            }),
            Err(_) => Err(OciDistributionError::ServerError {
                code: s.as_u16(),
                url: url.to_string(),
                message: String::from_utf8_lossy(body).to_string(),
            }),
        },
        s => Err(OciDistributionError::ServerError {
            code: s.as_u16(),
            url: url.to_string(),
            message: String::from_utf8_lossy(body).to_string(),
        }),
    }
}

/// oci-client's `digest_header_value`: the `Docker-Content-Digest` header, empty as missing.
fn digest_header_value(headers: &reqwest::header::HeaderMap) -> Result<Option<String>, DigestError> {
    match headers.get(DOCKER_DIGEST_HEADER) {
        None => Ok(None),
        Some(value) => Ok(Some(value.to_str()?).filter(|s| !s.is_empty()).map(str::to_string)),
    }
}

/// oci-client's `validate_digest`: the body checked against the reference's digest and the
/// header's (when given); the header's is the answer when given (the canonical one), else the
/// reference's, else the body's SHA-256.
fn validate_digest(body: &[u8], header: Option<String>, reference: Option<&str>) -> Result<String, DigestError> {
    if let Some(header) = &header {
        check_algorithm(header)?;
    }
    if let Some(reference) = reference {
        check_algorithm(reference)?;
    }
    match (header, reference) {
        (Some(header), Some(reference)) if header == reference => verify(body, &header),
        (Some(header), Some(reference)) => {
            verify(body, reference)?;
            verify(body, &header)
        }
        (Some(header), None) => verify(body, &header),
        (None, Some(reference)) => verify(body, reference),
        (None, None) => Ok(format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)))),
    }
}

/// oci-client's `Digest::new`: `algorithm:encoded`.
fn check_algorithm(digest: &str) -> Result<(), DigestError> {
    digest.split_once(':').map(|_| ()).ok_or(DigestError::MissingAlgorithm)
}

/// oci-client's `Digester::new`: `algorithm:encoded` of an algorithm [`verify`] computes.
fn check_supported(digest: &str) -> Result<(), DigestError> {
    match digest.split_once(':') {
        None => Err(DigestError::MissingAlgorithm),
        Some(("sha256" | "sha384" | "sha512", _)) => Ok(()),
        Some((other, _)) => Err(DigestError::UnsupportedAlgorithm(other.to_string())),
    }
}

/// oci-client's `calculate_and_validate`: `body` hashed with the algorithm `expected` names
/// (SHA-256, SHA-384 or SHA-512) must give `expected`; returns it.
fn verify(body: &[u8], expected: &str) -> Result<String, DigestError> {
    let (algorithm, _) = expected.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
    let encoded = match algorithm {
        "sha256" => hex::encode(sha2::Sha256::digest(body)),
        "sha384" => hex::encode(sha2::Sha384::digest(body)),
        "sha512" => hex::encode(sha2::Sha512::digest(body)),
        other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
    };
    let actual = format!("{algorithm}:{encoded}");
    if actual != expected {
        return Err(DigestError::VerificationError {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA256: &str = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    #[test]
    fn a_document_is_one_kind_and_of_its_media_type() {
        let descriptor = serde_json::json!({"mediaType": OCI_IMAGE_MEDIA_TYPE, "size": 2, "digest": HELLO_SHA256});
        let image = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_MEDIA_TYPE, "config": descriptor,
            "layers": [descriptor]});
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": [descriptor]});
        let read = |document: &serde_json::Value| -> OciManifest { serde_json::from_value(document.clone()).unwrap() };
        assert_eq!(one_kind(&image, &read(&image)), Ok(()));
        assert_eq!(one_kind(&index, &read(&index)), Ok(()));
        let mut both = image.clone();
        both["manifests"] = serde_json::json!([descriptor]);
        assert!(
            one_kind(&both, &read(&both))
                .unwrap_err()
                .contains("an index and an image at once")
        );
        let mut labelled_index = image.clone();
        labelled_index["mediaType"] = serde_json::json!(OCI_IMAGE_INDEX_MEDIA_TYPE);
        assert!(one_kind(&labelled_index, &read(&labelled_index)).is_err());
        let mut labelled_image = index.clone();
        labelled_image["mediaType"] = serde_json::json!(IMAGE_MANIFEST_MEDIA_TYPE);
        assert!(one_kind(&labelled_image, &read(&labelled_image)).is_err());
        let mut unlabelled = index.clone();
        unlabelled.as_object_mut().unwrap().remove("mediaType");
        assert_eq!(one_kind(&unlabelled, &read(&unlabelled)), Ok(()));
    }

    #[test]
    fn the_answered_digest_is_the_header_s_then_the_reference_s_then_the_body_s() {
        let body = b"hello world";
        let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(body)));
        assert_eq!(
            validate_digest(body, Some(sha512.clone()), Some(HELLO_SHA256)).unwrap(),
            sha512
        );
        assert_eq!(validate_digest(body, None, Some(&sha512)).unwrap(), sha512);
        assert_eq!(validate_digest(body, None, None).unwrap(), HELLO_SHA256);
    }

    #[test]
    fn a_digest_the_body_does_not_have_fails() {
        let body = b"hello world!";
        assert!(matches!(
            validate_digest(body, Some(HELLO_SHA256.to_string()), None),
            Err(DigestError::VerificationError { .. })
        ));
        assert!(matches!(
            validate_digest(body, None, Some(HELLO_SHA256)),
            Err(DigestError::VerificationError { .. })
        ));
        assert!(matches!(
            validate_digest(body, Some("md5:00".to_string()), None),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            validate_digest(body, None, Some("nocolon")),
            Err(DigestError::MissingAlgorithm)
        ));
    }

    #[test]
    fn an_empty_digest_header_is_no_header() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(digest_header_value(&headers).unwrap(), None);
        headers.insert(DOCKER_DIGEST_HEADER, "".parse().unwrap());
        assert_eq!(digest_header_value(&headers).unwrap(), None);
        headers.insert(DOCKER_DIGEST_HEADER, HELLO_SHA256.parse().unwrap());
        assert_eq!(digest_header_value(&headers).unwrap().as_deref(), Some(HELLO_SHA256));
    }
}
