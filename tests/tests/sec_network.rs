//! What an app can reach, and what its published ports do to the host
//! (issue 11), through `berth` on a real berthd as root with real networks
//! (bridges, veth, nftables), on the demo catalog's busybox-static images:
//!
//! * an app reaches neither a host listener on its bridge's gateway
//!   address nor one on another address of the host (TCP and UDP), while
//!   its own page still answers from the host and its services still reach
//!   each other; IPv6 is off on its bridge, veths and container interfaces;
//!   its containers lack `CAP_NET_RAW`, and may open ICMP echo sockets;
//! * an app container whose Compose file sets no `pids_limit` gets the
//!   default;
//! * a Compose port on 0.0.0.0, or on a host port below 1024, is refused at
//!   install naming the flag that allows it, and leaves nothing; with the
//!   flag it installs;
//! * a published port is held by berthd: a host program started later
//!   (root with `SO_REUSEADDR` or `SO_REUSEPORT`, or `nobody`) cannot bind
//!   it, also after the app stopped and after berthd restarted; after
//!   uninstall it is free again.
//!
//! Host listeners bind the specific addresses an app could try (the
//! gateway, another address of the host), never 0.0.0.0: the firewall
//! decides by the packet's destination before any socket is looked up, so
//! a listener on 0.0.0.0 would be reached (or not) exactly as these are.
//!
//! Every test has a [`DemoEnv`] of its own: when it drops, also after a
//! failure, every app is uninstalled and the network objects of its berthd
//! are deleted. Listeners the tests open are closed when they drop.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_testkit::snapshot::{network_object_names, veth_name, Scope};
use berth_testkit::{free_port, http, require, CliOutput, DemoEnv};
use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";

/// `CAP_NET_RAW`'s bit in `CapEff`.
const CAP_NET_RAW: u32 = 13;

/// Berth's default `pids_limit` for app containers.
const DEFAULT_PIDS_LIMIT: &str = "2048";

/// A test's own bus and berthd with the demo catalog, or `None` when a
/// prerequisite is missing (run by hand; under `scripts/test.sh` that
/// fails).
fn start() -> Option<DemoEnv> {
    if !require::root("the network security tests")
        || !require::tool(BUSYBOX, "busybox-static")
        || !require::tool("/usr/sbin/nft", "nftables")
        || !require::tool("/usr/sbin/ip", "iproute2")
    {
        return None;
    }
    Some(DemoEnv::shared().expect("a berthd with the demo catalog"))
}

/// `berth exec CONTAINER ARGS…`.
fn exec(env: &DemoEnv, container: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["exec", container];
    all.extend_from_slice(args);
    env.run(&all)
}

/// `(container name, container id, address)` of `service` in `berth
/// inspect-app` output.
fn service(app: &Value, name: &str) -> (String, String, String) {
    let s = app["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {app}"));
    let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
    (
        field("container_name"),
        field("container_id"),
        field("address"),
    )
}

/// `(host address, host port)` published for `service` (its first port).
fn published(app: &Value, service: &str) -> (Ipv4Addr, u16) {
    let p = app["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["service"] == service)
        .unwrap_or_else(|| panic!("no port of {service} in {app}"));
    (
        p["host_ip"].as_str().unwrap().parse().unwrap(),
        p["host_port"].as_u64().unwrap() as u16,
    )
}

/// `(interface, address)` of every IPv4 address on the host (`ip -j`).
fn host_addresses() -> Vec<(String, Ipv4Addr)> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .expect("ip -j -4 addr show");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip's JSON");
    let mut found = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        let ifname = link["ifname"].as_str().unwrap_or_default();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                found.push((ifname.to_string(), ip));
            }
        }
    }
    found
}

/// A TCP listener on `ip` (a free port) that answers `secret` to whoever
/// connects and counts them, closed when dropped.
struct Trap {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Trap {
    fn on(ip: Ipv4Addr) -> Trap {
        let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("listening on {ip}: {e}"));
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        h.fetch_add(1, Ordering::Relaxed);
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                        let _ = c.read(&mut [0; 1024]);
                        let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecret");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Trap {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `wget` of `url` from inside `container`: did it get `secret`?
fn reaches(env: &DemoEnv, container: &str, url: &str) -> bool {
    let out = exec(
        env,
        container,
        &["busybox", "timeout", "4", "wget", "-q", "-O", "-", url],
    );
    out.success() && out.stdout.contains("secret")
}

/// A DNS query from inside `container` to `server` (UDP): did a datagram
/// arrive at `socket`?
fn udp_arrives(env: &DemoEnv, container: &str, socket: &UdpSocket) -> bool {
    let server = socket.local_addr().unwrap().to_string();
    exec(
        env,
        container,
        &["busybox", "timeout", "3", "nslookup", "berth.test", &server],
    );
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.recv(&mut [0; 512]).is_ok()
}

/// The value of `/proc/sys/<key>` on the host.
fn sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .unwrap_or_else(|e| panic!("/proc/sys/{key}: {e}"))
        .trim()
        .to_string()
}

/// The interfaces with an IPv6 address (`/proc/net/if_inet6`, as seen by
/// the reader's network namespace).
fn ipv6_interfaces(if_inet6: &str) -> Vec<String> {
    let mut v: Vec<String> = if_inet6
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    v.dedup();
    v
}

#[test]
fn apps_reach_no_host_service_only_their_own_page_and_services() {
    let Some(env) = start() else { return };
    let before = env.snapshot();
    env.install("hello-api", &[]);
    let app = env.app("hello-api");
    let (front, _, _) = service(&app, "front");
    let (_, _, api_address) = service(&app, "api");
    let (bridge, table) = network_object_names(&env.berthd.run_root(), "hello-api");
    let gateway = host_addresses()
        .into_iter()
        .find(|(ifname, _)| *ifname == bridge)
        .map(|(_, ip)| ip)
        .unwrap_or_else(|| panic!("no address on the app's bridge {bridge}"));
    let other = host_addresses()
        .into_iter()
        .find(|(ifname, ip)| !ip.is_loopback() && !ifname.starts_with("bn-"))
        .map(|(_, ip)| ip);
    if !require::prerequisite(
        other.is_some(),
        "the host has no IPv4 address besides loopback and Berth's bridges",
    ) {
        return;
    }
    let other = other.unwrap();

    // What the app may do still works: its page from the host, the front
    // end reaching the api by name.
    let (host_ip, port) = published(&app, "front");
    let page = http::get_within(
        &format!("http://{host_ip}:{port}/cgi-bin/api"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        page.text().contains("Hello from the api service"),
        "{page:?}"
    );
    let api = exec(
        &env,
        &front,
        &[
            "busybox",
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            "http://api:8080/cgi-bin/hello",
        ],
    );
    assert!(
        api.success() && api.stdout.contains("Hello from the api service"),
        "front → api: {api:?}"
    );

    // The host's own services: not on the gateway, not on another address
    // of the host, neither TCP nor UDP (a DNS server there, say).
    let traps = [Trap::on(gateway), Trap::on(other)];
    for t in &traps {
        assert!(
            !reaches(&env, &front, &t.url()),
            "the app reached a host service at {}",
            t.addr
        );
        assert_eq!(
            t.hits(),
            0,
            "a connection from the app arrived at {}",
            t.addr
        );
    }
    let udp = UdpSocket::bind((gateway, 0)).unwrap();
    assert!(
        !udp_arrives(&env, &front, &udp),
        "a datagram from the app arrived at {}",
        udp.local_addr().unwrap()
    );

    // It is the app's table's input chain that stops them: without it the
    // same requests get through, so the checks above check something.
    // Starting the app again puts the chain back.
    let out = std::process::Command::new("nft")
        .args(["flush", "chain", "inet", &table, "input"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        reaches(&env, &front, &traps[0].url()),
        "the test tests nothing"
    );
    assert!(udp_arrives(&env, &front, &udp), "the test tests nothing");
    env.ok(&["stop", "hello-api"]);
    env.ok(&["start", "hello-api"]);
    let hits = traps[1].hits();
    for t in &traps {
        assert!(!reaches(&env, &front, &t.url()), "input chain not restored");
    }
    assert_eq!(traps[1].hits(), hits);
    drop(traps);

    // IPv6 is off on the bridge and the veths (no link-local address to
    // reach the host's [::] listeners by) and on the containers' eth0
    // (lo keeps ::1: it reaches only the container itself).
    let if_inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let v6 = ipv6_interfaces(&if_inet6);
    for s in ["front", "api"] {
        let (name, _, _) = service(&app, s);
        let veth = veth_name(&env.berthd.run_root(), &name);
        for ifname in [&bridge, &veth] {
            assert_eq!(
                sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6")),
                "1",
                "{ifname}"
            );
            assert!(
                !v6.contains(ifname),
                "{ifname} has an IPv6 address:\n{if_inet6}"
            );
        }
        let inside = |path: &str| {
            let out = exec(&env, &name, &["cat", path]);
            assert!(out.success(), "{name}: cat {path}: {out:?}");
            out.stdout
        };
        for key in ["eth0", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
            assert_eq!(inside(&path).trim(), "1", "{name}: {path}");
        }
        assert_eq!(
            ipv6_interfaces(&inside("/proc/net/if_inet6")),
            ["lo"],
            "{name}: only lo has an IPv6 address"
        );

        // No CAP_NET_RAW in any set of the container's pid 1.
        let status = inside("/proc/1/status");
        for set in ["CapEff", "CapPrm", "CapBnd"] {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{set}:")))
                .unwrap_or_else(|| panic!("{name}: no {set} in\n{status}"))
                .trim();
            let caps = u64::from_str_radix(hex, 16).unwrap();
            assert_eq!(
                caps >> CAP_NET_RAW & 1,
                0,
                "{name}: {set} {hex} has CAP_NET_RAW"
            );
            assert_ne!(
                caps, 0,
                "{name}: {set} is empty, not Docker's set less NET_RAW"
            );
        }
    }

    // No raw sockets (busybox's ping needs one); ICMP echo sockets, which
    // iputils' ping uses, are open to every group instead.
    let ping = exec(
        &env,
        &front,
        &["busybox", "ping", "-c", "1", "-W", "2", &api_address],
    );
    assert!(
        !ping.success() && ping.stderr.contains("permission denied"),
        "a raw socket in the app: {ping:?}"
    );
    let range = exec(
        &env,
        &front,
        &["cat", "/proc/sys/net/ipv4/ping_group_range"],
    );
    assert_eq!(
        range.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"],
        "{range:?}"
    );

    env.uninstall("hello-api");
    env.assert_nothing_new(&before, &Scope::default(), "hello-api");
}

/// A web service on the demo image, publishing port 8080 as `ports` says,
/// with `extra` lines for the service.
fn web_compose(ports: &str, extra: &str) -> String {
    format!(
        "services:\n  web:\n    image: ${{BERTH_DEMO_REGISTRY}}/demo/web:latest\n    \
         ports:\n      - \"{ports}\"\n{extra}"
    )
}

/// The `pids.max` of container `id`'s cgroup (v2, or v1's pids hierarchy).
fn pids_max(id: &str) -> String {
    let candidates = [
        format!("/sys/fs/cgroup/berth/{id}/pids.max"),
        format!("/sys/fs/cgroup/pids/berth/{id}/pids.max"),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| panic!("none of {candidates:?} exists"))
        .trim()
        .to_string()
}

#[test]
fn an_app_container_without_a_pids_limit_gets_the_default() {
    let Some(mut env) = start() else { return };
    let compose = web_compose("8080", "");
    env.temp_catalog("nolimit", &[("nolimit", &compose)])
        .unwrap();
    let before = env.snapshot();
    env.install("nolimit", &["--catalog", "nolimit"]);
    let (_, id, _) = service(&env.app("nolimit"), "web");
    assert_eq!(pids_max(&id), DEFAULT_PIDS_LIMIT);
    // A limit the Compose file sets is kept (the demo's is 32).
    env.install("hello", &[]);
    let (_, id, _) = service(&env.app("hello"), "web");
    assert_eq!(pids_max(&id), "32");
    env.uninstall("hello");
    env.uninstall("nolimit");
    env.assert_nothing_new(&before, &Scope::default(), "two installs");
}

#[test]
fn ports_beyond_loopback_or_below_1024_need_the_users_flag() {
    let Some(mut env) = start() else { return };
    let port = free_port().unwrap();
    let wide = web_compose(&format!("0.0.0.0:{port}:8080"), "");
    let low = web_compose("80:8080", "");
    env.temp_catalog("asks", &[("wide", &wide), ("low", &low)])
        .unwrap();
    let before = env.snapshot();

    // First the one that, were it honoured, would stay on 127.0.0.1.
    let said = env.fails(&["install", "low"]);
    assert!(
        said.contains("host port 80, below 1024")
            && said.contains("--port web:8080")
            && said.contains("--port web:80 "),
        "{said}"
    );
    let said = env.fails(&["install", "wide"]);
    assert!(
        said.contains("on 0.0.0.0 (every network this computer is on)")
            && said.contains("--listen 0.0.0.0")
            && said.contains("--listen 127.0.0.1"),
        "{said}"
    );
    assert_eq!(env.apps(), Vec::<String>::new());
    env.assert_nothing_new(&before, &Scope::default(), "two refused installs");

    // With the user's say-so they install (on 127.0.0.1 and a free port,
    // not to open this machine to the network or take port 80 here).
    env.install("wide", &["--listen", "127.0.0.1"]);
    assert_eq!(
        published(&env.app("wide"), "web"),
        (Ipv4Addr::LOCALHOST, port)
    );
    let free = free_port().unwrap();
    env.install("low", &["--port", &format!("web:{free}")]);
    assert_eq!(
        published(&env.app("low"), "web"),
        (Ipv4Addr::LOCALHOST, free)
    );
    http::get_within(&format!("http://127.0.0.1:{free}/"), Duration::from_secs(5)).unwrap();
    // The other way round: "wide" pulled the image, which goes with it.
    env.uninstall("low");
    env.uninstall("wide");
    env.assert_nothing_new(&before, &Scope::default(), "two installs");
}

/// Binds a TCP socket on `ip:port` with `SO_REUSEADDR` (and `SO_REUSEPORT`
/// if asked), as a server would, and closes it at once: the bind's error.
fn bind_tcp(ip: Ipv4Addr, port: u16, reuseport: bool) -> std::io::Result<()> {
    // SAFETY: plain socket calls on a descriptor owned here.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let set = |opt| {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of_val(&one) as libc::socklen_t,
            )
        };
        set(libc::SO_REUSEADDR);
        if reuseport {
            set(libc::SO_REUSEPORT);
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&addr) as libc::socklen_t,
        );
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Did the bind fail because the port is taken?
fn in_use(r: std::io::Result<()>) -> bool {
    matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// `busybox httpd -f -p 127.0.0.1:PORT` as `nobody` (a user's dev server
/// started after the app), serving an empty dir; its stderr once it
/// stopped (it could not bind) or after 2 s.
fn serve_as_nobody(port: u16) -> String {
    let www = tempfile::tempdir().unwrap();
    let dir = www.path().to_str().unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(BUSYBOX)
        .args(["timeout", "2", BUSYBOX, "httpd", "-f", "-h", dir])
        .args(["-p", &format!("127.0.0.1:{port}")])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running busybox httpd as nobody");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The pids holding a listening TCP socket on `ip:port` (by the socket's
/// inode in `/proc/net/tcp` and the processes' fds).
fn holders(ip: Ipv4Addr, port: u16) -> Vec<u32> {
    let local = format!("{:08X}:{port:04X}", u32::from(ip).swap_bytes());
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() > 9 && w[1] == local && w[3] == "0A")
        .map(|w| format!("socket:[{}]", w[9]))
        .collect();
    let mut pids = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// Asserts that nobody can take the published `port` on 127.0.0.1 (nor
/// 0.0.0.0) and that only berthd holds it; `when` is for the messages.
fn assert_held(env: &DemoEnv, port: u16, when: &str) {
    for (ip, reuseport) in [
        (Ipv4Addr::LOCALHOST, false),
        (Ipv4Addr::LOCALHOST, true),
        (Ipv4Addr::UNSPECIFIED, false),
    ] {
        assert!(
            in_use(bind_tcp(ip, port, reuseport)),
            "{when}: a host program bound {ip}:{port} (SO_REUSEPORT: {reuseport})"
        );
    }
    let said = serve_as_nobody(port);
    assert!(
        said.contains("in use"),
        "{when}: nobody's server on {port}: {said:?}"
    );
    assert_eq!(
        holders(Ipv4Addr::LOCALHOST, port),
        [env.berthd.pid()],
        "{when}: the socket on {port} is berthd's alone (close-on-exec: no shim or \
         container has it)"
    );
    // The hold never takes the app's connections: the DNAT comes first.
    let page = http::get_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5));
    assert!(
        page.as_ref()
            .is_ok_and(|p| p.text().contains("Hello from Berth")),
        "{when}: {page:?}"
    );
}

#[test]
fn a_published_port_is_held_until_the_app_is_gone() {
    let Some(mut env) = start() else { return };
    let before = env.snapshot();
    env.install("hello", &[]);
    let (ip, port) = published(&env.app("hello"), "web");
    assert_eq!(ip, Ipv4Addr::LOCALHOST);
    assert_held(&env, port, "after install");

    // A stopped app keeps its rules, so its port stays held.
    env.ok(&["stop", "hello"]);
    assert!(
        in_use(bind_tcp(Ipv4Addr::LOCALHOST, port, false)),
        "stopped: the port is free while its DNAT rule is there"
    );
    env.ok(&["start", "hello"]);

    // A new berthd holds the ports its rules publish before it serves.
    env.berthd.restart().unwrap();
    assert_held(&env, port, "after berthd restarted");

    env.uninstall("hello");
    assert!(holders(Ipv4Addr::LOCALHOST, port).is_empty());
    bind_tcp(Ipv4Addr::LOCALHOST, port, false)
        .unwrap_or_else(|e| panic!("after uninstall, port {port} is still taken: {e}"));
    let said = serve_as_nobody(port);
    assert!(!said.contains("in use"), "after uninstall: {said:?}");
    env.assert_nothing_new(&before, &Scope::default(), "hello");
}
