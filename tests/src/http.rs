//! A tiny HTTP/1.1 client and server helpers over `std::net`.
//!
//! The kit talks only to servers it started on 127.0.0.1, so this is the
//! smallest thing that works: one request per connection (`Connection:
//! close`), the response read to EOF, chunked bodies decoded. It is also the
//! "hand-rolled client" tests use to check the registry independently of the
//! code under test.

use anyhow::{bail, Context, Result};
use base64::Engine;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a kit request may wait on connect, read or write.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection closed before the announced body length (or
    /// the final chunk) arrived.
    pub complete: bool,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("parsing an HTTP response body as JSON")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Err` naming `what` with status and body unless the status is 2xx.
    pub fn ok_for(self, what: &str) -> Result<Self> {
        if !self.is_success() {
            bail!(
                "{what}: HTTP {} {}: {}",
                self.status,
                self.reason,
                self.text()
            );
        }
        if !self.complete {
            bail!("{what}: the connection closed before the whole body arrived");
        }
        Ok(self)
    }
}

pub fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `http://host:port/path?q` → (`host:port`, `/path?q`).
pub fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: the kit's client speaks plain http:// only"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response> {
    request("GET", url, &[], &[])
}

/// `GET url` until it answers 2xx (a server that is starting), at most
/// `within`; the error says what the last try got.
pub fn get_within(url: &str, within: Duration) -> Result<Response> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let last = match get(url) {
            Ok(r) if r.is_success() => return Ok(r),
            Ok(r) => format!("HTTP {}: {}", r.status, r.text()),
            Err(e) => format!("{e:#}"),
        };
        if std::time::Instant::now() > deadline {
            bail!("GET {url}: {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One request on a fresh connection.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
    let (host, path) = split_url(url)?;
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {host} for {method} {path}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    // Head and body go out in separate writes; without this Nagle holds the
    // second one for the peer's delayed ACK (~40 ms per request).
    stream.set_nodelay(true)?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (name, value) in headers {
        has_length |= name.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_length && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .with_context(|| format!("sending {method} {url}"))?;

    let mut raw = Vec::new();
    if let Err(err) = stream.read_to_end(&mut raw) {
        // A reset after some bytes still leaves a (truncated) response.
        if raw.is_empty() {
            return Err(err).with_context(|| format!("reading the response to {method} {url}"));
        }
    }
    parse_response(&raw, method == "HEAD").with_context(|| format!("{method} {url}"))
}

/// `Basic <base64(user:pass)>`.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Decodes an `Authorization: Basic ...` value into (user, password).
pub fn parse_basic_auth(value: &str) -> Option<(String, String)> {
    let encoded = value
        .strip_prefix("Basic ")
        .or(value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn find_head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_headers(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Parses a whole response as read to EOF.
pub fn parse_response(raw: &[u8], head_request: bool) -> Result<Response> {
    let end = find_head_end(raw).context("the response ended inside its headers")?;
    let head = std::str::from_utf8(&raw[..end]).context("non-UTF-8 response headers")?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next().context("empty response")?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers = parse_headers(&lines.collect::<Vec<_>>());
    let rest = &raw[end..];

    let no_body = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let (body, complete) = if no_body {
        (Vec::new(), true)
    } else if header_in(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        decode_chunked(rest)
    } else if let Some(len) = header_in(&headers, "content-length") {
        let len: usize = len.parse().context("bad Content-Length")?;
        if rest.len() >= len {
            (rest[..len].to_vec(), true)
        } else {
            (rest.to_vec(), false)
        }
    } else {
        (rest.to_vec(), true)
    };
    Ok(Response {
        status,
        reason,
        headers,
        body,
        complete,
    })
}

fn decode_chunked(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return (body, false);
        };
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if rest.len() < size {
            body.extend_from_slice(rest);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// The head of a request a kit server received.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// Path and query as sent (`/token?service=...`).
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Decoded query parameters in order (repeated keys kept).
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// Reads a request head from `stream`; returns it with any body bytes that
/// came along in the same reads.
pub fn read_request_head(stream: &mut TcpStream) -> Result<(RequestHead, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() > 64 * 1024 {
            bail!("request head larger than 64 KiB");
        }
        let n = stream.read(&mut chunk).context("reading a request head")?;
        if n == 0 {
            bail!("connection closed before a full request head");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..end]).context("non-UTF-8 request head")?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().context("empty request")?;
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers = parse_headers(&lines.collect::<Vec<_>>());
    Ok((
        RequestHead {
            method,
            target,
            headers,
        },
        buf[end..].to_vec(),
    ))
}

/// Writes a whole response with `Connection: close`.
pub fn write_response(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// Percent-decodes a query component (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query component (unreserved characters pass).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_truncated_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw, false).unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(r.complete);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        let r = parse_response(raw, false).unwrap();
        assert_eq!(r.body, b"abc");
        assert!(!r.complete);
    }

    #[test]
    fn splits_urls_and_codes_queries() {
        assert_eq!(
            split_url("http://127.0.0.1:5000/v2/").unwrap(),
            ("127.0.0.1:5000".into(), "/v2/".into())
        );
        assert_eq!(
            percent_decode(&percent_encode("repository:a/b:pull,push")),
            "repository:a/b:pull,push"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
