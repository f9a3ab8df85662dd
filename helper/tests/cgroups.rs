//! `runtime::cgroups` for real (root): limits hold, counters move, and
//! nothing is left under /sys/fs/cgroup. Runs on whichever layout the
//! machine has (v1, hybrid or v2); every cgroup is named
//! `berth-test-<pid>-<n>` and removed by a guard even when a test fails.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berthd::runtime::cgroups::{self, Cgroup};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxHugepageLimitBuilder,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    LinuxThrottleDeviceBuilder,
};

const BUSYBOX: &str = "/bin/busybox";
const MIB: i64 = 1 << 20;

fn unique_path() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "berth-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Kills and removes the cgroup when dropped, also on panic.
struct Guard {
    cgroup: Option<Cgroup>,
    path: String,
}

impl Guard {
    fn new(resources: &LinuxResources) -> Guard {
        let path = unique_path();
        let cgroup = Cgroup::create(&path, resources).expect("create cgroup");
        Guard {
            cgroup: Some(cgroup),
            path,
        }
    }

    fn cg(&self) -> &Cgroup {
        self.cgroup.as_ref().unwrap()
    }

    /// Deletes now, asserting success (the guard then has nothing to do).
    fn delete(mut self) {
        let cgroup = self.cgroup.take().unwrap();
        cgroup.kill_all(libc::SIGKILL).unwrap();
        cgroup.delete().unwrap();
        assert_nothing_left(&self.path);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.kill_all(libc::SIGKILL);
            if let Err(e) = cgroup.delete() {
                eprintln!("cleanup of cgroup {}: {e}", self.path);
            }
        }
    }
}

fn assert_nothing_left(path: &str) {
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = entry.path().join(path);
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
    assert!(!std::path::Path::new("/sys/fs/cgroup").join(path).exists());
}

/// Starts `script` under busybox sh, held at a `read` until it is in the
/// cgroup, so everything it starts is born inside.
fn spawn_in(cgroup: &Cgroup, script: &str) -> Child {
    let mut child = Command::new(BUSYBOX)
        .args(["sh", "-c", &format!("read go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busybox");
    cgroup.add_task(child.id()).expect("add task");
    assert!(cgroup.procs().unwrap().contains(&child.id()));
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child
}

fn resources(memory: Option<i64>, pids: Option<i64>, cpus: Option<f64>) -> LinuxResources {
    let mut builder = LinuxResourcesBuilder::default();
    if let Some(limit) = memory {
        // No swap on top: memory+swap equals memory (Docker's
        // --memory-swap equal to --memory).
        builder = builder.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()
                .unwrap(),
        );
    }
    if let Some(limit) = pids {
        builder = builder.pids(LinuxPidsBuilder::default().limit(limit).build().unwrap());
    }
    if let Some(cpus) = cpus {
        let period = 100_000u64;
        builder = builder.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((cpus * period as f64) as i64)
                .build()
                .unwrap(),
        );
    }
    builder.build().unwrap()
}

#[test]
fn version_is_detected() {
    let v = cgroups::version();
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(v, cgroups::CgroupVersion::V2);
    } else {
        assert_ne!(v, cgroups::CgroupVersion::V2);
    }
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    let guard = Guard::new(&resources(Some(32 * MIB), Some(64), None));
    let stats = guard.cg().stats().unwrap();
    assert_eq!(stats.memory_limit, Some(32 << 20));
    assert_eq!(stats.oom_kills, 0);
    assert!(!guard.cg().oom_killed());

    // A shell variable of 100 MB of 'a's: far over 32 MiB.
    let child = spawn_in(
        guard.cg(),
        r#"x=$(busybox head -c 100000000 /dev/zero | busybox tr "\0" a); echo survived ${#x}"#,
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("survived"),
        "the hog was not stopped: {stdout}"
    );
    assert!(
        guard.cg().oom_killed(),
        "oom_killed() false; stats {:?}",
        guard.cg().stats()
    );
    assert!(guard.cg().stats().unwrap().oom_kills >= 1);
    guard.delete();
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    let guard = Guard::new(&resources(None, Some(16), None));
    assert_eq!(guard.cg().stats().unwrap().pids_limit, Some(16));
    let child = spawn_in(
        guard.cg(),
        "for i in $(busybox seq 1 50); do busybox sleep 30 & done; echo launched; busybox sleep 30",
    );
    // Sample while the shell tries all 50: never above the limit.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(guard.cg().procs().unwrap().len());
        let current = guard.cg().stats().unwrap().pids_current;
        assert!(current <= 16, "pids.current {current} over the limit");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The shell and its sleeps fill the cgroup (a slot may be held by a
    // fork in flight when sampled), and no more.
    assert!(
        (12..=16).contains(&peak),
        "peak of {peak} processes under a limit of 16"
    );
    guard.cg().kill_all(libc::SIGKILL).unwrap();
    assert!(guard.cg().procs().unwrap().is_empty());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fork"),
        "expected fork failures, got: {stderr}"
    );
    guard.delete();
}

#[test]
fn cpu_quota_holds_and_usage_grows() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    let guard = Guard::new(&resources(None, None, Some(0.5)));
    let mut child = spawn_in(guard.cg(), "while :; do :; done");
    std::thread::sleep(Duration::from_millis(200));
    let before = guard.cg().stats().unwrap().cpu_usage_ns;
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = guard.cg().stats().unwrap().cpu_usage_ns;
    let used = (after - before) as f64 / start.elapsed().as_nanos() as f64;
    assert!(after > before, "cpu usage did not grow");
    // Half a core, with room for scheduling slack but far from a full one.
    assert!(
        used > 0.2 && used < 0.7,
        "used {used:.2} of a core under a 0.5 quota"
    );
    guard.delete();
    let _ = child.wait();
}

#[test]
fn stats_load_freeze_and_delete() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    let guard = Guard::new(&resources(Some(64 * MIB), Some(32), Some(1.0)));
    let child = spawn_in(guard.cg(), "busybox sleep 30");
    let pid = child.id();

    // A second handle, as berthd has after a restart.
    let loaded = Cgroup::load(&guard.path).unwrap();
    assert_eq!(loaded.path(), guard.path);
    std::thread::sleep(Duration::from_millis(100));
    let procs = loaded.procs().unwrap();
    assert!(procs.contains(&pid), "{procs:?}");
    let stats = loaded.stats().unwrap();
    assert!(stats.memory_usage > 0, "{stats:?}");
    assert!(stats.memory_working_set <= stats.memory_usage);
    assert_eq!(stats.memory_limit, Some(64 << 20));
    assert_eq!(stats.pids_current, procs.len() as u64);
    assert_eq!(stats.pids_limit, Some(32));

    loaded.freeze().unwrap();
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Frozen tasks sleep in the freezer (D or S), never run.
    assert!(!state.contains(") R "), "{state}");
    loaded.thaw().unwrap();

    // A non-fatal signal reaches every process.
    loaded.kill_all(libc::SIGTERM).unwrap();
    let status = { child }.wait().unwrap();
    assert!(!status.success());

    assert!(matches!(
        Cgroup::load("berth-test-does-not-exist"),
        Err(cgroups::Error::NotFound(_))
    ));
    assert!(matches!(
        Cgroup::load("../etc"),
        Err(cgroups::Error::BadPath(_))
    ));
    guard.delete();
}

#[test]
fn the_last_container_cgroup_takes_berths_parent_with_it() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    // Two cgroups under Berth's own parent: the first delete leaves the
    // parent for the second, the second removes it (unless a running
    // berthd on this machine has containers there too).
    let a = format!("{}/{}", cgroups::PARENT, unique_path());
    let b = format!("{}/{}", cgroups::PARENT, unique_path());
    let ca = Cgroup::create(&a, &LinuxResources::default()).expect("create a");
    let cb = Cgroup::create(&b, &LinuxResources::default()).expect("create b");
    let parents = || -> Vec<std::path::PathBuf> {
        ["memory", "pids", "unified", ""]
            .iter()
            .map(|c| {
                std::path::Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(cgroups::PARENT)
            })
            .filter(|p| p.is_dir())
            .collect()
    };
    ca.delete().expect("delete a");
    assert_nothing_left(&a);
    assert!(!parents().is_empty(), "the parent went while b still lives");
    cb.delete().expect("delete b");
    assert_nothing_left(&b);
    for p in parents() {
        let others = std::fs::read_dir(&p)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
        assert!(others, "{} is left empty", p.display());
    }
    // Paths that are not Berth's keep their parents.
    let outer = unique_path();
    let inner = format!("{outer}/x");
    let c = Cgroup::create(&inner, &LinuxResources::default()).expect("create nested");
    c.delete().expect("delete nested");
    let kept = Cgroup::load(&outer).expect("the foreign parent stays");
    kept.delete().expect("delete the foreign parent");
    assert_nothing_left(&outer);
}

/// Device rules from the spec's JSON.
fn device_rules(json: &str) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_str(json).unwrap()
}

/// Deny everything; mknod of any char device; /dev/null's numbers.
const NULL_ONLY: &str = r#"[
    {"allow": false, "access": "rwm"},
    {"allow": true, "type": "c", "access": "m"},
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
]"#;

/// A directory on a file system that honours device nodes (not nodev),
/// with `null` (c 1:3) and `zero` (c 1:5) made in it.
fn device_nodes() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (name, minor) in [("null", 3), ("zero", 5)] {
        let path = std::ffi::CString::new(dir.path().join(name).to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mknod takes no other pointers.
        let rc = unsafe {
            libc::mknod(
                path.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, minor),
            )
        };
        assert_eq!(rc, 0, "mknod {name}: {}", std::io::Error::last_os_error());
    }
    dir
}

/// The script that tries the nodes of `device_nodes` (and makes more) from
/// inside the cgroup, printing one `what:status` per line.
fn try_devices(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "busybox head -c 1 {d}/null; echo null:$?; \
         busybox head -c 1 {d}/zero; echo zero:$?; \
         busybox mknod {d}/made c 1 5; echo mknod-char:$?; \
         busybox head -c 1 {d}/made; echo made:$?; \
         busybox mknod {d}/disk b 8 0; echo mknod-block:$?"
    )
}

/// What `try_devices` must print under `NULL_ONLY`, and that the denials
/// were the kernel's EPERM.
fn assert_null_only(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "null:0",
        "zero:1",
        "mknod-char:0",
        "made:1",
        "mknod-block:1",
    ] {
        assert!(
            stdout.lines().any(|l| l == want),
            "{want} missing; stdout {stdout:?}, stderr {stderr:?}"
        );
    }
    assert_eq!(
        stderr.matches("Operation not permitted").count(),
        3,
        "zero, made and the block mknod refused with EPERM: {stderr}"
    );
}

#[test]
fn device_rules_deny_all_then_allow() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    let nodes = device_nodes();
    let r = LinuxResourcesBuilder::default()
        .devices(device_rules(NULL_ONLY))
        .build()
        .unwrap();
    let guard = Guard::new(&r);
    assert!(
        guard.cg().devices_enforced(),
        "this machine can enforce them"
    );
    if !guard.cg().is_v2() {
        let list = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/devices/{}/devices.list",
            guard.path
        ))
        .unwrap();
        let mut lines: Vec<&str> = list.lines().collect();
        lines.sort();
        assert_eq!(lines, ["c *:* m", "c 1:3 rwm"], "{list}");
    }
    let child = spawn_in(guard.cg(), &try_devices(nodes.path()));
    assert_null_only(&child.wait_with_output().unwrap());
    guard.delete();
}

#[test]
fn device_program_on_the_v2_tree() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    // The v2 tree: the only one on v2, /sys/fs/cgroup/unified on the
    // hybrid layout (where the program works just the same).
    let root = match cgroups::version() {
        cgroups::CgroupVersion::V2 => std::path::PathBuf::from("/sys/fs/cgroup"),
        cgroups::CgroupVersion::Hybrid => std::path::PathBuf::from("/sys/fs/cgroup/unified"),
        cgroups::CgroupVersion::V1 => {
            berth_testkit::require::prerequisite(false, "no cgroup v2 tree on this machine");
            return;
        }
    };
    struct Dir(std::path::PathBuf, Option<Child>);
    impl Drop for Dir {
        fn drop(&mut self) {
            if let Some(mut c) = self.1.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let mut dir = Dir(root.join(unique_path()), None);
    std::fs::create_dir(&dir.0).unwrap();
    cgroups::attach_device_program(&dir.0, &device_rules(NULL_ONLY)).expect("attach");

    let nodes = device_nodes();
    let script = format!("read go; {}", try_devices(nodes.path()));
    let mut child = Command::new(BUSYBOX)
        .args(["sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busybox");
    std::fs::write(dir.0.join("cgroup.procs"), child.id().to_string()).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_null_only(&out);
    // Rules that allow everything need no program; bad rules are refused.
    cgroups::attach_device_program(
        &dir.0,
        &device_rules(r#"[{"allow": true, "access": "rwm"}]"#),
    )
    .unwrap();
    assert!(matches!(
        cgroups::attach_device_program(
            &dir.0,
            &device_rules(r#"[{"allow": true, "access": "x"}]"#)
        ),
        Err(cgroups::Error::Invalid(_))
    ));
    // A program the verifier refuses: its words come back in the error.
    let no_exit = cgroups::device_rules::Insn {
        code: 0xb7, // r0 = 0, and no exit
        regs: 0,
        off: 0,
        imm: 0,
    };
    let err = cgroups::bpf::load(&[no_exit]).unwrap_err();
    assert!(err.contains("verifier said"), "{err}");
    dir.1 = None;
}

#[test]
fn cpuset_pins_to_cpu_0_in_a_fresh_nested_path() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    // A parent made on the way, like berth/: on v1 both levels must get
    // cpus and mems, or nothing can join.
    let outer = unique_path();
    let inner = format!("{outer}/c");
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let cg = Cgroup::create(&inner, &r).expect("create");
    let guard = Guard {
        cgroup: Some(cg),
        path: inner.clone(),
    };
    struct Outer(String);
    impl Drop for Outer {
        fn drop(&mut self) {
            if let Ok(c) = Cgroup::load(&self.0) {
                let _ = c.delete();
            }
        }
    }
    let outer_guard = Outer(outer.clone());

    // The init's way in on v1: a single-threaded process writes 0 to
    // every `tasks` file; on v2 the runtime moves it.
    let script = "busybox grep Cpus_allowed_list /proc/$$/status";
    let child = match guard.cg().self_join_files() {
        Some(files) => {
            let join: String = files
                .iter()
                .map(|f| format!("echo 0 > {} || exit 9; ", f.display()))
                .collect();
            spawn_self_joining(&format!("{join}{script}"))
        }
        None => spawn_in(guard.cg(), script),
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "joining failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed = stdout.split(':').nth(1).map(str::trim);
    assert_eq!(allowed, Some("0"), "{stdout}");
    guard.delete();
    drop(outer_guard);
    assert_nothing_left(&outer);
}

/// Starts `script` under busybox sh, which moves itself into the cgroup.
fn spawn_self_joining(script: &str) -> Child {
    Command::new(BUSYBOX)
        .args(["sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busybox")
}

#[test]
fn blkio_throttle_is_written() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    // loop0 (7:0) exists on nearly every machine, bound or not.
    if !berth_testkit::require::prerequisite(
        std::path::Path::new("/sys/dev/block/7:0").exists(),
        "no block device 7:0",
    ) {
        return;
    }
    let throttle = |rate: u64| {
        vec![LinuxThrottleDeviceBuilder::default()
            .major(7i64)
            .minor(0i64)
            .rate(rate)
            .build()
            .unwrap()]
    };
    let r = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .throttle_read_bps_device(throttle(1_048_576))
                .throttle_write_iops_device(throttle(300))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let guard = Guard::new(&r);
    if guard.cg().is_v2() {
        let io_max =
            std::fs::read_to_string(format!("/sys/fs/cgroup/{}/io.max", guard.path)).unwrap();
        assert!(
            io_max
                .lines()
                .any(|l| l.starts_with("7:0 rbps=1048576 ") && l.contains("wiops=300")),
            "{io_max}"
        );
    } else {
        let dir = format!("/sys/fs/cgroup/blkio/{}", guard.path);
        let read =
            std::fs::read_to_string(format!("{dir}/blkio.throttle.read_bps_device")).unwrap();
        let iops =
            std::fs::read_to_string(format!("{dir}/blkio.throttle.write_iops_device")).unwrap();
        assert_eq!(read.trim(), "7:0 1048576");
        assert_eq!(iops.trim(), "7:0 300");
    }
    guard.delete();
}

#[test]
fn hugetlb_limit_is_written_or_refused_clearly() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    if !berth_testkit::require::prerequisite(
        std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists(),
        "no 2MB huge pages",
    ) {
        return;
    }
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    // Where hugetlb is: a v1 hierarchy, or a controller of the v2 tree.
    let v1 = std::path::Path::new("/sys/fs/cgroup/hugetlb/cgroup.procs").exists();
    let v2_root = match cgroups::version() {
        cgroups::CgroupVersion::V2 => "/sys/fs/cgroup",
        _ => "/sys/fs/cgroup/unified",
    };
    let on_v2 = std::fs::read_to_string(format!("{v2_root}/cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"));
    let path = unique_path();
    match Cgroup::create(&path, &r) {
        Ok(cg) => {
            let guard = Guard {
                cgroup: Some(cg),
                path: path.clone(),
            };
            let file = if v1 {
                format!("/sys/fs/cgroup/hugetlb/{path}/hugetlb.2MB.limit_in_bytes")
            } else {
                format!("{v2_root}/{path}/hugetlb.2MB.max")
            };
            assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "4194304");
            // The container's init can get in.
            let child = match guard.cg().self_join_files() {
                Some(files) => {
                    let join: String = files
                        .iter()
                        .map(|f| format!("echo 0 > {} || exit 9; ", f.display()))
                        .collect();
                    spawn_self_joining(&format!("{join}busybox cat /proc/$$/cgroup"))
                }
                None => spawn_in(guard.cg(), "busybox cat /proc/$$/cgroup"),
            };
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}");
            assert!(stdout.contains(&path), "{stdout}");
            guard.delete();
        }
        Err(e) => {
            assert!(!v1 && !on_v2, "hugetlb is there, yet: {e}");
            assert!(
                matches!(
                    e,
                    cgroups::Error::Unavailable {
                        controller: "hugetlb",
                        ..
                    }
                ),
                "{e}"
            );
            assert_nothing_left(&path);
        }
    }
}
