//! Resource limits (`process.rlimits`), never raising a hard limit.
//!
//! Raising a hard limit needs CAP_SYS_RESOURCE, which berthd may not have
//! (and a desktop's session limits are the user's choice): a limit above
//! the current hard limit is lowered to it, with a warning.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};
use rustix::process::{Resource, Rlimit};

use super::{Error, Result};

/// RLIM_INFINITY.
pub const INFINITY: u64 = u64::MAX;

/// A limit as it will be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamped {
    pub soft: u64,
    pub hard: u64,
    /// Lowered from what was asked.
    pub clamped: bool,
}

/// The limit to set for `soft`/`hard` when the current hard limit is
/// `current_hard`: the hard limit is lowered to the current one, and the
/// soft limit to the new hard one. A soft limit above its own hard limit is
/// a mistake in the request and an error.
pub fn clamp(name: &str, soft: u64, hard: u64, current_hard: u64) -> Result<Clamped> {
    if soft > hard {
        return Err(Error::RlimitInvalid {
            resource: name.to_string(),
            soft,
            hard,
        });
    }
    let new_hard = hard.min(current_hard);
    let new_soft = soft.min(new_hard);
    Ok(Clamped {
        soft: new_soft,
        hard: new_hard,
        clamped: new_hard != hard || new_soft != soft,
    })
}

/// Applies every limit of the list to the calling process.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for limit in rlimits {
        let (resource, name) = resource(limit.typ());
        let current = rustix::process::getrlimit(resource);
        let current_hard = current.maximum.unwrap_or(INFINITY);
        let set = clamp(name, limit.soft(), limit.hard(), current_hard)?;
        if set.clamped {
            tracing::warn!(
                resource = name,
                asked_soft = limit.soft(),
                asked_hard = limit.hard(),
                soft = set.soft,
                hard = set.hard,
                "resource limit lowered to the current hard limit"
            );
        }
        let new = Rlimit {
            current: (set.soft != INFINITY).then_some(set.soft),
            maximum: (set.hard != INFINITY).then_some(set.hard),
        };
        rustix::process::setrlimit(resource, new).map_err(|e| Error::Rlimit {
            resource: name.to_string(),
            soft: set.soft,
            hard: set.hard,
            source: e.into(),
        })?;
    }
    Ok(())
}

fn resource(typ: PosixRlimitType) -> (Resource, &'static str) {
    match typ {
        PosixRlimitType::RlimitCpu => (Resource::Cpu, "RLIMIT_CPU"),
        PosixRlimitType::RlimitFsize => (Resource::Fsize, "RLIMIT_FSIZE"),
        PosixRlimitType::RlimitData => (Resource::Data, "RLIMIT_DATA"),
        PosixRlimitType::RlimitStack => (Resource::Stack, "RLIMIT_STACK"),
        PosixRlimitType::RlimitCore => (Resource::Core, "RLIMIT_CORE"),
        PosixRlimitType::RlimitRss => (Resource::Rss, "RLIMIT_RSS"),
        PosixRlimitType::RlimitNproc => (Resource::Nproc, "RLIMIT_NPROC"),
        PosixRlimitType::RlimitNofile => (Resource::Nofile, "RLIMIT_NOFILE"),
        PosixRlimitType::RlimitMemlock => (Resource::Memlock, "RLIMIT_MEMLOCK"),
        PosixRlimitType::RlimitAs => (Resource::As, "RLIMIT_AS"),
        PosixRlimitType::RlimitLocks => (Resource::Locks, "RLIMIT_LOCKS"),
        PosixRlimitType::RlimitSigpending => (Resource::Sigpending, "RLIMIT_SIGPENDING"),
        PosixRlimitType::RlimitMsgqueue => (Resource::Msgqueue, "RLIMIT_MSGQUEUE"),
        PosixRlimitType::RlimitNice => (Resource::Nice, "RLIMIT_NICE"),
        PosixRlimitType::RlimitRtprio => (Resource::Rtprio, "RLIMIT_RTPRIO"),
        PosixRlimitType::RlimitRttime => (Resource::Rttime, "RLIMIT_RTTIME"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_current_hard_limit_is_kept() {
        let c = clamp("RLIMIT_NOFILE", 1024, 4096, 524_288).unwrap();
        assert_eq!(
            c,
            Clamped {
                soft: 1024,
                hard: 4096,
                clamped: false
            }
        );
    }

    #[test]
    fn a_hard_limit_above_the_current_one_is_lowered() {
        let c = clamp("RLIMIT_NOFILE", 1024, 1_048_576, 524_288).unwrap();
        assert_eq!(
            c,
            Clamped {
                soft: 1024,
                hard: 524_288,
                clamped: true
            }
        );
        // Docker's usual nofile=1048576:1048576 under a systemd default.
        let c = clamp("RLIMIT_NOFILE", 1_048_576, 1_048_576, 524_288).unwrap();
        assert_eq!(
            c,
            Clamped {
                soft: 524_288,
                hard: 524_288,
                clamped: true
            }
        );
        let c = clamp("RLIMIT_CORE", INFINITY, INFINITY, 0).unwrap();
        assert_eq!(
            c,
            Clamped {
                soft: 0,
                hard: 0,
                clamped: true
            }
        );
    }

    #[test]
    fn unlimited_stays_unlimited_when_the_host_is_unlimited() {
        let c = clamp("RLIMIT_CORE", INFINITY, INFINITY, INFINITY).unwrap();
        assert_eq!(
            c,
            Clamped {
                soft: INFINITY,
                hard: INFINITY,
                clamped: false
            }
        );
    }

    #[test]
    fn soft_above_hard_is_an_error_that_says_so() {
        let err = clamp("RLIMIT_NPROC", 200, 100, INFINITY).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("RLIMIT_NPROC") && msg.contains("200") && msg.contains("100"),
            "{msg}"
        );
    }
}
