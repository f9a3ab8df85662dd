//! Containers, berthd's side: records, bundles, and the verbs on them.
//!
//! A container is a row in the state database (see [`crate::state`]) plus
//! files. Its life:
//!
//! ```text
//!   create ──► created ──start──► running ──exit──► exited ──start──► running …
//!                 │                                    │
//!                 └──────────────── rm ────────────────┴──► (gone)
//! ```
//!
//! * **create** records the row first, then makes `<root>/containers/<id>/`
//!   (the writable `upper/` and `work/` of its overlay, its `hosts`,
//!   `hostname` and `resolv.conf`, its `log.json`), closed to everyone but
//!   root (`dirs.rs` has the modes). A `--userns=auto`
//!   container's row also holds the block of host ids it was given
//!   ([`userns`]); its `upper/`, `work/` and /etc files belong to the
//!   block's first id, the container's root, and its init passes berthd's
//!   directories through group `berth-userns`, made at its create.
//! * **start** mounts the overlay root file system at
//!   `<run>/containers/<id>/bundle/rootfs` (for `--userns=auto` over
//!   idmapped views of the layers, see [`crate::runtime::overlay`]), fills
//!   each new `populate` volume from it ([`populate`]), writes the bundle's
//!   `config.json` (0600: it holds the environment), and spawns a
//!   `berth-shim` (its files in
//!   `<run>/containers/<id>/shim/`), which runs the container through
//!   `berth-runtime`, owns its stdio and logs, reaps it and records how it
//!   ended in `exit.json`. The shim outlives berthd.
//! * A monitor task per running container waits on the shim; when the
//!   container exits it unmounts the root file system and records the exit
//!   (code, time, OOM kill). `--rm` containers are then removed.
//! * **rm** kills what still runs, unmounts, removes the files, and deletes
//!   the row last.
//!
//! # What apps add
//!
//! The app installer runs each service of an app as a container with a few
//! options `berth run` does not offer:
//!
//! * **`netns`** ([`RunOptions::netns`]): the path of a network namespace
//!   the network module prepared (`<run root>/netns/<key>`, see
//!   [`crate::network`]); the container joins it instead of getting a new
//!   one ([`spec::join_network_namespace`]). It cannot be combined with
//!   `network: host`, nor yet with `--userns=auto` (the namespace belongs to
//!   the host's user namespace; the runtime would have to join it before
//!   making the container's own): both are refused when the container is
//!   created. At start the namespace must be mounted, or start fails saying
//!   so. Its `resolv.conf` is the host's without loopback name servers
//!   (behind systemd-resolved's stub, the servers it forwards to), or
//!   Google's as Docker falls back to; it is written again at each start.
//! * **/etc/hosts** ([`Containers::set_hosts`]): the installer gives each
//!   container the addresses of the app's services. The file is rewritten
//!   in place, as a running container has its inode bind-mounted.
//! * **`populate`** volumes ([`Volume::populate`]): Docker's new named
//!   volume, filled from the image at first start ([`populate`]).
//! * **[`Containers::exec_capture`]** runs a command (a healthcheck) and
//!   returns its exit code and first 4 KiB of output, killing it and what
//!   it started when its time is up.
//!
//! [`Containers::open`] first tightens what an older berthd left open
//! (modes, root file systems mounted without `nosuid`; see `dirs.rs`).
//! After a crash or restart of berthd, it finds every
//! container recorded as running: if its shim lives, monitoring resumes; if
//! the shim recorded an exit, that is taken; if the shim died, the
//! container's processes are killed through its cgroup and it is marked
//! exited with the reason.

mod capture;
mod create;
mod dirs;
mod etc;
mod exec;
mod exec_tty;
mod inspect;
mod lifecycle;
mod logs;
mod monitor;
pub mod options;
pub mod populate;
pub mod spec;
pub mod userns;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

pub use capture::CAPTURE_LIMIT;
pub use inspect::ContainerInfo;
pub use lifecycle::Attach;
pub use options::{Network, OptionError, RunOptions, UsernsMode, Volume};

use crate::images::ImageStore;
use crate::state::ContainerRecord;

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Image(#[from] crate::images::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error("{0}")]
    Runtime(String),
    /// A command did not end in the time it was given (and was killed).
    #[error("{0}")]
    Timeout(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<OptionError> for Error {
    fn from(e: OptionError) -> Self {
        Error::InvalidArgument(e.0)
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Something happened to a container (for bus signals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `exited`, `removed`.
    pub state: String,
    pub exit_code: i64,
}

/// All containers of one berthd.
#[derive(Clone)]
pub struct Containers {
    inner: Arc<Inner>,
}

struct Inner {
    images: ImageStore,
    /// `<root>/containers`
    root: PathBuf,
    /// `<run>/containers`
    run: PathBuf,
    /// The runtime's state dir, `<run>/runtime`.
    runtime_root: PathBuf,
    runtime_bin: PathBuf,
    shim_bin: PathBuf,
    /// A sealed copy of `runtime_bin` handed to every shim, and the
    /// identity of the file it was copied from (re-copied when that changes,
    /// as after an upgrade).
    sealed_runtime: Mutex<Option<(FileId, Arc<OwnedFd>)>>,
    /// A shim started ahead of need (see `runtime::shim::spare`).
    spare: Mutex<Option<crate::runtime::shim::Spare>>,
    /// Latest known state per running container, for waiters.
    status: Mutex<HashMap<String, watch::Sender<Option<crate::state::ContainerRecord>>>>,
    events: broadcast::Sender<Event>,
    /// Held from choosing a `--userns=auto` block to recording it.
    userns_alloc: Mutex<()>,
    /// The gid of `berth-userns` once it exists (see [`userns`]).
    traverse_gid: Mutex<Option<u32>>,
}

impl Containers {
    /// Open the container store and pick up containers that ran before
    /// berthd (re)started. `bin_dir` holds `berth-runtime` and `berth-shim`.
    pub async fn open(images: ImageStore, run_root: &Path, bin_dir: &Path) -> Result<Containers> {
        let root = images.root().join("containers");
        let run = run_root.join("containers");
        let runtime_root = run_root.join("runtime");
        let (events, _) = broadcast::channel(256);
        let c = Containers {
            inner: Arc::new(Inner {
                images,
                root,
                run,
                runtime_root,
                runtime_bin: bin_dir.join("berth-runtime"),
                shim_bin: bin_dir.join("berth-shim"),
                sealed_runtime: Mutex::new(None),
                spare: Mutex::new(None),
                status: Mutex::new(HashMap::new()),
                events,
                userns_alloc: Mutex::new(()),
                traverse_gid: Mutex::new(None),
            }),
        };
        c.open_dirs()?;
        c.recover().await?;
        c.refill_spare();
        Ok(c)
    }

    /// The spare shim, if one is ready. The caller starts the next one
    /// ([`Containers::refill_spare`]) once its container runs, so the two
    /// do not compete for the CPU.
    fn take_spare(&self) -> Option<crate::runtime::shim::Spare> {
        self.inner.spare.lock().expect("not poisoned").take()
    }

    /// Start a spare shim in the background unless one is waiting.
    pub(super) fn refill_spare(&self) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if this.inner.spare.lock().expect("not poisoned").is_some() {
                return;
            }
            match crate::runtime::shim::spawn_spare(&this.inner.shim_bin) {
                Ok(s) => {
                    // Another refill may have won the race: one spare is enough.
                    let mut slot = this.inner.spare.lock().expect("not poisoned");
                    if slot.is_none() {
                        *slot = Some(s);
                    }
                }
                Err(e) => tracing::warn!("cannot start a spare shim: {e}"),
            }
        });
    }

    /// The sealed copy of the runtime binary for the next shim; `None` if it
    /// cannot be made (the shim then copies the binary itself).
    fn sealed_runtime(&self) -> Option<Arc<OwnedFd>> {
        let bin = &self.inner.runtime_bin;
        let id = FileId::of(bin)?;
        let mut cached = self.inner.sealed_runtime.lock().expect("not poisoned");
        if let Some((was, fd)) = cached.as_ref() {
            if *was == id {
                return Some(fd.clone());
            }
        }
        match crate::runtime::exe::sealed_copy(bin) {
            Ok(fd) => {
                let fd = Arc::new(fd);
                *cached = Some((id, fd.clone()));
                Some(fd)
            }
            Err(e) => {
                tracing::warn!(binary = %bin.display(), error = %e, "cannot copy the runtime into a sealed memfd; each shim will");
                None
            }
        }
    }

    /// Container events (created, running, exited, removed).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn emit(&self, c: &ContainerRecord, state: &str) {
        let _ = self.inner.events.send(Event {
            id: c.id.clone(),
            name: c.name.clone(),
            state: state.to_string(),
            exit_code: c.exit_code,
        });
    }

    /// The container `key` names (id, name or unique id prefix).
    pub fn find(&self, key: &str) -> Result<ContainerRecord> {
        self.inner.images.db().find_container(key)?.ok_or_else(|| {
            Error::NotFound(format!("no container `{key}`; `berth ps -a` lists them"))
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.inner.root.join(id)
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.inner.run.join(id)
    }

    fn rootfs(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("bundle/rootfs")
    }

    fn shim_dir(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("shim")
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("log.json")
    }

    /// Container `id`'s cgroup, relative to each hierarchy's root (the
    /// spec's `cgroupsPath` is this with a leading `/`).
    pub fn cgroup_path(id: &str) -> String {
        format!("{}/{id}", crate::runtime::cgroups::PARENT)
    }
}

/// 64 random hex characters.
fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).map_err(|e| {
        Error::Io {
            what: "reading random bytes for a container id".into(),
            source: e.into(),
        }
    })?;
    Ok(hex::encode(b))
}

/// A Docker-like `adjective_noun` name.
fn new_name(seed: &str) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quiet", "swift", "tidy", "witty",
    ];
    const NOUN: [&str; 16] = [
        "anchor", "barge", "cove", "dock", "ferry", "harbor", "jetty", "keel", "lagoon", "mast",
        "pier", "quay", "reef", "sail", "tide", "wharf",
    ];
    let b = hex::decode(&seed[..4]).unwrap_or_else(|_| vec![0, 0]);
    format!(
        "{}_{}",
        ADJ[(b[0] & 15) as usize],
        NOUN[(b[1] & 15) as usize]
    )
}

/// Which file a path held: enough to notice a replaced binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}
