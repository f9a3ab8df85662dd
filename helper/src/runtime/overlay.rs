//! The overlay root file system of one container: the image's read-only
//! layer directories below, the container's own writable upper directory
//! on top. berthd prepares the directories; this is the one place that
//! mounts and unmounts them (the layer store only hands out paths).

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
        std::fs::create_dir_all(&self.target).map_err(err)?;
        rustix::mount::mount(
            "overlay",
            &self.target,
            "overlay",
            rustix::mount::MountFlags::NODEV,
            Some(data.as_c_str()),
        )
        .map_err(|e| err(e.into()))
    }
}

/// Unmount `target` if something is mounted there (detaching it if busy).
pub fn unmount(target: &Path) -> Result<(), Error> {
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
        let read = |n: &str| std::fs::read_to_string(m.target.join(n)).unwrap();
        let result = (read("a"), read("b"));
        std::fs::write(m.target.join("c"), "new").unwrap();
        unmount(&m.target).unwrap();
        unmount(&m.target).unwrap();
        assert_eq!(result, ("top".to_string(), "base".to_string()));
        assert_eq!(std::fs::read_to_string(dirs[2].join("c")).unwrap(), "new");
        assert!(!dirs[1].join("c").exists());
    }
}
