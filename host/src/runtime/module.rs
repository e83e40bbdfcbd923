//! A policy module compiled once and shared by every evaluator and instance.

use std::path::Path;
use std::sync::Arc;

use wasmtime_provider::wasmtime;

use super::cache::{CacheUse, CompiledModuleCache, compile};
use super::{RuntimeError, engine};

/// A compiled policy module (raw or annotated `.wasm`; custom sections such as
/// `io.kubewarden.metadata` are ignored). Cloning is cheap: the compiled code is shared.
#[derive(Clone)]
pub struct PolicyModule {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    module: wasmtime::Module,
}

impl std::fmt::Debug for PolicyModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyModule").field("name", &self.inner.name).finish()
    }
}

impl PolicyModule {
    /// Reads and compiles a module; its file name becomes its name in messages.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, RuntimeError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        Self::from_bytes(name, &bytes)
    }

    /// Compiles a module from its bytes (binary WebAssembly, or WAT text).
    pub fn from_bytes(name: impl Into<String>, bytes: &[u8]) -> Result<Self, RuntimeError> {
        let name = name.into();
        let module = compile(&engine::engine()?, &name, bytes)?;
        Ok(Self {
            inner: Arc::new(Inner { name, module }),
        })
    }

    /// [`PolicyModule::from_bytes`] through a cache of compiled modules: deserialised from a
    /// verified entry, or compiled and stored.
    pub fn from_bytes_cached(
        name: impl Into<String>,
        bytes: &[u8],
        cache: &CompiledModuleCache,
    ) -> Result<(Self, CacheUse), RuntimeError> {
        let name = name.into();
        let (module, used) = cache.load_or_compile(&name, bytes)?;
        Ok((
            Self {
                inner: Arc::new(Inner { name, module }),
            },
            used,
        ))
    }

    /// The name used in messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The compiled wasmtime module.
    pub(crate) fn module(&self) -> &wasmtime::Module {
        &self.inner.module
    }
}
