//! Apps on the bus: catalogs, what they offer, installed apps, their named
//! volumes, and what an uninstall or `berth doctor` found. These cross the bus as JSON strings
//! (as containers do), so the desktop app can hand them to its page as is.

use serde::{Deserialize, Serialize};

/// One catalog berthd knows (`berth catalog list`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct CatalogInfo {
    /// What `berth catalog remove` takes.
    pub name: String,
    /// Its directory or index file.
    pub path: String,
    pub title: String,
    pub description: String,
    /// How many of its apps load.
    pub apps: u32,
    /// Apps that do not load, each as `file:line: key: what is wrong`.
    pub problems: Vec<String>,
    /// The names of the variables set for `${NAME}` in its Compose files.
    /// Their values are write-only: `AddCatalog` takes `NAME=value`, and
    /// no method gives a value back.
    pub vars: Vec<String>,
}

/// One app a catalog offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct CatalogApp {
    /// The catalog it comes from.
    pub catalog: String,
    /// What `berth install` takes: a DNS label.
    pub id: String,
    pub title: String,
    pub version: String,
    pub description: String,
    /// `development`, `productivity`, `media`, `monitoring`, `networking`,
    /// `security`, `web`, `utilities`, `demo`.
    pub category: String,
    pub website: String,
    /// Service names, in start order.
    pub services: Vec<String>,
    /// Image references, as the Compose file names them.
    pub images: Vec<String>,
    /// Whether it is installed now (in any state).
    pub installed: bool,
}

/// `--port SERVICE:HOSTPORT[:CONTAINERPORT]`: publish a service's port on a
/// host port other than the catalog's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct PortOverride {
    pub service: String,
    /// 1–65535.
    pub host_port: u16,
    /// The container side; 0 = the service's first published port.
    pub container_port: u16,
}

/// Options of `InstallApp`, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct InstallOptions {
    /// The catalog to take the app from; empty = the first that has it.
    pub catalog: String,
    pub ports: Vec<PortOverride>,
    /// Host address every published port listens on instead of the
    /// catalog's (`0.0.0.0` to be reachable from other machines); empty =
    /// as the catalog says (127.0.0.1 for Berth's catalogs).
    pub host_ip: String,
}

/// Options of `UninstallApp`, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct UninstallOptions {
    /// Keep the app's named volumes for a later install (the default when
    /// no one can be asked).
    pub keep_data: bool,
    /// Keep its images even if no other app uses them.
    pub keep_images: bool,
}

/// A published port of an installed app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct PublishedPort {
    pub service: String,
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port asked for (by the catalog or `--port`) when it was taken
    /// and this one was picked instead; 0 when it got the port it asked for.
    pub requested: u16,
}

/// One service of an installed app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ServiceInfo {
    pub name: String,
    pub image: String,
    /// The container's id and name (`<app>-<service>-1`); empty while
    /// it is not created.
    pub container_id: String,
    pub container_name: String,
    /// The container's state: `created`, `running`, `exited`, or `missing`.
    pub state: String,
    /// Its address on the app's network.
    pub address: String,
    /// Now, from berthd's 1 Hz samples (0 when not running).
    pub cpu_percent: f64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub memory_bytes: u64,
}

/// One installed app (`berth apps`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct AppInfo {
    pub id: String,
    pub catalog: String,
    pub title: String,
    pub version: String,
    /// `installing`, `running`, `stopped`, `partly running`, `updating`,
    /// `removing`.
    pub state: String,
    /// What "Open" opens; empty if the app has nothing to open.
    pub url: String,
    pub services: Vec<ServiceInfo>,
    pub ports: Vec<PublishedPort>,
    /// Named volumes (`<app>_<name>`).
    pub volumes: Vec<String>,
    /// Seconds since the epoch.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub installed: i64,
    /// Sums over the services.
    pub cpu_percent: f64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub memory_bytes: u64,
}

/// Result of a successful `InstallApp` job, as JSON in its outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct InstallResult {
    pub app: AppInfo,
    /// Things the user should know: a port that was taken and replaced,
    /// kept data that was found again.
    pub notes: Vec<String>,
}

/// What an audit found: after an uninstall, or from `Doctor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct AuditReport {
    /// True when nothing is left (kept data aside).
    pub clean: bool,
    /// What was checked, in words (`files under /var/lib/berth`, `mounts`,
    /// `cgroups`, `network links`, `nftables tables`, `processes`).
    pub checked: Vec<String>,
    /// What remains, one thing per line, naming it exactly (a path, a
    /// mount point, a link name, a pid and its command line).
    pub remaining: Vec<String>,
    /// What `Doctor` with `repair` removed.
    pub repaired: Vec<String>,
    /// Data kept on purpose (volumes, with their paths).
    pub kept: Vec<String>,
}

/// One named volume (`berth volume ls`): made by an install, removed with
/// its app, or kept by an uninstall with `keep_data` until an install of the
/// app finds it again, `RemoveVolume` or `PruneVolumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct VolumeInfo {
    /// `<app>_<volume>`: what `RemoveVolume` takes.
    pub name: String,
    /// The app it belongs to (also when that is no longer installed).
    pub app: String,
    /// Its directory under berthd's root; the data is in `_data` inside.
    pub path: String,
    /// Bytes in its regular files (as `du --apparent-size` counts them:
    /// symbolic links are not followed, mounts inside are not entered, a
    /// file with several hard links counts once).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size_bytes: u64,
    /// Seconds since the epoch.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub created: i64,
    /// Containers of the installed app that mount it (`<app>-<service>-1`);
    /// empty when the app is not installed.
    pub used_by: Vec<String>,
    /// Its app is not installed: the data an uninstall kept. Only kept
    /// volumes can be removed; `PruneVolumes` removes them all.
    pub kept: bool,
}

/// What `PruneVolumes` removed, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct VolumePruneReport {
    /// The volumes' names.
    pub removed: Vec<String>,
    /// Their sizes, summed (as [`VolumeInfo::size_bytes`]).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_freed: u64,
}
