//! The init: the process that becomes the container.
//!
//! The runtime spawns a sealed copy of its own binary ([`super::exe`]) with
//! the argument [`INIT_ARG`]; every binary that uses this library to create
//! containers calls [`run_init_if_requested`] first thing in `main`. The
//! init reads its orders from fd 3 ([`super::channel`]) and runs in two
//! stages, because a new pid namespace only applies to children:
//!
//! * stage 1 takes the traverse group, if the spec names one (see
//!   [`super::namespaces::TRAVERSE_GID_ANNOTATION`]), enters the namespaces
//!   (user first, its maps written by the runtime), forks, reports the
//!   child's pid and exits;
//! * stage 2 is the container's pid 1: it builds the root file system,
//!   pivots into it, enters the working directory safely, finds the command,
//!   reports ready, then blocks opening `exec.fifo` until `start`, applies
//!   [`security::finalize`] and execs the command.
//!
//! `exec_in` uses the same binary: stage 1 joins a running container's
//! namespaces, and its child enters the working directory and execs.

use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;
use rustix::fs::{Mode, OFlags};

use super::channel::{Channel, CreateConfig, ExecConfig, FromInit, ToInit, CONSOLE_FD, SYNC_FD};
use super::namespaces::{Plan, JOIN_ORDER};
use super::rootfs::{self, CgroupLayout};
use super::syscall::{Create, Kind, LinuxSyscall, MountArgs, Syscall};
use super::{security, spec, Context, Error, Result};

/// The argument that turns a runtime binary into a container init.
pub const INIT_ARG: &str = "__berth-runtime-init";

/// If this process was started as a container init, be one and never
/// return. Call it first thing in `main` of any binary that creates
/// containers through this library (it re-executes itself as the init).
pub fn run_init_if_requested() {
    if std::env::args_os().nth(1).as_deref() != Some(OsStr::new(INIT_ARG)) {
        return;
    }
    // Nothing of the runtime's but stdio, the socket and the console
    // socket. First, before `Channel::new` duplicates the socket: the
    // duplicate takes the lowest free fd, which is 5 when a console socket
    // sits at 4, and must not be closed under the channel.
    close_from(CONSOLE_FD as u32 + 1, false);
    // SAFETY: the runtime put our end of the socket at fd 3 for us.
    let sock = unsafe { UnixStream::from_raw_fd(SYNC_FD) };
    let code = match Channel::new(sock) {
        Ok(mut ch) => match stage1(&mut ch) {
            Ok(()) => 0,
            Err(e) => report(&mut ch, e),
        },
        Err(e) => {
            eprintln!("berth-runtime: init: the runtime's socket is unusable: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Tell the runtime (or, once it stopped listening, stderr) what failed.
fn report(ch: &mut Channel, e: Error) -> i32 {
    let msg = match &e {
        Error::CommandNotFound(c) => FromInit::NotFound(c.clone()),
        Error::NotExecutable(c) => FromInit::NotExecutable(c.clone()),
        e => FromInit::Failed(e.to_string()),
    };
    if ch.send(&msg).is_err() {
        eprintln!("berth-runtime: {e}");
    }
    e.exit_code()
}

fn stage1(ch: &mut Channel) -> Result<()> {
    // Until exec, other processes in the container may not open our
    // /proc/<pid>/ files (exe, fd, mem): CVE-2019-5736 class, second layer.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .ctx(|| "prctl(PR_SET_DUMPABLE, 0)".into())?;
    match ch
        .recv::<ToInit>()
        .ctx(|| "reading the runtime's orders".into())?
    {
        ToInit::Create(c) => create_stage1(ch, *c),
        ToInit::Exec(c) => exec_stage1(ch, *c),
        ToInit::MapsWritten => Err(Error::Init("unexpected message from the runtime".into())),
    }
}

fn create_stage1(ch: &mut Channel, c: CreateConfig) -> Result<()> {
    let sys = LinuxSyscall;
    // Into the container's cgroup first, while still host root and single
    // threaded, so everything forked from here on is born inside.
    super::cgroups::join_self(&c.cgroup_tasks)
        .map_err(|e| Error::Init(format!("entering the container's cgroup: {e}")))?;
    let plan = Plan::from_spec(&c.spec)?;
    if let Some(gid) = c.traverse_gid {
        // Still host root: the group that lets it pass berthd's directories
        // from inside its user namespace, its only one until
        // `security::finalize` sets the container's (CVE-2021-41091 class:
        // those directories are closed to everyone else).
        // SAFETY: a one-element array that outlives the call.
        if unsafe { libc::setgroups(1, &gid) } != 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("taking group {gid} to reach the container's files"));
        }
    }
    // Open every namespace to join before entering any of them.
    let mut joins = Vec::new();
    for (flag, path) in &plan.join {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(std::io::Error::from)
            .ctx(|| format!("opening namespace {}", path.display()))?;
        joins.push((*flag, fd));
    }
    if plan.new_user {
        sys.unshare(libc::CLONE_NEWUSER)
            .ctx(|| "creating the user namespace".into())?;
        ch.send(&FromInit::WriteMaps)
            .ctx(|| "asking for uid/gid maps".into())?;
        match ch
            .recv::<ToInit>()
            .ctx(|| "waiting for uid/gid maps".into())?
        {
            ToInit::MapsWritten => {}
            _ => {
                return Err(Error::Init(
                    "unexpected message while waiting for id maps".into(),
                ))
            }
        }
        become_root()?;
    }
    for (flag, fd) in &joins {
        sys.setns(fd, *flag)
            .ctx(|| format!("joining namespace {flag:#x}"))?;
        if *flag == libc::CLONE_NEWUSER {
            become_root()?;
        }
    }
    sys.unshare(plan.unshare)
        .ctx(|| format!("unsharing namespaces {:#x}", plan.unshare))?;
    fork_into(ch, move |ch| container_init(ch, c, plan))
}

fn exec_stage1(ch: &mut Channel, c: ExecConfig) -> Result<()> {
    let sys = LinuxSyscall;
    let mut fds = Vec::new();
    for (name, flag) in JOIN_ORDER {
        let theirs = format!("/proc/{}/ns/{name}", c.pid);
        let ours = format!("/proc/self/ns/{name}");
        let ino = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        let their_ino =
            ino(&theirs).ctx(|| format!("reading {theirs} (is the container running?)"))?;
        if ino(&ours).ok() == Some(their_ino) {
            continue;
        }
        let fd = rustix::fs::open(&theirs, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(std::io::Error::from)
            .ctx(|| format!("opening {theirs}"))?;
        fds.push((flag, name, fd));
    }
    for (flag, name, fd) in &fds {
        sys.setns(fd, *flag)
            .ctx(|| format!("joining the container's {name} namespace"))?;
        if *flag == libc::CLONE_NEWUSER {
            become_root()?;
        }
    }
    drop(fds);
    fork_into(ch, move |ch| exec_child(ch, c))
}

/// Fork; the child runs `child` (which only returns errors), the parent
/// reports the child's pid and returns.
fn fork_into(
    ch: &mut Channel,
    child: impl FnOnce(&mut Channel) -> Result<Infallible>,
) -> Result<()> {
    // SAFETY: the init is single-threaded, so the child may do anything.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).ctx(|| "fork".into()),
        0 => {
            let Err(e) = child(ch);
            std::process::exit(report(ch, e));
        }
        pid => ch
            .send(&FromInit::Pid(pid))
            .ctx(|| "reporting the container's pid".into()),
    }
}

/// uid and gid 0 in the user namespace we just entered.
fn become_root() -> Result<()> {
    // SAFETY: plain syscalls.
    let r = unsafe { libc::setresgid(0, 0, 0) == 0 && libc::setresuid(0, 0, 0) == 0 };
    if !r {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "becoming root in the user namespace (is uid 0 mapped?)".into());
    }
    Ok(())
}

/// Stage 2 of create: the container's pid 1.
fn container_init(ch: &mut Channel, c: CreateConfig, plan: Plan) -> Result<Infallible> {
    let sys = LinuxSyscall;
    rustix::process::setsid().ctx(|| "setsid".into())?;
    // Device nodes and mount points get exactly the modes asked for.
    rustix::process::umask(Mode::empty());
    let spec = &c.spec;
    let process = spec.process().as_ref().expect("validated: process is set");
    // Opened now, while the host's state directory is still visible.
    let fifo = rustix::fs::open(&c.fifo, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)
        .ctx(|| format!("opening {}", c.fifo.display()))?;

    let cfg = rootfs::Config {
        rootfs: c.rootfs.clone(),
        bundle: c.bundle.clone(),
        new_netns: plan.unshare & libc::CLONE_NEWNET != 0,
        userns: plan.has_user(),
        cgroupns: plan.has(libc::CLONE_NEWCGROUP),
        cgroups: CgroupLayout::detect(),
    };
    rootfs::prepare(&sys, spec, &cfg)?;
    rootfs::pivot(&sys, spec, &cfg.rootfs)?;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys.sethostname(h)
            .ctx(|| format!("setting the hostname to {h:?}"))?;
    }
    // The working directory exists before the root may turn read-only.
    sys.resolve(Path::new("/"), process.cwd(), Create::Dir)
        .ctx(|| format!("creating the working directory {}", process.cwd().display()))?;
    if process.terminal() == Some(true) {
        if !c.console {
            return Err(Error::InvalidSpec(
                "process.terminal is true but no console socket was given".into(),
            ));
        }
        setup_console(&sys, true)?;
    }
    rootfs::finish(&sys, spec)?;
    let command = prepare_exec(&sys, process)?;
    ch.send(&FromInit::Ready).ctx(|| "reporting ready".into())?;
    ch.close();

    wait_for_start(&fifo)?;
    drop(fifo);
    exec(
        process,
        spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        &command,
    )
}

/// The child of `exec_in`'s stage 1, inside every namespace of the
/// container.
fn exec_child(ch: &mut Channel, c: ExecConfig) -> Result<Infallible> {
    let sys = LinuxSyscall;
    rustix::process::setsid().ctx(|| "setsid".into())?;
    if c.process.terminal() == Some(true) {
        if !c.console {
            return Err(Error::InvalidSpec(
                "process.terminal is true but no console socket was given".into(),
            ));
        }
        setup_console(&sys, false)?;
    }
    let command = prepare_exec(&sys, &c.process)?;
    ch.send(&FromInit::Ready).ctx(|| "reporting ready".into())?;
    ch.close();
    exec(&c.process, c.seccomp.as_ref(), &command)
}

/// Enter the working directory and find the command.
fn prepare_exec<S: Syscall>(sys: &S, process: &Process) -> Result<PathBuf> {
    enter_cwd(sys, process.cwd())?;
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::InvalidSpec("process.args is empty".into()))?;
    find_command(arg0, process.env().as_deref().unwrap_or_default())
}

/// CVE-2024-21626 class: the working directory is resolved inside the
/// container's root with no magic links (so `/proc/self/fd/N` cannot name
/// a leaked host directory), and checked to be under the root afterwards.
pub fn enter_cwd<S: Syscall>(sys: &S, cwd: &Path) -> Result<()> {
    let target = sys.resolve(Path::new("/"), cwd, Create::No).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::EXDEV) {
            Error::Unsafe {
                what: format!("working directory {}", cwd.display()),
                why: "it goes through a magic link such as /proc/self/fd (CVE-2024-21626 class)"
                    .into(),
            }
        } else {
            Error::Io {
                what: format!("opening the working directory {}", cwd.display()),
                source: e,
            }
        }
    })?;
    if target.kind != Kind::Dir {
        return Err(Error::InvalidSpec(format!(
            "the working directory {} is not a directory",
            cwd.display()
        )));
    }
    sys.chdir(&target.path)
        .ctx(|| format!("entering the working directory {}", cwd.display()))?;
    if target.fd.is_some() {
        // getcwd says "(unreachable)" (or fails) for a directory outside
        // our root.
        match std::env::current_dir() {
            Ok(p) if p.is_absolute() => {}
            _ => {
                return Err(Error::Unsafe {
                    what: format!("working directory {}", cwd.display()),
                    why: "it is outside the container's root".into(),
                })
            }
        }
    }
    Ok(())
}

/// Find `cmd` as execve would run it: a name with a slash as is, anything
/// else through `PATH` from the process's environment (runc's rule).
pub fn find_command(cmd: &str, env: &[String]) -> Result<PathBuf> {
    enum Found {
        Yes,
        NotExecutable,
        No,
    }
    let check = |p: &Path| match std::fs::metadata(p) {
        Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => Found::Yes,
        Ok(_) => Found::NotExecutable,
        Err(_) => Found::No,
    };
    if cmd.contains('/') {
        return match check(Path::new(cmd)) {
            Found::Yes => Ok(PathBuf::from(cmd)),
            Found::NotExecutable => Err(Error::NotExecutable(cmd.into())),
            Found::No => Err(Error::CommandNotFound(cmd.into())),
        };
    }
    if cmd.is_empty() {
        return Err(Error::CommandNotFound(cmd.into()));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(spec::DEFAULT_PATH);
    let mut not_executable = false;
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(cmd);
        match check(&candidate) {
            Found::Yes => return Ok(candidate),
            Found::NotExecutable => not_executable = true,
            Found::No => {}
        }
    }
    if not_executable {
        Err(Error::NotExecutable(cmd.into()))
    } else {
        Err(Error::CommandNotFound(cmd.into()))
    }
}

/// Block until `start` opens the FIFO for reading, then tell it we go.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .ctx(|| "opening exec.fifo to wait for start".into())?;
    f.write_all(b"0").ctx(|| "writing to exec.fifo".into())
}

/// A pty whose master goes to the console socket (fd 4) and whose slave
/// becomes our stdio, controlling terminal and (for a new container)
/// `/dev/console`.
fn setup_console<S: Syscall>(sys: &S, dev_console: bool) -> Result<()> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(std::io::Error::from)
            .ctx(|| "opening /dev/ptmx in the container".into())?;
    rustix::pty::unlockpt(&master)
        .map_err(std::io::Error::from)
        .ctx(|| "unlocking the pty".into())?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map_err(std::io::Error::from)
        .ctx(|| "naming the pty".into())?;
    let name = PathBuf::from(OsStr::from_bytes(name.as_bytes()));
    let slave = rustix::fs::open(
        &name,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .ctx(|| format!("opening {}", name.display()))?;
    if dev_console {
        let target = sys
            .resolve(Path::new("/"), Path::new("/dev/console"), Create::File)
            .ctx(|| "creating /dev/console".into())?;
        sys.mount(&MountArgs {
            source: Some(name.clone()),
            target: target.path,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        })
        .ctx(|| format!("binding {} on /dev/console", name.display()))?;
    }
    // SAFETY: the runtime put the console socket at fd 4 for us.
    let sock = unsafe { OwnedFd::from_raw_fd(CONSOLE_FD) };
    super::channel::send_fd(&sock, &master, name.as_os_str().as_bytes())
        .ctx(|| "sending the pty to the console socket".into())?;
    drop(sock);
    drop(master);
    for fd in 0..3 {
        // SAFETY: dup2 onto stdio.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "making the pty our stdio".into());
        }
    }
    rustix::process::ioctl_tiocsctty(&slave)
        .map_err(std::io::Error::from)
        .ctx(|| "making the pty our controlling terminal".into())?;
    Ok(())
}

/// Close (or mark close-on-exec) every fd from `first` up.
fn close_from(first: u32, cloexec: bool) {
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC
    } else {
        0
    };
    // SAFETY: plain syscall; no fd we still use is in the range.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
}

/// Last steps: only fds 0, 1, 2 survive exec; security settings; signals
/// back to defaults (Rust ignores SIGPIPE, and ignored signals survive
/// exec); execve.
fn exec(
    process: &Process,
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    command: &Path,
) -> Result<Infallible> {
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| Error::InvalidSpec("a NUL byte in process args or env".into()))
    };
    let path = cstr(command.as_os_str().as_bytes())?;
    let args = process
        .args()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let env = process
        .env()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|e| cstr(e.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    // CVE-2024-21626 class: no runtime fd reaches the command.
    close_from(3, true);
    // runc's default; finalize applies process.user.umask when it is set.
    rustix::process::umask(Mode::from_raw_mode(0o022));
    security::finalize(process, seccomp)?;
    // SAFETY: resetting dispositions and the mask of this single thread.
    unsafe {
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    let e = std::io::Error::last_os_error();
    let arg0 = process.args().as_deref().unwrap_or_default()[0].clone();
    Err(match e.raw_os_error() {
        Some(libc::ENOENT) => Error::CommandNotFound(arg0),
        Some(libc::EACCES) => Error::NotExecutable(arg0),
        _ => Error::Io {
            what: format!("exec {}", command.display()),
            source: e,
        },
    })
}

/// Wait for `pid` (a child, or an orphan we adopted as subreaper) and turn
/// its end into an exit code: the code, or 128 + the signal.
pub fn wait_exit(pid: i32) -> Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: plain syscall with a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).ctx(|| format!("waiting for process {pid}"));
        }
        if libc::WIFEXITED(status) {
            return Ok(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(128 + libc::WTERMSIG(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn commands_are_found_through_path_with_runc_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = bin.join("data");
        std::fs::write(&data, "x").unwrap();
        let env = vec![format!("PATH=/nonexistent:{}", bin.display())];

        assert_eq!(find_command("tool", &env).unwrap(), tool);
        let e = find_command("nope", &env).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert_eq!(e.to_string(), "exec: nope: not found in the image");
        assert_eq!(find_command("data", &env).unwrap_err().exit_code(), 126);
        assert_eq!(find_command(tool.to_str().unwrap(), &[]).unwrap(), tool);
        assert_eq!(find_command("/no/such", &env).unwrap_err().exit_code(), 127);
    }
}
