//! Berth's D-Bus interface, shared by `berthd`, the `berth` command line and
//! the desktop app.
//!
//! The helper owns the well-known name [`BUS_NAME`] on the system bus (or on
//! the bus named by `DBUS_SYSTEM_BUS_ADDRESS`) and serves [`Helper1Proxy`]'s
//! interface at [`OBJECT_PATH`]. Long work (`Pull`, `ExportImage`) returns a
//! job object path at once; the job ([`Job1Proxy`]) emits `JobProgress` while it
//! runs and `Finished` once, and keeps its final state as properties so a
//! client that arrives late still learns how it ended.
//!
//! Errors cross the bus as `org.berth.Error.*` names with a message a person
//! can act on; [`Error`] maps them back to typed values on the client side.

pub mod apps;
mod client;
mod error;
pub mod options;
mod types;

pub use apps::*;
pub use client::{connect, watch_job, JobEvent, JobOutcome};
pub use error::{BusTrouble, Error, Result};
pub use types::*;

/// Well-known bus name of the helper.
pub const BUS_NAME: &str = "org.berth.Helper1";
/// Object path of the helper's main object.
pub const OBJECT_PATH: &str = "/org/berth/Helper1";
/// Interface name of the main object.
pub const INTERFACE: &str = "org.berth.Helper1";
/// Interface name of job objects.
pub const JOB_INTERFACE: &str = "org.berth.Job1";
/// Job objects live below this path.
pub const JOB_PATH_PREFIX: &str = "/org/berth/Helper1/jobs";

/// `flags` bit: never ask the user anything (no polkit dialog).
pub const FLAG_NO_INTERACTION: u64 = 1 << 0;
/// All flag bits this version understands; others are rejected.
pub const FLAGS_KNOWN: u64 = FLAG_NO_INTERACTION;

#[zbus::proxy(
    interface = "org.berth.Helper1",
    default_service = "org.berth.Helper1",
    default_path = "/org/berth/Helper1"
)]
pub trait Helper1 {
    /// Start pulling `reference`; returns the job's object path at once.
    fn pull(&self, reference: &str, flags: u64) -> Result<zbus::zvariant::OwnedObjectPath>;

    /// Every image name in the store.
    fn list_images(&self) -> Result<Vec<ImageSummary>>;

    /// JSON document describing one image (digest, config, layers, size).
    fn inspect_image(&self, reference: &str) -> Result<String>;

    /// Remove an image name; its content stays until `PruneImages`.
    fn remove_image(&self, reference: &str, flags: u64) -> Result<()>;

    /// Remove blobs and layer directories no image references.
    fn prune_images(&self, flags: u64) -> Result<PruneReport>;

    /// Write the merged filesystem of an image into the directory `dir`
    /// (an open directory handle passed over the bus). Returns a job.
    fn export_image(
        &self,
        reference: &str,
        dir: zbus::zvariant::Fd<'_>,
        flags: u64,
    ) -> Result<zbus::zvariant::OwnedObjectPath>;

    /// Store the caller's credentials for a registry host (readable by root
    /// only); only pulls and installs the caller starts use them.
    fn login(&self, host: &str, username: &str, password: &str, flags: u64) -> Result<()>;

    /// Forget the caller's credentials for a registry host.
    fn logout(&self, host: &str, flags: u64) -> Result<()>;

    /// Facts about this helper: version, roots, storage used, cgroup version.
    fn info(&self) -> Result<Info>;

    /// Pull the image if missing and create a container from it; a job
    /// whose result is `{"id","name"}`. `options` is [`RunOptions`] as JSON.
    fn create_container(
        &self,
        image: &str,
        options: &str,
        flags: u64,
    ) -> Result<zbus::zvariant::OwnedObjectPath>;

    /// Start a container; `fds` is empty, `[stdout, stderr]` or
    /// `[stdout, stderr, stdin]` to receive its output from the start.
    fn start_container(&self, id: &str, fds: Vec<zbus::zvariant::Fd<'_>>, flags: u64)
        -> Result<()>;

    /// SIGTERM, then SIGKILL after `timeout` seconds.
    fn stop_container(&self, id: &str, timeout: u32, flags: u64) -> Result<()>;

    /// Send a signal (name or number) to a container's process.
    fn kill_container(&self, id: &str, signal: &str, flags: u64) -> Result<()>;

    /// Remove a container (`force`: stop it first).
    fn remove_container(&self, id: &str, force: bool, flags: u64) -> Result<()>;

    /// Returns once the container is not running: (exit code, OOM killed, error).
    fn wait_container(&self, id: &str) -> Result<(i64, bool, String)>;

    /// Run a command in a running container; `fds` = [stdin, stdout,
    /// stderr]; with `tty` it gets a terminal of `rows` × `cols`. Returns
    /// the command's exit code when it ends.
    #[allow(clippy::too_many_arguments)]
    fn exec_container(
        &self,
        id: &str,
        args: &[&str],
        env: &[&str],
        workdir: &str,
        fds: Vec<zbus::zvariant::Fd<'_>>,
        tty: bool,
        rows: u16,
        cols: u16,
        flags: u64,
    ) -> Result<i32>;

    /// Latest resource sample per container (`ids` empty: all running),
    /// JSON object keyed by id: time (ms), cpu_ns, cpu_percent,
    /// memory_usage, memory_limit, memory_working_set, pids, block_read,
    /// block_write, net_rx, net_tx.
    fn container_stats(&self, ids: &[&str]) -> Result<String>;

    /// Samples of one container after `since` (ms since the epoch), JSON array.
    fn container_stats_history(&self, id: &str, since: i64) -> Result<String>;

    /// Containers as a JSON array (running ones unless `all`).
    fn list_containers(&self, all: bool) -> Result<String>;

    /// One container as JSON.
    fn inspect_container(&self, id: &str) -> Result<String>;

    /// A pipe with the container's log records as JSON lines
    /// (`{"time","stream","log"}`); `tail` < 0 for all.
    fn container_logs(
        &self,
        id: &str,
        tail: i64,
        follow: bool,
        flags: u64,
    ) -> Result<zbus::zvariant::OwnedFd>;

    /// The catalogs berthd knows, as a JSON array of [`CatalogInfo`].
    fn list_catalogs(&self) -> Result<String>;

    /// Add the catalog at `path` (a directory of apps, or its
    /// `catalog.toml`) as `name` (empty: the directory's name); `vars` are
    /// `NAME=value` for its Compose files. Returns its [`CatalogInfo`] as JSON.
    fn add_catalog(&self, path: &str, name: &str, vars: &[&str], flags: u64) -> Result<String>;

    /// Forget a catalog (installed apps from it stay installed).
    fn remove_catalog(&self, name: &str, flags: u64) -> Result<()>;

    /// Every app of every catalog, a JSON array of [`CatalogApp`].
    fn list_catalog_apps(&self) -> Result<String>;

    /// An app's icon: (media type, bytes).
    fn app_icon(&self, app: &str) -> Result<(String, Vec<u8>)>;

    /// Install an app: pull its images, make its network, volumes and
    /// containers, start them and wait until it answers. A job whose
    /// result is an [`InstallResult`]; cancel or failure removes
    /// everything it made. `options` is [`InstallOptions`] as JSON.
    fn install_app(
        &self,
        app: &str,
        options: &str,
        flags: u64,
    ) -> Result<zbus::zvariant::OwnedObjectPath>;

    /// Remove an app and check that nothing of it is left: a job whose
    /// result is an [`AuditReport`]. `options` is [`UninstallOptions`] as JSON.
    fn uninstall_app(
        &self,
        app: &str,
        options: &str,
        flags: u64,
    ) -> Result<zbus::zvariant::OwnedObjectPath>;

    /// Installed apps, a JSON array of [`AppInfo`].
    fn list_apps(&self) -> Result<String>;

    /// One installed app as [`AppInfo`] JSON.
    fn inspect_app(&self, app: &str) -> Result<String>;

    /// Start an installed app's containers in dependency order.
    fn start_app(&self, app: &str, flags: u64) -> Result<()>;

    /// Stop an app's containers (it stays stopped across restarts).
    fn stop_app(&self, app: &str, flags: u64) -> Result<()>;

    /// Stop, then start.
    fn restart_app(&self, app: &str, flags: u64) -> Result<()>;

    /// Pull newer images and recreate the containers whose image changed,
    /// keeping the data: a job whose result is an [`InstallResult`].
    fn update_app(&self, app: &str, flags: u64) -> Result<zbus::zvariant::OwnedObjectPath>;

    /// Audit everything berthd made against its records; with `repair`,
    /// remove what no record explains. An [`AuditReport`] as JSON.
    fn doctor(&self, repair: bool, flags: u64) -> Result<String>;

    /// Every named volume with its size and the containers using it, a
    /// JSON array of [`VolumeInfo`].
    fn list_volumes(&self) -> Result<String>;

    /// Delete a volume an uninstall kept (`kept` in [`VolumeInfo`]): its
    /// directory and its record. One of an installed app is refused
    /// (`InvalidArgument`, naming the app), as is one whose app has an
    /// operation under way; an unknown name is `NotFound`.
    fn remove_volume(&self, name: &str, flags: u64) -> Result<()>;

    /// Delete every volume an uninstall kept (passing over an app with an
    /// operation under way): a [`VolumePruneReport`] as JSON.
    fn prune_volumes(&self, flags: u64) -> Result<String>;

    /// The helper's version string.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

#[zbus::proxy(interface = "org.berth.Job1", default_service = "org.berth.Helper1")]
pub trait Job1 {
    /// Stop the job; whatever it wrote half-way is removed.
    fn cancel(&self) -> Result<()>;

    /// What the job does: `pull`, `export`, `create`, `install`,
    /// `uninstall`, `update`.
    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;

    /// `running`, `succeeded`, `failed` or `cancelled`.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;

    /// The last progress report.
    fn get_progress(&self) -> Result<JobProgress>;

    /// Once finished: the outcome (also sent as the `Finished` signal).
    fn get_outcome(&self) -> Result<Outcome>;

    #[zbus(signal)]
    fn progress(&self, progress: JobProgress) -> zbus::Result<()>;

    #[zbus(signal)]
    fn finished(&self, outcome: Outcome) -> zbus::Result<()>;
}

/// With feature `ts`, every type that crosses to the desktop app's page has
/// a TypeScript declaration, and sizes and times are plain `number`s there
/// (they stay below 2^53), not `bigint`.
#[cfg(all(test, feature = "ts"))]
mod ts_tests {
    use super::*;
    use ts_rs::TS;

    #[test]
    fn declarations_use_number_for_64_bit_integers() {
        let decls = [
            CatalogInfo::decl(),
            CatalogApp::decl(),
            PortOverride::decl(),
            InstallOptions::decl(),
            UninstallOptions::decl(),
            PublishedPort::decl(),
            ServiceInfo::decl(),
            AppInfo::decl(),
            InstallResult::decl(),
            AuditReport::decl(),
            VolumeInfo::decl(),
            VolumePruneReport::decl(),
            ImageSummary::decl(),
            PruneReport::decl(),
            Info::decl(),
            LayerProgress::decl(),
            JobProgress::decl(),
            Outcome::decl(),
        ];
        for d in &decls {
            assert!(!d.contains("bigint"), "{d}");
        }
        let volume = VolumeInfo::decl();
        for field in [
            "name: string",
            "size_bytes: number",
            "created: number",
            "used_by: Array<string>",
            "kept: boolean",
        ] {
            assert!(volume.contains(field), "no `{field}` in {volume}");
        }
        assert!(ImageSummary::decl().contains("used_by: Array<string>"));
    }
}
