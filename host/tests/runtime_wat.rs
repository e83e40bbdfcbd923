//! The runtime against a tiny waPC guest written in WAT (`fixtures/test-policy.wat`): traps,
//! timeouts, memory limits, instance reuse, host-call routing (unknown calls, the verifier with a
//! real loopback registry and real signatures, a registry that never answers).

mod capability_host;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cip::capabilities::Capabilities;
use cip::registry::Sources;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule, RuntimeError, Verdict};
use cip::verify::{Verifier, VerifierConfig};
use serde_json::{Value, json};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(capability_host::runtime)
}

fn module() -> PolicyModule {
    static MODULE: OnceLock<PolicyModule> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            PolicyModule::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-policy.wat"))
                .expect("the WAT test policy compiles")
        })
        .clone()
}

fn offline(options: EvaluatorOptions) -> Evaluator {
    let caps = Arc::new(Capabilities::without_registry(runtime().handle().clone()));
    Evaluator::new(&module(), caps, options).expect("evaluator")
}

fn with_verifier(insecure: &[String], options: EvaluatorOptions) -> Evaluator {
    let config = VerifierConfig {
        sources: Sources {
            insecure_sources: insecure.to_vec(),
            ..Sources::default()
        },
        ..VerifierConfig::default()
    };
    let verifier = Arc::new(Verifier::new(config).expect("verifier"));
    let caps = Arc::new(
        Capabilities::new(verifier, runtime().handle().clone())
            .with_answer_cache(1_000, cip::verify::DEFAULT_CACHE_MAX_BYTES),
    );
    Evaluator::new(&module(), caps, options).expect("evaluator")
}

/// Payload of the guest's `host` function: it makes exactly this host call.
fn host_call(binding: &str, namespace: &str, operation: &str, body: &[u8]) -> Vec<u8> {
    let mut payload = vec![
        u8::try_from(binding.len()).expect("short binding"),
        u8::try_from(namespace.len()).expect("short namespace"),
        u8::try_from(operation.len()).expect("short operation"),
    ];
    payload.extend_from_slice(binding.as_bytes());
    payload.extend_from_slice(namespace.as_bytes());
    payload.extend_from_slice(operation.as_bytes());
    payload.extend_from_slice(body);
    payload
}

fn guest_message(error: RuntimeError) -> String {
    match error {
        RuntimeError::Guest { message, .. } => message,
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn echo_round_trips_payload_and_reuses_the_instance() {
    let evaluator = offline(EvaluatorOptions::default());
    let (first, stats) = evaluator.call_with_stats("echo", b"hello").expect("echo");
    assert_eq!(first, b"hello");
    let (second, again) = evaluator.call_with_stats("echo", b"world").expect("echo");
    assert_eq!(second, b"world");
    assert!(stats.fresh_instance, "first call instantiates");
    assert!(
        !again.fresh_instance,
        "second call on the same thread reuses the warm instance"
    );
    assert_eq!(again.host_calls, 0);
}

#[test]
fn trap_is_a_clear_error_and_the_instance_is_discarded() {
    let evaluator = offline(EvaluatorOptions::default());
    evaluator.call("echo", b"warm").expect("echo");
    let error = evaluator.call("trap", b"").expect_err("trap must fail");
    let text = error.to_string();
    assert!(text.contains("`trap` failed"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    let (_, stats) = evaluator.call_with_stats("echo", b"after").expect("host still usable");
    assert!(
        stats.fresh_instance,
        "the warm instance was used by the trapping call and must not be reused"
    );
}

#[test]
fn infinite_loop_times_out_at_the_configured_deadline() {
    let evaluator = offline(EvaluatorOptions::default());
    let started = Instant::now();
    let error = evaluator.call("loop", b"").expect_err("loop must be interrupted");
    let elapsed = started.elapsed();
    assert!(matches!(error, RuntimeError::Timeout { .. }), "{error:?}");
    assert!(
        error.to_string().contains("exceeded the evaluation timeout of 2s"),
        "{error}"
    );
    assert!(
        elapsed >= Duration::from_millis(1900),
        "interrupted too early: {elapsed:?}"
    );
    // Interrupted rather than left running (the loop never ends); the bound is loose so that a
    // loaded machine cannot fail it: the error's kind and message above say which limit fired.
    assert!(elapsed < Duration::from_secs(30), "not interrupted: {elapsed:?}");
    assert_eq!(evaluator.call("echo", b"ok").expect("usable after a timeout"), b"ok");
}

#[test]
fn shorter_timeout_is_honoured() {
    let evaluator = offline(EvaluatorOptions {
        timeout: Duration::from_millis(200),
        ..EvaluatorOptions::default()
    });
    let started = Instant::now();
    let error = evaluator.call("loop", b"").expect_err("loop must be interrupted");
    assert!(matches!(error, RuntimeError::Timeout { .. }), "{error:?}");
    assert!(
        error.to_string().contains("exceeded the evaluation timeout of 200ms"),
        "the configured timeout fired, not the default: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "interrupted at 200 ms, not at the 2 s default: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_callers_deadline_interrupts_a_running_evaluation_long_before_the_timeout() {
    let evaluator = offline(EvaluatorOptions {
        timeout: Duration::from_secs(120),
        ..EvaluatorOptions::default()
    });
    let started = Instant::now();
    let error = evaluator
        .call_with_stats_by("loop", b"", Some(started + Duration::from_millis(300)))
        .expect_err("the loop must be interrupted at the deadline");
    assert!(matches!(error, RuntimeError::Deadline { .. }), "{error:?}");
    assert!(error.to_string().contains("caller's deadline"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "interrupted at the deadline, not the 120 s timeout: {:?}",
        started.elapsed()
    );
    // A deadline already past runs nothing; the evaluator still works afterwards.
    let past = evaluator.call_with_stats_by("echo", b"x", Some(Instant::now()));
    assert!(matches!(past, Err(RuntimeError::Deadline { .. })), "{past:?}");
    let (answer, _) = evaluator
        .call_with_stats_by("echo", b"x", Some(Instant::now() + Duration::from_secs(60)))
        .expect("a far deadline changes nothing");
    assert_eq!(answer, b"x");
}

#[test]
fn memory_bomb_is_stopped_at_the_memory_limit() {
    let evaluator = offline(EvaluatorOptions {
        memory_limit: 16 * 1024 * 1024,
        ..EvaluatorOptions::default()
    });
    let error = evaluator.call("grow", b"").expect_err("growth must be refused");
    assert!(guest_message(error).contains("unreachable"));
    // The payload needs 2 MiB: within the limit, so a fresh instance still works.
    let big = vec![b'x'; 2 * 1024 * 1024];
    assert_eq!(evaluator.call("echo", &big).expect("echo 2 MiB").len(), big.len());
    // 32 MiB cannot fit under a 16 MiB limit.
    let huge = vec![b'x'; 32 * 1024 * 1024];
    assert!(evaluator.call("echo", &huge).is_err());
}

#[test]
fn hostile_pointers_are_an_error_not_a_crash() {
    let evaluator = offline(EvaluatorOptions::default());
    let error = evaluator.call("badptr", b"").expect_err("out-of-bounds host call");
    let message = guest_message(error);
    assert!(
        message.contains("the host panicked while serving the call"),
        "{message}"
    );
    assert_eq!(
        evaluator.call("echo", b"still alive").expect("usable afterwards"),
        b"still alive"
    );
}

#[test]
fn guest_errors_and_unknown_functions_are_reported() {
    let evaluator = offline(EvaluatorOptions::default());
    let message = guest_message(evaluator.call("fail", b"").expect_err("fail"));
    assert_eq!(message, "failure requested by the caller");
    let message = guest_message(evaluator.call("no_such_function", b"").expect_err("unknown"));
    assert_eq!(message, "unknown function");
}

#[test]
fn unknown_host_calls_are_errors_naming_them() {
    let evaluator = offline(EvaluatorOptions::default());
    let cases = [
        (("nope", "oci", "v2/verify"), "unknown binding: nope"),
        (
            ("kubewarden", "teleport", "v1/go"),
            "unknown namespace: teleport (binding kubewarden)",
        ),
        (
            ("kubewarden", "oci", "v9/verify"),
            "unknown operation: v9/verify (binding kubewarden, namespace oci)",
        ),
        (
            ("cluster-image-policy", "oci", "v1/verify_everything"),
            "unknown operation: v1/verify_everything (binding cluster-image-policy, namespace oci)",
        ),
    ];
    for ((binding, namespace, operation), expected) in cases {
        let error = evaluator
            .call("host", &host_call(binding, namespace, operation, b"{}"))
            .expect_err("unknown host call");
        assert_eq!(guest_message(error), expected);
    }
}

#[test]
fn malformed_payloads_are_rejected_with_the_operation_name() {
    let evaluator = offline(EvaluatorOptions::default());
    let error = evaluator
        .call(
            "host",
            &host_call("kubewarden", "oci", "v2/verify", br#"{"type":"Nope"}"#),
        )
        .expect_err("bad payload");
    let message = guest_message(error);
    assert!(
        message.starts_with("invalid payload for kubewarden/oci/v2/verify:"),
        "{message}"
    );
}

#[test]
fn registry_calls_without_a_verifier_say_so() {
    let evaluator = offline(EvaluatorOptions::default());
    let error = evaluator
        .call(
            "host",
            &host_call("kubewarden", "oci", "v1/manifest_digest", br#""registry.test/app:v1""#),
        )
        .expect_err("no registry");
    assert_eq!(
        guest_message(error),
        "kubewarden/oci/v1/manifest_digest: this host has no registry access configured"
    );
}

#[test]
fn policy_log_events_are_accepted_and_counted_as_host_calls() {
    let evaluator = offline(EvaluatorOptions::default());
    let event = json!({"level": "info", "message": "hello from the policy", "answer": 42,
                       "file": "src/lib.rs", "line": 1, "column": 1});
    let body = serde_json::to_vec(&event).expect("json");
    let (answer, stats) = evaluator
        .call_with_stats("host", &host_call("kubewarden", "tracing", "log", &body))
        .expect("log accepted");
    assert!(answer.is_empty());
    assert_eq!(stats.host_calls, 1);
    assert!(stats.host <= stats.total);
}

#[test]
fn dns_lookup_answers_like_policy_evaluator() {
    let evaluator = offline(EvaluatorOptions::default());
    let answer = evaluator
        .call(
            "host",
            &host_call("kubewarden", "net", "v1/dns_lookup_host", br#""localhost""#),
        )
        .expect("localhost resolves");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    let ips = answer["ips"].as_array().expect("ips array");
    assert!(ips.iter().any(|ip| ip == "127.0.0.1" || ip == "::1"), "{answer}");
}

#[test]
fn typed_helpers_parse_the_sdk_answers() {
    let evaluator = offline(EvaluatorOptions::default());
    assert_eq!(evaluator.protocol_version().expect("protocol_version"), "v1");
    let settings = evaluator.validate_settings(&json!({})).expect("validate_settings");
    assert!(settings.valid);
    let response = evaluator.validate(&json!({"uid": "u1"}), &json!({})).expect("validate");
    assert!(!response.accepted);
    assert_eq!(response.code, Some(418));
    assert_eq!(response.warnings, Some(vec!["test warning".to_owned()]));
}

#[test]
fn verify_images_checks_one_verdict_per_item() {
    let evaluator = offline(EvaluatorOptions::default());
    let key = cip::runtime::ImageKey::new("registry.test/app:v1", "prod");
    let verdicts = evaluator
        .verify_images(&json!({}), std::slice::from_ref(&key))
        .expect("verdicts");
    assert_eq!(verdicts[0].verdict, Verdict::Deny);
    assert_eq!(
        verdicts[0].policies[0].authorities[0].reason.as_deref(),
        Some("no signature")
    );
    let error = evaluator
        .verify_images(&json!({}), &[key.clone(), key])
        .expect_err("one verdict for two items");
    assert!(error.to_string().contains("1 results for 2 images"), "{error}");
}

#[test]
fn evaluator_is_send_sync_and_usable_from_many_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Evaluator>();
    let evaluator = offline(EvaluatorOptions::default());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let evaluator = evaluator.clone();
            std::thread::spawn(move || {
                for j in 0..20 {
                    let payload = format!("{i}-{j}");
                    let answer = evaluator.call("echo", payload.as_bytes()).expect("echo");
                    assert_eq!(answer, payload.as_bytes());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
}

#[test]
fn async_helpers_run_on_blocking_threads() {
    let evaluator = offline(EvaluatorOptions::default());
    let response = runtime()
        .block_on(evaluator.validate_settings_async(json!({})))
        .expect("validate_settings from async code");
    assert!(response.valid);
}

#[test]
fn v2_verify_is_routed_to_the_verifier_with_a_real_registry() {
    let registry = testkit::Registry::start().expect("docker-registry");
    let host = registry.host();
    let digest = testkit::push_image(&host, "team/app", "v1", "runtime-test").expect("push");
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    testkit::sign_with_key(&host, "team/app", &digest, &key, &Default::default()).expect("sign");
    let evaluator = with_verifier(std::slice::from_ref(&host), EvaluatorOptions::default());

    let request = json!({"type": "SigstorePubKeyVerify", "image": format!("{host}/team/app:v1"),
                         "pub_keys": [key.public_key_pem()], "annotations": null});
    let (answer, stats) = evaluator
        .call_with_stats(
            "host",
            &host_call(
                "kubewarden",
                "oci",
                "v2/verify",
                &serde_json::to_vec(&request).expect("json"),
            ),
        )
        .expect("signed image verifies");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer, json!({"is_trusted": true, "digest": digest}));
    assert_eq!(stats.host_calls, 1);

    // The same look-up again is answered by the host-side memo, identically and faster.
    let body = serde_json::to_vec(&request).expect("json");
    let (again, warm) = evaluator
        .call_with_stats("host", &host_call("kubewarden", "oci", "v2/verify", &body))
        .expect("cached answer");
    assert_eq!(serde_json::from_slice::<Value>(&again).expect("json"), answer);
    let memo = evaluator.capabilities().answer_cache_stats();
    assert_eq!((memo.hits, memo.misses), (1, 1));
    assert!(
        warm.host < stats.host,
        "memo {:?} vs first look-up {:?}",
        warm.host,
        stats.host
    );

    let other = testkit::KeyPair::ecdsa_p256().expect("key");
    let request = json!({"type": "SigstorePubKeyVerify", "image": format!("{host}/team/app:v1"),
                         "pub_keys": [other.public_key_pem()], "annotations": null});
    let error = evaluator
        .call(
            "host",
            &host_call(
                "kubewarden",
                "oci",
                "v2/verify",
                &serde_json::to_vec(&request).expect("json"),
            ),
        )
        .expect_err("wrong key must fail as a host error");
    let message = guest_message(error);
    assert!(!message.contains("unknown"), "{message}");
    assert!(!message.is_empty());

    let answer = evaluator
        .call(
            "host",
            &host_call(
                "kubewarden",
                "oci",
                "v1/manifest_digest",
                format!("\"{host}/team/app:v1\"").as_bytes(),
            ),
        )
        .expect("manifest digest");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer, json!({"digest": digest}));
}

#[test]
fn a_registry_that_never_answers_fails_the_host_call_within_the_timeout() {
    let slow = testkit::SlowServer::start().expect("slow server");
    let host = slow.host();
    let evaluator = with_verifier(
        std::slice::from_ref(&host),
        EvaluatorOptions {
            timeout: Duration::from_secs(1),
            ..EvaluatorOptions::default()
        },
    );
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    let request = json!({"type": "SigstorePubKeyVerify", "image": format!("{host}/team/app:v1"),
                         "pub_keys": [key.public_key_pem()], "annotations": null});
    let started = Instant::now();
    let error = evaluator
        .call(
            "host",
            &host_call(
                "kubewarden",
                "oci",
                "v2/verify",
                &serde_json::to_vec(&request).expect("json"),
            ),
        )
        .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "the call was not cut at the deadline: {elapsed:?}"
    );
    let message = guest_message(error);
    assert!(
        message.starts_with("kubewarden/oci/v2/verify: no answer within the evaluation deadline"),
        "{message}"
    );
}

#[test]
fn host_calls_get_what_is_left_of_the_callers_deadline() {
    let slow = testkit::SlowServer::start().expect("slow server");
    let host = slow.host();
    let evaluator = with_verifier(
        std::slice::from_ref(&host),
        EvaluatorOptions {
            timeout: Duration::from_secs(120),
            ..EvaluatorOptions::default()
        },
    );
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    let request = json!({"type": "SigstorePubKeyVerify", "image": format!("{host}/team/app:v1"),
                         "pub_keys": [key.public_key_pem()], "annotations": null});
    let started = Instant::now();
    let body = host_call(
        "kubewarden",
        "oci",
        "v2/verify",
        &serde_json::to_vec(&request).expect("json"),
    );
    let error = evaluator
        .call_with_stats_by("host", &body, Some(started + Duration::from_millis(500)))
        .expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up at the caller's deadline, not the 120 s timeout: {:?}",
        started.elapsed()
    );
    let message = guest_message(error);
    assert!(
        message.starts_with("kubewarden/oci/v2/verify: no answer within the evaluation deadline"),
        "{message}"
    );
}
