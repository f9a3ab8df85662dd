//! The merged view of the parent layers, as overlayfs will show it, for one
//! question: is this directory name a symlink there?
//!
//! A layer that writes `etc/passwd` over a parent whose `etc` is a symlink
//! to `/host` would, in any unpacker that applies layers onto one tree,
//! write through the symlink (CVE-2018-15664 class). Overlayfs itself would
//! hide the symlink behind the new directory instead, silently changing the
//! image. Neither is acceptable, so such a layer is refused.
//!
//! Lookup follows overlayfs: layers are searched top-most first; a layer
//! lacking a name passes the lookup on; a whiteout (char device 0/0) or any
//! non-directory ends it; a directory continues it in lower layers unless
//! it is opaque.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::FileType;

use super::{safe, whiteout, Error};

/// Directories of the lower layers in which one path is visible, top-most
/// first.
pub(crate) struct Visible(Vec<OwnedFd>);

/// What the merged lower view has at a name.
pub(crate) enum Found {
    /// A symlink, visible from above.
    Symlink,
    /// Anything else, or nothing.
    Other,
}

impl Visible {
    /// The roots of `lowers`, top-most first.
    pub(crate) fn roots(lowers: &[PathBuf]) -> Result<Visible, Error> {
        lowers
            .iter()
            .map(|p| {
                safe::open_trusted_dir(p)
                    .map_err(|e| Error::io(format!("opening the parent layer {}", p.display()), e))
            })
            .collect::<Result<_, _>>()
            .map(Visible)
    }

    /// Nothing visible (below an opaque or new directory).
    pub(crate) fn none() -> Visible {
        Visible(Vec::new())
    }

    pub(crate) fn try_clone(&self) -> io::Result<Visible> {
        self.0
            .iter()
            .map(|fd| fd.try_clone())
            .collect::<io::Result<_>>()
            .map(Visible)
    }

    /// Look up `name` in the visible directories: what the merged view has
    /// there, and the directories in which `name`'s children are visible.
    pub(crate) fn child(&self, name: &[u8]) -> io::Result<(Found, Visible)> {
        let mut below = Vec::new();
        for dir in &self.0 {
            let st = match safe::lstat(dir, name) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match safe::file_type(&st) {
                FileType::Directory => {
                    let fd = safe::open_dir(dir, name)?;
                    let opaque = whiteout::is_opaque(&fd)?;
                    below.push(fd);
                    if opaque {
                        break;
                    }
                }
                // A symlink under a directory of a higher layer is hidden.
                FileType::Symlink if below.is_empty() => {
                    return Ok((Found::Symlink, Visible::none()))
                }
                // Whiteouts and other non-directories end the lookup.
                _ => break,
            }
        }
        Ok((Found::Other, Visible(below)))
    }
}
