//! File system calls that cannot leave a directory.
//!
//! Everything the layer code writes goes through a directory descriptor
//! resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)` followed by a `*at` call on one final name that
//! never follows a symlink. So a path that meets a symlink fails with
//! `ELOOP` instead of being followed out of the tree: the guard against the
//! symlink-race escapes of CVE-2018-15664 and CVE-2019-14271 class, where a
//! path checked as safe is swapped for a symlink before it is used.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

/// How every path beneath a layer or export directory is resolved.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// `openat2` of `path` beneath `dir`, never through a symlink: a symlink
/// anywhere in `path`, the last name included, fails with `ELOOP`
/// (`O_NOFOLLOW` is left out on purpose: with `O_PATH` it would open the
/// symlink itself). `openat2` asks for a retry (`EAGAIN`) when a rename
/// raced with the lookup.
pub(crate) fn open_beneath(
    dir: impl AsFd,
    path: &[u8],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let dir = dir.as_fd();
    let path = super::path::or_dot(path);
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, mode, RESOLVE) {
            Err(Errno::AGAIN | Errno::INTR) if tries < 128 => tries += 1,
            Err(Errno::NOSYS) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "openat2(2) is not available; Berth needs Linux 5.6 or newer",
                ))
            }
            r => return r.map_err(io::Error::from),
        }
    }
}

/// A directory beneath `dir`, as an `O_PATH` handle for `*at` calls.
pub(crate) fn open_path_dir(dir: impl AsFd, path: &[u8]) -> io::Result<OwnedFd> {
    open_beneath(dir, path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
}

/// A directory beneath `dir`, open for reading (listing, xattrs, fchmod).
pub(crate) fn open_dir(dir: impl AsFd, path: &[u8]) -> io::Result<OwnedFd> {
    open_beneath(dir, path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
}

/// A directory named by the caller (a layer store path, not image data),
/// open for reading.
pub(crate) fn open_trusted_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Create the directory `name` in `dir` with exactly `mode` (whatever the
/// umask) and return it open for reading.
pub(crate) fn mkdir_exact(dir: impl AsFd, name: &[u8], mode: u32) -> io::Result<OwnedFd> {
    let dir = dir.as_fd();
    let mode = Mode::from_raw_mode(mode);
    rustix::fs::mkdirat(dir, name, mode)?;
    let fd = open_dir(dir, name)?;
    rustix::fs::fchmod(&fd, mode)?;
    Ok(fd)
}

/// `lstat` of `name` in `dir`.
pub(crate) fn lstat(dir: impl AsFd, name: &[u8]) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Access and modification time both set to `mtime`.
pub(crate) fn times(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// The modification time of a stat result.
#[allow(clippy::unnecessary_cast)] // field types differ between architectures
pub(crate) fn mtime_of(st: &Stat) -> Timespec {
    Timespec {
        tv_sec: st.st_mtime as i64,
        tv_nsec: st.st_mtime_nsec as _,
    }
}

/// `(uid, gid)` for `chown` calls. `u32::MAX` means "leave alone" to the
/// kernel; callers refuse it before it gets here.
pub(crate) fn ids(uid: u32, gid: u32) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
}

/// `/proc/self/fd/<dir>/<name>`: how xattrs of a symlink or device node
/// are reached without following or opening it (there is no `lsetxattrat`
/// before Linux 6.13), and how the `tar` crate is given a sparse file to
/// create. The magic link only leads to the directory we hold; the
/// `l*xattr` calls do not follow the final name, and `O_CREAT|O_EXCL`
/// refuses an existing one, symlinks included.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(OsStr::from_bytes(name));
    p
}

/// Set an xattr on `name` in `dir` without following it.
pub(crate) fn lsetxattr_at(
    dir: impl AsFd,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let path = proc_path(dir.as_fd(), name);
    rustix::fs::lsetxattr(&path, key, value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// The xattr names of `name` in `dir` (not followed), NUL-separated, into
/// `buf`.
pub(crate) fn llistxattr_at(dir: impl AsFd, name: &[u8], buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_path(dir.as_fd(), name);
    Ok(rustix::fs::llistxattr(&path, buf)?)
}

/// One xattr of `name` in `dir` (not followed), into `buf`.
pub(crate) fn lgetxattr_at(
    dir: impl AsFd,
    name: &[u8],
    key: &CStr,
    buf: &mut [u8],
) -> io::Result<usize> {
    let path = proc_path(dir.as_fd(), name);
    Ok(rustix::fs::lgetxattr(&path, key, buf)?)
}

/// Remove `name` from `dir`, recursively if it is a directory, without
/// following symlinks. Directories lacking `u+rwx` (an image may ship
/// `0555` or `0000` ones) are opened up first, so this works for any tree.
/// Returns the bytes of disk space released.
pub(crate) fn remove_all(dir: impl AsFd, name: &[u8]) -> io::Result<u64> {
    let dir = dir.as_fd();
    let st = lstat(dir, name)?;
    let freed = allocated(&st);
    if file_type(&st) != FileType::Directory {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        return Ok(if st.st_nlink == 1 { freed } else { 0 });
    }
    let handle = open_path_dir(dir, name)?;
    if st.st_mode & 0o700 != 0o700 {
        // chmod through the handle we hold, never by name: the name could
        // have been swapped for a symlink since the lstat.
        let path = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        rustix::fs::chmod(&path, Mode::from_raw_mode(st.st_mode | 0o700))?;
    }
    let readable = rustix::fs::openat(
        &handle,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    drop(handle);
    let freed = freed + remove_children(readable)?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(freed)
}

/// Remove everything inside the directory `dir` (open for reading).
pub(crate) fn remove_children(dir: OwnedFd) -> io::Result<u64> {
    let mut freed = 0;
    let mut entries = rustix::fs::Dir::new(dir)?;
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        freed += remove_all(entries.fd()?, name)?;
    }
    Ok(freed)
}

/// Bytes of disk a file takes (`st_blocks` are 512 bytes).
#[allow(clippy::unnecessary_cast)] // field types differ between architectures
pub(crate) fn allocated(st: &Stat) -> u64 {
    (st.st_blocks as u64).saturating_mul(512)
}

/// `ENOENT` as `Ok(0)`, for "remove if present".
pub(crate) fn absent_ok(r: io::Result<u64>) -> io::Result<u64> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        r => r,
    }
}

/// Whether an error is `errno`.
pub(crate) fn is_errno(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn open_beneath_refuses_symlinks_and_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("/", root.join("up")).unwrap();
        symlink("a", root.join("rel")).unwrap();
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();

        assert!(open_path_dir(&fd, b"a/b").is_ok());
        assert!(open_path_dir(&fd, b"").is_ok());
        for bad in [&b"up"[..], b"up/etc", b"rel/b", b"../root", b"/etc"] {
            assert!(open_path_dir(&fd, bad).is_err(), "{bad:?} opened");
        }
    }

    #[test]
    fn remove_all_handles_locked_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("t/locked/inner")).unwrap();
        std::fs::write(root.join("t/locked/inner/f"), b"x").unwrap();
        std::fs::write(root.join("t/locked/f"), b"y").unwrap();
        symlink("/etc", root.join("t/locked/link")).unwrap();
        std::fs::set_permissions(
            root.join("t/locked/inner"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        std::fs::set_permissions(
            root.join("t/locked"),
            std::fs::Permissions::from_mode(0o555),
        )
        .unwrap();
        let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        remove_all(&fd, b"t").unwrap();
        assert!(!root.join("t").exists());
        assert!(std::path::Path::new("/etc").exists());
        assert_eq!(absent_ok(remove_all(&fd, b"t")).unwrap(), 0);
    }
}
