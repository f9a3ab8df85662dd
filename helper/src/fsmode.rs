//! What berthd leaves on disk is root's alone: the modes of the files and
//! directories it makes, and the flags of the mounts it makes in the host's
//! mount namespace (issue 11; the class of Docker's CVE-2021-41091 and
//! containerd's CVE-2021-41103, where any local user ran a setuid-root
//! program a container had written, through world-searchable data dirs).
//!
//! # Modes
//!
//! `--root`, `--run-root` and everything berthd makes under them are made
//! private: directories [`DIR`] (0700), files [`FILE`] (0600), with these
//! modes given at creation and set again where the umask could have taken
//! bits away ([`make_dir`], [`dir`], [`file_options`], [`write`]). berthd
//! also sets its umask to 0o077 at start ([`set_umask`]), only as a safety
//! net for a creation site that forgot: nothing relies on it, and what
//! must be readable by others is always given its mode explicitly.
//!
//! A few things berthd makes are for a container's own users, who reach
//! them through mounts inside the container, never through host paths; each
//! says so where it is made: a container's `upper/` (0755, it is the
//! container's `/`), a named volume's `_data` (0755, the volume's root as
//! the container sees it), the `/etc` files `hosts`, `hostname` and
//! `resolv.conf` (0644), the runtime's `exec.fifo` (0622, for the
//! container's init). Each lies inside a directory of mode 0700 (or 0710,
//! below): that directory is the barrier no one but root passes.
//!
//! What containers and images write (layer contents, upper dirs, volume
//! contents) keeps the modes they were given: berthd never changes them.
//!
//! `--userns=auto` containers are the one place something other than host
//! root must pass the barrier: their init runs in a user namespace of its
//! own, where host root's directories are "other", and must reach its root
//! file system, its `/etc` files and the runtime's fifo by path. Those
//! directories are 0710 root:`berth-userns`, and only such an init carries
//! that group (see [`crate::containers::userns`] for why, and who makes it).
//!
//! # Writes
//!
//! [`write`] replaces a file through a temporary file renamed over it, so a
//! reader sees the old content or the new, never half; [`write_durable`]
//! also syncs the file and the directory, for state that must survive a
//! crash of the machine (under `--root`). The run root is cleared at boot:
//! what is written there needs no sync.
//!
//! # Mounts
//!
//! Every mount berthd makes in the host's mount namespace is `nosuid,nodev`:
//! the containers' root file systems (and the idmapped layers of a
//! `--userns=auto` one), the network namespace files and their directory
//! (also `noexec`). A container's own mounts are made inside its mount
//! namespace by the runtime; its named volumes and `/etc` files get
//! `nosuid,nodev` there too, though `no_new_privs` already keeps set-id
//! bits from working inside.
//!
//! `<root>/containers` and `<root>/volumes` are not bound onto themselves
//! `nosuid,nodev` (as the security review suggested): only root passes their
//! 0700 parents, root needs no set-id bit to be root, and the self-binds
//! would be mounts that outlive berthd, that uninstalling Berth (`rm -rf`)
//! trips over, and that every audit and test of leftovers would have to
//! explain.
//!
//! # Roots written by an older berthd
//!
//! Older berthds left roots 0711, directories 0755 and state files 0644,
//! and mounted root file systems without `nosuid`. Each part of berthd
//! tightens what it made when it opens ([`set_mode`], [`restrict_mount`]):
//! its own directories and state files, never the data trees inside them
//! (upper dirs, volumes' `_data`, layers), so it stays quick at every start.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::StatVfsMountFlags;
use rustix::mount::MountFlags;

/// The mode of every directory berthd makes, unless it says otherwise.
pub const DIR: u32 = 0o700;
/// The mode of every file berthd makes, unless it says otherwise.
pub const FILE: u32 = 0o600;
/// A directory only its group may pass (not list): the way
/// `--userns=auto` inits reach their files (module doc).
pub const TRAVERSE_DIR: u32 = 0o710;

/// berthd's umask: a safety net (module doc). The runtime gives containers
/// and `exec`ed processes 0o022 (or the spec's) before they run anything.
pub fn set_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Make `path` a directory of exactly `mode` if it is missing, its missing
/// parents [`DIR`]; an existing one is left as it is. True if it was made.
pub fn make_dir(path: &Path, mode: u32) -> io::Result<bool> {
    make(path, mode, DIR)
}

/// [`make_dir`] for `--root` and `--run-root`: their missing parents are
/// outside Berth's data and get `mkdir -p`'s 0755, so that paths to them
/// stay as passable as their siblings' (a `--userns=auto` init passes them
/// as "other").
pub fn make_root(path: &Path) -> io::Result<bool> {
    make(path, DIR, 0o755)
}

fn make(path: &Path, mode: u32, parents: u32) -> io::Result<bool> {
    let mut missing: Vec<&Path> = Vec::new();
    for p in path.ancestors() {
        match std::fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p),
            Err(e) => return Err(e),
        }
    }
    let Some((&target, parents_missing)) = missing.split_first() else {
        return Ok(false);
    };
    for &p in parents_missing.iter().rev() {
        mkdir_exact(p, parents)?;
    }
    mkdir_exact(target, mode)?;
    Ok(true)
}

/// mkdir, then chmod: the umask takes bits from mkdir's mode. Another
/// maker winning the race is fine; the directory is then left as it is.
fn mkdir_exact(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `path` is a directory of exactly `mode`: made if missing
/// ([`make_dir`]), its mode set if it had another.
pub fn dir(path: &Path, mode: u32) -> io::Result<()> {
    if !make_dir(path, mode)? {
        set_mode(path, mode)?;
    }
    Ok(())
}

/// [`dir`] with [`DIR`].
pub fn private_dir(path: &Path) -> io::Result<()> {
    dir(path, DIR)
}

/// Set the permission bits of `path` to `mode` if they differ, without
/// following a symlink (one is left alone). False if nothing was changed,
/// also when `path` does not exist.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<bool> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if md.file_type().is_symlink() || md.mode() & 0o7777 == mode {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(true)
}

/// [`set_mode`] on each of `names` in `dir`: the tightening of state
/// files an older berthd left (module doc).
pub fn set_modes(dir: &Path, names: &[&str], mode: u32) -> io::Result<()> {
    for name in names {
        set_mode(&dir.join(name), mode)?;
    }
    Ok(())
}

/// `path` is owned by root and group `gid`, with mode `mode` (a
/// [`TRAVERSE_DIR`]); changed only where it differs.
pub fn set_group_mode(path: &Path, gid: u32, mode: u32) -> io::Result<()> {
    let md = std::fs::symlink_metadata(path)?;
    if md.uid() != 0 || md.gid() != gid {
        std::os::unix::fs::lchown(path, Some(0), Some(gid))?;
    }
    // chown cleared nothing a directory needs, but set the mode after it.
    set_mode(path, mode)?;
    Ok(())
}

/// Options that create a file as [`FILE`] (close-on-exec). An existing
/// file keeps its mode: use [`set_mode`] on it where it may be an older
/// berthd's.
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE).custom_flags(libc::O_CLOEXEC);
    o
}

/// Create (or truncate) `path` as a private file open for writing; an
/// existing file is made [`FILE`] too.
pub fn create(path: &Path) -> io::Result<File> {
    let f = file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    if f.metadata()?.mode() & 0o7777 != FILE {
        f.set_permissions(std::fs::Permissions::from_mode(FILE))?;
    }
    Ok(f)
}

/// Replace `path` with `bytes` through `<path>.tmp` (mode [`FILE`]) renamed
/// over it: a reader sees the old content or the new, never half.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, false)
}

/// [`write`], and synced: the file before the rename, the directory after,
/// so the new content survives a crash of the machine.
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, true)
}

fn write_with(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    if sync {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// `<path>.tmp`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Make the mount at `path` `nosuid` and `nodev` (and `extra`, such as
/// `noexec`), keeping its other flags. A bind remount sets every per-mount
/// flag at once, so `ro` and `noexec` are carried over from what `statvfs`
/// says; the kernel keeps the atime flags when none is given. Nothing is
/// done when the flags are already there.
pub fn restrict_mount(path: &Path, extra: MountFlags) -> io::Result<()> {
    let have = rustix::fs::statvfs(path)?.f_flag;
    let want = MountFlags::NOSUID | MountFlags::NODEV | extra;
    let mut flags = want;
    for (st, ms) in [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
    ] {
        if have.contains(st) {
            flags |= ms;
        } else if want.contains(ms) {
            // Missing: a remount is needed.
            flags |= MountFlags::BIND;
        }
    }
    if !flags.contains(MountFlags::BIND) {
        return Ok(());
    }
    rustix::mount::mount_remount(path, flags, "").map_err(Into::into)
}

/// [`restrict_mount`] on every mount at or below `dir` in berthd's mount
/// namespace (from `/proc/self/mountinfo`): what an older berthd mounted
/// without `nosuid`.
pub fn restrict_mounts_under(dir: &Path, extra: MountFlags) -> io::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    for point in mount_points(&info) {
        if !point.starts_with(dir) {
            continue;
        }
        match restrict_mount(&point, extra) {
            Ok(()) => {}
            // A mount whose directory is gone (mountinfo says `(deleted)`)
            // cannot be reached by path, by anyone: nothing to tighten,
            // and no reason to keep berthd from starting.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!("not tightening the mount at {}: {e}", point.display())
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The mount points (fifth field) of mountinfo text, unescaped.
fn mount_points(info: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|field| {
            // Spaces, tabs, newlines and backslashes come as `\ooo`.
            let b = field.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let octal = b.get(i + 1..i + 4).and_then(|o| {
                    std::str::from_utf8(o)
                        .ok()
                        .and_then(|o| u8::from_str_radix(o, 8).ok())
                });
                match (b[i], octal) {
                    (b'\\', Some(c)) => {
                        out.push(c);
                        i += 4;
                    }
                    (c, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn dirs_get_exact_modes_whatever_the_umask() {
        let t = tempfile::tempdir().unwrap();
        // 0o777 is more than any umask lets mkdir give (the test's own is
        // not changed: tests run in parallel threads of one process).
        let deep = t.path().join("a/b/c");
        assert!(make_dir(&deep, 0o777).unwrap());
        assert_eq!(mode(&deep), 0o777);
        assert!(!make_dir(&deep, 0o700).unwrap(), "an existing dir is left");
        assert_eq!(mode(&deep), 0o777);
        assert_eq!(mode(&t.path().join("a")), DIR);
        assert_eq!(mode(&t.path().join("a/b")), DIR);
        let root = t.path().join("x/root");
        assert!(make_root(&root).unwrap());
        assert_eq!((mode(&root), mode(&t.path().join("x"))), (DIR, 0o755));
        dir(&deep, DIR).unwrap();
        assert_eq!(mode(&deep), DIR, "dir() tightens an existing one");
    }

    #[test]
    fn writes_are_private_whole_and_tighten_an_older_file() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("state.json");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_durable(&f, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(mode(&f), FILE);
        assert!(!t.path().join("state.json.tmp").exists());
        write(&t.path().join("other"), b"x").unwrap();
        assert_eq!(mode(&t.path().join("other")), FILE);
        // A write that cannot be made says so.
        assert!(write(&t.path().join("nope/file"), b"x").is_err());
    }

    #[test]
    fn set_mode_leaves_symlinks_and_missing_paths() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(!set_mode(&link, FILE).unwrap());
        assert_eq!(mode(&target), 0o644, "not followed");
        assert!(!set_mode(&t.path().join("gone"), FILE).unwrap());
        assert!(set_mode(&target, FILE).unwrap());
        assert!(!set_mode(&target, FILE).unwrap(), "nothing to change");
    }

    #[test]
    fn restrict_mount_adds_nosuid_nodev_and_keeps_ro() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("m");
        std::fs::create_dir(&m).unwrap();
        rustix::mount::mount_bind(&m, &m).unwrap();
        let undo = Unmount(m.clone());
        rustix::mount::mount_remount(&m, MountFlags::BIND | MountFlags::RDONLY, "").unwrap();
        restrict_mount(&m, MountFlags::NOEXEC).unwrap();
        let f = rustix::fs::statvfs(&m).unwrap().f_flag;
        for want in [
            StatVfsMountFlags::NOSUID,
            StatVfsMountFlags::NODEV,
            StatVfsMountFlags::NOEXEC,
            StatVfsMountFlags::RDONLY,
        ] {
            assert!(f.contains(want), "{want:?} missing from {f:?}");
        }
        // Again: nothing to do.
        restrict_mount(&m, MountFlags::NOEXEC).unwrap();
        drop(undo);
    }

    #[test]
    fn mount_points_are_unescaped() {
        let info = "36 25 0:32 / /run/berth/netns rw,nosuid shared:1 - tmpfs tmpfs rw\n\
                    40 36 0:4 / /tmp/a\\040dir/x\\134y rw - nsfs nsfs rw\n";
        assert_eq!(
            mount_points(info),
            [
                PathBuf::from("/run/berth/netns"),
                PathBuf::from("/tmp/a dir/x\\y")
            ]
        );
    }

    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
