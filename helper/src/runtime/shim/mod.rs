//! The per-container supervisor ("shim"), in the manner of
//! containerd-shim-runc: one small `berth-shim` process per container run,
//! decoupled from berthd so that a `kill -9` or a restart of berthd leaves
//! the container, its stdio and its logs alone.
//!
//! # Lifecycle
//!
//! ```text
//! berthd ── spawn() ──▶ berth-shim (parent) ── fork, setsid, fork ──▶ shim daemon
//!            ▲                │                                          │
//!            └── returns when the daemon says "ready" (socket listening) ┘
//!
//! shim daemon:  creating ──(runtime create ok)──▶ starting ──(runtime start ok)──▶ running
//!                  │                                 │                              │
//!                  └──── runtime failed ─────────────┴──── init reaped ─────────────┘
//!                                                    ▼
//!                       exited: drain output, exit.json, runtime delete --force,
//!                       answer waits, close attached fds, remove shim.sock, exit 0
//! ```
//!
//! The daemon is a child subreaper: when `runtime create` exits, the
//! container's init is reparented to the shim, which reaps it and so learns
//! its exit status first hand. Because the shim is the init's parent, the
//! init's pid cannot be reused while the shim lives, so `kill` signals the
//! pid directly.
//!
//! Everything runs in one thread around poll(2): the listening socket, the
//! clients, the container's stdout/stderr pipes (or the pty master in tty
//! mode), attached stdin sources, and a signalfd for SIGCHLD/SIGTERM. A slow
//! attached client never blocks the container: writes to it are
//! non-blocking and a client whose backlog passes 1 MiB is dropped. The log
//! file always gets everything.
//!
//! # Files in the shim dir
//!
//! | file | written by | meaning |
//! |---|---|---|
//! | `shim.pid` | shim, at start | `{"pid":N,"start_time":T}` (T from `/proc/N/stat`), so a recycled pid is not mistaken for the shim |
//! | `shim.sock` | shim | the control socket (0600); gone once the shim has exited |
//! | `init.pid` | the runtime (`--pid-file`) | the container init's pid |
//! | `console.sock` | shim, tty mode | where the runtime sends the pty master |
//! | `exit.json` | shim, at the end | how the container ended ([`ExitInfo`]) |
//! | `shim.log` | shim | the shim's own diagnostics (its stderr) |
//!
//! # Crashes
//!
//! If the shim itself dies (SIGKILL, OOM), nothing reaps the init any more
//! (it goes to the next subreaper or pid 1), no `exit.json` is written and
//! `shim.sock` may be left behind; [`client::alive`] then says false and
//! berthd marks the container exited and runs `runtime delete --force`.
//!
//! # Protocol
//!
//! Newline-delimited JSON on `shim.sock`, one response line per request;
//! file descriptors travel with SCM_RIGHTS on the request. See [`Request`].
//! A failed request gets `{"ok":false,"message":"..."}`.

pub mod client;
mod daemon;
mod fdpass;
pub mod logs;
mod oom;
mod server;
pub mod spare;
mod time;

pub use client::{alive, read_exit, spawn, ShimClient, ShimInfo, ShimOptions};
pub use logs::{follow_logs, read_logs, read_logs_offset, FollowEvent, LogLine, Stream};
pub use server::serve;
pub use server::serve_spare;
pub use spare::{spawn_spare, Spare};

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default size at which the log file is rotated: 10 MiB.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// File names inside the shim dir.
pub const PID_FILE: &str = "shim.pid";
pub const SOCKET: &str = "shim.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const INIT_PID_FILE: &str = "init.pid";
pub const CONSOLE_SOCKET: &str = "console.sock";
pub const SHIM_LOG: &str = "shim.log";

/// How a container run ended; the `wait` response and `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The exit code, or 128 + signal when killed by a signal, or the code
    /// given to a failed runtime (127: command not found).
    pub exit_code: i32,
    /// The signal that killed the init, if any.
    pub signal: Option<i32>,
    /// RFC 3339 UTC time with nanoseconds.
    pub finished_at: String,
    /// The container's memory cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// Set when the runtime failed to create or start the container.
    pub error: Option<String>,
}

/// Where a shim's container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `runtime create` or `runtime start` still running.
    Creating,
    Running,
    Exited,
}

/// The `state` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    /// The container init's pid on the host, once known.
    pub pid: Option<i32>,
    pub status: Status,
    /// Set once the container has exited.
    pub exit: Option<ExitInfo>,
}

/// A request on `shim.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// With fds `[stdout, stderr]` or `[stdout, stderr, stdin]`: copy the
    /// container's output to them from now on; feed stdin to the container.
    Attach { stdin: bool },
    /// Answered once the container has exited, with an [`ExitInfo`].
    Wait,
    /// Answered at once with a [`ShimState`].
    State,
    /// Set the pty's window size (tty mode only).
    Resize { rows: u16, cols: u16 },
    /// Send a signal to the container's init.
    Kill { signal: i32 },
}

/// The response to requests that return nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("the shim of this container is not running (nothing answers on {0})")]
    NotRunning(PathBuf),
    #[error("the shim could not start: {0}")]
    Spawn(String),
    #[error("the shim refused the request: {0}")]
    Refused(String),
    #[error("unexpected answer from the shim: {0}")]
    Protocol(String),
    #[error("the log file {path} is unreadable: {source}")]
    Logs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Writes `data` to `path` through a temp file and a rename, so readers see
/// the old content or the new, never half of it.
pub(crate) fn write_atomic(path: &std::path::Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = crate::fsmode::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// An address for the unix socket at `path` that fits in `sun_path` (108
/// bytes): the path itself, or, when that is too long, `/proc/PROC/fd/N/NAME`
/// through a handle on its directory, which the caller keeps open while the
/// address is in use. `proc` is `self`, or the shim's pid when another
/// process (the runtime) connects.
pub(crate) fn short_path(
    path: &std::path::Path,
    proc: &str,
) -> io::Result<(PathBuf, Option<std::fs::File>)> {
    use std::os::fd::AsRawFd;
    if path.as_os_str().len() < 100 {
        return Ok((path.to_owned(), None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((path.to_owned(), None));
    };
    let handle = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/{proc}/fd/{}", handle.as_raw_fd())).join(name);
    Ok((short, Some(handle)))
}
