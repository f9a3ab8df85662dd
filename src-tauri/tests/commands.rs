//! The window's Rust commands on Tauri's mock runtime, against a real
//! berthd on a private bus (the test kit's `PrivateBus` and `Berthd`, the
//! demo catalog on images in a real registry): what the page would get for
//! each `invoke`, and what streams through its channels.
//!
//! The app is built exactly as the binary builds it (`berth_app::run_app`),
//! on `tauri::test::mock_builder()`, with one mock window; commands are sent
//! as the page sends them (`InvokeRequest`, camelCase JSON arguments).
//!
//! Channels: the page passes a channel as the string `__CHANNEL__:<id>`
//! (what `tauri::ipc::Channel` serialises to). The command side turns that
//! id into a channel that writes to the webview (on the mock runtime: an
//! `eval` that goes nowhere), so messages are taken off before that with the
//! builder's `channel_interceptor`, by channel id, into an mpsc per channel.
//!
//! The app reaches berthd through `DBUS_SYSTEM_BUS_ADDRESS`, read when it
//! connects. The variable is process-wide, so the tests here hold
//! [`serial`] for their whole run, and each bus gets its own app instance
//! (an app keeps its first connection).
//!
//! Run as root, after `cargo build --workspace --bins`.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use berth_app::commands::acl::COMMANDS;
use berth_app::commands::watch::Subscriptions;
use berth_testkit::fsutil::TestDir;
use berth_testkit::{http, Berthd, DemoEnv, PrivateBus};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, Channel, InvokeBody, InvokeResponseBody};
use tauri::test::{
    assert_ipc_response, get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime,
    INVOKE_KEY,
};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager, WebviewWindow, WebviewWindowBuilder};

// ---------------------------------------------------------------------------
// The app on the mock runtime

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: they set `DBUS_SYSTEM_BUS_ADDRESS`.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Point the next app's connection at `address`.
fn use_bus(address: &str) {
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", address);
}

/// The channels a window handed out, by id.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<HashMap<u32, Sender<Value>>>>);

fn to_value(body: &InvokeResponseBody) -> Value {
    match body {
        InvokeResponseBody::Json(s) => {
            serde_json::from_str(s).unwrap_or_else(|e| panic!("a channel message {s:?}: {e}"))
        }
        InvokeResponseBody::Raw(bytes) => Value::from(bytes.clone()),
    }
}

impl Router {
    /// The channel interceptor: true (consumed) for our channels.
    fn deliver(&self, id: u32, body: &InvokeResponseBody) -> bool {
        let Some(tx) = self.0.lock().unwrap().get(&id).cloned() else {
            return false;
        };
        let _ = tx.send(to_value(body));
        true
    }

    /// A channel for a command's `onEvent`: its argument value and what it
    /// receives.
    fn channel(&self, what: &str) -> (Value, Events) {
        let (tx, rx) = mpsc::channel();
        let direct = tx.clone();
        // The Rust side of a channel, as the page's `new Channel()`: a fresh
        // id, serialised as `__CHANNEL__:<id>`. Sent to directly (should a
        // command ever get this very channel), and by id through the
        // interceptor (how a command's argument channel delivers).
        let channel: Channel<InvokeResponseBody> = Channel::new(move |body| {
            let _ = direct.send(to_value(&body));
            Ok(())
        });
        self.0.lock().unwrap().insert(channel.id(), tx);
        let arg = serde_json::to_value(&channel).unwrap();
        assert_eq!(arg, json!(format!("__CHANNEL__:{}", channel.id())));
        (
            arg,
            Events {
                rx,
                what: what.to_string(),
                _channel: channel,
            },
        )
    }
}

/// What one channel received, in order.
struct Events {
    rx: Receiver<Value>,
    what: String,
    _channel: Channel<InvokeResponseBody>,
}

impl Events {
    /// The next message, if one comes within `within`.
    fn next(&self, within: Duration) -> Option<Value> {
        match self.rx.recv_timeout(within) {
            Ok(v) => Some(v),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("{}: the router went away", self.what),
        }
    }

    /// The next message, which must come within `within`.
    fn expect(&self, within: Duration) -> Value {
        self.next(within)
            .unwrap_or_else(|| panic!("{}: nothing within {within:?}", self.what))
    }

    /// Everything up to and including the first `event` == `last`.
    fn until(&self, last: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(e) => {
                    let done = e["event"] == last;
                    seen.push(e);
                    if done {
                        return seen;
                    }
                }
                None => panic!(
                    "{}: no `{last}` within {within:?}; got {}",
                    self.what,
                    Value::from(seen)
                ),
            }
        }
    }

    /// Whatever arrived by now.
    fn drain(&self) -> Vec<Value> {
        self.rx.try_iter().collect()
    }
}

/// The app with one (mock) window, as the page sees it.
struct Window {
    // Dropped in this order.
    webview: WebviewWindow<MockRuntime>,
    app: App<MockRuntime>,
    router: Router,
}

impl Window {
    /// A new app instance; it connects to the bus `DBUS_SYSTEM_BUS_ADDRESS`
    /// names (when first needed, and its status watcher needs it at once).
    fn open() -> Window {
        let router = Router::default();
        let r = router.clone();
        let app = berth_app::run_app(mock_builder())
            .channel_interceptor(move |_webview, callback, _index, body| {
                r.deliver(callback.0, body)
            })
            .build(mock_context(noop_assets()))
            .expect("building the app on the mock runtime");
        let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("the mock window");
        Window {
            webview,
            app,
            router,
        }
    }

    fn request(cmd: &str, args: Value) -> InvokeRequest {
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        }
    }

    /// `invoke(cmd, args)`: the value, or the error (a `UiError`).
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(&self.webview, Self::request(cmd, args)).map(|body| {
            body.deserialize::<Value>()
                .unwrap_or_else(|e| panic!("{cmd}: the answer is not JSON: {e}"))
        })
    }

    /// `invoke`, which must succeed.
    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.invoke(cmd, args.clone())
            .unwrap_or_else(|e| panic!("{cmd} {args} failed: {e}"))
    }

    /// `invoke`, which must fail: the `UiError`.
    fn err(&self, cmd: &str, args: Value) -> Value {
        match self.invoke(cmd, args.clone()) {
            Ok(v) => panic!("{cmd} {args} succeeded: {v}"),
            Err(e) => {
                for field in ["kind", "message", "fix"] {
                    assert!(e[field].is_string(), "{cmd}: not a UiError: {e}");
                }
                e
            }
        }
    }

    fn subscriptions(&self) -> usize {
        self.app.state::<Subscriptions>().len()
    }

    fn app_info(&self, app: &str) -> Value {
        self.ok("app_info", json!({ "app": app }))
    }

    /// Wait until `app_info(app).state` is `state`.
    fn wait_state(&self, app: &str, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let info = self.app_info(app);
            if info["state"] == state {
                return info;
            }
            if Instant::now() > deadline {
                panic!("{app} is not {state} within {within:?}: {info}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `helper_status`, which never fails itself.
fn status(w: &Window) -> Value {
    let s = w.ok("helper_status", json!({}));
    assert!(s["ok"].is_boolean(), "{s}");
    s
}

/// Asserts a `helper_status` says berthd cannot be reached, as `kind`.
fn assert_down(s: &Value, kind: &str) {
    assert_eq!(s["ok"], false, "{s}");
    assert!(s["info"].is_null(), "{s}");
    assert_eq!(s["error"]["kind"], kind, "{s}");
}

// ---------------------------------------------------------------------------
// berthd cannot be reached

#[test]
fn helper_status_says_why_berthd_cannot_be_reached() {
    let _serial = serial();

    // No bus at the address: `no_bus`, for the status and for a command.
    let dir = TestDir::new("berth-app-nobus-").unwrap();
    let missing = dir.join("no-such-bus");
    use_bus(&format!("unix:path={}", missing.display()));
    let w = Window::open();
    let s = status(&w);
    assert_down(&s, "no_bus");
    assert!(
        s["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("DBUS_SYSTEM_BUS_ADDRESS"),
        "{s}"
    );
    let e = w.err("catalog_apps", json!({}));
    assert_eq!(e["kind"], "no_bus", "{e}");
    drop(w);

    // A bus without berthd: `not_running`, and the fix says how to start it.
    let bus = PrivateBus::start().expect("private bus");
    use_bus(bus.address());
    let w = Window::open();
    let s = status(&w);
    assert_down(&s, "not_running");
    let fix = s["error"]["fix"].as_str().unwrap();
    assert!(
        fix.contains("systemctl start berthd") && fix.contains("scripts/run.sh"),
        "{s}"
    );
    let e = w.err("installed_apps", json!({}));
    assert_eq!(e["kind"], "not_running", "{e}");
    let (on_event, _events) = w.router.channel("install_app without berthd");
    let e = w.err(
        "install_app",
        json!({ "app": "hello", "onEvent": on_event }),
    );
    assert_eq!(e["kind"], "not_running", "{e}");

    // berthd starts: the same window reaches it, on its first connection.
    let mut berthd = Berthd::start(&bus).expect("berthd");
    let s = status(&w);
    assert_eq!(s["ok"], true, "{s}\n{}", berthd.log());
    assert!(s["error"].is_null(), "{s}");
    assert_eq!(s["info"]["root"], berthd.root().to_str().unwrap(), "{s}");
    assert_eq!(w.ok("installed_apps", json!({})), json!([]));

    // berthd stops: `not_running` again, the bus still being there.
    berthd.stop().expect("stopping berthd");
    assert_down(&status(&w), "not_running");
    drop(w);
}

// ---------------------------------------------------------------------------
// Everything else, against a running berthd

/// The registry with the demo images, a bus, berthd with the demo catalog
/// (the kit's [`DemoEnv`]), and the window. Dropping it closes the window,
/// then the env removes every app and container of this berthd and the
/// network objects it made, also when the test failed.
struct Env {
    // Dropped in this order: the window before the berthd it talks to.
    window: Window,
    demo: DemoEnv,
}

impl Env {
    fn start() -> Env {
        let demo = DemoEnv::start().expect("a berthd with the demo catalog");
        use_bus(demo.bus().address());
        Env {
            window: Window::open(),
            demo,
        }
    }
}

/// Checks the events of a job that succeeded: `started` (with the path the
/// command returned), then `progress` (at least once), then `finished`
/// (last, once); the `finished` data.
fn assert_job(events: &[Value], job: &Value, what: &str) -> Value {
    let all = Value::from(events.to_vec());
    assert_eq!(events[0]["event"], "started", "{what}: {all}");
    assert_eq!(&events[0]["data"]["job"], job, "{what}: {all}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished", "{what}: {all}");
    let middle = &events[1..events.len() - 1];
    assert!(
        middle.iter().all(|e| e["event"] == "progress"),
        "{what}: {all}"
    );
    assert!(!middle.is_empty(), "{what}: no progress: {all}");
    for p in middle {
        assert!(p["data"]["phase"].is_string(), "{what}: {p}");
        assert!(p["data"]["layers"].is_array(), "{what}: {p}");
    }
    last["data"].clone()
}

#[test]
fn commands_drive_a_real_berthd() {
    let _serial = serial();
    let mut env = Env::start();
    let w = &env.window;
    let long = Duration::from_secs(240);

    // helper_status: up, with berthd's facts.
    let s = status(w);
    assert_eq!(s["ok"], true, "{s}");
    assert!(s["error"].is_null(), "{s}");
    assert_eq!(s["info"]["root"], env.demo.berthd.root().to_str().unwrap());
    assert!(!s["info"]["version"].as_str().unwrap().is_empty(), "{s}");
    assert_ipc_response(&w.webview, Window::request("ready", json!({})), Ok(()));

    // catalog_apps: the demo apps, not installed.
    let catalog = w.ok("catalog_apps", json!({}));
    let find = |catalog: &Value, id: &str| -> Value {
        catalog
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in the catalog: {catalog}"))
            .clone()
    };
    let hello = find(&catalog, "hello");
    assert_eq!(hello["title"], "Hello web page", "{hello}");
    assert_eq!(hello["category"], "demo", "{hello}");
    assert_eq!(hello["catalog"], "demo", "{hello}");
    assert_eq!(hello["installed"], false, "{hello}");
    assert_eq!(hello["services"], json!(["web"]), "{hello}");
    let hello_api = find(&catalog, "hello-api");
    assert_eq!(hello_api["title"], "Two-service demo", "{hello_api}");
    assert_eq!(hello_api["category"], "demo", "{hello_api}");
    let catalogs = w.ok("catalogs", json!({}));
    assert_eq!(catalogs[0]["name"], "demo", "{catalogs}");
    assert_eq!(catalogs[0]["problems"], json!([]), "{catalogs}");

    // Bad input, refused before anything happens.
    let e = w.err("open_url", json!({ "url": "file:///etc/passwd" }));
    assert_eq!(e["kind"], "invalid", "{e}");
    let e = w.err("open_url", json!({ "url": "javascript:alert(1)" }));
    assert_eq!(e["kind"], "invalid", "{e}");
    let e = w.err("cancel_job", json!({ "job": "not a job path" }));
    assert_eq!(e["kind"], "invalid", "{e}");
    let e = w.err("app_info", json!({ "app": "hello" }));
    assert_eq!(e["kind"], "not_found", "{e}");
    let (on_event, _events) = w.router.channel("watch_stats of nothing");
    let e = w.err(
        "watch_stats",
        json!({ "app": "no-such-app", "onEvent": on_event }),
    );
    assert_eq!(e["kind"], "not_found", "{e}");
    assert_eq!(w.subscriptions(), 0);

    // An app no catalog has: berthd refuses the call itself (it finds the
    // catalog first, to name it in the polkit prompt), before any job; the
    // page shows a command's error as it does a failed job's.
    let (on_event, events) = w.router.channel("install_app no-such-app");
    let e = w.err(
        "install_app",
        json!({ "app": "no-such-app", "onEvent": on_event }),
    );
    assert_eq!(e["kind"], "not_found", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("no-such-app"),
        "{e}"
    );
    assert!(
        events.next(Duration::from_millis(300)).is_none(),
        "a job was started for an app no catalog has"
    );
    assert_eq!(w.ok("installed_apps", json!({})), json!([]));

    // install_app: started, progress, finished with the installed app.
    let t = Instant::now();
    let (on_event, events) = w.router.channel("install_app hello");
    let job = w.ok(
        "install_app",
        json!({ "app": "hello", "onEvent": on_event }),
    );
    assert!(job.as_str().unwrap().starts_with('/'), "{job}");
    let seen = events.until("finished", long);
    let end = assert_job(&seen, &job, "install hello");
    assert!(end["error"].is_null(), "{end}\n{}", env.demo.log_tail());
    assert!(end["audit"].is_null(), "{end}");
    let installed = &end["installed"]["app"];
    assert_eq!(installed["id"], "hello", "{end}");
    assert_eq!(installed["state"], "running", "{end}");
    let url = installed["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://"), "{end}");
    eprintln!(
        "install: {:?}, {} progress events",
        t.elapsed(),
        seen.len() - 2
    );
    assert!(events.next(Duration::from_millis(300)).is_none());
    let page = http::get_within(&url, Duration::from_secs(10)).unwrap();
    assert!(page.text().contains("Hello from Berth"), "{}", page.text());

    // installed_apps, app_info, catalog_apps: it is there.
    let apps = w.ok("installed_apps", json!({}));
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    assert_eq!(apps[0]["id"], "hello", "{apps}");
    assert_eq!(apps[0]["url"], url.as_str(), "{apps}");
    let info = w.app_info("hello");
    assert_eq!(info["title"], "Hello web page", "{info}");
    assert_eq!(info["state"], "running", "{info}");
    assert_eq!(info["volumes"], json!(["hello_site"]), "{info}");
    let web = &info["services"][0];
    assert_eq!(web["name"], "web", "{info}");
    assert_eq!(web["state"], "running", "{info}");
    let container = web["container_id"].as_str().unwrap().to_string();
    let container_name = web["container_name"].as_str().unwrap().to_string();
    assert!(!container.is_empty(), "{info}");
    assert_eq!(
        find(&w.ok("catalog_apps", json!({})), "hello")["installed"],
        true
    );

    // storage: the image, used by the app's container, and its volume.
    let storage = w.ok("storage", json!({}));
    let image_name = format!("{}/demo/web:latest", env.demo.registry());
    let image = storage["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"].as_str().unwrap().ends_with(&image_name))
        .unwrap_or_else(|| panic!("no {image_name} in {storage}"));
    let used_by = image["used_by"].as_array().unwrap();
    assert!(!used_by.is_empty(), "{image}");
    assert!(used_by.contains(&json!(container_name)), "{image}");
    let volumes = storage["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{storage}");
    assert_eq!(volumes[0]["name"], "hello_site", "{storage}");
    assert_eq!(volumes[0]["app"], "hello", "{storage}");
    assert_eq!(volumes[0]["kept"], false, "{storage}");
    assert!(
        volumes[0]["used_by"]
            .as_array()
            .is_some_and(|u| !u.is_empty()),
        "{storage}"
    );
    assert_eq!(
        storage["info"]["root"],
        env.demo.berthd.root().to_str().unwrap()
    );

    // watch_apps: the list at once.
    let (on_event, apps_events) = w.router.channel("watch_apps");
    let apps_sub = w.ok("watch_apps", json!({ "onEvent": on_event }));
    let first = apps_events.expect(Duration::from_secs(5));
    assert_eq!(first["event"], "apps", "{first}");
    assert_eq!(first["data"]["apps"][0]["id"], "hello", "{first}");

    // watch_stats: samples (history, then live ones) until unwatched.
    let (on_event, stats) = w.router.channel("watch_stats hello");
    let stats_sub = w.ok(
        "watch_stats",
        json!({ "app": "hello", "onEvent": on_event }),
    );
    assert_eq!(w.subscriptions(), 2);
    let deadline = Instant::now() + Duration::from_secs(6);
    let (mut batches, mut samples) = (0, 0);
    while (batches < 2 || samples < 2) && Instant::now() < deadline {
        let Some(e) = stats.next(Duration::from_millis(500)) else {
            continue;
        };
        assert_eq!(e["event"], "samples", "{e}");
        assert_eq!(e["data"]["service"], "web", "{e}");
        for s in e["data"]["samples"].as_array().unwrap() {
            assert!(s["time"].as_i64().unwrap() > 0, "{s}");
            assert!(s["memory_usage"].as_u64().unwrap() > 0, "{s}");
            assert!(s["pids"].as_u64().unwrap() >= 1, "{s}");
            samples += 1;
        }
        batches += 1;
    }
    assert!(
        batches >= 2 && samples >= 2,
        "{batches} batches, {samples} samples within 6 s"
    );
    assert_ipc_response(
        &w.webview,
        Window::request("unwatch", json!({ "id": stats_sub })),
        Ok(()),
    );
    assert_ipc_response(
        &w.webview,
        Window::request("unwatch", json!({ "id": apps_sub })),
        Ok(()),
    );
    assert_eq!(w.subscriptions(), 0);
    std::thread::sleep(Duration::from_millis(1500));
    stats.drain();
    apps_events.drain();
    assert!(
        stats.next(Duration::from_millis(2500)).is_none(),
        "samples after unwatch"
    );
    // Unwatching again is fine.
    w.ok("unwatch", json!({ "id": stats_sub }));

    // watch_logs: what httpd wrote (its access log), until the service
    // stops.
    let (on_event, logs) = w.router.channel("watch_logs");
    let logs_sub = w.ok(
        "watch_logs",
        json!({ "container": container, "tail": -1, "onEvent": on_event }),
    );
    assert!(logs_sub.as_u64().is_some(), "{logs_sub}");
    assert_eq!(w.subscriptions(), 1);
    let first = logs.expect(Duration::from_secs(10));
    assert_eq!(first["event"], "lines", "{first}");
    let lines = first["data"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{first}");
    for l in lines {
        assert!(
            l["stream"] == "stdout" || l["stream"] == "stderr",
            "{first}"
        );
        assert!(!l["time"].as_str().unwrap().is_empty(), "{first}");
        assert!(!l["log"].as_str().unwrap().ends_with('\n'), "{first}");
    }
    let (on_event, _nothing) = w.router.channel("watch_logs of nothing");
    let e = w.err(
        "watch_logs",
        json!({ "container": "no-such-container", "tail": 10, "onEvent": on_event }),
    );
    assert_eq!(e["kind"], "not_found", "{e}");

    // stop_app: stopped; the log subscription ends by itself.
    w.ok("stop_app", json!({ "app": "hello" }));
    let info = w.app_info("hello");
    assert_eq!(info["state"], "stopped", "{info}");
    assert_eq!(info["services"][0]["state"], "exited", "{info}");
    let ended = logs.until("ended", Duration::from_secs(15));
    let last = ended.last().unwrap();
    assert_eq!(last["data"]["reason"], "the service stopped", "{last}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.subscriptions() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(w.subscriptions(), 0);
    assert!(
        !matches!(http::get(&url), Ok(r) if r.is_success()),
        "{url} answers while hello is stopped"
    );

    // start_app: running again, and serving.
    w.ok("start_app", json!({ "app": "hello" }));
    let info = w.wait_state("hello", "running", Duration::from_secs(30));
    assert_eq!(info["url"], url.as_str(), "{info}");
    let page = http::get_within(&url, Duration::from_secs(10)).unwrap();
    assert!(page.text().contains("Hello from Berth"), "{}", page.text());

    // uninstall_app, data too: nothing left.
    let (on_event, events) = w.router.channel("uninstall_app hello");
    let job = w.ok(
        "uninstall_app",
        json!({ "app": "hello", "keepData": false, "onEvent": on_event }),
    );
    let seen = events.until("finished", long);
    assert_eq!(seen[0]["event"], "started", "{seen:?}");
    assert_eq!(seen[0]["data"]["job"], job, "{seen:?}");
    let end = &seen.last().unwrap()["data"];
    assert!(end["error"].is_null(), "{end}\n{}", env.demo.log_tail());
    assert!(end["installed"].is_null(), "{end}");
    let audit = &end["audit"];
    assert_eq!(audit["clean"], true, "{end}");
    assert_eq!(audit["remaining"], json!([]), "{end}");
    assert_eq!(audit["kept"], json!([]), "{end}");
    assert!(!audit["checked"].as_array().unwrap().is_empty(), "{end}");

    assert_eq!(w.ok("installed_apps", json!({})), json!([]));
    let storage = w.ok("storage", json!({}));
    assert_eq!(storage["volumes"], json!([]), "{storage}");
    for image in storage["images"].as_array().unwrap() {
        assert_eq!(image["used_by"], json!([]), "{storage}");
    }
    assert_eq!(
        find(&w.ok("catalog_apps", json!({})), "hello")["installed"],
        false
    );
    let e = w.err("app_info", json!({ "app": "hello" }));
    assert_eq!(e["kind"], "not_found", "{e}");

    // cancel_job: an install stuck on a registry that accepts connections
    // and never answers ends as cancelled, with nothing installed.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let compose = format!(
        "services:\n  web:\n    image: 127.0.0.1:{port}/demo/web:latest\n    ports:\n      - \"8080\"\n"
    );
    env.demo
        .temp_catalog("stuck", &[("stuck", compose.as_str())])
        .unwrap();
    let (on_event, events) = w.router.channel("install_app stuck");
    let job = w.ok(
        "install_app",
        json!({ "app": "stuck", "onEvent": on_event }),
    );
    // Hold the connection berthd makes, so the pull waits.
    silent.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let _held = loop {
        match silent.accept() {
            Ok((conn, _)) => break conn,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!(
                "berthd never connected to the silent registry ({e}): {:?}\n{}",
                events.drain(),
                env.demo.log_tail()
            ),
        }
    };
    assert_eq!(
        events
            .next(Duration::from_secs(5))
            .map(|e| e["event"].clone()),
        Some(json!("started"))
    );
    w.ok("cancel_job", json!({ "job": job }));
    let seen = events.until("finished", long);
    let end = &seen.last().unwrap()["data"];
    assert_eq!(end["error"]["kind"], "cancelled", "{end}");
    assert_eq!(w.ok("installed_apps", json!({})), json!([]));
    assert_eq!(w.subscriptions(), 0);
}

// ---------------------------------------------------------------------------
// Who may call the commands, and what the icon scheme answers (issue 11)

/// Whether an `invoke` was refused by Tauri's ACL (before the command ran:
/// a string, where a command's own errors are `UiError`s).
fn refused_by_acl(r: &Result<Value, Value>) -> bool {
    matches!(r, Err(Value::String(s)) if s.contains("not allowed"))
}

#[test]
fn commands_are_allowed_to_the_main_windows_own_page_only() {
    let _serial = serial();
    // Commands that get past the ACL run: with no bus they fail at once.
    let dir = TestDir::new("berth-app-acl-").unwrap();
    use_bus(&format!("unix:path={}", dir.join("no-such-bus").display()));
    // The app with its real context: the ACL that build.rs and
    // capabilities/ make. Its windows are made by hand, as the mock runtime
    // does not open the ones of tauri.conf.json.
    let app = berth_app::run_app(mock_builder())
        .build(tauri::generate_context!("tauri.conf.json", test = true))
        .expect("building the app with its own context");
    let main = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("the main mock window");
    let other = WebviewWindowBuilder::new(&app, "other", Default::default())
        .build()
        .expect("a second mock window");
    let call = |w: &WebviewWindow<MockRuntime>, url: &str, cmd: &str| {
        let mut request = Window::request(cmd, json!({}));
        request.url = url.parse().unwrap();
        get_ipc_response(w, request).map(|body| body.deserialize::<Value>().unwrap_or(Value::Null))
    };
    for cmd in COMMANDS {
        let r = call(&main, "tauri://localhost", cmd);
        assert!(!refused_by_acl(&r), "{cmd} is refused to the page: {r:?}");
        for (w, url) in [
            (&other, "tauri://localhost"),
            (&main, "http://127.0.0.1:8080/"),
            (&main, "https://evil.example/"),
        ] {
            let r = call(w, url, cmd);
            assert!(
                refused_by_acl(&r),
                "{cmd} from window `{}` at {url} was not refused: {r:?}",
                w.label()
            );
        }
    }
    // Of Tauri's own commands the page has event listening, nothing else;
    // a command the manifest does not name is refused too.
    for cmd in ["plugin:event|listen", "plugin:event|unlisten"] {
        let r = call(&main, "tauri://localhost", cmd);
        assert!(!refused_by_acl(&r), "{cmd}: {r:?}");
    }
    for cmd in [
        "plugin:app|version",
        "plugin:window|close",
        "plugin:webview|create_webview_window",
        "plugin:event|emit",
        "not_a_command",
    ] {
        let r = call(&main, "tauri://localhost", cmd);
        assert!(refused_by_acl(&r), "{cmd} was not refused: {r:?}");
    }
    drop(other);
    drop(main);
    drop(app);
}

#[test]
fn the_page_calls_only_commands_it_is_granted() {
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/api.ts"))
        .expect("the page's api.ts");
    // `invoke<T>("name"` or `invoke("name"`.
    let mut called = Vec::new();
    for (i, _) in api.match_indices("invoke") {
        let mut rest = &api[i + "invoke".len()..];
        if rest.starts_with('<') {
            let mut depth = 0;
            let Some(end) = rest.char_indices().find_map(|(j, c)| {
                depth += match c {
                    '<' => 1,
                    '>' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(j)
            }) else {
                continue;
            };
            rest = &rest[end + 1..];
        }
        if let Some(name) = rest.strip_prefix("(\"").and_then(|r| r.split('"').next()) {
            called.push(name);
        }
    }
    assert!(called.len() >= COMMANDS.len() - 1, "{called:?}");
    for name in called {
        assert!(
            COMMANDS.contains(&name),
            "the page calls `{name}`, which no capability grants"
        );
    }
}

/// An icon with everything a catalog should not get into the window.
const HOSTILE_ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" onload="alert(1)">
<script>alert(2)</script>
<foreignObject width="64" height="64"><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://evil.example/"/></foreignObject>
<use href="https://evil.example/sprite.svg#a"/>
<style>@import url(https://evil.example/x.css);</style>
<rect width="64" height="64" fill="#c00" onclick="alert(3)"/>
</svg>"##;

#[test]
fn icons_come_sanitized_with_locked_down_headers() {
    use berth_app::icons::{self, CSP};
    use tauri::http::{Method, Request};

    let _serial = serial();
    let mut env = Env::start();
    let compose = "services:\n  web:\n    image: ${BERTH_DEMO_REGISTRY}/demo/web:latest\n    ports:\n      - \"8080\"\n";
    let dir = env
        .demo
        .temp_catalog("hostile", &[("evil-icon", compose)])
        .unwrap();
    std::fs::write(dir.join("evil-icon/icon.svg"), HOSTILE_ICON).unwrap();
    let helper = env.window.app.state::<berth_app::helper::Helper>();
    let get = |method: Method, uri: &str| {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Vec::new())
            .unwrap();
        tauri::async_runtime::block_on(icons::answer(&helper, &request))
    };
    let locked = |r: &tauri::http::Response<Vec<u8>>, what: &str| {
        let h = r.headers();
        assert_eq!(h["Content-Security-Policy"], CSP, "{what}");
        assert_eq!(h["X-Content-Type-Options"], "nosniff", "{what}");
    };

    // The hostile icon comes through berthd rewritten: the drawing stays,
    // nothing that runs or loads does.
    let r = get(Method::GET, "berth-icon://localhost/evil-icon");
    assert_eq!(r.status(), 200, "{}", env.demo.log_tail());
    locked(&r, "evil-icon");
    assert_eq!(r.headers()["Content-Type"], "image/svg+xml");
    let body = String::from_utf8(r.body().clone()).unwrap();
    assert!(
        body.contains(r##"<rect width="64" height="64" fill="#c00"/>"##),
        "{body}"
    );
    for bad in [
        "script",
        "onload",
        "onclick",
        "foreignObject",
        "iframe",
        "evil.example",
        "@import",
    ] {
        assert!(!body.contains(bad), "`{bad}` in the icon served: {body}");
    }
    // A demo icon, as drawn.
    let r = get(Method::GET, "berth-icon://localhost/hello");
    assert_eq!(r.status(), 200);
    locked(&r, "hello");
    assert!(String::from_utf8_lossy(r.body()).contains("fill=\"#e67e22\""));

    // Nothing but `GET /<app id>` is asked of berthd; every answer is
    // locked down, refusals too.
    for (method, uri, status) in [
        (Method::GET, "berth-icon://localhost/..%2F..%2Fetc", 400),
        (Method::GET, "berth-icon://localhost/hello/../x", 400),
        (Method::GET, "berth-icon://localhost/hello?x=1", 400),
        (Method::POST, "berth-icon://localhost/hello", 405),
        (Method::GET, "berth-icon://localhost/no-such-app", 404),
    ] {
        let r = get(method.clone(), uri);
        assert_eq!(r.status(), status, "{method} {uri}");
        locked(&r, uri);
        assert!(r.body().is_empty(), "{uri}");
    }
    // An icon that stopped being well-formed is not served at all.
    std::fs::write(dir.join("evil-icon/icon.svg"), "<svg><g></svg>").unwrap();
    let r = get(Method::GET, "berth-icon://localhost/evil-icon");
    assert_eq!(r.status(), 404);
    locked(&r, "malformed");
}
