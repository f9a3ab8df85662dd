//! Where Berth speaks plain HTTP, and what it sends there.
//!
//! One rule, used for the registry itself, its token server and redirects:
//! a host may be spoken to in clear only if it is loopback or listed under
//! `[registries] insecure` (Docker's rule). "Loopback" is decided by the
//! name as written, never by what it resolves to: `localhost`, or an
//! address literal in 127.0.0.0/8 or `::1`. A DNS answer is not proof: a
//! name the registry's operator (or anyone on the path to the resolver)
//! controls can answer 127.0.0.1 when checked and a LAN address when
//! connected to, and a login would then cross the network in clear.
//!
//! What follows from it (issue 11, "Registry credentials"):
//!
//! - A `Bearer` challenge's token realm over `http://` is followed only for a
//!   registry that is itself spoken to in clear. An HTTPS registry that
//!   sends clients to a plain-HTTP token server is refused: the stored
//!   login (Basic auth on the token request) and the token would cross the
//!   network in clear.
//! - Even then, a login goes to an `http://` realm only if the realm's host
//!   passes the same rule; otherwise the token request is refused (an
//!   anonymous one goes ahead: it carries nothing secret).
//! - A redirect from HTTPS to plain HTTP is followed only to a host that
//!   passes the rule. reqwest keeps `Authorization` on a redirect that
//!   changes only the scheme (same host and port), so following
//!   `https://reg:5000` → `http://reg:5000` would send a login or token in
//!   clear. Redirects between plain-HTTP hosts (a local mirror handing blobs
//!   to LAN storage) are followed; reqwest drops `Authorization` when the
//!   host or port changes.

use std::net::IpAddr;

use reqwest::Url;

use super::{Error, Result};

/// The hosts that may be spoken to over plain HTTP.
#[derive(Debug, Clone, Default)]
pub(super) struct PlainHttp {
    /// `[registries] insecure`: `host` or `host:port`, optionally written
    /// with `http://` and a trailing `/`.
    insecure: Vec<String>,
}

impl PlainHttp {
    pub(super) fn new(insecure: &[String]) -> PlainHttp {
        PlainHttp {
            insecure: insecure
                .iter()
                .map(|entry| {
                    entry
                        .trim()
                        .trim_start_matches("http://")
                        .trim_start_matches("https://")
                        .trim_end_matches('/')
                        .to_ascii_lowercase()
                })
                .collect(),
        }
    }

    /// Whether `host` (`name`, `name:port`, `[v6]:port`) may be spoken to in
    /// clear: listed as insecure (with or without its port), or loopback by
    /// name.
    pub(super) fn allows(&self, host: &str) -> bool {
        let bare = strip_port(host);
        let listed = self
            .insecure
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(bare));
        listed || is_loopback_name(bare)
    }

    /// Whether the redirect from `from` to `to` may be followed: anything
    /// but a step down from HTTPS to plain HTTP on a host the rule does not
    /// allow.
    pub(super) fn redirect(&self, from: &Url, to: &Url) -> std::result::Result<(), String> {
        if from.scheme() == "https" && to.scheme() == "http" && !self.allows(&host_port(to)) {
            return Err(format!(
                "{} redirected to {} over plain HTTP, which Berth does not follow: a login or \
                 token would travel in clear; if that host is on a network you trust, list \
                 {} under [registries] insecure in berthd's config",
                host_port(from),
                host_port(to),
                host_port(to)
            ));
        }
        Ok(())
    }

    /// Whether a token may be asked of the token server at `realm`, which
    /// `registry` (reached at `registry_host`) sent us to, with a login
    /// (`with_login`) or anonymously.
    pub(super) fn check_realm(
        &self,
        registry: &str,
        registry_host: &str,
        realm: &Url,
        with_login: bool,
    ) -> Result<()> {
        match realm.scheme() {
            "https" => return Ok(()),
            "http" => {}
            _ => {
                return Err(Error::Unsupported(format!(
                    "registry {registry} sent a token server address `{realm}` that is not \
                     http(s)"
                )))
            }
        }
        let realm_host = host_port(realm);
        if !self.allows(registry_host) {
            return Err(Error::PlainHttp {
                registry: registry.to_string(),
                message: format!(
                    "registry {registry} is reached over HTTPS but sends clients to its token \
                     server {realm} over plain HTTP; Berth refuses, so that logins and tokens \
                     do not travel in clear. Ask the registry's operator to serve the token \
                     server over HTTPS; only if the whole network to {registry_host} and \
                     {realm_host} is trusted, list {registry_host} under [registries] \
                     insecure in berthd's config"
                ),
            });
        }
        if with_login && !self.allows(&realm_host) {
            return Err(Error::PlainHttp {
                registry: registry.to_string(),
                message: format!(
                    "registry {registry} sends clients to its token server {realm} over plain \
                     HTTP, and {realm_host} is neither loopback nor listed as insecure; Berth \
                     will not send your login for {registry} there in clear. Serve the token \
                     server over HTTPS, list {realm_host} under [registries] insecure in \
                     berthd's config if the network to it is trusted, or `berth logout \
                     {registry}` to pull anonymously"
                ),
            });
        }
        Ok(())
    }
}

/// `localhost`, or an address literal that is loopback. Not resolved: see
/// the module docs.
fn is_loopback_name(bare: &str) -> bool {
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` of a URL as people write it (`[::1]:5000` for IPv6), the
/// port left out when the URL has none.
pub(super) fn host_port(u: &Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `host` of `host:port`, `[::1]:5000` → `[::1]`; a bare IPv6 address stays whole.
pub(super) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|i| &host[..=i]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn rule() -> PlainHttp {
        PlainHttp::new(&["registry.lan:5000".into(), "http://plain.example/".into()])
    }

    #[test]
    fn loopback_is_decided_by_the_name_as_written() {
        let p = rule();
        for host in [
            "localhost",
            "LOCALHOST:5000",
            "127.0.0.1",
            "127.1.2.3:5000",
            "[::1]:5000",
            "::1",
        ] {
            assert!(p.allows(host), "{host}");
        }
        // Names that resolve to 127.0.0.1 somewhere (the machine's own name,
        // public "localtest" names) are not loopback: DNS is not proof.
        for host in [
            "vm",
            "localtest.me:5000",
            "localhost.evil.com",
            "app.localhost",
            "128.0.0.1:5000",
            "[::2]:5000",
            "192.0.2.2:5000",
        ] {
            assert!(!p.allows(host), "{host}");
        }
    }

    #[test]
    fn insecure_entries_match_with_or_without_their_port() {
        let p = rule();
        assert!(p.allows("registry.lan:5000"));
        assert!(!p.allows("registry.lan:5001"));
        assert!(!p.allows("registry.lan"));
        assert!(p.allows("plain.example"));
        assert!(p.allows("Plain.Example:8080"));
    }

    #[test]
    fn an_https_realm_is_always_fine() {
        let p = rule();
        for (registry, with_login) in [("ghcr.io", true), ("127.0.0.1:5000", true)] {
            p.check_realm(
                registry,
                registry,
                &url("https://auth.example/token"),
                with_login,
            )
            .unwrap();
        }
    }

    #[test]
    fn an_http_realm_of_an_https_registry_is_refused() {
        let p = rule();
        for with_login in [true, false] {
            let e = p
                .check_realm(
                    "ghcr.io",
                    "ghcr.io",
                    &url("http://ghcr.io/token"),
                    with_login,
                )
                .unwrap_err();
            assert!(matches!(e, Error::PlainHttp { .. }), "{e}");
            let m = e.to_string();
            assert!(m.contains("registry ghcr.io is reached over HTTPS"), "{m}");
            assert!(m.contains("http://ghcr.io/token"), "{m}");
            assert!(m.contains("[registries] insecure"), "{m}");
        }
        // docker.io is reached at registry-1.docker.io: the rule looks at
        // the host actually spoken to.
        assert!(p
            .check_realm(
                "docker.io",
                "registry-1.docker.io",
                &url("http://auth.docker.io/token"),
                false
            )
            .is_err());
        // A realm on loopback does not make an HTTPS registry's realm fine.
        assert!(p
            .check_realm(
                "ghcr.io",
                "ghcr.io",
                &url("http://127.0.0.1:9/token"),
                false
            )
            .is_err());
    }

    #[test]
    fn an_http_realm_of_a_loopback_or_insecure_registry() {
        let p = rule();
        // On loopback or an insecure-listed host: fine, with or without login.
        for (registry, realm) in [
            ("127.0.0.1:5000", "http://127.0.0.1:5001/token"),
            ("localhost:5000", "http://localhost:5001/token"),
            ("registry.lan:5000", "http://plain.example/token"),
            ("registry.lan:5000", "http://registry.lan:5000/token"),
        ] {
            for with_login in [true, false] {
                p.check_realm(registry, registry, &url(realm), with_login)
                    .unwrap_or_else(|e| panic!("{registry} {realm}: {e}"));
            }
        }
        // On any other host: anonymous only; a login is not sent in clear.
        for (registry, realm) in [
            ("127.0.0.1:5000", "http://192.0.2.2:5001/token"),
            ("127.0.0.1:5000", "http://vm:5001/token"),
            ("registry.lan:5000", "http://registry.lan:5001/token"),
        ] {
            p.check_realm(registry, registry, &url(realm), false)
                .unwrap_or_else(|e| panic!("{registry} {realm}: {e}"));
            let e = p
                .check_realm(registry, registry, &url(realm), true)
                .unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, Error::PlainHttp { .. }), "{m}");
            assert!(m.contains(realm), "{m}");
            assert!(
                m.contains(&format!("will not send your login for {registry}")),
                "{m}"
            );
            assert!(m.contains(&format!("berth logout {registry}")), "{m}");
        }
    }

    #[test]
    fn other_realm_schemes_are_unsupported() {
        let e = rule()
            .check_realm("r", "127.0.0.1", &url("file:///etc/passwd"), false)
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
    }

    #[test]
    fn no_step_down_to_plain_http_on_a_host_the_rule_does_not_allow() {
        let p = rule();
        let refused = [
            // Same host and port: reqwest would keep `Authorization`.
            (
                "https://reg.example:5000/v2/a/blobs/x",
                "http://reg.example:5000/x",
            ),
            ("https://reg.example/v2/", "http://cdn.example/blob"),
            ("https://auth.example/token", "http://auth.example/token"),
        ];
        for (from, to) in refused {
            let e = p.redirect(&url(from), &url(to)).unwrap_err();
            assert!(e.contains("over plain HTTP"), "{e}");
            assert!(e.contains("[registries] insecure"), "{e}");
        }
        let followed = [
            ("https://reg.example/v2/", "https://cdn.example/blob"),
            ("https://reg.example/v2/", "http://127.0.0.1:9000/blob"),
            ("https://reg.example/v2/", "http://registry.lan:5000/blob"),
            ("http://127.0.0.1:5000/v2/", "http://minio.lan:9000/blob"),
            ("http://127.0.0.1:5000/v2/", "https://cdn.example/blob"),
        ];
        for (from, to) in followed {
            p.redirect(&url(from), &url(to))
                .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
        }
    }

    #[test]
    fn host_port_and_strip_port() {
        assert_eq!(host_port(&url("http://[::1]:5000/x")), "[::1]:5000");
        assert_eq!(host_port(&url("https://a.b/x")), "a.b");
        assert_eq!(host_port(&url("http://a.b:80/x")), "a.b");
        assert_eq!(strip_port("a.b:5000"), "a.b");
        assert_eq!(strip_port("[::1]:5000"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
