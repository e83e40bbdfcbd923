//! The verifications of one process together must not hold more than
//! `--max-inflight-download-bytes`: each verification's bytes past its allowance (256 KiB) are
//! taken from one pool as they are read and given back when the verification ends. Hostile
//! registries (any image a `**` glob covers) serving attestations each within every
//! per-verification cap, verified at the same time, wait for the pool once it is full, and are
//! refused at their deadline with their own typed error naming the flag
//! ([`VerifyError::Inflight`]); the pool is never passed; an honest verification (a few KiB,
//! within its allowance) running meanwhile is not refused; an honest SBOM, which draws on the
//! pool, is verified when the holders end before its deadline; and every byte is given back
//! once they end, refused or not.
//!
//! No timing is asserted: the hostile registry holds the last layer of each admitted hostile
//! image until the test lets it go, so that the admitted verifications hold their bytes while
//! the others wait and are refused and the honest ones run.

mod hostile_registry;
mod verify_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cip::registry::{DEFAULT_VERIFICATION_ALLOWANCE, DownloadLimits, InflightExhausted, with_pool_deadline};
use cip::verify::{Verifier, VerifierConfig, VerifyError};
use hostile_registry::{Hostile, Reply, ok};
use serde_json::json;
use testkit::{IN_TOTO_PAYLOAD_TYPE, KeyPair, SPDX_PREDICATE_TYPE};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const MIB: usize = 1024 * 1024;
/// Hostile verifications started at once.
const HOSTILE: usize = 6;
/// The pool of the test: room for four hostile verifications (each takes its 2 MiB
/// attestation less the allowance), not five.
const POOL: usize = 8 * MIB;
/// Longest the registry holds a layer, should the test fail before letting it go.
const GATE_LIMIT: Duration = Duration::from_secs(60);
/// How long a verification the test means to be refused waits for the pool.
const SHORT_DEADLINE: Duration = Duration::from_millis(200);

/// The image every repository serves (by digest), and its digest.
fn image() -> (String, Vec<u8>) {
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": [],
    }))
    .expect("json");
    (testkit::sha256_digest(&manifest), manifest)
}

/// An image manifest (a `.sig` or `.att` tag's) listing `layers`.
fn manifest(layers: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": layers,
    }))
    .expect("json")
}

/// A genuine DSSE envelope signed by `key` about `digest`, of about `size` bytes; `n` makes it
/// distinct.
fn envelope(digest: &str, key: &KeyPair, size: usize, n: usize) -> Vec<u8> {
    let padding = (size * 3 / 4).saturating_sub(400);
    let statement = testkit::in_toto_statement(
        "registry.example",
        "team/app",
        digest,
        SPDX_PREDICATE_TYPE,
        &json!({"SPDXID": "SPDXRef-DOCUMENT", "name": format!("sbom {n}"), "comment": "x".repeat(padding)}),
    );
    let payload = serde_json::to_vec(&statement).expect("json");
    testkit::dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &payload, key)
        .expect("envelope")
        .0
}

fn att_layer(envelope: &[u8]) -> serde_json::Value {
    json!({
        "mediaType": DSSE,
        "size": envelope.len(),
        "digest": testkit::sha256_digest(envelope),
        "annotations": {"dev.cosignproject.cosign/signature": ""},
    })
}

/// A genuine `.sig` layer of `digest` signed by `key`: its descriptor and payload.
fn sig_layer(digest: &str, key: &KeyPair) -> (serde_json::Value, Vec<u8>) {
    let payload =
        testkit::simple_signing_payload("registry.example", "team/honest", digest, &BTreeMap::new()).expect("payload");
    let signature = BASE64.encode(key.sign(&payload).expect("signed"));
    let descriptor = json!({
        "mediaType": SIMPLE_SIGNING,
        "size": payload.len(),
        "digest": testkit::sha256_digest(&payload),
        "annotations": {"dev.cosignproject.cosign/signature": signature},
    });
    (descriptor, payload)
}

/// Where the hostile registry stands: how many hostile verifications wait for their last layer,
/// and whether the test let them go.
#[derive(Default)]
struct Gate {
    waiting: AtomicUsize,
    open: AtomicBool,
}

impl Gate {
    /// Holds the caller (a connection thread of the registry) until the gate opens.
    fn pass(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let held = Instant::now();
        while !self.open.load(Ordering::SeqCst) && held.elapsed() < GATE_LIMIT {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The registry: `team/h<i>` (i < HOSTILE) each with an `.att` tag of a 2 MiB attestation then a
/// small one, the small one held at `gate`; `team/honest` with a small signature and a small
/// attestation; `team/sbom` with one 2 MiB attestation (an SBOM), not held. Every repository serves the image itself. With the registry, the image digest
/// and the bytes each hostile verification takes before its held layer is sent (its `.att`
/// manifest, its large attestation and the declared size of the held layer, which the pool gives
/// before the download).
fn registry(key: &KeyPair, gate: Arc<Gate>) -> (Hostile, String, Vec<usize>) {
    let (digest, image) = image();
    let tag = digest.replace(':', "-");
    let mut routes: Vec<(String, Vec<u8>)> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut before_gate = Vec::new();
    for i in 0..HOSTILE {
        let large = envelope(&digest, key, 2 * MIB, i);
        let last = envelope(&digest, key, 1024, 100 + i);
        let att = manifest(&[att_layer(&large), att_layer(&last)]);
        before_gate.push(att.len() + large.len() + last.len());
        routes.push((format!("team/h{i}/manifests/{tag}.att"), att));
        held.push(format!("/blobs/{}", testkit::sha256_digest(&last)));
        for blob in [large, last] {
            routes.push((format!("/blobs/{}", testkit::sha256_digest(&blob)), blob));
        }
    }
    let honest_att = envelope(&digest, key, 2 * 1024, 1000);
    routes.push((
        format!("team/honest/manifests/{tag}.att"),
        manifest(&[att_layer(&honest_att)]),
    ));
    routes.push((format!("/blobs/{}", testkit::sha256_digest(&honest_att)), honest_att));
    let sbom = envelope(&digest, key, 2 * MIB, 2000);
    routes.push((format!("team/sbom/manifests/{tag}.att"), manifest(&[att_layer(&sbom)])));
    routes.push((format!("/blobs/{}", testkit::sha256_digest(&sbom)), sbom));
    let (descriptor, payload) = sig_layer(&digest, key);
    routes.push((format!("team/honest/manifests/{tag}.sig"), manifest(&[descriptor])));
    routes.push((format!("/blobs/{}", testkit::sha256_digest(&payload)), payload));
    routes.push((format!("/manifests/{digest}"), image));
    let image_digest = digest.clone();
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            return ok("application/json", b"{}".to_vec());
        }
        let Some((_, body)) = routes.iter().find(|(key, _)| path.ends_with(key.as_str())) else {
            return Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":""}]}"#.to_vec(),
            };
        };
        if held.iter().any(|key| path.ends_with(key.as_str())) {
            gate.pass();
        }
        let reply = ok(
            if path.contains("/manifests/") {
                MANIFEST
            } else {
                "application/octet-stream"
            },
            body.clone(),
        );
        if path.ends_with(&format!("/manifests/{image_digest}")) {
            reply.with_header("Docker-Content-Digest", image_digest.clone())
        } else {
            reply
        }
    }));
    (server, digest, before_gate)
}

fn verifier(server: &Hostile) -> Verifier {
    let mut config: VerifierConfig = verify_support::config(&[&server.host()], None);
    // The gate holds layers far longer than a registry would: no timeout while it does.
    config.registry_timeout = GATE_LIMIT;
    config.limits = DownloadLimits {
        max_inflight_download_bytes: POOL,
        ..DownloadLimits::default()
    };
    Verifier::new(config).expect("verifier")
}

/// Waits (without bounding how long it takes, short of a minute) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < GATE_LIMIT, "never reached: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hostile_verifications_share_one_pool_and_cannot_starve_an_honest_one() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let gate = Arc::new(Gate::default());
    let (server, digest, before_gate) = registry(&key, Arc::clone(&gate));
    let verifier = Arc::new(verifier(&server));
    let pool = verifier.download_pool();
    assert_eq!((pool.cap(), pool.allowance()), (POOL, DEFAULT_VERIFICATION_ALLOWANCE));

    // Six hostile attestation verifications at once: each needs its 2 MiB attestation less the
    // allowance from the pool, 10.5 MiB in all, in a pool of 8 MiB. Those that do not fit wait
    // for the pool until their (short) deadline.
    let ended = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut hostile = Vec::new();
    for i in 0..HOSTILE {
        let (verifier, ended, outcomes) = (Arc::clone(&verifier), Arc::clone(&ended), Arc::clone(&outcomes));
        let image = format!("{}/team/h{i}@{digest}", server.host());
        let request = verify_support::attestation_key_request(&image, &key);
        hostile.push(tokio::spawn(async move {
            let deadline = Instant::now() + SHORT_DEADLINE;
            let outcome = with_pool_deadline(deadline, verifier.verify_attestations(request)).await;
            outcomes.lock().expect("outcomes").push((image, outcome));
            ended.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Each hostile verification is refused or holds its bytes at the gate.
    until("every hostile verification refused or at the gate", || {
        ended.load(Ordering::SeqCst) + gate.waiting.load(Ordering::SeqCst) >= HOSTILE
    })
    .await;
    let refused_early = ended.load(Ordering::SeqCst);
    let held = pool.in_use();
    assert!(held <= POOL, "{held} bytes taken from a pool of {POOL}");
    // Exactly what the verifications at the gate read past their allowances; the refused ones
    // gave theirs back.
    let ended_images: Vec<String> = outcomes
        .lock()
        .expect("outcomes")
        .iter()
        .map(|(image, _)| image.clone())
        .collect();
    let waiting: usize = (0..HOSTILE)
        .filter(|i| !ended_images.iter().any(|image| image.contains(&format!("/team/h{i}@"))))
        .map(|i| before_gate[i] - DEFAULT_VERIFICATION_ALLOWANCE)
        .sum();
    assert_eq!(held, waiting, "the pool holds what the waiting verifications read");
    assert!(refused_early >= 2, "{refused_early} refused: five would pass the pool");
    assert!(pool.waits() >= 2, "the refused ones waited for the pool first");
    assert!(
        before_gate
            .iter()
            .all(|bytes| 5 * (bytes - DEFAULT_VERIFICATION_ALLOWANCE) > POOL),
        "five hostile verifications fit the pool: the test proves nothing"
    );
    eprintln!(
        "{refused_early} of {HOSTILE} hostile verifications refused; {held} of {POOL} bytes of the pool held by the {}",
        HOSTILE - refused_early
    );

    // While the pool is full: an honest signature and an honest attestation, a few KiB each,
    // within their allowances, both verified.
    let honest = format!("{}/team/honest@{digest}", server.host());
    let signed = verify_support::verified(
        &verifier,
        verify_support::pub_key_request(&honest, &[key.public_key_pem()], None),
    )
    .await;
    assert_eq!(signed, digest);
    let attested = verify_support::attested(&verifier, verify_support::attestation_key_request(&honest, &key)).await;
    assert_eq!(attested.statements.len(), 1);
    assert_eq!(
        pool.in_use(),
        held,
        "the honest verifications took nothing from the pool"
    );

    // The held layers let go: the admitted hostile verifications end (verified: their
    // attestations are genuine), and every byte is given back.
    gate.open.store(true, Ordering::SeqCst);
    for task in hostile {
        task.await.expect("hostile verification task");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    let mut refused = 0;
    for (image, outcome) in &outcomes {
        match outcome {
            Ok(answer) => assert_eq!(answer.statements.len(), 2, "{image}"),
            Err(VerifyError::Inflight(InflightExhausted { image: named, cap })) => {
                refused += 1;
                assert_eq!((named, *cap), (image, POOL));
                let message = outcome.as_ref().expect_err("refused").to_string();
                assert!(message.contains("--max-inflight-download-bytes"), "{message}");
                assert!(message.contains("transient"), "{message}");
                assert!(!message.contains("--max-verification-bytes"), "{message}");
            }
            Err(other) => panic!("{image}: not the pool's refusal: {other}"),
        }
    }
    assert_eq!(
        refused, refused_early,
        "the refused ones were refused at their deadline, before the gate opened"
    );
    assert!((2..HOSTILE).contains(&refused), "{refused} of {HOSTILE} refused");
    assert!(
        pool.high_water() <= POOL,
        "high-water mark {} over {POOL}",
        pool.high_water()
    );
    assert_eq!(pool.refusals(), refused as u64);
    // The answers hold what their verifications took until they are dropped (the host drops
    // them once written for the module).
    let admitted: usize = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(image, _)| {
            let i = (0..HOSTILE)
                .find(|i| image.contains(&format!("/team/h{i}@")))
                .expect("a hostile image");
            before_gate[i] - DEFAULT_VERIFICATION_ALLOWANCE
        })
        .sum();
    assert_eq!(pool.in_use(), admitted, "what the admitted verifications read");
    let refused_image = outcomes
        .iter()
        .find(|(_, outcome)| matches!(outcome, Err(VerifyError::Inflight(_))))
        .map(|(image, _)| image.clone())
        .expect("a refused verification");
    drop(outcomes);
    assert_eq!(pool.in_use(), 0, "every byte given back");

    // The pool free again, a refused image asked again at once is verified: the refusal was
    // transient, and no cache kept it (a failure is otherwise kept for --cache-failure-ttl).
    let image = refused_image;
    let answer = verify_support::attested(&verifier, verify_support::attestation_key_request(&image, &key)).await;
    assert_eq!(answer.statements.len(), 2);
    drop(answer);
    assert_eq!(pool.in_use(), 0);
}

/// Hostile verifications holding the whole pool (at the gate), and an honest SBOM that needs 2
/// MiB of it: refused (transient) when its deadline comes first, verified when they end before
/// it. Bounded by a watchdog: a wait that never ends is the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_honest_sbom_waits_for_the_pool_until_its_deadline() {
    tokio::time::timeout(GATE_LIMIT / 2, async {
        let key = KeyPair::ecdsa_p256().expect("key");
        let gate = Arc::new(Gate::default());
        let (server, digest, before_gate) = registry(&key, Arc::clone(&gate));
        let verifier = Arc::new(verifier(&server));
        let pool = verifier.download_pool();
        // Four hostile verifications, all admitted: 7 MiB of the 8 MiB pool held at the gate.
        let mut hostile = Vec::new();
        for i in 0..4 {
            let verifier = Arc::clone(&verifier);
            let request =
                verify_support::attestation_key_request(&format!("{}/team/h{i}@{digest}", server.host()), &key);
            hostile.push(tokio::spawn(async move { verifier.verify_attestations(request).await }));
        }
        until("four hostile verifications at the gate", || {
            gate.waiting.load(Ordering::SeqCst) == 4
        })
        .await;
        let held: usize = before_gate[..4]
            .iter()
            .map(|bytes| bytes - DEFAULT_VERIFICATION_ALLOWANCE)
            .sum();
        assert_eq!(pool.in_use(), held);
        assert!(
            POOL - held < 2 * MIB - DEFAULT_VERIFICATION_ALLOWANCE,
            "the SBOM fits: the test proves nothing"
        );
        let sbom = format!("{}/team/sbom@{digest}", server.host());

        // The holders keep the pool past the SBOM's deadline: refused, transiently.
        let refused = with_pool_deadline(
            Instant::now() + SHORT_DEADLINE,
            verifier.verify_attestations(verify_support::attestation_key_request(&sbom, &key)),
        )
        .await
        .expect_err("refused while the pool is held");
        assert!(refused.is_transient(), "{refused}");
        assert!(
            refused.to_string().contains("--max-inflight-download-bytes"),
            "{refused}"
        );
        assert_eq!((pool.in_use(), pool.refusals()), (held, 1));

        // The same through the host capability the module calls, under an evaluation deadline:
        // the wait ends a little before it, and the policy gets the pool's refusal (transient,
        // naming the flag), not the deadline's "no answer".
        let capabilities =
            cip::capabilities::Capabilities::new(Arc::clone(&verifier), tokio::runtime::Handle::current());
        let payload =
            json!({"v2_verify": {"type": "SigstorePubKeyVerify", "image": sbom, "pub_keys": [key.public_key_pem()]}});
        let refused = tokio::task::spawn_blocking(move || {
            capabilities.dispatch(
                "policy",
                Some(Instant::now() + SHORT_DEADLINE),
                "cluster-image-policy",
                "oci",
                "v1/verify_attestations",
                payload.to_string().as_bytes(),
            )
        })
        .await
        .expect("capability task")
        .expect_err("refused while the pool is held");
        assert!(
            refused.to_string().contains("--max-inflight-download-bytes"),
            "the pool's refusal, not the deadline's: {refused}"
        );
        assert_eq!((pool.in_use(), pool.refusals()), (held, 2));

        // Asked again with room in its deadline: it waits, and is verified once the holders end.
        let waits = pool.waits();
        let waiting = {
            let verifier = Arc::clone(&verifier);
            let request = verify_support::attestation_key_request(&sbom, &key);
            tokio::spawn(async move {
                with_pool_deadline(Instant::now() + GATE_LIMIT, verifier.verify_attestations(request)).await
            })
        };
        until("the SBOM waiting for the pool", || pool.waits() > waits).await;
        assert!(!waiting.is_finished());
        gate.open.store(true, Ordering::SeqCst);
        for task in hostile {
            let answer = task.await.expect("hostile task").expect("genuine attestations");
            drop(answer);
        }
        let answer = waiting
            .await
            .expect("SBOM task")
            .expect("the SBOM verified once the pool had room");
        assert_eq!(answer.statements.len(), 1);
        assert_eq!(pool.refusals(), 2, "the wait that ended in time is no refusal");
        drop(answer);
        assert_eq!(pool.in_use(), 0);
    })
    .await
    .expect("no verification waits past its deadline");
}

#[tokio::test]
async fn a_verification_over_the_pool_alone_is_refused_and_the_pool_given_back() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let gate = Arc::new(Gate::default());
    gate.open.store(true, Ordering::SeqCst);
    let (server, digest, _) = registry(&key, gate);
    let mut config: VerifierConfig = verify_support::config(&[&server.host()], None);
    config.registry_timeout = Duration::from_secs(10);
    // A pool smaller than one hostile attestation past the allowance.
    config.limits = DownloadLimits {
        max_inflight_download_bytes: MIB,
        ..DownloadLimits::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    let image = format!("{}/team/h1@{digest}", server.host());
    let refused = match verifier
        .verify_attestations(verify_support::attestation_key_request(&image, &key))
        .await
    {
        Ok(answer) => panic!("over the pool, yet {} statements verified", answer.statements.len()),
        Err(refused) => refused,
    };
    // More than the whole pool for this verification alone: no waiting would make it fit, so
    // the refusal is no transient one: an over-cap naming the pool's flag.
    assert!(!refused.is_transient(), "{refused}");
    assert!(
        refused.to_string().contains("--max-inflight-download-bytes") && !refused.to_string().contains("transient"),
        "{refused}"
    );
    assert_eq!(verifier.download_pool().in_use(), 0);
    assert!(verifier.download_pool().high_water() <= MIB);
    // The honest signature, within its allowance, verified by the same verifier.
    let honest = format!("{}/team/honest@{digest}", server.host());
    verify_support::verified(
        &verifier,
        verify_support::pub_key_request(&honest, &[key.public_key_pem()], None),
    )
    .await;
}

#[test]
fn every_command_reading_signatures_has_the_flag_with_its_default() {
    for command in ["run", "verify", "bench", "provider"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cip"))
            .args([command, "--help"])
            .output()
            .expect("cip runs");
        let help = String::from_utf8_lossy(&output.stdout);
        let (_, flag) = help
            .split_once("--max-inflight-download-bytes <BYTES>")
            .unwrap_or_else(|| panic!("cip {command} has no --max-inflight-download-bytes: {help}"));
        let flag = flag.split("\n      -").next().unwrap_or_default();
        assert!(
            flag.contains(&format!(
                "[default: {}]",
                cip::registry::DEFAULT_MAX_INFLIGHT_DOWNLOAD_BYTES
            )),
            "cip {command}: {flag}"
        );
    }
}

#[tokio::test]
async fn signatures_past_the_pool_are_refused_in_every_format_and_the_pool_given_back() {
    let key = KeyPair::ecdsa_p256().expect("key");
    let (digest, image) = image();
    let tag = digest.replace(':', "-");
    // 20 distinct genuine signature layers of 200 KiB (within the 256 KiB layer cap): 4 MiB,
    // within the 64 MiB budget of one verification, past a pool of 2 MiB.
    let mut routes: Vec<(String, Vec<u8>)> = vec![(format!("/manifests/{digest}"), image)];
    let mut descriptors = Vec::new();
    for n in 0..20 {
        let annotations = BTreeMap::from([
            ("n".to_owned(), n.to_string()),
            ("pad".to_owned(), "x".repeat(200 * 1024)),
        ]);
        let payload =
            testkit::simple_signing_payload("registry.example", "team/app", &digest, &annotations).expect("payload");
        let signature = BASE64.encode(key.sign(&payload).expect("signed"));
        descriptors.push(json!({
            "mediaType": SIMPLE_SIGNING,
            "size": payload.len(),
            "digest": testkit::sha256_digest(&payload),
            "annotations": {"dev.cosignproject.cosign/signature": signature},
        }));
        routes.push((format!("/blobs/{}", testkit::sha256_digest(&payload)), payload));
    }
    routes.push((format!("/manifests/{tag}.sig"), manifest(&descriptors)));
    let image_digest = digest.clone();
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            return ok("application/json", b"{}".to_vec());
        }
        match routes.iter().find(|(key, _)| path.ends_with(key.as_str())) {
            Some((key, body)) if key.ends_with(&image_digest) => {
                ok(MANIFEST, body.clone()).with_header("Docker-Content-Digest", image_digest.clone())
            }
            Some((key, body)) if key.contains("/manifests/") => ok(MANIFEST, body.clone()),
            Some((_, body)) => ok("application/octet-stream", body.clone()),
            None => Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":""}]}"#.to_vec(),
            },
        }
    }));
    let image = format!("{}/team/app@{digest}", server.host());
    let request = || verify_support::pub_key_request(&image, &[key.public_key_pem()], None);
    let mut config: VerifierConfig = verify_support::config(&[&server.host()], None);
    config.registry_timeout = Duration::from_secs(10);
    config.limits = DownloadLimits {
        max_inflight_download_bytes: 2 * MIB,
        ..DownloadLimits::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    for format in [cip::verify::SignatureFormat::Legacy, cip::verify::SignatureFormat::Any] {
        let refused = verifier
            .verify_in(request(), format)
            .await
            .err()
            .expect("past the pool");
        // 4 MiB past a pool of 2 MiB for this verification alone: an over-cap, not transient.
        assert!(!refused.is_transient(), "{format:?}: {refused}");
        assert!(
            refused.to_string().contains("--max-inflight-download-bytes"),
            "{refused}"
        );
        assert_eq!(verifier.download_pool().in_use(), 0, "{format:?}");
    }
    assert!(verifier.download_pool().high_water() <= 2 * MIB);
    assert_eq!(verifier.download_pool().refusals(), 2);
    // The same signatures under a pool they fit: verified.
    let mut config: VerifierConfig = verify_support::config(&[&server.host()], None);
    config.registry_timeout = Duration::from_secs(10);
    let roomy = Verifier::new(config).expect("verifier");
    verify_support::verified(&roomy, request()).await;
}
