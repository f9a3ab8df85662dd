//! Turning the `berth-shim` process berthd started into a daemon that
//! outlives berthd, with a pipe that tells the original process when the
//! daemon is ready (or why it failed), so berthd's call returns only then.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What `shim.pid` holds: the pid and its start time (clock ticks since
/// boot, field 22 of `/proc/PID/stat`), so a recycled pid is not mistaken
/// for the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    pub pid: i32,
    pub start_time: u64,
}

/// The start time of `pid`, if it exists.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(crate) fn write_pid_file(dir: &Path) -> io::Result<PidRecord> {
    let pid = std::process::id() as i32;
    let rec = PidRecord {
        pid,
        start_time: start_time(pid)
            .ok_or_else(|| io::Error::other("cannot read own /proc/PID/stat"))?,
    };
    super::write_atomic(&dir.join(super::PID_FILE), &serde_json::to_vec(&rec)?)?;
    Ok(rec)
}

/// The daemon's end of the readiness pipe (or, for a spare, of its
/// control socket): one line, `ok` or `error: …`.
pub(crate) struct Ready<W: Write = File>(pub(crate) W);

impl<W: Write> Ready<W> {
    pub(crate) fn ok(mut self) {
        let _ = self.0.write_all(b"ok\n");
    }

    pub(crate) fn fail(mut self, message: &str) {
        let _ = self.0.write_all(format!("error: {message}\n").as_bytes());
    }
}

/// Forks twice with a setsid in between. Returns only in the daemon (own
/// session, not a session leader, cwd `/`, stdin/stdout on /dev/null,
/// stderr on `stderr_to`). The original process waits for the daemon's word
/// on the pipe and exits with 0 (ready) or 1 (after printing the error).
///
/// Must be called while the process has a single thread.
pub(crate) fn daemonize(stderr_to: &Path) -> io::Result<Ready> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let errlog = crate::fsmode::file_options()
        .create(true)
        .append(true)
        .open(stderr_to)?;
    // SAFETY: single-threaded (documented precondition); the child only
    // calls async-signal-safe functions until it forks again or returns
    // into the (still single-threaded) program.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        child => {
            drop(w);
            parent_wait(child, r);
        }
    }
    drop(r);
    rustix::process::setsid()?;
    // SAFETY: as above.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => unsafe { libc::_exit(0) },
    }
    std::env::set_current_dir("/")?;
    // SAFETY: plain dup2 onto the standard descriptors.
    unsafe {
        libc::dup2(devnull.as_raw_fd(), 0);
        libc::dup2(devnull.as_raw_fd(), 1);
        libc::dup2(errlog.as_raw_fd(), 2);
    }
    Ok(Ready(File::from(w)))
}

/// The original process: relay the daemon's verdict and exit.
fn parent_wait(child: libc::pid_t, r: OwnedFd) -> ! {
    let mut msg = String::new();
    let _ = File::from(r).read_to_string(&mut msg);
    let mut status = 0;
    // SAFETY: reaping our own child (the intermediate process).
    unsafe { libc::waitpid(child, &mut status, 0) };
    if msg.starts_with("ok") {
        std::process::exit(0);
    }
    let msg = msg.trim().strip_prefix("error: ").unwrap_or(msg.trim());
    if msg.is_empty() {
        eprintln!("berth-shim: the shim exited before it was ready");
    } else {
        eprintln!("berth-shim: {msg}");
    }
    std::process::exit(1);
}
