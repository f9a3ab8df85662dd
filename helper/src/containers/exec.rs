//! `exec`: run another process in a running container, through the
//! runtime's `exec` (which joins the container's namespaces and cgroup and
//! applies the same security settings), with the caller's stdio.

use std::os::fd::OwnedFd;
use std::process::Stdio;

use super::{Containers, Error, Result};

impl Containers {
    /// Run `args` in container `key` with `stdio` (stdin, stdout, stderr);
    /// returns its exit code.
    pub async fn exec(
        &self,
        key: &str,
        args: &[String],
        env: &[String],
        workdir: Option<&str>,
        stdio: [OwnedFd; 3],
    ) -> Result<i32> {
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
        cmd.arg(&c.id).arg("--").args(args);
        let [stdin, stdout, stderr] = stdio;
        cmd.stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(false);
        let status = cmd
            .status()
            .await
            .map_err(|e| Error::Runtime(format!("running berth-runtime exec: {e}")))?;
        Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }))
    }
}
