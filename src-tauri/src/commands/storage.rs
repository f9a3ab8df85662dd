//! The storage view: images and volumes with their sizes and users, and
//! the buttons that free space.

use berth_api::{ImageSummary, Info, PruneReport, VolumeInfo, VolumePruneReport};
use serde::Serialize;
use tauri::State;
use ts_rs::TS;

use super::apps::FLAGS;
use super::from_json;
use crate::error::Result;
use crate::helper::Helper;

/// Everything the storage view shows, in one answer.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Storage {
    pub info: Info,
    pub images: Vec<ImageSummary>,
    pub volumes: Vec<VolumeInfo>,
}

#[tauri::command]
pub async fn storage(helper: State<'_, Helper>) -> Result<Storage> {
    let p = helper.proxy().await?;
    let (info, images, volumes) = futures_util::join!(p.info(), p.list_images(), p.list_volumes());
    Ok(Storage {
        info: helper.check(info)?,
        images: helper.check(images)?,
        volumes: from_json("the volumes", &helper.check(volumes)?)?,
    })
}

/// Remove an image name; its layers go with the next prune.
#[tauri::command]
pub async fn remove_image(helper: State<'_, Helper>, name: String) -> Result<()> {
    let p = helper.proxy().await?;
    helper.check(p.remove_image(&name, FLAGS).await)
}

/// Remove every layer and blob no image uses.
#[tauri::command]
pub async fn prune_images(helper: State<'_, Helper>) -> Result<PruneReport> {
    let p = helper.proxy().await?;
    helper.check(p.prune_images(FLAGS).await)
}

/// Delete one volume whose app is gone (data an uninstall kept).
#[tauri::command]
pub async fn remove_volume(helper: State<'_, Helper>, name: String) -> Result<()> {
    let p = helper.proxy().await?;
    helper.check(p.remove_volume(&name, FLAGS).await)
}

/// Delete every volume whose app is gone.
#[tauri::command]
pub async fn prune_volumes(helper: State<'_, Helper>) -> Result<VolumePruneReport> {
    let p = helper.proxy().await?;
    let json = helper.check(p.prune_volumes(FLAGS).await)?;
    from_json("what the prune removed", &json)
}
