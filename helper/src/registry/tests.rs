//! The protocol against a scripted HTTP server: token auth, retries,
//! resuming, corruption, cancellation, redirects. No root, no network.
//!
//! The server is a few dozen lines of HTTP/1.1 over a tokio listener, so a
//! test can cut a body short, stall it, or answer a Range request wrongly,
//! which a real registry will not do on demand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::cancel::Cancel;
use crate::content::{ContentStore, Digest};
use crate::reference::Reference;

#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes.
    cut_after: Option<usize>,
    /// Stop sending (but keep the connection) after this many body bytes.
    stall_after: Option<usize>,
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        body: body.into(),
        ..Reply::default()
    }
}

impl Reply {
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log2 = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_one(sock, handler.clone(), log2.clone()));
            }
        });
        Server { addr, log }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn reference(&self, repo_tag: &str) -> Reference {
        format!("{}/{repo_tag}", self.host()).parse().unwrap()
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    fn hits(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }
}

async fn serve_one(mut sock: tokio::net::TcpStream, handler: Handler, log: Arc<Mutex<Vec<Req>>>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let req = Req { path, headers };
    log.lock().unwrap().push(req.clone());
    let r = handler(&req);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let n = r.cut_after.or(r.stall_after).unwrap_or(r.body.len());
    let _ = sock.write_all(&r.body[..n.min(r.body.len())]).await;
    let _ = sock.flush().await;
    if r.stall_after.is_some() {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

fn client(creds: Option<(&str, &str)>, retries: u32) -> RegistryClient {
    struct One(Credentials);
    impl CredentialStore for One {
        fn get(&self, _who: Requester, _host: &str) -> Option<Credentials> {
            Some(self.0.clone())
        }
    }
    let store: Arc<dyn CredentialStore> = match creds {
        Some((u, p)) => Arc::new(One(Credentials {
            username: u.into(),
            password: p.into(),
        })),
        None => Arc::new(NoCredentials),
    };
    let opts = ClientOptions {
        retries,
        read_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    RegistryClient::new(opts, store).unwrap()
}

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn descriptor(bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: MEDIA_TYPE_OCI_LAYER_GZIP.to_string(),
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
        urls: vec![],
        platform: None,
        annotations: Default::default(),
    }
}

fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ContentStore::open(dir.path()).unwrap();
    (dir, s)
}

fn partials(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path().join("ingest"))
        .unwrap()
        .count()
}

/// Serve `data` as a blob honouring Range requests.
fn ranged(req: &Req, data: &[u8]) -> Reply {
    match req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok())
    {
        Some(start) if start >= data.len() => {
            reply(416, "").header("Content-Range", format!("bytes */{}", data.len()))
        }
        Some(start) => reply(206, &data[start..]).header(
            "Content-Range",
            format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
        ),
        None => reply(200, data),
    }
}

fn manifest_bytes(config: &Descriptor, layers: &[&Descriptor]) -> Vec<u8> {
    serde_json::to_vec(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: MEDIA_TYPE_OCI_CONFIG.to_string(),
            ..config.clone()
        },
        layers: layers.iter().map(|d| (*d).clone()).collect(),
        annotations: Default::default(),
    })
    .unwrap()
}

fn no_progress() -> impl Fn(u64) + Send + Sync {
    |_| {}
}

#[tokio::test]
async fn pulls_through_token_auth_with_one_token_request() {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let l1 = blob(300_000);
    let l2 = blob(1_000_001);
    let (dc, d1, d2) = (descriptor(&config), descriptor(&l1), descriptor(&l2));
    let manifest = manifest_bytes(&dc, &[&d1, &d2]);
    let mdigest = Digest::of(&manifest);
    let port = Arc::new(AtomicUsize::new(0));
    let p2 = port.clone();
    let (config2, l1_2, l2_2) = (config.clone(), l1.clone(), l2.clone());
    let server = Server::start(move |req| {
        let (config, l1, l2) = (&config2, &l1_2, &l2_2);
        if req.path.starts_with("/token") {
            assert!(req.path.contains("service=test"), "{}", req.path);
            assert!(
                req.path.contains("scope=repository%3Aa%2Fb%3Apull"),
                "{}",
                req.path
            );
            return match req.header("authorization") {
                Some("Basic dTpw") => reply(200, r#"{"token":"tok","expires_in":300}"#),
                _ => reply(401, ""),
            };
        }
        if req.header("authorization") != Some("Bearer tok") {
            let realm = format!("http://127.0.0.1:{}/token", p2.load(Ordering::SeqCst));
            return reply(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).header(
                "WWW-Authenticate",
                format!(r#"Bearer realm="{realm}",service="test",scope="repository:a/b:pull""#),
            );
        }
        let p = req.path.as_str();
        if p == "/v2/a/b/manifests/1" {
            assert!(req
                .header("accept")
                .unwrap()
                .contains(MEDIA_TYPE_DOCKER_LIST));
            return reply(200, manifest.clone())
                .header("Content-Type", MEDIA_TYPE_OCI_MANIFEST)
                .header("Docker-Content-Digest", Digest::of(&manifest).to_string());
        }
        for data in [config, l1, l2] {
            if p == format!("/v2/a/b/blobs/{}", Digest::of(data)) {
                return ranged(req, data);
            }
        }
        reply(404, "")
    })
    .await;
    port.store(server.addr.port() as usize, Ordering::SeqCst);

    let c = client(Some(("u", "p")), 3);
    let r = server.reference("a/b:1");
    let cancel = Cancel::new();
    let fetched = c.fetch_manifest(&r, "1", &cancel).await.unwrap();
    assert_eq!(fetched.digest, mdigest);
    assert_eq!(fetched.media_type, MEDIA_TYPE_OCI_MANIFEST);
    let Manifest::Image(m) = fetched.parse().unwrap() else {
        panic!("not an image")
    };
    let cfg = c
        .fetch_blob_bytes(&r, &m.config, 1 << 20, &cancel)
        .await
        .unwrap();
    assert_eq!(parse_config(&cfg).unwrap().os, "linux");

    let (dir, s) = store();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let downloads = m.layers.iter().map(|d| {
        let (c, r, s, cancel, seen) = (
            c.clone(),
            r.clone(),
            s.clone(),
            cancel.clone(),
            seen.clone(),
        );
        let d = d.clone();
        tokio::spawn(async move {
            let progress = move |n: u64| seen.lock().unwrap().push((d.size, n));
            c.download_blob(&r, &d, &s, &progress, &cancel).await
        })
    });
    for h in futures_util::future::join_all(downloads).await {
        h.unwrap().unwrap();
    }
    assert_eq!(s.read(&d1.digest).unwrap(), l1);
    assert_eq!(s.read(&d2.digest).unwrap(), l2);
    assert_eq!(partials(&dir), 0);
    assert_eq!(server.hits("/token"), 1, "{:#?}", server.requests());
    // One 401 for the first request only; the rest carried the token.
    let unauthorized = server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/") && r.header("authorization").is_none())
        .count();
    assert_eq!(unauthorized, 1);
    // Progress: monotonic per blob, ends at the size, not per tiny chunk.
    let seen = seen.lock().unwrap().clone();
    for size in [d1.size, d2.size] {
        let ns: Vec<u64> = seen
            .iter()
            .filter(|(s, _)| *s == size)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(ns.last(), Some(&size));
        assert!(ns.windows(2).all(|w| w[0] <= w[1]), "{ns:?}");
        assert!(
            ns.len() as u64 <= size / (64 << 10) + 3,
            "{} reports",
            ns.len()
        );
    }

    // Already there: no request at all.
    let before = server.requests().len();
    c.download_blob(&r, &d1, &s, &no_progress(), &cancel)
        .await
        .unwrap();
    assert_eq!(server.requests().len(), before);
}

#[tokio::test]
async fn refusals_explain_themselves() {
    let port = Arc::new(AtomicUsize::new(0));
    let p2 = port.clone();
    let server = Server::start(move |req| {
        if req.path.starts_with("/token") {
            return match req.header("authorization") {
                Some(_) => reply(401, ""),
                None => reply(200, r#"{"access_token":"anon"}"#),
            };
        }
        let realm = format!("http://127.0.0.1:{}/token", p2.load(Ordering::SeqCst));
        reply(401, "").header(
            "WWW-Authenticate",
            format!(r#"Bearer realm="{realm}",service="test""#),
        )
    })
    .await;
    port.store(server.addr.port() as usize, Ordering::SeqCst);
    let r = server.reference("me/private:1");
    let host = server.host();

    let err = client(None, 0)
        .fetch_manifest(&r, "1", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "registry {host} refused access to me/private (401): the image may be private or \
             not exist; if it is private run `berth login {host}` (logins are per user: \
             only your own is used)"
        )
    );
    // The scope was built from the repository, since the challenge had none.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.path.contains("scope=repository%3Ame%2Fprivate%3Apull")));

    let err = client(Some(("u", "wrong")), 0)
        .fetch_manifest(&r, "1", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("rejected the user name and password")
            && err.to_string().contains(&format!("berth login {host}")),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_and_forbidden() {
    let server = Server::start(|req| match req.header("authorization") {
        Some("Basic dTpw") if req.path.contains("/secret/") => reply(403, "denied"),
        Some("Basic dTpw") => reply(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
        _ => reply(401, "").header("WWW-Authenticate", r#"Basic realm="reg""#),
    })
    .await;
    let c = client(Some(("u", "p")), 0);
    let err = c
        .fetch_manifest(&server.reference("a/b:v1"), "v1", &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "tag `v1` not found in repository `a/b` on {}; check the tag",
            server.host()
        )
    );
    let err = c
        .fetch_manifest(&server.reference("secret/b:v1"), "v1", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 403, .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "the credentials for {} do not allow pulling secret/b",
            server.host()
        )),
        "{err}"
    );
    // Basic is sent from the start once the host asked for it.
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.header("authorization").is_none())
            .count(),
        1
    );
}

#[tokio::test]
async fn manifests_are_verified() {
    let good = manifest_bytes(&descriptor(b"c"), &[&descriptor(b"l")]);
    let big = vec![b' '; (4 << 20) + 1];
    let (g2, b2) = (good.clone(), big.clone());
    let server = Server::start(move |req| match req.path.as_str() {
        "/v2/a/b/manifests/lying" => {
            reply(200, g2.clone()).header("Docker-Content-Digest", Digest::of(b"other").to_string())
        }
        "/v2/a/b/manifests/huge" => reply(200, b2.clone()),
        "/v2/a/b/manifests/untyped" => reply(200, g2.clone()),
        p if p.starts_with("/v2/a/b/manifests/sha256:") => reply(200, g2.clone()),
        "/v2/gone/x/manifests/1" => reply(404, r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#),
        _ => reply(404, ""),
    })
    .await;
    let c = client(None, 0);
    let cancel = Cancel::new();
    let r = server.reference("a/b:1");

    let err = c.fetch_manifest(&r, "lying", &cancel).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    let err = c.fetch_manifest(&r, "huge", &cancel).await.unwrap_err();
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    let other = Digest::of(b"not it");
    let err = c
        .fetch_manifest(&r, &other.to_string(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    let want = Digest::of(&good);
    let f = c
        .fetch_manifest(&r, &want.to_string(), &cancel)
        .await
        .unwrap();
    assert_eq!(f.digest, want);
    // No Content-Type: the document's own mediaType.
    let f = c.fetch_manifest(&r, "untyped", &cancel).await.unwrap();
    assert_eq!(f.media_type, MEDIA_TYPE_OCI_MANIFEST);
    let err = c
        .fetch_manifest(&server.reference("gone/x:1"), "1", &cancel)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("repository `gone/x` not found on "),
        "{err}"
    );
    let err = c.fetch_manifest(&r, "../../x", &cancel).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let m = manifest_bytes(&descriptor(b"c"), &[]);
    let server = Server::start(move |req| {
        if req.path.ends_with("/always") {
            return reply(500, "<html>\n  internal   trouble\n</html>");
        }
        match c2.fetch_add(1, Ordering::SeqCst) {
            0 => reply(503, "busy"),
            1 => reply(429, "slow down").header("Retry-After", "0"),
            _ => reply(200, m.clone()),
        }
    })
    .await;
    let c = client(None, 3);
    let r = server.reference("a/b:1");
    c.fetch_manifest(&r, "1", &Cancel::new()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let err = c
        .fetch_manifest(&r, "always", &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(server.hits("/v2/a/b/manifests/always"), 4);
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err}");
    assert!(
        err.to_string().contains("<html> internal trouble </html>"),
        "{err}"
    );
}

#[tokio::test]
async fn a_dropped_connection_resumes_with_a_range_request() {
    let data = blob(1_000_000);
    let d = descriptor(&data);
    let first = Arc::new(AtomicUsize::new(0));
    let f2 = first.clone();
    let data2 = data.clone();
    let server = Server::start(move |req| {
        if f2.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut r = reply(200, data2.clone());
            r.cut_after = Some(300_000);
            return r;
        }
        ranged(req, &data2)
    })
    .await;
    let (dir, s) = store();
    client(None, 2)
        .download_blob(
            &server.reference("a/b:1"),
            &d,
            &s,
            &no_progress(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(s.read(&d.digest).unwrap(), data);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[0].header("range"), None);
    assert_eq!(reqs[1].header("range"), Some("bytes=300000-"));
    assert_eq!(partials(&dir), 0);
}

#[tokio::test]
async fn giving_up_keeps_the_partial_for_next_time() {
    let data = blob(500_000);
    let d = descriptor(&data);
    let data2 = data.clone();
    let server = Server::start(move |req| {
        // Every answer stops at byte 100 000 of the blob.
        let mut r = ranged(req, &data2);
        let start = data2.len() - r.body.len();
        r.cut_after = Some(100_000usize.saturating_sub(start));
        r
    })
    .await;
    let (dir, s) = store();
    let c = client(None, 1);
    let r = server.reference("a/b:1");
    let err = c
        .download_blob(&r, &d, &s, &no_progress(), &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transfer { .. }), "{err}");
    assert!(
        err.to_string().contains("run the pull again to resume"),
        "{err}"
    );
    assert_eq!(partials(&dir), 1);
    assert_eq!(s.ingest(&d.digest).unwrap().offset(), 100_000);
}

#[tokio::test]
async fn a_partial_from_a_crash_is_resumed() {
    let data = blob(400_000);
    let d = descriptor(&data);
    let data2 = data.clone();
    let server = Server::start(move |req| ranged(req, &data2)).await;
    let (dir, s) = store();
    {
        let mut w = s.ingest(&d.digest).unwrap();
        std::io::Write::write_all(&mut w, &data[..123_456]).unwrap();
    } // dropped as if the process died
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let progress = move |n: u64| seen2.lock().unwrap().push(n);
    client(None, 0)
        .download_blob(
            &server.reference("a/b:1"),
            &d,
            &s,
            &progress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(s.read(&d.digest).unwrap(), data);
    assert_eq!(server.requests()[0].header("range"), Some("bytes=123456-"));
    assert_eq!(seen.lock().unwrap().first(), Some(&123_456));
    assert_eq!(partials(&dir), 0);
}

#[tokio::test]
async fn a_server_ignoring_range_restarts_the_ingest() {
    let data = blob(200_000);
    let d = descriptor(&data);
    let data2 = data.clone();
    let server = Server::start(move |_| reply(200, data2.clone())).await;
    let (_dir, s) = store();
    {
        let mut w = s.ingest(&d.digest).unwrap();
        std::io::Write::write_all(&mut w, &data[..50_000]).unwrap();
    }
    client(None, 0)
        .download_blob(
            &server.reference("a/b:1"),
            &d,
            &s,
            &no_progress(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(s.read(&d.digest).unwrap(), data);
    assert_eq!(server.requests()[0].header("range"), Some("bytes=50000-"));
}

#[tokio::test]
async fn a_complete_partial_is_committed_without_a_request() {
    let data = blob(10_000);
    let d = descriptor(&data);
    let server = Server::start(|_| reply(500, "")).await;
    let (_dir, s) = store();
    {
        let mut w = s.ingest(&d.digest).unwrap();
        std::io::Write::write_all(&mut w, &data).unwrap();
    }
    client(None, 0)
        .download_blob(
            &server.reference("a/b:1"),
            &d,
            &s,
            &no_progress(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(s.read(&d.digest).unwrap(), data);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_bad_full_length_partial_is_downloaded_again() {
    let data = blob(10_000);
    let d = descriptor(&data);
    let data2 = data.clone();
    let server = Server::start(move |req| ranged(req, &data2)).await;
    let (_dir, s) = store();
    {
        let mut w = s.ingest(&d.digest).unwrap();
        std::io::Write::write_all(&mut w, &vec![0u8; 10_000]).unwrap();
    }
    client(None, 0)
        .download_blob(
            &server.reference("a/b:1"),
            &d,
            &s,
            &no_progress(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(s.read(&d.digest).unwrap(), data);
    assert_eq!(server.requests()[0].header("range"), None);
}

#[tokio::test]
async fn corrupt_blobs_are_refused_and_removed() {
    let data = blob(100_000);
    let d = descriptor(&data);
    let mut bad = data.clone();
    bad[5000] ^= 1;
    let longer = [data.clone(), b"extra".to_vec()].concat();
    let server = Server::start(move |req| {
        if req.path.starts_with("/v2/long/") {
            reply(200, longer.clone())
        } else {
            reply(200, bad.clone())
        }
    })
    .await;
    let (dir, s) = store();
    let c = client(None, 0);
    for repo in ["a/b:1", "long/b:1"] {
        let err = c
            .download_blob(
                &server.reference(repo),
                &d,
                &s,
                &no_progress(),
                &Cancel::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        assert!(!s.exists(&d.digest));
        assert_eq!(partials(&dir), 0, "{repo}");
    }
    let err = c
        .fetch_blob_bytes(&server.reference("a/b:1"), &d, 1 << 20, &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    let err = c
        .fetch_blob_bytes(&server.reference("a/b:1"), &d, 1000, &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
}

#[tokio::test]
async fn cancelling_removes_the_partial() {
    let data = blob(1_000_000);
    let d = descriptor(&data);
    let server = Server::start(move |_| {
        let mut r = reply(200, data.clone());
        r.stall_after = Some(200_000);
        r
    })
    .await;
    let (dir, s) = store();
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    // Cancel once some bytes have arrived.
    let progress = move |n: u64| {
        if n >= 100_000 {
            c2.cancel();
        }
    };
    let err = client(None, 0)
        .download_blob(&server.reference("a/b:1"), &d, &s, &progress, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(partials(&dir), 0);
    assert!(!s.exists(&d.digest));
}

#[tokio::test]
async fn missing_blobs_are_not_found() {
    let server = Server::start(|_| reply(404, r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)).await;
    let d = descriptor(b"x");
    let (_dir, s) = store();
    let err = client(None, 0)
        .download_blob(
            &server.reference("a/b:1"),
            &d,
            &s,
            &no_progress(),
            &Cancel::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(err.to_string().contains(&d.digest.to_string()), "{err}");
}

#[tokio::test]
async fn redirects_to_storage_carry_range_but_not_credentials() {
    let data = blob(300_000);
    let d = descriptor(&data);
    let data2 = data.clone();
    let storage = Server::start(move |req| ranged(req, &data2)).await;
    // Another host name for the same machine, so reqwest sees a new host.
    let target = format!("http://localhost:{}/storage/blob", storage.addr.port());
    let registry = Server::start(move |req| match req.header("authorization") {
        Some("Basic dTpw") => reply(307, "").header("Location", target.clone()),
        _ => reply(401, "").header("WWW-Authenticate", r#"Basic realm="reg""#),
    })
    .await;
    let (_dir, s) = store();
    {
        let mut w = s.ingest(&d.digest).unwrap();
        std::io::Write::write_all(&mut w, &data[..1000]).unwrap();
    }
    client(Some(("u", "p")), 0)
        .download_blob(
            &registry.reference("a/b:1"),
            &d,
            &s,
            &no_progress(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(s.read(&d.digest).unwrap(), data);
    let reqs = storage.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("authorization"),
        None,
        "credentials leaked to storage"
    );
    assert_eq!(reqs[0].header("range"), Some("bytes=1000-"));
}

/// Logins by uid, changed while the client lives (`berth login`/`logout`).
#[derive(Default)]
struct PerUser(Mutex<HashMap<u32, Credentials>>);

impl PerUser {
    fn login(&self, uid: u32, user: &str, password: &str) {
        let c = Credentials {
            username: user.into(),
            password: password.into(),
        };
        self.0.lock().unwrap().insert(uid, c);
    }

    fn logout(&self, uid: u32) {
        self.0.lock().unwrap().remove(&uid);
    }
}

impl CredentialStore for PerUser {
    fn get(&self, who: Requester, _host: &str) -> Option<Credentials> {
        match who {
            Requester::User(uid) => self.0.lock().unwrap().get(&uid).cloned(),
            Requester::Anonymous => None,
        }
    }
}

#[tokio::test]
async fn each_requester_pulls_with_their_own_login_and_tokens() {
    let manifest = manifest_bytes(&descriptor(b"{}"), &[]);
    let port = Arc::new(AtomicUsize::new(0));
    let p2 = port.clone();
    let body = manifest.clone();
    // The token server names each token after the login it was given; the
    // private repository takes root's and alice's tokens only.
    let server = Server::start(move |req| {
        if req.path.starts_with("/token") {
            let token = match req.header("authorization") {
                None => "anon",
                Some(h) if h == Credentials::basic("root-user", "root-pw") => "tok-root",
                Some(h) if h == Credentials::basic("alice", "alice-pw") => "tok-alice",
                Some(_) => return reply(401, ""),
            };
            return reply(200, format!(r#"{{"token":"{token}","expires_in":300}}"#));
        }
        match req.header("authorization") {
            Some("Bearer tok-root" | "Bearer tok-alice") => {
                reply(200, body.clone()).header("Content-Type", MEDIA_TYPE_OCI_MANIFEST)
            }
            _ => {
                let realm = format!("http://127.0.0.1:{}/token", p2.load(Ordering::SeqCst));
                reply(401, "").header(
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="{realm}",service="test""#),
                )
            }
        }
    })
    .await;
    port.store(server.addr.port() as usize, Ordering::SeqCst);
    let r = server.reference("a/private:1");
    let logins = Arc::new(PerUser::default());
    let base = RegistryClient::new(ClientOptions::default(), logins.clone()).unwrap();
    let (root, alice) = (
        base.acting_for(Requester::User(0)),
        base.acting_for(Requester::User(1000)),
    );
    let cancel = Cancel::new();
    let pull = |c: &RegistryClient| {
        let (c, r, cancel) = (c.clone(), r.clone(), cancel.clone());
        async move { c.fetch_manifest(&r, "1", &cancel).await }
    };
    let carried = |token: &str, from: usize| {
        server.requests()[from..]
            .iter()
            .filter(|q| q.header("authorization") == Some(&format!("Bearer {token}")))
            .count()
    };

    logins.login(0, "root-user", "root-pw");
    assert_eq!(pull(&root).await.unwrap().bytes, manifest);
    // Root's login, and the token it got, serve no one else.
    let before = server.requests().len();
    for other in [&alice, &base] {
        let e = pull(other).await.unwrap_err();
        assert!(matches!(e, Error::Auth { status: 401, .. }), "{e}");
        assert!(e.to_string().contains("only your own is used"), "{e}");
    }
    assert_eq!(
        carried("tok-root", before),
        0,
        "root's token served another"
    );

    // Alice's own login works for her, and root's stays root's.
    logins.login(1000, "alice", "alice-pw");
    pull(&alice).await.unwrap();
    let before = server.requests().len();
    pull(&root).await.unwrap();
    assert_eq!(carried("tok-alice", before), 0);
    assert!(carried("tok-root", before) > 0);

    // A logout takes effect at once: the token cached for root's login is
    // not used without it. Alice is not affected.
    logins.logout(0);
    assert!(pull(&root).await.is_err());
    pull(&alice).await.unwrap();
}

#[tokio::test]
async fn a_login_is_not_sent_to_a_plain_http_realm_off_loopback() {
    // A loopback registry whose token realm is plain HTTP on an address
    // that is not loopback (TEST-NET-3: nothing is ever sent there).
    let realm = "http://203.0.113.1:9/token";
    let server = Server::start(move |_| {
        reply(401, "").header(
            "WWW-Authenticate",
            format!(r#"Bearer realm="{realm}",service="test""#),
        )
    })
    .await;
    let r = server.reference("a/b:1");
    let e = client(Some(("u", "p")), 0)
        .fetch_manifest(&r, "1", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PlainHttp { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains(realm) && m.contains(&server.host()), "{m}");
    assert!(m.contains("will not send your login"), "{m}");
    // One request to the registry, the one challenged; none anywhere else.
    assert_eq!(server.requests().len(), 1);
}
