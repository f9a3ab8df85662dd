//! Container rows.

use rusqlite::{params, OptionalExtension, Row};

use super::{Db, Result, DROP_UNUSED_MANIFESTS};
use crate::content::Digest;

/// One container as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub manifest: Digest,
    /// `RunOptions` as JSON.
    pub options: String,
    pub created: i64,
    /// `created`, `running` or `exited`.
    pub state: String,
    pub started: i64,
    pub finished: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: String,
    /// `--userns=auto`: the host ids its 0.. map to, (first, count);
    /// reserved for it until the row is deleted.
    pub userns: Option<(u32, u32)>,
    /// The uid that created it (for an app's containers, the app's owner):
    /// reads show its environment and command line to root, to it, and to
    /// holders of the right to manage containers.
    pub owner: u32,
}

/// How a run ended (or that it started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChange {
    pub state: String,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub exit_code: Option<i64>,
    pub oom_killed: Option<bool>,
    pub error: Option<String>,
}

impl StateChange {
    /// `record` as it reads once this change is made.
    pub fn applied_to(&self, record: &ContainerRecord) -> ContainerRecord {
        let mut r = record.clone();
        r.state = self.state.clone();
        if let Some(v) = self.started {
            r.started = v;
        }
        if let Some(v) = self.finished {
            r.finished = v;
        }
        if let Some(v) = self.exit_code {
            r.exit_code = v;
        }
        if let Some(v) = self.oom_killed {
            r.oom_killed = v;
        }
        if let Some(v) = &self.error {
            r.error = v.clone();
        }
        r
    }
}

const COLUMNS: &str =
    "id, name, image, manifest, options, created, state, started, finished, exit_code, oom_killed, error, \
     userns_start, userns_size, owner";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(ContainerRecord, String)> {
    let manifest: String = r.get(3)?;
    Ok((
        ContainerRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            image: r.get(2)?,
            manifest: Digest::of(b""),
            options: r.get(4)?,
            created: r.get(5)?,
            state: r.get(6)?,
            started: r.get(7)?,
            finished: r.get(8)?,
            exit_code: r.get(9)?,
            oom_killed: r.get::<_, i64>(10)? != 0,
            error: r.get(11)?,
            userns: match (r.get::<_, Option<u32>>(12)?, r.get::<_, Option<u32>>(13)?) {
                (Some(start), Some(size)) => Some((start, size)),
                _ => None,
            },
            owner: r.get(14)?,
        },
        manifest,
    ))
}

fn finish((mut c, manifest): (ContainerRecord, String)) -> Result<ContainerRecord> {
    c.manifest = manifest.parse()?;
    Ok(c)
}

impl Db {
    /// Record a new container. Fails if the name is taken (the caller
    /// checks first to say so nicely; this is the race-free check).
    pub fn insert_container(&self, c: &ContainerRecord) -> Result<()> {
        self.conn().execute(
            &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                c.id,
                c.name,
                c.image,
                c.manifest.to_string(),
                c.options,
                c.created,
                c.state,
                c.started,
                c.finished,
                c.exit_code,
                c.oom_killed as i64,
                c.error,
                c.userns.map(|u| u.0),
                c.userns.map(|u| u.1),
                c.owner
            ],
        )?;
        Ok(())
    }

    /// The host id blocks (first, count) every recorded container holds.
    pub fn userns_ranges(&self) -> Result<Vec<(u32, u32)>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT userns_start, userns_size FROM containers
             WHERE userns_start IS NOT NULL AND userns_size IS NOT NULL ORDER BY userns_start",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every container, newest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers ORDER BY created DESC, id"
        ))?;
        let rows = st
            .query_map([], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// The container with this id, name, or unique id prefix.
    pub fn find_container(&self, key: &str) -> Result<Option<ContainerRecord>> {
        let conn = self.conn();
        let exact = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1"),
                [key],
                from_row,
            )
            .optional()?;
        if let Some(row) = exact {
            return finish(row).map(Some);
        }
        if key.len() < 3 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE id LIKE ?1 || '%'"
        ))?;
        let mut rows = st
            .query_map([key], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if rows.len() == 1 {
            return finish(rows.remove(0)).map(Some);
        }
        Ok(None)
    }

    pub fn name_taken(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM containers WHERE name = ?1", [name], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    /// Record a state change of container `id`.
    pub fn set_container_state(&self, id: &str, s: &StateChange) -> Result<()> {
        self.conn().execute(
            "UPDATE containers SET state = ?2,
                started = COALESCE(?3, started), finished = COALESCE(?4, finished),
                exit_code = COALESCE(?5, exit_code), oom_killed = COALESCE(?6, oom_killed),
                error = COALESCE(?7, error)
             WHERE id = ?1",
            params![
                id,
                s.state,
                s.started,
                s.finished,
                s.exit_code,
                s.oom_killed.map(|b| b as i64),
                s.error
            ],
        )?;
        Ok(())
    }

    /// Forget container `id`; its image's manifest goes too if nothing
    /// else refers to it.
    pub fn remove_container(&self, id: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM containers WHERE id = ?1", [id])?;
        tx.execute(DROP_UNUSED_MANIFESTS, [])?;
        tx.commit()?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{LayerRecord, ManifestRecord};

    #[test]
    fn containers_keep_their_image_alive() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let m = ManifestRecord {
            digest: Digest::of(b"m"),
            config: Digest::of(b"c"),
            layers: vec![LayerRecord {
                chain_id: Digest::of(b"l"),
                diff_id: Digest::of(b"l"),
            }],
            blobs: vec![Digest::of(b"m")],
            size: 1,
            created: 0,
        };
        db.record_image("x:latest", &m.digest, &m, 1, 0).unwrap();
        let c = ContainerRecord {
            id: "ab".repeat(32),
            name: "web".into(),
            image: "x:latest".into(),
            manifest: m.digest.clone(),
            options: "{}".into(),
            created: 5,
            state: "created".into(),
            started: 0,
            finished: 0,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            userns: None,
            owner: 1000,
        };
        db.insert_container(&c).unwrap();
        assert_eq!(db.find_container("web").unwrap().unwrap().owner, 1000);
        assert!(
            db.insert_container(&ContainerRecord {
                id: "cd".repeat(32),
                ..c.clone()
            })
            .is_err(),
            "name reused"
        );
        assert!(db.name_taken("web").unwrap());
        assert_eq!(db.find_container("web").unwrap().unwrap().id, c.id);
        assert_eq!(db.find_container("abab").unwrap().unwrap().name, "web");
        assert!(db.find_container("zz").unwrap().is_none());

        // rmi of the name leaves the manifest while the container exists.
        db.remove_name("x:latest").unwrap();
        assert!(db.manifest(&m.digest).unwrap().is_some());
        let (_, layers) = db.live().unwrap();
        assert_eq!(layers, vec![Digest::of(b"l")]);

        db.set_container_state(
            &c.id,
            &StateChange {
                state: "exited".into(),
                finished: Some(9),
                exit_code: Some(137),
                oom_killed: Some(true),
                ..StateChange::default()
            },
        )
        .unwrap();
        let got = db.find_container(&c.id).unwrap().unwrap();
        assert_eq!(
            (
                got.state.as_str(),
                got.exit_code,
                got.oom_killed,
                got.finished
            ),
            ("exited", 137, true, 9)
        );

        // A --userns=auto container keeps its block while it exists.
        let u = ContainerRecord {
            id: "ef".repeat(32),
            name: "mapped".into(),
            userns: Some((0x7000_0000, 65536)),
            ..c.clone()
        };
        db.insert_container(&u).unwrap();
        assert_eq!(
            db.find_container("mapped").unwrap().unwrap().userns,
            u.userns
        );
        assert_eq!(db.find_container(&c.id).unwrap().unwrap().userns, None);
        assert_eq!(db.userns_ranges().unwrap(), vec![(0x7000_0000, 65536)]);
        assert!(db.remove_container(&u.id).unwrap());
        assert_eq!(db.userns_ranges().unwrap(), vec![]);

        assert!(db.remove_container(&c.id).unwrap());
        assert!(db.manifest(&m.digest).unwrap().is_none());
    }

    #[test]
    fn a_version_2_database_gains_the_userns_and_owner_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        {
            let conn = rusqlite::Connection::open(&p).unwrap();
            conn.execute_batch(&format!(
                "{} {} PRAGMA user_version = 2;
                 INSERT INTO manifests VALUES ('{m}', '{m}', '', 1, 0);
                 INSERT INTO containers (id, name, image, manifest, options, created, state)
                 VALUES ('{id}', 'old', 'x:latest', '{m}', '{{}}', 1, 'exited');",
                super::super::SCHEMA_V1,
                super::super::SCHEMA_V2,
                m = Digest::of(b"m"),
                id = "ab".repeat(32),
            ))
            .unwrap();
        }
        let db = Db::open(&p).unwrap();
        let old = db.find_container("old").unwrap().unwrap();
        assert_eq!((old.state.as_str(), old.userns), ("exited", None));
        // A container from before owners were recorded is root's.
        assert_eq!(old.owner, 0);
        assert_eq!(db.userns_ranges().unwrap(), vec![]);
        let version: i64 = db
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::SCHEMA_VERSION);
        drop(db);
        // Opening again does not migrate twice.
        assert!(Db::open(&p)
            .unwrap()
            .find_container("old")
            .unwrap()
            .is_some());
    }
}
