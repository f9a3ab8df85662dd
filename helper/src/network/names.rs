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
//!
//! A name cannot be traced back to its berthd, so the objects also carry a
//! [`Tag`]: the bridge and the host end of a veth pair as their interface
//! alias (`IFLA_IFALIAS`, what `ip link` shows as `alias`), the nftables
//! table as its comment. A tag names the berthd by a hash of its run root
//! ([`scope_hash`]) and what the object is for:
//!
//! ```text
//! berth:<scope hash>:net:<network>                  bridge, table
//! berth:<scope hash>:ep:<network>:<container id>    host end of a veth pair
//! ```
//!
//! Neither network names nor container ids contain `:`. A tag longer than
//! the object allows (255 bytes for an alias, 128 for an nftables comment)
//! has its last field cut and ends with `+`, which no name contains.

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

/// Every tag starts with this.
pub const TAG_PREFIX: &str = "berth:";
/// The longest interface alias Linux accepts (`IFALIASZ` − 1).
pub const IFALIAS_MAX: usize = 255;
/// The longest comment nft accepts.
pub const NFT_COMMENT_MAX: usize = 128;
/// Ends a tag whose last field was cut to fit.
const CUT: char = '+';

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

/// 8 hex digits naming a berthd by its run root, in tags.
pub fn scope_hash(scope: &str) -> String {
    short_hash(scope, "scope", "")
}

/// What an object of a network was made for, as its alias or comment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// [`scope_hash`] of the berthd that made it.
    pub scope: String,
    pub network: String,
    /// The container, for an endpoint's veth.
    pub container: Option<String>,
    /// The last field (the container, else the network) was cut to fit
    /// and is only its beginning.
    pub cut: bool,
}

impl Tag {
    /// The tag of a network's bridge and table.
    pub fn network(scope: &str, network: &str) -> Tag {
        Tag {
            scope: scope_hash(scope),
            network: network.into(),
            container: None,
            cut: false,
        }
    }

    /// The tag of the host end of a container's veth pair.
    pub fn endpoint(scope: &str, network: &str, container: &str) -> Tag {
        Tag {
            container: Some(container.into()),
            ..Tag::network(scope, network)
        }
    }

    /// The tag as text of at most `max` bytes (its last field cut if need
    /// be; `max` must leave room for everything else).
    pub fn render(&self, max: usize) -> String {
        let (head, last) = match &self.container {
            None => (
                format!("{TAG_PREFIX}{}:net:", self.scope),
                self.network.as_str(),
            ),
            Some(c) => (
                format!("{TAG_PREFIX}{}:ep:{}:", self.scope, self.network),
                c.as_str(),
            ),
        };
        let mut s = head;
        if s.len() + last.len() <= max && !self.cut {
            s.push_str(last);
        } else {
            // Names are ASCII: any byte boundary is a char boundary.
            let room = max.saturating_sub(s.len() + 1).min(last.len());
            s.push_str(&last[..room]);
            s.push(CUT);
        }
        s
    }

    /// Reads a tag; None for any other text.
    pub fn parse(s: &str) -> Option<Tag> {
        let rest = s.strip_prefix(TAG_PREFIX)?;
        let (rest, cut) = match rest.strip_suffix(CUT) {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let scope = parts[0];
        if scope.len() != 8 || !scope.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (network, container) = match parts[1..] {
            ["net", n] => (n, None),
            ["ep", n, c] => (n, Some(c)),
            _ => return None,
        };
        let ok = |v: &str, last: bool| valid_id(v, usize::MAX) || (cut && last && v.is_empty());
        if !ok(network, container.is_none()) || !container.is_none_or(|c| ok(c, true)) {
            return None;
        }
        Some(Tag {
            scope: scope.into(),
            network: network.into(),
            container: container.map(Into::into),
            cut,
        })
    }

    /// Is this the tag of network `name` (of any berthd)? A cut name
    /// matches every name it begins.
    pub fn is_of_network(&self, name: &str) -> bool {
        if self.cut && self.container.is_none() {
            name.starts_with(&self.network)
        } else {
            self.network == name
        }
    }

    /// The container, if the tag holds its whole id.
    pub fn whole_container(&self) -> Option<&str> {
        self.container.as_deref().filter(|_| !self.cut)
    }
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
    fn tags_round_trip_and_name_their_berthd() {
        let t = Tag::network("/run/berth", "hello");
        let text = t.render(NFT_COMMENT_MAX);
        assert_eq!(
            text,
            format!("berth:{}:net:hello", scope_hash("/run/berth"))
        );
        assert_eq!(Tag::parse(&text), Some(t.clone()));
        assert!(t.is_of_network("hello") && !t.is_of_network("hello2"));
        assert_ne!(scope_hash("/run/berth"), scope_hash("/tmp/other-root"));
        assert_eq!(scope_hash("/run/berth").len(), 8);

        let id = "0123abcd".repeat(8);
        let e = Tag::endpoint("/run/berth", "hello", &id);
        let text = e.render(IFALIAS_MAX);
        assert_eq!(
            text,
            format!("berth:{}:ep:hello:{id}", scope_hash("/run/berth"))
        );
        let back = Tag::parse(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.whole_container(), Some(id.as_str()));
    }

    #[test]
    fn long_tags_are_cut_to_fit_and_say_so() {
        // The longest network name does not fit an nftables comment.
        let long = "n".repeat(128);
        let t = Tag::network("/run/berth", &long).render(NFT_COMMENT_MAX);
        assert_eq!(t.len(), NFT_COMMENT_MAX);
        assert!(t.ends_with('+'));
        let back = Tag::parse(&t).unwrap();
        assert!(back.cut);
        assert!(back.is_of_network(&long));
        assert!(!back.is_of_network("other"));
        // It fits an alias, even with a 64-hex id; a 1024-byte id is cut.
        let id = "f".repeat(64);
        let t = Tag::endpoint("/run/berth", &long, &id).render(IFALIAS_MAX);
        assert!(t.len() <= IFALIAS_MAX && !t.ends_with('+'), "{t}");
        let id = "f".repeat(1024);
        let t = Tag::endpoint("/run/berth", &long, &id).render(IFALIAS_MAX);
        assert_eq!(t.len(), IFALIAS_MAX);
        let back = Tag::parse(&t).unwrap();
        assert_eq!(back.network, long, "the network is never cut");
        assert_eq!(back.whole_container(), None);
        assert!(id.starts_with(back.container.as_deref().unwrap()));
    }

    #[test]
    fn other_text_is_not_a_tag() {
        for s in [
            "",
            "eth0 uplink",
            "berth:",
            "berth:xyz:net:web",
            "berth:0123abcd:net:",
            "berth:0123abcd:net:a:b",
            "berth:0123abcd:ep:web",
            "berth:0123abcd:foo:web",
            "berth:0123abcd:net:a b",
            "berth:0123abcd:net:.hidden",
        ] {
            assert_eq!(Tag::parse(s), None, "{s:?}");
        }
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
