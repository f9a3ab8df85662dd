//! The shim daemon: runs the container through the runtime binary, owns its
//! stdio, writes its logs, serves `shim.sock`, reaps it and records how it
//! ended. One thread, one poll(2) loop; see the module essay in `mod.rs`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};
use rustix::process::{WaitOptions, WaitStatus};

use super::client::ShimOptions;
use super::fdpass::recv_with_fds;
use super::logs::{LogWriter, Stream};
use super::{
    daemon, oom, time, ExitInfo, Reply, Request, ShimState, Status, CONSOLE_SOCKET, EXIT_FILE,
    INIT_PID_FILE, SHIM_LOG, SOCKET,
};

const READ_CHUNK: usize = 64 * 1024;
/// An attached client whose unsent output passes this is dropped.
const SINK_LIMIT: usize = 1024 * 1024;
/// Stop reading attached stdin while this much waits for the container.
const STDIN_LIMIT: usize = 256 * 1024;
/// After the init exited, how long to wait for its output pipes to close
/// (a process that escaped the pid namespace may hold them) and for
/// attached clients to take the rest.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How much of the runtime's own messages to keep for the error.
const RUNTIME_MSG_CAP: usize = 8 * 1024;

/// Entry point of `berth-shim`: checks the options, daemonizes, serves until
/// the container has exited. Returns the process exit code; in the
/// original process it does not return (see [`daemon::daemonize`]).
pub fn serve(opts: ShimOptions) -> i32 {
    // Whatever fds the caller leaked to us must not reach the runtime or
    // the container (CVE-2024-21626 class), nor stay open here for the
    // container's life (a client's pipe would never see end-of-file): only
    // 0, 1, 2 and the sealed runtime handed down stay.
    let keep = if opts.sealed_runtime.is_some() {
        super::client::SEALED_RUNTIME_FD
    } else {
        2
    };
    close_fds_above(keep);
    if let Err(e) = precheck(&opts) {
        eprintln!("berth-shim: {e}");
        return 1;
    }
    let ready = match daemon::daemonize(&opts.dir.join(SHIM_LOG)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth-shim: cannot daemonize: {e}");
            return 1;
        }
    };
    match Shim::setup(opts) {
        Ok(shim) => {
            ready.ok();
            shim.run()
        }
        Err(e) => {
            eprintln!("berth-shim: {e}");
            ready.fail(&e.to_string());
            1
        }
    }
}

/// Entry point of `berth-shim --spare`: daemonize at once, wait on
/// `control` for a container (see [`super::spare`]), then serve it as
/// [`serve`] would.
pub fn serve_spare(control: OwnedFd) -> i32 {
    // As in `serve`: nothing leaked to us stays open, but the control socket.
    close_fds_above(control.as_raw_fd());
    match daemon::daemonize(Path::new("/dev/null")) {
        Ok(ready) => ready.ok(),
        Err(e) => {
            eprintln!("berth-shim: cannot daemonize: {e}");
            return 1;
        }
    }
    let Some((opts, answer)) = super::spare::wait_for_orders(control) else {
        return 0;
    };
    if let Err(e) = precheck(&opts) {
        answer.fail(&e.to_string());
        return 1;
    }
    // Our diagnostics go where a spawned shim's go.
    match crate::fsmode::file_options()
        .create(true)
        .append(true)
        .open(opts.dir.join(SHIM_LOG))
    {
        // SAFETY: dup2 onto our own stderr.
        Ok(f) => unsafe {
            libc::dup2(f.as_raw_fd(), 2);
        },
        Err(e) => {
            answer.fail(&format!("cannot open {}: {e}", SHIM_LOG));
            return 1;
        }
    }
    match Shim::setup(opts) {
        Ok(shim) => {
            answer.ok();
            shim.run()
        }
        Err(e) => {
            eprintln!("berth-shim: {e}");
            answer.fail(&e.to_string());
            1
        }
    }
}

/// Closes every descriptor above `fd` (all of them: a spare or a shim lives
/// long, and a copy of somebody's pipe kept here would hold it open).
fn close_fds_above(fd: i32) {
    // SAFETY: close_range(2) on descriptors nothing in this process uses:
    // we are single-threaded and own nothing above `fd` yet.
    let r = unsafe { libc::syscall(libc::SYS_close_range, (fd + 1) as u32, u32::MAX, 0u32) };
    if r != 0 {
        // Old kernels: at least keep them from the runtime and container.
        // SAFETY: as above, flags only.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                (fd + 1) as u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
    }
}

/// What can be checked while berthd still reads our stderr.
fn precheck(opts: &ShimOptions) -> io::Result<()> {
    let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
    if opts.id.is_empty() {
        return bad("--id must not be empty".into());
    }
    if !opts.bundle.join("config.json").is_file() {
        return bad(format!(
            "{} has no config.json; is it an OCI bundle?",
            opts.bundle.display()
        ));
    }
    if !opts.runtime.is_file() {
        return bad(format!(
            "the runtime {} does not exist",
            opts.runtime.display()
        ));
    }
    crate::fsmode::private_dir(&opts.dir)?;
    if super::client::alive(&opts.dir) {
        return bad(format!(
            "a shim is already running for {}",
            opts.dir.display()
        ));
    }
    for stale in [EXIT_FILE, SOCKET, CONSOLE_SOCKET, INIT_PID_FILE] {
        let _ = std::fs::remove_file(opts.dir.join(stale));
    }
    if let Some(parent) = opts.log.parent() {
        crate::fsmode::make_dir(parent, crate::fsmode::DIR)?;
    }
    Ok(())
}

struct Client {
    sock: UnixStream,
    rbuf: Vec<u8>,
    fds: Vec<OwnedFd>,
    wbuf: Vec<u8>,
    waiting: bool,
    read_closed: bool,
    dead: bool,
}

/// An attached output fd.
struct Sink {
    fd: OwnedFd,
    socket: bool,
    stream: Stream,
    buf: Vec<u8>,
    dead: bool,
}

/// An attached stdin fd.
struct Source {
    fd: OwnedFd,
    dead: bool,
}

#[derive(Clone, Copy)]
enum Tok {
    Listener,
    Signal,
    Output(usize),
    RuntimeOut,
    Console,
    StdinW,
    Client(usize),
    Sink(usize),
    Source(usize),
}

struct Shim {
    opts: ShimOptions,
    listener: UnixListener,
    sigfd: OwnedFd,
    log: LogWriter,
    log_failed: bool,
    /// The container's stdout and stderr read ends; in tty mode the pty
    /// master is `[0]`.
    outputs: [Option<OwnedFd>; 2],
    /// Read end of the pipe the runtime's own messages go to (`start`, and
    /// `create` in tty mode; in non-tty mode `create` writes to the
    /// container's stderr).
    runtime_out: Option<OwnedFd>,
    /// Its write end, kept until `runtime start` has been spawned.
    runtime_out_w: Option<OwnedFd>,
    runtime_msgs: Vec<u8>,
    /// Where attached stdin goes: the container's stdin pipe, or the pty
    /// master.
    stdin_w: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    console: Option<UnixListener>,
    /// Keeps the shim dir open while the runtime may reach the console
    /// socket through a /proc path into it (see `short_path`).
    console_dir: Option<std::fs::File>,
    pty: Option<OwnedFd>,
    winsize: Option<(u16, u16)>,
    clients: Vec<Client>,
    sinks: Vec<Sink>,
    sources: Vec<Source>,
    create: Option<i32>,
    /// `start` waits for the first attach (`--wait-attach`).
    start_held: bool,
    /// When a held start goes ahead without a client.
    start_held_until: Option<Instant>,
    start: Option<i32>,
    started: bool,
    init: Option<i32>,
    init_reaped: bool,
    /// Children reaped before we knew who they were (the init can in
    /// principle die before its pid file is read).
    orphans: HashMap<i32, WaitStatus>,
    pending_signals: Vec<i32>,
    exit: Option<ExitInfo>,
    drain_deadline: Option<Instant>,
    /// Container-side ends of the stdio (stdin, stdout, stderr; `None`:
    /// /dev/null), until `create` runs.
    child_stdio: Option<[Option<OwnedFd>; 3]>,
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true)?;
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Blocks SIGCHLD, SIGTERM and SIGINT and returns a signalfd for them.
/// Children started through `std::process::Command` get an empty mask back.
fn signalfd() -> io::Result<OwnedFd> {
    // SAFETY: plain libc calls on a local sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(std::os::fd::FromRawFd::from_raw_fd(fd))
    }
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let (addr, _dir) = super::short_path(path, "self")?;
    // SAFETY: umask only affects this process; restored right after.
    let old = unsafe { libc::umask(0o077) };
    let l = UnixListener::bind(&addr);
    unsafe { libc::umask(old) };
    let l = l?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) with a pid we own (our child, not yet reaped).
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Is `fd` a socket? (Attached sockets are written with MSG_DONTWAIT
/// rather than by changing their shared file flags.)
fn is_socket(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_socket())
        .unwrap_or(false)
}

/// Prepares an attached output fd for non-blocking writes without changing
/// the flags of the client's own open file (which may be its terminal):
/// pipes and ttys are reopened through /proc, which gives us a file
/// description of our own.
fn own_output(fd: OwnedFd) -> (OwnedFd, bool) {
    if is_socket(fd.as_fd()) {
        return (fd, true);
    }
    // A regular file (`berth run > out.txt`) is written through the
    // caller's own description: reopening it would start a second one at
    // offset 0 and overwrite what the caller wrote. Writes to files do not
    // block, so it needs no non-blocking flag either.
    if rustix::fs::fstat(fd.as_fd())
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        })
        .unwrap_or(false)
    {
        return (fd, false);
    }
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        rustix::fs::OFlags::WRONLY
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC
            | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    );
    match reopened {
        Ok(own) => (own, false),
        Err(_) => {
            let _ = set_nonblocking(fd.as_fd());
            (fd, false)
        }
    }
}

fn write_some(fd: BorrowedFd<'_>, socket: bool, data: &[u8]) -> io::Result<usize> {
    let r = if socket {
        rustix::net::send(fd, data, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)
    } else {
        rustix::io::write(fd, data)
    };
    match r {
        Ok(n) => Ok(n),
        Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Reads what is there; `Ok(None)` when nothing is (EAGAIN), `Ok(Some(0))`
/// at end of file (EIO from a pty master whose other side closed counts).
fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(Some(n)),
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(Errno::IO) => return Ok(Some(0)),
            Err(e) => return Err(e.into()),
        }
    }
}

fn exit_code(status: WaitStatus) -> (i32, Option<i32>) {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        _ => (128, None),
    }
}

impl Shim {
    fn setup(opts: ShimOptions) -> io::Result<Self> {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        let sigfd = signalfd()?;
        daemon::write_pid_file(&opts.dir)?;
        let listener = bind(&opts.dir.join(SOCKET))?;
        let log = LogWriter::open(&opts.log, opts.log_max_bytes).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the log {}: {e}", opts.log.display()),
            )
        })?;

        let (rt_r, rt_w) = pipe()?;
        set_nonblocking(rt_r.as_fd())?;
        let mut shim = Shim {
            listener,
            sigfd,
            log,
            log_failed: false,
            outputs: [None, None],
            runtime_out: Some(rt_r),
            runtime_out_w: Some(rt_w),
            runtime_msgs: Vec::new(),
            stdin_w: None,
            stdin_buf: Vec::new(),
            stdin_eof: false,
            console: None,
            console_dir: None,
            pty: None,
            winsize: None,
            clients: Vec::new(),
            sinks: Vec::new(),
            sources: Vec::new(),
            create: None,
            start_held: false,
            start_held_until: None,
            start: None,
            started: false,
            init: None,
            init_reaped: false,
            orphans: HashMap::new(),
            pending_signals: Vec::new(),
            exit: None,
            drain_deadline: None,
            child_stdio: None,
            opts,
        };
        if shim.opts.tty {
            let path = shim.opts.dir.join(CONSOLE_SOCKET);
            shim.console = Some(bind(&path)?);
            let w = shim
                .runtime_out_w
                .as_ref()
                .expect("just made")
                .try_clone()?;
            shim.child_stdio = Some([None, Some(w.try_clone()?), Some(w)]);
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            set_nonblocking(out_r.as_fd())?;
            set_nonblocking(err_r.as_fd())?;
            shim.outputs = [Some(out_r), Some(err_r)];
            let stdin = if shim.opts.stdin {
                let (in_r, in_w) = pipe()?;
                set_nonblocking(in_w.as_fd())?;
                shim.stdin_w = Some(in_w);
                Some(in_r)
            } else {
                None
            };
            shim.child_stdio = Some([stdin, Some(out_w), Some(err_w)]);
        }
        Ok(shim)
    }

    fn runtime_cmd(&self, verb: &str) -> Command {
        let mut cmd = Command::new(&self.opts.runtime);
        cmd.arg("--root").arg(&self.opts.runtime_root).arg(verb);
        cmd
    }

    fn run(mut self) -> i32 {
        if let Err(e) = self.spawn_create() {
            let code = if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            self.runtime_failed(
                format!(
                    "cannot run the runtime {}: {e}",
                    self.opts.runtime.display()
                ),
                code,
            );
        }
        while !self.done() {
            if let Err(e) = self.poll_once() {
                eprintln!("berth-shim: poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.finish();
        0
    }

    fn spawn_create(&mut self) -> io::Result<()> {
        let [stdin, stdout, stderr] = self.child_stdio.take().expect("stdio prepared in setup");
        if self.opts.builtin {
            self.create_builtin([stdin, stdout, stderr]);
            return Ok(());
        }
        let stdio = |fd: Option<OwnedFd>| fd.map(Stdio::from).unwrap_or_else(Stdio::null);
        let (stdin, stdout, stderr) = (stdio(stdin), stdio(stdout), stdio(stderr));
        let mut cmd = self.runtime_cmd("create");
        cmd.arg("--bundle")
            .arg(&self.opts.bundle)
            .arg("--pid-file")
            .arg(self.opts.dir.join(INIT_PID_FILE));
        if self.opts.tty {
            let pid = std::process::id().to_string();
            let (addr, dir) = super::short_path(&self.opts.dir.join(CONSOLE_SOCKET), &pid)?;
            self.console_dir = dir;
            cmd.arg("--console-socket").arg(addr);
        }
        let child = cmd
            .arg(&self.opts.id)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        self.create = Some(child.id() as i32);
        // `cmd` and `child` dropped here: our copies of the container's ends
        // of the pipes are closed, so EOF comes when the container's are.
        Ok(())
    }

    /// `create` through the runtime library, in this process: a few ms
    /// sooner than running `berth-runtime create` (no exec of the runtime,
    /// and no copy of it when berthd handed down a sealed one).
    fn create_builtin(&mut self, [stdin, stdout, stderr]: [Option<OwnedFd>; 3]) {
        use crate::runtime::{Container, CreateOptions};
        // A console socket path may be too long for sun_path; the runtime
        // connects from this very process, so /proc/self/fd/N/... works.
        let console = if self.opts.tty {
            match super::short_path(&self.opts.dir.join(CONSOLE_SOCKET), "self") {
                Ok(c) => Some(c),
                Err(e) => {
                    return self.runtime_failed(format!("the console socket: {e}"), 126);
                }
            }
        } else {
            None
        };
        let created = Container::create(CreateOptions {
            id: self.opts.id.clone(),
            bundle: self.opts.bundle.clone(),
            state_root: self.opts.runtime_root.clone(),
            pid_file: Some(self.opts.dir.join(INIT_PID_FILE)),
            console_socket: console.as_ref().map(|(addr, _)| addr.clone()),
            stdin,
            stdout,
            stderr,
            runtime_exe: Some(self.opts.runtime.clone()),
            sealed_exe: self
                .opts
                .sealed_runtime
                .as_ref()
                .and_then(|fd| fd.try_clone().ok()),
        });
        drop(console);
        // The init (a child of ours until it forked the container) was
        // reaped by `create`; the container's pid 1 is ours to reap now.
        match created {
            Ok(c) => {
                self.runtime_msgs.clear();
                self.created(c.pid());
            }
            Err(e) => self.runtime_failed(e.to_string(), e.exit_code()),
        }
    }

    fn spawn_start(&mut self) -> io::Result<()> {
        if self.opts.builtin {
            let started = crate::runtime::Container::load(&self.opts.runtime_root, &self.opts.id)
                .and_then(|c| c.start());
            match started {
                Ok(()) => self.started = true,
                Err(e) if self.exit.is_none() => self.runtime_failed(e.to_string(), e.exit_code()),
                Err(_) => {}
            }
            return Ok(());
        }
        let w = self.runtime_out_w.take().expect("start is spawned once");
        let child = self
            .runtime_cmd("start")
            .arg(&self.opts.id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w.try_clone()?))
            .stderr(Stdio::from(w))
            .spawn()?;
        self.start = Some(child.id() as i32);
        Ok(())
    }

    fn done(&self) -> bool {
        if self.exit.is_none() || self.create.is_some() || self.start.is_some() {
            return false;
        }
        let drained = self.outputs.iter().all(Option::is_none)
            && self.sinks.iter().all(|s| s.dead || s.buf.is_empty());
        drained || self.drain_deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn poll_once(&mut self) -> io::Result<()> {
        let mut toks = Vec::new();
        let mut pfds = Vec::new();
        let r = PollFlags::IN;
        pfds.push(PollFd::new(&self.sigfd, r));
        toks.push(Tok::Signal);
        pfds.push(PollFd::new(&self.listener, r));
        toks.push(Tok::Listener);
        for (i, o) in self.outputs.iter().enumerate() {
            if let Some(fd) = o {
                pfds.push(PollFd::new(fd, r));
                toks.push(Tok::Output(i));
            }
        }
        if let Some(fd) = &self.runtime_out {
            pfds.push(PollFd::new(fd, r));
            toks.push(Tok::RuntimeOut);
        }
        if let Some(c) = &self.console {
            pfds.push(PollFd::new(c, r));
            toks.push(Tok::Console);
        }
        if let Some(fd) = &self.stdin_w {
            if !self.stdin_buf.is_empty() {
                pfds.push(PollFd::new(fd, PollFlags::OUT));
                toks.push(Tok::StdinW);
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            let mut f = PollFlags::empty();
            if !c.read_closed {
                f |= PollFlags::IN;
            }
            if !c.wbuf.is_empty() {
                f |= PollFlags::OUT;
            }
            pfds.push(PollFd::new(&c.sock, f));
            toks.push(Tok::Client(i));
        }
        for (i, s) in self.sinks.iter().enumerate() {
            if !s.buf.is_empty() {
                pfds.push(PollFd::new(&s.fd, PollFlags::OUT));
                toks.push(Tok::Sink(i));
            }
        }
        if self.stdin_w.is_some() && self.stdin_buf.len() < STDIN_LIMIT {
            for (i, s) in self.sources.iter().enumerate() {
                pfds.push(PollFd::new(&s.fd, r));
                toks.push(Tok::Source(i));
            }
        }
        let deadline = match (self.drain_deadline, self.start_held_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::event::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        match rustix::event::poll(&mut pfds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut events: Vec<(Tok, PollFlags)> = toks
            .into_iter()
            .zip(pfds.iter().map(PollFd::revents))
            .filter(|(_, ev)| !ev.is_empty())
            .collect();
        drop(pfds);
        // Output before signals, so the runtime's messages are in hand when
        // its exit is handled.
        events.sort_by_key(|(t, _)| matches!(t, Tok::Signal));
        for (tok, ev) in events {
            self.handle(tok, ev);
        }
        if self.start_held && self.start_held_until.is_some_and(|t| Instant::now() >= t) {
            eprintln!("berth-shim: no client attached in time; starting the container detached");
            self.start_now();
        }
        self.settle();
        Ok(())
    }

    fn handle(&mut self, tok: Tok, ev: PollFlags) {
        match tok {
            Tok::Signal => self.signals(),
            Tok::Listener => self.accept(),
            Tok::Output(i) => self.read_output(i),
            Tok::RuntimeOut => self.read_runtime_out(),
            Tok::Console => self.accept_console(),
            Tok::StdinW => self.flush_stdin(),
            Tok::Client(i) => {
                if ev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                    self.read_client(i);
                }
                if ev.contains(PollFlags::OUT) {
                    self.flush_client(i);
                }
            }
            Tok::Sink(i) => {
                if ev.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                    self.sinks[i].dead = true;
                } else {
                    self.flush_sink(i);
                }
            }
            Tok::Source(i) => self.read_source(i),
        }
    }

    /// Housekeeping after a round of events: drop what died, close the
    /// container's stdin once its input ended and was delivered.
    fn settle(&mut self) {
        self.clients
            .retain(|c| !(c.dead || c.read_closed && !c.waiting && c.wbuf.is_empty()));
        self.sinks.retain(|s| !s.dead);
        self.sources.retain(|s| !s.dead);
        if self.stdin_eof && self.stdin_buf.is_empty() && self.stdin_w.is_some() {
            self.stdin_w = None;
            self.sources.clear();
        }
    }

    // ---- container output ------------------------------------------------

    fn read_output(&mut self, i: usize) {
        let mut buf = vec![0u8; READ_CHUNK];
        for _ in 0..4 {
            let Some(fd) = &self.outputs[i] else { return };
            match read_some(fd.as_fd(), &mut buf) {
                Ok(None) => return,
                Ok(Some(0)) | Err(_) => {
                    self.outputs[i] = None;
                    return;
                }
                Ok(Some(n)) => {
                    let stream = if i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    self.output(stream, &buf[..n]);
                }
            }
        }
    }

    fn output(&mut self, stream: Stream, data: &[u8]) {
        // In non-tty mode `runtime create` reports errors on the
        // container's stderr: keep them for exit.json too.
        if !self.opts.tty && stream == Stream::Stderr && self.create.is_some() {
            self.keep_runtime_msg(data);
        }
        if let Err(e) = self.log.write(stream, data) {
            if !self.log_failed {
                eprintln!(
                    "berth-shim: writing the log {}: {e}",
                    self.opts.log.display()
                );
                self.log_failed = true;
            }
        }
        for s in self
            .sinks
            .iter_mut()
            .filter(|s| s.stream == stream && !s.dead)
        {
            if s.buf.is_empty() {
                match write_some(s.fd.as_fd(), s.socket, data) {
                    Ok(n) => s.buf.extend_from_slice(&data[n..]),
                    Err(_) => s.dead = true,
                }
            } else {
                s.buf.extend_from_slice(data);
            }
            if s.buf.len() > SINK_LIMIT {
                s.dead = true;
            }
        }
    }

    fn flush_sink(&mut self, i: usize) {
        let s = &mut self.sinks[i];
        match write_some(s.fd.as_fd(), s.socket, &s.buf) {
            Ok(n) => {
                s.buf.drain(..n);
            }
            Err(_) => s.dead = true,
        }
    }

    fn read_runtime_out(&mut self) {
        let mut buf = [0u8; 4096];
        let Some(fd) = &self.runtime_out else { return };
        match read_some(fd.as_fd(), &mut buf) {
            Ok(None) => {}
            Ok(Some(0)) | Err(_) => self.runtime_out = None,
            Ok(Some(n)) => {
                let data = buf[..n].to_vec();
                eprint!("berth-shim: runtime: {}", String::from_utf8_lossy(&data));
                self.keep_runtime_msg(&data);
            }
        }
    }

    fn keep_runtime_msg(&mut self, data: &[u8]) {
        self.runtime_msgs.extend_from_slice(data);
        if self.runtime_msgs.len() > RUNTIME_MSG_CAP {
            let cut = self.runtime_msgs.len() - RUNTIME_MSG_CAP;
            self.runtime_msgs.drain(..cut);
        }
    }

    /// Reads whatever is already in the pipes, without waiting.
    fn drain_now(&mut self) {
        if !self.opts.tty && self.outputs[1].is_some() {
            self.read_output(1);
        }
        for _ in 0..4 {
            if self.runtime_out.is_none() {
                break;
            }
            self.read_runtime_out();
        }
    }

    // ---- tty ---------------------------------------------------------------

    fn accept_console(&mut self) {
        let Some(l) = &self.console else { return };
        let Ok((conn, _)) = l.accept() else { return };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut fds = Vec::new();
        let mut buf = [0u8; 4096];
        let got = recv_with_fds(conn.as_fd(), &mut buf, &mut fds, RecvFlags::empty());
        let Some(master) = fds.into_iter().next() else {
            eprintln!("berth-shim: the console socket got no pty master ({got:?})");
            return;
        };
        self.console = None;
        self.console_dir = None;
        let _ = std::fs::remove_file(self.opts.dir.join(CONSOLE_SOCKET));
        let _ = set_nonblocking(master.as_fd());
        if let Some((rows, cols)) = self.winsize {
            let _ = set_winsize(master.as_fd(), rows, cols);
        }
        if self.opts.stdin {
            self.stdin_w = master.try_clone().ok();
        }
        self.pty = master.try_clone().ok();
        self.outputs[0] = Some(master);
    }

    // ---- stdin ---------------------------------------------------------------

    fn read_source(&mut self, i: usize) {
        let mut buf = vec![0u8; READ_CHUNK];
        match read_some(self.sources[i].fd.as_fd(), &mut buf) {
            Ok(None) => {}
            Ok(Some(0)) => {
                self.sources[i].dead = true;
                // A pty is not closed on the client's EOF: that would hang
                // up the terminal.
                if !self.opts.tty {
                    self.stdin_eof = true;
                }
            }
            Err(_) => self.sources[i].dead = true,
            Ok(Some(n)) => {
                self.stdin_buf.extend_from_slice(&buf[..n]);
                self.flush_stdin();
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin_w else {
            self.stdin_buf.clear();
            return;
        };
        match write_some(fd.as_fd(), false, &self.stdin_buf) {
            Ok(n) => {
                self.stdin_buf.drain(..n);
            }
            Err(_) => {
                // The container closed its stdin.
                self.stdin_w = None;
                self.stdin_buf.clear();
                self.sources.clear();
            }
        }
    }

    // ---- clients ---------------------------------------------------------------

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            sock,
                            rbuf: Vec::new(),
                            fds: Vec::new(),
                            wbuf: Vec::new(),
                            waiting: false,
                            read_closed: false,
                            dead: false,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 4096];
        let c = &mut self.clients[i];
        match recv_with_fds(c.sock.as_fd(), &mut buf, &mut c.fds, RecvFlags::DONTWAIT) {
            Ok(0) => c.read_closed = true,
            Ok(n) => c.rbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                return;
            }
        }
        if c.rbuf.len() > 64 * 1024 {
            c.dead = true;
            return;
        }
        while let Some(pos) = self.clients[i].rbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.clients[i].rbuf.drain(..=pos).collect();
            self.request(i, &line);
        }
    }

    fn reply(&mut self, i: usize, body: &impl serde::Serialize) {
        let c = &mut self.clients[i];
        if serde_json::to_writer(&mut c.wbuf, body).is_ok() {
            c.wbuf.push(b'\n');
        }
        self.flush_client(i);
    }

    fn reply_ok(&mut self, i: usize) {
        self.reply(
            i,
            &Reply {
                ok: true,
                message: None,
            },
        );
    }

    fn reply_err(&mut self, i: usize, message: impl Into<String>) {
        self.reply(
            i,
            &Reply {
                ok: false,
                message: Some(message.into()),
            },
        );
    }

    fn flush_client(&mut self, i: usize) {
        let c = &mut self.clients[i];
        match write_some(c.sock.as_fd(), true, &c.wbuf) {
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(_) => c.dead = true,
        }
    }

    fn request(&mut self, i: usize, line: &[u8]) {
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return self.reply_err(i, format!("bad request: {e}")),
        };
        match req {
            Request::Attach { stdin } => self.attach(i, stdin),
            Request::Wait => self.clients[i].waiting = true,
            Request::State => {
                let state = self.state();
                self.reply(i, &state);
            }
            Request::Resize { rows, cols } => {
                if !self.opts.tty {
                    return self.reply_err(i, "the container has no terminal to resize");
                }
                self.winsize = Some((rows, cols));
                match self
                    .pty
                    .as_ref()
                    .map(|p| set_winsize(p.as_fd(), rows, cols))
                {
                    Some(Err(e)) => self.reply_err(i, format!("resizing the terminal: {e}")),
                    _ => self.reply_ok(i),
                }
            }
            Request::Kill { signal } => match self.kill(signal) {
                Ok(()) => self.reply_ok(i),
                Err(m) => self.reply_err(i, m),
            },
        }
    }

    fn attach(&mut self, i: usize, stdin: bool) {
        let fds = std::mem::take(&mut self.clients[i].fds);
        let want = if stdin { 3 } else { 2 };
        if fds.len() != want {
            return self.reply_err(
                i,
                format!("attach needs {want} file descriptors, got {}", fds.len()),
            );
        }
        let mut fds = fds.into_iter();
        let (out, err) = (fds.next().expect("counted"), fds.next().expect("counted"));
        let (fd, socket) = own_output(out);
        self.sinks.push(Sink {
            fd,
            socket,
            stream: Stream::Stdout,
            buf: Vec::new(),
            dead: false,
        });
        // In tty mode everything is stdout; the stderr fd is not needed.
        if !self.opts.tty {
            let (fd, socket) = own_output(err);
            self.sinks.push(Sink {
                fd,
                socket,
                stream: Stream::Stderr,
                buf: Vec::new(),
                dead: false,
            });
        }
        if let Some(fd) = fds.next() {
            let accepts = self.opts.stdin
                && !self.stdin_eof
                && (self.stdin_w.is_some() || self.pty.is_none() && self.opts.tty);
            if accepts {
                self.sources.push(Source { fd, dead: false });
            }
        }
        self.reply_ok(i);
        if self.start_held {
            self.start_now();
        }
    }

    fn state(&self) -> ShimState {
        let status = if self.exit.is_some() {
            Status::Exited
        } else if self.started {
            Status::Running
        } else {
            Status::Creating
        };
        ShimState {
            pid: self.init,
            status,
            exit: self.exit.clone(),
        }
    }

    fn kill(&mut self, signal: i32) -> Result<(), String> {
        if self.exit.is_some() {
            return Err("the container is not running".into());
        }
        match self.init {
            Some(pid) => {
                send_signal(pid, signal).map_err(|e| format!("signal {signal} to pid {pid}: {e}"))
            }
            None => {
                self.pending_signals.push(signal);
                Ok(())
            }
        }
    }

    // ---- signals and children -----------------------------------------------

    fn signals(&mut self) {
        let mut reap = false;
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        while let Ok(Some(n)) = read_some(self.sigfd.as_fd(), &mut info) {
            if n < info.len() {
                break;
            }
            // ssi_signo is the first u32 of signalfd_siginfo.
            let signo = u32::from_ne_bytes(info[..4].try_into().expect("4 bytes")) as i32;
            match signo {
                libc::SIGCHLD => reap = true,
                libc::SIGTERM | libc::SIGINT => {
                    // Forward, and stay until the container is gone.
                    let _ = self.kill(libc::SIGTERM);
                }
                _ => {}
            }
        }
        if reap {
            self.reap();
        }
    }

    fn reap(&mut self) {
        // wait(), not waitpid(None): the latter is pid 0, this process
        // group only, and the container is in a session of its own. __WALL
        // also reaps children cloned with an exit signal other than SIGCHLD.
        let opts = WaitOptions::NOHANG | WaitOptions::from_bits_retain(libc::__WALL as u32);
        while let Ok(Some((pid, status))) = rustix::process::wait(opts) {
            let pid = pid.as_raw_nonzero().get();
            if self.create == Some(pid) {
                self.create = None;
                self.create_done(status);
            } else if self.start == Some(pid) {
                self.start = None;
                self.start_done(status);
            } else if self.init == Some(pid) {
                self.init_exited(status);
            } else {
                self.orphans.insert(pid, status);
            }
        }
    }

    fn create_done(&mut self, status: WaitStatus) {
        self.drain_now();
        if status.exit_status() != Some(0) {
            let (code, message) = self.runtime_error("create", status);
            return self.runtime_failed(message, code);
        }
        self.runtime_msgs.clear();
        let pid = std::fs::read_to_string(self.opts.dir.join(INIT_PID_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let Some(pid) = pid else {
            return self.runtime_failed(
                "the runtime created the container but wrote no readable pid file".into(),
                128,
            );
        };
        self.created(pid);
    }

    /// The container exists, its pid 1 is `pid`: start it (or not).
    fn created(&mut self, pid: i32) {
        self.init = Some(pid);
        if let Some(st) = self.orphans.remove(&pid) {
            return self.init_exited(st);
        }
        // A signal asked for before the container ran: it never runs.
        if let Some(&sig) = self.pending_signals.first() {
            self.set_exit(128 + sig, Some(sig), None);
            let _ = send_signal(pid, libc::SIGKILL);
            return;
        }
        // With --wait-attach the container's first output must reach the
        // client that started it: hold `start` until it has attached.
        if self.opts.wait_attach && self.sinks.is_empty() {
            self.start_held = true;
            self.start_held_until =
                Some(Instant::now() + Duration::from_secs(self.opts.attach_grace_secs));
            return;
        }
        self.start_now();
    }

    fn start_now(&mut self) {
        self.start_held = false;
        self.start_held_until = None;
        if let Err(e) = self.spawn_start() {
            self.runtime_failed(
                format!(
                    "cannot run the runtime {}: {e}",
                    self.opts.runtime.display()
                ),
                126,
            );
        }
    }

    fn start_done(&mut self, status: WaitStatus) {
        self.drain_now();
        if status.exit_status() == Some(0) {
            self.started = true;
            self.runtime_msgs.clear();
            return;
        }
        if self.exit.is_none() {
            let (code, message) = self.runtime_error("start", status);
            self.runtime_failed(message, code);
        }
    }

    fn init_exited(&mut self, status: WaitStatus) {
        self.init_reaped = true;
        let (code, signal) = exit_code(status);
        if self.exit.is_none() {
            self.set_exit(code, signal, None);
        }
    }

    fn set_exit(&mut self, exit_code: i32, signal: Option<i32>, error: Option<String>) {
        self.exit = Some(ExitInfo {
            exit_code,
            signal,
            finished_at: time::now_rfc3339(),
            oom_killed: false,
            error,
        });
        self.drain_deadline = Some(Instant::now() + DRAIN_GRACE);
    }

    /// The runtime could not create or start the container: record why and
    /// make sure nothing of it keeps running.
    fn runtime_failed(&mut self, message: String, code: i32) {
        eprintln!("berth-shim: {message}");
        if self.exit.is_none() {
            self.set_exit(code, None, Some(message));
        }
        if let (Some(pid), false) = (self.init, self.init_reaped) {
            let _ = send_signal(pid, libc::SIGKILL);
        }
    }

    /// The message and exit code for a failed runtime command.
    fn runtime_error(&mut self, verb: &str, status: WaitStatus) -> (i32, String) {
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.runtime_msgs)).into_owned();
        let message = runtime_message(&text)
            .unwrap_or_else(|| format!("the runtime's {verb} failed ({})", describe(status)));
        let lower = message.to_lowercase();
        let code = if lower.contains("not found") || lower.contains("no such file or directory") {
            127
        } else if lower.contains("permission denied") {
            126
        } else {
            status.exit_status().filter(|&c| c != 0).unwrap_or(128)
        };
        (code, message)
    }

    // ---- the end -------------------------------------------------------------

    fn finish(mut self) {
        if let Err(e) = self.log.flush_partial() {
            eprintln!("berth-shim: writing the log: {e}");
        }
        let mut exit = self
            .exit
            .clone()
            .expect("finish runs once the exit is known");
        if self.init.is_some() {
            exit.oom_killed = oom::oom_killed(&self.opts.bundle, &self.opts.id);
        }
        self.exit = Some(exit.clone());
        let exit_json = serde_json::to_vec(&exit).expect("plain struct");
        if let Err(e) = super::write_atomic(&self.opts.dir.join(EXIT_FILE), &exit_json) {
            eprintln!("berth-shim: writing {EXIT_FILE}: {e}");
        }
        if let Err(e) = self.runtime_delete() {
            eprintln!("berth-shim: runtime delete: {e}");
        }
        // Requests that came in since the last poll (a `wait` among them)
        // still get their answer.
        self.accept();
        for i in 0..self.clients.len() {
            self.read_client(i);
        }
        for i in 0..self.clients.len() {
            if self.clients[i].waiting && !self.clients[i].dead {
                let _ = self.clients[i].sock.set_nonblocking(false);
                let _ = self.clients[i]
                    .sock
                    .set_write_timeout(Some(Duration::from_secs(1)));
                let c = &mut self.clients[i];
                let mut msg = std::mem::take(&mut c.wbuf);
                msg.extend_from_slice(&exit_json);
                msg.push(b'\n');
                let _ = c.sock.write_all(&msg);
            }
        }
        // Closing the attached fds tells attached clients the output ended.
        self.sinks.clear();
        self.sources.clear();
        let _ = std::fs::remove_file(self.opts.dir.join(SOCKET));
        let _ = std::fs::remove_file(self.opts.dir.join(CONSOLE_SOCKET));
    }
}

impl Shim {
    /// `delete --force`: the container's runtime state and cgroup go.
    fn runtime_delete(&self) -> Result<(), String> {
        if self.opts.builtin {
            return match crate::runtime::Container::load(&self.opts.runtime_root, &self.opts.id) {
                Ok(c) => c.delete(true).map_err(|e| e.to_string()),
                // Never created (or already deleted): nothing to do.
                Err(crate::runtime::Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
        }
        let deleted = self
            .runtime_cmd("delete")
            .arg("--force")
            .arg(&self.opts.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        deleted
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|s| check(*s))
    }
}

fn check(s: ExitStatus) -> Result<(), String> {
    if s.success() {
        Ok(())
    } else {
        Err(s.to_string())
    }
}

fn describe(status: WaitStatus) -> String {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

pub(crate) fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws)?;
    Ok(())
}

/// The gist of what a runtime printed: runc/crun write logrus-style
/// `time="…" level=error msg="…"` lines; otherwise the last line.
fn runtime_message(text: &str) -> Option<String> {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    if let Some(start) = line.find("msg=\"") {
        let rest = &line[start + 5..];
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => break,
                c => out.push(c),
            }
        }
        return Some(out);
    }
    Some(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_messages() {
        let runc = "time=\"2024-01-01T00:00:00Z\" level=error msg=\"runc create failed: unable to start container process: exec: \\\"nope\\\": executable file not found in $PATH\"\n";
        assert_eq!(
            runtime_message(runc).unwrap(),
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(runtime_message("first\nsecond\n\n").unwrap(), "second");
        assert_eq!(runtime_message("  \n"), None);
    }
}
