//! One client connection of the provider, bounded in time against slow or hostile clients.
//!
//! - **Connection cap:** at most [`ConnectionLimits::max_connections`] connections are served at
//!   once; a connection accepted beyond that is *refused* (closed at once, counted in the
//!   `…_connections_closed{reason="refused"}` metric), so stalled clients can never exhaust
//!   file descriptors or memory.
//! - **TLS handshake timeout:** the handshake must finish within
//!   [`ConnectionLimits::tls_handshake_timeout`] of the accept (a TCP client that never speaks
//!   is closed then, too).
//! - **Header read timeout:** once the first byte of a request arrived, the whole request
//!   head must arrive within [`ConnectionLimits::header_read_timeout`].
//! - **Body read timeout:** the request body must arrive within
//!   [`ConnectionLimits::body_read_timeout`] of the head (answered `408` and closed otherwise;
//!   enforced by the `/validate` handler).
//! - **Idle timeout:** a connection with no request in flight and no byte of a new one is
//!   closed after [`ConnectionLimits::idle_timeout`] (HTTP/1.1 keep-alive and HTTP/2 alike).

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
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_rustls::TlsAcceptor;

use super::metrics::Metrics;

/// Time and count limits on client connections; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Longest TLS handshake, from the TCP accept.
    pub tls_handshake_timeout: Duration,
    /// Longest time to receive a request head, from its first byte.
    pub header_read_timeout: Duration,
    /// Longest time to receive a request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Longest time a connection may wait for a new request.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1_024,
            tls_handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What every connection of one listener shares.
#[derive(Clone)]
pub(super) struct Listener {
    pub(super) acceptor: TlsAcceptor,
    pub(super) app: Router,
    pub(super) limits: ConnectionLimits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stopped: watch::Receiver<bool>,
}

/// An accepted connection and its slot under [`ConnectionLimits::max_connections`] (released
/// when the connection ends).
pub(super) struct Accepted {
    pub(super) tcp: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) slot: OwnedSemaphorePermit,
}

/// Serves one accepted connection until it ends, a limit closes it or the provider stops.
pub(super) async fn serve(accepted: Accepted, listener: Listener) {
    let Accepted { tcp, peer, slot: _slot } = accepted;
    let Listener {
        acceptor,
        app,
        limits,
        metrics,
        mut stopped,
    } = listener;
    let tls = match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
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
    };
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: tls,
        activity: Arc::clone(&activity),
    });
    let service = TowerToHyperService::new(app);
    let tracked = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = activity.request_started();
            let response = service.call(request);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        })
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
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
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                return;
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(check_at)) => {
                if let Some(reason) = activity.expired(&limits, Instant::now()) {
                    tracing::debug!(%peer, reason, "closing a stalled connection");
                    metrics.record_closed_connection(reason);
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
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
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> Option<&'static str> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        match state.head_started {
            Some(started) if now.saturating_duration_since(started) >= limits.header_read_timeout => {
                Some("header_read_timeout")
            }
            Some(_) => None,
            None if now.saturating_duration_since(state.idle_since) >= limits.idle_timeout => Some("idle_timeout"),
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

    #[test]
    fn idle_connections_expire_after_the_idle_timeout() {
        let activity = Activity::new();
        let start = activity.lock().idle_since;
        assert_eq!(activity.expired(&limits(), start + Duration::from_secs(9)), None);
        assert_eq!(
            activity.expired(&limits(), start + Duration::from_secs(10)),
            Some("idle_timeout")
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
            Some("header_read_timeout")
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
