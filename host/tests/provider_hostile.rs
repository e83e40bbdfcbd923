//! The provider under hostile clients, over real TLS on 127.0.0.1: stalled TLS handshakes, idle
//! TCP connections, half-sent headers, slow bodies and idle keep-alive connections are closed
//! after their timeouts while honest requests keep being answered within the deadline; the
//! connection cap refuses connections beyond it; and the request deadline stops an evaluation
//! that is already running.

mod provider_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cip::capabilities::Capabilities;
use cip::provider::protocol::{Decision, ImageKey};
use cip::provider::{ConnectionLimits, Decider, Limits, PolicyDecider};
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use provider_support::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous allowance on top of each timeout for a loaded CI machine.
const MARGIN: Duration = Duration::from_secs(5);

fn tls_connector(ca: &Ca) -> TestResult<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Reads until the server closes the connection; how long that took, or `None` if it did not
/// within `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end)
        .await
        .ok()
        .map(|()| started.elapsed())
}

/// What kind of misbehaving client a connection plays.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// TCP connected, nothing sent.
    IdleTcp,
    /// The first bytes of a TLS ClientHello, then nothing.
    HalfHandshake,
    /// TLS done, part of a request head, then nothing.
    HalfHeader,
    /// TLS done, a whole head announcing 1000 bytes of body, 10 sent.
    SlowBody,
    /// TLS done, nothing sent (an idle keep-alive connection).
    IdleTls,
}

/// Opens one stalled connection and waits until the provider closes it (bounded).
async fn stall(
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    kind: Stall,
    limit: Duration,
) -> TestResult<Option<Duration>> {
    let mut tcp = TcpStream::connect(addr).await?;
    match kind {
        Stall::IdleTcp => Ok(closed_within(&mut tcp, limit).await),
        Stall::HalfHandshake => {
            tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await?;
            Ok(closed_within(&mut tcp, limit).await)
        }
        Stall::HalfHeader | Stall::SlowBody | Stall::IdleTls => {
            let mut tls = connector
                .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
                .await?;
            match kind {
                Stall::HalfHeader => {
                    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
                        .await?
                }
                Stall::SlowBody => {
                    tls.write_all(
                        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                          Content-Length: 1000\r\n\r\n{\"apiVersi",
                    )
                    .await?;
                }
                _ => {}
            }
            tls.flush().await?;
            Ok(closed_within(&mut tls, limit).await)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_stalled_clients_are_closed_while_honest_requests_are_answered() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let connections = ConnectionLimits {
        max_connections: 1_000,
        tls_handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
    };
    let limits = Limits::default();
    let provider = start_with(Arc::new(Scripted::default()), &files, false, limits, connections).await?;
    let connector = tls_connector(&ca)?;

    let plan = [
        (Stall::IdleTcp, 60, connections.tls_handshake_timeout),
        (Stall::HalfHandshake, 30, connections.tls_handshake_timeout),
        (Stall::HalfHeader, 30, connections.header_read_timeout),
        (Stall::SlowBody, 20, connections.body_read_timeout),
        (Stall::IdleTls, 20, connections.idle_timeout),
    ];
    let mut stalled = Vec::new();
    for (kind, count, timeout) in plan {
        for _ in 0..count {
            let connector = connector.clone();
            let addr = provider.addr();
            stalled.push((
                kind,
                timeout,
                tokio::spawn(stall(addr, connector, kind, timeout + MARGIN)),
            ));
        }
    }

    // Honest requests throughout: every one answered within the deadline.
    let honest = tls13_client(&ca, None)?;
    let keys = [key("registry.example/app:v1", "prod")];
    let until = Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while Instant::now() < until {
        let started = Instant::now();
        let (status, answer) = post(&honest, &provider, &request(&keys)).await?;
        let took = started.elapsed();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(item(&answer, &keys[0]).ok_or("no item")?["value"]["verdict"], "allow");
        assert!(took < limits.deadline, "an honest request took {took:?}");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered >= 5, "only {answered} honest requests");

    for (kind, timeout, task) in stalled {
        let closed = task.await??;
        assert!(
            closed.is_some(),
            "a {kind:?} connection was still open {:?} after its {timeout:?} timeout",
            MARGIN
        );
    }
    let text = metrics(&provider).await?;
    for (reason, at_least) in [
        ("tls_handshake_timeout", 90),
        ("header_read_timeout", 30),
        ("body_read_timeout", 20),
        ("idle_timeout", 20),
    ] {
        let line = format!("cluster_image_policy_provider_connections_closed_total{{reason=\"{reason}\"}} ");
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(
            count >= at_least,
            "{reason}: {count} closed, expected {at_least}:\n{text}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_until_a_slot_frees() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let connections = ConnectionLimits {
        max_connections: 4,
        tls_handshake_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let provider = start_with(
        Arc::new(Scripted::default()),
        &files,
        false,
        Limits::default(),
        connections,
    )
    .await?;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(TcpStream::connect(provider.addr()).await?);
    }
    // Let the provider accept them all before the next one comes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut extra = TcpStream::connect(provider.addr()).await?;
    assert!(
        closed_within(&mut extra, MARGIN).await.is_some(),
        "the connection over the cap must be closed at once"
    );
    let client = tls13_client(&ca, None)?;
    let keys = [key("registry.example/app:v1", "prod")];
    assert!(
        post(&client, &provider, &request(&keys)).await.is_err(),
        "refused while full"
    );
    let text = metrics(&provider).await?;
    assert!(
        text.contains("cluster_image_policy_provider_connections_closed_total{reason=\"refused\"}"),
        "{text}"
    );

    drop(hogs);
    let deadline = Instant::now() + MARGIN;
    loop {
        match post(&client, &provider, &request(&keys)).await {
            Ok((status, _)) => {
                assert_eq!(status, 200);
                break;
            }
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(format!("slots never freed: {error}").into()),
        }
    }
    Ok(())
}

/// A guest whose `validate_settings` accepts and whose `verify_images` never returns.
const LOOPING_POLICY: &str = r#"(module
  (import "wapc" "__guest_response" (func $response (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"valid\":true}")
  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (if (i32.eq (local.get $op_len) (i32.const 17))
      (then (call $response (i32.const 0) (i32.const 14)) (return (i32.const 1))))
    (loop $forever (br $forever))
    (i32.const 0)))"#;

/// Counts evaluations in progress around a real [`PolicyDecider`].
struct Counting {
    inner: PolicyDecider,
    running: Arc<AtomicUsize>,
}

impl Decider for Counting {
    fn decide(&self, key: &ImageKey) -> Result<Decision, String> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let outcome = self.inner.decide(key);
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    fn decide_by(&self, key: &ImageKey, deadline: Instant) -> Result<Decision, String> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let outcome = self.inner.decide_by(key, deadline);
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_deadline_stops_an_evaluation_already_running() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let module = PolicyModule::from_bytes("looping.wat", LOOPING_POLICY.as_bytes())?;
    let capabilities = Arc::new(Capabilities::without_registry(tokio::runtime::Handle::current()));
    let evaluation_timeout = Duration::from_secs(120);
    let evaluator = Evaluator::new(
        &module,
        capabilities,
        EvaluatorOptions {
            timeout: evaluation_timeout,
            ..EvaluatorOptions::default()
        },
    )?;
    let running = Arc::new(AtomicUsize::new(0));
    let decider = Counting {
        inner: tokio::task::spawn_blocking(move || PolicyDecider::new(evaluator, json!({}))).await??,
        running: Arc::clone(&running),
    };
    let limits = Limits {
        deadline: Duration::from_millis(500),
        max_concurrency: 1,
        ..Limits::default()
    };
    let provider = start(Arc::new(decider), &files, false, limits).await?;
    let client = tls13_client(&ca, None)?;
    let keys = [key("registry.example/app:v1", "prod")];

    let (status, answer) = post(&client, &provider, &request(&keys)).await?;
    assert_eq!(status, 200);
    assert!(item(&answer, &keys[0]).is_none(), "{answer}");
    let error = answer["response"]["systemError"].as_str().unwrap_or_default();
    assert!(error.contains("deadline"), "{answer}");

    // The evaluation itself stops at the deadline, not at the 120 s evaluation timeout.
    let waited = Instant::now();
    while running.load(Ordering::SeqCst) > 0 {
        assert!(
            waited.elapsed() < MARGIN,
            "the evaluation was still running {MARGIN:?} after the request's deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The answer to an honest key of `prod` sent while one request of namespace `noisy` asks about
/// 20 images that each take 3 s (a slow registry), with 4 evaluation slots and a 1 s deadline.
async fn honest_answer_beside_a_noisy_namespace(per_namespace: usize) -> TestResult<Value> {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let limits = Limits {
        deadline: Duration::from_secs(1),
        max_concurrency: 4,
        max_concurrency_per_namespace: per_namespace,
        ..Limits::default()
    };
    let provider = Arc::new(start(Arc::new(Scripted::default()), &files, false, limits).await?);
    let client = tls13_client(&ca, None)?;
    let noisy: Vec<String> = (0..20)
        .map(|i| key(&format!("registry.example/slow:{i}"), "noisy"))
        .collect();
    let flood = {
        let (client, provider) = (client.clone(), Arc::clone(&provider));
        tokio::spawn(async move {
            post(&client, &provider, &request(&noisy))
                .await
                .map(|(status, _)| status)
        })
    };
    // Let the noisy keys take their slots first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let honest = key("registry.example/app:v1", "prod");
    let (status, answer) = post(&client, &provider, &request(std::slice::from_ref(&honest))).await?;
    assert_eq!(status, 200);
    assert_eq!(flood.await?.map_err(|e| e.to_string())?, 200);
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_with_slow_images_cannot_take_every_evaluation_slot() -> TestResult {
    let honest = key("registry.example/app:v1", "prod");
    let answer = honest_answer_beside_a_noisy_namespace(2).await?;
    assert_eq!(
        item(&answer, &honest).ok_or_else(|| format!("no answer for the honest key: {answer}"))?["value"]["verdict"],
        "allow"
    );
    assert_eq!(answer["response"]["systemError"], "");

    // The control: with one namespace allowed every slot, the same honest key waits behind the
    // noisy ones until its deadline (what the per-namespace bound prevents).
    let answer = honest_answer_beside_a_noisy_namespace(4).await?;
    assert!(item(&answer, &honest).is_none(), "{answer}");
    let error = answer["response"]["systemError"].as_str().unwrap_or_default();
    assert!(
        error.contains("image registry.example/app:v1 in namespace prod: deadline exceeded"),
        "{answer}"
    );
    Ok(())
}
