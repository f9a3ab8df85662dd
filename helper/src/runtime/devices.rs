//! Device nodes in the container's `/dev`: the defaults every container
//! gets (null, zero, full, random, urandom, tty), the spec's
//! `linux.devices`, and the usual symlinks (`/dev/fd`, `/dev/stdin`, ...,
//! `/dev/ptmx` → `pts/ptmx`).
//!
//! Outside a user namespace the nodes are made with mknod; inside one
//! mknod is not allowed, so empty files are created and the host's nodes
//! bind-mounted over them, as runc does. An entry already at a device's path
//! (an image may ship `/dev/null` as a symlink to anything) is removed
//! first, never followed. A node made with mknod is then given the
//! device's owner (as runc does); a bind-mounted host node keeps its own.

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::syscall::{Create, MountArgs, Syscall};
use super::{Context, Result};

/// One device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    /// `S_IFCHR` or `S_IFBLK` (or `S_IFIFO`).
    pub kind: u32,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    /// Owner of a node made with mknod (runc: ignored for bind mounts).
    pub uid: u32,
    pub gid: u32,
}

/// The devices of every container (runc's and Docker's defaults).
pub fn default_devices() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The defaults plus the spec's devices (a spec entry with the same path
/// replaces the default).
pub fn all_devices(spec_devices: &[oci_spec::runtime::LinuxDevice]) -> Vec<Device> {
    use oci_spec::runtime::LinuxDeviceType;
    let mut out: Vec<Device> = default_devices()
        .into_iter()
        .filter(|d| !spec_devices.iter().any(|s| s.path() == &d.path))
        .collect();
    for d in spec_devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        out.push(Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u32,
            minor: d.minor() as u32,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    out
}

/// Create `devices` inside `rootfs` (before pivot_root).
pub fn create<S: Syscall>(sys: &S, rootfs: &Path, devices: &[Device], bind: bool) -> Result<()> {
    for d in devices {
        let (parent, name) = match (d.path.parent(), d.path.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => continue,
        };
        let dir = sys.resolve(rootfs, parent, Create::Dir).ctx(|| {
            format!(
                "creating {} for device {}",
                parent.display(),
                d.path.display()
            )
        })?;
        let at = dir.path.join(name);
        match sys
            .lstat_kind(rootfs, &d.path)
            .ctx(|| format!("inspecting {}", d.path.display()))?
        {
            Some((FileType::Directory, _)) | None => {}
            Some(_) => sys.unlink(&at).ctx(|| {
                format!(
                    "removing the image's {} before creating the device",
                    d.path.display()
                )
            })?,
        }
        if bind {
            let target = sys
                .resolve(rootfs, &d.path, Create::File)
                .ctx(|| format!("creating {}", d.path.display()))?;
            sys.mount(&MountArgs {
                source: Some(d.path.clone()),
                target: target.path,
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
            })
            .ctx(|| {
                format!(
                    "bind-mounting the host's {} into the container",
                    d.path.display()
                )
            })?;
        } else {
            let dev = libc::makedev(d.major, d.minor);
            sys.mknod(&at, d.kind | (d.mode & 0o7777), dev)
                .ctx(|| format!("mknod {} ({}:{})", d.path.display(), d.major, d.minor))?;
            sys.lchown(&at, d.uid, d.gid)
                .ctx(|| format!("giving {} to uid {} gid {}", d.path.display(), d.uid, d.gid))?;
        }
    }
    Ok(())
}

/// `/dev/fd`, `/dev/stdin`, `/dev/stdout`, `/dev/stderr`, `/dev/ptmx`.
pub fn symlinks<S: Syscall>(sys: &S, rootfs: &Path) -> Result<()> {
    let dev = sys
        .resolve(rootfs, Path::new("/dev"), Create::Dir)
        .ctx(|| "opening the container's /dev".to_string())?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        let link = Path::new("/dev").join(name);
        if let Some((kind, _)) = sys
            .lstat_kind(rootfs, &link)
            .ctx(|| format!("inspecting {}", link.display()))?
        {
            if kind == FileType::Symlink || name == "ptmx" {
                sys.unlink(&dev.path.join(name))
                    .ctx(|| format!("replacing {}", link.display()))?;
            } else {
                continue;
            }
        }
        sys.symlink(Path::new(target), &dev.path.join(name))
            .ctx(|| format!("symlinking {} to {target}", link.display()))?;
    }
    Ok(())
}
