//! A loopback server that accepts connections and never answers: the "registry hangs" case
//! for timeout tests.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

/// Accepts TCP connections on `127.0.0.1:<port>`, reads what clients send and never replies,
/// keeping every connection open until dropped.
#[derive(Debug)]
pub struct SlowServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SlowServer {
    /// Starts listening on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name(format!("testkit-slow-{addr}"))
            .spawn({
                let stop = Arc::clone(&stop);
                let accepted = Arc::clone(&accepted);
                move || serve(&listener, &stop, &accepted)
            })
            .context("spawning the slow server thread")?;
        Ok(Self {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, usable as a registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool, accepted: &AtomicUsize) {
    let mut open = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        accepted.fetch_add(1, Ordering::SeqCst);
        // Drain what the client sends so its writes never block; answer nothing.
        if let Ok(reader) = stream.try_clone() {
            std::thread::spawn(move || drain(reader));
        }
        open.push(stream);
    }
}

fn drain(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag and closes every connection.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
