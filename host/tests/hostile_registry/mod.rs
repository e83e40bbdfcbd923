//! A hostile loopback "registry": a server answering each request with what a test's route
//! says, among which an endless body without `Content-Length` (delimited by closing the
//! connection, which it reaches only after `ENDLESS_BUDGET` bytes); it counts the bytes of those
//! endless bodies it manages to write, and records each request's path and whether it carried
//! credentials.

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
    /// A temporary redirect.
    Redirect { location: String },
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

/// A loopback server answering each request with `route(path)`; counts the body bytes of its
/// endless answers it manages to write, and records whether each request carried an
/// `Authorization` header.
pub struct Hostile {
    addr: SocketAddr,
    written: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<(String, bool)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    pub fn start(route: Arc<Route>) -> Self {
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
            .filter(|(path, _)| path.contains(part))
            .map(|(_, authorized)| *authorized)
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
        307 => "Temporary Redirect",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Internal Server Error",
    }
}

/// One request on `stream`, answered and the connection closed.
fn answer(mut stream: TcpStream, route: &Route, written: &AtomicUsize, requests: &Mutex<Vec<(String, bool)>>) {
    let _ = stream.set_nonblocking(false);
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
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let authorized = head.lines().any(|line| line.starts_with("authorization:"));
    requests.lock().expect("lock").push((path.clone(), authorized));
    match route(&path) {
        Reply::Fixed {
            status,
            content_type,
            body,
        } => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reason(status),
                    body.len()
                )
                .as_bytes(),
            );
            let _ = stream.write_all(&body);
        }
        Reply::Redirect { location } => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n",
                    reason(status)
                )
                .as_bytes(),
            );
            let _ = stream.write_all(start);
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
    }
}
