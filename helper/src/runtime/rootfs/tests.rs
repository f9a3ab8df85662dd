//! The mount plan, asserted on a recording `Syscall` (no root needed).

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::*;
use crate::runtime::spec::{default_spec, MASKED_PATHS, READONLY_PATHS};
use crate::runtime::syscall::{Call, RecordingSyscall};

const NOSUID_NODEV_NOEXEC: u64 = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

fn config(new_netns: bool, userns: bool) -> Config {
    Config {
        rootfs: "/bundle/rootfs".into(),
        bundle: "/bundle".into(),
        new_netns,
        userns,
        cgroupns: true,
        cgroups: CgroupLayout::Legacy(vec![
            (
                "cpu,cpuacct".into(),
                "cgroup".into(),
                Some("cpu,cpuacct".into()),
            ),
            (
                "systemd".into(),
                "cgroup".into(),
                Some("name=systemd".into()),
            ),
            ("unified".into(), "cgroup2".into(), None),
        ]),
    }
}

fn find<'a>(mounts: &'a [MountArgs], target: &str) -> Vec<&'a MountArgs> {
    mounts
        .iter()
        .filter(|m| m.target == Path::new(target))
        .collect()
}

#[test]
fn default_spec_plan_starts_private_and_binds_the_rootfs() {
    let sys = RecordingSyscall::default();
    prepare(&sys, &default_spec(), &config(true, false)).unwrap();
    let mounts = sys.mounts();
    assert_eq!(
        mounts[0],
        MountArgs {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None
        }
    );
    assert_eq!(
        mounts[1].source.as_deref(),
        Some(Path::new("/bundle/rootfs"))
    );
    assert_eq!(mounts[1].flags, libc::MS_BIND | libc::MS_REC);
}

#[test]
fn default_spec_plan_mounts_proc_dev_pts_shm_mqueue_sys() {
    let sys = RecordingSyscall::default();
    prepare(&sys, &default_spec(), &config(true, false)).unwrap();
    let mounts = sys.mounts();
    let proc_ = find(&mounts, "/bundle/rootfs/proc")[0];
    assert_eq!(proc_.fstype.as_deref(), Some("proc"));
    assert_eq!(proc_.flags, NOSUID_NODEV_NOEXEC);
    let dev = find(&mounts, "/bundle/rootfs/dev")[0];
    assert_eq!(dev.fstype.as_deref(), Some("tmpfs"));
    assert_eq!(dev.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
    assert_eq!(dev.data.as_deref(), Some("mode=755,size=65536k"));
    let pts = find(&mounts, "/bundle/rootfs/dev/pts")[0];
    assert_eq!(
        pts.data.as_deref(),
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
    );
    assert_eq!(
        find(&mounts, "/bundle/rootfs/dev/mqueue")[0]
            .fstype
            .as_deref(),
        Some("mqueue")
    );
    let sys_ = find(&mounts, "/bundle/rootfs/sys")[0];
    assert_eq!(sys_.fstype.as_deref(), Some("sysfs"));
    assert_eq!(sys_.flags, NOSUID_NODEV_NOEXEC | libc::MS_RDONLY);
}

#[test]
fn cgroup_v1_is_a_tmpfs_with_each_hierarchy_then_read_only() {
    let sys = RecordingSyscall::default();
    prepare(&sys, &default_spec(), &config(true, false)).unwrap();
    let mounts = sys.mounts();
    let cg = find(&mounts, "/bundle/rootfs/sys/fs/cgroup");
    assert_eq!(cg[0].fstype.as_deref(), Some("tmpfs"));
    assert_eq!(
        cg.last().unwrap().flags & (libc::MS_REMOUNT | libc::MS_RDONLY),
        libc::MS_REMOUNT | libc::MS_RDONLY
    );
    let cpu = find(&mounts, "/bundle/rootfs/sys/fs/cgroup/cpu,cpuacct")[0];
    assert_eq!(cpu.data.as_deref(), Some("cpu,cpuacct"));
    assert_eq!(cpu.flags & libc::MS_RDONLY, libc::MS_RDONLY);
    let unified = find(&mounts, "/bundle/rootfs/sys/fs/cgroup/unified")[0];
    assert_eq!(unified.fstype.as_deref(), Some("cgroup2"));
}

#[test]
fn without_a_network_namespace_sys_is_the_hosts_read_only() {
    let sys = RecordingSyscall::default();
    prepare(&sys, &default_spec(), &config(false, false)).unwrap();
    let mounts = sys.mounts();
    let binds = find(&mounts, "/bundle/rootfs/sys");
    assert_eq!(binds[0].source.as_deref(), Some(Path::new("/sys")));
    assert_eq!(binds[0].flags, libc::MS_BIND | libc::MS_REC);
    assert_eq!(binds[0].fstype, None);
    // The bind ignores ro: it comes with the remount.
    assert_eq!(
        binds[1].flags,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_REC | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC
    );
}

#[test]
fn devices_are_made_with_mknod_and_linked() {
    let sys = RecordingSyscall::default();
    prepare(&sys, &default_spec(), &config(true, false)).unwrap();
    let calls = sys.calls.borrow();
    assert!(calls.contains(&Call::Mknod(
        "/bundle/rootfs/dev/null".into(),
        libc::S_IFCHR | 0o666,
        libc::makedev(1, 3)
    )));
    let nodes = calls
        .iter()
        .filter(|c| matches!(c, Call::Mknod(..)))
        .count();
    assert_eq!(nodes, 6);
    assert!(calls.contains(&Call::Symlink(
        "pts/ptmx".into(),
        "/bundle/rootfs/dev/ptmx".into()
    )));
    assert!(calls.contains(&Call::Symlink(
        "/proc/self/fd".into(),
        "/bundle/rootfs/dev/fd".into()
    )));
}

#[test]
fn in_a_user_namespace_devices_are_bound_from_the_host() {
    let sys = RecordingSyscall::default();
    prepare(&sys, &default_spec(), &config(true, true)).unwrap();
    let mounts = sys.mounts();
    let null = find(&mounts, "/bundle/rootfs/dev/null")[0];
    assert_eq!(null.source.as_deref(), Some(Path::new("/dev/null")));
    assert_eq!(null.flags, libc::MS_BIND);
    assert!(!sys
        .calls
        .borrow()
        .iter()
        .any(|c| matches!(c, Call::Mknod(..))));
}

#[test]
fn an_image_dev_null_symlink_is_removed_not_followed() {
    let mut sys = RecordingSyscall::default();
    sys.lstat
        .insert("/bundle/rootfs/dev/null".into(), (FileType::Symlink, 0));
    prepare(&sys, &default_spec(), &config(true, false)).unwrap();
    let calls = sys.calls.borrow();
    let unlink = calls
        .iter()
        .position(|c| *c == Call::Unlink("/bundle/rootfs/dev/null".into()))
        .unwrap();
    let mknod = calls
        .iter()
        .position(|c| matches!(c, Call::Mknod(p, ..) if p == Path::new("/bundle/rootfs/dev/null")))
        .unwrap();
    assert!(unlink < mknod);
}

#[test]
fn masked_paths_dirs_get_a_read_only_tmpfs_files_get_dev_null() {
    let mut sys = RecordingSyscall::default();
    sys.files.insert("/proc/kcore".into());
    finish(&sys, &default_spec()).unwrap();
    let mounts = sys.mounts();
    let kcore = find(&mounts, "/proc/kcore")[0];
    assert_eq!(kcore.source.as_deref(), Some(Path::new("/dev/null")));
    assert_eq!(kcore.flags, libc::MS_BIND);
    let acpi = find(&mounts, "/proc/acpi")[0];
    assert_eq!(acpi.fstype.as_deref(), Some("tmpfs"));
    assert_eq!(acpi.flags, libc::MS_RDONLY);
    for p in MASKED_PATHS {
        assert!(!find(&mounts, p).is_empty(), "{p} is not masked");
    }
}

#[test]
fn masking_refuses_a_dev_null_that_is_not_the_null_device() {
    // CVE-2025-31133 class.
    for (kind, rdev) in [
        (FileType::Symlink, 0),
        (FileType::RegularFile, 0),
        (FileType::CharacterDevice, libc::makedev(1, 5)),
    ] {
        let mut sys = RecordingSyscall::default();
        sys.files.insert("/proc/kcore".into());
        sys.lstat.insert("/dev/null".into(), (kind, rdev));
        let err = finish(&sys, &default_spec()).unwrap_err();
        assert!(matches!(err, Error::Unsafe { .. }), "{err}");
        assert!(find(&sys.mounts(), "/proc/kcore").is_empty());
    }
}

#[test]
fn missing_masked_and_readonly_paths_are_skipped() {
    let mut sys = RecordingSyscall::default();
    sys.missing.insert("/proc/timer_stats".into());
    sys.missing.insert("/proc/irq".into());
    finish(&sys, &default_spec()).unwrap();
    let mounts = sys.mounts();
    assert!(find(&mounts, "/proc/timer_stats").is_empty());
    assert!(find(&mounts, "/proc/irq").is_empty());
}

#[test]
fn readonly_paths_are_bound_then_remounted_read_only() {
    let sys = RecordingSyscall::default();
    finish(&sys, &default_spec()).unwrap();
    let mounts = sys.mounts();
    for p in READONLY_PATHS {
        let m = find(&mounts, p);
        assert_eq!(m[0].source.as_deref(), Some(Path::new(p)));
        assert_eq!(m[0].flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(
            m[1].flags,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_REC | libc::MS_RDONLY
        );
    }
    // root.readonly is true in the default spec: the last mount.
    let last = mounts.last().unwrap();
    assert_eq!(last.target, PathBuf::from("/"));
    assert_eq!(
        last.flags,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY
    );
}

#[test]
fn sysctls_are_written_before_proc_sys_turns_read_only() {
    let mut spec = default_spec();
    let mut sysctl = std::collections::HashMap::new();
    sysctl.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
    spec.linux_mut().as_mut().unwrap().set_sysctl(Some(sysctl));
    let sys = RecordingSyscall::default();
    finish(&sys, &spec).unwrap();
    let calls = sys.calls.borrow();
    assert_eq!(
        calls[0],
        Call::WriteFile("/proc/sys/net/ipv4/ip_forward".into(), "1".into())
    );
    assert!(sysctl_path("../x").is_err());
    assert!(sysctl_path("kernel..x").is_err());
}

#[test]
fn legacy_cgroup_layout_from_proc_self_cgroup() {
    let text = "12:cpu,cpuacct:/\n11:pids:/x\n1:name=systemd:/\n0::/\n";
    assert_eq!(
        CgroupLayout::parse_legacy(text),
        vec![
            (
                "cpu,cpuacct".to_string(),
                "cgroup".to_string(),
                Some("cpu,cpuacct".to_string())
            ),
            (
                "pids".to_string(),
                "cgroup".to_string(),
                Some("pids".to_string())
            ),
            (
                "systemd".to_string(),
                "cgroup".to_string(),
                Some("name=systemd".to_string())
            ),
            ("unified".to_string(), "cgroup2".to_string(), None),
        ]
    );
}

#[test]
fn a_bind_mount_with_a_relative_source_is_bundle_relative_and_missing_sources_fail() {
    let mut spec = default_spec();
    let m: oci_spec::runtime::Mount = serde_json::from_value(serde_json::json!({
        "destination": "/data", "type": "bind", "source": "no-such-dir", "options": ["rbind", "ro"]
    }))
    .unwrap();
    spec.set_mounts(Some(vec![m]));
    let sys = RecordingSyscall::default();
    let err = prepare(&sys, &spec, &config(true, false)).unwrap_err();
    assert!(err.to_string().contains("/bundle/no-such-dir"), "{err}");
}
