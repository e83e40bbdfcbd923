//! A cache of compiled policy modules, so that `cip run` does not compile the module on every
//! run.
//!
//! Each entry is wasmtime's own serialisation of a compiled module ([`wasmtime::Module::serialize`]),
//! in a file named after its key: the SHA-256 of the module's bytes, `cip`'s version and the
//! engine's compatibility hash ([`wasmtime::Engine::precompile_compatibility_hash`]: target,
//! compiler flags, tunables, features and the wasmtime version). The file starts with a header
//! holding that key and the SHA-256 and length of the serialised module; an entry is used only
//! if the header's key is the key looked up and the payload hashes to the header's digest, and
//! the verified bytes are what is deserialised (never the file again, which could have changed
//! meanwhile). Anything else (a truncated, corrupted or foreign file, or a payload wasmtime
//! refuses) is discarded and the module compiled and stored again. Entries are written to a
//! temporary file in the same directory and renamed into place, so a reader never sees half an
//! entry.
//!
//! The checksum finds damage, not forgery: whoever can write an entry can compute its header.
//! An entry is native code `cip` runs, so the cache is used only in a directory that only this
//! user (or root) can write, and an entry only when it is a private regular file
//! ([`crate::private_dir`]); otherwise the module is compiled and the cache neither read nor
//! written ([`CacheUse::Untrusted`]).

use std::hash::Hasher;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime_provider::wasmtime;

use super::{RuntimeError, engine};
use crate::private_dir::{self, OpenError, Untrusted};

/// The first bytes of every entry (and the layout version).
const MAGIC: &[u8; 8] = b"CIPCWM01";
/// Magic, key, payload digest, payload length.
const HEADER_LEN: usize = MAGIC.len() + 32 + 32 + 8;

/// Where a compiled module came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Deserialised from a verified cache entry.
    Hit,
    /// Compiled; the entry was missing.
    Miss,
    /// Compiled; the entry was unusable (truncated, corrupted, foreign, a link, writable by
    /// others) and was replaced.
    Replaced,
    /// Compiled; the cache's directory (or one above it) is owned or writable by another user,
    /// or could not be created or inspected, so the cache was neither read nor written.
    Untrusted,
}

/// Why an entry cannot be used.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Untrusted(Untrusted),
    #[error("the file is {0} bytes, shorter than its header")]
    Truncated(usize),
    #[error("the file is not a compiled-module cache entry")]
    Magic,
    #[error("the entry was made for another module, cip or engine")]
    Key,
    #[error("the payload is {found} bytes, the header says {expected}")]
    Length { expected: u64, found: usize },
    #[error("the payload does not hash to the header's digest")]
    Digest,
    #[error("wasmtime refused the payload: {0}")]
    Deserialize(String),
}

impl From<OpenError> for EntryError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Io(e) => Self::Io(e),
            OpenError::Untrusted(e) => Self::Untrusted(e),
        }
    }
}

/// A directory of compiled modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledModuleCache {
    dir: PathBuf,
}

/// Feeds a [`std::hash::Hash`] into SHA-256 (stable, unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompiledModuleCache {
    /// A cache in `dir` (created on first write).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory of the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `module` compiled by `engine`.
    fn key(engine: &wasmtime::Engine, module: &[u8]) -> [u8; 32] {
        let mut hasher = ShaHasher(Sha256::new());
        hasher.write(b"cip compiled module\0");
        hasher.write(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.write(&[0]);
        hasher.write(&Sha256::digest(module));
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        hasher.0.finalize().into()
    }

    /// The file of the entry with `key` in `dir` (the checked, canonical form of `self.dir`).
    fn path_of(dir: &Path, key: &[u8; 32]) -> PathBuf {
        dir.join(format!("{}.cwasm", hex::encode(key)))
    }

    /// The compiled `bytes`: from the cache when a verified entry exists, else compiled and
    /// stored. A failure to store is logged, not returned: the module is compiled either way;
    /// so is a cache in a directory another user can write ([`CacheUse::Untrusted`], logged
    /// with the fix).
    pub fn load_or_compile(&self, name: &str, bytes: &[u8]) -> Result<(wasmtime::Module, CacheUse), RuntimeError> {
        let engine = engine::engine()?;
        let Some(dir) = private_dir::private_cache_dir(
            &self.dir,
            "compiled-module cache",
            "its entries are native code, kept only where no other user can write; compiling",
        ) else {
            return Ok((compile(&engine, name, bytes)?, CacheUse::Untrusted));
        };
        let key = Self::key(&engine, bytes);
        let path = Self::path_of(&dir, &key);
        let found = match Self::read_entry(&engine, &path, &key) {
            Ok(module) => {
                tracing::info!(policy = name, path = %path.display(), "compiled module loaded from the cache");
                return Ok((module, CacheUse::Hit));
            }
            Err(EntryError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => CacheUse::Miss,
            Err(reason) => {
                tracing::warn!(policy = name, path = %path.display(), %reason, "compiled-module cache entry discarded");
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the discarded cache entry");
                }
                CacheUse::Replaced
            }
        };
        let module = compile(&engine, name, bytes)?;
        match Self::write_entry(&dir, &path, &key, &module) {
            Ok(()) => tracing::info!(policy = name, path = %path.display(), "compiled module stored in the cache"),
            Err(e) => {
                tracing::warn!(policy = name, path = %path.display(), error = %e, "cannot store the compiled module")
            }
        }
        Ok((module, found))
    }

    fn read_entry(engine: &wasmtime::Engine, path: &Path, key: &[u8; 32]) -> Result<wasmtime::Module, EntryError> {
        let mut file = Vec::new();
        private_dir::open_private_file(path)?.read_to_end(&mut file)?;
        let (header, payload) = file
            .split_at_checked(HEADER_LEN)
            .ok_or(EntryError::Truncated(file.len()))?;
        let (magic, rest) = header.split_at(MAGIC.len());
        let (stored_key, rest) = rest.split_at(32);
        let (digest, length) = rest.split_at(32);
        if magic != MAGIC {
            return Err(EntryError::Magic);
        }
        if stored_key != key {
            return Err(EntryError::Key);
        }
        let mut length_bytes = [0u8; 8];
        length_bytes.copy_from_slice(length);
        let expected = u64::from_le_bytes(length_bytes);
        if u64::try_from(payload.len()).ok() != Some(expected) {
            return Err(EntryError::Length {
                expected,
                found: payload.len(),
            });
        }
        if Sha256::digest(payload).as_slice() != digest {
            return Err(EntryError::Digest);
        }
        // SAFETY: `payload` is what `Module::serialize` produced for this key (same module
        // bytes, cip version and engine compatibility hash): it was read from a private file in
        // a directory only this user or root can write (`private_dir`), so no one else wrote
        // it, and its SHA-256, recorded then, shows it undamaged; wasmtime checks its own header
        // (version, flags) again.
        unsafe { wasmtime::Module::deserialize(engine, payload) }.map_err(|e| EntryError::Deserialize(format!("{e:#}")))
    }

    /// Writes the entry of `module` at `path` in `dir` (already checked by `private_dir`).
    fn write_entry(dir: &Path, path: &Path, key: &[u8; 32], module: &wasmtime::Module) -> Result<(), String> {
        let payload = module.serialize().map_err(|e| format!("{e:#}"))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let temporary = dir.join(format!(".{}.{}-{nanos}.tmp", hex::encode(key), std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut file = private_dir::create_private_file(&temporary)?;
            file.write_all(MAGIC)?;
            file.write_all(key)?;
            file.write_all(&Sha256::digest(&payload))?;
            file.write_all(&u64::try_from(payload.len()).unwrap_or(u64::MAX).to_le_bytes())?;
            file.write_all(&payload)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            e.to_string()
        })
    }
}

/// Compiles `bytes` with the shared engine.
pub(crate) fn compile(engine: &wasmtime::Engine, name: &str, bytes: &[u8]) -> Result<wasmtime::Module, RuntimeError> {
    wasmtime::Module::new(engine, bytes).map_err(|e| RuntimeError::Compile {
        name: name.to_owned(),
        message: format!("{e:#}"),
    })
}
