//! The on-disk database: image names, manifests and what they reference.
//!
//! SQLite in `<root>/berth.db`, WAL mode, `synchronous=FULL`. Files (blobs,
//! layer directories) are written and renamed into place *before* a
//! transaction records them, and rows are deleted *before* their files are
//! removed. So after a `kill -9` at any moment the database never points at a
//! missing file; at worst there are files no row points at, which the next
//! pull reuses and `berth image prune` removes.
//!
//! Schema (version 5; version 1 lacked `containers`, version 2 its
//! `userns_*` columns, version 3 `apps`, `ledger` and `volumes`, version 4
//! the `owner` and `pulled_by` columns):
//!
//! ```text
//! manifests                         one platform image manifest
//!   digest        TEXT PK           sha256 of the manifest
//!   config        TEXT              digest of the image config (the image id)
//!   top_chain     TEXT              chain id of the top layer ('' if none)
//!   size          INTEGER           bytes of unpacked layer content
//!   created       INTEGER           from the config, seconds since epoch
//!        │ 1
//!        ├──< manifest_blobs (manifest TEXT, blob TEXT, PK both)
//!        │        every blob the image needs: index (if any), manifest, config, layers
//!        └──< manifest_layers (manifest TEXT, position INTEGER, chain TEXT, diff_id TEXT, PK manifest+position)
//!                 the layer chain, bottom first
//! names                             what `berth images` lists
//!   name          TEXT PK           docker.io/library/busybox:latest or repo@sha256:…
//!   target        TEXT              digest the name resolved to (index or manifest)
//!   manifest      TEXT → manifests  the platform manifest chosen
//!   pulled        INTEGER           seconds since epoch
//!   pulled_by     INTEGER           uid of the last caller who pulled it (0: root, or
//!                                     a row from before version 5)
//! containers                        one container (`berth run`, `berth ps -a`)
//!   id            TEXT PK           64 hex characters
//!   name          TEXT UNIQUE
//!   image         TEXT              the name it was run from
//!   manifest      TEXT → manifests  keeps the image's content alive
//!   options       TEXT              RunOptions as JSON (to run it again)
//!   created       INTEGER
//!   state         TEXT              created | running | exited
//!   started       INTEGER           0 if never
//!   finished      INTEGER           0 if not yet
//!   exit_code     INTEGER
//!   oom_killed    INTEGER           0 or 1
//!   error         TEXT              why it could not start, if it could not
//!   userns_start  INTEGER NULL      --userns=auto: first host id of its block
//!   userns_size   INTEGER NULL        and how many (NULL: the host's ids)
//!   owner         INTEGER           uid that created it (an app's containers: the
//!                                     app's owner); 0 for rows before version 5
//! apps                              one installed app (see crate::apps)
//!   id            TEXT PK           the app's id, a DNS label
//!   catalog       TEXT              the catalog it came from
//!   state         TEXT              installing | installed | updating | removing
//!   desired       TEXT              running | stopped (what berthd restores at start)
//!   options       TEXT              InstallOptions as JSON
//!   removal       TEXT              UninstallOptions as JSON once removing, else ''
//!   installed     INTEGER           seconds since epoch
//!   owner         INTEGER           uid that installed it; 0 for rows before version 5
//!        │ 1
//!        └──< ledger                every resource the app made, recorded before it is made
//!               app TEXT, seq INTEGER (PK both; creation order)
//!               kind TEXT, name TEXT, detail TEXT (see crate::ledger)
//!               made INTEGER        0 = about to be made, 1 = made
//! volumes                           named volumes, kept after an uninstall that keeps data
//!   name          TEXT PK           <app>_<volume>
//!   app           TEXT              the app it belongs to (also when not installed)
//!   created       INTEGER
//! ```
//!
//! A container's host id block is reserved as long as its row exists: the
//! allocator (`containers::userns`) reads every row's, and `rm` frees it by
//! deleting the row.
//!
//! A manifest row goes when no name and no container refer to it.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::content::Digest;

mod apps;
mod containers;
pub use apps::{AppRecord, LedgerRow, VolumeRecord};
pub use containers::{ContainerRecord, StateChange};

const SCHEMA_VERSION: i64 = 5;

const SCHEMA_V1: &str = "
CREATE TABLE manifests (
    digest    TEXT PRIMARY KEY,
    config    TEXT NOT NULL,
    top_chain TEXT NOT NULL,
    size      INTEGER NOT NULL,
    created   INTEGER NOT NULL
);
CREATE TABLE manifest_blobs (
    manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    blob     TEXT NOT NULL,
    PRIMARY KEY (manifest, blob)
);
CREATE TABLE manifest_layers (
    manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain    TEXT NOT NULL,
    diff_id  TEXT NOT NULL,
    PRIMARY KEY (manifest, position)
);
CREATE TABLE names (
    name     TEXT PRIMARY KEY,
    target   TEXT NOT NULL,
    manifest TEXT NOT NULL REFERENCES manifests(digest),
    pulled   INTEGER NOT NULL
);
CREATE INDEX names_manifest ON names(manifest);
";

const SCHEMA_V2: &str = "
CREATE TABLE containers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    image      TEXT NOT NULL,
    manifest   TEXT NOT NULL REFERENCES manifests(digest),
    options    TEXT NOT NULL,
    created    INTEGER NOT NULL,
    state      TEXT NOT NULL,
    started    INTEGER NOT NULL DEFAULT 0,
    finished   INTEGER NOT NULL DEFAULT 0,
    exit_code  INTEGER NOT NULL DEFAULT 0,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    error      TEXT NOT NULL DEFAULT ''
);
";

const SCHEMA_V3: &str = "
ALTER TABLE containers ADD COLUMN userns_start INTEGER;
ALTER TABLE containers ADD COLUMN userns_size INTEGER;
";

const SCHEMA_V4: &str = "
CREATE TABLE apps (
    id        TEXT PRIMARY KEY,
    catalog   TEXT NOT NULL,
    state     TEXT NOT NULL,
    desired   TEXT NOT NULL,
    options   TEXT NOT NULL,
    removal   TEXT NOT NULL DEFAULT '',
    installed INTEGER NOT NULL
);
CREATE TABLE ledger (
    app    TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    name   TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    made   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app, seq)
);
CREATE TABLE volumes (
    name    TEXT PRIMARY KEY,
    app     TEXT NOT NULL,
    created INTEGER NOT NULL
);
";

/// Who made what: reads show environment values and command lines only to
/// root, the owner and holders of the managing right (see `dbus`). Rows
/// written before are root's, the safe reading.
const SCHEMA_V5: &str = "
ALTER TABLE names ADD COLUMN pulled_by INTEGER NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
";

/// Deletes manifests nothing refers to any more.
const DROP_UNUSED_MANIFESTS: &str = "DELETE FROM manifests
    WHERE digest NOT IN (SELECT manifest FROM names)
      AND digest NOT IN (SELECT manifest FROM containers)";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the state database {path} cannot be used: {source}; if it is damaged, move it aside and pull images again")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("making the state database {path} root's alone (mode 0600): {source}")]
    Private {
        path: String,
        source: std::io::Error,
    },
    #[error("the state database was written by a newer berthd (schema {0}); upgrade berthd")]
    TooNew(i64),
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database holds a bad digest: {0}")]
    BadDigest(#[from] crate::content::DigestError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One image as recorded: a platform manifest and its layer chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub config: Digest,
    /// Bottom layer first.
    pub layers: Vec<LayerRecord>,
    /// Every blob this image needs (index, manifest, config, layers).
    pub blobs: Vec<Digest>,
    pub size: u64,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
}

/// The database holds every container's options (environment values
/// included): root's alone. SQLite gives its `-wal` and `-shm` files the
/// database file's mode, so the file is made 0600 before SQLite opens it;
/// an older berthd's 0644 files are tightened.
fn private_files(path: &Path) -> std::io::Result<()> {
    use crate::fsmode::{file_options, set_mode, FILE};
    file_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        set_mode(Path::new(&p), FILE)?;
    }
    Ok(())
}

/// A name and what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRecord {
    pub name: String,
    pub target: Digest,
    pub manifest: Digest,
    pub pulled: i64,
    /// The uid of the last caller who pulled it (0: root, or from before
    /// this was recorded).
    pub pulled_by: u32,
}

/// The database. One connection behind a mutex: berthd's writes are few and
/// small, and SQLite serialises writers anyway.
pub struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        let open_err = |source| Error::Open {
            path: path.display().to_string(),
            source,
        };
        private_files(path).map_err(|source| Error::Private {
            path: path.display().to_string(),
            source,
        })?;
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )
        .map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::TooNew(version));
        }
        if version < 1 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
            ))
            .map_err(open_err)?;
        }
        if version < 2 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA_V2} PRAGMA user_version = 2; COMMIT;"
            ))
            .map_err(open_err)?;
        }
        if version < 3 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA_V3} PRAGMA user_version = 3; COMMIT;"
            ))
            .map_err(open_err)?;
        }
        if version < 4 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA_V4} PRAGMA user_version = 4; COMMIT;"
            ))
            .map_err(open_err)?;
        }
        if version < 5 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA_V5} PRAGMA user_version = 5; COMMIT;"
            ))
            .map_err(open_err)?;
        }
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a pulled image and point `name` at it, in one transaction;
    /// `pulled_by` is the uid it was pulled for.
    pub fn record_image(
        &self,
        name: &str,
        target: &Digest,
        m: &ManifestRecord,
        now: i64,
        pulled_by: u32,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO manifests (digest, config, top_chain, size, created)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(digest) DO UPDATE SET config = ?2, top_chain = ?3, size = ?4, created = ?5",
            params![
                m.digest.to_string(),
                m.config.to_string(),
                m.layers.last().map(|l| l.chain_id.to_string()).unwrap_or_default(),
                m.size as i64,
                m.created
            ],
        )?;
        tx.execute(
            "DELETE FROM manifest_blobs WHERE manifest = ?1",
            [m.digest.to_string()],
        )?;
        tx.execute(
            "DELETE FROM manifest_layers WHERE manifest = ?1",
            [m.digest.to_string()],
        )?;
        for b in &m.blobs {
            tx.execute(
                "INSERT OR IGNORE INTO manifest_blobs (manifest, blob) VALUES (?1, ?2)",
                params![m.digest.to_string(), b.to_string()],
            )?;
        }
        for (i, l) in m.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO manifest_layers (manifest, position, chain, diff_id) VALUES (?1, ?2, ?3, ?4)",
                params![m.digest.to_string(), i as i64, l.chain_id.to_string(), l.diff_id.to_string()],
            )?;
        }
        tx.execute(
            "INSERT INTO names (name, target, manifest, pulled, pulled_by) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET target = ?2, manifest = ?3, pulled = ?4, pulled_by = ?5",
            params![name, target.to_string(), m.digest.to_string(), now, pulled_by],
        )?;
        // A manifest that lost its last name to this re-pull goes with it.
        tx.execute(DROP_UNUSED_MANIFESTS, [])?;
        tx.commit()?;
        Ok(())
    }

    pub fn names(&self) -> Result<Vec<NameRecord>> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT name, target, manifest, pulled, pulled_by FROM names ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, target, manifest, pulled, pulled_by) = row?;
            out.push(NameRecord {
                name,
                target: target.parse()?,
                manifest: manifest.parse()?,
                pulled,
                pulled_by,
            });
        }
        Ok(out)
    }

    pub fn name(&self, name: &str) -> Result<Option<NameRecord>> {
        Ok(self.names()?.into_iter().find(|n| n.name == name))
    }

    pub fn manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT config, size, created FROM manifests WHERE digest = ?1",
                [digest.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((config, size, created)) = row else {
            return Ok(None);
        };
        let mut st = conn.prepare(
            "SELECT chain, diff_id FROM manifest_layers WHERE manifest = ?1 ORDER BY position",
        )?;
        let layers = st
            .query_map([digest.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|(c, d)| {
                Ok(LayerRecord {
                    chain_id: c.parse()?,
                    diff_id: d.parse()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut st =
            conn.prepare("SELECT blob FROM manifest_blobs WHERE manifest = ?1 ORDER BY blob")?;
        let blobs = st
            .query_map([digest.to_string()], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|b| b.parse().map_err(Error::from))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(ManifestRecord {
            digest: digest.clone(),
            config: config.parse()?,
            layers,
            blobs,
            size: size as u64,
            created,
        }))
    }

    /// Remove a name; its manifest goes too when no other name uses it.
    /// Returns false when there was no such name.
    pub fn remove_name(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM names WHERE name = ?1", [name])?;
        tx.execute(DROP_UNUSED_MANIFESTS, [])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every blob and every layer chain id some image still needs.
    pub fn live(&self) -> Result<(Vec<Digest>, Vec<Digest>)> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT blob FROM manifest_blobs UNION SELECT target FROM names")?;
        let blobs = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = conn.prepare("SELECT DISTINCT chain FROM manifest_layers")?;
        let chains = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let parse = |v: Vec<String>| -> Result<Vec<Digest>> {
            v.into_iter()
                .map(|s| s.parse().map_err(Error::from))
                .collect()
        };
        Ok((parse(blobs)?, parse(chains)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn image(tag: &str) -> ManifestRecord {
        ManifestRecord {
            digest: d(&format!("m{tag}")),
            config: d(&format!("c{tag}")),
            layers: vec![
                LayerRecord {
                    chain_id: d("base"),
                    diff_id: d("base"),
                },
                LayerRecord {
                    chain_id: d(&format!("top{tag}")),
                    diff_id: d(&format!("t{tag}")),
                },
            ],
            blobs: vec![d(&format!("m{tag}")), d(&format!("c{tag}")), d("blob-base")],
            size: 10,
            created: 1,
        }
    }

    #[test]
    fn record_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let a = image("a");
        db.record_image("x:a", &a.digest, &a, 5, 0).unwrap();
        let b = image("b");
        db.record_image("x:b", &b.digest, &b, 6, 0).unwrap();
        assert_eq!(db.names().unwrap().len(), 2);
        assert_eq!(db.manifest(&a.digest).unwrap().unwrap(), {
            let mut a = a.clone();
            a.blobs.sort();
            a
        });
        let (blobs, chains) = db.live().unwrap();
        assert!(blobs.contains(&d("blob-base")));
        assert_eq!(chains.len(), 3);

        assert!(db.remove_name("x:a").unwrap());
        assert!(!db.remove_name("x:a").unwrap());
        assert!(db.manifest(&a.digest).unwrap().is_none());
        let (blobs, chains) = db.live().unwrap();
        assert!(blobs.contains(&d("blob-base")), "shared blob still live");
        assert!(!blobs.contains(&d("ma")));
        assert_eq!(chains.len(), 2);
    }

    #[test]
    fn repointing_a_name_drops_the_old_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let a = image("a");
        let b = image("b");
        db.record_image("x:latest", &a.digest, &a, 1, 0).unwrap();
        db.record_image("x:latest", &b.digest, &b, 2, 0).unwrap();
        assert!(db.manifest(&a.digest).unwrap().is_none());
        assert_eq!(db.name("x:latest").unwrap().unwrap().manifest, b.digest);
    }

    #[test]
    fn reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        let a = image("a");
        Db::open(&p)
            .unwrap()
            .record_image("x:a", &a.digest, &a, 1, 0)
            .unwrap();
        assert_eq!(Db::open(&p).unwrap().names().unwrap().len(), 1);
    }
}
