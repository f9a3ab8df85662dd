//! Address management, pure: which subnet a new network gets, and which
//! address a new container gets in it. The callers hand in what is taken
//! (the host's routes and addresses, other Berth networks, the network's
//! endpoints), so every rule here is unit-tested with made-up tables.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: an address with its host bits clear, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The subnet `addr/prefix` lies in (host bits of `addr` are dropped, as
    /// a route or an interface address names its network).
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Option<Subnet> {
        if prefix > 32 {
            return None;
        }
        Some(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// `network/prefix`, refusing host bits (a mistyped pool should be told,
    /// not silently moved).
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Subnet, String> {
        let s = Subnet::containing(network, prefix)
            .ok_or_else(|| format!("prefix length /{prefix} is not between 0 and 32"))?;
        if s.network != network {
            return Err(format!(
                "{network}/{prefix} has host bits set: did you mean {s}?"
            ));
        }
        Ok(s)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The first usable address: the bridge's, the containers' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Do the two share any address? (Subnets nest or are disjoint.)
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// Number of addresses, as u64 (a /0 has 2^32).
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Subnet, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a subnet: write it as 10.89.0.0/16"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} in {s:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{prefix:?} in {s:?} is not a prefix length"))?;
        Subnet::new(ip, prefix)
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Something that holds addresses a new network must not overlap, and why
/// (for the error message when the pool is used up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub subnet: Subnet,
    pub by: String,
}

/// The first `/prefix` inside `pool` that overlaps nothing in `taken`.
///
/// Routes of length 0 (default routes) are the caller's to leave out: they
/// overlap everything and say nothing about which addresses are in use.
pub fn pick_subnet(pool: Subnet, prefix: u8, taken: &[Taken]) -> Option<Subnet> {
    if prefix < pool.prefix() || prefix > 30 {
        return None;
    }
    let step = 1u64 << (32 - prefix);
    let start = u32::from(pool.network()) as u64;
    (0..pool.size() / step)
        .map(|i| Subnet::containing(Ipv4Addr::from((start + i * step) as u32), prefix).unwrap())
        .find(|candidate| !taken.iter().any(|t| t.subnet.overlaps(candidate)))
}

/// Those of `taken` that overlap `pool` (what to name when it is full).
pub fn blockers(pool: Subnet, taken: &[Taken]) -> Vec<&Taken> {
    taken.iter().filter(|t| t.subnet.overlaps(&pool)).collect()
}

/// The lowest address for a container in `subnet`: not the network, not
/// the gateway (`.1`), not the broadcast, not in `used`.
pub fn pick_address(subnet: Subnet, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.gateway()) + 1;
    let last = u32::from(subnet.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    fn taken(list: &[&str]) -> Vec<Taken> {
        list.iter()
            .map(|s| {
                let (ip, p) = s.split_once('/').unwrap();
                Taken {
                    subnet: Subnet::containing(ip.parse().unwrap(), p.parse().unwrap()).unwrap(),
                    by: format!("route {s}"),
                }
            })
            .collect()
    }

    #[test]
    fn parse_display_and_arithmetic() {
        let s = net("10.89.3.0/24");
        assert_eq!(s.to_string(), "10.89.3.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 89, 3, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 3, 255));
        assert!(s.contains(Ipv4Addr::new(10, 89, 3, 77)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 4, 0)));
        assert_eq!(net("0.0.0.0/0").size(), 1 << 32);
        assert!("10.89.0.1/16"
            .parse::<Subnet>()
            .unwrap_err()
            .contains("10.89.0.0/16"));
        assert!("10.89.0.0".parse::<Subnet>().is_err());
        assert!("10.89.0.0/33".parse::<Subnet>().is_err());
        assert_eq!(
            Subnet::containing(Ipv4Addr::new(192, 168, 1, 17), 24).unwrap(),
            net("192.168.1.0/24")
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"10.89.3.0/24\"");
        assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), s);
    }

    #[test]
    fn overlap_is_nesting_or_equality() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.89.1.0/24")));
        assert!(net("10.89.1.0/24").overlaps(&net("10.0.0.0/8")));
        assert!(net("10.89.1.0/24").overlaps(&net("10.89.1.0/24")));
        assert!(net("10.89.1.0/24").overlaps(&net("10.89.1.128/25")));
        assert!(!net("10.89.1.0/24").overlaps(&net("10.89.2.0/24")));
        assert!(!net("10.89.0.0/16").overlaps(&net("10.90.0.0/16")));
        // A host address (/32) inside.
        assert!(net("10.89.5.0/24").overlaps(&net("10.89.5.9/32")));
    }

    #[test]
    fn picks_the_first_free_subnet() {
        let pool = net("10.89.0.0/16");
        assert_eq!(pick_subnet(pool, 24, &[]), Some(net("10.89.0.0/24")));
        // A typical laptop: LAN, docker0, another Berth network.
        let t = taken(&["192.168.1.0/24", "172.17.0.0/16", "10.89.0.0/24"]);
        assert_eq!(pick_subnet(pool, 24, &t), Some(net("10.89.1.0/24")));
        // A VPN route covering the start of the pool.
        let t = taken(&["10.89.0.0/20"]);
        assert_eq!(pick_subnet(pool, 24, &t), Some(net("10.89.16.0/24")));
        // A host address (no covering route, e.g. a /32 on a tunnel).
        let t = taken(&["10.89.0.7/32", "10.89.1.200/32"]);
        assert_eq!(pick_subnet(pool, 24, &t), Some(net("10.89.2.0/24")));
        // Other prefix lengths.
        assert_eq!(
            pick_subnet(pool, 26, &taken(&["10.89.0.0/26"])),
            Some(net("10.89.0.64/26"))
        );
    }

    #[test]
    fn a_pool_covered_by_a_route_has_nothing() {
        let pool = net("10.89.0.0/16");
        let t = taken(&["10.0.0.0/8", "192.168.1.0/24"]);
        assert_eq!(pick_subnet(pool, 24, &t), None);
        let b = blockers(pool, &t);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].by, "route 10.0.0.0/8");
        // Every /24 used one by one.
        let all: Vec<String> = (0..=255).map(|i| format!("10.89.{i}.0/24")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        assert_eq!(pick_subnet(pool, 24, &taken(&all)), None);
        // Nonsense prefixes.
        assert_eq!(pick_subnet(pool, 8, &[]), None);
        assert_eq!(pick_subnet(pool, 31, &[]), None);
    }

    #[test]
    fn container_addresses_skip_gateway_and_used_and_broadcast() {
        let s = net("10.89.1.0/24");
        let mut used = BTreeSet::new();
        assert_eq!(pick_address(s, &used), Some(Ipv4Addr::new(10, 89, 1, 2)));
        used.insert(Ipv4Addr::new(10, 89, 1, 2));
        used.insert(Ipv4Addr::new(10, 89, 1, 4));
        assert_eq!(pick_address(s, &used), Some(Ipv4Addr::new(10, 89, 1, 3)));
        let small = net("10.89.1.0/30"); // .1 gateway, .2 the only container, .3 broadcast
        assert_eq!(
            pick_address(small, &BTreeSet::new()),
            Some(Ipv4Addr::new(10, 89, 1, 2))
        );
        let full: BTreeSet<_> = [Ipv4Addr::new(10, 89, 1, 2)].into();
        assert_eq!(pick_address(small, &full), None);
        let all: BTreeSet<_> = (2..=254).map(|i| Ipv4Addr::new(10, 89, 1, i)).collect();
        assert_eq!(pick_address(s, &all), None);
    }
}
