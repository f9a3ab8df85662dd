//! Idmapped mounts (Linux ≥ 5.19 for overlayfs over them): a view of a
//! directory in which every owner is shifted by a uid/gid mapping, without
//! touching the files. `--userns=auto` containers see the shared image
//! layers (owned by host root) through such views, so the container's root
//! (host id `start`) owns them as its own root would, and nothing is
//! chowned.
//!
//! The kernel takes the mapping from a user namespace: [`userns_fd`] makes
//! one that exists only to carry it (a child process unshares it, we write
//! its maps, keep a file descriptor of it and kill the child).
//! [`idmapped_tree`] clones a directory as a detached mount
//! (`open_tree(OPEN_TREE_CLONE)`) and sets `MOUNT_ATTR_IDMAP` on it. A
//! detached mount is not in any mount table: it lives as long as its file
//! descriptor, or as long as the overlay that was given it as a layer, and
//! goes with it; there is nothing to unmount.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::OpenTreeFlags;

/// One line of a `uid_map`/`gid_map`: `size` ids from `inside` (in the
/// namespace) onto `outside` (on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub inside: u32,
    pub outside: u32,
    pub size: u32,
}

/// `0 start size`: the namespace's ids 0.. are the host's `start`...
pub fn root_at(start: u32, size: u32) -> IdMapping {
    IdMapping {
        inside: 0,
        outside: start,
        size,
    }
}

/// `/proc/<pid>/uid_map` text.
fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.size))
        .collect()
}

// From <linux/mount.h>; libc has them only in its newest versions.
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Kills and reaps the helper child, whatever happens.
struct Child(libc::pid_t);

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: plain syscalls on our own child.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            let mut status = 0;
            while libc::waitpid(self.0, &mut status, 0) < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
    }
}

/// A user namespace whose uid and gid maps are both `maps`, as a file
/// descriptor (for `MOUNT_ATTR_IDMAP`). No process stays in it. Needs
/// root (`CAP_SETUID`/`CAP_SETGID` over the host ids mapped).
pub fn userns_fd(maps: &[IdMapping]) -> io::Result<OwnedFd> {
    let text = map_text(maps);
    // The child reports unshare's errno (0 = done) through `ready`, then
    // blocks reading `hold` (whose write end only we have) until killed.
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (hold_r, hold_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // SAFETY: the child only makes async-signal-safe syscalls (unshare,
    // write, read, _exit) on values prepared before the fork, so forking a
    // multi-threaded process is fine.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let err: i32 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            let bytes = err.to_ne_bytes();
            libc::write(ready_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            let mut b = 0u8;
            libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    let child = Child(pid);
    drop(ready_w);
    drop(hold_r);
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&ready_r, &mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::other(
                    "the helper process for the user namespace died",
                ))
            }
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let errno = i32::from_ne_bytes(buf);
    if errno != 0 {
        return Err(io::Error::from_raw_os_error(errno));
    }
    for name in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{name}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("writing {path}: {e}")))?;
    }
    let ns = rustix::fs::open(
        format!("/proc/{pid}/ns/user"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    drop(hold_w);
    drop(child);
    Ok(ns)
}

/// A detached clone of the directory `path` seen through the maps of the
/// user namespace `userns`: with `0 start size`, a file the host sees
/// owned by `n` is seen through the clone as owned by `start + n`, and
/// what is written through it as `start + n` lands on disk as `n`. The
/// clone is read-only (overlayfs only reads its lower layers), `nosuid`
/// and `nodev` (before Linux 6.15 it is attached for a moment where others
/// could reach it, see `overlay`).
pub fn idmapped_tree(path: &Path, userns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: a valid fd, an empty C string, and a correctly sized struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// What the kernel said about a failed `fsconfig` (the messages queued on
/// a filesystem context), as one line.
pub fn fs_context_messages(fs: BorrowedFd<'_>) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    // Reading a context that has no message left fails with ENODATA.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => out.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            _ => break,
        }
    }
    out.join("; ")
}
