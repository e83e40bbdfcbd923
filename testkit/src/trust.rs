//! Sigstore trust material for the test Fulcio and Rekor: a `TrustedRoot` and a
//! `ClientTrustConfig` in the protobuf-specs JSON form sigstore-rs and cosign read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::fulcio::TestFulcio;
use crate::rekor::TestRekor;

/// Media type of a client trust configuration.
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";
/// Media type of a trusted root (the form sigstore-rs 0.15 documents).
pub const TRUSTED_ROOT_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// Media type of a signing configuration.
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";

/// Start of validity written for every key and CA: far enough in the past to cover any
/// signature a test makes.
const VALID_FROM: &str = "2020-01-01T00:00:00Z";

/// The `ClientTrustConfig` JSON trusting `fulcio` and `rekor` (for `--sigstore-trust-config`).
pub fn trust_config_json(fulcio: &TestFulcio, rekor: &TestRekor) -> String {
    trust_config_value(&[fulcio], &[rekor]).to_string()
}

/// The bare `TrustedRoot` JSON trusting `fulcio` and `rekor` (a `trusted_root.json`).
pub fn trusted_root_json(fulcio: &TestFulcio, rekor: &TestRekor) -> String {
    trusted_root_value(&[fulcio], &[rekor]).to_string()
}

/// A `ClientTrustConfig` with any number of CAs and logs (none is allowed, for negative tests).
pub fn trust_config_value(fulcios: &[&TestFulcio], rekors: &[&TestRekor]) -> Value {
    json!({
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": trusted_root_value(fulcios, rekors),
        "signingConfig": {
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [],
            "oidcUrls": [],
            "rekorTlogUrls": [],
            "tsaUrls": [],
        },
    })
}

/// A `TrustedRoot` with any number of CAs and logs.
pub fn trusted_root_value(fulcios: &[&TestFulcio], rekors: &[&TestRekor]) -> Value {
    let tlogs: Vec<Value> = rekors
        .iter()
        .map(|rekor| {
            json!({
                "baseUrl": "https://rekor.testkit.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": BASE64.encode(rekor.public_key_der()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": VALID_FROM},
                },
                "logId": {"keyId": BASE64.encode(rekor.log_id_raw())},
            })
        })
        .collect();
    let certificate_authorities: Vec<Value> = fulcios
        .iter()
        .map(|fulcio| {
            json!({
                "subject": {"organization": "testkit", "commonName": "testkit-fulcio"},
                "uri": "https://fulcio.testkit.invalid",
                "certChain": {"certificates": [
                    {"rawBytes": BASE64.encode(fulcio.intermediate_der())},
                    {"rawBytes": BASE64.encode(fulcio.root_der())},
                ]},
                "validFor": {"start": VALID_FROM},
            })
        })
        .collect();
    let ctlogs: Vec<Value> = fulcios
        .iter()
        .map(|fulcio| {
            json!({
                "baseUrl": "https://ctfe.testkit.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": BASE64.encode(fulcio.ct_log_public_key_der()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": VALID_FROM},
                },
                "logId": {"keyId": BASE64.encode(fulcio.ct_log_id_raw())},
            })
        })
        .collect();
    json!({
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": tlogs,
        "certificateAuthorities": certificate_authorities,
        "ctlogs": ctlogs,
        "timestampAuthorities": [],
    })
}
