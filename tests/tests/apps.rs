//! Apps end to end through `berth`: the demo catalog (`catalog/demo`) on
//! images the kit builds from busybox-static and pushes to a real registry,
//! a private bus, a real berthd as root with real networks (bridges, veth,
//! nftables), volumes and containers.
//!
//! Whether an install or uninstall left something behind is judged twice:
//! by Berth (`berth uninstall` says "nothing left", `berth doctor --dry-run`
//! is clean) and independently by a [`Snapshot`] of the machine taken before
//! and after (files under berthd's roots, mounts, cgroups, links, nftables
//! tables, processes), scoped to this test's berthd because other tests run
//! in parallel.
//!
//! The roll-back and bad-input tests add small catalogs written to a temp
//! dir here, on the same images (`broken`: a second image that is not in the
//! registry; `unsupported`: a Compose key Berth refuses).
//!
//! Every test runs on a [`DemoEnv`] of its own, on one registry with the
//! demo images that the tests of this file share: when it drops, also when
//! the test failed, it uninstalls every app, removes every container and
//! deletes the network objects attributed to its berthd.
//!
//! [`Snapshot`]: berth_testkit::snapshot::Snapshot

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use berth_testkit::snapshot::{fd_count, rss_kib, Scope};
use berth_testkit::{free_port, http, CliOutput, DemoEnv};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Fixtures

/// A test's own bus and berthd, with the demo catalog added, on the demo
/// registry the tests of this file share.
fn start() -> DemoEnv {
    DemoEnv::shared().expect("a berthd with the demo catalog")
}

// ---------------------------------------------------------------------------
// Reaching apps

/// GET `url`; it must answer at once (the app was reported ready).
fn get(url: &str) -> http::Response {
    http::get_within(url, Duration::from_secs(5)).unwrap()
}

/// Whether anything answers HTTP on 127.0.0.1:`port` within `timeout`.
fn answers(port: u16, timeout: Duration) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/"))
}

/// The URL `berth install` printed (the first `http://` word).
fn printed_url(out: &str) -> Option<String> {
    out.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|w| w.trim_end_matches(['.', ',', ')']).to_string())
}

/// The host port published for `service` (the first one).
fn host_port(app: &Value, service: &str) -> u16 {
    app["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["service"] == service)
        .and_then(|p| p["host_port"].as_u64())
        .unwrap_or_else(|| panic!("no port of {service} in {app}")) as u16
}

/// `(container name, address)` of `service`.
fn service(app: &Value, name: &str) -> (String, String) {
    let s = app["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {app}"));
    (
        s["container_name"].as_str().unwrap_or_default().to_string(),
        s["address"].as_str().unwrap_or_default().to_string(),
    )
}

/// `berth exec CONTAINER busybox timeout 5 wget -q -O - URL`.
fn wget_from(env: &DemoEnv, container: &str, url: &str) -> CliOutput {
    env.run(&[
        "exec", container, "busybox", "timeout", "5", "wget", "-q", "-O", "-", url,
    ])
}

/// The lines of a snapshot diff with ids, hashes and numbers replaced, so two
/// installs of one app compare equal.
fn shape(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut s = String::new();
            let mut word = String::new();
            let flush = |word: &mut String, s: &mut String| {
                if word.len() >= 8 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
                    s.push_str("<hex>");
                } else if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
                    s.push_str("<n>");
                } else {
                    s.push_str(word);
                }
                word.clear();
            };
            for c in l.chars() {
                if c.is_ascii_alphanumeric() {
                    word.push(c);
                } else {
                    flush(&mut word, &mut s);
                    s.push(c);
                }
            }
            flush(&mut word, &mut s);
            s
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Test catalogs

/// A good service pulled first, then an image the registry does not have.
fn broken_compose() -> &'static str {
    "services:\n\
     \x20 web:\n\
     \x20   image: ${BERTH_DEMO_REGISTRY}/demo/web:latest\n\
     \x20   ports:\n\
     \x20     - \"8080\"\n\
     \x20   volumes:\n\
     \x20     - data:/www/data\n\
     \x20   depends_on:\n\
     \x20     - worker\n\
     \x20 worker:\n\
     \x20   image: ${BERTH_DEMO_REGISTRY}/demo/no-such-image:latest\n\
     volumes:\n\
     \x20 data:\n"
}

/// A key Berth does not support (`build`).
fn unsupported_compose() -> &'static str {
    "services:\n\
     \x20 web:\n\
     \x20   build: .\n\
     \x20   image: ${BERTH_DEMO_REGISTRY}/demo/web:latest\n"
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn install_the_demo_web_app_and_fetch_its_page() {
    let env = start();
    let list = env.ok(&["catalog", "list"]);
    assert!(list.contains("demo"), "{list}");
    let before = env.snapshot();

    let out = env.install("hello", &[]);
    let app = env.app("hello");
    assert_eq!(app["id"], "hello");
    assert_eq!(app["state"], "running", "{app}");
    let port = host_port(&app, "web");
    let url = app["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}")),
        "{url} is not on the published port {port}"
    );
    assert_eq!(
        printed_url(&out.stdout).as_deref(),
        Some(url.as_str()),
        "{out:?}"
    );
    let page = get(&url);
    assert!(page.text().contains("Hello from Berth"), "{}", page.text());
    assert_eq!(env.ok(&["open", "hello"]).trim(), url);
    assert_eq!(env.apps(), ["hello"]);
    let (container, address) = service(&app, "web");
    assert_eq!(container, "hello-web-1");
    assert!(!address.is_empty(), "{app}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.ok(&["logs", "hello"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no logs, though httpd -v logs each GET"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    env.ok(&["logs", "hello", "web"]);

    // Stop, start, restart: the state follows, and so does the page.
    env.ok(&["stop", "hello"]);
    assert_eq!(env.app("hello")["state"], "stopped");
    assert!(
        !answers(port, Duration::from_secs(2)),
        "a stopped app answers"
    );
    env.ok(&["start", "hello"]);
    http::get_within(&url, Duration::from_secs(15)).unwrap();
    env.ok(&["restart", "hello"]);
    http::get_within(&url, Duration::from_secs(15)).unwrap();
    // Update finds the same images and keeps the app working.
    env.ok(&["update", "hello"]);
    http::get_within(&url, Duration::from_secs(15)).unwrap();
    env.assert_doctor_clean("an install");

    env.uninstall("hello");
    assert!(env.apps().is_empty());
    // (Whether the port still answers says nothing: another test's app may
    // have been given it by now. The snapshot shows the mapping is gone.)
    env.assert_nothing_new(&before, &Scope::default(), "install + uninstall of hello");
    env.assert_doctor_clean("an uninstall");
}

#[test]
fn two_services_reach_each_other_by_name() {
    let env = start();
    let before = env.snapshot();
    env.install("hello-api", &[]);
    let app = env.app("hello-api");
    assert_eq!(app["state"], "running", "{app}");
    let port = host_port(&app, "front");
    // The front end asks the api by its service name, `api`.
    let r = get(&format!("http://127.0.0.1:{port}/cgi-bin/api"));
    let json = r.json().unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    assert_eq!(json["greeting"], "Hello from the api service", "{json}");
    // And so does a command in it, by name and by container name.
    let (front, _) = service(&app, "front");
    let (api, api_address) = service(&app, "api");
    assert_eq!(
        (front.as_str(), api.as_str()),
        ("hello-api-front-1", "hello-api-api-1")
    );
    for host in ["api", api.as_str(), api_address.as_str()] {
        let out = wget_from(&env, &front, &format!("http://{host}:8080/cgi-bin/hello"));
        assert!(
            out.success() && out.stdout.contains("Hello from the api service"),
            "front → {host}: {out:?}"
        );
    }
    // Only the front end is published.
    assert_eq!(app["ports"].as_array().map(Vec::len), Some(1), "{app}");
    env.ok(&["logs", "hello-api", "api"]);
    env.uninstall("hello-api");
    env.assert_nothing_new(&before, &Scope::default(), "hello-api");
}

#[test]
fn apps_cannot_reach_each_others_containers() {
    let env = start();
    let before = env.snapshot();
    env.install("hello", &[]);
    env.install("hello-api", &[]);
    let hello = env.app("hello");
    let api_app = env.app("hello-api");
    let (web, web_address) = service(&hello, "web");
    let (front, _) = service(&api_app, "front");
    let (_, api_address) = service(&api_app, "api");
    assert_ne!(web_address, api_address);

    // Within an app: by address, it works (so a failure below is isolation).
    let own = wget_from(
        &env,
        &front,
        &format!("http://{api_address}:8080/cgi-bin/hello"),
    );
    assert!(own.success(), "front → api by address: {own:?}");

    // Across apps: neither by address nor by service name.
    let other = format!("http://{api_address}:8080/cgi-bin/hello");
    let out = wget_from(&env, &web, &other);
    assert!(
        !out.success() && !out.stdout.contains("greeting"),
        "hello's web reached hello-api's api at {other}: {out:?}"
    );
    let out = wget_from(&env, &web, "http://api:8080/cgi-bin/hello");
    assert!(!out.success(), "hello's web resolved `api`: {out:?}");
    let back = format!("http://{web_address}:8080/");
    let out = wget_from(&env, &front, &back);
    assert!(
        !out.success() && !out.stdout.contains("Hello from Berth"),
        "hello-api's front reached hello's web at {back}: {out:?}"
    );

    env.uninstall("hello");
    env.uninstall("hello-api");
    env.assert_nothing_new(&before, &Scope::default(), "two apps");
}

#[test]
fn a_taken_port_is_replaced_and_said_so() {
    let env = start();
    // Hold the catalog's port (8090) and another (8091); if something else
    // holds them already, they are just as taken.
    let held: Vec<Option<TcpListener>> = [8090, 8091]
        .iter()
        .map(|p| TcpListener::bind(("127.0.0.1", *p)).ok())
        .collect();
    let before = env.snapshot();

    let out = env.install("hello", &[]);
    let app = env.app("hello");
    let port = host_port(&app, "web");
    assert_ne!(port, 8090);
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(printed.contains("8090"), "no note about 8090: {printed}");
    assert!(printed.contains(&port.to_string()), "{printed}");
    let p = &app["ports"][0];
    assert_eq!(p["requested"], 8090, "{app}");
    let page = get(&format!("http://127.0.0.1:{port}/"));
    assert!(page.text().contains("Hello from Berth"));
    // Nothing of this berthd redirects 8090 (other tests' berthd may: a
    // connection to it proves nothing here, so look at our own tables).
    let snap = env.snapshot();
    let (_, tables) = snap.network_objects(&env.scope());
    for t in &tables {
        let text = &snap.nft_tables[t].text;
        assert!(!text.contains(". 8090 :"), "{t} maps 8090:\n{text}");
        assert!(
            text.contains(&format!(". {port} :")),
            "{t} does not map {port}:\n{text}"
        );
    }
    assert!(!tables.is_empty(), "no nft table of this berthd");
    env.uninstall("hello");

    // A port asked for with --port that is taken is replaced too.
    let out = env.install("hello", &["--port", "web:8091"]);
    let app = env.app("hello");
    let port = host_port(&app, "web");
    assert_ne!(port, 8091);
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(printed.contains("8091"), "no note about 8091: {printed}");
    assert_eq!(app["ports"][0]["requested"], 8091, "{app}");
    get(&format!("http://127.0.0.1:{port}/"));
    env.uninstall("hello");

    // A free one asked for is given as asked, with no note.
    let free = free_port().unwrap();
    let out = env.install("hello", &["--port", &format!("web:{free}")]);
    let app = env.app("hello");
    assert_eq!(host_port(&app, "web"), free, "{app}");
    assert_eq!(
        app["ports"][0]["requested"].as_u64().unwrap_or(0),
        0,
        "{app}"
    );
    assert!(!out.stdout.contains("taken"), "{out:?}");
    get(&format!("http://127.0.0.1:{free}/"));
    env.uninstall("hello");
    drop(held);
    env.assert_nothing_new(&before, &Scope::default(), "three installs");
}

#[test]
fn kept_data_is_found_again_and_deleted_data_is_gone() {
    let env = start();
    let before = env.snapshot();

    env.install("hello", &[]);
    let app = env.app("hello");
    let volumes: Vec<String> = app["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(volumes, ["hello_site"], "{app}");
    let port = host_port(&app, "web");
    // The new volume over /www started as a copy of the image's /www.
    let page = get(&format!("http://127.0.0.1:{port}/"));
    assert!(page.text().contains("Hello from Berth"), "{}", page.text());
    let (web, _) = service(&app, "web");
    env.ok(&[
        "exec",
        &web,
        "sh",
        "-c",
        "echo kept across installs > /www/note.txt",
    ]);
    let note = |port: u16| get(&format!("http://127.0.0.1:{port}/note.txt")).text();
    assert_eq!(note(port), "kept across installs\n");

    // --keep-data: the volume stays, and is all that stays.
    let out = env.run(&["uninstall", "hello", "--keep-data"]);
    assert!(out.success(), "{out:?}\n{}", env.log_tail());
    assert!(
        out.stdout.contains("hello_site"),
        "the kept volume is not named: {out:?}"
    );
    let volume = env.berthd.root().join("volumes/hello_site");
    assert_eq!(
        std::fs::read_to_string(volume.join("_data/note.txt")).unwrap(),
        "kept across installs\n"
    );
    let mut kept = Scope::default();
    kept.ignore_file(&volume.display().to_string());
    env.assert_nothing_new(&before, &kept, "uninstall --keep-data (the volume aside)");
    env.assert_doctor_clean("uninstall --keep-data");

    // Installing again finds it, and says so.
    let out = env.install("hello", &[]);
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(
        printed.contains("hello_site"),
        "no note about the kept data: {printed}"
    );
    assert_eq!(
        note(host_port(&env.app("hello"), "web")),
        "kept across installs\n"
    );

    // --delete-data: nothing at all.
    env.uninstall("hello");
    assert!(!volume.exists(), "{} is still there", volume.display());
    env.assert_nothing_new(&before, &Scope::default(), "uninstall --delete-data");

    // Data kept by an uninstall can be deleted later without installing.
    env.install("hello", &[]);
    let out = env.run(&["uninstall", "hello", "--keep-data"]);
    assert!(out.success(), "{out:?}");
    assert!(volume.exists());
    let out = env.run(&["uninstall", "hello", "--delete-data"]);
    assert!(out.success(), "{out:?}\n{}", env.log_tail());
    assert!(!volume.exists(), "{} is still there", volume.display());
    env.assert_nothing_new(&before, &Scope::default(), "deleting kept data later");
    let out = env.run(&["uninstall", "hello", "--delete-data"]);
    assert!(
        !out.success() && out.stderr.contains("not installed"),
        "{out:?}"
    );
    env.assert_doctor_clean("uninstall --delete-data");
}

#[test]
fn an_app_whose_image_is_missing_rolls_back_to_nothing() {
    let mut env = start();
    env.temp_catalog("test-broken", &[("broken", broken_compose())])
        .unwrap();
    let before = env.snapshot();
    let said = env.fails(&["install", "broken"]);
    assert!(
        said.contains("no-such-image"),
        "the error does not name the image: {said}"
    );
    assert!(env.apps().is_empty(), "a failed install is listed");
    env.fails(&["inspect-app", "broken"]);
    // The good image it pulled, its volume and network are gone with it.
    assert!(!env.berthd.root().join("volumes/broken_data").exists());
    let images = env.ok(&["images"]);
    assert!(
        !images.contains("demo/web"),
        "the pulled image stayed: {images}"
    );
    env.assert_nothing_new(&before, &Scope::default(), "a failed install");
    env.assert_doctor_clean("a failed install");
}

const INSTALL_POINTS: [&str; 9] = [
    "install-recorded",
    "install-pulled-image",
    "install-volume",
    "install-network",
    "install-container",
    "install-attached",
    "install-published",
    "install-started",
    "install-ready",
];

const UNINSTALL_POINTS: [&str; 6] = [
    "uninstall-recorded",
    "uninstall-container-removed",
    "uninstall-network",
    "uninstall-volumes",
    "uninstall-images",
    "uninstall-done",
];

/// What became of the app after berthd was killed and started again.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Installed,
    Gone,
}

/// Waits for recovery to settle the app (not `installing`/`removing`),
/// then says whether it is installed or gone.
fn settled(env: &DemoEnv, app: &str) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.run(&["inspect-app", app]);
        if !out.success() {
            assert!(!env.apps().contains(&app.to_string()));
            return Outcome::Gone;
        }
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let state = v["state"].as_str().unwrap_or_default().to_string();
        if !matches!(state.as_str(), "installing" | "removing" | "updating") {
            assert_eq!(state, "running", "after recovery: {v}");
            return Outcome::Installed;
        }
        assert!(
            Instant::now() < deadline,
            "{app} is still {state} a minute after the restart\n{}",
            env.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_crash_at_any_point_leaves_the_app_whole_or_gone() {
    let mut env = start();
    let before = env.snapshot();

    // What a good install is made of (mounts, cgroups, links, tables,
    // processes), to compare a recovered install with.
    env.install("hello", &[]);
    let reference = shape(&env.snapshot().owned(&env.scope()));
    env.uninstall("hello");
    env.assert_nothing_new(&before, &Scope::default(), "a plain install");

    let mut outcomes = BTreeMap::new();
    for point in INSTALL_POINTS.iter().chain(UNINSTALL_POINTS.iter()) {
        let before_install = env.snapshot();
        let wreck = if point.starts_with("install-") {
            env.crash_at(point, &["install", "hello"])
        } else {
            env.install("hello", &[]);
            env.crash_at(point, &["uninstall", "hello", "--delete-data"])
        };
        let outcome = settled(&env, "hello");
        env.assert_doctor_clean(&format!("a crash at {point}"));
        if outcome == Outcome::Installed {
            let app = env.app("hello");
            let port = host_port(&app, "web");
            http::get_within(
                &format!("http://127.0.0.1:{port}/"),
                Duration::from_secs(15),
            )
            .unwrap();
            let now = shape(&env.snapshot().owned(&env.scope()));
            assert_eq!(now, reference, "{point}: the recovered install differs");
            env.uninstall("hello");
        }
        env.assert_nothing_new(
            &before_install,
            &wreck,
            &format!("a crash at {point} ({outcome:?})"),
        );
        outcomes.insert(*point, outcome);
    }
    eprintln!("outcomes after a crash: {outcomes:?}");
    env.assert_nothing_new(&before, &Scope::default(), "the crash matrix");
}

#[test]
fn twenty_install_uninstall_cycles_leave_nothing_and_do_not_grow_berthd() {
    let env = start();
    let before = env.snapshot();
    let pid = env.berthd.pid();
    // (fds, RSS KiB) of berthd after each cycle.
    let mut seen: Vec<(usize, u64)> = Vec::new();
    for cycle in 1..=20 {
        env.install("hello", &[]);
        let port = host_port(&env.app("hello"), "web");
        get(&format!("http://127.0.0.1:{port}/"));
        env.uninstall("hello");
        if cycle % 5 == 0 {
            env.assert_nothing_new(&before, &Scope::default(), &format!("cycle {cycle}"));
        }
        seen.push((fd_count(pid).unwrap(), rss_kib(pid).unwrap()));
    }
    assert_eq!(env.berthd.pid(), pid, "berthd restarted");
    // Cycle 5 against cycle 20, each as the median of it and its
    // neighbours: RSS moves by a few MiB from one sample to the next.
    let median = |cycles: std::ops::RangeInclusive<usize>, f: fn(&(usize, u64)) -> u64| {
        let mut v: Vec<u64> = cycles.map(|c| f(&seen[c - 1])).collect();
        v.sort();
        v[v.len() / 2]
    };
    let fds = (
        median(4..=6, |s| s.0 as u64),
        median(18..=20, |s| s.0 as u64),
    );
    assert!(
        fds.1 <= fds.0 + 2,
        "berthd's fds grew from {} at cycle 5 to {} at cycle 20 (after each cycle: {seen:?})",
        fds.0,
        fds.1
    );
    let rss = (median(4..=6, |s| s.1), median(18..=20, |s| s.1));
    let margin = (rss.0 / 10).max(4096);
    assert!(
        rss.1 <= rss.0 + margin,
        "berthd's RSS grew from {} KiB at cycle 5 to {} KiB at cycle 20, more than {margin} KiB \
         (fds, RSS KiB after each cycle: {seen:?})",
        rss.0,
        rss.1
    );
    eprintln!("berthd's (fds, RSS KiB) after each cycle: {seen:?}");
    env.assert_doctor_clean("20 cycles");
}

#[test]
fn bad_input_is_refused_clearly_and_leaves_nothing() {
    let mut env = start();
    let catalog = env
        .temp_catalog(
            "test-unsupported",
            &[("unsupported", unsupported_compose())],
        )
        .unwrap();
    let before = env.snapshot();

    let said = env.fails(&["install", "no-such-app"]);
    assert!(said.contains("no-such-app"), "{said}");
    let said = env.fails(&["install", "unsupported"]);
    assert!(
        said.contains("build") && said.contains("compose.yaml"),
        "the unsupported key and its file are not named: {said}"
    );
    let said = env.fails(&["install", "hello", "--port", "web:70000"]);
    assert!(said.contains("70000") || said.contains("65535"), "{said}");
    let said = env.fails(&["install", "hello", "--port", "web:0"]);
    assert!(said.contains("65535"), "{said}");
    let said = env.fails(&["install", "hello", "--port", "nosuch:8080"]);
    assert!(said.contains("nosuch"), "{said}");
    let said = env.fails(&["install", "hello", "--catalog", "no-such-catalog"]);
    assert!(said.contains("no-such-catalog"), "{said}");
    let said = env.fails(&["uninstall", "hello"]);
    assert!(said.contains("not installed"), "{said}");
    let said = env.fails(&["catalog", "remove", "no-such-catalog"]);
    assert!(said.contains("no-such-catalog"), "{said}");
    let missing = catalog.join("no-such-dir");
    env.fails(&["catalog", "add", missing.to_str().unwrap()]);
    assert!(env.apps().is_empty());
    env.assert_nothing_new(&before, &Scope::default(), "refused commands");

    env.install("hello", &[]);
    let said = env.fails(&["install", "hello"]);
    assert!(said.contains("already installed"), "{said}");
    assert_eq!(
        env.app("hello")["state"],
        "running",
        "a second install broke the first"
    );
    env.uninstall("hello");
    env.assert_nothing_new(
        &before,
        &Scope::default(),
        "install, install again, uninstall",
    );
    env.assert_doctor_clean("bad input");
}
