//! The catalog: what can be installed.

use berth_api::{CatalogApp, CatalogInfo};
use tauri::State;

use super::from_json;
use crate::error::Result;
use crate::helper::Helper;

/// Every app of every catalog, with whether it is installed.
#[tauri::command]
pub async fn catalog_apps(helper: State<'_, Helper>) -> Result<Vec<CatalogApp>> {
    let p = helper.proxy().await?;
    let json = helper.check(p.list_catalog_apps().await)?;
    from_json("the catalog", &json)
}

/// The catalogs, with the apps of theirs that do not load.
#[tauri::command]
pub async fn catalogs(helper: State<'_, Helper>) -> Result<Vec<CatalogInfo>> {
    let p = helper.proxy().await?;
    let json = helper.check(p.list_catalogs().await)?;
    from_json("the list of catalogs", &json)
}
