//! A private system bus: `dbus-daemon` with a config modelled on Debian's
//! `system.conf`, listening on a socket in a temp dir, including the
//! project's own policy file `helper/data/org.berth.Helper1.conf`.
//!
//! Like the real system bus it denies owning names and calling methods by
//! default; the policy file punches the holes (only root may own
//! `org.berth.Helper1`, anyone may call it). So a test that passes here
//! also proves the shipped policy. Point clients at it with
//! `DBUS_SYSTEM_BUS_ADDRESS=<address()>`.
//!
//! The socket's directory is 0755 and dbus-daemon makes the socket itself
//! world-writable, so unprivileged users (uid 65534 in tests) can connect.

use crate::fsutil::TestDir;
use crate::proc::{self, ChildGuard};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// uid and gid of `nobody` on Debian.
pub const NOBODY: u32 = 65534;

/// A running private `dbus-daemon`. Fields drop in order: process, dir.
#[derive(Debug)]
pub struct PrivateBus {
    child: ChildGuard,
    dir: TestDir,
    socket: PathBuf,
    address: String,
}

impl PrivateBus {
    /// Where the project's bus policy lives: `$BERTH_BUS_POLICY`, else
    /// `helper/data/org.berth.Helper1.conf` of this workspace.
    pub fn project_policy_path() -> PathBuf {
        std::env::var_os("BERTH_BUS_POLICY")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../helper/data/org.berth.Helper1.conf")
            })
    }

    /// Starts a bus with the project's policy file (which must exist).
    pub fn start() -> Result<Self> {
        let policy = Self::project_policy_path();
        if !policy.is_file() {
            bail!(
                "the project's bus policy {} does not exist; berthd could not own its name",
                policy.display()
            );
        }
        Self::start_with_policies(&[policy])
    }

    /// Starts a bus with the project's policy file and polkit's own, so a
    /// [`crate::polkit::Polkit`] can own its name.
    pub fn start_with_polkit() -> Result<Self> {
        Self::start_with_policies(&[
            Self::project_policy_path(),
            PathBuf::from(crate::polkit::POLKIT_BUS_POLICY),
        ])
    }

    /// Starts a bus including exactly `policies` (besides the default
    /// system-bus policy).
    pub fn start_with_policies(policies: &[PathBuf]) -> Result<Self> {
        let dir = TestDir::new("berth-bus-")?;
        let socket = dir.join("bus");
        let config = dir.join("bus.conf");
        std::fs::write(&config, config_text(&socket, policies)?)
            .with_context(|| format!("writing {}", config.display()))?;
        let log = dir.join("dbus.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = ChildGuard::spawn("dbus-daemon", cmd)
            .context("starting dbus-daemon (apt-get install dbus-daemon)")?;
        let address = format!("unix:path={}", socket.display());
        let bus = Self {
            child,
            dir,
            socket,
            address,
        };
        proc::wait_until(
            "the private bus to answer",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || {
                if !bus.child.is_running() {
                    bail!("dbus-daemon exited");
                }
                if !bus.socket.exists() {
                    return Ok(false);
                }
                Ok(bus
                    .dbus_send(&["org.freedesktop.DBus.GetId"])
                    .map(|o| o.status.success())
                    .unwrap_or(false))
            },
        )
        .with_context(|| format!("starting dbus-daemon; its log:\n{}", bus.log()))?;
        Ok(bus)
    }

    /// `unix:path=/tmp/.../bus`, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// dbus-daemon's output (policy denials are logged here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dbus.log")).unwrap_or_default()
    }

    /// A command with `DBUS_SYSTEM_BUS_ADDRESS` pointing at this bus, run as
    /// `uid:gid` through `setpriv` when given.
    pub fn command(
        &self,
        as_user: Option<(u32, u32)>,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Command {
        command(&self.address, as_user, program)
    }

    /// `dbus-send --system --print-reply --dest=org.freedesktop.DBus
    /// /org/freedesktop/DBus <args>` as root.
    pub fn dbus_send(&self, args: &[&str]) -> Result<Output> {
        dbus_send(&self.address, None, args)
    }

    /// The same as `uid:gid` (None: as the caller).
    pub fn dbus_send_as(&self, as_user: Option<(u32, u32)>, args: &[&str]) -> Result<Output> {
        dbus_send(&self.address, as_user, args)
    }

    /// `gdbus call` of `method` (`interface.Member`) on `object` of
    /// berthd (`org.berth.Helper1`) with `args` in GVariant text (gdbus
    /// reads the types from berthd's introspection), as `uid:gid` or the
    /// caller: the raw API, as any client could call it.
    pub fn call_berthd(
        &self,
        as_user: Option<(u32, u32)>,
        object: &str,
        method: &str,
        args: &[&str],
    ) -> Result<Output> {
        let mut cmd = command(&self.address, as_user, "gdbus");
        if as_user.is_some() {
            cmd.env("HOME", "/nonexistent");
        }
        cmd.args([
            "call",
            "--system",
            "--timeout",
            "30",
            "--dest",
            "org.berth.Helper1",
            "--object-path",
            object,
            "--method",
            method,
        ])
        .args(args);
        proc::run_with_timeout("gdbus", cmd, Duration::from_secs(40))
    }

    /// The pid of the connection owning `name`, or None if nobody owns it.
    pub fn name_owner_pid(&self, name: &str) -> Result<Option<u32>> {
        name_owner_pid(&self.address, name)
    }

    /// Stops the daemon and removes its dir (idempotent); `Drop` does it too.
    pub fn shutdown(&self) {
        let _ = self.child.stop();
        let _ = self.dir.cleanup();
    }
}

/// A command with `DBUS_SYSTEM_BUS_ADDRESS=address`, run as `uid:gid`
/// through `setpriv` when given.
pub fn command(
    address: &str,
    as_user: Option<(u32, u32)>,
    program: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let mut cmd = match as_user {
        None => Command::new(program),
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "--"])
                .arg(program);
            c.current_dir("/");
            c
        }
    };
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
    cmd
}

/// `dbus-send --system --print-reply --dest=org.freedesktop.DBus
/// /org/freedesktop/DBus <args>` on the bus at `address`.
pub fn dbus_send(address: &str, as_user: Option<(u32, u32)>, args: &[&str]) -> Result<Output> {
    let mut cmd = command(address, as_user, "dbus-send");
    cmd.args([
        "--system",
        "--print-reply",
        "--reply-timeout=10000",
        "--dest=org.freedesktop.DBus",
        "/org/freedesktop/DBus",
    ])
    .args(args);
    proc::run_with_timeout("dbus-send", cmd, Duration::from_secs(30))
}

/// The pid of the connection owning `name` on the bus at `address`, or None
/// if nobody owns it.
pub fn name_owner_pid(address: &str, name: &str) -> Result<Option<u32>> {
    let out = dbus_send(
        address,
        None,
        &[
            "org.freedesktop.DBus.GetConnectionUnixProcessID",
            &format!("string:{name}"),
        ],
    )?;
    if !out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text
        .split_whitespace()
        .last()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("unexpected dbus-send output {text:?}"))?;
    Ok(Some(pid))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn config_text(socket: &Path, policies: &[PathBuf]) -> Result<String> {
    let mut includes = String::new();
    for policy in policies {
        let policy = policy
            .canonicalize()
            .with_context(|| format!("bus policy {}", policy.display()))?;
        includes.push_str(&format!(
            "  <include>{}</include>\n",
            xml_escape(&policy.to_string_lossy())
        ));
    }
    Ok(format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Berth's private test bus: Debian's system.conf without the service
     launcher, syslog and system includes. -->
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
{includes}</busconfig>
"#,
        socket = xml_escape(&socket.to_string_lossy()),
    ))
}
