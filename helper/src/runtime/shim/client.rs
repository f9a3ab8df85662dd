//! berthd's side of the shim: start one, talk to it, find out how its
//! container ended. Blocking std I/O throughout; berthd calls these from
//! `spawn_blocking`.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::daemon::{start_time, PidRecord};
use super::fdpass::send_with_fds;
use super::{
    io_err, Error, ExitInfo, Reply, Request, Result, ShimState, DEFAULT_LOG_MAX_BYTES, EXIT_FILE,
    PID_FILE, SOCKET,
};

/// How long a held start waits for its first client by default.
pub const DEFAULT_ATTACH_GRACE_SECS: u64 = 30;

fn default_attach_grace() -> u64 {
    DEFAULT_ATTACH_GRACE_SECS
}

/// Where a sealed runtime copy handed to the shim lands (`--sealed-runtime-fd`).
pub const SEALED_RUNTIME_FD: i32 = 3;

/// The shim's command line (and, as JSON, a spare shim's orders).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShimOptions {
    /// The container id, as the runtime knows it.
    pub id: String,
    /// The OCI bundle (`config.json` + rootfs).
    pub bundle: PathBuf,
    /// The runtime binary (`berth-runtime`, or runc/crun).
    pub runtime: PathBuf,
    /// The runtime's `--root` (its state dir).
    pub runtime_root: PathBuf,
    /// The shim's own dir: `shim.sock`, `shim.pid`, `exit.json`, …
    pub dir: PathBuf,
    /// The container's log file (JSON lines).
    pub log: PathBuf,
    /// Give the container a pty (the bundle must say `"terminal": true`).
    pub tty: bool,
    /// Keep the container's stdin open for attached clients.
    pub stdin: bool,
    /// Hold the container's start until the first client attaches, so it
    /// sees all of the output.
    pub wait_attach: bool,
    /// With `wait_attach`: start anyway after this many seconds without a
    /// client (berthd or its caller went away meanwhile), as a detached
    /// container; its output is in the log.
    #[serde(default = "default_attach_grace")]
    pub attach_grace_secs: u64,
    /// Rotate the log past this size.
    pub log_max_bytes: u64,
    /// The `berth-shim` binary; default: next to the current executable
    /// (or its parent dir, for test binaries in `target/*/deps`).
    pub shim_binary: Option<PathBuf>,
    /// `runtime` is Berth's own: the shim drives it as a library, in its
    /// own process (create, start, delete), instead of running its command
    /// line three times. The container's init is still exec'd from a sealed
    /// copy of `runtime`. Other runtimes (runc, crun) go by command line.
    pub builtin: bool,
    /// A sealed copy of `runtime` made once by the caller
    /// ([`crate::runtime::exe::sealed_copy`]), handed down at fd
    /// [`SEALED_RUNTIME_FD`] so that no container pays for copying it.
    #[serde(skip)]
    pub sealed_runtime: Option<Arc<OwnedFd>>,
}

impl ShimOptions {
    pub fn new(
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        runtime: impl Into<PathBuf>,
        runtime_root: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Self {
        Self {
            id: id.into(),
            bundle: bundle.into(),
            runtime: runtime.into(),
            runtime_root: runtime_root.into(),
            dir: dir.into(),
            log: log.into(),
            tty: false,
            stdin: false,
            wait_attach: false,
            attach_grace_secs: DEFAULT_ATTACH_GRACE_SECS,
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            shim_binary: None,
            builtin: false,
            sealed_runtime: None,
        }
    }

    /// The arguments of `berth-shim`, as its `main` parses them.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut opt = |k: &str, v: &std::ffi::OsStr| {
            a.push(k.into());
            a.push(v.into());
        };
        opt("--id", self.id.as_ref());
        opt("--bundle", self.bundle.as_os_str());
        opt("--runtime", self.runtime.as_os_str());
        opt("--runtime-root", self.runtime_root.as_os_str());
        opt("--dir", self.dir.as_os_str());
        opt("--log", self.log.as_os_str());
        opt("--log-max-bytes", self.log_max_bytes.to_string().as_ref());
        if self.tty {
            a.push("--tty".into());
        }
        if self.stdin {
            a.push("--stdin".into());
        }
        if self.wait_attach {
            a.push("--wait-attach".into());
            a.push("--attach-grace-secs".into());
            a.push(self.attach_grace_secs.to_string().into());
        }
        if self.builtin {
            a.push("--builtin".into());
        }
        if self.sealed_runtime.is_some() {
            a.push("--sealed-runtime-fd".into());
            a.push(SEALED_RUNTIME_FD.to_string().into());
        }
        a
    }

    fn binary(&self) -> Result<PathBuf> {
        if let Some(b) = &self.shim_binary {
            return Ok(b.clone());
        }
        let exe = std::env::current_exe().map_err(io_err("finding the current executable"))?;
        let dir = exe.parent().unwrap_or(Path::new("/"));
        [dir.join("berth-shim"), dir.join("../berth-shim")]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| Error::Spawn(format!("no berth-shim binary next to {}", exe.display())))
    }
}

/// A running shim: its pid and that pid's start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShimInfo {
    pub pid: i32,
    pub start_time: u64,
}

/// Starts a shim for one container run; returns once it listens on its
/// socket (the container is then being created), or with the shim's error.
pub fn spawn(opts: &ShimOptions) -> Result<ShimInfo> {
    let bin = opts.binary()?;
    let fd = opts
        .sealed_runtime
        .as_ref()
        .map(|fd| (fd.as_raw_fd(), SEALED_RUNTIME_FD));
    run_until_daemon(&bin, &opts.args(), fd, None)?;
    pid_record(&opts.dir).ok_or_else(|| Error::Spawn(format!("the shim wrote no {PID_FILE}")))
}

/// Runs `berth-shim` (`bin`) with `args` until its first process exits,
/// which it does once the daemon it forked is ready (or failed: then with
/// the daemon's message). `fd` = (ours, theirs): our fd is handed down at
/// the number `theirs`, not close-on-exec; `nice` sets its priority.
pub(crate) fn run_until_daemon(
    bin: &Path,
    args: &[OsString],
    fd: Option<(i32, i32)>,
    nice: Option<i32>,
) -> Result<()> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if fd.is_some() || nice.is_some() {
        // SAFETY: only dup2 and setpriority (async-signal-safe) between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some((ours, theirs)) = fd {
                    if libc::dup2(ours, theirs) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(n) = nice {
                    libc::setpriority(libc::PRIO_PROCESS, 0, n);
                }
                Ok(())
            });
        }
    }
    let out = cmd
        .output()
        .map_err(io_err(format!("running {}", bin.display())))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let msg = msg.strip_prefix("berth-shim: ").unwrap_or(&msg).to_owned();
        return Err(Error::Spawn(if msg.is_empty() {
            format!("{} exited with {}", bin.display(), out.status)
        } else {
            msg
        }));
    }
    Ok(())
}

pub(crate) fn pid_record(dir: &Path) -> Option<ShimInfo> {
    let rec: PidRecord = serde_json::from_slice(&std::fs::read(dir.join(PID_FILE)).ok()?).ok()?;
    Some(ShimInfo {
        pid: rec.pid,
        start_time: rec.start_time,
    })
}

/// Is the shim recorded in `dir` still running (same pid, same start time)?
pub fn alive(dir: &Path) -> bool {
    pid_record(dir).is_some_and(|r| start_time(r.pid) == Some(r.start_time))
}

/// The shim's pid record, if it wrote one.
pub fn info(dir: &Path) -> Option<ShimInfo> {
    pid_record(dir)
}

/// How the container ended, once the shim has recorded it.
pub fn read_exit(dir: &Path) -> Option<ExitInfo> {
    serde_json::from_slice(&std::fs::read(dir.join(EXIT_FILE)).ok()?).ok()
}

/// Talks to one shim. Every call is its own connection, so calls can come
/// from several threads and a broken call leaves nothing behind.
#[derive(Debug, Clone)]
pub struct ShimClient {
    dir: PathBuf,
}

impl ShimClient {
    /// Fails with [`Error::NotRunning`] if nothing answers on the socket.
    pub fn connect(dir: &Path) -> Result<Self> {
        let c = Self {
            dir: dir.to_owned(),
        };
        c.open()?;
        Ok(c)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open(&self) -> Result<UnixStream> {
        let path = self.dir.join(SOCKET);
        let (addr, _dir) =
            super::short_path(&path, "self").map_err(|_| Error::NotRunning(path.clone()))?;
        UnixStream::connect(addr).map_err(|_| Error::NotRunning(path))
    }

    /// Sends `req` (with `fds`) and reads the one-line answer; `None` if the
    /// shim closed the connection without one (it exited meanwhile).
    fn call(&self, req: &Request, fds: &[BorrowedFd<'_>]) -> Result<Option<String>> {
        let sock = self.open()?;
        let mut line = serde_json::to_vec(req).expect("plain enum");
        line.push(b'\n');
        match send_with_fds(sock.as_fd(), &line, fds) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(io_err("sending a request to the shim")(e)),
        }
        let mut answer = String::new();
        match BufReader::new(&sock).read_line(&mut answer) {
            Ok(_) => {}
            // The shim exited with our request unread.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(io_err("reading the shim's answer")(e)),
        }
        Ok((!answer.is_empty()).then_some(answer))
    }

    fn call_ok(&self, req: &Request, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let answer = self
            .call(req, fds)?
            .ok_or_else(|| Error::Refused("the container has exited".into()))?;
        let reply: Reply =
            serde_json::from_str(&answer).map_err(|e| Error::Protocol(format!("{e}: {answer}")))?;
        if reply.ok {
            Ok(())
        } else {
            Err(Error::Refused(reply.message.unwrap_or_default()))
        }
    }

    /// From now on the container's output is copied to `stdout`/`stderr`
    /// (the log keeps getting it too), and what is read from `stdin` goes to
    /// the container (if the shim was started with `stdin`; its EOF closes
    /// the container's stdin). The shim closes its copies when the container
    /// exits, so a reader sees EOF. Pass pipes or sockets: the shim writes
    /// without blocking and drops a reader that falls 1 MiB behind.
    pub fn attach(
        &self,
        stdout: BorrowedFd<'_>,
        stderr: BorrowedFd<'_>,
        stdin: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        let mut fds = vec![stdout, stderr];
        fds.extend(stdin);
        self.call_ok(
            &Request::Attach {
                stdin: stdin.is_some(),
            },
            &fds,
        )
    }

    /// Blocks until the container has exited. If the shim is already gone,
    /// answers from `exit.json`.
    pub fn wait(&self) -> Result<ExitInfo> {
        let answer = match self.call(&Request::Wait, &[]) {
            Ok(a) => a,
            Err(Error::NotRunning(p)) => return read_exit(&self.dir).ok_or(Error::NotRunning(p)),
            Err(e) => return Err(e),
        };
        match answer {
            Some(a) => serde_json::from_str(&a).map_err(|e| Error::Protocol(format!("{e}: {a}"))),
            None => read_exit(&self.dir).ok_or_else(|| Error::NotRunning(self.dir.join(SOCKET))),
        }
    }

    pub fn state(&self) -> Result<ShimState> {
        let a = self
            .call(&Request::State, &[])?
            .ok_or_else(|| Error::NotRunning(self.dir.join(SOCKET)))?;
        serde_json::from_str(&a).map_err(|e| Error::Protocol(format!("{e}: {a}")))
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        self.call_ok(&Request::Resize { rows, cols }, &[])
    }

    /// Sends `signal` to the container's init (pid 1 inside it: it only
    /// gets signals it handles, except SIGKILL).
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.call_ok(&Request::Kill { signal }, &[])
    }
}
