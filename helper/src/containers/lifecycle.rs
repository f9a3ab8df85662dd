//! `start`, `stop`, `kill`, `rm`.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::create::hostname_of;
use super::spec::{self, SpecInputs};
use super::{io_err, Containers, Error, Result, RunOptions};
use crate::images::now;
use crate::registry::ImageConfig;
use crate::runtime::idmap;
use crate::runtime::overlay::{self, OverlayMount};
use crate::runtime::shim::client::{self as shim, ShimClient, ShimOptions};
use crate::state::{ContainerRecord, StateChange};

/// Client stdio to attach before the container's first output.
pub struct Attach<'a> {
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub stdin: Option<BorrowedFd<'a>>,
}

impl Containers {
    /// Start container `key`; with `attach`, its output also goes there.
    pub async fn start(&self, key: &str, attach: Option<Attach<'_>>) -> Result<ContainerRecord> {
        let c = self.find(key)?;
        if c.state == "running" {
            return Err(Error::Conflict(format!(
                "container {} is already running",
                c.name
            )));
        }
        let opts: RunOptions = serde_json::from_str(&c.options).map_err(|e| {
            Error::Runtime(format!("container {} has damaged options: {e}", c.name))
        })?;
        let this = self.clone();
        let c2 = c.clone();
        let opts2 = opts.clone();
        tokio::task::spawn_blocking(move || this.prepare_bundle(&c2, &opts2))
            .await
            .map_err(|e| Error::Runtime(format!("preparing the bundle crashed: {e}")))??;

        let shim_dir = self.shim_dir(&c.id);
        let _ = std::fs::remove_dir_all(&shim_dir);
        crate::fsmode::make_dir(&shim_dir, crate::fsmode::DIR)
            .map_err(io_err(format!("creating {}", shim_dir.display())))?;
        let mut so = ShimOptions::new(
            c.id.clone(),
            self.run_dir(&c.id).join("bundle"),
            self.inner.runtime_bin.clone(),
            self.inner.runtime_root.clone(),
            shim_dir.clone(),
            self.log_path(&c.id),
        );
        so.tty = opts.tty;
        so.stdin = opts.interactive;
        so.wait_attach = attach.is_some();
        let attached = attach.is_some();
        so.shim_binary = Some(self.inner.shim_bin.clone());
        so.builtin = true;
        so.sealed_runtime = self.sealed_runtime();
        self.clear_status(&c.id);
        // Recorded before the shim exists: a crash from here on is found by
        // recovery, which looks for the shim.
        self.inner.images.db().set_container_state(
            &c.id,
            &StateChange {
                state: "running".into(),
                started: Some(now()),
                finished: Some(0),
                exit_code: Some(0),
                oom_killed: Some(false),
                error: Some(String::new()),
            },
        )?;
        let spare = self.take_spare();
        let spawned = tokio::task::spawn_blocking(move || match spare.map(|s| s.assign(&so)) {
            // The spare itself failed (it died): start a shim the long way.
            Some(Err(crate::runtime::shim::Error::Io { what, source })) => {
                tracing::warn!("the spare shim failed ({what}: {source}); starting one");
                shim::spawn(&so)
            }
            Some(r) => r,
            None => shim::spawn(&so),
        })
        .await
        .map_err(|e| Error::Runtime(format!("starting the supervisor crashed: {e}")))?;
        if let Err(e) = spawned {
            let _ = overlay::unmount(&self.rootfs(&c.id));
            self.inner.images.db().set_container_state(
                &c.id,
                &StateChange {
                    state: "exited".into(),
                    finished: Some(now()),
                    exit_code: Some(125),
                    error: Some(e.to_string()),
                    ..StateChange::default()
                },
            )?;
            return Err(Error::Runtime(e.to_string()));
        }
        if let Some(a) = attach {
            let attached =
                ShimClient::connect(&shim_dir).and_then(|s| s.attach(a.stdout, a.stderr, a.stdin));
            if let Err(e) = attached {
                // The shim holds the start for us; a kill now means it never runs.
                if let Ok(s) = ShimClient::connect(&shim_dir) {
                    let _ = s.kill(libc::SIGKILL);
                }
                self.watch(&self.find(&c.id)?);
                return Err(Error::Runtime(format!("attaching to {}: {e}", c.name)));
            }
        }
        let running = self.find(&c.id)?;
        self.watch(&running);
        // The shim answers as soon as it listens; the container is created
        // and started after that. Return once it runs (or failed), so the
        // next call (`exec`, `stop`) finds it.
        let dir = shim_dir.clone();
        // A container that could not start is recorded as exited with the
        // runtime's error (127 for a missing command) by the monitor, where
        // the caller reads it as it would any exit.
        let ended = tokio::task::spawn_blocking(move || wait_started(&dir))
            .await
            .map_err(|e| Error::Runtime(e.to_string()))?;
        self.refill_spare();
        if ended && !attached {
            // Let the monitor record it first, so what the caller reads next
            // already says how it ended.
            let _ = tokio::time::timeout(Duration::from_secs(10), self.wait(&c.id)).await;
        }
        self.emit(&running, "running");
        Ok(running)
    }

    /// Mount the root file system and write `config.json`.
    fn prepare_bundle(&self, c: &ContainerRecord, opts: &RunOptions) -> Result<()> {
        let images = &self.inner.images;
        let m = images
            .db()
            .manifest(&c.manifest)?
            .ok_or_else(|| Error::NotFound(format!("the image of container {} is gone", c.name)))?;
        let config: ImageConfig = serde_json::from_slice(
            &images
                .content()
                .read(&m.config)
                .map_err(crate::images::Error::from)?,
        )
        .map_err(|e| Error::Runtime(format!("the image config of {} is damaged: {e}", c.image)))?;
        let lower = match m.layers.last() {
            Some(top) => images
                .layers()
                .chain(&top.chain_id)
                .map_err(crate::images::Error::from)?,
            None => Vec::new(),
        };
        let dir = self.dir(&c.id);
        let rootfs = self.rootfs(&c.id);
        let bundle = self.run_dir(&c.id).join("bundle");
        overlay::unmount(&rootfs).map_err(|e| Error::Runtime(e.to_string()))?;
        // A container an older berthd created may predate the group.
        let traverse_gid = match c.userns {
            Some(_) => Some(self.ensure_traverse_gid()?),
            None => None,
        };
        for d in [self.run_dir(&c.id), bundle.clone()] {
            self.container_dir(c, &d)?;
        }
        if let (Some(range), Some(gid)) = (c.userns, traverse_gid) {
            self.check_reachable(c, opts, range, gid)?;
        }
        if let Some(ns) = &opts.netns {
            if !crate::network::netns::is_mounted(std::path::Path::new(ns)) {
                return Err(Error::NotFound(format!(
                    "container {} joins the network namespace {ns}, which does not exist \
                     (its network must attach the container first)",
                    c.name
                )));
            }
            // The host's name servers may have changed since it was created.
            super::etc::rewrite_in_place(
                &dir.join("resolv.conf"),
                super::etc::resolv_for_netns().as_bytes(),
                c.userns,
            )?;
        }
        let mount = OverlayMount {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: rootfs.clone(),
        };
        match c.userns {
            Some((start, size)) => mount.mount_idmapped(idmap::root_at(start, size)),
            None => mount.mount(),
        }
        .map_err(|e| Error::Runtime(e.to_string()))?;

        let result = (|| {
            self.populate_volumes(c, opts, &rootfs)?;
            let user_spec = opts
                .user
                .clone()
                .or_else(|| config.config.as_ref().and_then(|c| c.user.clone()))
                .unwrap_or_default();
            let user = crate::runtime::user::resolve(&rootfs, &user_spec)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            let hostname = hostname_of(c);
            let mut base = crate::runtime::spec::default_spec();
            crate::runtime::spec::with_docker_security(&mut base);
            let etc_files = ["hosts", "hostname", "resolv.conf"]
                .iter()
                .map(|f| (dir.join(f).display().to_string(), format!("/etc/{f}")))
                .collect();
            let nofile_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .maximum
                .unwrap_or(1 << 20);
            let mut spec = spec::build(
                base,
                &config,
                opts,
                &SpecInputs {
                    id: &c.id,
                    hostname: &hostname,
                    uid: user.uid,
                    gid: user.gid,
                    additional_gids: user.additional_gids.clone(),
                    home: user.home.as_deref(),
                    etc_files,
                    userns_range: c.userns,
                    nofile_hard,
                },
            )
            .map_err(Error::InvalidArgument)?;
            if let Some(ns) = &opts.netns {
                spec::join_network_namespace(&mut spec, std::path::Path::new(ns));
            }
            if let Some(gid) = traverse_gid {
                spec.annotations_mut()
                    .get_or_insert_with(Default::default)
                    .insert(
                        crate::runtime::namespaces::TRAVERSE_GID_ANNOTATION.into(),
                        gid.to_string(),
                    );
            }
            // The container's environment: root's alone.
            let json =
                serde_json::to_vec_pretty(&spec).map_err(|e| Error::Runtime(e.to_string()))?;
            let config = bundle.join("config.json");
            crate::fsmode::write(&config, &json)
                .map_err(io_err(format!("writing {}", config.display())))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = overlay::unmount(&rootfs);
        }
        result
    }

    /// Fill each empty `populate` volume with a copy of the image's
    /// directory at its path (see [`super::populate`]); `rootfs` is mounted.
    fn populate_volumes(
        &self,
        c: &ContainerRecord,
        opts: &RunOptions,
        rootfs: &std::path::Path,
    ) -> Result<()> {
        for v in opts.volumes.iter().filter(|v| v.populate) {
            let host = std::path::Path::new(&v.host);
            match super::populate::populate(rootfs, &v.container, host) {
                Ok(super::populate::Populated::Copied(n)) => tracing::info!(
                    container = %c.name,
                    volume = %v.host,
                    path = %v.container,
                    entries = n,
                    "filled a new volume from the image"
                ),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Io {
                        what: format!(
                            "filling volume {} of container {} with the image's {}",
                            v.host, c.name, v.container
                        ),
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }

    /// A container in its own user namespace is "other" to every host
    /// directory: its init must be able to search its way to the root file
    /// system, the /etc files, the volumes and the runtime's state. Berth's
    /// own directories let it pass through group `gid` (see
    /// [`super::userns`]); for the rest, say what to change rather than
    /// fail deep in the runtime.
    fn check_reachable(
        &self,
        c: &ContainerRecord,
        opts: &RunOptions,
        (start, size): (u32, u32),
        gid: u32,
    ) -> Result<()> {
        let mine = |id: u32| id >= start && (id as u64) < start as u64 + size as u64;
        let targets = [self.rootfs(&c.id), self.dir(&c.id).join("hosts")]
            .into_iter()
            .chain([self.inner.runtime_root.join(&c.id)])
            .chain(
                opts.volumes
                    .iter()
                    .map(|v| std::path::PathBuf::from(&v.host)),
            );
        for target in targets {
            for d in target.ancestors().skip(1) {
                let Ok(md) = std::fs::metadata(d) else {
                    continue;
                };
                use std::os::unix::fs::MetadataExt;
                let mode = md.mode();
                let ok = mode & 0o001 != 0
                    || (mine(md.uid()) && mode & 0o100 != 0)
                    || ((mine(md.gid()) || md.gid() == gid) && mode & 0o010 != 0);
                if !ok {
                    return Err(Error::InvalidArgument(format!(
                        "container {} runs with --userns=auto, and its root (host id {start}) \
                         cannot reach {}: {} is not searchable by other users; \
                         allow it (chmod o+x {}) or move that directory",
                        c.name,
                        target.display(),
                        d.display(),
                        d.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Send `signal` to the container's process.
    pub async fn kill(&self, key: &str, signal: i32) -> Result<()> {
        let c = self.find(key)?;
        if c.state != "running" {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        let dir = self.shim_dir(&c.id);
        tokio::task::spawn_blocking(move || ShimClient::connect(&dir).and_then(|s| s.kill(signal)))
            .await
            .map_err(|e| Error::Runtime(e.to_string()))?
            .map_err(|e| Error::Runtime(format!("signalling {}: {e}", c.name)))
    }

    /// SIGTERM, then SIGKILL after `timeout`. Returns the exited record.
    pub async fn stop(&self, key: &str, timeout: Duration) -> Result<ContainerRecord> {
        let c = self.find(key)?;
        if c.state != "running" {
            return Ok(c);
        }
        let mut rx = self.subscribe_status(&c.id);
        // A SIGTERM its init would never see is not worth waiting for.
        let pid = self.inspect(&c.id).ok().and_then(|i| i.pid);
        if pid.is_some_and(term_is_discarded) {
            let _ = self.kill(&c.id, libc::SIGKILL).await;
            return self.wait(&c.id).await;
        }
        let _ = self.kill(&c.id, libc::SIGTERM).await;
        let exited = |rx: &mut tokio::sync::watch::Receiver<Option<ContainerRecord>>| {
            rx.borrow().as_ref().is_some_and(|r| r.state != "running")
        };
        let waited = tokio::time::timeout(timeout, async {
            while !exited(&mut rx) {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        if waited.is_err() {
            let _ = self.kill(&c.id, libc::SIGKILL).await;
        }
        self.wait(&c.id).await
    }

    /// Remove a container; `force` stops a running one first.
    pub async fn remove(&self, key: &str, force: bool) -> Result<()> {
        let c = self.find(key)?;
        if c.state == "running" {
            if !force {
                return Err(Error::Conflict(format!(
                    "container {} is running; stop it first (berth stop {}) or use rm -f",
                    c.name, c.name
                )));
            }
            self.stop(&c.id, Duration::from_secs(0)).await?;
        }
        self.forget(&c).await
    }

    /// Delete files, then the row (the caller made sure it does not run).
    pub(super) async fn forget(&self, c: &ContainerRecord) -> Result<()> {
        let _ = overlay::unmount(&self.rootfs(&c.id));
        for d in [self.run_dir(&c.id), self.dir(&c.id)] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing {}", d.display()))(e)),
            }
        }
        self.inner.images.db().remove_container(&c.id)?;
        // A `run --rm` client may ask how it ended after it is gone: keep
        // the last record a minute.
        let this = self.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            this.inner
                .status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
        self.emit(c, "removed");
        Ok(())
    }
}

/// Poll the shim until its container left `creating`; true if it has
/// already ended (it could not start, or ran very briefly).
fn wait_started(dir: &std::path::Path) -> bool {
    use crate::runtime::shim::Status;
    let Ok(client) = ShimClient::connect(dir) else {
        return true;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        // Each call is a connection of its own; a gone shim fails it.
        match client.state() {
            Ok(st) if st.status == Status::Creating => {}
            Ok(st) => return st.status == Status::Exited,
            // The shim is gone (the monitor records why).
            Err(_) => return true,
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Would the kernel drop a SIGTERM sent to `pid`? It does when the process
/// is PID 1 of its PID namespace and has no handler for it (a shell or
/// `busybox httpd` as a container's init): signals from outside that
/// namespace other than SIGKILL and SIGSTOP reach such an init only when it
/// catches them. Docker waits out the whole timeout in that case.
fn term_is_discarded(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    term_is_discarded_by(&status)
}

fn term_is_discarded_by(status: &str) -> bool {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let init_of_its_namespace = field("NSpid:")
        .and_then(|v| v.split_whitespace().last())
        .is_some_and(|last| last == "1");
    let caught = field("SigCgt:").and_then(|v| u64::from_str_radix(v, 16).ok());
    match caught {
        Some(mask) => init_of_its_namespace && mask & (1 << (libc::SIGTERM - 1)) == 0,
        None => false,
    }
}

#[cfg(test)]
mod term_tests {
    use super::term_is_discarded_by;

    #[test]
    fn only_an_init_without_a_handler_discards_sigterm() {
        let status =
            |nspid: &str, cgt: &str| format!("Name:\tx\nNSpid:\t{nspid}\nSigCgt:\t{cgt}\n");
        assert!(term_is_discarded_by(&status("4242\t1", "0000000000000000")));
        // It catches SIGTERM (bit 15).
        assert!(!term_is_discarded_by(&status(
            "4242\t1",
            "0000000000004000"
        )));
        // Not the namespace's init: the default action (exit) applies.
        assert!(!term_is_discarded_by(&status(
            "4242\t7",
            "0000000000000000"
        )));
        assert!(!term_is_discarded_by("garbage"));
    }
}
