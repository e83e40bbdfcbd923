//! The provider under hostile clients, over real TLS on 127.0.0.1: stalled TLS handshakes, idle
//! TCP connections, half-sent headers, slow bodies and idle keep-alive connections are closed
//! after their timeouts while honest requests keep being answered within the deadline; the
//! session cap refuses established sessions beyond it; clients that never finish a handshake
//! (no client certificate) cannot keep Gatekeeper's certificate out, from one address or many;
//! the plain-HTTP side port is capped and timed out like the HTTPS one; and the request deadline
//! stops an evaluation that is already running.
//!
//! Clients play distinct addresses by binding to `127.0.0.x` (all of 127.0.0.0/8 is loopback);
//! the provider listens on 127.0.0.1 only.

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
        max_pending_handshakes: 1_000,
        tls_handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
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
async fn sessions_beyond_the_cap_are_refused_until_a_slot_frees() -> TestResult {
    let connections = ConnectionLimits {
        max_connections: 4,
        tls_handshake_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let Started {
        provider,
        ca,
        files: _files,
        ..
    } = started(connections, false).await?;
    // Four idle established sessions (no mTLS here: any TLS client establishes one).
    let connector = tls_connector(&ca)?;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let tcp = TcpStream::connect(provider.addr()).await?;
        let tls = tokio::time::timeout(
            MARGIN,
            connector.connect(ServerName::try_from("localhost")?.to_owned(), tcp),
        )
        .await??;
        hogs.push(tls);
    }
    // TLS 1.3: the client's handshake ends before the server's; let the provider take the
    // sessions' slots before the next one comes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let tcp = TcpStream::connect(provider.addr()).await?;
    let mut extra = connector
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    assert!(
        closed_within(&mut extra, MARGIN).await.is_some(),
        "the session over the cap must be closed at once"
    );
    let client = tls13_client(&ca, None)?;
    let keys = [key("registry.example/app:v1", "prod")];
    assert!(
        post(&client, &provider, &request(&keys)).await.is_err(),
        "refused while full"
    );
    let text = metrics(&provider).await?;
    assert!(closed_count(&text, "refused") >= 2, "{text}");

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

/// `cluster_image_policy_provider_connections_closed_total{reason}` in a `/metrics` text.
fn closed_count(text: &str, reason: &str) -> u64 {
    let line = format!("cluster_image_policy_provider_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A provider answering with [`Scripted`] verdicts under `connections`: its serving CA, the
/// client CA Gatekeeper's certificates come from (required with `mtls`), and the files they
/// were written to (kept while the provider runs).
struct Started {
    provider: cip::provider::RunningProvider,
    ca: Ca,
    client_ca: Ca,
    files: TlsFiles,
}

async fn started(connections: ConnectionLimits, mtls: bool) -> TestResult<Started> {
    let ca = Ca::new("serving CA")?;
    let client_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &client_ca)?;
    let provider = start_with(
        Arc::new(Scripted::default()),
        &files,
        mtls,
        Limits::default(),
        connections,
    )
    .await?;
    Ok(Started {
        provider,
        ca,
        client_ca,
        files,
    })
}

/// The loopback address `127.0.0.n`.
fn loopback(n: u8) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, n)
}

/// An attacker without a client certificate: keeps `held` TCP connections to `addr` open from
/// each of `sources`, and with `churn` closes the oldest and opens a new one every 5 ms, until
/// `stop`. Returns the connections it opened.
fn hold_connections(
    addr: SocketAddr,
    sources: Vec<std::net::Ipv4Addr>,
    held: usize,
    churn: bool,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<TestResult<usize>> {
    tokio::spawn(async move {
        let mut open = std::collections::VecDeque::new();
        let mut opened = 0;
        for source in &sources {
            for _ in 0..held {
                open.push_back(connect_from(*source, addr).await?);
                opened += 1;
            }
        }
        let mut next = sources.iter().cycle();
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if churn && let Some(source) = next.next() {
                open.pop_front();
                open.push_back(connect_from(*source, addr).await?);
                opened += 1;
            }
        }
        Ok(opened)
    })
}

/// Sends `count` honest mTLS requests one after the other, each on a new connection (a full
/// handshake, as a client whose keep-alive connection was closed must do), 50 ms apart; returns
/// how many were answered 200 with the verdict, and the errors of the others.
async fn honest_requests(
    provider: &cip::provider::RunningProvider,
    gatekeeper: &reqwest::Client,
    count: usize,
) -> TestResult<(usize, Vec<String>)> {
    let keys = [key("registry.example/app:v1", "prod")];
    let (mut served, mut failed) = (0, Vec::new());
    for _ in 0..count {
        match post(gatekeeper, provider, &request(&keys)).await {
            Ok((200, answer)) if item(&answer, &keys[0]).is_some_and(|i| i["value"]["verdict"] == "allow") => {
                served += 1
            }
            Ok((status, answer)) => failed.push(format!("{status}: {answer}")),
            Err(error) => failed.push(format!("{error:?}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((served, failed))
}

/// The review's probe: mTLS on, 16 sessions, a 5 s handshake timeout, and an attacker without
/// a certificate holding 20 TCP connections and reconnecting every 5 ms. Before the fix the
/// attacker's connections took the 16 slots at the accept, and Gatekeeper's were refused
/// (0 of 59 served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_cannot_keep_gatekeeper_out() -> TestResult {
    let connections = ConnectionLimits {
        max_connections: 16,
        tls_handshake_timeout: Duration::from_secs(5),
        ..ConnectionLimits::default()
    };
    let Started {
        provider,
        ca,
        client_ca,
        files: _files,
    } = started(connections, true).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = hold_connections(provider.addr(), vec![loopback(2)], 20, true, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let gatekeeper = fresh_connection_tls13_client(&ca, Some(&client_ca.client()?), loopback(1).into())?;
    let (served, failed) = honest_requests(&provider, &gatekeeper, 20).await?;
    stop.store(true, Ordering::SeqCst);
    let opened = attacker.await??;
    assert!(opened > 20, "the attacker reconnected only {} times", opened - 20);
    assert!(
        failed.is_empty() && served == 20,
        "{served} of 20 served, refused: {failed:?}"
    );
    // The attacker is still refused.
    let anonymous = fresh_connection_tls13_client(&ca, None, loopback(2).into())?;
    assert!(post(&anonymous, &provider, &request(&[])).await.is_err());
    Ok(())
}

/// The pending-handshake budget is full of an attacker's connections (one address, or one
/// connection from each of as many addresses as the budget has slots), which never finish their
/// handshake (30 s timeout): Gatekeeper's new connections still get in, each taking the place
/// of the heaviest address's oldest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_handshake_budget_still_lets_another_address_in() -> TestResult {
    let connections = ConnectionLimits {
        max_pending_handshakes: 8,
        tls_handshake_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let Started {
        provider,
        ca,
        client_ca,
        files: _files,
    } = started(connections, true).await?;
    let gatekeeper = fresh_connection_tls13_client(&ca, Some(&client_ca.client()?), loopback(1).into())?;

    // One address holding twice the budget and reconnecting: the heaviest, so its own new
    // connections are refused and Gatekeeper's evict its oldest.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = hold_connections(provider.addr(), vec![loopback(2)], 16, true, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (served, failed) = honest_requests(&provider, &gatekeeper, 15).await?;
    stop.store(true, Ordering::SeqCst);
    attacker.await??;
    assert!(
        failed.is_empty() && served == 15,
        "one address: {served} of 15 served, refused: {failed:?}"
    );

    // Eight addresses holding one connection each, the budget full of equals.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sources = (10..18).map(loopback).collect();
    let attacker = hold_connections(provider.addr(), sources, 1, false, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (served, failed) = honest_requests(&provider, &gatekeeper, 15).await?;
    stop.store(true, Ordering::SeqCst);
    attacker.await??;
    assert!(
        failed.is_empty() && served == 15,
        "eight addresses: {served} of 15 served, refused: {failed:?}"
    );

    let text = metrics(&provider).await?;
    assert!(closed_count(&text, "handshake_evicted") >= 1, "{text}");
    Ok(())
}

/// Starts a provider with mTLS and `max_pending_handshakes` pending handshakes that never time
/// out (30 s), and lets Gatekeeper (127.0.0.1) complete one request, which makes its address
/// trusted.
async fn provider_gatekeeper_knows(max_pending_handshakes: usize) -> TestResult<(Started, reqwest::Client)> {
    let connections = ConnectionLimits {
        max_pending_handshakes,
        tls_handshake_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let started = started(connections, true).await?;
    let gatekeeper =
        fresh_connection_tls13_client(&started.ca, Some(&started.client_ca.client()?), loopback(1).into())?;
    let (served, failed) = honest_requests(&started.provider, &gatekeeper, 1).await?;
    assert!(served == 1, "before any attack: {failed:?}");
    Ok((started, gatekeeper))
}

/// The second review's probe: clients without a certificate from three addresses hold 18
/// handshakes of a budget of 16 and keep reconnecting, and Gatekeeper sends bursts of ten
/// concurrent requests, each on a new connection. With fairness between addresses alone,
/// Gatekeeper's share was a quarter of the budget: 21 of 50 served. Its address, trusted since
/// its first mTLS handshake, now takes untrusted clients' places, however many it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatekeeper_bursts_get_in_beside_clients_from_a_few_addresses() -> TestResult {
    let (
        Started {
            provider,
            files: _files,
            ..
        },
        gatekeeper,
    ) = provider_gatekeeper_knows(16).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = hold_connections(
        provider.addr(),
        (2..5).map(loopback).collect(),
        6,
        true,
        Arc::clone(&stop),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys = [key("registry.example/app:v1", "prod")];
    let mut failed = Vec::new();
    let body = request(&keys);
    for _ in 0..5 {
        let burst = (0..10).map(|_| post(&gatekeeper, &provider, &body));
        for answer in futures::future::join_all(burst).await {
            match answer {
                Ok((200, answer)) if item(&answer, &keys[0]).is_some() => {}
                other => failed.push(format!("{other:?}")),
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    attacker.await??;
    assert!(failed.is_empty(), "{} of 50 refused: {failed:?}", failed.len());
    Ok(())
}

/// A client without a certificate sharing Gatekeeper's address (a node's SNAT, a sidecar in
/// front of the provider) fills the pending budget and keeps reconnecting. Every new connection
/// of an address among the heaviest was refused, Gatekeeper's too (0 of 20 served in the
/// review's probe); now each takes the place of that address's oldest handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sharing_gatekeepers_address_cannot_lock_it_out() -> TestResult {
    let (
        Started {
            provider,
            files: _files,
            ..
        },
        gatekeeper,
    ) = provider_gatekeeper_knows(16).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = hold_connections(provider.addr(), vec![loopback(1)], 24, true, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (served, failed) = honest_requests(&provider, &gatekeeper, 20).await?;
    stop.store(true, Ordering::SeqCst);
    attacker.await??;
    assert!(
        failed.is_empty() && served == 20,
        "{served} of 20 served, refused: {failed:?}"
    );
    Ok(())
}

/// Sends the start of a request head to the side port from `source` and never its end.
async fn stalled_metrics_request(source: std::net::Ipv4Addr, addr: SocketAddr) -> TestResult<TcpStream> {
    let mut tcp = connect_from(source, addr).await?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await?;
    tcp.flush().await?;
    Ok(tcp)
}

/// A plain-HTTP client of the side port from `source`, every request bounded; it keeps its
/// connection open between requests (as Prometheus does).
fn side_client(source: std::net::Ipv4Addr) -> TestResult<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .local_address(std::net::IpAddr::from(source))
        .build()?)
}

/// `GET path` on the side port: the status and the body.
async fn side_get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> TestResult<(u16, String)> {
    let response = client.get(format!("http://{addr}/{path}")).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// The review's probe of the side port: with limits of 1 s, 64 metrics connections sending half
/// a request head were all still open 8 s later (the side port had no limit at all). Now they
/// are closed by the header-read timeout (or refused beyond the side port's cap), while
/// Gatekeeper and the probes are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_metrics_connections_are_closed_and_never_starve_admission() -> TestResult {
    let connections = ConnectionLimits {
        max_connections: 8,
        tls_handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let Started {
        provider,
        ca,
        client_ca,
        files: _files,
    } = started(connections, true).await?;
    let mut stalled = Vec::new();
    for _ in 0..64 {
        stalled.push(stalled_metrics_request(loopback(2), provider.metrics_addr()).await?);
    }
    // An idle connection that never sends a byte is closed by the idle timeout.
    let mut idle = connect_from(loopback(3), provider.metrics_addr()).await?;

    let gatekeeper = fresh_connection_tls13_client(&ca, Some(&client_ca.client()?), loopback(1).into())?;
    let (served, failed) = honest_requests(&provider, &gatekeeper, 5).await?;
    assert!(
        failed.is_empty() && served == 5,
        "{served} of 5 served, refused: {failed:?}"
    );
    let (status, _) = side_get(&side_client(loopback(4))?, provider.metrics_addr(), "healthz").await?;
    assert_eq!(status, 200);

    for (i, tcp) in stalled.iter_mut().enumerate() {
        assert!(
            closed_within(tcp, connections.header_read_timeout + MARGIN)
                .await
                .is_some(),
            "stalled metrics connection {i} still open {MARGIN:?} after the header-read timeout"
        );
    }
    assert!(
        closed_within(&mut idle, connections.idle_timeout + MARGIN)
            .await
            .is_some(),
        "an idle metrics connection still open {MARGIN:?} after the idle timeout"
    );
    let text = metrics(&provider).await?;
    assert!(closed_count(&text, "metrics_header_read_timeout") >= 1, "{text}");
    assert!(closed_count(&text, "metrics_idle_timeout") >= 1, "{text}");
    Ok(())
}

/// The side port holds at most `max_metrics_connections`: with long timeouts, 64 stalled
/// connections from one address leave 8 open (the newest, each new one taking its address's
/// oldest place) and the rest are closed at once; a probe from another address still gets in,
/// in place of one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_port_holds_at_most_its_cap_and_shares_it_between_addresses() -> TestResult {
    let connections = ConnectionLimits {
        max_metrics_connections: 8,
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..ConnectionLimits::default()
    };
    let Started {
        provider,
        files: _files,
        ..
    } = started(connections, false).await?;
    let mut stalled = Vec::new();
    for _ in 0..64 {
        stalled.push(stalled_metrics_request(loopback(2), provider.metrics_addr()).await?);
    }
    // Each connection is either refused at once or held: wait for the 56 refusals.
    let closed = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::new();
    for mut tcp in stalled {
        let closed = Arc::clone(&closed);
        watchers.push(tokio::spawn(async move {
            if closed_within(&mut tcp, MARGIN).await.is_some() {
                closed.fetch_add(1, Ordering::SeqCst);
                None
            } else {
                Some(tcp)
            }
        }));
    }
    let mut held = Vec::new();
    for watcher in watchers {
        held.extend(watcher.await?);
    }
    assert_eq!(
        (held.len(), closed.load(Ordering::SeqCst)),
        (8, 56),
        "(held, closed) of 64 stalled connections"
    );

    // Probes and the scrape from other addresses are answered, each in place of one of the
    // stalled connections (the clients keep their connections open).
    let probes = [side_client(loopback(3))?, side_client(loopback(4))?];
    assert_eq!(side_get(&probes[0], provider.metrics_addr(), "healthz").await?.0, 200);
    assert_eq!(side_get(&probes[1], provider.metrics_addr(), "readyz").await?.0, 200);
    let scraper = side_client(loopback(5))?;
    let (status, text) = side_get(&scraper, provider.metrics_addr(), "metrics").await?;
    assert_eq!(status, 200);
    // Each of the 56 took its own address's oldest place (nobody is trusted on the side port,
    // so nothing is refused), and the probes took two more.
    assert!(closed_count(&text, "metrics_evicted") >= 58, "{text}");
    assert_eq!(closed_count(&text, "metrics_refused"), 0, "{text}");
    // The same clients again, on their kept connections.
    assert_eq!(side_get(&probes[0], provider.metrics_addr(), "healthz").await?.0, 200);
    let mut evicted = 0;
    for mut tcp in held {
        if closed_within(&mut tcp, Duration::from_millis(500)).await.is_some() {
            evicted += 1;
        }
    }
    assert_eq!(evicted, 3, "stalled connections evicted for the three other addresses");
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
