//! One expiry per answer: the host's answer memo keeps a verification answer only as long as
//! the verifier's cache entry it came from, so a moved tag is answered with its new digest as
//! soon as the verifier's entry expires (not a whole TTL later). Real loopback registry, real
//! signatures, the tag moved between look-ups.

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

#[test]
fn a_moved_tag_is_answered_with_its_new_digest_once_the_verifier_entry_expires() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let host = registry.host();
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    let old = testkit::push_image(&host, "team/app", "v1", "before-the-move").expect("push");
    testkit::sign_with_key(&host, "team/app", &old, &key, &Default::default()).expect("sign");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime");
    let verifier = Arc::new(
        Verifier::new(VerifierConfig {
            sources: Sources {
                insecure_sources: vec![host.clone()],
                ..Sources::default()
            },
            success_ttl: TTL,
            // Tag resolutions are shared for min(2 s, failure TTL): keep that window short.
            failure_ttl: Duration::from_millis(300),
            ..VerifierConfig::default()
        })
        .expect("verifier"),
    );
    let capabilities = Capabilities::new(Arc::clone(&verifier), runtime.handle().clone()).with_answer_cache(1_000);
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
