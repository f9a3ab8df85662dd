//! What the desktop app's storage view stands on, end to end: named
//! volumes with their sizes and the containers using them (`ListVolumes`,
//! `berth volume ls`), deleting the data uninstalls kept (`RemoveVolume`,
//! `PruneVolumes`, `berth volume rm`, `berth volume prune`), and the
//! containers each image is used by (`ListImages`' `used_by`).
//!
//! As in `apps.rs`: the demo catalog on images the kit builds and pushes to
//! a real registry, a private bus, a real berthd as root. The bus methods
//! are called both through `berth` and directly with `dbus-send`, so their
//! names, arguments and error names are checked as a client sees them.
//! Whether something was left behind is judged by `berth doctor --dry-run`
//! and by a [`Snapshot`] of the machine taken before and after.
//!
//! Every test's [`Env`] uninstalls every app, removes every container,
//! deletes kept volumes and the network objects attributed to its berthd
//! when it drops, also when the test failed.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_testkit::fsutil::TestDir;
use berth_testkit::image::push_demo_images;
use berth_testkit::snapshot::{sweep_network, Scope, Snapshot};
use berth_testkit::{Berthd, Cli, CliOutput, PrivateBus, Registry};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Fixtures

static DEMO: OnceLock<Result<Registry, String>> = OnceLock::new();

extern "C" fn shutdown_demo_registry() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(registry)) = DEMO.get() {
            registry.shutdown();
        }
    });
}

/// One registry with the demo images, shared by every test of this file and
/// shut down when the test process exits.
fn demo_registry() -> &'static Registry {
    let started = DEMO.get_or_init(|| {
        let started = (|| {
            let registry = Registry::start()?;
            push_demo_images(&registry.client())?;
            anyhow::Ok(registry)
        })();
        match started {
            Ok(registry) => {
                // SAFETY: registering a plain extern "C" fn with no captures.
                unsafe {
                    libc::atexit(shutdown_demo_registry);
                }
                Ok(registry)
            }
            Err(e) => Err(format!("{e:#}")),
        }
    });
    match started {
        Ok(r) => r,
        Err(e) => panic!("starting the demo registry: {e}"),
    }
}

/// `catalog/demo` of this repository.
fn demo_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .join("catalog/demo")
}

/// An app with one service on the demo web image and a volume of its own
/// that the image has nothing for (so it starts empty).
const KEEPER: &str = "services:\n\
     \x20 web:\n\
     \x20   image: ${BERTH_DEMO_REGISTRY}/demo/web:latest\n\
     \x20   ports:\n\
     \x20     - \"8080\"\n\
     \x20   volumes:\n\
     \x20     - data:/www/data\n\
     volumes:\n\
     \x20 data:\n";

/// A test's own bus and berthd, with the demo catalog added.
struct Env {
    cli: Cli,
    // Dropped in this order, after `Drop for Env` ran: berthd, then its bus.
    berthd: Berthd,
    _bus: PrivateBus,
    /// `127.0.0.1:PORT` of the demo registry.
    registry: String,
    /// Temp catalogs.
    dirs: Vec<TestDir>,
}

fn start() -> Env {
    let registry = demo_registry().host();
    let bus = PrivateBus::start().expect("private bus");
    let berthd = Berthd::start(&bus).expect("berthd");
    let cli = berthd.cli().expect("cli").timeout(Duration::from_secs(240));
    let env = Env {
        cli,
        berthd,
        _bus: bus,
        registry,
        dirs: Vec::new(),
    };
    let set = format!("BERTH_DEMO_REGISTRY={}", env.registry);
    let path = demo_catalog();
    env.ok(&[
        "catalog",
        "add",
        path.to_str().unwrap(),
        "--name",
        "demo",
        "--set",
        &set,
    ]);
    env
}

impl Env {
    fn run(&self, args: &[&str]) -> CliOutput {
        self.cli.run(args).unwrap()
    }

    /// `berth ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        match self.cli.run(args).unwrap().ok() {
            Ok(out) => out.stdout,
            Err(e) => panic!("berth {}: {e:#}\n{}", args.join(" "), self.log_tail()),
        }
    }

    /// `berth ARGS`, which must fail; stdout and stderr together.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.success(),
            "berth {} succeeded:\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        format!("{}{}", out.stdout, out.stderr)
    }

    /// The last lines of berthd's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = self.berthd.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!("berthd's log (last lines):\n{}", lines[from..].join("\n"))
    }

    /// `berth install APP`, which must succeed; its stdout and stderr.
    fn install(&self, app: &str) -> String {
        let out = self.run(&["install", app]);
        assert!(
            out.success(),
            "berth install {app} failed:\n{}{}\n{}",
            out.stdout,
            out.stderr,
            self.log_tail()
        );
        format!("{}{}", out.stdout, out.stderr)
    }

    /// `berth uninstall APP --keep-data`, which must succeed.
    fn uninstall_keeping_data(&self, app: &str) {
        let out = self.run(&["uninstall", app, "--keep-data"]);
        assert!(
            out.success(),
            "berth uninstall {app} --keep-data:\n{}{}\n{}",
            out.stdout,
            out.stderr,
            self.log_tail()
        );
    }

    /// `berth volume ls --json`.
    fn volumes(&self) -> Vec<Value> {
        let out = self.ok(&["volume", "ls", "--json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("volume ls --json: {e}: {out}"));
        v.as_array()
            .unwrap_or_else(|| panic!("volume ls --json is not an array: {out}"))
            .clone()
    }

    /// The volume `name` as `berth volume ls --json` shows it.
    fn volume(&self, name: &str) -> Option<Value> {
        self.volumes().into_iter().find(|v| v["name"] == name)
    }

    /// `berth images --json`.
    fn images(&self) -> Vec<Value> {
        let out = self.ok(&["images", "--json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("images --json: {e}: {out}"));
        v.as_array().cloned().unwrap_or_default()
    }

    /// `org.berth.Helper1.METHOD ARGS` with `dbus-send` (arguments as it
    /// takes them: `string:…`, `uint64:…`), as root.
    fn call(&self, method: &str, args: &[&str]) -> Output {
        let mut cmd = berth_testkit::bus::command(self.berthd.bus_address(), None, "dbus-send");
        cmd.args([
            "--system",
            "--print-reply",
            "--reply-timeout=60000",
            "--dest=org.berth.Helper1",
            "/org/berth/Helper1",
        ])
        .arg(format!("org.berth.Helper1.{method}"))
        .args(args);
        berth_testkit::proc::run_with_timeout("dbus-send", cmd, Duration::from_secs(90)).unwrap()
    }

    /// A method that answers one string of JSON: that JSON.
    fn call_json(&self, method: &str, args: &[&str]) -> Value {
        let out = self.call(method, args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{method}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `method return …\n   string "JSON"`: the string is printed as is.
        let json = text
            .split_once("string \"")
            .and_then(|(_, rest)| rest.trim_end().strip_suffix('"'))
            .unwrap_or_else(|| panic!("{method}: no string in {text}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{method}: {e}: {json}"))
    }

    /// A method that must fail with `org.berth.Error.KIND`; its message.
    fn call_fails(&self, kind: &str, method: &str, args: &[&str]) -> String {
        let out = self.call(method, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{method} {args:?} succeeded");
        assert!(
            err.contains(&format!("org.berth.Error.{kind}")),
            "{method} {args:?} did not fail with {kind}: {err}"
        );
        err
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.berthd).expect("snapshot")
    }

    /// This berthd's scope, knowing every id its log mentions.
    fn scope(&self) -> Scope {
        let mut scope = Scope::for_berthd(&self.berthd);
        scope.learn_text(&self.berthd.log());
        scope
    }

    /// Nothing new since `before` that belongs to this berthd (`extra`
    /// adds what a crashed berthd made), within a few seconds: a process
    /// on its way out is given the time to go.
    fn assert_nothing_new(&self, before: &Snapshot, extra: &Scope, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut scope = self.scope();
            scope.ids.extend(extra.ids.iter().cloned());
            scope.networks.extend(extra.networks.iter().cloned());
            scope.berthd_pids.extend(extra.berthd_pids.iter().copied());
            let diff = Snapshot::diff_detailed(before, &self.snapshot(), &scope);
            if diff.ours.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} left (berthd is pid {}):\n  {}\n(not attributed to this berthd, for \
                 information: {:?})\n{}",
                self.berthd.pid(),
                diff.ours.join("\n  "),
                diff.unattributed,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `berth doctor --dry-run` finds nothing.
    fn assert_doctor_clean(&self, what: &str) {
        let out = self.run(&["doctor", "--dry-run"]);
        let text = format!("{}{}", out.stdout, out.stderr);
        let t = text.to_lowercase();
        assert!(
            out.success() && t.contains("nothing is left") && !t.contains("remaining:"),
            "berth doctor --dry-run after {what}:\n{text}\n{}",
            self.log_tail()
        );
    }

    /// A catalog in a temp dir with `apps` (id → compose.yaml), added as
    /// `name` with the demo registry's variable.
    fn temp_catalog(&mut self, name: &str, apps: &[(&str, &str)]) {
        let dir = TestDir::new("berth-storage-catalog-").unwrap();
        let icon = std::fs::read(demo_catalog().join("hello/icon.svg")).unwrap();
        for (id, compose) in apps {
            let app = dir.join(id);
            std::fs::create_dir_all(&app).unwrap();
            std::fs::write(
                app.join("app.toml"),
                format!(
                    "id = \"{id}\"\ntitle = \"{id}\"\nversion = \"1\"\n\
                     description = \"A test app.\"\ncategory = \"demo\"\n\
                     icon = \"icon.svg\"\nopen = {{ service = \"web\", port = 8080 }}\n"
                ),
            )
            .unwrap();
            std::fs::write(app.join("compose.yaml"), compose).unwrap();
            std::fs::write(app.join("icon.svg"), &icon).unwrap();
        }
        let set = format!("BERTH_DEMO_REGISTRY={}", self.registry);
        self.ok(&[
            "catalog",
            "add",
            dir.path().to_str().unwrap(),
            "--name",
            name,
            "--set",
            &set,
        ]);
        self.dirs.push(dir);
    }

    /// `<root>/volumes/NAME`.
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.berthd.root().join("volumes").join(name)
    }

    /// Neither the volume's directory nor a half-deleted one is there.
    fn assert_volume_gone(&self, name: &str) {
        for p in [
            self.volume_dir(name),
            self.volume_dir(&format!(".{name}.removing")),
        ] {
            assert!(
                p.symlink_metadata().is_err(),
                "{} is still there",
                p.display()
            );
        }
        assert!(
            self.volume(name).is_none(),
            "{name} is still listed: {:?}",
            self.volumes()
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A test that failed may have left berthd dead (crash tests).
        if !self.berthd.is_running() {
            if let Err(e) = self.berthd.restart() {
                eprintln!("storage test cleanup: restarting berthd: {e:#}");
            }
        }
        if let Ok(out) = self.cli.run(&["apps", "--format", "json"]) {
            let ids: Vec<String> = serde_json::from_str::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_string))
                .collect();
            for id in ids {
                let _ = self.cli.run(&["uninstall", &id, "--delete-data"]);
            }
        }
        let _ = self.cli.run(&["volume", "prune"]);
        if let Ok(out) = self.cli.run(&["ps", "-aq"]) {
            for id in out.stdout.split_whitespace() {
                let _ = self.cli.run(&["rm", "-f", id]);
            }
        }
        // Links and tables outlive berthd and its directories.
        for line in sweep_network(&self.scope()) {
            eprintln!("storage test cleanup: {line}");
        }
    }
}

/// The row of `berth volume ls` (a table) that starts with `name`, split
/// into its columns (three spaces or more apart).
fn table_row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn size_of(v: &Value) -> u64 {
    v["size_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no size_bytes in {v}"))
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn volumes_and_images_name_their_users_and_kept_data_is_pruned() {
    let env = start();
    let before = env.snapshot();

    env.install("hello");
    let v = env.volume("hello_site").expect("hello's volume is listed");
    assert_eq!(v["app"], "hello", "{v}");
    assert_eq!(v["kept"], false, "{v}");
    assert_eq!(v["used_by"], json!(["hello-web-1"]), "{v}");
    let dir = env.volume_dir("hello_site");
    assert_eq!(v["path"], dir.display().to_string(), "{v}");
    assert!(v["created"].as_i64().unwrap_or(0) > 0, "{v}");
    // It started as a copy of the image's /www.
    let populated = size_of(&v);
    assert!(populated > 0, "{v}");

    // What a container writes into it counts, to the byte.
    env.ok(&[
        "exec",
        "hello-web-1",
        "sh",
        "-c",
        "busybox dd if=/dev/zero of=/www/blob bs=1000 count=300 2>/dev/null",
    ]);
    let written = size_of(&env.volume("hello_site").unwrap());
    assert_eq!(written, populated + 300_000);

    // The same through the bus, as the desktop app calls it.
    let listed = env.call_json("ListVolumes", &[]);
    let on_bus = listed
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "hello_site"))
        .unwrap_or_else(|| panic!("ListVolumes: {listed}"));
    assert_eq!(size_of(on_bus), written);
    assert_eq!(on_bus["used_by"], json!(["hello-web-1"]));

    // The volume of an installed app is refused, naming the app and the
    // way to remove it; an unknown one is not found.
    let said = env.fails(&["volume", "rm", "hello_site"]);
    assert!(
        said.contains("app hello") && said.contains("berth uninstall hello --delete-data"),
        "{said}"
    );
    env.call_fails(
        "InvalidArgument",
        "RemoveVolume",
        &["string:hello_site", "uint64:0"],
    );
    let said = env.fails(&["volume", "rm", "no_such_volume"]);
    assert!(said.contains("no volume `no_such_volume`"), "{said}");
    env.call_fails(
        "NotFound",
        "RemoveVolume",
        &["string:no_such_volume", "uint64:0"],
    );
    // Unknown flags are refused, as by every mutating method.
    env.call_fails("InvalidArgument", "PruneVolumes", &["uint64:1024"]);
    // A prune passes it over.
    let report = env.call_json("PruneVolumes", &["uint64:0"]);
    assert_eq!(report, json!({"removed": [], "bytes_freed": 0}));
    assert_eq!(size_of(&env.volume("hello_site").unwrap()), written);

    // The app's image is used by its container, and only by it.
    let images = env.images();
    let web = images
        .iter()
        .find(|i| {
            i["name"]
                .as_str()
                .unwrap_or("")
                .ends_with("/demo/web:latest")
        })
        .unwrap_or_else(|| panic!("no demo/web image in {images:?}"));
    assert_eq!(web["used_by"], json!(["hello-web-1"]), "{web}");
    let table = env.ok(&["volume", "ls"]);
    assert!(
        table.starts_with("NAME") && table.lines().next().unwrap().ends_with("USED BY"),
        "{table}"
    );
    let row = table_row(&table, "hello_site");
    assert_eq!((row[1].as_str(), row[3].as_str()), ("hello", "hello-web-1"));

    // Uninstalled with its data kept: the volume stays, whole, and is kept.
    env.uninstall_keeping_data("hello");
    let v = env.volume("hello_site").expect("the kept volume is listed");
    assert_eq!(v["kept"], true, "{v}");
    assert_eq!(v["used_by"], json!([]), "{v}");
    assert_eq!(size_of(&v), written);
    assert_eq!(
        table_row(&env.ok(&["volume", "ls"]), "hello_site")[3],
        "kept"
    );
    for i in env.images() {
        assert_eq!(i["used_by"], json!([]), "no container is left: {i}");
    }

    // A prune deletes it and says what it freed.
    let report = env.call_json("PruneVolumes", &["uint64:0"]);
    assert_eq!(
        report,
        json!({"removed": ["hello_site"], "bytes_freed": written})
    );
    env.assert_volume_gone("hello_site");
    assert!(env.volumes().is_empty(), "{:?}", env.volumes());

    env.assert_nothing_new(&before, &Scope::default(), "install, keep, prune");
    env.assert_doctor_clean("a prune");
}

#[test]
fn volume_ls_rm_and_prune_from_the_command_line() {
    let mut env = start();
    env.temp_catalog("test-storage", &[("keeper", KEEPER)]);
    let before = env.snapshot();

    env.install("hello");
    env.uninstall_keeping_data("hello");
    env.install("keeper");

    let table = env.ok(&["volume", "ls"]);
    let kept = table_row(&table, "hello_site");
    assert_eq!((kept[1].as_str(), kept[3].as_str()), ("hello", "kept"));
    let used = table_row(&table, "keeper_data");
    assert_eq!(
        (used[1].as_str(), used[2].as_str(), used[3].as_str()),
        ("keeper", "0B", "keeper-web-1"),
        "{table}"
    );
    let names = env.ok(&["volume", "ls", "-q"]);
    assert_eq!(names, "hello_site\nkeeper_data\n");

    let said = env.fails(&["volume", "rm", "keeper_data"]);
    assert!(said.contains("app keeper"), "{said}");

    // Prune: the kept one goes, the installed app's stays.
    let kept_size = size_of(&env.volume("hello_site").unwrap());
    let out = env.ok(&["volume", "prune"]);
    assert!(out.contains("Removed hello_site"), "{out}");
    assert!(!out.contains("keeper_data"), "{out}");
    assert!(out.contains("Freed ") && kept_size > 0, "{out}");
    env.assert_volume_gone("hello_site");
    assert!(env.volume_dir("keeper_data").join("_data").is_dir());
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "keeper_data\n");
    let out = env.ok(&["volume", "prune"]);
    assert_eq!(out, "No kept volumes to remove\n");

    // The next install of hello finds nothing kept.
    let said = env.install("hello");
    assert!(!said.contains("hello_site"), "{said}");

    // `rm` deletes one kept volume; a second time there is none.
    env.uninstall_keeping_data("hello");
    assert!(env.volume_dir("hello_site").is_dir());
    assert_eq!(
        env.ok(&["volume", "rm", "hello_site"]),
        "Removed hello_site\n"
    );
    env.assert_volume_gone("hello_site");
    let said = env.fails(&["volume", "rm", "hello_site"]);
    assert!(said.contains("no volume `hello_site`"), "{said}");

    let out = env.run(&["uninstall", "keeper", "--delete-data"]);
    assert!(out.success(), "{out:?}");
    env.assert_volume_gone("keeper_data");
    env.assert_nothing_new(&before, &Scope::default(), "volume ls, rm and prune");
    env.assert_doctor_clean("volume ls, rm and prune");
}

#[test]
fn a_crash_while_deleting_a_volume_is_finished_at_the_next_start() {
    let mut env = start();
    let before = env.snapshot();
    for point in ["volume-renamed", "volume-forgotten"] {
        env.install("hello");
        env.uninstall_keeping_data("hello");
        assert!(env.volume("hello_site").is_some());

        env.berthd
            .restart_with_env(&[("BERTH_CRASH_AT", point)])
            .unwrap();
        let crashed = env.berthd.pid();
        let out = env.run(&["volume", "rm", "hello_site"]);
        assert!(
            env.berthd.wait_exit(Duration::from_secs(30)).unwrap(),
            "{point}: berthd did not crash (berth volume rm said {out:?})\n{}",
            env.log_tail()
        );
        assert!(!out.success(), "{point}: {out:?}");
        let mut wreck = Scope::for_snapshot(&env.snapshot());
        wreck.berthd(crashed);
        env.berthd.restart().unwrap();

        env.assert_volume_gone("hello_site");
        env.assert_doctor_clean(&format!("a crash at {point}"));
        env.assert_nothing_new(&before, &wreck, &format!("a crash at {point}"));
    }
}
