//! One expiry per answer: the host's answer memo keeps a verification answer only as long as
//! the verifier's cache entry it came from, so a moved tag is answered with its new digest as
//! soon as the verifier's entry expires (not a whole TTL later). Real loopback registry, real
//! signatures, the tag moved between look-ups.

mod capability_host;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cip::capabilities::Capabilities;
use cip::registry::Sources;
use cip::verify::{VerificationRequest, Verifier, VerifierConfig};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use serde_json::Value;

const TTL: Duration = Duration::from_secs(2);

fn sleep_until(instant: Instant) {
    std::thread::sleep(instant.saturating_duration_since(Instant::now()));
}

/// A runtime, a verifier reaching `host` over plain HTTP with these TTLs, and capabilities with
/// the answer memo.
fn memoising_host(
    host: &str,
    success_ttl: Duration,
    failure_ttl: Duration,
) -> (tokio::runtime::Runtime, Arc<Verifier>, Capabilities) {
    let runtime = capability_host::runtime();
    let verifier = Arc::new(
        Verifier::new(VerifierConfig {
            sources: Sources {
                insecure_sources: vec![host.to_owned()],
                ..Sources::default()
            },
            success_ttl,
            failure_ttl,
            ..VerifierConfig::default()
        })
        .expect("verifier"),
    );
    let capabilities = Capabilities::new(Arc::clone(&verifier), runtime.handle().clone())
        .with_answer_cache(1_000, cip::verify::DEFAULT_CACHE_MAX_BYTES);
    (runtime, verifier, capabilities)
}

#[test]
fn a_moved_tag_is_answered_with_its_new_digest_once_the_verifier_entry_expires() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let host = registry.host();
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    let old = testkit::push_image(&host, "team/app", "v1", "before-the-move").expect("push");
    testkit::sign_with_key(&host, "team/app", &old, &key, &Default::default()).expect("sign");

    // Tag resolutions are shared for min(2 s, failure TTL): keep that window short.
    let (runtime, verifier, capabilities) = memoising_host(&host, TTL, Duration::from_millis(300));
    let input = || SigstoreVerificationInputV2::SigstorePubKeyVerify {
        image: format!("{host}/team/app:v1"),
        pub_keys: vec![key.public_key_pem().to_owned()],
        annotations: None,
    };
    let payload = serde_json::to_vec(&input()).expect("json");
    let ask = || -> String {
        let answer = capabilities
            .dispatch("test", None, "kubewarden", "oci", "v2/verify", &payload)
            .expect("signed image verifies");
        let answer: Value = serde_json::from_slice(&answer).expect("json");
        answer["digest"].as_str().expect("digest").to_owned()
    };

    // Another evaluation fills the verifier's cache first; its entry expires before `filled + TTL`.
    let first = runtime
        .block_on(verifier.verify(VerificationRequest::V2(input())))
        .expect("verifies");
    let filled = Instant::now();
    assert_eq!(first.digest, old);

    // Late in that entry's life, this evaluation asks through the memo: still the old digest.
    sleep_until(filled + TTL * 7 / 10);
    assert_eq!(ask(), old);

    // The tag moves (and the new image is signed too).
    let new = testkit::move_tag(&host, "team/app", "v1", "after-the-move").expect("move tag");
    testkit::sign_with_key(&host, "team/app", &new, &key, &Default::default()).expect("sign");
    assert_ne!(new, old);

    // Past the verifier entry's expiry, but well before a memo that re-armed a full TTL at its
    // own insertion (filled + 0.7 TTL + TTL) would expire: the memo must not answer the old digest.
    sleep_until(filled + TTL * 13 / 10);
    assert_eq!(ask(), new, "the memo outlived the verifier's entry");
    assert_eq!(ask(), new);
    let memo = capabilities.answer_cache_stats();
    assert_eq!((memo.hits, memo.misses), (1, 2));
}

/// The same for the registry look-ups the module's binding check makes (`oci/v1/oci_manifest`
/// of a `.sig` tag, `oci/v1/manifest_digest`): their answers are memoised as bytes, and a memo
/// entry ends when the verifier's entry it came from ends (the data window), so a moved tag is
/// seen then.
#[test]
fn registry_look_ups_are_memoised_no_longer_than_the_verifier_keeps_them() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let host = registry.host();
    let old = testkit::push_image(&host, "team/app", "v1", "before-the-move").expect("push");

    // The data window is min(2 s, failure TTL): the longest, so that a loaded machine moves the
    // tag well inside it (with 1 s, CI's loaded machine once took the rest of the window to push
    // the moved tag).
    let window = Duration::from_secs(2);
    let (runtime, verifier, capabilities) = memoising_host(&host, TTL, window);
    let image = format!("{host}/team/app:v1");
    let payload = serde_json::to_vec(&image).expect("json");
    let ask = |operation: &str| -> Value {
        let answer = capabilities
            .dispatch("test", None, "kubewarden", "oci", operation, &payload)
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        serde_json::from_slice(&answer).expect("json")
    };
    let manifest_of = |answer: &Value| answer.to_string();

    // Another evaluation fills the verifier's entries first; they expire no earlier than a
    // window after `filling`, no later than a window after `filled`.
    let filling = Instant::now();
    let first_manifest = runtime.block_on(verifier.oci_manifest(&image)).expect("manifest");
    let first_digest = runtime.block_on(verifier.manifest_digest(&image)).expect("digest");
    let filled = Instant::now();
    assert_eq!(first_digest, old);

    // The tag moves at once (the push is the slow step: it is done before the window's answers
    // are asked, not between them).
    let new = testkit::move_tag(&host, "team/app", "v1", "after-the-move").expect("move tag");
    assert_ne!(new, old);

    // Late in those entries' life, this evaluation asks through the memo: the verifier's
    // entries still answer the old image, and the memo keeps these answers; asked again within
    // the window, both come from the memo (the old image).
    sleep_until(filled + window * 6 / 10);
    let (manifest, digest) = (ask("v1/oci_manifest"), ask("v1/manifest_digest"));
    let (again_manifest, again_digest) = (ask("v1/oci_manifest"), ask("v1/manifest_digest"));
    let asked = filling.elapsed();
    assert!(
        asked < window,
        "the window's answers were asked {asked:?} after the entries began to be filled, past \
         the {window:?} window: the machine was too slow for this test's timing"
    );
    assert_eq!(manifest, serde_json::to_value(&first_manifest).expect("json"));
    assert_eq!(digest["digest"], old);
    assert_eq!(manifest_of(&again_manifest), manifest_of(&manifest));
    assert_eq!(again_digest["digest"], old);

    // Past the verifier entries' expiry, well before a memo re-armed at its own insertion
    // (filled + 0.6 + 1 window) would end: the new image.
    sleep_until(filled + window * 13 / 10);
    assert_ne!(
        manifest_of(&ask("v1/oci_manifest")),
        manifest_of(&manifest),
        "the memo outlived the verifier's entry"
    );
    assert_eq!(ask("v1/manifest_digest")["digest"], new);
    let memo = capabilities.answer_cache_stats();
    assert_eq!((memo.hits, memo.misses), (2, 4));
}
