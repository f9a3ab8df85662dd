//! The demo catalog (`catalog/demo`) on a berthd of its own, for tests that
//! install apps: [`DemoEnv`] is a [`PrivateBus`], a [`Berthd`] on it, its
//! [`Cli`], and the catalog added as `demo` with `BERTH_DEMO_REGISTRY` set
//! to a registry that holds the demo images ([`push_demo_images`]).
//!
//! The registry is the env's own ([`DemoEnv::start`]: started and filled
//! for it, stopped after berthd), the one every test of the test binary
//! shares ([`DemoEnv::shared`], on [`crate::shared::demo_registry`]), or
//! any the caller keeps running ([`DemoEnv::on_registry`]).
//!
//! Its methods are what tests of apps do again and again: run `berth` and
//! insist on success or failure, install and uninstall, crash berthd at a
//! `BERTH_CRASH_AT` point, and check that nothing was left behind (a
//! [`Snapshot`] before and after, `berth doctor --dry-run`). They panic with
//! the last lines of berthd's log.
//!
//! When the env drops, also after a failed test, it puts the host back as it
//! found it: berthd is started again if the test left it dead, every app is
//! uninstalled with `--delete-data`, every container removed, kept volumes
//! pruned, and the network links and nftables tables attributed to this
//! berthd (its [`Scope`], with every id its log mentions) deleted, as they
//! outlive berthd and its directories. Then berthd, its bus and an own
//! registry stop, in that order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::berthd::{Berthd, BerthdConfig, Cli, CliOutput};
use crate::bus::PrivateBus;
use crate::fsutil::TestDir;
use crate::image::push_demo_images;
use crate::registry::Registry;
use crate::snapshot::{sweep_network, Scope, Snapshot};

/// How long one `berth` command of a [`DemoEnv`] may take: an install pulls
/// and starts a whole app.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(240);

/// `catalog/demo` of this repository.
pub fn catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .join("catalog/demo")
}

/// A registry on a free port with the demo images pushed.
pub fn registry() -> Result<Registry> {
    let registry = Registry::start()?;
    push_demo_images(&registry.client()).context("pushing the demo images")?;
    Ok(registry)
}

/// A bus and a berthd of their own, with the demo catalog added (see the
/// module doc).
pub struct DemoEnv {
    /// `berth` on this berthd's bus, with [`CLI_TIMEOUT`].
    pub cli: Cli,
    // Dropped in this order, after `Drop for DemoEnv` ran: berthd, its bus,
    // the registry if it is the env's own, the temp catalogs.
    pub berthd: Berthd,
    bus: PrivateBus,
    own_registry: Option<Registry>,
    /// `127.0.0.1:PORT` of the registry with the demo images.
    registry: String,
    /// Catalogs written by [`DemoEnv::temp_catalog`].
    dirs: Vec<TestDir>,
}

impl DemoEnv {
    /// On a registry of its own, started and filled here and stopped when
    /// the env drops.
    pub fn start() -> Result<Self> {
        let registry = registry()?;
        let mut env = Self::on_registry(&registry.host())?;
        env.own_registry = Some(registry);
        Ok(env)
    }

    /// On the registry with the demo images that every test of this test
    /// binary shares ([`crate::shared::demo_registry`]).
    pub fn shared() -> Result<Self> {
        Self::on_registry(&crate::shared::demo_registry().host())
    }

    /// On the registry at `host` (`127.0.0.1:PORT`), which holds the demo
    /// images and which the caller keeps running.
    pub fn on_registry(host: &str) -> Result<Self> {
        Self::on_bus(PrivateBus::start()?, &BerthdConfig::new(), host)
    }

    /// The shared demo registry, on `bus` (e.g. one where polkit runs,
    /// [`PrivateBus::start_with_polkit`]) with berthd's config `config`.
    pub fn shared_on(bus: PrivateBus, config: &BerthdConfig) -> Result<Self> {
        Self::on_bus(bus, config, &crate::shared::demo_registry().host())
    }

    /// berthd with `config` on `bus`, the demo catalog on the registry at
    /// `host`.
    pub fn on_bus(bus: PrivateBus, config: &BerthdConfig, host: &str) -> Result<Self> {
        let berthd = Berthd::start_with_config(&bus, &config.to_toml())?;
        let env = DemoEnv {
            cli: berthd.cli()?.timeout(CLI_TIMEOUT),
            berthd,
            bus,
            own_registry: None,
            registry: host.to_string(),
            dirs: Vec::new(),
        };
        env.add_catalog(&catalog(), "demo")?;
        Ok(env)
    }

    /// `127.0.0.1:PORT` of the registry with the demo images.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn bus(&self) -> &PrivateBus {
        &self.bus
    }

    /// `berth catalog add DIR --name NAME --set BERTH_DEMO_REGISTRY=HOST`.
    pub fn add_catalog(&self, dir: &Path, name: &str) -> Result<()> {
        let set = format!("BERTH_DEMO_REGISTRY={}", self.registry);
        let path = dir.to_str().context("a catalog path that is not UTF-8")?;
        self.cli
            .run(&["catalog", "add", path, "--name", name, "--set", &set])?
            .ok()
            .with_context(|| format!("adding the catalog {name}\n{}", self.log_tail()))?;
        Ok(())
    }

    /// A catalog in a temp dir (kept until the env drops) with `apps` (id →
    /// compose.yaml; each with the `hello` app's icon and its `web` service's
    /// port 8080 to open), added as `name`; the dir.
    pub fn temp_catalog(&mut self, name: &str, apps: &[(&str, &str)]) -> Result<PathBuf> {
        let dir = TestDir::new("berth-demo-catalog-")?;
        let icon = std::fs::read(catalog().join("hello/icon.svg"))?;
        for (id, compose) in apps {
            let app = dir.join(id);
            std::fs::create_dir_all(&app)?;
            std::fs::write(
                app.join("app.toml"),
                format!(
                    "id = \"{id}\"\ntitle = \"{id}\"\nversion = \"1\"\n\
                     description = \"A test app.\"\ncategory = \"demo\"\n\
                     icon = \"icon.svg\"\nopen = {{ service = \"web\", port = 8080 }}\n"
                ),
            )?;
            std::fs::write(app.join("compose.yaml"), compose)?;
            std::fs::write(app.join("icon.svg"), &icon)?;
        }
        self.add_catalog(dir.path(), name)?;
        let path = dir.path().to_path_buf();
        self.dirs.push(dir);
        Ok(path)
    }

    /// `berth ARGS`, whatever it answers. Panics if it could not be run.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        self.cli.run(args).unwrap()
    }

    /// `berth ARGS`, which must succeed; its stdout. Panics otherwise, with
    /// berthd's last lines.
    pub fn ok(&self, args: &[&str]) -> String {
        match self.run(args).ok() {
            Ok(out) => out.stdout,
            Err(e) => panic!("berth {}: {e:#}\n{}", args.join(" "), self.log_tail()),
        }
    }

    /// `berth ARGS`, which must fail; stdout and stderr together.
    pub fn fails(&self, args: &[&str]) -> String {
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
    pub fn log_tail(&self) -> String {
        let log = self.berthd.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!("berthd's log (last lines):\n{}", lines[from..].join("\n"))
    }

    /// `berth install APP ARGS`, which must succeed; its output.
    pub fn install(&self, app: &str, args: &[&str]) -> CliOutput {
        let mut all = vec!["install", app];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.success(),
            "berth {} failed:\n{}{}\n{}",
            all.join(" "),
            out.stdout,
            out.stderr,
            self.log_tail()
        );
        out
    }

    /// `berth uninstall APP --delete-data`, which must leave nothing.
    pub fn uninstall(&self, app: &str) {
        let out = self.run(&["uninstall", app, "--delete-data"]);
        assert!(
            out.success() && out.stdout.to_lowercase().contains("nothing left"),
            "berth uninstall {app} --delete-data:\n{}{}\n{}",
            out.stdout,
            out.stderr,
            self.log_tail()
        );
    }

    /// `berth uninstall APP --keep-data`, which must succeed.
    pub fn uninstall_keeping_data(&self, app: &str) {
        let out = self.run(&["uninstall", app, "--keep-data"]);
        assert!(
            out.success(),
            "berth uninstall {app} --keep-data:\n{}{}\n{}",
            out.stdout,
            out.stderr,
            self.log_tail()
        );
    }

    /// `berth inspect-app APP` as JSON.
    pub fn app(&self, app: &str) -> Value {
        let out = self.ok(&["inspect-app", app]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect-app {app}: {e}: {out}"))
    }

    /// The ids of the installed apps (`berth apps --format json`).
    pub fn apps(&self) -> Vec<String> {
        let out = self.ok(&["apps", "--format", "json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("apps --format json: {e}: {out}"));
        v.as_array()
            .unwrap_or_else(|| panic!("apps --format json is not an array: {out}"))
            .iter()
            .map(|a| a["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The machine as this berthd's [`Snapshot`] sees it now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.berthd).expect("snapshot")
    }

    /// This berthd's scope, knowing every id its log mentions.
    pub fn scope(&self) -> Scope {
        let mut scope = Scope::for_berthd(&self.berthd);
        scope.learn_text(&self.berthd.log());
        scope
    }

    /// Runs `berth ARGS` on a berthd started with `BERTH_CRASH_AT=POINT`,
    /// which must die there and the command fail (not hang, not be refused
    /// as busy); starts berthd again without. Returns the scope learnt from
    /// the wreck, for [`DemoEnv::assert_nothing_new`].
    pub fn crash_at(&mut self, point: &str, args: &[&str]) -> Scope {
        self.berthd
            .restart_with_env(&[("BERTH_CRASH_AT", point)])
            .unwrap();
        let crashed_pid = self.berthd.pid();
        // The command must notice that berthd is gone, not wait for it.
        // Right after a start berthd is still bringing the app back; an
        // uninstall waits for that rather than refuse.
        let cli = self.cli.clone().timeout(Duration::from_secs(60));
        let out = match cli.run(args) {
            Ok(out) => out,
            Err(e) => panic!("{point}: berth {} did not return: {e:#}", args.join(" ")),
        };
        assert!(
            !out.stderr.contains("is busy"),
            "{point}: berth {} was refused: {out:?}",
            args.join(" ")
        );
        let died = self.berthd.wait_exit(Duration::from_secs(30)).unwrap();
        assert!(
            died,
            "{point}: berthd did not crash (berth {} said {:?})\n{}",
            args.join(" "),
            out,
            self.log_tail()
        );
        assert!(
            !out.success(),
            "{point}: berth {} succeeded",
            args.join(" ")
        );
        // What the wreck holds, before recovery removes the files naming it.
        let wreck = self.snapshot();
        let mut scope = Scope::for_snapshot(&wreck);
        scope.berthd(crashed_pid);
        self.berthd.restart().unwrap();
        scope
    }

    /// Nothing new since `before` that belongs to this berthd (`extra`
    /// adds what a crashed berthd made), within a few seconds: a process on
    /// its way out (a spare `berth-shim` of a berthd that was stopped runs
    /// at the lowest priority) is given the time to go. `what` is what came
    /// before, for the message.
    pub fn assert_nothing_new(&self, before: &Snapshot, extra: &Scope, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (diff, after) = loop {
            let after = self.snapshot();
            let mut scope = self.scope();
            scope.merge(extra);
            let diff = Snapshot::diff_detailed(before, &after, &scope);
            if diff.ours.is_empty() || Instant::now() > deadline {
                break (diff, after);
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // The shims on this berthd's bus, to tell which of two alike is the
        // extra one.
        let shims = |s: &Snapshot| -> Vec<u32> {
            s.processes
                .iter()
                .filter(|p| p.comm == "berth-shim")
                .filter(|p| p.bus.as_deref() == Some(self.berthd.bus_address()))
                .map(|p| p.pid)
                .collect()
        };
        assert!(
            diff.ours.is_empty(),
            "{what} left (berthd is pid {}):\n  {}\n{}shims on its bus before: {:?}, after: {:?}\n\
             (not attributed to this berthd, for information: {:?})\n{}",
            self.berthd.pid(),
            diff.ours.join("\n  "),
            describe_processes(&diff.ours),
            shims(before),
            shims(&after),
            diff.unattributed,
            self.log_tail()
        );
    }

    /// `berth doctor --dry-run` finds nothing ("Nothing is left that
    /// Berth's records do not explain.", no "Remaining:"); `what` is what
    /// came before, for the message.
    pub fn assert_doctor_clean(&self, what: &str) {
        let out = self.run(&["doctor", "--dry-run"]);
        let text = format!("{}{}", out.stdout, out.stderr);
        let t = text.to_lowercase();
        assert!(
            out.success() && t.contains("nothing is left") && !t.contains("remaining:"),
            "berth doctor --dry-run after {what}:\n{text}\n{}",
            self.log_tail()
        );
    }

    /// The ids of the installed apps, if berthd answers.
    fn app_ids(&self) -> Result<Vec<String>> {
        let out = self.cli.run(&["apps", "--format", "json"])?.ok()?;
        let apps: Vec<Value> = serde_json::from_str(&out.stdout)?;
        Ok(apps
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect())
    }
}

impl Drop for DemoEnv {
    fn drop(&mut self) {
        // A test that failed may have left berthd dead (crash tests).
        if !self.berthd.is_running() {
            if let Err(e) = self.berthd.restart() {
                eprintln!("demo env cleanup: restarting berthd: {e:#}");
            }
        }
        for id in self.app_ids().unwrap_or_default() {
            let _ = self.cli.run(&["uninstall", &id, "--delete-data"]);
        }
        if let Ok(out) = self.cli.run(&["ps", "-aq"]) {
            for id in out.stdout.split_whitespace() {
                let _ = self.cli.run(&["rm", "-f", id]);
            }
        }
        let _ = self.cli.run(&["volume", "prune"]);
        // Links and tables outlive berthd and its directories.
        for line in sweep_network(&self.scope()) {
            eprintln!("demo env cleanup: {line}");
        }
    }
}

/// What `/proc` says about the processes in `lines` (`process: PID …`):
/// state, parent, what it waits in, its fds.
fn describe_processes(lines: &[String]) -> String {
    let mut out = String::new();
    for l in lines {
        let Some(pid) = l
            .strip_prefix("process: ")
            .and_then(|r| r.split(' ').next())
        else {
            continue;
        };
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        let target = std::fs::read_link(e.path()).unwrap_or_default();
                        format!("{}->{}", e.file_name().to_string_lossy(), target.display())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  pid {pid}: stat {}; waits in {}; fds {fds:?}\n",
            read("stat").trim(),
            read("wchan")
        ));
        // Who holds the other end of its unix sockets.
        let sockets = std::process::Command::new("ss").arg("-xpna").output();
        let sockets = sockets
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for fd in &fds {
            let Some(inode) = fd
                .split("socket:[")
                .nth(1)
                .and_then(|r| r.strip_suffix(']'))
            else {
                continue;
            };
            for line in sockets.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.contains(&inode) {
                    out.push_str(&format!("    socket {inode}: {line}\n"));
                    // The peer's inode is the 8th column (local 6th).
                    if let Some(peer) = words.get(7) {
                        for l2 in sockets.lines() {
                            if l2.split_whitespace().nth(5) == Some(*peer) {
                                out.push_str(&format!("    peer {peer}: {l2}\n"));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}
