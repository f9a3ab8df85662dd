//! A small distribution-API client for pushing test images and checking what
//! a registry holds, independent of the registry code under test.
//!
//! Auth follows the challenge: a request goes out with whatever
//! `Authorization` last worked for its repository; on 401 the
//! `WWW-Authenticate` header decides: `Bearer` fetches a token from the realm
//! (with Basic credentials if the client has them) for the challenge's scope,
//! `Basic` sends the credentials. Then the request is retried once.

use crate::http::{self, Response};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Media types a manifest GET accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub content_type: String,
    /// `Docker-Content-Digest` as served.
    pub digest_header: Option<String>,
    pub body: Vec<u8>,
}

impl Manifest {
    /// sha256 of the bytes actually received.
    pub fn digest(&self) -> String {
        crate::sha256_digest(&self.body)
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("parsing a manifest")
    }
}

/// Talks to one registry host.
#[derive(Debug)]
pub struct RegistryClient {
    host: String,
    credentials: Option<(String, String)>,
    /// repository ("" for /v2/) → Authorization header value
    auth: Mutex<HashMap<String, String>>,
}

impl Clone for RegistryClient {
    fn clone(&self) -> Self {
        Self {
            host: self.host.clone(),
            credentials: self.credentials.clone(),
            auth: Mutex::new(self.auth.lock().unwrap().clone()),
        }
    }
}

impl RegistryClient {
    /// A client for `host` (`127.0.0.1:PORT`), plain HTTP.
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_string(),
            credentials: None,
            auth: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.to_string(), password.to_string()));
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// One request with auth handling. `path_or_url` is `/v2/...` or a full
    /// `http://` URL (upload locations).
    pub fn request(
        &self,
        method: &str,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        let url = if path_or_url.starts_with("http://") {
            path_or_url.to_string()
        } else {
            format!("http://{}{}", self.host, path_or_url)
        };
        let (_, path) = http::split_url(&url)?;
        let repo = repo_of(&path);
        let send = |auth: Option<&str>| {
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if let Some(auth) = auth {
                all.push(("Authorization", auth));
            }
            http::request(method, &url, &all, body)
        };
        let cached = self.auth.lock().unwrap().get(&repo).cloned();
        let response = send(cached.as_deref())?;
        if response.status != 401 {
            return Ok(response);
        }
        let Some(challenge) = response.header("www-authenticate") else {
            return Ok(response);
        };
        let auth = self
            .authorize(challenge)
            .with_context(|| format!("answering the auth challenge for {method} {url}"))?;
        self.auth.lock().unwrap().insert(repo, auth.clone());
        send(Some(&auth))
    }

    /// The `Authorization` value that answers `challenge`.
    fn authorize(&self, challenge: &str) -> Result<String> {
        let (scheme, params) = parse_challenge(challenge)
            .with_context(|| format!("unparseable challenge {challenge:?}"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let (user, password) = self
                    .credentials
                    .as_ref()
                    .context("the registry wants Basic credentials and the client has none")?;
                Ok(http::basic_auth(user, password))
            }
            "bearer" => {
                let realm = params
                    .get("realm")
                    .context("bearer challenge without realm")?;
                let mut query = Vec::new();
                if let Some(service) = params.get("service") {
                    query.push(format!("service={}", http::percent_encode(service)));
                }
                if let Some(scope) = params.get("scope") {
                    for scope in scope.split(' ') {
                        query.push(format!("scope={}", http::percent_encode(scope)));
                    }
                }
                let url = if query.is_empty() {
                    realm.clone()
                } else {
                    format!("{realm}?{}", query.join("&"))
                };
                let basic = self
                    .credentials
                    .as_ref()
                    .map(|(u, p)| http::basic_auth(u, p));
                let mut headers = Vec::new();
                if let Some(basic) = &basic {
                    headers.push(("Authorization", basic.as_str()));
                }
                let reply = http::request("GET", &url, &headers, &[])?.ok_for("token request")?;
                let json = reply.json()?;
                let token = json["token"]
                    .as_str()
                    .or(json["access_token"].as_str())
                    .context("token reply without token")?;
                Ok(format!("Bearer {token}"))
            }
            other => bail!("unsupported auth scheme {other}"),
        }
    }

    /// `GET /v2/`; Ok when the registry answers 200 (after auth).
    pub fn ping(&self) -> Result<()> {
        self.request("GET", "/v2/", &[], &[])?.ok_for("GET /v2/")?;
        Ok(())
    }

    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = self.request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            s => bail!("HEAD blob {digest} in {repo}: HTTP {s}"),
        }
    }

    /// Monolithic upload (`POST` then `PUT ?digest=`), skipped if present.
    pub fn upload_blob(&self, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
        if self.blob_exists(repo, digest)? {
            return Ok(());
        }
        let started = self
            .request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])?
            .ok_for(&format!("starting an upload to {repo}"))?;
        let location = started
            .header("location")
            .context("upload started without a Location")?;
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.host)
        } else {
            location.to_string()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", http::percent_encode(digest));
        let size = data.len().to_string();
        self.request(
            "PUT",
            &url,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &size),
            ],
            data,
        )?
        .ok_for(&format!("uploading blob {digest} to {repo}"))?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the digest the
    /// registry reports.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String> {
        let r = self
            .request(
                "PUT",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                body,
            )?
            .ok_for(&format!("putting manifest {repo}:{reference}"))?;
        Ok(r.header("docker-content-digest")
            .map(str::to_string)
            .unwrap_or_else(|| crate::sha256_digest(body)))
    }

    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Manifest> {
        let r = self
            .request(
                "GET",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", MANIFEST_ACCEPT)],
                &[],
            )?
            .ok_for(&format!("getting manifest {repo}:{reference}"))?;
        Ok(Manifest {
            content_type: r.header("content-type").unwrap_or("").to_string(),
            digest_header: r.header("docker-content-digest").map(str::to_string),
            body: r.body,
        })
    }

    pub fn get_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        let r = self
            .request("GET", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])?
            .ok_for(&format!("getting blob {digest} from {repo}"))?;
        Ok(r.body)
    }

    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<()> {
        self.request(
            "DELETE",
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            &[],
        )?
        .ok_for(&format!("deleting manifest {repo}@{digest}"))?;
        Ok(())
    }

    pub fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let r = self
            .request("GET", &format!("/v2/{repo}/tags/list"), &[], &[])?
            .ok_for(&format!("listing tags of {repo}"))?;
        let json = r.json()?;
        Ok(json["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The repository a `/v2/<repo>/{blobs,manifests,tags}/...` path is about
/// ("" for anything else).
pub fn repo_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/v2/") else {
        return String::new();
    };
    for marker in ["/blobs/", "/manifests/", "/tags/"] {
        if let Some(i) = rest.find(marker) {
            return rest[..i].to_string();
        }
    }
    String::new()
}

/// Parses `Bearer realm="...",service="...",scope="a:b:pull,push"`.
pub fn parse_challenge(value: &str) -> Option<(String, BTreeMap<String, String>)> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val);
    }
    Some((scheme.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_scope() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "http://127.0.0.1:1/token");
        assert_eq!(p["service"], "svc");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn finds_the_repository_of_a_path() {
        assert_eq!(repo_of("/v2/unsafe/abs/manifests/latest"), "unsafe/abs");
        assert_eq!(repo_of("/v2/a/blobs/uploads/x?_state=1"), "a");
        assert_eq!(repo_of("/v2/"), "");
    }
}
