//! kwctl's `sources.yaml`: which registries speak plain HTTP and which extra CAs to trust.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;

/// Why a sources file cannot be used; every message names the host and entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// The sources file cannot be read.
    #[error("cannot read sources file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The sources file is not valid YAML of the expected shape.
    #[error("invalid sources file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A CA entry is unusable.
    #[error("source_authorities.{host}[{index}]: {message}")]
    Authority {
        host: String,
        index: usize,
        message: String,
    },
}

/// One extra certificate authority for a registry host, as kwctl writes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SourceAuthority {
    /// PEM data inline.
    Data { data: String },
    /// A PEM file on disk.
    Path { path: PathBuf },
}

/// kwctl's `sources.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// Registries (`host[:port]`) reached over plain HTTP.
    #[serde(default)]
    pub insecure_sources: Vec<String>,
    /// Extra CAs per registry host. After [`Sources::from_file`] every entry is `Data`.
    #[serde(default)]
    pub source_authorities: BTreeMap<String, Vec<SourceAuthority>>,
}

impl Sources {
    /// Reads and validates a sources file; `Path` authorities are loaded (relative paths are
    /// resolved against the file's directory) and every CA must be PEM certificates.
    pub fn from_file(path: &Path) -> Result<Self, SourcesError> {
        let text = std::fs::read_to_string(path).map_err(|source| SourcesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_yaml(&text, base).map_err(|e| match e {
            SourcesError::Parse { message, .. } => SourcesError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates sources YAML; relative `Path` entries are resolved against `base`.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Self, SourcesError> {
        let mut sources: Sources = if text.trim().is_empty() {
            Sources::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| SourcesError::Parse {
                path: PathBuf::from("<inline>"),
                message: e.to_string(),
            })?
        };
        for (host, authorities) in &mut sources.source_authorities {
            for (index, authority) in authorities.iter_mut().enumerate() {
                let error = |message: String| SourcesError::Authority {
                    host: host.clone(),
                    index,
                    message,
                };
                let data = match authority {
                    SourceAuthority::Data { data } => data.clone(),
                    SourceAuthority::Path { path } => {
                        let full = base.join(&*path);
                        std::fs::read_to_string(&full)
                            .map_err(|e| error(format!("cannot read {}: {e}", full.display())))?
                    }
                };
                let count = pem_certificates(&data).map_err(error)?.len();
                if count == 0 {
                    return Err(error("no PEM certificate found".to_string()));
                }
                *authority = SourceAuthority::Data { data };
            }
        }
        Ok(sources)
    }

    /// Whether `registry` (`host[:port]`) is reached over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_sources.iter().any(|s| s == registry)
    }

    /// PEM data of every extra CA, all hosts together (the registry client trusts them all).
    pub fn authority_pems(&self) -> Vec<Vec<u8>> {
        self.source_authorities
            .values()
            .flatten()
            .filter_map(|authority| match authority {
                SourceAuthority::Data { data } => Some(data.as_bytes().to_vec()),
                SourceAuthority::Path { .. } => None,
            })
            .collect()
    }
}

/// The DER certificates in a PEM text.
pub(crate) fn pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key generation");
        let params = rcgen::CertificateParams::new(vec!["registry.internal".to_string()]).expect("params");
        params.self_signed(&key).expect("self signed").pem()
    }

    #[test]
    fn parses_kwctl_sources_and_loads_path_authorities() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = test_ca_pem();
        std::fs::write(dir.path().join("ca.pem"), &pem).expect("write ca");
        let yaml = format!(
            "insecure_sources: [\"127.0.0.1:5000\"]\nsource_authorities:\n  \"registry.internal:5443\":\n    - type: Path\n      path: ca.pem\n    - type: Data\n      data: |\n{}\n",
            pem.lines()
                .map(|l| format!("        {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let file = dir.path().join("sources.yaml");
        std::fs::write(&file, yaml).expect("write sources");

        let sources = Sources::from_file(&file).expect("valid sources");

        assert!(sources.is_insecure("127.0.0.1:5000"));
        assert!(!sources.is_insecure("127.0.0.1:5001"));
        let authorities = &sources.source_authorities["registry.internal:5443"];
        assert_eq!(authorities.len(), 2);
        assert!(
            authorities
                .iter()
                .all(|a| matches!(a, SourceAuthority::Data { data } if data.trim() == pem.trim()))
        );
        assert_eq!(sources.authority_pems().len(), 2);
    }

    #[test]
    fn rejects_authority_that_is_not_a_certificate() {
        let yaml = "source_authorities:\n  \"reg:5443\":\n    - type: Data\n      data: not a pem\n";
        let err = Sources::from_yaml(yaml, Path::new(".")).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "source_authorities.reg:5443[0]: no PEM certificate found"
        );
    }

    #[test]
    fn rejects_missing_authority_file_naming_it() {
        let yaml = "source_authorities:\n  \"reg:5443\":\n    - type: Path\n      path: /nonexistent/ca.pem\n";
        let err = Sources::from_yaml(yaml, Path::new(".")).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.starts_with("source_authorities.reg:5443[0]: cannot read /nonexistent/ca.pem"),
            "{text}"
        );
    }

    #[test]
    fn rejects_unknown_fields_and_types() {
        let err = Sources::from_yaml("insecure_source: [a]\n", Path::new(".")).expect_err("typo");
        assert!(err.to_string().contains("unknown field `insecure_source`"), "{err}");
        let err = Sources::from_yaml(
            "source_authorities:\n  h:\n    - type: Url\n      url: x\n",
            Path::new("."),
        )
        .expect_err("unknown type");
        assert!(err.to_string().contains("unknown variant `Url`"), "{err}");
    }

    #[test]
    fn empty_file_means_no_sources() {
        assert_eq!(
            Sources::from_yaml("", Path::new(".")).expect("empty"),
            Sources::default()
        );
    }
}
