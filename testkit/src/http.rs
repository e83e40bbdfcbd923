//! A minimal blocking HTTP/1.1 client over std TCP for registry readiness checks: it needs no
//! runtime and sees a TLS registry answer plain HTTP with 400, which still means "serving".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// Status code and body of a plain HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    /// Everything after the head, as received (no chunked decoding).
    pub body: Vec<u8>,
}

/// Sends one request with `Connection: close` and reads the whole response.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to {method} {path} from {addr}"))?;
    parse_response(&raw).with_context(|| format!("answer to {method} {path} from {addr}"))
}

fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("incomplete HTTP response ({} bytes)", raw.len());
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    Ok(Response {
        status,
        body: raw[head_end + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() -> anyhow::Result<()> {
        let response = parse_response(b"HTTP/1.1 202 Accepted\r\nX: y\r\n\r\nbody")?;
        assert_eq!(response.status, 202);
        assert_eq!(response.body, b"body");
        Ok(())
    }

    #[test]
    fn rejects_truncated_head() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
