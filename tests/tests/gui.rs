//! The desktop window end to end: the real Tauri app (built by `cargo
//! build --workspace --bins`) in a real WebKitGTK webview under Xvfb,
//! driven through `tauri-driver` and `WebKitWebDriver`, against a real
//! berthd on a private bus with the demo catalog on a real registry.
//!
//! What a person would do, in order: find an app in the catalog, install
//! it and watch the progress, see it running and its address answer, look
//! at its live graphs and log, look at storage, remove it with its data and
//! read the audit, and see the window cope with berthd going away and
//! coming back, and with a registry it cannot reach. Each view is saved as
//! a screenshot under `target/gui-screenshots/` (or `$BERTH_SCREENSHOTS`);
//! the README shows the best of them.
//!
//! This is a test target of its own (`cargo test -p berth-tests --test
//! gui`) so the quick helper tests never wait for a window.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_testkit::berthd::{bin_dir, find_binary};
use berth_testkit::demo;
use berth_testkit::fsutil::TestDir;
use berth_testkit::webdriver::{Display, Driver, Session};
use berth_testkit::{http, DemoEnv};
use serde_json::{json, Value};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(120);

fn screenshots() -> PathBuf {
    std::env::var_os("BERTH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            bin_dir()
                .expect("target dir")
                .parent()
                .expect("target dir")
                .join("gui-screenshots")
        })
}

/// A berthd with the demo catalog on a registry of its own, and a catalog
/// `offline` with one app whose registry does not answer.
struct Env {
    // Dropped first: the catalog dir outlives the berthd that reads it.
    demo: DemoEnv,
    _offline: TestDir,
}

fn start_env() -> Env {
    let demo = DemoEnv::start().expect("a berthd with the demo catalog");
    // An app whose registry does not answer: a closed port on this machine.
    let dir = TestDir::new("gui-offline").expect("temp dir");
    let app = dir.path().join("far-away");
    std::fs::create_dir_all(&app).unwrap();
    let closed = berth_testkit::free_port().unwrap();
    std::fs::write(
        app.join("app.toml"),
        "id = \"far-away\"\ntitle = \"Far away\"\nversion = \"1\"\n\
         description = \"An app on a registry that cannot be reached.\"\n\
         category = \"networking\"\nicon = \"icon.svg\"\n",
    )
    .unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        format!("services:\n  web:\n    image: 127.0.0.1:{closed}/demo/web:latest\n"),
    )
    .unwrap();
    std::fs::copy(demo::catalog().join("hello/icon.svg"), app.join("icon.svg")).unwrap();
    demo.add_catalog(dir.path(), "offline")
        .expect("adding the offline catalog");
    Env {
        demo,
        _offline: dir,
    }
}

fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// Record, from now on, whether elements with these test ids ever appear
/// (a progress bar may show for less time than one WebDriver round trip).
fn watch_for(s: &Session, ids: &[&str]) {
    s.execute(
        "const ids = arguments[0];
         window.__seen = window.__seen || {};
         const check = () => ids.forEach((id) => {
           if (document.querySelector(`[data-testid=\"${id}\"]`)) window.__seen[id] = true;
         });
         new MutationObserver(check).observe(document.body,
           { subtree: true, childList: true, attributes: true, characterData: true });
         check();",
        json!([ids]),
    )
    .expect("installing the observer");
}

fn seen(s: &Session, id: &str) -> bool {
    s.execute("return !!(window.__seen || {})[arguments[0]];", json!([id]))
        .expect("reading the observer")
        .as_bool()
        .unwrap_or(false)
}

#[test]
fn a_person_installs_watches_and_removes_an_app() {
    let mut env = start_env();
    let berthd_log = env.demo.berthd.log_path();
    let shots = screenshots();
    let display = Display::start(1280, 800).expect("Xvfb");
    let logs = TestDir::new("gui-logs").expect("temp dir");
    let driver = Driver::start(
        &display,
        &[("DBUS_SYSTEM_BUS_ADDRESS", env.demo.berthd.bus_address())],
        &logs.path().join("tauri-driver.log"),
    )
    .expect("tauri-driver");
    let app = find_binary("berth-app", "BERTH_APP").expect("berth-app");
    let s = driver.session(&app).expect("a session with the app");
    let fail = |what: &str, e: anyhow::Error| -> ! {
        let _ = s.screenshot(&shots.join("failure.png"));
        panic!(
            "{what}: {e:#}\n--- tauri-driver and app log:\n{}\n--- berthd log:\n{}",
            driver.log(),
            std::fs::read_to_string(&berthd_log).unwrap_or_default()
        )
    };
    s.set_size(1280, 800).ok();

    // The catalog: every demo app is there; the search narrows it.
    s.wait_for(&testid("card-hello"), LONG)
        .unwrap_or_else(|e| fail("the catalog did not show", e));
    for id in [
        "hello-api",
        "docs",
        "notes",
        "status-board",
        "file-drop",
        "far-away",
    ] {
        s.wait_for(&testid(&format!("card-{id}")), SHORT)
            .unwrap_or_else(|e| fail("a demo app is missing", e));
    }
    s.screenshot(&shots.join("catalog.png")).unwrap();
    let search = s.wait_for(&testid("catalog-search"), SHORT).unwrap();
    s.type_into(&search, "one-page").unwrap();
    s.wait_gone(&testid("card-notes"), SHORT)
        .unwrap_or_else(|e| fail("the search did not narrow the catalog", e));
    assert!(s.find(&testid("card-hello")).unwrap().is_some());
    assert_eq!(s.find_all(".card").unwrap().len(), 1, "only hello matches");

    // Install: progress, then Running.
    watch_for(&s, &["progress-hello"]);
    s.click_on(&testid("action-hello")).unwrap();
    s.wait_text(&testid("state-hello"), "Running", LONG)
        .unwrap_or_else(|e| fail("hello did not reach Running", e));
    assert!(seen(&s, "progress-hello"), "the card never showed progress");
    let button = s.find(&testid("action-hello")).unwrap().unwrap();
    assert_eq!(s.text(&button).unwrap(), "Open");
    s.screenshot(&shots.join("catalog-installed.png")).unwrap();

    // An app from a registry that cannot be reached says so, with a fix.
    let search = s.wait_for(&testid("catalog-search"), SHORT).unwrap();
    s.clear(&search).unwrap();
    s.type_into(&search, "far").unwrap();
    s.click_on(&testid("action-far-away")).unwrap();
    let note = s
        .wait_for(
            &format!("{} {}", testid("card-far-away"), testid("error-note")),
            LONG,
        )
        .unwrap_or_else(|e| fail("no error for an unreachable registry", e));
    let text = s.text(&note).unwrap();
    assert!(text.contains("network"), "the note gives no fix: {text}");
    s.screenshot(&shots.join("registry-error.png")).unwrap();

    // The installed view: state, address, CPU and memory; the address answers.
    s.click_on(&testid("nav-installed")).unwrap();
    let link = s
        .wait_for(&testid("url-hello"), SHORT)
        .unwrap_or_else(|e| fail("no address for hello", e));
    let url = s.attribute(&link, "href").unwrap().unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "hello's address: {url:?}"
    );
    let page = http::get(&url).expect("fetching the app's page");
    assert!(page.is_success(), "{url} answered {}", page.status);
    s.screenshot(&shots.join("installed.png")).unwrap();

    // Details: the graphs fill with points, the log shows.
    s.click_on(&testid("details-hello")).unwrap();
    s.wait_text(&testid("detail-title"), "Hello", SHORT)
        .unwrap();
    for chart in [
        "chart-cpu",
        "chart-memory",
        "chart-network",
        "chart-disk",
        "chart-pids",
    ] {
        s.wait_until(
            &format!("{chart} to show 3 points"),
            Duration::from_secs(20),
            || {
                let e = s.wait_for(&testid(chart), SHORT)?;
                let n: usize = s
                    .attribute(&e, "data-points")?
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or(0);
                Ok((n >= 3).then_some(()))
            },
        )
        .unwrap_or_else(|e| fail("the graphs stayed empty", e));
    }
    // A few more seconds of history, with some visits to the page so the
    // network graph and the log have something to show in the picture.
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        let _ = http::get(&url);
        std::thread::sleep(Duration::from_millis(150));
    }
    s.screenshot(&shots.join("detail.png")).unwrap();

    // Storage: the image is used by hello's container, its volume is listed.
    s.click_on(&testid("nav-storage")).unwrap();
    s.wait_text(&testid("storage-images"), "hello-web-1", SHORT)
        .unwrap_or_else(|e| fail("storage does not show the image's user", e));
    s.wait_for(&testid("volume-hello_site"), SHORT)
        .unwrap_or_else(|e| fail("storage does not show the volume", e));
    s.screenshot(&shots.join("storage.png")).unwrap();

    // Remove with its data: the audit says nothing is left.
    s.click_on(&testid("nav-installed")).unwrap();
    s.click_on(&testid("remove-hello")).unwrap();
    s.wait_for(&testid("remove-dialog"), SHORT).unwrap();
    s.screenshot(&shots.join("remove-dialog.png")).unwrap();
    s.click_on(&testid("delete-data")).unwrap();
    s.click_on(&testid("confirm-remove")).unwrap();
    s.wait_text(
        &testid("audit-message"),
        "nothing left on this computer",
        LONG,
    )
    .unwrap_or_else(|e| fail("no clean audit after the remove", e));
    s.screenshot(&shots.join("removed.png")).unwrap();
    let apps: Vec<Value> =
        serde_json::from_str(&env.demo.ok(&["apps", "--format", "json"])).unwrap();
    assert!(apps.is_empty(), "berthd still has apps: {apps:?}");
    let volumes = env.demo.ok(&["volume", "ls"]);
    assert!(!volumes.contains("hello_site"), "{volumes}");

    // berthd goes away: the window says so and how to fix it; it comes back.
    env.demo.berthd.stop().unwrap();
    let banner = s
        .wait_text(&testid("helper-banner"), "not running", SHORT)
        .unwrap_or_else(|e| fail("no banner when berthd stopped", e));
    assert!(banner.contains("systemctl start berthd"), "{banner}");
    s.screenshot(&shots.join("helper-down.png")).unwrap();
    env.demo.berthd.restart().unwrap();
    s.wait_gone(&testid("helper-banner"), SHORT)
        .unwrap_or_else(|e| fail("the banner stayed after berthd came back", e));
    s.click_on(&testid("nav-catalog")).unwrap();
    s.wait_for(&testid("card-hello"), SHORT).unwrap();

    // Small window still works.
    s.set_size(800, 600).ok();
    std::thread::sleep(Duration::from_millis(500));
    s.screenshot(&shots.join("catalog-800x600.png")).unwrap();
    let overflow = s
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth",
            json!([]),
        )
        .unwrap();
    assert_eq!(
        overflow,
        json!(false),
        "the page scrolls sideways at 800x600"
    );
    drop(s);
    drop(driver);

    // A desktop in dark mode gets the dark theme: GTK tells WebKit, the
    // page follows `prefers-color-scheme`.
    let driver = Driver::start(
        &display,
        &[
            ("DBUS_SYSTEM_BUS_ADDRESS", env.demo.berthd.bus_address()),
            ("GTK_THEME", "Adwaita:dark"),
        ],
        &logs.path().join("tauri-driver-dark.log"),
    )
    .expect("tauri-driver");
    let s = driver.session(&app).expect("a session with the app");
    s.set_size(1280, 800).ok();
    s.wait_for(&testid("card-hello"), LONG).unwrap();
    let dark = s
        .execute(
            "return [matchMedia('(prefers-color-scheme: dark)').matches,
                     getComputedStyle(document.documentElement).backgroundColor]",
            json!([]),
        )
        .unwrap();
    assert_eq!(dark[0], json!(true), "{dark}");
    assert_ne!(
        dark[1],
        json!("rgb(246, 247, 249)"),
        "still the light background: {dark}"
    );
    s.screenshot(&shots.join("catalog-dark.png")).unwrap();
}

/// A user berthd does not let change anything (not root, no polkit here,
/// not in group `berth`) clicks Install: the window says so, and how to get
/// the right, and nothing is installed.
#[test]
fn a_user_without_rights_is_told_how_to_get_them() {
    let env = DemoEnv::start().expect("a berthd with the demo catalog");
    let shots = screenshots();
    let display = Display::start(1280, 800).expect("Xvfb");
    let home = TestDir::new("gui-nobody").expect("temp dir");
    let logs = TestDir::new("gui-logs").expect("temp dir");
    // nobody:nogroup, as the kit's `Cli::run_as_nobody`.
    let driver = Driver::start_as(
        &display,
        &[("DBUS_SYSTEM_BUS_ADDRESS", env.berthd.bus_address())],
        &logs.path().join("tauri-driver.log"),
        (65534, 65534),
        home.path(),
    )
    .expect("tauri-driver as nobody");
    let app = find_binary("berth-app", "BERTH_APP").expect("berth-app");
    let s = driver.session(&app).expect("a session with the app");
    s.set_size(1280, 800).ok();
    // Reading is open to everyone: the catalog shows.
    s.wait_for(&testid("card-hello"), LONG)
        .unwrap_or_else(|e| panic!("no catalog for nobody: {e:#}\n{}", driver.log()));
    s.click_on(&testid("action-hello")).unwrap();
    let note = s
        .wait_for(
            &format!("{} {}", testid("card-hello"), testid("error-note")),
            LONG,
        )
        .unwrap_or_else(|e| panic!("no refusal shown: {e:#}\n{}", driver.log()));
    let text = s.text(&note).unwrap();
    assert!(text.contains("`berth` group"), "no fix in: {text}");
    // The group is root's equal, and the window says so (issue 11).
    assert!(text.contains("anything root can do"), "{text}");
    // The progress bar the click showed has gone (no job was started).
    s.wait_gone(&testid("progress-hello"), SHORT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.screenshot(&shots.join("not-authorized.png")).unwrap();
    assert!(env.apps().is_empty(), "installed anyway: {:?}", env.apps());
}

/// A web page on this machine that is not Berth's; it counts the requests
/// it gets (one at a time: it is asked nothing when all is well). Its thread stops and is joined when it drops.
struct Elsewhere {
    url: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Elsewhere {
    fn start() -> Elsewhere {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a port for the page");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(1))).ok();
                        // A connection alone is not a request: WebKit
                        // preconnects to a link's host as it is clicked,
                        // before the navigation is decided on.
                        if http::read_request_head(&mut conn).is_ok() {
                            h.fetch_add(1, Ordering::SeqCst);
                            let _ = http::write_response(
                                &mut conn,
                                200,
                                "OK",
                                &[("Content-Type", "text/html")],
                                b"<!doctype html><title>elsewhere</title><p>not Berth</p>",
                            );
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Elsewhere {
            url,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The window shows Berth's page and nothing else (issue 11): whatever the
/// page does to go elsewhere, another site on this machine or a catalog
/// icon as a document, it stays where it is, and no request leaves. The
/// icons still show: berthd's rewrite and the icon scheme's locked-down
/// answer do not stop an `<img>`.
#[test]
fn the_window_shows_only_its_own_page() {
    let env = DemoEnv::start().expect("a berthd with the demo catalog");
    let shots = screenshots();
    let display = Display::start(1280, 800).expect("Xvfb");
    let logs = TestDir::new("gui-logs").expect("temp dir");
    let driver = Driver::start(
        &display,
        &[("DBUS_SYSTEM_BUS_ADDRESS", env.berthd.bus_address())],
        &logs.path().join("tauri-driver.log"),
    )
    .expect("tauri-driver");
    let app = find_binary("berth-app", "BERTH_APP").expect("berth-app");
    let s = driver.session(&app).expect("a session with the app");
    let fail = |what: &str, e: anyhow::Error| -> ! {
        let _ = s.screenshot(&shots.join("failure-navigation.png"));
        panic!(
            "{what}: {e:#}\n--- tauri-driver and app log:\n{}",
            driver.log()
        )
    };
    s.wait_for(&testid("card-hello"), LONG)
        .unwrap_or_else(|e| fail("the catalog did not show", e));
    s.wait_until("hello's icon to be drawn", SHORT, || {
        let drawn = s.execute(
            "const i = document.querySelector('[data-testid=\"card-hello\"] img.icon');
             return !!i && i.complete && i.naturalWidth > 0;",
            json!([]),
        )?;
        Ok((drawn == json!(true)).then_some(()))
    })
    .unwrap_or_else(|e| fail("the icon is not drawn", e));
    let home = s.execute("return location.href", json!([])).unwrap();
    let home = home.as_str().unwrap_or_default().to_string();
    assert!(
        home.starts_with("tauri://localhost"),
        "the page is at {home}"
    );

    let elsewhere = Elsewhere::start();
    let targets = [elsewhere.url.as_str(), "berth-icon://localhost/hello"];
    let ways = [
        ("location", "window.location.href = arguments[0];"),
        (
            "a link",
            "const a = document.createElement('a'); a.href = arguments[0];
             document.body.append(a); a.click(); a.remove();",
        ),
        ("window.open", "window.open(arguments[0]);"),
    ];
    for target in targets {
        for (way, script) in ways {
            // Before the guard, the page was gone by the time this returned.
            let _ = s.execute(script, json!([target]));
            std::thread::sleep(Duration::from_millis(1500));
            let at = s
                .execute("return location.href", json!([]))
                .unwrap_or_else(|e| fail(&format!("{way} to {target}"), e));
            assert_eq!(
                at.as_str(),
                Some(home.as_str()),
                "{way} to {target} took the window away\n{}",
                driver.log()
            );
            assert!(
                s.find(&testid("card-hello")).unwrap().is_some(),
                "{way} to {target}: the catalog is gone"
            );
        }
    }
    assert_eq!(
        elsewhere.hits(),
        0,
        "the window asked the other site for a page"
    );
    let log = driver.log();
    assert!(
        log.contains("refused to navigate window `main`"),
        "the guard did not say why: {log}"
    );
}
