//! A real polkitd on a [`PrivateBus`], deciding with the project's own
//! action file (`helper/data/org.berth.policy`) and a test's rules.
//!
//! polkitd reads its actions from `/usr/share/polkit-1/actions` and its
//! rules from `/etc/polkit-1/rules.d` and `/usr/share/polkit-1/rules.d`,
//! paths built into it. [`Polkit::start`] runs it in a mount namespace of
//! its own (`unshare --mount --propagation private`) where those three are
//! bind mounts of directories in a [`TestDir`]: the host's polkit
//! configuration is neither read nor touched, and the mounts go with the
//! namespace when polkitd exits. polkitd drops to its own user (`polkitd`)
//! once it has read them.
//!
//! There is no logind session on the test bus, so a subject is never
//! "active": polkit applies `allow_any` (auth_admin, with no agent to ask:
//! a refusal) unless a test rule says yes. Rules are JavaScript, as in
//! `/etc/polkit-1/rules.d`; `action.lookup("app")` reads the details
//! berthd passes.
//!
//! The bus must let `polkitd` own its name: start it with
//! [`PrivateBus::start_with_polkit`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bus::PrivateBus;
use crate::fsutil::TestDir;
use crate::proc::{self, ChildGuard};

/// polkitd's well-known name.
pub const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";
/// Where Debian installs polkitd.
pub const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
/// polkit's own bus policy (who may own its name).
pub const POLKIT_BUS_POLICY: &str = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf";

/// A running polkitd; stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct Polkit {
    child: Option<ChildGuard>,
    dir: TestDir,
}

/// `helper/data/org.berth.policy` of this workspace.
pub fn project_actions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../helper/data/org.berth.policy")
}

impl Polkit {
    /// polkitd on `bus` with Berth's actions and `rules` (a rules file's
    /// JavaScript); returns once it owns its name.
    pub fn start(bus: &PrivateBus, rules: &str) -> Result<Polkit> {
        if !Path::new(POLKITD).exists() {
            bail!("{POLKITD} is missing: install polkitd");
        }
        let dir = TestDir::new("berth-polkit-")?;
        for sub in ["actions", "rules", "empty"] {
            std::fs::create_dir(dir.join(sub))?;
        }
        std::fs::copy(project_actions(), dir.join("actions/org.berth.policy"))
            .context("copying the project's polkit actions")?;
        std::fs::write(dir.join("rules/50-berth-test.rules"), rules)?;
        // polkitd reads these as its own user once it has dropped root:
        // test data, no secrets.
        for p in [
            dir.path().to_path_buf(),
            dir.join("actions"),
            dir.join("rules"),
            dir.join("empty"),
        ] {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        for f in ["actions/org.berth.policy", "rules/50-berth-test.rules"] {
            std::fs::set_permissions(
                dir.join(f),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )?;
        }
        let script = format!(
            "mount --bind {a} /usr/share/polkit-1/actions && \
             mount --bind {r} /etc/polkit-1/rules.d && \
             mount --bind {e} /usr/share/polkit-1/rules.d && \
             exec {POLKITD}",
            a = dir.join("actions").display(),
            r = dir.join("rules").display(),
            e = dir.join("empty").display(),
        );
        let log = std::fs::File::create(dir.join("polkitd.log"))?;
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = ChildGuard::spawn("polkitd", cmd)?;
        let pk = Polkit {
            child: Some(child),
            dir,
        };
        proc::wait_until(
            "polkitd to own its name",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                if !pk.is_running() {
                    bail!("polkitd exited");
                }
                Ok(bus.name_owner_pid(POLKIT_NAME)?.is_some())
            },
        )
        .with_context(|| format!("starting polkitd; its log:\n{}", pk.log()))?;
        Ok(pk)
    }

    pub fn is_running(&self) -> bool {
        self.child.as_ref().is_some_and(|c| c.is_running())
    }

    /// Stop polkitd now (SIGTERM): its name leaves the bus, and the next
    /// question to it fails.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(child) = self.child.take() {
            child.stop()?;
        }
        Ok(())
    }

    /// What polkitd printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("polkitd.log")).unwrap_or_default()
    }
}

impl Drop for Polkit {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
