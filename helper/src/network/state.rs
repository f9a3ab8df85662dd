//! What the kernel cannot tell us: which container holds which address of a
//! network. One JSON file per network in `<run root>/networks/`, written
//! whole with rename. It lives under the run root (a tmpfs by default) for
//! the same time as the kernel objects it describes: a reboot clears both.
//!
//! Everything that changes networks holds [`HostLock`], a `flock` on one
//! file for the whole host: subnets, host ports and the `bn-*` isolation
//! rules are host-wide, so two berthd (or two threads) must not choose at
//! the same time.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::ipam::Subnet;
use super::names::valid_network_name;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    pub subnet: Subnet,
    /// Container id → its address.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Ipv4Addr>,
}

/// A file of the records' directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordFile {
    /// `<network>.json`
    Record(String),
    /// `<network>.json.tmp`, left by a write that did not finish (the
    /// file name).
    Temp(String),
}

/// The records of one run root.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(dir: PathBuf) -> Records {
        Records { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn load(&self, name: &str) -> io::Result<Option<NetworkRecord>> {
        match fs::read(self.path(name)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, record: &NetworkRecord) -> io::Result<()> {
        crate::fsmode::make_dir(&self.dir, crate::fsmode::DIR)?;
        let path = self.path(&record.name);
        let tmp = path.with_extension("json.tmp");
        let mut f = crate::fsmode::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(record).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    }

    /// Removes the record, and the directory once it holds none.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = fs::remove_dir(&self.dir);
        Ok(())
    }

    /// Every readable record. One that cannot be read (damaged by hand or
    /// by the disk: writes are whole) is left out with a warning: its
    /// network's bridge still holds its subnet, and
    /// [`super::Networks::create`] writes it again.
    pub fn list(&self) -> io::Result<Vec<NetworkRecord>> {
        let mut out = Vec::new();
        for file in self.files()? {
            let RecordFile::Record(name) = file else {
                continue;
            };
            match self.load(&name) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!(network = name, "unreadable network record left out: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The files of the directory: records and unfinished writes (others
    /// are not Berth's and left out).
    pub fn files(&self) -> io::Result<Vec<RecordFile>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_suffix(".json") {
                if valid_network_name(n) {
                    out.push(RecordFile::Record(n.to_string()));
                }
            } else if let Some(n) = name.strip_suffix(".json.tmp") {
                if valid_network_name(n) {
                    out.push(RecordFile::Temp(name.to_string()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes an unfinished write (see [`Records::files`]).
    pub fn remove_temp(&self, file_name: &str) -> io::Result<()> {
        let ok = file_name
            .strip_suffix(".json.tmp")
            .is_some_and(valid_network_name);
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{file_name} is not an unfinished network record"),
            ));
        }
        match fs::remove_file(self.dir.join(file_name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = fs::remove_dir(&self.dir);
        Ok(())
    }
}

/// An exclusive `flock` held until dropped.
pub struct HostLock {
    _file: File,
}

impl HostLock {
    /// Wait for the lock at `path` (made 0600 if missing; a symlink there
    /// is refused, not followed).
    pub fn acquire(path: &Path) -> io::Result<HostLock> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            crate::fsmode::make_dir(dir, crate::fsmode::DIR)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(crate::fsmode::FILE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(HostLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where only root makes files, so no user can make the lock first and
    /// hold it; and a symlink put in its place is not followed.
    #[test]
    fn the_host_lock_is_out_of_users_reach() {
        use std::os::unix::fs::MetadataExt;
        let lock = super::super::NetworkConfig::default().lock;
        let dir = lock.parent().unwrap();
        let m = fs::metadata(dir).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o022), (0, 0), "{}", dir.display());

        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let link = tmp.path().join("lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(HostLock::acquire(&link).is_err());
        assert!(!target.exists(), "the lock followed a symlink");
        let fresh = tmp.path().join("fresh.lock");
        drop(HostLock::acquire(&fresh).unwrap());
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn records_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::new(dir.path().join("networks"));
        assert_eq!(r.list().unwrap(), []);
        assert_eq!(r.load("web").unwrap(), None);
        let mut rec = NetworkRecord {
            name: "web".into(),
            subnet: "10.89.0.0/24".parse().unwrap(),
            endpoints: BTreeMap::new(),
        };
        rec.endpoints
            .insert("c1".into(), Ipv4Addr::new(10, 89, 0, 2));
        r.save(&rec).unwrap();
        r.save(&NetworkRecord {
            name: "db".into(),
            subnet: "10.89.1.0/24".parse().unwrap(),
            endpoints: BTreeMap::new(),
        })
        .unwrap();
        assert_eq!(r.load("web").unwrap(), Some(rec.clone()));
        let names: Vec<String> = r.list().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["db", "web"]);
        // Unfinished writes and damaged records.
        std::fs::write(dir.path().join("networks/x.json.tmp"), "{").unwrap();
        std::fs::write(dir.path().join("networks/bad.json"), "{").unwrap();
        std::fs::write(dir.path().join("networks/not ours"), "").unwrap();
        let names: Vec<String> = r.list().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["db", "web"], "the damaged record is left out");
        assert_eq!(
            r.files().unwrap(),
            [
                RecordFile::Record("bad".into()),
                RecordFile::Record("db".into()),
                RecordFile::Record("web".into()),
                RecordFile::Temp("x.json.tmp".into()),
            ]
        );
        assert!(r.load("bad").is_err());
        assert!(r.remove_temp("../x.json.tmp").is_err());
        assert!(r.remove_temp("not ours").is_err());
        r.remove_temp("x.json.tmp").unwrap();
        r.remove("bad").unwrap();
        std::fs::remove_file(dir.path().join("networks/not ours")).unwrap();
        r.remove("web").unwrap();
        r.remove("web").unwrap();
        r.remove("db").unwrap();
        assert!(
            !dir.path().join("networks").exists(),
            "empty directory removed"
        );
    }

    #[test]
    fn the_lock_excludes_another_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = HostLock::acquire(&path).unwrap();
        let other = File::open(&path).unwrap();
        assert!(
            rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_err()
        );
        drop(held);
        assert!(
            rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
        );
    }
}
