//! Temporary directories that really go away.
//!
//! A berthd root holds unpacked layers: read-only directories, char-device
//! whiteouts, files owned by other uids, and, if a test failed half way,
//! overlay or bind mounts. `std::fs::remove_dir_all` trips on the first and
//! would walk into (and delete through) the last. [`remove_tree`] first
//! detaches every mount below the directory, then deletes without following
//! symlinks or crossing into another filesystem, making directories writable
//! on the way down.

use anyhow::{Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A directory under `$BERTH_TEST_TMPDIR` (default: the system temp dir),
/// removed with [`remove_tree`] on drop unless `BERTH_TEST_KEEP` is set.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
    removed: AtomicBool,
}

impl TestDir {
    /// A new empty directory named `<prefix><random>`, mode 0755 so that
    /// unprivileged test users can reach sockets inside it.
    pub fn new(prefix: &str) -> Result<Self> {
        let base = std::env::var_os("BERTH_TEST_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base)
            .with_context(|| format!("creating the test temp base {}", base.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&base)
            .with_context(|| format!("creating a temp dir in {}", base.display()))?;
        let path = dir.keep();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 0755 {}", path.display()))?;
        Ok(Self {
            path,
            removed: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Removes the directory now (idempotent). Honors `BERTH_TEST_KEEP`.
    pub fn cleanup(&self) -> Result<()> {
        if self.removed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if std::env::var_os("BERTH_TEST_KEEP").is_some() {
            eprintln!("berth-testkit: keeping {}", self.path.display());
            return Ok(());
        }
        remove_tree(&self.path)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            eprintln!("berth-testkit: removing {}: {err:#}", self.path.display());
        }
    }
}

/// Mount points at or below `root`, deepest first, from /proc/self/mountinfo.
pub fn mounts_under(root: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let root = root.as_os_str().as_bytes();
    let mut found = Vec::new();
    for line in info.split(|&b| b == b'\n') {
        let Some(field) = line.split(|&b| b == b' ').nth(4) else {
            continue;
        };
        let point = unescape_mountinfo(field);
        let below =
            point == root || (point.starts_with(root) && point.get(root.len()) == Some(&b'/'));
        if below {
            found.push(PathBuf::from(std::ffi::OsStr::from_bytes(&point)));
        }
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    Ok(found)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 3 < field.len() {
            let oct = &field[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// Lazily detaches every mount at or below `root` (deepest first).
pub fn unmount_all_under(root: &Path) -> Result<()> {
    for _pass in 0..8 {
        let mounts = mounts_under(root)?;
        if mounts.is_empty() {
            return Ok(());
        }
        for point in mounts {
            let c = std::ffi::CString::new(point.as_os_str().as_bytes())?;
            // Errors are retried by the next pass; the loop bound ends it.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    let left = mounts_under(root)?;
    if !left.is_empty() {
        anyhow::bail!("could not unmount {:?}", left);
    }
    Ok(())
}

/// Removes `root` and everything below it: unmounts first, never follows
/// symlinks, never descends into another filesystem, chmods directories
/// writable before emptying them. A missing `root` is fine.
pub fn remove_tree(root: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("stat {}", root.display())),
    };
    if meta.is_dir() {
        unmount_all_under(root)?;
        remove_dir_contents(root, meta.dev())?;
        std::fs::remove_dir(root).with_context(|| format!("rmdir {}", root.display()))
    } else {
        std::fs::remove_file(root).with_context(|| format!("removing {}", root.display()))
    }
}

fn remove_dir_contents(dir: &Path, dev: u64) -> Result<()> {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        if meta.is_dir() {
            if meta.dev() != dev {
                anyhow::bail!(
                    "{} is on another filesystem (a mount that would not detach); not deleting through it",
                    path.display()
                );
            }
            remove_dir_contents(&path, dev)?;
            std::fs::remove_dir(&path).with_context(|| format!("rmdir {}", path.display()))?;
        } else {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_fields() {
        assert_eq!(unescape_mountinfo(br"/a\040b"), b"/a b");
        assert_eq!(unescape_mountinfo(br"/a\\"), br"/a\\");
        assert_eq!(unescape_mountinfo(b"/plain"), b"/plain");
    }

    #[test]
    fn removes_read_only_trees() {
        let dir = TestDir::new("berth-fsutil-").unwrap();
        let ro = dir.join("ro/inner");
        std::fs::create_dir_all(&ro).unwrap();
        std::fs::write(ro.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("ro/link")).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::set_permissions(dir.join("ro"), std::fs::Permissions::from_mode(0o500)).unwrap();
        let path = dir.path().to_path_buf();
        dir.cleanup().unwrap();
        assert!(!path.exists());
        assert!(Path::new("/etc/passwd").exists());
    }
}
