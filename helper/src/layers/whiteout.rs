//! Whiteouts and opaque directories: how a layer deletes what lower layers
//! put there.
//!
//! In the tar (OCI image spec, "Whiteouts") a deletion is an empty entry
//! named `.wh.NAME`, and `.wh..wh..opq` in a directory hides every lower
//! child of it. Other `.wh..wh.*` names are AUFS bookkeeping and mean
//! nothing. On disk (overlayfs form) a deletion is a character device 0/0
//! and an opaque directory carries `trusted.overlay.opaque=y`.

use std::io;
use std::os::fd::AsFd;

use rustix::fs::{FileType, Mode, XattrFlags};

pub(crate) const PREFIX: &[u8] = b".wh.";
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// The xattr overlayfs reads to know a directory hides its lower content.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Xattrs in this namespace are overlayfs's own; never copied from images.
pub(crate) const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// What an entry's final name means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Name<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh..wh..opq`: the containing directory is opaque.
    Opaque,
    /// `.wh.NAME`: delete `NAME` from lower layers.
    Whiteout(&'a [u8]),
    /// Another `.wh..wh.` name (AUFS hardlink and metadata dirs): ignored.
    Ignored,
}

/// Classify the final name of an entry. A whiteout of nothing, of `.` or of
/// `..` is refused: it could only be meant to delete the directory itself
/// or its parent.
pub(crate) fn classify(name: &[u8]) -> Result<Name<'_>, &'static str> {
    if !name.starts_with(PREFIX) {
        return Ok(Name::Plain);
    }
    if name == OPAQUE_MARKER {
        return Ok(Name::Opaque);
    }
    if name.starts_with(META_PREFIX) {
        return Ok(Name::Ignored);
    }
    match &name[PREFIX.len()..] {
        b"" => Err("a whiteout must name the file it deletes"),
        b"." | b".." => Err("a whiteout may not delete `.` or `..`"),
        target => Ok(Name::Whiteout(target)),
    }
}

/// Whether a stat result is an overlayfs whiteout (character device 0/0).
pub(crate) fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Create the whiteout `name` in `dir`.
pub(crate) fn make(dir: impl AsFd, name: &[u8]) -> io::Result<()> {
    rustix::fs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}

/// Mark the directory open as `dir` opaque. `dir` must be a real
/// descriptor, not `O_PATH`.
pub(crate) fn set_opaque(dir: impl AsFd) -> io::Result<()> {
    rustix::fs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty())?;
    Ok(())
}

/// Whether the directory open as `dir` (not `O_PATH`) is opaque.
pub(crate) fn is_opaque(dir: impl AsFd) -> io::Result<bool> {
    let mut buf = [0u8; 8];
    match rustix::fs::fgetxattr(dir, OPAQUE_XATTR, &mut buf) {
        Ok(n) => Ok(&buf[..n] == b"y"),
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::RANGE) => Ok(false),
        // Not root, or a file system without trusted xattrs: nothing can
        // have been marked there.
        Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(classify(b"passwd"), Ok(Name::Plain));
        assert_eq!(classify(b".whatever"), Ok(Name::Plain));
        assert_eq!(classify(b".wh..wh..opq"), Ok(Name::Opaque));
        assert_eq!(classify(b".wh..wh.plnk"), Ok(Name::Ignored));
        assert_eq!(classify(b".wh.passwd"), Ok(Name::Whiteout(b"passwd")));
        assert_eq!(classify(b".wh..bashrc"), Ok(Name::Whiteout(b".bashrc")));
        for bad in [&b".wh."[..], b".wh..", b".wh..."] {
            assert!(classify(bad).is_err(), "{bad:?} accepted");
        }
    }
}
