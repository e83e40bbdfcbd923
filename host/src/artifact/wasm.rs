//! The `io.kubewarden.metadata` custom section of a core wasm module: read it, or rewrite the
//! module with a new one (every other section is copied byte for byte).

use std::borrow::Cow;

use wasm_encoder::{CustomSection, RawSection};
use wasmparser::{Encoding, Parser, Payload};

use super::metadata::{Metadata, MetadataError};

/// Name of the custom section Kubewarden hosts read the policy metadata from.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";

/// Why a module could not be read or rewritten.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("not a WebAssembly module: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    #[error("a WebAssembly component is not a Kubewarden policy: only core modules are supported")]
    Component,
    #[error("the module holds {0} `io.kubewarden.metadata` sections, expected at most one")]
    DuplicateMetadata(usize),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// The metadata stored in the module, `None` when it was never annotated.
pub fn read_metadata(module: &[u8]) -> Result<Option<Metadata>, WasmError> {
    let mut found = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => return Err(WasmError::Component),
            Payload::CustomSection(section) if section.name() == METADATA_SECTION => {
                found.push(section.data());
            }
            _ => {}
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [data] => Ok(Some(Metadata::from_json(data)?)),
        many => Err(WasmError::DuplicateMetadata(many.len())),
    }
}

/// A copy of `module` whose metadata section holds `metadata` as JSON, replacing any earlier
/// one. The section is appended after all others, as `kwctl annotate` does.
pub fn write_metadata(module: &[u8], metadata: &Metadata) -> Result<Vec<u8>, WasmError> {
    let json = serde_json::to_vec(metadata).map_err(MetadataError::from)?;
    let mut out = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        if let Payload::Version {
            encoding: Encoding::Component,
            ..
        } = payload
        {
            return Err(WasmError::Component);
        }
        if let Payload::CustomSection(section) = &payload
            && section.name() == METADATA_SECTION
        {
            continue;
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&RawSection {
                id,
                data: &module[range],
            });
        }
    }
    out.section(&CustomSection {
        name: Cow::Borrowed(METADATA_SECTION),
        data: Cow::Owned(json),
    });
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid core module: magic and version.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn metadata(title: &str) -> Metadata {
        let mut metadata =
            Metadata::from_yaml("rules: []\nmutating: false\nannotations: {io.kubewarden.policy.title: x}\n")
                .expect("fixture parses");
        metadata.set_annotation("io.kubewarden.policy.title", title.to_owned());
        metadata
    }

    fn custom_sections(module: &[u8]) -> Vec<String> {
        Parser::new(0)
            .parse_all(module)
            .filter_map(|payload| match payload.expect("valid module") {
                Payload::CustomSection(section) => Some(section.name().to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn unannotated_module_has_no_metadata() {
        assert_eq!(read_metadata(EMPTY_MODULE).expect("parses"), None);
    }

    #[test]
    fn write_then_read_round_trips() {
        let annotated = write_metadata(EMPTY_MODULE, &metadata("one")).expect("writes");
        assert_eq!(read_metadata(&annotated).expect("reads"), Some(metadata("one")));
    }

    #[test]
    fn annotating_twice_replaces_the_section() {
        let once = write_metadata(EMPTY_MODULE, &metadata("one")).expect("writes");
        let twice = write_metadata(&once, &metadata("two")).expect("rewrites");
        assert_eq!(custom_sections(&twice), [METADATA_SECTION]);
        assert_eq!(read_metadata(&twice).expect("reads"), Some(metadata("two")));
    }

    #[test]
    fn other_custom_sections_are_kept() {
        let mut with_name = wasm_encoder::Module::new();
        with_name.section(&CustomSection {
            name: Cow::Borrowed("producers"),
            data: Cow::Borrowed(b"\0"),
        });
        let annotated = write_metadata(&with_name.finish(), &metadata("one")).expect("writes");
        assert_eq!(custom_sections(&annotated), ["producers", METADATA_SECTION]);
    }

    #[test]
    fn garbage_is_not_a_module() {
        assert!(matches!(read_metadata(b"not wasm at all"), Err(WasmError::Parse(_))));
        assert!(write_metadata(b"\0asm\x01", &metadata("x")).is_err());
    }
}
