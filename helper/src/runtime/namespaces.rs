//! Which namespaces a container gets, in which order they are entered, and
//! the uid/gid maps of a new user namespace.
//!
//! Order matters: the user namespace comes first (it owns every namespace
//! created after it, and its maps must be written by the parent before the
//! child can act as root in it); namespaces given by path are joined next,
//! then the rest are unshared in one call. `CLONE_NEWPID` (and a pid
//! namespace joined by path) only applies to children, so the init forks
//! afterwards: the child is the container's pid 1.

use std::io::Write;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::{Context, Error, Result};

/// The kernel's flag for a namespace type.
pub fn clone_flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The `/proc/<pid>/ns/<name>` entries, in the order `exec_in` joins them:
/// user first (it grants the rights for the others), mount last (it
/// changes our root, after which host paths no longer resolve).
pub const JOIN_ORDER: [(&str, i32); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

/// The namespace plan of a spec.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Flags to unshare (a new user namespace is separate: `new_user`).
    pub unshare: i32,
    pub new_user: bool,
    /// Existing namespaces to join, user first.
    pub join: Vec<(i32, PathBuf)>,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut plan = Plan::default();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut seen = 0;
        for ns in &namespaces {
            let flag = clone_flag(ns.typ());
            if seen & flag != 0 {
                return Err(Error::InvalidSpec(format!(
                    "namespace {} is listed twice in linux.namespaces",
                    ns.typ()
                )));
            }
            seen |= flag;
            match (ns.path(), flag) {
                (Some(p), _) => plan.join.push((flag, p.clone())),
                (None, libc::CLONE_NEWUSER) => plan.new_user = true,
                (None, f) => plan.unshare |= f,
            }
        }
        plan.join.sort_by_key(|(f, _)| *f != libc::CLONE_NEWUSER);
        Ok(plan)
    }

    /// Does the container get a user namespace (new or joined)?
    pub fn has_user(&self) -> bool {
        self.new_user || self.join.iter().any(|(f, _)| *f == libc::CLONE_NEWUSER)
    }

    /// Does the container get its own namespace of this kind?
    pub fn has(&self, flag: i32) -> bool {
        self.unshare & flag != 0 || self.join.iter().any(|(f, _)| *f == flag)
    }
}

/// `0 1000 65536\n...`, the format of `/proc/<pid>/uid_map`.
pub fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The spec annotation naming the group (a gid) through which the init of
/// a container with a user namespace reaches its files on the host: the
/// directories on the way are 0710 with this group (berthd's, see
/// `containers::userns`). The runtime makes the container's state
/// directory so, and gives the init this group as its only supplementary
/// group while it is host root, before it enters the user namespace; the
/// switch to the container's user sets the groups anew before exec.
/// Without it the state directory is 0711, as runc makes it.
pub const TRAVERSE_GID_ANNOTATION: &str = "org.berth.runtime.traverse-gid";

/// The gid of [`TRAVERSE_GID_ANNOTATION`] for a container that has a user
/// namespace (a new or a joined one); None otherwise.
pub fn traverse_gid(spec: &Spec) -> Result<Option<u32>> {
    let Some(value) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(TRAVERSE_GID_ANNOTATION))
    else {
        return Ok(None);
    };
    if !Plan::from_spec(spec)?.has_user() {
        return Ok(None);
    }
    match value.parse::<u32>() {
        // Group 0 would give the init host root's group.
        Ok(gid) if gid != 0 => Ok(Some(gid)),
        _ => Err(Error::InvalidSpec(format!(
            "annotation {TRAVERSE_GID_ANNOTATION} must be a gid other than 0, not {value:?}"
        ))),
    }
}

/// Write the spec's maps for `pid`, which just unshared its user namespace.
/// Called by the parent: only a process outside the namespace may map ids
/// other than its own.
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gids = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    if uids.is_empty() || gids.is_empty() {
        return Err(Error::InvalidSpec(
            "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
        ));
    }
    if !rustix::process::geteuid().is_root() {
        // An unprivileged writer may only map its own gid after denying
        // setgroups (user_namespaces(7)).
        write_proc(pid, "setgroups", "deny")?;
    }
    write_proc(pid, "gid_map", &format_map(&gids))?;
    write_proc(pid, "uid_map", &format_map(&uids))?;
    Ok(())
}

fn write_proc(pid: i32, name: &str, data: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{name}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .ctx(|| {
            format!(
                "writing {:?} to {path} (check the spec's id mappings)",
                data.trim()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": { "namespaces": namespaces }
        }))
        .unwrap()
    }

    #[test]
    fn new_and_joined_namespaces_user_joined_first() {
        let s = spec(serde_json::json!([
            {"type": "pid"}, {"type": "network", "path": "/run/netns/x"},
            {"type": "user", "path": "/proc/9/ns/user"}, {"type": "mount"}
        ]));
        let p = Plan::from_spec(&s).unwrap();
        assert_eq!(p.unshare, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        assert!(!p.new_user);
        assert!(p.has_user());
        assert_eq!(p.join[0], (libc::CLONE_NEWUSER, "/proc/9/ns/user".into()));
        assert!(p.has(libc::CLONE_NEWNET));
    }

    #[test]
    fn the_traverse_gid_counts_only_with_a_user_namespace() {
        let mut s = spec(serde_json::json!([{"type": "user"}, {"type": "mount"}]));
        assert_eq!(traverse_gid(&s).unwrap(), None);
        let annotate = |s: &mut Spec, v: &str| {
            s.set_annotations(Some(
                [(TRAVERSE_GID_ANNOTATION.to_string(), v.to_string())].into(),
            ));
        };
        annotate(&mut s, "987");
        assert_eq!(traverse_gid(&s).unwrap(), Some(987));
        for bad in ["0", "-1", "berth-userns", ""] {
            annotate(&mut s, bad);
            let e = traverse_gid(&s).unwrap_err().to_string();
            assert!(e.contains(TRAVERSE_GID_ANNOTATION), "{bad}: {e}");
        }
        let mut host = spec(serde_json::json!([{"type": "mount"}]));
        annotate(&mut host, "987");
        assert_eq!(traverse_gid(&host).unwrap(), None);
    }

    #[test]
    fn duplicate_namespace_is_refused() {
        let s = spec(serde_json::json!([{"type": "pid"}, {"type": "pid"}]));
        assert!(Plan::from_spec(&s).is_err());
    }

    #[test]
    fn map_format() {
        let m: Vec<LinuxIdMapping> = serde_json::from_value(serde_json::json!([
            {"containerID": 0, "hostID": 100000, "size": 65536}
        ]))
        .unwrap();
        assert_eq!(format_map(&m), "0 100000 65536\n");
    }
}
