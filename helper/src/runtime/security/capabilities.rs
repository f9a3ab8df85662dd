//! Capability sets: Docker's default, OCI names to bits, and the syscalls
//! that drop the bounding set and set the others.

use oci_spec::runtime::{Capabilities, Capability};

use super::{os_error, Error, Result};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub fn docker_default_capabilities() -> Vec<Capability> {
    vec![
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ]
}

/// The kernel's number of a capability (linux/capability.h).
pub fn number(cap: Capability) -> u8 {
    match cap {
        Capability::Chown => 0,
        Capability::DacOverride => 1,
        Capability::DacReadSearch => 2,
        Capability::Fowner => 3,
        Capability::Fsetid => 4,
        Capability::Kill => 5,
        Capability::Setgid => 6,
        Capability::Setuid => 7,
        Capability::Setpcap => 8,
        Capability::LinuxImmutable => 9,
        Capability::NetBindService => 10,
        Capability::NetBroadcast => 11,
        Capability::NetAdmin => 12,
        Capability::NetRaw => 13,
        Capability::IpcLock => 14,
        Capability::IpcOwner => 15,
        Capability::SysModule => 16,
        Capability::SysRawio => 17,
        Capability::SysChroot => 18,
        Capability::SysPtrace => 19,
        Capability::SysPacct => 20,
        Capability::SysAdmin => 21,
        Capability::SysBoot => 22,
        Capability::SysNice => 23,
        Capability::SysResource => 24,
        Capability::SysTime => 25,
        Capability::SysTtyConfig => 26,
        Capability::Mknod => 27,
        Capability::Lease => 28,
        Capability::AuditWrite => 29,
        Capability::AuditControl => 30,
        Capability::Setfcap => 31,
        Capability::MacOverride => 32,
        Capability::MacAdmin => 33,
        Capability::Syslog => 34,
        Capability::WakeAlarm => 35,
        Capability::BlockSuspend => 36,
        Capability::AuditRead => 37,
        Capability::Perfmon => 38,
        Capability::Bpf => 39,
        Capability::CheckpointRestore => 40,
    }
}

/// A set as the kernel's bit mask (`CapEff:` in /proc/PID/status), keeping
/// only capabilities this kernel knows (≤ `last_cap`); unknown ones are
/// logged and skipped, as runc does.
pub fn mask(set: Option<&Capabilities>, last_cap: u8) -> u64 {
    let mut mask = 0u64;
    for cap in set.into_iter().flatten() {
        let n = number(*cap);
        if n > last_cap {
            tracing::warn!(capability = ?cap, "this kernel does not know the capability; skipped");
            continue;
        }
        mask |= 1 << n;
    }
    mask
}

/// The highest capability number this kernel knows, probed with
/// PR_CAPBSET_READ so it works before /proc is mounted.
pub fn last_cap() -> u8 {
    let mut last = 0u8;
    for cap in 0..64u8 {
        // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc < 0 {
            break;
        }
        last = cap;
    }
    last
}

/// Drops every capability outside `keep` from the bounding set (needs
/// CAP_SETPCAP in the effective set).
pub fn drop_bounding(keep: u64, last_cap: u8) -> Result<()> {
    for cap in 0..=last_cap {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            return Err(Error::Capabilities {
                step: format!("dropping capability {cap} from the bounding set"),
                source: os_error(),
            });
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the calling thread's effective, permitted and inheritable sets in
/// one capset(2), so effective ⊆ permitted holds at every step.
pub fn set(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: both pointers are to live, correctly laid out structs; version
    // 3 reads two data elements.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(Error::Capabilities {
            step: format!(
                "setting capabilities (effective {effective:#018x}, permitted {permitted:#018x}, inheritable {inheritable:#018x})"
            ),
            source: os_error(),
        });
    }
    Ok(())
}

/// Replaces the ambient set with `ambient` (each must be permitted and
/// inheritable already).
pub fn set_ambient(ambient: u64, last_cap: u8) -> Result<()> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // EINVAL: a kernel before 4.3, without ambient capabilities; nothing to clear.
    if rc != 0 && ambient != 0 {
        return Err(Error::Capabilities {
            step: "clearing the ambient capability set".into(),
            source: os_error(),
        });
    }
    for cap in 0..=last_cap {
        if ambient & (1 << cap) == 0 {
            continue;
        }
        // SAFETY: as above.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                libc::c_ulong::from(cap),
                0,
                0,
            )
        };
        // As runc does: a capability that cannot be raised (it is not in the
        // inheritable set, as in `runc spec`'s default) is skipped rather
        // than failing the container. Not printed: this runs in the
        // container's init, whose stderr is the container's.
        if rc != 0 {
            tracing::debug!("cannot raise ambient capability {cap}: {}", os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask_is_dockers() {
        let set: Capabilities = docker_default_capabilities().into_iter().collect();
        assert_eq!(set.len(), 14);
        assert_eq!(mask(Some(&set), 40), 0x0000_0000_a804_25fb);
    }

    #[test]
    fn mask_skips_capabilities_the_kernel_lacks() {
        let set: Capabilities = [Capability::Chown, Capability::CheckpointRestore]
            .into_iter()
            .collect();
        assert_eq!(mask(Some(&set), 39), 1);
        assert_eq!(mask(Some(&set), 40), 1 | 1 << 40);
        assert_eq!(mask(None, 40), 0);
    }

    #[test]
    fn last_cap_matches_proc() {
        let proc: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(last_cap(), proc);
    }
}
