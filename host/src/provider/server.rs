//! The HTTPS server Gatekeeper calls (`POST /validate`) and the plain-HTTP side port for
//! probes and Prometheus (`/healthz`, `/readyz`, `/metrics`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::batch::{BatchEvaluator, Limits};
use super::budget::SourceBudget;
use super::connection::{self, ConnectionLimits};
use super::decider::Decider;
use super::fd_limit;
use super::metrics::Metrics;
use super::mutation::{MutationResponse, check_namespace};
use super::protocol::{ProviderRequest, ProviderResponse};
use super::tls::{self, ReloadingCertResolver, ReloadingClientVerifier, TlsError};

/// Where and how the provider listens.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// HTTPS address for `POST /validate`.
    pub addr: SocketAddr,
    /// Plain-HTTP address for `/healthz`, `/readyz` and `/metrics`.
    pub metrics_addr: SocketAddr,
    /// PEM certificate chain, re-read when it changes.
    pub cert_path: PathBuf,
    /// PEM private key, re-read when it changes.
    pub key_path: PathBuf,
    /// PEM CA bundle that client certificates must chain to; no client auth when `None`.
    pub client_ca_path: Option<PathBuf>,
    /// Request limits.
    pub limits: Limits,
    /// Connection limits: count and timeouts against slow or stalled clients.
    pub connections: ConnectionLimits,
}

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running provider; dropping it (or calling [`RunningProvider::shutdown`]) stops it.
#[derive(Debug)]
pub struct RunningProvider {
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    stop: watch::Sender<bool>,
    ready: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl RunningProvider {
    /// The bound HTTPS address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The longest the connections open at shutdown are waited for, once the listeners are
    /// closed ([`RunningProvider::shutdown_after`]): the request deadline plus 2 s.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// [`RunningProvider::shutdown_after`] without a delay: stops accepting at once, then drains.
    pub async fn shutdown(self) {
        self.shutdown_after(std::future::ready(())).await;
    }

    /// The shutdown `cip provider` runs on SIGTERM (with `delay` a sleep of `--shutdown-delay`):
    ///
    /// 1. at once (when this is called, before the future is polled), `/readyz` answers 503, so
    ///    that the pod's endpoints are taken out of the Service;
    /// 2. until `delay` resolves, both ports keep accepting and serving as before: kube-proxy
    ///    and the EndpointSlice controllers remove the pod asynchronously, so Gatekeeper may still
    ///    open connections to it for a few seconds;
    /// 3. then the listeners are closed (new connections refused), every connection is shut down
    ///    gracefully (requests in flight are answered, idle keep-alive connections closed,
    ///    connections still in their TLS handshake dropped), and the future resolves once all
    ///    have ended, or after [`drain_timeout`] (the request deadline plus [`DRAIN_MARGIN`]),
    ///    when those left are closed.
    pub fn shutdown_after(mut self, delay: impl Future<Output = ()>) -> impl Future<Output = ()> {
        self.ready.store(false, Ordering::SeqCst);
        async move {
            delay.await;
            tracing::info!(
                drain_timeout_ms = self.drain_timeout.as_millis(),
                "closing the listeners and draining connections"
            );
            let _ = self.stop.send(true);
            for task in self.tasks.drain(..) {
                let _ = task.await;
            }
            tracing::info!("every connection drained");
        }
    }
}

/// Time allowed, beyond the request deadline, for the answers in flight at shutdown to be written.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// How long the connections open at shutdown may take to end, from the moment the listeners
/// close: a request that has just arrived is answered within `limits.deadline`, and written
/// within [`DRAIN_MARGIN`].
fn drain_timeout(limits: &Limits) -> Duration {
    limits.deadline.saturating_add(DRAIN_MARGIN)
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct AppState {
    evaluator: BatchEvaluator,
    metrics: Arc<Metrics>,
    body_read_timeout: Duration,
    /// Request-body bytes in flight, in KiB permits ([`Limits::max_inflight_body_bytes`]).
    inflight_kib: Arc<Semaphore>,
}

/// Takes the request-body bytes `headers` announce (`Content-Length`, at most the body limit;
/// the body limit without one) from the in-flight budget, until the permit is dropped (when the
/// request is answered); `None` when they do not fit now.
fn reserve_body(state: &AppState, headers: &header::HeaderMap) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let max = state.evaluator.limits().max_body_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok())
        .map_or(max, |length| length.min(max));
    let kib = u32::try_from(announced.div_ceil(1024)).unwrap_or(u32::MAX);
    Arc::clone(&state.inflight_kib).try_acquire_many_owned(kib).ok()
}

/// The answer to a request whose body does not fit in the in-flight budget now: 503, to be
/// retried in a second; the connection is closed.
fn busy(refuse: impl FnOnce(StatusCode, String) -> Response, state: &AppState) -> Response {
    state.metrics.record_closed_connection("request_bytes_busy");
    let limit = state.evaluator.limits().max_inflight_body_bytes;
    let mut response = refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("busy: request bodies in flight would exceed {limit} bytes; retry"),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// Once the shutdown has begun (`/readyz` answers 503: [`RunningProvider::shutdown_after`]),
/// every answer asks its client to close the connection (`Connection: close`; HTTP/1.1, which
/// Gatekeeper speaks: hyper leaves the header out of HTTP/2). Taking the pod out of the
/// Service's endpoints does not cut established connections, and Gatekeeper would otherwise
/// keep writing requests on its idle keep-alive connections to this pod until the delay ends
/// and they are closed, a request written as one closes being failed, not retried (a POST).
/// So during the delay each of them carries one last answer, and the next request goes to a
/// new connection, on a pod that stays. (A connection idle through the whole delay is still
/// closed at its end.)
async fn close_when_shutting_down(State(ready): State<Arc<AtomicBool>>, mut response: Response) -> Response {
    if !ready.load(Ordering::SeqCst) {
        response
            .headers_mut()
            .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    response
}

struct SideState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Binds both ports and serves until shut down. Must be called inside a tokio runtime.
pub async fn start(config: ProviderConfig, decider: Arc<dyn Decider>) -> Result<RunningProvider, ServeError> {
    let resolver = Arc::new(ReloadingCertResolver::new(&config.cert_path, &config.key_path)?);
    let client_verifier = match &config.client_ca_path {
        Some(path) => Some(Arc::new(ReloadingClientVerifier::new(path)?)),
        None => None,
    };
    let tls_config = tls::server_config(resolver, client_verifier.clone())?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config));

    let metrics = Arc::new(Metrics::new(Arc::clone(&decider)));
    let inflight_kib = config
        .limits
        .max_inflight_body_bytes
        .max(config.limits.max_body_bytes)
        .div_ceil(1024)
        .clamp(1, Semaphore::MAX_PERMITS);
    let state = Arc::new(AppState {
        inflight_kib: Arc::new(Semaphore::new(inflight_kib)),
        evaluator: BatchEvaluator::new(decider, Arc::clone(&metrics), config.limits),
        metrics: Arc::clone(&metrics),
        body_read_timeout: config.connections.body_read_timeout,
    });
    let ready = Arc::new(AtomicBool::new(false));
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/mutate/{namespace}", post(mutate))
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        .layer(axum::middleware::map_response_with_state(
            Arc::clone(&ready),
            close_when_shutting_down,
        ))
        .with_state(state);

    let connections = config.connections;
    let budgets = [
        connections.max_connections,
        connections.max_pending_handshakes,
        connections.max_metrics_connections,
        config.limits.max_concurrency,
    ];
    fd_limit::ensure(budgets.iter().map(|&n| n as u64).fold(0, u64::saturating_add));
    let listener = bind(config.addr).await?;
    let metrics_listener = bind(config.metrics_addr).await?;
    let addr = local_addr(&listener, config.addr)?;
    let metrics_addr = local_addr(&metrics_listener, config.metrics_addr)?;

    let side = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(Arc::new(SideState {
            metrics: Arc::clone(&metrics),
            ready: Arc::clone(&ready),
        }));

    let (stop, stopped) = watch::channel(false);
    let drain_timeout = drain_timeout(&config.limits);
    let side_task = tokio::spawn(serve_side(
        metrics_listener,
        drain_timeout,
        connection::Served {
            app: side,
            limits: config.connections,
            metrics: Arc::clone(&metrics),
            stopped: stopped.clone(),
        },
    ));
    let tls_task = tokio::spawn(serve_tls(
        listener,
        drain_timeout,
        connection::Listener {
            acceptor,
            app,
            limits: config.connections,
            metrics,
            stopped,
            sessions: Arc::new(Semaphore::new(config.connections.max_connections.max(1))),
            client_verifier,
        },
    ));
    ready.store(true, Ordering::SeqCst);
    tracing::info!(%addr, %metrics_addr, "gatekeeper provider listening");
    Ok(RunningProvider {
        addr,
        metrics_addr,
        stop,
        ready,
        tasks: vec![tls_task, side_task],
        drain_timeout,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Accepts HTTPS connections into the pending-handshake budget and serves each on a task of its
/// own (see [`connection`]) until the provider stops; then closes the listener and drains the
/// connections ([`drain`]).
async fn serve_tls(listener: TcpListener, drain_timeout: Duration, shared: connection::Listener) {
    let limits = shared.limits;
    let pending = SourceBudget::new(limits.max_pending_handshakes);
    let mut stopped = shared.stopped.clone();
    let mut connections = JoinSet::new();
    while let Some((tcp, peer)) = accept(&listener, &mut stopped).await {
        reap(&mut connections);
        // Full, and this address is among those holding the most: refused (closed at once)
        // rather than queued.
        let Ok((ticket, _)) = pending.admit(peer.ip()) else {
            tracing::warn!(%peer, max = limits.max_pending_handshakes, "connection refused: too many pending TLS handshakes");
            shared.metrics.record_closed_connection("handshake_refused");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        connections.spawn(connection::serve_tls(
            connection::Accepted { tcp, peer, ticket },
            shared.clone(),
        ));
    }
    drop(listener);
    drain(connections, drain_timeout, "https").await;
}

/// Accepts side-port connections into their budget and serves each on a task of its own, until
/// the provider stops; then closes the listener and drains the connections ([`drain`]).
async fn serve_side(listener: TcpListener, drain_timeout: Duration, served: connection::Served) {
    let budget = SourceBudget::new(served.limits.max_metrics_connections);
    let mut stopped = served.stopped.clone();
    let mut connections = JoinSet::new();
    while let Some((tcp, peer)) = accept(&listener, &mut stopped).await {
        reap(&mut connections);
        let Ok((ticket, _)) = budget.admit(peer.ip()) else {
            tracing::warn!(%peer, max = served.limits.max_metrics_connections, "metrics connection refused: too many open connections");
            served.metrics.record_closed_connection("metrics_refused");
            continue;
        };
        connections.spawn(connection::serve_plain(tcp, peer, ticket, served.clone()));
    }
    drop(listener);
    drain(connections, drain_timeout, "metrics").await;
}

/// Forgets the connections that have ended (the set keeps each until it is joined).
fn reap(connections: &mut JoinSet<()>) {
    while connections.try_join_next().is_some() {}
}

/// Waits for the connections open when the provider stopped, each shutting down gracefully
/// (see `connection::serve_http`), at most `within`; those still open then are aborted (closed).
async fn drain(mut connections: JoinSet<()>, within: Duration, port: &'static str) {
    let open = connections.len();
    let all_ended = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(within, all_ended).await.is_err() {
        tracing::warn!(
            port,
            open,
            left = connections.len(),
            drain_timeout_ms = within.as_millis(),
            "connections still open at the end of the drain: closed"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// The next accepted connection, or `None` once the provider stops.
async fn accept(listener: &TcpListener, stopped: &mut watch::Receiver<bool>) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = wait_stopped(stopped) => return None,
        }
    }
}

/// Resolves once shutdown was requested (or the [`RunningProvider`] was dropped).
pub(super) async fn wait_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Why a request body could not be read.
struct BodyFailure {
    status: StatusCode,
    reason: String,
    /// The client stalled: the connection is closed after the answer.
    close: bool,
}

/// Reads a request body within the body-read timeout and the body-size limit.
async fn read_body(state: &AppState, request: Request) -> Result<Bytes, BodyFailure> {
    match tokio::time::timeout(state.body_read_timeout, Bytes::from_request(request, &())).await {
        Err(_) => {
            state.metrics.record_closed_connection("body_read_timeout");
            Err(BodyFailure {
                status: StatusCode::REQUEST_TIMEOUT,
                reason: format!(
                    "request body not received within {} ms",
                    state.body_read_timeout.as_millis()
                ),
                close: true,
            })
        }
        Ok(Err(rejection)) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body exceeds {} bytes", state.evaluator.limits().max_body_bytes)
            } else {
                rejection.body_text()
            };
            Err(BodyFailure {
                status,
                reason,
                close: false,
            })
        }
        Ok(Ok(body)) => Ok(body),
    }
}

impl BodyFailure {
    /// The answer, built by `refuse` from the status and reason, closing stalled connections.
    fn into_response(self, refuse: impl FnOnce(StatusCode, String) -> Response) -> Response {
        let mut response = refuse(self.status, self.reason);
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        response
    }
}

async fn validate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let Some(_reserved) = reserve_body(&state, request.headers()) else {
        return busy(refuse, &state);
    };
    let response = match read_body(&state, request).await {
        Err(failure) => failure.into_response(refuse),
        // The body is dropped once parsed: only the keys are held while they are evaluated.
        Ok(body) => match parse_request(body, state.evaluator.limits().max_keys) {
            Err(error) => refuse(StatusCode::BAD_REQUEST, error.to_string()),
            Ok(request) => {
                let answers = state.evaluator.evaluate(request.request.keys, started).await;
                axum::Json(ProviderResponse::answering(answers)).into_response()
            }
        },
    };
    state.metrics.record_request(started.elapsed());
    response
}

/// Digest pinning for Gatekeeper's external-data mutation (see [`super::mutation`]).
async fn mutate(State(state): State<Arc<AppState>>, Path(namespace): Path<String>, request: Request) -> Response {
    let started = Instant::now();
    let refuse_mutation = |status: StatusCode, reason: String| {
        tracing::warn!(%status, %reason, "mutation request refused");
        (status, axum::Json(MutationResponse::system_error(reason))).into_response()
    };
    let Some(_reserved) = reserve_body(&state, request.headers()) else {
        return busy(refuse_mutation, &state);
    };
    let response = match check_namespace(&namespace) {
        Err(error) => refuse_mutation(StatusCode::BAD_REQUEST, error.to_string()),
        Ok(()) => match read_body(&state, request).await {
            Err(failure) => failure.into_response(refuse_mutation),
            Ok(body) => match parse_request(body, state.evaluator.limits().max_keys) {
                Err(error) => refuse_mutation(StatusCode::BAD_REQUEST, error.to_string()),
                Ok(request) => {
                    let items =
                        super::mutation::mutate(&state.evaluator, &namespace, request.request.keys, started).await;
                    axum::Json(MutationResponse::items(items)).into_response()
                }
            },
        },
    };
    state.metrics.record_request(started.elapsed());
    response
}

/// [`ProviderRequest::parse`], consuming (freeing) the body.
fn parse_request(body: Bytes, max_keys: usize) -> Result<ProviderRequest, super::protocol::RequestError> {
    ProviderRequest::parse(&body, max_keys)
}

fn refuse(status: StatusCode, reason: String) -> Response {
    tracing::warn!(%status, %reason, "request refused");
    (status, axum::Json(ProviderResponse::system_error(reason))).into_response()
}

async fn readyz(State(side): State<Arc<SideState>>) -> Response {
    if side.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn render_metrics(State(side): State<Arc<SideState>>) -> Response {
    match side.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
