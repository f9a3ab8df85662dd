//! Values that cross the bus.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

/// One image name in the store (`berth images` prints one row per name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImageSummary {
    /// Full reference, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the manifest the name points at (index or image manifest).
    pub digest: String,
    /// Image id: the digest of the image config.
    pub id: String,
    /// Seconds since the epoch the image was created (from its config), 0 if unknown.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub created: i64,
    /// Sum of the unpacked layer sizes, bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size: u64,
    /// Seconds since the epoch the name was pulled.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub pulled: i64,
    /// Names of the containers made from this image (their image id is
    /// [`ImageSummary::id`], whatever name they were run by). Their image's
    /// content stays in the store while any of them exists, even when the
    /// name is removed.
    pub used_by: Vec<String>,
}

/// What `PruneImages` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PruneReport {
    pub blobs_removed: u32,
    pub layers_removed: u32,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_freed: u64,
}

/// Facts about a running helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Info {
    pub version: String,
    pub root: String,
    pub run_root: String,
    /// Bytes used under `root`.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub storage_bytes: u64,
    pub images: u32,
    pub layers: u32,
    pub blobs: u32,
    /// `v1`, `v2` or `hybrid`.
    pub cgroup_version: String,
    /// The bus the helper listens on.
    pub bus: String,
}

/// JobProgress of one layer (or other blob) in a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LayerProgress {
    /// Blob digest (`sha256:…`).
    pub digest: String,
    /// `waiting`, `downloading`, `exists`, `downloaded`, `unpacking`, `done`.
    pub status: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub done: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total: u64,
}

/// A job's progress report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobProgress {
    /// `resolving`, `downloading`, `unpacking`, `committing`, `exporting`, `done`.
    pub phase: String,
    pub layers: Vec<LayerProgress>,
}

/// How a job ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Outcome {
    pub ok: bool,
    /// `org.berth.Error.*` when not ok, else empty.
    pub error_name: String,
    pub error_message: String,
    /// JSON describing the result when ok (for a pull: name and digest).
    pub result: String,
}

/// One resource sample of one container, as berthd takes them once a
/// second: the JSON of `ContainerStats` (by container id) and
/// `ContainerStatsHistory` (a list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ContainerSample {
    /// Milliseconds since the epoch.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub time: i64,
    /// CPU time used since start, nanoseconds.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub cpu_ns: u64,
    /// Share of one core used since the previous sample (100 = one core).
    pub cpu_percent: f64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub memory_usage: u64,
    /// Bytes; none when the container has no limit.
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub memory_limit: Option<u64>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub memory_working_set: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub pids: u64,
    /// Counters since the container started, bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub block_read: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub block_write: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub net_rx: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub net_tx: u64,
}

/// Result of a successful pull, as JSON in [`Outcome::result`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullResult {
    pub name: String,
    pub digest: String,
    pub id: String,
}

/// Options of one container, as given to `berth run`: sent as JSON on the
/// bus and kept in the container's record so `berth start` runs it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    pub name: Option<String>,
    /// `KEY=VALUE`, overriding the image's.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `USER[:GROUP]`, names or ids, resolved in the image.
    pub user: Option<String>,
    /// Replaces the image's entrypoint (one program; arguments go in `cmd`).
    pub entrypoint: Option<String>,
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    /// Bytes; 0 = no limit.
    pub memory: u64,
    /// Thousandths of a CPU; 0 = no limit.
    pub millicpus: u64,
    /// 0 = no limit.
    pub pids_limit: i64,
    pub network: Network,
    pub volumes: Vec<Volume>,
    pub tty: bool,
    pub interactive: bool,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// `host` (the default: container ids are host ids) or `auto` (the
    /// container's ids 0..65535 are a host range of their own).
    pub userns: UsernsMode,
    /// A network namespace to join instead of a new one: the absolute path
    /// of a namespace file, as the network module bind-mounts an app
    /// network's endpoint at `<run root>/netns/<container id>`. Needs
    /// `network: none` (the default; `host` is refused) and `userns: host`.
    /// The container's /etc/resolv.conf is then the host's, without
    /// loopback name servers.
    pub netns: Option<String>,
}

/// `--userns`: which user namespace a container runs in. On the bus and
/// in records it is the string `host` or `auto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UsernsMode {
    /// The host's: root in the container is root on the host (Docker's default).
    #[default]
    Host,
    /// A new user namespace whose uids and gids 0..65535 map to a block of
    /// 65536 unprivileged host ids that no other container of this berthd
    /// holds (Podman's `--userns=auto`).
    Auto,
}

impl UsernsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UsernsMode::Host => "host",
            UsernsMode::Auto => "auto",
        }
    }
}

impl std::fmt::Display for UsernsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for UsernsMode {
    type Err = crate::options::OptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::options::parse_userns(s)
    }
}

impl TryFrom<String> for UsernsMode {
    type Error = crate::options::OptionError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<UsernsMode> for String {
    fn from(m: UsernsMode) -> String {
        m.as_str().to_string()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A network namespace with only `lo`.
    #[default]
    None,
    /// The host's network.
    Host,
}

/// `-v HOSTDIR:PATH[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: String,
    pub container: String,
    pub read_only: bool,
    /// Docker's behaviour for a new named volume: when the container
    /// starts and `host` is empty, it is first filled with a copy of what
    /// the image has at `container` (contents, owners, modes, times), and
    /// `host` itself takes that directory's owner and mode. Never set by
    /// `-v`; absent in older records (false).
    #[serde(default)]
    pub populate: bool,
}
