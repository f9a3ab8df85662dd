//! `exec_capture`: run a command in a running container and keep what it
//! says, for healthchecks. Like `exec` it goes through the runtime's
//! `exec`; stdin is /dev/null, stdout and stderr share one pipe.
//!
//! # Ending it on time
//!
//! `berth-runtime exec` runs in a process group of its own and stays the
//! parent of the command (it waits for it as a subreaper). The command runs
//! in the container's pid namespace as the leader of a new session, so
//! whatever it starts is in that session unless it makes one of its own.
//! When the time is up berthd finds the runtime's children (the command,
//! or the runtime's init while it is still setting it up) and sends
//! SIGKILL to their process groups and to every process of their
//! sessions. The runtime then reaps the command and exits, and berthd
//! reaps the runtime; if it has not exited after a grace period, its own
//! group gets SIGKILL.
//!
//! A process of the command that outlives its parent is the child of the
//! container's pid 1 from then on (the kernel gives orphans of a pid
//! namespace to its init): it is killed like the rest, and reaped by that
//! init, as after a `docker exec`. An init that never waits for children
//! keeps their zombies until the container stops.
//!
//! Background processes of a command that ended in time are left alone,
//! as with `exec`.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{Containers, Error, Result};

/// How much of the output is kept; the rest is read and dropped.
pub const CAPTURE_LIMIT: usize = 4096;

/// How long the runtime gets to reap the killed command and exit.
const REAP_GRACE: Duration = Duration::from_secs(2);

impl Containers {
    /// Run `args` in the running container `key` (stdin /dev/null) and
    /// return its exit code (128 + signal if killed) and its stdout and
    /// stderr together, at most [`CAPTURE_LIMIT`] bytes. If it has not
    /// ended after `timeout`, it and what it started are killed and the
    /// error is [`Error::Timeout`].
    pub async fn exec_capture(
        &self,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<(i32, String)> {
        let c = self.exec_target(key, args)?;
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| Error::Runtime(format!("making a pipe for the output: {e}")))?;
        let write2 = write
            .try_clone()
            .map_err(|e| Error::Runtime(format!("duplicating the output pipe: {e}")))?;
        let mut cmd = tokio::process::Command::new(&self.inner.runtime_bin);
        cmd.arg("--root")
            .arg(&self.inner.runtime_root)
            .arg("exec")
            .arg(&c.id)
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::Runtime(format!("running berth-runtime exec: {e}")))?;
        // The command holds our copies of the pipe's write end: without
        // dropping it the pipe never reports its end.
        drop(cmd);
        let mut run = Running::new(child);
        let mut out = Output::default();
        let status = run.wait_reading(read, &mut out, timeout).await?;
        let Some(status) = status else {
            run.kill().await;
            return Err(Error::Timeout(format!(
                "`{}` in container {} timed out after {} and was killed",
                args.join(" "),
                c.name,
                seconds(timeout)
            )));
        };
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        });
        Ok((code, String::from_utf8_lossy(&out.kept).into_owned()))
    }
}

/// The first [`CAPTURE_LIMIT`] bytes of the output.
#[derive(Default)]
struct Output {
    kept: Vec<u8>,
}

impl Output {
    fn add(&mut self, b: &[u8]) {
        let room = CAPTURE_LIMIT - self.kept.len();
        self.kept.extend_from_slice(&b[..b.len().min(room)]);
    }
}

/// `berth-runtime exec` while it runs; killed with what it runs if
/// dropped before it ended (the caller gave up on the future).
struct Running {
    child: Option<tokio::process::Child>,
    pid: i32,
}

impl Running {
    fn new(child: tokio::process::Child) -> Running {
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        Running {
            child: Some(child),
            pid,
        }
    }

    /// Read the output until the runtime exits (its status) or `timeout`
    /// passes (None).
    async fn wait_reading(
        &mut self,
        read: OwnedFd,
        out: &mut Output,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>> {
        let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(read)
            .map_err(|e| Error::Runtime(format!("reading the command's output: {e}")))?;
        let child = self.child.as_mut().expect("running");
        let mut buf = [0u8; 8192];
        let mut open = true;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let status = loop {
            tokio::select! {
                st = child.wait() => {
                    break st.map_err(|e| Error::Runtime(format!("waiting for berth-runtime exec: {e}")))?;
                }
                n = rx.read(&mut buf), if open => match n {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => out.add(&buf[..n]),
                },
                _ = &mut deadline => return Ok(None),
            }
        };
        self.child = None;
        // What the command wrote is in the pipe by the time the runtime
        // reaped it. A process it left in the background may hold the pipe
        // open: take what is there, do not wait for the end.
        while open {
            match rx.try_read(&mut buf) {
                Ok(0) | Err(_) => open = false,
                Ok(n) => out.add(&buf[..n]),
            }
        }
        Ok(Some(status))
    }

    /// Kill the command and its sessions; give the runtime time to reap
    /// it and exit, then kill the runtime's group; reap the runtime.
    async fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = self.pid;
        for _ in 0..3 {
            let _ = tokio::task::spawn_blocking(move || kill_exec(pid)).await;
            if let Ok(Ok(_)) = tokio::time::timeout(REAP_GRACE / 2, child.wait()).await {
                return;
            }
        }
        kill_group(pid);
        let _ = child.wait().await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = self.pid;
        kill_exec(pid);
        // Reap the runtime (and let it reap the command) in the background.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    if tokio::time::timeout(REAP_GRACE, child.wait())
                        .await
                        .is_err()
                    {
                        kill_group(pid);
                        let _ = child.wait().await;
                    }
                });
            }
            Err(_) => {
                kill_group(pid);
                let _ = child.start_kill();
            }
        }
    }
}

/// SIGKILL to the process group `pid` leads.
fn kill_group(pid: i32) {
    if pid > 0 {
        // SAFETY: plain syscall; a negative pid names a process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// SIGKILL to the children of the runtime process `runtime`, their process
/// groups, and every process of the sessions they lead.
fn kill_exec(runtime: i32) {
    if runtime <= 0 {
        return;
    }
    let procs = processes();
    let leaders: Vec<i32> = procs
        .iter()
        .filter(|p| p.ppid == runtime)
        .map(|p| p.pid)
        .collect();
    for &l in &leaders {
        // The runtime's own init shares the runtime's group: not a group
        // of its own, so this only reaches the command's.
        if l != runtime {
            // SAFETY: plain syscalls.
            unsafe { libc::kill(-l, libc::SIGKILL) };
            unsafe { libc::kill(l, libc::SIGKILL) };
        }
        for p in procs.iter().filter(|p| p.session == l || p.pgrp == l) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(p.pid, libc::SIGKILL) };
        }
    }
}

/// One line of `/proc/<pid>/stat`, the fields we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    session: i32,
}

fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(&stat)
        })
        .collect()
}

/// `pid (comm) state ppid pgrp session …`; comm may hold anything, so the
/// fields after it are found from the last `)`.
fn parse_stat(stat: &str) -> Option<Proc> {
    let pid = stat.split_whitespace().next()?.parse().ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(1);
    Some(Proc {
        pid,
        ppid: f.next()?.parse().ok()?,
        pgrp: f.next()?.parse().ok()?,
        session: f.next()?.parse().ok()?,
    })
}

/// `2 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} s", (d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names() {
        assert_eq!(
            parse_stat("4242 (sh) S 4200 4242 4242 0 -1 4194560 …"),
            Some(Proc {
                pid: 4242,
                ppid: 4200,
                pgrp: 4242,
                session: 4242
            })
        );
        assert_eq!(
            parse_stat("7 (a) b (c)) R 1 7 6 0 -1"),
            Some(Proc {
                pid: 7,
                ppid: 1,
                pgrp: 7,
                session: 6
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn output_keeps_the_first_4096_bytes() {
        let mut o = Output::default();
        o.add(&[b'a'; 4000]);
        o.add(&[b'b'; 200]);
        o.add(b"more");
        assert_eq!(o.kept.len(), CAPTURE_LIMIT);
        assert_eq!(o.kept[3999], b'a');
        assert_eq!(o.kept[4095], b'b');
    }

    #[test]
    fn seconds_read_well() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn our_own_process_is_found() {
        let me = std::process::id() as i32;
        let p = processes().into_iter().find(|p| p.pid == me).unwrap();
        assert_eq!(
            p.ppid,
            rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
        );
    }
}
