//! One client connection of the provider, bounded in count and time against slow or hostile
//! clients, on the HTTPS port (Gatekeeper's) and on the plain-HTTP side port (probes, metrics).
//!
//! HTTPS port:
//! - **Pending handshakes:** a connection is accepted into a budget of at most
//!   [`ConnectionLimits::max_pending_handshakes`] connections whose TLS handshake is not done,
//!   shared between client addresses ([`super::budget`]): when it is full, a new connection
//!   evicts another's handshake (`…_connections_closed{reason="handshake_evicted"}`): an
//!   address that completed an mTLS handshake recently (Gatekeeper) evicts those of addresses
//!   that did not, first; others evict the heaviest untrusted address's oldest, or their own
//!   oldest; a connection is refused (`reason="handshake_refused"`) only when trusted addresses
//!   hold every slot and its own holds none.
//! - **TLS handshake timeout:** the handshake (which, with mTLS, checks the client certificate)
//!   must finish within [`ConnectionLimits::tls_handshake_timeout`] of the accept (a TCP client
//!   that never speaks is closed then, too).
//! - **Session cap:** at most [`ConnectionLimits::max_connections`] *established* sessions (the
//!   handshake done, so with mTLS only clients holding a certificate of the client CA) are
//!   served at once; a session established beyond that is closed at once
//!   (`reason="refused"`). Clients that never finish a handshake never count against it.
//!
//! Both ports, once a connection is served:
//! - **Header read timeout:** once the first byte of a request arrived, the whole request
//!   head must arrive within [`ConnectionLimits::header_read_timeout`].
//! - **Body read timeout:** the request body must arrive within
//!   [`ConnectionLimits::body_read_timeout`] of the head (answered `408` and closed otherwise;
//!   enforced by the `/validate` and `/mutate` handlers; the side port reads no body).
//! - **Idle timeout:** a connection with no request in flight and no byte of a new one is
//!   closed after [`ConnectionLimits::idle_timeout`] (HTTP/1.1 keep-alive and HTTP/2 alike); on
//!   the side port the clock starts at the accept.
//!
//! Side port: at most [`ConnectionLimits::max_metrics_connections`] connections, in a budget of
//! their own shared fairly between client addresses like the pending handshakes (nobody is
//! trusted there, so a full side port always makes room: `reason="metrics_evicted"`), HTTP/1.1
//! only with small buffers, and the
//! timeouts above (`reason="metrics_header_read_timeout"`, `"metrics_idle_timeout"`): however
//! its clients behave, the side port holds at most that many descriptors, never those the
//! HTTPS port needs.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use rustls::pki_types::CertificateDer;

use super::budget::Ticket;
use super::metrics::Metrics;
use super::tls::ReloadingClientVerifier;

/// Count and time limits on client connections; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Established TLS sessions (with mTLS: authenticated clients) served at once; a session
    /// established beyond it is closed at once.
    pub max_connections: usize,
    /// Connections of the HTTPS port whose TLS handshake is not done, at once; shared between
    /// client addresses, Gatekeeper's (mTLS-authenticated) first ([`super::budget`]).
    pub max_pending_handshakes: usize,
    /// Connections of the plain-HTTP side port (probes, metrics) at once; shared fairly between
    /// client addresses.
    pub max_metrics_connections: usize,
    /// Longest TLS handshake, from the TCP accept.
    pub tls_handshake_timeout: Duration,
    /// Longest time to receive a request head, from its first byte.
    pub header_read_timeout: Duration,
    /// Longest time to receive a request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Longest time a connection may wait for a new request. Keep it above Gatekeeper's client
    /// `IdleConnTimeout` (90 s): a client reuses an idle connection until its own timeout, and
    /// a POST it writes on a connection the provider is closing fails without a retry (Go's
    /// HTTP client retries only idempotent requests), which fails the review closed.
    pub idle_timeout: Duration,
}

/// Most HTTP/2 streams (requests) one connection may have open at once. Gatekeeper speaks
/// HTTP/1.1 (one request at a time per connection); the bound keeps one HTTP/2 client from
/// holding hyper's default of 200 request bodies in memory per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 8;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1_024,
            max_pending_handshakes: 128,
            max_metrics_connections: 32,
            tls_handshake_timeout: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(5),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The default [`ConnectionLimits::idle_timeout`]: above the 90 s `IdleConnTimeout` of
/// Gatekeeper's HTTP client (open-policy-agent/frameworks, constraint/pkg/externaldata/request.go),
/// so that Gatekeeper, not the provider, closes an idle connection first.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What every connection of the HTTPS listener shares.
#[derive(Clone)]
pub(super) struct Listener {
    pub(super) acceptor: TlsAcceptor,
    pub(super) app: Router,
    pub(super) limits: ConnectionLimits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stopped: watch::Receiver<bool>,
    /// Established sessions, [`ConnectionLimits::max_connections`] permits.
    pub(super) sessions: Arc<Semaphore>,
    /// With mTLS: the client CA, re-read when it changes.
    pub(super) client_verifier: Option<Arc<ReloadingClientVerifier>>,
}

/// An accepted connection and its place among the pending handshakes (given back when the
/// handshake ends).
pub(super) struct Accepted {
    pub(super) tcp: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) ticket: Ticket,
}

/// Which port a connection came to: names the reasons it is closed for in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Port {
    Https,
    Side,
}

impl Port {
    fn label(self, expired: Expired) -> &'static str {
        match (self, expired) {
            (Self::Https, Expired::HeaderRead) => "header_read_timeout",
            (Self::Https, Expired::Idle) => "idle_timeout",
            (Self::Side, Expired::HeaderRead) => "metrics_header_read_timeout",
            (Self::Side, Expired::Idle) => "metrics_idle_timeout",
        }
    }
}

/// Serves one accepted HTTPS connection: the TLS handshake, then (with a session slot) its
/// requests, until it ends, a limit closes it or the provider stops.
pub(super) async fn serve_tls(accepted: Accepted, listener: Listener) {
    let Accepted { tcp, peer, mut ticket } = accepted;
    let Listener {
        acceptor,
        app,
        limits,
        metrics,
        mut stopped,
        sessions,
        client_verifier,
    } = listener;
    // Taken before the handshake: a change of the client CA file during it is checked again at
    // the first request.
    let generation = client_verifier.as_ref().map(|verifier| verifier.generation());
    let handshake = tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                metrics.record_closed_connection("tls_handshake_timeout");
                return;
            }
        },
        () = ticket.evicted() => {
            tracing::debug!(%peer, "pending TLS handshake evicted for another client address");
            metrics.record_closed_connection("handshake_evicted");
            return;
        }
        () = super::server::wait_stopped(&mut stopped) => return,
    };
    // The handshake is done (with mTLS, the client certificate checked, so the address is
    // Gatekeeper's and its next handshakes take untrusted clients' places): the connection
    // leaves the pending budget and needs an established session's slot.
    if client_verifier.is_some() {
        ticket.trust_source();
    }
    drop(ticket);
    let Ok(_session) = sessions.try_acquire_owned() else {
        tracing::warn!(%peer, max = limits.max_connections, "connection refused: too many established sessions");
        metrics.record_closed_connection("refused");
        return;
    };
    let client = match (client_verifier, generation) {
        (Some(verifier), Some(generation)) => Some(Arc::new(ClientSession {
            chain: tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|cert| cert.clone().into_owned()).collect())
                .unwrap_or_default(),
            verifier,
            trusted_at: Mutex::new(generation),
        })),
        _ => None,
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let served = Served {
        app,
        limits,
        metrics,
        stopped,
    };
    serve_http(tls, peer, builder, served, Port::Https, None, client).await;
}

/// An mTLS session's client: its certificate chain is verified again against the client CA
/// file at the first request after the file changed, so that a CA rotated out is no longer
/// trusted on sessions established before the rotation either.
struct ClientSession {
    chain: Vec<CertificateDer<'static>>,
    verifier: Arc<ReloadingClientVerifier>,
    /// The generation of the client CA file the chain was last found trusted by.
    trusted_at: Mutex<u64>,
}

impl ClientSession {
    fn still_trusted(&self) -> bool {
        let generation = self.verifier.generation();
        let mut trusted_at = self.trusted_at.lock().unwrap_or_else(PoisonError::into_inner);
        if *trusted_at == generation {
            return true;
        }
        let trusted = self.verifier.still_trusts(&self.chain);
        if trusted {
            *trusted_at = generation;
        }
        trusted
    }
}

/// The answer to a request on a session whose client certificate the client CA file no longer
/// trusts; HTTP/1.1 connections are closed after it.
fn untrusted_client() -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(
        "the client certificate of this connection is not trusted by the client CA any more: reconnect\n",
    ));
    *response.status_mut() = hyper::StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

/// What every served connection of a port shares, once it is established.
#[derive(Clone)]
pub(super) struct Served {
    pub(super) app: Router,
    pub(super) limits: ConnectionLimits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stopped: watch::Receiver<bool>,
}

/// Serves one connection of the plain-HTTP side port, holding `ticket` (its place in the side
/// port's budget) until it ends.
pub(super) async fn serve_plain(tcp: TcpStream, peer: SocketAddr, ticket: Ticket, served: Served) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    // Probes and scrapes send small heads: hyper's smallest read buffer bounds each connection's.
    builder.http1().max_buf_size(SIDE_MAX_BUF_SIZE);
    serve_http(tcp, peer, builder, served, Port::Side, Some(ticket), None).await;
}

/// hyper's smallest allowed HTTP/1 read buffer (8 KiB), for the side port.
const SIDE_MAX_BUF_SIZE: usize = 8 * 1024;

/// Serves HTTP on an established stream until it ends, a limit closes it, `ticket` is evicted
/// or the provider stops.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    served: Served,
    port: Port,
    mut ticket: Option<Ticket>,
    client: Option<Arc<ClientSession>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Served {
        app,
        limits,
        metrics,
        mut stopped,
    } = served;
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: Arc::clone(&activity),
    });
    let service = TowerToHyperService::new(app);
    let tracked = {
        let activity = Arc::clone(&activity);
        let metrics = Arc::clone(&metrics);
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = activity.request_started();
            let trusted = client.as_ref().is_none_or(|client| client.still_trusted());
            if !trusted {
                tracing::warn!(%peer, "request refused: the client CA no longer trusts this session's certificate");
                metrics.record_closed_connection("client_no_longer_trusted");
            }
            let response = trusted.then(|| service.call(request));
            async move {
                let response = match response {
                    Some(response) => response.await,
                    None => Ok(untrusted_client()),
                };
                drop(in_flight);
                response
            }
        })
    };
    let connection = builder.serve_connection(io, tracked);
    tokio::pin!(connection);
    loop {
        let check_at = activity.next_check(&limits);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "connection closed with an error");
                }
                return;
            }
            () = super::server::wait_stopped(&mut stopped) => {
                // Requests in flight are answered, then the connection is closed (at once when
                // idle; HTTP/2 clients get a GOAWAY). The listener bounds how long this may take.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                return;
            }
            () = evicted(ticket.as_mut()) => {
                tracing::debug!(%peer, "side-port connection evicted for another client address");
                metrics.record_closed_connection("metrics_evicted");
                return;
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(check_at)) => {
                if let Some(expired) = activity.expired(&limits, Instant::now()) {
                    let reason = port.label(expired);
                    tracing::debug!(%peer, reason, "closing a stalled connection");
                    metrics.record_closed_connection(reason);
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// Resolves when `ticket` is evicted; never without a ticket.
async fn evicted(ticket: Option<&mut Ticket>) {
    match ticket {
        Some(ticket) => ticket.evicted().await,
        None => std::future::pending().await,
    }
}

/// Why a connection is closed by a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    HeaderRead,
    Idle,
}

/// What a connection is doing, as far as the timeouts are concerned.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

struct ActivityState {
    /// Requests being answered.
    in_flight: usize,
    /// When the connection last became idle (handshake done, or last answer sent).
    idle_since: Instant,
    /// When the first byte of the next request arrived, if it did.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: between requests, they start the next request's head.
    fn on_read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request was dispatched; the returned guard marks its end when dropped.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_started = None;
        InFlight(Arc::clone(self))
    }

    fn request_ended(&self) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_started = None;
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Why the connection must be closed at `now`, if it must.
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> Option<Expired> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        match state.head_started {
            Some(started) if now.saturating_duration_since(started) >= limits.header_read_timeout => {
                Some(Expired::HeaderRead)
            }
            Some(_) => None,
            None if now.saturating_duration_since(state.idle_since) >= limits.idle_timeout => Some(Expired::Idle),
            None => None,
        }
    }

    /// When to look again.
    fn next_check(&self, limits: &ConnectionLimits) -> Instant {
        let state = self.lock();
        let (from, limit) = match state.head_started {
            _ if state.in_flight > 0 => (Instant::now(), limits.idle_timeout.min(limits.header_read_timeout)),
            Some(started) => (started, limits.header_read_timeout),
            None => (state.idle_since, limits.idle_timeout),
        };
        let far = Duration::from_secs(24 * 3600);
        from.checked_add(limit.min(far)).unwrap_or_else(|| Instant::now() + far)
    }
}

/// Marks a request in flight until dropped (also when the client goes away mid-request).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// An I/O stream that reports reads to its connection's [`Activity`].
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            ..ConnectionLimits::default()
        }
    }

    /// Gatekeeper's HTTP client closes its idle connections after 90 s
    /// (open-policy-agent/frameworks, constraint/pkg/externaldata/request.go): the provider must
    /// not close one first, or Gatekeeper may write a POST on it as it closes.
    #[test]
    fn idle_connections_outlive_gatekeepers_idle_timeout() {
        assert!(ConnectionLimits::default().idle_timeout > Duration::from_secs(90));
    }

    #[test]
    fn idle_connections_expire_after_the_idle_timeout() {
        let activity = Activity::new();
        let start = activity.lock().idle_since;
        assert_eq!(activity.expired(&limits(), start + Duration::from_secs(9)), None);
        assert_eq!(
            activity.expired(&limits(), start + Duration::from_secs(10)),
            Some(Expired::Idle)
        );
    }

    #[test]
    fn a_started_head_must_complete_within_the_header_timeout() {
        let activity = Activity::new();
        activity.on_read();
        let started = activity.lock().head_started.expect("head started");
        assert_eq!(activity.next_check(&limits()), started + Duration::from_secs(2));
        assert_eq!(
            activity.expired(&limits(), started + Duration::from_secs(2)),
            Some(Expired::HeaderRead)
        );
    }

    #[test]
    fn requests_in_flight_are_never_expired_and_reset_the_idle_clock() {
        let activity = Arc::new(Activity::new());
        activity.on_read();
        let guard = activity.request_started();
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(activity.expired(&limits(), later), None);
        drop(guard);
        let state = activity.lock();
        assert_eq!((state.in_flight, state.head_started), (0, None));
    }
}
