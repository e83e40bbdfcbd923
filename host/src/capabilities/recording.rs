//! Recording and replaying the policy's host capability calls, in kwctl's session file format
//! (`kwctl run --record-host-capabilities-interactions FILE` /
//! `--replay-host-capabilities-interactions FILE`), so a verification captured once replays
//! offline, in CI, with no registry.
//!
//! A session file is a YAML list of exchanges, in call order:
//!
//! ```yaml
//! - type: Exchange
//!   request: |
//!     !SigstorePubKeyVerify
//!     image: registry.example/app:v1
//!     pub_keys:
//!     - |
//!       -----BEGIN PUBLIC KEY-----
//!       ...
//!     annotations: null
//!   response:
//!     type: Success
//!     payload: '{"is_trusted":true,"digest":"sha256:..."}'
//! ```
//!
//! `request` is the YAML of policy-evaluator's `CallbackRequestType` (the payload of
//! `kubewarden/oci/v2/verify` is the same object, its `type` becoming the YAML tag); `response`
//! is the host's answer (`Success` with the payload as text) or its error (`Error` with the
//! message the policy saw). Calls kwctl has no request type for (cip's own
//! `cluster-image-policy/oci/v1/verify_keyless_regexp`) are written as `!HostCall` with the
//! binding, namespace, operation and payload. Logging calls are not recorded, as with kwctl.
//!
//! Replay answers the n-th call with the n-th exchange after checking that the request is the
//! recorded one (compared as YAML values), as kwctl does; a different request, or a call past
//! the end of the session, fails the call with an error saying so.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use serde_yaml::value::{Tag, TaggedValue};

use super::CapabilityError;

/// The fields of policy-evaluator's sigstore `CallbackRequestType` variants, in declaration
/// order (the order kwctl writes them).
const SIGSTORE_FIELDS: [(&str, &[&str]); 5] = [
    ("SigstorePubKeyVerify", &["image", "pub_keys", "annotations"]),
    ("SigstoreKeylessVerify", &["image", "keyless", "annotations"]),
    (
        "SigstoreKeylessPrefixVerify",
        &["image", "keyless_prefix", "annotations"],
    ),
    (
        "SigstoreGithubActionsVerify",
        &["image", "owner", "repo", "annotations"],
    ),
    (
        "SigstoreCertificateVerify",
        &[
            "image",
            "certificate",
            "certificate_chain",
            "require_rekor_bundle",
            "annotations",
        ],
    ),
];

/// The answer kwctl records for one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Response {
    Success { payload: String },
    Error { message: String },
}

/// One entry of a session file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Entry {
    Exchange { request: String, response: Response },
}

/// Why a session file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file cannot be read or written.
    #[error("host capabilities interactions file {path}: {source}")]
    Io {
        /// The session file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a kwctl session.
    #[error("host capabilities interactions file {path} is not a kwctl session (a YAML list of exchanges): {message}")]
    Format {
        /// The session file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Records or replays the host calls of an evaluation.
#[derive(Debug)]
pub enum Interactions {
    /// Calls are answered by the host and written to the session file.
    Record(Recorder),
    /// Calls are answered from the session file; nothing leaves the process.
    Replay(Replayer),
}

impl Interactions {
    /// Records into `path`, which is created (an empty session) right away.
    pub fn record(path: &Path) -> Result<Self, RecordingError> {
        let recorder = Recorder {
            path: path.to_path_buf(),
            entries: Mutex::new(Vec::new()),
        };
        recorder.save(&[])?;
        Ok(Self::Record(recorder))
    }

    /// Replays the session in `path`.
    pub fn replay(path: &Path) -> Result<Self, RecordingError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = |message: String| RecordingError::Format {
            path: path.to_path_buf(),
            message,
        };
        let entries: Vec<Entry> = serde_yaml::from_str(&text).map_err(|e| format(e.to_string()))?;
        let exchanges = entries
            .into_iter()
            .enumerate()
            .map(|(index, Entry::Exchange { request, response })| {
                let request = serde_yaml::from_str(&request)
                    .map_err(|e| format(format!("the request of exchange {index} is not YAML: {e}")))?;
                Ok((request, response))
            })
            .collect::<Result<Vec<_>, RecordingError>>()?;
        Ok(Self::Replay(Replayer {
            exchanges,
            cursor: AtomicUsize::new(0),
        }))
    }

    /// Answers one host call: from the session when replaying, else with `direct` (recorded
    /// when recording). Logging calls always go to `direct`, unrecorded.
    pub(super) fn dispatch(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
        direct: impl FnOnce() -> Result<Vec<u8>, CapabilityError>,
    ) -> Result<Vec<u8>, CapabilityError> {
        if namespace == "tracing" {
            return direct();
        }
        let request = request_value(binding, namespace, operation, payload);
        match self {
            Self::Replay(replayer) => replayer.answer(&request),
            Self::Record(recorder) => {
                let answer = direct();
                recorder.push(&request, &answer);
                answer
            }
        }
    }
}

/// Writes every exchange to the session file as it happens.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    entries: Mutex<Vec<Entry>>,
}

impl Recorder {
    fn push(&self, request: &Value, answer: &Result<Vec<u8>, CapabilityError>) {
        let response = match answer {
            Ok(payload) => Response::Success {
                payload: String::from_utf8_lossy(payload).into_owned(),
            },
            Err(error) => Response::Error {
                message: error.to_string(),
            },
        };
        let request = serde_yaml::to_string(request).unwrap_or_default();
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.push(Entry::Exchange { request, response });
        if let Err(error) = self.save(&entries) {
            tracing::error!(%error, "cannot record the host capabilities interactions");
        }
    }

    fn save(&self, entries: &[Entry]) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io {
            path: self.path.clone(),
            source,
        };
        let text = serde_yaml::to_string(entries).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&self.path, text).map_err(io)
    }
}

/// Answers calls from a recorded session, in order.
#[derive(Debug)]
pub struct Replayer {
    exchanges: Vec<(Value, Response)>,
    cursor: AtomicUsize,
}

impl Replayer {
    fn answer(&self, request: &Value) -> Result<Vec<u8>, CapabilityError> {
        let index = self.cursor.fetch_add(1, Ordering::SeqCst);
        let Some((recorded, response)) = self.exchanges.get(index) else {
            return Err(CapabilityError::Failed {
                call: "replay",
                message: format!(
                    "the recorded session has {} exchanges and this is call {}: the list of recorded \
                     responses is empty or has been exhausted",
                    self.exchanges.len(),
                    index + 1
                ),
            });
        };
        if recorded != request {
            return Err(CapabilityError::Failed {
                call: "replay",
                message: format!(
                    "unexpected request: exchange {} recorded {}, the policy asked {}",
                    index + 1,
                    yaml_line(recorded),
                    yaml_line(request)
                ),
            });
        }
        match response {
            Response::Success { payload } => Ok(payload.clone().into_bytes()),
            Response::Error { message } => Err(CapabilityError::Cached(message.clone())),
        }
    }
}

fn yaml_line(value: &Value) -> String {
    serde_yaml::to_string(value)
        .unwrap_or_default()
        .trim()
        .replace('\n', " ")
}

/// The request as kwctl writes it: policy-evaluator's `CallbackRequestType` for the calls it
/// knows, `!HostCall` for the others.
fn request_value(binding: &str, namespace: &str, operation: &str, payload: &[u8]) -> Value {
    let json: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
    let known = match (binding, namespace, operation, &json) {
        ("kubewarden", "oci", "v2/verify", Some(serde_json::Value::Object(object))) => sigstore_request(object),
        ("kubewarden", "oci", "v1/manifest_digest", Some(serde_json::Value::String(image))) => {
            Some(tagged("OciManifestDigest", [("image", Value::String(image.clone()))]))
        }
        ("kubewarden", "oci", "v1/oci_manifest", Some(serde_json::Value::String(image))) => {
            Some(tagged("OciManifest", [("image", Value::String(image.clone()))]))
        }
        ("kubewarden", "oci", "v1/oci_manifest_config", Some(serde_json::Value::String(image))) => Some(tagged(
            "OciManifestAndConfig",
            [("image", Value::String(image.clone()))],
        )),
        ("kubewarden", "net", "v1/dns_lookup_host", Some(serde_json::Value::String(host))) => {
            Some(tagged("DNSLookupHost", [("host", Value::String(host.clone()))]))
        }
        _ => None,
    };
    known.unwrap_or_else(|| {
        tagged(
            "HostCall",
            [
                ("binding", Value::String(binding.to_owned())),
                ("namespace", Value::String(namespace.to_owned())),
                ("operation", Value::String(operation.to_owned())),
                ("payload", Value::String(String::from_utf8_lossy(payload).into_owned())),
            ],
        )
    })
}

/// `{"type": "SigstorePubKeyVerify", "image": …}` as `!SigstorePubKeyVerify {image: …}`, with
/// the fields in policy-evaluator's order (absent optional fields written as null, as kwctl).
fn sigstore_request(object: &serde_json::Map<String, serde_json::Value>) -> Option<Value> {
    let kind = object.get("type")?.as_str()?;
    let (_, fields) = SIGSTORE_FIELDS.iter().find(|(name, _)| *name == kind)?;
    let mut mapping = serde_yaml::Mapping::new();
    for field in *fields {
        let value = object.get(*field).map_or(Value::Null, json_to_yaml);
        mapping.insert(Value::String((*field).to_owned()), value);
    }
    for (key, value) in object {
        if key != "type" && !fields.contains(&key.as_str()) {
            mapping.insert(Value::String(key.clone()), json_to_yaml(value));
        }
    }
    Some(Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new(kind),
        value: Value::Mapping(mapping),
    })))
}

fn tagged<const N: usize>(tag: &str, fields: [(&str, Value); N]) -> Value {
    let mapping = fields
        .into_iter()
        .map(|(key, value)| (Value::String(key.to_owned()), value))
        .collect();
    Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new(tag),
        value: Value::Mapping(mapping),
    }))
}

fn json_to_yaml(value: &serde_json::Value) -> Value {
    serde_yaml::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB_KEY_CALL: &str =
        r#"{"type":"SigstorePubKeyVerify","image":"registry.example/app:v1","pub_keys":["KEY"],"annotations":null}"#;

    #[test]
    fn a_sigstore_request_is_written_as_kwctl_writes_it() {
        let value = request_value("kubewarden", "oci", "v2/verify", PUB_KEY_CALL.as_bytes());
        assert_eq!(
            serde_yaml::to_string(&value).expect("yaml"),
            "!SigstorePubKeyVerify\nimage: registry.example/app:v1\npub_keys:\n- KEY\nannotations: null\n"
        );
    }

    #[test]
    fn calls_kwctl_does_not_know_are_host_calls() {
        let value = request_value("cluster-image-policy", "oci", "v1/verify_keyless_regexp", b"{}");
        let text = serde_yaml::to_string(&value).expect("yaml");
        assert!(text.starts_with("!HostCall\nbinding: cluster-image-policy\n"), "{text}");
    }

    #[test]
    fn record_then_replay_answers_in_order_and_checks_the_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("session.yml");
        let recorder = Interactions::record(&path).expect("record");
        let answer = recorder.dispatch("kubewarden", "oci", "v2/verify", PUB_KEY_CALL.as_bytes(), || {
            Ok(br#"{"is_trusted":true,"digest":"sha256:aa"}"#.to_vec())
        });
        assert!(answer.is_ok());
        let text = std::fs::read_to_string(&path).expect("session written");
        assert!(text.starts_with("- type: Exchange\n"), "{text}");
        assert!(text.contains("!SigstorePubKeyVerify"), "{text}");
        assert!(text.contains("type: Success"), "{text}");

        let replayer = Interactions::replay(&path).expect("replay");
        let never = || -> Result<Vec<u8>, CapabilityError> { panic!("replay must not reach the host") };
        let other = PUB_KEY_CALL.replace("app:v1", "app:v2");
        let error = replayer
            .dispatch("kubewarden", "oci", "v2/verify", other.as_bytes(), never)
            .expect_err("another image");
        assert!(error.to_string().contains("unexpected request"), "{error}");
        let replayer = Interactions::replay(&path).expect("replay");
        let replayed = replayer
            .dispatch("kubewarden", "oci", "v2/verify", PUB_KEY_CALL.as_bytes(), never)
            .expect("recorded answer");
        assert_eq!(replayed, br#"{"is_trusted":true,"digest":"sha256:aa"}"#);
        let error = replayer
            .dispatch("kubewarden", "oci", "v2/verify", PUB_KEY_CALL.as_bytes(), never)
            .expect_err("exhausted");
        assert!(error.to_string().contains("exhausted"), "{error}");
    }

    #[test]
    fn a_recorded_error_is_replayed_as_the_same_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("session.yml");
        let recorder = Interactions::record(&path).expect("record");
        let _ = recorder.dispatch("kubewarden", "oci", "v2/verify", PUB_KEY_CALL.as_bytes(), || {
            Err(CapabilityError::Cached("no signatures found".to_owned()))
        });
        let replayer = Interactions::replay(&path).expect("replay");
        let error = replayer
            .dispatch(
                "kubewarden",
                "oci",
                "v2/verify",
                PUB_KEY_CALL.as_bytes(),
                || unreachable!(),
            )
            .expect_err("recorded error");
        assert_eq!(error.to_string(), "no signatures found");
    }

    #[test]
    fn a_file_that_is_not_a_session_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("session.yml");
        std::fs::write(&path, "just: a mapping\n").expect("write");
        let error = Interactions::replay(&path).expect_err("not a session").to_string();
        assert!(
            error.contains("session.yml") && error.contains("kwctl session"),
            "{error}"
        );
    }
}
