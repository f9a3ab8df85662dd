//! A TCP proxy in front of a registry that misbehaves on request.
//!
//! Every client connection carries exactly one request: the proxy rewrites
//! the request to `Connection: close`, so the registry closes after one
//! response and a well-behaved client opens a new connection for the next.
//! The `Host` header passes through unchanged, so upload `Location`s the
//! registry makes point back at the proxy.
//!
//! Faults, each used once per arming:
//! - [`FaultProxy::cut_next_blob_after`]: the next blob GET longer than N bytes
//!   that gets a 200 or 206 has its connection closed after N body bytes — a client must resume
//!   with a `Range` request (or start over) and still verify the digest;
//! - [`FaultProxy::fail_next`]: the next requests whose path contains a given
//!   text are answered with a given status without reaching the registry.

use crate::http::{self, RequestHead};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub method: String,
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The status sent back (None if the upstream never answered).
    pub status: Option<u16>,
    /// Body bytes forwarded to the client.
    pub body_bytes: u64,
    /// True if the proxy cut this response on purpose.
    pub cut: bool,
    /// True if the proxy answered itself ([`FaultProxy::fail_next`]).
    pub injected: bool,
}

#[derive(Debug, Default)]
struct State {
    cut_after: Option<u64>,
    failures: Vec<(String, u16)>,
    log: Vec<ProxiedRequest>,
}

/// A proxy on 127.0.0.1 and a free port, forwarding to `upstream`.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    upstream: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    /// Starts forwarding to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the fault proxy")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, upstream) = (state.clone(), stop.clone(), upstream.to_string());
            std::thread::Builder::new()
                .name("berth-fault-proxy".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        let (state, upstream) = (state.clone(), upstream.clone());
                        std::thread::spawn(move || {
                            if let Err(err) = handle(stream, &upstream, &state) {
                                eprintln!("berth-testkit fault proxy: {err:#}");
                            }
                        });
                    }
                })?
        };
        Ok(Self {
            port,
            upstream: upstream.to_string(),
            state,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// `127.0.0.1:PORT` of the proxy: what the client under test talks to.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Arms a cut: the next successful blob GET is closed after `bytes` body
    /// bytes. Once.
    pub fn cut_next_blob_after(&self, bytes: u64) {
        self.state.lock().unwrap().cut_after = Some(bytes);
    }

    /// The next `count` requests whose path contains `path_contains` get
    /// `status` from the proxy itself.
    pub fn fail_next(&self, count: usize, status: u16, path_contains: &str) {
        let mut state = self.state.lock().unwrap();
        for _ in 0..count {
            state.failures.push((path_contains.to_string(), status));
        }
    }

    /// Disarms all faults.
    pub fn disarm(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut_after = None;
        state.failures.clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many responses were cut on purpose.
    pub fn cuts(&self) -> usize {
        self.requests().iter().filter(|r| r.cut).count()
    }

    /// Stops accepting (idempotent).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn handle(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    client.set_nodelay(true)?;
    let (head, leftover) = http::read_request_head(&mut client)?;
    let index = {
        let mut st = state.lock().unwrap();
        st.log.push(ProxiedRequest {
            method: head.method.clone(),
            path: head.target.clone(),
            range: head.header("range").map(str::to_string),
            status: None,
            body_bytes: 0,
            cut: false,
            injected: false,
        });
        st.log.len() - 1
    };
    let update = |f: &dyn Fn(&mut ProxiedRequest)| {
        let mut st = state.lock().unwrap();
        f(&mut st.log[index]);
    };

    let injected = {
        let mut st = state.lock().unwrap();
        let pos = st
            .failures
            .iter()
            .position(|(needle, _)| head.target.contains(needle.as_str()));
        pos.map(|i| st.failures.remove(i).1)
    };
    if let Some(status) = injected {
        let body = format!(
            "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"injected by the berth test proxy\",\"detail\":{status}}}]}}"
        );
        http::write_response(
            &mut client,
            status,
            "Injected Failure",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )?;
        update(&|r| {
            r.status = Some(status);
            r.injected = true;
        });
        return Ok(());
    }

    let mut server = TcpStream::connect(upstream)
        .with_context(|| format!("connecting to the upstream registry {upstream}"))?;
    server.set_nodelay(true)?;
    server.write_all(&rewrite_head(&head))?;
    server.write_all(&leftover)?;

    // Request body (uploads) flows on its own; it ends when the client
    // finishes or when we close the client below.
    let pump = {
        let (mut from, mut to) = (client.try_clone()?, server.try_clone()?);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })
    };

    // Response: head first, then the body with the optional cut.
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(end + 4);
        }
        let n = server.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Some(head_end) = head_end else {
        client.write_all(&buf)?;
        let _ = client.shutdown(Shutdown::Both);
        let _ = pump.join();
        return Ok(());
    };
    let status: Option<u16> = std::str::from_utf8(&buf[..head_end])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    update(&|r| r.status = status);

    let is_blob_get = head.method == "GET" && head.path().contains("/blobs/sha256:");
    // Only a response longer than the cut point takes the arming, so a small
    // blob fetched first (an image config) does not use it up.
    let content_length: Option<u64> = std::str::from_utf8(&buf[..head_end]).ok().and_then(|h| {
        h.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
    });
    let cut_at = if is_blob_get && matches!(status, Some(200) | Some(206)) {
        let mut st = state.lock().unwrap();
        match st.cut_after {
            Some(limit) if content_length.is_none_or(|n| n > limit) => st.cut_after.take(),
            _ => None,
        }
    } else {
        None
    };

    client.write_all(&buf[..head_end])?;
    let mut pending = buf[head_end..].to_vec();
    let mut sent: u64 = 0;
    let mut cut = false;
    loop {
        if !pending.is_empty() {
            let mut take = pending.len();
            if let Some(limit) = cut_at {
                take = take.min(limit.saturating_sub(sent) as usize);
            }
            if client.write_all(&pending[..take]).is_err() {
                break;
            }
            sent += take as u64;
            if cut_at.is_some_and(|limit| sent >= limit) {
                cut = true;
                break;
            }
        }
        let n = server.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        pending = chunk[..n].to_vec();
    }
    update(&|r| {
        r.body_bytes = sent;
        r.cut = cut;
    });
    let _ = client.flush();
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = pump.join();
    Ok(())
}

/// The request head with `Connection: close` instead of any hop-by-hop
/// connection headers.
fn rewrite_head(head: &RequestHead) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.target);
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "connection" | "keep-alive" | "proxy-connection"
        ) {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}
