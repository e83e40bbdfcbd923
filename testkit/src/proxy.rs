//! A TCP proxy in front of a registry that records every HTTP request passing through (for
//! cache tests), can delay new connections (slow registry) and can refuse them (registry down)
//! without stopping the registry.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// One HTTP request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `HEAD`, `PUT`…
    pub method: String,
    /// Path and query, e.g. `/v2/app/manifests/v1`.
    pub path: String,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    connections: AtomicUsize,
    refuse: AtomicBool,
    delay_ms: AtomicUsize,
}

/// A loopback proxy to `upstream` counting connections and HTTP/1.1 requests.
///
/// In front of a TLS registry it forwards the encrypted stream, so it counts connections but
/// not requests; the registry certificate names `127.0.0.1`, so clients still verify it.
#[derive(Debug)]
pub struct CountingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CountingProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (e.g. a registry's
    /// `addr()`).
    pub fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (shutdown, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the proxy runtime")?;
        let thread = std::thread::Builder::new()
            .name(format!("testkit-proxy-{addr}"))
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    runtime.block_on(async move {
                        match TcpListener::from_std(std_listener) {
                            Ok(listener) => {
                                tokio::select! {
                                    () = accept_loop(listener, upstream, shared) => {}
                                    _ = stopped => {}
                                }
                            }
                            Err(error) => eprintln!("testkit proxy on {addr}: {error}"),
                        }
                    });
                }
            })
            .context("spawning the proxy thread")?;
        crate::oci::alias_host(&addr.to_string(), &upstream.to_string());
        Ok(Self {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT` of the proxy: use it as the registry host in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests were seen.
    pub fn request_count(&self) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many requests had `method` and a path containing `path_part`
    /// (e.g. `count("GET", "/manifests/")`).
    pub fn count(&self, method: &str, path_part: &str) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_part))
            .count()
    }

    /// How many client connections were accepted (refused ones included).
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Forgets the requests and connections recorded so far.
    pub fn reset(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.shared.connections.store(0, Ordering::SeqCst);
    }

    /// While `true`, new connections are closed at once: the registry looks down.
    pub fn set_refusing(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Delays every new connection by `delay` before forwarding it: a slow registry.
    pub fn set_delay(&self, delay: Duration) {
        let millis = usize::try_from(delay.as_millis()).unwrap_or(usize::MAX);
        self.shared.delay_ms.store(millis, Ordering::SeqCst);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        crate::oci::unregister_host(&self.addr.to_string());
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, upstream, Arc::clone(&shared)));
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let mut parser = RequestParser::default();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let seen = parser.feed(&buffer[..n]);
            if !seen.is_empty() {
                shared
                    .requests
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(seen);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let responses = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, responses);
}

/// Finds request heads in a client byte stream, skipping bodies (Content-Length or chunked).
#[derive(Debug, Default)]
struct RequestParser {
    state: ParseState,
    line: Vec<u8>,
}

#[derive(Debug, Default)]
enum ParseState {
    #[default]
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    Trailer,
}

impl RequestParser {
    fn feed(&mut self, mut data: &[u8]) -> Vec<RecordedRequest> {
        let mut seen = Vec::new();
        while !data.is_empty() {
            match self.state {
                ParseState::Body(remaining) | ParseState::ChunkData(remaining) => {
                    let take = remaining.min(data.len() as u64);
                    data = &data[take as usize..];
                    let left = remaining - take;
                    self.state = match (&self.state, left) {
                        (ParseState::Body(_), 0) => ParseState::Head,
                        (ParseState::Body(_), left) => ParseState::Body(left),
                        (_, 0) => ParseState::ChunkSize,
                        (_, left) => ParseState::ChunkData(left),
                    };
                }
                ParseState::Head => {
                    let Some(end) = self.take_until(&mut data, b"\r\n\r\n") else {
                        continue;
                    };
                    let head = std::mem::take(&mut self.line);
                    let (request, body) = parse_head(&head[..end]);
                    seen.extend(request);
                    self.state = body;
                }
                ParseState::ChunkSize => {
                    let Some(end) = self.take_until(&mut data, b"\r\n") else {
                        continue;
                    };
                    let line = std::mem::take(&mut self.line);
                    let size = std::str::from_utf8(&line[..end])
                        .ok()
                        .and_then(|l| l.split(';').next())
                        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                        .unwrap_or(0);
                    // Chunk data is followed by CRLF, skipped with the data.
                    self.state = if size == 0 {
                        ParseState::Trailer
                    } else {
                        ParseState::ChunkData(size + 2)
                    };
                }
                ParseState::Trailer => {
                    let Some(end) = self.take_until(&mut data, b"\r\n") else {
                        continue;
                    };
                    self.line.clear();
                    if end == 0 {
                        self.state = ParseState::Head;
                    }
                }
            }
        }
        seen
    }

    /// Moves bytes into `self.line` until it ends with `terminator`; returns the length
    /// before the terminator once it does.
    fn take_until(&mut self, data: &mut &[u8], terminator: &[u8]) -> Option<usize> {
        while let Some((&byte, rest)) = data.split_first() {
            *data = rest;
            self.line.push(byte);
            if self.line.ends_with(terminator) {
                return Some(self.line.len() - terminator.len());
            }
        }
        None
    }
}

fn parse_head(head: &[u8]) -> (Option<RecordedRequest>, ParseState) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request = lines.next().and_then(|line| {
        let mut parts = line.split_whitespace();
        Some(RecordedRequest {
            method: parts.next()?.to_owned(),
            path: parts.next()?.to_owned(),
        })
    });
    let mut state = ParseState::Head;
    for header in lines {
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            state = ParseState::ChunkSize;
        } else if name.eq_ignore_ascii_case("content-length") && !matches!(state, ParseState::ChunkSize) {
            state = match value.parse::<u64>() {
                Ok(0) | Err(_) => ParseState::Head,
                Ok(length) => ParseState::Body(length),
            };
        }
    }
    (request, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(requests: &[RecordedRequest]) -> Vec<String> {
        requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect()
    }

    #[test]
    fn counts_pipelined_requests_and_skips_bodies() {
        let mut parser = RequestParser::default();
        let stream = b"PUT /v2/a/blobs/uploads/x HTTP/1.1\r\nContent-Length: 22\r\n\r\nGET /fake HTTP/1.1\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(methods(&parser.feed(stream)), ["PUT /v2/a/blobs/uploads/x", "GET /v2/"]);
    }

    #[test]
    fn handles_heads_split_across_reads_and_chunked_bodies() {
        let mut parser = RequestParser::default();
        let stream: &[u8] = b"PATCH /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\nHEAD /v2/a/manifests/t HTTP/1.1\r\n\r\n";
        let mut seen = Vec::new();
        for piece in stream.chunks(3) {
            seen.extend(parser.feed(piece));
        }
        assert_eq!(methods(&seen), ["PATCH /up", "HEAD /v2/a/manifests/t"]);
    }
}
