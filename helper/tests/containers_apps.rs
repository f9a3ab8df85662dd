//! What the app installer needs from containers, for real (root): joining a
//! prepared network namespace, /etc/hosts rewritten under a running
//! container, named volumes filled from the image, and commands run with
//! their output captured and killed on time.
//!
//! Each test has its own store and run root, pulls one small image from a
//! registry the kit starts, and drives berthd's `Containers` in process
//! with the real `berth-shim` and `berth-runtime`. Containers are removed
//! when a test ends, pass or fail. The tests run one at a time (they count
//! processes).

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_testkit::{busybox_rootfs, ImageBuilder, Layer, Registry};
use berthd::containers::{Containers, Error, Network, RunOptions, UsernsMode, Volume};

/// One test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ready() -> bool {
    berth_testkit::require::root("these tests run containers and")
        && berth_testkit::require::tool("/usr/bin/docker-registry", "docker-registry")
}

/// A store with the test image, a run root, and every container made
/// through it removed on drop.
struct Env {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    _registry: Registry,
    containers: Containers,
    image: String,
    made: Mutex<Vec<String>>,
    /// Namespace files to remove.
    netns: Mutex<Vec<PathBuf>>,
    run: tempfile::TempDir,
    tmp: tempfile::TempDir,
    _root: tempfile::TempDir,
}

/// The image: busybox, and a directory to fill volumes from.
fn image() -> berth_testkit::Image {
    ImageBuilder::new()
        .layer(busybox_rootfs().expect("busybox-static"))
        .layer(
            Layer::new()
                .dir("/srv")
                .dir_with("/srv/www", 0o750, 101, 102)
                .file_with(
                    "/srv/www/index.html",
                    "hello from the image\n",
                    0o640,
                    101,
                    102,
                )
                .dir_with("/srv/www/sub", 0o700, 103, 104)
                .file("/srv/www/sub/deep.txt", "deep\n")
                .symlink("/srv/www/passwd", "/etc/passwd"),
        )
        .cmd(&["/bin/sh"])
        .build()
        .expect("image")
}

impl Env {
    async fn new() -> Env {
        let serial = SERIAL.lock().await;
        let registry = Registry::start().expect("registry");
        registry
            .push(&image(), "apps/test", "latest")
            .expect("push");
        let image = format!("{}/apps/test:latest", registry.host());
        let root = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let creds =
            Arc::new(berthd::credentials::FileCredentials::open(root.path()).expect("credentials"));
        let images =
            berthd::images::ImageStore::open(root.path(), berthd::config::Config::default(), creds)
                .expect("image store");
        let (progress, _) = tokio::sync::watch::channel(berthd::images::PullProgress::default());
        images
            .pull(
                &image,
                berthd::registry::Requester::Anonymous,
                &progress,
                &berthd::cancel::Cancel::new(),
            )
            .await
            .expect("pull");
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_berth-shim"))
            .parent()
            .unwrap();
        let containers = Containers::open(images, run.path(), bin_dir)
            .await
            .expect("containers");
        Env {
            _serial: serial,
            _registry: registry,
            containers,
            image,
            made: Mutex::new(Vec::new()),
            netns: Mutex::new(Vec::new()),
            run,
            tmp: tempfile::tempdir().unwrap(),
            _root: root,
        }
    }

    fn create(&self, opts: &RunOptions) -> berthd::containers::Result<String> {
        let c = self.containers.create(&self.image, opts, 0)?;
        self.made.lock().unwrap().push(c.id.clone());
        Ok(c.id)
    }

    /// Create and start a container running `script`.
    async fn run(&self, script: &str, opts: RunOptions) -> String {
        let opts = RunOptions {
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            ..opts
        };
        let id = self.create(&opts).expect("create");
        let c = self.containers.start(&id, None).await.expect("start");
        assert_eq!(c.state, "running", "{c:?}");
        id
    }

    /// `sh -c script` in container `id`; its exit code and output.
    async fn sh(&self, id: &str, script: &str) -> (i32, String) {
        self.containers
            .exec_capture(
                id,
                &["sh".into(), "-c".into(), script.into()],
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// A new network namespace (only `lo`) at `<run>/netns/<name>`.
    fn netns(&self, name: &str) -> PathBuf {
        let p = self.run.path().join("netns").join(name);
        berthd::network::netns::create(&p).expect("netns");
        self.netns.lock().unwrap().push(p.clone());
        p
    }

    /// The container's pid 1 on the host.
    fn init_pid(&self, id: &str) -> i32 {
        self.containers.inspect(id).unwrap().pid.expect("running")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.made.lock().unwrap());
        let containers = self.containers.clone();
        // Our own runtime: the test's may be unwinding.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                for id in ids {
                    let _ = containers.remove(&id, true).await;
                }
            });
        })
        .join()
        .unwrap();
        for p in self.netns.lock().unwrap().drain(..) {
            let _ = berthd::network::netns::remove(&p);
        }
    }
}

/// Processes whose parent is `ppid`: (pid, state, cmdline with spaces).
fn children_of(ppid: i32) -> Vec<(i32, char, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let parent: i32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if parent != ppid {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, state, cmdline.trim_end().to_string()));
    }
    out
}

/// Processes in the pid namespace of process `init` whose command line is
/// exactly `cmdline`.
fn processes_running(init: i32, cmdline: &str) -> Vec<i32> {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = ns(init).expect("the container's init");
    let want: Vec<u8> = cmdline
        .split(' ')
        .flat_map(|w| w.bytes().chain([0]))
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .as_deref()
                == Some(&want)
                && ns(*pid).as_ref() == Some(&theirs)
        })
        .collect()
}

/// Waits up to 5 s for `ok`.
fn eventually(what: &str, mut ok: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ok() {
            None => return,
            Some(why) if Instant::now() > deadline => panic!("{what}: {why}"),
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

const IDLE: &str = "sleep 100000 & wait";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_joins_a_prepared_network_namespace() {
    if !ready() {
        return;
    }
    let env = Env::new().await;
    let ns = env.netns("ca-join");
    let opts = RunOptions {
        netns: Some(ns.display().to_string()),
        ..RunOptions::default()
    };
    let id = env.run(IDLE, opts.clone()).await;
    let (code, out) = env.sh(&id, "readlink /proc/self/ns/net").await;
    assert_eq!(code, 0, "{out}");
    let ino = std::fs::metadata(&ns).unwrap().ino();
    assert_eq!(out.trim(), format!("net:[{ino}]"));

    // Its resolv.conf: the host's servers it can reach, or Docker's fallback.
    let (_, resolv) = env.sh(&id, "cat /etc/resolv.conf").await;
    let servers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert!(!servers.is_empty(), "{resolv}");
    for s in &servers {
        let ip: std::net::IpAddr = s.split('%').next().unwrap().parse().unwrap();
        assert!(!ip.is_loopback(), "{resolv}");
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for l in host
        .lines()
        .filter(|l| l.starts_with("search") || l.starts_with("options"))
    {
        if !host.lines().any(|l| l.starts_with("nameserver 127.0.0.53")) {
            assert!(resolv.contains(l), "`{l}` kept: {resolv}");
        }
    }

    // Options that cannot join it are refused before anything is made.
    let e = env
        .create(&RunOptions {
            network: Network::Host,
            ..opts.clone()
        })
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("`netns`") && e.to_string().contains("`network: host`"));
    let e = env
        .create(&RunOptions {
            userns: UsernsMode::Auto,
            ..opts.clone()
        })
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("userns"), "{e}");

    // A namespace that is gone: a clear error at start, nothing left mounted.
    let gone = env.run.path().join("netns/ca-gone");
    let id2 = env
        .create(&RunOptions {
            netns: Some(gone.display().to_string()),
            cmd: vec!["true".into()],
            ..RunOptions::default()
        })
        .unwrap();
    let e = env.containers.start(&id2, None).await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert!(e.to_string().contains("ca-gone"), "{e}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id2), "rootfs of {id2} still mounted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_rewritten_under_a_running_container() {
    if !ready() {
        return;
    }
    let env = Env::new().await;
    let id = env
        .run(
            IDLE,
            RunOptions {
                name: Some("shop-web".into()),
                ..RunOptions::default()
            },
        )
        .await;
    let (_, before) = env.sh(&id, "cat /etc/hosts").await;
    assert!(before.contains("127.0.0.1\tlocalhost\n"), "{before}");
    assert!(before.contains("127.0.1.1\tshop-web\n"), "{before}");

    env.containers
        .set_hosts(
            &id,
            &[
                (
                    Ipv4Addr::new(10, 89, 0, 2),
                    vec!["web".into(), "shop-web".into()],
                ),
                (Ipv4Addr::new(10, 89, 0, 3), vec!["api".into()]),
            ],
        )
        .unwrap();
    let (_, after) = env.sh(&id, "cat /etc/hosts").await;
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines[0], "127.0.0.1\tlocalhost", "{after}");
    assert!(lines.contains(&"10.89.0.2\tshop-web"), "own line: {after}");
    assert!(!after.contains("127.0.1.1"), "{after}");
    assert_eq!(lines[lines.len() - 2], "10.89.0.2\tweb shop-web", "{after}");
    assert_eq!(lines[lines.len() - 1], "10.89.0.3\tapi", "{after}");

    // Shorter again: the file is truncated, not left with a tail.
    env.containers.set_hosts(&id, &[]).unwrap();
    let (_, last) = env.sh(&id, "cat /etc/hosts").await;
    assert!(!last.contains("api"), "{last}");
    assert!(last.ends_with("127.0.1.1\tshop-web\n"), "{last}");

    // Names that would add lines are refused.
    let e = env
        .containers
        .set_hosts(
            &id,
            &[(Ipv4Addr::new(10, 0, 0, 1), vec!["a\n1.2.3.4 evil".into()])],
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_volume_is_filled_from_the_image() {
    if !ready() {
        return;
    }
    let env = Env::new().await;
    let vol = env.tmp.path().join("www");
    std::fs::create_dir(&vol).unwrap();
    let volume = Volume {
        host: vol.display().to_string(),
        container: "/srv/www".into(),
        read_only: false,
        populate: true,
    };
    let id = env
        .run(
            IDLE,
            RunOptions {
                volumes: vec![volume.clone()],
                ..RunOptions::default()
            },
        )
        .await;
    let (code, out) = env
        .sh(
            &id,
            "cat /srv/www/index.html /srv/www/sub/deep.txt; stat -c '%u:%g %a' /srv/www /srv/www/index.html; \
             readlink /srv/www/passwd",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "hello from the image\ndeep\n101:102 750\n101:102 640\n/etc/passwd\n"
    );
    // On the host, the same.
    let md = |p: &str| std::fs::symlink_metadata(vol.join(p)).unwrap();
    assert_eq!(
        std::fs::read_to_string(vol.join("index.html")).unwrap(),
        "hello from the image\n"
    );
    let top = std::fs::metadata(&vol).unwrap();
    assert_eq!(
        (top.uid(), top.gid(), top.mode() & 0o7777),
        (101, 102, 0o750)
    );
    assert_eq!((md("sub").uid(), md("sub").mode() & 0o7777), (103, 0o700));
    assert!(md("passwd").file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(vol.join("passwd")).unwrap(),
        Path::new("/etc/passwd")
    );

    // What the container writes stays: a volume with something in it is
    // never filled again.
    let (code, _) = env.sh(&id, "echo mine > /srv/www/index.html").await;
    assert_eq!(code, 0);
    env.containers
        .stop(&id, Duration::from_secs(5))
        .await
        .unwrap();
    let c = env.containers.start(&id, None).await.unwrap();
    assert_eq!(c.state, "running");
    let (_, out) = env.sh(&id, "cat /srv/www/index.html").await;
    assert_eq!(out, "mine\n");

    // A volume over a path the image does not have stays empty.
    let empty = env.tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let id2 = env
        .run(
            IDLE,
            RunOptions {
                volumes: vec![Volume {
                    host: empty.display().to_string(),
                    container: "/no/such/dir".into(),
                    read_only: false,
                    populate: true,
                }],
                ..RunOptions::default()
            },
        )
        .await;
    let (code, out) = env.sh(&id2, "ls -A /no/such/dir | wc -l").await;
    assert_eq!((code, out.trim()), (0, "0"));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_capture_returns_code_and_output_and_kills_on_time() {
    if !ready() {
        return;
    }
    let env = Env::new().await;
    let id = env.run(IDLE, RunOptions::default()).await;
    let c = &env.containers;
    let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];

    assert_eq!(
        c.exec_capture(&id, &sh("echo hi; exit 3"), Duration::from_secs(10))
            .await
            .unwrap(),
        (3, "hi\n".to_string())
    );
    let (code, out) = c
        .exec_capture(&id, &sh("echo out; echo err >&2"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((code, out.as_str()), (0, "out\nerr\n"));
    // Much output: the first 4096 bytes, and the command is not blocked.
    let (code, out) = c
        .exec_capture(
            &id,
            &sh("yes 0123456789 | head -c 100000; exit 0"),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(out.len(), berthd::containers::CAPTURE_LIMIT);
    assert!(out.starts_with("0123456789\n0123456789\n"));
    // A command the image does not have: the runtime's 127 and its words.
    let (code, out) = c
        .exec_capture(&id, &["no-such-command".into()], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(code, 127, "{out}");
    assert!(out.contains("no-such-command"), "{out}");

    let init = env.init_pid(&id);
    let only_idle = || {
        let kids = children_of(init);
        let extra: Vec<_> = kids
            .iter()
            .filter(|(_, state, cmd)| *state == 'Z' || cmd != "sleep 100000")
            .collect();
        (!extra.is_empty()).then(|| format!("left under the container's init: {extra:?}"))
    };
    let me = std::process::id() as i32;
    let no_zombies_of_ours = || {
        let z: Vec<_> = children_of(me)
            .into_iter()
            .filter(|(_, state, _)| *state == 'Z')
            .collect();
        (!z.is_empty()).then(|| format!("zombies of the test process: {z:?}"))
    };

    // Timeouts: the command alone, and a shell with a child of its own.
    for (args, needle) in [
        (vec!["sleep".to_string(), "30".to_string()], "sleep 30"),
        (sh("sleep 31; echo never"), "sleep 31"),
    ] {
        let t = Instant::now();
        let e = c
            .exec_capture(&id, &args, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        assert!(e.to_string().contains("timed out after 1 s"), "{e}");
        eventually(needle, || {
            let left = processes_running(init, needle);
            (!left.is_empty()).then(|| format!("still running: {left:?}"))
        });
        eventually("init's children", only_idle);
        eventually("our children", no_zombies_of_ours);
    }

    // A caller that gives up (drops the future) kills it too.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(1500),
        c.exec_capture(&id, &sh("sleep 32; echo never"), Duration::from_secs(60)),
    )
    .await;
    assert!(gave_up.is_err());
    eventually("sleep 32", || {
        let left = processes_running(init, "sleep 32");
        (!left.is_empty()).then(|| format!("still running: {left:?}"))
    });
    eventually("init's children", only_idle);
    eventually("our children", no_zombies_of_ours);

    // The container is fine afterwards.
    assert_eq!(
        env.sh(&id, "echo still here").await,
        (0, "still here\n".into())
    );
    // And one that does not run says so.
    c.stop(&id, Duration::from_secs(5)).await.unwrap();
    let e = c
        .exec_capture(&id, &sh("true"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
}

/// Two containers on a real app network reach each other by the names
/// set_hosts gives them. Needs what the network tests need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_each_other_by_name_on_an_app_network() {
    if !ready() {
        return;
    }
    for (tool, package) in [("/usr/sbin/nft", "nftables"), ("/usr/sbin/ip", "iproute2")] {
        if !berth_testkit::require::tool(tool, package) {
            return;
        }
    }
    let env = Env::new().await;
    let nets =
        berthd::network::Networks::new(env.run.path(), berthd::network::NetworkConfig::default());
    let net = format!("ca-{}", std::process::id());
    nets.create(&net).expect("network");
    struct Cleanup<'a>(&'a berthd::network::Networks, String);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.remove(&self.1);
        }
    }
    let _cleanup = Cleanup(&nets, net.clone());
    let web_ep = nets.attach(&net, "ca-web").expect("attach web");
    let api_ep = nets.attach(&net, "ca-api").expect("attach api");
    let web = env
        .run(
            "httpd -f -p 80 -h /srv/www",
            RunOptions {
                name: Some("ca-web".into()),
                netns: Some(web_ep.netns.display().to_string()),
                ..RunOptions::default()
            },
        )
        .await;
    let api = env
        .run(
            IDLE,
            RunOptions {
                name: Some("ca-api".into()),
                netns: Some(api_ep.netns.display().to_string()),
                ..RunOptions::default()
            },
        )
        .await;
    let hosts = [
        (web_ep.ip, vec!["web".to_string(), "ca-web".to_string()]),
        (api_ep.ip, vec!["api".to_string(), "ca-api".to_string()]),
    ];
    env.containers.set_hosts(&web, &hosts).unwrap();
    env.containers.set_hosts(&api, &hosts).unwrap();
    let (_, h) = env.sh(&api, "cat /etc/hosts").await;
    assert!(h.contains(&format!("{}\tca-api\n", api_ep.ip)), "{h}");

    // By name, through /etc/hosts (busybox's resolver reads it).
    let mut last = (0, String::new());
    for _ in 0..50 {
        last = env
            .sh(&api, "wget -q -O - http://web/index.html 2>&1")
            .await;
        if last.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, (0, "hello from the image\n".into()));
    env.containers.remove(&web, true).await.unwrap();
    env.containers.remove(&api, true).await.unwrap();
    let _ = nets.detach(&net, "ca-web");
    let _ = nets.detach(&net, "ca-api");
}
