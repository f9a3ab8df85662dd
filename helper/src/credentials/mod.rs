//! Registry credentials stored by `berth login`.
//!
//! One JSON file, `<root>/auth.json`, mode 0600, owned by root: only berthd
//! (and root) can read the passwords. Written to a temp file and renamed, so
//! a crash never leaves a half-written file.
//!
//! ```json
//! { "auths": { "ghcr.io": { "auth": "<base64 user:password>" } } }
//! ```
//! (the same shape as Docker's `config.json`, so people recognise it).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::registry::{CredentialStore, Credentials};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the credentials file {0} is damaged ({1}); remove it and log in again")]
    Damaged(PathBuf, String),
}

#[derive(Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Serialize, Deserialize)]
struct AuthEntry {
    auth: String,
}

/// The credential file, cached in memory.
pub struct FileCredentials {
    path: PathBuf,
    cache: RwLock<AuthFile>,
}

impl FileCredentials {
    pub fn open(root: &Path) -> Result<FileCredentials, Error> {
        let path = root.join("auth.json");
        let file = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Damaged(path.clone(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AuthFile::default(),
            Err(source) => {
                return Err(Error::Io {
                    what: "reading",
                    path,
                    source,
                })
            }
        };
        Ok(FileCredentials {
            path,
            cache: RwLock::new(file),
        })
    }

    /// Store credentials for `host`.
    pub fn login(&self, host: &str, username: &str, password: &str) -> Result<(), Error> {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.update(|f| {
            f.auths.insert(host.to_string(), AuthEntry { auth });
        })
    }

    /// Forget `host`; returns false if nothing was stored for it.
    pub fn logout(&self, host: &str) -> Result<bool, Error> {
        let mut had = false;
        self.update(|f| had = f.auths.remove(host).is_some())?;
        Ok(had)
    }

    fn update(&self, change: impl FnOnce(&mut AuthFile)) -> Result<(), Error> {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        change(&mut cache);
        let bytes = serde_json::to_vec_pretty(&*cache).expect("credentials serialise");
        let tmp = self.path.with_extension("json.tmp");
        let io = |what, source| Error::Io {
            what,
            path: tmp.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("writing", e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| io("writing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("renaming", e))?;
        Ok(())
    }
}

impl CredentialStore for FileCredentials {
    fn get(&self, host: &str) -> Option<Credentials> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let entry = cache.auths.get(host)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&entry.auth)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (username, password) = text.split_once(':')?;
        Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn login_logout_roundtrip_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCredentials::open(dir.path()).unwrap();
        c.login("r.example:5000", "me", "p:w").unwrap();
        let mode = std::fs::metadata(dir.path().join("auth.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = FileCredentials::open(dir.path()).unwrap();
        let got = again.get("r.example:5000").unwrap();
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("me", "p:w")
        );
        assert!(again.logout("r.example:5000").unwrap());
        assert!(!again.logout("r.example:5000").unwrap());
        assert!(FileCredentials::open(dir.path())
            .unwrap()
            .get("r.example:5000")
            .is_none());
    }
}
