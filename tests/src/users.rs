//! Throwaway system users, for tests of who may do what.
//!
//! [`TestUser::create`] runs `groupadd --system` and `useradd --system`
//! (no home, no login shell) for a user with a supplementary group of its
//! own; the drop runs `userdel` and `groupdel`, also after a failed test.
//! Names carry the test process's pid and a counter, so parallel tests and
//! test binaries never share one. Point berthd's `[access] group` at
//! [`TestUser::group`] to make the user a member of "group berth" for
//! that berthd (see `BerthdConfig::extra`).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

/// A system user in a group of its own, removed on drop.
#[derive(Debug)]
pub struct TestUser {
    pub name: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
}

fn run(args: &[&str]) -> Result<()> {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .with_context(|| format!("running {}", args[0]))?;
    if !st.success() {
        bail!("{args:?} failed ({st})");
    }
    Ok(())
}

impl TestUser {
    /// A new user `berthu<pid>x<n>`, member of group `berth-t<pid>x<n>`
    /// (its primary group is the one `useradd` makes with its name).
    pub fn create() -> Result<TestUser> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let group = format!("berth-t{tag}");
        let name = format!("berthu{tag}");
        run(&["groupadd", "--system", &group])?;
        // From here the drop removes the group (and the user, once made).
        let mut user = TestUser {
            name: name.clone(),
            group: group.clone(),
            uid: 0,
            gid: 0,
        };
        run(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--groups",
            &group,
            &name,
        ])?;
        let id = |flag: &str| -> Result<u32> {
            let out = Command::new("id").args([flag, &name]).output()?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .with_context(|| format!("id {flag} {name}"))
        };
        user.uid = id("-u")?;
        user.gid = id("-g")?;
        Ok(user)
    }

    /// `(uid, gid)` for `Cli::run_as_user`.
    pub fn ids(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}
