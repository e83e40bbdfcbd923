//! The figures behind the default of `--max-inflight-download-bytes` (docs/hardening.md): how
//! many heap bytes one hostile attestation verification holds at its peak for the bytes it
//! downloads (the decode factor), counted by the process's global allocator: regorus' mimalloc
//! shim, which `cip` enables for its Rego memory limit (a test cannot install an allocator of
//! its own beside it). The shim publishes each allocation to its process-wide count here (flush
//! threshold 1 byte), and a thread samples that count for the peak. Run
//! alone, as it prints what it measures:
//!
//! ```text
//! cargo test -q -p cip --test download_budget_measure -- --ignored --nocapture --test-threads=1
//! ```

mod hostile_registry;
mod verify_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cip::registry::DownloadLimits;
use cip::verify::Verifier;
use hostile_registry::{Hostile, Reply, ok};
use serde_json::json;
use testkit::{IN_TOTO_PAYLOAD_TYPE, KeyPair, SPDX_PREDICATE_TYPE};

/// The bytes the process holds now, as regorus' allocator counts them.
fn now() -> usize {
    usize::try_from(regorus_mimalloc::global_allocation_stats_snapshot().allocated).unwrap_or(usize::MAX)
}

/// The most bytes held at once while it runs, sampled from [`now`] every 20 µs.
struct Peak {
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<()>,
}

impl Peak {
    fn start() -> Self {
        regorus::set_thread_flush_threshold_override(Some(1));
        let peak = Arc::new(AtomicUsize::new(now()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let sampler = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(now(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        });
        Self { peak, stop, sampler }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().unwrap();
        self.peak.load(Ordering::Relaxed).max(now())
    }
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const MIB: usize = 1024 * 1024;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB as f64
}

/// A registry serving `count` distinct genuine attestations of about `size` bytes each in the
/// `.att` tag of its image: the registry, the image digest, the bytes of the blobs.
fn att_registry(key: &KeyPair, count: usize, size: usize) -> (Hostile, String, usize) {
    let image = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": [],
    }))
    .expect("json");
    let digest = testkit::sha256_digest(&image);
    let mut routes: Vec<(String, Arc<Vec<u8>>)> = vec![(format!("/manifests/{digest}"), Arc::new(image))];
    let mut layers = Vec::new();
    let mut total = 0;
    for n in 0..count {
        let statement = testkit::in_toto_statement(
            "registry.example",
            "team/app",
            &digest,
            SPDX_PREDICATE_TYPE,
            &json!({"SPDXID": "SPDXRef-DOCUMENT", "name": format!("sbom {n}"), "comment": "x".repeat((size * 3 / 4).saturating_sub(400))}),
        );
        let payload = serde_json::to_vec(&statement).expect("json");
        let envelope = testkit::dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &payload, key)
            .expect("envelope")
            .0;
        total += envelope.len();
        layers.push(json!({
            "mediaType": DSSE,
            "size": envelope.len(),
            "digest": testkit::sha256_digest(&envelope),
            "annotations": {"dev.cosignproject.cosign/signature": ""},
        }));
        routes.push((
            format!("/blobs/{}", testkit::sha256_digest(&envelope)),
            Arc::new(envelope),
        ));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": testkit::sha256_digest(b"{}")},
        "layers": layers,
    }))
    .expect("json");
    routes.push((
        format!("/manifests/{}.att", digest.replace(':', "-")),
        Arc::new(manifest),
    ));
    let image_digest = digest.clone();
    let server = Hostile::start(Arc::new(move |path: &str| {
        if path == "/v2/" {
            return ok("application/json", b"{}".to_vec());
        }
        match routes.iter().find(|(key, _)| path.ends_with(key.as_str())) {
            Some((key, body)) if key.contains(&image_digest) && !key.ends_with(".att") => {
                ok(MANIFEST, body.to_vec()).with_header("Docker-Content-Digest", image_digest.clone())
            }
            Some((_, body)) => ok("application/octet-stream", body.to_vec()),
            None => Reply::Fixed {
                status: 404,
                content_type: "application/json",
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":""}]}"#.to_vec(),
            },
        }
    }));
    (server, digest, total)
}

/// One verification of `count` attestations of `size` bytes under a budget of `budget` and a
/// pool of `pool` bytes: what it downloaded, the heap it added at its peak, the outcome.
async fn measure(count: usize, size: usize, budget: usize, pool: usize) {
    let key = KeyPair::ecdsa_p256().expect("key");
    let (server, digest, served) = att_registry(&key, count, size);
    let mut config = verify_support::config(&[&server.host()], None);
    config.registry_timeout = std::time::Duration::from_secs(30);
    config.limits = DownloadLimits {
        max_verification_bytes: budget,
        max_inflight_download_bytes: pool,
        ..DownloadLimits::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    let image = format!("{}/team/app@{digest}", server.host());
    let request = verify_support::attestation_key_request(&image, &key);
    let sampling = Peak::start();
    let before = now();
    let outcome = verifier.verify_attestations(request).await;
    let peak = sampling.stop().saturating_sub(before);
    let after = now().saturating_sub(before);
    let read: usize = server.requests("/blobs/").len();
    // The blobs the registry answered (each at most once): what was downloaded, about.
    let downloaded = served.min(read * served / count);
    println!(
        "{count} attestations of {:.1} MiB, budget {:.0} MiB, pool {:.0} MiB: {} ({read} blobs asked, \
         ~{:.1} MiB downloaded); heap peak +{:.1} MiB ({:.2}x the download), +{:.1} MiB held by the answer; \
         pool high-water {:.1} MiB",
        mib(served / count),
        mib(budget),
        mib(pool),
        match &outcome {
            Ok(answer) => format!("{} statements", answer.statements.len()),
            Err(error) => format!("refused: {error}"),
        },
        mib(downloaded),
        mib(peak),
        peak as f64 / downloaded.max(1) as f64,
        mib(after),
        mib(verifier.download_pool().high_water()),
    );
    drop(outcome);
}

#[tokio::test]
#[ignore = "a measurement: run alone with --nocapture"]
async fn heap_held_by_one_hostile_attestation_verification() {
    // Within the per-verification budget, the pool out of the way: what one verification holds
    // for what it reads (the registry's copy of the blob it is sending counts too: ≤ 2 MiB).
    measure(30, 2 * MIB, 64 * MIB, 1024 * MIB).await;
    // The brief's case: fifty 2 MiB attestations, refused at the 64 MiB budget.
    measure(50, 2 * MIB, 64 * MIB, 1024 * MIB).await;
    // The same under the default pool.
    measure(
        50,
        2 * MIB,
        64 * MIB,
        cip::registry::DEFAULT_MAX_INFLIGHT_DOWNLOAD_BYTES,
    )
    .await;
    // Eight attestations at the 8 MiB attestation cap.
    measure(7, 8 * MIB, 64 * MIB, 1024 * MIB).await;
}
