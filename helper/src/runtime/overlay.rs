//! The overlay root file system of one container: the image's read-only
//! layer directories below, the container's own writable upper directory
//! on top. berthd prepares the directories; this is the one place that
//! mounts and unmounts them (the layer store only hands out paths).
//!
//! For a container in its own user namespace (`--userns=auto`),
//! [`OverlayMount::mount_idmapped`] gives overlayfs idmapped, detached
//! clones of the layer directories (see [`super::idmap`]) through the new
//! mount API, so the shared layers are seen owned by the container's ids
//! and stay untouched on disk (before Linux 6.15 overlayfs takes no
//! detached layers: they are attached read-only under `<target>.layers/`
//! just for the mount call). Either way the result is one overlay mount at
//! the target, and [`unmount`] is all the clean-up there is: the clones go
//! with the overlay.
//!
//! The overlay (and each attached layer) is mounted `nosuid,nodev` in the
//! host's mount namespace: another local user who reached it must not run
//! a set-uid program a container planted (CVE-2021-41091 class, issue 11);
//! inside the container `no_new_privs` already disarms set-id bits. The
//! mount point and `<target>.layers/` are made 0700.

use std::path::{Path, PathBuf};

/// What to mount: lower dirs top-most first, as `lowerdir=` wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mounting the root file system at {target}: {source}; is overlayfs available (modprobe overlay)?")]
    Mount {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("unmounting {target}: {source}")]
    Unmount {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("the image has too many layers for one overlay mount ({0} bytes of options; the kernel takes one page)")]
    TooManyLayers(usize),
    #[error("a layer path contains a character overlayfs cannot take (`:` or `,`): {0}")]
    BadPath(PathBuf),
    #[error("mounting the root file system at {target} with idmapped layers: {what}: {source}; --userns=auto needs Linux 5.19 or later and layers on a file system that supports idmapped mounts (ext4, xfs, btrfs, tmpfs)")]
    Idmapped {
        target: PathBuf,
        what: String,
        source: std::io::Error,
    },
}

impl OverlayMount {
    /// The mount options, checked.
    pub fn options(&self) -> Result<String, Error> {
        for p in self.lower.iter().chain([&self.upper, &self.work]) {
            let s = p.to_string_lossy();
            if s.contains(':') || s.contains(',') {
                return Err(Error::BadPath(p.clone()));
            }
        }
        let lower: Vec<String> = self
            .lower
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},index=off,xino=off",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        );
        // The kernel copies at most one page of mount options.
        if data.len() >= 4000 {
            return Err(Error::TooManyLayers(data.len()));
        }
        Ok(data)
    }

    /// Mount it (creating the target directory).
    pub fn mount(&self) -> Result<(), Error> {
        let data = std::ffi::CString::new(self.options()?)
            .map_err(|_| Error::BadPath(self.upper.clone()))?;
        let err = |source: std::io::Error| Error::Mount {
            target: self.target.clone(),
            source,
        };
        crate::fsmode::make_dir(&self.target, crate::fsmode::DIR).map_err(err)?;
        rustix::mount::mount(
            "overlay",
            &self.target,
            "overlay",
            rustix::mount::MountFlags::NODEV | rustix::mount::MountFlags::NOSUID,
            Some(data.as_c_str()),
        )
        .map_err(|e| err(e.into()))
    }
}

impl OverlayMount {
    /// Mount it with every lower layer seen through the id mapping `map`
    /// (the container's uid and gid map), creating the target directory.
    /// `upper` and `work` are used as they are: the caller makes them
    /// owned by the mapped root.
    pub fn mount_idmapped(&self, map: super::idmap::IdMapping) -> Result<(), Error> {
        self.mount_idmapped_as(map, false)
    }

    fn mount_idmapped_as(
        &self,
        map: super::idmap::IdMapping,
        force_attached: bool,
    ) -> Result<(), Error> {
        use std::os::fd::AsFd;
        crate::fsmode::make_dir(&self.target, crate::fsmode::DIR).map_err(|source| {
            Error::Mount {
                target: self.target.clone(),
                source,
            }
        })?;
        let userns = super::idmap::userns_fd(&[map])
            .map_err(self.err("making a user namespace for the id mapping".into()))?;
        let layers = self
            .lower
            .iter()
            .map(|l| {
                super::idmap::idmapped_tree(l, userns.as_fd())
                    .map_err(self.err(format!("making an idmapped view of {}", l.display())))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        drop(userns);
        if force_attached {
            return self.mount_attached_layers(layers);
        }
        match self.mount_layer_fds(&layers) {
            Ok(()) => Ok(()),
            // Before Linux 6.15 overlayfs takes no detached layers.
            Err(first) => self.mount_attached_layers(layers).map_err(|e| match e {
                Error::Idmapped {
                    target,
                    what,
                    source,
                } => Error::Idmapped {
                    target,
                    what: format!("{what} (and with detached layers: {first})"),
                    source,
                },
                e => e,
            }),
        }
    }

    fn err(&self, what: String) -> impl FnOnce(std::io::Error) -> Error {
        let target = self.target.clone();
        move |source| Error::Idmapped {
            target,
            what,
            source,
        }
    }

    /// The new mount API, each layer a detached mount given by fd
    /// (Linux 6.15 and later).
    fn mount_layer_fds(&self, layers: &[std::os::fd::OwnedFd]) -> Result<(), Error> {
        use rustix::mount::{
            fsconfig_create, fsconfig_set_fd, fsconfig_set_string, fsmount, fsopen, move_mount,
            FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
        };
        use std::os::fd::AsFd;
        // The kernel's message about a failed fsconfig, with the errno.
        let ctx_err = |fs: &std::os::fd::OwnedFd, what: String, e: rustix::io::Errno| {
            let msg = super::idmap::fs_context_messages(fs.as_fd());
            let what = if msg.is_empty() {
                what
            } else {
                format!("{what} (the kernel says: {msg})")
            };
            self.err(what)(e.into())
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| self.err("fsopen(overlay)".into())(e.into()))?;
        fsconfig_set_string(&fs, "source", "overlay")
            .map_err(|e| ctx_err(&fs, "setting the source".into(), e))?;
        // Top-most first, as lowerdir= takes them.
        for (layer, path) in layers.iter().zip(&self.lower) {
            fsconfig_set_fd(&fs, "lowerdir+", layer)
                .map_err(|e| ctx_err(&fs, format!("adding the layer {}", path.display()), e))?;
        }
        for (key, path) in [("upperdir", &self.upper), ("workdir", &self.work)] {
            fsconfig_set_string(&fs, key, path)
                .map_err(|e| ctx_err(&fs, format!("setting {key} {}", path.display()), e))?;
        }
        for (key, value) in [("index", "off"), ("xino", "off")] {
            fsconfig_set_string(&fs, key, value)
                .map_err(|e| ctx_err(&fs, format!("setting {key}={value}"), e))?;
        }
        fsconfig_create(&fs).map_err(|e| ctx_err(&fs, "creating the overlay".into(), e))?;
        let mnt = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
        )
        .map_err(|e| ctx_err(&fs, "fsmount".into(), e))?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            &self.target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| self.err("attaching the overlay".into())(e.into()))
    }

    /// For Linux 5.19 to 6.14: attach each (read-only) idmapped layer at
    /// `<target>.layers/<n>` for as long as the classic mount call takes
    /// (overlayfs keeps private clones of its layers), then detach them.
    fn mount_attached_layers(&self, layers: Vec<std::os::fd::OwnedFd>) -> Result<(), Error> {
        use rustix::mount::{move_mount, MoveMountFlags};
        let dir = layers_dir(&self.target);
        let mut attached = Vec::new();
        let result = (|| {
            crate::fsmode::make_dir(&dir, crate::fsmode::DIR)
                .map_err(self.err(format!("creating {}", dir.display())))?;
            for (i, layer) in layers.iter().enumerate() {
                let at = dir.join(i.to_string());
                crate::fsmode::make_dir(&at, crate::fsmode::DIR)
                    .map_err(self.err(format!("creating {}", at.display())))?;
                move_mount(
                    layer,
                    "",
                    rustix::fs::CWD,
                    &at,
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )
                .map_err(|e| {
                    self.err(format!("attaching a layer at {}", at.display()))(e.into())
                })?;
                attached.push(at);
            }
            OverlayMount {
                lower: attached.clone(),
                ..self.clone()
            }
            .mount()
        })();
        drop(layers);
        detach_layers(&self.target);
        result
    }
}

/// Where [`OverlayMount::mount_idmapped`] attaches layers on older kernels.
fn layers_dir(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".layers");
    target.with_file_name(name)
}

/// Detach and remove whatever is left in `<target>.layers` (also after a
/// crash half-way through a mount). Only empty directories are removed:
/// nothing is ever deleted through a layer.
fn detach_layers(target: &Path) {
    let dir = layers_dir(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let _ = rustix::mount::unmount(e.path(), rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(e.path());
    }
    let _ = std::fs::remove_dir(&dir);
}

/// Unmount `target` if something is mounted there (detaching it if busy).
pub fn unmount(target: &Path) -> Result<(), Error> {
    detach_layers(target);
    match rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::Unmount {
            target: target.to_path_buf(),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_in_overlay_order_and_checked() {
        let m = OverlayMount {
            lower: vec!["/l/top".into(), "/l/base".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            target: "/c/rootfs".into(),
        };
        assert_eq!(
            m.options().unwrap(),
            "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work,index=off,xino=off"
        );
        let bad = OverlayMount {
            lower: vec!["/l/a:b".into()],
            ..m.clone()
        };
        assert!(matches!(bad.options(), Err(Error::BadPath(_))));
        let many = OverlayMount {
            lower: (0..200)
                .map(|i| PathBuf::from(format!("/var/lib/berth/layers/sha256/{i:064}/diff")))
                .collect(),
            ..m
        };
        assert!(matches!(many.options(), Err(Error::TooManyLayers(_))));
    }

    #[test]
    fn mounts_an_overlay_as_root() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let dirs = ["low1", "low2", "upper", "work"].map(|n| {
            let p = d.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        });
        std::fs::write(dirs[0].join("a"), "top").unwrap();
        std::fs::write(dirs[1].join("a"), "base").unwrap();
        std::fs::write(dirs[1].join("b"), "base").unwrap();
        let m = OverlayMount {
            lower: vec![dirs[0].clone(), dirs[1].clone()],
            upper: dirs[2].clone(),
            work: dirs[3].clone(),
            target: d.path().join("rootfs"),
        };
        m.mount().unwrap();
        let nosuid_nodev = nosuid_nodev(&m.target);
        let read = |n: &str| std::fs::read_to_string(m.target.join(n)).unwrap();
        let result = (read("a"), read("b"));
        std::fs::write(m.target.join("c"), "new").unwrap();
        unmount(&m.target).unwrap();
        unmount(&m.target).unwrap();
        assert_eq!(result, ("top".to_string(), "base".to_string()));
        assert!(nosuid_nodev, "the overlay honours set-id bits or devices");
        assert_eq!(std::fs::read_to_string(dirs[2].join("c")).unwrap(), "new");
        assert!(!dirs[1].join("c").exists());
    }

    #[test]
    fn mounts_an_idmapped_overlay_as_root() {
        idmapped_overlay(false);
    }

    /// The way taken on kernels before 6.15 (layers attached for the mount).
    #[test]
    fn mounts_an_idmapped_overlay_over_attached_layers_as_root() {
        idmapped_overlay(true);
    }

    /// Whether the mount at `p` is nosuid and nodev.
    fn nosuid_nodev(p: &Path) -> bool {
        use rustix::fs::StatVfsMountFlags as F;
        rustix::fs::statvfs(p)
            .unwrap()
            .f_flag
            .contains(F::NOSUID | F::NODEV)
    }

    fn idmapped_overlay(force_attached: bool) {
        use std::os::unix::fs::MetadataExt;
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        const START: u32 = 0x4000_0000;
        let d = tempfile::tempdir().unwrap();
        let dirs = ["low1", "low2", "upper", "work"].map(|n| {
            let p = d.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        });
        std::fs::write(dirs[0].join("a"), "top").unwrap();
        std::fs::write(dirs[1].join("b"), "base").unwrap();
        std::os::unix::fs::chown(dirs[1].join("b"), Some(1000), Some(1000)).unwrap();
        for p in &dirs[2..] {
            std::os::unix::fs::chown(p, Some(START), Some(START)).unwrap();
        }
        let m = OverlayMount {
            lower: vec![dirs[0].clone(), dirs[1].clone()],
            upper: dirs[2].clone(),
            work: dirs[3].clone(),
            target: d.path().join("rootfs"),
        };
        m.mount_idmapped_as(crate::runtime::idmap::root_at(START, 65536), force_attached)
            .unwrap();
        let layers_left = layers_dir(&m.target).exists();
        let nosuid_nodev = nosuid_nodev(&m.target);
        let owner = |p: &Path| {
            let md = std::fs::metadata(p).unwrap();
            (md.uid(), md.gid())
        };
        let seen = (
            owner(&m.target.join("a")),
            owner(&m.target.join("b")),
            owner(&m.target),
        );
        // A write copies the file up, keeping the owner it is seen with.
        std::fs::OpenOptions::new()
            .append(true)
            .open(m.target.join("a"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"+"))
            .unwrap();
        let listed = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts_here = |t: &str| {
            t.lines()
                .filter(|l| l.contains(d.path().to_str().unwrap()))
                .count()
        };
        let while_mounted = mounts_here(&listed);
        unmount(&m.target).unwrap();
        let after = mounts_here(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        assert_eq!(seen.0, (START, START));
        assert_eq!(seen.1, (START + 1000, START + 1000));
        assert_eq!(seen.2, (START, START), "the root is the upper dir's");
        assert_eq!(
            owner(&dirs[2].join("a")),
            (START, START),
            "copied up as seen"
        );
        assert_eq!(std::fs::read_to_string(dirs[2].join("a")).unwrap(), "top+");
        assert_eq!(owner(&dirs[0].join("a")), (0, 0), "the layer is untouched");
        assert_eq!(std::fs::read_to_string(dirs[0].join("a")).unwrap(), "top");
        assert_eq!(while_mounted, 1, "only the overlay is listed: {listed}");
        assert!(nosuid_nodev, "the overlay honours set-id bits or devices");
        assert!(!layers_left, "the attach points are gone");
        assert_eq!(after, 0, "nothing is left mounted");
    }

    /// After a crash half-way through the older kernels' way, the attached
    /// layers are detached by `unmount`, never deleted through: they are
    /// read-only.
    #[test]
    fn leftover_attached_layers_are_detached_not_deleted() {
        use std::os::fd::AsFd;
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let layer = d.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        std::fs::write(layer.join("shared"), "keep").unwrap();
        let target = d.path().join("rootfs");
        let at = layers_dir(&target).join("0");
        std::fs::create_dir_all(&at).unwrap();
        let ns =
            crate::runtime::idmap::userns_fd(&[crate::runtime::idmap::root_at(0x7000_0000, 65536)])
                .unwrap();
        let tree = crate::runtime::idmap::idmapped_tree(&layer, ns.as_fd()).unwrap();
        rustix::mount::move_mount(
            &tree,
            "",
            rustix::fs::CWD,
            &at,
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .unwrap();
        let write_through = std::fs::remove_file(at.join("shared"));
        unmount(&target).unwrap();
        assert!(write_through.is_err(), "the attached layer is read-only");
        assert!(!layers_dir(&target).exists());
        assert_eq!(
            std::fs::read_to_string(layer.join("shared")).unwrap(),
            "keep"
        );
    }
}
