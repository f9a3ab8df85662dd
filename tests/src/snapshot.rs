//! A before/after picture of the machine, to check what a test left behind
//! independently of Berth's own audit (`berth doctor`, an uninstall's report).
//!
//! [`Snapshot::take`] records, for one [`Berthd`]:
//!
//! | what | where from |
//! |---|---|
//! | files (paths, recursively; not into mount points) | the berthd's `--root` and `--run-root` |
//! | mounts (mount point, type, source, whole line) | `/proc/self/mountinfo` |
//! | cgroup directories (recursive) | `/sys/fs/cgroup/*/` (v1, hybrid and v2 alike) |
//! | network links (name, kind, master, alias) | `ip -j -d link show` |
//! | nftables tables (family, name, comment) and their text | `nft -j list tables`, `nft list ruleset` |
//! | processes (pid, comm, cmdline, cgroup, paths they hold) | `/proc/*` |
//!
//! and [`Snapshot::diff`] lists what is new in a later snapshot, one human
//! line each (`file: …`, `mount: …`, `cgroup: …`, `link: …`,
//! `nft table: …`, `process: …`). Nothing that went away is reported: the
//! question is "what did this leave behind".
//!
//! # Scoping: other berthd run on the same host
//!
//! Tests run in parallel, each with its own berthd, and other people's tests
//! may run on the host at the same time. So a diff only reports what is
//! *attributed* to this berthd ([`Scope`]):
//!
//! * **files**: only this berthd's roots are walked, so every new file is its.
//! * **mounts, cgroups, processes**: those whose text (mountinfo line,
//!   cgroup path, process command line, `/proc/PID/cgroup`, cwd and open
//!   files) contains one of the berthd's root paths or one of the ids of
//!   objects it made. Ids are learnt automatically from both snapshots'
//!   files (`<root>/containers/<id>`, `<run>/containers/<id>`,
//!   `<run>/netns/<id>`, …: every 64-hex path component), and can be added
//!   from elsewhere ([`Scope::learn_text`] on berthd's log or on `berth
//!   inspect-app` output, [`Scope::learn`] on a snapshot taken mid-way, e.g.
//!   right after a crash). Processes in the process group or session of a
//!   berthd the scope knows, or whose environment names its bus
//!   (`DBUS_SYSTEM_BUS_ADDRESS`: a spare `berth-shim` has no path on its
//!   command line and a session of its own) are attributed too. The berthd
//!   processes themselves never count.
//! * **links and nftables tables**: Berth names them after a hash of the run
//!   root and the network's name or the container's id (`bn-<8 hex>`,
//!   `bv-<8 hex>`, `berth-net-<8 hex>`, see `helper/src/network/names.rs`).
//!   A new link or table is attributed when
//!   1. its alias (`ifalias`) or table comment is a tag of this berthd:
//!      `berth:<scope hash>:…` ([`scope_tag`]; the network module tags its
//!      bridges, veths and tables so); for objects made before tags
//!      existed, the next rules do the work;
//!   2. its name is one this scope derives: the bridge and table of every
//!      network name it knows (learnt from `<run>/networks/<name>.json`, or
//!      given with [`Scope::network`]) and the veth of every container id it
//!      knows, or a name given with [`Scope::link`] / [`Scope::table`];
//!   3. a link whose `master` is an attributed bridge; a table
//!      `berth-net-H` whose bridge `bn-H` is attributed (one hash for both),
//!      or whose text names an attributed link.
//!
//! Whatever is new and looks like Berth's (`bn-*`/`bv-*` links,
//! `berth-net-*` tables, mounts/cgroups/processes mentioning `berth`) but is
//! not attributed is returned apart by [`Snapshot::diff_detailed`] as
//! [`Diff::unattributed`]: print it when a test fails, never fail on it (it
//! may be another test's).
//!
//! Processes are compared as a multiset of (comm, command line, cgroup), not
//! by pid, this berthd's and the others' counted apart: a spare shim
//! replaced by an identical one after a restart of berthd is not new; a
//! second one is. The one spare `berth-shim` a running berthd keeps is part
//! of berthd: it is not new even when the earlier snapshot was taken before
//! berthd got round to starting it.
//!
//! Files a berthd rewrites on its own (logs, its pid file, databases'
//! journals) are new only when they did not exist before; give patterns for
//! those that may come and go with [`Scope::ignore_file`].
//!
//! Also here: [`Snapshot::owned`] (what a running app is made of, to compare
//! two installs), [`Snapshot::network_objects`] and [`sweep_network`] (a
//! test's guard: links and tables outlive berthd and its directories, so a
//! failed test deletes the ones attributed to its berthd), and [`fd_count`]
//! and [`rss_kib`] of a pid, for leak checks.

use crate::berthd::Berthd;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// The whole line (ids and options included), for messages.
    pub line: String,
}

/// One network link of the host's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkEntry {
    pub name: String,
    /// `linkinfo.info_kind` (`bridge`, `veth`, …), if any.
    pub kind: Option<String>,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// `ifalias`.
    pub alias: Option<String>,
}

/// One nftables table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftTable {
    pub family: String,
    pub name: String,
    pub comment: Option<String>,
    /// Its block of `nft list ruleset` (empty if it was not found there).
    pub text: String,
}

impl NftTable {
    /// `inet berth-net-1a2b3c4d`
    pub fn key(&self) -> String {
        format!("{} {}", self.family, self.name)
    }
}

/// One process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub comm: String,
    /// Arguments joined by spaces.
    pub cmdline: String,
    /// `/proc/PID/cgroup`, lines joined by `;`.
    pub cgroup: String,
    /// Its cwd and the targets of its open fds that lie under the
    /// snapshot's roots (the rest is not kept).
    pub paths: Vec<String>,
    /// `DBUS_SYSTEM_BUS_ADDRESS` in its environment: a berthd's children
    /// inherit it, and each test's berthd has a bus of its own.
    pub bus: Option<String>,
}

impl ProcEntry {
    /// A `berth-shim --spare` (waiting for a container, or serving one:
    /// its command line does not change when it is handed one).
    pub fn is_spare_shim(&self) -> bool {
        self.comm == "berth-shim" && self.cmdline.split(' ').any(|a| a == "--spare")
    }

    fn key(&self) -> (String, String, String) {
        (self.comm.clone(), self.cmdline.clone(), self.cgroup.clone())
    }
}

/// What the machine looked like, as seen from one berthd.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub root: PathBuf,
    pub run_root: PathBuf,
    /// The berthd's pid when taken (0 if it was not running).
    pub berthd_pid: u32,
    /// The bus the berthd is on (empty if unknown).
    pub bus_address: String,
    /// Every path under `root` and `run_root` (both included).
    pub files: BTreeSet<PathBuf>,
    pub mounts: Vec<MountEntry>,
    pub cgroups: BTreeSet<PathBuf>,
    pub links: BTreeMap<String, LinkEntry>,
    /// By [`NftTable::key`].
    pub nft_tables: BTreeMap<String, NftTable>,
    /// `nft list ruleset`, whole.
    pub nft_ruleset: String,
    pub processes: Vec<ProcEntry>,
    /// What could not be read (a missing `nft`, …); the snapshot is then
    /// partial in that respect.
    pub warnings: Vec<String>,
}

/// `berth:<8 hex>`: how the tags of Berth's network objects (a link's
/// alias, a table's comment) name the berthd whose run root is `run_root`.
/// A whole tag is `berth:<scope hash>:net:<network>` (bridge, table) or
/// `berth:<scope hash>:ep:<network>:<container id>` (host end of a veth);
/// the scope hash is `short_hash(run_root, "scope", "")` as
/// `helper/src/network/names.rs` (`scope_hash`) derives it.
pub fn scope_tag(run_root: &Path) -> String {
    format!(
        "berth:{}",
        short_hash(&run_root.display().to_string(), "scope", "")
    )
}

/// Whether an alias or comment is a tag of the scope whose [`scope_tag`]
/// is `tag`.
fn has_tag(text: &str, tag: &str) -> bool {
    text.strip_prefix(tag)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// The 8 hex digits Berth's network names carry (as
/// `helper/src/network/names.rs` derives them: SHA-256 over scope, NUL,
/// kind, NUL, name).
fn short_hash(scope: &str, kind: &str, name: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    hex::encode(&h.finalize()[..4])
}

/// `(bridge, table)` of network `network` of the berthd with `run_root`.
pub fn network_object_names(run_root: &Path, network: &str) -> (String, String) {
    let h = short_hash(&run_root.display().to_string(), "network", network);
    (format!("bn-{h}"), format!("berth-net-{h}"))
}

/// The host end of container `container_id`'s veth pair.
pub fn veth_name(run_root: &Path, container_id: &str) -> String {
    format!(
        "bv-{}",
        short_hash(&run_root.display().to_string(), "container", container_id)
    )
}

/// Number of open file descriptors of `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<usize> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("listing {dir}"))?
        .count())
}

/// Resident set size of `pid`, KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

impl Snapshot {
    /// The machine now, as seen from `berthd` (which may be stopped).
    pub fn take(berthd: &Berthd) -> Result<Self> {
        let mut snap = Self::take_for(&berthd.root(), &berthd.run_root(), berthd.pid())?;
        snap.bus_address = berthd.bus_address().to_string();
        Ok(snap)
    }

    /// The machine now, for a berthd with these roots and pid (0: none).
    pub fn take_for(root: &Path, run_root: &Path, berthd_pid: u32) -> Result<Self> {
        let mut snap = Snapshot {
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            berthd_pid,
            ..Default::default()
        };
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        snap.mounts = parse_mountinfo(&mountinfo);
        let mount_points: BTreeSet<PathBuf> = snap
            .mounts
            .iter()
            .map(|m| PathBuf::from(&m.mount_point))
            .collect();
        for top in [root, run_root] {
            walk_files(top, top, &mount_points, &mut snap.files);
        }
        snap.cgroups = cgroup_dirs(Path::new("/sys/fs/cgroup"));

        match run_tool("ip", &["-j", "-d", "link", "show"]) {
            Ok(json) => match parse_ip_links(&json) {
                Ok(links) => snap.links = links,
                Err(e) => snap.warnings.push(format!("ip -j -d link: {e:#}")),
            },
            Err(e) => snap.warnings.push(format!("{e:#}")),
        }
        let tables = run_tool("nft", &["-j", "list", "tables"]).and_then(|j| parse_nft_tables(&j));
        let ruleset = run_tool("nft", &["list", "ruleset"]);
        match (tables, ruleset) {
            (Ok(mut tables), Ok(text)) => {
                let blocks = split_ruleset(&text);
                for t in tables.values_mut() {
                    t.text = blocks.get(&t.key()).cloned().unwrap_or_default();
                }
                snap.nft_tables = tables;
                snap.nft_ruleset = text;
            }
            (t, r) => {
                for e in [t.err(), r.err()].into_iter().flatten() {
                    snap.warnings.push(format!("{e:#}"));
                }
            }
        }
        let needles = [root.display().to_string(), run_root.display().to_string()];
        snap.processes = processes(&needles);
        Ok(snap)
    }

    /// The ids (64 hex digits) in the paths of this snapshot's files,
    /// digests aside (`…/sha256/<hex>`: images are shared by every berthd).
    pub fn ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for f in &self.files {
            let mut parent = "";
            for part in f.components() {
                let Some(s) = part.as_os_str().to_str() else {
                    continue;
                };
                let id = s.strip_suffix(".json").unwrap_or(s);
                if is_id(id) && parent != "sha256" {
                    ids.insert(id.to_string());
                }
                parent = s;
            }
        }
        ids
    }

    /// Network names recorded under `<run>/networks/<name>.json`.
    pub fn network_names(&self) -> BTreeSet<String> {
        let dir = self.run_root.join("networks");
        self.files
            .iter()
            .filter(|f| f.parent() == Some(dir.as_path()))
            .filter_map(|f| {
                let name = f.file_name()?.to_str()?;
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect()
    }

    /// What is new in `after` that belongs to this berthd, one line each
    /// (the scope is [`Scope::new`] for `after`'s berthd, which also learns
    /// from both snapshots).
    pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
        Self::diff_scoped(before, after, &Scope::for_snapshot(after))
    }

    /// [`Snapshot::diff`] with a scope of the caller's.
    pub fn diff_scoped(before: &Snapshot, after: &Snapshot, scope: &Scope) -> Vec<String> {
        Self::diff_detailed(before, after, scope).ours
    }

    /// What is new, split into what `scope` attributes to its berthd and
    /// what looks like Berth's but is not attributed (see the module doc).
    pub fn diff_detailed(before: &Snapshot, after: &Snapshot, scope: &Scope) -> Diff {
        let mut scope = scope.clone();
        scope.learn(before);
        scope.learn(after);
        for pid in [before.berthd_pid, after.berthd_pid] {
            scope.berthd_pids.insert(pid);
        }
        scope.berthd_pids.remove(&0);
        let mut diff = Diff::default();

        // Files: every one is under this berthd's roots. A new directory
        // stands for what is new below it.
        let new_files: Vec<&PathBuf> = after
            .files
            .difference(&before.files)
            .filter(|f| !scope.ignored_file(&f.display().to_string()))
            .collect();
        let mut i = 0;
        while i < new_files.len() {
            let dir = new_files[i];
            let below = new_files[i + 1..]
                .iter()
                .take_while(|f| f.starts_with(dir))
                .count();
            diff.ours.push(match below {
                0 => format!("file: {}", dir.display()),
                n => format!("file: {} (and {n} more below)", dir.display()),
            });
            i += 1 + below;
        }

        // Mounts: a multiset by (point, type, source).
        let mut counts: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
        for m in &before.mounts {
            *counts
                .entry((&m.mount_point, &m.fstype, &m.source))
                .or_default() += 1;
        }
        for m in &after.mounts {
            let c = counts
                .entry((&m.mount_point, &m.fstype, &m.source))
                .or_default();
            *c -= 1;
            if *c >= 0 {
                continue;
            }
            let line = format!("mount: {} ({} from {})", m.mount_point, m.fstype, m.source);
            if scope.mentions(&m.line) {
                diff.ours.push(line);
            } else if m.line.contains("berth") {
                diff.unattributed.push(line);
            }
        }

        // Cgroups.
        for c in after.cgroups.difference(&before.cgroups) {
            let s = c.display().to_string();
            if scope.mentions(&s) {
                diff.ours.push(format!("cgroup: {s}"));
            } else if s.contains("berth") {
                diff.unattributed.push(format!("cgroup: {s}"));
            }
        }

        // Links and tables: attributed by tag, derived name, master, hash.
        let ours_links = scope.attributed_links(before, after);
        let ours_tables = scope.attributed_tables(before, after, &ours_links);
        for (name, link) in &after.links {
            if before.links.contains_key(name) {
                continue;
            }
            let line = format!("link: {}", describe_link(link));
            if ours_links.contains(name) {
                diff.ours.push(line);
            } else if name.starts_with("bn-") || name.starts_with("bv-") {
                diff.unattributed.push(line);
            }
        }
        for (key, table) in &after.nft_tables {
            if before.nft_tables.contains_key(key) {
                continue;
            }
            let mut line = format!("nft table: {key}");
            if let Some(c) = &table.comment {
                line.push_str(&format!(" (comment {c:?})"));
            }
            if ours_tables.contains(key) {
                diff.ours.push(line);
            } else if table.name.starts_with("berth-net-") {
                diff.unattributed.push(line);
            }
        }

        // Processes: a multiset by (comm, cmdline, cgroup), berthd aside,
        // and so is the one spare shim a running berthd keeps waiting (it
        // starts it in the background, at the lowest priority: it may not
        // be there yet when a snapshot is taken right after a start).
        let spares_before = before
            .processes
            .iter()
            .filter(|p| p.is_spare_shim() && scope.owns_process(p))
            .count();
        let mut spare_allowance = if after.berthd_pid != 0 {
            1usize.saturating_sub(spares_before)
        } else {
            0
        };
        // Counted apart for this berthd's processes and the others', so
        // that another berthd's spare cannot stand in for ours.
        let mut counts: BTreeMap<(bool, (String, String, String)), i64> = BTreeMap::new();
        for p in &before.processes {
            if !scope.berthd_pids.contains(&p.pid) {
                *counts.entry((scope.owns_process(p), p.key())).or_default() += 1;
            }
        }
        for p in &after.processes {
            if scope.berthd_pids.contains(&p.pid) {
                continue;
            }
            let ours = scope.owns_process(p);
            let c = counts.entry((ours, p.key())).or_default();
            *c -= 1;
            if *c >= 0 {
                continue;
            }
            let line = format!("process: {} {} ({})", p.pid, p.comm, p.cmdline);
            if ours {
                if p.is_spare_shim() && spare_allowance > 0 {
                    spare_allowance -= 1;
                    continue;
                }
                diff.ours.push(line);
            } else if p.cmdline.contains("berth") || p.comm.contains("berth") {
                diff.unattributed.push(line);
            }
        }
        diff
    }

    /// Everything in this snapshot that `scope` attributes to its berthd
    /// and that is not a file: mounts, cgroups, links, tables, processes
    /// (berthd aside). What an app is made of, when taken while it runs.
    pub fn owned(&self, scope: &Scope) -> Vec<String> {
        Self::diff_scoped(&Snapshot::empty_like(self), self, scope)
            .into_iter()
            .filter(|l| !l.starts_with("file: "))
            .collect()
    }

    /// The network links and nftables tables (`family name`) of this
    /// snapshot that `scope` attributes to its berthd.
    pub fn network_objects(&self, scope: &Scope) -> (Vec<String>, Vec<String>) {
        let mut scope = scope.clone();
        scope.learn(self);
        let links = scope.attributed_links(self, self);
        let tables = scope.attributed_tables(self, self, &links);
        (links.into_iter().collect(), tables.into_iter().collect())
    }

    /// A snapshot of nothing, with this one's roots and berthd.
    fn empty_like(&self) -> Snapshot {
        Snapshot {
            root: self.root.clone(),
            run_root: self.run_root.clone(),
            berthd_pid: self.berthd_pid,
            bus_address: self.bus_address.clone(),
            ..Default::default()
        }
    }
}

/// A diff split by attribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// New, and this berthd's.
    pub ours: Vec<String>,
    /// New, looks like Berth's, but not attributed to this berthd.
    pub unattributed: Vec<String>,
}

/// What belongs to one berthd (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub root: PathBuf,
    pub run_root: PathBuf,
    /// `berth:<8 hex>` ([`scope_tag`]).
    pub tag: String,
    /// Ids of containers (and other objects) it made.
    pub ids: BTreeSet<String>,
    /// Network names: their bridge and table names are derived.
    pub networks: BTreeSet<String>,
    /// Link and table names given outright (tables as `name` or
    /// `family name`).
    pub links: BTreeSet<String>,
    pub tables: BTreeSet<String>,
    /// Pids of berthd processes (never reported; their process groups and
    /// sessions are attributed).
    pub berthd_pids: BTreeSet<u32>,
    /// The berthd's bus: processes whose environment names it are its.
    pub bus_address: String,
    /// Substrings: a new file whose path contains one is not reported.
    pub ignore_files: Vec<String>,
}

impl Scope {
    /// The scope of the berthd with these roots.
    pub fn new(root: &Path, run_root: &Path) -> Self {
        Scope {
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            tag: scope_tag(run_root),
            ..Default::default()
        }
    }

    pub fn for_berthd(berthd: &Berthd) -> Self {
        let mut s = Self::new(&berthd.root(), &berthd.run_root());
        s.berthd(berthd.pid());
        s.bus_address = berthd.bus_address().to_string();
        s
    }

    pub fn for_snapshot(snap: &Snapshot) -> Self {
        let mut s = Self::new(&snap.root, &snap.run_root);
        s.learn(snap);
        s
    }

    pub fn id(&mut self, id: &str) -> &mut Self {
        if !id.is_empty() {
            self.ids.insert(id.to_string());
        }
        self
    }

    pub fn network(&mut self, name: &str) -> &mut Self {
        self.networks.insert(name.to_string());
        self
    }

    pub fn link(&mut self, name: &str) -> &mut Self {
        self.links.insert(name.to_string());
        self
    }

    pub fn table(&mut self, name: &str) -> &mut Self {
        self.tables.insert(name.to_string());
        self
    }

    /// A pid of this berthd (one per start).
    pub fn berthd(&mut self, pid: u32) -> &mut Self {
        if pid != 0 {
            self.berthd_pids.insert(pid);
        }
        self
    }

    pub fn ignore_file(&mut self, pattern: &str) -> &mut Self {
        self.ignore_files.push(pattern.to_string());
        self
    }

    /// Everything `other` knows besides its roots, tag and bus (e.g. what a
    /// crashed berthd made, learnt from its wreck).
    pub fn merge(&mut self, other: &Scope) -> &mut Self {
        self.ids.extend(other.ids.iter().cloned());
        self.networks.extend(other.networks.iter().cloned());
        self.links.extend(other.links.iter().cloned());
        self.tables.extend(other.tables.iter().cloned());
        self.berthd_pids.extend(other.berthd_pids.iter().copied());
        self.ignore_files.extend(other.ignore_files.iter().cloned());
        self
    }

    /// Ids, network names and the berthd's pid from a snapshot.
    pub fn learn(&mut self, snap: &Snapshot) -> &mut Self {
        self.ids.extend(snap.ids());
        self.networks.extend(snap.network_names());
        self.berthd(snap.berthd_pid);
        if self.bus_address.is_empty() {
            self.bus_address = snap.bus_address.clone();
        }
        self
    }

    /// Every 64-hex token in `text` (berthd's log, `berth inspect-app`)
    /// but digests (`sha256:…`): images are shared by every berthd.
    pub fn learn_text(&mut self, text: &str) -> &mut Self {
        let mut start = 0;
        for token in text.split(|c: char| !c.is_ascii_hexdigit()) {
            let at = start;
            start += token.len() + 1;
            let before = &text[..at];
            if is_id(token) && !before.ends_with("sha256:") && !before.ends_with("sha256/") {
                self.ids.insert(token.to_string());
            }
        }
        self
    }

    /// Whether `text` names one of this berthd's roots or ids.
    pub fn mentions(&self, text: &str) -> bool {
        let root = self.root.display().to_string();
        let run = self.run_root.display().to_string();
        (!root.is_empty() && text.contains(&root))
            || (!run.is_empty() && text.contains(&run))
            || self.ids.iter().any(|id| text.contains(id.as_str()))
    }

    fn ignored_file(&self, path: &str) -> bool {
        self.ignore_files.iter().any(|p| path.contains(p.as_str()))
    }

    fn owns_process(&self, p: &ProcEntry) -> bool {
        self.mentions(&p.cmdline)
            || self.mentions(&p.cgroup)
            || p.paths.iter().any(|x| self.mentions(x))
            || self.berthd_pids.contains(&p.pgid)
            || self.berthd_pids.contains(&p.sid)
            || (!self.bus_address.is_empty() && p.bus.as_deref() == Some(&self.bus_address))
    }

    /// Link names derived from what this scope knows.
    fn derived_links(&self) -> BTreeSet<String> {
        let mut names = self.links.clone();
        for n in &self.networks {
            names.insert(network_object_names(&self.run_root, n).0);
        }
        for id in &self.ids {
            names.insert(veth_name(&self.run_root, id));
        }
        names
    }

    /// Names of the links (in either snapshot) that are this berthd's.
    fn attributed_links(&self, before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
        let derived = self.derived_links();
        let all: BTreeMap<&String, &LinkEntry> =
            before.links.iter().chain(after.links.iter()).collect();
        let mut ours: BTreeSet<String> = all
            .values()
            .filter(|l| {
                derived.contains(&l.name)
                    || l.alias.as_deref().is_some_and(|a| has_tag(a, &self.tag))
            })
            .map(|l| l.name.clone())
            .collect();
        // Bridges whose table is tagged or named (one hash for both).
        for t in before.nft_tables.values().chain(after.nft_tables.values()) {
            if self.table_named_or_tagged(t) {
                if let Some(h) = t.name.strip_prefix("berth-net-") {
                    let bridge = format!("bn-{h}");
                    if all.contains_key(&bridge) {
                        ours.insert(bridge);
                    }
                }
            }
        }
        // Ports of attributed bridges.
        for l in all.values() {
            if l.master.as_ref().is_some_and(|m| ours.contains(m)) {
                ours.insert(l.name.clone());
            }
        }
        ours
    }

    fn table_named_or_tagged(&self, t: &NftTable) -> bool {
        let derived = self
            .networks
            .iter()
            .any(|n| network_object_names(&self.run_root, n).1 == t.name);
        derived
            || self.tables.contains(&t.name)
            || self.tables.contains(&t.key())
            || t.comment.as_deref().is_some_and(|c| has_tag(c, &self.tag))
    }

    /// Keys of the tables (in either snapshot) that are this berthd's.
    fn attributed_tables(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        links: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut ours = BTreeSet::new();
        for t in before.nft_tables.values().chain(after.nft_tables.values()) {
            let by_bridge = t
                .name
                .strip_prefix("berth-net-")
                .is_some_and(|h| links.contains(&format!("bn-{h}")));
            let by_text = t.name.starts_with("berth-net-")
                && links.iter().any(|l| t.text.contains(&format!("\"{l}\"")));
            if self.table_named_or_tagged(t) || by_bridge || by_text {
                ours.insert(t.key());
            }
        }
        ours
    }
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn describe_link(l: &LinkEntry) -> String {
    let mut s = l.name.clone();
    let mut extra = Vec::new();
    if let Some(k) = &l.kind {
        extra.push(k.clone());
    }
    if let Some(m) = &l.master {
        extra.push(format!("master {m}"));
    }
    if let Some(a) = &l.alias {
        extra.push(format!("alias {a:?}"));
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    s
}

fn run_tool(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The entries of a mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountEntry {
                mount_point: unescape(point),
                fstype: fields.get(sep + 1)?.to_string(),
                source: unescape(fields.get(sep + 2)?),
                line: line.to_string(),
            })
        })
        .collect()
}

/// `ip -j -d link show` → links by name.
pub fn parse_ip_links(json: &str) -> Result<BTreeMap<String, LinkEntry>> {
    let v: Value = serde_json::from_str(json.trim()).context("parsing ip's JSON")?;
    let mut out = BTreeMap::new();
    for l in v.as_array().context("ip's JSON is not an array")? {
        let Some(name) = l["ifname"].as_str() else {
            continue;
        };
        let s = |v: &Value| v.as_str().map(str::to_string);
        out.insert(
            name.to_string(),
            LinkEntry {
                name: name.to_string(),
                kind: s(&l["linkinfo"]["info_kind"]),
                master: s(&l["master"]),
                alias: s(&l["ifalias"]).filter(|a| !a.is_empty()),
            },
        );
    }
    Ok(out)
}

/// `nft -j list tables` → tables by key (text not filled in).
pub fn parse_nft_tables(json: &str) -> Result<BTreeMap<String, NftTable>> {
    let mut out = BTreeMap::new();
    if json.trim().is_empty() {
        return Ok(out);
    }
    let v: Value = serde_json::from_str(json.trim()).context("parsing nft's JSON")?;
    for item in v["nftables"].as_array().context("no `nftables` array")? {
        let t = &item["table"];
        let (Some(family), Some(name)) = (t["family"].as_str(), t["name"].as_str()) else {
            continue;
        };
        let table = NftTable {
            family: family.to_string(),
            name: name.to_string(),
            comment: t["comment"].as_str().map(str::to_string),
            text: String::new(),
        };
        out.insert(table.key(), table);
    }
    Ok(out)
}

/// `nft list ruleset` → each table's block by `family name`.
pub fn split_ruleset(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some((key, block)) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line == "}" {
                out.insert(std::mem::take(key), std::mem::take(block));
                current = None;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("table ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.len() >= 2 {
                let key = format!("{} {}", words[0], words[1]);
                let block = format!("{line}\n");
                if words.last() == Some(&"{") {
                    current = Some((key, block));
                } else {
                    out.insert(key, block);
                }
            }
        }
    }
    out
}

fn walk_files(top: &Path, dir: &Path, mounts: &BTreeSet<PathBuf>, out: &mut BTreeSet<PathBuf>) {
    let Ok(md) = std::fs::symlink_metadata(dir) else {
        return;
    };
    out.insert(dir.to_path_buf());
    if !md.is_dir() || (dir != top && mounts.contains(dir)) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk_files(top, &path, mounts, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// Every directory under `/sys/fs/cgroup/*/` (each hierarchy; symlinks to
/// hierarchies, like v1's `cpu` → `cpu,cpuacct`, are not followed).
fn cgroup_dirs(base: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        out.insert(dir.to_path_buf());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), &mut out);
        }
    }
    // On a pure v2 host /sys/fs/cgroup is itself the hierarchy: its
    // children are cgroups and were walked above as "hierarchies".
    out
}

/// Every process but this one; `needles` say which paths to keep from
/// their cwd and open fds.
fn processes(needles: &[String]) -> Vec<ProcEntry> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = PathBuf::from(format!("/proc/{pid}"));
        let Ok(stat) = std::fs::read_to_string(base.join("stat")) else {
            continue;
        };
        let Some((comm, state, ppid, pgid, sid)) = parse_stat(&stat) else {
            continue;
        };
        // Zombies and the dying hold nothing; their parent reaps them.
        if matches!(state, 'Z' | 'X' | 'x') {
            continue;
        }
        // Kernel threads have no command line.
        let Ok(cmdline) = std::fs::read(base.join("cmdline")) else {
            continue;
        };
        if cmdline.is_empty() && ppid == 2 {
            continue;
        }
        let cmdline = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let cgroup = std::fs::read_to_string(base.join("cgroup"))
            .unwrap_or_default()
            .lines()
            .collect::<Vec<_>>()
            .join(";");
        let mut paths = Vec::new();
        let keep = |p: &Path| {
            let s = p.display().to_string();
            needles.iter().any(|n| s.contains(n.as_str())).then_some(s)
        };
        if let Some(p) = std::fs::read_link(base.join("cwd"))
            .ok()
            .and_then(|p| keep(&p))
        {
            paths.push(p);
        }
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            for fd in fds.flatten() {
                if let Some(p) = std::fs::read_link(fd.path()).ok().and_then(|p| keep(&p)) {
                    paths.push(p);
                }
            }
        }
        paths.sort();
        paths.dedup();
        out.push(ProcEntry {
            pid,
            ppid,
            pgid,
            sid,
            comm,
            cmdline,
            cgroup,
            paths,
            bus: environ_var(&base, "DBUS_SYSTEM_BUS_ADDRESS"),
        });
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// One variable of `/proc/PID/environ`.
fn environ_var(proc_dir: &Path, name: &str) -> Option<String> {
    let env = std::fs::read(proc_dir.join("environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(name)
            .and_then(|v| v.strip_prefix('='))
            .map(str::to_string)
    })
}

/// Deletes the network links and nftables tables attributed to the berthd
/// of `scope` (a test's guard: they outlive berthd and its directories).
/// Returns what it deleted, and what it could not, as lines.
pub fn sweep_network(scope: &Scope) -> Vec<String> {
    let snap = match Snapshot::take_for(&scope.root, &scope.run_root, 0) {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot look: {e:#}")],
    };
    let (links, tables) = snap.network_objects(scope);
    let mut done = Vec::new();
    // Bridges last: deleting a veth's host end takes its peer with it.
    let (bridges, ports): (Vec<_>, Vec<_>) = links.iter().partition(|l| l.starts_with("bn-"));
    for link in ports.into_iter().chain(bridges) {
        done.push(match run_tool("ip", &["link", "del", link]) {
            Ok(_) => format!("deleted link {link}"),
            Err(e) => format!("could not delete link {link}: {e:#}"),
        });
    }
    for table in tables {
        let mut args = vec!["delete", "table"];
        args.extend(table.split(' '));
        done.push(match run_tool("nft", &args) {
            Ok(_) => format!("deleted nft table {table}"),
            Err(e) => format!("could not delete nft table {table}: {e:#}"),
        });
    }
    done
}

/// `(comm, state, ppid, pgrp, session)` from `/proc/PID/stat`.
fn parse_stat(stat: &str) -> Option<(String, char, u32, u32, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    // rest[0] = state, [1] = ppid, [2] = pgrp, [3] = session
    Some((
        comm,
        rest.first()?.chars().next()?,
        rest.get(1)?.parse().ok()?,
        rest.get(2)?.parse().ok()?,
        rest.get(3)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn snap() -> Snapshot {
        Snapshot {
            root: "/tmp/t1/root".into(),
            run_root: "/tmp/t1/run".into(),
            berthd_pid: 100,
            files: ["/tmp/t1/root", "/tmp/t1/run"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            ..Default::default()
        }
    }

    fn mount(point: &str, fstype: &str, source: &str) -> MountEntry {
        MountEntry {
            mount_point: point.into(),
            fstype: fstype.into(),
            source: source.into(),
            line: format!("1 2 0:1 / {point} rw - {fstype} {source} rw"),
        }
    }

    fn link(name: &str, master: Option<&str>, alias: Option<&str>) -> LinkEntry {
        LinkEntry {
            name: name.into(),
            kind: None,
            master: master.map(Into::into),
            alias: alias.map(Into::into),
        }
    }

    fn table(name: &str, comment: Option<&str>, text: &str) -> NftTable {
        NftTable {
            family: "inet".into(),
            name: name.into(),
            comment: comment.map(Into::into),
            text: text.into(),
        }
    }

    fn add_link(s: &mut Snapshot, l: LinkEntry) {
        s.links.insert(l.name.clone(), l);
    }

    fn add_table(s: &mut Snapshot, t: NftTable) {
        s.nft_tables.insert(t.key(), t);
    }

    fn proc_(pid: u32, cmdline: &str, cgroup: &str) -> ProcEntry {
        ProcEntry {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            comm: cmdline.split(' ').next().unwrap_or("").into(),
            cmdline: cmdline.into(),
            cgroup: cgroup.into(),
            paths: vec![],
            bus: None,
        }
    }

    #[test]
    fn identical_snapshots_differ_in_nothing() {
        let mut s = snap();
        s.mounts.push(mount("/", "ext4", "/dev/sda1"));
        s.cgroups.insert("/sys/fs/cgroup/memory".into());
        add_link(&mut s, link("lo", None, None));
        s.processes.push(proc_(1, "/sbin/init", "0::/"));
        assert!(Snapshot::diff(&s, &s.clone()).is_empty());
    }

    #[test]
    fn new_files_are_reported_and_gone_ones_are_not() {
        let before = snap();
        let mut after = snap();
        after.files.insert("/tmp/t1/root/apps/hello.json".into());
        let mut gone = before.clone();
        gone.files.insert("/tmp/t1/root/old".into());
        assert_eq!(
            Snapshot::diff(&gone, &after),
            ["file: /tmp/t1/root/apps/hello.json"]
        );
        // A new directory stands for what is below it.
        let mut deep = after.clone();
        for f in [
            "/tmp/t1/root/v",
            "/tmp/t1/root/v/a",
            "/tmp/t1/root/v/a/b",
            "/tmp/t1/root/w",
        ] {
            deep.files.insert(f.into());
        }
        assert_eq!(
            Snapshot::diff(&before, &deep),
            [
                "file: /tmp/t1/root/apps/hello.json",
                "file: /tmp/t1/root/v (and 2 more below)",
                "file: /tmp/t1/root/w"
            ]
        );
        let mut scope = Scope::for_snapshot(&after);
        scope.ignore_file("/apps/");
        assert!(Snapshot::diff_scoped(&before, &after, &scope).is_empty());
    }

    #[test]
    fn ids_and_networks_are_learnt_from_files() {
        let mut s = snap();
        s.files
            .insert(format!("/tmp/t1/root/containers/{ID_A}/config.json").into());
        s.files.insert(format!("/tmp/t1/run/netns/{ID_B}").into());
        s.files
            .insert(format!("/tmp/t1/root/layers/sha256/{}/diff", "c".repeat(64)).into());
        s.files.insert("/tmp/t1/run/networks/hello.json".into());
        s.files.insert("/tmp/t1/run/networks/sub/x.json".into());
        assert_eq!(s.ids(), [ID_A.to_string(), ID_B.to_string()].into());
        assert_eq!(s.network_names(), ["hello".to_string()].into());
    }

    #[test]
    fn mounts_are_attributed_by_root_or_id_and_counted() {
        let mut before = snap();
        before.mounts.push(mount("/", "ext4", "/dev/sda1"));
        let mut after = before.clone();
        after
            .mounts
            .push(mount("/tmp/t1/run/netns/x", "nsfs", "nsfs"));
        after
            .mounts
            .push(mount("/tmp/t1/run/netns/x", "nsfs", "nsfs"));
        after.mounts.push(mount(
            &format!("/somewhere/{ID_A}/rootfs"),
            "overlay",
            "overlay",
        ));
        after
            .mounts
            .push(mount("/tmp/t2/run/netns/y", "nsfs", "nsfs"));
        after.mounts.push(mount("/mnt/usb", "vfat", "/dev/sdb1"));
        let mut scope = Scope::for_snapshot(&after);
        scope.id(ID_A);
        let d = Snapshot::diff_detailed(&before, &after, &scope);
        assert_eq!(
            d.ours,
            [
                "mount: /tmp/t1/run/netns/x (nsfs from nsfs)",
                "mount: /tmp/t1/run/netns/x (nsfs from nsfs)",
                &format!("mount: /somewhere/{ID_A}/rootfs (overlay from overlay)"),
            ]
        );
        // Another berthd's is not ours (nor Berth-looking, by its path).
        assert!(d.unattributed.is_empty(), "{:?}", d.unattributed);
        // One of two stacked mounts gone: nothing new.
        let mut later = after.clone();
        later.mounts.remove(1);
        let d = Snapshot::diff_detailed(&after, &later, &scope);
        assert!(d.ours.is_empty());
    }

    #[test]
    fn cgroups_are_attributed_by_id() {
        let before = snap();
        let mut after = snap();
        after
            .files
            .insert(format!("/tmp/t1/root/containers/{ID_A}").into());
        after
            .cgroups
            .insert(format!("/sys/fs/cgroup/memory/berth/{ID_A}").into());
        after
            .cgroups
            .insert(format!("/sys/fs/cgroup/memory/berth/{ID_B}").into());
        let d = Snapshot::diff_detailed(&before, &after, &Scope::for_snapshot(&after));
        assert_eq!(
            d.ours,
            [
                format!("file: /tmp/t1/root/containers/{ID_A}"),
                format!("cgroup: /sys/fs/cgroup/memory/berth/{ID_A}")
            ]
        );
        assert_eq!(
            d.unattributed,
            [format!("cgroup: /sys/fs/cgroup/memory/berth/{ID_B}")]
        );
    }

    #[test]
    fn derived_names_match_the_network_module() {
        // SHA-256("/run/berth\0network\0web") etc., as
        // helper/src/network/names.rs hashes them.
        let run = Path::new("/run/berth");
        assert_eq!(
            network_object_names(run, "web"),
            ("bn-2cdc798e".to_string(), "berth-net-2cdc798e".to_string())
        );
        assert_eq!(veth_name(run, ID_A), "bv-06a7bee5");
        assert_ne!(
            network_object_names(Path::new("/tmp/other"), "web").0,
            "bn-2cdc798e"
        );
        assert_ne!(
            short_hash("a", "network", "bc"),
            short_hash("ab", "network", "c")
        );
        assert_eq!(scope_tag(run), "berth:559b1860");
        assert!(has_tag("berth:559b1860:net:web", "berth:559b1860"));
        assert!(has_tag("berth:559b1860", "berth:559b1860"));
        assert!(!has_tag("berth:559b18601:net:web", "berth:559b1860"));
        assert!(!has_tag("x berth:559b1860:net:web", "berth:559b1860"));
    }

    #[test]
    fn links_and_tables_are_attributed_by_name_master_tag_and_hash() {
        let run = Path::new("/tmp/t1/run");
        let (bridge, table_name) = network_object_names(run, "hello");
        let veth = veth_name(run, ID_A);
        let (other_bridge, other_table) = network_object_names(Path::new("/tmp/t2/run"), "hello");
        let tag = scope_tag(run);

        let mut before = snap();
        add_link(&mut before, link("lo", None, None));
        let mut after = before.clone();
        // Derived from the network name learnt from the record.
        after.files.insert("/tmp/t1/run/networks/hello.json".into());
        add_link(&mut after, link(&bridge, None, None));
        // A port of our bridge whose container id we never learnt.
        add_link(&mut after, link("bv-12345678", Some(&bridge), None));
        // Tagged.
        add_link(
            &mut after,
            link("bv-0badf00d", None, Some(&format!("{tag}:ep:hello:x"))),
        );
        // Another berthd's.
        add_link(&mut after, link(&other_bridge, None, None));
        add_link(&mut after, link("bv-87654321", Some(&other_bridge), None));
        // The host's.
        add_link(&mut after, link("wlan0", None, None));
        add_table(&mut after, table(&table_name, None, ""));
        add_table(&mut after, table(&other_table, None, ""));
        add_table(&mut after, table("berth-net-c0ffee00", Some(&tag), ""));
        add_table(&mut after, table("firewalld", None, ""));

        let mut scope = Scope::for_snapshot(&after);
        let d = Snapshot::diff_detailed(&before, &after, &scope);
        let mut ours = d.ours.clone();
        ours.sort();
        let mut expected = vec![
            format!("file: /tmp/t1/run/networks/hello.json"),
            format!("link: {bridge}"),
            format!("link: bv-12345678 (master {bridge})"),
            format!("link: bv-0badf00d (alias \"{tag}:ep:hello:x\")"),
            format!("nft table: inet {table_name}"),
            format!("nft table: inet berth-net-c0ffee00 (comment \"{tag}\")"),
        ];
        expected.sort();
        assert_eq!(ours, expected);
        let mut un = d.unattributed.clone();
        un.sort();
        let mut expected_un = vec![
            format!("link: {other_bridge}"),
            format!("link: bv-87654321 (master {other_bridge})"),
            format!("nft table: inet {other_table}"),
        ];
        expected_un.sort();
        assert_eq!(un, expected_un);

        // A veth derived from a container id the scope was told.
        let mut b = before.clone();
        b.files = after.files.clone();
        let mut a = b.clone();
        add_link(&mut a, link(&veth, None, None));
        assert!(Snapshot::diff_detailed(&b, &a, &Scope::for_snapshot(&a))
            .ours
            .is_empty());
        scope.id(ID_A);
        assert_eq!(
            Snapshot::diff_scoped(&b, &a, &scope),
            [format!("link: {veth}")]
        );

        // A bridge found through its table's tag (one hash for both), and
        // a table found through its bridge given by name.
        let mut a = before.clone();
        add_link(&mut a, link("bn-11111111", None, None));
        add_table(&mut a, table("berth-net-11111111", Some(&tag), ""));
        add_link(&mut a, link("bn-22222222", None, None));
        add_table(&mut a, table("berth-net-22222222", None, ""));
        let mut s = Scope::for_snapshot(&a);
        s.link("bn-22222222");
        let d = Snapshot::diff_detailed(&before, &a, &s);
        assert_eq!(d.ours.len(), 4, "{d:?}");
        assert!(d.unattributed.is_empty());

        // A table whose text names one of our links.
        let mut a = before.clone();
        add_link(&mut a, link("bv-33333333", None, Some(&tag)));
        add_table(
            &mut a,
            table("berth-net-44444444", None, "iifname \"bv-33333333\" drop"),
        );
        let d = Snapshot::diff_detailed(&before, &a, &Scope::for_snapshot(&a));
        assert_eq!(d.ours.len(), 2, "{d:?}");
    }

    #[test]
    fn processes_are_a_multiset_and_berthd_is_never_new() {
        let mut before = snap();
        before.processes.push(proc_(1, "/sbin/init", "0::/"));
        before
            .processes
            .push(proc_(100, "berthd --root /tmp/t1/root", "0::/"));
        let mut spare = proc_(101, "berth-shim --spare --control-fd 3", "0::/");
        spare.pgid = 100;
        before.processes.push(spare.clone());

        let mut after = snap();
        after.berthd_pid = 200;
        after.processes.push(proc_(1, "/sbin/init", "0::/"));
        // berthd restarted, and a new spare replaced the old one.
        after
            .processes
            .push(proc_(200, "berthd --root /tmp/t1/root", "0::/"));
        let mut spare2 = spare.clone();
        spare2.pid = 201;
        spare2.pgid = 200;
        after.processes.push(spare2.clone());
        assert!(Snapshot::diff(&before, &after).is_empty());

        // A second spare is new, and ours by its process group.
        let mut spare3 = spare2.clone();
        spare3.pid = 202;
        after.processes.push(spare3);
        assert_eq!(
            Snapshot::diff(&before, &after),
            ["process: 202 berth-shim (berth-shim --spare --control-fd 3)"]
        );
        after.processes.pop();

        // A container's process: ours by its cgroup; another's not ours.
        after
            .files
            .insert(format!("/tmp/t1/root/containers/{ID_A}").into());
        after.processes.push(proc_(
            300,
            "httpd -f -p 8080",
            &format!("4:memory:/berth/{ID_A}"),
        ));
        after.processes.push(proc_(
            301,
            "httpd -f -p 8080",
            &format!("4:memory:/berth/{ID_B}"),
        ));
        // A shim of ours: no path on its command line, but our bus.
        let mut shim = proc_(303, "berth-shim --spare --control-fd 3", "0::/");
        shim.bus = Some("unix:path=/tmp/bus1".into());
        after.processes.push(shim.clone());
        after.bus_address = "unix:path=/tmp/bus1".into();
        let mut held = proc_(302, "sleep 1000", "0::/");
        held.paths.push("/tmp/t1/root/containers/x/log.json".into());
        after.processes.push(held);
        let d = Snapshot::diff_detailed(&before, &after, &Scope::for_snapshot(&after));
        assert_eq!(
            d.ours,
            [
                format!("file: /tmp/t1/root/containers/{ID_A}"),
                "process: 300 httpd (httpd -f -p 8080)".to_string(),
                "process: 303 berth-shim (berth-shim --spare --control-fd 3)".to_string(),
                "process: 302 sleep (sleep 1000)".to_string(),
            ]
        );
        assert!(d.unattributed.is_empty(), "{d:?}");
    }

    #[test]
    fn one_spare_shim_of_a_running_berthd_is_not_new() {
        let mut before = snap();
        before
            .processes
            .push(proc_(100, "berthd --root /tmp/t1/root", "0::/"));
        let mut after = before.clone();
        let mut spare = proc_(101, "berth-shim --spare --control-fd 3", "0::/");
        spare.pgid = 100;
        after.processes.push(spare.clone());
        // Started after `before` was taken: berthd's own.
        assert!(Snapshot::diff(&before, &after).is_empty());
        // A second one is not.
        let mut second = spare.clone();
        second.pid = 102;
        after.processes.push(second);
        assert_eq!(
            Snapshot::diff(&before, &after),
            ["process: 102 berth-shim (berth-shim --spare --control-fd 3)"]
        );
        // Nor is one when berthd is not running.
        after.processes.pop();
        after.berthd_pid = 0;
        assert_eq!(
            Snapshot::diff(&before, &after),
            ["process: 101 berth-shim (berth-shim --spare --control-fd 3)"]
        );
    }

    #[test]
    fn another_berthds_process_does_not_stand_in_for_ours() {
        let mut before = snap();
        before.bus_address = "unix:path=/tmp/bus1".into();
        let spare = |pid: u32, bus: &str| {
            let mut p = proc_(pid, "berth-shim --spare --control-fd 3", "0::/");
            p.bus = Some(bus.into());
            p
        };
        before.processes.push(spare(101, "unix:path=/tmp/bus1"));
        before.processes.push(spare(201, "unix:path=/tmp/bus2"));
        let mut after = before.clone();
        // Ours went and came back; the other berthd's went; a second of
        // ours appeared.
        after.processes = vec![
            spare(102, "unix:path=/tmp/bus1"),
            spare(103, "unix:path=/tmp/bus1"),
        ];
        assert_eq!(
            Snapshot::diff(&before, &after),
            ["process: 103 berth-shim (berth-shim --spare --control-fd 3)"]
        );
    }

    #[test]
    fn learn_text_finds_ids() {
        let mut s = Scope::new(Path::new("/r"), Path::new("/run"));
        s.learn_text(&format!(
            "{{\"container_id\":\"{ID_A}\"}} sha256:{} short abc123 {} {ID_B}",
            "d".repeat(64),
            "c".repeat(65)
        ));
        assert_eq!(s.ids, [ID_A.to_string(), ID_B.to_string()].into());
    }

    #[test]
    fn owned_lists_what_a_running_app_is_made_of() {
        let mut s = snap();
        s.files.insert("/tmp/t1/run/networks/hello.json".into());
        let (bridge, table_name) = network_object_names(Path::new("/tmp/t1/run"), "hello");
        add_link(&mut s, link(&bridge, None, None));
        add_link(&mut s, link("lo", None, None));
        add_table(&mut s, table(&table_name, None, ""));
        s.mounts.push(mount("/", "ext4", "/dev/sda1"));
        s.processes
            .push(proc_(100, "berthd --root /tmp/t1/root", "0::/"));
        let owned = Snapshot::owned(&s, &Scope::for_snapshot(&s));
        assert_eq!(
            owned,
            [
                format!("link: {bridge}"),
                format!("nft table: inet {table_name}")
            ]
        );
    }

    #[test]
    fn parsers() {
        let mi = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                  37 35 0:5 / /proc rw - proc proc rw\n";
        let m = parse_mountinfo(mi);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/mnt/with space");
        assert_eq!(
            (m[0].fstype.as_str(), m[0].source.as_str()),
            ("ext3", "/dev/root")
        );
        assert_eq!(m[1].mount_point, "/proc");

        let links = parse_ip_links(
            r#"[{"ifindex":1,"ifname":"lo"},
                {"ifindex":7,"ifname":"bv-1","master":"bn-1","ifalias":"berth:0123abcd","linkinfo":{"info_kind":"veth"}}]"#,
        )
        .unwrap();
        assert_eq!(links["lo"], link("lo", None, None));
        assert_eq!(links["bv-1"].master.as_deref(), Some("bn-1"));
        assert_eq!(links["bv-1"].alias.as_deref(), Some("berth:0123abcd"));
        assert_eq!(links["bv-1"].kind.as_deref(), Some("veth"));

        let tables = parse_nft_tables(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
               {"table": {"family": "inet", "name": "berth-net-1", "handle": 3, "comment": "berth:x"}},
               {"table": {"family": "ip", "name": "nat", "handle": 4}}]}"#,
        )
        .unwrap();
        assert_eq!(tables.len(), 2);
        assert_eq!(
            tables["inet berth-net-1"].comment.as_deref(),
            Some("berth:x")
        );
        assert!(parse_nft_tables("").unwrap().is_empty());

        let blocks =
            split_ruleset("table inet berth-net-1 {\n\tchain c {\n\t}\n}\ntable ip nat {\n}\n");
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks["inet berth-net-1"],
            "table inet berth-net-1 {\n\tchain c {\n\t}\n}\n"
        );
        assert_eq!(blocks["ip nat"], "table ip nat {\n}\n");

        assert_eq!(
            parse_stat("42 (a (b) c) S 1 40 41 0 -1"),
            Some(("a (b) c".to_string(), 'S', 1, 40, 41))
        );
    }

    #[test]
    fn fd_count_and_rss_of_a_child() {
        use std::process::Stdio;
        let spawn = |script: &str| {
            Command::new("sh")
                .args(["-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        // Both inherit whatever the harness leaves open (cargo's jobserver).
        let mut plain = spawn("exec sleep 30");
        let mut two_more = spawn("exec sleep 30 7</dev/null 8</dev/null");
        let counts = |c: &std::process::Child| {
            // Until both have exec'd sleep.
            for _ in 0..200 {
                let comm = std::fs::read_to_string(format!("/proc/{}/comm", c.id()));
                if comm.is_ok_and(|c| c.trim() == "sleep") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (fd_count(c.id()).unwrap(), rss_kib(c.id()).unwrap())
        };
        let (a, rss) = counts(&plain);
        let (b, _) = counts(&two_more);
        let pid = plain.id();
        for c in [&mut plain, &mut two_more] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert!(a >= 3, "{a}");
        assert_eq!(b, a + 2);
        assert!(rss > 0);
        assert!(fd_count(pid).is_err(), "a reaped pid has no fds");
    }
}
