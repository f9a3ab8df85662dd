//! `network` for real (root): bridges, namespaces, NAT, isolation and
//! published ports, checked with busybox `httpd`, `wget` and `ping` run in
//! the namespaces through util-linux's `nsenter`. Every test has its own run
//! root (so its own bridge, veth and table names) and a [`Fixture`] that
//! removes its networks, the scaffolding it built (an "outside" namespace,
//! veth pairs) and the servers it started, also when it fails; each test
//! ends by checking that no link, nft table or mount of its own is left.

use std::cell::RefCell;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::proc::ChildGuard;
use berthd::network::{Endpoint, NetworkConfig, Networks, PortRequest, Protocol};

const BUSYBOX: &str = "/bin/busybox";

fn ready() -> bool {
    if !berth_testkit::require::root("the network tests") {
        return false;
    }
    for (tool, package) in [
        (BUSYBOX, "busybox-static"),
        ("/usr/sbin/nft", "nftables"),
        ("/usr/bin/nsenter", "util-linux"),
        ("/usr/sbin/ip", "iproute2"),
    ] {
        if !berth_testkit::require::tool(tool, package) {
            return false;
        }
    }
    true
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// busybox `args` inside the network namespace at `netns`.
fn in_ns(netns: &Path, args: &[&str]) -> Output {
    let mut a = vec![format!("--net={}", netns.display()), BUSYBOX.to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    Command::new("nsenter")
        .args(&a)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `wget -O -` of `url` from `netns` (or the host): the body, or None.
fn fetch(netns: Option<&Path>, url: &str) -> Option<String> {
    // Not `wget -T`: Debian 12's busybox-static crashes with it.
    let args = ["timeout", "3", BUSYBOX, "wget", "-q", "-O", "-", url];
    let out = match netns {
        Some(ns) => in_ns(ns, &args),
        None => run(BUSYBOX, &args),
    };
    out.status.success().then(|| text(&out.stdout))
}

fn ping(netns: &Path, ip: Ipv4Addr) -> bool {
    in_ns(netns, &["ping", "-c", "1", "-W", "2", &ip.to_string()])
        .status
        .success()
}

/// Does the host reach `ip` (a container: through its bridge and veth, the
/// reply let in as one)? The containers cannot ping the gateway: the host
/// takes only replies from a bridge.
fn host_pings(ip: Ipv4Addr) -> bool {
    run(BUSYBOX, &["ping", "-c", "1", "-W", "2", &ip.to_string()])
        .status
        .success()
}

/// Everything one test made, removed on drop.
struct Fixture {
    run_root: tempfile::TempDir,
    www: tempfile::TempDir,
    nets: Networks,
    networks: RefCell<Vec<String>>,
    containers: RefCell<Vec<String>>,
    servers: RefCell<Vec<ChildGuard>>,
    /// Scaffolding: links to delete, namespace files to unmount.
    links: RefCell<Vec<String>>,
    ns_files: RefCell<Vec<PathBuf>>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(NetworkConfig::default())
    }

    fn with_config(config: NetworkConfig) -> Fixture {
        let run_root = tempfile::tempdir().unwrap();
        let nets = Networks::new(run_root.path(), config);
        Fixture {
            run_root,
            www: tempfile::tempdir().unwrap(),
            nets,
            networks: Default::default(),
            containers: Default::default(),
            servers: Default::default(),
            links: Default::default(),
            ns_files: Default::default(),
        }
    }

    fn create(&self, name: &str) -> berthd::network::NetworkInfo {
        self.networks.borrow_mut().push(name.to_string());
        self.nets.create(name).expect("create network")
    }

    fn attach(&self, network: &str, container: &str) -> Endpoint {
        self.containers.borrow_mut().push(container.to_string());
        self.nets.attach(network, container).expect("attach")
    }

    /// Serves `body` as /index.html over HTTP on port 80 in `netns`.
    fn serve(&self, netns: &Path, body: &str, ip: Ipv4Addr) {
        let dir = self.www.path().join(ip.to_string());
        std::fs::create_dir_all(dir.join("cgi-bin")).unwrap();
        std::fs::write(dir.join("index.html"), body).unwrap();
        let cgi = dir.join("cgi-bin/ip");
        std::fs::write(
            &cgi,
            "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.display()))
            .args([BUSYBOX, "httpd", "-f", "-p", "80", "-h"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = ChildGuard::spawn("httpd", cmd).expect("start httpd");
        self.servers.borrow_mut().push(child);
        // Ready when it answers (the host reaches every namespace here).
        let deadline = Instant::now() + Duration::from_secs(10);
        while fetch(Some(netns), "http://127.0.0.1/").is_none() {
            assert!(
                Instant::now() < deadline,
                "httpd in {} did not start",
                netns.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A namespace that is not Berth's, linked to the host by a veth pair
    /// with `host_ip/30` on the host side and `host_ip+1/30` inside: a
    /// machine "outside" the Berth networks.
    fn outside(&self, tag: &str, host_ip: Ipv4Addr) -> (PathBuf, Ipv4Addr) {
        let ns = self.run_root.path().join(format!("outside-{tag}"));
        std::fs::write(&ns, "").unwrap();
        self.ns_files.borrow_mut().push(ns.clone());
        let out = run("unshare", &[&format!("--net={}", ns.display()), "true"]);
        assert!(out.status.success(), "unshare: {}", text(&out.stderr));
        let host_end = format!("bt-{}-{tag}", std::process::id() % 100_000);
        assert!(host_end.len() <= 15);
        self.links.borrow_mut().push(host_end.clone());
        let inside_ip = Ipv4Addr::from(u32::from(host_ip) + 1);
        let nsarg = format!("--net={}", ns.display());
        let pid = std::process::id().to_string();
        for args in [
            vec![
                &nsarg[..],
                "ip",
                "link",
                "add",
                "ext0",
                "type",
                "veth",
                "peer",
                "name",
                &host_end,
                "netns",
                &pid,
            ],
            vec![&nsarg[..], "ip", "link", "set", "lo", "up"],
            vec![&nsarg[..], "ip", "link", "set", "ext0", "up"],
        ] {
            let out = run("nsenter", &args);
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        }
        let inside = format!("{inside_ip}/30");
        let out = run(
            "nsenter",
            &[&nsarg, "ip", "addr", "add", &inside, "dev", "ext0"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let host = format!("{host_ip}/30");
        for args in [
            vec!["addr", "add", &host[..], "dev", &host_end],
            vec!["link", "set", &host_end, "up"],
        ] {
            let out = run("ip", &args);
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        }
        (ns, inside_ip)
    }

    /// The names this test's objects have in the kernel.
    fn kernel_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for n in self.networks.borrow().iter() {
            let names = self.nets.names(n);
            v.push(names.bridge);
            v.push(names.table);
        }
        for c in self.containers.borrow().iter() {
            v.push(self.nets.veth_name(c));
        }
        v
    }

    /// No link, nft table, mount or file of this test's networks is left.
    fn assert_nothing_left(&self) {
        let links = text(&run("ip", &["-o", "link"]).stdout);
        let rules = text(&run("nft", &["list", "ruleset"]).stdout);
        for name in self.kernel_names() {
            assert!(
                !links.contains(&format!(" {name}:")) && !links.contains(&format!(" {name}@")),
                "link {name} is left:\n{links}"
            );
            assert!(
                !rules.contains(&name),
                "{name} is left in the ruleset:\n{rules}"
            );
        }
        let root = self.run_root.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.lines().any(|l| l.contains(&format!("{root}/netns"))),
            "a mount under {root}/netns is left:\n{mounts}"
        );
        assert!(!self.run_root.path().join("netns").exists());
        assert!(!self.run_root.path().join("networks").exists());
    }

    /// Removes every network the test made, asserting it worked and left
    /// nothing.
    fn finish(self) {
        for s in self.servers.borrow_mut().drain(..) {
            let _ = s.kill9();
        }
        for n in self.networks.borrow().iter() {
            self.nets.remove(n).expect("remove network");
        }
        self.assert_nothing_left();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.servers.borrow_mut().clear();
        for n in self.networks.borrow().iter() {
            if let Err(e) = self.nets.remove(n) {
                eprintln!("cleanup of network {n}: {e}");
            }
            // Belt and braces, should remove() itself have failed.
            let names = self.nets.names(n);
            let _ = run("ip", &["link", "del", &names.bridge]);
            let _ = run("nft", &["delete", "table", "inet", &names.table]);
        }
        for c in self.containers.borrow().iter() {
            let _ = run("ip", &["link", "del", &self.nets.veth_name(c)]);
            let path = self.nets.netns_path(c);
            let _ = rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = rustix::mount::unmount(
            self.run_root.path().join("netns"),
            rustix::mount::UnmountFlags::DETACH,
        );
        for l in self.links.borrow().iter() {
            let _ = run("ip", &["link", "del", l]);
        }
        for f in self.ns_files.borrow().iter() {
            let _ = rustix::mount::unmount(f, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Container ids as berthd makes them (64 hex), unique per test and run.
fn container_id(tag: &str) -> String {
    use sha2::Digest;
    let seed = format!("{}-{tag}-{:?}", std::process::id(), Instant::now());
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))
}

#[test]
fn containers_on_one_network_talk_and_removal_leaves_nothing() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let net = f.create("web");
    assert!(
        net.subnet.to_string().starts_with("10.89."),
        "{}",
        net.subnet
    );
    let addr = text(&run("ip", &["-o", "-4", "addr", "show", "dev", &net.bridge]).stdout);
    assert!(
        addr.contains(&format!("{}/24", net.gateway)),
        "bridge address: {addr}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    // Creating again keeps it as it is.
    assert_eq!(f.nets.create("web").unwrap().subnet, net.subnet);

    let (c1, c2) = (container_id("c1"), container_id("c2"));
    let e1 = f.attach("web", &c1);
    let e2 = f.attach("web", &c2);
    assert_eq!(e1.ip, Ipv4Addr::from(u32::from(net.gateway) + 1));
    assert_eq!(e2.ip, Ipv4Addr::from(u32::from(net.gateway) + 2));
    assert_eq!(
        f.nets.attach("web", &c1).unwrap(),
        e1,
        "attach again: same endpoint"
    );

    // Inside: eth0 with its address, the default route, lo.
    let a = text(&in_ns(&e2.netns, &["ip", "-o", "-4", "addr"]).stdout);
    assert!(
        a.contains(&format!("eth0    inet {}/24", e2.ip))
            || a.contains(&format!("inet {}/24", e2.ip)),
        "{a}"
    );
    assert!(a.contains("127.0.0.1/8"), "lo is up: {a}");
    let r = text(&in_ns(&e2.netns, &["ip", "route"]).stdout);
    assert!(r.contains(&format!("default via {}", net.gateway)), "{r}");
    let links = text(&in_ns(&e2.netns, &["ip", "-o", "link"]).stdout);
    assert_eq!(links.lines().count(), 2, "only lo and eth0: {links}");

    f.serve(&e1.netns, "hello from c1", e1.ip);
    assert!(ping(&e2.netns, e1.ip), "c2 pings c1");
    assert!(host_pings(e2.ip), "the host pings c2");
    assert!(
        !ping(&e2.netns, net.gateway),
        "the host answers no ping from a container (input chain)"
    );
    assert_eq!(
        fetch(Some(&e2.netns), &format!("http://{}/", e1.ip)).as_deref(),
        Some("hello from c1")
    );
    assert_eq!(
        fetch(None, &format!("http://{}/", e1.ip)).as_deref(),
        Some("hello from c1"),
        "the host reaches its containers"
    );

    // Detach takes the veth and the namespace away.
    f.nets.detach("web", &c2).unwrap();
    assert!(!e2.netns.exists());
    let links = text(&run("ip", &["-o", "link"]).stdout);
    assert!(!links.contains(&e2.host_veth));
    assert!(f.nets.detach("web", &c2).is_err(), "not attached any more");
    let info = f.nets.inspect("web").unwrap();
    assert_eq!(info.endpoints, vec![e1.clone()]);

    f.finish();
}

#[test]
fn different_networks_cannot_reach_each_other() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let a = f.create("app-a");
    let b = f.create("app-b");
    assert!(
        !a.subnet.overlaps(&b.subnet),
        "{} and {}",
        a.subnet,
        b.subnet
    );
    let a1 = f.attach("app-a", &container_id("a1"));
    let a2 = f.attach("app-a", &container_id("a2"));
    let b1 = f.attach("app-b", &container_id("b1"));
    f.serve(&a1.netns, "a1", a1.ip);
    f.serve(&b1.netns, "b1", b1.ip);

    // Within a network: fine.
    assert_eq!(
        fetch(Some(&a2.netns), &format!("http://{}/", a1.ip)).as_deref(),
        Some("a1")
    );
    // Across: neither ping nor HTTP, either way.
    assert!(!ping(&a2.netns, b1.ip), "a2 must not reach b1");
    assert_eq!(fetch(Some(&a2.netns), &format!("http://{}/", b1.ip)), None);
    assert!(!ping(&b1.netns, a1.ip), "b1 must not reach a1");
    assert_eq!(fetch(Some(&b1.netns), &format!("http://{}/", a1.ip)), None);
    // Both are still fine from the host.
    assert_eq!(
        fetch(None, &format!("http://{}/", b1.ip)).as_deref(),
        Some("b1")
    );

    // It is the firewall's doing: without the forward chains the host
    // routes between the bridges; creating the networks again restores them.
    for n in [&a, &b] {
        let out = run("nft", &["flush", "chain", "inet", &n.table, "forward"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(
        fetch(Some(&a2.netns), &format!("http://{}/", b1.ip)).as_deref(),
        Some("b1")
    );
    f.nets.create("app-a").unwrap();
    f.nets.create("app-b").unwrap();
    assert_eq!(fetch(Some(&a2.netns), &format!("http://{}/", b1.ip)), None);

    // One container has one namespace: no second network.
    let err = f.nets.attach("app-b", &a1.container_id).unwrap_err();
    assert!(
        err.to_string().contains("attached to network app-a"),
        "{err}"
    );

    f.finish();
}

#[test]
fn a_container_cannot_reach_the_hosts_loopback() {
    if !ready() {
        return;
    }
    // route_localnet is on for the bridge (for ports published on
    // 127.0.0.1): packets from a container addressed to 127.0.0.0/8 must
    // still not reach the host's loopback services (CVE-2020-8558). An
    // attacker would forge them with a raw socket; here the container's
    // routing sends them to the gateway.
    let f = Fixture::new();
    let net = f.create("lo");
    let c = f.attach("lo", &container_id("c"));
    let secret = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = secret.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in secret.incoming() {
            use std::io::{Read, Write};
            let _ = conn.and_then(|mut c| {
                let _ = c.read(&mut [0; 4096])?;
                c.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecret")
            });
        }
    });
    let gw = net.gateway.to_string();
    let ns = format!("--net={}", c.netns.display());
    for args in [
        vec!["ip", "rule", "add", "pref", "100", "lookup", "local"],
        vec!["ip", "rule", "del", "pref", "0"],
        vec![
            "ip",
            "rule",
            "add",
            "pref",
            "10",
            "to",
            "127.0.0.0/8",
            "lookup",
            "100",
        ],
        vec![
            "ip",
            "route",
            "add",
            "127.0.0.0/8",
            "via",
            &gw,
            "dev",
            "eth0",
            "table",
            "100",
        ],
        vec!["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
        vec!["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
    ] {
        let mut a = vec![&ns[..]];
        a.extend(args);
        let out = run("nsenter", &a);
        assert!(out.status.success(), "{a:?}: {}", text(&out.stderr));
    }
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        fetch(Some(&c.netns), &url),
        None,
        "the guard chain drops it"
    );
    // Without the guard the input chain still drops it (the host takes
    // only replies from the bridge); without both it would get through:
    // the test tests something.
    let flush = |chain: &str| {
        let out = run("nft", &["flush", "chain", "inet", &net.table, chain]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    flush("guard");
    assert_eq!(
        fetch(Some(&c.netns), &url),
        None,
        "the input chain drops it"
    );
    flush("input");
    assert!(fetch(Some(&c.netns), &url)
        .unwrap_or_default()
        .contains("secret"));
    f.nets.create("lo").unwrap();
    assert_eq!(
        fetch(Some(&c.netns), &url),
        None,
        "create restores the guard"
    );
    flush("guard");
    assert_eq!(
        fetch(Some(&c.netns), &url),
        None,
        "create restores the input chain"
    );
    f.finish();
}

#[test]
fn outbound_traffic_is_masqueraded() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let net = f.create("out");
    let c = f.attach("out", &container_id("c"));
    // A /30 in 198.18.0.0/15 (benchmarking addresses), per process.
    let host_ip = Ipv4Addr::new(198, 18, (std::process::id() % 250) as u8, 1);
    let (outside, server_ip) = f.outside("o", host_ip);
    f.serve(&outside, "outside", server_ip);
    // The server has no route back to the container's subnet: only NAT
    // gets an answer back, and it sees the host's address.
    let seen = fetch(Some(&c.netns), &format!("http://{server_ip}/cgi-bin/ip"));
    // busybox httpd listens on [::] and writes "[::ffff:198.18.x.1]".
    let seen = seen.expect("the container reaches the outside");
    let seen = seen.trim().trim_start_matches('[').trim_end_matches(']');
    assert_eq!(seen.trim_start_matches("::ffff:"), host_ip.to_string());

    // The other way, a machine that routes the subnet to this host does
    // not get in: only replies and published ports do.
    f.serve(&c.netns, "inside", c.ip);
    let out = run(
        "nsenter",
        &[
            &format!("--net={}", outside.display()),
            "ip",
            "route",
            "add",
            &net.subnet.to_string(),
            "via",
            &host_ip.to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fetch(Some(&outside), &format!("http://{}/", c.ip)), None);
    f.finish();
}

#[test]
fn published_ports_default_to_localhost_and_step_over_taken_ones() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let net = f.create("pub");
    let c1 = f.attach("pub", &container_id("p1"));
    let c2 = f.attach("pub", &container_id("p2"));
    f.serve(&c1.netns, "one", c1.ip);
    f.serve(&c2.netns, "two", c2.ip);

    // A port nobody has: given as asked.
    let want = free_port();
    let p = f
        .nets
        .publish(
            "pub",
            &c1.container_id,
            &[PortRequest::local(want, 80, Protocol::Tcp)],
        )
        .unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].host_ip, p[0].host_port, p[0].moved()),
        (Ipv4Addr::LOCALHOST, want, false)
    );
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{want}/")).as_deref(),
        Some("one")
    );
    // Only on 127.0.0.1: not on the host's other addresses.
    assert_eq!(
        fetch(None, &format!("http://{}:{want}/", net.gateway)),
        None
    );
    // Publishing the same again gives the same mapping.
    let again = f
        .nets
        .publish(
            "pub",
            &c1.container_id,
            &[PortRequest::local(want, 80, Protocol::Tcp)],
        )
        .unwrap();
    assert_eq!(again[0].host_port, want);

    // A port a host program listens on: the next free one, and it says so.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = listener.local_addr().unwrap().port();
    let p = f
        .nets
        .publish(
            "pub",
            &c2.container_id,
            &[PortRequest::local(held, 80, Protocol::Tcp)],
        )
        .unwrap();
    assert!(p[0].moved(), "{:?}", p[0]);
    assert!(p[0].host_port > held);
    assert!(
        p[0].to_string().contains(&format!("({held} is in use)")),
        "{}",
        p[0]
    );
    let moved = p[0].host_port;
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{moved}/")).as_deref(),
        Some("two")
    );
    // A port Berth published (its own socket holds it) is taken too.
    let p = f
        .nets
        .publish(
            "pub",
            &c2.container_id,
            &[PortRequest::local(want, 8080, Protocol::Tcp)],
        )
        .unwrap();
    assert_ne!(p[0].host_port, want);

    // 0.0.0.0 when asked: every address of the host.
    let any = free_port();
    let p = f
        .nets
        .publish(
            "pub",
            &c1.container_id,
            &[PortRequest {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: any,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
        )
        .unwrap();
    assert_eq!(p[0].host_port, any);
    assert_eq!(
        fetch(None, &format!("http://{}:{any}/", net.gateway)).as_deref(),
        Some("one")
    );
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{any}/")).as_deref(),
        Some("one")
    );

    // A host address that is not one: refused, with the reason.
    let err = f
        .nets
        .publish(
            "pub",
            &c1.container_id,
            &[PortRequest {
                host_ip: Ipv4Addr::new(203, 0, 113, 77),
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("not an address of this host"),
        "{err}"
    );

    assert_eq!(f.nets.published("pub").unwrap().len(), 4);
    // Detaching takes the container's ports with it.
    f.nets.detach("pub", &c1.container_id).unwrap();
    let left = f.nets.published("pub").unwrap();
    assert!(left.iter().all(|m| m.container_ip == c2.ip), "{left:?}");
    assert_eq!(fetch(None, &format!("http://127.0.0.1:{want}/")), None);
    drop(listener);
    f.finish();
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_container_joins_its_network_through_the_spec() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    f.create("rt");
    let server = f.attach("rt", &container_id("srv"));
    f.serve(&server.netns, "from the network", server.ip);
    let id = container_id("ctr");
    let e = f.attach("rt", &id);

    // A bundle of busybox, run by berth-runtime with the endpoint's namespace.
    let bundle = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let rootfs = bundle.path().join("rootfs");
    for d in ["bin", "dev", "proc", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "ip", "wget", "timeout"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let mut spec = berthd::runtime::spec::default_spec();
    berthd::runtime::spec::with_docker_security(&mut spec);
    let script = format!(
        "ip -o -4 addr show eth0; timeout 3 wget -q -O - http://{}/",
        server.ip
    );
    let p = spec.process_mut().as_mut().unwrap();
    p.set_terminal(Some(false));
    p.set_args(Some(vec!["/bin/sh".into(), "-c".into(), script]));
    berthd::containers::spec::join_network_namespace(&mut spec, &e.netns);
    spec.save(bundle.path().join("config.json")).unwrap();
    let rt_id = format!("net-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_berth-runtime"))
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&rt_id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new(env!("CARGO_BIN_EXE_berth-runtime"))
        .arg("--root")
        .arg(state.path())
        .args(["delete", "--force", &rt_id])
        .output();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "runtime: {}\n{stdout}",
        text(&out.stderr)
    );
    assert!(stdout.contains(&format!("inet {}/24", e.ip)), "{stdout}");
    assert!(stdout.contains("from the network"), "{stdout}");
    f.finish();
}

/// The interface's alias (`ip link set … alias`).
fn alias(link: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{link}/ifalias"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn link_exists(link: &str) -> bool {
    Path::new("/sys/class/net").join(link).exists()
}

fn ifindex(link: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{link}/ifindex"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn nft_table_text(table: &str) -> String {
    text(&run("nft", &["list", "table", "inet", table]).stdout)
}

/// Unmounts a network namespace file as someone might by hand.
fn unmount(path: &Path) {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).unwrap();
}

/// Waits for the kernel to dismantle an unmounted namespace, with its veth.
fn wait_gone(link: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while link_exists(link) {
        assert!(Instant::now() < deadline, "{link} is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Fixture {
    fn record_path(&self, network: &str) -> PathBuf {
        self.run_root
            .path()
            .join("networks")
            .join(format!("{network}.json"))
    }

    /// Takes the container out of the network's record, as a crash before
    /// the record was written would have left it.
    fn forget_endpoint(&self, network: &str, container: &str) {
        let path = self.record_path(network);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["endpoints"]
            .as_object_mut()
            .unwrap()
            .remove(container)
            .expect("recorded");
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    fn scope_hash(&self) -> String {
        berthd::network::names::scope_hash(&self.run_root.path().display().to_string())
    }
}

#[test]
fn objects_carry_their_berthds_tag_and_create_restores_it() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let net = f.create("tagged");
    let c = container_id("c");
    let e = f.attach("tagged", &c);
    let scope = f.scope_hash();
    assert_eq!(alias(&net.bridge), format!("berth:{scope}:net:tagged"));
    assert_eq!(alias(&e.host_veth), format!("berth:{scope}:ep:tagged:{c}"));
    let table = nft_table_text(&net.table);
    assert!(
        table.contains(&format!("comment \"berth:{scope}:net:tagged\"")),
        "{table}"
    );
    f.serve(&e.netns, "tagged", e.ip);
    let port = free_port();
    f.nets
        .publish("tagged", &c, &[PortRequest::local(port, 80, Protocol::Tcp)])
        .unwrap();

    // Tags lost (an older berthd made them): create and attach put them back,
    // the table made again with its published port.
    let out = run("ip", &["link", "set", &net.bridge, "alias", ""]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run("ip", &["link", "set", &e.host_veth, "alias", ""]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let spec = berthd::network::nft::TableSpec {
        table: &net.table,
        bridge: &net.bridge,
        subnet: net.subnet,
        comment: "x",
    };
    let untagged =
        berthd::network::nft::ensure_table_script(&spec).replace(" { comment \"x\"; }", "");
    let mappings = f.nets.published("tagged").unwrap();
    let script = format!(
        "{}{untagged}{}",
        berthd::network::nft::delete_table_script(&net.table),
        berthd::network::nft::add_mappings_script(&net.table, &mappings)
    );
    berthd::network::nft::apply(&script).unwrap();
    assert!(!nft_table_text(&net.table).contains("comment"));
    assert_eq!(alias(&net.bridge), "");

    f.nets.create("tagged").unwrap();
    assert_eq!(f.nets.attach("tagged", &c).unwrap(), e);
    assert_eq!(alias(&net.bridge), format!("berth:{scope}:net:tagged"));
    assert_eq!(alias(&e.host_veth), format!("berth:{scope}:ep:tagged:{c}"));
    assert!(nft_table_text(&net.table).contains(&format!("comment \"berth:{scope}:net:tagged\"")));
    assert_eq!(f.nets.published("tagged").unwrap(), mappings);
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{port}/")).as_deref(),
        Some("tagged"),
        "the published port survived"
    );
    f.finish();
}

#[test]
fn present_names_every_object_until_removal() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let net = f.create("hello");
    let (c1, c2) = (container_id("c1"), container_id("c2"));
    let e1 = f.attach("hello", &c1);
    let e2 = f.attach("hello", &c2);
    let root = f.run_root.path().display().to_string();
    let p = f.nets.present("hello").unwrap();
    let expect = [
        format!("network link {} (bridge of network hello)", net.bridge),
        format!(
            "nftables table inet {} (firewall of network hello)",
            net.table
        ),
        format!(
            "network link {} (veth of container {c1} on network hello)",
            e1.host_veth
        ),
        format!(
            "network link {} (veth of container {c2} on network hello)",
            e2.host_veth
        ),
        format!("network namespace {root}/netns/{c1} (of container {c1}, mounted)"),
        format!("network namespace {root}/netns/{c2} (of container {c2}, mounted)"),
        format!("network record {root}/networks/hello.json"),
    ];
    for item in &expect {
        assert!(p.contains(item), "{item:?} missing in {p:#?}");
    }
    assert_eq!(p.len(), expect.len(), "{p:#?}");
    assert_eq!(f.nets.present_endpoint(&c1).len(), 2);

    // Without its record, present still finds all of it on the host.
    std::fs::remove_file(f.record_path("hello")).unwrap();
    assert_eq!(f.nets.present("hello").unwrap().len(), expect.len() - 1);
    f.create("hello");
    f.attach("hello", &c1);
    f.attach("hello", &c2);

    f.nets.remove("hello").unwrap();
    assert_eq!(f.nets.present("hello").unwrap(), Vec::<String>::new());
    assert_eq!(f.nets.present_endpoint(&c1), Vec::<String>::new());
    assert_eq!(f.nets.present_endpoint(&c2), Vec::<String>::new());
    f.finish();
}

#[test]
fn leftovers_of_a_network_whose_record_was_deleted_are_found_and_removed() {
    if !ready() {
        return;
    }
    // Two berthd on the host, with a network of the same name each.
    let f = Fixture::new();
    let g = Fixture::new();
    let net = f.create("left");
    let theirs = g.create("left");
    let c = container_id("c");
    let e = f.attach("left", &c);
    let d = g.attach("left", &container_id("d"));
    g.serve(&d.netns, "still here", d.ip);
    let port = free_port();
    f.nets
        .publish("left", &c, &[PortRequest::local(port, 80, Protocol::Tcp)])
        .unwrap();
    assert_eq!(f.nets.leftovers(&["left".to_string()].into()).unwrap(), []);

    std::fs::remove_file(f.record_path("left")).unwrap();
    let root = f.run_root.path().display().to_string();
    let left = f.nets.leftovers(&Default::default()).unwrap();
    let descriptions: Vec<String> = left.iter().map(|l| l.description.clone()).collect();
    assert_eq!(
        descriptions,
        [
            format!(
                "network link {} (veth of container {c} on network left)",
                e.host_veth
            ),
            format!("network link {} (bridge of network left)", net.bridge),
            format!(
                "nftables table inet {} (firewall of network left)",
                net.table
            ),
            format!("network namespace {root}/netns/{c} (of container {c}, mounted)"),
            format!("directory {root}/netns (where network namespaces are mounted)"),
            format!("directory {root}/networks (of network records)"),
        ]
    );
    // The other berthd's network is none of this one's business, and the
    // other berthd sees nothing left over of its own.
    for l in &left {
        assert!(
            !l.description.contains(&theirs.bridge) && !l.description.contains(&d.host_veth),
            "{l}"
        );
    }
    assert_eq!(g.nets.leftovers(&["left".to_string()].into()).unwrap(), []);

    for l in &left {
        f.nets.remove_leftover(l).unwrap();
    }
    // Removing again: gone already is fine.
    for l in &left {
        f.nets.remove_leftover(l).unwrap();
    }
    assert_eq!(f.nets.leftovers(&Default::default()).unwrap(), []);
    assert_eq!(f.nets.present("left").unwrap(), Vec::<String>::new());
    assert!(!link_exists(&net.bridge) && !link_exists(&e.host_veth));
    assert_eq!(fetch(None, &format!("http://127.0.0.1:{port}/")), None);
    f.assert_nothing_left();

    // The other berthd's network works on.
    assert!(link_exists(&theirs.bridge) && link_exists(&d.host_veth));
    assert_eq!(
        fetch(None, &format!("http://{}/", d.ip)).as_deref(),
        Some("still here")
    );
    f.finish();
    g.finish();
}

#[test]
fn endpoints_missing_from_the_record_are_leftovers_and_attach_repairs_them() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    f.create("crash");
    let (c1, c2) = (container_id("c1"), container_id("c2"));
    let e1 = f.attach("crash", &c1);
    let e2 = f.attach("crash", &c2);
    // berthd died after making c2's endpoint, before writing the record.
    f.forget_endpoint("crash", &c2);
    let expected: std::collections::BTreeSet<String> = ["crash".to_string()].into();
    let left = f.nets.leftovers(&expected).unwrap();
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left[0].description.contains(&e2.host_veth), "{}", left[0]);
    assert_eq!(
        left[0].reason,
        format!("container {c2} is not in the record of network crash")
    );
    assert!(
        left[1].description.contains(&format!("netns/{c2}")),
        "{}",
        left[1]
    );

    // Attaching it again makes it anew (the old veth goes).
    let old = ifindex(&e2.host_veth);
    let again = f.nets.attach("crash", &c2).unwrap();
    assert_ne!(ifindex(&again.host_veth), old);
    assert!(host_pings(again.ip));
    assert!(ping(&again.netns, e1.ip));
    assert_eq!(f.nets.leftovers(&expected).unwrap(), []);

    // Forgotten again, the doctor removes it; c1 is untouched.
    f.forget_endpoint("crash", &c2);
    for l in f.nets.leftovers(&expected).unwrap() {
        f.nets.remove_leftover(&l).unwrap();
    }
    assert_eq!(f.nets.present_endpoint(&c2), Vec::<String>::new());
    assert!(host_pings(e1.ip));
    // A detach of what a crash left without a record works too.
    let e3 = f.attach("crash", &container_id("c3"));
    f.forget_endpoint("crash", &e3.container_id);
    f.nets.detach("crash", &e3.container_id).unwrap();
    assert_eq!(
        f.nets.present_endpoint(&e3.container_id),
        Vec::<String>::new()
    );
    f.finish();
}

#[test]
fn attach_again_after_the_netns_mount_was_removed_by_hand() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    f.create("again");
    let c = container_id("c");
    let e = f.attach("again", &c);
    // Unmounted (the file stays): the namespace goes, its veth with it.
    unmount(&e.netns);
    wait_gone(&e.host_veth);
    assert!(e.netns.exists());
    f.nets.create("again").unwrap();
    let e2 = f.nets.attach("again", &c).unwrap();
    assert_eq!(e2, e, "same address, same paths");
    assert!(host_pings(e2.ip));
    let scope = f.scope_hash();
    assert_eq!(alias(&e2.host_veth), format!("berth:{scope}:ep:again:{c}"));

    // Unmounted and the file removed (what a reboot leaves of a run root
    // on disk is the record alone).
    unmount(&e.netns);
    std::fs::remove_file(&e.netns).unwrap();
    wait_gone(&e.host_veth);
    let e3 = f.nets.attach("again", &c).unwrap();
    assert_eq!(e3, e);
    assert!(host_pings(e3.ip));

    // The namespace directory's own mount gone too.
    let dir = f.run_root.path().join("netns");
    rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH).unwrap();
    wait_gone(&e.host_veth);
    let e4 = f.nets.attach("again", &c).unwrap();
    assert!(host_pings(e4.ip));
    assert_eq!(f.nets.present_endpoint(&c).len(), 2);
    f.finish();
}

#[test]
fn create_puts_endpoints_back_on_a_bridge_deleted_by_hand() {
    if !ready() {
        return;
    }
    // A pool of its own: with the bridge gone, another berthd on the host
    // (the other tests) could take the default pool's subnet meanwhile.
    let pool = format!("10.{}.0.0/16", 150 + std::process::id() % 50);
    let f = Fixture::with_config(NetworkConfig {
        pool: pool.parse().unwrap(),
        ..NetworkConfig::default()
    });
    let net = f.create("br");
    let e1 = f.attach("br", &container_id("c1"));
    let e2 = f.attach("br", &container_id("c2"));
    let out = run("ip", &["link", "del", &net.bridge]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let master = |veth: &str| {
        std::fs::read_link(format!("/sys/class/net/{veth}/master"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    assert_eq!(master(&e1.host_veth), None);
    assert_eq!(f.nets.create("br").unwrap().subnet, net.subnet);
    assert_eq!(master(&e1.host_veth).as_deref(), Some(&net.bridge[..]));
    assert_eq!(master(&e2.host_veth).as_deref(), Some(&net.bridge[..]));
    assert!(
        ping(&e2.netns, e1.ip),
        "the veths are ports of the new bridge"
    );
    assert!(host_pings(e1.ip));
    f.finish();
}

#[test]
fn detach_works_when_the_namespace_is_gone() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    f.create("gone");
    let c = container_id("c");
    let e = f.attach("gone", &c);
    unmount(&e.netns);
    std::fs::remove_file(&e.netns).unwrap();
    f.nets.detach("gone", &c).unwrap();
    assert_eq!(f.nets.present_endpoint(&c), Vec::<String>::new());
    assert!(f.nets.inspect("gone").unwrap().endpoints.is_empty());
    f.finish();
}

#[test]
fn remove_names_what_it_could_not_remove() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let net = f.create("stuck");
    let c = container_id("c");
    let e = f.attach("stuck", &c);
    // The namespace directory read-only: the file cannot be deleted.
    let dir = f.run_root.path().join("netns");
    let remount = |ro: &str| {
        let out = run(
            "mount",
            &[
                "-o",
                &format!("remount,bind,{ro}"),
                &dir.display().to_string(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    remount("ro");
    let err = f.nets.remove("stuck").unwrap_err();
    remount("rw");
    let msg = err.to_string();
    let berthd::network::Error::Incomplete { problems, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problems.len(), 1, "{msg}");
    assert!(
        problems[0].starts_with(&format!("network namespace {}", e.netns.display()))
            && problems[0].contains("Read-only file system"),
        "{msg}"
    );
    // The rest is gone; the record stays for the next try.
    assert!(!link_exists(&net.bridge) && !link_exists(&e.host_veth));
    assert!(f.record_path("stuck").exists());
    let p = f.nets.present("stuck").unwrap();
    assert_eq!(p.len(), 2, "{p:#?}");
    f.nets.remove("stuck").unwrap();
    assert_eq!(f.nets.present("stuck").unwrap(), Vec::<String>::new());
    f.finish();
}
