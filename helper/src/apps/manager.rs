//! [`AppManager`]: installed apps, and the verbs on them.
//!
//! # On disk
//!
//! ```text
//! <root>/apps/<id>/                   the app as installed: app.toml,
//!                                     compose.yaml, its icon, vars.json
//!                                     (the catalog's variables)
//! <root>/volumes/<app>_<v>/_data      a named volume
//! <root>/volumes/.<app>_<v>.removing  a volume being deleted (see `volumes`)
//! <root>/catalogs.json                the catalogs berthd knows
//! ```
//!
//! The app's files are copied at install, so starting, updating and
//! removing it never depend on the catalog still being there or unchanged.
//!
//! # One operation per app at a time
//!
//! Install, uninstall, start, stop, update of one app are serialised by a
//! per-app busy mark: a second one is refused with the operation in
//! progress named. Different apps proceed in parallel; the image store
//! itself is safe for concurrent pulls, and image removal at uninstall
//! holds [`Inner::images_lock`] so it cannot race an install that is about
//! to use the same image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::{AppInfo, CatalogApp, CatalogInfo};

use super::{App, Catalogs, Error, Result};
use crate::containers::Containers;
use crate::images::ImageStore;
use crate::network::{NetworkConfig, Networks};

/// All apps of one berthd.
#[derive(Clone)]
pub struct AppManager {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) images: ImageStore,
    pub(super) containers: Containers,
    pub(super) networks: Networks,
    pub(super) catalogs: Mutex<Catalogs>,
    /// `<root>`
    pub(super) root: PathBuf,
    /// `<run root>`
    pub(super) run_root: PathBuf,
    /// Apps with an operation under way, and which.
    pub(super) busy: Mutex<HashMap<String, &'static str>>,
    /// Held while an install decides whether an image is there and records
    /// it, and while an uninstall removes images.
    pub(super) images_lock: tokio::sync::Mutex<()>,
}

/// What an app is busy with while berthd brings it back at its start.
pub(super) const COMING_BACK: &str = "coming back after berthd started";

/// Marks an app busy until dropped.
pub(super) struct Busy {
    inner: Arc<Inner>,
    app: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.inner
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.app);
    }
}

impl AppManager {
    /// Open the apps of the berthd at `root`/`run_root`, finish or roll
    /// back what a crash interrupted, and bring back apps that should run.
    pub async fn open(
        images: ImageStore,
        containers: Containers,
        run_root: &Path,
        network: NetworkConfig,
    ) -> Result<AppManager> {
        let root = images.root().to_path_buf();
        tighten(&root)?;
        let catalogs = Catalogs::open(&root)?;
        let networks = Networks::new(run_root, network);
        networks.tighten().map_err(|source| Error::Io {
            what: "making private",
            path: run_root.to_path_buf(),
            source,
        })?;
        let m = AppManager {
            inner: Arc::new(Inner {
                images,
                containers,
                networks,
                catalogs: Mutex::new(catalogs),
                root,
                run_root: run_root.to_path_buf(),
                busy: Mutex::new(HashMap::new()),
                images_lock: tokio::sync::Mutex::new(()),
            }),
        };
        // Published ports outlive berthd in the kernel: hold their host
        // ports again before anything else can publish (see `network::ports`).
        let networks = m.inner.networks.clone();
        let held = super::install::blocking(move || networks.hold_published()).await;
        if let Err(e) = held.and_then(|r| Ok(r?)) {
            tracing::error!("holding the published ports again: {e}");
        }
        m.recover().await;
        Ok(m)
    }

    pub(super) fn busy(&self, app: &str, what: &'static str) -> Result<Busy> {
        let mut busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(doing) = busy.get(app) {
            return Err(Error::Conflict(format!(
                "app {app} is busy ({doing}); wait until that has finished"
            )));
        }
        busy.insert(app.to_string(), what);
        Ok(Busy {
            inner: self.inner.clone(),
            app: app.to_string(),
        })
    }

    /// As [`AppManager::busy`], but if berthd is still bringing the app
    /// back after its own start, wait for that (it ends by itself) rather
    /// than refuse.
    pub(super) async fn busy_wait(&self, app: &str, what: &'static str) -> Result<Busy> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            let coming_back = {
                let busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
                busy.get(app) == Some(&COMING_BACK)
            };
            if !coming_back || std::time::Instant::now() >= deadline {
                return self.busy(app, what);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub fn networks(&self) -> &Networks {
        &self.inner.networks
    }

    /// `<root>/apps/<id>`
    pub(super) fn app_dir(&self, id: &str) -> PathBuf {
        self.inner.root.join("apps").join(id)
    }

    /// `<root>/volumes/<name>`
    pub(super) fn volume_dir(&self, name: &str) -> PathBuf {
        self.inner.root.join("volumes").join(name)
    }

    fn catalogs(&self) -> std::sync::MutexGuard<'_, Catalogs> {
        self.inner
            .catalogs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The catalogs berthd knows.
    pub fn list_catalogs(&self) -> Vec<CatalogInfo> {
        let entries = self.catalogs().list().to_vec();
        entries.iter().map(|e| catalog_info(e, e.load())).collect()
    }

    /// Add a catalog; its apps are checked now, and one that does not load
    /// is reported (the others are still offered).
    pub fn add_catalog(
        &self,
        path: &Path,
        name: Option<&str>,
        vars: &[String],
    ) -> Result<CatalogInfo> {
        let mut parsed = super::Vars::new();
        for v in vars {
            let (k, val) = v.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "catalog variable `{v}` has no value: write NAME=value"
                ))
            })?;
            parsed.insert(k.to_string(), val.to_string());
        }
        let entry = self.catalogs().add(path, name, parsed)?.clone();
        Ok(catalog_info(&entry, entry.load()))
    }

    /// Forget a catalog. Apps installed from it stay installed (their files
    /// were copied at install).
    pub fn remove_catalog(&self, name: &str) -> Result<()> {
        self.catalogs().remove(name).map(|_| ())
    }

    /// Every app every catalog offers.
    pub fn catalog_apps(&self) -> Result<Vec<CatalogApp>> {
        let installed: std::collections::BTreeSet<String> = self
            .db()
            .apps()
            .map_err(state_err)?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let entries = self.catalogs().list().to_vec();
        let mut out = Vec::new();
        for e in entries {
            let Ok(catalog) = e.load() else { continue };
            for app in &catalog.apps {
                out.push(catalog_app(&e.name, app, installed.contains(&app.id)));
            }
        }
        Ok(out)
    }

    /// The name of the catalog app `id` comes from: `catalog`, or the
    /// first that has it (as an install would take it).
    pub fn catalog_of(&self, id: &str, catalog: &str) -> Result<String> {
        self.find_in_catalogs(id, catalog).map(|(name, _, _)| name)
    }

    /// Find `id` in the catalog named `catalog`, or in the first catalog
    /// that has it.
    pub(super) fn find_in_catalogs(
        &self,
        id: &str,
        catalog: &str,
    ) -> Result<(String, super::Vars, App)> {
        let entries = self.catalogs().list().to_vec();
        if entries.is_empty() {
            return Err(Error::NotFound(format!(
                "no app `{id}`: berthd knows no catalog yet; add one with `berth catalog add PATH`"
            )));
        }
        let mut problems = Vec::new();
        for e in &entries {
            if !catalog.is_empty() && e.name != catalog {
                continue;
            }
            let c = e.load()?;
            if let Some(app) = c.app(id) {
                return Ok((e.name.clone(), e.vars.clone(), app.clone()));
            }
            for p in &c.problems {
                if p.dir.file_name().is_some_and(|n| n == id) {
                    problems.push(p.to_string());
                }
            }
        }
        if !catalog.is_empty() && !entries.iter().any(|e| e.name == catalog) {
            return Err(Error::NotFound(format!(
                "no catalog `{catalog}`; `berth catalog list` shows the ones berthd knows"
            )));
        }
        if let Some(p) = problems.into_iter().next() {
            return Err(Error::InvalidArgument(p));
        }
        Err(Error::NotFound(format!(
            "no app `{id}` in {}; `berth catalog apps` lists what they offer",
            if catalog.is_empty() {
                "any catalog".to_string()
            } else {
                format!("catalog {catalog}")
            }
        )))
    }

    /// An app's icon: from its installed files, else from a catalog.
    pub fn icon(&self, id: &str) -> Result<(String, Vec<u8>)> {
        let app = match self.installed_app(id) {
            Ok(a) => a,
            Err(_) => self.find_in_catalogs(id, "")?.2,
        };
        // Checked again as it is read: the file may have changed since the
        // app was loaded. An SVG goes out sanitized (issue 11).
        let kind = super::icon::Kind::of(&app.icon.to_string_lossy())
            .ok_or_else(|| super::Error::Failed(format!("{}: not an icon", app.icon.display())))?;
        let bytes = super::read_small_file(&app.icon, super::catalog::MAX_ICON_BYTES, "icon")?;
        let bytes = super::icon::safe(kind, bytes).map_err(|e| {
            super::Error::Invalid(super::Invalid {
                file: app.icon.clone(),
                line: None,
                key: String::new(),
                message: format!("the icon {e}"),
            })
        })?;
        Ok((kind.media_type().to_string(), bytes))
    }

    /// The app as installed (from `<root>/apps/<id>`).
    pub(super) fn installed_app(&self, id: &str) -> Result<App> {
        let dir = self.app_dir(id);
        let vars: super::Vars = match std::fs::read(dir.join(super::install::VARS_FILE)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => super::Vars::new(),
        };
        super::load_app(&dir, &vars)
    }

    pub(super) fn db(&self) -> &crate::state::Db {
        self.inner.images.db()
    }

    /// Installed apps, with their services' state (CPU and memory are left
    /// 0 for the caller, who has the samples).
    pub fn list(&self) -> Result<Vec<AppInfo>> {
        let apps = self.db().apps().map_err(state_err)?;
        // One `nft` for every app's ports: the window lists apps each second.
        let firewall = self.inner.networks.firewall().unwrap_or_default();
        Ok(apps.iter().map(|a| self.info_of(a, &firewall)).collect())
    }

    /// One installed app.
    pub fn inspect(&self, id: &str) -> Result<AppInfo> {
        let a = self.db().app(id).map_err(state_err)?.ok_or_else(|| {
            Error::NotFound(format!(
                "app `{id}` is not installed; `berth apps` lists the installed ones"
            ))
        })?;
        let firewall = self.inner.networks.firewall().unwrap_or_default();
        Ok(self.info_of(&a, &firewall))
    }
}

pub(super) fn state_err(e: crate::state::Error) -> Error {
    Error::Failed(e.to_string())
}

fn catalog_info(e: &super::CatalogEntry, loaded: Result<super::Catalog>) -> CatalogInfo {
    let mut info = CatalogInfo {
        name: e.name.clone(),
        path: e.path.display().to_string(),
        // Write-only: values are often tokens and passwords, and every
        // local user may list catalogs; nobody reads them back (§1.5).
        vars: e.vars.keys().cloned().collect(),
        ..CatalogInfo::default()
    };
    match loaded {
        Ok(c) => {
            info.title = c.title.unwrap_or_else(|| e.name.clone());
            info.description = c.description.unwrap_or_default();
            info.apps = c.apps.len() as u32;
            info.problems = c.problems.iter().map(|p| p.to_string()).collect();
        }
        Err(err) => {
            info.title = e.name.clone();
            info.problems = vec![err.to_string()];
        }
    }
    info
}

fn catalog_app(catalog: &str, app: &App, installed: bool) -> CatalogApp {
    CatalogApp {
        catalog: catalog.to_string(),
        id: app.id.clone(),
        title: app.title.clone(),
        version: app.version.clone(),
        description: app.description.clone(),
        category: app.category.as_str().to_string(),
        website: app.website.clone().unwrap_or_default(),
        services: app
            .compose
            .start_order()
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        images: app.compose.images().iter().map(|r| r.to_string()).collect(),
        installed,
    }
}

/// Make `<root>/apps` and `<root>/volumes` private, and tighten what an
/// older berthd left in them (see [`crate::fsmode`]): each app's copy of
/// its files (its Compose file and variables hold secrets) and each
/// volume's own directory, not the volume's `_data` (the container's).
fn tighten(root: &Path) -> Result<()> {
    use crate::fsmode::{self, DIR, FILE};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            what: "making private",
            path,
            source,
        }
    };
    for top in [root.join("apps"), root.join("volumes")] {
        fsmode::private_dir(&top).map_err(io(&top))?;
        for entry in std::fs::read_dir(&top).map_err(io(&top))?.flatten() {
            let p = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            fsmode::set_mode(&p, DIR).map_err(io(&p))?;
            if top.ends_with("apps") {
                for file in std::fs::read_dir(&p).map_err(io(&p))?.flatten() {
                    let is_file = file.file_type().is_ok_and(|t| t.is_file());
                    let mode = if is_file { FILE } else { DIR };
                    fsmode::set_mode(&file.path(), mode).map_err(io(&file.path()))?;
                }
            }
        }
    }
    Ok(())
}
