//! Default OCI specs: what `runc spec` writes, with Docker's lists of
//! masked and read-only paths, and a rootless variant. Berth builds its
//! containers' configs from [`default_spec`] plus [`with_docker_security`].

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::json;

use super::{Error, Result};

/// Paths Docker hides from every container (an empty tmpfs over a
/// directory, /dev/null over a file).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in every container.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The `PATH` a container gets when its image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The spec `berth-runtime spec` writes: `sh` in `rootfs/` with a terminal,
/// new pid, network, ipc, uts, mount and cgroup namespaces, the default
/// mounts and devices, Docker's masked and read-only paths.
pub fn default_spec() -> Spec {
    let value = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [format!("PATH={DEFAULT_PATH}"), "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    });
    serde_json::from_value(value).expect("the default spec is valid")
}

/// `spec --rootless`: a user namespace mapping root to `uid`/`gid`, no
/// network namespace (so /sys is bound from the host), no cgroup mount or
/// device rules, and no `gid=` mount options (gid 5 is not mapped).
pub fn rootless_spec(uid: u32, gid: u32) -> Spec {
    let mut v = serde_json::to_value(default_spec()).expect("serializable");
    let linux = &mut v["linux"];
    linux["resources"] = json!(null);
    linux["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "cgroup"}, {"type": "user"}
    ]);
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    let mounts = v["mounts"].as_array_mut().expect("mounts");
    mounts.retain(|m| m["type"] != "cgroup");
    for m in mounts.iter_mut() {
        if m["type"] == "sysfs" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        if let Some(opts) = m["options"].as_array_mut() {
            opts.retain(|o| !o.as_str().unwrap_or("").starts_with("gid="));
        }
    }
    if let Some(obj) = v["linux"].as_object_mut() {
        obj.retain(|_, val| !val.is_null());
    }
    serde_json::from_value(v).expect("the rootless spec is valid")
}

/// Docker's default security on top of a spec: its capability set (in
/// every set but ambient) and its seccomp profile.
pub fn with_docker_security(spec: &mut Spec) {
    use oci_spec::runtime::LinuxCapabilities;
    let caps: oci_spec::runtime::Capabilities = super::security::docker_default_capabilities()
        .into_iter()
        .collect();
    if let Some(process) = spec.process_mut() {
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(caps.clone()))
            .set_effective(Some(caps.clone()))
            .set_permitted(Some(caps))
            .set_inheritable(None)
            .set_ambient(None);
        process.set_capabilities(Some(c));
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(Some(super::seccomp::docker_default()));
    }
}

/// Load `<bundle>/config.json`, with errors that name the file.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path).map_err(|e| Error::Spec {
        path: path.clone(),
        message: e.to_string(),
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// What the runtime needs of a spec before it starts anything.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("there is no process to run".into()))?;
    validate_process(process)?;
    if spec.root().is_none() {
        return Err(Error::InvalidSpec("root.path is missing".into()));
    }
    let plan = super::namespaces::Plan::from_spec(spec)?;
    if !plan.has(libc::CLONE_NEWNS) {
        return Err(Error::InvalidSpec(
            "the container needs a mount namespace (add {\"type\": \"mount\"} to linux.namespaces)"
                .into(),
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !plan.has(libc::CLONE_NEWUTS) {
        return Err(Error::InvalidSpec(
            "hostname is set but the container has no UTS namespace of its own".into(),
        ));
    }
    Ok(())
}

/// What a process needs: a command and an absolute working directory.
pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::InvalidSpec(
            "process.args is empty: name the command to run".into(),
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_has_docker_paths_mounts_and_namespaces() {
        let s = default_spec();
        validate(&s).unwrap();
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(
            linux.masked_paths().as_ref().unwrap().len(),
            MASKED_PATHS.len()
        );
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        let dests: Vec<_> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        let plan = crate::runtime::namespaces::Plan::from_spec(&s).unwrap();
        assert!(plan.has(libc::CLONE_NEWNET) && plan.has(libc::CLONE_NEWPID));
        assert!(!plan.has_user());
        assert_eq!(
            s.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
    }

    #[test]
    fn rootless_spec_maps_the_user_and_binds_sys() {
        let s = rootless_spec(1000, 1000);
        validate(&s).unwrap();
        let plan = crate::runtime::namespaces::Plan::from_spec(&s).unwrap();
        assert!(plan.new_user && !plan.has(libc::CLONE_NEWNET));
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("gid=5"));
        assert!(json.contains("\"hostID\":1000"));
        assert!(!json.contains("\"sysfs\""));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut s = default_spec();
        s.process_mut().as_mut().unwrap().set_args(Some(vec![]));
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("process.args"));
    }
}
