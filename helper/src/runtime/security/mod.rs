//! The last steps before exec: rlimits, user and groups, capabilities,
//! no_new_privs, seccomp.
//!
//! `finalize` runs in the container's init after pivot_root, as root (in
//! the container's user namespace, if any) with every capability, right
//! before execve. It follows runc's order, because each step needs the
//! privilege a later step drops:
//!
//! 1. the seccomp profile is compiled (allocations and errors happen before
//!    anything changes);
//! 2. rlimits (setrlimit; a hard limit is never raised, see `rlimits`);
//! 3. the umask, if `process.user.umask` is set;
//! 4. if `noNewPrivileges` is false, the seccomp filter is installed now:
//!    without no_new_privs the kernel wants CAP_SYS_ADMIN to install it,
//!    so it must go in while we still have it. Every later syscall of this
//!    function (prctl, capset, setresuid, setgroups) must then be allowed by
//!    the profile, as with runc; Docker's profile allows them;
//! 5. the bounding set is cut to `capabilities.bounding` (needs CAP_SETPCAP);
//! 6. keep-caps on, then setgroups(additionalGids), setresgid, setresuid
//!    (needs CAP_SETGID/CAP_SETUID), keep-caps off: the permitted set
//!    survives the uid change, the effective set is cleared by it;
//! 7. effective, permitted and inheritable sets in one capset, then ambient;
//! 8. no_new_privs, if asked;
//! 9. if `noNewPrivileges` is true, the seccomp filter last, so as few
//!    syscalls as possible (only execve) run under it.
//!
//! Everything here acts on the calling thread (raw syscalls, not libc's
//! process-wide set*id wrappers), which is what execve hands on: call it
//! from the thread that will exec.
//!
//! `capabilities: None` in the process means no capabilities at all, not
//! "leave them as they are".

mod capabilities;
pub mod rlimits;

pub use capabilities::docker_default_capabilities;

use oci_spec::runtime::{LinuxSeccomp, Process};

use super::seccomp;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A resource limit's soft value is above its hard value.
    #[error("the {resource} limit asks for soft {soft} above hard {hard}; set the soft limit at or below the hard one")]
    RlimitInvalid {
        resource: String,
        soft: u64,
        hard: u64,
    },
    /// setrlimit failed.
    #[error("cannot set {resource} to soft {soft}, hard {hard}: {source}")]
    Rlimit {
        resource: String,
        soft: u64,
        hard: u64,
        #[source]
        source: std::io::Error,
    },
    /// A capability operation failed.
    #[error("{step} failed: {source}; the container's init must run as root with CAP_SETPCAP")]
    Capabilities {
        step: String,
        #[source]
        source: std::io::Error,
    },
    /// Switching to the container's user failed.
    #[error("cannot switch to {step}: {source}; check the user namespace's uid/gid maps cover it")]
    User {
        step: String,
        #[source]
        source: std::io::Error,
    },
    /// prctl(PR_SET_NO_NEW_PRIVS) or keep-caps failed.
    #[error("cannot {step}: {source}")]
    Prctl {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Writing /proc/self/oom_score_adj failed.
    #[error("cannot set oomScoreAdj to {value}: {source}; lowering it needs CAP_SYS_RESOURCE outside any user namespace")]
    OomScoreAdj {
        value: i32,
        #[source]
        source: std::io::Error,
    },
    /// Compiling or installing the seccomp filter failed.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
}

/// This module's result.
pub type Result<T> = std::result::Result<T, Error>;

fn os_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Applies `process`'s rlimits, oomScoreAdj, user, capabilities and no_new_privs, and
/// the seccomp filter, in runc's order (see the module notes). Called in the
/// container's init after pivot_root, right before execve.
pub fn finalize(process: &Process, seccomp: Option<&LinuxSeccomp>) -> Result<()> {
    let filter = seccomp.map(seccomp::compile).transpose()?;
    let no_new_privs = process.no_new_privileges().unwrap_or(false);

    if let Some(limits) = process.rlimits() {
        rlimits::apply(limits)?;
    }
    if let Some(value) = process.oom_score_adj() {
        // Still root with every capability: lowering it may need them.
        std::fs::write("/proc/self/oom_score_adj", value.to_string())
            .map_err(|source| Error::OomScoreAdj { value, source })?;
    }
    if let Some(umask) = process.user().umask() {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(umask as libc::mode_t) };
    }
    if let (Some(filter), false) = (&filter, no_new_privs) {
        seccomp::install(filter)?;
    }

    let last_cap = capabilities::last_cap();
    let caps = process.capabilities().as_ref();
    let mask = |set| capabilities::mask(set, last_cap);
    let bounding = mask(caps.and_then(|c| c.bounding().as_ref()));
    let effective = mask(caps.and_then(|c| c.effective().as_ref()));
    let permitted = mask(caps.and_then(|c| c.permitted().as_ref()));
    let inheritable = mask(caps.and_then(|c| c.inheritable().as_ref()));
    let ambient = mask(caps.and_then(|c| c.ambient().as_ref()));

    capabilities::drop_bounding(bounding, last_cap)?;
    prctl(
        libc::PR_SET_KEEPCAPS,
        1,
        "keep capabilities across the user switch",
    )?;
    switch_user(process)?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "clear keep-caps")?;
    capabilities::set(effective, permitted, inheritable)?;
    capabilities::set_ambient(ambient, last_cap)?;

    if no_new_privs {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")?;
    }
    if let (Some(filter), true) = (&filter, no_new_privs) {
        seccomp::install(filter)?;
    }
    Ok(())
}

/// setgroups, setresgid, setresuid from `process.user`, on this thread.
fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    let (uid, gid) = (user.uid(), user.gid());
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // Always set the list, even empty: root's own supplementary groups must
    // not leak into the container.
    // SAFETY: `groups` outlives the call and holds `groups.len()` gids.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc != 0 {
        return Err(Error::User {
            step: format!("supplementary groups {groups:?}"),
            source: os_error(),
        });
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) } != 0 {
        return Err(Error::User {
            step: format!("gid {gid}"),
            source: os_error(),
        });
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) } != 0 {
        return Err(Error::User {
            step: format!("uid {uid}"),
            source: os_error(),
        });
    }
    Ok(())
}

fn prctl(option: libc::c_int, value: libc::c_ulong, step: &'static str) -> Result<()> {
    // SAFETY: the options used here take integer arguments only.
    if unsafe { libc::prctl(option, value, 0, 0, 0) } != 0 {
        return Err(Error::Prctl {
            step,
            source: os_error(),
        });
    }
    Ok(())
}
