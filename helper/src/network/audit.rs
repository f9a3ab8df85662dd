//! What of Berth's networks is on the host, and which of it is left over:
//! pure functions over what was read from the kernel and the run root
//! ([`Observed`]), so every rule is unit-tested with made-up lists.
//!
//! An object is this berthd's when its tag says so ([`names::Tag`]: the
//! alias of a link, the comment of a table), when its name is derived from
//! one of this berthd's records or namespace files (a link or table made by
//! a version without tags, or by a crash before it was tagged), when it is a
//! `bv-*` port of one of this berthd's bridges, or when it lives under the
//! run root (namespace files, records). Nothing else is looked at, so
//! another berthd's objects are never reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::names::{self, Tag, VETH_PREFIX};
use super::netlink::Link;
use super::nft;

/// A namespace file in `<run root>/netns/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsFile {
    pub container_id: String,
    /// A namespace is mounted on it (else it is a plain file a crash or a
    /// reboot left).
    pub mounted: bool,
    /// (device, inode): another file or namespace there later has another.
    pub id: Option<(u64, u64)>,
}

/// A record file in `<run root>/networks/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFile {
    pub network: String,
    /// Its endpoints (none if it cannot be read).
    pub endpoints: BTreeSet<String>,
    /// Its bytes: removed only if unchanged.
    pub content: Vec<u8>,
}

/// What was read from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every link of the host's network namespace.
    pub links: Vec<Link>,
    /// Every `inet berth-net-*` table, with its comment.
    pub tables: Vec<nft::Table>,
    pub netns: Vec<NetnsFile>,
    /// `<run root>/netns` exists.
    pub netns_dir: bool,
    pub records: Vec<RecordFile>,
    /// `<run root>/networks` exists.
    pub records_dir: bool,
    /// Names of files in `<run root>/networks/` that a write left behind
    /// (`<network>.json.tmp`).
    pub temps: Vec<String>,
}

/// Something of this berthd's networks that nothing uses any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// What it is, in plain words, with its exact name: `network link
    /// bn-1a2b3c4d (bridge of network hello)`.
    pub description: String,
    /// Why it is left over: `network hello is not in use`.
    pub reason: String,
    /// What [`super::Networks::remove_leftover`] removes.
    pub object: LeftoverObject,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.description, self.reason)
    }
}

/// A leftover, precisely enough to remove that very object and no other
/// one made since under the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverObject {
    /// A bridge or the host end of a veth pair (deleting it deletes the
    /// other end too).
    Link { name: String, index: u32 },
    /// An `inet` table.
    Table { name: String, handle: Option<u64> },
    /// A namespace file in `<run root>/netns/` (unmounted and removed).
    Netns {
        container_id: String,
        id: Option<(u64, u64)>,
    },
    /// `<run root>/netns` itself, a mount once no namespace is in it.
    NetnsDir,
    /// `<run root>/networks/<network>.json`.
    Record { network: String, content: Vec<u8> },
    /// An unfinished record file in `<run root>/networks/`.
    RecordTemp { file_name: String },
    /// `<run root>/networks` itself, removed if empty.
    RecordsDir,
}

/// Where the objects of a run root are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub scope: String,
    pub netns_dir: PathBuf,
    pub records_dir: PathBuf,
}

impl Paths {
    pub fn new(run_root: &Path) -> Paths {
        Paths {
            scope: run_root.display().to_string(),
            netns_dir: run_root.join("netns"),
            records_dir: run_root.join("networks"),
        }
    }

    fn record(&self, network: &str) -> PathBuf {
        self.records_dir.join(format!("{network}.json"))
    }
}

fn network_words(network: &str, cut: bool) -> String {
    if cut {
        format!("network {network}…")
    } else {
        format!("network {network}")
    }
}

pub fn describe_bridge(link: &str, network: &str, cut: bool) -> String {
    format!(
        "network link {link} (bridge of {})",
        network_words(network, cut)
    )
}

pub fn describe_veth(link: &str, container: Option<&str>, network: Option<&str>) -> String {
    let what = match (container, network) {
        (Some(c), Some(n)) => format!("veth of container {c} on network {n}"),
        (Some(c), None) => format!("veth of container {c}"),
        (None, Some(n)) => format!("veth on network {n}"),
        (None, None) => "veth".to_string(),
    };
    format!("network link {link} ({what})")
}

pub fn describe_table(table: &str, network: Option<(&str, bool)>) -> String {
    match network {
        Some((n, cut)) => format!(
            "nftables table inet {table} (firewall of {})",
            network_words(n, cut)
        ),
        None => format!("nftables table inet {table}"),
    }
}

pub fn describe_netns(path: &Path, container: &str, mounted: bool) -> String {
    if mounted {
        format!(
            "network namespace {} (of container {container}, mounted)",
            path.display()
        )
    } else {
        format!(
            "network namespace file {} (of container {container}, not mounted)",
            path.display()
        )
    }
}

/// The links of this berthd that `present`, `leftovers` and `remove` care
/// about, and what each is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Bridge {
        network: String,
        cut: bool,
    },
    Veth {
        container: Option<String>,
        network: Option<String>,
    },
}

struct Index<'a> {
    paths: &'a Paths,
    mine: String,
    obs: &'a Observed,
    /// Network → its record.
    records: BTreeMap<&'a str, &'a RecordFile>,
}

impl<'a> Index<'a> {
    fn new(paths: &'a Paths, obs: &'a Observed) -> Index<'a> {
        Index {
            paths,
            mine: names::scope_hash(&paths.scope),
            obs,
            records: obs
                .records
                .iter()
                .map(|r| (r.network.as_str(), r))
                .collect(),
        }
    }

    /// The link's tag, if it is this berthd's.
    fn tag(&self, alias: Option<&str>) -> Option<Tag> {
        alias.and_then(Tag::parse).filter(|t| t.scope == self.mine)
    }

    fn bridge_name(&self, network: &str) -> String {
        names::network_names(&self.paths.scope, network).bridge
    }

    fn veth_name(&self, container: &str) -> String {
        names::veth_name(&self.paths.scope, container)
    }

    /// The network whose record holds the container.
    fn network_of(&self, container: &str) -> Option<&'a str> {
        self.obs
            .records
            .iter()
            .find(|r| r.endpoints.contains(container))
            .map(|r| r.network.as_str())
    }

    /// What each link of this berthd is (see the module comment);
    /// `networks` are the networks whose bridges are looked for by name
    /// (besides those of the records).
    fn roles(&self, networks: &BTreeSet<String>) -> BTreeMap<u32, Role> {
        // Names derived from records, namespace files and `networks`.
        let mut by_name: BTreeMap<String, Role> = BTreeMap::new();
        for n in networks
            .iter()
            .map(String::as_str)
            .chain(self.records.keys().copied())
        {
            by_name.insert(
                self.bridge_name(n),
                Role::Bridge {
                    network: n.into(),
                    cut: false,
                },
            );
        }
        let containers = self
            .obs
            .records
            .iter()
            .flat_map(|r| r.endpoints.iter())
            .chain(self.obs.netns.iter().map(|f| &f.container_id));
        for c in containers {
            by_name.entry(self.veth_name(c)).or_insert(Role::Veth {
                container: Some(c.clone()),
                network: self.network_of(c).map(Into::into),
            });
        }
        let mut roles = BTreeMap::new();
        for l in &self.obs.links {
            let role = match self.tag(l.alias.as_deref()) {
                Some(t) => match t.whole_container() {
                    Some(c) => Some(Role::Veth {
                        container: Some(c.into()),
                        network: Some(t.network.clone()),
                    }),
                    None if t.container.is_some() => Some(Role::Veth {
                        container: match by_name.get(&l.name) {
                            Some(Role::Veth { container, .. }) => container.clone(),
                            _ => None,
                        },
                        network: Some(t.network.clone()),
                    }),
                    None => Some(Role::Bridge {
                        network: t.network.clone(),
                        cut: t.cut,
                    }),
                },
                None => by_name.get(&l.name).cloned(),
            };
            if let Some(r) = role {
                roles.insert(l.index, r);
            }
        }
        // Untagged veths of this berthd's bridges.
        for l in &self.obs.links {
            if roles.contains_key(&l.index) || !l.name.starts_with(VETH_PREFIX) {
                continue;
            }
            if let Some(Role::Bridge { network, .. }) = l.master.and_then(|m| roles.get(&m)) {
                roles.insert(
                    l.index,
                    Role::Veth {
                        container: None,
                        network: Some(network.clone()),
                    },
                );
            }
        }
        roles
    }

    fn describe(&self, l: &Link, role: &Role) -> String {
        match role {
            Role::Bridge { network, cut } => describe_bridge(&l.name, network, *cut),
            Role::Veth { container, network } => {
                describe_veth(&l.name, container.as_deref(), network.as_deref())
            }
        }
    }

    fn table_network(&self, t: &nft::Table) -> Option<(String, bool)> {
        if let Some(tag) = t.comment.as_deref().and_then(|c| self.tag(Some(c))) {
            return Some((tag.network, tag.cut));
        }
        self.records
            .keys()
            .find(|n| names::network_names(&self.paths.scope, n).table == t.name)
            .map(|n| (n.to_string(), false))
    }

    fn netns_item(&self, f: &NetnsFile) -> String {
        describe_netns(
            &self.paths.netns_dir.join(&f.container_id),
            &f.container_id,
            f.mounted,
        )
    }
}

/// The links and namespaces of one network on the host.
#[derive(Debug)]
pub struct Members<'a> {
    pub bridge: Option<&'a Link>,
    /// Its veths (tagged for it, ports of its bridge, or of an endpoint its
    /// record has), each with its description.
    pub veths: Vec<(&'a Link, String)>,
    /// The namespace files of its containers (recorded or found by a tag).
    pub netns: Vec<&'a NetnsFile>,
}

pub fn members<'a>(paths: &Paths, name: &str, obs: &'a Observed) -> Members<'a> {
    let ix = Index::new(paths, obs);
    let bridge_name = ix.bridge_name(name);
    let record = ix.records.get(name);
    let roles = ix.roles(&BTreeSet::from([name.to_string()]));
    let mut containers: BTreeSet<String> = record.map(|r| r.endpoints.clone()).unwrap_or_default();
    let bridge = obs.links.iter().find(|l| l.name == bridge_name);
    let mut veths = Vec::new();
    for l in obs.links.iter().filter(|l| l.name != bridge_name) {
        let Some(Role::Veth { container, network }) = roles.get(&l.index) else {
            continue;
        };
        // Tagged for the network, a port of its bridge, or the veth of an
        // endpoint its record has, whatever its tag says.
        let mine = network.as_deref() == Some(name)
            || bridge.is_some_and(|b| l.master == Some(b.index))
            || container
                .as_ref()
                .is_some_and(|c| record.is_some_and(|r| r.endpoints.contains(c)));
        if mine {
            containers.extend(container.clone());
            veths.push((l, describe_veth(&l.name, container.as_deref(), Some(name))));
        }
    }
    let netns = obs
        .netns
        .iter()
        .filter(|f| containers.contains(&f.container_id))
        .collect();
    Members {
        bridge,
        veths,
        netns,
    }
}

/// Every object of network `name` on the host, one line each (see
/// [`super::Networks::present`]).
pub fn present(paths: &Paths, name: &str, obs: &Observed) -> Vec<String> {
    present_objects(paths, name, obs)
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

/// [`present`], each line with the object's exact name (a link's, a
/// table's, a file's path).
pub fn present_objects(paths: &Paths, name: &str, obs: &Observed) -> Vec<(String, String)> {
    let ix = Index::new(paths, obs);
    let m = members(paths, name, obs);
    let mut out = Vec::new();
    if let Some(b) = m.bridge {
        out.push((b.name.clone(), describe_bridge(&b.name, name, false)));
    }
    out.extend(m.veths.iter().map(|(l, d)| (l.name.clone(), d.clone())));
    let table = names::network_names(&paths.scope, name).table;
    if let Some(t) = obs.tables.iter().find(|t| t.name == table) {
        out.push((t.name.clone(), describe_table(&t.name, Some((name, false)))));
    }
    for f in &m.netns {
        let path = paths.netns_dir.join(&f.container_id);
        out.push((path.display().to_string(), ix.netns_item(f)));
    }
    if ix.records.contains_key(name) {
        let path = paths.record(name).display().to_string();
        out.push((path.clone(), format!("network record {path}")));
    }
    let temp = format!("{name}.json.");
    for t in obs.temps.iter().filter(|t| t.starts_with(&temp)) {
        let path = paths.records_dir.join(t).display().to_string();
        out.push((path.clone(), format!("unfinished network record {path}")));
    }
    out
}

/// Every object of the container's endpoint on the host: its veth (by
/// name or by tag) and its namespace file.
pub fn present_endpoint(paths: &Paths, container_id: &str, obs: &Observed) -> Vec<String> {
    let ix = Index::new(paths, obs);
    let veth = ix.veth_name(container_id);
    let mut out = Vec::new();
    for l in &obs.links {
        let tag = ix.tag(l.alias.as_deref());
        let tagged = tag
            .as_ref()
            .is_some_and(|t| t.whole_container() == Some(container_id));
        if l.name == veth || tagged {
            let network = tag.map(|t| t.network);
            out.push(describe_veth(
                &l.name,
                Some(container_id),
                network.as_deref(),
            ));
        }
    }
    for f in obs.netns.iter().filter(|f| f.container_id == container_id) {
        out.push(ix.netns_item(f));
    }
    out
}

/// The objects of this berthd that belong to no network in `expected`, or
/// to an endpoint its network's record does not have; and the records of
/// networks not in `expected`. In the order to remove them: veths,
/// bridges, tables, namespaces, records.
pub fn leftovers(paths: &Paths, expected: &BTreeSet<String>, obs: &Observed) -> Vec<Leftover> {
    let ix = Index::new(paths, obs);
    // What is kept: the expected networks' bridges and tables, and their
    // recorded endpoints (by name, whatever their tags say).
    let mut keep_links = BTreeSet::new();
    let mut keep_tables = BTreeSet::new();
    let mut keep_containers = BTreeSet::new();
    for n in expected {
        let names = names::network_names(&paths.scope, n);
        keep_links.insert(names.bridge);
        keep_tables.insert(names.table);
        for c in ix
            .records
            .get(n.as_str())
            .map(|r| &r.endpoints)
            .into_iter()
            .flatten()
        {
            keep_links.insert(ix.veth_name(c));
            keep_containers.insert(c.clone());
        }
    }
    let unused = |n: &str| format!("network {n} is not in use");
    let roles = ix.roles(expected);
    let mut veths = Vec::new();
    let mut bridges = Vec::new();
    for l in &obs.links {
        if keep_links.contains(&l.name) {
            continue;
        }
        let Some(role) = roles.get(&l.index) else {
            continue;
        };
        let reason = match role {
            Role::Bridge { network, cut } => {
                if *cut {
                    format!("network {network}… is not in use")
                } else {
                    unused(network)
                }
            }
            Role::Veth {
                container,
                network: Some(n),
            } if expected.contains(n) => match container {
                Some(c) => format!("container {c} is not in the record of network {n}"),
                None => format!("the record of network {n} has no container on it"),
            },
            Role::Veth {
                network: Some(n), ..
            } => unused(n),
            Role::Veth {
                container: Some(c),
                network: None,
            } => format!("no network has container {c} in its record"),
            Role::Veth { .. } => "no network has it".to_string(),
        };
        let item = Leftover {
            description: ix.describe(l, role),
            reason,
            object: LeftoverObject::Link {
                name: l.name.clone(),
                index: l.index,
            },
        };
        match role {
            Role::Bridge { .. } => bridges.push(item),
            Role::Veth { .. } => veths.push(item),
        }
    }
    let mut out = veths;
    out.append(&mut bridges);

    for t in &obs.tables {
        if keep_tables.contains(&t.name) {
            continue;
        }
        let Some((network, cut)) = ix.table_network(t) else {
            continue;
        };
        out.push(Leftover {
            description: describe_table(&t.name, Some((&network, cut))),
            reason: if cut {
                format!("network {network}… is not in use")
            } else {
                unused(&network)
            },
            object: LeftoverObject::Table {
                name: t.name.clone(),
                handle: t.handle,
            },
        });
    }

    let mut kept_netns = false;
    for f in &obs.netns {
        if keep_containers.contains(&f.container_id) {
            kept_netns = true;
            continue;
        }
        let reason = match ix.network_of(&f.container_id) {
            Some(n) => unused(n),
            None => format!("no network has container {} in its record", f.container_id),
        };
        out.push(Leftover {
            description: ix.netns_item(f),
            reason,
            object: LeftoverObject::Netns {
                container_id: f.container_id.clone(),
                id: f.id,
            },
        });
    }
    if obs.netns_dir && !kept_netns {
        out.push(Leftover {
            description: format!(
                "directory {} (where network namespaces are mounted)",
                paths.netns_dir.display()
            ),
            reason: "no endpoint in use has a namespace there".into(),
            object: LeftoverObject::NetnsDir,
        });
    }

    for t in &obs.temps {
        out.push(Leftover {
            description: format!(
                "unfinished network record {}",
                paths.records_dir.join(t).display()
            ),
            reason: "an interrupted write left it".into(),
            object: LeftoverObject::RecordTemp {
                file_name: t.clone(),
            },
        });
    }
    for r in &obs.records {
        if expected.contains(&r.network) {
            continue;
        }
        out.push(Leftover {
            description: format!("network record {}", paths.record(&r.network).display()),
            reason: unused(&r.network),
            object: LeftoverObject::Record {
                network: r.network.clone(),
                content: r.content.clone(),
            },
        });
    }
    if obs.records_dir && !obs.records.iter().any(|r| expected.contains(&r.network)) {
        out.push(Leftover {
            description: format!(
                "directory {} (of network records)",
                paths.records_dir.display()
            ),
            reason: "no network in use has a record there".into(),
            object: LeftoverObject::RecordsDir,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/run/berth-test";

    fn paths() -> Paths {
        Paths::new(Path::new(ROOT))
    }

    /// Makes links with indexes from 100 on.
    struct Host {
        obs: Observed,
        next: u32,
    }

    impl Host {
        fn new() -> Host {
            Host {
                obs: Observed::default(),
                next: 100,
            }
        }

        fn link(&mut self, name: &str, master: Option<u32>, alias: Option<String>) -> u32 {
            self.next += 1;
            self.obs.links.push(Link {
                index: self.next,
                name: name.into(),
                master,
                alias,
                kind: None,
            });
            self.next
        }

        /// A network as berthd makes it, at `root`: bridge, table, record,
        /// endpoints (veth and namespace file).
        fn network(&mut self, root: &str, name: &str, containers: &[&str], record: bool) {
            let n = names::network_names(root, name);
            let br = self.link(
                &n.bridge,
                None,
                Some(Tag::network(root, name).render(names::IFALIAS_MAX)),
            );
            self.obs.tables.push(nft::Table {
                name: n.table,
                handle: Some(self.next as u64),
                comment: Some(Tag::network(root, name).render(names::NFT_COMMENT_MAX)),
            });
            for c in containers {
                self.link(
                    &names::veth_name(root, c),
                    Some(br),
                    Some(Tag::endpoint(root, name, c).render(names::IFALIAS_MAX)),
                );
                if root == ROOT {
                    self.obs.netns_dir = true;
                    self.obs.netns.push(NetnsFile {
                        container_id: c.to_string(),
                        mounted: true,
                        id: Some((4, self.next as u64)),
                    });
                }
            }
            if record {
                self.obs.records_dir = true;
                self.obs.records.push(RecordFile {
                    network: name.into(),
                    endpoints: containers.iter().map(|c| c.to_string()).collect(),
                    content: b"{}".to_vec(),
                });
            }
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn descriptions(l: &[Leftover]) -> Vec<String> {
        l.iter().map(|l| l.description.clone()).collect()
    }

    #[test]
    fn nothing_is_left_when_everything_is_expected() {
        let mut h = Host::new();
        h.network(ROOT, "hello", &["c1", "c2"], true);
        h.network(ROOT, "db", &[], true);
        h.link("eth0", None, None);
        assert_eq!(leftovers(&paths(), &set(&["hello", "db"]), &h.obs), []);
    }

    #[test]
    fn a_network_not_expected_is_left_over_whole() {
        let mut h = Host::new();
        h.network(ROOT, "hello", &["c1"], true);
        h.network(ROOT, "gone", &["c2"], true);
        let l = leftovers(&paths(), &set(&["hello"]), &h.obs);
        let n = names::network_names(ROOT, "gone");
        let veth = names::veth_name(ROOT, "c2");
        assert_eq!(
            descriptions(&l),
            [
                format!("network link {veth} (veth of container c2 on network gone)"),
                format!("network link {} (bridge of network gone)", n.bridge),
                format!("nftables table inet {} (firewall of network gone)", n.table),
                format!("network namespace {ROOT}/netns/c2 (of container c2, mounted)"),
                format!("network record {ROOT}/networks/gone.json"),
            ]
        );
        assert!(
            l.iter().all(|l| l.reason == "network gone is not in use"),
            "{l:?}"
        );
        assert_eq!(
            l[1].object,
            LeftoverObject::Link {
                name: n.bridge,
                index: 103
            }
        );
        assert!(
            matches!(&l[4].object, LeftoverObject::Record { network, .. } if network == "gone")
        );
        // Without "hello", the directory of records goes too.
        let l = leftovers(&paths(), &set(&[]), &h.obs);
        assert_eq!(l.last().unwrap().object, LeftoverObject::RecordsDir);
        assert_eq!(
            l.last().unwrap().description,
            format!("directory {ROOT}/networks (of network records)")
        );
    }

    #[test]
    fn a_network_without_record_is_found_by_its_tags() {
        // The record was lost: the tags still say whose the objects are.
        let mut h = Host::new();
        h.network(ROOT, "lost", &["c1"], false);
        let l = leftovers(&paths(), &set(&[]), &h.obs);
        let n = names::network_names(ROOT, "lost");
        assert_eq!(l.len(), 5, "{l:#?}");
        assert!(l[0]
            .description
            .contains("veth of container c1 on network lost"));
        assert_eq!(
            l[1].description,
            format!("network link {} (bridge of network lost)", n.bridge)
        );
        assert_eq!(
            l[2].description,
            format!("nftables table inet {} (firewall of network lost)", n.table)
        );
        assert_eq!(l[3].reason, "no network has container c1 in its record");
        assert_eq!(l[4].object, LeftoverObject::NetnsDir);
        // Without tags (made before tags, or a crash before tagging) and
        // without a record there is nothing to go by but the namespace
        // file, which names the veth.
        for l in &mut h.obs.links {
            l.alias = None;
        }
        for t in &mut h.obs.tables {
            t.comment = None;
        }
        let l = leftovers(&paths(), &set(&[]), &h.obs);
        assert_eq!(
            descriptions(&l),
            [
                format!(
                    "network link {} (veth of container c1)",
                    names::veth_name(ROOT, "c1")
                ),
                format!("network namespace {ROOT}/netns/c1 (of container c1, mounted)"),
                format!("directory {ROOT}/netns (where network namespaces are mounted)"),
            ]
        );
    }

    #[test]
    fn endpoints_missing_from_an_expected_record_are_left_over() {
        // Crash mid-attach: veth and namespace made, the record not saved.
        let mut h = Host::new();
        h.network(ROOT, "hello", &["c1", "c2"], true);
        h.obs.records[0].endpoints.remove("c2");
        // And an untagged port of the bridge (a crash before tagging).
        let br = h.obs.links[0].index;
        h.link("bv-deadbeef", Some(br), None);
        // A namespace file nobody has.
        h.obs.netns.push(NetnsFile {
            container_id: "c3".into(),
            mounted: false,
            id: None,
        });
        let l = leftovers(&paths(), &set(&["hello"]), &h.obs);
        let veth2 = names::veth_name(ROOT, "c2");
        assert_eq!(
            l.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            [
                format!("network link {veth2} (veth of container c2 on network hello): container c2 is not in the record of network hello"),
                "network link bv-deadbeef (veth on network hello): the record of network hello has no container on it".to_string(),
                format!("network namespace {ROOT}/netns/c2 (of container c2, mounted): no network has container c2 in its record"),
                format!("network namespace file {ROOT}/netns/c3 (of container c3, not mounted): no network has container c3 in its record"),
            ]
        );
    }

    #[test]
    fn another_berthds_objects_are_never_leftovers() {
        let mut h = Host::new();
        h.network("/tmp/other-root", "hello", &["c1"], false);
        h.network("/tmp/other-root", "web", &[], false);
        // A veth of theirs on their bridge, untagged: not ours either.
        let theirs = h.obs.links[0].index;
        h.link("bv-0000aaaa", Some(theirs), None);
        // Not Berth's at all.
        h.link("docker0", None, Some("berth:notatag".into()));
        h.obs.tables.push(nft::Table {
            name: "berth-net-ffffffff".into(),
            handle: Some(1),
            comment: None,
        });
        assert_eq!(leftovers(&paths(), &set(&[]), &h.obs), []);
        assert_eq!(present(&paths(), "hello", &h.obs), Vec::<String>::new());
        assert_eq!(
            present_endpoint(&paths(), "c1", &h.obs),
            Vec::<String>::new()
        );
    }

    #[test]
    fn untagged_objects_of_a_record_are_found_by_name() {
        let mut h = Host::new();
        h.network(ROOT, "old", &["c1"], true);
        for l in &mut h.obs.links {
            l.alias = None;
        }
        h.obs.tables[0].comment = None;
        let l = leftovers(&paths(), &set(&[]), &h.obs);
        assert_eq!(l.len(), 7, "{l:#?}");
        assert!(l[0]
            .description
            .contains("veth of container c1 on network old"));
        assert!(l[1].description.contains("bridge of network old"));
        assert!(l[2].description.contains("firewall of network old"));
        assert!(l[3].description.contains("netns/c1"));
        assert_eq!(l[4].object, LeftoverObject::NetnsDir);
        assert!(matches!(&l[5].object, LeftoverObject::Record { network, .. } if network == "old"));
        assert_eq!(l[6].object, LeftoverObject::RecordsDir);
    }

    #[test]
    fn a_cut_table_comment_still_names_the_network() {
        let long = "n".repeat(128);
        let mut h = Host::new();
        h.network(ROOT, &long, &[], false);
        let l = leftovers(&paths(), &set(&[]), &h.obs);
        assert_eq!(l.len(), 2, "{l:#?}");
        assert!(l[1]
            .description
            .starts_with("nftables table inet berth-net-"));
        assert!(l[1].description.ends_with("…)"), "{}", l[1].description);
        // Kept when expected: the table's name is derived from the whole name.
        assert_eq!(leftovers(&paths(), &set(&[&long]), &h.obs), []);
    }

    #[test]
    fn unfinished_records_are_leftovers() {
        let mut h = Host::new();
        h.obs.temps.push("hello.json.tmp".into());
        h.obs.records_dir = true;
        let l = leftovers(&paths(), &set(&["hello"]), &h.obs);
        assert_eq!(
            descriptions(&l),
            [
                format!("unfinished network record {ROOT}/networks/hello.json.tmp"),
                format!("directory {ROOT}/networks (of network records)"),
            ]
        );
        assert!(present(&paths(), "hello", &h.obs)[0].contains("hello.json.tmp"));
    }

    #[test]
    fn present_lists_every_object_of_one_network() {
        let mut h = Host::new();
        h.network(ROOT, "hello", &["c1", "c2"], true);
        h.network(ROOT, "other", &["c3"], true);
        let n = names::network_names(ROOT, "hello");
        let p = present(&paths(), "hello", &h.obs);
        assert_eq!(
            p,
            [
                format!("network link {} (bridge of network hello)", n.bridge),
                format!(
                    "network link {} (veth of container c1 on network hello)",
                    names::veth_name(ROOT, "c1")
                ),
                format!(
                    "network link {} (veth of container c2 on network hello)",
                    names::veth_name(ROOT, "c2")
                ),
                format!(
                    "nftables table inet {} (firewall of network hello)",
                    n.table
                ),
                format!("network namespace {ROOT}/netns/c1 (of container c1, mounted)"),
                format!("network namespace {ROOT}/netns/c2 (of container c2, mounted)"),
                format!("network record {ROOT}/networks/hello.json"),
            ]
        );
        // Without the record: found by name and by tags all the same.
        h.obs.records.retain(|r| r.network != "hello");
        let without = present(&paths(), "hello", &h.obs);
        assert_eq!(without, p[..6]);
        assert_eq!(present(&paths(), "nothing", &h.obs), Vec::<String>::new());
    }

    #[test]
    fn present_endpoint_finds_the_veth_by_name_or_tag() {
        let mut h = Host::new();
        h.network(ROOT, "hello", &["c1"], true);
        let veth = names::veth_name(ROOT, "c1");
        assert_eq!(
            present_endpoint(&paths(), "c1", &h.obs),
            [
                format!("network link {veth} (veth of container c1 on network hello)"),
                format!("network namespace {ROOT}/netns/c1 (of container c1, mounted)"),
            ]
        );
        h.obs.netns.clear();
        h.obs.links[1].alias = None;
        assert_eq!(
            present_endpoint(&paths(), "c1", &h.obs),
            [format!("network link {veth} (veth of container c1)")]
        );
        assert_eq!(
            present_endpoint(&paths(), "c2", &h.obs),
            Vec::<String>::new()
        );
    }
}
