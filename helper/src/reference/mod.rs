//! Image references, with Docker's defaults.
//!
//! `busybox` means `docker.io/library/busybox:latest`; `me/app` means
//! `docker.io/me/app:latest`; the first component is a registry host when it
//! contains a `.` or a `:` or is `localhost` (Docker's rule), so
//! `127.0.0.1:5000/a/b:tag` and `ghcr.io/a/b` name other registries. A digest
//! (`name@sha256:…`) pins the content; a tag may stand beside it and is then
//! only informative, as in Docker.

use std::fmt;
use std::str::FromStr;

use crate::content::Digest;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's API really lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path: `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a string is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid image reference: {why}")]
pub struct ReferenceError {
    pub input: String,
    pub why: String,
}

impl Reference {
    /// The host to talk to (Docker Hub's API host for `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The reference with its digest replaced, tag dropped (`repo@sha256:…`).
    pub fn with_digest(&self, d: &Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(d.clone()),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form people type: `busybox:latest` for Docker Hub's
    /// library images, `me/app:1` for other Hub images, the full name elsewhere.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        let mut s = name;
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ReferenceError {
            input: input.to_string(),
            why: why.to_string(),
        };
        if input.is_empty() {
            return Err(err(
                "it is empty; give an image name such as `busybox` or `ghcr.io/owner/app:tag`",
            ));
        }
        if input.len() > 255 + 128 + 72 {
            return Err(err("it is too long"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it contains white space"));
        }

        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| err(&e.to_string()))?),
            ),
            None => (input, None),
        };

        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(err(&format!(
                    "tag `{t}` is not valid (up to 128 of letters, digits, `_`, `.`, `-`, not starting with `.` or `-`)"
                )));
            }
        }

        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if !valid_host(&registry) {
            return Err(err(&format!("registry host `{registry}` is not valid")));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() {
            return Err(err("the repository name is missing"));
        }
        for comp in repository.split('/') {
            if !valid_path_component(comp) {
                return Err(err(&format!(
                    "repository component `{comp}` must be lowercase letters and digits, \
                     separated by `.`, `_`, `__` or `-`"
                )));
            }
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Distribution's path component grammar: `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("me/app").to_string(), "docker.io/me/app:latest");
        assert_eq!(
            r("busybox:1.36").to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(r("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(r("busybox").familiar(), "busybox:latest");
    }

    #[test]
    fn other_registries() {
        let x = r("127.0.0.1:5000/a/b:tag");
        assert_eq!(x.registry, "127.0.0.1:5000");
        assert_eq!(x.repository, "a/b");
        assert_eq!(x.tag.as_deref(), Some("tag"));
        assert_eq!(x.familiar(), "127.0.0.1:5000/a/b:tag");
        let y = r("localhost/x");
        assert_eq!(y.registry, "localhost");
        assert_eq!(y.repository, "x");
        assert_eq!(r("ghcr.io/owner/app").registry, "ghcr.io");
        assert_eq!(r("localhost:5000/x").registry, "localhost:5000");
    }

    #[test]
    fn digests() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let x = r(&format!("busybox@{d}"));
        assert_eq!(x.tag, None);
        assert_eq!(x.target(), d);
        let y = r(&format!("127.0.0.1:5000/a:v1@{d}"));
        assert_eq!(y.tag.as_deref(), Some("v1"));
        assert_eq!(y.target(), d);
    }

    #[test]
    fn clear_errors() {
        for (bad, says) in [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("a//b", "component"),
            ("busybox@sha256:123", "digest"),
            ("host:99999/x", "host"),
            ("bad host/x", "white space"),
            ("a/b-/c", "component"),
        ] {
            let e = bad.parse::<Reference>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn separators() {
        assert!(valid_path_component("a.b_c__d---e"));
        assert!(!valid_path_component("a___b"));
        assert!(!valid_path_component("a..b"));
        assert!(!valid_path_component("-a"));
    }
}
