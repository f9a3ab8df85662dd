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
        mounts[1],
        MountArgs {
            source: None,
            target: "/bundle/rootfs".into(),
            fstype: None,
            flags: libc::MS_PRIVATE,
            data: None
        }
    );
    assert_eq!(
        mounts[2].source.as_deref(),
        Some(Path::new("/bundle/rootfs"))
    );
    assert_eq!(mounts[2].flags, libc::MS_BIND | libc::MS_REC);
}

fn with_root_propagation(p: &str) -> Spec {
    let mut spec = default_spec();
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_rootfs_propagation(Some(p.into()));
    spec.set_linux(Some(linux));
    spec
}

#[test]
fn shared_root_propagation_keeps_the_rootfs_parent_private_until_after_pivot() {
    for (name, flags) in [
        ("shared", libc::MS_SHARED),
        ("rshared", libc::MS_SHARED | libc::MS_REC),
        ("slave", libc::MS_SLAVE),
        ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
        ("unbindable", libc::MS_UNBINDABLE),
    ] {
        let spec = with_root_propagation(name);
        let sys = RecordingSyscall::default();
        prepare(&sys, &spec, &config(true, false)).unwrap();
        pivot(&sys, &spec, Path::new("/bundle/rootfs")).unwrap();
        let calls = sys.calls.borrow();
        let mounts = sys.mounts();
        assert_eq!(mounts[0].target, Path::new("/"), "{name}");
        assert_eq!(mounts[0].flags, libc::MS_REC | flags, "{name}");
        // pivot_root's IS_SHARED(new_mnt->mnt_parent) check.
        assert_eq!(mounts[1].target, Path::new("/bundle/rootfs"), "{name}");
        assert_eq!(mounts[1].flags, libc::MS_PRIVATE, "{name}");
        assert_eq!(mounts[2].flags, libc::MS_BIND | libc::MS_REC, "{name}");
        // The requested propagation, exactly, on the new root.
        let pivoted = calls
            .iter()
            .position(|c| matches!(c, Call::PivotRoot(_)))
            .unwrap();
        assert_eq!(
            calls[pivoted + 1..],
            [Call::Mount(MountArgs {
                source: None,
                target: "/".into(),
                fstype: None,
                flags,
                data: None
            })],
            "{name}"
        );
    }
}

#[test]
fn without_root_propagation_pivot_changes_nothing_after() {
    let sys = RecordingSyscall::default();
    pivot(&sys, &default_spec(), Path::new("/bundle/rootfs")).unwrap();
    assert_eq!(
        *sys.calls.borrow(),
        [Call::PivotRoot("/bundle/rootfs".into())]
    );
}

#[test]
fn a_bad_root_propagation_is_refused() {
    let sys = RecordingSyscall::default();
    let spec = with_root_propagation("sideways");
    assert!(matches!(
        prepare(&sys, &spec, &config(true, false)),
        Err(Error::InvalidSpec(_))
    ));
    assert!(sys.calls.borrow().is_empty());
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

fn with_device(uid: Option<u32>, gid: Option<u32>) -> Spec {
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType};
    let mut spec = default_spec();
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut b = LinuxDeviceBuilder::default()
        .path("/dev/custom")
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(3)
        .file_mode(0o640u32);
    if let Some(uid) = uid {
        b = b.uid(uid);
    }
    if let Some(gid) = gid {
        b = b.gid(gid);
    }
    linux.set_devices(Some(vec![b.build().unwrap()]));
    spec.set_linux(Some(linux));
    spec
}

#[test]
fn a_device_made_with_mknod_gets_its_owner() {
    let sys = RecordingSyscall::default();
    prepare(
        &sys,
        &with_device(Some(1000), Some(1001)),
        &config(true, false),
    )
    .unwrap();
    let calls = sys.calls.borrow();
    let mknod = calls
        .iter()
        .position(|c| {
            *c == Call::Mknod(
                "/bundle/rootfs/dev/custom".into(),
                libc::S_IFCHR | 0o640,
                libc::makedev(1, 3),
            )
        })
        .unwrap();
    assert_eq!(
        calls[mknod + 1],
        Call::Lchown("/bundle/rootfs/dev/custom".into(), 1000, 1001)
    );
    // The defaults (and a device without uid/gid) belong to root.
    assert!(calls.contains(&Call::Lchown("/bundle/rootfs/dev/null".into(), 0, 0)));
    let sys = RecordingSyscall::default();
    prepare(&sys, &with_device(None, Some(7)), &config(true, false)).unwrap();
    assert!(sys
        .calls
        .borrow()
        .contains(&Call::Lchown("/bundle/rootfs/dev/custom".into(), 0, 7)));
}

#[test]
fn a_bound_device_keeps_the_hosts_owner() {
    let sys = RecordingSyscall::default();
    prepare(
        &sys,
        &with_device(Some(1000), Some(1001)),
        &config(true, true),
    )
    .unwrap();
    assert!(!find(&sys.mounts(), "/bundle/rootfs/dev/custom").is_empty());
    assert!(!sys
        .calls
        .borrow()
        .iter()
        .any(|c| matches!(c, Call::Lchown(..))));
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
