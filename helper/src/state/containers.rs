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

const COLUMNS: &str =
    "id, name, image, manifest, options, created, state, started, finished, exit_code, oom_killed, error";

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
            &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
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
                c.error
            ],
        )?;
        Ok(())
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
        db.record_image("x:latest", &m.digest, &m, 1).unwrap();
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
        };
        db.insert_container(&c).unwrap();
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

        assert!(db.remove_container(&c.id).unwrap());
        assert!(db.manifest(&m.digest).unwrap().is_none());
    }
}
