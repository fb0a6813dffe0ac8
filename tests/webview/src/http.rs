//! A minimal blocking HTTP/1.1 client for localhost JSON APIs (WebDriver, the simulator's
//! control API). One request per connection (`Connection: close`), every socket operation under
//! a timeout, chunked answers decoded. Enough for two well-behaved local servers; not a
//! general-purpose client.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result, io};

/// A parsed answer.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self, url: &str) -> Result<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|source| Error::Json {
            url: url.to_owned(),
            source,
        })
    }
}

/// Sends `method url` with an optional JSON body and waits at most `timeout` for the whole
/// answer.
pub fn request(
    method: &str,
    url: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Response> {
    let bad = |detail: &str| Error::Http {
        url: url.to_owned(),
        detail: detail.to_owned(),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(io(format!("resolve {host}")))?
        .next()
        .ok_or_else(|| bad("host resolves to nothing"))?;
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(io(format!("connect {url}")))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io("set write timeout"))?;
    let payload = match body {
        Some(v) => serde_json::to_vec(v).map_err(|source| Error::Json {
            url: url.to_owned(),
            source,
        })?,
        None => Vec::new(),
    };
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n");
    if body.is_some() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    head.push_str("\r\n");
    // One write: a request split over two segments was sometimes answered with a bare close by
    // tauri-driver. The connection stays open (no `Connection: close`); the answer's length
    // says when it is complete.
    let mut request = head.into_bytes();
    request.extend_from_slice(&payload);
    stream
        .write_all(&request)
        .map_err(io(format!("send {method} {url}")))?;

    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                what: format!("the answer to {method} {url}"),
                after: timeout,
            });
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(io("set read timeout"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if complete(&raw) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Timeout {
                    what: format!("the answer to {method} {url}"),
                    after: timeout,
                });
            }
            Err(e) => return Err(io(format!("read {url}"))(e)),
        }
    }
    parse(url, &raw)
}

/// Whether `raw` holds a whole answer (by Content-Length, or the chunked terminator).
fn complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

fn parse(url: &str, raw: &[u8]) -> Result<Response> {
    let bad = |detail: &str| Error::Http {
        url: url.to_owned(),
        detail: detail.to_owned(),
    };
    if raw.is_empty() {
        return Err(bad("empty answer"));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("broken chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// A free TCP port on 127.0.0.1 (bound, read and released: a tiny race with other programs is
/// accepted, since everything here runs on a private test machine).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("bind 127.0.0.1:0"))?;
    Ok(l.local_addr().map_err(io("local addr"))?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let r = parse("u", plain).expect("plain");
        assert_eq!(r.status, 200);
        assert_eq!(r.json("u").expect("json")["a"], 1);
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:2}\r\n0\r\n\r\n";
        let r = parse("u", chunked).expect("chunked");
        assert_eq!(r.status, 404);
        assert_eq!(r.json("u").expect("json")["a"], 2);
        assert!(
            parse("u", b"HTTP/1.1 200 OK\r\n").is_err(),
            "no end of headers"
        );
        assert!(
            parse(
                "u",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            )
            .is_err(),
            "bad chunk size"
        );
    }
}
