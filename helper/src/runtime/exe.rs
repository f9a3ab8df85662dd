//! The init runs from a sealed in-memory copy of the runtime binary.
//!
//! CVE-2019-5736 class: a process in the container that can open
//! `/proc/<pid>/exe` of a runtime process that entered the container (or a
//! container whose command is `/proc/self/exe`, which execs the runtime
//! binary itself inside the container) could reopen the host's binary for
//! writing once it stops running and replace it. So nothing of the runtime
//! ever enters a container as the host file: the init is exec'd from a
//! `memfd` copy sealed against writes, shrinking and growing (runc's
//! choice too). Its `/proc/<pid>/exe` is that memfd; opening it for writing
//! fails, and writing through any fd fails with `EPERM`. As a second layer
//! the init makes itself non-dumpable until it execs the command, so other
//! container processes cannot open its `/proc/<pid>/` files at all.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use rustix::fs::{MemfdFlags, SealFlags};

/// A sealed memfd holding a copy of `exe`.
pub fn sealed_copy(exe: &Path) -> io::Result<OwnedFd> {
    let mut src = File::open(exe)?;
    let fd = rustix::fs::memfd_create(
        "berth-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut dst = File::from(fd);
    io::copy(&mut src, &mut dst)?;
    rustix::fs::fcntl_add_seals(&dst, required_seals())?;
    Ok(dst.into())
}

/// The seals every copy must carry: no writes, no size change, no unsealing.
fn required_seals() -> SealFlags {
    SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
}

/// Checks that `fd` is a memfd sealed as [`sealed_copy`] seals it, so a
/// copy made once (by berthd) can be handed to many runtimes safely: nobody
/// can change it, whoever holds it.
pub fn check_sealed(fd: impl AsFd) -> io::Result<()> {
    let seals = rustix::fs::fcntl_get_seals(fd)?;
    if seals.contains(required_seals()) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the runtime copy handed over is not a sealed memfd",
        ))
    }
}

/// The sealed copy of this process's own binary, made once per process.
pub fn sealed_self() -> io::Result<&'static OwnedFd> {
    static COPY: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = COPY.get() {
        return Ok(fd);
    }
    let fd = sealed_copy(Path::new("/proc/self/exe"))?;
    Ok(COPY.get_or_init(|| fd))
}
