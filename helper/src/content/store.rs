use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{io_err, Digest, Error, Result};

/// The blob store under `<root>/content`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Open (creating if needed) the store in `root`.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        // Private (images pulled with someone's login among them); each one
        // set, as an older berthd left them 0755.
        for d in [root, &root.join("blobs"), &blobs, &ingest] {
            crate::fsmode::private_dir(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        Ok(ContentStore { blobs, ingest })
    }

    /// Where the blob `d` lives (whether or not it is there).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    /// The size of blob `d`, if the store has it.
    pub fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.path(d)).ok().map(|m| m.len())
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.size(d).is_some()
    }

    /// Open blob `d` for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(d.clone()),
            _ => Error::Io {
                what: format!("opening blob {d}"),
                source: e,
            },
        })
    }

    /// Read a whole (small) blob: manifests and configs. Checked against its
    /// digest again, since these bytes are parsed and trusted.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut buf)
            .map_err(io_err(format!("reading blob {d}")))?;
        let actual = Digest::of(&buf);
        if &actual != d {
            return Err(Error::DigestMismatch {
                expected: d.clone(),
                actual,
                size: buf.len() as u64,
            });
        }
        Ok(buf)
    }

    /// Store `bytes` under `expected` (for manifests and configs, which are
    /// small and fetched whole).
    pub fn put(&self, expected: &Digest, bytes: &[u8]) -> Result<()> {
        if self.exists(expected) {
            return Ok(());
        }
        let mut w = self.ingest(expected)?;
        w.restart()?;
        w.write_all(bytes)
            .map_err(io_err(format!("writing blob {expected}")))?;
        w.commit(Some(bytes.len() as u64))
    }

    /// Start (or resume) writing the blob that must end up as `expected`.
    /// Blocks while another writer holds the same ingest.
    pub fn ingest(&self, expected: &Digest) -> Result<Ingest> {
        let path = self.ingest.join(format!("{}.partial", expected.hex()));
        let mut file = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
                Error::Io {
                    what: format!("locking {}", path.display()),
                    source: e.into(),
                }
            })?;
            // While we waited for the lock, the holder may have committed
            // (renamed the file into blobs/) or aborted (unlinked it). Then
            // the file we hold is no longer the ingest: writing it would
            // change a committed blob. Open the path again.
            let held = file
                .metadata()
                .map_err(io_err(format!("reading {}", path.display())))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => break file,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
            }
        };
        // Re-hash what an earlier, interrupted attempt left, so the download
        // can continue where it stopped.
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(io_err(format!("reading {}", path.display())))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        Ok(Ingest {
            store: self.clone(),
            expected: expected.clone(),
            path,
            file,
            hasher,
            offset,
        })
    }

    /// Remove blob `d`; returns the bytes freed (0 if it was not there).
    pub fn delete(&self, d: &Digest) -> Result<u64> {
        let p = self.path(d);
        let size = match fs::metadata(&p) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(format!("reading {}", p.display()))(e)),
        };
        fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
        Ok(size)
    }

    /// Every complete blob with its size.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.blobs)
            .map_err(io_err(format!("listing {}", self.blobs.display())))?;
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(d) = name
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
            else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((d, size));
        }
        Ok(out)
    }

    /// Remove partial downloads nobody is writing. Returns the bytes freed.
    pub fn prune_ingests(&self) -> Result<u64> {
        let mut freed = 0;
        let rd = fs::read_dir(&self.ingest)
            .map_err(io_err(format!("listing {}", self.ingest.display())))?;
        for entry in rd.flatten() {
            let Ok(f) = File::open(entry.path()) else {
                continue;
            };
            // Skip ingests a running pull holds.
            if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
            {
                continue;
            }
            freed += f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = fs::remove_file(entry.path());
        }
        Ok(freed)
    }
}

/// A blob being written; see the module docs for its lifecycle.
pub struct Ingest {
    store: ContentStore,
    expected: Digest,
    path: PathBuf,
    file: File,
    hasher: Sha256,
    offset: u64,
}

impl Ingest {
    /// Bytes already written (where a resumed download continues).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The digest this ingest must end up with.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Throw away what was written and start from byte 0 (when the server
    /// ignores a Range request and sends the whole blob).
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)).map(|_| ()))
            .map_err(io_err(format!("truncating {}", self.path.display())))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Check, sync and move the blob into place. Consumes the ingest; on a
    /// digest or size mismatch the partial file is removed.
    pub fn commit(mut self, expected_size: Option<u64>) -> Result<()> {
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if let Some(size) = expected_size {
            if size != self.offset {
                let err = Error::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: size,
                    actual: self.offset,
                };
                self.abort();
                return Err(err);
            }
        }
        if actual != self.expected {
            let err = Error::DigestMismatch {
                expected: self.expected.clone(),
                actual,
                size: self.offset,
            };
            self.abort();
            return Err(err);
        }
        let what = || format!("committing blob {}", self.expected);
        self.file.sync_all().map_err(io_err(what()))?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o444))
            .map_err(io_err(what()))?;
        let dest = self.store.path(&self.expected);
        fs::rename(&self.path, &dest).map_err(io_err(what()))?;
        // Make the rename itself durable before anything records the blob.
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(what()))?;
        }
        Ok(())
    }

    /// Give up: remove the partial file.
    pub fn abort(self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn commit_makes_a_blob_visible_only_when_it_matches() {
        let (_d, s) = store();
        let good = Digest::of(b"hello");
        let mut w = s.ingest(&good).unwrap();
        w.write_all(b"hel").unwrap();
        assert!(!s.exists(&good), "visible before commit");
        w.write_all(b"lo").unwrap();
        w.commit(Some(5)).unwrap();
        assert_eq!(s.read(&good).unwrap(), b"hello");

        let wrong = Digest::of(b"other");
        let mut w = s.ingest(&wrong).unwrap();
        w.write_all(b"hello").unwrap();
        let err = w.commit(None).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!s.exists(&wrong));
        assert_eq!(fs::read_dir(&s.ingest).unwrap().count(), 0, "partial left");
    }

    #[test]
    fn truncated_blob_is_refused() {
        let (_d, s) = store();
        let d = Digest::of(b"hello");
        let mut w = s.ingest(&d).unwrap();
        w.write_all(b"hell").unwrap();
        let err = w.commit(Some(5)).unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert!(!s.exists(&d));
    }

    #[test]
    fn an_interrupted_ingest_resumes_where_it_stopped() {
        let (_d, s) = store();
        let d = Digest::of(b"hello world");
        let mut w = s.ingest(&d).unwrap();
        w.write_all(b"hello ").unwrap();
        drop(w); // as if the process died
        let mut w = s.ingest(&d).unwrap();
        assert_eq!(w.offset(), 6);
        w.write_all(b"world").unwrap();
        w.commit(Some(11)).unwrap();
        assert_eq!(s.read(&d).unwrap(), b"hello world");
    }

    #[test]
    fn put_twice_is_fine_and_delete_frees() {
        let (_d, s) = store();
        let d = Digest::of(b"x");
        s.put(&d, b"x").unwrap();
        s.put(&d, b"x").unwrap();
        assert_eq!(s.list().unwrap(), vec![(d.clone(), 1)]);
        assert_eq!(s.delete(&d).unwrap(), 1);
        assert!(!s.exists(&d));
        assert!(matches!(s.open_blob(&d), Err(Error::NotFound(_))));
    }

    #[test]
    fn prune_ingests_skips_locked_ones() {
        let (_d, s) = store();
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let mut held = s.ingest(&a).unwrap();
        held.write_all(b"partial").unwrap();
        let mut left = s.ingest(&b).unwrap();
        left.write_all(b"xx").unwrap();
        drop(left);
        assert_eq!(s.prune_ingests().unwrap(), 2);
        assert_eq!(held.offset(), 7);
        held.abort();
    }
}
