//! Installed apps: list, inspect, start, stop, restart, open.

use berth_api::AppInfo;
use tauri::State;

use super::from_json;
use crate::error::{Result, UiError};
use crate::helper::Helper;

/// The window may show a polkit dialog: no `berth_api::FLAG_NO_INTERACTION`.
pub(crate) const FLAGS: u64 = 0;

#[tauri::command]
pub async fn installed_apps(helper: State<'_, Helper>) -> Result<Vec<AppInfo>> {
    let p = helper.proxy().await?;
    let json = helper.check(p.list_apps().await)?;
    from_json("the installed apps", &json)
}

#[tauri::command]
pub async fn app_info(helper: State<'_, Helper>, app: String) -> Result<AppInfo> {
    let p = helper.proxy().await?;
    let json = helper.check(p.inspect_app(&app).await)?;
    from_json("an app", &json)
}

#[tauri::command]
pub async fn start_app(helper: State<'_, Helper>, app: String) -> Result<()> {
    let p = helper.proxy().await?;
    helper.check(p.start_app(&app, FLAGS).await)
}

#[tauri::command]
pub async fn stop_app(helper: State<'_, Helper>, app: String) -> Result<()> {
    let p = helper.proxy().await?;
    helper.check(p.stop_app(&app, FLAGS).await)
}

#[tauri::command]
pub async fn restart_app(helper: State<'_, Helper>, app: String) -> Result<()> {
    let p = helper.proxy().await?;
    helper.check(p.restart_app(&app, FLAGS).await)
}

/// Open an app's address in the default browser.
#[tauri::command]
pub async fn open_url(url: String) -> Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(UiError::invalid(format!(
            "`{url}` is not a web address; Berth only opens http:// and https:// addresses"
        )));
    }
    open_in_browser(&url)
}

fn open_in_browser(url: &str) -> Result<()> {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("explorer", vec![url])
    } else {
        ("xdg-open", vec![url])
    };
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|mut child| {
            // Reap it when it exits, off the command's thread.
            std::thread::spawn(move || child.wait());
        })
        .map_err(|e| {
            UiError::new(
                "failed",
                format!("could not start `{program}` to open {url}: {e}"),
                format!("Open {url} in a browser by hand; on Linux, install xdg-utils."),
            )
        })
}
