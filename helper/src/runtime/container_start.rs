//! `start`: release the init waiting on `exec.fifo` to exec the command.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use super::container::Container;
use super::state::Status;
use super::{Context, Error, Result};

impl Container {
    /// Let a created container run its command.
    pub fn start(&self) -> Result<()> {
        self.require("start", "created", &[Status::Created])?;
        let fifo = self.fifo();
        // Non-blocking: should the init die now, a blocking open would
        // wait for a writer forever.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .ctx(|| format!("opening {}", fifo.display()))?;
        // From here on the status reads "running"; the init holds its own
        // handle on the FIFO.
        std::fs::remove_file(&fifo).ctx(|| format!("removing {}", fifo.display()))?;
        let mut byte = [0u8; 1];
        loop {
            match f.read(&mut byte) {
                Ok(1) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).ctx(|| format!("reading {}", fifo.display())),
            }
            if !self.alive() {
                return Err(Error::Init(format!(
                    "container {} exited before it could be started",
                    self.id
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
