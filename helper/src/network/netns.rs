//! Network namespaces that live without a process: made by berthd and
//! bind-mounted on a file, as `ip netns add` and Podman do, so the
//! container's runtime joins it by path and it outlives any one process.
//!
//! The directory holding them is made a shared mount (bound onto itself
//! first if it is not a mount point), again as `ip netns` does: a mount
//! namespace copied from the host while a namespace file is mounted (a
//! container being set up, a service started with private mounts) would
//! otherwise keep its own copy of the mount, and with it the namespace,
//! after berthd removed it. With a shared directory the unmount propagates.
//! When its last namespace is removed the directory is unmounted and
//! removed, so nothing stays mounted.
//!
//! The directory is 0700, and it and every namespace file are mounted
//! `nosuid,nodev,noexec`, as every mount berthd makes in the host's
//! namespace (see [`crate::fsmode`]).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

/// The flags namespace mounts get besides `nosuid,nodev`.
const NOEXEC: MountFlags = MountFlags::NOEXEC;

/// Makes `dir` (created if needed) a shared mount point.
fn prepare_dir(dir: &Path) -> io::Result<()> {
    crate::fsmode::make_dir(dir, crate::fsmode::DIR)?;
    let shared = MountPropagationFlags::SHARED;
    match rustix::mount::mount_change(dir, shared) {
        Ok(()) => Ok(()),
        // Not a mount point yet.
        Err(Errno::INVAL) => {
            rustix::mount::mount_bind(dir, dir)?;
            // A bind left unrestricted would pass the check above from
            // now on: undone, so the next call tries again.
            let done = crate::fsmode::restrict_mount(dir, NOEXEC)
                .and_then(|()| rustix::mount::mount_change(dir, shared).map_err(Into::into));
            if done.is_err() {
                let _ = rustix::mount::unmount(dir, UnmountFlags::DETACH);
            }
            done
        }
        Err(e) => Err(e.into()),
    }
}

/// What an older berthd left: the directory 0700, it and its namespace
/// files mounted `nosuid,nodev,noexec`.
pub fn tighten(dir: &Path) -> io::Result<()> {
    crate::fsmode::set_mode(dir, crate::fsmode::DIR)?;
    crate::fsmode::restrict_mounts_under(dir, NOEXEC)
}

/// Creates a new network namespace bound at `path` (which must not exist);
/// only its loopback interface, down.
pub fn create(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    prepare_dir(dir)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // SAFETY: CLONE_NEWNET only changes this thread's network
            // namespace, and this thread ends right after; no file
            // descriptor table is unshared.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", path)?;
            crate::fsmode::restrict_mount(path, NOEXEC).inspect_err(|_| {
                // Else the file below cannot be removed (EBUSY) and the
                // namespace stays bound.
                let _ = rustix::mount::unmount(path, UnmountFlags::DETACH);
            })
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    });
    if made.is_err() {
        let _ = fs::remove_file(path);
        release_dir(dir);
    }
    made
}

/// Runs `f` on a short thread that joined the network namespace at `path`
/// (sysctls under `/proc/sys/net` are the calling thread's namespace's);
/// the caller's thread never changes namespace.
pub fn enter<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let ns = fs::File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    })
}

/// Unmounts and removes the namespace file; the namespace is gone once no
/// process is in it. Nothing to do is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        // EINVAL: not mounted (a file left by a crash mid-create).
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        release_dir(dir);
    }
    Ok(())
}

/// Unmounts and removes `dir` if no namespace is left in it.
pub fn release_dir(dir: &Path) {
    let empty = match fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => return,
    };
    if empty {
        let _ = rustix::mount::unmount(dir, UnmountFlags::DETACH);
        let _ = fs::remove_dir(dir);
    }
}

/// Is a namespace mounted at `path`? (A file there that is not one, a
/// leftover of a crash, says no.)
pub fn is_mounted(path: &Path) -> bool {
    /// `NSFS_MAGIC` (the type of `f_type` differs between architectures).
    const NSFS: u64 = 0x6e73_6673;
    rustix::fs::statfs(path)
        .map(|s| s.f_type as u64 == NSFS)
        .unwrap_or(false)
}

/// (device, inode) of what is at `path` (following a mount on it): a
/// namespace made again, or another file, has another.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The names of the files in `dir` (none if there is no `dir`).
pub fn list(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        if let Some(name) = e?.file_name().to_str() {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}
