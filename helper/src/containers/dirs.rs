//! The directories of containers, their modes, and who may pass them (see
//! [`crate::fsmode`] for the rules, [`super::userns`] for the group):
//!
//! ```text
//! <root>/  <run>/             0700, 0710 root:berth-userns once the group exists
//!   containers/               the same
//!     <id>/                   0700, 0710 root:berth-userns for --userns=auto
//!       upper/                0755 and what the container writes: its `/`
//!       work/                 0700, overlayfs's
//!       hosts hostname resolv.conf
//!                             0644: bound into the container, read by its users
//!       log.json(.1)          0600, the shim's
//! <run>/containers/<id>/      as <root>/containers/<id>
//!   bundle/                   the same
//!     config.json             0600 (the container's environment)
//!     rootfs                  the overlay, mounted nosuid,nodev
//!   shim/                     0700, the shim's
//! <run>/runtime/              as <root>/containers
//!   <id>/                     the runtime's: 0700, 0710 root:berth-userns for
//!                             --userns=auto (it makes it so from the spec)
//! ```
//!
//! [`Containers::open`] makes the shared directories (the first five) and
//! tightens what an older berthd left: the modes above for every recorded
//! container, and `nosuid,nodev` on the root file systems still mounted.

use std::path::{Path, PathBuf};

use super::{io_err, Containers, Result};
use crate::fsmode;
use crate::state::ContainerRecord;

impl Containers {
    /// `<root>`, `<run>` and the directories holding every container's
    /// files: what a `--userns=auto` init passes whichever its container.
    /// An administrator may have made one a symlink (to another disk): its
    /// target is what must be closed.
    fn shared_dirs(&self) -> [PathBuf; 5] {
        let run_root = self.inner.run.parent().unwrap_or(Path::new("/"));
        [
            self.inner.images.root(),
            run_root,
            &self.inner.root,
            &self.inner.run,
            &self.inner.runtime_root,
        ]
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()))
    }

    /// Make the shared directories and give them their modes; then the
    /// files of every recorded container (see the module doc).
    pub(super) fn open_dirs(&self) -> Result<()> {
        if let Some(gid) = super::userns::traverse_gid() {
            *self.inner.traverse_gid.lock().expect("not poisoned") = Some(gid);
        }
        for d in self.shared_dirs() {
            fsmode::make_dir(&d, fsmode::DIR)
                .map_err(io_err(format!("creating {}", d.display())))?;
            self.passable(&d, true)?;
        }
        for c in self.inner.images.db().containers()? {
            self.tighten(&c)?;
        }
        fsmode::restrict_mounts_under(&self.inner.run, rustix::mount::MountFlags::empty()).map_err(
            io_err(format!(
                "making the root file systems under {} nosuid,nodev",
                self.inner.run.display()
            )),
        )
    }

    /// Give `dir` its mode: 0700, or 0710 root:berth-userns when `userns`
    /// and the group exists.
    fn passable(&self, dir: &Path, userns: bool) -> Result<()> {
        let gid = if userns { self.traverse_gid() } else { None };
        let done = match gid {
            Some(gid) => fsmode::set_group_mode(dir, gid, fsmode::TRAVERSE_DIR),
            None => fsmode::set_group_mode(dir, 0, fsmode::DIR),
        };
        done.map_err(io_err(format!("setting the mode of {}", dir.display())))
    }

    fn traverse_gid(&self) -> Option<u32> {
        *self.inner.traverse_gid.lock().expect("not poisoned")
    }

    /// The gid of `berth-userns`, made first if it is missing (and then
    /// the shared directories are given to it).
    pub(super) fn ensure_traverse_gid(&self) -> Result<u32> {
        if let Some(gid) = self.traverse_gid() {
            return Ok(gid);
        }
        let gid = super::userns::ensure_traverse_gid().map_err(super::Error::Runtime)?;
        *self.inner.traverse_gid.lock().expect("not poisoned") = Some(gid);
        for d in self.shared_dirs() {
            self.passable(&d, true)?;
        }
        Ok(gid)
    }

    /// Make `dir`, one of container `c`'s own directories (its dir under
    /// `<root>` or `<run>`, its bundle), with its mode.
    pub(super) fn container_dir(&self, c: &ContainerRecord, dir: &Path) -> Result<()> {
        fsmode::make_dir(dir, fsmode::DIR)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        self.passable(dir, c.userns.is_some())
    }

    /// What an older berthd left of container `c`: directories 0755 (the
    /// runtime's 0711), state files 0644, logs 0640. Only berthd's own
    /// files: not into `upper/`, `work/` or the root file system.
    fn tighten(&self, c: &ContainerRecord) -> Result<()> {
        let userns = c.userns.is_some();
        let (dir, run_dir) = (self.dir(&c.id), self.run_dir(&c.id));
        let runtime_dir = self.inner.runtime_root.join(&c.id);
        for d in [&dir, &run_dir, &run_dir.join("bundle"), &runtime_dir] {
            if d.is_dir() {
                self.passable(d, userns)?;
            }
        }
        let err = |p: &Path| io_err(format!("setting the mode of {}", p.display()));
        for d in [dir.join("work"), self.shim_dir(&c.id)] {
            fsmode::set_mode(&d, fsmode::DIR).map_err(err(&d))?;
        }
        for (d, names) in [
            (&dir, &["log.json", "log.json.1"][..]),
            (&run_dir.join("bundle"), &["config.json"][..]),
            (&runtime_dir, &["state.json"][..]),
        ] {
            fsmode::set_modes(d, names, fsmode::FILE).map_err(err(d))?;
        }
        Ok(())
    }
}
