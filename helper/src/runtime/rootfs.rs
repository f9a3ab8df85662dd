//! The container's file system view, built in its new mount namespace:
//!
//! 1. make every mount private (or `linux.rootfsPropagation`) so nothing
//!    we do propagates to the host;
//! 2. make the mount holding the rootfs private (pivot_root refuses a new
//!    root whose parent mount is shared), bind the rootfs onto itself
//!    (pivot_root needs a mount point);
//! 3. the spec's mounts, in order, each destination resolved *inside* the
//!    rootfs ([`Syscall::resolve`]) so a symlink in the image cannot point a
//!    mount at the host;
//! 4. devices and `/dev` symlinks, unless `/dev` is bound from the host;
//! 5. pivot_root, old root detached, `linux.rootfsPropagation` applied to
//!    the new `/` (as runc does: only now is `/` the container's root);
//! 6. after it ([`finish`]): sysctls, masked paths, read-only paths, a
//!    read-only root.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use super::devices;
use super::mounts::{self, MountOptions};
use super::syscall::{Create, Kind, MountArgs, Syscall};
use super::{Context, Error, Result};

/// Facts about the container that change how mounts are made.
#[derive(Debug, Clone)]
pub struct Config {
    /// The rootfs, absolute, as the host sees it.
    pub rootfs: PathBuf,
    /// Relative bind sources are relative to the bundle.
    pub bundle: PathBuf,
    /// sysfs can only be mounted by the owner of the network namespace.
    pub new_netns: bool,
    /// In a user namespace devices are bind-mounted, not made.
    pub userns: bool,
    pub cgroupns: bool,
    pub cgroups: CgroupLayout,
}

/// How the host's cgroups are mounted, for a spec mount of type `cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup v2 only.
    Unified,
    /// v1 hierarchies (or hybrid): (directory name, fstype, mount data).
    Legacy(Vec<(String, String, Option<String>)>),
}

impl CgroupLayout {
    /// Read from `/proc/self/cgroup` and the type of `/sys/fs/cgroup`.
    pub fn detect() -> CgroupLayout {
        let unified = rustix::fs::statfs("/sys/fs/cgroup")
            .map(|s| s.f_type as u64 == libc::CGROUP2_SUPER_MAGIC as u64)
            .unwrap_or(false);
        if unified {
            return CgroupLayout::Unified;
        }
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        CgroupLayout::Legacy(Self::parse_legacy(&text))
    }

    pub fn parse_legacy(proc_self_cgroup: &str) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        for line in proc_self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls)) = (parts.next(), parts.next()) else {
                continue;
            };
            if id == "0" {
                out.push(("unified".into(), "cgroup2".into(), None));
            } else if !ctrls.is_empty() {
                let dir = ctrls.strip_prefix("name=").unwrap_or(ctrls).to_string();
                out.push((dir, "cgroup".into(), Some(ctrls.to_string())));
            }
        }
        out
    }
}

/// Steps 1-4: everything up to pivot_root.
pub fn prepare<S: Syscall>(sys: &S, spec: &Spec, cfg: &Config) -> Result<()> {
    let propagation = root_propagation(spec)?.unwrap_or(libc::MS_PRIVATE | libc::MS_REC);
    sys.mount(&MountArgs {
        source: None,
        target: "/".into(),
        fstype: None,
        flags: libc::MS_REC | propagation,
        data: None,
    })
    .ctx(|| "making the container's mounts private".into())?;
    parent_mount_private(sys, &cfg.rootfs)?;
    sys.mount(&MountArgs {
        source: Some(cfg.rootfs.clone()),
        target: cfg.rootfs.clone(),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REC,
        data: None,
    })
    .ctx(|| {
        format!(
            "bind-mounting the rootfs {} onto itself",
            cfg.rootfs.display()
        )
    })?;

    let mut dev_bound = false;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let opts = mount_options(m);
        if clean(m.destination()) == Path::new("/dev") && opts.is_bind() {
            dev_bound = true;
        }
        mount_one(sys, m, &opts, cfg)?;
    }
    if !dev_bound {
        let spec_devices = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        devices::create(
            sys,
            &cfg.rootfs,
            &devices::all_devices(&spec_devices),
            cfg.userns,
        )?;
        devices::symlinks(sys, &cfg.rootfs)?;
    }
    Ok(())
}

/// The mount flags of `linux.rootfsPropagation`, None when unset.
fn root_propagation(spec: &Spec) -> Result<Option<u64>> {
    match spec.linux().as_ref().and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => Ok(None),
        Some(p) => mounts::propagation(p).map(Some).ok_or_else(|| {
            Error::InvalidSpec(format!("linux.rootfsPropagation {p:?} is not one of private, slave, shared, unbindable (optionally r-prefixed)"))
        }),
    }
}

/// Make the mount the rootfs lives on private (not recursively): the bind
/// of the rootfs then propagates nowhere, and pivot_root, which refuses a
/// new root whose parent mount is shared, accepts it even when
/// `rootfsPropagation` made `/` shared. mount(2) answers EINVAL for a path
/// that is not a mount point, so walk up until one is (runc's
/// `rootfsParentMountPrivate`).
fn parent_mount_private<S: Syscall>(sys: &S, rootfs: &Path) -> Result<()> {
    let mut path = rootfs;
    loop {
        let r = sys.mount(&MountArgs {
            source: None,
            target: path.to_path_buf(),
            fstype: None,
            flags: libc::MS_PRIVATE,
            data: None,
        });
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match path.parent() {
                Some(parent) => path = parent,
                None => {
                    return Err(e).ctx(|| {
                        format!(
                            "making the mount holding the rootfs {} private",
                            rootfs.display()
                        )
                    })
                }
            },
            Err(e) => {
                return Err(e).ctx(|| {
                    format!(
                        "making the mount holding the rootfs {} private ({})",
                        rootfs.display(),
                        path.display()
                    )
                })
            }
        }
    }
}

fn mount_options(m: &Mount) -> MountOptions {
    let mut o = mounts::parse(m.options().as_deref().unwrap_or_default());
    if m.typ().as_deref() == Some("bind") {
        o.flags |= libc::MS_BIND;
    }
    o
}

/// `/a/./b/` → `/a/b`, for comparisons.
fn clean(p: &Path) -> PathBuf {
    Path::new("/").join(super::syscall::relative_in_root(p))
}

fn mount_one<S: Syscall>(sys: &S, m: &Mount, opts: &MountOptions, cfg: &Config) -> Result<()> {
    let dest = clean(m.destination());
    let typ = m.typ().as_deref().unwrap_or("");
    let rootfs = &cfg.rootfs;
    if !opts.is_bind() && (typ == "cgroup" || typ == "cgroup2") {
        return mount_cgroup(sys, &dest, opts, cfg);
    }
    if typ == "sysfs" && !cfg.new_netns {
        // Only the owner of the network namespace may mount sysfs; without
        // one of our own, show the host's read-only instead (as runc does).
        let mut o = opts.clone();
        o.flags = libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY | (opts.flags & !libc::MS_BIND);
        return bind(sys, Path::new("/sys"), &dest, &o, rootfs);
    }
    if opts.is_bind() {
        let source = m.source().as_ref().ok_or_else(|| {
            Error::InvalidSpec(format!("bind mount on {} has no source", dest.display()))
        })?;
        let source = if source.is_relative() {
            cfg.bundle.join(source)
        } else {
            source.clone()
        };
        return bind(sys, &source, &dest, opts, rootfs);
    }
    let target = sys
        .resolve(rootfs, &dest, Create::Dir)
        .ctx(|| format!("creating mount point {} in the rootfs", dest.display()))?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let mut args = MountArgs {
        source: Some(source),
        target: target.path.clone(),
        fstype: Some(typ.to_string()),
        flags: opts.flags,
        data: opts.data(),
    };
    let mut r = sys.mount(&args);
    if typ == "devpts"
        && r.as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
    {
        // gid=5 is not mapped in this user namespace: mount without it.
        args.data = Some(
            opts.data
                .iter()
                .filter(|d| !d.starts_with("gid="))
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
        );
        r = sys.mount(&args);
    }
    r.ctx(|| {
        format!(
            "mounting {typ} on {} (options {:?})",
            dest.display(),
            m.options().as_deref().unwrap_or_default()
        )
    })?;
    if opts.propagation != 0 {
        set_propagation(sys, rootfs, &dest, opts.propagation)?;
    }
    Ok(())
}

fn set_propagation<S: Syscall>(sys: &S, root: &Path, dest: &Path, flags: u64) -> Result<()> {
    let target = sys
        .resolve(root, dest, Create::No)
        .ctx(|| format!("opening {}", dest.display()))?;
    sys.mount(&MountArgs {
        source: None,
        target: target.path,
        fstype: None,
        flags,
        data: None,
    })
    .ctx(|| format!("changing the propagation of {}", dest.display()))
}

/// Bind `source` (a host path) onto `dest` inside `root`, then remount it
/// with the requested flags (a bind ignores them on the first call),
/// keeping the flags a user namespace locks on the source.
fn bind<S: Syscall>(
    sys: &S,
    source: &Path,
    dest: &Path,
    opts: &MountOptions,
    root: &Path,
) -> Result<()> {
    let create = match std::fs::metadata(source) {
        Ok(md) if md.is_dir() => Create::Dir,
        Ok(_) => Create::File,
        Err(e) => {
            return Err(Error::Io {
                what: format!(
                    "bind mount source {} for {}",
                    source.display(),
                    dest.display()
                ),
                source: e,
            })
        }
    };
    let target = sys
        .resolve(root, dest, create)
        .ctx(|| format!("creating mount point {} in the rootfs", dest.display()))?;
    sys.mount(&MountArgs {
        source: Some(source.to_path_buf()),
        target: target.path,
        fstype: None,
        flags: opts.flags & (libc::MS_BIND | libc::MS_REC),
        data: None,
    })
    .ctx(|| format!("bind-mounting {} on {}", source.display(), dest.display()))?;
    if opts.remount_flags() != 0 {
        remount(
            sys,
            root,
            dest,
            opts.remount_flags(),
            opts.flags & libc::MS_REC,
        )?;
    }
    if opts.propagation != 0 {
        set_propagation(sys, root, dest, opts.propagation)?;
    }
    Ok(())
}

/// Remount the bind mount at `dest` with `flags`, keeping nosuid, nodev and
/// noexec where the mount already has them (they may be locked).
fn remount<S: Syscall>(sys: &S, root: &Path, dest: &Path, flags: u64, rec: u64) -> Result<()> {
    // Resolved again: the fd from before the bind names the covered mount.
    let target = sys
        .resolve(root, dest, Create::No)
        .ctx(|| format!("opening {}", dest.display()))?;
    let locked = sys
        .mount_flags(&target.path)
        .ctx(|| format!("reading the mount flags of {}", dest.display()))?
        & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    sys.mount(&MountArgs {
        source: None,
        target: target.path,
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REMOUNT | rec | flags | locked,
        data: None,
    })
    .ctx(|| format!("remounting {} with the requested flags", dest.display()))
}

fn mount_cgroup<S: Syscall>(sys: &S, dest: &Path, opts: &MountOptions, cfg: &Config) -> Result<()> {
    let root = &cfg.rootfs;
    if !cfg.cgroupns {
        // Without a cgroup namespace a fresh mount would show the host's
        // whole hierarchy; show it read-only instead.
        let mut o = opts.clone();
        o.flags |= libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY;
        return bind(sys, Path::new("/sys/fs/cgroup"), dest, &o, root);
    }
    let flags = opts.flags & !libc::MS_RDONLY;
    match &cfg.cgroups {
        CgroupLayout::Unified => {
            let target = sys
                .resolve(root, dest, Create::Dir)
                .ctx(|| format!("creating {}", dest.display()))?;
            sys.mount(&MountArgs {
                source: Some("cgroup2".into()),
                target: target.path,
                fstype: Some("cgroup2".into()),
                flags: opts.flags,
                data: None,
            })
            .ctx(|| format!("mounting cgroup2 on {}", dest.display()))
        }
        CgroupLayout::Legacy(hierarchies) => {
            let target = sys
                .resolve(root, dest, Create::Dir)
                .ctx(|| format!("creating {}", dest.display()))?;
            sys.mount(&MountArgs {
                source: Some("tmpfs".into()),
                target: target.path,
                fstype: Some("tmpfs".into()),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: Some("mode=755".into()),
            })
            .ctx(|| format!("mounting a tmpfs for cgroups on {}", dest.display()))?;
            for (dir, fstype, data) in hierarchies {
                let sub = dest.join(dir);
                let target = sys
                    .resolve(root, &sub, Create::Dir)
                    .ctx(|| format!("creating {}", sub.display()))?;
                sys.mount(&MountArgs {
                    source: Some("cgroup".into()),
                    target: target.path,
                    fstype: Some(fstype.clone()),
                    flags: flags | (opts.flags & libc::MS_RDONLY),
                    data: data.clone(),
                })
                .ctx(|| format!("mounting the {dir} cgroup hierarchy on {}", sub.display()))?;
            }
            if opts.flags & libc::MS_RDONLY != 0 {
                let target = sys
                    .resolve(root, dest, Create::No)
                    .ctx(|| format!("opening {}", dest.display()))?;
                sys.mount(&MountArgs {
                    source: None,
                    target: target.path,
                    fstype: None,
                    flags: libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC,
                    data: Some("mode=755".into()),
                })
                .ctx(|| format!("remounting {} read-only", dest.display()))?;
            }
            Ok(())
        }
    }
}

/// Step 5. `linux.rootfsPropagation` is applied to `/` only now: before
/// pivot_root the rootfs' parent mount must not be shared, and `/` was the
/// host's root, not the container's.
pub fn pivot<S: Syscall>(sys: &S, spec: &Spec, rootfs: &Path) -> Result<()> {
    let propagation = root_propagation(spec)?;
    sys.pivot_root(rootfs)
        .ctx(|| format!("pivot_root into {}", rootfs.display()))?;
    if let Some(flags) = propagation {
        sys.mount(&MountArgs {
            source: None,
            target: "/".into(),
            fstype: None,
            flags,
            data: None,
        })
        .ctx(|| "applying linux.rootfsPropagation to the container's /".into())?;
    }
    Ok(())
}

/// Step 6, inside the new root.
pub fn finish<S: Syscall>(sys: &S, spec: &Spec) -> Result<()> {
    let root = Path::new("/");
    let linux = spec.linux().as_ref();
    if let Some(sysctls) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = sysctls.iter().collect();
        keys.sort();
        for (key, value) in keys {
            let path = sysctl_path(key)?;
            let target = sys
                .resolve(root, &path, Create::No)
                .ctx(|| format!("sysctl {key}: no such setting in this container"))?;
            sys.write_file(&target.path, value)
                .ctx(|| format!("setting sysctl {key}={value}"))?;
        }
    }
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        mask(sys, Path::new(&p))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly(sys, Path::new(&p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let locked = sys
            .mount_flags(root)
            .ctx(|| "reading the root's mount flags".into())?
            & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        sys.mount(&MountArgs {
            source: None,
            target: root.into(),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
            data: None,
        })
        .ctx(|| "remounting the root read-only".into())?;
    }
    Ok(())
}

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    if key.is_empty() || key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
        return Err(Error::InvalidSpec(format!(
            "sysctl name {key:?} is invalid"
        )));
    }
    Ok(PathBuf::from("/proc/sys").join(key.replace('.', "/")))
}

/// `path` resolved inside `root`, or None when it does not exist (masked
/// and read-only paths an image lacks are skipped).
fn resolve_existing<S: Syscall>(
    sys: &S,
    root: &Path,
    path: &Path,
    what: &str,
) -> Result<Option<super::syscall::Target>> {
    match sys.resolve(root, path, Create::No) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::Io {
            what: format!("opening {what} {}", path.display()),
            source: e,
        }),
    }
}

/// Hide `path`: a read-only empty tmpfs over a directory, the container's
/// verified `/dev/null` over anything else. Paths that do not exist are
/// skipped.
pub fn mask<S: Syscall>(sys: &S, path: &Path) -> Result<()> {
    let root = Path::new("/");
    let Some(target) = resolve_existing(sys, root, path, "masked path")? else {
        return Ok(());
    };
    if target.kind == Kind::Dir {
        return sys
            .mount(&MountArgs {
                source: Some("tmpfs".into()),
                target: target.path,
                fstype: Some("tmpfs".into()),
                flags: libc::MS_RDONLY,
                data: None,
            })
            .ctx(|| format!("masking {} with an empty tmpfs", path.display()));
    }
    // CVE-2025-31133 class: if /dev/null were a symlink (or another file),
    // binding "/dev/null" would put whatever it points at over the masked
    // path. Bind only a node verified as char 1:3, opened without following.
    let null = sys.null_device(root).map_err(|e| Error::Unsafe {
        what: format!("masking {}", path.display()),
        why: e.to_string(),
    })?;
    sys.mount(&MountArgs {
        source: Some(null.path),
        target: target.path,
        fstype: None,
        flags: libc::MS_BIND,
        data: None,
    })
    .ctx(|| format!("masking {} with /dev/null", path.display()))
}

/// Make `path` read-only: bind it onto itself, remount read-only.
pub fn readonly<S: Syscall>(sys: &S, path: &Path) -> Result<()> {
    let root = Path::new("/");
    let Some(target) = resolve_existing(sys, root, path, "read-only path")? else {
        return Ok(());
    };
    sys.mount(&MountArgs {
        source: Some(target.path.clone()),
        target: target.path.clone(),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REC,
        data: None,
    })
    .ctx(|| format!("binding {} onto itself", path.display()))?;
    remount(sys, root, path, libc::MS_RDONLY, libc::MS_REC)
}

#[cfg(test)]
mod tests;
