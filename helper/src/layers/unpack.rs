//! `unpack`: one layer blob into one directory, in overlayfs form.
//!
//! The stream is read once, front to back: decompressor and hash (on their
//! own thread, see [`stream::pipeline`]), then `tar`. Each entry is checked
//! (see [`super::path`], [`super::whiteout`], [`super::lowers`]) and written
//! through [`super::safe`] so nothing can land outside `dest`. Directory
//! modes and mtimes are set last, children first: writing into a directory
//! changes its mtime, and a `0555` directory must stay writable while its
//! content arrives.
//!
//! Sparse entries are written as holes: only their data segments reach the
//! disk (see [`super::sparse`] for the PAX forms; the old GNU `S` form is
//! laid out by the `tar` crate, which seeks over holes).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::lowers::{Found, Visible};
use super::path::{self, Refusal};
use super::space::Disk;
use super::sparse::{self, Map};
use super::stream;
use super::whiteout::{self, Name};
use super::{safe, Error, LimitKind, Limits, Result};
use crate::content::Digest;

/// Copy buffer for file content.
const COPY_BUFFER: usize = 256 * 1024;
/// How often (in entries) the cancel flag is polled, on top of the polling
/// by bytes in [`stream`]. A power of two.
const CANCEL_EVERY_ENTRIES: u64 = 256;
const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// sha256 of the decompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of the decompressed tar stream.
    pub tar_bytes: u64,
    /// Bytes of regular file content written.
    pub size: u64,
    /// Tar entries read.
    pub entries: u64,
}

/// Unpack the layer blob `src` (gzip, zstd or plain tar, told apart by
/// their magic bytes) into the existing, empty directory `dest`.
///
/// `lowers` are the `diff` directories of the parent layers, nearest first;
/// they are only read, to refuse writes through their symlinks. On error
/// `dest` holds part of the layer and must be thrown away.
pub fn unpack(
    src: impl Read + Send,
    dest: &Path,
    lowers: &[PathBuf],
    limits: &Limits,
    cancel: &AtomicBool,
) -> Result<UnpackReport> {
    let root = safe::open_trusted_dir(dest)
        .map_err(|e| Error::io(format!("opening {}", dest.display()), e))?;
    let fs = root
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", dest.display()), e))?;
    let disk = Disk::new(fs.as_fd(), dest, limits);
    let lowers = Visible::roots(lowers)?;
    let mut unpacker = Unpacker::new(root, lowers, dest);
    let ((), diff_id, tar_bytes) = stream::pipeline(src, limits, disk, cancel, |chunks| {
        let mut archive = tar::Archive::new(chunks);
        // Only sparse `S` entries are laid out by the crate, into names we
        // made sure are free; it must never delete anything by path.
        archive.set_overwrite(false);
        unpacker.entries(&mut archive, limits, cancel)
    })?;
    unpacker.finish_dirs()?;
    if unpacker.xattrs_skipped > 0 {
        tracing::warn!(
            count = unpacker.xattrs_skipped,
            "{}: some xattrs of the layer are not supported here and were skipped",
            dest.display()
        );
    }
    Ok(UnpackReport {
        diff_id,
        tar_bytes,
        size: unpacker.size,
        entries: unpacker.count,
    })
}

/// Metadata of a directory, applied at the end.
#[derive(Clone, Copy)]
struct DirMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
}

/// Directories whose metadata is applied at the end, in creation order.
#[derive(Default)]
struct Deferred {
    list: Vec<(Vec<u8>, Option<DirMeta>)>,
    index: HashMap<Vec<u8>, usize>,
}

impl Deferred {
    fn record(&mut self, path: &[u8], meta: DirMeta) {
        match self.index.get(path) {
            Some(&i) => self.list[i].1 = Some(meta),
            None => {
                self.index.insert(path.to_vec(), self.list.len());
                self.list.push((path.to_vec(), Some(meta)));
            }
        }
    }

    /// `dir` was deleted: forget it and everything below.
    fn forget(&mut self, dir: &[u8]) {
        for (p, meta) in &mut self.list {
            if path::is_within(p, dir) {
                *meta = None;
            }
        }
    }
}

/// The metadata of the entry being unpacked.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
}

struct Unpacker<'d> {
    /// `dest`, where everything is resolved from.
    root: OwnedFd,
    /// For messages.
    dest: &'d Path,
    lowers: Visible,
    /// Whether ownership can be set (we are root).
    own: bool,
    /// Parent directory of the last entry: tars list directories together.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directories made opaque in this layer.
    opaque: HashSet<Vec<u8>>,
    dirs: Deferred,
    /// Reused buffers: copy buffer, entry path, link target, xattrs.
    buf: Vec<u8>,
    path: Vec<u8>,
    link: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The entry's `GNU.sparse.*` PAX records.
    sparse: sparse::Records,
    count: u64,
    size: u64,
    xattrs_skipped: u64,
}

impl<'d> Unpacker<'d> {
    fn new(root: OwnedFd, lowers: Visible, dest: &'d Path) -> Self {
        Unpacker {
            root,
            dest,
            lowers,
            own: rustix::process::geteuid().is_root(),
            cache: None,
            opaque: HashSet::new(),
            dirs: Deferred::default(),
            buf: vec![0; COPY_BUFFER],
            path: Vec::new(),
            link: Vec::new(),
            xattrs: Vec::new(),
            sparse: sparse::Records::default(),
            count: 0,
            size: 0,
            xattrs_skipped: 0,
        }
    }

    fn entries<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        limits: &Limits,
        cancel: &AtomicBool,
    ) -> Result<()> {
        for entry in archive.entries().map_err(stream::data_error)? {
            let mut entry = entry.map_err(stream::data_error)?;
            self.count += 1;
            if self.count > limits.max_entries {
                return Err(Error::LimitExceeded {
                    what: LimitKind::Entries,
                    limit: limits.max_entries,
                });
            }
            if self.count & (CANCEL_EVERY_ENTRIES - 1) == 0 && cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            // The path buffer is taken out so `self` can be borrowed freely.
            let mut path = std::mem::take(&mut self.path);
            let r = self.entry(&mut entry, &mut path);
            self.path = path;
            r?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, p: &mut Vec<u8>) -> Result<()> {
        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Global defaults (charset, comments): nothing we use.
            return Ok(());
        }
        if kind == EntryType::Regular && entry.path_bytes().ends_with(b"/") {
            // Pre-POSIX tars mark directories with a trailing slash only.
            kind = EntryType::Directory;
        }
        let pax_mtime = self.read_pax(entry)?;
        // A PAX sparse file's header names a placeholder
        // (`GNUSparseFile.0/x`); its real name is a record.
        let raw_path = match self.sparse.name.take() {
            Some(name) => std::borrow::Cow::Owned(name),
            None => entry.path_bytes(),
        };
        path::normalize(&raw_path, p).map_err(|r| refusal(&raw_path, r))?;
        let meta = header_meta(entry.header(), pax_mtime, p)?;
        let pax_sparse = self
            .sparse
            .sparse()
            .map_err(|why| Error::Corrupt(format!("entry `{}`: {why}", path::display(p))))?;
        if pax_sparse.is_some() && !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            return Err(Error::Corrupt(format!(
                "entry `{}` has sparse file records but is not a regular file",
                path::display(p)
            )));
        }

        if p.is_empty() {
            return self.root_entry(kind, meta, p);
        }
        let (parent, name) = path::split(p);
        let dir = self.parent(p, parent)?;
        match whiteout::classify(name).map_err(|why| Error::unsafe_entry(p, why))? {
            Name::Plain => {}
            Name::Ignored => return Ok(()),
            Name::Opaque => {
                let fd = safe::open_dir(&*dir, b"").map_err(|e| self.io_err(parent, e))?;
                whiteout::set_opaque(&fd).map_err(|e| self.io_err(parent, e))?;
                self.opaque.insert(parent.to_vec());
                return Ok(());
            }
            Name::Whiteout(target) => return self.whiteout(&dir, parent, target, p),
        }

        match kind {
            EntryType::Directory => self.directory(&dir, name, p, meta),
            EntryType::Regular | EntryType::Continuous => match pax_sparse {
                Some(sparse) => self.pax_sparse_file(entry, &dir, name, p, meta, sparse),
                None => self.file(entry, &dir, name, p, meta),
            },
            EntryType::GNUSparse => self.gnu_sparse_file(entry, &dir, name, p, meta),
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::Corrupt(format!(
                        "symlink `{}` has an empty or invalid target",
                        path::display(p)
                    )));
                }
                self.create(&dir, name, p, || {
                    rustix::fs::symlinkat(&*target, &*dir, name)
                })?;
                self.finish_node(&dir, name, p, &meta, false)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hardlink(&dir, name, p, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let t = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (t, rustix::fs::makedev(major, minor))
                    }
                };
                let mode = Mode::from_raw_mode(meta.mode);
                self.create(&dir, name, p, || {
                    rustix::fs::mknodat(&*dir, name, file_type, mode, dev)
                })?;
                self.finish_node(&dir, name, p, &meta, true)
            }
            other => Err(Error::Corrupt(format!(
                "entry `{}` has a type this unpacker does not handle ({:?})",
                path::display(p),
                other
            ))),
        }
    }

    /// Collect the xattrs of the entry into `self.xattrs` and return its
    /// PAX mtime, if any.
    fn read_pax<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Option<Timespec>> {
        self.xattrs.clear();
        self.sparse = sparse::Records::default();
        let mut mtime = None;
        let mut bad_sparse = None;
        let Some(exts) = entry.pax_extensions().map_err(stream::data_error)? else {
            return Ok(None);
        };
        for ext in exts {
            let ext = ext.map_err(|e| Error::Corrupt(format!("bad PAX record: {e}")))?;
            let key = ext.key_bytes();
            match self.sparse.take(key, ext.value_bytes()) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(why) => {
                    bad_sparse = Some(why);
                    break;
                }
            }
            if key == b"mtime" {
                mtime = ext.value().ok().and_then(parse_pax_time);
            } else if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                if name.is_empty() || name.contains(&0) {
                    return Err(Error::Corrupt(
                        "a PAX xattr record has an invalid name".into(),
                    ));
                }
                // An image must not forge overlayfs metadata (opaque dirs,
                // redirects, metacopy): those are ours to write.
                if !name.starts_with(whiteout::OVERLAY_XATTR_PREFIX) {
                    self.xattrs
                        .push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        if let Some(why) = bad_sparse {
            return Err(Error::Corrupt(format!(
                "entry `{}`: {why}",
                path::display(&entry.path_bytes())
            )));
        }
        Ok(mtime)
    }

    /// `./`: metadata for the layer root itself.
    fn root_entry(&mut self, kind: EntryType, meta: Meta, p: &[u8]) -> Result<()> {
        if kind != EntryType::Directory {
            return Err(Error::unsafe_entry(
                b".",
                "an entry names the layer root but is not a directory",
            ));
        }
        if !self.xattrs.is_empty() {
            let fd = safe::open_dir(&self.root, b"").map_err(|e| self.io_err(p, e))?;
            self.set_xattrs_fd(&fd, p)?;
        }
        self.dirs.record(p, dir_meta(&meta));
        Ok(())
    }

    fn whiteout(&mut self, dir: &OwnedFd, parent: &[u8], target: &[u8], p: &[u8]) -> Result<()> {
        // Whiteouts apply to lower layers only (OCI image spec): what this
        // layer itself has under that name stays, and already hides the
        // lower content, except for a directory, whose lower children would
        // still show through. That one becomes opaque.
        match safe::lstat(dir, target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                whiteout::make(dir, target).map_err(|e| self.io_err(p, e))
            }
            Err(e) => Err(self.io_err(p, e)),
            Ok(st) if safe::file_type(&st) == FileType::Directory => {
                let fd = safe::open_dir(dir, target).map_err(|e| self.io_err(p, e))?;
                whiteout::set_opaque(&fd).map_err(|e| self.io_err(p, e))?;
                let mut full = parent.to_vec();
                if !full.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(target);
                self.opaque.insert(full);
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    fn directory(&mut self, dir: &OwnedFd, name: &[u8], p: &[u8], meta: Meta) -> Result<()> {
        // Owner-only until the end, so its content can be written even by
        // a non-root caller when the image says `0555`.
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = safe::lstat(dir, name).map_err(|e| self.io_err(p, e))?;
                if safe::file_type(&st) != FileType::Directory {
                    let was_whiteout = self.replace(dir, name, p)?;
                    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.io_err(p, e))?;
                    if was_whiteout {
                        // Deleted and made again in the same layer: the new
                        // directory must not show the lower one's children.
                        let fd = safe::open_dir(dir, name).map_err(|e| self.io_err(p, e))?;
                        whiteout::set_opaque(&fd).map_err(|e| self.io_err(p, e))?;
                        self.opaque.insert(p.to_vec());
                    }
                }
            }
            Err(e) => return Err(self.io_err(p, e)),
        }
        if !self.xattrs.is_empty() {
            let fd = safe::open_dir(dir, name).map_err(|e| self.io_err(p, e))?;
            self.set_xattrs_fd(&fd, p)?;
        }
        self.dirs.record(p, dir_meta(&meta));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: &OwnedFd,
        name: &[u8],
        p: &[u8],
        meta: Meta,
    ) -> Result<()> {
        let mut file = self.new_file(dir, name, p)?;
        let expected = entry.size();
        let written = self.copy(entry, &mut file, expected, p)?;
        if written != expected {
            return Err(self.truncated(p));
        }
        self.size += written;
        self.finish_file(&file, p, &meta)
    }

    /// A PAX sparse file (formats 0.0, 0.1, 1.0): each data segment written
    /// at its offset, the rest left a hole.
    fn pax_sparse_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: &OwnedFd,
        name: &[u8],
        p: &[u8],
        meta: Meta,
        plan: sparse::Sparse,
    ) -> Result<()> {
        let corrupt = |why: String| Error::Corrupt(format!("entry `{}`: {why}", path::display(p)));
        let mut data = entry.size();
        let map = match plan.map {
            Map::Known(map) => map,
            Map::InData => {
                let (map, used) = sparse::read_map(entry).map_err(corrupt)?;
                data = data
                    .checked_sub(used)
                    .ok_or_else(|| corrupt("its sparse map is longer than its data".into()))?;
                map
            }
        };
        sparse::validate(&map, plan.real_size, data).map_err(corrupt)?;
        let mut file = self.new_file(dir, name, p)?;
        for segment in &map {
            file.seek(SeekFrom::Start(segment.offset))
                .map_err(|e| self.io_err(p, e))?;
            if self.copy(entry, &mut file, segment.len, p)? != segment.len {
                return Err(self.truncated(p));
            }
        }
        file.set_len(plan.real_size)
            .map_err(|e| self.io_err(p, e))?;
        self.size += data;
        self.finish_file(&file, p, &meta)
    }

    /// An old GNU sparse entry (type `S`, map in the header). The `tar`
    /// crate reads its map, the extension headers included, but reading
    /// the entry would turn every hole into zeros: its own unpack seeks
    /// over them instead. It gets the name through `/proc/self/fd` of the
    /// directory we resolved safely, creates it with `O_EXCL` (so never
    /// through a symlink) and hands back the open file.
    fn gnu_sparse_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: &OwnedFd,
        name: &[u8],
        p: &[u8],
        meta: Meta,
    ) -> Result<()> {
        if entry.path_bytes().ends_with(b"/") {
            // The crate would make a directory of it.
            return Err(Error::Corrupt(format!(
                "sparse entry `{}` is named like a directory",
                path::display(p)
            )));
        }
        if entry.size() > i64::MAX as u64 {
            // The crate would seek by a negative offset.
            return Err(Error::Corrupt(format!(
                "sparse entry `{}` is larger than a file can be",
                path::display(p)
            )));
        }
        match safe::lstat(dir, name) {
            Ok(_) => {
                self.replace(dir, name, p)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_err(p, e)),
        }
        let data = entry.header().entry_size().map_err(stream::data_error)?;
        let file = match entry.unpack(safe::proc_path(dir.as_fd(), name)) {
            Ok(tar::Unpacked::File(file)) => file,
            Ok(_) => {
                return Err(Error::Corrupt(format!(
                    "sparse entry `{}` did not unpack as a file",
                    path::display(p)
                )))
            }
            Err(e) => return Err(self.io_err(p, e)),
        };
        self.size += data;
        self.finish_file(&file, p, &meta)
    }

    /// Create `name` in `dir` for writing, replacing what an earlier entry
    /// made there.
    fn new_file(&mut self, dir: &OwnedFd, name: &[u8], p: &[u8]) -> Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self.create(dir, name, p, || {
            rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))
        })?;
        Ok(File::from(fd))
    }

    /// Copy up to `len` bytes of the entry into `file`; returns how many
    /// there were.
    fn copy<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        len: u64,
        p: &[u8],
    ) -> Result<u64> {
        let mut written = 0u64;
        while written < len {
            let want = (len - written).min(self.buf.len() as u64) as usize;
            let n = match entry.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream::data_error(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| self.io_err(p, e))?;
            written += n as u64;
        }
        Ok(written)
    }

    fn truncated(&self, p: &[u8]) -> Error {
        Error::Corrupt(format!(
            "the tar stream ends in the middle of `{}`",
            path::display(p)
        ))
    }

    /// Owner, mode, xattrs and times of a regular file just written.
    fn finish_file(&mut self, file: &File, p: &[u8], meta: &Meta) -> Result<()> {
        // Owner first: chown clears set-id bits, which chmod then sets;
        // xattrs after both, as writes and chown drop security.capability.
        if self.own {
            let (u, g) = safe::ids(meta.uid, meta.gid);
            rustix::fs::fchown(file, u, g).map_err(|e| self.io_err(p, e))?;
        }
        rustix::fs::fchmod(file, Mode::from_raw_mode(meta.mode)).map_err(|e| self.io_err(p, e))?;
        self.set_xattrs_fd(file, p)?;
        rustix::fs::futimens(file, &safe::times(meta.mtime)).map_err(|e| self.io_err(p, e))?;
        Ok(())
    }

    fn hardlink(&mut self, dir: &OwnedFd, name: &[u8], p: &[u8], target: &[u8]) -> Result<()> {
        // Only to an earlier entry of this layer, reached without symlinks:
        // a hardlink to a host file would hand the image that file
        // (CVE-2018-15664 class).
        let refuse = |why: &str| {
            Error::unsafe_entry(
                p,
                format!("hardlink target `{}`: {why}", path::display(target)),
            )
        };
        let mut link = std::mem::take(&mut self.link);
        match path::normalize(target, &mut link) {
            Err(Refusal::Unsafe(why) | Refusal::Unsupported(why)) => return Err(refuse(why)),
            Ok(()) if link.is_empty() => return Err(refuse("links to the layer root")),
            Ok(()) => {}
        }
        let (lparent, lname) = path::split(&link);
        let ldir = match safe::open_path_dir(&self.root, lparent) {
            Ok(fd) => fd,
            Err(e) if safe::is_errno(&e, Errno::LOOP) => {
                return Err(refuse("goes through a symlink"))
            }
            Err(e) if safe::is_errno(&e, Errno::NOENT) || safe::is_errno(&e, Errno::NOTDIR) => {
                return Err(refuse("does not exist in this layer"))
            }
            Err(e) => return Err(self.io_err(p, e)),
        };
        match safe::lstat(&ldir, lname) {
            Ok(st) if safe::file_type(&st) == FileType::Directory => {
                return Err(refuse("is a directory"))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(refuse("does not exist in this layer"))
            }
            Err(e) => return Err(self.io_err(p, e)),
        }
        if link != p {
            // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
            self.create(dir, name, p, || {
                rustix::fs::linkat(&ldir, lname, dir, name, AtFlags::empty())
            })?;
        }
        self.link = link;
        Ok(())
    }

    /// Owner, mode, xattrs and times of a symlink or special file just
    /// made as `name` in `dir`.
    fn finish_node(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        p: &[u8],
        meta: &Meta,
        chmod: bool,
    ) -> Result<()> {
        if self.own {
            let (u, g) = safe::ids(meta.uid, meta.gid);
            rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.io_err(p, e))?;
        }
        if chmod {
            // fchmodat cannot refuse to follow before Linux 6.6; `name` is
            // the device or fifo mknodat just made in a directory only we
            // write to, and opening a device to fchmod it could have side
            // effects.
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(|e| self.io_err(p, e))?;
        }
        for i in 0..self.xattrs.len() {
            let (k, v) = &self.xattrs[i];
            let r = safe::lsetxattr_at(dir, name, k, v);
            self.xattr_result(r, p)?;
        }
        rustix::fs::utimensat(
            dir,
            name,
            &safe::times(meta.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.io_err(p, e))?;
        Ok(())
    }

    fn set_xattrs_fd(&mut self, fd: &impl std::os::fd::AsFd, p: &[u8]) -> Result<()> {
        for i in 0..self.xattrs.len() {
            let (k, v) = &self.xattrs[i];
            let r =
                rustix::fs::fsetxattr(fd, &k[..], v, XattrFlags::empty()).map_err(io::Error::from);
            self.xattr_result(r, p)?;
        }
        Ok(())
    }

    /// xattrs the file system or our privileges do not allow (`user.*` on
    /// a symlink, `security.*` under some LSMs) are skipped, not fatal.
    fn xattr_result(&mut self, r: io::Result<()>, p: &[u8]) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if safe::is_errno(&e, Errno::OPNOTSUPP) || safe::is_errno(&e, Errno::PERM) => {
                tracing::debug!(entry = %path::display(p), "xattr skipped: {e}");
                self.xattrs_skipped += 1;
                Ok(())
            }
            Err(e) => Err(self.io_err(p, e)),
        }
    }

    /// Run `make` (a create-exclusive call for `name` in `dir`); when the
    /// name is taken by an earlier entry, replace that and try again.
    fn create<T>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        p: &[u8],
        mut make: impl FnMut() -> rustix::io::Result<T>,
    ) -> Result<T> {
        match make() {
            Err(Errno::EXIST) => {
                self.replace(dir, name, p)?;
                make().map_err(|e| self.io_err(p, e))
            }
            r => r.map_err(|e| self.io_err(p, e)),
        }
    }

    /// Remove what an earlier entry made at `name` (recursively for a
    /// directory, as containerd does). Returns whether it was a whiteout.
    fn replace(&mut self, dir: &OwnedFd, name: &[u8], p: &[u8]) -> Result<bool> {
        let st = safe::lstat(dir, name).map_err(|e| self.io_err(p, e))?;
        if safe::file_type(&st) == FileType::Directory {
            safe::remove_all(dir, name).map_err(|e| self.io_err(p, e))?;
            self.cache = None;
            self.opaque.retain(|o| !path::is_within(o, p));
            self.dirs.forget(p);
        } else {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| self.io_err(p, e))?;
        }
        Ok(whiteout::is_whiteout(&st))
    }

    /// The directory `parent` of the entry `p`, made if missing.
    fn parent(&mut self, p: &[u8], parent: &[u8]) -> Result<Rc<OwnedFd>> {
        if let Some((cached, fd)) = &self.cache {
            if cached == parent {
                return Ok(fd.clone());
            }
        }
        let fd = match safe::open_path_dir(&self.root, parent) {
            Ok(fd) => fd,
            Err(e) if safe::is_errno(&e, Errno::LOOP) => {
                return Err(Error::unsafe_entry(
                    p,
                    "its parent directory is a symlink made earlier in this layer; writing \
                     through it could escape the layer",
                ))
            }
            Err(e) if safe::is_errno(&e, Errno::NOENT) || safe::is_errno(&e, Errno::NOTDIR) => {
                self.make_parents(p, parent)?
            }
            Err(e) => return Err(self.io_err(parent, e)),
        };
        let fd = Rc::new(fd);
        self.cache = Some((parent.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Walk `parent` one name at a time, making what is missing (`0755`,
    /// owned by us), and refuse a name the merged lower layers show as a
    /// symlink.
    fn make_parents(&mut self, p: &[u8], parent: &[u8]) -> Result<OwnedFd> {
        let io_err = |e: io::Error| {
            Error::io(
                format!("making the parent directories of `{}`", path::display(p)),
                e,
            )
        };
        let mut cur = safe::open_path_dir(&self.root, b"").map_err(io_err)?;
        let mut lower = if self.opaque.contains(&b""[..]) {
            Visible::none()
        } else {
            self.lowers.try_clone().map_err(io_err)?
        };
        let mut end = 0;
        for comp in parent.split(|&b| b == b'/') {
            end += comp.len();
            let prefix = &parent[..end];
            end += 1;
            match safe::open_path_dir(&cur, comp) {
                Ok(fd) => {
                    lower = if self.opaque.contains(prefix) {
                        Visible::none()
                    } else {
                        lower.child(comp).map_err(io_err)?.1
                    };
                    cur = fd;
                }
                Err(e) if safe::is_errno(&e, Errno::NOENT) => {
                    let (found, below) = lower.child(comp).map_err(io_err)?;
                    if let Found::Symlink = found {
                        return Err(Error::unsafe_entry(
                            p,
                            format!(
                                "its parent `{}` is a symlink in a lower layer; writing through it \
                                 could escape the image",
                                path::display(prefix)
                            ),
                        ));
                    }
                    cur = safe::mkdir_exact(&cur, comp, 0o755).map_err(io_err)?;
                    lower = below;
                }
                Err(e) if safe::is_errno(&e, Errno::NOTDIR) => {
                    let st = safe::lstat(&cur, comp).map_err(io_err)?;
                    if !whiteout::is_whiteout(&st) {
                        return Err(Error::Corrupt(format!(
                            "entry `{}`: `{}` is not a directory in this layer",
                            path::display(p),
                            path::display(prefix)
                        )));
                    }
                    // Deleted earlier in this layer, now a directory again:
                    // opaque, so the deleted lower content stays hidden.
                    rustix::fs::unlinkat(&cur, comp, AtFlags::empty())
                        .map_err(|e| io_err(e.into()))?;
                    let fd = safe::mkdir_exact(&cur, comp, 0o755).map_err(io_err)?;
                    whiteout::set_opaque(&fd).map_err(io_err)?;
                    self.opaque.insert(prefix.to_vec());
                    cur = fd;
                    lower = Visible::none();
                }
                Err(e) if safe::is_errno(&e, Errno::LOOP) => {
                    return Err(Error::unsafe_entry(
                        p,
                        format!(
                            "its parent `{}` is a symlink made earlier in this layer; writing \
                             through it could escape the layer",
                            path::display(prefix)
                        ),
                    ))
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(cur)
    }

    /// Apply directory owners, modes and mtimes, children first.
    fn finish_dirs(&mut self) -> Result<()> {
        for (p, meta) in self.dirs.list.iter().rev() {
            let Some(meta) = meta else { continue };
            let fd = match safe::open_dir(&self.root, p) {
                Ok(fd) => fd,
                // Replaced by a later entry of another type.
                Err(e)
                    if safe::is_errno(&e, Errno::NOENT)
                        || safe::is_errno(&e, Errno::NOTDIR)
                        || safe::is_errno(&e, Errno::LOOP) =>
                {
                    continue
                }
                Err(e) => return Err(io_err_at(self.dest, p, e)),
            };
            let r = (|| {
                if self.own {
                    let (u, g) = safe::ids(meta.uid, meta.gid);
                    rustix::fs::fchown(&fd, u, g)?;
                }
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))?;
                rustix::fs::futimens(&fd, &safe::times(meta.mtime))
            })();
            r.map_err(|e| io_err_at(self.dest, p, e))?;
        }
        Ok(())
    }

    fn io_err(&self, p: &[u8], e: impl Into<io::Error>) -> Error {
        io_err_at(self.dest, p, e)
    }
}

fn io_err_at(dest: &Path, p: &[u8], e: impl Into<io::Error>) -> Error {
    Error::io(
        format!("unpacking `{}` into {}", path::display(p), dest.display()),
        e,
    )
}

fn refusal(raw: &[u8], r: Refusal) -> Error {
    match r {
        Refusal::Unsafe(why) => Error::unsafe_entry(raw, why),
        Refusal::Unsupported(why) => {
            Error::Corrupt(format!("entry `{}`: {why}", path::display(raw)))
        }
    }
}

fn header_meta(h: &tar::Header, pax_mtime: Option<Timespec>, p: &[u8]) -> Result<Meta> {
    let bad = |what: &str| {
        Error::Corrupt(format!(
            "entry `{}` has an invalid {what}",
            path::display(p)
        ))
    };
    // u32::MAX is "no change" to chown(2): refuse it rather than keep root.
    let id = |v: io::Result<u64>, what| {
        v.ok()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v != u32::MAX)
            .ok_or_else(|| bad(what))
    };
    let mtime = match pax_mtime {
        Some(t) => t,
        None => Timespec {
            tv_sec: h.mtime().map_err(|_| bad("mtime"))?.min(i64::MAX as u64) as i64,
            tv_nsec: 0,
        },
    };
    Ok(Meta {
        mode: h.mode().map_err(|_| bad("mode"))? & 0o7777,
        uid: id(h.uid(), "uid")?,
        gid: id(h.gid(), "gid")?,
        mtime,
    })
}

fn dir_meta(m: &Meta) -> DirMeta {
    DirMeta {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: m.mtime,
    }
}

/// A PAX time: decimal seconds with an optional fraction, maybe negative.
fn parse_pax_time(s: &str) -> Option<Timespec> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    let (tv_sec, tv_nsec) = match (neg, nanos) {
        (false, n) => (secs, n),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)] // Nsecs is not i64 everywhere
    fn parses_pax_times() {
        let t = |s| parse_pax_time(s).map(|t| (t.tv_sec, t.tv_nsec as i64));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }
}
