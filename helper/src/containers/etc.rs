//! The per-container /etc files: `hosts` (with the names of the other
//! containers of an app, [`Containers::set_hosts`]) and, for a container in
//! a prepared network namespace, `resolv.conf`.
//!
//! They live in `<root>/containers/<id>/` and are bind-mounted over the
//! image's /etc files when the container starts. A running container holds
//! the mount of the file's inode, so they are rewritten in place (truncate,
//! write, fsync), never replaced by a rename.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use super::create::hostname_of;
use super::{io_err, Containers, Error, Result};

/// Docker's fallback when the host has no name server a container can
/// reach (only loopback ones, or none).
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Where systemd-resolved keeps the upstream servers when /etc/resolv.conf
/// points at its stub (127.0.0.53).
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// One writer of the /etc files at a time (two `set_hosts` must not
/// interleave their writes into one file).
static WRITING: Mutex<()> = Mutex::new(());

impl Containers {
    /// Rewrite container `key`'s /etc/hosts: the usual localhost lines, the
    /// container's own hostname line, then one line per entry
    /// (`10.89.0.3\tapi db`). The hostname line has the address of the
    /// entry that names the container (its hostname, name or id), as Docker
    /// writes `<ip>\t<hostname>`; without one it is `127.0.1.1`.
    ///
    /// Works in any state; a running container sees the new file at once
    /// (it is rewritten in place, the container holds a bind mount of it).
    pub fn set_hosts(&self, key: &str, entries: &[(Ipv4Addr, Vec<String>)]) -> Result<()> {
        let c = self.find(key)?;
        for (ip, names) in entries {
            if names.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "the hosts entry for {ip} has no names"
                )));
            }
            for n in names {
                check_host_name(n)?;
            }
        }
        let hostname = hostname_of(&c);
        let own = entries
            .iter()
            .find(|(_, names)| {
                names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&hostname) || *n == c.name || *n == c.id)
            })
            .map(|(ip, _)| *ip);
        let text = hosts_text(&hostname, own, entries);
        rewrite_in_place(&self.dir(&c.id).join("hosts"), text.as_bytes(), c.userns)
    }
}

/// A name for /etc/hosts: a host name (letters, digits, `-`, `_`, `.`),
/// nothing that could start another field or line.
fn check_host_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 253
        && !n.starts_with(['-', '.'])
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "`{n}` is not a valid host name for /etc/hosts: use letters, digits, `-`, `_` and `.`"
        )))
    }
}

/// The text of a container's /etc/hosts: Docker's localhost lines, the
/// container's own line (`own` or 127.0.1.1), then `entries`.
pub(super) fn hosts_text(
    hostname: &str,
    own: Option<Ipv4Addr>,
    entries: &[(Ipv4Addr, Vec<String>)],
) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let own = own.unwrap_or(Ipv4Addr::new(127, 0, 1, 1));
    s.push_str(&format!("{own}\t{hostname}\n"));
    for (ip, names) in entries {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    s
}

/// The resolv.conf of a container in a prepared network namespace, from
/// the host's (see [`resolv_for_netns_from`]).
pub(super) fn resolv_for_netns() -> String {
    // Unreadable: loopback is still known to be the host's.
    let own = crate::network::host_addresses().unwrap_or_default();
    resolv_for_netns_from(
        Path::new("/etc/resolv.conf"),
        Path::new(RESOLVED_UPSTREAM),
        &|ip| own.contains(&ip),
    )
}

/// Can a container on an app network ask name server `ip`? Not one of
/// the host's own addresses: loopback is the host's and not the
/// namespace's, and the app network's firewall lets nothing from an app
/// reach the host's own services, DNS included (issue 11). Not over IPv6:
/// app networks are IPv4 only. `is_host` says whether an address is the
/// host's.
fn usable(ip: IpAddr, is_host: &dyn Fn(Ipv4Addr) -> bool) -> bool {
    match ip {
        IpAddr::V4(ip) => !ip.is_loopback() && !ip.is_unspecified() && !is_host(ip),
        IpAddr::V6(_) => false,
    }
}

/// The host's resolv.conf at `etc` without the name servers a container
/// cannot use ([`usable`]); the `search`, `options` and other lines are
/// kept. When the host's file has no usable server and `upstream`
/// (systemd-resolved's list of the servers its stub forwards to) has one,
/// that file is used instead, as Docker does. With no server left:
/// Google's, Docker's fallback.
pub(super) fn resolv_for_netns_from(
    etc: &Path,
    upstream: &Path,
    is_host: &dyn Fn(Ipv4Addr) -> bool,
) -> String {
    let host = std::fs::read_to_string(etc).unwrap_or_default();
    let any_usable = |text: &str| {
        text.lines()
            .filter_map(nameserver)
            .any(|a| usable(a, is_host))
    };
    let text = match any_usable(&host) {
        true => host,
        false => std::fs::read_to_string(upstream)
            .ok()
            .filter(|t| any_usable(t))
            .unwrap_or(host),
    };
    filter_resolv(&text, is_host)
}

/// `text` without the `nameserver` lines a container cannot use
/// ([`usable`]), with the fallback servers if none is left.
pub(super) fn filter_resolv(text: &str, is_host: &dyn Fn(Ipv4Addr) -> bool) -> String {
    let mut out = String::new();
    let mut kept = 0;
    for line in text.lines() {
        if let Some(addr) = nameserver(line) {
            if !usable(addr, is_host) {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if kept == 0 {
        for s in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    out
}

/// The address of a `nameserver` line (an IPv6 zone, `%eth0`, dropped).
fn nameserver(line: &str) -> Option<IpAddr> {
    let mut words = line.split_whitespace();
    if words.next()? != "nameserver" {
        return None;
    }
    let addr = words.next()?;
    addr.split('%').next()?.parse().ok()
}

/// Replace the contents of the per-container file `path` keeping its inode
/// (a running container has it bind-mounted): open without following a
/// symlink, truncate, write, fsync. A missing file is made (0644, owned by
/// the container's root for `--userns=auto`).
pub(super) fn rewrite_in_place(path: &Path, text: &[u8], userns: Option<(u32, u32)>) -> Result<()> {
    let _one_writer = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    let what = || format!("rewriting {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_err(what()))?;
    let md = f.metadata().map_err(io_err(what()))?;
    if !md.is_file() {
        return Err(Error::Runtime(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    // The container's users read it; berthd's umask would have made a new
    // one 0600. Its directory keeps others out.
    if md.permissions().mode() & 0o7777 != 0o644 {
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(what()))?;
    }
    if let Some((start, _)) = userns {
        std::os::unix::fs::fchown(&f, Some(start), Some(start)).map_err(io_err(what()))?;
    }
    f.write_all(text).map_err(io_err(what()))?;
    f.sync_all().map_err(io_err(what()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn hosts_has_localhost_own_line_and_entries() {
        let entries = vec![
            (Ipv4Addr::new(10, 89, 0, 2), vec!["web".to_string()]),
            (
                Ipv4Addr::new(10, 89, 0, 3),
                vec!["api".to_string(), "backend".to_string()],
            ),
        ];
        let t = hosts_text("shop-web", None, &entries);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[1], "::1\tlocalhost ip6-localhost ip6-loopback");
        assert_eq!(lines[6], "127.0.1.1\tshop-web");
        assert_eq!(lines[7], "10.89.0.2\tweb");
        assert_eq!(lines[8], "10.89.0.3\tapi backend");
        assert_eq!(lines.len(), 9);
        let t = hosts_text("shop-web", Some(Ipv4Addr::new(10, 89, 0, 2)), &entries);
        assert!(t.contains("\n10.89.0.2\tshop-web\n"), "{t}");
        assert!(!t.contains("127.0.1.1"), "{t}");
    }

    #[test]
    fn host_names_cannot_inject_lines() {
        assert!(check_host_name("db").is_ok());
        assert!(check_host_name("my_app-db.1").is_ok());
        for bad in ["", "a b", "a\nb", "a\tb", "#x", "-x", ".x", "a/b"] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
    }

    /// As if the host's own addresses were 192.168.1.20 and 10.0.0.9.
    fn host(ip: Ipv4Addr) -> bool {
        ip.is_loopback() || ip == Ipv4Addr::new(192, 168, 1, 20) || ip == Ipv4Addr::new(10, 0, 0, 9)
    }

    #[test]
    fn resolv_drops_the_hosts_own_and_ipv6_servers_and_keeps_the_rest() {
        let t = filter_resolv(
            "# from DHCP\nsearch lan example.com\nnameserver 127.0.0.53\nnameserver 192.168.1.1\n\
             nameserver 192.168.1.20\nnameserver ::1\nnameserver fe80::1%eth0\n\
             nameserver 2001:db8::53\noptions edns0 trust-ad\n",
            &host,
        );
        assert_eq!(
            t,
            "# from DHCP\nsearch lan example.com\nnameserver 192.168.1.1\n\
             options edns0 trust-ad\n"
        );
    }

    #[test]
    fn resolv_falls_back_to_googles_servers() {
        let t = filter_resolv(
            "search lan\nnameserver 127.0.0.1\nnameserver 127.1.2.3\nnameserver 10.0.0.9\n\
             options ndots:2\n",
            &host,
        );
        assert_eq!(
            t,
            "search lan\noptions ndots:2\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            filter_resolv("", &host),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn resolv_behind_systemd_resolved_uses_its_upstream_servers() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("resolv.conf");
        let upstream = dir.path().join("upstream.conf");
        std::fs::write(&etc, "nameserver 127.0.0.53\noptions edns0\nsearch lan\n").unwrap();
        // No upstream file: the fallback.
        let t = resolv_for_netns_from(&etc, &upstream, &host);
        assert_eq!(
            t,
            "options edns0\nsearch lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        std::fs::write(&upstream, "nameserver 10.0.0.1\nsearch corp\n").unwrap();
        assert_eq!(
            resolv_for_netns_from(&etc, &upstream, &host),
            "nameserver 10.0.0.1\nsearch corp\n"
        );
        // A server on the host's own LAN address counts as the host's.
        std::fs::write(&etc, "nameserver 192.168.1.20\n").unwrap();
        assert_eq!(
            resolv_for_netns_from(&etc, &upstream, &host),
            "nameserver 10.0.0.1\nsearch corp\n"
        );
        // A host file with a real server is used as it is.
        std::fs::write(&etc, "nameserver 127.0.0.1\nnameserver 1.1.1.1\n").unwrap();
        assert_eq!(
            resolv_for_netns_from(&etc, &upstream, &host),
            "nameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn rewriting_keeps_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        std::fs::write(&p, "a much longer old text than the new one\n").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        // A second link stands for the container's bind mount of the inode.
        let seen = dir.path().join("seen");
        std::fs::hard_link(&p, &seen).unwrap();
        rewrite_in_place(&p, b"new\n", None).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "new\n");
        // Never through a symlink.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(rewrite_in_place(&link, b"x", None).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
    }
}
