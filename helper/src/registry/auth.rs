//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens and
//! HTTP Basic.
//!
//! Registries answer an unauthenticated request with 401 and a challenge.
//! `Bearer realm=…,service=…,scope=…` sends us to a token server (with our
//! stored credentials as Basic auth, or anonymously); `Basic` wants the
//! credentials on every request. What a host asked for is remembered, so
//! later requests carry a token (or credentials) from the start, and tokens
//! are cached per (registry, scope, login) until they expire. One token
//! fetch per key runs at a time: parallel layer downloads wait for it
//! instead of each asking the token server.
//!
//! Credentials are the requester's own (issue 11): every lookup names the
//! [`Requester`], and a token is filed under the login it was fetched with,
//! so a token fetched with one user's login never serves another user.
//! Whether a token server may be asked over plain HTTP, and with a login,
//! is `plain_http`'s rule.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use super::client::{send_with_retries, unexpected_status, Transport};
use super::plain_http::{host_port, PlainHttp};
use super::{Error, Result};
use crate::cancel::Cancel;
use crate::content::Digest;

/// On whose behalf a pull talks to registries: whose `berth login`s it may
/// use. Made from the uid the bus reports for the caller, never from an
/// argument, and carried down with the work it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Requester {
    /// A local user: their own logins are used, nobody else's.
    User(u32),
    /// No one: no login is used (a client nobody asked to act for).
    Anonymous,
}

impl Requester {
    /// The uid what is made for this requester belongs to (an image's
    /// puller, an app's owner): root's when no one asked.
    pub fn owner(self) -> u32 {
        match self {
            Requester::User(uid) => uid,
            Requester::Anonymous => 0,
        }
    }
}

/// A user name and password (or token) for one registry, as `berth login`
/// stored them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// Names the login a token was fetched with, for the token cache,
    /// without keeping the password itself there.
    fn fingerprint(&self) -> Digest {
        Digest::of(format!("{}\0{}", self.username, self.password).as_bytes())
    }

    /// The `Authorization` value Basic auth sends, for tests' servers.
    #[cfg(test)]
    pub(super) fn basic(username: &str, password: &str) -> String {
        let raw = format!("{username}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn basic_header(&self) -> HeaderValue {
        let raw = format!("{}:{}", self.username, self.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        sensitive(format!("Basic {encoded}"))
    }
}

/// Where credentials come from. Keys are registry host names as people type
/// them in `berth login` (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
pub trait CredentialStore: Send + Sync {
    /// `who`'s login for `host`, if they stored one.
    fn get(&self, who: Requester, host: &str) -> Option<Credentials>;
}

/// A store with nothing in it: anonymous pulls only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl CredentialStore for NoCredentials {
    fn get(&self, _who: Requester, _host: &str) -> Option<Credentials> {
        None
    }
}

fn sensitive(s: String) -> HeaderValue {
    // Tokens and base64 are visible ASCII; anything else would have been
    // refused by the token parser or cannot come from a typed password.
    let mut v = HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

/// One challenge of a `WWW-Authenticate` header: a scheme (lowercased) and
/// its parameters (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
    /// The `token68` form (`Negotiate abc==`), if the challenge used it.
    pub token68: Option<String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parse a `WWW-Authenticate` value (RFC 9110 §11.6.1): one or more
/// challenges separated by commas, each a scheme followed by a token68 or by
/// `name=value` parameters, values being tokens or quoted strings that may
/// contain commas and backslash-escaped quotes. Malformed parts are skipped
/// rather than failing the whole header.
pub fn parse_www_authenticate(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    for item in split_top_level(value) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let name_end = item
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(item.len());
        let (first, rest) = item.split_at(name_end);
        let rest_trim = rest.trim_start();
        if let Some(value) = rest_trim.strip_prefix('=') {
            // `name=value`: a parameter of the challenge before it.
            if let Some(c) = out.last_mut() {
                c.params
                    .insert(first.to_ascii_lowercase(), unquote(value.trim()));
            }
            continue;
        }
        // A new challenge: `scheme`, `scheme name=value` or `scheme token68`.
        let mut c = Challenge {
            scheme: first.to_ascii_lowercase(),
            ..Challenge::default()
        };
        if !rest_trim.is_empty() {
            // `abc==` is a token68 (its `=` are padding), `abc=x` a parameter.
            let is_param = rest_trim
                .find('=')
                .map(|i| {
                    let name = rest_trim[..i].trim_end();
                    let value = rest_trim[i..].trim_start_matches('=');
                    !name.is_empty() && name.bytes().all(is_tchar) && !value.trim().is_empty()
                })
                .unwrap_or(false);
            if is_param {
                let (name, value) = rest_trim.split_once('=').unwrap_or_default();
                c.params
                    .insert(name.trim().to_ascii_lowercase(), unquote(value.trim()));
            } else {
                c.token68 = Some(rest_trim.to_string());
            }
        }
        out.push(c);
    }
    out
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Split on commas that are outside quoted strings.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A token or a quoted string, without quotes and escapes.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// The message for a registry that refused a pull.
pub(super) fn refused(host: &str, repo: &str, status: u16, has_credentials: bool) -> Error {
    let message = match (status, has_credentials) {
        (403, true) => format!(
            "registry {host} refused access to {repo} (403): the credentials for {host} do not \
             allow pulling {repo}; log in as a user who may, with `berth login {host}`"
        ),
        (403, false) => format!(
            "registry {host} refused access to {repo} (403): it may be private; if it is, \
             run `berth login {host}` (logins are per user: only your own is used)"
        ),
        (s, true) => format!(
            "registry {host} refused access to {repo} ({s}): the image may not exist, or the \
             account stored for {host} may not see it; check the name, or run \
             `berth login {host}` again"
        ),
        (s, false) => format!(
            "registry {host} refused access to {repo} ({s}): the image may be private or not \
             exist; if it is private run `berth login {host}` (logins are per user: only \
             your own is used)"
        ),
    };
    Error::Auth {
        host: host.to_string(),
        repository: repo.to_string(),
        status,
        message,
    }
}

/// What a registry asked for the last time it challenged us.
#[derive(Debug, Clone)]
enum HostAuth {
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Basic,
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// (registry, scope, the login's fingerprint or `None` for anonymous).
type TokenKey = (String, String, Option<Digest>);

/// The authorization state shared by all clones of a `RegistryClient`.
pub(super) struct Auth {
    creds: Arc<dyn CredentialStore>,
    plain: PlainHttp,
    /// By registry name (`docker.io`): what the registry asks of everyone.
    hosts: Mutex<HashMap<String, HostAuth>>,
    /// The scope a registry named in its challenge for (registry, repository).
    scopes: Mutex<HashMap<(String, String), String>>,
    /// Tokens by (registry, scope, login): a token is only as good as the
    /// login it was fetched with, and serves only that login's requests.
    tokens: Mutex<HashMap<TokenKey, TokenSlot>>,
}

/// The header a request went out with, to tell a stale token from a fresh one.
#[derive(Debug, Clone, Default)]
pub(super) struct Sent {
    pub header: Option<HeaderValue>,
    /// The token sent and the cache slot it came from.
    token: Option<(TokenSlot, String)>,
}

impl Auth {
    pub(super) fn new(creds: Arc<dyn CredentialStore>, plain: PlainHttp) -> Auth {
        Auth {
            creds,
            plain,
            hosts: Mutex::default(),
            scopes: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// `who`'s stored credentials for `registry` (the name people type).
    pub(super) fn credentials(&self, who: Requester, registry: &str) -> Option<Credentials> {
        self.creds.get(who, registry)
    }

    fn scope(&self, registry: &str, repo: &str) -> String {
        lock(&self.scopes)
            .get(&(registry.to_string(), repo.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("repository:{repo}:pull"))
    }

    fn slot(&self, registry: &str, scope: &str, login: Option<&Credentials>) -> TokenSlot {
        let key = (
            registry.to_string(),
            scope.to_string(),
            login.map(Credentials::fingerprint),
        );
        lock(&self.tokens).entry(key).or_default().clone()
    }

    /// The `Authorization` to send for `who` to `registry` (spoken to at
    /// `registry_host`) for `repo`, from what the registry asked for before;
    /// fetches a token if none is cached for `who`'s login.
    pub(super) async fn authorization(
        &self,
        t: &Transport,
        who: Requester,
        (registry, registry_host): (&str, &str),
        repo: &str,
        cancel: &Cancel,
    ) -> Result<Sent> {
        let host_auth = lock(&self.hosts).get(registry).cloned();
        match host_auth {
            None => Ok(Sent::default()),
            Some(HostAuth::Basic) => Ok(Sent {
                header: self.credentials(who, registry).map(|c| c.basic_header()),
                token: None,
            }),
            Some(HostAuth::Bearer { realm, service }) => {
                let login = self.credentials(who, registry);
                let scope = self.scope(registry, repo);
                let slot = self.slot(registry, &scope, login.as_ref());
                let mut guard = tokio::select! {
                    g = slot.lock() => g,
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                };
                let token = match guard.as_ref() {
                    Some(tok) if tok.renew_at > Instant::now() => tok.value.clone(),
                    _ => {
                        let tok = self
                            .fetch_token(
                                t,
                                (registry, registry_host),
                                repo,
                                &realm,
                                service.as_deref(),
                                &scope,
                                login.as_ref(),
                                cancel,
                            )
                            .await?;
                        let value = tok.value.clone();
                        *guard = Some(tok);
                        value
                    }
                };
                drop(guard);
                Ok(Sent {
                    header: Some(sensitive(format!("Bearer {token}"))),
                    token: Some((slot, token)),
                })
            }
        }
    }

    /// Learn from a 401. Returns whether sending the request again with
    /// [`Auth::authorization`] can help.
    pub(super) async fn on_challenge(
        &self,
        who: Requester,
        registry: &str,
        repo: &str,
        headers: &HeaderMap,
        sent: &Sent,
    ) -> bool {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_www_authenticate)
            .collect();
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some_and(|r| !r.is_empty()));
        if let Some(c) = bearer {
            let realm = c.param("realm").unwrap_or_default().to_string();
            if let Some(scope) = c.param("scope").filter(|s| !s.is_empty()) {
                lock(&self.scopes)
                    .insert((registry.to_string(), repo.to_string()), scope.to_string());
            }
            lock(&self.hosts).insert(
                registry.to_string(),
                HostAuth::Bearer {
                    realm,
                    service: c.param("service").map(str::to_string),
                },
            );
            // Drop the token this request carried: the registry no longer
            // takes it. A token another task fetched since is kept.
            if let Some((slot, used)) = &sent.token {
                let mut g = slot.lock().await;
                if g.as_ref().is_some_and(|t| &t.value == used) {
                    *g = None;
                }
            }
            return true;
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            lock(&self.hosts).insert(registry.to_string(), HostAuth::Basic);
            // Sending the same credentials again cannot help.
            return sent.header.is_none() && self.credentials(who, registry).is_some();
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_token(
        &self,
        t: &Transport,
        (registry, registry_host): (&str, &str),
        repo: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
        cancel: &Cancel,
    ) -> Result<Token> {
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            Error::Corrupt(format!(
                "registry {registry} sent a token server address `{realm}` that is not a \
                 URL ({e})"
            ))
        })?;
        // Before anything is sent: no login (and no token) in clear.
        self.plain
            .check_realm(registry, registry_host, &url, creds.is_some())?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let token_host = host_port(&url);
        let resp = send_with_retries(t, &token_host, cancel, || {
            let mut req = t.http.get(url.clone());
            if let Some(c) = creds {
                req = req.header(reqwest::header::AUTHORIZATION, c.basic_header());
            }
            req
        })
        .await?;
        let status = resp.status();
        if status == 401 || status == 403 {
            if creds.is_some() {
                return Err(Error::Auth {
                    host: registry.to_string(),
                    repository: repo.to_string(),
                    status: status.as_u16(),
                    message: format!(
                        "registry {registry} rejected the user name and password you stored \
                         for it (its token server {token_host} answered {}); run \
                         `berth login {registry}` again",
                        status.as_u16()
                    ),
                });
            }
            return Err(refused(registry, repo, status.as_u16(), false));
        }
        if !status.is_success() {
            return Err(unexpected_status(
                resp,
                &token_host,
                &format!("a token request for {repo}"),
            )
            .await);
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let body = super::client::read_capped(resp, 1 << 20, &token_host, cancel)
            .await?
            .ok_or_else(|| {
                Error::LimitExceeded(format!(
                    "the token server {token_host} of registry {registry} sent more than 1 MiB"
                ))
            })?;
        let bad = |why: String| {
            Error::Corrupt(format!(
                "the token server {token_host} of registry {registry} sent {why}; try again \
                 later"
            ))
        };
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("an answer that is not valid JSON ({e})")))?;
        let value = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| bad("an answer without a token".to_string()))?;
        if HeaderValue::from_str(&format!("Bearer {value}")).is_err() {
            return Err(bad(
                "a token with characters not allowed in a header".to_string()
            ));
        }
        // Renew a little before the server's deadline, so a token does not
        // expire between our check and the registry's.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(1));
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        Ok(Token {
            value,
            renew_at: Instant::now() + lifetime - margin,
        })
    }
}

/// A poisoned lock here only means another thread panicked while holding a
/// plain map; its contents are still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            [
                ("realm", "https://auth.docker.io/token"),
                ("scope", "repository:library/busybox:pull"),
                ("service", "registry.docker.io"),
            ]
        );
    }

    #[test]
    fn quoted_commas_escapes_and_spacing() {
        let c = parse_www_authenticate(
            r#"Bearer realm = "https://t.example/token?a=1,b=2" , scope="repository:a/b:pull,push", error="insufficient_scope", note="say \"hi\", then \\ go""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), Some("https://t.example/token?a=1,b=2"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
        assert_eq!(c[0].param("note"), Some(r#"say "hi", then \ go"#));
    }

    #[test]
    fn several_challenges_and_tokens() {
        let c = parse_www_authenticate(
            r#"Negotiate abc==, Basic realm="Registry Realm", BEARER realm=https://x/t,service=reg"#,
        );
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].scheme, "negotiate");
        assert_eq!(c[0].token68.as_deref(), Some("abc=="));
        assert_eq!(c[1].scheme, "basic");
        assert_eq!(c[1].param("realm"), Some("Registry Realm"));
        assert_eq!(c[2].scheme, "bearer");
        assert_eq!(c[2].param("realm"), Some("https://x/t"));
        assert_eq!(c[2].param("service"), Some("reg"));
    }

    #[test]
    fn malformed_headers_do_not_panic() {
        for h in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm=\"unterminated",
            "=x",
            "\"",
            "Basic ,",
        ] {
            let _ = parse_www_authenticate(h);
        }
        assert_eq!(parse_www_authenticate("Bearer")[0].scheme, "bearer");
        assert_eq!(
            parse_www_authenticate(r#"Bearer realm="unterminated, still"#)[0].param("realm"),
            Some("unterminated, still")
        );
    }

    #[tokio::test]
    async fn challenges_are_remembered() {
        let auth = Auth::new(Arc::new(NoCredentials), PlainHttp::default());
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth/token",service="svc",scope="repository:a/b:pull""#,
            ),
        );
        let who = Requester::User(1000);
        assert!(
            auth.on_challenge(who, "r", "a/b", &h, &Sent::default())
                .await
        );
        assert!(matches!(
            lock(&auth.hosts).get("r"),
            Some(HostAuth::Bearer { realm, service: Some(s) }) if realm == "https://auth/token" && s == "svc"
        ));
        assert_eq!(auth.scope("r", "a/b"), "repository:a/b:pull");
        assert_eq!(auth.scope("r", "c/d"), "repository:c/d:pull");

        // Basic without credentials: nothing to retry with.
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="x""#),
        );
        assert!(
            !auth
                .on_challenge(who, "s", "a/b", &h, &Sent::default())
                .await
        );
        assert!(
            !auth
                .on_challenge(who, "s", "a/b", &HeaderMap::new(), &Sent::default())
                .await
        );
    }

    #[test]
    fn refusal_messages_say_what_to_do() {
        let e = refused("ghcr.io", "me/app", 401, false).to_string();
        assert_eq!(
            e,
            "registry ghcr.io refused access to me/app (401): the image may be private or not \
             exist; if it is private run `berth login ghcr.io` (logins are per user: only your \
             own is used)"
        );
        let e = refused("ghcr.io", "me/app", 403, true).to_string();
        assert!(
            e.contains("the credentials for ghcr.io do not allow pulling me/app"),
            "{e}"
        );
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().to_str().unwrap(), "Basic dTpodW50ZXIy");
    }
}
