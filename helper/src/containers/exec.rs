//! `exec`: run another process in a running container, through the
//! runtime's `exec` (which joins the container's namespaces and cgroup and
//! applies the same security settings), with the caller's stdio.

use std::os::fd::OwnedFd;
use std::process::Stdio;

use super::{Containers, Error, Result};

impl Containers {
    /// The running container `key` names, for running `args` in it.
    pub(super) fn exec_target(
        &self,
        key: &str,
        args: &[String],
    ) -> Result<crate::state::ContainerRecord> {
        let c = self.find(key)?;
        if c.state != "running" {
            return Err(Error::Conflict(format!(
                "container {} is not running; start it first (berth start {})",
                c.name, c.name
            )));
        }
        if args.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command".into()));
        }
        Ok(c)
    }

    /// Run `args` in container `key` with `stdio` (stdin, stdout, stderr);
    /// with `tty` (rows, columns) the command gets a terminal of that size,
    /// relayed to stdin and stdout. Returns its exit code.
    pub async fn exec(
        &self,
        key: &str,
        args: &[String],
        env: &[String],
        workdir: Option<&str>,
        stdio: [OwnedFd; 3],
        tty: Option<(u16, u16)>,
    ) -> Result<i32> {
        let c = self.exec_target(key, args)?;
        for e in env {
            super::options::check_env(e)?;
        }
        let mut cmd = tokio::process::Command::new(&self.inner.runtime_bin);
        cmd.arg("--root").arg(&self.inner.runtime_root).arg("exec");
        for e in env {
            cmd.args(["--env", e]);
        }
        if let Some(w) = workdir {
            cmd.args(["--cwd", w]);
        }
        let [stdin, stdout, stderr] = stdio;
        let console = match tty {
            Some(_) => Some(super::exec_tty::ConsoleDir::new()?),
            None => None,
        };
        let mut relay = None;
        if let (Some(dir), Some(size)) = (&console, tty) {
            let listener = std::os::unix::net::UnixListener::bind(dir.socket())
                .map_err(|e| Error::Runtime(format!("making a console socket: {e}")))?;
            cmd.arg("--tty").arg("--console-socket").arg(dir.socket());
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr));
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let d = done.clone();
            relay = Some((
                tokio::task::spawn_blocking(move || {
                    super::exec_tty::relay(listener, size, stdin, stdout, d)
                }),
                done,
            ));
        } else {
            cmd.stdin(Stdio::from(stdin))
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr));
        }
        cmd.arg(&c.id).arg("--").args(args).kill_on_drop(false);
        let status = cmd
            .status()
            .await
            .map_err(|e| Error::Runtime(format!("running berth-runtime exec: {e}")))?;
        if let Some((threads, done)) = relay {
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            // If the runtime failed before sending the terminal, the relay
            // still waits in accept(): a connection of our own ends that.
            if let Some(dir) = &console {
                let _ = std::os::unix::net::UnixStream::connect(dir.socket());
            }
            if let Ok(Ok(threads)) = threads.await {
                let _ = tokio::task::spawn_blocking(move || {
                    for t in threads {
                        let _ = t.join();
                    }
                })
                .await;
            }
        }
        drop(console);
        Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }))
    }
}
