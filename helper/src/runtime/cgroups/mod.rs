//! One container's cgroup, on cgroup v1 (and the hybrid layout) and v2.
//!
//! Lifecycle: `Cgroup::create` makes the directory (v1: one per controller
//! hierarchy Berth uses — memory, cpu, cpuacct, cpuset, pids, blkio,
//! devices, hugetlb, freezer; v2: one directory, with the controllers
//! enabled in every parent's `cgroup.subtree_control`), writes the limits
//! and installs the device rules; on any failure it removes what it made.
//! The runtime adds the container's init with `add_task` before it execs,
//! so every descendant is born inside (on v1 the init moves itself in:
//! `self_join_files`). berthd reads `stats` while it runs, and
//! `oom_killed` after it exits (the counters live in the cgroup: ask
//! before `delete`). `kill_all` and `delete` end it; `delete` retries
//! while dying tasks leave. After a berthd restart, `Cgroup::load` finds
//! the same directories by path.
//!
//! cgroups-rs finds the hierarchies and creates the directories; limits
//! and counters are plain file writes and reads planned by `limits` and
//! parsed by `stats`, so both are unit-tested without root.
//!
//! Devices. `linux.resources.devices` is what keeps a container that has
//! CAP_MKNOD (Docker's default set has it) from making a node for a host
//! disk in its /dev and reading it. The list always starts with "deny
//! everything" (as runc's does), then the spec's rules in order
//! (`device_rules`). On v1 they are written to the devices hierarchy's
//! `devices.deny` / `devices.allow`. v2 has no such files: the rules
//! become a small eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`, generated
//! by `device_rules::program`, loaded and attached by `bpf` with the plain
//! system call) that the kernel runs on every open and mknod of a device
//! by the cgroup's processes. When no rules are given (`devices` absent)
//! the device controller is left as the parent has it; the runtime always
//! gives some (the spec's plus its default devices). If the rules cannot
//! be enforced — no v1 devices hierarchy, or a kernel that refuses the
//! program (no CONFIG_CGROUP_BPF, bpf() blocked by a seccomp filter when
//! Berth itself runs in a container) — creation still succeeds with a
//! warning and `devices_enforced` false, and the runtime fails closed: it
//! drops CAP_MKNOD from every process of the container, so the only device
//! nodes it can use are those the runtime put in its /dev.
//!
//! cpuset. A new v1 cpuset cgroup starts with empty `cpuset.cpus` and
//! `cpuset.mems`, and no task may join it until both are set: every level
//! made on the way (`berth/` too) gets its parent's values, then the
//! spec's `cpu.cpus` / `cpu.mems` are written. On v2 an empty value means
//! "the parent's"; only the spec's values are written.
//!
//! hugetlb. Joined where the machine has it; without it, nothing of it is
//! written, and a spec with `hugepageLimits` fails with a clear error. On
//! the hybrid layout hugetlb may be a controller of the v2 tree
//! (/sys/fs/cgroup/unified) rather than a v1 hierarchy: a container with
//! huge page limits then also gets a v2 directory there, joined through
//! its `cgroup.procs` (slower than `tasks`, so only then).

pub mod bpf;
pub mod device_rules;
pub mod limits;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use cgroups_rs::fs::hierarchies;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

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
    #[error("linux.resources: {0}")]
    Invalid(String),
    #[error("the container's limits need the {controller} cgroup controller ({file}), which this machine does not offer")]
    Unavailable {
        controller: &'static str,
        file: String,
    },
    #[error("cannot install the device rules in {dir}: {reason}")]
    DeviceProgram { dir: PathBuf, reason: String },
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

/// The parent of every cgroup berthd makes (`berth/<id>`).
pub const PARENT: &str = "berth";

/// v1 controllers a container's cgroup joins (those the machine has).
const V1_CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "hugetlb", "freezer",
];
/// v2 controllers enabled for a container's cgroup (those the machine has).
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuset", "pids", "io", "hugetlb"];
/// The v2 tree of the hybrid layout.
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";

/// One container's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    path: String,
    v2: bool,
    /// (v1 controller, directory); on v2 one entry with controller "". On
    /// the hybrid layout, possibly ("hugetlb", a directory of the v2 tree).
    dirs: Vec<(String, PathBuf)>,
    /// Whether the device rules given to `create` are in force.
    devices_enforced: bool,
}

impl Cgroup {
    /// Creates the cgroup at `path` (relative, e.g. "berth/<id>") and
    /// applies `resources`. Nothing is left behind on failure. Device rules
    /// that cannot be enforced are no error: see `devices_enforced`.
    pub fn create(path: &str, resources: &LinuxResources) -> Result<Cgroup> {
        match Self::create_once(path, resources) {
            // The last container under our parent was removed in between,
            // and the parent with it (see `remove_own_parent`): once more.
            Err(Error::Create { .. }) if path.trim_start_matches('/').starts_with(PARENT) => {
                Self::create_once(path, resources)
            }
            r => r,
        }
    }

    fn create_once(path: &str, resources: &LinuxResources) -> Result<Cgroup> {
        let mut cgroup = Self::handle(path)?;
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
            if !controllers.iter().any(|c| c == "hugetlb") {
                no_hugetlb_warning();
            }
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
            let made = cgroups_rs::fs::Cgroup::new_with_specified_controllers(
                hier,
                &cgroup.path,
                Some(wanted),
            )
            .map_err(|e| create_err(e.to_string()))
            .and_then(|_| cgroup.v1_extras(resources));
            if let Err(e) = made {
                let _ = cgroup.remove_dirs(Duration::from_secs(1));
                return Err(e);
            }
        }
        let applied = cgroup.apply(resources).and_then(|()| {
            cgroup.devices_enforced = cgroup.apply_devices(resources.devices().as_deref())?;
            Ok(())
        });
        if let Err(e) = applied {
            let _ = cgroup.remove_dirs(Duration::from_secs(1));
            return Err(e);
        }
        Ok(cgroup)
    }

    /// What v1 needs beyond the directories: cpuset values in every level
    /// (a task cannot join an empty cpuset), and on the hybrid layout a v2
    /// directory for huge page limits when hugetlb lives there.
    fn v1_extras(&mut self, resources: &LinuxResources) -> Result<()> {
        if let Some(dir) = self.dir("cpuset").map(Path::to_path_buf) {
            self.fill_cpuset(&dir)?;
        }
        let wants_hugetlb = resources
            .hugepage_limits()
            .as_ref()
            .is_some_and(|l| !l.is_empty());
        if self.dir("hugetlb").is_none() {
            match self.unified_hugetlb() {
                Some(dir) if wants_hugetlb => {
                    make_v2_dirs(Path::new(HYBRID_UNIFIED), &self.path, &["hugetlb"]).map_err(
                        |reason| Error::Create {
                            path: self.path.clone(),
                            reason,
                        },
                    )?;
                    self.dirs.push(("hugetlb".into(), dir));
                }
                Some(_) => {}
                None => no_hugetlb_warning(),
            }
        }
        Ok(())
    }

    /// Gives every level of the v1 cpuset path that has none its parent's
    /// `cpuset.cpus` and `cpuset.mems`, top down, as runc does.
    fn fill_cpuset(&self, leaf: &Path) -> Result<()> {
        let parts: Vec<&str> = self.path.split('/').collect();
        let mut parent = leaf.to_path_buf();
        for _ in &parts {
            parent.pop();
        }
        let err = |file: &Path, e: std::io::Error| Error::Create {
            path: self.path.clone(),
            reason: format!("cannot fill {} from its parent: {e}", file.display()),
        };
        for part in parts {
            let dir = parent.join(part);
            for name in ["cpuset.cpus", "cpuset.mems"] {
                let file = dir.join(name);
                let current = std::fs::read_to_string(&file).map_err(|e| err(&file, e))?;
                if current.trim().is_empty() {
                    let value =
                        std::fs::read_to_string(parent.join(name)).map_err(|e| err(&file, e))?;
                    std::fs::write(&file, value.trim()).map_err(|e| err(&file, e))?;
                }
            }
            parent = dir;
        }
        Ok(())
    }

    /// On the hybrid layout, where this cgroup's hugetlb directory is when
    /// hugetlb is a controller of the v2 tree instead of a v1 hierarchy.
    fn unified_hugetlb(&self) -> Option<PathBuf> {
        if self.v2 {
            return None;
        }
        let root = Path::new(HYBRID_UNIFIED);
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok()?;
        controllers
            .split_whitespace()
            .any(|c| c == "hugetlb")
            .then(|| root.join(&self.path))
    }

    /// The existing cgroup at `path` (after a berthd restart).
    pub fn load(path: &str) -> Result<Cgroup> {
        let mut cgroup = Self::handle(path)?;
        if cgroup.dir("hugetlb").is_none() {
            if let Some(dir) = cgroup.unified_hugetlb().filter(|d| d.is_dir()) {
                cgroup.dirs.push(("hugetlb".into(), dir));
            }
        }
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
            devices_enforced: true,
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

    /// Whether the device rules given to `create` are in force: false when
    /// the machine has no way to enforce them (no v1 devices hierarchy, or
    /// a v2 kernel that refused the device program); the caller must then
    /// fail closed (the runtime drops CAP_MKNOD). True when none were given.
    pub fn devices_enforced(&self) -> bool {
        self.devices_enforced
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

    /// Whether `dir` is a v2 directory (v2, or hugetlb's on the hybrid
    /// layout).
    fn is_unified(&self, dir: &Path) -> bool {
        self.v2 || dir.starts_with(HYBRID_UNIFIED)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let mut writes = limits::plan(resources, self.v2).map_err(Error::Invalid)?;
        if !self.v2 && self.dir("hugetlb").is_some_and(|d| self.is_unified(d)) {
            writes.retain(|w| w.controller != "hugetlb");
            writes.extend(limits::hugetlb_plan(resources, true).map_err(Error::Invalid)?);
        }
        for write in writes {
            let dir = self.dir(write.controller).filter(|d| {
                // On v2 the controller must be enabled for the directory.
                !self.is_unified(d)
                    || std::fs::read_to_string(d.join("cgroup.controllers"))
                        .is_ok_and(|c| c.split_whitespace().any(|c| c == write.controller))
            });
            let Some(dir) = dir else {
                if write.optional {
                    tracing::warn!(
                        controller = write.controller,
                        file = %write.file,
                        "controller not available; limit skipped"
                    );
                    continue;
                }
                return Err(Error::Unavailable {
                    controller: write.controller,
                    file: write.file,
                });
            };
            let mut file = dir.join(&write.file);
            let mut result = std::fs::write(&file, &write.value);
            if let (Err(e), Some(fallback)) = (&result, write.fallback) {
                if e.kind() == std::io::ErrorKind::NotFound {
                    file = dir.join(fallback);
                    result = std::fs::write(&file, &write.value);
                }
            }
            if let Err(source) = result {
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

    /// Installs the device rules: deny everything, then `rules` in order.
    /// `None` leaves the device controller as the parent has it. Ok(false)
    /// when they cannot be enforced here (see `devices_enforced`).
    fn apply_devices(&self, rules: Option<&[LinuxDeviceCgroup]>) -> Result<bool> {
        let Some(rules) = rules else {
            return Ok(true);
        };
        if self.v2 {
            let dir = self.dir("").expect("a v2 cgroup has its directory");
            return match attach_device_program(dir, rules) {
                Ok(()) => Ok(true),
                Err(Error::DeviceProgram { reason, .. }) => {
                    tracing::warn!(
                        cgroup = %self.path,
                        "cannot enforce the container's device rules: {reason}; \
                         its processes lose CAP_MKNOD instead"
                    );
                    Ok(false)
                }
                Err(e) => Err(e),
            };
        }
        let rules = device_rules::from_spec(rules).map_err(Error::Invalid)?;
        let Some(dir) = self.dir("devices") else {
            tracing::warn!(
                cgroup = %self.path,
                "no cgroup v1 devices hierarchy: cannot enforce the container's device \
                 rules; its processes lose CAP_MKNOD instead"
            );
            return Ok(false);
        };
        for write in limits::device_plan(&rules) {
            let file = dir.join(&write.file);
            std::fs::write(&file, &write.value).map_err(|source| Error::Write {
                file,
                value: write.value,
                source,
            })?;
        }
        Ok(true)
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

    /// On v1, the `tasks` files through which a single-threaded process
    /// moves itself in ([`join_self`]); `None` on v2, where a thread cannot
    /// leave its process's domain and [`Cgroup::add_task`] is the way.
    ///
    /// Why: moving another process (`cgroup.procs`) takes the kernel's
    /// global threadgroup lock for writing, which waits for an RCU grace
    /// period: 8 to 15 ms on this kind of machine, most of a container's
    /// start-up. A thread writing `0` (itself) to `tasks` skips that lock
    /// (Linux ≥ 5.19), and for a single-threaded process moving its only
    /// thread is moving the process. A v2 directory of the hybrid layout
    /// (hugetlb's, only with huge page limits) has no `tasks`: its
    /// `cgroup.procs` is in the list, where `0` moves the writer's process.
    pub fn self_join_files(&self) -> Option<Vec<PathBuf>> {
        if self.v2 {
            return None;
        }
        Some(
            self.dirs
                .iter()
                .map(|(_, d)| {
                    d.join(if self.is_unified(d) {
                        "cgroup.procs"
                    } else {
                        "tasks"
                    })
                })
                .collect(),
        )
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
        self.remove_dirs(Duration::from_secs(5))?;
        self.remove_own_parent();
        Ok(())
    }

    /// Berth's containers live under one parent, `berth/`; when the last
    /// one goes, so does the parent, so that nothing of Berth is left in
    /// the hierarchies. Another container being created at this very
    /// moment either keeps it busy (ENOTEMPTY: it stays) or finds it gone
    /// and makes it again (`create` retries). Parents of other paths are
    /// not ours and stay.
    fn remove_own_parent(&self) {
        if self.path.split('/').next() != Some(PARENT) || !self.path.contains('/') {
            return;
        }
        for (_, dir) in &self.dirs {
            if let Some(parent) = dir.parent().filter(|p| p.ends_with(PARENT)) {
                let _ = std::fs::remove_dir(parent);
            }
        }
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

/// Moves the calling thread into the cgroups whose `tasks` files are
/// `files` (from [`Cgroup::self_join_files`]). Only for a single-threaded
/// process: the other threads would stay behind.
pub fn join_self(files: &[PathBuf]) -> Result<()> {
    for file in files {
        std::fs::write(file, "0").map_err(|source| Error::Write {
            file: file.clone(),
            value: "0".into(),
            source,
        })?;
    }
    Ok(())
}

/// Warns once per process that there is no hugetlb controller to join.
fn no_hugetlb_warning() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "this machine has no hugetlb cgroup controller: containers are not put in one, \
             and a container with hugepageLimits fails to create"
        )
    });
}

/// Makes `rel` under the v2 tree `root`, enabling `controllers` in the
/// root's and every parent's `cgroup.subtree_control` on the way.
fn make_v2_dirs(root: &Path, rel: &str, controllers: &[&str]) -> std::result::Result<(), String> {
    let enable = |dir: &Path| {
        for c in controllers {
            let file = dir.join("cgroup.subtree_control");
            // Already enabled, or refused: the write of a limit says so.
            let _ = std::fs::write(file, format!("+{c}"));
        }
    };
    let mut dir = root.to_path_buf();
    enable(&dir);
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot make {}: {e}", dir.display())),
        }
        if i + 1 < parts.len() {
            enable(&dir);
        }
    }
    Ok(())
}

/// Attaches to the cgroup v2 directory `dir` a device program that denies
/// everything, then applies `rules` in order (see `device_rules`). Nothing
/// is attached when the rules allow everything. For the runtime's own
/// cgroups `Cgroup::create` does this; public so that the program can be
/// tried on any v2 directory (the hybrid layout's too).
pub fn attach_device_program(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let mut all = vec![device_rules::Rule::all(false)];
    all.extend(device_rules::from_spec(rules).map_err(Error::Invalid)?);
    let Some(program) = device_rules::program(&all) else {
        return Ok(());
    };
    let err = |reason: String| Error::DeviceProgram {
        dir: dir.to_path_buf(),
        reason,
    };
    let fd = bpf::load(&program).map_err(|e| err(format!("loading the device program: {e}")))?;
    bpf::attach(&fd, dir).map_err(|e| err(format!("attaching the device program: {e}")))
}
