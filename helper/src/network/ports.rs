//! Published ports: what is asked for, what was given, and how a taken port
//! is stepped over. The choice is pure ([`pick_port`]) given what Berth has
//! published already and a probe that asks the kernel ([`bindable`]).

use std::fmt;
use std::net::Ipv4Addr;

use rustix::net::{AddressFamily, SocketType};

/// A transport protocol a port is published for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "Make the container's `container_port` reachable on the host at
/// `host_ip:host_port`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRequest {
    /// 127.0.0.1 unless the user asked for the port to be reachable from
    /// other machines (0.0.0.0: every address of the host) or named one of
    /// the host's addresses.
    pub host_ip: Ipv4Addr,
    /// The port wanted; if it is taken, the next free one above it is
    /// given. 0: any free port (from the kernel's ephemeral range).
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortRequest {
    /// `host_port` → `container_port` on 127.0.0.1, the safe default.
    pub fn local(host_port: u16, container_port: u16, protocol: Protocol) -> PortRequest {
        PortRequest {
            host_ip: Ipv4Addr::LOCALHOST,
            host_port,
            container_port,
            protocol,
        }
    }
}

/// One port mapping as it stands in the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mapping {
    pub protocol: Protocol,
    /// 0.0.0.0 for every address of the host.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

impl Mapping {
    /// Would this mapping and one for `ip:port` catch the same packets?
    pub fn clashes(&self, protocol: Protocol, ip: Ipv4Addr, port: u16) -> bool {
        self.protocol == protocol
            && self.host_port == port
            && (self.host_ip == ip || self.host_ip.is_unspecified() || ip.is_unspecified())
    }
}

/// What [`crate::network::Networks::publish`] gave for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub protocol: Protocol,
    pub host_ip: Ipv4Addr,
    /// The port given, which is not `requested_host_port` when that was
    /// taken (see [`PublishedPort::moved`]).
    pub host_port: u16,
    pub requested_host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

impl PublishedPort {
    /// Was a port asked for and another one given (because it was taken)?
    pub fn moved(&self) -> bool {
        self.requested_host_port != 0 && self.requested_host_port != self.host_port
    }

    pub fn mapping(&self) -> Mapping {
        Mapping {
            protocol: self.protocol,
            host_ip: self.host_ip,
            host_port: self.host_port,
            container_ip: self.container_ip,
            container_port: self.container_port,
        }
    }
}

/// `127.0.0.1:8081 -> 10.89.0.2:80/tcp (8080 is in use)`: what to tell the
/// user.
impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} -> {}:{}/{}",
            self.host_ip, self.host_port, self.container_ip, self.container_port, self.protocol
        )?;
        if self.moved() {
            write!(f, " ({} is in use)", self.requested_host_port)?;
        }
        Ok(())
    }
}

/// The first port from `start` up to 65535 that no mapping in `published`
/// clashes with and that `bindable` says is free on the host.
pub fn pick_port(
    protocol: Protocol,
    host_ip: Ipv4Addr,
    start: u16,
    published: &[Mapping],
    mut bindable: impl FnMut(Protocol, Ipv4Addr, u16) -> bool,
) -> Option<u16> {
    (start.max(1)..=u16::MAX).find(|&port| {
        !published.iter().any(|m| m.clashes(protocol, host_ip, port))
            && bindable(protocol, host_ip, port)
    })
}

/// Is `ip:port` free on the host for `protocol`? Binds a socket there and
/// lets it go. For TCP with `SO_REUSEADDR`, so connections in TIME_WAIT
/// (which a forwarded port never sees) do not count, while any listener on
/// the port (on `ip`, on 0.0.0.0 or on a dual-stack `[::]`) does.
pub fn bindable(protocol: Protocol, ip: Ipv4Addr, port: u16) -> bool {
    let kind = match protocol {
        Protocol::Tcp => SocketType::STREAM,
        Protocol::Udp => SocketType::DGRAM,
    };
    let Ok(socket) = rustix::net::socket(AddressFamily::INET, kind, None) else {
        return false;
    };
    if protocol == Protocol::Tcp
        && rustix::net::sockopt::set_socket_reuseaddr(&socket, true).is_err()
    {
        return false;
    }
    let addr = std::net::SocketAddrV4::new(ip, port);
    rustix::net::bind(&socket, &addr).is_ok()
}

/// Is `ip` an address of this host (can a socket be bound to it)?
pub fn is_host_address(ip: Ipv4Addr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Where "any free port" starts: the kernel's ephemeral range, as Docker
/// picks random host ports.
pub fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    fn m(protocol: Protocol, host_ip: Ipv4Addr, host_port: u16) -> Mapping {
        Mapping {
            protocol,
            host_ip,
            host_port,
            container_ip: Ipv4Addr::new(10, 89, 0, 2),
            container_port: 80,
        }
    }

    #[test]
    fn clashes_by_protocol_port_and_address() {
        let a = m(Protocol::Tcp, LO, 8080);
        assert!(a.clashes(Protocol::Tcp, LO, 8080));
        assert!(!a.clashes(Protocol::Udp, LO, 8080));
        assert!(!a.clashes(Protocol::Tcp, LO, 8081));
        assert!(!a.clashes(Protocol::Tcp, Ipv4Addr::new(192, 0, 2, 2), 8080));
        assert!(
            a.clashes(Protocol::Tcp, ANY, 8080),
            "0.0.0.0 covers 127.0.0.1"
        );
        assert!(m(Protocol::Tcp, ANY, 8080).clashes(Protocol::Tcp, LO, 8080));
    }

    #[test]
    fn a_free_port_is_kept() {
        let p = pick_port(Protocol::Tcp, LO, 8080, &[], |_, _, _| true);
        assert_eq!(p, Some(8080));
    }

    #[test]
    fn taken_ports_are_stepped_over() {
        // 8080 published by Berth, 8081 held by some host program.
        let published = [m(Protocol::Tcp, LO, 8080), m(Protocol::Udp, LO, 8082)];
        let mut asked = Vec::new();
        let p = pick_port(Protocol::Tcp, LO, 8080, &published, |proto, ip, port| {
            asked.push((proto, ip, port));
            port != 8081
        });
        assert_eq!(p, Some(8082), "udp 8082 does not block tcp 8082");
        assert_eq!(
            asked,
            [(Protocol::Tcp, LO, 8081), (Protocol::Tcp, LO, 8082)],
            "the kernel is not asked about ports Berth already holds"
        );
        // A wildcard request is blocked by a 127.0.0.1 mapping.
        let p = pick_port(Protocol::Tcp, ANY, 8080, &published, |_, _, _| true);
        assert_eq!(p, Some(8081));
    }

    #[test]
    fn the_top_of_the_range_runs_out() {
        assert_eq!(
            pick_port(Protocol::Tcp, LO, 65534, &[], |_, _, p| p < 65534),
            None
        );
        assert_eq!(
            pick_port(Protocol::Tcp, LO, 65535, &[], |_, _, _| true),
            Some(65535)
        );
        assert_eq!(
            pick_port(Protocol::Tcp, LO, 0, &[], |_, _, _| true),
            Some(1)
        );
    }

    #[test]
    fn published_port_says_when_it_moved() {
        let mut p = PublishedPort {
            protocol: Protocol::Tcp,
            host_ip: LO,
            host_port: 8081,
            requested_host_port: 8080,
            container_ip: Ipv4Addr::new(10, 89, 0, 2),
            container_port: 80,
        };
        assert!(p.moved());
        assert_eq!(
            p.to_string(),
            "127.0.0.1:8081 -> 10.89.0.2:80/tcp (8080 is in use)"
        );
        p.requested_host_port = 8081;
        assert!(!p.moved());
        p.requested_host_port = 0;
        assert!(!p.moved(), "any port was asked for");
        assert_eq!(p.to_string(), "127.0.0.1:8081 -> 10.89.0.2:80/tcp");
    }

    #[test]
    fn bindable_sees_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!bindable(Protocol::Tcp, LO, port));
        assert!(!bindable(Protocol::Tcp, ANY, port));
        drop(l);
        assert!(bindable(Protocol::Tcp, LO, port));
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        assert!(!bindable(Protocol::Udp, LO, port));
    }
}
