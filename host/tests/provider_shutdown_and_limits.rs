//! The provider's graceful shutdown (what `cip provider` does on SIGTERM, driven here through
//! the same `RunningProvider::shutdown_after` with a delay the test ends), and the bounds on what
//! one request may hold in memory: the per-key size cap and the HTTP/2 stream limit.

mod provider_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cip::provider::protocol::{Decision, ImageKey, Verdict};
use cip::provider::{Decider, Limits};
use provider_support::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound of every wait of these tests: a provider that hangs fails them instead of hanging them.
const WAIT: Duration = Duration::from_secs(30);

/// Allows every image; an image whose name contains `held` waits, once it has started, until the
/// test releases it.
struct Held {
    released: Mutex<bool>,
    changed: Condvar,
    entered: tokio::sync::mpsc::UnboundedSender<String>,
    calls: AtomicUsize,
}

impl Held {
    fn new() -> (Arc<Self>, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (entered, entries) = tokio::sync::mpsc::unbounded_channel();
        let held = Arc::new(Self {
            released: Mutex::new(false),
            changed: Condvar::new(),
            entered,
            calls: AtomicUsize::new(0),
        });
        (held, entries)
    }

    fn release(&self) {
        *self.released.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }
}

/// Releases the held images when the test ends, passed or failed: the runtime's shutdown waits
/// for the evaluations still blocked.
struct ReleaseOnDrop(Arc<Held>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Decider for Held {
    fn decide(&self, key: &ImageKey) -> Result<Decision, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.entered.send(key.image.clone());
        if key.image.contains("held") {
            // Bounded, so that a failing test cannot hang on it (the runtime waits for it).
            let released = self.released.lock().unwrap_or_else(|e| e.into_inner());
            let (released, _) = self
                .changed
                .wait_timeout_while(released, 2 * WAIT, |released| !*released)
                .unwrap_or_else(|e| e.into_inner());
            if !*released {
                return Err("never released".to_owned());
            }
        }
        Ok(Decision {
            verdict: Verdict::Allow,
            digest: None,
            message: String::new(),
            policies: Vec::new(),
        })
    }
}

/// A client speaking HTTP/1.1 only (as Gatekeeper's does), presenting Gatekeeper's certificate.
fn http1_client(ca: &Ca, gatekeeper: &Leaf) -> TestResult<reqwest::Client> {
    Ok(client_builder(ca, Some(gatekeeper), &[&rustls::version::TLS13])?
        .http1_only()
        .build()?)
}

async fn post_to(client: &reqwest::Client, addr: std::net::SocketAddr, keys: &[String]) -> TestResult<(u16, Value)> {
    let response = client
        .post(format!("https://{addr}/validate"))
        .json(&request(keys))
        .timeout(WAIT)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// On shutdown: /readyz answers 503 at once; during the delay a request already in flight keeps
/// being served and a new connection is accepted and answered; once the delay ends the listener
/// is closed, but the shutdown does not finish before the request in flight is answered (200,
/// with its item); then it finishes, closing the idle keep-alive connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_serves_through_the_delay_and_drains_the_requests_in_flight() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let gatekeeper_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let gatekeeper = gatekeeper_ca.client()?;
    let (held, mut entered) = Held::new();
    let _release = ReleaseOnDrop(held.clone());
    // A deadline far beyond the test: the held request is answered when released, not undecided.
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let provider = start(held.clone(), &files, true, limits).await?;
    let (addr, metrics_addr) = (provider.addr(), provider.metrics_addr());
    let side = bounded_http_client()?;
    let readyz = |side: reqwest::Client| async move {
        let response = side.get(format!("http://{metrics_addr}/readyz")).send().await?;
        TestResult::Ok(response.status().as_u16())
    };
    assert_eq!(readyz(side.clone()).await?, 200);
    // The `Connection` header of an answer to a new HTTP/1.1 client.
    let connection_header = || async {
        let client = http1_client(&ca, &gatekeeper)?;
        let response = client
            .post(format!("https://{addr}/validate"))
            .json(&request(&[key("registry.example/app:3", "prod")]))
            .timeout(WAIT)
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        let connection = response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        TestResult::Ok(connection)
    };
    assert_eq!(connection_header().await?, None, "keep-alive while serving");
    assert_eq!(
        tokio::time::timeout(WAIT, entered.recv()).await?.as_deref(),
        Some("registry.example/app:3")
    );

    let in_flight_key = key("registry.example/held:1", "prod");
    let in_flight = tokio::spawn({
        let client = tls13_client(&ca, Some(&gatekeeper))?;
        let keys = vec![in_flight_key.clone()];
        async move { post_to(&client, addr, &keys).await }
    });
    let first = tokio::time::timeout(WAIT, entered.recv()).await?;
    assert_eq!(first.as_deref(), Some("registry.example/held:1"));

    // What the signal handler does, with a delay this test ends.
    let (end_delay, delay_ended) = tokio::sync::oneshot::channel::<()>();
    let shutdown = tokio::spawn(provider.shutdown_after(async {
        let _ = delay_ended.await;
    }));
    assert_eq!(
        readyz(side.clone()).await?,
        503,
        "not ready from the start of the shutdown"
    );

    // During the delay, every answer asks its client to close its connection, so that
    // Gatekeeper's next request goes to a pod that stays.
    assert_eq!(connection_header().await?.as_deref(), Some("close"));

    // During the delay: a new connection (a new client) is accepted and answered.
    let late_key = key("registry.example/app:2", "prod");
    let late = tls13_client(&ca, Some(&gatekeeper))?;
    let (status, answer) = post_to(&late, addr, std::slice::from_ref(&late_key)).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        item(&answer, &late_key).map(|i| &i["value"]["verdict"]),
        Some(&Value::from("allow")),
        "{answer}"
    );

    // The delay ends: the listener closes (new connections refused) ...
    let _ = end_delay.send(());
    tokio::time::timeout(WAIT, async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    // ... but the shutdown waits for the request in flight.
    assert!(
        !shutdown.is_finished(),
        "the shutdown finished with a request in flight"
    );
    assert!(!in_flight.is_finished());

    held.release();
    let (status, answer) = tokio::time::timeout(WAIT, in_flight).await???;
    assert_eq!(status, 200, "{answer}");
    let answered = item(&answer, &in_flight_key).ok_or_else(|| format!("no item for the held key: {answer}"))?;
    assert_eq!(answered["value"]["verdict"], "allow", "{answer}");
    assert_eq!(answer["response"]["systemError"], "", "{answer}");

    // Drained: the late client's idle keep-alive connection does not keep the provider up (its
    // idle timeout is 120 s, the drain's bound 62 s, both beyond this wait).
    tokio::time::timeout(WAIT, shutdown).await??;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
    Ok(())
}

/// `shutdown()` (no delay) of an idle provider with an idle keep-alive connection open ends
/// without waiting for the drain's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_provider_shuts_down_without_waiting() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let provider = start(Arc::new(Scripted::default()), &files, false, limits).await?;
    let client = tls13_client(&ca, None)?;
    let one = key("registry.example/app:1", "prod");
    let (status, _) = post_to(&client, provider.addr(), &[one]).await?;
    assert_eq!(status, 200);
    assert!(provider.drain_timeout() > WAIT);
    tokio::time::timeout(WAIT, provider.shutdown()).await?;
    Ok(())
}

/// A key longer than 64 KiB gets an error item naming the cap and is not evaluated; the other
/// keys of the request are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_the_size_cap_gets_its_own_error() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let decider = Arc::new(Scripted::default());
    let provider = start(decider.clone(), &files, false, Limits::default()).await?;
    let client = tls13_client(&ca, None)?;
    let huge = key(&format!("registry.example/{}:1", "a".repeat(64 * 1024)), "prod");
    let small = key("registry.example/app:1", "prod");
    let (status, answer) = post_to(&client, provider.addr(), &[huge.clone(), small.clone()]).await?;
    assert_eq!(status, 200, "{answer}");
    let refused = item(&answer, &huge).ok_or("no item for the huge key")?;
    let error = refused["error"]
        .as_str()
        .ok_or_else(|| format!("no error: {refused}"))?;
    assert!(error.contains("over the 65536 bytes a key may have"), "{error}");
    assert!(refused.get("value").is_none());
    assert_eq!(
        item(&answer, &small).map(|i| &i["value"]["verdict"]),
        Some(&Value::from("allow"))
    );
    assert_eq!(
        decider.calls.load(Ordering::SeqCst),
        1,
        "only the small key is evaluated"
    );
    provider.shutdown().await;
    Ok(())
}

/// The HTTPS port's HTTP/2 SETTINGS allow at most 8 concurrent streams per connection (hyper's
/// default is 200): read from the server's first SETTINGS frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_get_at_most_eight_concurrent_streams() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let provider = start(Arc::new(Scripted::default()), &files, false, Limits::default()).await?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())?)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(provider.addr()).await?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    // The client preface and an empty SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await?;
    tls.flush().await?;
    let settings = tokio::time::timeout(WAIT, async {
        loop {
            let mut head = [0u8; 9];
            tls.read_exact(&mut head).await?;
            let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; length];
            tls.read_exact(&mut payload).await?;
            // A SETTINGS frame (type 4) that is not an acknowledgement (flag 1).
            if head[3] == 4 && head[4] & 1 == 0 {
                return std::io::Result::Ok(payload);
            }
        }
    })
    .await??;
    let max_streams = settings
        .chunks_exact(6)
        .find(|entry| entry[..2] == [0, 3])
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]));
    assert_eq!(max_streams, Some(8), "SETTINGS {settings:?}");
    // This client answers no PING: closed first, it does not hold the drain until its bound.
    drop(tls);
    provider.shutdown().await;
    Ok(())
}

/// Request bodies in flight share one budget: with a request held, a body that does not fit in
/// what is left is answered 503 with `Retry-After` (counted in the metrics) before it is read;
/// once the held request is answered, it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_beyond_the_in_flight_budget_are_answered_busy() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &Ca::new("unused client CA")?)?;
    let (held, mut entered) = Held::new();
    let _release = ReleaseOnDrop(held.clone());
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_inflight_body_bytes: 64 * 1024,
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let provider = start(held.clone(), &files, false, limits).await?;
    let addr = provider.addr();
    let in_flight = tokio::spawn({
        let client = tls13_client(&ca, None)?;
        let keys = vec![key("registry.example/held:1", "prod")];
        async move { post_to(&client, addr, &keys).await }
    });
    tokio::time::timeout(WAIT, entered.recv()).await?;

    // About 63.1 KiB: more than the 63 KiB the held request (1 KiB) leaves.
    let large = key(&format!("registry.example/{}:1", "a".repeat(63 * 1024)), "prod");
    let client = tls13_client(&ca, None)?;
    let response = client
        .post(format!("https://{addr}/validate"))
        .json(&request(std::slice::from_ref(&large)))
        .timeout(WAIT)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let answer: Value = response.json().await?;
    let error = answer["response"]["systemError"].as_str().unwrap_or_default();
    assert!(
        error.contains("request bodies in flight would exceed 65536 bytes"),
        "{answer}"
    );
    assert!(metrics(&provider).await?.contains(r#"reason="request_bytes_busy""#));

    held.release();
    let (status, _) = tokio::time::timeout(WAIT, in_flight).await???;
    assert_eq!(status, 200);
    let (status, answer) = post_to(&client, addr, std::slice::from_ref(&large)).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        item(&answer, &large).map(|i| &i["value"]["verdict"]),
        Some(&Value::from("allow"))
    );
    provider.shutdown().await;
    Ok(())
}
