//! `exec_in`: one more process inside a running container.

use super::channel::{ExecConfig, FromInit, ToInit};
use super::container::{spawn_init, Container, ExecOptions, InitIo};
use super::state::Status;
use super::{spec, Context, Error, Result};

/// Run `opts.process` inside `container`: a sealed init joins all of its
/// namespaces (user first, mount last) and its cgroup, forks into the pid
/// namespace, enters the working directory safely, applies the same
/// [`super::security::finalize`] with the container's seccomp profile and
/// execs. Returns the new process's host pid once it has exec'd (or failed
/// to); the caller reaps it, being its parent's subreaper (see
/// `berth-runtime exec`), or watches it.
pub fn exec_in(container: &Container, opts: ExecOptions) -> Result<i32> {
    container.require("exec", "running", &[Status::Running])?;
    spec::validate_process(&opts.process)?;
    let seccomp = spec::load(&container.state.bundle)
        .ok()
        .and_then(|s| s.linux().as_ref().and_then(|l| l.seccomp().clone()));
    let (mut child, mut ch) = spawn_init(
        opts.runtime_exe.as_deref(),
        None,
        InitIo {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            console_socket: opts.console_socket.clone(),
        },
    )?;
    let stage1 = child.id() as i32;
    join_cgroups(container.pid(), stage1)?;
    let mut process = opts.process;
    if container.state.devices_unenforced {
        super::container_create::without_mknod(&mut process);
    }
    let config = ExecConfig {
        pid: container.pid(),
        process,
        seccomp,
        console: opts.console_socket.is_some(),
    };
    let talk = (|| -> Result<i32> {
        ch.send(&ToInit::Exec(Box::new(config)))
            .ctx(|| "sending the process to the init".into())?;
        // Stage 1 reports the pid after its fork and the child reports
        // ready on the same channel: either may come first (the child's
        // path to ready is short here, and a busy machine showed it first).
        let (mut pid, mut ready) = (None, false);
        loop {
            if let (Some(p), true) = (pid, ready) {
                return Ok(p);
            }
            match ch
                .recv::<FromInit>()
                .map_err(|e| Error::Init(format!("the init exited without saying why ({e})")))?
            {
                FromInit::Pid(p) => pid = Some(p),
                FromInit::Ready => ready = true,
                FromInit::NotFound(c) => return Err(Error::CommandNotFound(c)),
                FromInit::NotExecutable(c) => return Err(Error::NotExecutable(c)),
                FromInit::Failed(m) => return Err(Error::Init(m)),
                FromInit::WriteMaps => {
                    return Err(Error::Init("unexpected request for id maps".into()))
                }
            }
        }
    })();
    if talk.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    talk
}

/// Put `pid` into every cgroup the container's process is in (as
/// /proc/<container>/cgroup names them, under /sys/fs/cgroup), v1 and v2.
///
/// A stopgap until the cgroups manager offers "join the container's
/// cgroup"; hierarchies that are not mounted where expected are skipped.
fn join_cgroups(container_pid: i32, pid: i32) -> Result<()> {
    let path = format!("/proc/{container_pid}/cgroup");
    let text = std::fs::read_to_string(&path).ctx(|| format!("reading {path}"))?;
    let base = std::path::Path::new("/sys/fs/cgroup");
    let unified = rustix::fs::statfs(base)
        .map(|s| s.f_type as u64 == libc::CGROUP2_SUPER_MAGIC as u64)
        .unwrap_or(false);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(cg)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let rel = cg.trim_start_matches('/');
        let dir = match (id, unified) {
            ("0", true) => base.join(rel),
            ("0", false) => base.join("unified").join(rel),
            _ => base
                .join(ctrls.strip_prefix("name=").unwrap_or(ctrls))
                .join(rel),
        };
        let procs = dir.join("cgroup.procs");
        if !procs.exists() {
            continue;
        }
        std::fs::write(&procs, pid.to_string())
            .ctx(|| format!("joining cgroup {}", dir.display()))?;
    }
    Ok(())
}
