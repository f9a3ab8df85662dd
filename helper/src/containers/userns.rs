//! `--userns=auto`: which block of host ids a container's uids and gids
//! 0..65535 become.
//!
//! The pool of host ids to hand out is, in order of preference:
//!
//! * the ranges `/etc/subuid` **and** `/etc/subgid` give the user named in
//!   the config (`[userns] user`, default `berth`) — both files must name
//!   it, and a block must lie in both, because the container's uid and gid
//!   maps use the same host range;
//! * otherwise the built-in range [`DEFAULT_POOL`]: host ids
//!   1879048192..2147352575 (`0x70000000`..`0x7FFE0000`), room for 4094
//!   containers. It lies above every regular and system user, above the
//!   range systemd-nspawn picks from (up to `0x6FFFFFFF`), below systemd's
//!   foreign-id range (`0x7FFE0000`) and below 2³¹ (ids some tools take for
//!   negative). Any id `/etc/passwd` or `/etc/group` lists in it, and every
//!   range `/etc/subuid` or `/etc/subgid` delegates to anyone, is skipped.
//!
//! A container gets the lowest free block of [`BLOCK`] ids, aligned to the
//! start of its pool range. A block is free when no recorded container of
//! this berthd holds any id of it (a range is recorded with the container
//! from `create` to `rm`, so it survives restarts) and no running process
//! on the host has it in its uid or gid map (other container engines,
//! another berthd).
//!
//! # Reaching the container's files
//!
//! The container's init works in the container's user namespace, where
//! host root's directories are "other" and its capabilities count for
//! nothing. It must still reach, by path, its root file system
//! (`<run>/containers/<id>/bundle/rootfs`), the `/etc` files it binds
//! (`<root>/containers/<id>/hosts`, …) and the runtime's `exec.fifo`
//! (`<run>/runtime/<id>/`), through berthd's directories, which no one but
//! root may pass ([`crate::fsmode`]; issue 11). Docker 20.10.9 (CVE-2021-41091)
//! made its directories 0710 root:*the remapped root's group*; a Berth
//! container has a block of its own, so there is no one remapped group.
//! Instead the directories on those paths are 0710 root:[`TRAVERSE_GROUP`],
//! and the runtime gives the init that group as its only supplementary
//! group while it is still host root, before it enters the new user
//! namespace (permission checks compare the host's gid, mapped there or
//! not). Before the container's command runs, the init switches to the
//! container's user and always sets its supplementary groups anew (the
//! image's, or none), so nothing the container runs keeps the group.
//!
//! Opening the paths before entering the namespace and handing over
//! descriptors (runc's and crun's mount-source fds) does not do here: the
//! kernel refuses to bind-mount a source held from another mount namespace
//! (EINVAL) short of cloning it with `open_tree`, and the init pivots into
//! its root file system by path.
//!
//! berthd makes the group (`groupadd --system`, as dockerd makes
//! `dockremap`) the first time a `--userns=auto` container is created: a
//! machine that never runs one never has it. Uninstalling Berth removes it
//! (see the README). The group has no members and must get none: a member
//! could pass the same directories.

use std::collections::BTreeSet;

use serde::Serialize;

/// Ids per container: 0..65535 inside.
pub const BLOCK: u32 = 65536;

/// The built-in pool, used when the subordinate id files name no range for
/// the configured user.
pub const DEFAULT_POOL: IdRange = IdRange {
    start: 0x7000_0000,
    size: 0x7FFE_0000 - 0x7000_0000,
};

/// `size` host ids from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IdRange {
    pub start: u32,
    pub size: u32,
}

impl IdRange {
    pub fn new(start: u32, size: u32) -> IdRange {
        IdRange { start, size }
    }

    /// One past the last id (as u64: a range may end at 2³²).
    pub fn end(&self) -> u64 {
        self.start as u64 + self.size as u64
    }

    pub fn overlaps(&self, other: &IdRange) -> bool {
        (self.start as u64) < other.end() && (other.start as u64) < self.end()
    }

    fn intersect(&self, other: &IdRange) -> Option<IdRange> {
        let start = self.start.max(other.start) as u64;
        let end = self.end().min(other.end());
        (start < end).then(|| IdRange::new(start as u32, (end - start) as u32))
    }
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end() - 1)
    }
}

/// The texts allocation decides from (the real files, or a test's).
#[derive(Debug, Clone, Default)]
pub struct HostIds {
    pub subuid: String,
    pub subgid: String,
    pub passwd: String,
    pub group: String,
}

impl HostIds {
    /// `/etc/subuid`, `/etc/subgid`, `/etc/passwd`, `/etc/group`; a missing
    /// file reads as empty.
    pub fn read() -> HostIds {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        HostIds {
            subuid: read("/etc/subuid"),
            subgid: read("/etc/subgid"),
            passwd: read("/etc/passwd"),
            group: read("/etc/group"),
        }
    }
}

/// `name:start:count` lines of a subordinate id file (`/etc/subuid`
/// format): (owner, range). Comments, blank and malformed lines are skipped,
/// as shadow-utils does.
pub fn parse_subid(text: &str) -> Vec<(String, IdRange)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            let start: u32 = start.trim().parse().ok()?;
            let count: u32 = count.trim().parse().ok()?;
            // A range may not run past the largest id (2³² - 2).
            let size = count.min(u32::MAX - start);
            f.next()
                .is_none()
                .then(|| (owner.to_string(), IdRange::new(start, size)))
        })
        .filter(|(_, r)| r.size > 0)
        .collect()
}

/// The ids (third field) of `/etc/passwd` or `/etc/group` text.
fn listed_ids(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.split(':').nth(2)?.trim().parse().ok())
        .collect()
}

/// Where blocks come from, and what in it must never be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub ranges: Vec<IdRange>,
    /// Ids in the pool that belong to someone else.
    pub reserved: Vec<IdRange>,
    /// Where the ranges came from, for messages.
    pub source: String,
}

/// The pool for `user` (entries name it, or its uid as shadow-utils also
/// accepts).
pub fn pool(user: &str, host: &HostIds) -> Result<Pool, String> {
    let uid = host.passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[0] == user).then(|| f[2].to_string())
    });
    let mine = |text: &str| -> Vec<IdRange> {
        parse_subid(text)
            .into_iter()
            .filter(|(o, _)| o == user || uid.as_deref() == Some(o.as_str()))
            .map(|(_, r)| r)
            .collect()
    };
    let (uids, gids) = (mine(&host.subuid), mine(&host.subgid));
    let mut reserved: Vec<IdRange> = listed_ids(&host.passwd)
        .into_iter()
        .chain(listed_ids(&host.group))
        .map(|id| IdRange::new(id, 1))
        .collect();
    match (uids.is_empty(), gids.is_empty()) {
        (true, true) => {
            reserved.extend(
                parse_subid(&host.subuid)
                    .into_iter()
                    .chain(parse_subid(&host.subgid))
                    .map(|(_, r)| r),
            );
            Ok(Pool {
                ranges: vec![DEFAULT_POOL],
                reserved,
                source: format!(
                    "the built-in range {DEFAULT_POOL} (/etc/subuid and /etc/subgid have no entry for `{user}`)"
                ),
            })
        }
        (false, true) | (true, false) => {
            let (has, lacks) = if gids.is_empty() {
                ("/etc/subuid", "/etc/subgid")
            } else {
                ("/etc/subgid", "/etc/subuid")
            };
            Err(format!(
                "{has} gives user `{user}` host ids for --userns=auto but {lacks} does not: \
                 add the same range to {lacks} (a container's uids and gids use one host range)"
            ))
        }
        (false, false) => {
            let mut ranges: Vec<IdRange> = uids
                .iter()
                .flat_map(|u| gids.iter().filter_map(|g| u.intersect(g)))
                .collect();
            ranges.sort();
            ranges.dedup();
            if ranges.is_empty() {
                return Err(format!(
                    "the ranges /etc/subuid and /etc/subgid give user `{user}` do not overlap: \
                     give it the same range in both (a container's uids and gids use one host range)"
                ));
            }
            let listed: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
            Ok(Pool {
                ranges,
                reserved,
                source: format!(
                    "the host ids /etc/subuid and /etc/subgid give user `{user}` ({})",
                    listed.join(", ")
                ),
            })
        }
    }
}

/// The lowest free block of `size` ids in `pool` that overlaps nothing in
/// `used` (nor the pool's reserved ids).
pub fn allocate(pool: &Pool, used: &[IdRange], size: u32) -> Result<IdRange, String> {
    let mut taken: Vec<IdRange> = used.iter().chain(&pool.reserved).copied().collect();
    taken.sort();
    let size = size as u64;
    let mut blocks = 0u64;
    for r in &pool.ranges {
        blocks += r.size as u64 / size;
        let mut start = r.start as u64;
        while start + size <= r.end() {
            let candidate = IdRange::new(start as u32, size as u32);
            match taken
                .iter()
                .filter(|t| t.overlaps(&candidate))
                .map(IdRange::end)
                .max()
            {
                None => return Ok(candidate),
                // Past everything in the way, at the next aligned block.
                Some(end) => {
                    start = r.start as u64 + (end - r.start as u64).div_ceil(size) * size;
                }
            }
        }
    }
    if blocks == 0 {
        return Err(format!(
            "--userns=auto needs {size} host ids per container, but {} has no block that large: \
             give the user a range of at least {size} ids in /etc/subuid and /etc/subgid",
            pool.source
        ));
    }
    Err(format!(
        "no free block of {size} host ids left for --userns=auto: the {blocks} blocks of {} \
         are all held by containers (berth ps -a; remove some with berth rm) or by other \
         processes on this host",
        pool.source
    ))
}

/// Host ids that running processes have in their uid or gid maps (other
/// than the initial namespace's identity map): what other container engines,
/// or another berthd, use right now.
pub fn mapped_by_processes() -> Vec<IdRange> {
    let mut found = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for map in ["uid_map", "gid_map"] {
            if let Ok(text) = std::fs::read_to_string(e.path().join(map)) {
                found.extend(parse_id_map(&text));
            }
        }
    }
    found.into_iter().collect()
}

/// The host side of each line of a `uid_map`, but the identity map of the
/// initial namespace.
pub fn parse_id_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u64>().ok());
            let (inside, outside, size) = (f.next()??, f.next()??, f.next()??);
            if inside == 0 && outside == 0 && size >= u32::MAX as u64 {
                return None;
            }
            let outside = u32::try_from(outside).ok()?;
            let size = u32::try_from(size.min((u32::MAX - outside) as u64)).ok()?;
            (size > 0).then(|| IdRange::new(outside, size))
        })
        .collect()
}

/// The system group through which `--userns=auto` inits reach their files
/// (module doc).
pub const TRAVERSE_GROUP: &str = "berth-userns";

/// The gid of [`TRAVERSE_GROUP`] in `/etc/group`, if it is there.
pub fn traverse_gid() -> Option<u32> {
    group_gid(
        &std::fs::read_to_string("/etc/group").unwrap_or_default(),
        TRAVERSE_GROUP,
    )
}

/// The gid of group `name` in `/etc/group` text.
fn group_gid(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.trim().parse().ok()
    })
}

/// [`traverse_gid`], made first with `groupadd --system` if it is missing.
/// Two berthd may make it at once: `groupadd -f` takes an existing group,
/// and one that finds `/etc/group` locked by the other tries again.
pub fn ensure_traverse_gid() -> Result<u32, String> {
    let mut said = String::new();
    for _ in 0..20 {
        if let Some(gid) = traverse_gid() {
            return Ok(gid);
        }
        match std::process::Command::new("groupadd")
            .args(["--system", "-f", TRAVERSE_GROUP])
            .output()
        {
            Ok(out) if out.status.success() => continue,
            Ok(out) => said = String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => said = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!(
        "cannot make the system group {TRAVERSE_GROUP}, through which --userns=auto \
         containers reach their files (groupadd: {said}); make it yourself \
         (groupadd --system {TRAVERSE_GROUP}) and try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_gids_are_read_from_group_text() {
        let text = "root:x:0:\nberth-userns:x:987:\nberth:x:1001:alice\nbad line\n";
        assert_eq!(group_gid(text, "berth-userns"), Some(987));
        assert_eq!(group_gid(text, "berth"), Some(1001));
        assert_eq!(group_gid(text, "berth-user"), None);
        assert_eq!(group_gid("", "berth-userns"), None);
    }

    fn host(subuid: &str, subgid: &str) -> HostIds {
        HostIds {
            subuid: subuid.into(),
            subgid: subgid.into(),
            passwd: "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n".into(),
            group: "root:x:0:\n".into(),
        }
    }

    #[test]
    fn subid_files_are_parsed_like_shadow_utils() {
        let text = "# comment\nalice:100000:65536\n\nberth:200000:131072\nbad line\n\
                    bob:x:5\nzero:5:0\n1001:300000:65536\nhuge:4294967000:65536\n";
        let got = parse_subid(text);
        assert_eq!(
            got,
            vec![
                ("alice".into(), IdRange::new(100000, 65536)),
                ("berth".into(), IdRange::new(200000, 131072)),
                ("1001".into(), IdRange::new(300000, 65536)),
                ("huge".into(), IdRange::new(4294967000, 295)),
            ]
        );
        // By uid, as shadow-utils also accepts.
        let mut h = host(text, text);
        h.passwd
            .push_str("carol:x:1001:1001::/home/carol:/bin/sh\n");
        let p = pool("carol", &h).unwrap();
        assert_eq!(p.ranges, vec![IdRange::new(300000, 65536)]);
    }

    #[test]
    fn the_users_ranges_in_both_files_are_the_pool() {
        let p = pool(
            "berth",
            &host("berth:100000:200000\n", "berth:165536:200000\n"),
        )
        .unwrap();
        assert_eq!(p.ranges, vec![IdRange::new(165536, 134464)]);
        assert!(p.source.contains("berth"), "{}", p.source);

        let e = pool("berth", &host("berth:100000:65536\n", "")).unwrap_err();
        assert!(e.contains("/etc/subgid does not"), "{e}");
        let e = pool(
            "berth",
            &host("berth:100000:65536\n", "berth:500000:65536\n"),
        )
        .unwrap_err();
        assert!(e.contains("do not overlap"), "{e}");
    }

    #[test]
    fn without_entries_the_default_pool_avoids_every_known_id() {
        let mut h = host("alice:1879048192:65536\n", "");
        h.passwd.push_str("odd:x:1879113828:100::/:/bin/false\n");
        let p = pool("berth", &h).unwrap();
        assert_eq!(p.ranges, vec![DEFAULT_POOL]);
        let first = allocate(&p, &[], BLOCK).unwrap();
        // alice's delegated block and the block holding `odd` are skipped.
        assert_eq!(first, IdRange::new(0x7000_0000 + 2 * BLOCK, BLOCK));
        let last = DEFAULT_POOL.end() - 1;
        assert!(last < 1 << 31, "below 2^31");
        const {
            assert!(
                DEFAULT_POOL.start > 0x6FFF_FFFF,
                "above systemd-nspawn's range"
            )
        };
    }

    #[test]
    fn blocks_are_disjoint_and_freed_blocks_are_reused() {
        let p = Pool {
            ranges: vec![IdRange::new(100000, 4 * BLOCK)],
            reserved: vec![],
            source: "test".into(),
        };
        let mut used = Vec::new();
        for _ in 0..4 {
            let r = allocate(&p, &used, BLOCK).unwrap();
            assert!(
                used.iter().all(|u: &IdRange| !u.overlaps(&r)),
                "{r} {used:?}"
            );
            assert_eq!((r.start - 100000) % BLOCK, 0, "aligned");
            used.push(r);
        }
        let e = allocate(&p, &used, BLOCK).unwrap_err();
        assert!(e.contains("no free block") && e.contains("4 blocks"), "{e}");
        // Removing the second container frees exactly its block.
        let freed = used.remove(1);
        assert_eq!(allocate(&p, &used, BLOCK).unwrap(), freed);
        // A range held elsewhere (unaligned, e.g. another engine's) is
        // stepped over to the next aligned block.
        let other = vec![IdRange::new(100000 + 10, 5)];
        assert_eq!(
            allocate(&p, &other, BLOCK).unwrap(),
            IdRange::new(100000 + BLOCK, BLOCK)
        );
        let tiny = Pool {
            ranges: vec![IdRange::new(100000, 1000)],
            ..p
        };
        assert!(allocate(&tiny, &[], BLOCK)
            .unwrap_err()
            .contains("no block that large"));
    }

    #[test]
    fn process_maps_but_the_identity_map_are_in_use() {
        assert_eq!(parse_id_map("         0          0 4294967295\n"), vec![]);
        assert_eq!(
            parse_id_map("         0       1000          1\n         1     100000      65536\n"),
            vec![IdRange::new(1000, 1), IdRange::new(100000, 65536)]
        );
    }
}
