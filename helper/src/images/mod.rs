//! Images: names, what they point at, and the verbs on them.
//!
//! An image is a name (`docker.io/library/busybox:latest`) pointing at a
//! manifest digest, recorded in [`crate::state`]; its content is blobs in
//! [`crate::content`] and unpacked layer directories in [`crate::layers`],
//! both shared between images. One file per verb: `pull.rs`, `remove.rs`
//! (rmi and prune), `export.rs`, `inspect.rs`.
//!
//! Lifecycle and crash safety: a pull writes blobs, then layer directories
//! (each atomically), and records the name last, in one transaction; removal
//! deletes the record first and the files after. Garbage collection is mark
//! and sweep over what the database still references. Pulls and exports hold
//! a shared lease on the store for their whole run and collection holds it
//! exclusively, so a collection never deletes what a running pull has
//! written but not yet recorded.

mod export;
mod inspect;
mod pull;
mod remove;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::RwLock;

pub use inspect::redact_inspect;
pub use pull::{LayerProgress, PullProgress, PullResult};
pub use remove::PruneReport;

use crate::config::Config;
use crate::content::{ContentStore, Digest};
use crate::layers::LayerStore;
use crate::reference::{Reference, ReferenceError};
use crate::registry::{self, CredentialStore, RegistryClient};
use crate::state::{Db, NameRecord};

/// Errors of image operations; each wraps the module that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Content(#[from] crate::content::Error),
    #[error(transparent)]
    Layer(#[from] crate::layers::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// The image store: database, blobs, layers and the registry client.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    db: Db,
    content: ContentStore,
    layers: LayerStore,
    registry: RegistryClient,
    config: Config,
    /// Shared by pulls and exports, exclusive for garbage collection.
    lease: RwLock<()>,
}

impl ImageStore {
    /// Open the store under `root` (creating it).
    pub fn open(
        root: &Path,
        config: Config,
        creds: Arc<dyn CredentialStore>,
    ) -> Result<ImageStore> {
        crate::fsmode::make_dir(root, crate::fsmode::DIR).map_err(|source| Error::Io {
            what: format!("creating {}", root.display()),
            source,
        })?;
        let db = Db::open(&root.join("berth.db"))?;
        let content = ContentStore::open(&root.join("content"))?;
        let layers = LayerStore::open(&root.join("layers"))?;
        let registry = RegistryClient::new(
            registry::ClientOptions {
                insecure: config.registries.insecure.clone(),
                ..registry::ClientOptions::default()
            },
            creds,
        )?;
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                db,
                content,
                layers,
                registry,
                config,
                lease: RwLock::new(()),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// berthd's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    pub fn layers(&self) -> &LayerStore {
        &self.inner.layers
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Every name, with the facts `berth images` shows and the containers
    /// made from its image.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let db = &self.inner.db;
        // Containers by image id: a container records the manifest it was
        // made from, and the same image may be known by several names.
        let mut configs: std::collections::HashMap<Digest, Option<Digest>> = Default::default();
        let mut used_by: std::collections::HashMap<Digest, Vec<String>> = Default::default();
        for c in db.containers()? {
            let config = match configs.get(&c.manifest) {
                Some(config) => config.clone(),
                None => {
                    let config = db.manifest(&c.manifest)?.map(|m| m.config);
                    configs.insert(c.manifest.clone(), config.clone());
                    config
                }
            };
            if let Some(config) = config {
                used_by.entry(config).or_default().push(c.name);
            }
        }
        let mut out = Vec::new();
        for n in db.names()? {
            let Some(m) = db.manifest(&n.manifest)? else {
                continue;
            };
            let mut users = used_by.get(&m.config).cloned().unwrap_or_default();
            users.sort();
            out.push(ImageSummary {
                name: n.name,
                digest: n.target,
                id: m.config,
                created: m.created,
                size: m.size,
                pulled: n.pulled,
                used_by: users,
            });
        }
        Ok(out)
    }

    /// Find the image a person means by `input`: a reference (`busybox`,
    /// `host/repo:tag`, `repo@sha256:…`) or an image id (prefix).
    pub fn find(&self, input: &str) -> Result<NameRecord> {
        let db = &self.inner.db;
        let as_ref = input.parse::<Reference>();
        if let Ok(r) = &as_ref {
            if let Some(n) = db.name(&r.to_string())? {
                return Ok(n);
            }
        }
        let id = input.strip_prefix("sha256:").unwrap_or(input);
        if id.len() >= 4 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = Vec::new();
            for n in db.names()? {
                if let Some(m) = db.manifest(&n.manifest)? {
                    if m.config.hex().starts_with(id) || n.manifest.hex().starts_with(id) {
                        hits.push(n);
                    }
                }
            }
            match hits.len() {
                0 => {}
                1 => return Ok(hits.remove(0)),
                _ => {
                    let names: Vec<_> = hits.iter().map(|n| n.name.as_str()).collect();
                    return Err(Error::Ambiguous(format!(
                        "`{input}` matches several images ({}); name one of them",
                        names.join(", ")
                    )));
                }
            }
        }
        match as_ref {
            Err(e) if !id.bytes().all(|b| b.is_ascii_hexdigit()) => Err(e.into()),
            _ => Err(Error::NotFound(format!(
                "no image `{input}` in the store; `berth images` lists what is there, \
                 `berth pull {input}` fetches it"
            ))),
        }
    }

    /// Hold the shared lease for work that must not race a collection.
    async fn shared_lease(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.inner.lease.read().await
    }

    async fn exclusive_lease(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.inner.lease.write().await
    }
}

/// One row of `berth images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub name: String,
    pub digest: Digest,
    pub id: Digest,
    pub created: i64,
    pub size: u64,
    pub pulled: i64,
    /// Names of the containers made from this image, sorted.
    pub used_by: Vec<String>,
}

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T10:20:30.5Z`,
/// `…+02:00`), as image configs write them. None when it does not parse.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        rest = &frac[end..];
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456789Z"),
            Some(1709208000)
        );
        assert_eq!(parse_rfc3339("2024-02-29T14:00:00+02:00"), Some(1709208000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
