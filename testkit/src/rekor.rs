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
use sigstore_protobuf_specs::dev::sigstore::common::v1::LogId;
use sigstore_protobuf_specs::dev::sigstore::rekor::v1::{
    Checkpoint, InclusionPromise, InclusionProof, KindVersion, TransparencyLogEntry,
};

use crate::keys::KeyPair;

/// Origin line of the checkpoints the test log signs.
const LOG_ORIGIN: &str = "rekor.testkit.invalid";

/// A Rekor signing key and log identity.
#[derive(Debug)]
pub struct TestRekor {
    key: KeyPair,
    log_id: String,
    log_id_raw: Vec<u8>,
    next_index: AtomicI64,
}

impl TestRekor {
    /// Generates a new log key. Every call makes an unrelated log.
    pub fn new() -> anyhow::Result<Self> {
        let key = KeyPair::ecdsa_p256()?;
        let log_id_raw = Sha256::digest(key.public_key_der()).to_vec();
        Ok(Self {
            key,
            log_id: hex::encode(&log_id_raw),
            log_id_raw,
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

    /// The log id as raw bytes (the trusted root's `logId.keyId`).
    pub fn log_id_raw(&self) -> &[u8] {
        &self.log_id_raw
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
        self.sign_bundle(&entry, integrated_time)
    }

    /// The JSON of a cosign bundle annotation logging the entry `body` (any kind) at
    /// `integrated_time`: the SET over the canonical payload, signed by the log key.
    pub fn sign_bundle(&self, entry: &serde_json::Value, integrated_time: i64) -> anyhow::Result<String> {
        let payload = Payload {
            body: BASE64.encode(serde_json::to_vec(entry)?),
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

    /// A Rekor v1 `dsse` entry as a sigstore bundle v0.3 carries it: the entry for
    /// `envelope_json` (its payload `payload`, signature `signature`, verified by `cert_pem`),
    /// an inclusion promise (SET) and an inclusion proof in a two-entry tree whose checkpoint
    /// the log key signs.
    pub(crate) fn dsse_log_entry(
        &self,
        envelope_json: &[u8],
        payload: &[u8],
        signature: &[u8],
        cert_pem: &str,
        integrated_time: i64,
    ) -> anyhow::Result<TransparencyLogEntry> {
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(envelope_json))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))},
                "signatures": [{"signature": BASE64.encode(signature), "verifier": BASE64.encode(cert_pem)}],
            },
        });
        self.log_entry(&body, integrated_time)
    }

    /// The Rekor v1 entry logging `body` (any JSON; its `kind` and `apiVersion` give the
    /// `kindVersion`) at `integrated_time`, as a sigstore bundle carries it: an inclusion
    /// promise (SET) and an inclusion proof in a two-entry tree whose checkpoint the log key
    /// signs. What a log that accepted `body` answers (forgeries put it in bundles it does not
    /// describe).
    pub fn log_entry(&self, body: &serde_json::Value, integrated_time: i64) -> anyhow::Result<TransparencyLogEntry> {
        let kind = body["kind"].as_str().unwrap_or_default().to_owned();
        let version = body["apiVersion"].as_str().unwrap_or_default().to_owned();
        let body = serde_json_canonicalizer::to_vec(body).context("canonicalising the entry")?;
        let log_index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let promise = serde_json_canonicalizer::to_vec(&json!({
            "body": BASE64.encode(&body),
            "integratedTime": integrated_time,
            "logIndex": log_index,
            "logID": self.log_id,
        }))?;
        // RFC 6962: a two-leaf tree, an earlier entry then this one (index 1), so that the proof
        // has a hash and a non-zero index (protobuf JSON leaves zero and empty fields out, and
        // strict readers such as sigstore-python then refuse the proof).
        let earlier = Sha256::new_with_prefix([0u8])
            .chain_update(b"testkit earlier entry")
            .finalize()
            .to_vec();
        let leaf = Sha256::new_with_prefix([0u8]).chain_update(&body).finalize().to_vec();
        let root_hash = Sha256::new_with_prefix([1u8])
            .chain_update(&earlier)
            .chain_update(&leaf)
            .finalize()
            .to_vec();
        Ok(TransparencyLogEntry {
            log_index,
            log_id: Some(LogId {
                key_id: self.log_id_raw.clone(),
            }),
            kind_version: Some(KindVersion { kind, version }),
            integrated_time,
            inclusion_promise: Some(InclusionPromise {
                signed_entry_timestamp: self.key.sign(&promise)?,
            }),
            inclusion_proof: Some(InclusionProof {
                log_index: 1,
                checkpoint: Some(Checkpoint {
                    envelope: self.signed_checkpoint(&root_hash, 2)?,
                }),
                root_hash,
                tree_size: 2,
                hashes: vec![earlier],
            }),
            canonicalized_body: body,
        })
    }

    /// A signed note (`origin\nsize\nroot\n\n— origin <key hint + signature>\n`) over the tree
    /// of `tree_size` leaves with root `root_hash`: the checkpoint the log publishes for it.
    pub fn signed_checkpoint(&self, root_hash: &[u8], tree_size: u64) -> anyhow::Result<String> {
        let note = format!("{LOG_ORIGIN}\n{tree_size}\n{}\n", BASE64.encode(root_hash));
        let key_hint = &Sha256::digest(self.key.public_key_der())[..4];
        let signature = [key_hint, self.key.sign(note.as_bytes())?.as_slice()].concat();
        Ok(format!("{note}\n\u{2014} {LOG_ORIGIN} {}\n", BASE64.encode(signature)))
    }
}
