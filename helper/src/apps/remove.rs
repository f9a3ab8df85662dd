//! `uninstall`, the roll-back of an install, and the audits.
//!
//! Both walk the app's ledger backwards ([`crate::ledger`]), removing each
//! resource and then its entry. They differ in what they keep:
//!
//! | resource | roll-back | uninstall |
//! |---|---|---|
//! | image the app pulled | removed unless another app uses it | same, unless `--keep-images` |
//! | image that was there before | kept | kept |
//! | volume this install made | removed | kept with `--keep-data` |
//! | volume kept from before | kept | kept with `--keep-data` |
//!
//! ```text
//!  record the removal (state removing, with its options)   uninstall-recorded
//!  walk the ledger backwards: ports, address, container    uninstall-container-removed
//!                             network                      uninstall-network
//!                             volumes                      uninstall-volumes
//!                             images                       uninstall-images
//!                             the app's files
//!  delete the app's row                                    uninstall-done
//!  audit
//! ```
//!
//! The audit does not trust the ledger: it looks on the machine for every
//! trace of what the app had (files under the roots, mounts, cgroups,
//! network links and nftables tables, processes) and lists what it finds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api::{AuditReport, UninstallOptions};
use tokio::sync::watch;

use super::crash::crash_point;
use super::install::{blocking, AppProgress};
use super::manager::{state_err, AppManager};
use super::{Error, Result};
use crate::ledger::{self, Entry, Resource};

/// How long a container gets between SIGTERM and SIGKILL at uninstall.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a removal keeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keep {
    /// Keep volumes the ledger says this install created.
    pub created_volumes: bool,
    /// Keep volumes that existed before the install (kept data).
    pub kept_volumes: bool,
    pub images: bool,
}

impl Keep {
    /// Undo a failed install: only what was there before it stays.
    pub const ROLL_BACK: Keep = Keep {
        created_volumes: false,
        kept_volumes: true,
        images: false,
    };

    pub(super) fn uninstall(o: &UninstallOptions) -> Keep {
        Keep {
            created_volumes: o.keep_data,
            kept_volumes: o.keep_data,
            images: o.keep_images,
        }
    }
}

/// Everything of an app the audit looks for, gathered before removal.
#[derive(Debug, Default)]
pub(super) struct Traces {
    pub app: String,
    pub container_ids: BTreeSet<String>,
    pub container_names: BTreeSet<String>,
    pub volumes: Vec<(String, PathBuf)>,
    pub images: Vec<String>,
    pub app_dir: Option<PathBuf>,
}

impl AppManager {
    /// Remove app `id` (walking its ledger backwards), then audit.
    pub async fn uninstall(
        &self,
        id: &str,
        opts: &UninstallOptions,
        progress: &watch::Sender<AppProgress>,
    ) -> Result<AuditReport> {
        let _busy = self.busy_wait(id, "uninstalling").await?;
        let Some(a) = self.db().app(id).map_err(state_err)? else {
            // Not installed, but its data may have been kept.
            return self.delete_kept_data(id, opts).await;
        };
        // A removal already under way (berthd crashed in it) finishes the
        // way it was asked for first.
        let opts: UninstallOptions = if a.state == "removing" && !a.removal.is_empty() {
            serde_json::from_str(&a.removal).unwrap_or_else(|_| opts.clone())
        } else {
            opts.clone()
        };
        self.db()
            .begin_app_removal(id, &serde_json::to_string(&opts).expect("serialises"))
            .map_err(state_err)?;
        crash_point("uninstall-recorded");
        progress.send_modify(|p| {
            p.phase = "removing";
            p.detail = id.to_string();
        });
        self.finish_removal(id, Keep::uninstall(&opts), progress)
            .await
    }

    /// `uninstall --delete-data` of an app that is not installed: delete
    /// the volumes an earlier uninstall kept.
    async fn delete_kept_data(&self, id: &str, opts: &UninstallOptions) -> Result<AuditReport> {
        let not_installed = || {
            Error::NotFound(format!(
                "app `{id}` is not installed; `berth apps` lists the installed ones"
            ))
        };
        let kept: Vec<String> = self
            .db()
            .volumes()
            .map_err(state_err)?
            .into_iter()
            .filter(|v| v.app == id)
            .map(|v| v.name)
            .collect();
        if kept.is_empty() || opts.keep_data {
            return Err(not_installed());
        }
        let mut t = Traces {
            app: id.to_string(),
            ..Traces::default()
        };
        for name in kept {
            let path = self.volume_dir(&name);
            self.delete_volume(&name, &path)?;
            t.volumes.push((name, path));
        }
        Ok(self.audit(&t).await)
    }

    /// Finish the removal of an app a crash left `removing`, as it was
    /// asked for (the options recorded when it began).
    pub(super) async fn resume_removal(
        &self,
        a: &crate::state::AppRecord,
        progress: &watch::Sender<AppProgress>,
    ) -> Result<AuditReport> {
        let opts: UninstallOptions = serde_json::from_str(&a.removal).unwrap_or_default();
        self.finish_removal(&a.id, Keep::uninstall(&opts), progress)
            .await
    }

    /// Walk the ledger of an app being removed, delete its row, audit.
    pub(super) async fn finish_removal(
        &self,
        id: &str,
        keep: Keep,
        progress: &watch::Sender<AppProgress>,
    ) -> Result<AuditReport> {
        let traces = self.traces(id)?;
        let problems = self.remove_resources(id, keep).await?;
        if !problems.is_empty() {
            // The row stays (state removing) with what is left in its
            // ledger, so uninstalling again or `berth doctor` finishes.
            return Ok(AuditReport {
                clean: false,
                checked: Vec::new(),
                remaining: problems,
                ..AuditReport::default()
            });
        }
        crash_point("uninstall-done");
        self.db().remove_app(id).map_err(state_err)?;
        progress.send_modify(|p| {
            p.phase = "auditing";
            p.detail = id.to_string();
        });
        let mut report = self.audit(&traces).await;
        if keep.created_volumes || keep.kept_volumes {
            for (name, path) in &traces.volumes {
                if path.exists() {
                    report
                        .kept
                        .push(format!("volume {name} ({})", path.display()));
                }
            }
        }
        progress.send_modify(|p| {
            p.phase = "done";
            p.detail.clear();
        });
        Ok(report)
    }

    /// Undo an install that failed, was cancelled or was cut by a crash.
    /// Returns what could not be removed.
    pub(super) async fn roll_back(&self, id: &str) -> Result<Vec<String>> {
        let traces = self.traces(id)?;
        let mut left = self.remove_resources(id, Keep::ROLL_BACK).await?;
        if left.is_empty() {
            self.db().remove_app(id).map_err(state_err)?;
            left = self.audit(&traces).await.remaining;
        }
        Ok(left)
    }

    /// What the audit will look for, from the ledger and the records.
    pub(super) fn traces(&self, id: &str) -> Result<Traces> {
        let mut t = Traces {
            app: id.to_string(),
            ..Traces::default()
        };
        for e in self.entries(id)? {
            match e.resource {
                Resource::Container { name, id: cid, .. } => {
                    if let Ok(c) = self.inner.containers.find(&name) {
                        t.container_ids.insert(c.id);
                    }
                    if !cid.is_empty() {
                        t.container_ids.insert(cid);
                    }
                    t.container_names.insert(name);
                }
                Resource::Volume { name, path, .. } => t.volumes.push((name, path.into())),
                Resource::Image {
                    reference,
                    pulled: true,
                } => t.images.push(reference),
                Resource::AppDir { path } => t.app_dir = Some(path.into()),
                _ => {}
            }
        }
        Ok(t)
    }

    pub(super) fn entries(&self, id: &str) -> Result<Vec<Entry>> {
        self.db()
            .ledger(id)
            .map_err(state_err)?
            .iter()
            .map(|r| Entry::from_row(r).map_err(Error::Failed))
            .collect()
    }

    /// Remove the app's resources, last made first, forgetting each entry
    /// once its resource is gone. Goes on past failures; returns them.
    pub(super) async fn remove_resources(&self, id: &str, keep: Keep) -> Result<Vec<String>> {
        let entries = self.entries(id)?;
        let mut problems = Vec::new();
        let mut first_container = true;
        let mut images_locked = None;
        for e in ledger::removal_order(&entries) {
            if matches!(e.resource, Resource::Image { .. }) && images_locked.is_none() {
                images_locked = Some(self.inner.images_lock.lock().await);
            }
            match self.remove_one(id, &e.resource, keep).await {
                Ok(()) => {
                    self.db().ledger_remove(id, e.seq).map_err(state_err)?;
                }
                Err(err) => {
                    problems.push(format!("{}: {err}", e.resource.describe()));
                    continue;
                }
            }
            match &e.resource {
                Resource::Container { .. } if first_container => {
                    first_container = false;
                    crash_point("uninstall-container-removed");
                }
                Resource::Network { .. } => crash_point("uninstall-network"),
                Resource::Volume { .. } => crash_point("uninstall-volumes"),
                Resource::Image { .. } => crash_point("uninstall-images"),
                _ => {}
            }
        }
        Ok(problems)
    }

    async fn remove_one(&self, app: &str, r: &Resource, keep: Keep) -> Result<()> {
        let networks = self.inner.networks.clone();
        match r.clone() {
            Resource::Ports {
                network, container, ..
            } => match blocking(move || networks.unpublish(&network, &container)).await? {
                Ok(_) | Err(crate::network::Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Resource::Endpoint {
                network, container, ..
            } => match blocking(move || networks.detach(&network, &container)).await? {
                Ok(()) | Err(crate::network::Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Resource::Container { name, .. } => {
                let c = &self.inner.containers;
                match c.find(&name) {
                    Ok(rec) => {
                        if rec.state == "running" {
                            let _ = c.stop(&rec.id, STOP_TIMEOUT).await;
                        }
                        c.remove(&rec.id, true).await?;
                        Ok(())
                    }
                    Err(crate::containers::Error::NotFound(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Resource::Network { name } => match blocking(move || networks.remove(&name)).await? {
                Ok(()) | Err(crate::network::Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Resource::Volume {
                name,
                path,
                created,
            } => {
                let keep_it = if created {
                    keep.created_volumes
                } else {
                    keep.kept_volumes
                };
                if keep_it {
                    // Recorded as the app's, so a later install finds it.
                    self.db()
                        .insert_volume(&name, app, crate::images::now())
                        .map_err(state_err)?;
                    return Ok(());
                }
                self.delete_volume(&name, Path::new(&path)).map(|_| ())
            }
            Resource::Image { reference, pulled } => {
                if !pulled || keep.images || self.image_used_elsewhere(app, &reference)? {
                    return Ok(());
                }
                match self.inner.images.remove(&reference).await {
                    Ok(_) | Err(crate::images::Error::NotFound(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Resource::AppDir { path } => {
                let path = PathBuf::from(path);
                if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
                    remove_dir(&parent.join(format!(".{}.tmp", name.to_string_lossy())))?;
                }
                remove_dir(&path)
            }
        }
    }

    /// Does another app's ledger, or a container outside apps, use `reference`?
    fn image_used_elsewhere(&self, app: &str, reference: &str) -> Result<bool> {
        let others = self.db().ledger_all().map_err(state_err)?;
        if others
            .iter()
            .any(|r| r.app != app && r.kind == "image" && r.name == reference)
        {
            return Ok(true);
        }
        let name = self.inner.images.find(reference).map(|n| n.name).ok();
        Ok(self
            .inner
            .containers
            .list(true)?
            .iter()
            .any(|c| Some(&c.image) == name.as_ref() || c.image == reference))
    }

    /// Look on the machine for every trace of the app.
    pub(super) async fn audit(&self, t: &Traces) -> AuditReport {
        let root = self.inner.root.clone();
        let run_root = self.inner.run_root.clone();
        let networks = self.inner.networks.clone();
        let kept: BTreeSet<String> = self
            .db()
            .volumes()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        let t = Traces {
            app: t.app.clone(),
            container_ids: t.container_ids.clone(),
            container_names: t.container_names.clone(),
            volumes: t
                .volumes
                .iter()
                .filter(|(n, _)| !kept.contains(n))
                .cloned()
                .collect(),
            images: t.images.clone(),
            app_dir: t.app_dir.clone(),
        };
        let mut report = blocking(move || audit_machine(&t, &root, &run_root, &networks))
            .await
            .unwrap_or_else(|e| AuditReport {
                remaining: vec![format!("the audit itself failed: {e}")],
                ..AuditReport::default()
            });
        report.clean = report.remaining.is_empty();
        report
    }
}

/// Remove a directory tree; gone already is fine.
pub(super) fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: "removing",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The machine-wide search for an app's traces (blocking: reads /proc,
/// /sys, netlink, nft).
fn audit_machine(
    t: &Traces,
    root: &Path,
    run_root: &Path,
    networks: &crate::network::Networks,
) -> AuditReport {
    let mut r = AuditReport::default();
    let mut left = Vec::new();

    // Files under Berth's roots.
    r.checked.push(format!(
        "files under {} and {}",
        root.display(),
        run_root.display()
    ));
    let mut paths: Vec<PathBuf> = Vec::new();
    for id in &t.container_ids {
        paths.push(root.join("containers").join(id));
        paths.push(run_root.join("containers").join(id));
        paths.push(run_root.join("runtime").join(id));
    }
    for name in &t.container_names {
        paths.push(networks.netns_path(name));
    }
    for (_, p) in &t.volumes {
        paths.push(p.clone());
    }
    if let Some(d) = &t.app_dir {
        paths.push(d.clone());
    }
    for p in paths {
        if p.symlink_metadata().is_ok() {
            left.push(format!("file {}", p.display()));
        }
    }

    // Mounts.
    r.checked.push("mounts (/proc/self/mountinfo)".into());
    let needles: Vec<String> = t
        .container_ids
        .iter()
        .cloned()
        .chain(
            t.container_names
                .iter()
                .map(|n| networks.netns_path(n).display().to_string()),
        )
        .chain(t.volumes.iter().map(|(_, p)| p.display().to_string()))
        .collect();
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            let point = line.split(' ').nth(4).unwrap_or("");
            if needles.iter().any(|n| point.contains(n.as_str())) {
                left.push(format!("mount {point}"));
            }
        }
    }

    // Cgroups.
    r.checked.push("cgroups (/sys/fs/cgroup)".into());
    if let Ok(dirs) = std::fs::read_dir("/sys/fs/cgroup") {
        let mut hierarchies: Vec<PathBuf> = dirs.flatten().map(|d| d.path()).collect();
        hierarchies.push(PathBuf::from("/sys/fs/cgroup"));
        for h in hierarchies {
            for id in &t.container_ids {
                let rel = crate::containers::Containers::cgroup_path(id);
                let p = h.join(rel.trim_start_matches('/'));
                if p.is_dir() {
                    left.push(format!("cgroup {}", p.display()));
                }
            }
        }
    }

    // Network.
    r.checked
        .push("network links, namespaces and nftables tables".into());
    match networks.present(&t.app) {
        Ok(found) => left.extend(found),
        Err(e) => left.push(format!("could not look at network {}: {e}", t.app)),
    }
    for name in &t.container_names {
        left.extend(networks.present_endpoint(name));
    }

    // Processes.
    r.checked.push("processes".into());
    for (pid, what) in processes_of(&t.container_ids) {
        left.push(format!("process {pid} ({what})"));
    }

    r.remaining = left;
    r.clean = r.remaining.is_empty();
    r
}

/// Processes in a cgroup of, or with a command line naming, one of `ids`.
pub(super) fn processes_of(ids: &BTreeSet<String>) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if ids.is_empty() {
        return out;
    }
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cgroup = std::fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
        let cmdline = std::fs::read(p.path().join("cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        if ids
            .iter()
            .any(|id| cgroup.contains(id.as_str()) || cmdline.contains(id.as_str()))
        {
            let what = if cmdline.trim().is_empty() {
                std::fs::read_to_string(p.path().join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            } else {
                cmdline.trim().to_string()
            };
            out.push((pid, what));
        }
    }
    out
}
