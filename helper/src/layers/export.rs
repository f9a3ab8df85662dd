//! `export`: the merged file system of a layer chain, written into a plain
//! directory the way `umoci unpack` lays out a rootfs.
//!
//! Layers are applied bottom to top, each by walking its `diff` directory:
//! a whiteout (char device 0/0) deletes the path, an opaque directory first
//! empties what lower layers put in it, directories merge, anything else
//! replaces. Directory modes and mtimes are applied once at the end, from
//! the top-most layer that has the directory, children first.
//!
//! The destination may belong to an unprivileged caller who can change it
//! while we write. So every write goes through descriptors resolved beneath
//! it without symlinks, files are created exclusively (never opened if they
//! exist), and ownership is changed through descriptors, not names.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, XattrFlags};
use rustix::io::Errno;

use super::{path, safe, whiteout, Error, Result};

/// How often (in entries) the cancel flag is polled; a power of two.
const CANCEL_EVERY_ENTRIES: u64 = 256;
/// `XATTR_LIST_MAX` and `XATTR_SIZE_MAX`.
const XATTR_MAX: usize = 64 * 1024;
const SETID: u32 = 0o6000;

/// Export `layers` (`diff` directories, bottom first) into `dest`. See
/// [`super::LayerStore::export`].
pub(crate) fn export(
    layers: &[PathBuf],
    dest: BorrowedFd<'_>,
    owner: Option<(u32, u32)>,
    cancel: &AtomicBool,
) -> Result<u64> {
    let mut ex = Exporter {
        dest,
        owner,
        root: rustix::process::geteuid().is_root(),
        cancel,
        entries: 0,
        dirs: Vec::new(),
        dir_index: HashMap::new(),
        links: HashMap::new(),
        names: vec![0; XATTR_MAX],
        value: vec![0; XATTR_MAX],
        layer: Path::new(""),
    };
    for layer in layers {
        ex.layer = layer;
        ex.apply_layer()?;
    }
    ex.finish_dirs()?;
    Ok(ex.entries)
}

#[derive(Clone, Copy)]
struct DirMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
}

struct Exporter<'a> {
    dest: BorrowedFd<'a>,
    owner: Option<(u32, u32)>,
    /// Whether we may chown.
    root: bool,
    cancel: &'a AtomicBool,
    entries: u64,
    /// Final directory metadata, by path, in first-seen order.
    dirs: Vec<(Vec<u8>, DirMeta)>,
    dir_index: HashMap<Vec<u8>, usize>,
    /// Hardlinks of the current layer: source (dev, inode) to the first
    /// destination path.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// xattr buffers.
    names: Vec<u8>,
    value: Vec<u8>,
    /// The layer being applied, for messages.
    layer: &'a Path,
}

impl<'a> Exporter<'a> {
    fn apply_layer(&mut self) -> Result<()> {
        let src = safe::open_trusted_dir(self.layer)
            .map_err(|e| Error::io(format!("opening the layer {}", self.layer.display()), e))?;
        let dst = safe::open_dir(self.dest, b"").map_err(|e| self.err(b"", e))?;
        if whiteout::is_opaque(&src).map_err(|e| self.err(b"", e))? {
            safe::remove_children(dst.try_clone().map_err(|e| self.err(b"", e))?)
                .map_err(|e| self.err(b"", e))?;
        }
        self.links.clear();
        let mut rel = Vec::new();
        self.walk(&src, &dst, &mut rel)
    }

    /// Apply the children of the layer directory `src` to `dst`; `rel` is
    /// their common path.
    fn walk(&mut self, src: &OwnedFd, dst: &OwnedFd, rel: &mut Vec<u8>) -> Result<()> {
        let dir = rustix::fs::Dir::read_from(src).map_err(|e| self.err(rel, e))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.err(rel, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let len = rel.len();
            if len > 0 {
                rel.push(b'/');
            }
            rel.extend_from_slice(name);
            let r = self.entry(src, dst, name, rel);
            rel.truncate(len);
            r?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        rel: &mut Vec<u8>,
    ) -> Result<()> {
        let st = safe::lstat(src, name).map_err(|e| self.err(rel, e))?;
        let file_type = safe::file_type(&st);
        if whiteout::is_whiteout(&st) {
            safe::absent_ok(safe::remove_all(dst, name)).map_err(|e| self.err(rel, e))?;
            return Ok(());
        }
        if matches!(file_type, FileType::CharacterDevice | FileType::BlockDevice)
            && self.owner.is_some()
        {
            // Never hand a device node to an unprivileged caller.
            return Ok(());
        }
        if matches!(file_type, FileType::Socket | FileType::Unknown) {
            return Ok(());
        }
        self.entries += 1;
        if self.entries & (CANCEL_EVERY_ENTRIES - 1) == 0 && self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if file_type == FileType::Directory {
            return self.directory(src, dst, name, rel, &st);
        }

        // Everything else replaces what lower layers had.
        safe::absent_ok(safe::remove_all(dst, name)).map_err(|e| self.err(rel, e))?;
        #[allow(clippy::unnecessary_cast)] // field types differ between architectures
        let key = (st.st_dev as u64, st.st_ino as u64);
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                let (parent, first_name) = path::split(first);
                let first_dir =
                    safe::open_path_dir(self.dest, parent).map_err(|e| self.err(rel, e))?;
                rustix::fs::linkat(&first_dir, first_name, dst, name, AtFlags::empty())
                    .map_err(|e| self.err(rel, e))?;
                return Ok(());
            }
            self.links.insert(key, rel.clone());
        }
        match file_type {
            FileType::RegularFile => self.file(src, dst, name, rel, &st),
            FileType::Symlink => self.symlink(src, dst, name, rel, &st),
            _ => self.special(src, dst, name, rel, &st, file_type),
        }
    }

    fn directory(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        rel: &mut Vec<u8>,
        st: &Stat,
    ) -> Result<()> {
        let src_dir = safe::open_dir(src, name).map_err(|e| self.err(rel, e))?;
        match safe::lstat(dst, name) {
            Ok(existing) if safe::file_type(&existing) == FileType::Directory => {
                if whiteout::is_opaque(&src_dir).map_err(|e| self.err(rel, e))? {
                    let d = safe::open_dir(dst, name).map_err(|e| self.err(rel, e))?;
                    safe::remove_children(d).map_err(|e| self.err(rel, e))?;
                }
            }
            Ok(_) => {
                safe::remove_all(dst, name).map_err(|e| self.err(rel, e))?;
                self.mkdir(dst, name, rel)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.mkdir(dst, name, rel)?,
            Err(e) => return Err(self.err(rel, e)),
        }
        let dst_dir = safe::open_dir(dst, name).map_err(|e| self.err(rel, e))?;
        if self.owner.is_some() {
            // Theirs at once, not only in finish_dirs: if the export stops
            // half way, the caller can still delete what it left.
            if let Some((u, g)) = self.ids(st) {
                rustix::fs::fchown(&dst_dir, Some(u), Some(g)).map_err(|e| self.err(rel, e))?;
            }
        }
        self.copy_xattrs_fd(&src_dir, &dst_dir, rel)?;
        let meta = DirMeta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: safe::mtime_of(st),
        };
        match self.dir_index.get(rel.as_slice()) {
            Some(&i) => self.dirs[i].1 = meta,
            None => {
                self.dir_index.insert(rel.clone(), self.dirs.len());
                self.dirs.push((rel.clone(), meta));
            }
        }
        self.walk(&src_dir, &dst_dir, rel)
    }

    fn mkdir(&self, dst: &OwnedFd, name: &[u8], rel: &[u8]) -> Result<()> {
        // Owner-only until finish_dirs sets the real mode.
        rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(|e| self.err(rel, e))
    }

    fn file(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<()> {
        let mut from = File::from(
            rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.err(rel, e))?,
        );
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut to = File::from(
            rustix::fs::openat(dst, name, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| self.err(rel, e))?,
        );
        // A sparse file (fewer blocks than bytes) keeps its holes: copying
        // its zeros could fill the caller's disk (issue 11).
        if safe::allocated(st) < st.st_size as u64 {
            copy_sparse(&from, &to, st.st_size as u64).map_err(|e| self.err(rel, e))?;
        } else {
            // std uses copy_file_range here: reflinks where the file system can.
            io::copy(&mut from, &mut to).map_err(|e| self.err(rel, e))?;
        }
        if let Some((u, g)) = self.ids(st) {
            rustix::fs::fchown(&to, Some(u), Some(g)).map_err(|e| self.err(rel, e))?;
        }
        rustix::fs::fchmod(&to, Mode::from_raw_mode(self.mode(st)))
            .map_err(|e| self.err(rel, e))?;
        self.copy_xattrs_fd(&from, &to, rel)?;
        rustix::fs::futimens(&to, &safe::times(safe::mtime_of(st))).map_err(|e| self.err(rel, e))
    }

    fn symlink(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<()> {
        let target = rustix::fs::readlinkat(src, name, Vec::new()).map_err(|e| self.err(rel, e))?;
        rustix::fs::symlinkat(target.as_c_str(), dst, name).map_err(|e| self.err(rel, e))?;
        if let Some((u, g)) = self.ids(st) {
            // Through a handle checked to be a symlink, not by name: the
            // caller could have swapped the name for someone else's file.
            let fd = rustix::fs::openat(
                dst,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.err(rel, e))?;
            let now = rustix::fs::fstat(&fd).map_err(|e| self.err(rel, e))?;
            if safe::file_type(&now) != FileType::Symlink {
                return Err(self.err(
                    rel,
                    io::Error::other("the destination changed while exporting"),
                ));
            }
            rustix::fs::chownat(
                &fd,
                "",
                Some(u),
                Some(g),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.err(rel, e))?;
        }
        if self.owner.is_none() {
            self.copy_xattrs_at(src, dst, name, rel)?;
        }
        rustix::fs::utimensat(
            dst,
            name,
            &safe::times(safe::mtime_of(st)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(rel, e))
    }

    /// Devices (only without `owner`) and fifos.
    fn special(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
        file_type: FileType,
    ) -> Result<()> {
        let mode = Mode::from_raw_mode(self.mode(st));
        #[allow(clippy::unnecessary_cast)] // field types differ between architectures
        let dev = st.st_rdev as rustix::fs::Dev;
        rustix::fs::mknodat(dst, name, file_type, mode, dev).map_err(|e| self.err(rel, e))?;
        if file_type == FileType::Fifo {
            // A fifo can be opened without side effects: set everything
            // through a descriptor checked to be it.
            let fd = rustix::fs::openat(
                dst,
                name,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.err(rel, e))?;
            let now = rustix::fs::fstat(&fd).map_err(|e| self.err(rel, e))?;
            if safe::file_type(&now) != FileType::Fifo {
                return Err(self.err(
                    rel,
                    io::Error::other("the destination changed while exporting"),
                ));
            }
            if let Some((u, g)) = self.ids(st) {
                rustix::fs::fchown(&fd, Some(u), Some(g)).map_err(|e| self.err(rel, e))?;
            }
            rustix::fs::fchmod(&fd, mode).map_err(|e| self.err(rel, e))?;
            if self.owner.is_none() {
                self.copy_xattrs_at(src, dst, name, rel)?;
            }
            return rustix::fs::futimens(&fd, &safe::times(safe::mtime_of(st)))
                .map_err(|e| self.err(rel, e));
        }
        // Devices: only for a root caller (owner is None), whose destination
        // no one else writes to; opening a device to use its descriptor
        // could have side effects.
        if let Some((u, g)) = self.ids(st) {
            rustix::fs::chownat(dst, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err(rel, e))?;
        }
        rustix::fs::chmodat(dst, name, mode, AtFlags::empty()).map_err(|e| self.err(rel, e))?;
        self.copy_xattrs_at(src, dst, name, rel)?;
        rustix::fs::utimensat(
            dst,
            name,
            &safe::times(safe::mtime_of(st)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(rel, e))
    }

    /// The owner to give a copy of `st`, if we can give any.
    fn ids(&self, st: &Stat) -> Option<(rustix::fs::Uid, rustix::fs::Gid)> {
        self.ids_of(st.st_uid, st.st_gid)
    }

    fn ids_of(&self, uid: u32, gid: u32) -> Option<(rustix::fs::Uid, rustix::fs::Gid)> {
        if !self.root {
            return None;
        }
        let (uid, gid) = self.owner.unwrap_or((uid, gid));
        match safe::ids(uid, gid) {
            (Some(u), Some(g)) => Some((u, g)),
            _ => None,
        }
    }

    /// The mode to give a copy of `st`.
    fn mode(&self, st: &Stat) -> u32 {
        self.mode_of(st.st_mode)
    }

    /// Permission bits of `mode`; set-id bits go for another owner.
    fn mode_of(&self, mode: u32) -> u32 {
        let mode = mode & 0o7777;
        if self.owner.is_some() {
            mode & !SETID
        } else {
            mode
        }
    }

    /// Whether an xattr is copied: never overlayfs's own; for another owner
    /// only `user.*` (no file capabilities, no security labels).
    fn keep_xattr(&self, key: &[u8]) -> bool {
        !key.starts_with(whiteout::OVERLAY_XATTR_PREFIX)
            && (self.owner.is_none() || key.starts_with(b"user."))
    }

    fn copy_xattrs_fd(&mut self, from: &impl AsFd, to: &impl AsFd, rel: &[u8]) -> Result<()> {
        let n = match rustix::fs::flistxattr(from, &mut self.names[..]) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(()),
            Err(e) => return Err(self.err(rel, e)),
        };
        let mut at = 0;
        while at < n {
            let key = CStr::from_bytes_until_nul(&self.names[at..n])
                .map_err(|_| self.err(rel, io::Error::other("malformed xattr list")))?;
            at += key.to_bytes_with_nul().len();
            if !self.keep_xattr(key.to_bytes()) {
                continue;
            }
            let len = rustix::fs::fgetxattr(from, key, &mut self.value[..])
                .map_err(|e| self.err(rel, e))?;
            let r = rustix::fs::fsetxattr(to, key, &self.value[..len], XattrFlags::empty());
            self.xattr_result(r.map_err(io::Error::from), rel)?;
        }
        Ok(())
    }

    /// xattrs of a symlink or special file, by name.
    fn copy_xattrs_at(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        rel: &[u8],
    ) -> Result<()> {
        let n = match safe::llistxattr_at(src, name, &mut self.names[..]) {
            Ok(n) => n,
            Err(e) if safe::is_errno(&e, Errno::OPNOTSUPP) => return Ok(()),
            Err(e) => return Err(self.err(rel, e)),
        };
        let mut at = 0;
        while at < n {
            let key = CStr::from_bytes_until_nul(&self.names[at..n])
                .map_err(|_| self.err(rel, io::Error::other("malformed xattr list")))?;
            at += key.to_bytes_with_nul().len();
            if !self.keep_xattr(key.to_bytes()) {
                continue;
            }
            let len = safe::lgetxattr_at(src, name, key, &mut self.value[..])
                .map_err(|e| self.err(rel, e))?;
            let r = safe::lsetxattr_at(dst, name, key.to_bytes(), &self.value[..len]);
            self.xattr_result(r, rel)?;
        }
        Ok(())
    }

    fn xattr_result(&self, r: io::Result<()>, rel: &[u8]) -> Result<()> {
        match r {
            Err(e) if safe::is_errno(&e, Errno::OPNOTSUPP) || safe::is_errno(&e, Errno::PERM) => {
                tracing::debug!(path = %path::display(rel), "xattr not copied: {e}");
                Ok(())
            }
            r => r.map_err(|e| self.err(rel, e)),
        }
    }

    /// Directory owners, modes and mtimes, deepest first so that setting a
    /// parent's mtime is the last change to it.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut order: Vec<usize> = (0..self.dirs.len()).collect();
        order.sort_by_key(|&i| {
            std::cmp::Reverse(self.dirs[i].0.iter().filter(|&&b| b == b'/').count())
        });
        for i in order {
            let (rel, meta) = &self.dirs[i];
            let fd = match safe::open_dir(self.dest, rel) {
                Ok(fd) => fd,
                // Deleted or replaced by a higher layer.
                Err(e)
                    if safe::is_errno(&e, Errno::NOENT)
                        || safe::is_errno(&e, Errno::NOTDIR)
                        || safe::is_errno(&e, Errno::LOOP) =>
                {
                    continue
                }
                Err(e) => return Err(self.err(rel, e)),
            };
            if let Some((u, g)) = self.ids_of(meta.uid, meta.gid) {
                rustix::fs::fchown(&fd, Some(u), Some(g)).map_err(|e| self.err(rel, e))?;
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode_of(meta.mode)))
                .map_err(|e| self.err(rel, e))?;
            rustix::fs::futimens(&fd, &safe::times(meta.mtime)).map_err(|e| self.err(rel, e))?;
        }
        Ok(())
    }

    fn err(&self, rel: &[u8], e: impl Into<io::Error>) -> Error {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        Error::io(
            format!(
                "exporting `{}` from the layer {}",
                path::display(rel),
                self.layer.display()
            ),
            e,
        )
    }
}

/// Copy the data segments of `from` (found with `SEEK_DATA`/`SEEK_HOLE`)
/// to the same offsets of the new, empty `to`, and give it `from`'s size:
/// holes stay holes.
fn copy_sparse(from: &File, to: &File, size: u64) -> io::Result<()> {
    use rustix::fs::{seek, SeekFrom};
    let mut pos = 0;
    while pos < size {
        let data = match seek(from, SeekFrom::Data(pos)) {
            Ok(data) => data,
            // Only holes after `pos`.
            Err(Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(from, SeekFrom::Hole(data))?;
        seek(from, SeekFrom::Start(data))?;
        seek(to, SeekFrom::Start(data))?;
        let want = hole - data;
        if io::copy(&mut io::Read::take(from, want), &mut &*to)? != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was copied",
            ));
        }
        pos = hole;
    }
    to.set_len(size)
}
