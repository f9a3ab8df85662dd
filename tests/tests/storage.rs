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
//! Every test's [`Env`] is the kit's [`DemoEnv`], on one registry with the
//! demo images that the tests of this file share: when it drops, also when
//! the test failed, it uninstalls every app, removes every container,
//! deletes kept volumes and the network objects attributed to its berthd.
//!
//! [`Snapshot`]: berth_testkit::snapshot::Snapshot

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use berth_testkit::snapshot::Scope;
use berth_testkit::DemoEnv;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Fixtures

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

/// A test's own bus and berthd, with the demo catalog added, on the demo
/// registry the tests of this file share; with the volume and bus helpers
/// of these tests.
struct Env(DemoEnv);

impl Deref for Env {
    type Target = DemoEnv;

    fn deref(&self) -> &DemoEnv {
        &self.0
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut DemoEnv {
        &mut self.0
    }
}

fn start() -> Env {
    Env(DemoEnv::shared().expect("a berthd with the demo catalog"))
}

impl Env {
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

    env.install("hello", &[]);
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
    env.temp_catalog("test-storage", &[("keeper", KEEPER)])
        .unwrap();
    let before = env.snapshot();

    env.install("hello", &[]);
    env.uninstall_keeping_data("hello");
    env.install("keeper", &[]);

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
    let out = env.install("hello", &[]);
    let said = format!("{}{}", out.stdout, out.stderr);
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
        env.install("hello", &[]);
        env.uninstall_keeping_data("hello");
        assert!(env.volume("hello_site").is_some());

        let wreck = env.crash_at(point, &["volume", "rm", "hello_site"]);

        env.assert_volume_gone("hello_site");
        env.assert_doctor_clean(&format!("a crash at {point}"));
        env.assert_nothing_new(&before, &wreck, &format!("a crash at {point}"));
    }
}
