//! Named volumes that start as a copy of the image, as Docker fills a new
//! named volume: when a container starts and a volume marked `populate` has
//! an empty host directory, what the image has at the volume's path is
//! copied into it first (nginx's `html`, code-server's home), and the host
//! directory takes the owner and mode of the image's directory.
//!
//! The copy reads the container's mounted root file system before the
//! runtime runs, so it sees the image plus whatever the container itself
//! wrote there. That content is untrusted: the volume's path is resolved
//! *inside* the root (`openat2` with `RESOLVE_IN_ROOT`: a symlink on the way
//! is followed as the container would see it, and can never lead out), and
//! below it nothing is followed: every directory is opened beneath the one
//! the walk started from with `RESOLVE_NO_SYMLINKS`, files with
//! `O_NOFOLLOW`, and symlinks are copied as symlinks. Writes go through
//! descriptors too, with exclusive creation.
//!
//! Kept: file types (regular files, directories, symlinks, FIFOs, device
//! nodes, sockets), modes with set-id and sticky bits, owners, access and
//! modification times, extended attributes where the host file system
//! takes them, and hard links (as hard links between the copies). A copy
//! that fails is removed again, so the next start tries anew.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

/// How much a volume was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Populated {
    /// This many entries were copied (the directory itself not counted).
    Copied(u64),
    /// The host directory already had something in it: left alone.
    NotEmpty,
    /// The image has no directory at the volume's path: nothing to copy.
    NoSource,
}

/// Below the volume's directory nothing is followed.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// `XATTR_LIST_MAX` and `XATTR_SIZE_MAX`.
const XATTR_MAX: usize = 64 * 1024;

/// Fill the empty directory `host` with a copy of `inside` (an absolute
/// path in the container) of the root file system at `rootfs`.
pub fn populate(rootfs: &Path, inside: &str, host: &Path) -> io::Result<Populated> {
    let dst = rustix::fs::open(
        host,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if !is_empty(&dst)? {
        return Ok(Populated::NotEmpty);
    }
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = inside.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let src = match retry(|| {
        rustix::fs::openat2(
            &root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Populated::NoSource),
        Err(e) => return Err(e.into()),
    };
    let mut c = Copier {
        src: src.as_fd(),
        dst: dst.as_fd(),
        links: HashMap::new(),
        dirs: Vec::new(),
        entries: 0,
        names: vec![0; XATTR_MAX],
        value: vec![0; XATTR_MAX],
    };
    match c.run() {
        Ok(()) => Ok(Populated::Copied(c.entries)),
        Err(e) => {
            // Empty again, so the next start copies anew.
            if let Ok(entries) = std::fs::read_dir(host) {
                for e in entries.flatten() {
                    let p = e.path();
                    let _ = match e.file_type() {
                        Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                        _ => std::fs::remove_file(&p),
                    };
                }
            }
            Err(e)
        }
    }
}

struct Copier<'a> {
    /// The volume's directory in the root file system.
    src: BorrowedFd<'a>,
    /// The host directory.
    dst: BorrowedFd<'a>,
    /// (dev, ino) of a file with several links → its first copy's path.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Directories copied, parents before children: their owner, mode and
    /// times are set at the end, children first (writing into a directory
    /// changes its mtime; its mode may not let us write).
    dirs: Vec<(Vec<u8>, Stat)>,
    entries: u64,
    names: Vec<u8>,
    value: Vec<u8>,
}

impl Copier<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = stack.pop() {
            let sdir = open_beneath(self.src, &rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let ddir = open_beneath(self.dst, &rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
            for entry in Dir::read_from(&sdir)? {
                let entry = entry?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let st = rustix::fs::statat(&sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                let child = join(&rel, name);
                self.entries += 1;
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => {
                        rustix::fs::mkdirat(&ddir, name, Mode::from_raw_mode(0o700))?;
                        self.dirs.push((child.clone(), st));
                        stack.push(child);
                    }
                    FileType::RegularFile => self.file(&sdir, &ddir, name, &st, child)?,
                    FileType::Symlink => {
                        let target = rustix::fs::readlinkat(&sdir, name, Vec::new())?;
                        rustix::fs::symlinkat(target.as_c_str(), &ddir, name)?;
                        self.attrs_at(&ddir, name, &st)?;
                    }
                    t @ (FileType::Fifo
                    | FileType::CharacterDevice
                    | FileType::BlockDevice
                    | FileType::Socket) => {
                        if self.link(&ddir, name, &st, &child)? {
                            continue;
                        }
                        rustix::fs::mknodat(
                            &ddir,
                            name,
                            t,
                            Mode::from_raw_mode(0o600),
                            st.st_rdev,
                        )?;
                        self.attrs_at(&ddir, name, &st)?;
                    }
                    FileType::Unknown => {
                        return Err(io::Error::other(format!(
                            "{} has an unknown file type",
                            String::from_utf8_lossy(&child)
                        )))
                    }
                }
            }
        }
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, st) in dirs.iter().rev() {
            let d = open_beneath(self.dst, rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let s = open_beneath(self.src, rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
            self.xattrs(&s, &d);
            set_attrs(&d, st)?;
        }
        // The volume's own directory: owner and mode of the image's.
        let st = rustix::fs::fstat(self.src)?;
        chown(self.dst, &st)?;
        rustix::fs::fchmod(self.dst, mode_of(&st))?;
        Ok(())
    }

    /// A regular file: a hard link to an earlier copy, or a new copy.
    fn file(
        &mut self,
        sdir: &OwnedFd,
        ddir: &OwnedFd,
        name: &[u8],
        st: &Stat,
        child: Vec<u8>,
    ) -> io::Result<()> {
        if self.link(ddir, name, st, &child)? {
            return Ok(());
        }
        let from = rustix::fs::openat(
            sdir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let now = rustix::fs::fstat(&from)?;
        if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile || now.st_ino != st.st_ino
        {
            return Err(io::Error::other(format!(
                "{} changed while it was copied",
                String::from_utf8_lossy(&child)
            )));
        }
        let to = rustix::fs::openat(
            ddir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut from = File::from(from);
        let mut to = File::from(to);
        io::copy(&mut from, &mut to)?;
        self.xattrs(&from, &to);
        set_attrs(&to, st)?;
        Ok(())
    }

    /// If `st` is a file with several links whose first copy exists, link
    /// `name` in `ddir` to it (true); otherwise remember this one (false).
    fn link(&mut self, ddir: &OwnedFd, name: &[u8], st: &Stat, child: &[u8]) -> io::Result<bool> {
        if st.st_nlink < 2 {
            return Ok(false);
        }
        let key = (st.st_dev, st.st_ino);
        match self.links.get(&key) {
            Some(first) => {
                rustix::fs::linkat(self.dst, first.as_slice(), ddir, name, AtFlags::empty())?;
                Ok(true)
            }
            None => {
                self.links.insert(key, child.to_vec());
                Ok(false)
            }
        }
    }

    /// Owner, mode and times of a symlink or special file `name` in `dir`,
    /// not followed.
    fn attrs_at(&self, dir: &OwnedFd, name: &[u8], st: &Stat) -> io::Result<()> {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            // Not a symlink (we just made it), so nothing is followed.
            rustix::fs::chmodat(dir, name, mode_of(st), AtFlags::empty())?;
        }
        rustix::fs::utimensat(dir, name, &times_of(st), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Copy the extended attributes of `from` to `to`, as far as the host
    /// file system takes them (best effort: a volume without the image's
    /// `user.*` notes is still the image's files).
    fn xattrs(&mut self, from: &impl AsFd, to: &impl AsFd) {
        let Ok(n) = rustix::fs::flistxattr(from, &mut self.names[..]) else {
            return;
        };
        let names = self.names[..n].to_vec();
        for key in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
            if key.starts_with(b"trusted.overlay.") {
                continue;
            }
            let Ok(len) = rustix::fs::fgetxattr(from, key, &mut self.value[..]) else {
                continue;
            };
            let _ =
                rustix::fs::fsetxattr(to, key, &self.value[..len], rustix::fs::XattrFlags::empty());
        }
    }
}

/// Owner, then mode (a chown clears set-id bits), then times of an open
/// file or directory.
fn set_attrs(fd: &impl AsFd, st: &Stat) -> io::Result<()> {
    chown(fd.as_fd(), st)?;
    rustix::fs::fchmod(fd, mode_of(st))?;
    rustix::fs::futimens(fd, &times_of(st))?;
    Ok(())
}

fn chown(fd: BorrowedFd<'_>, st: &Stat) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    Ok(())
}

fn mode_of(st: &Stat) -> Mode {
    Mode::from_raw_mode(st.st_mode & 0o7777)
}

#[allow(clippy::unnecessary_cast)] // field types differ between architectures
fn times_of(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// `rel` (empty: `dir` itself) beneath `dir`, never through a symlink.
fn open_beneath(dir: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    Ok(retry(|| {
        rustix::fs::openat2(dir, rel, flags | OFlags::CLOEXEC, Mode::empty(), BENEATH)
    })?)
}

/// `openat2` asks for a retry when a rename raced with the lookup.
fn retry(mut f: impl FnMut() -> rustix::io::Result<OwnedFd>) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match f() {
            Err(Errno::AGAIN | Errno::INTR) if tries < 128 => tries += 1,
            r => return r,
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn is_empty(dir: &OwnedFd) -> io::Result<bool> {
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A root file system with a directory worth copying at /srv/www.
    fn image() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let www = t.path().join("srv/www");
        std::fs::create_dir_all(www.join("sub/deeper")).unwrap();
        std::fs::write(www.join("index.html"), "hello\n").unwrap();
        std::fs::set_permissions(www.join("index.html"), PermissionsExt::from_mode(0o640)).unwrap();
        std::fs::write(www.join("sub/deeper/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            www.join("sub/deeper/run.sh"),
            PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        std::fs::set_permissions(www.join("sub"), PermissionsExt::from_mode(0o1750)).unwrap();
        std::fs::set_permissions(&www, PermissionsExt::from_mode(0o751)).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", www.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../../..", www.join("up-link")).unwrap();
        std::fs::hard_link(www.join("index.html"), www.join("same.html")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            www.join("fifo"),
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        // Not through the umask.
        std::fs::set_permissions(www.join("fifo"), PermissionsExt::from_mode(0o620)).unwrap();
        // Old times, to see they are kept.
        let old = filetime(1_600_000_000);
        for p in ["index.html", "sub/deeper", "sub", "."] {
            rustix::fs::utimensat(rustix::fs::CWD, www.join(p), &old, AtFlags::empty()).unwrap();
        }
        t
    }

    fn filetime(sec: i64) -> Timestamps {
        let t = Timespec {
            tv_sec: sec,
            tv_nsec: 0,
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }

    #[test]
    fn copies_types_modes_times_links_and_never_follows_symlinks() {
        let img = image();
        let www = img.path().join("srv/www");
        if root() {
            std::os::unix::fs::lchown(www.join("index.html"), Some(101), Some(102)).unwrap();
            std::os::unix::fs::lchown(www.join("abs-link"), Some(103), Some(104)).unwrap();
            std::os::unix::fs::chown(&www, Some(33), Some(34)).unwrap();
            std::os::unix::fs::chown(www.join("sub/deeper/run.sh"), Some(0), Some(50)).unwrap();
            // A chown clears set-id bits.
            std::fs::set_permissions(
                www.join("sub/deeper/run.sh"),
                PermissionsExt::from_mode(0o4755),
            )
            .unwrap();
        }
        let vol = tempfile::tempdir().unwrap();
        let got = populate(img.path(), "/srv/www", vol.path()).unwrap();
        assert_eq!(got, Populated::Copied(8));
        let v = vol.path();
        let md = |p: &str| std::fs::symlink_metadata(v.join(p)).unwrap();
        assert_eq!(
            std::fs::read_to_string(v.join("index.html")).unwrap(),
            "hello\n"
        );
        assert_eq!(md("index.html").mode() & 0o7777, 0o640);
        assert_eq!(md("index.html").mtime(), 1_600_000_000);
        assert_eq!(md("sub").mode() & 0o7777, 0o1750);
        assert_eq!(md("sub").mtime(), 1_600_000_000);
        assert_eq!(md("sub/deeper").mtime(), 1_600_000_000);
        assert_eq!(md("sub/deeper/run.sh").mode() & 0o7777, 0o4755);
        assert!(md("fifo").file_type().is_fifo());
        assert_eq!(md("fifo").mode() & 0o7777, 0o620);
        // Symlinks are copied as they are, not followed.
        assert!(md("abs-link").file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(v.join("abs-link")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!(
            std::fs::read_link(v.join("up-link")).unwrap(),
            Path::new("../../..")
        );
        // Hard links stay links.
        assert_eq!(md("same.html").ino(), md("index.html").ino());
        // The volume's directory takes the image directory's mode.
        let top = std::fs::metadata(v).unwrap();
        assert_eq!(top.mode() & 0o7777, 0o751);
        if root() {
            assert_eq!((md("index.html").uid(), md("index.html").gid()), (101, 102));
            assert_eq!((md("abs-link").uid(), md("abs-link").gid()), (103, 104));
            assert_eq!((top.uid(), top.gid()), (33, 34));
        }
    }

    #[test]
    fn a_full_or_missing_directory_is_left_alone() {
        let img = image();
        let vol = tempfile::tempdir().unwrap();
        std::fs::write(vol.path().join("mine"), "data").unwrap();
        assert_eq!(
            populate(img.path(), "/srv/www", vol.path()).unwrap(),
            Populated::NotEmpty
        );
        assert_eq!(std::fs::read_dir(vol.path()).unwrap().count(), 1);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            populate(img.path(), "/no/such/dir", empty.path()).unwrap(),
            Populated::NoSource
        );
        std::fs::write(img.path().join("file"), "x").unwrap();
        assert_eq!(
            populate(img.path(), "/file", empty.path()).unwrap(),
            Populated::NoSource
        );
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_symlinked_volume_path_resolves_inside_the_root() {
        // The image says /data is a link to the host's /etc (absolute) and
        // /up to ../../.. : both resolve inside the root file system.
        let img = image();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        std::os::unix::fs::symlink(outside.path(), img.path().join("data")).unwrap();
        std::os::unix::fs::symlink("../../../srv/www", img.path().join("up")).unwrap();
        let vol = tempfile::tempdir().unwrap();
        // outside.path() does not exist inside the root.
        assert_eq!(
            populate(img.path(), "/data", vol.path()).unwrap(),
            Populated::NoSource
        );
        assert!(!vol.path().join("secret").exists());
        assert!(matches!(
            populate(img.path(), "/up", vol.path()).unwrap(),
            Populated::Copied(_)
        ));
        assert!(vol.path().join("index.html").exists());
    }

    #[test]
    fn a_symlink_as_the_host_directory_is_refused() {
        let img = image();
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("vol");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        assert!(populate(img.path(), "/srv/www", &link).is_err());
        assert_eq!(std::fs::read_dir(real.path()).unwrap().count(), 0);
    }
}
