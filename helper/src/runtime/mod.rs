//! The container runtime: turns an OCI bundle (`config.json` + `rootfs/`)
//! into a running, isolated, limited process, as runc, crun and youki do.
//!
//! # Lifecycle
//!
//! A container lives in a state directory `<root>/<id>/` holding
//! `state.json` and, until it is started, a FIFO `exec.fifo`. Its status is
//! never stored, always derived (see [`state::derive_status`]) from three
//! facts: is the recorded pid alive *with the recorded start time* (so a
//! recycled pid is not mistaken for the container), and does `exec.fifo`
//! still exist.
//!
//! ```text
//!   create ──► creating ──► created ──start──► running ──exit/kill──► stopped ──delete──► (gone)
//!                 │            │                                        ▲
//!                 └─ error ────┴──────── delete (kills the init) ───────┘
//! ```
//!
//! * **creating**: [`Container::create`] made the state directory, spawned
//!   the init (a sealed in-memory copy of this binary, see [`exe`]) and is
//!   talking to it over a socket: the init unshares the namespaces, asks us
//!   to write its uid/gid maps, forks the container's pid 1, which builds the
//!   root file system, pivots into it and resolves the command. Any error is
//!   sent back and `create` fails, removing the state directory; the init
//!   exits, so nothing is left running.
//! * **created**: the container's pid 1 is our init, blocked opening
//!   `exec.fifo` for writing. `state.json` holds its pid and start time.
//! * **running**: [`Container::start`] opened the FIFO for reading and
//!   removed it; the init applies the process's security settings
//!   ([`security::finalize`]) and execs the command.
//! * **stopped**: the pid is gone (or is a zombie, or is a different process
//!   now). [`Container::delete`] removes the cgroup and the state directory;
//!   with `force` it first kills a container that is still alive.
//!
//! # Crashes
//!
//! No runtime process stays around once `create` returns: the container is
//! the only process, reparented to the caller (when it is a subreaper, as
//! `berth-runtime run` and Berth's supervisor are) or to init. A runtime
//! killed during `create` leaves a state directory without `state.json` (or
//! with a dead pid): `state` reports it stopped and `delete` removes it.
//! `state.json` is written with rename, so it is either old or new, never
//! half. Kernel objects (namespaces, mounts inside them) die with the last
//! process that holds them; the cgroup is removed by `delete`.
//!
//! # Layout
//!
//! `container*.rs` (one file per verb, each an `impl Container`),
//! `namespaces`, `rootfs` (mount namespace set-up up to `pivot_root`, masked
//! and read-only paths), `mounts` (mount option parsing), `devices`,
//! `process` (the init inside the container), `channel` (the init's socket
//! protocol), `exe` (the sealed copy of the runtime binary), `state`,
//! `spec` (`runc spec`-like defaults), `security` (user, rlimits,
//! capabilities, no_new_privs, seccomp), `seccomp` (Docker's default
//! profile, compiled to BPF), `cgroups` (v1 and v2), `user` (names from the
//! image's own /etc/passwd and /etc/group), `syscall` (the trait that keeps
//! syscalls testable without root), `overlay` and `idmap` (berthd's overlay
//! roots, idmapped for containers in their own user namespace).

pub mod cgroups;
pub mod seccomp;
pub mod security;
pub mod user;

pub mod channel;
pub mod container;
mod container_create;
mod container_delete;
mod container_exec;
mod container_kill;
mod container_start;
mod container_state;
pub mod devices;
pub mod exe;
pub mod hooks;
pub mod idmap;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod shim;
pub mod signal;
pub mod spec;
pub mod state;
pub mod syscall;

pub use container::{Container, CreateOptions, ExecOptions};
pub use container_exec::exec_in;
pub use process::run_init_if_requested;
pub use state::{State, Status};

use std::io;
use std::path::PathBuf;

/// Everything the runtime can fail with. Messages say what failed on what
/// and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the bundle's config {path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    InvalidSpec(String),
    #[error("container id {0:?} is invalid: use letters, digits, '_', '-' and '.', not starting with '.'")]
    InvalidId(String),
    #[error("container {0} already exists: delete it first or choose another id")]
    AlreadyExists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {id} is {status}; {action} needs it {wanted}")]
    WrongStatus {
        id: String,
        status: Status,
        action: &'static str,
        wanted: &'static str,
    },
    #[error("unknown signal {0:?}: use a name like TERM, SIGKILL or a number 1-64")]
    BadSignal(String),
    #[error("exec: {0}: not found in the image")]
    CommandNotFound(String),
    #[error("exec: {0}: permission denied (not an executable file)")]
    NotExecutable(String),
    #[error("refusing {what}: {why} (a symlink or substituted file in the image must not redirect a mount onto another file)")]
    Unsafe { what: String, why: String },
    #[error("container init failed: {0}")]
    Init(String),
    #[error(transparent)]
    Security(#[from] security::Error),
}

impl Error {
    /// The exit code the command line uses for this error, as runc does:
    /// 127 for a command not found, 126 for one that is not executable.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandNotFound(_) => 127,
            Error::NotExecutable(_) => 126,
            _ => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Adds "what failed on what" to an `io::Result`.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(io::Error::from).ctx(what)
    }
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}
pub mod overlay;
