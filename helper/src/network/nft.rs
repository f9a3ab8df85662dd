//! The firewall of a network: one nftables table per network, generated as
//! `nft -f -` script text (pure, unit-tested) and read back with `nft -j`.
//!
//! ```text
//! table inet berth-net-<hash> {
//!   comment "berth:<scope hash>:net:<network>"                                          whose it is (see names)
//!   map publish_tcp      { type ipv4_addr . inet_service : ipv4_addr . inet_service }   host ip . port → container
//!   map publish_udp      { … }
//!   map publish_any_tcp  { type inet_service : ipv4_addr . inet_service }               0.0.0.0: every local address
//!   map publish_any_udp  { … }
//!   chain guard        filter prerouting raw    no 127/8 from the bridge (route_localnet is on)
//!   chain prerouting   nat    prerouting dstnat published ports, from other machines and containers
//!   chain output       nat    output     dstnat published ports, from the host itself
//!   chain postrouting  nat    postrouting srcnat masquerade: outbound, from 127/8, hairpin
//!   chain forward      filter forward    filter  other Berth bridges: drop; outside → containers: only replies and published ports
//!   chain input        filter input      filter  from the bridge to the host itself: only replies
//! }
//! ```
//!
//! A table per network, rather than one shared table, so that removing a
//! network is `delete table`, atomic and exact, and touches nobody else's
//! rules; and so that a network's rules are never rewritten when another
//! one comes or goes. Published ports are elements of the maps, so adding
//! and removing one is an element operation, not a rule edited by handle.
//!
//! Chains are written with `add chain` + `flush chain` + `add rule`, which
//! (re)creates them in one transaction whether or not they exist, leaving the
//! maps (the published ports) as they are.
//!
//! The table's comment is its tag ([`super::names::Tag`]). The kernel sets
//! a table's comment only when it creates the table, so a table without
//! the right one is rebuilt, its published ports with it, in one
//! transaction ([`rebuild_table_script`]). nft 1.0.6 leaves table comments
//! out of `nft -j` (it shows those of maps and rules only), so they are read
//! from the text listing ([`parse_table_comments`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::ipam::Subnet;
use super::names::{BRIDGE_PREFIX, TABLE_PREFIX};
use super::ports::{Mapping, Protocol};

/// The `nft` command (Debian package `nftables`).
pub const NFT: &str = "nft";

/// What a network's table is generated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec<'a> {
    pub table: &'a str,
    pub bridge: &'a str,
    pub subnet: Subnet,
    /// The table's comment: its tag, up to
    /// [`super::names::NFT_COMMENT_MAX`] bytes, no `"`.
    pub comment: &'a str,
}

const MAP_KEY: &str = "ipv4_addr . inet_service";
const MAP_VALUE: &str = "ipv4_addr . inet_service";

fn map_name(protocol: Protocol, any: bool) -> String {
    if any {
        format!("publish_any_{protocol}")
    } else {
        format!("publish_{protocol}")
    }
}

/// The script that creates the table, or brings an existing one's chains
/// to what this version of Berth writes (its maps are kept).
pub fn ensure_table_script(t: &TableSpec<'_>) -> String {
    let table = format!("inet {}", t.table);
    let br = t.bridge;
    let net = t.subnet;
    let others = format!("{BRIDGE_PREFIX}*");
    debug_assert!(!t.comment.contains(['"', '\\', '\n']), "{}", t.comment);
    let mut s = String::new();
    s.push_str(&format!(
        "add table {table} {{ comment \"{}\"; }}\n",
        t.comment
    ));
    for proto in [Protocol::Tcp, Protocol::Udp] {
        s.push_str(&format!(
            "add map {table} {} {{ type {MAP_KEY} : {MAP_VALUE}; }}\n",
            map_name(proto, false)
        ));
        s.push_str(&format!(
            "add map {table} {} {{ type inet_service : {MAP_VALUE}; }}\n",
            map_name(proto, true)
        ));
    }
    let chains: [(&str, &str, Vec<String>); 6] = [
        (
            "guard",
            "type filter hook prerouting priority raw; policy accept;",
            // route_localnet lets the host forward 127.0.0.1 to the bridge;
            // it must not let a container reach the host's loopback
            // services by sending to 127.0.0.0/8 (CVE-2020-8558).
            vec![format!("iifname \"{br}\" ip daddr 127.0.0.0/8 drop")],
        ),
        (
            "prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            dnat_rules(),
        ),
        (
            "output",
            // `dstnat` is not accepted for the output hook by nft 1.0.6.
            "type nat hook output priority -100; policy accept;",
            dnat_rules(),
        ),
        (
            "postrouting",
            "type nat hook postrouting priority srcnat; policy accept;",
            vec![
                // Outbound: the containers' traffic leaves with the host's address.
                format!("ip saddr {net} oifname != \"{br}\" masquerade"),
                // A published port reached from the host's 127.0.0.1: the
                // container must answer the bridge, not its own loopback.
                format!("oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade"),
                // Hairpin: a container reaching a sibling through a
                // published port.
                format!("oifname \"{br}\" ip saddr {net} ct status dnat masquerade"),
            ],
        ),
        (
            "forward",
            "type filter hook forward priority filter; policy accept;",
            vec![
                // Apps cannot reach each other's containers (except through
                // a port published on a host address, as anyone could).
                format!(
                    "iifname \"{br}\" oifname \"{others}\" oifname != \"{br}\" ct status != dnat drop"
                ),
                format!(
                    "oifname \"{br}\" iifname \"{others}\" iifname != \"{br}\" ct status != dnat drop"
                ),
                // From outside into the network: only replies and published ports.
                format!("oifname \"{br}\" ct state established,related accept"),
                format!("oifname \"{br}\" ct status dnat accept"),
                // Between containers of the network (seen here when
                // br_netfilter is loaded).
                format!("oifname \"{br}\" iifname \"{br}\" accept"),
                format!("oifname \"{br}\" drop"),
            ],
        ),
        (
            "input",
            "type filter hook input priority filter; policy accept;",
            // Apps cannot reach the host's own services (issue 11): a
            // listener on 0.0.0.0 or on any host address, the gateway's
            // included, and broadcast or multicast to the host. Only replies
            // to what the host opened come in (the host reaching its
            // containers, published ports answering). Published ports and
            // traffic between the app's containers never pass here: they
            // are DNAT'ed before routing or bridged. `inet`: IPv6 too,
            // should it ever be on for the bridge.
            vec![
                format!("iifname \"{br}\" ct state established,related accept"),
                format!("iifname \"{br}\" drop"),
            ],
        ),
    ];
    for (name, hook, rules) in chains {
        s.push_str(&format!("add chain {table} {name} {{ {hook} }}\n"));
        s.push_str(&format!("flush chain {table} {name}\n"));
        for r in rules {
            s.push_str(&format!("add rule {table} {name} {r}\n"));
        }
    }
    s
}

fn dnat_rules() -> Vec<String> {
    let mut v = Vec::new();
    for proto in [Protocol::Tcp, Protocol::Udp] {
        v.push(format!(
            "dnat ip to ip daddr . {proto} dport map @{}",
            map_name(proto, false)
        ));
        v.push(format!(
            "fib daddr type local dnat ip to {proto} dport map @{}",
            map_name(proto, true)
        ));
    }
    v
}

/// Replaces the table with a new one (see the module comment: to give it
/// its comment) holding the same published ports, in one transaction.
pub fn rebuild_table_script(t: &TableSpec<'_>, mappings: &[Mapping]) -> String {
    let mut s = delete_table_script(t.table);
    s.push_str(&ensure_table_script(t));
    s.push_str(&add_mappings_script(t.table, mappings));
    s
}

/// Removes the table and everything in it; succeeds when there is none
/// (creating it first makes the delete always valid, in one transaction).
pub fn delete_table_script(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

fn element(m: &Mapping, with_value: bool) -> (String, String) {
    let any = m.host_ip.is_unspecified();
    let key = if any {
        m.host_port.to_string()
    } else {
        format!("{} . {}", m.host_ip, m.host_port)
    };
    let elem = if with_value {
        format!("{key} : {} . {}", m.container_ip, m.container_port)
    } else {
        key
    };
    (map_name(m.protocol, any), elem)
}

/// Adds the mappings (all or none).
pub fn add_mappings_script(table: &str, mappings: &[Mapping]) -> String {
    mappings
        .iter()
        .map(|m| {
            let (map, elem) = element(m, true);
            format!("add element inet {table} {map} {{ {elem} }}\n")
        })
        .collect()
}

/// Removes the mappings (all or none: each must exist).
pub fn delete_mappings_script(table: &str, mappings: &[Mapping]) -> String {
    mappings
        .iter()
        .map(|m| {
            let (map, elem) = element(m, false);
            format!("delete element inet {table} {map} {{ {elem} }}\n")
        })
        .collect()
}

/// One of Berth's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// The kernel's handle: a table made again gets another.
    pub handle: Option<u64>,
    /// Its comment, where known (`nft -j` leaves it out: see
    /// [`Ruleset::add_comments`]).
    pub comment: Option<String>,
}

/// What a `nft -j list ruleset` says about Berth networks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The `inet` tables named `berth-net-*`.
    pub tables: Vec<Table>,
    /// (table, mapping) for every published port in them.
    pub mappings: Vec<(String, Mapping)>,
}

impl Ruleset {
    pub fn has_table(&self, table: &str) -> bool {
        self.table(table).is_some()
    }

    pub fn table(&self, table: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == table)
    }

    pub fn mappings_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = Mapping> + 'a {
        self.mappings
            .iter()
            .filter(move |(t, _)| t == table)
            .map(|(_, m)| *m)
    }

    /// Fills in the tables' comments from [`parse_table_comments`].
    pub fn add_comments(&mut self, comments: &BTreeMap<String, String>) {
        for t in &mut self.tables {
            if let Some(c) = comments.get(&t.name) {
                t.comment = Some(c.clone());
            }
        }
    }
}

/// Reads Berth's tables and published ports from `nft -j list ruleset`
/// output; other tables are ignored.
pub fn parse_ruleset(json: &str) -> Result<Ruleset, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("nft's JSON: {e}"))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft's JSON has no \"nftables\" list")?;
    let ours = |o: &Value, key: &str| -> Option<String> {
        let name = o.get(key)?.as_str()?;
        (o.get("family")?.as_str()? == "inet" && name.starts_with(TABLE_PREFIX))
            .then(|| name.to_string())
    };
    let mut rs = Ruleset::default();
    for item in items {
        if let Some(t) = item.get("table") {
            if let Some(name) = ours(t, "name") {
                rs.tables.push(Table {
                    name,
                    handle: t.get("handle").and_then(Value::as_u64),
                    // Later versions of nft may show it.
                    comment: t.get("comment").and_then(Value::as_str).map(Into::into),
                });
            }
        }
        let Some(map) = item.get("map") else { continue };
        let Some(table) = ours(map, "table") else {
            continue;
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or("");
        let (protocol, any) = match name {
            "publish_tcp" => (Protocol::Tcp, false),
            "publish_udp" => (Protocol::Udp, false),
            "publish_any_tcp" => (Protocol::Tcp, true),
            "publish_any_udp" => (Protocol::Udp, true),
            _ => continue,
        };
        for e in map
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let m = parse_element(e, protocol, any)
                .ok_or_else(|| format!("unexpected element {e} in map {name} of table {table}"))?;
            rs.mappings.push((table.clone(), m));
        }
    }
    Ok(rs)
}

/// The comments of Berth's tables in `nft -t list ruleset` text, where
/// nft 1.0.6 writes a table's comment as the first line inside it (after a
/// tab):
///
/// ```text
/// table inet berth-net-1a2b3c4d {
///     comment "berth:…"
/// ```
pub fn parse_table_comments(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("table inet ")
            .and_then(|l| l.strip_suffix(" {"))
        else {
            continue;
        };
        if !name.starts_with(TABLE_PREFIX) {
            continue;
        }
        let comment = lines
            .peek()
            .and_then(|l| l.trim().strip_prefix("comment \""))
            .and_then(|l| l.strip_suffix('"'));
        if let Some(c) = comment {
            out.insert(name.to_string(), c.to_string());
        }
    }
    out
}

/// `[key, value]`, where a key is `{"concat": ["127.0.0.1", 8080]}` or
/// `8080` and a value `{"concat": ["10.89.0.2", 80]}`. An element with
/// options (comment, timeout) wraps the key as `{"elem": {"val": key}}`.
fn parse_element(e: &Value, protocol: Protocol, any: bool) -> Option<Mapping> {
    let pair = e.as_array()?;
    let [key, value] = pair.as_slice() else {
        return None;
    };
    let key = key.get("elem").and_then(|x| x.get("val")).unwrap_or(key);
    let (host_ip, host_port) = if any {
        (Ipv4Addr::UNSPECIFIED, port(key)?)
    } else {
        concat(key)?
    };
    let (container_ip, container_port) = concat(value)?;
    Some(Mapping {
        protocol,
        host_ip,
        host_port,
        container_ip,
        container_port,
    })
}

fn concat(v: &Value) -> Option<(Ipv4Addr, u16)> {
    let parts = v.get("concat")?.as_array()?;
    let [ip, p] = parts.as_slice() else {
        return None;
    };
    Some((ip.as_str()?.parse().ok()?, port(p)?))
}

fn port(v: &Value) -> Option<u16> {
    v.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .or_else(|| v.as_str()?.parse().ok())
}

/// Runs `nft -f -` with `script` (one atomic transaction).
pub fn apply(script: &str) -> Result<(), String> {
    let mut child = Command::new(NFT)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{} (the script was:\n{script})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    written.map_err(|e| format!("writing to nft: {e}"))
}

fn list(args: &[&str]) -> Result<String, String> {
    let out = Command::new(NFT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error)?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nft -j list ruleset`, parsed (the tables' comments left out).
pub fn read_ruleset() -> Result<Ruleset, String> {
    parse_ruleset(&list(&["-j", "list", "ruleset"])?)
}

/// [`read_ruleset`] with the tables' comments, from a second, text,
/// listing.
pub fn read_ruleset_with_comments() -> Result<Ruleset, String> {
    let mut rs = read_ruleset()?;
    if rs.tables.iter().any(|t| t.comment.is_none()) {
        rs.add_comments(&parse_table_comments(&list(&["-t", "list", "ruleset"])?));
    }
    Ok(rs)
}

fn spawn_error(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("{NFT} is not installed: install Debian's nftables package")
    } else {
        format!("running {NFT}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TableSpec<'static> {
        TableSpec {
            table: "berth-net-0a1b2c3d",
            bridge: "bn-0a1b2c3d",
            subnet: "10.89.4.0/24".parse().unwrap(),
            comment: "berth:01234567:net:web",
        }
    }

    #[test]
    fn table_has_nat_isolation_and_the_localnet_guard() {
        let s = ensure_table_script(&spec());
        let has = |line: &str| {
            assert!(
                s.lines().any(|l| l == line),
                "missing line {line:?} in\n{s}"
            )
        };
        has("add table inet berth-net-0a1b2c3d { comment \"berth:01234567:net:web\"; }");
        has("add map inet berth-net-0a1b2c3d publish_tcp { type ipv4_addr . inet_service : ipv4_addr . inet_service; }");
        has("add map inet berth-net-0a1b2c3d publish_any_udp { type inet_service : ipv4_addr . inet_service; }");
        has("add chain inet berth-net-0a1b2c3d postrouting { type nat hook postrouting priority srcnat; policy accept; }");
        has("flush chain inet berth-net-0a1b2c3d postrouting");
        has("add rule inet berth-net-0a1b2c3d postrouting ip saddr 10.89.4.0/24 oifname != \"bn-0a1b2c3d\" masquerade");
        has("add rule inet berth-net-0a1b2c3d postrouting oifname \"bn-0a1b2c3d\" ip saddr 127.0.0.0/8 masquerade");
        has("add rule inet berth-net-0a1b2c3d forward iifname \"bn-0a1b2c3d\" oifname \"bn-*\" oifname != \"bn-0a1b2c3d\" ct status != dnat drop");
        has("add rule inet berth-net-0a1b2c3d forward oifname \"bn-0a1b2c3d\" iifname \"bn-*\" iifname != \"bn-0a1b2c3d\" ct status != dnat drop");
        has("add rule inet berth-net-0a1b2c3d guard iifname \"bn-0a1b2c3d\" ip daddr 127.0.0.0/8 drop");
        has("add rule inet berth-net-0a1b2c3d prerouting dnat ip to ip daddr . tcp dport map @publish_tcp");
        has("add rule inet berth-net-0a1b2c3d output fib daddr type local dnat ip to udp dport map @publish_any_udp");
        // Every chain is flushed before its rules are added, so running the
        // script again does not duplicate them.
        for chain in [
            "guard",
            "prerouting",
            "output",
            "postrouting",
            "forward",
            "input",
        ] {
            let flush = s
                .find(&format!("flush chain inet berth-net-0a1b2c3d {chain}\n"))
                .unwrap();
            let first_rule = s
                .find(&format!("add rule inet berth-net-0a1b2c3d {chain} "))
                .unwrap();
            assert!(flush < first_rule, "{chain}");
        }
        // Nothing outside the table.
        for l in s.lines() {
            assert!(l.contains("inet berth-net-0a1b2c3d"), "{l}");
        }
        // The drop of foreign bridges comes before any accept.
        let fwd: Vec<&str> = s.lines().filter(|l| l.contains(" forward ")).collect();
        let drop = fwd
            .iter()
            .position(|l| l.contains("ct status != dnat drop"))
            .unwrap();
        let accept = fwd.iter().position(|l| l.ends_with("accept")).unwrap();
        assert!(drop < accept);
    }

    #[test]
    fn from_the_bridge_the_host_takes_replies_only() {
        let s = ensure_table_script(&spec());
        let input: Vec<&str> = s
            .lines()
            .filter(|l| l.contains("berth-net-0a1b2c3d input"))
            .collect();
        assert_eq!(
            input,
            [
                "add chain inet berth-net-0a1b2c3d input { type filter hook input priority filter; policy accept; }",
                "flush chain inet berth-net-0a1b2c3d input",
                "add rule inet berth-net-0a1b2c3d input iifname \"bn-0a1b2c3d\" ct state established,related accept",
                "add rule inet berth-net-0a1b2c3d input iifname \"bn-0a1b2c3d\" drop",
            ]
        );
    }

    #[test]
    fn rebuilding_keeps_the_published_ports_in_one_script() {
        let ms = [mapping([127, 0, 0, 1], 8080, Protocol::Tcp)];
        let s = rebuild_table_script(&spec(), &ms);
        assert!(
            s.starts_with(&delete_table_script("berth-net-0a1b2c3d")),
            "{s}"
        );
        assert!(s.contains(&ensure_table_script(&spec())), "{s}");
        assert!(
            s.ends_with(&add_mappings_script("berth-net-0a1b2c3d", &ms)),
            "{s}"
        );
    }

    #[test]
    fn delete_is_exact_and_idempotent() {
        assert_eq!(
            delete_table_script("berth-net-0a1b2c3d"),
            "add table inet berth-net-0a1b2c3d\ndelete table inet berth-net-0a1b2c3d\n"
        );
    }

    fn mapping(host_ip: [u8; 4], host_port: u16, protocol: Protocol) -> Mapping {
        Mapping {
            protocol,
            host_ip: host_ip.into(),
            host_port,
            container_ip: Ipv4Addr::new(10, 89, 4, 2),
            container_port: 80,
        }
    }

    #[test]
    fn mappings_become_map_elements() {
        let ms = [
            mapping([127, 0, 0, 1], 8080, Protocol::Tcp),
            mapping([0, 0, 0, 0], 5353, Protocol::Udp),
        ];
        assert_eq!(
            add_mappings_script("berth-net-x", &ms),
            "add element inet berth-net-x publish_tcp { 127.0.0.1 . 8080 : 10.89.4.2 . 80 }\n\
             add element inet berth-net-x publish_any_udp { 5353 : 10.89.4.2 . 80 }\n"
        );
        assert_eq!(
            delete_mappings_script("berth-net-x", &ms),
            "delete element inet berth-net-x publish_tcp { 127.0.0.1 . 8080 }\n\
             delete element inet berth-net-x publish_any_udp { 5353 }\n"
        );
    }

    /// Shaped as nft 1.0.6 prints it (abridged).
    const RULESET: &str = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "filter", "handle": 1}},
      {"map": {"family": "inet", "name": "publish_tcp", "table": "filter", "type": ["ipv4_addr", "inet_service"], "handle": 3, "map": "ipv4_addr . inet_service",
               "elem": [[{"concat": ["127.0.0.1", 9999]}, {"concat": ["10.0.0.2", 80]}]]}},
      {"table": {"family": "inet", "name": "berth-net-0a1b2c3d", "handle": 2}},
      {"table": {"family": "ip", "name": "berth-net-notours", "handle": 4}},
      {"map": {"family": "inet", "name": "publish_tcp", "table": "berth-net-0a1b2c3d", "type": ["ipv4_addr", "inet_service"], "handle": 6, "map": "ipv4_addr . inet_service",
               "elem": [[{"concat": ["127.0.0.1", 8080]}, {"concat": ["10.89.4.2", 80]}],
                        [{"concat": ["192.0.2.2", 8443]}, {"concat": ["10.89.4.3", 443]}]]}},
      {"map": {"family": "inet", "name": "publish_any_udp", "table": "berth-net-0a1b2c3d", "type": "inet_service", "handle": 7, "map": "ipv4_addr . inet_service",
               "elem": [[5353, {"concat": ["10.89.4.2", 53]}]]}},
      {"map": {"family": "inet", "name": "publish_udp", "table": "berth-net-0a1b2c3d", "type": ["ipv4_addr", "inet_service"], "handle": 8, "map": "ipv4_addr . inet_service"}},
      {"chain": {"family": "inet", "table": "berth-net-0a1b2c3d", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}
    ]}"#;

    #[test]
    fn ruleset_gives_our_tables_and_published_ports_only() {
        let rs = parse_ruleset(RULESET).unwrap();
        assert_eq!(
            rs.tables,
            [Table {
                name: "berth-net-0a1b2c3d".into(),
                handle: Some(2),
                comment: None,
            }]
        );
        assert!(rs.has_table("berth-net-0a1b2c3d"));
        assert!(!rs.has_table("filter"));
        let ms: Vec<Mapping> = rs.mappings_of("berth-net-0a1b2c3d").collect();
        assert_eq!(
            ms,
            [
                mapping([127, 0, 0, 1], 8080, Protocol::Tcp),
                Mapping {
                    protocol: Protocol::Tcp,
                    host_ip: Ipv4Addr::new(192, 0, 2, 2),
                    host_port: 8443,
                    container_ip: Ipv4Addr::new(10, 89, 4, 3),
                    container_port: 443,
                },
                Mapping {
                    protocol: Protocol::Udp,
                    host_ip: Ipv4Addr::UNSPECIFIED,
                    host_port: 5353,
                    container_ip: Ipv4Addr::new(10, 89, 4, 2),
                    container_port: 53,
                },
            ]
        );
    }

    /// As `nft -t list ruleset` prints it (1.0.6).
    const TEXT: &str = "table inet filter {\n\tcomment \"not ours\"\n\tchain input {\n\t}\n}\n\
        table inet berth-net-0a1b2c3d {\n\tcomment \"berth:01234567:net:web\"\n\tmap publish_tcp {\n\t\ttype ipv4_addr . inet_service : ipv4_addr . inet_service\n\t}\n}\n\
        table inet berth-net-11111111 {\n\tmap publish_tcp {\n\t\tcomment \"berth:not-the-table\"\n\t}\n}\n\
        table ip berth-net-22222222 {\n\tcomment \"berth:01234567:net:ip\"\n}\n";

    #[test]
    fn table_comments_come_from_the_text_listing() {
        let c = parse_table_comments(TEXT);
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            [(
                "berth-net-0a1b2c3d".to_string(),
                "berth:01234567:net:web".to_string()
            )]
        );
        let mut rs = parse_ruleset(RULESET).unwrap();
        rs.add_comments(&parse_table_comments(TEXT));
        assert_eq!(
            rs.table("berth-net-0a1b2c3d").unwrap().comment.as_deref(),
            Some("berth:01234567:net:web")
        );
        // Should nft's JSON show it one day, it is taken from there.
        let json = r#"{"nftables": [{"table": {"family": "inet", "name": "berth-net-1", "handle": 9, "comment": "berth:01234567:net:x"}}]}"#;
        let rs = parse_ruleset(json).unwrap();
        assert_eq!(
            rs.tables[0].comment.as_deref(),
            Some("berth:01234567:net:x")
        );
    }

    #[test]
    fn ruleset_elements_with_options_and_bad_input() {
        let json = r#"{"nftables": [
          {"map": {"family": "inet", "name": "publish_tcp", "table": "berth-net-1",
                   "elem": [[{"elem": {"val": {"concat": ["127.0.0.1", 8080]}, "comment": "x"}}, {"concat": ["10.89.4.2", 80]}]]}}]}"#;
        let rs = parse_ruleset(json).unwrap();
        assert_eq!(rs.mappings.len(), 1);
        assert_eq!(rs.mappings[0].1.host_port, 8080);
        assert!(parse_ruleset("{}").is_err());
        assert!(parse_ruleset("not json").is_err());
        let bad = r#"{"nftables": [{"map": {"family": "inet", "name": "publish_tcp", "table": "berth-net-1", "elem": [[1, 2]]}}]}"#;
        assert!(parse_ruleset(bad).unwrap_err().contains("publish_tcp"));
        assert_eq!(
            parse_ruleset(r#"{"nftables": []}"#).unwrap(),
            Ruleset::default()
        );
    }
}
