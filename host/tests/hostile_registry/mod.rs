//! A hostile loopback "registry": a server answering each request with what a test's route
//! says, among which an endless body without `Content-Length` (delimited by closing the
//! connection, which it reaches only after `ENDLESS_BUDGET` bytes) or a huge announced one; it
//! counts the bytes of those bodies it manages to write, and records each request's method, path
//! and credentials.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most bytes one endless answer sends before giving up.
pub const ENDLESS_BUDGET: usize = 256 * 1024 * 1024;

/// How a hostile server answers one request.
pub enum Reply {
    /// A whole body with its `Content-Length`.
    Fixed {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// An endless body of `status`, without `Content-Length`: `start`, then `fill` without end
    /// (until `ENDLESS_BUDGET` bytes of it, only those counted as written).
    Endless {
        status: u16,
        content_type: &'static str,
        start: &'static [u8],
        fill: u8,
    },
    /// A whole 200 body of `content_type` without `Content-Length` (delimited by closing the
    /// connection): its size is declared nowhere in the answer.
    Unannounced { content_type: &'static str, body: Vec<u8> },
    /// A temporary redirect.
    Redirect { location: String },
    /// A 200 answer announcing `length` bytes (`Content-Length`), then sending `fill` bytes
    /// (until `ENDLESS_BUDGET` of them, counted as written).
    Announced { length: u64, fill: u8 },
    /// `reply` with extra header lines (`name`, `value`).
    Headers {
        headers: Vec<(&'static str, String)>,
        reply: Box<Reply>,
    },
}

impl Reply {
    /// An endless OCI error body of `status`: the start of an error envelope, never closed.
    pub fn endless_error(status: u16) -> Self {
        Reply::Endless {
            status,
            content_type: "application/json",
            start: br#"{"errors":[{"code":"BLOB_UNKNOWN","message":""#,
            fill: b'x',
        }
    }

    /// An endless 200 answer of whitespace: a valid start of any JSON document, never its end.
    pub fn endless_whitespace() -> Self {
        Reply::Endless {
            status: 200,
            content_type: "application/octet-stream",
            start: b"",
            fill: b' ',
        }
    }
}

impl Reply {
    /// `self` with the extra header `name: value`.
    pub fn with_header(self, name: &'static str, value: impl Into<String>) -> Self {
        match self {
            Reply::Headers { mut headers, reply } => {
                headers.push((name, value.into()));
                Reply::Headers { headers, reply }
            }
            reply => Reply::Headers {
                headers: vec![(name, value.into())],
                reply: Box::new(reply),
            },
        }
    }
}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// A 200 answer of `body`.
pub fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
    Reply::Fixed {
        status: 200,
        content_type,
        body,
    }
}

/// What a hostile server answers a request path with.
pub type Route = dyn Fn(&str) -> Reply + Send + Sync;

/// What a hostile server answers a request with.
pub type RequestRoute = dyn Fn(&Request) -> Reply + Send + Sync;

/// A loopback server answering each request with `route(path)`; counts the body bytes of its
/// endless answers it manages to write, and records whether each request carried an
/// `Authorization` header.
pub struct Hostile {
    addr: SocketAddr,
    written: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    pub fn start(route: Arc<Route>) -> Self {
        Self::serve(Arc::new(move |request: &Request| route(&request.path)))
    }

    /// A loopback server answering each request with `route(request)`.
    pub fn serve(route: Arc<RequestRoute>) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let written = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let written = Arc::clone(&written);
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let written = Arc::clone(&written);
                            let requests = Arc::clone(&requests);
                            let route = Arc::clone(&route);
                            std::thread::spawn(move || answer(stream, &*route, &written, &requests));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        Self {
            addr,
            written,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The server's `host:port`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The endless body bytes written so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether requests for paths containing `part` were made, and whether each carried
    /// credentials.
    pub fn asked(&self, part: &str) -> Vec<bool> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|request| request.path.contains(part))
            .map(|request| request.authorization.is_some())
            .collect()
    }

    /// The requests made so far for paths containing `part`.
    pub fn requests(&self, part: &str) -> Vec<Request> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|request| request.path.contains(part))
            .cloned()
            .collect()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        307 => "Temporary Redirect",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Internal Server Error",
    }
}

/// One request on `stream`, answered and the connection closed.
fn answer(mut stream: TcpStream, route: &RequestRoute, written: &AtomicUsize, requests: &Mutex<Vec<Request>>) {
    let _ = stream.set_nonblocking(false);
    small_send_buffer(&stream);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("GET").to_string();
    let path = words.next().unwrap_or("/").to_string();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    let request = Request {
        method,
        path,
        host: header("host").unwrap_or_default(),
        authorization: header("authorization"),
    };
    requests.lock().expect("lock").push(request.clone());
    write_reply(&mut stream, route(&request), "", written);
}

/// A send buffer of 64 KiB (the kernel doubles it) instead of Linux's autotuning up to 4 MiB
/// (`tcp_wmem`): what a body the client does not read can pile up between the two ends stays
/// small, so the bytes counted as written are close to what the client read.
fn small_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 * 1024;
    // SAFETY: `setsockopt` reads `size_of::<c_int>()` bytes at the address of `size`, a live
    // `c_int`, for the open socket `stream` holds; failing leaves the default buffer.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `reply` written on `stream`, with the extra header lines `extra`.
fn write_reply(stream: &mut TcpStream, reply: Reply, extra: &str, written: &AtomicUsize) {
    match reply {
        Reply::Headers { headers, reply } => {
            let mut extra = extra.to_string();
            for (name, value) in headers {
                extra.push_str(&format!("{name}: {value}\r\n"));
            }
            write_reply(stream, *reply, &extra, written);
        }
        Reply::Fixed {
            status,
            content_type,
            body,
        } => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    reason(status),
                    body.len()
                )
                .as_bytes(),
            );
            let _ = stream.write_all(&body);
        }
        Reply::Unannounced { content_type, body } => {
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{extra}Connection: close\r\n\r\n")
                    .as_bytes(),
            );
            let _ = stream.write_all(&body);
        }
        Reply::Redirect { location } => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
        Reply::Endless {
            status,
            content_type,
            start,
            fill,
        } => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n{extra}Connection: close\r\n\r\n",
                    reason(status)
                )
                .as_bytes(),
            );
            let _ = stream.write_all(start);
            stream_fill(stream, fill, written);
        }
        Reply::Announced { length, fill } => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}Connection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            stream_fill(stream, fill, written);
        }
    }
}

/// `fill` bytes until `ENDLESS_BUDGET` of them or the client closes, each counted in `written`.
fn stream_fill(stream: &mut TcpStream, fill: u8, written: &AtomicUsize) {
    let chunk = vec![fill; 64 * 1024];
    let mut sent = 0;
    while sent < ENDLESS_BUDGET {
        if stream.write_all(&chunk).is_err() {
            return;
        }
        sent += chunk.len();
        written.fetch_add(chunk.len(), Ordering::SeqCst);
    }
}
