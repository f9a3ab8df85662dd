//! Apps: what an installable app is, how catalogs of them are laid out,
//! which catalogs berthd knows, and installing, running and removing apps.
//!
//! The first half is pure logic over files ([`catalog`], [`compose`],
//! [`interpolate`], [`registered`], [`yaml`]): it reads and checks. The
//! second half is [`AppManager`], which acts on them:
//!
//! * `install` — one job from a catalog entry to an app that answers, every
//!   resource written to the [`crate::ledger`] before it is made;
//! * `remove` — uninstall and the roll-back of a failed, cancelled or
//!   crashed install (the ledger walked backwards), and the audit that
//!   looks on the machine for anything of the app that is left;
//! * `lifecycle` — start, stop, restart, update, the restart policies, and
//!   bringing apps back after berthd or the machine restarts;
//! * `health` — start order, healthchecks, waiting for the app to answer;
//! * `doctor` — the audit of everything against the records, and repair;
//! * `volumes` — named volumes with their sizes and users, and deleting
//!   the data an uninstall kept;
//! * `crash` — the `BERTH_CRASH_AT` fault-injection points the tests use.
//!
//! # An app
//!
//! A directory named after the app's id, holding three files:
//!
//! ```text
//! gitea/
//!   app.toml       what people see: id, title, version, description, category,
//!                  icon, website, and what "Open" opens
//!   compose.yaml   the containers, in a subset of the Compose format
//!   icon.svg       the icon (SVG or PNG, at most 256 KiB); an SVG is served
//!                  rewritten without anything that runs or loads ([`icon`])
//! ```
//!
//! ```toml
//! id = "gitea"                  # a DNS label, equal to the directory's name
//! title = "Gitea"
//! version = "1"                 # of the software, as shown to people
//! description = "A painless self-hosted Git service."
//! category = "development"      # development productivity media monitoring
//!                               # networking security web utilities demo
//! icon = "icon.svg"             # a file in this directory
//! website = "https://about.gitea.com"       # optional
//! open = { service = "web", port = 3000, path = "/" }   # optional; port is
//!                               # the container side of one of the service's ports
//! ```
//!
//! The file is `app.toml` (not `berth-app.toml`): it lives in a directory
//! that only a Berth catalog has, so the short name is unambiguous. Unknown
//! keys are errors, as in berthd's config.
//!
//! # The Compose subset ([`compose`])
//!
//! Catalog apps are written in the format app stores already use, limited
//! to what a desktop installer can honour safely and completely:
//!
//! * top level: `services`, `volumes` (named volumes, declared with no
//!   settings), `name` and `version` (ignored), and `x-…` extension keys
//!   (ignored; their anchors can be merged into services with `<<`).
//! * per service: `image` (required, checked as a [`crate::reference`]),
//!   `command` and `entrypoint` (a list, or a string split into words as
//!   Compose splits it, quotes and backslashes but no shell), `environment`
//!   (a mapping or a list of `KEY=value`; numbers and booleans are kept as
//!   written), `ports` (`80`, `8080:80`, `127.0.0.1:8080:80`,
//!   `[::1]:8080:80`, `/udp`, or the long form with `target`, `published`,
//!   `host_ip`, `protocol`), `volumes` (`name:/path[:ro]` or the long form
//!   with `type: volume`), `depends_on` (a list, or a mapping with
//!   `condition: service_started | service_healthy`), `restart` (`no`,
//!   `always`, `unless-stopped`, `on-failure[:N]`), `user`, `working_dir`,
//!   `healthcheck` (`test` as `["CMD", …]`, `["CMD-SHELL", "…"]`,
//!   `["NONE"]` or a string; `interval`, `timeout`, `start_period`,
//!   `start_interval` as Compose durations like `10s` or `1m30s`; `retries`;
//!   `disable`), `mem_limit` (`256m`, `1g`, bytes), `cpus`, `pids_limit`.
//!
//! Any other key is an error that names the key, where it is
//! (`services.web.build`), the file and line, why it is not supported, and
//! the keys that are. Values are checked as well: ports are 1–65535,
//! service names are DNS labels (the other services reach a service by its
//! name), volume names are Docker's, every `depends_on` names a service, a
//! `service_healthy` dependency has a healthcheck, the dependencies have no
//! cycle (the message shows it: `a → b → a`), and no host port is published
//! twice. [`compose::ComposeFile::start_order`] then gives a deterministic
//! order: dependencies first, otherwise by name.
//!
//! **No host paths.** A volume whose source is a host path (`./data:/data`,
//! `/srv:/srv`, `type: bind`) is refused in catalog apps, and so is an
//! anonymous volume: installing an app must not read or write arbitrary
//! host files, and everything an app keeps must be a named volume that is
//! created with it and removed with it. (This also keeps catalogs portable.)
//! Likewise, keys that would give a container more than Docker's default
//! confinement (`privileged`, `cap_add`, `devices`, `network_mode`, …) are
//! refused, and `environment` entries without a value (Compose would take
//! them from the host's environment) are errors.
//!
//! **What needs the user's say-so** (issue 11; checked at install, before
//! anything is made). Ports are published on 127.0.0.1: a `host_ip` other
//! than loopback (`0.0.0.0:8080:80`, a LAN address, any IPv6 address) is
//! refused unless the install names an address with `--listen`, and a host
//! port below 1024 unless `--port SERVICE:HOSTPORT` names that port for it
//! (`--port web:80` to confirm it, `--port web:8080` to move it). The
//! message names the flag. A service with no `pids_limit` (or `-1`,
//! Compose's "none") gets 2048 processes, Podman's default; its containers
//! have Docker's capabilities less `NET_RAW`.
//!
//! **Variables.** Values may use Compose's `${NAME}` syntax (with `:-`,
//! `-`, `:?`, `?`, `:+`, `+`, and `$$` for a literal `$`; see
//! [`interpolate`]). The values come from the catalog's entry in the list of
//! catalogs, never from berthd's environment, and an unset variable without
//! a default is an error. Berth's demo catalog uses one:
//! `image: ${BERTH_DEMO_REGISTRY}/demo/web:latest`, where
//! `BERTH_DEMO_REGISTRY` is the `HOST:PORT` of the local registry that
//! `berth-seed` filled (`berth catalog add …/catalog/demo --set
//! BERTH_DEMO_REGISTRY=127.0.0.1:5000`).
//!
//! # Catalogs ([`catalog`])
//!
//! A catalog is a directory of app directories, optionally with a
//! `catalog.toml`:
//!
//! ```toml
//! title = "Berth's apps"
//! description = "Popular self-hosted apps"
//! apps = ["nginx", "gitea"]    # optional: app directories relative to this file;
//!                              # without it, every subdirectory with an app.toml
//! ```
//!
//! [`catalog::load_catalog`] returns the apps that load and, separately,
//! each app that does not with its error: one broken app never hides the
//! others. The repository ships two: `catalog/default/` (popular apps on
//! their public images) and `catalog/demo/` (apps on images that
//! `berth-seed` builds from Debian's busybox-static, for machines without
//! Internet access).
//!
//! # The catalogs berthd knows ([`registered`])
//!
//! `<root>/catalogs.json` lists them by name, each with its absolute path
//! and its variables. It is written to a temporary file that is synced and
//! renamed over the old one, so a crash leaves the old list or the new one.
//!
//! # What an installer must honour
//!
//! The catalogs' apps rely on Compose's behaviour, so an installer built on
//! these types should give it: services of one app reach each other by
//! service name (`db`, `api`) and nothing else; [`ComposeFile::start_order`]
//! with `depends_on` conditions waited for; a new, empty named volume
//! mounted over a directory of the image starts as a copy of it (contents,
//! owners and modes, as Docker does: nginx's `html`, code-server's home);
//! `Port::published == None` means "pick a free host port"; healthcheck
//! fields not given keep the image's. The shipped catalogs publish every
//! port on 127.0.0.1 only, each app on host ports of its own, so all of a
//! catalog's apps can be installed side by side.
//!
//! # Reading untrusted catalogs
//!
//! berthd runs as root and a catalog may come from anyone allowed to add
//! one, so every file of it is opened without following a symlink in its
//! last component, must be a regular file, and is size-limited (Compose
//! file 1 MiB, TOML 64 KiB, icon 256 KiB); YAML nesting and alias expansion
//! are bounded ([`yaml`]).

pub mod catalog;
pub mod compose;
mod crash;
mod doctor;
mod health;
pub mod icon;
mod install;
pub mod interpolate;
mod lifecycle;
mod manager;
pub mod registered;
mod remove;
mod volumes;
pub mod yaml;

pub use crash::crash_point;
pub use install::AppProgress;
pub use manager::AppManager;

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use catalog::{load_app, load_catalog, App, AppProblem, Catalog, Category, Open};
pub use compose::{
    ComposeFile, Condition, HealthTest, Healthcheck, Mount, Port, Protocol, Restart, Service,
};
pub use interpolate::Vars;
pub use registered::{CatalogEntry, Catalogs};

/// Something in a catalog's file that Berth cannot accept: where, and what
/// to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    pub file: PathBuf,
    /// 1-based, when known.
    pub line: Option<usize>,
    /// Where in the document, e.g. `services.web.ports[0]`; may be empty.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Errors of the apps module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Image(#[from] crate::images::Error),
    #[error(transparent)]
    Container(#[from] crate::containers::Error),
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    /// The operation was cancelled; the message says what was undone.
    #[error("{0}")]
    Cancelled(String),
    /// Something Berth itself did failed; the message says what.
    #[error("{0}")]
    Failed(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Read a regular file of at most `max` bytes, not following a symlink in
/// its last component. `what` names it in errors ("Compose file").
pub(crate) fn read_small_file(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        what: match what {
            "Compose file" => "reading the Compose file",
            "app file" => "reading the app file",
            "catalog index" => "reading the catalog index",
            "icon" => "reading the icon",
            _ => "reading",
        },
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Invalid(Invalid {
                    file: path.to_path_buf(),
                    line: None,
                    key: String::new(),
                    message: format!("the {what} is a symbolic link; it must be a regular file"),
                })
            } else {
                io(e)
            }
        })?;
    let meta = file.metadata().map_err(io)?;
    let invalid = |message: String| {
        Error::Invalid(Invalid {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message,
        })
    };
    if !meta.is_file() {
        return Err(invalid(format!("the {what} is not a regular file")));
    }
    if meta.len() > max {
        return Err(invalid(format!(
            "the {what} is {} bytes; at most {max} are accepted",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(invalid(format!(
            "the {what} is more than {max} bytes, which is the most accepted"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_reads_like_a_compiler_message() {
        let e = Invalid {
            file: "cat/web/compose.yaml".into(),
            line: Some(7),
            key: "services.web.build".into(),
            message: "`build` is not supported".into(),
        };
        assert_eq!(
            e.to_string(),
            "cat/web/compose.yaml:7: services.web.build: `build` is not supported"
        );
    }

    #[test]
    fn small_files_only_regular_and_not_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_small_file(&f, 5, "icon").unwrap(), b"hello");
        let e = read_small_file(&f, 4, "icon").unwrap_err().to_string();
        assert!(e.contains("at most 4"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let e = read_small_file(&link, 5, "icon").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = read_small_file(dir.path(), 5, "icon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_small_file(&dir.path().join("none"), 5, "icon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reading the icon"), "{e}");
    }
}
