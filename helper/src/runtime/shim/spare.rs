//! A spare shim: started ahead of need, it waits, already a daemon, until
//! berthd hands it a container. Starting a shim costs an exec of its
//! binary and two forks (a few ms); with a spare ready, `start` only pays a
//! message on a socket, and berthd starts the next spare in the background.
//!
//! ```text
//! berthd ── spawn_spare() ──▶ berth-shim --spare --control-fd 3 ── daemonize ──▶ waits on fd 3
//!        ◀── "spare <pid>\n" ─────────────────────────────────────────────────────┘
//! berthd ── Spare::assign(opts) ── {ShimOptions JSON}\n + [sealed runtime fd] ──▶
//!        ◀── "ok\n" (listening on shim.sock, as `spawn` returns) | "error: …\n" ──
//! ```
//!
//! The control socket is a socketpair: nothing on the file system names it,
//! and only berthd holds the other end. When berthd goes away unassigned
//! spares read end-of-file and exit; nothing else refers to them.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::net::RecvFlags;

use super::client::{pid_record, run_until_daemon, ShimInfo, ShimOptions};
use super::daemon::Ready;
use super::fdpass::{recv_with_fds, send_with_fds};
use super::{io_err, Error, Result};

/// Where the spare finds its end of the control socket.
pub const CONTROL_FD: i32 = 3;

/// The nice value of a waiting spare.
const SPARE_NICE: i32 = 19;

/// How long an assigned spare may take to be ready (it normally takes well
/// under a millisecond; a stuck one must not hang `start`).
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(30);

/// A started, unassigned shim.
#[derive(Debug)]
pub struct Spare {
    sock: UnixStream,
    pid: i32,
}

/// Starts a spare `berth-shim` (the binary at `shim_binary`); returns once
/// it is a daemon waiting for its container.
pub fn spawn_spare(shim_binary: &Path) -> Result<Spare> {
    let (ours, theirs) = UnixStream::pair().map_err(io_err("creating a socket pair"))?;
    // A spare starts at the lowest priority, so that starting it yields to
    // containers being started now; it takes the normal one back when it
    // gets a container.
    let args: Vec<OsString> = ["--spare", "--control-fd", &CONTROL_FD.to_string()]
        .iter()
        .map(OsString::from)
        .collect();
    run_until_daemon(
        shim_binary,
        &args,
        Some((theirs.as_raw_fd(), CONTROL_FD)),
        Some(SPARE_NICE),
    )?;
    drop(theirs);
    ours.set_read_timeout(Some(ASSIGN_TIMEOUT))
        .map_err(io_err("setting a timeout"))?;
    let mut hello = [0u8; 32];
    let n = (&ours)
        .read(&mut hello)
        .map_err(io_err("reading the spare shim's pid"))?;
    let pid = std::str::from_utf8(&hello[..n])
        .ok()
        .and_then(|l| l.trim().strip_prefix("spare "))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| Error::Protocol("the spare shim did not say its pid".into()))?;
    Ok(Spare { sock: ours, pid })
}

impl Spare {
    /// The spare daemon's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Hands `opts` to the spare; returns as [`super::spawn`] does, once
    /// the shim listens. An [`Error::Io`] means the spare itself failed
    /// (it died, say), and a fresh [`super::spawn`] may well succeed; other
    /// errors are about `opts`.
    pub fn assign(self, opts: &ShimOptions) -> Result<ShimInfo> {
        let mut line = serde_json::to_vec(opts).map_err(|e| Error::Protocol(e.to_string()))?;
        line.push(b'\n');
        let fds: Vec<BorrowedFd<'_>> = opts.sealed_runtime.iter().map(|f| f.as_fd()).collect();
        send_with_fds(self.sock.as_fd(), &line, &fds)
            .map_err(io_err("handing over to the spare shim"))?;
        self.sock
            .set_read_timeout(Some(ASSIGN_TIMEOUT))
            .map_err(io_err("setting a timeout"))?;
        let mut answer = String::new();
        BufReader::new(&self.sock)
            .read_line(&mut answer)
            .map_err(io_err("reading the spare shim's answer"))?;
        let answer = answer.trim();
        if answer == "ok" {
            return pid_record(&opts.dir)
                .ok_or_else(|| Error::Spawn(format!("the shim wrote no {}", super::PID_FILE)));
        }
        match answer.strip_prefix("error: ") {
            Some(msg) => Err(Error::Spawn(msg.to_string())),
            None => Err(Error::Io {
                what: "the spare shim".into(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "it exited without an answer"),
            }),
        }
    }
}

/// The spare's side: wait for orders on `control`. Returns the options
/// (with the handed-down sealed runtime, if any) and the means to answer,
/// or `None` when berthd closed the socket instead.
pub(crate) fn wait_for_orders(control: OwnedFd) -> Option<(ShimOptions, Answer)> {
    let mut sock = UnixStream::from(control);
    sock.write_all(format!("spare {}\n", std::process::id()).as_bytes())
        .ok()?;
    let mut line = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; 4096];
    while !line.ends_with(b"\n") {
        match recv_with_fds(sock.as_fd(), &mut buf, &mut fds, RecvFlags::empty()) {
            Ok(0) => return None,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    // Working now: back to the normal priority (root may lower its nice).
    // SAFETY: plain syscall on ourselves.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    let answer = Ready(sock);
    let mut opts: ShimOptions = match serde_json::from_slice(&line) {
        Ok(o) => o,
        Err(e) => {
            answer.fail(&format!("unreadable orders: {e}"));
            return None;
        }
    };
    opts.sealed_runtime = fds.into_iter().next().map(Arc::new);
    Some((opts, answer))
}

/// The spare's answer to berthd, sent once, as a daemon's readiness.
pub(crate) type Answer = Ready<UnixStream>;
