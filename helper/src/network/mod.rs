//! App networks: each app gets a private network its containers share, with
//! its own addresses, outbound NAT, no way into another app's containers,
//! and ports published on the host (127.0.0.1 unless asked otherwise).
//!
//! # What one network is
//!
//! ```text
//!  host                                        container netns (<run>/netns/<id>)
//!  ──────────────────────────────────          ─────────────────────────────────
//!  bn-1a2b3c4d  bridge, 10.89.3.1/24  ◄─ port ─ bv-5e6f7a8b ══ veth ══ eth0 10.89.3.2/24
//!               route_localnet=1                                     default via 10.89.3.1
//!               IPv6 off (bridge and veth)                           IPv6 off (eth0, default)
//!  table inet berth-net-1a2b3c4d                                     lo up (keeps ::1)
//!  sockets holding the published ports (berthd)                      ping_group_range 0 2147483647
//!  <run>/networks/<name>.json   (container → address)
//! ```
//!
//! * **Bridge** `bn-<8 hex>` and **table** `berth-net-<8 hex>`, named after
//!   a hash of the network's name ([`names`]): Linux allows 15 bytes for an
//!   interface name. The bridge holds the gateway address, `.1` of the
//!   network's subnet.
//! * **Subnet**: the first `/24` (by default) of the pool `10.89.0.0/16`
//!   that overlaps none of the host's routes (any table, default routes
//!   aside) and addresses, read over netlink, and no other Berth network
//!   ([`ipam`]). Other berthd's networks are seen as the host's routes. A
//!   pool covered by, say, a VPN's `10.0.0.0/8` is full, and the error says
//!   which route is in the way.
//! * **Endpoint** (one per container, [`Networks::attach`]): a network
//!   namespace berthd makes and bind-mounts at `<run root>/netns/<id>`
//!   ([`netns`]), a veth pair whose host end `bv-<8 hex>` is a port of the
//!   bridge and whose other end is created directly inside the namespace as
//!   `eth0`, the next free address (`.2` up), a default route via the
//!   gateway, and `lo` up. The container's runtime joins the namespace by
//!   path: [`crate::containers::spec::join_network_namespace`] puts it in
//!   the OCI spec. Name resolution is the app layer's: it gets each
//!   container's address from here and writes `/etc/hosts`.
//! * **Firewall** ([`nft`]): outbound masquerade; forwarding between two
//!   Berth bridges (`bn-*`) dropped, so apps cannot reach each other's
//!   containers; from outside only replies and published ports come in.
//!   From the bridge to the host itself only replies come in (the `input`
//!   chain, issue 11): an app reaches none of the host's own services,
//!   whether they listen on 0.0.0.0, on the gateway or on another of the
//!   host's addresses, and no broadcast or multicast reaches the host from
//!   it. What apps need never passes there but as replies: the host
//!   reaching a container (through a published port, or its address for a
//!   readiness check); traffic between the app's containers is bridged,
//!   to the world forwarded; healthchecks run inside the container. A port
//!   published on a host address is open to whoever reaches that address,
//!   other apps' containers included (as with Docker): it is DNAT'ed before
//!   routing, so it is not input either.
//! * **Published ports** ([`Networks::publish`]): DNAT from
//!   `host_ip:port` to the container, in prerouting (other machines,
//!   containers) and output (the host itself), as map elements of the
//!   network's table. A port that is taken (a listener on the host, found by
//!   binding it; or another Berth mapping) is stepped over to the next free
//!   one, and the result says which port was given ([`PublishedPort`]).
//!   The socket that found the port free stays bound (TCP: listening) for
//!   as long as the port's rule exists ([`ports::Holds`]), as
//!   `docker-proxy` holds Docker's ports: a host program started later
//!   fails to bind the port (EADDRINUSE) instead of having its clients
//!   silently served by the app. It never accepts anything (the DNAT comes
//!   first) and is close-on-exec, so no shim or container holds it.
//!
//! # Choices
//!
//! * **netlink-packet-route, not rtnetlink.** Links, addresses and routes
//!   are made over a small blocking netlink socket ([`netlink`]) built on
//!   `netlink-packet-route` (messages) and `netlink-sys` (the socket), as
//!   Podman's netavark does. Setting up a container's side means talking to
//!   the kernel *inside* its network namespace: a netlink socket belongs to
//!   the namespace it was created in, so we create it on a short thread that
//!   joined the namespace and use it from anywhere. `rtnetlink` would add an
//!   async connection task per socket for a dozen sequential requests, and
//!   tie namespace switching to whichever tokio worker runs it.
//! * **DNAT with route_localnet, not a proxy.** A port published on
//!   127.0.0.1 is DNAT'ed in the output hook, which needs
//!   `net.ipv4.conf.<bridge>.route_localnet=1` (loopback sources may leave
//!   through the bridge) and a masquerade of 127.0.0.0/8 into the bridge;
//!   Docker does the same without its userland proxy. Rules live in the
//!   kernel, so published ports keep working while berthd restarts or
//!   crashes, which a proxy inside berthd would not. berthd only holds the
//!   ports (see above): one socket per port, nothing per packet.
//!   route_localnet would also let a container send to the host's
//!   127.0.0.1 through the bridge (CVE-2020-8558): the table's `guard`
//!   chain drops any packet from the bridge addressed to 127.0.0.0/8.
//! * **`nft` scripts, not a crate.** The rules are text ([`nft`]),
//!   generated by pure functions and unit-tested, applied by `nft -f -` in
//!   one transaction; published ports are read back from `nft -j`. Needs
//!   Debian's `nftables` package. A host whose other firewall drops
//!   forwarded traffic (Docker sets iptables' FORWARD policy to drop) must
//!   accept traffic from and to `bn-*` for Berth's networks to get out.
//!
//! # Host-wide settings
//!
//! Creating a network sets `net.ipv4.ip_forward=1` if it is not already
//! (NAT needs it; Docker does the same) and logs it. It is never set back:
//! other software (Docker, libvirt, a VPN) may rely on it by then. Note that
//! it makes the host route between all its interfaces; Berth adds no
//! forward policy for interfaces that are not its own.
//!
//! # Limits
//!
//! * IPv4 only, and IPv6 off: `disable_ipv6` on the bridge and each veth
//!   before they come up (so they never get a link-local address an app
//!   could reach the host's `[::]` listeners by), and inside the namespace
//!   on `eth0` and `default` (`lo` keeps `::1`, which reaches only the
//!   container itself). They go with the interfaces and the namespace.
//!   Nothing is published or masqueraded for IPv6. The `input` chain is
//!   `inet` and would drop IPv6 from the bridge all the same.
//! * Name servers: containers ask the host's (see
//!   `containers::etc`) through NAT, except those that are the host's own
//!   addresses (loopback, or a DNS server the host runs on its LAN
//!   address): the `input` chain would drop those queries, so the
//!   container's resolv.conf leaves them out and falls back as it does for
//!   loopback ones.
//! * No `CAP_NET_RAW` in app containers (`containers::spec`); instead each
//!   namespace has `net.ipv4.ping_group_range` open to every group
//!   ([`PING_GROUP_RANGE`]), so a `ping` that uses ICMP echo sockets
//!   (iputils', as Debian and Fedora ship it) works; busybox's needs a raw
//!   socket and does not.
//! * While berthd is not running, its published ports keep working but are
//!   not held: a host program may bind one then, and its clients are the
//!   app's. When berthd starts it holds every published port of its
//!   networks again ([`Networks::hold_published`], before it serves);
//!   one it cannot hold is logged with the way out.
//! * The namespace belongs to the host's user namespace. A container in a
//!   user namespace of its own (`--userns=auto`) must join it *before*
//!   creating that user namespace (runc's order); the runtime's init
//!   currently creates the user namespace first, where joining fails with
//!   EPERM.
//!
//! # Whose objects are whose: tags
//!
//! Names are hashes ([`names`]), so a link or a table found on the host
//! cannot be traced back to the berthd that made it by its name. Each
//! object therefore carries a tag naming its berthd by a hash of its run
//! root (8 hex) and what it is for ([`names::Tag`]):
//!
//! ```text
//!  bridge bn-1a2b3c4d         alias    berth:<scope>:net:hello
//!  veth   bv-5e6f7a8b         alias    berth:<scope>:ep:hello:<container id>
//!  table inet berth-net-…     comment  berth:<scope>:net:hello
//! ```
//!
//! The alias is the link's `IFLA_IFALIAS` (`ip link` shows it; at most 255
//! bytes), set right after the link is made (the kernel takes no alias when
//! it creates a link). The table's comment is given when the table is made;
//! nft allows 128 bytes, so a long network name is cut and the comment ends
//! with `+`. nft 1.0.6 leaves table comments out of `nft -j`, so they are
//! read from the text listing ([`nft::parse_table_comments`]). Namespace
//! files (`<run root>/netns/`) and records (`<run root>/networks/`) are the
//! run root's already. [`Networks::create`] and [`Networks::attach`] put
//! back a tag that is missing or wrong (a table without its comment is made
//! again, its published ports with it, in one transaction).
//!
//! A crash between making a link and tagging it leaves it untagged, but
//! never unnamed: `create` writes the record before it makes the bridge,
//! and `attach` makes the namespace file before the veth, so the bridge's
//! and the veth's names can be derived from what the run root holds.
//!
//! # What is there, what is left over
//!
//! * [`Networks::present`]`(name)`: every object of one network still on
//!   the host, with or without a record, one line each with its exact name
//!   (`network link bn-1a2b3c4d (bridge of network hello)`, `nftables table
//!   inet berth-net-1a2b3c4d (firewall of network hello)`, …). Empty:
//!   nothing is left. [`Networks::present_endpoint`]`(container)`: the same
//!   for one container's veth and namespace file. For the app layer's
//!   audit after an uninstall.
//! * [`Networks::leftovers`]`(expected)`: the objects of this berthd (by
//!   tag, by namespace file, by record; never another berthd's) that
//!   belong to no network in `expected`, or to an endpoint its network's
//!   record does not have, and the records of networks not in `expected`;
//!   each a [`Leftover`] with a description, a reason and what
//!   [`Networks::remove_leftover`] removes. It removes that very object
//!   only: a link by its index, a table by its handle, a namespace file by
//!   its inode, a record by its content, so an object made again meanwhile
//!   under the same name stays. For `berth doctor`. The rules are pure
//!   functions over what was read ([`audit`]).
//!
//! # Removal
//!
//! [`Networks::remove`] deletes the table (`delete table`: the maps, chains
//! and rules with it; then the sockets holding its ports are closed), the
//! network's veths (recorded, tagged for it, or
//! `bv-*` ports of its bridge: a crash mid-attach leaves veths the record
//! does not know of), their namespace files, the bridge (ports that are not
//! Berth's are let go, not deleted), and the record. It goes on past
//! errors, then looks again ([`Networks::present`]) and fails with
//! [`Error::Incomplete`] naming each object still there and the error that
//! kept it; the record stays then, for the next try. Detaching the last
//! endpoint unmounts the namespace directory too. An unreadable record
//! does not stop it.
//!
//! # After a crash, after a reboot
//!
//! A reboot empties `/run`: records and namespace mounts are gone, and so
//! are the bridges, veths and tables, so nothing is left to repair.
//! (A run root on a disk keeps its records and plain namespace files: the
//! next `create` and `attach` make the rest again.) After a berthd crash
//! the kernel's objects stay, and a record may lack the last endpoint
//! (records are written whole, with rename; an unfinished write is a
//! `<name>.json.tmp`, a leftover). `create` completes what is missing and
//! puts veths back on a bridge made again; `attach` makes anew an endpoint
//! whose veth or namespace mount is missing, or that the record lacks (an
//! old veth of that name is deleted first); `detach` of an endpoint whose
//! namespace is gone succeeds, and of one the record lacks but whose veth
//! is there for this network removes it.
//!
//! # Concurrency
//!
//! All operations are blocking (netlink, `nft`, mounts): call them from
//! `spawn_blocking`. They hold a host-wide lock ([`state::HostLock`],
//! `/run/berth-network.lock` by default) while they choose and change,
//! so subnets and ports are never given twice, not even by two berthd. It
//! lives in `/run` itself, where only root makes files: in the world-writable
//! `/run/lock` any user could make it first and hold it, stalling every
//! berthd's network changes.

pub mod audit;
pub mod ipam;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod ports;
pub mod state;

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use audit::{Leftover, LeftoverObject};
pub use ipam::Subnet;
pub use ports::{Mapping, PortRequest, Protocol, PublishedPort};

use ipam::Taken;
use names::{NetworkNames, Tag, CONTAINER_IFNAME};
use netlink::Netlink;
use state::{HostLock, NetworkRecord, Records};

/// Everything the network module can fail with. Messages say what failed on
/// what and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network name {0:?} is invalid: use up to 128 letters, digits, '_', '-' and '.', not starting with '.'")]
    InvalidName(String),
    #[error("container id {0:?} is invalid: use letters, digits, '_', '-' and '.', not starting with '.'")]
    InvalidContainerId(String),
    #[error("network {0} does not exist: create it first")]
    NotFound(String),
    #[error("network {network} is damaged ({what}): create it again to repair it")]
    Damaged { network: String, what: String },
    #[error("container {container} is not attached to network {network}")]
    NotAttached { network: String, container: String },
    #[error("container {container} is attached to network {other}: detach it first (a container has one network namespace)")]
    AttachedElsewhere { container: String, other: String },
    #[error("no free /{prefix} subnet is left in the pool {pool}: {blockers}; choose another pool, a private range this host does not route")]
    PoolExhausted {
        pool: Subnet,
        prefix: u8,
        blockers: String,
    },
    #[error("network {network} ({subnet}) has no free address left: detach a container first")]
    SubnetFull { network: String, subnet: Subnet },
    #[error("no free {protocol} port on {host_ip} from {from} up to 65535: stop what listens there, or ask for another port")]
    NoFreePort {
        protocol: Protocol,
        host_ip: Ipv4Addr,
        from: u16,
    },
    #[error("cannot publish {0}")]
    InvalidPort(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("nftables, {what}: {message}")]
    Nft { what: String, message: String },
    #[error("removing network {network} left something behind: {}; run the removal again", problems.join("; "))]
    Incomplete {
        network: String,
        problems: Vec<String>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn nft_err(what: impl Into<String>) -> impl FnOnce(String) -> Error {
    let what = what.into();
    move |message| Error::Nft { what, message }
}

/// Where networks get their addresses, and the host-wide lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Subnets are carved from this range.
    pub pool: Subnet,
    /// Each network's prefix length (24: 253 containers).
    pub subnet_prefix: u8,
    /// The lock every berthd on the host takes while it changes networks.
    pub lock: PathBuf,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            pool: Subnet::new(Ipv4Addr::new(10, 89, 0, 0), 16).expect("valid pool"),
            subnet_prefix: 24,
            lock: PathBuf::from("/run/berth-network.lock"),
        }
    }
}

/// One container's place in a network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub network: String,
    pub container_id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The network namespace to run the container in.
    pub netns: PathBuf,
    /// The host end of its veth pair.
    pub host_veth: String,
}

/// A network as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkInfo {
    pub name: String,
    pub bridge: String,
    /// `inet` table of its firewall rules.
    pub table: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub endpoints: Vec<Endpoint>,
}

/// The networks of one berthd (one run root). Clones share the sockets
/// that hold published ports ([`ports::Holds`]): make one per berthd.
#[derive(Debug, Clone)]
pub struct Networks {
    run_root: PathBuf,
    records: Records,
    config: NetworkConfig,
    holds: Arc<Mutex<ports::Holds>>,
}

impl Networks {
    pub fn new(run_root: &Path, config: NetworkConfig) -> Networks {
        Networks {
            run_root: run_root.to_path_buf(),
            records: Records::new(run_root.join("networks")),
            config,
            holds: Arc::default(),
        }
    }

    /// Make the records' and namespaces' directories private and every
    /// namespace mount `nosuid,nodev,noexec`, as an older berthd did not.
    pub fn tighten(&self) -> std::io::Result<()> {
        crate::fsmode::set_mode(self.records.dir(), crate::fsmode::DIR)?;
        netns::tighten(&self.run_root.join("netns"))
    }

    fn holds(&self) -> MutexGuard<'_, ports::Holds> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds every port published on this berthd's networks (see
    /// [`ports`]): at berthd's start, the rules of the last run are still
    /// in the kernel. A port that a host program bound meanwhile (while
    /// berthd was not running) cannot be held; that is logged, and the
    /// program's connections to it go on going to the app.
    pub fn hold_published(&self) -> Result<()> {
        let _lock = self.lock()?;
        let ruleset = nft::read_ruleset().map_err(nft_err("reading the ruleset"))?;
        let records = self
            .records
            .list()
            .map_err(io_err("reading the network records"))?;
        let mut holds = self.holds();
        for r in records {
            let table = self.names(&r.name).table;
            for m in ruleset.mappings_of(&table) {
                hold_or_warn(&mut holds, &r.name, &table, &m);
            }
        }
        Ok(())
    }

    /// The scope of derived names (see [`names`]).
    fn scope(&self) -> String {
        self.run_root.display().to_string()
    }

    /// The tag of the network's bridge and table (see [`names`]).
    pub fn tag(&self, network: &str) -> Tag {
        Tag::network(&self.scope(), network)
    }

    pub fn names(&self, network: &str) -> NetworkNames {
        names::network_names(&self.scope(), network)
    }

    pub fn veth_name(&self, container_id: &str) -> String {
        names::veth_name(&self.scope(), container_id)
    }

    /// Where the container's network namespace is mounted.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.run_root.join("netns").join(container_id)
    }

    fn lock(&self) -> Result<HostLock> {
        HostLock::acquire(&self.config.lock)
            .map_err(io_err(format!("locking {}", self.config.lock.display())))
    }

    fn info(&self, r: &NetworkRecord) -> NetworkInfo {
        let names = self.names(&r.name);
        NetworkInfo {
            name: r.name.clone(),
            bridge: names.bridge,
            table: names.table,
            subnet: r.subnet,
            gateway: r.subnet.gateway(),
            endpoints: r
                .endpoints
                .iter()
                .map(|(c, ip)| self.endpoint(r, c, *ip))
                .collect(),
        }
    }

    fn endpoint(&self, r: &NetworkRecord, container_id: &str, ip: Ipv4Addr) -> Endpoint {
        Endpoint {
            network: r.name.clone(),
            container_id: container_id.to_string(),
            ip,
            prefix: r.subnet.prefix(),
            gateway: r.subnet.gateway(),
            netns: self.netns_path(container_id),
            host_veth: self.veth_name(container_id),
        }
    }

    fn load(&self, name: &str) -> Result<Option<NetworkRecord>> {
        self.records
            .load(name)
            .map_err(io_err(format!("reading the record of network {name}")))
    }

    /// The record, or None if it cannot be read (see
    /// [`state::Records::list`]): what is on the host is the truth then.
    fn load_or_warn(&self, name: &str) -> Result<Option<NetworkRecord>> {
        match self.records.load(name) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(network = name, "unreadable network record ignored: {e}");
                Ok(None)
            }
            r => r.map_err(io_err(format!("reading the record of network {name}"))),
        }
    }

    fn save(&self, r: &NetworkRecord) -> Result<()> {
        self.records
            .save(r)
            .map_err(io_err(format!("writing the record of network {}", r.name)))
    }

    /// The network, as recorded.
    pub fn inspect(&self, name: &str) -> Result<NetworkInfo> {
        check_name(name)?;
        let r = self
            .load(name)?
            .ok_or_else(|| Error::NotFound(name.into()))?;
        Ok(self.info(&r))
    }

    /// Every network of this berthd.
    pub fn list(&self) -> Result<Vec<NetworkInfo>> {
        let records = self
            .records
            .list()
            .map_err(io_err("reading the network records"))?;
        Ok(records.iter().map(|r| self.info(r)).collect())
    }

    /// Creates the network, or completes one that exists (a bridge, its
    /// address, its tag, the firewall table: whatever is missing is made,
    /// the rest kept, including published ports; recorded endpoints whose
    /// veth is no port of the bridge, made again, are added back to it).
    /// An unreadable record is written again.
    pub fn create(&self, name: &str) -> Result<NetworkInfo> {
        check_name(name)?;
        let _lock = self.lock()?;
        let names = self.names(name);
        let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
        let record = self.load_or_warn(name)?;
        let bridge = nl
            .link(&names.bridge)
            .map_err(io_err(format!("looking up bridge {}", names.bridge)))?;
        let addresses = nl
            .addresses()
            .map_err(io_err("reading the host's addresses"))?;
        let on_bridge = bridge.as_ref().and_then(|b| {
            addresses
                .iter()
                .find(|a| a.index == b.index)
                .and_then(|a| Subnet::containing(a.ip, a.prefix))
        });
        let subnet = match on_bridge {
            Some(s) => s,
            None => {
                let taken = self.taken(&mut nl, name, &addresses)?;
                match record.as_ref().map(|r| r.subnet) {
                    Some(s) if !taken.iter().any(|t| t.subnet.overlaps(&s)) => s,
                    _ => self.pick_subnet(&taken)?,
                }
            }
        };
        let ruleset = nft::read_ruleset_with_comments().map_err(nft_err("reading the ruleset"))?;
        let table = ruleset.table(&names.table).cloned();
        let made_bridge = bridge.is_none();
        // The record first: whatever a crash leaves of the network before
        // its objects are tagged is found by the names derived from it.
        let made_record = record.is_none();
        if made_record {
            self.save(&NetworkRecord {
                name: name.into(),
                subnet,
                endpoints: Default::default(),
            })?;
        }

        let result = (|| -> Result<u32> {
            let index = match &bridge {
                Some(b) => b.index,
                None => {
                    nl.add_bridge(&names.bridge, names.bridge_mac)
                        .map_err(io_err(format!("creating bridge {}", names.bridge)))?;
                    nl.link(&names.bridge)
                        .map_err(io_err(format!("looking up bridge {}", names.bridge)))?
                        .ok_or_else(|| Error::Damaged {
                            network: name.into(),
                            what: format!("bridge {} vanished", names.bridge),
                        })?
                        .index
                }
            };
            let tag = self.tag(name).render(names::IFALIAS_MAX);
            if bridge.as_ref().and_then(|b| b.alias.as_deref()) != Some(tag.as_str()) {
                nl.set_alias(index, &tag)
                    .map_err(io_err(format!("tagging bridge {}", names.bridge)))?;
            }
            if on_bridge.is_none() {
                nl.add_address(index, subnet.gateway(), subnet.prefix())
                    .map_err(io_err(format!(
                        "adding {}/{} to {}",
                        subnet.gateway(),
                        subnet.prefix(),
                        names.bridge
                    )))?;
            }
            // Before it is up, so it never gets an IPv6 link-local address.
            disable_host_ipv6(&names.bridge)?;
            nl.set_up(index)
                .map_err(io_err(format!("bringing {} up", names.bridge)))?;
            write_sysctl(
                &format!("net/ipv4/conf/{}/route_localnet", names.bridge),
                "1",
            )?;
            enable_ip_forward()?;
            let comment = self.tag(name).render(names::NFT_COMMENT_MAX);
            let spec = nft::TableSpec {
                table: &names.table,
                bridge: &names.bridge,
                subnet,
                comment: &comment,
            };
            let script = match &table {
                Some(t) if t.comment.as_deref() != Some(comment.as_str()) => {
                    tracing::info!(
                        network = name,
                        "table inet {} is made again to carry its tag, with its published ports",
                        names.table
                    );
                    let kept: Vec<Mapping> = ruleset.mappings_of(&names.table).collect();
                    nft::rebuild_table_script(&spec, &kept)
                }
                _ => nft::ensure_table_script(&spec),
            };
            nft::apply(&script).map_err(nft_err(format!("creating table inet {}", names.table)))?;
            if table.is_none() {
                // The table was gone (deleted by hand): so are its rules,
                // and the ports held for them go too.
                self.holds().release_table(&names.table, |_| false);
            }
            Ok(index)
        })();
        let bridge_index = match result {
            Ok(i) => i,
            Err(e) => {
                // Undo what this call made; what was there before stays.
                if table.is_none() {
                    let _ = nft::apply(&nft::delete_table_script(&names.table));
                }
                if made_bridge {
                    if let Ok(Some(b)) = nl.link(&names.bridge) {
                        let _ = nl.delete_link(b.index);
                    }
                }
                if made_record {
                    let _ = self.records.remove(name);
                }
                return Err(e);
            }
        };

        let mut record = record.unwrap_or_else(|| NetworkRecord {
            name: name.into(),
            subnet,
            endpoints: Default::default(),
        });
        if record.subnet != subnet {
            // The old subnet was taken meanwhile (the bridge was gone):
            // the old endpoints' addresses mean nothing in the new one.
            let mut ignored = Vec::new();
            for c in record.endpoints.keys() {
                self.remove_endpoint(&mut nl, c, &mut ignored);
            }
            record.subnet = subnet;
            record.endpoints.clear();
        }
        // Endpoints whose veth outlived the bridge (deleted by hand and made
        // again here) are ports of it again.
        for c in record.endpoints.keys() {
            let veth = self.veth_name(c);
            if let Some(v) = nl
                .link(&veth)
                .map_err(io_err(format!("looking up {veth}")))?
            {
                if v.master != Some(bridge_index) {
                    nl.set_master(v.index, bridge_index)
                        .map_err(io_err(format!("adding {veth} to {}", names.bridge)))?;
                    nl.set_up(v.index)
                        .map_err(io_err(format!("bringing {veth} up")))?;
                    tracing::info!(network = name, container = %c, "{veth} is a port of {} again", names.bridge);
                }
            }
        }
        self.save(&record)?;
        tracing::info!(network = name, bridge = %names.bridge, %subnet, "network ready");
        Ok(self.info(&record))
    }

    /// What a new subnet must not overlap: the host's routes (but default
    /// routes) and addresses, and this berthd's other networks.
    fn taken(
        &self,
        nl: &mut Netlink,
        name: &str,
        addresses: &[netlink::Address],
    ) -> Result<Vec<Taken>> {
        let links = nl
            .links()
            .map_err(io_err("reading the host's interfaces"))?;
        let ifname = |index: u32| {
            links
                .iter()
                .find(|l| l.index == index)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| format!("interface {index}"))
        };
        let mut taken = Vec::new();
        for r in nl.routes().map_err(io_err("reading the host's routes"))? {
            if r.destination.prefix() == 0 {
                continue;
            }
            let dev = r
                .oif
                .map(|i| format!(" dev {}", ifname(i)))
                .unwrap_or_default();
            taken.push(Taken {
                subnet: r.destination,
                by: format!("route {}{dev} (table {})", r.destination, r.table),
            });
        }
        for a in addresses {
            if let Some(subnet) = Subnet::containing(a.ip, a.prefix) {
                taken.push(Taken {
                    subnet,
                    by: format!("address {}/{} on {}", a.ip, a.prefix, ifname(a.index)),
                });
            }
        }
        for r in self
            .records
            .list()
            .map_err(io_err("reading the network records"))?
        {
            if r.name != name {
                taken.push(Taken {
                    subnet: r.subnet,
                    by: format!("Berth network {}", r.name),
                });
            }
        }
        Ok(taken)
    }

    fn pick_subnet(&self, taken: &[Taken]) -> Result<Subnet> {
        let (pool, prefix) = (self.config.pool, self.config.subnet_prefix);
        ipam::pick_subnet(pool, prefix, taken).ok_or_else(|| {
            let mut b: Vec<String> = ipam::blockers(pool, taken)
                .iter()
                .map(|t| t.by.clone())
                .collect();
            b.dedup();
            let blockers = if b.is_empty() {
                format!("a /{prefix} does not fit in it")
            } else if b.len() > 5 {
                format!(
                    "{} and {} more are in the way",
                    b[..5].join(", "),
                    b.len() - 5
                )
            } else {
                format!("{} in the way", b.join(", "))
            };
            Error::PoolExhausted {
                pool,
                prefix,
                blockers,
            }
        })
    }

    /// Removes the network and everything made for it (see the module
    /// comment). Removing a network that does not exist does nothing.
    ///
    /// Goes on past errors; then looks again ([`Networks::present`]) and
    /// fails with [`Error::Incomplete`] naming each object still there,
    /// with the error that kept it. The record is kept then, so the
    /// removal can be run again.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let _lock = self.lock()?;
        let names = self.names(name);
        let mut problems = Vec::new();
        let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;

        match nft::apply(&nft::delete_table_script(&names.table)) {
            // Its rules are gone: so are the ports held for them.
            Ok(()) => self.holds().release_table(&names.table, |_| false),
            Err(e) => problems.push(format!(
                "{}: {e}",
                audit::describe_table(&names.table, Some((name, false)))
            )),
        }
        // What is there: the recorded endpoints and those the record does
        // not know of (a crash mid-attach), by tag and bridge membership.
        let obs = self.observe(&mut nl, false)?;
        let paths = self.paths();
        let members = audit::members(&paths, name, &obs);
        for (l, what) in &members.veths {
            if let Err(e) = nl.delete_link(l.index) {
                problems.push(format!("{what}: {e}"));
            }
        }
        for f in &members.netns {
            let path = self.netns_path(&f.container_id);
            if let Err(e) = netns::remove(&path) {
                problems.push(format!(
                    "{}: {e}",
                    audit::describe_netns(&path, &f.container_id, f.mounted)
                ));
            }
        }
        if let Some(b) = members.bridge {
            // Ports that are not Berth's veths (added by hand) are let go.
            if let Err(e) = nl.delete_link(b.index) {
                problems.push(format!(
                    "{}: {e}",
                    audit::describe_bridge(&b.name, name, false)
                ));
            }
        }
        // What is still there that no error above explains (a link made
        // again meanwhile, a namespace still mounted, …).
        let left = self
            .observe(&mut nl, true)
            .map(|obs| audit::present_objects(&paths, name, &obs));
        match left {
            Ok(left) => {
                let record = self.records.path(name).display().to_string();
                for (object, item) in left {
                    let explained = problems.iter().any(|p| p.contains(&object));
                    // The record goes last, below.
                    let kept = object.starts_with(&record);
                    if !explained && !kept {
                        problems.push(format!("{item} is still there"));
                    }
                }
            }
            Err(e) => problems.push(format!("looking again at what is left: {e}")),
        }
        if problems.is_empty() {
            if let Err(e) = self.records.remove(name) {
                problems.push(format!(
                    "network record {}: {e}",
                    self.records.path(name).display()
                ));
            }
            if let Err(e) = self.records.remove_temp(&format!("{name}.json.tmp")) {
                problems.push(format!("unfinished network record: {e}"));
            }
        }
        netns::release_dir(&self.run_root.join("netns"));
        if problems.is_empty() {
            tracing::info!(network = name, "network removed");
            Ok(())
        } else {
            Err(Error::Incomplete {
                network: name.into(),
                problems,
            })
        }
    }

    /// Deletes a container's veth pair and network namespace.
    fn remove_endpoint(&self, nl: &mut Netlink, container_id: &str, problems: &mut Vec<String>) {
        let veth = self.veth_name(container_id);
        let what = || audit::describe_veth(&veth, Some(container_id), None);
        match nl.link(&veth) {
            Ok(Some(l)) => {
                if let Err(e) = nl.delete_link(l.index) {
                    problems.push(format!("{}: {e}", what()));
                }
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("{}: {e}", what())),
        }
        let path = self.netns_path(container_id);
        if let Err(e) = netns::remove(&path) {
            problems.push(format!("network namespace {}: {e}", path.display()));
        }
    }

    /// Gives the container a network namespace on the network: an address,
    /// a default route, a veth pair to the bridge, tagged. Attaching an
    /// attached container returns its endpoint: its tag and its place on the
    /// bridge are repaired; if its veth or its namespace mount is missing,
    /// it is made anew with the same address. What an earlier attempt left
    /// that the record lacks (a crash) is deleted first.
    pub fn attach(&self, name: &str, container_id: &str) -> Result<Endpoint> {
        check_name(name)?;
        check_container(container_id)?;
        let _lock = self.lock()?;
        let mut record = self
            .load(name)?
            .ok_or_else(|| Error::NotFound(name.into()))?;
        for other in self
            .records
            .list()
            .map_err(io_err("reading the network records"))?
        {
            if other.name != name && other.endpoints.contains_key(container_id) {
                return Err(Error::AttachedElsewhere {
                    container: container_id.into(),
                    other: other.name,
                });
            }
        }
        let names = self.names(name);
        let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
        let bridge = nl
            .link(&names.bridge)
            .map_err(io_err(format!("looking up bridge {}", names.bridge)))?
            .ok_or_else(|| Error::Damaged {
                network: name.into(),
                what: format!("its bridge {} is missing", names.bridge),
            })?;
        let path = self.netns_path(container_id);
        let veth = self.veth_name(container_id);
        let tag = Tag::endpoint(&self.scope(), name, container_id).render(names::IFALIAS_MAX);
        if let Some(&ip) = record.endpoints.get(container_id) {
            let link = nl
                .link(&veth)
                .map_err(io_err(format!("looking up {veth}")))?;
            if let Some(v) = link.filter(|_| netns::is_mounted(&path)) {
                // There: only its tag or its place on the bridge (made
                // again) may need repair.
                if v.alias.as_deref() != Some(tag.as_str()) {
                    nl.set_alias(v.index, &tag)
                        .map_err(io_err(format!("tagging {veth}")))?;
                }
                if v.master != Some(bridge.index) {
                    nl.set_master(v.index, bridge.index)
                        .map_err(io_err(format!("adding {veth} to {}", names.bridge)))?;
                    nl.set_up(v.index)
                        .map_err(io_err(format!("bringing {veth} up")))?;
                }
                return Ok(self.endpoint(&record, container_id, ip));
            }
        }
        // Leftovers of an earlier attempt.
        let mut problems = Vec::new();
        self.remove_endpoint(&mut nl, container_id, &mut problems);
        if let Some(p) = problems.first() {
            return Err(Error::Io {
                what: format!("clearing what an earlier attach of {container_id} left"),
                source: io::Error::other(p.clone()),
            });
        }
        let subnet = record.subnet;
        let ip = match record.endpoints.get(container_id) {
            Some(&ip) => ip,
            None => {
                let used: BTreeSet<Ipv4Addr> = record.endpoints.values().copied().collect();
                ipam::pick_address(subnet, &used).ok_or_else(|| Error::SubnetFull {
                    network: name.into(),
                    subnet,
                })?
            }
        };

        let made = (|| -> Result<()> {
            netns::create(&path).map_err(io_err(format!(
                "creating a network namespace at {}",
                path.display()
            )))?;
            let ns = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
            nl.add_veth(&veth, CONTAINER_IFNAME, &ns)
                .map_err(io_err(format!("creating veth pair {veth}")))?;
            let host = nl
                .link(&veth)
                .map_err(io_err(format!("looking up {veth}")))?
                .ok_or_else(|| Error::Io {
                    what: format!("looking up {veth}"),
                    source: io::Error::from_raw_os_error(libc::ENODEV),
                })?;
            nl.set_alias(host.index, &tag)
                .map_err(io_err(format!("tagging {veth}")))?;
            nl.set_master(host.index, bridge.index)
                .map_err(io_err(format!("adding {veth} to {}", names.bridge)))?;
            disable_host_ipv6(&veth)?;
            nl.set_up(host.index)
                .map_err(io_err(format!("bringing {veth} up")))?;
            configure_inside(&path, ip, subnet).map_err(io_err(format!(
                "configuring the network namespace of {container_id}"
            )))
        })();
        if let Err(e) = made {
            let mut ignored = Vec::new();
            self.remove_endpoint(&mut nl, container_id, &mut ignored);
            return Err(e);
        }
        record.endpoints.insert(container_id.to_string(), ip);
        if let Err(e) = self.save(&record) {
            let mut ignored = Vec::new();
            self.remove_endpoint(&mut nl, container_id, &mut ignored);
            return Err(e);
        }
        Ok(self.endpoint(&record, container_id, ip))
    }

    /// Takes the container off the network: its published ports, its veth
    /// pair and its network namespace (a container still running in it
    /// keeps the namespace, now with only `lo`). A namespace or veth that is
    /// gone already is fine; an endpoint the record lacks but whose veth is
    /// there for this network (a crash mid-attach) is removed all the same.
    pub fn detach(&self, name: &str, container_id: &str) -> Result<()> {
        check_name(name)?;
        check_container(container_id)?;
        let _lock = self.lock()?;
        let mut record = self
            .load(name)?
            .ok_or_else(|| Error::NotFound(name.into()))?;
        let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
        let Some(&ip) = record.endpoints.get(container_id) else {
            // Not recorded, but its veth is there for this network (a crash
            // mid-attach): it goes all the same.
            let obs = self.observe(&mut nl, false)?;
            let veth = self.veth_name(container_id);
            let members = audit::members(&self.paths(), name, &obs);
            if !members.veths.iter().any(|(l, _)| l.name == veth) {
                return Err(Error::NotAttached {
                    network: name.into(),
                    container: container_id.into(),
                });
            }
            return self.detach_endpoint(&mut nl, name, container_id);
        };
        self.unpublish_locked(name, ip)?;
        self.detach_endpoint(&mut nl, name, container_id)?;
        record.endpoints.remove(container_id);
        self.save(&record)
    }

    /// [`Networks::remove_endpoint`], every problem in the error.
    fn detach_endpoint(&self, nl: &mut Netlink, name: &str, container_id: &str) -> Result<()> {
        let mut problems = Vec::new();
        self.remove_endpoint(nl, container_id, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Io {
                what: format!("detaching {container_id} from network {name}"),
                source: io::Error::other(problems.join("; ")),
            })
        }
    }

    /// Publishes the container's ports on the host. Each request gets its
    /// port, or the next free one above it when that is taken (see
    /// [`PublishedPort::moved`]); all or none are published. Asking again
    /// for a port the container has returns the existing mapping.
    pub fn publish(
        &self,
        name: &str,
        container_id: &str,
        requests: &[PortRequest],
    ) -> Result<Vec<PublishedPort>> {
        check_name(name)?;
        check_container(container_id)?;
        for r in requests {
            if r.container_port == 0 {
                return Err(Error::InvalidPort(
                    "container port 0: name the port the app listens on".into(),
                ));
            }
            if !r.host_ip.is_unspecified() && !ports::is_host_address(r.host_ip) {
                return Err(Error::InvalidPort(format!(
                    "on {}: it is not an address of this host (use 127.0.0.1, 0.0.0.0 or one of the host's addresses)",
                    r.host_ip
                )));
            }
        }
        let _lock = self.lock()?;
        let record = self
            .load(name)?
            .ok_or_else(|| Error::NotFound(name.into()))?;
        let ip = *record
            .endpoints
            .get(container_id)
            .ok_or_else(|| Error::NotAttached {
                network: name.into(),
                container: container_id.into(),
            })?;
        let names = self.names(name);
        let ruleset = nft::read_ruleset().map_err(nft_err("reading the ruleset"))?;
        if !ruleset.has_table(&names.table) {
            return Err(Error::Damaged {
                network: name.into(),
                what: format!("its table inet {} is missing", names.table),
            });
        }
        let mut published: Vec<Mapping> = ruleset.mappings.iter().map(|(_, m)| *m).collect();
        let mut holds = self.holds();
        // Ports held for rules of this table that are gone (deleted by
        // hand) are let go, or they would keep their own port from them.
        holds.release_table(&names.table, |h| {
            ruleset.mappings_of(&names.table).any(|m| {
                (m.protocol, m.host_ip, m.host_port) == (h.protocol, h.host_ip, h.host_port)
            })
        });
        let mut out = Vec::new();
        let mut new = Vec::new();
        for r in requests {
            let existing = ruleset.mappings_of(&names.table).find(|m| {
                m.container_ip == ip
                    && m.container_port == r.container_port
                    && m.protocol == r.protocol
                    && m.host_ip == r.host_ip
                    && m.host_port >= r.host_port
            });
            let host_port = match existing {
                Some(m) => {
                    // Published before this berthd started (or by an
                    // older one): hold it now.
                    hold_or_warn(&mut holds, name, &names.table, &m);
                    m.host_port
                }
                None => {
                    let from = if r.host_port == 0 {
                        ports::ephemeral_start()
                    } else {
                        r.host_port
                    };
                    // Taking the port is the check that it is free.
                    let hold = |p, ip, port| ports::hold(p, ip, port).ok();
                    let (port, hold) = ports::pick_port(
                        r.protocol, r.host_ip, from, &published, hold,
                    )
                    .ok_or(Error::NoFreePort {
                        protocol: r.protocol,
                        host_ip: r.host_ip,
                        from,
                    })?;
                    let m = Mapping {
                        protocol: r.protocol,
                        host_ip: r.host_ip,
                        host_port: port,
                        container_ip: ip,
                        container_port: r.container_port,
                    };
                    published.push(m);
                    new.push((m, hold));
                    port
                }
            };
            out.push(PublishedPort {
                protocol: r.protocol,
                host_ip: r.host_ip,
                host_port,
                requested_host_port: r.host_port,
                container_ip: ip,
                container_port: r.container_port,
            });
        }
        if !new.is_empty() {
            let mappings: Vec<Mapping> = new.iter().map(|(m, _)| *m).collect();
            // On an error the holds drop with `new`: the ports are free again.
            nft::apply(&nft::add_mappings_script(&names.table, &mappings))
                .map_err(nft_err(format!("publishing ports of {container_id}")))?;
            for (m, hold) in new {
                holds.keep(&names.table, &m, hold);
            }
        }
        for p in &out {
            if p.moved() {
                tracing::info!(network = name, container = container_id, "published {p}");
            }
        }
        Ok(out)
    }

    /// Removes every port published for the container; returns them.
    pub fn unpublish(&self, name: &str, container_id: &str) -> Result<Vec<Mapping>> {
        check_name(name)?;
        check_container(container_id)?;
        let _lock = self.lock()?;
        let record = self
            .load(name)?
            .ok_or_else(|| Error::NotFound(name.into()))?;
        match record.endpoints.get(container_id) {
            Some(&ip) => self.unpublish_locked(name, ip),
            None => Ok(Vec::new()),
        }
    }

    fn unpublish_locked(&self, name: &str, ip: Ipv4Addr) -> Result<Vec<Mapping>> {
        let table = self.names(name).table;
        let ruleset = nft::read_ruleset().map_err(nft_err("reading the ruleset"))?;
        let mine: Vec<Mapping> = ruleset
            .mappings_of(&table)
            .filter(|m| m.container_ip == ip)
            .collect();
        if !mine.is_empty() {
            nft::apply(&nft::delete_mappings_script(&table, &mine))
                .map_err(nft_err(format!("removing the ports published for {ip}")))?;
        }
        // After the rules: a port is never redirected without being held.
        let mut holds = self.holds();
        for m in &mine {
            holds.release(m);
        }
        Ok(mine)
    }

    /// The ports published on the network, as the firewall has them.
    pub fn published(&self, name: &str) -> Result<Vec<Mapping>> {
        check_name(name)?;
        Ok(self.published_in(&self.firewall()?, name))
    }

    /// One reading of the firewall's Berth tables, for looking up the
    /// ports of many networks with [`Networks::published_in`] (each
    /// reading runs `nft`).
    pub fn firewall(&self) -> Result<nft::Ruleset> {
        nft::read_ruleset().map_err(nft_err("reading the ruleset"))
    }

    /// The ports published on network `name`, as `ruleset` has them.
    pub fn published_in(&self, ruleset: &nft::Ruleset, name: &str) -> Vec<Mapping> {
        ruleset.mappings_of(&self.names(name).table).collect()
    }

    fn paths(&self) -> audit::Paths {
        audit::Paths::new(&self.run_root)
    }

    /// Reads what [`audit`] works on: the host's links, Berth's tables
    /// with their comments (if `tables`), this run root's namespace files
    /// and records.
    fn observe(&self, nl: &mut Netlink, tables: bool) -> Result<audit::Observed> {
        let links = nl
            .links()
            .map_err(io_err("reading the host's interfaces"))?;
        let tables = if tables {
            nft::read_ruleset_with_comments()
                .map_err(nft_err("reading the ruleset"))?
                .tables
        } else {
            Vec::new()
        };
        let dir = self.run_root.join("netns");
        let netns = netns::list(&dir)
            .map_err(io_err(format!("reading {}", dir.display())))?
            .into_iter()
            .filter(|c| names::valid_container_id(c))
            .map(|c| {
                let path = dir.join(&c);
                audit::NetnsFile {
                    mounted: netns::is_mounted(&path),
                    id: netns::file_id(&path),
                    container_id: c,
                }
            })
            .collect();
        let mut records = Vec::new();
        let mut temps = Vec::new();
        let files = self
            .records
            .files()
            .map_err(io_err("reading the network records"))?;
        for f in files {
            match f {
                state::RecordFile::Record(network) => {
                    let path = self.records.path(&network);
                    let content = match std::fs::read(&path) {
                        Ok(c) => c,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
                    };
                    let endpoints = serde_json::from_slice::<NetworkRecord>(&content)
                        .map(|r| r.endpoints.into_keys().collect())
                        .unwrap_or_default();
                    records.push(audit::RecordFile {
                        network,
                        endpoints,
                        content,
                    });
                }
                state::RecordFile::Temp(t) => temps.push(t),
            }
        }
        Ok(audit::Observed {
            links,
            tables,
            netns,
            netns_dir: dir.exists(),
            records,
            records_dir: self.records.dir().exists(),
            temps,
        })
    }

    /// Every object of network `name` still on the host, whether or not it
    /// has a record, one line each with its exact name: its bridge, its
    /// veths (tagged for it, ports of its bridge, or of an endpoint in its
    /// record), its nftables table, its containers' namespace files, its
    /// record. Empty: nothing of it is left.
    ///
    /// ```text
    /// network link bn-1a2b3c4d (bridge of network hello)
    /// network link bv-5e6f7a8b (veth of container 0c1d… on network hello)
    /// nftables table inet berth-net-1a2b3c4d (firewall of network hello)
    /// network namespace /run/berth/netns/0c1d… (of container 0c1d…, mounted)
    /// network record /run/berth/networks/hello.json
    /// ```
    pub fn present(&self, name: &str) -> Result<Vec<String>> {
        check_name(name)?;
        let _lock = self.lock()?;
        let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
        let obs = self.observe(&mut nl, true)?;
        Ok(audit::present(&self.paths(), name, &obs))
    }

    /// Every object of the container's endpoint still on the host: its
    /// veth (by name, or by a tag naming the container) and its namespace
    /// file, one line each, as [`Networks::present`] writes them. What
    /// cannot be looked at is a line too (`could not …`), so an audit
    /// never passes unchecked.
    pub fn present_endpoint(&self, container_id: &str) -> Vec<String> {
        if !names::valid_container_id(container_id) {
            return Vec::new();
        }
        let obs = Netlink::open()
            .map_err(io_err("opening a netlink socket"))
            .and_then(|mut nl| self.observe(&mut nl, false));
        match obs {
            Ok(obs) => audit::present_endpoint(&self.paths(), container_id, &obs),
            Err(e) => vec![format!(
                "could not look at the network endpoint of container {container_id}: {e}"
            )],
        }
    }

    /// The objects of this berthd (found by tag, by namespace file, by
    /// record: never another berthd's) that belong to no network in
    /// `expected`, or to an endpoint its network's record does not have;
    /// and the records of networks not in `expected`. In the order to
    /// remove them ([`Networks::remove_leftover`]).
    pub fn leftovers(&self, expected: &BTreeSet<String>) -> Result<Vec<Leftover>> {
        let _lock = self.lock()?;
        let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
        let obs = self.observe(&mut nl, true)?;
        Ok(audit::leftovers(&self.paths(), expected, &obs))
    }

    /// Removes a leftover that [`Networks::leftovers`] found, if it is
    /// still that very object (not one made again since under its name);
    /// one that is gone already is fine.
    pub fn remove_leftover(&self, l: &Leftover) -> Result<()> {
        let _lock = self.lock()?;
        let failed = |e: String| Error::Io {
            what: format!("removing {}", l.description),
            source: io::Error::other(e),
        };
        match &l.object {
            LeftoverObject::Link { name, index } => {
                let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
                match nl.link(name).map_err(|e| failed(e.to_string()))? {
                    Some(now) if now.index == *index => {
                        nl.delete_link(*index).map_err(|e| failed(e.to_string()))
                    }
                    _ => Ok(()),
                }
            }
            LeftoverObject::Table { name, handle } => {
                let rs = nft::read_ruleset().map_err(&failed)?;
                match rs.table(name) {
                    Some(t) if t.handle == *handle => {
                        nft::apply(&nft::delete_table_script(name)).map_err(&failed)?;
                        self.holds().release_table(name, |_| false);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            LeftoverObject::Netns { container_id, id } => {
                check_container(container_id)?;
                let path = self.netns_path(container_id);
                if netns::file_id(&path) == *id && path.exists() {
                    netns::remove(&path).map_err(|e| failed(e.to_string()))
                } else {
                    Ok(())
                }
            }
            LeftoverObject::NetnsDir => {
                netns::release_dir(&self.run_root.join("netns"));
                Ok(())
            }
            LeftoverObject::Record { network, content } => {
                check_name(network)?;
                let path = self.records.path(network);
                match std::fs::read(&path) {
                    Ok(now) if now == *content => self
                        .records
                        .remove(network)
                        .map_err(|e| failed(e.to_string())),
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(failed(e.to_string())),
                }
            }
            LeftoverObject::RecordTemp { file_name } => self
                .records
                .remove_temp(file_name)
                .map_err(|e| failed(e.to_string())),
            LeftoverObject::RecordsDir => match std::fs::remove_dir(self.records.dir()) {
                // Not empty: a record was written since.
                Err(e)
                    if e.kind() != io::ErrorKind::NotFound
                        && e.kind() != io::ErrorKind::DirectoryNotEmpty =>
                {
                    Err(failed(e.to_string()))
                }
                _ => Ok(()),
            },
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    if names::valid_network_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName(name.into()))
    }
}

fn check_container(id: &str) -> Result<()> {
    if names::valid_container_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidContainerId(id.into()))
    }
}

/// Inside the container's namespace: IPv6 off for `eth0` (and any
/// interface made later; `lo` keeps `::1`, which reaches only the
/// container itself), ICMP echo sockets for every group (so iputils' `ping`
/// works without `CAP_NET_RAW`, which app containers do not have; systemd
/// sets the same range on hosts), `lo` up, `eth0` with its address and
/// up, the default route via the gateway.
fn configure_inside(netns: &Path, ip: Ipv4Addr, subnet: Subnet) -> io::Result<()> {
    netns::enter(netns, || {
        // Before eth0 is up, so it never gets an IPv6 link-local address.
        disable_ipv6("default")?;
        disable_ipv6(CONTAINER_IFNAME)?;
        sysctl("net/ipv4/ping_group_range", PING_GROUP_RANGE)
    })?;
    let mut nl = Netlink::open_in(netns)?;
    let missing = |n: &str| io::Error::other(format!("no interface {n} in the namespace"));
    let lo = nl.link("lo")?.ok_or_else(|| missing("lo"))?;
    nl.set_up(lo.index)?;
    let eth0 = nl
        .link(CONTAINER_IFNAME)?
        .ok_or_else(|| missing(CONTAINER_IFNAME))?;
    nl.add_address(eth0.index, ip, subnet.prefix())?;
    nl.set_up(eth0.index)?;
    nl.add_default_route(eth0.index, subnet.gateway())
}

/// `net.ipv4.ping_group_range` in an app's namespace: every group may open
/// an ICMP echo socket (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`), which
/// sends echo requests and receives their replies, nothing else.
pub const PING_GROUP_RANGE: &str = "0 2147483647";

/// The host's IPv4 addresses, on every interface (one netlink dump).
pub fn host_addresses() -> io::Result<Vec<Ipv4Addr>> {
    Ok(Netlink::open()?
        .addresses()?
        .into_iter()
        .map(|a| a.ip)
        .collect())
}

/// Holds the port of `m` (published on `network`, in `table`) if it is not
/// held; one that a host program has bound is logged (see
/// [`Networks::hold_published`]).
fn hold_or_warn(holds: &mut ports::Holds, network: &str, table: &str, m: &Mapping) {
    if let Err(e) = holds.ensure(table, m) {
        tracing::warn!(
            network,
            "cannot hold published port {}:{}/{} ({e}): a program on the host bound it while \
             berthd did not hold it (berthd was not running), and its clients' connections go \
             to the app; stop that program, or publish the app's port elsewhere",
            m.host_ip,
            m.host_port,
            m.protocol
        );
    }
}

/// Turns IPv6 off on the interface `ifname` (in the calling thread's
/// network namespace): Berth's networks are IPv4 only, and an interface
/// with IPv6 on has a link-local address by which an app could reach the
/// host's `[::]` listeners around the IPv4 rules (issue 11). A kernel
/// without IPv6 has nothing to turn off.
fn disable_ipv6(ifname: &str) -> io::Result<()> {
    match sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1") {
        Err(e)
            if e.kind() == io::ErrorKind::NotFound && !Path::new("/proc/sys/net/ipv6").exists() =>
        {
            Ok(())
        }
        r => r,
    }
}

/// [`disable_ipv6`] on a host interface, the error naming it.
fn disable_host_ipv6(ifname: &str) -> Result<()> {
    disable_ipv6(ifname).map_err(io_err(format!("turning IPv6 off on {ifname}")))
}

/// Writes `/proc/sys/<key>` (in the calling thread's network namespace).
fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value} to {}: {e}", path.display()),
        )
    })
}

/// [`sysctl`], as this module's error.
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    sysctl(key, value).map_err(io_err("setting a sysctl"))
}

/// Turns on IPv4 forwarding if it is off (see the module comment).
fn enable_ip_forward() -> Result<()> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let now = std::fs::read_to_string(path).map_err(io_err(format!("reading {path}")))?;
    if now.trim() != "1" {
        write_sysctl("net/ipv4/ip_forward", "1")?;
        tracing::info!("set net.ipv4.ip_forward=1: Berth networks reach out through NAT");
    }
    Ok(())
}
