//! Names of the kernel objects a network is made of, derived from the
//! network's name and the container's id, so they can be found again (after a
//! restart of berthd, or to remove what a crash left) without being recorded.
//!
//! Linux interface names have at most 15 bytes (`IFNAMSIZ` − 1), too few for
//! an app or container name, so they carry a hash: `bn-` + 8 hex digits for
//! a network's bridge, `bv-` + 8 hex digits for the host end of a
//! container's veth pair. The hash also covers the berthd's run root, so two
//! berthd with different roots (as the tests run) never derive the same name
//! for a network both call `web`.

use sha2::{Digest, Sha256};

/// Every Berth bridge's name starts with this (the firewall matches `bn-*`
/// to keep networks apart).
pub const BRIDGE_PREFIX: &str = "bn-";
/// The host end of every container's veth pair starts with this.
pub const VETH_PREFIX: &str = "bv-";
/// Every network's nftables table (family `inet`) starts with this.
pub const TABLE_PREFIX: &str = "berth-net-";
/// The container's end of its veth pair, inside its network namespace.
pub const CONTAINER_IFNAME: &str = "eth0";

/// The longest interface name Linux accepts.
pub const IFNAME_MAX: usize = 15;

/// 8 hex digits of SHA-256 over the scope and the name.
fn short_hash(scope: &str, kind: &str, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    hex::encode(&h.finalize()[..4])
}

/// The names of one network's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkNames {
    /// `bn-<8 hex>`
    pub bridge: String,
    /// `berth-net-<8 hex>`, family `inet`
    pub table: String,
    /// A fixed, locally administered MAC for the bridge (a bridge without
    /// one takes its lowest port's, which changes as containers come and go
    /// and makes the containers' ARP entries for the gateway go stale).
    pub bridge_mac: [u8; 6],
}

pub fn network_names(scope: &str, network: &str) -> NetworkNames {
    let h = short_hash(scope, "network", network);
    let bytes = hex::decode(&h).expect("hex");
    NetworkNames {
        bridge: format!("{BRIDGE_PREFIX}{h}"),
        table: format!("{TABLE_PREFIX}{h}"),
        // 0x02: locally administered, unicast.
        bridge_mac: [0x02, 0x42, bytes[0], bytes[1], bytes[2], bytes[3]],
    }
}

/// `bv-<8 hex>`: the host end of the container's veth pair.
pub fn veth_name(scope: &str, container_id: &str) -> String {
    format!(
        "{VETH_PREFIX}{}",
        short_hash(scope, "container", container_id)
    )
}

/// Network names: what an app id or a user may reasonably choose, and safe
/// as a file name.
pub fn valid_network_name(name: &str) -> bool {
    valid_id(name, 128)
}

/// Container ids as the runtime accepts them (and safe as a file name).
pub fn valid_container_id(id: &str) -> bool {
    valid_id(id, 1024)
}

fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_interface_names_and_are_stable() {
        let n = network_names("/run/berth", "nextcloud-with-a-very-long-app-name");
        assert!(n.bridge.len() <= IFNAME_MAX, "{}", n.bridge);
        assert!(n.bridge.starts_with("bn-") && n.bridge.len() == 11);
        assert!(n.table.starts_with("berth-net-"));
        assert_eq!(&n.bridge[3..], &n.table[10..], "one hash for both");
        assert_eq!(
            n,
            network_names("/run/berth", "nextcloud-with-a-very-long-app-name")
        );
        let v = veth_name("/run/berth", &"f".repeat(64));
        assert!(v.len() <= IFNAME_MAX && v.starts_with("bv-"), "{v}");
        assert_eq!(v, veth_name("/run/berth", &"f".repeat(64)));
        assert!(CONTAINER_IFNAME.len() <= IFNAME_MAX);
    }

    #[test]
    fn names_differ_by_name_kind_and_scope() {
        let a = network_names("/run/berth", "web");
        assert_ne!(a.bridge, network_names("/run/berth", "db").bridge);
        assert_ne!(a.bridge, network_names("/tmp/other-root", "web").bridge);
        // A container named like a network does not get the network's hash.
        assert_ne!(&a.bridge[3..], &veth_name("/run/berth", "web")[3..]);
        // The scope and name are separated: ("a", "bc") is not ("ab", "c").
        assert_ne!(
            network_names("a", "bc").bridge,
            network_names("ab", "c").bridge
        );
    }

    #[test]
    fn bridge_mac_is_locally_administered_unicast() {
        let mac = network_names("/run/berth", "web").bridge_mac;
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
    }

    #[test]
    fn name_validation() {
        assert!(valid_network_name("nextcloud"));
        assert!(valid_network_name("org.example.App_2-x"));
        assert!(!valid_network_name(""));
        assert!(!valid_network_name(".hidden"));
        assert!(!valid_network_name("a/b"));
        assert!(!valid_network_name("a b"));
        assert!(!valid_network_name(&"a".repeat(129)));
        assert!(valid_container_id(&"0123abcd".repeat(8)));
        assert!(!valid_container_id("../x"));
    }
}
