//! The real `berthd` and `berth` binaries, run against a [`PrivateBus`].
//!
//! [`Berthd`] lifecycle:
//!
//! ```text
//! start ──► running ──kill9()──► dead ──restart()──► running
//!              │  └──restart(): SIGTERM, wait, start again ──┘
//!              └──drop: SIGTERM, 5 s, SIGKILL; SIGKILL to every process
//!                 group it led; root dirs unmounted and removed
//! ```
//!
//! "Running" means the name `org.berth.Helper1` is owned on the bus by the
//! berthd process we started (not a predecessor that has not let go yet).
//! berthd runs with `--root DIR/root`, `--run-root DIR/run` and
//! `--config DIR/config.toml`; its stdout and stderr go to `DIR/berthd.log`,
//! which every start-up error quotes.
//!
//! The binaries come from `$BERTHD_BIN` / `$BERTH_BIN`, else from the cargo
//! target dir this test binary lives in (`target/debug/deps/..` →
//! `target/debug/berthd`). `cargo test` does not build other packages'
//! binaries: run `cargo build --workspace --bins` first.

use crate::bus::{PrivateBus, NOBODY};
use crate::fsutil::TestDir;
use crate::proc::{self, ChildGuard};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// The bus name berthd owns.
pub const BUS_NAME: &str = "org.berth.Helper1";
/// How long berthd may take to own its name.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The directory holding the workspace's built binaries.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the running test binary")?;
    let mut dir = exe
        .parent()
        .context("the test binary has no parent dir")?
        .to_path_buf();
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir.pop();
    }
    Ok(dir)
}

/// `$env_var`, else `<bin_dir>/<name>`; must exist.
pub fn find_binary(name: &str, env_var: &str) -> Result<PathBuf> {
    let path = match std::env::var_os(env_var) {
        Some(p) => PathBuf::from(p),
        None => bin_dir()?.join(name),
    };
    if !path.is_file() {
        bail!(
            "{name} not found at {}; build it first (`cargo build --workspace --bins`) or set {env_var}",
            path.display()
        );
    }
    Ok(path)
}

/// The settings berthd reads from `--config` (TOML).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BerthdConfig {
    /// `[registries] insecure`: hosts spoken to over plain HTTP.
    pub insecure: Vec<String>,
    pub max_layer_bytes: Option<u64>,
    pub max_layer_entries: Option<u64>,
    pub max_parallel_downloads: Option<u32>,
    /// Appended verbatim (more tables).
    pub extra: String,
}

impl BerthdConfig {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insecure(mut self, host: &str) -> Self {
        self.insecure.push(host.to_string());
        self
    }

    pub fn max_layer_bytes(mut self, n: u64) -> Self {
        self.max_layer_bytes = Some(n);
        self
    }

    pub fn max_layer_entries(mut self, n: u64) -> Self {
        self.max_layer_entries = Some(n);
        self
    }

    pub fn max_parallel_downloads(mut self, n: u32) -> Self {
        self.max_parallel_downloads = Some(n);
        self
    }

    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::from("[registries]\ninsecure = [");
        let hosts: Vec<String> = self.insecure.iter().map(|h| format!("{h:?}")).collect();
        out.push_str(&hosts.join(", "));
        out.push_str("]\n\n[limits]\n");
        if let Some(n) = self.max_layer_bytes {
            let _ = writeln!(out, "max_layer_bytes = {n}");
        }
        if let Some(n) = self.max_layer_entries {
            let _ = writeln!(out, "max_layer_entries = {n}");
        }
        if let Some(n) = self.max_parallel_downloads {
            let _ = writeln!(out, "max_parallel_downloads = {n}");
        }
        if !self.extra.is_empty() {
            out.push('\n');
            out.push_str(&self.extra);
        }
        out
    }
}

/// A running `berthd`. Fields drop in order: process, dirs.
#[derive(Debug)]
pub struct Berthd {
    child: Option<ChildGuard>,
    /// Process groups of every berthd we started (for leftovers at drop).
    groups: Vec<u32>,
    bin: PathBuf,
    bus_address: String,
    dir: TestDir,
}

impl Berthd {
    /// Starts berthd with an empty config (no insecure registries, default
    /// limits).
    pub fn start(bus: &PrivateBus) -> Result<Self> {
        Self::start_with_config(bus, &BerthdConfig::new().to_toml())
    }

    /// Starts berthd with `config_toml` as its config file.
    pub fn start_with_config(bus: &PrivateBus, config_toml: &str) -> Result<Self> {
        let bin = find_binary("berthd", "BERTHD_BIN")?;
        let dir = TestDir::new("berth-berthd-")?;
        for sub in ["root", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("config.toml"), config_toml)?;
        let mut berthd = Self {
            child: None,
            groups: Vec::new(),
            bin,
            bus_address: bus.address().to_string(),
            dir,
        };
        berthd.spawn()?;
        Ok(berthd)
    }

    fn spawn(&mut self) -> Result<()> {
        self.spawn_with_env(&[])
    }

    fn wait_owned(&self, pid: u32) -> Result<()> {
        proc::wait_until(
            &format!("berthd to own {BUS_NAME}"),
            START_TIMEOUT,
            Duration::from_millis(50),
            || {
                if !self.is_running() {
                    bail!("berthd exited during start-up");
                }
                Ok(crate::bus::name_owner_pid(&self.bus_address, BUS_NAME)? == Some(pid))
            },
        )
    }

    /// Stops berthd (SIGTERM, up to 5 s, SIGKILL) and starts it again on
    /// the same dirs and config; also starts it if it was dead.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// As [`Berthd::restart`], with `env` added to berthd's environment for
    /// this start only (the next `restart()` starts it without): fault
    /// injection such as `BERTH_CRASH_AT=install-pulled-image`. Also starts
    /// it if it was dead.
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        self.stop()?;
        self.spawn_with_env(env)
    }

    /// [`Berthd::spawn`] with extra environment variables.
    fn spawn_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(self.root())
            .arg("--run-root")
            .arg(self.run_root())
            .arg("--config")
            .arg(self.config_path())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() && !env.iter().any(|(k, _)| *k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let child = ChildGuard::spawn_in_own_group("berthd", cmd)?;
        self.groups.push(child.pid());
        let pid = child.pid();
        self.child = Some(child);
        let shown: String = env.iter().map(|(k, v)| format!(", with {k}={v}")).collect();
        self.wait_owned(pid).with_context(|| {
            format!(
                "berthd (pid {pid}{shown}) did not own {BUS_NAME} on the private bus; its log:\n{}",
                self.log()
            )
        })
    }

    /// Waits up to `timeout` for berthd to exit on its own (as it does when
    /// it reaches a `BERTH_CRASH_AT` point); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        match &self.child {
            Some(child) => Ok(child.wait_timeout(timeout)?.is_some()),
            None => Ok(true),
        }
    }

    /// SIGKILL to berthd alone (what it started keeps running).
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(child) = &self.child {
            child.kill9()?;
        }
        Ok(())
    }

    /// SIGTERM, up to 5 s, SIGKILL; the exit status (None if it was not
    /// started or already reaped by an earlier stop).
    pub fn stop(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.take() {
            Some(child) => Ok(Some(child.stop()?)),
            None => Ok(None),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.as_ref().is_some_and(|c| c.is_running())
    }

    /// The pid of the current berthd (0 if stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.pid())
    }

    /// Resident set size from `/proc/PID/status`, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    /// `--root`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// `--run-root`.
    pub fn run_root(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The temp dir holding root, run-root, config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("berthd.log")
    }

    /// Everything berthd printed, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// A [`Cli`] on the same bus.
    pub fn cli(&self) -> Result<Cli> {
        Cli::for_address(&self.bus_address)
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("berth-testkit: stopping berthd: {err:#}");
        }
        for group in &self.groups {
            proc::kill_process_group(*group);
        }
        // The dir is removed after this, unmounting leftovers first.
    }
}

/// What a `berth` run printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// `Err` with both outputs unless it exited 0.
    pub fn ok(self) -> Result<Self> {
        if !self.success() {
            bail!(
                "berth failed ({}):\nstdout:\n{}\nstderr:\n{}",
                self.status,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Runs the `berth` command line against a bus.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: PathBuf,
    bus_address: String,
    timeout: Duration,
    env: Vec<(String, String)>,
}

impl Cli {
    pub fn new(bus: &PrivateBus) -> Result<Self> {
        Self::for_address(bus.address())
    }

    pub fn for_address(bus_address: &str) -> Result<Self> {
        Ok(Self {
            bin: find_binary("berth", "BERTH_BIN")?,
            bus_address: bus_address.to_string(),
            timeout: Duration::from_secs(300),
            env: Vec::new(),
        })
    }

    /// Kill a run after `timeout` (default 300 s) and fail.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// `berth <args>` as the caller (root in the integration tests).
    pub fn run(&self, args: &[&str]) -> Result<CliOutput> {
        self.run_as_user(None, args)
    }

    /// `berth <args>` as uid/gid 65534 (nobody).
    pub fn run_as_nobody(&self, args: &[&str]) -> Result<CliOutput> {
        self.run_as_user(Some((NOBODY, NOBODY)), args)
    }

    /// `berth <args>` as `uid:gid` (via `setpriv`, no supplementary groups)
    /// or as the caller.
    pub fn run_as_user(&self, as_user: Option<(u32, u32)>, args: &[&str]) -> Result<CliOutput> {
        let mut cmd = crate::bus::command(&self.bus_address, as_user, &self.bin);
        if as_user.is_some() {
            cmd.env("HOME", "/nonexistent");
        }
        cmd.args(args).env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = proc::run_with_timeout("berth", cmd, self.timeout)
            .with_context(|| format!("running berth {}", args.join(" ")))?;
        Ok(CliOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
