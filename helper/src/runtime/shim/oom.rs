//! Did the kernel's OOM killer strike inside the container's cgroup?
//!
//! Read once, after the init has exited and before `runtime delete` removes
//! the cgroup: the `oom_kill` counter of `memory.oom_control` (v1) or
//! `memory.events` (v2). Kept here, small and self-contained, rather than in
//! `runtime::cgroups`, because the shim only needs this one counter and must
//! not depend on how the runtime manages its cgroups.

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// True if the container's memory cgroup has recorded an OOM kill.
pub(crate) fn oom_killed(bundle: &Path, id: &str) -> bool {
    let cgroups_path = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_owned));
    let unified = Path::new(CGROUP_ROOT).join("cgroup.controllers").exists();
    candidates(cgroups_path.as_deref(), id, unified)
        .into_iter()
        .any(|dir| oom_kills(&dir, unified) > 0)
}

/// Where the container's memory cgroup may be, most likely first.
fn candidates(cgroups_path: Option<&str>, id: &str, unified: bool) -> Vec<PathBuf> {
    let base = if unified {
        PathBuf::from(CGROUP_ROOT)
    } else {
        Path::new(CGROUP_ROOT).join("memory")
    };
    let own = own_cgroup(unified);
    let under = |rel: &str| -> Vec<PathBuf> {
        let rel = rel.trim_start_matches('/');
        let mut v = vec![base.join(rel)];
        if let Some(own) = &own {
            v.push(base.join(own.trim_start_matches('/')).join(rel));
        }
        v
    };
    match cgroups_path {
        // systemd driver notation "slice:prefix:name".
        Some(p) if p.contains(':') => {
            let parts: Vec<&str> = p.split(':').collect();
            let (slice, prefix, name) = (parts[0], parts[1], parts.get(2).copied().unwrap_or(id));
            let slice = if slice.is_empty() {
                "system.slice"
            } else {
                slice
            };
            under(&format!("{slice}/{prefix}-{name}.scope"))
        }
        Some(p) if p.starts_with('/') => vec![base.join(p.trim_start_matches('/'))],
        Some(p) => under(p),
        None => under(id),
    }
}

/// The shim's own cgroup (the memory hierarchy's on v1).
fn own_cgroup(unified: bool) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = if unified {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == "memory")
        };
        hit.then(|| path.to_owned())
    })
}

fn oom_kills(dir: &Path, unified: bool) -> u64 {
    let file = if unified {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    std::fs::read_to_string(dir.join(file))
        .map(|t| counter(&t, "oom_kill"))
        .unwrap_or(0)
}

fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(counter(v1, "oom_kill"), 2);
        let v2 = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(v2, "oom_kill"), 1);
        assert_eq!(counter("", "oom_kill"), 0);
    }

    #[test]
    fn absolute_paths() {
        let c = candidates(Some("/berth/abc"), "abc", false);
        assert_eq!(c, vec![PathBuf::from("/sys/fs/cgroup/memory/berth/abc")]);
        let c = candidates(Some("/berth/abc"), "abc", true);
        assert_eq!(c, vec![PathBuf::from("/sys/fs/cgroup/berth/abc")]);
    }
}
