//! Whether berthd can be reached, for the banner at the top of the window.
//!
//! A task started with the app watches the bus: it sends the page a
//! `helper-status` event (a broadcast, so an app-wide event) whenever the
//! status changes — berthd starting or stopping, the bus going away or
//! coming back — so the window recovers without the user doing anything.

use std::time::Duration;

use berth_api::Info;
use futures_util::StreamExt;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use ts_rs::TS;

use crate::error::UiError;
use crate::helper::Helper;

/// The event the page listens to.
pub const EVENT: &str = "helper-status";

/// How berthd is, as the banner tells it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct HelperStatus {
    pub ok: bool,
    /// berthd's facts when it answers.
    pub info: Option<Info>,
    /// Why it does not, and what to do.
    pub error: Option<UiError>,
}

#[tauri::command]
pub async fn helper_status(helper: State<'_, Helper>) -> Result<HelperStatus, UiError> {
    Ok(status(&helper).await)
}

async fn status(helper: &Helper) -> HelperStatus {
    let info = match helper.proxy().await {
        Ok(p) => helper.check(p.info().await),
        Err(e) => Err(e),
    };
    match info {
        Ok(info) => HelperStatus {
            ok: true,
            info: Some(info),
            error: None,
        },
        Err(e) => HelperStatus {
            ok: false,
            info: None,
            error: Some(e),
        },
    }
}

/// Watch berthd's name on the bus and tell the page about every change.
pub fn spawn_watcher<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let mut last: Option<HelperStatus> = None;
        loop {
            let helper = app.state::<Helper>();
            let now = status(&helper).await;
            if last.as_ref() != Some(&now) {
                let _ = app.emit(EVENT, &now);
                last = Some(now.clone());
            }
            wait_for_change(&helper, now.ok).await;
        }
    });
}

/// Returns when berthd's name changes owner, the bus connection breaks, or
/// after a while anyway. While berthd is down, check every second.
async fn wait_for_change(helper: &Helper, up: bool) {
    let recheck = if up {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(1)
    };
    let Ok(conn) = helper.connection().await else {
        return tokio::time::sleep(recheck).await;
    };
    let changes = async {
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
        let mut owners = dbus
            .receive_name_owner_changed_with_args(&[(0, berth_api::BUS_NAME)])
            .await
            .ok()?;
        owners.next().await
    };
    let _ = tokio::time::timeout(recheck, changes).await;
    // A moment for a starting berthd to register its object.
    tokio::time::sleep(Duration::from_millis(200)).await;
}
