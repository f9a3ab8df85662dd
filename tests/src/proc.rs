//! Child processes that cannot outlive the test.
//!
//! A [`ChildGuard`] owns one started process. It ends in one of three ways:
//!
//! 1. the test calls [`ChildGuard::stop`] or [`ChildGuard::kill9`];
//! 2. the guard drops (end of scope, or unwinding from a failed assertion):
//!    SIGTERM, a grace period, then SIGKILL, always by the child's own pid;
//! 3. the test process itself dies (SIGKILL, abort): the kernel sends the
//!    child SIGKILL through `PR_SET_PDEATHSIG`.
//!
//! The parent-death signal fires when the *thread* that forked the child
//! exits, not the process. Test harnesses run every test on its own thread,
//! and a shared fixture started by the first test must survive that thread,
//! so every child is forked by one spawner thread that lives as long as the
//! process.
//!
//! A pid is only signalled while the child is unreaped (`try_wait` says it is
//! still running), so a recycled pid is never hit.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("berth-testkit-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the sender sits in a static.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the test kit's spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` from the long-lived spawner thread with a parent-death
/// signal of SIGKILL.
fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("the test kit's spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the test kit's spawner thread did not answer"))?
}

/// One started process, stopped by its own pid when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    pid: u32,
    own_group: bool,
    grace: Duration,
    child: Mutex<Child>,
}

impl ChildGuard {
    /// Starts `cmd`; `name` is used in errors ("docker-registry", "berthd").
    pub fn spawn(name: &str, cmd: Command) -> Result<Self> {
        Self::spawn_inner(name, cmd, false)
    }

    /// Starts `cmd` as the leader of a new process group, so that
    /// [`ChildGuard::kill_group`] can later reach whatever it started and left
    /// in that group.
    pub fn spawn_in_own_group(name: &str, mut cmd: Command) -> Result<Self> {
        cmd.process_group(0);
        Self::spawn_inner(name, cmd, true)
    }

    fn spawn_inner(name: &str, cmd: Command, own_group: bool) -> Result<Self> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = spawn_tied(cmd).with_context(|| format!("starting {name} ({program})"))?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            own_group,
            grace: Duration::from_secs(5),
            child: Mutex::new(child),
        })
    }

    /// How long [`ChildGuard::stop`] waits after SIGTERM before SIGKILL.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit status if the process has ended (reaping it), else `None`.
    pub fn try_status(&self) -> Result<Option<ExitStatus>> {
        self.lock()
            .try_wait()
            .with_context(|| format!("checking whether {} (pid {}) ended", self.name, self.pid))
    }

    pub fn is_running(&self) -> bool {
        matches!(self.try_status(), Ok(None))
    }

    /// Sends `signal` if the process still runs; `Ok(false)` if it had ended.
    pub fn signal(&self, signal: i32) -> Result<bool> {
        let mut child = self.lock();
        if child.try_wait()?.is_some() {
            return Ok(false);
        }
        // Unreaped, so the pid is still ours.
        if unsafe { libc::kill(self.pid as libc::pid_t, signal) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err).with_context(|| {
                    format!(
                        "sending signal {signal} to {} (pid {})",
                        self.name, self.pid
                    )
                });
            }
        }
        Ok(true)
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&self) -> Result<ExitStatus> {
        self.signal(libc::SIGKILL)?;
        let status = self
            .lock()
            .wait()
            .with_context(|| format!("reaping {} (pid {})", self.name, self.pid))?;
        Ok(status)
    }

    /// SIGTERM, up to the grace period (5 s by default), then SIGKILL.
    pub fn stop(&self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.signal(libc::SIGTERM)?;
        if let Some(status) = self.wait_timeout(self.grace)? {
            return Ok(status);
        }
        self.kill9()
    }

    /// SIGKILL to every process left in the child's process group (only for
    /// guards made by [`ChildGuard::spawn_in_own_group`]). The group id is the
    /// child's pid, which the kernel does not hand out again while the group
    /// has members.
    pub fn kill_group(&self) {
        if self.own_group {
            kill_process_group(self.pid);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("berth-testkit: stopping {}: {err:#}", self.name);
        }
        self.kill_group();
    }
}

/// SIGKILL to process group `pgid` (ignores a group that no longer exists).
pub fn kill_process_group(pgid: u32) {
    if pgid > 1 {
        unsafe {
            libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
        }
    }
}

/// Polls `check` every `every` until it returns true, fails, or `timeout`
/// passes; `what` names the awaited condition in the error.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

/// Runs `cmd` to completion with piped stdout/stderr, killing it after
/// `timeout`. A non-zero exit is not an error here; the caller judges it.
pub fn run_with_timeout(name: &str, mut cmd: Command, timeout: Duration) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let guard = ChildGuard::spawn(name, cmd)?;
    let (out, err) = {
        let mut child = guard.lock();
        (child.stdout.take(), child.stderr.take())
    };
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read_all(out.map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = read_all(err.map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = match guard.wait_timeout(timeout)? {
        Some(status) => status,
        None => {
            guard.kill9()?;
            let stderr = err.join().unwrap_or_default();
            return Err(anyhow!(
                "{name} did not finish within {timeout:?}; killed it. stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            ));
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs `cmd` and fails (with its stderr) unless it exits 0.
pub fn run_ok(name: &str, cmd: Command, timeout: Duration) -> Result<Output> {
    let output = run_with_timeout(name, cmd, timeout)?;
    if !output.status.success() {
        bail!(
            "{name} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}
