//! One container's cgroup, on cgroup v1 (and the hybrid layout) and v2.
//!
//! Lifecycle: `Cgroup::create` makes the directory (v1: one per controller
//! hierarchy Berth uses — memory, cpu, cpuacct, pids, blkio, freezer; v2:
//! one directory, with the controllers enabled in every parent's
//! `cgroup.subtree_control`) and writes the limits; on any failure it
//! removes what it made. The runtime adds the container's init with
//! `add_task` before it execs, so every descendant is born inside. berthd
//! reads `stats` while it runs, and `oom_killed` after it exits (the
//! counters live in the cgroup: ask before `delete`). `kill_all` and
//! `delete` end it; `delete` retries while dying tasks leave. After a
//! berthd restart, `Cgroup::load` finds the same directories by path.
//!
//! cgroups-rs finds the hierarchies and creates the directories; limits
//! and counters are plain file writes and reads planned by `limits` and
//! parsed by `stats`, so both are unit-tested without root.

pub mod limits;
pub mod stats;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::hierarchies;
use oci_spec::runtime::LinuxResources;

pub use stats::CgroupStats;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create cgroup {path}: {reason}; Berth needs root and a mounted cgroup file system (/sys/fs/cgroup)")]
    Create { path: String, reason: String },
    #[error("cgroup {0} does not exist (the container may already be removed)")]
    NotFound(String),
    #[error(
        "cgroup path {0:?} is not valid: give a relative path like \"berth/<id>\" without \"..\""
    )]
    BadPath(String),
    #[error("cannot write {value:?} to {file}: {source}; the kernel may not support this limit")]
    Write {
        file: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send signal {signal} to process {pid}: {source}")]
    Signal {
        signal: i32,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {path} still has processes {pids:?} after {waited:?}; they may be stuck in the kernel (D state)")]
    Busy {
        path: String,
        pids: Vec<u32>,
        waited: Duration,
    },
    #[error("cannot remove cgroup directory {dir}: {source}")]
    Remove {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// This module's result.
pub type Result<T> = std::result::Result<T, Error>;

/// How this machine mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Only v1 hierarchies.
    V1,
    /// The unified hierarchy at /sys/fs/cgroup.
    V2,
    /// v1 controllers plus an empty v2 tree at /sys/fs/cgroup/unified
    /// (systemd's hybrid layout); Berth uses the v1 controllers.
    Hybrid,
}

const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
const ROOT: &str = "/sys/fs/cgroup";

fn is_cgroup2(path: &str) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == CGROUP2_SUPER_MAGIC)
}

/// How this machine mounts cgroups.
pub fn version() -> CgroupVersion {
    if is_cgroup2(ROOT) {
        CgroupVersion::V2
    } else if is_cgroup2("/sys/fs/cgroup/unified") {
        CgroupVersion::Hybrid
    } else {
        CgroupVersion::V1
    }
}

/// v1 controllers a container's cgroup joins (those the machine has).
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "blkio", "freezer"];
/// v2 controllers enabled for a container's cgroup (those the machine has).
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "io"];

/// One container's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    path: String,
    v2: bool,
    /// (v1 controller, directory); on v2 one entry with controller "".
    dirs: Vec<(String, PathBuf)>,
}

impl Cgroup {
    /// Creates the cgroup at `path` (relative, e.g. "berth/<id>") and
    /// applies `resources`. Nothing is left behind on failure.
    pub fn create(path: &str, resources: &LinuxResources) -> Result<Cgroup> {
        let cgroup = Self::handle(path)?;
        let create_err = |reason: String| Error::Create {
            path: path.to_string(),
            reason,
        };
        let hier = hierarchies::auto();
        if cgroup.v2 {
            let available = std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
                .unwrap_or_default();
            let controllers: Vec<String> = V2_CONTROLLERS
                .iter()
                .filter(|c| available.split_whitespace().any(|a| a == **c))
                .map(|c| c.to_string())
                .collect();
            cgroups_rs::fs::Cgroup::new_with_specified_controllers(
                hier,
                &cgroup.path,
                Some(controllers),
            )
            .map_err(|e| create_err(e.to_string()))?;
        } else {
            if cgroup.dirs.is_empty() {
                return Err(create_err("no cgroup v1 controller is mounted".into()));
            }
            let wanted = V1_CONTROLLERS.iter().map(|c| c.to_string()).collect();
            if let Err(e) = cgroups_rs::fs::Cgroup::new_with_specified_controllers(
                hier,
                &cgroup.path,
                Some(wanted),
            ) {
                let _ = cgroup.remove_dirs(Duration::from_secs(1));
                return Err(create_err(e.to_string()));
            }
        }
        if let Err(e) = cgroup.apply(resources) {
            let _ = cgroup.remove_dirs(Duration::from_secs(1));
            return Err(e);
        }
        Ok(cgroup)
    }

    /// The existing cgroup at `path` (after a berthd restart).
    pub fn load(path: &str) -> Result<Cgroup> {
        let cgroup = Self::handle(path)?;
        if !cgroup.dirs.iter().any(|(_, dir)| dir.is_dir()) {
            return Err(Error::NotFound(path.to_string()));
        }
        Ok(cgroup)
    }

    /// Where the cgroup lives, without touching the file system.
    fn handle(path: &str) -> Result<Cgroup> {
        let clean = path.trim_matches('/');
        if clean.is_empty()
            || clean
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::BadPath(path.to_string()));
        }
        let hier = hierarchies::auto();
        let v2 = hier.v2();
        let dirs = if v2 {
            vec![(String::new(), Path::new(ROOT).join(clean))]
        } else {
            let wanted: Vec<String> = V1_CONTROLLERS.iter().map(|c| c.to_string()).collect();
            let cg = cgroups_rs::fs::Cgroup::load_with_specified_controllers(hier, clean, wanted);
            let mut dirs: Vec<(String, PathBuf)> = cg
                .subsystems()
                .iter()
                .map(|s| (s.controller_name(), s.to_controller().path().to_path_buf()))
                .collect();
            // cpu and cpuacct usually share one hierarchy (cpu,cpuacct).
            dirs.sort_by(|a, b| a.1.cmp(&b.1));
            dirs.dedup_by(|a, b| {
                let same = a.1 == b.1;
                if same {
                    b.0 = format!("{},{}", b.0, a.0);
                }
                same
            });
            dirs
        };
        Ok(Cgroup {
            path: clean.to_string(),
            v2,
            dirs,
        })
    }

    /// The path this cgroup was created with, relative to the hierarchies.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this cgroup is on the unified (v2) hierarchy.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The directory holding `controller`'s files.
    fn dir(&self, controller: &str) -> Option<&Path> {
        if self.v2 {
            return self.dirs.first().map(|(_, d)| d.as_path());
        }
        self.dirs
            .iter()
            .find(|(names, _)| names.split(',').any(|n| n == controller))
            .map(|(_, d)| d.as_path())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        for write in limits::plan(resources, self.v2) {
            let Some(dir) = self.dir(write.controller) else {
                if write.optional {
                    tracing::warn!(
                        controller = write.controller,
                        "controller not available; limit skipped"
                    );
                    continue;
                }
                return Err(Error::Create {
                    path: self.path.clone(),
                    reason: format!(
                        "the {} controller is not available for {}",
                        write.controller, write.file
                    ),
                });
            };
            let file = dir.join(write.file);
            if let Err(source) = std::fs::write(&file, &write.value) {
                if write.optional {
                    tracing::warn!(file = %file.display(), value = %write.value, error = %source, "limit not supported here; skipped");
                    continue;
                }
                return Err(Error::Write {
                    file,
                    value: write.value,
                    source,
                });
            }
        }
        Ok(())
    }

    /// Moves process `pid` (and so its future children) into the cgroup.
    pub fn add_task(&self, pid: u32) -> Result<()> {
        for (_, dir) in &self.dirs {
            let file = dir.join("cgroup.procs");
            std::fs::write(&file, pid.to_string()).map_err(|source| Error::Write {
                file,
                value: pid.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// The processes in the cgroup (all hierarchies on v1), sorted.
    pub fn procs(&self) -> Result<Vec<u32>> {
        let mut pids = Vec::new();
        for (_, dir) in &self.dirs {
            let file = dir.join("cgroup.procs");
            match std::fs::read_to_string(&file) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Read { file, source }),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn read(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(controller)?.join(file)).ok()
    }

    /// Current counters. Counters a controller does not offer read as 0.
    pub fn stats(&self) -> Result<CgroupStats> {
        if !self.dirs.iter().any(|(_, d)| d.is_dir()) {
            return Err(Error::NotFound(self.path.clone()));
        }
        let mut s = CgroupStats::default();
        let memory_stat = self.read("memory", "memory.stat").unwrap_or_default();
        if self.v2 {
            let cpu = self.read("cpu", "cpu.stat").unwrap_or_default();
            s.cpu_usage_ns = stats::keyed(&cpu, "usage_usec")
                .unwrap_or(0)
                .saturating_mul(1000);
            s.memory_usage =
                stats::parse_u64(&self.read("memory", "memory.current").unwrap_or_default());
            s.memory_limit = self
                .read("memory", "memory.max")
                .and_then(|t| stats::parse_limit(&t));
            let io = self.read("io", "io.stat").unwrap_or_default();
            (s.blkio_read_bytes, s.blkio_write_bytes) = stats::parse_v2_io_stat(&io);
            let events = self.read("memory", "memory.events").unwrap_or_default();
            s.oom_kills = stats::keyed(&events, "oom_kill").unwrap_or(0);
        } else {
            s.cpu_usage_ns =
                stats::parse_u64(&self.read("cpuacct", "cpuacct.usage").unwrap_or_default());
            s.memory_usage = stats::parse_u64(
                &self
                    .read("memory", "memory.usage_in_bytes")
                    .unwrap_or_default(),
            );
            s.memory_limit = self
                .read("memory", "memory.limit_in_bytes")
                .and_then(|t| stats::parse_limit(&t));
            let blkio = self
                .read("blkio", "blkio.throttle.io_service_bytes_recursive")
                .or_else(|| self.read("blkio", "blkio.throttle.io_service_bytes"))
                .unwrap_or_default();
            (s.blkio_read_bytes, s.blkio_write_bytes) = stats::parse_v1_blkio(&blkio);
            let oom = self
                .read("memory", "memory.oom_control")
                .unwrap_or_default();
            s.oom_kills = stats::v1_oom_kills(&oom);
        }
        s.memory_working_set = stats::working_set(s.memory_usage, &memory_stat, self.v2);
        s.pids_current = stats::parse_u64(&self.read("pids", "pids.current").unwrap_or_default());
        s.pids_limit = self
            .read("pids", "pids.max")
            .and_then(|t| stats::parse_limit(&t));
        Ok(s)
    }

    /// Whether the kernel's OOM killer has killed a process of this cgroup
    /// (v1: memory.oom_control `oom_kill`; v2: memory.events `oom_kill`).
    /// Ask before `delete`: the counter goes with the cgroup.
    pub fn oom_killed(&self) -> bool {
        self.stats().map(|s| s.oom_kills > 0).unwrap_or(false)
    }

    /// Freezes every process (v1 freezer, v2 cgroup.freeze) and waits
    /// until the kernel reports them frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws a frozen cgroup.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let (dir, file, value) = if self.v2 {
            (
                self.dir(""),
                "cgroup.freeze",
                if frozen { "1" } else { "0" },
            )
        } else {
            (
                self.dir("freezer"),
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
            )
        };
        let Some(dir) = dir else {
            return Err(Error::Create {
                path: self.path.clone(),
                reason: "no freezer controller is mounted".into(),
            });
        };
        let file = dir.join(file);
        std::fs::write(&file, value).map_err(|source| Error::Write {
            file: file.clone(),
            value: value.into(),
            source,
        })?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let done = if self.v2 {
                let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
                stats::keyed(&events, "frozen") == Some(u64::from(frozen))
            } else {
                std::fs::read_to_string(&file).is_ok_and(|s| s.trim() == value)
            };
            if done {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Busy {
                    path: self.path.clone(),
                    pids: self.procs().unwrap_or_default(),
                    waited: Duration::from_secs(5),
                });
            }
            if !self.v2 && frozen {
                // A FREEZING cgroup may need the write repeated.
                let _ = std::fs::write(&file, value);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` to every process in the cgroup. For SIGKILL it keeps
    /// going until the cgroup is empty (v2 with cgroup.kill on ≥ 5.14; else
    /// frozen, so nothing can fork while the kill goes round, then thawed).
    pub fn kill_all(&self, signal: libc::c_int) -> Result<()> {
        if signal != libc::SIGKILL {
            for pid in self.procs()? {
                send(pid, signal)?;
            }
            return Ok(());
        }
        if self.v2 {
            if let Some(dir) = self.dir("") {
                if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                    return self.wait_empty(Duration::from_secs(10));
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frozen = self.freeze().is_ok();
            for pid in self.procs()? {
                send(pid, signal)?;
            }
            if frozen {
                self.thaw()?;
            }
            if self.wait_empty(Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Busy {
                    path: self.path.clone(),
                    pids: self.procs().unwrap_or_default(),
                    waited: Duration::from_secs(10),
                });
            }
        }
    }

    fn wait_empty(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Busy {
                    path: self.path.clone(),
                    pids,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the cgroup from every hierarchy, retrying while exiting
    /// tasks leave (rmdir fails with EBUSY until they have). Processes still
    /// inside after 5 s make this fail: `kill_all` first.
    pub fn delete(self) -> Result<()> {
        self.remove_dirs(Duration::from_secs(5))
    }

    fn remove_dirs(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for (_, dir) in &self.dirs {
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        return Err(Error::Busy {
                            path: self.path.clone(),
                            pids: self.procs().unwrap_or_default(),
                            waited: timeout,
                        })
                    }
                    Err(source) => {
                        return Err(Error::Remove {
                            dir: dir.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

fn send(pid: u32, signal: libc::c_int) -> Result<()> {
    // SAFETY: kill takes integers only.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if rc != 0 {
        let source = std::io::Error::last_os_error();
        // Gone already: fine.
        if source.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::Signal {
                signal,
                pid,
                source,
            });
        }
    }
    Ok(())
}
