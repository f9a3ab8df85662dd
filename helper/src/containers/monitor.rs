//! Knowing when containers exit, and finding them again after a restart.

use tokio::sync::watch;

use super::{Containers, Error, Result, RunOptions};
use crate::images::{now, parse_rfc3339};
use crate::runtime::overlay;
use crate::runtime::shim::client as shim;
use crate::runtime::shim::ExitInfo;
use crate::state::{ContainerRecord, StateChange};

impl Containers {
    /// A new run of container `id` begins: forget how the last one ended.
    pub(super) fn clear_status(&self, id: &str) {
        let map = self.inner.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(id) {
            tx.send_replace(None);
        }
    }

    /// A receiver of container `id`'s record, updated when it exits.
    pub(super) fn subscribe_status(&self, id: &str) -> watch::Receiver<Option<ContainerRecord>> {
        let mut map = self.inner.status.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Wait until container `key` is not running; returns its record.
    pub async fn wait(&self, key: &str) -> Result<ContainerRecord> {
        let c = match self.find(key) {
            Ok(c) => c,
            // Already removed (`run --rm`): its last record, if still kept.
            Err(e) => {
                let map = self.inner.status.lock().unwrap_or_else(|p| p.into_inner());
                return map.get(key).and_then(|tx| tx.borrow().clone()).ok_or(e);
            }
        };
        let mut rx = self.subscribe_status(&c.id);
        loop {
            // The channel holds this run's end once it is known (`start`
            // clears it), possibly before the database does: a container
            // about to be removed never records its exit there.
            if let Some(r) = rx
                .borrow_and_update()
                .as_ref()
                .filter(|r| r.state != "running")
            {
                return Ok(r.clone());
            }
            match self.inner.images.db().find_container(&c.id)? {
                Some(r) if r.state != "running" => return Ok(r),
                None => {
                    return rx.borrow().clone().ok_or_else(|| {
                        Error::NotFound(format!("container {} was removed", c.name))
                    })
                }
                Some(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(Error::Runtime("berthd is stopping".into()));
            }
        }
    }

    /// Follow a running container's shim until it exits. Waits on a pidfd
    /// of the shim, so a running container costs no thread: the shim
    /// writes `exit.json` before it exits, and that is read then.
    pub(super) fn watch(&self, c: &ContainerRecord) {
        let this = self.clone();
        let c = c.clone();
        let dir = self.shim_dir(&c.id);
        tokio::spawn(async move {
            if let Err(e) = wait_for_exit(&dir).await {
                tracing::warn!("watching the supervisor of {}: {e}", c.name);
            }
            let exit = shim::read_exit(&dir);
            if let Err(e) = this.exited(&c, exit).await {
                tracing::error!("recording the exit of container {}: {e}", c.name);
            }
        });
    }

    /// Record how a run ended and release what it held.
    async fn exited(&self, c: &ContainerRecord, exit: Option<ExitInfo>) -> Result<()> {
        let change = match &exit {
            Some(e) => StateChange {
                state: "exited".into(),
                finished: Some(parse_rfc3339(&e.finished_at).unwrap_or_else(now)),
                exit_code: Some(e.exit_code as i64),
                oom_killed: Some(e.oom_killed),
                error: e.error.clone(),
                ..StateChange::default()
            },
            None => {
                // The shim died without recording an exit: make sure nothing
                // of the container runs on, through its cgroup.
                self.kill_leftovers(&c.id);
                StateChange {
                    state: "exited".into(),
                    finished: Some(now()),
                    exit_code: Some(255),
                    error: Some(
                        "its supervisor (berth-shim) died; the container was stopped".into(),
                    ),
                    ..StateChange::default()
                }
            }
        };
        let _ = overlay::unmount(&self.rootfs(&c.id));
        let auto_remove = serde_json::from_str::<RunOptions>(&c.options)
            .map(|o| o.auto_remove)
            .unwrap_or(false);
        // A container about to be removed skips recording its exit: the
        // row goes next anyway (a crash in between finds it running with
        // its shim gone, and comes back here).
        let record = if auto_remove {
            change.applied_to(c)
        } else {
            self.inner.images.db().set_container_state(&c.id, &change)?;
            self.find(&c.id)?
        };
        self.emit(&record, "exited");
        // Kept (and so readable by `wait`) even if nobody waits yet.
        self.inner
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(c.id.clone())
            .or_insert_with(|| watch::channel(None).0)
            .send_replace(Some(record.clone()));
        if auto_remove {
            self.forget(&record).await?;
        }
        Ok(())
    }

    /// Kill every process left in the container's cgroup and remove the
    /// runtime's record of it.
    fn kill_leftovers(&self, id: &str) {
        if let Ok(cg) = crate::runtime::cgroups::Cgroup::load(&Self::cgroup_path(id)) {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.delete();
        }
        if let Ok(c) = crate::runtime::Container::load(&self.inner.runtime_root, id) {
            let _ = c.delete(true);
        }
    }

    /// After berthd starts: resume watching live shims, settle the rest.
    pub(super) async fn recover(&self) -> Result<()> {
        for c in self.inner.images.db().containers()? {
            if c.state != "running" {
                continue;
            }
            let dir = self.shim_dir(&c.id);
            if shim::alive(&dir) {
                tracing::info!("container {} still runs; following it again", c.name);
                self.watch(&c);
            } else {
                let exit = shim::read_exit(&dir);
                tracing::info!("container {} ended while berthd was away", c.name);
                self.exited(&c, exit).await?;
            }
        }
        Ok(())
    }
}

/// Resolve once the shim recorded in `dir` has exited (at once if it is
/// already gone, or if its pid now belongs to another process).
async fn wait_for_exit(dir: &std::path::Path) -> std::io::Result<()> {
    let Some(info) = shim::info(dir) else {
        return Ok(());
    };
    let Some(pid) = rustix::process::Pid::from_raw(info.pid) else {
        return Ok(());
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // Opened after reading the record: make sure it is still the shim.
    if !shim::alive(dir) {
        return Ok(());
    }
    // SAFETY: the AsyncFd owns the pidfd; nothing else holds or closes it.
    let afd = unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)?;
    let _ = afd.readable().await?;
    Ok(())
}
