//! The app half of `org.berth.Helper1`: catalogs, installed apps, their
//! volumes and the audit, as plain async functions the interface in `helper.rs` forwards
//! to. Each converts arguments, calls one [`AppManager`] function and
//! converts the result. Apps cross the bus as JSON (see `berth_api::apps`).
//!
//! Install, uninstall and update are jobs: the engine reports an
//! `AppProgress` (a phase, what it works on, and the layers of every
//! image it pulled so far), which becomes the job's [`JobProgress`] with
//! the phase and its detail in one string (`pulling docker.io/library/nginx:latest`).

use std::path::PathBuf;

use berth_api::{AppInfo, Error, InstallOptions, InstallResult, JobProgress, UninstallOptions};
use zbus::message::Header;
use zbus::zvariant::OwnedObjectPath;

use super::containers::container_error;
use super::errors::to_api;
use super::helper::Helper;
use crate::apps::{self, AppManager, AppProgress};
use crate::network;
use crate::registry::Requester;

/// Library errors into bus errors.
pub fn app_error(e: apps::Error) -> Error {
    let msg = e.to_string();
    match e {
        apps::Error::Invalid(_) | apps::Error::InvalidArgument(_) | apps::Error::Conflict(_) => {
            Error::InvalidArgument(msg)
        }
        apps::Error::NotFound(_) => Error::NotFound(msg),
        apps::Error::Image(i) => to_api(i),
        apps::Error::Container(c) => container_error(c),
        apps::Error::Network(n) => network_error(n, msg),
        apps::Error::Cancelled(m) => Error::Cancelled(m),
        apps::Error::Failed(_) | apps::Error::Io { .. } => Error::Internal(msg),
    }
}

fn network_error(e: network::Error, msg: String) -> Error {
    match e {
        network::Error::InvalidName(_)
        | network::Error::InvalidContainerId(_)
        | network::Error::InvalidPort(_)
        | network::Error::NoFreePort { .. } => Error::InvalidArgument(msg),
        network::Error::NotFound(_) => Error::NotFound(msg),
        _ => Error::Internal(msg),
    }
}

/// `AppProgress` as a job reports it: the phase with its detail, and the
/// layers of the pulls.
fn app_progress(phase: &str, detail: &str, layers: &[crate::images::LayerProgress]) -> JobProgress {
    JobProgress {
        phase: match (phase, detail) {
            ("", _) => detail.to_string(),
            (_, "") => phase.to_string(),
            _ => format!("{phase} {detail}"),
        },
        layers: super::helper::api_layers(layers),
    }
}

/// The engine's progress as the job reports it.
fn job_progress(p: &AppProgress) -> JobProgress {
    app_progress(p.phase, &p.detail, &p.layers)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialises")
}

/// Options that arrive as JSON; empty = the defaults.
pub(super) fn options<T: serde::de::DeserializeOwned + Default>(
    s: &str,
    what: &str,
) -> Result<T, Error> {
    if s.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(s)
        .map_err(|e| Error::InvalidArgument(format!("the {what} options are not valid: {e}")))
}

/// Run file-reading work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("the request crashed: {e}")))?
}

pub async fn list_catalogs(m: &AppManager) -> Result<String, Error> {
    let m = m.clone();
    blocking(move || Ok(json(&m.list_catalogs()))).await
}

pub async fn add_catalog(
    m: &AppManager,
    path: String,
    name: String,
    vars: Vec<String>,
) -> Result<String, Error> {
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "the catalog path `{}` is not absolute; berthd does not know your working directory",
            path.display()
        )));
    }
    let m = m.clone();
    blocking(move || {
        let name = (!name.is_empty()).then_some(name.as_str());
        m.add_catalog(&path, name, &vars)
            .map(|info| json(&info))
            .map_err(app_error)
    })
    .await
}

pub async fn remove_catalog(m: &AppManager, name: String) -> Result<(), Error> {
    let m = m.clone();
    blocking(move || m.remove_catalog(&name).map_err(app_error)).await
}

pub async fn list_catalog_apps(m: &AppManager) -> Result<String, Error> {
    let m = m.clone();
    blocking(move || m.catalog_apps().map(|l| json(&l)).map_err(app_error)).await
}

/// The catalog app `id` would be installed from (`wanted`, or the first
/// that has it).
pub async fn catalog_of(m: &AppManager, id: &str, wanted: &str) -> Result<String, Error> {
    let (m, id, wanted) = (m.clone(), id.to_string(), wanted.to_string());
    blocking(move || m.catalog_of(&id, &wanted).map_err(app_error)).await
}

pub async fn app_icon(m: &AppManager, app: String) -> Result<(String, Vec<u8>), Error> {
    let m = m.clone();
    blocking(move || m.icon(&app).map_err(app_error)).await
}

/// Install an app: a job whose result is an [`InstallResult`].
pub async fn install(
    h: &Helper,
    conn: &zbus::Connection,
    header: &Header<'_>,
    uid: u32,
    app: String,
    opts: InstallOptions,
) -> Result<OwnedObjectPath, Error> {
    let apps = h.apps.clone();
    let metrics = h.metrics.clone();
    h.jobs
        .start(
            conn,
            header,
            "install",
            uid,
            job_progress,
            move |tx, cancel| async move {
                let mut r: InstallResult = apps
                    .install(&app, &opts, Requester::User(uid), &tx, &cancel)
                    .await
                    .map_err(app_error)?;
                fill_usage(&metrics, std::slice::from_mut(&mut r.app));
                Ok(json(&r))
            },
        )
        .await
}

/// Remove an app and audit: a job whose result is an `AuditReport`.
pub async fn uninstall(
    h: &Helper,
    conn: &zbus::Connection,
    header: &Header<'_>,
    uid: u32,
    app: String,
    opts: UninstallOptions,
) -> Result<OwnedObjectPath, Error> {
    let apps = h.apps.clone();
    h.jobs
        .start(
            conn,
            header,
            "uninstall",
            uid,
            job_progress,
            move |tx, _cancel| async move {
                let r = apps.uninstall(&app, &opts, &tx).await;
                Ok(json(&r.map_err(app_error)?))
            },
        )
        .await
}

/// Pull newer images and recreate what changed: a job whose result is an
/// [`InstallResult`].
pub async fn update(
    h: &Helper,
    conn: &zbus::Connection,
    header: &Header<'_>,
    uid: u32,
    app: String,
) -> Result<OwnedObjectPath, Error> {
    let apps = h.apps.clone();
    let metrics = h.metrics.clone();
    h.jobs
        .start(
            conn,
            header,
            "update",
            uid,
            job_progress,
            move |tx, cancel| async move {
                let mut r: InstallResult = apps
                    .update(&app, Requester::User(uid), &tx, &cancel)
                    .await
                    .map_err(app_error)?;
                fill_usage(&metrics, std::slice::from_mut(&mut r.app));
                Ok(json(&r))
            },
        )
        .await
}

pub async fn list(h: &Helper) -> Result<String, Error> {
    let mut list = h.apps.list().map_err(app_error)?;
    sample_missing(h, &list).await;
    fill_usage(&h.metrics, &mut list);
    Ok(json(&list))
}

pub async fn inspect(h: &Helper, app: &str) -> Result<String, Error> {
    let mut info = h.apps.inspect(app).map_err(app_error)?;
    sample_missing(h, std::slice::from_ref(&info)).await;
    fill_usage(&h.metrics, std::slice::from_mut(&mut info));
    Ok(serde_json::to_string_pretty(&info).expect("serialises"))
}

pub async fn start(m: &AppManager, app: &str) -> Result<(), Error> {
    m.start(app).await.map(|_| ()).map_err(app_error)
}

pub async fn stop(m: &AppManager, app: &str) -> Result<(), Error> {
    m.stop(app).await.map(|_| ()).map_err(app_error)
}

pub async fn restart(m: &AppManager, app: &str) -> Result<(), Error> {
    m.restart(app).await.map(|_| ()).map_err(app_error)
}

pub async fn doctor(m: &AppManager, repair: bool) -> Result<String, Error> {
    let r = m.doctor(repair).await.map_err(app_error)?;
    Ok(json(&r))
}

/// Every named volume with its size and users, a JSON array of
/// `VolumeInfo`; without `paths`, each volume's path is left empty (where
/// an app keeps its data is for those who manage apps).
pub async fn list_volumes(m: &AppManager, paths: bool) -> Result<String, Error> {
    let m = m.clone();
    blocking(move || {
        let mut list = m.volumes().map_err(app_error)?;
        if !paths {
            for v in &mut list {
                v.path.clear();
            }
        }
        Ok(json(&list))
    })
    .await
}

/// Delete a volume an uninstall kept.
pub async fn remove_volume(m: &AppManager, name: &str) -> Result<(), Error> {
    let bytes = m.remove_volume(name).await.map_err(app_error)?;
    tracing::info!("removed volume {name}: {bytes} bytes");
    Ok(())
}

/// Delete every volume an uninstall kept: a `VolumePruneReport` as JSON.
pub async fn prune_volumes(m: &AppManager) -> Result<String, Error> {
    let r = m.prune_volumes().await.map_err(app_error)?;
    if !r.removed.is_empty() {
        tracing::info!(
            "pruned volumes {}: {} bytes",
            r.removed.join(", "),
            r.bytes_freed
        );
    }
    Ok(json(&r))
}

/// Containers of `apps` that run.
fn running_containers(apps: &[AppInfo]) -> Vec<String> {
    apps.iter()
        .flat_map(|a| &a.services)
        .filter(|s| s.state == "running" && !s.container_id.is_empty())
        .map(|s| s.container_id.clone())
        .collect()
}

/// A container started since the sampler's last tick has no sample yet:
/// take one now rather than show it idle (as `container_stats` does).
async fn sample_missing(h: &Helper, apps: &[AppInfo]) {
    let running = running_containers(apps);
    if running.is_empty() {
        return;
    }
    let have = h.metrics.current(&running);
    if running.iter().any(|id| !have.contains_key(id)) {
        let (metrics, containers) = (h.metrics.clone(), h.containers.clone());
        let _ = tokio::task::spawn_blocking(move || metrics.sample_all(&containers)).await;
    }
}

/// CPU and memory of each service from its container's latest sample,
/// and their sums per app.
fn fill_usage(metrics: &crate::metrics::Metrics, apps: &mut [AppInfo]) {
    let running = running_containers(apps);
    let samples = if running.is_empty() {
        Default::default()
    } else {
        metrics.current(&running)
    };
    for app in apps {
        app.cpu_percent = 0.0;
        app.memory_bytes = 0;
        for s in &mut app.services {
            match samples
                .get(&s.container_id)
                .filter(|_| s.state == "running")
            {
                Some(sample) => {
                    s.cpu_percent = sample.cpu_percent;
                    s.memory_bytes = sample.memory_working_set;
                }
                None => {
                    s.cpu_percent = 0.0;
                    s.memory_bytes = 0;
                }
            }
            app.cpu_percent += s.cpu_percent;
            app.memory_bytes += s.memory_bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_puts_the_detail_into_the_phase() {
        assert_eq!(
            app_progress("pulling", "docker.io/library/nginx:latest", &[]).phase,
            "pulling docker.io/library/nginx:latest"
        );
        assert_eq!(app_progress("starting", "", &[]).phase, "starting");
        assert_eq!(app_progress("", "", &[]).phase, "");
    }

    #[test]
    fn errors_keep_their_kind() {
        assert_eq!(
            app_error(apps::Error::NotFound("no app `x`".into())),
            Error::NotFound("no app `x`".into())
        );
        assert_eq!(
            app_error(apps::Error::Conflict("busy".into())).kind(),
            "InvalidArgument"
        );
        assert_eq!(
            app_error(apps::Error::Cancelled("undone".into())),
            Error::Cancelled("undone".into())
        );
        assert_eq!(
            app_error(apps::Error::Failed("x".into())).kind(),
            "Internal"
        );
    }

    #[test]
    fn usage_is_summed_over_running_services() {
        let metrics = crate::metrics::Metrics::default();
        let mut apps = vec![AppInfo {
            services: vec![
                berth_api::ServiceInfo {
                    container_id: "a".into(),
                    state: "exited".into(),
                    cpu_percent: 3.0,
                    ..Default::default()
                },
                berth_api::ServiceInfo::default(),
            ],
            cpu_percent: 9.0,
            ..Default::default()
        }];
        fill_usage(&metrics, &mut apps);
        assert_eq!(apps[0].cpu_percent, 0.0);
        assert_eq!(apps[0].services[0].cpu_percent, 0.0);
        assert_eq!(apps[0].memory_bytes, 0);
    }
}
