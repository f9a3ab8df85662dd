//! App rows, their ledgers, and named volumes.

use rusqlite::{params, OptionalExtension, Row};

use super::{Db, Result};

/// One installed (or installing, or removing) app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub id: String,
    pub catalog: String,
    /// `installing`, `installed`, `updating` or `removing`.
    pub state: String,
    /// `running` or `stopped`: what berthd brings it back to.
    pub desired: String,
    /// `InstallOptions` as JSON.
    pub options: String,
    /// `UninstallOptions` as JSON once an uninstall began, else empty.
    pub removal: String,
    pub installed: i64,
    /// The uid that installed it; its containers are that uid's too.
    pub owner: u32,
}

/// One ledger entry: a resource an app made (or was about to make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub app: String,
    pub seq: i64,
    pub kind: String,
    pub name: String,
    pub detail: String,
    pub made: bool,
}

/// One named volume: made by an install, kept by an uninstall with
/// `keep_data` (its app then no longer installed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    /// `<app>_<volume>`
    pub name: String,
    /// The app it belongs to (also when that is not installed).
    pub app: String,
    /// Seconds since the epoch.
    pub created: i64,
}

fn app_row(r: &Row<'_>) -> rusqlite::Result<AppRecord> {
    Ok(AppRecord {
        id: r.get(0)?,
        catalog: r.get(1)?,
        state: r.get(2)?,
        desired: r.get(3)?,
        options: r.get(4)?,
        removal: r.get(5)?,
        installed: r.get(6)?,
        owner: r.get(7)?,
    })
}

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    Ok(LedgerRow {
        app: r.get(0)?,
        seq: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        detail: r.get(4)?,
        made: r.get::<_, i64>(5)? != 0,
    })
}

fn volume_row(r: &Row<'_>) -> rusqlite::Result<VolumeRecord> {
    Ok(VolumeRecord {
        name: r.get(0)?,
        app: r.get(1)?,
        created: r.get(2)?,
    })
}

const APP_COLUMNS: &str = "id, catalog, state, desired, options, removal, installed, owner";

impl Db {
    /// Record a new app; fails if one with its id exists.
    pub fn insert_app(&self, a: &AppRecord) -> Result<()> {
        self.conn().execute(
            &format!("INSERT INTO apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                a.id,
                a.catalog,
                a.state,
                a.desired,
                a.options,
                a.removal,
                a.installed,
                a.owner
            ],
        )?;
        Ok(())
    }

    pub fn app(&self, id: &str) -> Result<Option<AppRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"),
                [id],
                app_row,
            )
            .optional()?)
    }

    pub fn apps(&self) -> Result<Vec<AppRecord>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {APP_COLUMNS} FROM apps ORDER BY id"))?;
        let rows = st.query_map([], app_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn set_app_state(&self, id: &str, state: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE apps SET state = ?2 WHERE id = ?1",
            params![id, state],
        )?;
        Ok(())
    }

    pub fn set_app_desired(&self, id: &str, desired: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE apps SET desired = ?2 WHERE id = ?1",
            params![id, desired],
        )?;
        Ok(())
    }

    /// Mark the app as being removed, with how (one transaction).
    pub fn begin_app_removal(&self, id: &str, removal: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE apps SET state = 'removing', removal = ?2 WHERE id = ?1",
            params![id, removal],
        )?;
        Ok(())
    }

    /// Delete the app's row and whatever is left of its ledger.
    pub fn remove_app(&self, id: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM ledger WHERE app = ?1", [id])?;
        tx.execute("DELETE FROM apps WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Append an entry (not yet made) to the app's ledger; returns its seq.
    pub fn ledger_add(&self, app: &str, kind: &str, name: &str, detail: &str) -> Result<i64> {
        let conn = self.conn();
        let seq: i64 = conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger WHERE app = ?1",
            [app],
            |r| r.get(0),
        )?;
        conn.execute(
            "INSERT INTO ledger (app, seq, kind, name, detail, made) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            params![app, seq, kind, name, detail],
        )?;
        Ok(seq)
    }

    pub fn ledger_made(&self, app: &str, seq: i64, detail: Option<&str>) -> Result<()> {
        let conn = self.conn();
        match detail {
            Some(d) => conn.execute(
                "UPDATE ledger SET made = 1, detail = ?3 WHERE app = ?1 AND seq = ?2",
                params![app, seq, d],
            )?,
            None => conn.execute(
                "UPDATE ledger SET made = 1 WHERE app = ?1 AND seq = ?2",
                params![app, seq],
            )?,
        };
        Ok(())
    }

    /// Forget one entry (its resource is gone).
    pub fn ledger_remove(&self, app: &str, seq: i64) -> Result<()> {
        self.conn().execute(
            "DELETE FROM ledger WHERE app = ?1 AND seq = ?2",
            params![app, seq],
        )?;
        Ok(())
    }

    /// The app's ledger in creation order.
    pub fn ledger(&self, app: &str) -> Result<Vec<LedgerRow>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT app, seq, kind, name, detail, made FROM ledger WHERE app = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map([app], ledger_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every ledger entry of every app (for `doctor` and image sharing).
    pub fn ledger_all(&self) -> Result<Vec<LedgerRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT app, seq, kind, name, detail, made FROM ledger ORDER BY app, seq")?;
        let rows = st.query_map([], ledger_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Record a named volume (no-op if recorded).
    pub fn insert_volume(&self, name: &str, app: &str, created: i64) -> Result<()> {
        self.conn().execute(
            "INSERT OR IGNORE INTO volumes (name, app, created) VALUES (?1, ?2, ?3)",
            params![name, app, created],
        )?;
        Ok(())
    }

    pub fn remove_volume(&self, name: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM volumes WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Every named volume, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRecord>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT name, app, created FROM volumes ORDER BY name")?;
        let rows = st.query_map([], volume_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One named volume.
    pub fn volume(&self, name: &str) -> Result<Option<VolumeRecord>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name, app, created FROM volumes WHERE name = ?1",
                [name],
                volume_row,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        (dir, db)
    }

    fn record(id: &str) -> AppRecord {
        AppRecord {
            id: id.into(),
            catalog: "demo".into(),
            state: "installing".into(),
            desired: "running".into(),
            options: "{}".into(),
            removal: String::new(),
            installed: 1,
            owner: 1000,
        }
    }

    #[test]
    fn an_app_and_its_ledger_come_and_go_together() {
        let (_d, db) = db();
        db.insert_app(&record("hello")).unwrap();
        assert!(db.insert_app(&record("hello")).is_err(), "ids are unique");
        let a = db.ledger_add("hello", "network", "hello", "").unwrap();
        let b = db
            .ledger_add("hello", "container", "hello-web-1", "")
            .unwrap();
        assert_eq!((a, b), (1, 2));
        db.ledger_made("hello", b, Some("abc")).unwrap();
        let l = db.ledger("hello").unwrap();
        assert_eq!(l.len(), 2);
        assert!(!l[0].made && l[1].made && l[1].detail == "abc");
        db.ledger_remove("hello", b).unwrap();
        assert_eq!(db.ledger_add("hello", "volume", "v", "").unwrap(), 2);
        db.begin_app_removal("hello", "{\"keep_data\":true}")
            .unwrap();
        let r = db.app("hello").unwrap().unwrap();
        assert_eq!(r.state, "removing");
        assert!(r.removal.contains("keep_data"));
        assert_eq!(r.owner, 1000, "the installer's uid is kept");
        db.remove_app("hello").unwrap();
        assert!(db.app("hello").unwrap().is_none());
        assert!(db.ledger_all().unwrap().is_empty());
    }

    #[test]
    fn volumes_outlive_their_app() {
        let (_d, db) = db();
        db.insert_volume("hello_data", "hello", 5).unwrap();
        db.insert_volume("hello_data", "hello", 6).unwrap();
        let kept = VolumeRecord {
            name: "hello_data".into(),
            app: "hello".into(),
            created: 5,
        };
        assert_eq!(db.volumes().unwrap(), vec![kept.clone()]);
        assert_eq!(db.volume("hello_data").unwrap(), Some(kept));
        db.remove_volume("hello_data").unwrap();
        assert!(db.volumes().unwrap().is_empty());
        assert_eq!(db.volume("hello_data").unwrap(), None);
    }
}
