//! `berth doctor`: the audit for everything berthd made, against its
//! records. What no record explains is listed and, with `repair`, removed:
//! apps a crash left half installed or half removed, container files
//! without a container, app files without an app, volumes without a
//! record, mounts under Berth's roots that nothing running uses, this
//! berthd's network objects that belong to no app, and the cgroups and
//! processes of containers that are gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_api::AuditReport;
use tokio::sync::watch;

use super::install::{blocking, AppProgress};
use super::manager::{state_err, AppManager};
use super::remove::processes_of;
use super::Result;
use crate::ledger::Resource;

impl AppManager {
    /// Audit everything against the records; with `repair`, remove what
    /// no record explains.
    pub async fn doctor(&self, repair: bool) -> Result<AuditReport> {
        let mut r = AuditReport::default();
        let root = self.inner.root.clone();
        let run = self.inner.run_root.clone();

        // Apps a crash left half-way (and no operation is running on).
        r.checked.push("installed apps and their ledgers".into());
        let (tx, _rx) = watch::channel(AppProgress::default());
        for a in self.db().apps().map_err(state_err)? {
            if !matches!(a.state.as_str(), "installing" | "removing") {
                continue;
            }
            let Ok(_busy) = self.busy(&a.id, "repairing") else {
                continue;
            };
            let what = format!("app {} was left {} by a crash", a.id, a.state);
            if !repair {
                r.remaining.push(what);
                continue;
            }
            let left = if a.state == "installing" {
                self.roll_back(&a.id).await?
            } else {
                self.resume_removal(&a, &tx).await?.remaining
            };
            if left.is_empty() {
                r.repaired.push(what);
            } else {
                r.remaining.extend(left);
            }
        }
        // Installed apps whose containers are gone.
        let apps = self.db().apps().map_err(state_err)?;
        for a in &apps {
            for e in self.entries(&a.id)? {
                if let Resource::Container { name, .. } = &e.resource {
                    if e.made && self.inner.containers.find(name).is_err() {
                        r.remaining.push(format!(
                            "app {}: its container {name} is missing; uninstall and install it again",
                            a.id
                        ));
                    }
                }
            }
        }

        // Files.
        r.checked.push(format!(
            "files under {} and {}",
            root.display(),
            run.display()
        ));
        let containers = self.inner.containers.list(true)?;
        let known: BTreeSet<String> = containers.iter().map(|c| c.id.clone()).collect();
        let running: BTreeSet<String> = containers
            .iter()
            .filter(|c| c.state == "running")
            .map(|c| c.id.clone())
            .collect();
        let mut gone_ids = BTreeSet::new();
        let mut stray: Vec<PathBuf> = Vec::new();
        for dir in [
            root.join("containers"),
            run.join("containers"),
            run.join("runtime"),
        ] {
            for name in entries(&dir) {
                if is_container_id(&name) && !known.contains(&name) {
                    gone_ids.insert(name.clone());
                    stray.push(dir.join(&name));
                }
            }
        }
        let app_ids: BTreeSet<String> = apps.iter().map(|a| a.id.clone()).collect();
        for name in entries(&root.join("apps")) {
            // `.<id>.tmp` is an install's copy on its way into place.
            let id = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .unwrap_or(&name);
            if !app_ids.contains(id) {
                stray.push(root.join("apps").join(&name));
            }
        }
        let volumes: BTreeSet<String> = self
            .db()
            .volumes()
            .map_err(state_err)?
            .into_iter()
            .map(|v| v.name)
            .collect();
        for name in entries(&root.join("volumes")) {
            if !volumes.contains(&name) {
                stray.push(root.join("volumes").join(&name));
            }
        }
        for v in &volumes {
            if !root.join("volumes").join(v).exists() {
                let what = format!("volume {v} is recorded but its directory is gone");
                if repair {
                    self.db().remove_volume(v).map_err(state_err)?;
                    r.repaired.push(what);
                } else {
                    r.remaining.push(what);
                }
            }
        }

        // Mounts under the roots that nothing running uses.
        r.checked.push("mounts (/proc/self/mountinfo)".into());
        let netns_dir = run.join("netns");
        let expected_netns: BTreeSet<PathBuf> = self
            .inner
            .networks
            .list()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|n| n.endpoints.into_iter().map(|e| e.netns))
            .collect();
        let mut stray_mounts = Vec::new();
        let mut settling = Vec::new();
        for point in mount_points() {
            let p = PathBuf::from(&point);
            if !(p.starts_with(&root) || p.starts_with(&run)) {
                continue;
            }
            let ok = running
                .iter()
                .any(|id| p == run.join("containers").join(id).join("bundle/rootfs"))
                || expected_netns.contains(&p)
                || p == netns_dir;
            if ok {
                continue;
            }
            // The root of a container that is not running: a start mounts
            // it before it records the container as running, so it may be
            // one under way. Its next start or `rm` unmounts it; the doctor
            // only reports it.
            let starting = known
                .iter()
                .find(|id| p == run.join("containers").join(id).join("bundle/rootfs"));
            match starting {
                Some(id) => settling.push(format!(
                    "mount {} of container {} that is not running (its next start or `berth rm` removes it)",
                    p.display(),
                    &id[..12]
                )),
                None => stray_mounts.push(p),
            }
        }
        r.remaining.extend(settling);

        // Network objects of this berthd that no app explains.
        r.checked
            .push("network links, namespaces and nftables tables".into());
        let expected: BTreeSet<String> = self
            .db()
            .ledger_all()
            .map_err(state_err)?
            .into_iter()
            .filter(|row| row.kind == "network")
            .map(|row| row.name)
            .collect();
        let networks = self.inner.networks.clone();
        let leftovers = blocking(move || networks.leftovers(&expected)).await??;

        // Cgroups and processes of containers that are gone or not running.
        r.checked.push("cgroups and processes of containers".into());
        let mut dead: BTreeSet<String> = gone_ids.clone();
        dead.extend(known.difference(&running).cloned());
        let mut stray_cgroups = Vec::new();
        for h in cgroup_hierarchies() {
            for id in &dead {
                let p = h.join(crate::containers::Containers::cgroup_path(id));
                if p.is_dir() {
                    stray_cgroups.push(p);
                }
            }
        }
        let procs = processes_of(&gone_ids);

        // Report, and repair: processes, mounts, files, cgroups, network.
        for (pid, what) in procs {
            let line = format!("process {pid} ({what}) of a removed container");
            if repair
                && rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid as i32).expect("pid > 0"),
                    rustix::process::Signal::KILL,
                )
                .is_ok()
            {
                r.repaired.push(line);
            } else {
                r.remaining.push(line);
            }
        }
        stray_mounts.sort();
        stray_mounts.reverse(); // deepest first
        for p in stray_mounts {
            let line = format!("mount {}", p.display());
            if repair && rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH).is_ok() {
                r.repaired.push(line);
            } else {
                r.remaining.push(line);
            }
        }
        for p in stray {
            let line = format!("file {} (no record explains it)", p.display());
            if repair
                && std::fs::remove_dir_all(&p)
                    .or_else(|_| std::fs::remove_file(&p))
                    .is_ok()
            {
                r.repaired.push(line);
            } else {
                r.remaining.push(line);
            }
        }
        for p in stray_cgroups {
            let line = format!("cgroup {}", p.display());
            if repair && remove_cgroup(&p) {
                r.repaired.push(line);
            } else {
                r.remaining.push(line);
            }
        }
        for l in leftovers {
            let line = l.to_string();
            if repair {
                let networks = self.inner.networks.clone();
                match blocking(move || networks.remove_leftover(&l)).await? {
                    Ok(()) => r.repaired.push(line),
                    Err(e) => r.remaining.push(format!("{line}: {e}")),
                }
            } else {
                r.remaining.push(line);
            }
        }
        r.clean = r.remaining.is_empty();
        Ok(r)
    }
}

/// Names in a directory (none if it cannot be read).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Every cgroup hierarchy's root (v1 controllers, the v2 mount).
pub(super) fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.push(PathBuf::from("/sys/fs/cgroup"));
    v
}

/// Remove an empty cgroup (its children first).
fn remove_cgroup(p: &Path) -> bool {
    for child in entries(p) {
        let c = p.join(child);
        if c.is_dir() {
            remove_cgroup(&c);
        }
    }
    std::fs::remove_dir(p).is_ok()
}
