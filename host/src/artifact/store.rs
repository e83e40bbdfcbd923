//! Local cache of pulled policy modules, keyed by manifest digest, so `cip run registry://…`
//! downloads a module once and a pinned reference (`@sha256:…`) works offline.
//!
//! The cache is content-addressed end to end: next to each module (`sha256-<manifest>.wasm`)
//! lies the manifest it came from (`sha256-<manifest>.manifest.json`). Before a cached module
//! is used, the manifest is re-hashed against the digest the reference names (or the registry
//! resolved, and the signatures were verified on), and the module against the layer digest
//! that manifest names; a file that does not match is refused, never trusted by its name.
//!
//! The store is used only in a directory no other user can write, and a file in it only when it
//! is a private regular file ([`crate::private_dir`]), read through one bounded read of the file
//! opened once: another user's FIFO, sparse file or link can neither hang `cip`, exhaust its
//! memory nor redirect its writes. A store that fails the rule is neither read nor written: the
//! module is pulled (and verified) on each run, and `cip pull` refuses.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::ArtifactError;
use super::oci::{
    MAX_POLICY_MANIFEST_BYTES, PolicyRegistry, REGISTRY_SCHEME, load_credentials, parse_policy_manifest,
    parse_policy_uri, sha256_digest,
};
use super::verification::{self, VerificationConfig};
use crate::private_dir::{self, OpenError};
use crate::registry::Sources;
use crate::verify::Verifier;

/// A policy module ready to compile: where it is and the (checked) bytes.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    /// The local file: the module's path, or the store's file of a `registry://` module; `None`
    /// for a `registry://` module pulled but not stored (the store failed
    /// [`crate::private_dir`]'s rule).
    pub path: Option<PathBuf>,
    /// Its content, as checked (compile these, not the file: it could change meanwhile).
    pub bytes: Vec<u8>,
    /// The manifest digest, for a `registry://` module.
    pub digest: Option<String>,
}

/// Environment variable overriding the cache root (default `~/.cache/cip`).
pub const CACHE_DIR_ENV: &str = "CIP_CACHE_DIR";

/// `cip`'s cache directory: `$CIP_CACHE_DIR`, else `$XDG_CACHE_HOME/cip`, else
/// `$HOME/.cache/cip` (pulled modules under `policies/`, compiled modules under `compiled/`).
pub fn cache_root() -> Result<PathBuf, ArtifactError> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("cip")))
        .or_else(|| var("HOME").map(|home| home.join(".cache").join("cip")))
        .ok_or(ArtifactError::NoCacheDir)
}

/// A directory of `sha256-<hex>.wasm` files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStore {
    dir: PathBuf,
}

impl PolicyStore {
    /// A store in `dir` (created on first write).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$CIP_CACHE_DIR/policies`, else `$XDG_CACHE_HOME/cip/policies`, else
    /// `$HOME/.cache/cip/policies`.
    pub fn default_location() -> Result<Self, ArtifactError> {
        Ok(Self::at(cache_root()?.join("policies")))
    }

    /// The directory holding the modules.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the module of manifest `digest` is (or would be) stored.
    pub fn path_of(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        Ok(self.dir.join(format!("sha256-{}.wasm", digest_hex(digest)?)))
    }

    /// Where the manifest of `digest` is (or would be) stored.
    pub fn manifest_path_of(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        Ok(self.dir.join(format!("sha256-{}.manifest.json", digest_hex(digest)?)))
    }

    /// The local file of a policy: a path (or `file://` URI) as is, or the stored module of a
    /// `registry://` URI, pulled when not stored yet; an error when the store cannot be used
    /// ([`crate::private_dir`]). No signature check: see [`PolicyStore::load`].
    ///
    /// A tag is resolved to its digest with one request (so a moved tag is noticed); a
    /// reference pinned by digest is served from the store without any request.
    pub async fn fetch(&self, uri_or_path: &str, registry: &PolicyRegistry) -> Result<PathBuf, ArtifactError> {
        self.load(uri_or_path, registry, None)
            .await?
            .path
            .ok_or_else(|| ArtifactError::NotStored { dir: self.dir.clone() })
    }

    /// [`PolicyStore::fetch`], returning the checked bytes, and refusing a `registry://` module
    /// whose signatures do not satisfy `verification` (checked on the manifest digest the module
    /// is then read by). A cached module is re-hashed against its manifest, and the manifest
    /// against the digest, before use. A store that cannot be used is logged with the fix, and
    /// the module pulled without being stored.
    pub async fn load(
        &self,
        uri_or_path: &str,
        registry: &PolicyRegistry,
        verification: Option<(&Verifier, &VerificationConfig)>,
    ) -> Result<LoadedModule, ArtifactError> {
        if !uri_or_path.starts_with(REGISTRY_SCHEME) {
            let path = local_path(uri_or_path)?;
            let bytes = std::fs::read(&path).map_err(|source| ArtifactError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            return Ok(LoadedModule {
                path: Some(path),
                bytes,
                digest: None,
            });
        }
        let reference = parse_policy_uri(uri_or_path)?;
        let digest = match reference.digest() {
            Some(digest) => digest.to_owned(),
            None => registry.digest(&reference).await?,
        };
        if let Some((verifier, config)) = verification {
            let image = format!("{}/{}@{digest}", reference.registry(), reference.repository());
            verification::verify_module(verifier, &image, config).await?;
            tracing::info!(uri = uri_or_path, %digest, "policy module signatures verified");
        }
        let store = private_dir::private_cache_dir(&self.dir, "policy store", "the module is pulled and not stored")
            .map(Self::at);
        if let Some(store) = &store
            && let Some(bytes) = store.read_stored(uri_or_path, &digest, registry.max_module_bytes())?
        {
            let path = store.path_of(&digest)?;
            tracing::debug!(uri = uri_or_path, path = %path.display(), "policy served from cache");
            return Ok(LoadedModule {
                path: Some(path),
                bytes,
                digest: Some(digest),
            });
        }
        let pinned = reference.clone_with_digest(digest.clone());
        let pulled = registry.pull(&pinned).await?;
        let path = match &store {
            Some(store) => {
                let path = store.path_of(&digest)?;
                store.write(&path, &pulled.module)?;
                store.write(&store.manifest_path_of(&digest)?, &pulled.raw_manifest)?;
                tracing::info!(uri = uri_or_path, digest = %pulled.digest, path = %path.display(), "policy pulled");
                Some(path)
            }
            None => {
                tracing::info!(uri = uri_or_path, digest = %pulled.digest, "policy pulled, not stored");
                None
            }
        };
        Ok(LoadedModule {
            path,
            bytes: pulled.module,
            digest: Some(digest),
        })
    }

    /// The stored module of `digest` (`None` when the manifest or the module is missing), after
    /// checking the manifest against `digest` and the module against the manifest's layer digest
    /// and the size cap. `self` is a store that passed [`private_dir::private_dir`].
    fn read_stored(&self, uri: &str, digest: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ArtifactError> {
        let manifest_path = self.manifest_path_of(digest)?;
        let path = self.path_of(digest)?;
        let manifest = read_private(&manifest_path, MAX_POLICY_MANIFEST_BYTES as u64).map_err(|error| match error {
            ArtifactError::TooLarge { size, cap, .. } => ArtifactError::UnexpectedArtifact {
                uri: uri.to_owned(),
                reason: format!(
                    "its stored manifest {} is {size} bytes, larger than the cap of {cap} bytes: delete it to pull again",
                    manifest_path.display()
                ),
            },
            other => other,
        })?;
        let Some(raw_manifest) = manifest else {
            return Ok(None);
        };
        let (_, layer) = parse_policy_manifest(uri, &raw_manifest, digest).map_err(|error| match error {
            ArtifactError::DigestMismatch { expected, actual, .. } => ArtifactError::DigestMismatch {
                what: format!("cached manifest {}", manifest_path.display()),
                expected,
                actual,
            },
            other => other,
        })?;
        let Some(bytes) = read_private(&path, max_bytes)? else {
            return Ok(None);
        };
        let actual = sha256_digest(&bytes);
        if actual != layer.digest {
            return Err(ArtifactError::DigestMismatch {
                what: format!("cached module {}", path.display()),
                expected: layer.digest,
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// Writes atomically (a new private file, renamed into place): a reader never sees a
    /// partial module, and concurrent pulls of the same digest store the same bytes. `self` is a
    /// store that passed [`private_dir::private_dir`].
    fn write(&self, path: &Path, module: &[u8]) -> Result<(), ArtifactError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ArtifactError::Io { action, path, source }
        };
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let partial = path.with_extension(format!("partial-{}-{unique}", std::process::id()));
        let written = private_dir::create_private_file(&partial)
            .and_then(|mut file| file.write_all(module).and_then(|()| file.sync_all()))
            .map_err(io("write", &partial))
            .and_then(|()| std::fs::rename(&partial, path).map_err(io("store", path)));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }
}

/// The content of the stored file `path` (`None` when there is none), at most `cap` bytes: opened
/// once ([`private_dir::open_private_file`]: a regular file, not a link, of this user or root,
/// writable by no one else), its size checked on the opened file and the read bounded, so a file
/// growing meanwhile is refused too.
fn read_private(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, ArtifactError> {
    let io = |source| ArtifactError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let file = match private_dir::open_private_file(path) {
        Ok(file) => file,
        Err(OpenError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(OpenError::Io(error)) => return Err(io(error)),
        Err(OpenError::Untrusted(reason)) => {
            return Err(ArtifactError::UntrustedFile {
                path: path.to_owned(),
                reason,
            });
        }
    };
    let too_large = |size: u64| ArtifactError::TooLarge {
        uri: path.display().to_string(),
        size: size.to_string(),
        cap,
    };
    let size = file.metadata().map_err(io)?.len();
    if size > cap {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > cap {
        return Err(too_large(read));
    }
    Ok(Some(bytes))
}

/// The hex part of `sha256:<64 hex>`, lower-cased; refuses anything else (no path tricks).
fn digest_hex(digest: &str) -> Result<String, ArtifactError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ArtifactError::InvalidDigest(digest.to_owned()))
}

fn local_path(uri_or_path: &str) -> Result<PathBuf, ArtifactError> {
    if let Some((scheme, _)) = uri_or_path.split_once("://")
        && scheme != "file"
    {
        return Err(ArtifactError::InvalidUri {
            uri: uri_or_path.to_owned(),
            reason: format!("unsupported scheme {scheme}://, use {REGISTRY_SCHEME}, file:// or a path"),
        });
    }
    let path = PathBuf::from(uri_or_path.strip_prefix("file://").unwrap_or(uri_or_path));
    if path.is_file() {
        Ok(path)
    } else {
        Err(ArtifactError::Io {
            action: "read",
            path,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    }
}

/// The policy module of `cip inspect` and `cip pull`, without a signature check: a local file as
/// is, or a `registry://` module from the default store ([`PolicyStore::default_location`]),
/// pulled when missing. Use its checked `bytes`, never the file again.
///
/// `docker_config_dir` is the directory of a docker `config.json` with registry credentials
/// (default: docker's own, see [`load_credentials`]).
pub async fn fetch_policy(
    uri_or_path: &str,
    sources: &Sources,
    docker_config_dir: Option<&Path>,
) -> Result<LoadedModule, ArtifactError> {
    let registry = PolicyRegistry::new(sources, load_credentials(docker_config_dir)?);
    let store = if uri_or_path.starts_with(REGISTRY_SCHEME) {
        PolicyStore::default_location()?
    } else {
        PolicyStore::at(PathBuf::new())
    };
    store.load(uri_or_path, &registry, None).await
}

/// The policy module for `cip run`, `bench`, `verify` and `provider`: a local file as is, or a
/// `registry://` module from the default cache ([`PolicyStore::default_location`]), pulled
/// when missing, at most `max_module_bytes`, and refused unless its signatures satisfy
/// `verification` (`None` only with `--insecure-skip-module-verification`).
pub async fn load_policy(
    uri_or_path: &str,
    sources: &Sources,
    docker_config_dir: Option<&Path>,
    max_module_bytes: u64,
    verification: Option<(&Verifier, &VerificationConfig)>,
) -> Result<LoadedModule, ArtifactError> {
    let registry =
        PolicyRegistry::new(sources, load_credentials(docker_config_dir)?).with_max_module_bytes(max_module_bytes);
    let store = if uri_or_path.starts_with(REGISTRY_SCHEME) {
        PolicyStore::default_location()?
    } else {
        PolicyStore::at(PathBuf::new())
    };
    store.load(uri_or_path, &registry, verification).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_is_named_after_the_digest() {
        let store = PolicyStore::at("/cache");
        let digest = format!("sha256:{}", "AB".repeat(32));
        assert_eq!(
            store.path_of(&digest).expect("valid digest"),
            PathBuf::from(format!("/cache/sha256-{}.wasm", "ab".repeat(32)))
        );
        assert!(store.path_of("sha256:../../etc/passwd").is_err());
        assert!(store.path_of("sha512:00").is_err());
    }

    #[test]
    fn local_paths_are_returned_as_is() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let path = file.path().to_str().expect("utf-8 path");
        assert_eq!(local_path(path).expect("exists"), file.path());
        assert_eq!(local_path(&format!("file://{path}")).expect("exists"), file.path());
        assert!(local_path("/nonexistent/policy.wasm").is_err());
        assert!(local_path("https://example.com/policy.wasm").is_err());
    }
}
