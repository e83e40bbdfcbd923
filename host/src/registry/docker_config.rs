//! Registry credentials from a docker `config.json` (`--docker-config-json-path`).
//!
//! A key names a registry host (`reg.example`, `https://index.docker.io/v1/`) or a host and a
//! repository path (`reg.example/team-a`). They are matched as the kubelet matches an image
//! pull secret's keys (`credentialprovider/keyring.go`), a path on a segment boundary: a key's
//! credentials serve the repositories of its host whose path is the key's path or lies below it,
//! the longest matching key winning; a key with a path serves no repository outside it. (The
//! docker CLI matches by host alone; collapsing `reg.example/team-a` and `reg.example/team-b`
//! onto `reg.example` handed one team's credentials to every repository of the host.)

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

/// Username and password per registry host and repository path (`""` for the whole host).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DockerCredentials {
    by_registry: BTreeMap<(String, String), (String, String)>,
}

impl std::fmt::Debug for DockerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .by_registry
            .keys()
            .map(|(host, path)| match path.as_str() {
                "" => host.clone(),
                path => format!("{host}/{path}"),
            })
            .collect();
        f.debug_struct("DockerCredentials").field("registries", &keys).finish()
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

    /// Parses the JSON text of a docker `config.json`. Two keys naming one host and path (say
    /// `reg.example/team` and `https://reg.example/team/`) are one entry: the last in the
    /// keys' sorted order is kept.
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

    /// Credentials for `repository` (`team/app`) of `registry` (`host[:port]`): those of the
    /// key of that host whose path is `repository` or one of its leading segments, the longest
    /// such path winning (a key without a path matches every repository of its host);
    /// anonymous when no key matches.
    pub fn auth_for(&self, registry: &str, repository: &str) -> RegistryAuth {
        let (host, _) = normalise_registry(registry);
        let repository = repository.trim_matches('/');
        self.by_registry
            .iter()
            .filter(|((key_host, path), _)| *key_host == host && path_covers(path, repository))
            .max_by_key(|((_, path), _)| path.len())
            .map_or(RegistryAuth::Anonymous, |(_, (user, password))| {
                RegistryAuth::Basic(user.clone(), password.clone())
            })
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

/// The host and repository path of a key: the scheme dropped, the host in lower case (with
/// `https://index.docker.io/v1/`, `registry-1.docker.io` and `docker.io` one registry), and the
/// path without its leading `/v1/` or `/v2/` (the API's, which the docker CLI and the kubelet
/// read as the host alone) nor its outer slashes.
fn normalise_registry(key: &str) -> (String, String) {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = without_scheme.split_once('/').unwrap_or((without_scheme, ""));
    let host = match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    };
    let path = match path {
        "v1" | "v2" => "",
        _ => path
            .strip_prefix("v1/")
            .or_else(|| path.strip_prefix("v2/"))
            .unwrap_or(path),
    };
    (host, path.trim_matches('/').to_string())
}

/// Whether a key's `path` covers `repository`: no path, the same path, or a path of whole
/// leading segments (`team` covers `team/app`, not `team-b/app` nor `teamapp`).
fn path_covers(path: &str, repository: &str) -> bool {
    path.is_empty()
        || repository
            .strip_prefix(path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
            creds.auth_for("127.0.0.1:5000", "team/app"),
            RegistryAuth::Basic("alice".into(), "s3cr:et".into())
        );
        assert_eq!(
            creds.auth_for("docker.io", "library/nginx"),
            RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert_eq!(
            creds.auth_for("index.docker.io", "library/nginx"),
            RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert_eq!(creds.auth_for("ghcr.io", "team/app"), RegistryAuth::Anonymous);
        assert_eq!(creds.auth_for("127.0.0.1:5001", "team/app"), RegistryAuth::Anonymous);
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
        assert_eq!(
            creds.auth_for("reg:443", "app"),
            RegistryAuth::Basic("u".into(), "p".into())
        );
    }

    fn basic(user: &str) -> RegistryAuth {
        RegistryAuth::Basic(user.into(), "pw".into())
    }

    /// Keys with a path serve their repositories only: each team its own, a repository of no
    /// team none (not one of the teams' by the keys' order), a name that merely starts like a
    /// team's path none.
    #[test]
    fn keys_with_a_path_serve_the_repositories_below_it_only() {
        let creds = DockerCredentials::from_json(
            r#"{"auths":{
                "reg.example/team-a":{"username":"alice","password":"pw"},
                "https://reg.example/v2/team-b/":{"username":"bob","password":"pw"}
            }}"#,
        )
        .expect("valid config");
        assert_eq!(creds.auth_for("reg.example", "team-a/app"), basic("alice"));
        assert_eq!(creds.auth_for("reg.example", "team-a/sub/app"), basic("alice"));
        assert_eq!(creds.auth_for("reg.example", "team-a"), basic("alice"));
        assert_eq!(creds.auth_for("reg.example", "team-b/app"), basic("bob"));
        assert_eq!(creds.auth_for("REG.example", "team-b/app"), basic("bob"));
        for outside in ["team-c/app", "app", "team-ab/app", "team/a/app", "x/team-a/app", ""] {
            assert_eq!(
                creds.auth_for("reg.example", outside),
                RegistryAuth::Anonymous,
                "{outside}"
            );
        }
        assert_eq!(creds.auth_for("other.example", "team-a/app"), RegistryAuth::Anonymous);
        assert_eq!(
            creds.auth_for("reg.example:5000", "team-a/app"),
            RegistryAuth::Anonymous
        );
    }

    /// The longest matching key wins, whatever the keys' order; the host's own key serves the
    /// rest.
    #[test]
    fn the_longest_matching_key_wins() {
        let creds = DockerCredentials::from_json(
            r#"{"auths":{
                "reg.example":{"username":"host","password":"pw"},
                "reg.example/team":{"username":"team","password":"pw"},
                "reg.example/team/sub":{"username":"sub","password":"pw"},
                "https://index.docker.io/v1":{"username":"hub","password":"pw"},
                "docker.io/myorg":{"username":"myorg","password":"pw"}
            }}"#,
        )
        .expect("valid config");
        assert_eq!(creds.auth_for("reg.example", "team/sub/app"), basic("sub"));
        assert_eq!(creds.auth_for("reg.example", "team/subway"), basic("team"));
        assert_eq!(creds.auth_for("reg.example", "team/app"), basic("team"));
        assert_eq!(creds.auth_for("reg.example", "teams/app"), basic("host"));
        assert_eq!(creds.auth_for("reg.example", "other/app"), basic("host"));
        assert_eq!(creds.auth_for("index.docker.io", "myorg/app"), basic("myorg"));
        assert_eq!(creds.auth_for("index.docker.io", "library/nginx"), basic("hub"));
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
