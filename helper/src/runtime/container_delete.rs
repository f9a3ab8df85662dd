//! `delete`: remove a stopped container (with `force`, stop it first).

use std::time::{Duration, Instant};

use super::container::Container;
use super::state::Status;
use super::{Context, Error, Result};

impl Container {
    /// Remove the container's state (and cgroup). A created container is
    /// killed (it never ran, as runc does); a running one only with `force`.
    pub fn delete(self, force: bool) -> Result<()> {
        match self.status() {
            Status::Running if !force => {
                return Err(Error::WrongStatus {
                    id: self.id.clone(),
                    status: Status::Running,
                    action: "delete",
                    wanted: "stopped (kill it first or use --force)",
                })
            }
            Status::Stopped => {}
            _ => {
                // SAFETY: plain syscall; status() checked the start time.
                unsafe { libc::kill(self.state.pid, libc::SIGKILL) };
                self.wait_stopped()?;
            }
        }
        remove_cgroups(&self)?;
        std::fs::remove_dir_all(&self.dir).ctx(|| format!("removing {}", self.dir.display()))
    }

    /// SIGKILL is not instant: wait until the process is gone or a zombie.
    fn wait_stopped(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.alive() {
            if Instant::now() > deadline {
                return Err(Error::Init(format!(
                    "container {} (pid {}) did not die within 30 s of SIGKILL; is it stuck in the kernel (state D)?",
                    self.id, self.state.pid
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

/// The cgroups manager's cleanup, called from this one place (see
/// `apply_cgroups` in container_create.rs).
fn remove_cgroups(container: &Container) -> Result<()> {
    match &container.state.cgroups_path {
        Some(path) => destroy_cgroup(&cgroup_rel(path)),
        None => Ok(()),
    }
}

/// A spec's `cgroupsPath` relative to each hierarchy's root.
pub(super) fn cgroup_rel(path: &std::path::Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

/// Kill whatever is left in the cgroup `rel` and remove it; nothing to do
/// if it is already gone.
pub(super) fn destroy_cgroup(rel: &str) -> Result<()> {
    let Ok(cg) = super::cgroups::Cgroup::load(rel) else {
        return Ok(());
    };
    // Anything the container left behind (it forked and exited) goes too.
    // Usually nothing is: skip the freeze/kill/thaw round then.
    if cg.procs().map(|p| !p.is_empty()).unwrap_or(true) {
        let _ = cg.kill_all(libc::SIGKILL);
    }
    cg.delete()
        .map_err(|e| Error::Init(format!("removing the cgroup {rel}: {e}")))
}
