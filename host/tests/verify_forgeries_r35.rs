//! Sigstore bundle forgeries of the transparency log entry that only a log key can make
//! (`cip::verify::bundle::verify`, offline):
//!
//! * the inclusion proof's checkpoint signed by a second Rekor key that the trust root also
//!   holds: the key is the one the SET's log id names, so it is refused;
//! * `kindVersion` saying `dsse` over a canonicalized body of another kind (`hashedrekord`), and
//!   the reverse: refused (the SET covers the body, not `kindVersion`);
//! * a v0.3 bundle relabelled with the v0.1 media type and its inclusion proof removed still
//!   verifies, through the SET alone: the intended downgrade, pinned (sigstore-go's
//!   `Bundle.validate`, `pkg/bundle/bundle.go`, requires an inclusion promise for v0.1 and an
//!   inclusion proof from v0.2 on, by the media type), while v0.2 and v0.3 refuse it.
//!
//! The logs here are test keys whose SETs and checkpoints this file signs (testkit's
//! `TestRekor` keeps its key to itself): every forgery is re-signed genuinely, and each has a
//! control, the same entry signed consistently, which verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::trust::TrustRoot;
use cip::verify::bundle::{self, BundleError, Signer};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use testkit::{BundleOptions, KeyPair, SigstoreBundle, TestRekor};

const V01: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";
const V02: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
const V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const ORIGIN: &str = "rekor.r35.invalid";

/// A Rekor log key this file signs with.
struct Log {
    key: KeyPair,
}

impl Log {
    fn new() -> Self {
        Self {
            key: KeyPair::ecdsa_p256().expect("key"),
        }
    }

    fn id(&self) -> Vec<u8> {
        Sha256::digest(self.key.public_key_der()).to_vec()
    }

    /// The trust root's `tlogs` item for this key.
    fn trusted(&self) -> Value {
        json!({
            "baseUrl": "https://rekor.r35.invalid",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": BASE64.encode(self.key.public_key_der()),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            },
            "logId": {"keyId": BASE64.encode(self.id())},
        })
    }

    /// The SET: this log's signature over the canonical JSON of the entry.
    fn promise(&self, body: &[u8], integrated_time: i64, log_index: i64) -> Vec<u8> {
        let canonical = serde_json::to_vec(&json!({
            "body": BASE64.encode(body),
            "integratedTime": integrated_time,
            "logID": hex::encode(self.id()),
            "logIndex": log_index,
        }))
        .expect("json");
        self.key.sign(&canonical).expect("signed")
    }

    /// A signed note over a tree of `size` entries with root `root`.
    fn checkpoint(&self, root: &[u8], size: u64) -> String {
        let note = format!("{ORIGIN}\n{size}\n{}\n", BASE64.encode(root));
        let hint = &self.id()[..4];
        let signature = [hint, self.key.sign(note.as_bytes()).expect("signed").as_slice()].concat();
        format!("{note}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(signature))
    }
}

/// A trust root with no CA and the logs `logs`.
fn trust(logs: &[&Log]) -> TrustRoot {
    let mut config = testkit::trust_config_value(&[], &[]);
    config["trustedRoot"]["tlogs"] = logs.iter().map(|log| log.trusted()).collect();
    TrustRoot::from_json(&config.to_string()).expect("trust root")
}

/// How the relogged entry is made.
struct Relog<'a> {
    /// Its canonicalized body.
    body: Vec<u8>,
    /// Its `kindVersion.kind`.
    kind: &'a str,
    /// The log named by its log id, signing its SET.
    set_by: &'a Log,
    /// The log signing its inclusion proof's checkpoint.
    checkpoint_by: &'a Log,
}

/// `bundle` with its log entry rewritten as `relog` says: a two-entry tree (testkit's earlier
/// leaf, then this body at index 1), its root in the proof and in the checkpoint.
fn relogged(bundle: &SigstoreBundle, relog: &Relog<'_>) -> Value {
    let mut value = bundle.value().expect("json");
    let entry = value
        .pointer_mut("/verificationMaterial/tlogEntries/0")
        .expect("a log entry");
    let integrated_time = int64(&entry["integratedTime"]);
    let log_index = int64(&entry["logIndex"]);
    let earlier = BASE64
        .decode(entry["inclusionProof"]["hashes"][0].as_str().expect("a path hash"))
        .expect("base64");
    let leaf = Sha256::new_with_prefix([0u8]).chain_update(&relog.body).finalize();
    let root = Sha256::new_with_prefix([1u8])
        .chain_update(&earlier)
        .chain_update(leaf)
        .finalize();
    entry["logId"]["keyId"] = json!(BASE64.encode(relog.set_by.id()));
    entry["kindVersion"] = json!({"kind": relog.kind, "version": "0.0.1"});
    entry["canonicalizedBody"] = json!(BASE64.encode(&relog.body));
    entry["inclusionPromise"]["signedEntryTimestamp"] =
        json!(BASE64.encode(relog.set_by.promise(&relog.body, integrated_time, log_index)));
    entry["inclusionProof"]["rootHash"] = json!(BASE64.encode(root));
    entry["inclusionProof"]["checkpoint"]["envelope"] = json!(relog.checkpoint_by.checkpoint(&root, 2));
    value
}

/// A protobuf JSON int64 (a string, or a number).
fn int64(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        .expect("an int64")
}

fn verify(bundle: &Value, trust: &TrustRoot) -> Result<bundle::VerifiedBundle, BundleError> {
    bundle::verify(&serde_json::to_vec(bundle).expect("json"), Some(trust))
}

#[track_caller]
fn refused(bundle: &Value, trust: &TrustRoot, expected: &str) {
    match verify(bundle, trust) {
        Ok(verified) => panic!("verified: {:?}", verified.tlog.map(|t| t.integrated_time)),
        Err(error) => {
            let reason = error.to_string();
            assert!(matches!(error, BundleError::Tlog(_)), "{reason}");
            assert!(reason.contains(expected), "{reason}");
        }
    }
}

/// A key-signed v0.3 bundle over `cosign sign`'s statement, logged by testkit's Rekor, and
/// its key.
fn genuine(rekor: &TestRekor) -> (SigstoreBundle, KeyPair) {
    let key = KeyPair::ecdsa_p256().expect("key");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let bundle = testkit::key_bundle(&digest, &key, Some(rekor), &BundleOptions::default()).expect("bundle");
    (bundle, key)
}

fn body_of(bundle: &SigstoreBundle) -> Vec<u8> {
    let value = bundle.value().expect("json");
    let body = value
        .pointer("/verificationMaterial/tlogEntries/0/canonicalizedBody")
        .and_then(Value::as_str)
        .expect("a body");
    BASE64.decode(body).expect("base64")
}

fn signed_by(verified: &bundle::VerifiedBundle, key: &KeyPair) {
    assert!(matches!(verified.signer, Signer::Key { .. }));
    assert!(verified.is_signed_by(key.public_key_der()));
    assert!(verified.tlog.is_some(), "the entry is bound");
}

/// The SET names log A; a checkpoint signed by log B, also trusted, does not prove the entry
/// is in log A's tree: the checkpoint is verified with the key the SET's log id names only.
#[test]
fn a_checkpoint_signed_by_another_trusted_log_is_refused() {
    let (a, b) = (Log::new(), Log::new());
    let trust = trust(&[&a, &b]);
    let (bundle, key) = genuine(&TestRekor::new().expect("rekor"));
    let body = body_of(&bundle);
    let relog = |set_by, checkpoint_by| Relog {
        body: body.clone(),
        kind: "dsse",
        set_by,
        checkpoint_by,
    };

    // Controls: each log signing both its SET and its checkpoint.
    signed_by(
        &verify(&relogged(&bundle, &relog(&a, &a)), &trust).expect("log A"),
        &key,
    );
    signed_by(
        &verify(&relogged(&bundle, &relog(&b, &b)), &trust).expect("log B"),
        &key,
    );

    refused(
        &relogged(&bundle, &relog(&a, &b)),
        &trust,
        "its inclusion proof does not verify",
    );
    refused(
        &relogged(&bundle, &relog(&b, &a)),
        &trust,
        "its inclusion proof does not verify",
    );
}

/// `kindVersion` is not covered by the SET: an entry saying `dsse` over a `hashedrekord` body
/// (genuinely logged, here for this very signature) is refused, and so is a `dsse` body an
/// entry calls `hashedrekord`.
#[test]
fn a_kind_version_disagreeing_with_the_body_is_refused() {
    let log = Log::new();
    let trust = trust(&[&log]);
    let (bundle, key) = genuine(&TestRekor::new().expect("rekor"));
    let dsse_body = body_of(&bundle);
    let envelope = bundle.value().expect("json")["dsseEnvelope"].clone();
    let payload = BASE64
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    let signature = envelope["signatures"][0]["sig"].as_str().expect("signature").to_owned();
    let hashedrekord = serde_json::to_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))}},
            "signature": {
                "content": signature,
                "publicKey": {"content": BASE64.encode(key.public_key_pem())},
            },
        },
    }))
    .expect("json");
    // The dsse body's fields under a `hashedrekord` kind: only the body's own kind refuses it.
    let mut relabelled: Value = serde_json::from_slice(&dsse_body).expect("json");
    relabelled["kind"] = json!("hashedrekord");
    let relabelled = serde_json::to_vec(&relabelled).expect("json");
    let relog = |body: &[u8], kind| Relog {
        body: body.to_vec(),
        kind,
        set_by: &log,
        checkpoint_by: &log,
    };

    // Control: the dsse body called dsse.
    signed_by(
        &verify(&relogged(&bundle, &relog(&dsse_body, "dsse")), &trust).expect("dsse"),
        &key,
    );

    refused(
        &relogged(&bundle, &relog(&hashedrekord, "dsse")),
        &trust,
        "its body is not a dsse entry",
    );
    refused(
        &relogged(&bundle, &relog(&relabelled, "dsse")),
        &trust,
        "its body is a hashedrekord 0.0.1 entry, not a dsse 0.0.1 entry",
    );
    refused(
        &relogged(&bundle, &relog(&dsse_body, "hashedrekord")),
        &trust,
        "it is a hashedrekord 0.0.1 entry, not a dsse 0.0.1 entry",
    );
    refused(
        &relogged(&bundle, &relog(&hashedrekord, "hashedrekord")),
        &trust,
        "it is a hashedrekord 0.0.1 entry, not a dsse 0.0.1 entry",
    );
}

/// The downgrade sigstore-go allows too: the inclusion proof is required by the media type
/// (v0.2 on), so a v0.3 bundle relabelled v0.1 without its proof verifies through its SET
/// alone; v0.2 and v0.3 without a proof are refused.
#[test]
fn a_bundle_relabelled_v01_without_its_inclusion_proof_verifies_through_its_set() {
    let rekor = TestRekor::new().expect("rekor");
    let trust = TrustRoot::from_json(&testkit::trust_config_value(&[], &[&rekor]).to_string()).expect("trust");
    let (bundle, key) = genuine(&rekor);
    let mut stripped = bundle
        .without_inclusion_proof()
        .expect("stripped")
        .value()
        .expect("json");
    let relabel = |value: &mut Value, media_type: &str| value["mediaType"] = json!(media_type);

    relabel(&mut stripped, V01);
    let verified = verify(&stripped, &trust).expect("a v0.1 bundle needs no inclusion proof");
    assert_eq!(verified.media_type, V01);
    signed_by(&verified, &key);

    for media_type in [V02, V03] {
        relabel(&mut stripped, media_type);
        refused(&stripped, &trust, "it has no inclusion proof");
    }

    // The SET still binds: a tampered one is refused under v0.1 too.
    let mut tampered = bundle
        .with_tampered_set()
        .expect("tampered")
        .without_inclusion_proof()
        .expect("stripped")
        .value()
        .expect("json");
    relabel(&mut tampered, V01);
    refused(&tampered, &trust, "not signed by the trusted Rekor key");
}
