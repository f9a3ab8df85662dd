//! Published ports: what is asked for, what was given, how a taken port is
//! stepped over, and the sockets that hold the ports given.
//!
//! The choice is pure ([`pick_port`]) given what Berth has published
//! already and a way to take a port from the kernel ([`hold`]). Taking it
//! *is* the check that it is free: the socket bound there is kept
//! ([`Holds`]) for as long as the port's DNAT rule exists, so there is no
//! gap between "it was free" and "it is ours" for a host program to fall
//! into, and a host program started later fails to bind the port
//! (EADDRINUSE) instead of having its connections silently redirected to
//! the app, as `docker-proxy` does for Docker. The DNAT happens before
//! a packet could reach the socket, so it never accepts anything.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

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
/// clashes with and that `take` gets from the host (a [`Hold`]); the port
/// and what `take` gave for it.
pub fn pick_port<T>(
    protocol: Protocol,
    host_ip: Ipv4Addr,
    start: u16,
    published: &[Mapping],
    mut take: impl FnMut(Protocol, Ipv4Addr, u16) -> Option<T>,
) -> Option<(u16, T)> {
    (start.max(1)..=u16::MAX).find_map(|port| {
        if published.iter().any(|m| m.clashes(protocol, host_ip, port)) {
            return None;
        }
        take(protocol, host_ip, port).map(|t| (port, t))
    })
}

/// A socket bound on a published host port, and for TCP listening there.
/// Dropping it lets the port go.
#[derive(Debug)]
pub enum Hold {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Takes `ip:port` for `protocol` on the host, if it is free (see the
/// module comment). TCP: bound with `SO_REUSEADDR`, so connections in
/// TIME_WAIT (which a forwarded port never sees) do not count, and
/// listening, because a listening socket is what makes a later bind fail
/// even with `SO_REUSEADDR` (only `SO_REUSEPORT` from the same uid shares
/// it, and this one does not set it). Any listener already there (on `ip`,
/// on 0.0.0.0 or on a dual-stack `[::]`) makes it fail. UDP: bound,
/// without `SO_REUSEADDR`. Either way close-on-exec (the standard library
/// makes every socket so), so no shim or container inherits it.
pub fn hold(protocol: Protocol, ip: Ipv4Addr, port: u16) -> io::Result<Hold> {
    match protocol {
        Protocol::Tcp => TcpListener::bind((ip, port)).map(Hold::Tcp),
        Protocol::Udp => UdpSocket::bind((ip, port)).map(Hold::Udp),
    }
}

/// The published ports this berthd holds ([`hold`]), each with the table
/// whose DNAT rule it stands behind. Shared by every clone of
/// [`crate::network::Networks`].
#[derive(Debug, Default)]
pub struct Holds {
    held: BTreeMap<(Protocol, Ipv4Addr, u16), (String, Hold)>,
}

impl Holds {
    fn key(m: &Mapping) -> (Protocol, Ipv4Addr, u16) {
        (m.protocol, m.host_ip, m.host_port)
    }

    pub fn is_held(&self, m: &Mapping) -> bool {
        self.held.contains_key(&Self::key(m))
    }

    /// Keeps `hold` for `m`, a mapping of `table`.
    pub fn keep(&mut self, table: &str, m: &Mapping, hold: Hold) {
        self.held.insert(Self::key(m), (table.to_string(), hold));
    }

    /// Holds `m`'s port if it is not held yet.
    pub fn ensure(&mut self, table: &str, m: &Mapping) -> io::Result<()> {
        if !self.is_held(m) {
            let h = hold(m.protocol, m.host_ip, m.host_port)?;
            self.keep(table, m, h);
        }
        Ok(())
    }

    /// Lets `m`'s port go.
    pub fn release(&mut self, m: &Mapping) {
        self.held.remove(&Self::key(m));
    }

    /// Lets go every port held for `table` that `keep` does not want.
    pub fn release_table(&mut self, table: &str, mut keep: impl FnMut(&Mapping) -> bool) {
        self.held.retain(|&(protocol, host_ip, host_port), (t, _)| {
            t != table
                || keep(&Mapping {
                    protocol,
                    host_ip,
                    host_port,
                    container_ip: Ipv4Addr::UNSPECIFIED,
                    container_port: 0,
                })
        });
    }
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
        let p = pick_port(Protocol::Tcp, LO, 8080, &[], |_, _, _| Some(()));
        assert_eq!(p, Some((8080, ())));
    }

    #[test]
    fn taken_ports_are_stepped_over() {
        // 8080 published by Berth, 8081 held by some host program.
        let published = [m(Protocol::Tcp, LO, 8080), m(Protocol::Udp, LO, 8082)];
        let mut asked = Vec::new();
        let p = pick_port(Protocol::Tcp, LO, 8080, &published, |proto, ip, port| {
            asked.push((proto, ip, port));
            (port != 8081).then_some(port * 2)
        });
        assert_eq!(
            p,
            Some((8082, 16164)),
            "udp 8082 does not block tcp 8082; what take gave comes back"
        );
        assert_eq!(
            asked,
            [(Protocol::Tcp, LO, 8081), (Protocol::Tcp, LO, 8082)],
            "the kernel is not asked about ports Berth already holds"
        );
        // A wildcard request is blocked by a 127.0.0.1 mapping.
        let p = pick_port(Protocol::Tcp, ANY, 8080, &published, |_, _, _| Some(()));
        assert_eq!(p.map(|p| p.0), Some(8081));
    }

    #[test]
    fn the_top_of_the_range_runs_out() {
        let any = |_, _, _| Some(());
        assert_eq!(
            pick_port(Protocol::Tcp, LO, 65534, &[], |_, _, p| (p < 65534)
                .then_some(())),
            None
        );
        assert_eq!(
            pick_port(Protocol::Tcp, LO, 65535, &[], any),
            Some((65535, ()))
        );
        assert_eq!(pick_port(Protocol::Tcp, LO, 0, &[], any), Some((1, ())));
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

    /// A port on 127.0.0.1 that was free a moment ago.
    fn free_port(protocol: Protocol) -> u16 {
        let addr = match protocol {
            Protocol::Tcp => TcpListener::bind("127.0.0.1:0").unwrap().local_addr(),
            Protocol::Udp => UdpSocket::bind("127.0.0.1:0").unwrap().local_addr(),
        };
        addr.unwrap().port()
    }

    fn in_use(r: io::Result<impl Sized>) -> bool {
        matches!(r, Err(e) if e.kind() == io::ErrorKind::AddrInUse)
    }

    #[test]
    fn a_port_with_a_listener_cannot_be_held() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(in_use(hold(Protocol::Tcp, LO, port)));
        assert!(in_use(hold(Protocol::Tcp, ANY, port)));
        drop(l);
        assert!(hold(Protocol::Tcp, LO, port).is_ok());
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        assert!(in_use(hold(Protocol::Udp, LO, port)));
    }

    /// A later host program (SO_REUSEADDR, as most servers set it) cannot
    /// bind a held port, on its address or on 0.0.0.0, until it is let go.
    #[test]
    fn a_held_port_cannot_be_bound_until_released() {
        let mut holds = Holds::default();
        let port = free_port(Protocol::Tcp);
        let tcp = m(Protocol::Tcp, LO, port);
        holds.ensure("t1", &tcp).unwrap();
        assert!(holds.is_held(&tcp));
        holds.ensure("t1", &tcp).unwrap();
        // std binds listeners with SO_REUSEADDR.
        assert!(in_use(TcpListener::bind((LO, port))));
        let any = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        rustix::net::sockopt::set_socket_reuseaddr(&any, true).unwrap();
        let bound = rustix::net::bind(&any, &std::net::SocketAddrV4::new(ANY, port));
        assert_eq!(bound, Err(rustix::io::Errno::ADDRINUSE));

        let udp_port = free_port(Protocol::Udp);
        let udp = m(Protocol::Udp, LO, udp_port);
        holds.ensure("t2", &udp).unwrap();
        assert!(in_use(UdpSocket::bind((LO, udp_port))));
        assert_eq!(holds.held.len(), 2);

        // Close-on-exec: no child process inherits it.
        let Hold::Tcp(l) = &holds.held[&Holds::key(&tcp)].1 else {
            panic!("a TCP hold")
        };
        let flags = rustix::io::fcntl_getfd(l).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));

        // Let go by table: what the table still maps stays held.
        holds.release_table("t1", |_| true);
        assert!(holds.is_held(&tcp));
        holds.release_table("t1", |_| false);
        assert!(!holds.is_held(&tcp) && holds.is_held(&udp));
        assert!(TcpListener::bind((LO, port)).is_ok());
        holds.release(&udp);
        assert!(UdpSocket::bind((LO, udp_port)).is_ok());
        assert!(holds.held.is_empty());
    }
}
