//! [`RegistryClient`]: manifests, small blobs and streamed, resumable layer
//! downloads over one pooled HTTP client.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::{refused, Auth, CredentialStore, Requester};
use super::manifest::{parse_manifest_named, Descriptor, Manifest, MANIFEST_ACCEPT};
use super::plain_http::{strip_port, PlainHttp};
use super::{Error, Result};
use crate::cancel::Cancel;
use crate::content::{self, ContentStore, Digest, Ingest};
use crate::reference::Reference;

/// The largest manifest we read. Real ones are a few KiB; distribution
/// itself refuses to store manifests over 4 MiB.
const MAX_MANIFEST: u64 = 4 << 20;
/// Report download progress at most once per this many bytes.
const PROGRESS_EVERY: u64 = 64 << 10;
/// Gather this much before writing to the ingest: fewer syscalls and hash
/// calls than the network's small chunks would make.
const WRITE_BATCH: usize = 256 << 10;
/// Redirects followed per request (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host` or `host:port`) to talk to over plain HTTP, besides
    /// localhost, which always is (Docker's rule).
    pub insecure: Vec<String>,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// A response that sends nothing for this long counts as a dropped
    /// connection (and is resumed), so a stalled pull does not hang forever.
    pub read_timeout: Duration,
    /// How many times to try again after a connection error, a 429 or a 5xx,
    /// and after a transfer that broke off without progress.
    pub retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 3,
        }
    }
}

/// A manifest as fetched: verified bytes, their digest and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub digest: Digest,
    /// The document's `mediaType`, else the `Content-Type` it came with
    /// (empty if neither said).
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Fetched {
    /// Parse the manifest, naming it by digest in errors.
    pub fn parse(&self) -> Result<Manifest> {
        let ct = (!self.media_type.is_empty()).then_some(self.media_type.as_str());
        parse_manifest_named(&self.bytes, ct, &format!("manifest {}", self.digest))
    }
}

/// The HTTP client and retry policy, shared with the token fetcher.
pub(super) struct Transport {
    pub http: reqwest::Client,
    pub retries: u32,
}

struct Inner {
    t: Transport,
    opts: ClientOptions,
    plain: PlainHttp,
    auth: Auth,
}

/// A client for any number of registries. Cheap to clone; clones share the
/// connection pool and the token cache, so clone it into parallel downloads.
/// It uses the logins of the [`Requester`] it acts for, and no one's until
/// told ([`RegistryClient::acting_for`]).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    who: Requester,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("opts", &self.inner.opts)
            .field("who", &self.who)
            .finish_non_exhaustive()
    }
}

/// A redirect `plain_http` refused; found again in the error chain to say so.
#[derive(Debug)]
struct RefusedRedirect(String);

impl std::fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusedRedirect {}

impl RegistryClient {
    /// A client acting for no one: anonymous pulls only.
    pub fn new(opts: ClientOptions, creds: Arc<dyn CredentialStore>) -> Result<Self> {
        let plain = PlainHttp::new(&opts.insecure);
        let redirects = plain.clone();
        let limit = reqwest::redirect::Policy::limited(MAX_REDIRECTS);
        let http = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            // Blob storage redirects; reqwest drops `Authorization` when a
            // redirect changes host or port, but not when it changes only
            // the scheme: no step down to plain HTTP (see the module docs).
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let from = attempt.previous().last().cloned();
                match from.map(|from| redirects.redirect(&from, attempt.url())) {
                    Some(Err(why)) => attempt.error(RefusedRedirect(why)),
                    _ => limit.redirect(attempt),
                }
            }))
            .build()
            .map_err(|e| Error::Io {
                what: "setting up the HTTP client".to_string(),
                source: std::io::Error::other(e),
            })?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                t: Transport {
                    http,
                    retries: opts.retries,
                },
                opts,
                auth: Auth::new(creds, plain.clone()),
                plain,
            }),
            who: Requester::Anonymous,
        })
    }

    /// The same client (pool, token cache), using `who`'s logins and no
    /// one else's.
    pub fn acting_for(&self, who: Requester) -> RegistryClient {
        RegistryClient {
            inner: self.inner.clone(),
            who,
        }
    }

    /// `http` for loopback registries (`localhost`, 127.0.0.0/8, `::1`, by
    /// name) and those listed as insecure, else `https`: Docker's rule.
    pub fn scheme(&self, host: &str) -> &'static str {
        if self.inner.plain.allows(host) {
            "http"
        } else {
            "https"
        }
    }

    fn url(&self, r: &Reference, kind: &str, target: &str) -> String {
        let host = r.api_host();
        format!(
            "{}://{host}/v2/{}/{kind}/{target}",
            self.scheme(host),
            r.repository
        )
    }

    /// GET with authentication and retries. Returns any response but 401/403
    /// from the registry itself, which become [`Error::Auth`].
    async fn get(
        &self,
        r: &Reference,
        url: &str,
        headers: HeaderMap,
        cancel: &Cancel,
    ) -> Result<Response> {
        let t = &self.inner.t;
        let auth = &self.inner.auth;
        let (registry, repo, host) = (&r.registry, &r.repository, r.api_host());
        let mut challenged = false;
        loop {
            let sent = auth
                .authorization(t, self.who, (registry, host), repo, cancel)
                .await?;
            let resp = send_with_retries(t, host, cancel, || {
                let mut req = t.http.get(url).headers(headers.clone());
                if let Some(h) = &sent.header {
                    req = req.header(AUTHORIZATION, h.clone());
                }
                req
            })
            .await?;
            let status = resp.status();
            if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                return Ok(resp);
            }
            if !same_origin(resp.url().as_str(), url) {
                // Blob storage behind a redirect refused (an expired signed
                // URL, say): not a matter of our credentials.
                return Err(unexpected_status(resp, host, "a redirected blob download").await);
            }
            if status == StatusCode::UNAUTHORIZED
                && !challenged
                && auth
                    .on_challenge(self.who, registry, repo, resp.headers(), &sent)
                    .await
            {
                challenged = true;
                continue;
            }
            let has_creds = auth.credentials(self.who, registry).is_some();
            return Err(refused(registry, repo, status.as_u16(), has_creds));
        }
    }

    /// Fetch the manifest (or index) `target` (a tag or a digest) of `r`'s
    /// repository, verified: against `target` when it is a digest, else
    /// against the registry's `Docker-Content-Digest` when it sends one.
    pub async fn fetch_manifest(
        &self,
        r: &Reference,
        target: &str,
        cancel: &Cancel,
    ) -> Result<Fetched> {
        let pinned = target.parse::<Digest>().ok();
        if pinned.is_none() && !valid_tag(target) {
            return Err(Error::NotFound(format!(
                "`{target}` is neither a tag nor a sha256 digest; cannot look it up in \
                 repository `{}` on {}",
                r.repository, r.registry
            )));
        }
        let url = self.url(r, "manifests", target);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static header"));
        let what = match &pinned {
            Some(d) => format!("manifest {d} of {}", r.name()),
            None => format!("manifest of {}:{target}", r.name()),
        };
        let mut failures = 0;
        let (resp_headers, bytes) = loop {
            let resp = self.get(r, &url, headers.clone(), cancel).await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                let body = excerpt(resp, cancel).await;
                let repo_unknown = body.contains("NAME_UNKNOWN");
                return Err(Error::NotFound(match (&pinned, repo_unknown) {
                    (_, true) => format!(
                        "repository `{}` not found on {}; check the image name",
                        r.repository, r.registry
                    ),
                    (Some(d), false) => format!(
                        "manifest {d} not found in repository `{}` on {}; check the digest",
                        r.repository, r.registry
                    ),
                    (None, false) => format!(
                        "tag `{target}` not found in repository `{}` on {}; check the tag",
                        r.repository, r.registry
                    ),
                }));
            }
            if !status.is_success() {
                return Err(unexpected_status(resp, r.api_host(), &what).await);
            }
            if resp.content_length().is_some_and(|n| n > MAX_MANIFEST) {
                return Err(too_big_manifest(&what));
            }
            let resp_headers = resp.headers().clone();
            match read_capped(resp, MAX_MANIFEST, r.api_host(), cancel).await {
                Ok(Some(bytes)) => break (resp_headers, bytes),
                Ok(None) => return Err(too_big_manifest(&what)),
                Err(e @ Error::Transfer { .. }) if failures < self.inner.t.retries => {
                    tracing::debug!("retrying {what}: {e}");
                    backoff(failures, None, cancel).await?;
                    failures += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let digest = Digest::of(&bytes);
        match &pinned {
            Some(want) if *want != digest => {
                return Err(Error::Corrupt(format!(
                    "registry {} sent a manifest with digest {digest} when asked for {want} \
                     in {}; the registry or something between it and us is faulty — try again",
                    r.registry,
                    r.name()
                )))
            }
            Some(_) => {}
            None => {
                let header = resp_headers
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<Digest>().ok());
                if let Some(said) = header.filter(|said| *said != digest) {
                    return Err(Error::Corrupt(format!(
                        "the {what} has digest {digest}, but registry {} says it is {said}; \
                         the download was corrupted — try again",
                        r.registry
                    )));
                }
            }
        }
        let content_type = resp_headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let declared = serde_json::from_slice::<MediaTypeOnly>(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .filter(|m| !m.is_empty());
        Ok(Fetched {
            digest,
            media_type: declared.unwrap_or(content_type),
            bytes,
        })
    }

    /// Fetch a small blob (an image config) whole, checked against `d`'s
    /// size and digest. Refuses blobs larger than `max`.
    pub async fn fetch_blob_bytes(
        &self,
        r: &Reference,
        d: &Descriptor,
        max: u64,
        cancel: &Cancel,
    ) -> Result<Vec<u8>> {
        if d.size > max {
            return Err(Error::LimitExceeded(format!(
                "blob {} of {} is {} bytes, more than the {max} allowed for it; this is not \
                 a normal image",
                d.digest,
                r.name(),
                d.size
            )));
        }
        let url = self.url(r, "blobs", &d.digest.to_string());
        let mut failures = 0;
        loop {
            let resp = self.get(r, &url, HeaderMap::new(), cancel).await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Err(blob_not_found(r, d));
            }
            if !status.is_success() {
                return Err(
                    unexpected_status(resp, r.api_host(), &format!("blob {}", d.digest)).await,
                );
            }
            let bytes = match read_capped(resp, d.size, r.api_host(), cancel).await {
                Ok(Some(b)) => b,
                Ok(None) => return Err(too_long(r, d)),
                Err(e @ Error::Transfer { .. }) if failures < self.inner.t.retries => {
                    tracing::debug!("retrying blob {}: {e}", d.digest);
                    backoff(failures, None, cancel).await?;
                    failures += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let actual = Digest::of(&bytes);
            if bytes.len() as u64 != d.size || actual != d.digest {
                return Err(Error::Corrupt(format!(
                    "blob {} of {} arrived as {} bytes with digest {actual} (expected {} \
                     bytes); the registry sent corrupt data — try again",
                    d.digest,
                    r.name(),
                    bytes.len(),
                    d.size
                )));
            }
            return Ok(bytes);
        }
    }

    /// Download blob `d` of `r`'s repository into `store`, streaming and
    /// verifying as it goes, resuming a partial blob left by an earlier
    /// attempt and any connection that drops. `progress` gets the bytes done
    /// so far (resumed bytes included), at most every 64 KiB and at the end.
    pub async fn download_blob(
        &self,
        r: &Reference,
        d: &Descriptor,
        store: &ContentStore,
        progress: &(dyn Fn(u64) + Send + Sync),
        cancel: &Cancel,
    ) -> Result<()> {
        if store.exists(&d.digest) {
            progress(d.size);
            return Ok(());
        }
        let mut ingest = open_ingest(store, d, cancel).await?;
        if store.exists(&d.digest) {
            // The pull that held the lock finished it; our open re-created
            // an empty partial file, which goes.
            ingest.abort();
            progress(d.size);
            return Ok(());
        }
        if ingest.offset() > d.size {
            ingest.restart()?;
        }
        if ingest.offset() == d.size {
            // A crash after the last byte but before the rename.
            match commit(r, d, ingest).await {
                Ok(()) => {
                    progress(d.size);
                    return Ok(());
                }
                // The partial was bad and has been removed: start afresh.
                Err(Error::Corrupt(e)) => {
                    tracing::warn!("discarding a bad partial download: {e}");
                    ingest = open_ingest(store, d, cancel).await?;
                }
                Err(e) => return Err(e),
            }
        }
        progress(ingest.offset());
        match self.stream_into(r, d, &mut ingest, progress, cancel).await {
            Ok(()) => {}
            // Cancelled, disk full or a server sending too much: remove the
            // partial. Anything else keeps it, so the next pull resumes.
            Err(e @ (Error::Cancelled | Error::Io { .. } | Error::Corrupt(_))) => {
                ingest.abort();
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        commit(r, d, ingest).await?;
        progress(d.size);
        Ok(())
    }

    /// Stream the rest of blob `d` into `ingest`, resuming with a Range
    /// request whenever the connection drops. Returns once every byte is
    /// written (not yet committed).
    async fn stream_into(
        &self,
        r: &Reference,
        d: &Descriptor,
        ingest: &mut Ingest,
        progress: &(dyn Fn(u64) + Send + Sync),
        cancel: &Cancel,
    ) -> Result<()> {
        let url = self.url(r, "blobs", &d.digest.to_string());
        let host = r.api_host();
        let retries = self.inner.t.retries;
        let what = format!("blob {} of {}", d.digest, r.name());
        let write = |ingest: &mut Ingest, bytes: &[u8]| {
            ingest.write_all(bytes).map_err(|e| Error::Io {
                what: format!("writing {what} to the content store"),
                source: e,
            })
        };
        let mut failures = 0u32;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
        let mut reported = ingest.offset();
        loop {
            let offset = ingest.offset();
            if offset == d.size {
                return Ok(());
            }
            let mut headers = HeaderMap::new();
            if offset > 0 {
                let range = format!("bytes={offset}-");
                headers.insert(RANGE, range.parse().expect("ascii header"));
            }
            let resp = self.get(r, &url, headers, cancel).await?;
            // An answer we cannot continue from: start over from byte 0.
            let mut start_over = false;
            match resp.status() {
                StatusCode::OK if offset > 0 => {
                    tracing::debug!("{host} ignored the range request for {what}; starting over");
                    ingest.restart()?;
                    reported = 0;
                }
                StatusCode::OK => {}
                StatusCode::PARTIAL_CONTENT => {
                    if content_range_start(resp.headers()) != Some(offset) {
                        start_over = true;
                    }
                }
                // We asked for bytes past the blob's end: the partial file
                // does not belong to this blob as the server has it.
                StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => start_over = true,
                StatusCode::NOT_FOUND => return Err(blob_not_found(r, d)),
                _ => return Err(unexpected_status(resp, host, &what).await),
            }
            if start_over {
                tracing::debug!(
                    "{host} answered the range request for {what} oddly; starting over"
                );
                ingest.restart()?;
                reported = 0;
                if failures >= retries {
                    return Err(Error::Transfer {
                        host: host.to_string(),
                        detail: format!(
                            "{what}: the registry does not answer range requests correctly"
                        ),
                    });
                }
                failures += 1;
                continue;
            }

            let mut stream = resp.bytes_stream();
            let mut got = 0u64;
            let outcome = loop {
                let next = tokio::select! {
                    n = stream.next() => n,
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                };
                let chunk = match next {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(chunk)) => chunk,
                };
                let done = ingest.offset() + buf.len() as u64 + chunk.len() as u64;
                if done > d.size {
                    return Err(too_long(r, d));
                }
                got += chunk.len() as u64;
                if buf.is_empty() && chunk.len() >= WRITE_BATCH {
                    write(ingest, &chunk)?;
                } else {
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= WRITE_BATCH {
                        write(ingest, &buf)?;
                        buf.clear();
                    }
                }
                if done - reported >= PROGRESS_EVERY {
                    progress(done);
                    reported = done;
                }
            };
            write(ingest, &buf)?;
            buf.clear();
            if ingest.offset() == d.size {
                return Ok(());
            }
            let detail = match outcome {
                Ok(()) => format!(
                    "the connection closed after {} of {} bytes of {what}",
                    ingest.offset(),
                    d.size
                ),
                Err(e) => format!(
                    "the connection broke after {} of {} bytes of {what}: {}",
                    ingest.offset(),
                    d.size,
                    describe(&e)
                ),
            };
            // Count only attempts that made no progress: a slow, flaky link
            // that keeps delivering still finishes.
            if got > 0 {
                failures = 0;
            }
            if failures >= retries {
                return Err(Error::Transfer {
                    host: host.to_string(),
                    detail,
                });
            }
            tracing::info!("{detail}; resuming");
            backoff(failures, None, cancel).await?;
            failures += 1;
        }
    }
}

/// Open (or resume) the ingest of `d`, off the async threads: it may wait
/// for another pull's lock and re-hashes what a crashed pull left.
async fn open_ingest(store: &ContentStore, d: &Descriptor, cancel: &Cancel) -> Result<Ingest> {
    let opening = {
        let (store, digest) = (store.clone(), d.digest.clone());
        tokio::task::spawn_blocking(move || store.ingest(&digest))
    };
    tokio::select! {
        res = opening => Ok(res.map_err(|e| Error::Io {
            what: format!("opening the download of blob {}", d.digest),
            source: std::io::Error::other(e),
        })??),
        _ = cancel.cancelled() => Err(Error::Cancelled),
    }
}

/// Verify and move the blob into place, off the async threads (it fsyncs).
/// A digest or size mismatch is [`Error::Corrupt`]; the ingest has then
/// removed its partial file.
async fn commit(r: &Reference, d: &Descriptor, ingest: Ingest) -> Result<()> {
    let size = d.size;
    let res = tokio::task::spawn_blocking(move || ingest.commit(Some(size)))
        .await
        .map_err(|e| Error::Io {
            what: format!("committing blob {}", d.digest),
            source: std::io::Error::other(e),
        })?;
    res.map_err(|e| match e {
        content::Error::DigestMismatch { .. } | content::Error::SizeMismatch { .. } => {
            Error::Corrupt(format!("{e} (blob of {} from {})", r.name(), r.api_host()))
        }
        e => Error::Content(e),
    })
}

/// Send a request, trying again after connection errors, timeouts, 429 and
/// 5xx answers with growing pauses. A 5xx still there after the last try is
/// returned for the caller to report.
pub(super) async fn send_with_retries(
    t: &Transport,
    host: &str,
    cancel: &Cancel,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response> {
    let mut attempt = 0;
    loop {
        let res = tokio::select! {
            res = build().send() => res,
            _ = cancel.cancelled() => return Err(Error::Cancelled),
        };
        let at_least = match &res {
            Ok(resp) if retryable_status(resp.status()) => retry_after(resp.headers()),
            Ok(_) => return res.map_err(|e| transport_error(host, &e)),
            Err(e) if retryable_error(e) => None,
            Err(e) => return Err(transport_error(host, e)),
        };
        if attempt >= t.retries {
            return res.map_err(|e| transport_error(host, &e));
        }
        match &res {
            Ok(resp) => tracing::debug!("{host} answered {}; trying again", resp.status()),
            Err(e) => tracing::debug!("request to {host} failed: {}; trying again", describe(e)),
        }
        drop(res);
        backoff(attempt, at_least, cancel).await?;
        attempt += 1;
    }
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

fn retryable_error(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() {
        return false;
    }
    // A name that does not exist will not exist in a second either; a
    // temporary resolver failure ("Try again") is retried.
    if is_dns(e) && permanent_dns(e) {
        return false;
    }
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// Pause before try number `attempt + 1`: 0.2 s, 0.5 s, 1 s, 2 s, 4 s…, at
/// most 10 s, or what the server asked for with `Retry-After` (at most 30 s).
async fn backoff(attempt: u32, at_least: Option<Duration>, cancel: &Cancel) -> Result<()> {
    let ms = match attempt {
        0 => 200,
        1 => 500,
        n => (1000u64 << (n - 2).min(4)).min(10_000),
    };
    let delay = Duration::from_millis(ms).max(at_least.unwrap_or_default());
    tokio::select! {
        _ = tokio::time::sleep(delay) => Ok(()),
        _ = cancel.cancelled() => Err(Error::Cancelled),
    }
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = h.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

/// The messages of an error's causes, innermost last, without reqwest's
/// "for url (…)" (which may carry signed storage URLs).
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let msg = s.to_string();
        // hyper_util's "client error (Connect)" says nothing.
        if !msg.starts_with("client error (") && !parts.contains(&msg) {
            parts.push(msg);
        }
        source = s.source();
    }
    if parts.is_empty() {
        let top = e.to_string();
        let top = top.split(" for url (").next().unwrap_or(&top).to_string();
        parts.push(top);
    }
    parts.join(": ")
}

fn chain_mentions(e: &reqwest::Error, needles: &[&str]) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let msg = s.to_string();
        if needles.iter().any(|n| msg.contains(n)) {
            return true;
        }
        source = s.source();
    }
    false
}

fn is_dns(e: &reqwest::Error) -> bool {
    chain_mentions(e, &["dns error"])
}

fn permanent_dns(e: &reqwest::Error) -> bool {
    chain_mentions(
        e,
        &[
            "Name or service not known",
            "No address associated",
            "nodename nor servname",
            "Name has no usable address",
        ],
    )
}

fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    find_source::<std::io::Error>(e).map(std::io::Error::kind)
}

/// The first cause of `e` of type `T`.
fn find_source<T: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&T> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<T>() {
            return Some(found);
        }
        source = s.source();
    }
    None
}

/// A failed request as an error a person can act on.
fn transport_error(host: &str, e: &reqwest::Error) -> Error {
    let unreachable = |detail: String| Error::Unreachable {
        host: host.to_string(),
        detail,
    };
    if let Some(refused) = find_source::<RefusedRedirect>(e) {
        return Error::PlainHttp {
            registry: host.to_string(),
            message: refused.0.clone(),
        };
    }
    let what = describe(e);
    if is_dns(e) {
        // The resolver's own words ("Name or service not known") are the
        // innermost cause.
        let why = what.rsplit(": ").next().unwrap_or(&what);
        return unreachable(format!(
            "unknown host `{}` (DNS lookup failed: {why})",
            strip_port(host)
        ));
    }
    if e.is_connect() {
        if io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused) {
            return unreachable(format!(
                "connection refused: nothing is listening there ({what})"
            ));
        }
        if e.is_timeout() {
            return unreachable(format!("connecting timed out ({what})"));
        }
        if chain_mentions(
            e,
            &[
                "certificate",
                "InvalidContentType",
                "tls",
                "TLS",
                "handshake",
            ],
        ) {
            return unreachable(format!(
                "TLS handshake failed ({what}); if this registry speaks plain HTTP, add it \
                 to the insecure registries"
            ));
        }
        return unreachable(what);
    }
    if e.is_timeout() {
        return Error::Transfer {
            host: host.to_string(),
            detail: format!("the registry stopped answering ({what})"),
        };
    }
    Error::Transfer {
        host: host.to_string(),
        detail: what,
    }
}

/// The whole body if it is at most `max` bytes, else `None` (reading stops
/// as soon as it is known to be too long).
pub(super) async fn read_capped(
    resp: Response,
    max: u64,
    host: &str,
    cancel: &Cancel,
) -> Result<Option<Vec<u8>>> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Ok(None);
    }
    let cap = resp.content_length().unwrap_or(0).min(max) as usize;
    let mut out = Vec::with_capacity(cap);
    let mut stream = resp.bytes_stream();
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = cancel.cancelled() => return Err(Error::Cancelled),
        };
        match next {
            None => return Ok(Some(out)),
            Some(Ok(chunk)) => {
                if (out.len() + chunk.len()) as u64 > max {
                    return Ok(None);
                }
                out.extend_from_slice(&chunk);
            }
            Some(Err(e)) => {
                return Err(Error::Transfer {
                    host: host.to_string(),
                    detail: format!("the connection broke: {}", describe(&e)),
                })
            }
        }
    }
}

/// The start of a body, for error messages: at most 200 characters,
/// whitespace collapsed.
async fn excerpt(resp: Response, cancel: &Cancel) -> String {
    let read = read_capped(resp, 64 << 10, "", cancel);
    let bytes = match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok(Some(b))) => b,
        _ => return String::new(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut s: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((i, _)) = s.char_indices().nth(200) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// An answer nobody expects, as [`Error::Server`].
pub(super) async fn unexpected_status(resp: Response, host: &str, what: &str) -> Error {
    let status = resp.status().as_u16();
    let body = excerpt(resp, &Cancel::new()).await;
    Error::Server {
        host: host.to_string(),
        status,
        what: what.to_string(),
        body: if body.is_empty() {
            "(no details)".to_string()
        } else {
            body
        },
    }
}

fn blob_not_found(r: &Reference, d: &Descriptor) -> Error {
    Error::NotFound(format!(
        "blob {} not found in repository `{}` on {}; the image on the registry is \
         incomplete — ask its publisher to push it again",
        d.digest, r.repository, r.registry
    ))
}

fn too_long(r: &Reference, d: &Descriptor) -> Error {
    Error::Corrupt(format!(
        "registry {} sent more than the {} bytes of blob {} of {}; the registry or \
         something between it and us is faulty — try again",
        r.registry,
        d.size,
        d.digest,
        r.name()
    ))
}

fn too_big_manifest(what: &str) -> Error {
    Error::LimitExceeded(format!(
        "the {what} is larger than {} MiB, which no image manifest is; the registry sent \
         something else",
        MAX_MANIFEST >> 20
    ))
}

#[derive(serde::Deserialize)]
struct MediaTypeOnly {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
}

/// `start` of `Content-Range: bytes start-end/total`.
fn content_range_start(h: &HeaderMap) -> Option<u64> {
    let v = h.get(CONTENT_RANGE)?.to_str().ok()?.trim();
    let range = v.strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// Whether two URLs have the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Distribution's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Checked
/// again here because the tag becomes part of a URL path.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::NoCredentials;

    fn client(insecure: &[&str]) -> RegistryClient {
        let opts = ClientOptions {
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            ..ClientOptions::default()
        };
        RegistryClient::new(opts, Arc::new(NoCredentials)).unwrap()
    }

    #[test]
    fn scheme_follows_dockers_rule() {
        let c = client(&["registry.lan:5000", "http://plain.example/"]);
        assert_eq!(c.scheme("localhost"), "http");
        assert_eq!(c.scheme("localhost:5000"), "http");
        assert_eq!(c.scheme("127.0.0.1"), "http");
        assert_eq!(c.scheme("127.1.2.3:5000"), "http");
        assert_eq!(c.scheme("[::1]:5000"), "http");
        assert_eq!(c.scheme("::1"), "http");
        assert_eq!(c.scheme("registry.lan:5000"), "http");
        assert_eq!(c.scheme("registry.lan:5001"), "https");
        assert_eq!(c.scheme("plain.example:8080"), "http");
        assert_eq!(c.scheme("registry-1.docker.io"), "https");
        assert_eq!(c.scheme("docker.io"), "https");
        assert_eq!(c.scheme("128.0.0.1:5000"), "https");
        assert_eq!(c.scheme("localhost.evil.com"), "https");
        assert_eq!(c.scheme("[::2]:5000"), "https");
    }

    #[test]
    fn urls_use_the_api_host() {
        let c = client(&[]);
        let r: Reference = "busybox".parse().unwrap();
        assert_eq!(
            c.url(&r, "manifests", "latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        let r: Reference = "127.0.0.1:5000/a/b:1".parse().unwrap();
        assert_eq!(
            c.url(&r, "blobs", "x"),
            "http://127.0.0.1:5000/v2/a/b/blobs/x"
        );
    }

    #[test]
    fn small_helpers() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
        h.insert(CONTENT_RANGE, "bytes */200".parse().unwrap());
        assert_eq!(content_range_start(&h), None);
        assert!(same_origin("http://a:1/x", "http://a:1/y?z"));
        assert!(!same_origin("http://a:1/x", "http://a:2/x"));
        assert!(
            valid_tag("1.36-musl_x") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag("")
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
    }

    #[tokio::test]
    async fn unknown_hosts_are_named_as_such() {
        let c = client(&[]);
        let r: Reference = "no-such-host.invalid/a/b:1".parse().unwrap();
        let err = c.fetch_manifest(&r, "1", &Cancel::new()).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Unreachable { .. }), "{msg}");
        assert!(msg.contains("unknown host `no-such-host.invalid`"), "{msg}");
        assert!(msg.contains("check the name and your network"), "{msg}");
    }

    #[tokio::test]
    async fn refused_connections_say_so() {
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = RegistryClient::new(
            ClientOptions {
                retries: 1,
                ..ClientOptions::default()
            },
            Arc::new(NoCredentials),
        )
        .unwrap();
        let r: Reference = format!("127.0.0.1:{port}/a/b:1").parse().unwrap();
        let err = c.fetch_manifest(&r, "1", &Cancel::new()).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("connection refused"), "{msg}");
    }

    #[tokio::test]
    async fn cancel_stops_a_request() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = client(&[]);
        let r: Reference = format!("127.0.0.1:{port}/a/b:1").parse().unwrap();
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        // The listener accepts (kernel backlog) but never answers.
        let err = c.fetch_manifest(&r, "1", &cancel).await.unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        drop(listener);
    }
}
