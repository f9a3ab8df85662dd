//! Long work (install, update, uninstall): start berthd's job, hand the
//! page its path at once, and stream the job's progress and end through
//! the page's channel.

use berth_api::{InstallOptions, Job1Proxy, UninstallOptions};
use tauri::ipc::Channel;
use tauri::State;
use zbus::zvariant::OwnedObjectPath;

use super::apps::FLAGS;
use super::from_json;
use crate::error::{Result, UiError};
use crate::events::{JobEnd, JobEvent};
use crate::helper::Helper;

/// What the finished job's result JSON is.
#[derive(Clone, Copy)]
enum Kind {
    Install,
    Uninstall,
}

#[tauri::command]
pub async fn install_app(
    helper: State<'_, Helper>,
    app: String,
    on_event: Channel<JobEvent>,
) -> Result<String> {
    let p = helper.proxy().await?;
    let options = serde_json::to_string(&InstallOptions::default()).expect("serialises");
    let job = helper.check(p.install_app(&app, &options, FLAGS).await)?;
    follow(&helper, job, Kind::Install, on_event).await
}

#[tauri::command]
pub async fn update_app(
    helper: State<'_, Helper>,
    app: String,
    on_event: Channel<JobEvent>,
) -> Result<String> {
    let p = helper.proxy().await?;
    let job = helper.check(p.update_app(&app, FLAGS).await)?;
    follow(&helper, job, Kind::Install, on_event).await
}

#[tauri::command]
pub async fn uninstall_app(
    helper: State<'_, Helper>,
    app: String,
    keep_data: bool,
    on_event: Channel<JobEvent>,
) -> Result<String> {
    let p = helper.proxy().await?;
    let options = serde_json::to_string(&UninstallOptions {
        keep_data,
        keep_images: false,
    })
    .expect("serialises");
    let job = helper.check(p.uninstall_app(&app, &options, FLAGS).await)?;
    follow(&helper, job, Kind::Uninstall, on_event).await
}

/// Stop a job; berthd removes whatever it made half-way.
#[tauri::command]
pub async fn cancel_job(helper: State<'_, Helper>, job: String) -> Result<()> {
    let conn = helper.connection().await?;
    let path = OwnedObjectPath::try_from(job.as_str())
        .map_err(|_| UiError::invalid(format!("`{job}` is not a job path")))?;
    let proxy = Job1Proxy::builder(&conn)
        .path(path)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    helper.check(proxy.cancel().await)
}

/// Send `started`, then follow the job in the background until it ends.
async fn follow(
    helper: &Helper,
    job: OwnedObjectPath,
    kind: Kind,
    channel: Channel<JobEvent>,
) -> Result<String> {
    let conn = helper.connection().await?;
    let path = job.to_string();
    let _ = channel.send(JobEvent::Started { job: path.clone() });
    tauri::async_runtime::spawn(async move {
        let progress = channel.clone();
        let outcome = berth_api::watch_job(&conn, &job, move |p| {
            let _ = progress.send(JobEvent::Progress {
                phase: p.phase.clone(),
                layers: p.layers.clone(),
            });
        })
        .await;
        let _ = channel.send(JobEvent::Finished(Box::new(end(kind, outcome))));
    });
    Ok(path)
}

fn end(kind: Kind, outcome: berth_api::JobOutcome) -> JobEnd {
    let result = outcome.map_err(UiError::from).and_then(|json| match kind {
        Kind::Install => Ok(JobEnd {
            installed: Some(from_json("an install's result", &json)?),
            ..JobEnd::default()
        }),
        Kind::Uninstall => Ok(JobEnd {
            audit: Some(from_json("an uninstall's audit", &json)?),
            ..JobEnd::default()
        }),
    });
    result.unwrap_or_else(|e| JobEnd {
        error: Some(e),
        ..JobEnd::default()
    })
}
