//! The `org.berth.Helper1` object. Each method converts its arguments, checks
//! the caller, calls one library function and converts the result.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use berth_api::{Error, ImageSummary, Info, JobProgress, LayerProgress, PruneReport, PullResult};
use zbus::message::Header;
use zbus::zvariant::{self, OwnedObjectPath};

use super::auth::{self, Action, Details};
use super::errors::to_api;
use super::job::Jobs;
use super::names;
use crate::credentials::FileCredentials;
use crate::images::{ImageStore, PullProgress};
use crate::registry::Requester;

pub struct Helper {
    pub(super) images: ImageStore,
    pub(super) containers: crate::containers::Containers,
    pub(super) metrics: crate::metrics::Metrics,
    pub(super) apps: crate::apps::AppManager,
    pub(super) credentials: Arc<FileCredentials>,
    pub(super) jobs: Jobs,
    pub(super) auth: auth::Authorizer,
    pub(super) run_root: std::path::PathBuf,
    pub(super) bus: String,
}

#[zbus::interface(name = "org.berth.Helper1")]
impl Helper {
    async fn pull(
        &self,
        reference: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, Error> {
        // Refuse a malformed name now rather than in the job.
        names::image(&reference)?;
        let who = self
            .authorize_about(
                conn,
                &header,
                Action::ImagePull,
                ("image", &reference),
                "Authentication is required to download $(image)",
                flags,
            )
            .await?;
        let images = self.images.clone();
        self.jobs
            .start(
                conn,
                &header,
                "pull",
                who.uid,
                pull_progress,
                move |tx, cancel| async move {
                    let r = images
                        .pull(&reference, Requester::User(who.uid), &tx, &cancel)
                        .await
                        .map_err(to_api)?;
                    Ok(serde_json::to_string(&PullResult {
                        name: r.name,
                        digest: r.digest.to_string(),
                        id: r.id.to_string(),
                    })
                    .expect("serialises"))
                },
            )
            .await
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>, Error> {
        let list = self.images.list().map_err(to_api)?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                name: i.name,
                digest: i.digest.to_string(),
                id: i.id.to_string(),
                created: i.created,
                size: i.size,
                pulled: i.pulled,
                used_by: i.used_by,
            })
            .collect())
    }

    /// One image as JSON; its config's environment values, command and
    /// build history only for root, the user who pulled it and holders of
    /// the right to manage containers (a private image's config is not
    /// everyone's).
    async fn inspect_image(
        &self,
        reference: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        names::image(&reference)?;
        let mut v = self.images.inspect(&reference).map_err(to_api)?;
        let who = auth::caller(conn, &header).await?;
        let puller = self.images.find(&reference).map_err(to_api)?.pulled_by == who.uid;
        if !puller
            && !self
                .auth
                .holds(conn, &header, who, Action::ContainerManage)
                .await
        {
            crate::images::redact_inspect(&mut v);
        }
        Ok(serde_json::to_string_pretty(&v).expect("serialises"))
    }

    async fn remove_image(
        &self,
        reference: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        names::image(&reference)?;
        self.authorize_about(
            conn,
            &header,
            Action::ImageRemove,
            ("image", &reference),
            "Authentication is required to remove the image $(image)",
            flags,
        )
        .await?;
        let (name, report) = self.images.remove(&reference).await.map_err(to_api)?;
        tracing::info!(
            "removed {name}: {} blobs, {} layers, {} bytes",
            report.blobs_removed,
            report.layers_removed,
            report.bytes_freed
        );
        Ok(())
    }

    async fn prune_images(
        &self,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<PruneReport, Error> {
        self.auth
            .authorize(conn, &header, Action::ImageRemove, flags)
            .await?;
        let r = self.images.prune().await.map_err(to_api)?;
        Ok(PruneReport {
            blobs_removed: r.blobs_removed,
            layers_removed: r.layers_removed,
            bytes_freed: r.bytes_freed,
        })
    }

    async fn export_image(
        &self,
        reference: String,
        dir: zvariant::OwnedFd,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, Error> {
        names::image(&reference)?;
        let who = self
            .authorize_about(
                conn,
                &header,
                Action::ImageExport,
                ("image", &reference),
                "Authentication is required to export the files of $(image)",
                flags,
            )
            .await?;
        let dir: OwnedFd = dir.into();
        let st = rustix::fs::fstat(dir.as_fd()).map_err(|e| {
            Error::InvalidArgument(format!("cannot stat the export directory: {e}"))
        })?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            return Err(Error::InvalidArgument(
                "the export target is not a directory".into(),
            ));
        }
        // A non-root caller gets files it owns, without set-id bits or
        // devices, and only into a directory it owns.
        let owner = if who.is_root() {
            None
        } else {
            if st.st_uid != who.uid {
                return Err(Error::AccessDenied(format!(
                    "the export directory belongs to uid {}, not to you ({}); export into a \
                     directory you own",
                    st.st_uid,
                    auth::user_name(who.uid)
                )));
            }
            Some((who.uid, st.st_gid))
        };
        self.images.find(&reference).map_err(to_api)?;
        let images = self.images.clone();
        self.jobs
            .start(
                conn,
                &header,
                "export",
                who.uid,
                export_progress,
                move |tx, cancel| async move {
                    tx.send_replace(());
                    let n = images
                        .export(&reference, dir, owner, &cancel)
                        .await
                        .map_err(to_api)?;
                    Ok(serde_json::json!({ "entries": n }).to_string())
                },
            )
            .await
    }

    async fn login(
        &self,
        host: String,
        username: String,
        password: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        check_host(&host)?;
        let who = self
            .authorize_about(
                conn,
                &header,
                Action::RegistryLogin,
                ("host", &host),
                "Authentication is required to store a login for $(host)",
                flags,
            )
            .await?;
        if username.is_empty() || username.contains(':') {
            return Err(Error::InvalidArgument(
                "the user name must not be empty or contain `:`".into(),
            ));
        }
        // The caller's own login: never anyone else's (issue 11).
        self.credentials
            .login(who.uid, &host, &username, &password)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    async fn logout(
        &self,
        host: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        check_host(&host)?;
        let who = self
            .authorize_about(
                conn,
                &header,
                Action::RegistryLogin,
                ("host", &host),
                "Authentication is required to remove the login for $(host)",
                flags,
            )
            .await?;
        match self.credentials.logout(who.uid, &host) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotFound(format!(
                "user {} is not logged in to {host} (logins are per user)",
                auth::user_name(who.uid)
            ))),
            Err(e) => Err(Error::Internal(e.to_string())),
        }
    }

    async fn info(&self) -> Result<Info, Error> {
        let images = self.images.clone();
        let (storage_bytes, blobs, layers) = tokio::task::spawn_blocking(move || {
            (
                super::disk_usage(images.root()),
                images.content().list().map(|l| l.len()).unwrap_or(0),
                images.layers().list().map(|l| l.len()).unwrap_or(0),
            )
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            root: self.images.root().display().to_string(),
            run_root: self.run_root.display().to_string(),
            storage_bytes,
            images: self.images.list().map_err(to_api)?.len() as u32,
            layers: layers as u32,
            blobs: blobs as u32,
            cgroup_version: super::cgroup_version().to_string(),
            bus: self.bus.clone(),
        })
    }

    /// Pull the image if missing and create a container (a job; its
    /// result is `{"id","name"}`). `options` is `RunOptions` as JSON.
    async fn create_container(
        &self,
        image: String,
        options: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, Error> {
        names::image(&image)?;
        let opts = super::containers::bus_options(&options)?;
        let who = self
            .authorize_about(
                conn,
                &header,
                Action::ImagePull,
                ("image", &image),
                "Authentication is required to download $(image)",
                flags,
            )
            .await?;
        self.authorize_about(
            conn,
            &header,
            Action::ContainerManage,
            ("image", &image),
            "Authentication is required to run a container of $(image); running containers \
             equals administrator rights",
            flags,
        )
        .await?;
        super::containers::create(self, conn, &header, who.uid, image, opts).await
    }

    /// Start a container; `fds` empty, `[stdout, stderr]` or
    /// `[stdout, stderr, stdin]` to attach before its first output.
    async fn start_container(
        &self,
        id: String,
        fds: Vec<zvariant::OwnedFd>,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        // From here on, the container polkit was asked about, by its id.
        let id = self.manage_container(conn, &header, &id, flags).await?;
        let fds = fds.into_iter().map(OwnedFd::from).collect();
        super::containers::start(&self.containers, &id, fds).await
    }

    /// SIGTERM, then SIGKILL after `timeout` seconds.
    async fn stop_container(
        &self,
        id: String,
        timeout: u32,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        // From here on, the container polkit was asked about, by its id.
        let id = self.manage_container(conn, &header, &id, flags).await?;
        super::containers::stop(&self.containers, &id, timeout).await
    }

    /// Send a signal (name or number) to the container's process.
    async fn kill_container(
        &self,
        id: String,
        signal: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        // From here on, the container polkit was asked about, by its id.
        let id = self.manage_container(conn, &header, &id, flags).await?;
        super::containers::kill(&self.containers, &id, &signal).await
    }

    async fn remove_container(
        &self,
        id: String,
        force: bool,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        // From here on, the container polkit was asked about, by its id.
        let id = self.manage_container(conn, &header, &id, flags).await?;
        self.containers
            .remove(&id, force)
            .await
            .map_err(super::containers::container_error)
    }

    /// Returns once the container is not running: (exit code, OOM killed, error).
    async fn wait_container(&self, id: String) -> Result<(i64, bool, String), Error> {
        names::container(&id)?;
        super::containers::wait(&self.containers, &id).await
    }

    /// Run a command in a running container with `fds` = [stdin, stdout,
    /// stderr]; with `tty` true it gets a terminal of `rows` × `cols`.
    /// Returns its exit code when it ends.
    #[allow(clippy::too_many_arguments)]
    async fn exec_container(
        &self,
        id: String,
        args: Vec<String>,
        env: Vec<String>,
        workdir: String,
        fds: Vec<zvariant::OwnedFd>,
        tty: bool,
        rows: u16,
        cols: u16,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<i32, Error> {
        // From here on, the container polkit was asked about, by its id.
        let id = self.manage_container(conn, &header, &id, flags).await?;
        let fds: Vec<OwnedFd> = fds.into_iter().map(OwnedFd::from).collect();
        let stdio: [OwnedFd; 3] = fds.try_into().map_err(|_| {
            Error::InvalidArgument("exec takes exactly three fds: stdin, stdout, stderr".into())
        })?;
        let workdir = (!workdir.is_empty()).then_some(workdir);
        self.containers
            .exec(
                &id,
                &args,
                &env,
                workdir.as_deref(),
                stdio,
                tty.then_some((rows, cols)),
            )
            .await
            .map_err(super::containers::container_error)
    }

    /// The latest resource sample of each container in `ids` (all running
    /// ones if empty), as a JSON object keyed by container id.
    async fn container_stats(&self, ids: Vec<String>) -> Result<String, Error> {
        let mut keys = Vec::new();
        for k in &ids {
            names::container(k)?;
            keys.push(
                self.containers
                    .find(k)
                    .map_err(super::containers::container_error)?
                    .id,
            );
        }
        // A container started since the last tick has no sample yet: take
        // one now rather than leave it out (as `docker stats` shows it).
        let running: Vec<String> = self
            .containers
            .list(false)
            .map_err(super::containers::container_error)?
            .into_iter()
            .map(|c| c.id)
            .filter(|id| keys.is_empty() || keys.contains(id))
            .collect();
        let have = self.metrics.current(&keys);
        if running.iter().any(|id| !have.contains_key(id)) {
            let (metrics, containers) = (self.metrics.clone(), self.containers.clone());
            let _ = tokio::task::spawn_blocking(move || metrics.sample_all(&containers)).await;
        }
        Ok(serde_json::to_string(&self.metrics.current(&keys)).expect("serialises"))
    }

    /// Samples of one container taken after `since` (ms since the epoch),
    /// oldest first, as a JSON array; up to ten minutes at 1 Hz.
    async fn container_stats_history(&self, id: String, since: i64) -> Result<String, Error> {
        names::container(&id)?;
        let c = self
            .containers
            .find(&id)
            .map_err(super::containers::container_error)?;
        Ok(serde_json::to_string(&self.metrics.history(&c.id, since)).expect("serialises"))
    }

    /// JSON array of containers (running ones unless `all`); those of
    /// others [`ContainerInfo::redacted`] unless the caller may manage
    /// containers.
    async fn list_containers(
        &self,
        all: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        let list = self
            .containers
            .list(all)
            .map_err(super::containers::container_error)?;
        let list = self.for_caller(conn, &header, list).await?;
        Ok(serde_json::to_string(&list).expect("serialises"))
    }

    /// One container as JSON (redacted as in `ListContainers`).
    async fn inspect_container(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        names::container(&id)?;
        let c = self
            .containers
            .inspect(&id)
            .map_err(super::containers::container_error)?;
        let c = self.for_caller(conn, &header, vec![c]).await?;
        Ok(serde_json::to_string_pretty(&c[0]).expect("serialises"))
    }

    /// A pipe with the container's log records as JSON lines: for root,
    /// the container's owner, and holders of `org.berth.logs-read` (an
    /// active local session, without a password).
    async fn container_logs(
        &self,
        id: String,
        tail: i64,
        follow: bool,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<zvariant::OwnedFd, Error> {
        names::container(&id)?;
        auth::check_flags(flags)?;
        let c = self
            .containers
            .find(&id)
            .map_err(super::containers::container_error)?;
        let who = auth::caller(conn, &header).await?;
        if !who.is_root() && who.uid != c.owner {
            // The policy's own prompt names the container.
            self.auth
                .authorize_with(
                    conn,
                    &header,
                    Action::LogsRead,
                    &Details::new().with("container", &c.name),
                    flags,
                )
                .await?;
        }
        super::containers::logs(&self.containers, &c.id, tail, follow)
    }

    /// The catalogs berthd knows, as a JSON array of `CatalogInfo`.
    async fn list_catalogs(&self) -> Result<String, Error> {
        super::apps::list_catalogs(&self.apps).await
    }

    /// Add the catalog at `path` (absolute) as `name` (empty: its
    /// directory's name) with `vars` (`NAME=value`); its `CatalogInfo`.
    async fn add_catalog(
        &self,
        path: String,
        name: String,
        vars: Vec<String>,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        names::absolute_path("the catalog path", &path)?;
        if !name.is_empty() {
            names::catalog(&name)?;
        }
        self.manage_apps(
            conn,
            &header,
            Details::new()
                .with("catalog", if name.is_empty() { &path } else { &name })
                .with("path", &path)
                .message("Authentication is required to add the app catalog $(path)"),
            flags,
        )
        .await?;
        super::apps::add_catalog(&self.apps, path, name, vars).await
    }

    /// Forget a catalog; apps installed from it stay installed.
    async fn remove_catalog(
        &self,
        name: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        names::catalog(&name)?;
        self.manage_apps(
            conn,
            &header,
            Details::new()
                .with("catalog", &name)
                .message("Authentication is required to remove the app catalog $(catalog)"),
            flags,
        )
        .await?;
        super::apps::remove_catalog(&self.apps, name).await
    }

    /// Every app of every catalog, a JSON array of `CatalogApp`.
    async fn list_catalog_apps(&self) -> Result<String, Error> {
        super::apps::list_catalog_apps(&self.apps).await
    }

    /// An app's icon: (media type, bytes).
    async fn app_icon(&self, app: String) -> Result<(String, Vec<u8>), Error> {
        names::app(&app)?;
        super::apps::app_icon(&self.apps, app).await
    }

    /// Install an app (a job whose result is an `InstallResult`);
    /// `options` is `InstallOptions` as JSON.
    async fn install_app(
        &self,
        app: String,
        options: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, Error> {
        names::app(&app)?;
        let mut opts: berth_api::InstallOptions = super::apps::options(&options, "install")?;
        if !opts.catalog.is_empty() {
            names::catalog(&opts.catalog)?;
        }
        // The prompt names the catalog the app will come from, and the job
        // takes it from that one, even if another catalog gains the app
        // meanwhile.
        let catalog = super::apps::catalog_of(&self.apps, &app, &opts.catalog).await?;
        let who = self
            .manage_apps(
                conn,
                &header,
                Details::new()
                    .with("app", &app)
                    .with("catalog", &catalog)
                    .message(
                        "Authentication is required to install $(app) from the catalog $(catalog)",
                    ),
                flags,
            )
            .await?;
        opts.catalog = catalog;
        super::apps::install(self, conn, &header, who.uid, app, opts).await
    }

    /// Remove an app and audit (a job whose result is an `AuditReport`);
    /// `options` is `UninstallOptions` as JSON.
    async fn uninstall_app(
        &self,
        app: String,
        options: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, Error> {
        names::app(&app)?;
        let opts: berth_api::UninstallOptions = super::apps::options(&options, "uninstall")?;
        let who = self
            .manage_apps(
                conn,
                &header,
                Details::new().with("app", &app).message(if opts.keep_data {
                    "Authentication is required to remove $(app), keeping its data"
                } else {
                    "Authentication is required to remove $(app) and delete its data"
                }),
                flags,
            )
            .await?;
        super::apps::uninstall(self, conn, &header, who.uid, app, opts).await
    }

    /// Installed apps, a JSON array of `AppInfo`.
    async fn list_apps(&self) -> Result<String, Error> {
        super::apps::list(self).await
    }

    /// One installed app as `AppInfo` JSON.
    async fn inspect_app(&self, app: String) -> Result<String, Error> {
        names::app(&app)?;
        super::apps::inspect(self, &app).await
    }

    /// Start an installed app's containers in dependency order.
    async fn start_app(
        &self,
        app: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        self.manage_app(conn, &header, &app, "start", flags).await?;
        super::apps::start(&self.apps, &app).await
    }

    /// Stop an app's containers; it stays stopped across restarts.
    async fn stop_app(
        &self,
        app: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        self.manage_app(conn, &header, &app, "stop", flags).await?;
        super::apps::stop(&self.apps, &app).await
    }

    /// Stop, then start.
    async fn restart_app(
        &self,
        app: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        self.manage_app(conn, &header, &app, "restart", flags)
            .await?;
        super::apps::restart(&self.apps, &app).await
    }

    /// Pull newer images and recreate the containers whose image changed
    /// (a job whose result is an `InstallResult`).
    async fn update_app(
        &self,
        app: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, Error> {
        let who = self
            .manage_app(conn, &header, &app, "update", flags)
            .await?;
        super::apps::update(self, conn, &header, who.uid, app).await
    }

    /// Audit everything berthd made against its records; with `repair`,
    /// remove what no record explains. An `AuditReport` as JSON.
    async fn doctor(
        &self,
        repair: bool,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        self.manage_apps(conn, &header, Details::new(), flags)
            .await?;
        super::apps::doctor(&self.apps, repair).await
    }

    /// Every named volume with its size and the containers using it, a
    /// JSON array of `VolumeInfo`; its path only for root and holders of
    /// the right to manage apps.
    async fn list_volumes(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        let who = auth::caller(conn, &header).await?;
        let paths = self.auth.holds(conn, &header, who, Action::AppManage).await;
        super::apps::list_volumes(&self.apps, paths).await
    }

    /// Delete a volume an uninstall kept (its app is not installed).
    async fn remove_volume(
        &self,
        name: String,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        names::volume(&name)?;
        self.manage_apps(
            conn,
            &header,
            Details::new()
                .with("volume", &name)
                .message("Authentication is required to delete the kept data $(volume)"),
            flags,
        )
        .await?;
        super::apps::remove_volume(&self.apps, &name).await
    }

    /// Delete every volume an uninstall kept; a `VolumePruneReport` as JSON.
    async fn prune_volumes(
        &self,
        flags: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, Error> {
        self.manage_apps(
            conn,
            &header,
            Details::new()
                .message("Authentication is required to delete all data kept by removed apps"),
            flags,
        )
        .await?;
        super::apps::prune_volumes(&self.apps).await
    }

    #[zbus(property)]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

impl Helper {
    /// Authorize `action` about one thing (`key` = `value` in polkit's
    /// details), with `message` as the prompt (`$(key)` names it).
    async fn authorize_about(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        action: Action,
        (key, value): (&'static str, &str),
        message: &'static str,
        flags: u64,
    ) -> Result<auth::Caller, Error> {
        self.auth
            .authorize_with(
                conn,
                header,
                action,
                &Details::new().with(key, value).message(message),
                flags,
            )
            .await
    }

    /// Authorize `org.berth.app-manage` with `details` for polkit.
    async fn manage_apps(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        details: Details,
        flags: u64,
    ) -> Result<auth::Caller, Error> {
        self.auth
            .authorize_with(conn, header, Action::AppManage, &details, flags)
            .await
    }

    /// Authorize `org.berth.app-manage` to `verb` app `app` (checked first).
    async fn manage_app(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        app: &str,
        verb: &'static str,
        flags: u64,
    ) -> Result<auth::Caller, Error> {
        names::app(app)?;
        let message = match verb {
            "start" => "Authentication is required to start $(app)",
            "stop" => "Authentication is required to stop $(app)",
            "restart" => "Authentication is required to restart $(app)",
            _ => "Authentication is required to update $(app)",
        };
        self.manage_apps(
            conn,
            header,
            Details::new()
                .with("app", app)
                .with("verb", verb)
                .message(message),
            flags,
        )
        .await
    }

    /// Authorize `org.berth.container-manage` for container `key` (checked
    /// first), naming it in the prompt; the container's id.
    async fn manage_container(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        key: &str,
        flags: u64,
    ) -> Result<String, Error> {
        names::container(key)?;
        // polkit's rules see the container the key resolves to (a key can
        // be a unique id prefix), and the verb then acts on that one.
        let c = self
            .containers
            .find(key)
            .map_err(super::containers::container_error)?;
        self.authorize_about(
            conn,
            header,
            Action::ContainerManage,
            ("container", &c.name),
            "Authentication is required to manage the container $(container); managing \
             containers equals administrator rights",
            flags,
        )
        .await?;
        Ok(c.id)
    }

    /// `list` as the caller of `header` may see it: whole for root, the
    /// owner and holders of the right to manage containers, else redacted.
    async fn for_caller(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        list: Vec<crate::containers::ContainerInfo>,
    ) -> Result<Vec<crate::containers::ContainerInfo>, Error> {
        let who = auth::caller(conn, header).await?;
        // Asked only when something is someone else's: polkit is a round trip.
        let all_mine = who.is_root() || list.iter().all(|c| c.owner == who.uid);
        let manager = all_mine
            || self
                .auth
                .holds(conn, header, who, Action::ContainerManage)
                .await;
        Ok(list
            .into_iter()
            .map(|c| {
                if manager || c.owner == who.uid {
                    c
                } else {
                    c.redacted()
                }
            })
            .collect())
    }
}

fn check_host(host: &str) -> Result<(), Error> {
    let probe = format!("{host}/x");
    match probe.parse::<crate::reference::Reference>() {
        Ok(r) if r.registry == host => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "`{host}` is not a registry host name (such as `ghcr.io` or `registry.lan:5000`)"
        ))),
    }
}

pub(super) fn pull_progress(p: &PullProgress) -> JobProgress {
    JobProgress {
        phase: p.phase.to_string(),
        layers: api_layers(&p.layers),
    }
}

/// Layers' progress as the bus carries it.
pub(super) fn api_layers(layers: &[crate::images::LayerProgress]) -> Vec<LayerProgress> {
    layers
        .iter()
        .map(|l| LayerProgress {
            digest: l.digest.to_string(),
            status: l.status.to_string(),
            done: l.done,
            total: l.total,
        })
        .collect()
}

fn export_progress(_: &()) -> JobProgress {
    JobProgress {
        phase: "exporting".into(),
        layers: Vec::new(),
    }
}
