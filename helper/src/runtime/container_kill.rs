//! `kill`: send a signal to the container's process.

use super::container::Container;
use super::state::Status;
use super::{Context, Result};

impl Container {
    /// Signal the container's pid 1. A pid 1 gets only the signals it
    /// handles, plus SIGKILL (pid_namespaces(7)).
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.require(
            "kill",
            "created or running",
            &[Status::Created, Status::Running],
        )?;
        // SAFETY: plain syscall; the start time check above makes sure the
        // pid is still ours.
        if unsafe { libc::kill(self.state.pid, signal) } < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| {
                format!(
                    "sending signal {signal} to container {} (pid {})",
                    self.id, self.state.pid
                )
            });
        }
        Ok(())
    }
}
