//! The system calls the container set-up makes, behind a trait so the plan
//! can be unit-tested without root: [`RecordingSyscall`] (tests only)
//! records typed arguments, so a test asserts "we would mount proc on
//! `<rootfs>/proc` with nosuid|nodev|noexec" (youki's `Syscall` pattern).
//!
//! Paths handed to `mount` and friends are [`Target`]s: the real
//! implementation resolves a path *inside* a root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and names the result
//! `/proc/self/fd/N`, so a symlink in the image can never send a mount
//! outside the root (runc's CVE-2021-30465 and CVE-2025-31133 class).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Arguments of one mount(2) call, as tests compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArgs {
    pub source: Option<PathBuf>,
    pub target: PathBuf,
    pub fstype: Option<String>,
    pub flags: u64,
    pub data: Option<String>,
}

/// What to create when a path to resolve does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Fail with `ENOENT`.
    No,
    /// `mkdir -p` (for mounts of directories and file systems).
    Dir,
    /// Parents as directories, the last name as an empty file (for bind
    /// mounts of files).
    File,
}

/// What a resolved path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Other,
}

/// A path resolved safely inside a root, held open while it is used.
#[derive(Debug)]
pub struct Target {
    /// The path to hand to mount(2): `/proc/self/fd/N` for real, the joined
    /// path in tests.
    pub path: PathBuf,
    pub kind: Kind,
    /// Keeps `path` valid for the real implementation.
    pub fd: Option<OwnedFd>,
}

/// A recorded call (tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount(MountArgs),
    Umount2(PathBuf, i32),
    PivotRoot(PathBuf),
    Sethostname(String),
    Unshare(i32),
    Mknod(PathBuf, u32, u64),
    Lchown(PathBuf, u32, u32),
    Symlink(PathBuf, PathBuf),
    Unlink(PathBuf),
    WriteFile(PathBuf, String),
    Chdir(PathBuf),
}

pub trait Syscall {
    fn mount(&self, args: &MountArgs) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: i32) -> io::Result<()>;
    /// `pivot_root(".", ".")` in `new_root`, detach the old root, chdir("/").
    fn pivot_root(&self, new_root: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn unshare(&self, flags: i32) -> io::Result<()>;
    fn setns(&self, fd: &OwnedFd, nstype: i32) -> io::Result<()>;
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> io::Result<()>;
    /// chown without following a final symlink.
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Remove a non-directory entry (no error if it does not exist).
    fn unlink(&self, path: &Path) -> io::Result<()>;
    fn write_file(&self, path: &Path, data: &str) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// Resolve `path` inside `root` without leaving it, creating it as asked.
    fn resolve(&self, root: &Path, path: &Path, create: Create) -> io::Result<Target>;
    /// The lstat kind of the last name of `path` inside `root`, without
    /// following it if it is a symlink (`None` when absent).
    fn lstat_kind(&self, root: &Path, path: &Path) -> io::Result<Option<(FileType, u64)>>;
    /// The container's `/dev/null` inside `root`, opened without following
    /// any symlink and verified to be the character device 1:3: what masked
    /// files are bind-mounted from (CVE-2025-31133 class).
    fn null_device(&self, root: &Path) -> io::Result<Target>;
    /// The per-mount flags (`MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC`,
    /// `MS_RDONLY`, ...) of the mount holding `path`: a bind remount must
    /// keep the ones a user namespace locks.
    fn mount_flags(&self, path: &Path) -> io::Result<u64>;
}

/// The real thing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The path relative to a root: `/a/../b` → `b`; never climbs above the root.
pub fn relative_in_root(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn openat2_retry(dir: impl AsFd, path: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let dir = dir.as_fd();
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, mode, IN_ROOT) {
            Err(Errno::AGAIN | Errno::INTR) if tries < 128 => tries += 1,
            r => return r.map_err(io::Error::from),
        }
    }
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn kind_of(fd: &OwnedFd) -> io::Result<Kind> {
    let st = rustix::fs::fstat(fd)?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        _ => Kind::Other,
    })
}

impl LinuxSyscall {
    /// Open `rel` inside `root`, creating missing names one at a time (each
    /// step resolved again from the root, so a symlink planted in between
    /// still resolves inside it).
    fn open_or_create(root: &OwnedFd, rel: &Path, create: Create) -> io::Result<OwnedFd> {
        match openat2_retry(root, rel, OFlags::PATH, Mode::empty()) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::No => {}
            r => return r,
        }
        let names: Vec<_> = rel.components().collect();
        let mut prefix = PathBuf::new();
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            let parent = openat2_retry(
                root,
                &prefix,
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )?;
            prefix.push(name);
            match openat2_retry(root, &prefix, OFlags::PATH, Mode::empty()) {
                Ok(fd) if last => return Ok(fd),
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let name = name.as_os_str();
            if last && create == Create::File {
                match rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                ) {
                    Ok(_) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        openat2_retry(root, rel, OFlags::PATH, Mode::empty())
    }
}

impl Syscall for LinuxSyscall {
    fn mount(&self, a: &MountArgs) -> io::Result<()> {
        let src = a.source.as_deref().map(cstr).transpose()?;
        let target = cstr(&a.target)?;
        let fstype = a.fstype.as_deref().map(CString::new).transpose()?;
        let data = a.data.as_deref().map(CString::new).transpose()?;
        // SAFETY: every pointer is a valid NUL-terminated string or null.
        check(unsafe {
            libc::mount(
                src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                target.as_ptr(),
                fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                a.flags as libc::c_ulong,
                data.as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
            )
        })
    }

    fn umount2(&self, target: &Path, flags: i32) -> io::Result<()> {
        let t = cstr(target)?;
        // SAFETY: valid C string.
        check(unsafe { libc::umount2(t.as_ptr(), flags) })
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let old = rustix::fs::open("/", flags, Mode::empty())?;
        let new = rustix::fs::open(new_root, flags, Mode::empty())?;
        rustix::process::fchdir(&new)?;
        let dot = c".";
        // SAFETY: valid C strings; pivot_root has no libc wrapper.
        check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as i32 })?;
        // The old root is now stacked under the new one, at ".". Make it a
        // slave so detaching it does not propagate to the host, then detach.
        rustix::process::fchdir(&old)?;
        self.mount(&MountArgs {
            source: None,
            target: ".".into(),
            fstype: None,
            flags: libc::MS_SLAVE | libc::MS_REC,
            data: None,
        })?;
        self.umount2(Path::new("."), libc::MNT_DETACH)?;
        rustix::process::chdir("/")?;
        Ok(())
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        // SAFETY: pointer and length of a live buffer.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }

    fn unshare(&self, flags: i32) -> io::Result<()> {
        // SAFETY: plain syscall.
        check(unsafe { libc::unshare(flags) })
    }

    fn setns(&self, fd: &OwnedFd, nstype: i32) -> io::Result<()> {
        // SAFETY: plain syscall on a live fd.
        check(unsafe { libc::setns(fd.as_raw_fd(), nstype) })
    }

    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> io::Result<()> {
        let p = cstr(path)?;
        // SAFETY: valid C string.
        check(unsafe { libc::mknod(p.as_ptr(), mode, dev) })
    }

    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn write_file(&self, path: &Path, data: &str) -> io::Result<()> {
        std::fs::write(path, data)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        Ok(rustix::process::chdir(path)?)
    }

    fn resolve(&self, root: &Path, path: &Path, create: Create) -> io::Result<Target> {
        let rootfd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let fd = Self::open_or_create(&rootfd, &relative_in_root(path), create)?;
        Ok(Target {
            path: fd_path(&fd),
            kind: kind_of(&fd)?,
            fd: Some(fd),
        })
    }

    fn lstat_kind(&self, root: &Path, path: &Path) -> io::Result<Option<(FileType, u64)>> {
        let rel = relative_in_root(path);
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => return Ok(Some((FileType::Directory, 0))),
        };
        let rootfd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let dir = match openat2_retry(
            &rootfd,
            parent,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            r => r?,
        };
        match rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some((FileType::from_raw_mode(st.st_mode), st.st_rdev))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn null_device(&self, root: &Path) -> io::Result<Target> {
        let rootfd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let how = IN_ROOT.union(ResolveFlags::NO_SYMLINKS);
        let fd = rustix::fs::openat2(
            &rootfd,
            "dev/null",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
        .map_err(|e| match e {
            Errno::LOOP => io::Error::other("/dev/null is a symlink"),
            e => io::Error::from(e),
        })?;
        let st = rustix::fs::fstat(&fd)?;
        check_null(FileType::from_raw_mode(st.st_mode), st.st_rdev)?;
        Ok(Target {
            path: fd_path(&fd),
            kind: Kind::Other,
            fd: Some(fd),
        })
    }

    fn mount_flags(&self, path: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(path)?;
        let f = st.f_flag;
        let mut out = 0;
        for (st_flag, ms) in [
            (rustix::fs::StatVfsMountFlags::RDONLY, libc::MS_RDONLY),
            (rustix::fs::StatVfsMountFlags::NOSUID, libc::MS_NOSUID),
            (rustix::fs::StatVfsMountFlags::NODEV, libc::MS_NODEV),
            (rustix::fs::StatVfsMountFlags::NOEXEC, libc::MS_NOEXEC),
            (rustix::fs::StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
            (
                rustix::fs::StatVfsMountFlags::NODIRATIME,
                libc::MS_NODIRATIME,
            ),
            (rustix::fs::StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
        ] {
            if f.contains(st_flag) {
                out |= ms;
            }
        }
        Ok(out)
    }
}

/// Is this the null device, char 1:3?
pub fn check_null(kind: FileType, rdev: u64) -> io::Result<()> {
    if kind != FileType::CharacterDevice {
        return Err(io::Error::other(format!(
            "/dev/null is a {kind:?}, not a character device"
        )));
    }
    if rdev != libc::makedev(1, 3) {
        return Err(io::Error::other(format!(
            "/dev/null is device {}:{}, not 1:3",
            libc::major(rdev),
            libc::minor(rdev)
        )));
    }
    Ok(())
}

/// Test double: records every call; `resolve` joins paths, answering
/// "directory" unless the path was declared a file or missing.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    pub calls: std::cell::RefCell<Vec<Call>>,
    pub files: std::collections::HashSet<PathBuf>,
    pub missing: std::collections::HashSet<PathBuf>,
    /// lstat answers by joined path; absent entries are "not there".
    pub lstat: std::collections::HashMap<PathBuf, (FileType, u64)>,
}

#[cfg(test)]
impl RecordingSyscall {
    fn push(&self, c: Call) -> io::Result<()> {
        self.calls.borrow_mut().push(c);
        Ok(())
    }

    pub fn mounts(&self) -> Vec<MountArgs> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Mount(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
impl Syscall for RecordingSyscall {
    fn mount(&self, args: &MountArgs) -> io::Result<()> {
        self.push(Call::Mount(args.clone()))
    }
    fn umount2(&self, target: &Path, flags: i32) -> io::Result<()> {
        self.push(Call::Umount2(target.into(), flags))
    }
    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        self.push(Call::PivotRoot(new_root.into()))
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.push(Call::Sethostname(name.into()))
    }
    fn unshare(&self, flags: i32) -> io::Result<()> {
        self.push(Call::Unshare(flags))
    }
    fn setns(&self, _fd: &OwnedFd, _nstype: i32) -> io::Result<()> {
        Ok(())
    }
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> io::Result<()> {
        self.push(Call::Mknod(path.into(), mode, dev))
    }
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.push(Call::Lchown(path.into(), uid, gid))
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.push(Call::Symlink(target.into(), link.into()))
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.push(Call::Unlink(path.into()))
    }
    fn write_file(&self, path: &Path, data: &str) -> io::Result<()> {
        self.push(Call::WriteFile(path.into(), data.into()))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.push(Call::Chdir(path.into()))
    }
    fn resolve(&self, root: &Path, path: &Path, create: Create) -> io::Result<Target> {
        let joined = root.join(relative_in_root(path));
        if self.missing.contains(&joined) && create == Create::No {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let kind = if self.files.contains(&joined) || create == Create::File {
            Kind::File
        } else {
            Kind::Dir
        };
        Ok(Target {
            path: joined,
            kind,
            fd: None,
        })
    }
    fn lstat_kind(&self, root: &Path, path: &Path) -> io::Result<Option<(FileType, u64)>> {
        Ok(self.lstat.get(&root.join(relative_in_root(path))).copied())
    }
    fn null_device(&self, root: &Path) -> io::Result<Target> {
        let path = root.join("dev/null");
        if let Some((kind, rdev)) = self.lstat.get(&path) {
            check_null(*kind, *rdev)?;
        }
        Ok(Target {
            path,
            kind: Kind::Other,
            fd: None,
        })
    }
    fn mount_flags(&self, _path: &Path) -> io::Result<u64> {
        Ok(0)
    }
}
