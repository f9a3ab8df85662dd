//! `<root>/<id>/state.json`: what the runtime remembers about a container.
//!
//! The status is not stored but derived each time ([`derive_status`]): a
//! stored status would be wrong the moment the process exits. The pid is
//! stored with the process's start time (field 22 of `/proc/<pid>/stat`),
//! so a pid reused by another process after the container died reads as
//! "stopped", never as the container.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

/// What is stored. `ociVersion`, `id`, `pid`, `bundle` and `annotations`
/// are the OCI state; the rest is ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Clock ticks after boot at which `pid` started.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// RFC 3339, UTC.
    pub created: String,
    #[serde(default)]
    pub cgroups_path: Option<PathBuf>,
    /// The cgroup could not enforce the device rules (see
    /// `cgroups::Cgroup::devices_enforced`): every process of the
    /// container, `exec`'s too, runs without CAP_MKNOD.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub devices_unenforced: bool,
}

/// The OCI runtime spec's state, as `berth-runtime state` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub annotations: HashMap<String, String>,
    pub created: String,
}

impl State {
    pub fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| Error::Io {
            what: format!(
                "parsing {} (delete the container with --force)",
                path.display()
            ),
            source: std::io::Error::other(e),
        })
    }

    /// Write atomically: a temporary file renamed over the old one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let path = dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        (|| {
            let mut f = crate::fsmode::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })()
        .ctx(|| format!("writing {}", path.display()))
    }

    pub fn oci(&self, status: Status) -> OciState {
        OciState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
            created: self.created.clone(),
        }
    }
}

/// What `/proc/<pid>/stat` says about a live pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parse `/proc/<pid>/stat` (the command name may hold spaces and ')').
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat` of a live pid, `None` if there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The status, from the stored start time, what /proc says now, and
/// whether the exec FIFO still exists.
pub fn derive_status(start_time: u64, now: Option<ProcStat>, fifo_exists: bool) -> Status {
    match now {
        Some(p) if p.start_time == start_time && p.state != 'Z' && p.state != 'X' => {
            if fifo_exists {
                Status::Created
            } else {
                Status::Running
            }
        }
        _ => Status::Stopped,
    }
}

/// Now as RFC 3339 (UTC, seconds), without a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "4242 (sleep (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1234 56";

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let p = parse_stat(STAT).unwrap();
        assert_eq!(
            p,
            ProcStat {
                state: 'S',
                start_time: 987654
            }
        );
    }

    #[test]
    fn status_derivation() {
        let alive = Some(ProcStat {
            state: 'S',
            start_time: 7,
        });
        assert_eq!(derive_status(7, alive, true), Status::Created);
        assert_eq!(derive_status(7, alive, false), Status::Running);
        // The pid now belongs to another process.
        assert_eq!(derive_status(8, alive, false), Status::Stopped);
        // Exited, not yet reaped.
        assert_eq!(
            derive_status(
                7,
                Some(ProcStat {
                    state: 'Z',
                    start_time: 7
                }),
                false
            ),
            Status::Stopped
        );
        assert_eq!(derive_status(7, None, true), Status::Stopped);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn state_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let s = State {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            pid: 42,
            start_time: 7,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            annotations: HashMap::new(),
            created: rfc3339(0),
            cgroups_path: None,
            devices_unenforced: false,
        };
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), s);
        let oci = serde_json::to_value(s.oci(Status::Stopped)).unwrap();
        assert_eq!(oci["status"], "stopped");
        assert_eq!(oci["pid"], 0);
        assert_eq!(oci["ociVersion"], "1.2.0");
    }
}
