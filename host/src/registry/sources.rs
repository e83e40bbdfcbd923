//! kwctl's `sources.yaml`: which registries speak plain HTTP and which extra CAs to trust.
//!
//! A CA listed under `source_authorities."host:port"` is trusted for that registry alone, as
//! Kubewarden's policy-fetcher uses it (`client_protocol` takes `source_authority(host_and_port)`):
//! trusting it for every registry would let whoever holds a development registry's CA key
//! impersonate `ghcr.io` or `docker.io`, collect the credentials sent there and answer forged
//! manifests. [`Sources::authority_pems_for`] is the one look-up of a registry's CAs.

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
    /// A `source_authorities` key is not a registry `host[:port]`: its CAs would apply to no
    /// registry.
    #[error(
        "source_authorities: key {host:?} is not a registry host[:port] (like registry.example:5443, \
         without scheme or path): its CAs are trusted for that registry only, and this key names none"
    )]
    AuthorityHost { host: String },
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
    /// Extra CAs per registry host (`host[:port]`), each trusted for its host only (see
    /// [`Sources::authority_pems_for`]). After [`Sources::from_file`] every entry is `Data`.
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
            if !is_registry_host(host) {
                return Err(SourcesError::AuthorityHost { host: host.clone() });
            }
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

    /// PEM data of the extra CAs listed for `registry` (`host[:port]`, as a reference names it
    /// or as oci-client resolves it), and for it alone: the key and `registry` are compared as
    /// [`registry_host`] writes them (host case ignored, the port as written, `docker.io` and
    /// `index.docker.io` one host). Empty when none are listed: the platform's roots alone.
    pub fn authority_pems_for(&self, registry: &str) -> Vec<Vec<u8>> {
        let wanted = registry_host(registry);
        self.source_authorities
            .iter()
            .filter(|(host, _)| registry_host(host) == wanted)
            .flat_map(|(_, authorities)| authorities)
            .filter_map(|authority| match authority {
                SourceAuthority::Data { data } => Some(data.as_bytes().to_vec()),
                SourceAuthority::Path { .. } => None,
            })
            .collect()
    }

    /// The registries (as [`registry_host`] writes them) that have extra CAs, each once.
    pub fn authority_registries(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.source_authorities.keys().map(|host| registry_host(host)).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// A registry name as `source_authorities` keys and references are compared: the host in
/// lower case (DNS names ignore case), the port as written (`host` and `host:443` are two
/// names, as in policy-fetcher's `host_and_port`), and Docker Hub's `docker.io` written as the
/// host oci-client connects to for it, `index.docker.io`.
pub fn registry_host(registry: &str) -> String {
    let host = registry.trim().to_ascii_lowercase();
    match host.as_str() {
        "docker.io" => "index.docker.io".to_owned(),
        _ => host,
    }
}

/// `host[:port]`: letters, digits, `.`, `-`, `_`, `:` and an IPv6 literal's brackets; no
/// scheme, path, user info or space.
fn is_registry_host(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(':')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
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
        assert_eq!(sources.authority_pems_for("registry.internal:5443").len(), 2);
        assert_eq!(
            sources.authority_registries(),
            vec!["registry.internal:5443".to_owned()]
        );
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

    /// The look-up an attacker holding a CA for one registry would hope to widen: other hosts,
    /// other ports, the host without its port, a suffix or prefix of the name.
    #[test]
    fn authorities_apply_to_their_own_registry_only() {
        let pem = test_ca_pem();
        let indented: String = pem.lines().map(|line| format!("        {line}\n")).collect();
        let yaml = format!(
            "source_authorities:\n  \"Dev-Registry.internal:5443\":\n    - type: Data\n      data: |\n{indented}  \"docker.io\":\n    - type: Data\n      data: |\n{indented}"
        );
        let sources = Sources::from_yaml(&yaml, Path::new(".")).expect("valid sources");

        assert_eq!(sources.authority_pems_for("dev-registry.internal:5443").len(), 1);
        assert_eq!(sources.authority_pems_for("DEV-REGISTRY.INTERNAL:5443").len(), 1);
        assert_eq!(sources.authority_pems_for("index.docker.io").len(), 1);
        assert_eq!(sources.authority_pems_for("docker.io").len(), 1);
        for other in [
            "ghcr.io",
            "registry-1.docker.io",
            "dev-registry.internal",
            "dev-registry.internal:443",
            "dev-registry.internal:54430",
            "registry.internal:5443",
            "evil.dev-registry.internal:5443",
            "dev-registry.internal:5443.evil",
            "127.0.0.1:5443",
            "",
        ] {
            assert!(sources.authority_pems_for(other).is_empty(), "{other}");
        }
        assert_eq!(
            sources.authority_registries(),
            vec!["dev-registry.internal:5443".to_owned(), "index.docker.io".to_owned()]
        );
    }

    #[test]
    fn authority_keys_must_be_a_registry_host() {
        let pem = test_ca_pem();
        let indented: String = pem.lines().map(|line| format!("        {line}\n")).collect();
        for key in ["https://reg:5443", "reg:5443/team", "user@reg", "reg 5443", ":5443", ""] {
            let yaml = format!("source_authorities:\n  \"{key}\":\n    - type: Data\n      data: |\n{indented}");
            let err = Sources::from_yaml(&yaml, Path::new(".")).expect_err(key);
            assert!(
                matches!(&err, SourcesError::AuthorityHost { host } if host == key),
                "{key}: {err}"
            );
            assert!(err.to_string().contains("is not a registry host[:port]"), "{err}");
        }
        for key in ["reg", "reg:5443", "127.0.0.1:5000", "[::1]:5000", "my_reg.internal"] {
            let yaml = format!("source_authorities:\n  \"{key}\":\n    - type: Data\n      data: |\n{indented}");
            Sources::from_yaml(&yaml, Path::new(".")).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn empty_file_means_no_sources() {
        assert_eq!(
            Sources::from_yaml("", Path::new(".")).expect("empty"),
            Sources::default()
        );
    }
}
