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
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

const BUSYBOX: &str = "/bin/busybox";
const MIB: i64 = 1 << 20;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

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
    if !is_root() {
        eprintln!("skipped: needs root");
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
    if !is_root() {
        eprintln!("skipped: needs root");
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
    if !is_root() {
        eprintln!("skipped: needs root");
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
    if !is_root() {
        eprintln!("skipped: needs root");
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
