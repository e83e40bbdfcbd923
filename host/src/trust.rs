//! Sigstore trust root: Fulcio CAs, Rekor keys and certificate transparency log keys, each with
//! the `validFor` window during which it may be used.
//!
//! Loaded from a sigstore `ClientTrustConfig` JSON document (`--sigstore-trust-config`) or a bare
//! `trusted_root.json`. Nothing is fetched from a TUF mirror: without a trust root, keyless and
//! Rekor checks fail with a message saying so. Every key and CA is only trusted for signatures
//! made inside its `validFor` window (start inclusive, end exclusive; no end means still valid).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use x509_cert::der::Decode as _;

/// Media type of a sigstore ClientTrustConfig document.
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

/// Why a trust config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read.
    #[error("cannot read sigstore trust config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The document is not a ClientTrustConfig or trusted root.
    #[error("invalid sigstore trust config: {0}")]
    Invalid(String),
}

/// When a CA or log key may be used: `start <= t <= end`, Unix milliseconds. The trusted root's
/// `TimeRange` is closed at both ends (sigstore-go's `FulcioCertificateAuthority.Verify` refuses
/// only times `After(end)`); a time written with a fraction of a millisecond is rounded inwards
/// (the start up, the end down), so that no instant outside the window as written is inside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidFor {
    /// First millisecond of validity; `None` means since ever.
    pub start_ms: Option<i64>,
    /// Last millisecond of validity; `None` means still valid.
    pub end_ms: Option<i64>,
}

impl ValidFor {
    /// Whether `time` (Unix seconds: a Rekor entry's integrated time) falls inside the window.
    pub fn contains(&self, time: i64) -> bool {
        self.contains_millis(time.saturating_mul(1000))
    }

    /// Whether `time` (Unix milliseconds: an SCT's timestamp) falls inside the window.
    pub fn contains_millis(&self, time: i64) -> bool {
        self.start_ms.is_none_or(|start| start <= time) && self.end_ms.is_none_or(|end| time <= end)
    }
}

impl std::fmt::Display for ValidFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |t: Option<i64>| {
            t.and_then(chrono::DateTime::from_timestamp_millis).map(|t| {
                let format = if t.timestamp_subsec_millis() == 0 {
                    chrono::SecondsFormat::Secs
                } else {
                    chrono::SecondsFormat::Millis
                };
                t.to_rfc3339_opts(format, true)
            })
        };
        match (show(self.start_ms), show(self.end_ms)) {
            (Some(start), Some(end)) => write!(f, "{start} to {end}"),
            (Some(start), None) => write!(f, "{start} on"),
            (None, Some(end)) => write!(f, "until {end}"),
            (None, None) => write!(f, "always"),
        }
    }
}

/// One Fulcio certificate authority: its chain (intermediates then root) and validity.
#[derive(Clone, Debug)]
pub struct CertificateAuthority {
    /// DER certificates of the chain.
    pub certificates: Vec<Vec<u8>>,
    /// When certificates it issued may be used.
    pub valid_for: ValidFor,
}

/// A transparency log key (Rekor or certificate transparency) and its validity.
#[derive(Clone, Debug)]
pub struct LogKey {
    /// DER SubjectPublicKeyInfo.
    pub der: Vec<u8>,
    /// When entries it signed are trusted.
    pub valid_for: ValidFor,
}

/// Fulcio certificate authorities, Rekor public keys and CT log keys loaded from a
/// ClientTrustConfig or a trusted_root.json.
#[derive(Clone, Debug, Default)]
pub struct TrustRoot {
    /// DER certificates of every Fulcio CA chain (roots and intermediates).
    fulcio_certs: Vec<Vec<u8>>,
    /// The CAs one by one, with their validity.
    authorities: Vec<CertificateAuthority>,
    /// DER SubjectPublicKeyInfo of the Rekor logs, by hex log id.
    rekor_keys: BTreeMap<String, Vec<u8>>,
    /// The Rekor keys with their validity, by hex log id.
    rekor_logs: BTreeMap<String, LogKey>,
    /// DER SubjectPublicKeyInfo of the certificate transparency logs, by hex log id.
    ctfe_keys: BTreeMap<String, Vec<u8>>,
    /// The CT log keys with their validity, by hex log id.
    ct_logs: BTreeMap<String, LogKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientTrustConfigDoc {
    media_type: Option<String>,
    trusted_root: Option<TrustedRootDoc>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootDoc {
    #[serde(default)]
    tlogs: Vec<TransparencyLogDoc>,
    #[serde(default)]
    ctlogs: Vec<TransparencyLogDoc>,
    #[serde(default)]
    certificate_authorities: Vec<CertificateAuthorityDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransparencyLogDoc {
    public_key: Option<PublicKeyDoc>,
    log_id: Option<LogIdDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyDoc {
    raw_bytes: Option<String>,
    valid_for: Option<ValidForDoc>,
}

#[derive(Default, Deserialize)]
struct ValidForDoc {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdDoc {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateAuthorityDoc {
    cert_chain: Option<CertChainDoc>,
    valid_for: Option<ValidForDoc>,
}

#[derive(Deserialize)]
struct CertChainDoc {
    #[serde(default)]
    certificates: Vec<RawBytesDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytesDoc {
    raw_bytes: Option<String>,
}

impl TrustRoot {
    /// Reads a ClientTrustConfig or a bare trusted_root.json.
    pub fn from_file(path: &Path) -> Result<Self, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Parses a ClientTrustConfig or a bare trusted_root.json, checking every certificate and key.
    pub fn from_json(text: &str) -> Result<Self, TrustError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| TrustError::Invalid(e.to_string()))?;
        let root_value = if value.get("trustedRoot").is_some() {
            let doc: ClientTrustConfigDoc =
                serde_json::from_value(value).map_err(|e| TrustError::Invalid(format!("ClientTrustConfig: {e}")))?;
            if let Some(media_type) = &doc.media_type
                && media_type != CLIENT_TRUST_CONFIG_MEDIA_TYPE
            {
                return Err(TrustError::Invalid(format!(
                    "unsupported mediaType {media_type:?}, expected {CLIENT_TRUST_CONFIG_MEDIA_TYPE}"
                )));
            }
            doc.trusted_root.unwrap_or_default()
        } else {
            serde_json::from_value(value).map_err(|e| TrustError::Invalid(format!("trusted root: {e}")))?
        };
        Self::from_doc(root_value)
    }

    fn from_doc(doc: TrustedRootDoc) -> Result<Self, TrustError> {
        let mut fulcio_certs = Vec::new();
        let mut authorities = Vec::new();
        for (ca_index, ca) in doc.certificate_authorities.iter().enumerate() {
            let chain = ca.cert_chain.as_ref().map(|c| c.certificates.as_slice());
            let mut certificates = Vec::new();
            for (cert_index, cert) in chain.unwrap_or_default().iter().enumerate() {
                let what = format!("certificateAuthorities[{ca_index}].certChain.certificates[{cert_index}]");
                let der = decode_raw_bytes(cert.raw_bytes.as_deref(), &what)?;
                x509_cert::Certificate::from_der(&der)
                    .map_err(|e| TrustError::Invalid(format!("{what} is not a DER certificate: {e}")))?;
                certificates.push(der);
            }
            fulcio_certs.extend(certificates.iter().cloned());
            let valid_for = valid_for(
                ca.valid_for.as_ref(),
                &format!("certificateAuthorities[{ca_index}].validFor"),
            )?;
            authorities.push(CertificateAuthority {
                certificates,
                valid_for,
            });
        }
        let rekor_logs = log_keys(&doc.tlogs, "tlogs")?;
        let ct_logs = log_keys(&doc.ctlogs, "ctlogs")?;
        let rekor_keys: BTreeMap<String, Vec<u8>> =
            rekor_logs.iter().map(|(id, k)| (id.clone(), k.der.clone())).collect();
        let ctfe_keys: BTreeMap<String, Vec<u8>> = ct_logs.iter().map(|(id, k)| (id.clone(), k.der.clone())).collect();
        if fulcio_certs.is_empty() && rekor_keys.is_empty() {
            return Err(TrustError::Invalid(
                "it holds neither Fulcio certificate authorities nor Rekor keys".to_string(),
            ));
        }
        Ok(Self {
            fulcio_certs,
            authorities,
            rekor_keys,
            rekor_logs,
            ctfe_keys,
            ct_logs,
        })
    }

    /// The Fulcio CAs one by one, with their validity.
    pub fn certificate_authorities(&self) -> &[CertificateAuthority] {
        &self.authorities
    }

    /// Rekor keys with their validity, by hex log id.
    pub fn rekor_logs(&self) -> &BTreeMap<String, LogKey> {
        &self.rekor_logs
    }

    /// Certificate transparency log keys with their validity, by hex log id.
    pub fn ct_logs(&self) -> &BTreeMap<String, LogKey> {
        &self.ct_logs
    }

    /// DER certificates of the Fulcio CAs.
    pub fn fulcio_certificates(&self) -> &[Vec<u8>] {
        &self.fulcio_certs
    }

    /// Rekor public keys (DER SubjectPublicKeyInfo) by hex log id.
    pub fn rekor_public_keys(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.rekor_keys
    }
}

fn decode_raw_bytes(raw: Option<&str>, what: &str) -> Result<Vec<u8>, TrustError> {
    let text = raw.ok_or_else(|| TrustError::Invalid(format!("{what} has no rawBytes")))?;
    BASE64
        .decode(text)
        .map_err(|e| TrustError::Invalid(format!("{what}.rawBytes is not base64: {e}")))
}

/// A `validFor` window; RFC 3339 times, rounded inwards to whole milliseconds.
fn valid_for(doc: Option<&ValidForDoc>, what: &str) -> Result<ValidFor, TrustError> {
    let Some(doc) = doc else {
        return Ok(ValidFor::default());
    };
    let parse = |text: &Option<String>, field: &str, round_up: bool| -> Result<Option<i64>, TrustError> {
        text.as_deref()
            .map(|t: &str| {
                let time = chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| TrustError::Invalid(format!("{what}.{field} {t:?} is not an RFC 3339 time: {e}")))?;
                // `timestamp_millis` rounds down (towards the past, negative times included).
                let millis = time.timestamp_millis();
                let part_of_a_millisecond = time.timestamp_subsec_nanos() % 1_000_000 != 0;
                Ok(if round_up && part_of_a_millisecond {
                    millis + 1
                } else {
                    millis
                })
            })
            .transpose()
    };
    Ok(ValidFor {
        start_ms: parse(&doc.start, "start", true)?,
        end_ms: parse(&doc.end, "end", false)?,
    })
}

/// Keys of transparency logs by hex log id (the id Rekor bundles name), as sigstore-rs keys them.
fn log_keys(logs: &[TransparencyLogDoc], field: &str) -> Result<BTreeMap<String, LogKey>, TrustError> {
    let mut keys = BTreeMap::new();
    for (index, log) in logs.iter().enumerate() {
        let what = format!("{field}[{index}].publicKey");
        let Some(public_key) = &log.public_key else {
            return Err(TrustError::Invalid(format!("{what} is missing")));
        };
        let der = decode_raw_bytes(public_key.raw_bytes.as_deref(), &what)?;
        let window = valid_for(public_key.valid_for.as_ref(), &format!("{what}.validFor"))?;
        sigstore::crypto::CosignVerificationKey::try_from_der(&der)
            .map_err(|e| TrustError::Invalid(format!("{what} is not a supported public key: {e}")))?;
        let log_id = match &log.log_id {
            Some(id) => hex::encode(
                BASE64
                    .decode(&id.key_id)
                    .map_err(|e| TrustError::Invalid(format!("{field}[{index}].logId.keyId is not base64: {e}")))?,
            ),
            None => hex::encode(Sha256::digest(&der)),
        };
        keys.insert(log_id, LogKey { der, valid_for: window });
    }
    Ok(keys)
}

impl sigstore::trust::TrustRoot for TrustRoot {
    fn fulcio_certs(&self) -> sigstore::errors::Result<Vec<CertificateDer<'_>>> {
        Ok(self
            .fulcio_certs
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect())
    }

    fn rekor_keys(&self) -> sigstore::errors::Result<BTreeMap<String, &[u8]>> {
        Ok(self
            .rekor_keys
            .iter()
            .map(|(id, key)| (id.clone(), key.as_slice()))
            .collect())
    }

    fn ctfe_keys(&self) -> sigstore::errors::Result<BTreeMap<String, &[u8]>> {
        Ok(self
            .ctfe_keys
            .iter()
            .map(|(id, key)| (id.clone(), key.as_slice()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::{TestFulcio, TestRekor};

    #[test]
    fn reads_client_trust_config_and_bare_trusted_root() {
        let fulcio = TestFulcio::new().expect("fulcio");
        let rekor = TestRekor::new().expect("rekor");
        for text in [
            testkit::trust_config_json(&fulcio, &rekor),
            testkit::trusted_root_json(&fulcio, &rekor),
        ] {
            let trust = TrustRoot::from_json(&text).expect("valid trust config");
            assert_eq!(
                trust.fulcio_certificates(),
                &[fulcio.intermediate_der().to_vec(), fulcio.root_der().to_vec()]
            );
            assert_eq!(
                trust.rekor_public_keys().get(rekor.log_id()),
                Some(&rekor.public_key_der().to_vec())
            );
        }
    }

    #[test]
    fn reads_from_file_and_names_unreadable_file() {
        let fulcio = TestFulcio::new().expect("fulcio");
        let rekor = TestRekor::new().expect("rekor");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("trust.json");
        std::fs::write(&path, testkit::trust_config_json(&fulcio, &rekor)).expect("write");
        assert!(TrustRoot::from_file(&path).is_ok());
        let missing = dir.path().join("missing.json");
        let err = TrustRoot::from_file(&missing).expect_err("missing file");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read sigstore trust config {}", missing.display()))
        );
    }

    /// The trusted root's `TimeRange` is closed: a signature logged in the window's last second is
    /// inside it (sigstore-go refuses only times `After(end)`). A fraction of a second rounds
    /// inwards: a key whose window starts at `T.5Z` is not valid at `T`, an SCT at `T.499Z`
    /// (milliseconds) is not inside a window starting at `T.5Z`, nor one at `E.501Z` inside one
    /// ending at `E.5Z`.
    #[test]
    fn validity_windows_are_closed_and_rounded_inwards() {
        let fulcio = TestFulcio::new().expect("fulcio");
        let rekor = TestRekor::new().expect("rekor");
        let window = |start: &str, end: &str| {
            let mut value = testkit::trust_config_value(&[&fulcio], &[&rekor]);
            value["trustedRoot"]["certificateAuthorities"][0]["validFor"] =
                serde_json::json!({"start": start, "end": end});
            value["trustedRoot"]["tlogs"][0]["publicKey"]["validFor"] = serde_json::json!({"start": start, "end": end});
            let trust = TrustRoot::from_json(&value.to_string()).expect("valid trust config");
            let ca = trust.certificate_authorities()[0].valid_for;
            let log = trust.rekor_logs()[rekor.log_id()].valid_for;
            assert_eq!(ca, log);
            ca
        };
        // 2021-01-01T00:00:00Z and 2022-01-01T00:00:00Z.
        let (start, end) = (1_609_459_200, 1_640_995_200);
        let whole = window("2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z");
        assert!(whole.contains(start), "the first second");
        assert!(whole.contains(end), "the last second: the end is inside");
        assert!(!whole.contains(start - 1) && !whole.contains(end + 1));
        assert_eq!(whole.to_string(), "2021-01-01T00:00:00Z to 2022-01-01T00:00:00Z");

        let halves = window("2021-01-01T00:00:00.5Z", "2022-01-01T00:00:00.5Z");
        assert!(!halves.contains(start), "half a second before its start");
        assert!(halves.contains(start + 1) && halves.contains(end));
        assert!(!halves.contains(end + 1), "half a second after its end");
        assert!(!halves.contains_millis(start * 1000 + 499) && halves.contains_millis(start * 1000 + 500));
        assert!(halves.contains_millis(end * 1000 + 500) && !halves.contains_millis(end * 1000 + 501));
        assert_eq!(
            halves.to_string(),
            "2021-01-01T00:00:00.500Z to 2022-01-01T00:00:00.500Z"
        );

        let nanos = window("2021-01-01T00:00:00.000000001Z", "2022-01-01T00:00:00.999999999Z");
        assert!(!nanos.contains_millis(start * 1000) && nanos.contains_millis(start * 1000 + 1));
        assert!(nanos.contains_millis(end * 1000 + 999) && !nanos.contains_millis(end * 1000 + 1000));
    }

    #[test]
    fn rejects_wrong_media_type_bad_base64_and_empty_roots() {
        let fulcio = TestFulcio::new().expect("fulcio");
        let rekor = TestRekor::new().expect("rekor");
        let mut value = testkit::trust_config_value(&[&fulcio], &[&rekor]);
        value["mediaType"] = "application/json".into();
        let err = TrustRoot::from_json(&value.to_string()).expect_err("media type");
        assert!(
            err.to_string().contains("unsupported mediaType \"application/json\""),
            "{err}"
        );

        let mut value = testkit::trust_config_value(&[&fulcio], &[&rekor]);
        value["trustedRoot"]["tlogs"][0]["publicKey"]["rawBytes"] = "%%%".into();
        let err = TrustRoot::from_json(&value.to_string()).expect_err("base64");
        assert!(
            err.to_string().contains("tlogs[0].publicKey.rawBytes is not base64"),
            "{err}"
        );

        let mut value = testkit::trust_config_value(&[&fulcio], &[&rekor]);
        value["trustedRoot"]["certificateAuthorities"][0]["certChain"]["certificates"][1]["rawBytes"] =
            BASE64.encode(b"not a certificate").into();
        let err = TrustRoot::from_json(&value.to_string()).expect_err("certificate");
        assert!(
            err.to_string()
                .contains("certificateAuthorities[0].certChain.certificates[1] is not a DER certificate"),
            "{err}"
        );

        let empty = testkit::trust_config_value(&[], &[]).to_string();
        let err = TrustRoot::from_json(&empty).expect_err("empty");
        assert_eq!(
            err.to_string(),
            "invalid sigstore trust config: it holds neither Fulcio certificate authorities nor Rekor keys"
        );
        assert!(TrustRoot::from_json("{not json").is_err());
    }
}
