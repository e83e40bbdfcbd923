//! Local cache of pulled policy modules, keyed by manifest digest, so `cip run registry://…`
//! downloads a module once and a pinned reference (`@sha256:…`) works offline.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::ArtifactError;
use super::oci::{PolicyRegistry, REGISTRY_SCHEME, load_credentials, parse_policy_uri};
use crate::registry::Sources;

/// Environment variable overriding the cache root (default `~/.cache/cip`).
pub const CACHE_DIR_ENV: &str = "CIP_CACHE_DIR";

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
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        let root = var(CACHE_DIR_ENV)
            .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("cip")))
            .or_else(|| var("HOME").map(|home| home.join(".cache").join("cip")))
            .ok_or(ArtifactError::NoCacheDir)?;
        Ok(Self::at(root.join("policies")))
    }

    /// The directory holding the modules.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the module of manifest `digest` is (or would be) stored.
    pub fn path_of(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ArtifactError::InvalidDigest(digest.to_owned()))?;
        Ok(self.dir.join(format!("sha256-{}.wasm", hex.to_ascii_lowercase())))
    }

    /// The local file of a policy: a path (or `file://` URI) as is, or the cached module of a
    /// `registry://` URI, pulled when not cached yet.
    ///
    /// A tag is resolved to its digest with one request (so a moved tag is noticed); a
    /// reference pinned by digest is served from the cache without any request.
    pub async fn fetch(&self, uri_or_path: &str, registry: &PolicyRegistry) -> Result<PathBuf, ArtifactError> {
        if !uri_or_path.starts_with(REGISTRY_SCHEME) {
            return local_path(uri_or_path);
        }
        let reference = parse_policy_uri(uri_or_path)?;
        let digest = match reference.digest() {
            Some(digest) => digest.to_owned(),
            None => registry.digest(&reference).await?,
        };
        let path = self.path_of(&digest)?;
        if path.is_file() {
            tracing::debug!(uri = uri_or_path, path = %path.display(), "policy served from cache");
            return Ok(path);
        }
        let pinned = reference.clone_with_digest(digest);
        let pulled = registry.pull(&pinned).await?;
        self.write(&path, &pulled.module)?;
        tracing::info!(uri = uri_or_path, digest = %pulled.digest, path = %path.display(), "policy pulled");
        Ok(path)
    }

    /// Writes atomically (a temporary file renamed into place): a reader never sees a partial
    /// module, and concurrent pulls of the same digest store the same bytes.
    fn write(&self, path: &Path, module: &[u8]) -> Result<(), ArtifactError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ArtifactError::Io { action, path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let partial = path.with_extension(format!("partial-{}-{unique}", std::process::id()));
        let written = std::fs::File::create(&partial)
            .and_then(|mut file| file.write_all(module).and_then(|()| file.sync_all()))
            .map_err(io("write", &partial))
            .and_then(|()| std::fs::rename(&partial, path).map_err(io("store", path)));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }
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

/// The local file of a policy for `cip run`: a path as is, or a `registry://` module pulled
/// into (or found in) the default cache ([`PolicyStore::default_location`]).
///
/// `docker_config_dir` is the directory of a docker `config.json` with registry credentials
/// (default: docker's own, see [`load_credentials`](super::load_credentials)).
pub async fn fetch_policy(
    uri_or_path: &str,
    sources: &Sources,
    docker_config_dir: Option<&Path>,
) -> Result<PathBuf, ArtifactError> {
    if !uri_or_path.starts_with(REGISTRY_SCHEME) {
        return local_path(uri_or_path);
    }
    let registry = PolicyRegistry::new(sources, load_credentials(docker_config_dir)?);
    PolicyStore::default_location()?.fetch(uri_or_path, &registry).await
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
