//! A test Rekor: a P-256 log key that issues the signed entry timestamps (SET) cosign stores
//! in the `dev.sigstore.cosign/bundle` annotation. No log server: the bundle is all offline
//! verification looks at.

use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use sha2::{Digest, Sha256};
use sigstore::cosign::bundle::{Bundle, Payload};

use crate::keys::KeyPair;

/// A Rekor signing key and log identity.
#[derive(Debug)]
pub struct TestRekor {
    key: KeyPair,
    log_id: String,
    next_index: AtomicI64,
}

impl TestRekor {
    /// Generates a new log key. Every call makes an unrelated log.
    pub fn new() -> anyhow::Result<Self> {
        let key = KeyPair::ecdsa_p256()?;
        let log_id = hex::encode(Sha256::digest(key.public_key_der()));
        Ok(Self {
            key,
            log_id,
            next_index: AtomicI64::new(1),
        })
    }

    /// The log's public key, PEM.
    pub fn public_key_pem(&self) -> &str {
        self.key.public_key_pem()
    }

    /// The log's public key, SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        self.key.public_key_der()
    }

    /// The log id: hex SHA-256 of the public key DER (the bundle's `logID`).
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// The JSON of a cosign bundle annotation for a `hashedrekord` entry recording that
    /// `signature_b64` over `payload` verifies with `verifier_pem` (a certificate or public key
    /// PEM), integrated into the log at `integrated_time` (Unix seconds).
    pub fn bundle_json(
        &self,
        payload: &[u8],
        signature_b64: &str,
        verifier_pem: &str,
        integrated_time: i64,
    ) -> anyhow::Result<String> {
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}},
                "signature": {
                    "content": signature_b64,
                    "publicKey": {"content": BASE64.encode(verifier_pem)},
                },
            },
        });
        let payload = Payload {
            body: BASE64.encode(serde_json::to_vec(&entry)?),
            integrated_time,
            log_index: self.next_index.fetch_add(1, Ordering::Relaxed),
            log_id: self.log_id.clone(),
        };
        let canonical = serde_json_canonicalizer::to_vec(&payload).context("canonicalising the entry")?;
        let bundle = Bundle {
            signed_entry_timestamp: BASE64.encode(self.key.sign(&canonical)?),
            payload,
        };
        Ok(serde_json::to_string(&bundle)?)
    }
}
