//! Registry credentials from a docker `config.json` (`--docker-config-json-path`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// Why a docker config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    /// The file cannot be read.
    #[error("cannot read docker config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not a docker config, or an entry is malformed.
    #[error("invalid docker config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    auths: BTreeMap<String, AuthDoc>,
}

#[derive(Deserialize)]
struct AuthDoc {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Username and password per registry host.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DockerCredentials {
    by_registry: BTreeMap<String, (String, String)>,
}

impl std::fmt::Debug for DockerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerCredentials")
            .field("registries", &self.by_registry.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DockerCredentials {
    /// Reads `config.json` from `path`, a directory (as kwctl's flag) or the file itself.
    pub fn from_path(path: &Path) -> Result<Self, DockerConfigError> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| DockerConfigError::Read {
            path: file.clone(),
            source,
        })?;
        Self::from_json(&text).map_err(|message| DockerConfigError::Invalid { path: file, message })
    }

    /// Parses the JSON text of a docker `config.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let doc: ConfigDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut by_registry = BTreeMap::new();
        for (key, entry) in doc.auths {
            let credentials = match (&entry.auth, &entry.username, &entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    decode_auth(auth).map_err(|message| format!("auths.{key}.auth: {message}"))?
                }
                (_, Some(user), Some(password)) => (user.clone(), password.clone()),
                _ => continue,
            };
            by_registry.insert(normalise_registry(&key), credentials);
        }
        Ok(Self { by_registry })
    }

    /// Credentials for `registry` (`host[:port]`), anonymous when none are configured.
    pub fn auth_for(&self, registry: &str) -> RegistryAuth {
        match self.by_registry.get(&normalise_registry(registry)) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let bytes = BASE64.decode(auth.trim()).map_err(|e| format!("not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| "expected base64 of user:password".to_string())?;
    Ok((user.to_string(), password.to_string()))
}

/// `https://index.docker.io/v1/` and `docker.io` name the same registry; keys may carry a scheme
/// and a path.
fn normalise_registry(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_base64_auth_and_plain_username_password() {
        let auth = BASE64.encode("alice:s3cr:et");
        let json = format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"username":"bob","password":"pw"}},"ghcr.io":{{}}}}}}"#
        );
        let creds = DockerCredentials::from_json(&json).expect("valid config");
        assert_eq!(
            creds.auth_for("127.0.0.1:5000"),
            RegistryAuth::Basic("alice".into(), "s3cr:et".into())
        );
        assert_eq!(
            creds.auth_for("docker.io"),
            RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert_eq!(creds.auth_for("ghcr.io"), RegistryAuth::Anonymous);
        assert_eq!(creds.auth_for("127.0.0.1:5001"), RegistryAuth::Anonymous);
    }

    #[test]
    fn reads_config_json_from_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"reg:443":{"username":"u","password":"p"}}}"#,
        )
        .expect("write");
        let creds = DockerCredentials::from_path(dir.path()).expect("valid");
        assert_eq!(creds.auth_for("reg:443"), RegistryAuth::Basic("u".into(), "p".into()));
    }

    #[test]
    fn malformed_auth_names_the_entry() {
        let err = DockerCredentials::from_json(r#"{"auths":{"reg":{"auth":"bm9jb2xvbg=="}}}"#).expect_err("no colon");
        assert_eq!(err, "auths.reg.auth: expected base64 of user:password");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let creds =
            DockerCredentials::from_json(r#"{"auths":{"reg":{"username":"u","password":"hunter2"}}}"#).expect("valid");
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
