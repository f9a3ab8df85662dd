//! The bearer-token server a token-auth [`super::Registry`] sends clients to.
//!
//! It implements the Docker token protocol the way Docker Hub and distribution
//! expect: `GET /token?service=S&scope=repository:NAME:pull,push` (optionally
//! with Basic credentials) answers `{"token": JWT, "access_token": JWT}`;
//! `POST /token` with an OAuth2 password grant form does the same.
//!
//! Grants: anonymous clients get `pull` only; the configured user gets what it
//! asked for out of pull, push and delete (and `*` on `registry:catalog`);
//! wrong credentials get 401.
//!
//! The JWT is ES256, signed in-process with a P-256 key. Its header carries
//! the self-signed certificate of that key in `x5c`; distribution 2.8 accepts
//! the token when that chain verifies against `rootcertbundle`, which is the
//! same certificate. Key and certificate are made per server with the
//! `openssl` CLI.

use crate::http::{self, RequestHead};
use crate::proc;
use anyhow::{bail, Context, Result};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an issued token is valid.
pub const TOKEN_LIFETIME_SECS: u64 = 300;

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    cert_der_b64: String,
    user: String,
    password: String,
    issued: AtomicUsize,
    refused: AtomicUsize,
    log: Mutex<Vec<String>>,
}

/// A token server thread on 127.0.0.1 (or another address of this machine)
/// and a free port.
pub struct TokenServer {
    addr: SocketAddr,
    cert_path: PathBuf,
    signer: Arc<Signer>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("addr", &self.addr)
            .field("cert_path", &self.cert_path)
            .finish()
    }
}

impl TokenServer {
    /// Makes a key and certificate in `dir` (`token.key`, `token.crt`) and
    /// starts serving on 127.0.0.1; `user`/`password` may push.
    pub fn start(dir: &Path, user: &str, password: &str) -> Result<Self> {
        Self::start_on(dir, user, password, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// As [`TokenServer::start`], listening on `ip` (an address of this
    /// machine): a token realm that is not on loopback.
    pub fn start_on(dir: &Path, user: &str, password: &str, ip: IpAddr) -> Result<Self> {
        let key_path = dir.join("token.key");
        let cert_path = dir.join("token.crt");
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={}", super::TOKEN_ISSUER),
        ])
        .arg("-keyout")
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path);
        proc::run_ok("openssl req", cmd, Duration::from_secs(60))
            .context("making the token server's key and certificate")?;

        let key_der = pem_to_der(&std::fs::read_to_string(&key_path)?, "PRIVATE KEY")?;
        let cert_der = pem_to_der(&std::fs::read_to_string(&cert_path)?, "CERTIFICATE")?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key_der, &rng)
            .map_err(|e| anyhow::anyhow!("loading the token key {}: {e}", key_path.display()))?;
        let signer = Arc::new(Signer {
            key,
            rng,
            cert_der_b64: base64::engine::general_purpose::STANDARD.encode(cert_der),
            user: user.to_string(),
            password: password.to_string(),
            issued: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });

        let listener = TcpListener::bind((ip, 0))
            .with_context(|| format!("binding the token server to {ip}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (signer, stop) = (signer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("berth-token-server".into())
                .spawn(move || serve(listener, signer, stop))?
        };
        Ok(Self {
            addr,
            cert_path,
            signer,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The realm URL clients are sent to: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// `IP:PORT` it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate the registry trusts (`rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.signer.issued.load(Ordering::SeqCst)
    }

    /// Requests answered 401 (wrong credentials) so far.
    pub fn refused(&self) -> usize {
        self.signer.refused.load(Ordering::SeqCst)
    }

    /// One line per request: `anonymous|USER scopes -> granted`.
    pub fn requests(&self) -> Vec<String> {
        self.signer.log.lock().unwrap().clone()
    }

    /// A token for `scopes` as the server would issue it to `user` (`None`
    /// for anonymous), without going over HTTP.
    pub fn issue(&self, user: Option<&str>, scopes: &[&str]) -> Result<String> {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.signer.token(user, &scopes).map(|(t, _)| t)
    }

    /// Stops the server thread (idempotent).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(listener: TcpListener, signer: Arc<Signer>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let signer = signer.clone();
        std::thread::spawn(move || {
            if let Err(err) = handle(stream, &signer) {
                eprintln!("berth-testkit token server: {err:#}");
            }
        });
    }
}

fn handle(mut stream: TcpStream, signer: &Signer) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, mut body) = http::read_request_head(&mut stream)?;
    if head.path() != "/token" {
        http::write_response(&mut stream, 404, "Not Found", &[], b"not found\n")?;
        return Ok(());
    }

    // Gather service, scopes and credentials from GET query or POST form.
    let mut params = head.query();
    let mut credentials = head
        .header("authorization")
        .and_then(http::parse_basic_auth);
    let mut post = false;
    if head.method == "POST" {
        post = true;
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while body.len() < len {
            let mut chunk = vec![0u8; len - body.len()];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let form = RequestHead {
            method: String::new(),
            target: format!("/?{}", String::from_utf8_lossy(&body)),
            headers: Vec::new(),
        }
        .query();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let (Some(u), Some(p)) = (get("username"), get("password")) {
            credentials = Some((u, p));
        }
        params.extend(form);
    } else if head.method != "GET" {
        http::write_response(&mut stream, 405, "Method Not Allowed", &[], b"")?;
        return Ok(());
    }

    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();

    let user = match credentials {
        None => None,
        Some((user, password)) if user == signer.user && password == signer.password => Some(user),
        Some((user, _)) => {
            signer.refused.fetch_add(1, Ordering::SeqCst);
            signer
                .log
                .lock()
                .unwrap()
                .push(format!("{user} {scopes:?} -> refused"));
            let body = json!({"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name or password"}]});
            http::write_response(
                &mut stream,
                401,
                "Unauthorized",
                &[
                    ("Content-Type", "application/json"),
                    ("WWW-Authenticate", "Basic realm=\"berth-test-token\""),
                ],
                body.to_string().as_bytes(),
            )?;
            return Ok(());
        }
    };

    let (token, granted) = signer.token(user.as_deref(), &scopes)?;
    signer.log.lock().unwrap().push(format!(
        "{} {scopes:?} -> {granted}",
        user.as_deref().unwrap_or("anonymous")
    ));
    let mut reply = json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_LIFETIME_SECS,
    });
    if post {
        reply["scope"] = json!(scopes.join(" "));
    }
    http::write_response(
        &mut stream,
        200,
        "OK",
        &[("Content-Type", "application/json")],
        reply.to_string().as_bytes(),
    )?;
    Ok(())
}

impl Signer {
    /// Signs a token for `user` (None: anonymous) granting what it may have
    /// of `scopes`; also returns the grants as JSON text.
    fn token(&self, user: Option<&str>, scopes: &[String]) -> Result<(String, String)> {
        let mut access = Vec::new();
        for scope in scopes {
            // type:name:actions — the name may itself contain ':' (a port).
            let Some((kind, rest)) = scope.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let allowed: &[&str] = match (kind, user.is_some()) {
                ("repository", false) => &["pull"],
                ("repository", true) => &["pull", "push", "delete", "*"],
                ("registry", true) => &["*"],
                _ => &[],
            };
            let granted: Vec<&str> = actions.split(',').filter(|a| allowed.contains(a)).collect();
            access.push(json!({"type": kind, "name": name, "actions": granted}));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let serial = self.issued.fetch_add(1, Ordering::SeqCst);
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.cert_der_b64]});
        let claims = json!({
            "iss": super::TOKEN_ISSUER,
            "sub": user.unwrap_or(""),
            "aud": super::TOKEN_SERVICE,
            "exp": now + TOKEN_LIFETIME_SECS,
            "nbf": now.saturating_sub(30),
            "iat": now,
            "jti": format!("berth-{now}-{serial}-{}", std::process::id()),
            "access": access,
        });
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing a token failed"))?;
        let token = format!("{signing_input}.{}", b64(signature.as_ref()));
        Ok((token, serde_json::Value::Array(access).to_string()))
    }
}

fn pem_to_der(pem: &str, label: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .with_context(|| format!("no {begin} block"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .with_context(|| format!("no {end} line"))?
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("decoding the {label} PEM block"))?;
    if der.is_empty() {
        bail!("empty {label} PEM block");
    }
    Ok(der)
}
