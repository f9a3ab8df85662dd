//! A container as the runtime sees it: an id, a state directory and the
//! stored [`State`]. The verbs live one per file (`container_create.rs`,
//! `container_start.rs`, ...), each an `impl Container` block.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use oci_spec::runtime::Process;

use super::channel::{Channel, CONSOLE_FD, SYNC_FD};
use super::process::INIT_ARG;
use super::state::{self, OciState, State, Status, EXEC_FIFO};
use super::{exe, Context, Error, Result};

/// Where `berth-runtime` keeps state when not told otherwise.
pub const DEFAULT_STATE_ROOT: &str = "/run/berth/runtime";

/// How to create a container.
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub id: String,
    /// The directory holding `config.json`.
    pub bundle: PathBuf,
    /// Container state directories go under this one.
    pub state_root: PathBuf,
    /// Where to write the container's pid (for supervisors).
    pub pid_file: Option<PathBuf>,
    /// A unix socket that receives the pty master when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// The container's stdio; `None` inherits ours.
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The binary to run as the init (a sealed copy of it is what runs);
    /// `None` means our own, which must call `run_init_if_requested`.
    pub runtime_exe: Option<PathBuf>,
    /// A sealed copy made earlier ([`super::exe::sealed_copy`]), used as is
    /// instead of copying `runtime_exe` again (a few ms for each container).
    pub sealed_exe: Option<OwnedFd>,
}

/// How to run one more process in a running container.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub runtime_exe: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// `<state root>/<id>`.
    pub dir: PathBuf,
    pub state: State,
}

/// Ids become directory names: keep them to a safe alphabet.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

impl Container {
    /// The container `id` under `state_root`.
    pub fn load(state_root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = state_root.join(id);
        if !dir.is_dir() {
            return Err(Error::NotFound(id.to_string()));
        }
        let state = match State::load(&dir) {
            Ok(s) => s,
            // A runtime killed during create: no process, only the
            // directory; show it as stopped so it can be deleted.
            Err(_) if !dir.join(state::STATE_FILE).exists() => State {
                oci_version: String::new(),
                id: id.to_string(),
                pid: 0,
                start_time: 0,
                bundle: PathBuf::new(),
                rootfs: PathBuf::new(),
                annotations: Default::default(),
                created: String::new(),
                cgroups_path: None,
                devices_unenforced: false,
            },
            Err(e) => return Err(e),
        };
        Ok(Container {
            id: id.to_string(),
            dir,
            state,
        })
    }

    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    pub(crate) fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Derived now from /proc and the exec FIFO.
    pub fn status(&self) -> Status {
        state::derive_status(
            self.state.start_time,
            state::proc_stat(self.state.pid),
            self.fifo().exists(),
        )
    }

    /// The OCI state (`berth-runtime state`).
    pub fn oci_state(&self) -> OciState {
        self.state.oci(self.status())
    }

    /// Is the container process still the one we started?
    pub(crate) fn alive(&self) -> bool {
        self.status() != Status::Stopped
    }

    pub(crate) fn require(
        &self,
        action: &'static str,
        wanted: &'static str,
        ok: &[Status],
    ) -> Result<Status> {
        let status = self.status();
        if ok.contains(&status) {
            Ok(status)
        } else {
            Err(Error::WrongStatus {
                id: self.id.clone(),
                status,
                action,
                wanted,
            })
        }
    }
}

/// The stdio and console of an init to spawn.
pub(crate) struct InitIo {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub console_socket: Option<PathBuf>,
}

/// Spawn the init from a sealed copy of the runtime binary, with our end
/// of the socket at fd 3 and the console socket at fd 4.
pub(crate) fn spawn_init(
    runtime_exe: Option<&Path>,
    sealed_exe: Option<OwnedFd>,
    io: InitIo,
) -> Result<(Child, Channel)> {
    let sealed_owned;
    let sealed = match (sealed_exe, runtime_exe) {
        (Some(fd), _) => {
            exe::check_sealed(&fd).ctx(|| "checking the runtime's sealed copy".into())?;
            sealed_owned = fd;
            &sealed_owned
        }
        (None, Some(p)) => {
            sealed_owned = exe::sealed_copy(p)
                .ctx(|| format!("copying {} into a sealed memfd", p.display()))?;
            &sealed_owned
        }
        (None, None) => {
            exe::sealed_self().ctx(|| "copying the runtime binary into a sealed memfd".into())?
        }
    };
    let (ours, theirs) = UnixStream::pair().ctx(|| "creating the init's socket".into())?;
    let console = match &io.console_socket {
        Some(p) => Some(
            UnixStream::connect(p)
                .ctx(|| format!("connecting to the console socket {}", p.display()))?,
        ),
        None => None,
    };
    // Above the fds the child's pre_exec dup2s onto, so none is clobbered.
    let high = |fd: &dyn AsRawFd| -> Result<OwnedFd> {
        // SAFETY: fd is live for this call.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        rustix::io::fcntl_dupfd_cloexec(b, 10)
            .map_err(std::io::Error::from)
            .ctx(|| "duplicating an fd".into())
    };
    let exe_fd = high(sealed)?;
    let sock_fd = high(&theirs)?;
    let console_fd = console.as_ref().map(|c| high(c)).transpose()?;
    drop(theirs);
    let stdio = |fd: Option<OwnedFd>| fd.map(Stdio::from).unwrap_or_else(Stdio::inherit);
    let mut cmd = Command::new(format!("/proc/self/fd/{}", exe_fd.as_raw_fd()));
    cmd.arg0("berth-runtime-init")
        .arg(INIT_ARG)
        .env_clear()
        .stdin(stdio(io.stdin))
        .stdout(stdio(io.stdout))
        .stderr(stdio(io.stderr));
    let (sock_raw, console_raw) = (
        sock_fd.as_raw_fd(),
        console_fd.as_ref().map(|f| f.as_raw_fd()),
    );
    // SAFETY: only dup2, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(sock_raw, SYNC_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(c) = console_raw {
                if libc::dup2(c, CONSOLE_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().ctx(|| "starting the container init".into())?;
    drop((exe_fd, sock_fd, console_fd));
    let channel = Channel::new(ours).ctx(|| "setting up the init's socket".into())?;
    Ok((child, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "web-1", "app_2.db", "A9"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
