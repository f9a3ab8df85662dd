//! Registry logins stored by `berth login`, one set per local user.
//!
//! A login belongs to the uid that stored it (the bus says who that is,
//! never an argument), and only pulls and installs that uid starts use it
//! (issue 11: before, one file keyed by host let anyone who may pull use
//! anyone's login, and anyone who may log in replace anyone's).
//!
//! # Layout
//!
//! ```text
//! <root>/auth/            0700 root: only berthd (and root) go in
//!         <uid>.json      0600 root: that user's logins
//! ```
//! Each file has the shape of Docker's `config.json`, so people recognise it:
//! ```json
//! { "auths": { "ghcr.io": { "auth": "<base64 user:password>" } } }
//! ```
//! One file per uid rather than one file mapping uids to logins: a login or
//! logout rewrites only the caller's own file, so it can neither lose nor
//! touch another user's; a damaged file is one user's; and removing a user's
//! logins is removing one file.
//!
//! # Lifecycle
//!
//! [`FileCredentials::open`] makes the directory (or tightens it to 0700),
//! reads every `<uid>.json` into memory and migrates an older berthd's file
//! (below). A login or logout changes a copy of the caller's set, writes it
//! to `<uid>.json.tmp` (0600), syncs it and renames it over `<uid>.json`,
//! then syncs the directory; only then does the copy in memory change, so a
//! failed write changes nothing. A set that becomes empty removes its file.
//! A crash leaves the old file or the new one, never half of one; a stray
//! `.tmp` is ignored and overwritten by the next write.
//!
//! # Migration
//!
//! An older berthd kept every login in `<root>/auth.json`, keyed by host
//! only. At start its logins become root's (`0.json`): an older berthd let
//! only root, an administrator (polkit `auth_admin`) or a member of group
//! `berth` (root-equivalent) write that file, so root's is the reading that
//! gives no one a login they could not already use. A login root already has
//! in `0.json` for the same host wins (it was stored later). The old file is
//! removed once `0.json` is written; a crash in between migrates again at
//! the next start, so nothing is lost.
//!
//! A damaged file (one user's, or the older berthd's) is logged and left
//! where it is for an administrator; berthd starts without those logins,
//! and a user's next login replaces their own damaged file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::registry::{CredentialStore, Credentials, Requester};

/// The directory of per-user files, under the root.
const DIR: &str = "auth";
/// The single file of an older berthd, under the root.
const LEGACY_FILE: &str = "auth.json";
/// root's uid: the owner of migrated logins.
const ROOT_UID: u32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {source}; check that berthd runs as root and the disk is writable")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the credentials file {0} is damaged ({1}); remove it, and its user logs in again \
         with `berth login`"
    )]
    Damaged(PathBuf, String),
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Clone, Serialize, Deserialize)]
struct AuthEntry {
    auth: String,
}

/// Every user's logins, cached in memory.
pub struct FileCredentials {
    dir: PathBuf,
    /// By uid; a uid without logins has no entry.
    cache: RwLock<BTreeMap<u32, AuthFile>>,
}

impl FileCredentials {
    /// Open (making `<root>/auth` if needed) and migrate an older berthd's
    /// `<root>/auth.json` to root's logins.
    pub fn open(root: &Path) -> Result<FileCredentials, Error> {
        let dir = root.join(DIR);
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        // Also tightens a directory made some other way (by hand, a restore).
        crate::fsmode::private_dir(&dir).map_err(io("making", &dir))?;
        let mut users = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let entry = entry.map_err(io("reading", &dir))?;
            let name = entry.file_name();
            // Only `<uid>.json` as berthd writes it; `.tmp` leftovers and
            // anything else are not logins.
            let Some(uid) = name.to_str().and_then(uid_of_file) else {
                continue;
            };
            // A damaged file is its user's alone: berthd starts, that user's
            // logins are not used, and their next login replaces the file.
            match read_file(&entry.path()) {
                Ok(Some(file)) => {
                    users.insert(uid, file);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let me = FileCredentials {
            dir,
            cache: RwLock::new(users),
        };
        me.migrate(root)?;
        Ok(me)
    }

    /// Store `uid`'s credentials for `host`.
    pub fn login(&self, uid: u32, host: &str, username: &str, password: &str) -> Result<(), Error> {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.update(uid, |f| {
            f.auths.insert(host.to_string(), AuthEntry { auth });
        })
    }

    /// Forget `uid`'s login for `host`; false if they had none.
    pub fn logout(&self, uid: u32, host: &str) -> Result<bool, Error> {
        let mut had = false;
        self.update(uid, |f| had = f.auths.remove(host).is_some())?;
        Ok(had)
    }

    fn migrate(&self, root: &Path) -> Result<(), Error> {
        let legacy = root.join(LEGACY_FILE);
        // A write the older berthd never finished (its login call failed).
        let _ = std::fs::remove_file(legacy.with_extension("json.tmp"));
        let old = match read_file(&legacy) {
            Ok(Some(old)) => old,
            Ok(None) => return Ok(()),
            // Kept for an administrator to mend: nothing is lost, and
            // berthd still starts for everyone else's logins.
            Err(e) => {
                tracing::warn!("{e}");
                return Ok(());
            }
        };
        let hosts: Vec<String> = old.auths.keys().cloned().collect();
        self.update(ROOT_UID, |mine| {
            for (host, entry) in old.auths {
                mine.auths.entry(host).or_insert(entry);
            }
        })?;
        std::fs::remove_file(&legacy).map_err(|source| Error::Io {
            what: "removing",
            path: legacy.clone(),
            source,
        })?;
        tracing::info!(
            "registry logins of {} (written by an older berthd, for every user) are now \
             root's, in {}: {}; other users log in again with `berth login`",
            legacy.display(),
            self.path(ROOT_UID).display(),
            if hosts.is_empty() {
                "none".to_string()
            } else {
                hosts.join(", ")
            }
        );
        Ok(())
    }

    fn path(&self, uid: u32) -> PathBuf {
        self.dir.join(format!("{uid}.json"))
    }

    /// Change `uid`'s logins: on disk first, then in memory.
    fn update(&self, uid: u32, change: impl FnOnce(&mut AuthFile)) -> Result<(), Error> {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        let mut next = cache.get(&uid).cloned().unwrap_or_default();
        change(&mut next);
        self.write(uid, &next)?;
        if next.auths.is_empty() {
            cache.remove(&uid);
        } else {
            cache.insert(uid, next);
        }
        Ok(())
    }

    fn write(&self, uid: u32, file: &AuthFile) -> Result<(), Error> {
        let path = self.path(uid);
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        if file.auths.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing", &path)(e))
                }
                _ => {}
            }
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing", &self.dir))
        } else {
            // `<uid>.json.tmp` (0600, also when a leftover was looser),
            // synced, renamed over, the directory synced.
            let bytes = serde_json::to_vec_pretty(file).expect("credentials serialise");
            crate::fsmode::write_durable(&path, &bytes).map_err(io("writing", &path))
        }
    }
}

/// The uid of `<uid>.json`, written as berthd writes it (no sign, no
/// leading zeros).
fn uid_of_file(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".json")?;
    let uid: u32 = stem.parse().ok()?;
    (uid.to_string() == stem).then_some(uid)
}

/// The logins in `path`, `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<AuthFile>, Error> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Damaged(path.to_path_buf(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            what: "reading",
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl CredentialStore for FileCredentials {
    fn get(&self, who: Requester, host: &str) -> Option<Credentials> {
        let Requester::User(uid) = who else {
            return None;
        };
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(&uid)?.auths.get(host)?;
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

    const HOST: &str = "r.example:5000";
    const ALICE: u32 = 1000;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn login_of(c: &FileCredentials, who: Requester) -> Option<(String, String)> {
        c.get(who, HOST).map(|c| (c.username, c.password))
    }

    fn hosts(c: &FileCredentials, uid: u32) -> Vec<String> {
        let cache = c.cache.read().unwrap();
        cache
            .get(&uid)
            .map(|f| f.auths.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn pair(u: &str, p: &str) -> Option<(String, String)> {
        Some((u.to_string(), p.to_string()))
    }

    #[test]
    fn login_logout_roundtrip_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCredentials::open(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join("auth")), 0o700);
        c.login(ALICE, HOST, "me", "p:w").unwrap();
        assert_eq!(mode(&dir.path().join("auth/1000.json")), 0o600);
        let again = FileCredentials::open(dir.path()).unwrap();
        assert_eq!(login_of(&again, Requester::User(ALICE)), pair("me", "p:w"));
        assert_eq!(hosts(&again, ALICE), [HOST]);
        assert!(again.logout(ALICE, HOST).unwrap());
        assert!(!again.logout(ALICE, HOST).unwrap());
        // An empty set leaves no file behind.
        assert!(!dir.path().join("auth/1000.json").exists());
        assert!(login_of(
            &FileCredentials::open(dir.path()).unwrap(),
            Requester::User(ALICE)
        )
        .is_none());
    }

    #[test]
    fn each_user_has_their_own_logins() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCredentials::open(dir.path()).unwrap();
        c.login(0, HOST, "root-user", "root-pw").unwrap();
        // Another user sees none of root's, and nobody's is anonymous.
        assert!(login_of(&c, Requester::User(ALICE)).is_none());
        assert!(login_of(&c, Requester::Anonymous).is_none());
        c.login(ALICE, HOST, "alice", "alice-pw").unwrap();
        assert_eq!(
            login_of(&c, Requester::User(0)),
            pair("root-user", "root-pw")
        );
        assert_eq!(
            login_of(&c, Requester::User(ALICE)),
            pair("alice", "alice-pw")
        );
        // Alice's logout is hers alone.
        assert!(c.logout(ALICE, HOST).unwrap());
        assert!(!c.logout(ALICE, HOST).unwrap());
        let again = FileCredentials::open(dir.path()).unwrap();
        assert_eq!(
            login_of(&again, Requester::User(0)),
            pair("root-user", "root-pw")
        );
        assert!(login_of(&again, Requester::User(ALICE)).is_none());
    }

    #[test]
    fn an_older_berthds_file_becomes_roots() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("auth.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &legacy,
            format!(
                r#"{{"auths":{{"{HOST}":{{"auth":"{}"}},"ghcr.io":{{"auth":"{}"}}}}}}"#,
                b64("old:pw"),
                b64("gh:token")
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("auth.json.tmp"), "{").unwrap();
        // root logged in to ghcr.io since (a crash right after writing
        // 0.json the first time looks the same): root's newer login wins.
        std::fs::create_dir(dir.path().join("auth")).unwrap();
        std::fs::write(
            dir.path().join("auth/0.json"),
            format!(
                r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
                b64("gh:newer")
            ),
        )
        .unwrap();

        let c = FileCredentials::open(dir.path()).unwrap();
        assert!(!legacy.exists(), "the old file stays after migration");
        assert!(!dir.path().join("auth.json.tmp").exists());
        assert_eq!(login_of(&c, Requester::User(0)), pair("old", "pw"));
        let gh = c.get(Requester::User(0), "ghcr.io").unwrap();
        assert_eq!(gh.password, "newer");
        assert!(login_of(&c, Requester::User(ALICE)).is_none());
        assert_eq!(mode(&dir.path().join("auth/0.json")), 0o600);
        // And it stays so.
        let again = FileCredentials::open(dir.path()).unwrap();
        assert_eq!(hosts(&again, 0), ["ghcr.io", HOST]);
    }

    #[test]
    fn a_damaged_file_is_kept_and_stops_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("auth.json");
        std::fs::write(&legacy, "{ not json").unwrap();
        let c = FileCredentials::open(dir.path()).unwrap();
        assert!(legacy.exists(), "the older berthd's file was lost");
        c.login(7, HOST, "u", "p").unwrap();
        // One user's damaged file: berthd opens, the others' logins load.
        std::fs::write(dir.path().join("auth/8.json"), "{ not json").unwrap();
        let c = FileCredentials::open(dir.path()).unwrap();
        assert_eq!(hosts(&c, 7), [HOST]);
        assert!(hosts(&c, 8).is_empty());
        // Its user's next login replaces it.
        c.login(8, HOST, "v", "q").unwrap();
        assert_eq!(
            hosts(&FileCredentials::open(dir.path()).unwrap(), 8),
            [HOST]
        );
    }

    #[test]
    fn the_directory_is_tightened_and_strays_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth");
        std::fs::create_dir(&auth).unwrap();
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o755)).unwrap();
        for stray in ["0001.json", "-1.json", "x.json", "5.json.tmp", "README"] {
            std::fs::write(auth.join(stray), "{ not json").unwrap();
        }
        let c = FileCredentials::open(dir.path()).unwrap();
        assert_eq!(mode(&auth), 0o700);
        assert!(hosts(&c, 1).is_empty() && hosts(&c, 5).is_empty());
        // A leftover temp file with a loose mode is written 0600.
        std::fs::set_permissions(
            auth.join("5.json.tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        c.login(5, HOST, "u", "p").unwrap();
        assert_eq!(mode(&auth.join("5.json")), 0o600);
    }

    #[test]
    fn uid_file_names() {
        assert_eq!(uid_of_file("0.json"), Some(0));
        assert_eq!(uid_of_file("4294967295.json"), Some(u32::MAX));
        for bad in [
            "01.json",
            "+1.json",
            "1.json.tmp",
            "1",
            ".json",
            "4294967296.json",
        ] {
            assert_eq!(uid_of_file(bad), None, "{bad}");
        }
    }
}
