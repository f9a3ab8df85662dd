//! Free disk space on the layer store's file system, so that a pull is
//! refused with a clear message instead of filling the disk (issue 11).
//!
//! What counts is what `statvfs` says is available to non-root users: berthd
//! runs as root and could otherwise eat the blocks a file system reserves so
//! that root can still log in and clean up. Of that, [`Limits`] keep
//! `max(min_free_bytes, min_free_percent % of the file system)`.
//!
//! A layer is checked once before it starts ([`Disk::check`] at 0 bytes) and
//! then while it streams, each time after an eighth of the headroom above
//! the reserve has gone by (1 MiB to 64 MiB). An eighth because a tar entry
//! can take more disk than tar bytes (a 1 KiB tar entry of a tiny file takes
//! a 4 KiB block and an inode), and so the checks come closer together as
//! the disk fills while staying one `fstatvfs` per many MiB on a roomy disk.
//! The checks run on the decompressing thread, a few MiB ahead of the
//! writes, so the reserve can be undershot by that much: it is a margin,
//! not a quota.

use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::StatVfs;

use super::{Error, Limits, Result, Size};

/// Checks come at least this often (in tar bytes) near the reserve...
const MIN_INTERVAL: u64 = 1 << 20;
/// ...and at most this far apart on a roomy disk, since other work (other
/// pulls, containers) uses the disk too.
const MAX_INTERVAL: u64 = 64 << 20;

/// What a file system has available and what Berth keeps free of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Free {
    pub(crate) available: u64,
    pub(crate) keep: u64,
}

impl Free {
    fn of(st: &StatVfs, limits: &Limits) -> Free {
        let unit = if st.f_frsize > 0 {
            st.f_frsize
        } else {
            st.f_bsize
        };
        Free::from_blocks(unit, st.f_blocks, st.f_bavail, limits)
    }

    /// From a file system of `blocks` blocks of `unit` bytes, `available`
    /// of them free to non-root.
    fn from_blocks(unit: u64, blocks: u64, available: u64, limits: &Limits) -> Free {
        let total = u128::from(blocks) * u128::from(unit);
        let share = total * u128::from(limits.min_free_percent.min(100)) / 100;
        Free {
            available: available.saturating_mul(unit),
            keep: limits
                .min_free_bytes
                .max(u64::try_from(share).unwrap_or(u64::MAX)),
        }
    }

    /// Bytes that may still be written before the reserve is reached.
    pub(crate) fn headroom(&self) -> u64 {
        self.available.saturating_sub(self.keep)
    }

    /// The error for a refusal while `doing` something on `path`.
    pub(crate) fn error(&self, doing: String, path: &Path) -> Error {
        Error::NoSpace {
            doing,
            path: path.to_path_buf(),
            available: self.available,
            keep: self.keep,
        }
    }
}

/// Whether the limits keep any space free at all (both 0: no checks).
fn enabled(limits: &Limits) -> bool {
    limits.min_free_bytes > 0 || limits.min_free_percent > 0
}

fn measure(fd: BorrowedFd<'_>, limits: &Limits, path: &Path) -> Result<Free> {
    let st = rustix::fs::fstatvfs(fd)
        .map_err(|e| Error::io(format!("measuring the free space of {}", path.display()), e))?;
    Ok(Free::of(&st, limits))
}

/// The free-space check of one layer as it streams.
pub(crate) struct Disk<'a> {
    fd: BorrowedFd<'a>,
    /// For messages.
    path: &'a Path,
    limits: &'a Limits,
    /// Tar bytes after which the next check is due.
    next: u64,
}

impl<'a> Disk<'a> {
    /// The check for a layer written through `fd` (a directory on the file
    /// system it fills), or `None` when the limits keep nothing free.
    pub(crate) fn new(fd: BorrowedFd<'a>, path: &'a Path, limits: &'a Limits) -> Option<Self> {
        enabled(limits).then_some(Disk {
            fd,
            path,
            limits,
            next: 0,
        })
    }

    /// Tar bytes after which [`Disk::check`] is due.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Measure now, `written` tar bytes into the layer: `Err` with what was
    /// found when the disk is below the reserve, else schedule the next
    /// check.
    pub(crate) fn check(&mut self, written: u64) -> Result<(), Shortage> {
        let free = measure(self.fd, self.limits, self.path).map_err(Shortage::Failed)?;
        if free.available < free.keep {
            return Err(Shortage::Full(free));
        }
        let step = (free.headroom() / 8).clamp(MIN_INTERVAL, MAX_INTERVAL);
        self.next = written.saturating_add(step);
        Ok(())
    }

    /// The error for a [`Shortage`] met `written` tar bytes into the layer.
    pub(crate) fn error(&self, shortage: Shortage, written: u64) -> Error {
        match shortage {
            Shortage::Full(free) => {
                let doing = if written == 0 {
                    "to unpack a layer".to_string()
                } else {
                    format!(
                        "to go on unpacking the layer (stopped after {} of it)",
                        Size(written)
                    )
                };
                free.error(doing, self.path)
            }
            Shortage::Failed(e) => e,
        }
    }
}

/// Why [`Disk::check`] stopped a layer.
#[derive(Debug)]
pub(crate) enum Shortage {
    /// Below the reserve.
    Full(Free),
    /// The file system could not be measured.
    Failed(Error),
}

/// Refuse, before it starts, work that will write `need` bytes on the file
/// system of `path` and so go below the free space [`Limits`] keep (pulls
/// call this with the size of the blobs they are about to download).
/// `doing` says what needs the space, for the message: "to download …".
pub(crate) fn check_free_space(
    path: &Path,
    limits: &Limits,
    need: u64,
    doing: impl FnOnce() -> String,
) -> Result<()> {
    if !enabled(limits) {
        return Ok(());
    }
    let dir = super::safe::open_trusted_dir(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let free = measure(rustix::fd::AsFd::as_fd(&dir), limits, path)?;
    if free.headroom() < need {
        return Err(free.error(doing(), path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_larger_of_bytes_and_percent() {
        let limits = Limits {
            min_free_bytes: 1 << 30,
            min_free_percent: 2,
            ..Limits::default()
        };
        // 100 GiB, 10 GiB available: 2 % (2 GiB) is more than 1 GiB.
        let free = Free::from_blocks(4096, 25 << 20, 10 << 18, &limits);
        assert_eq!(free.available, 10 << 30);
        assert_eq!(free.keep, (100u64 << 30) / 50);
        assert_eq!(free.headroom(), (10u64 << 30) - (2 << 30));
        // 10 GiB: 2 % is less than 1 GiB.
        let free = Free::from_blocks(4096, 10 << 18, 1 << 10, &limits);
        assert_eq!(
            (free.available, free.keep, free.headroom()),
            (4 << 20, 1 << 30, 0)
        );
        assert!(!enabled(&Limits {
            min_free_bytes: 0,
            min_free_percent: 0,
            ..limits
        }));
    }

    #[test]
    fn measures_a_real_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        check_free_space(tmp.path(), &limits, 0, || unreachable!()).unwrap_or_else(|e| {
            panic!("this test needs the reserve of free space on its temp dir: {e}")
        });
        let err = check_free_space(tmp.path(), &limits, u64::MAX, || "to test".into()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::NoSpace { .. }), "{err:?}");
        for part in [
            "to test",
            "free",
            "berth image prune",
            "limits.min_free_disk",
        ] {
            assert!(msg.contains(part), "{part:?} missing: {msg}");
        }

        let dir = super::super::safe::open_trusted_dir(tmp.path()).unwrap();
        let mut disk = Disk::new(rustix::fd::AsFd::as_fd(&dir), tmp.path(), &limits).unwrap();
        assert_eq!(
            disk.next(),
            0,
            "the first check is before anything is written"
        );
        disk.check(0).unwrap();
        assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&disk.next()));
        let all = Limits {
            min_free_percent: 100,
            ..limits
        };
        let mut disk = Disk::new(rustix::fd::AsFd::as_fd(&dir), tmp.path(), &all).unwrap();
        let shortage = disk.check(5 << 20).unwrap_err();
        let msg = disk.error(shortage, 5 << 20).to_string();
        for part in [
            "not enough free disk space to go on unpacking the layer (stopped after 5.0 MiB",
            "berth image prune",
            "limits.min_free_disk",
        ] {
            assert!(msg.contains(part), "{part:?} missing: {msg}");
        }
    }
}
