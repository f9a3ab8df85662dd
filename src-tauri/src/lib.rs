//! Berth's desktop window.
//!
//! The window is a web page (`ui/`) in a Tauri 2 webview. Everything it
//! shows comes from berthd over D-Bus through `berth-api`: the Tauri
//! commands in [`commands`] are thin wrappers that convert arguments, make
//! one call, and convert the answer (errors become [`error::UiError`], with
//! a fix the page shows). Long jobs and live data stream to the page through
//! `tauri::ipc::Channel`s ([`events`]); the only app-wide event is berthd's
//! status ([`commands::status`]).
//!
//! The page is trusted with berthd's commands, so it stays the only thing
//! the window shows and the only caller of them (issue 11): the commands
//! are granted to the main window's own origin alone (the app ACL of
//! `build.rs`, [`commands::acl`], `capabilities/`), the window refuses to
//! navigate anywhere else ([`navigation`]), and catalog icons reach it
//! through a scheme that answers with locked-down headers ([`icons`]).
//!
//! [`run_app`] builds the app on any Tauri runtime, so tests drive the same
//! commands on Tauri's mock runtime, and the end-to-end tests drive the real
//! window through WebDriver.

#[cfg(test)]
mod bindings;
pub mod commands;
pub mod error;
pub mod events;
pub mod helper;
pub mod icons;
pub mod navigation;
pub mod webview;

use tauri::{Builder, Runtime};

/// Everything the app registers, on the runtime given.
pub fn run_app<R: Runtime>(builder: Builder<R>) -> Builder<R> {
    use commands::*;
    builder
        .manage(helper::Helper::default())
        .manage(watch::Subscriptions::default())
        .plugin(navigation::guard())
        .register_asynchronous_uri_scheme_protocol(icons::SCHEME, icons::serve)
        // Keep in step with `commands::acl::COMMANDS`.
        .invoke_handler(tauri::generate_handler![
            status::helper_status,
            catalog::catalog_apps,
            catalog::catalogs,
            apps::installed_apps,
            apps::app_info,
            apps::start_app,
            apps::stop_app,
            apps::restart_app,
            apps::open_url,
            jobs::install_app,
            jobs::update_app,
            jobs::uninstall_app,
            jobs::cancel_job,
            watch::watch_apps,
            watch::watch_stats,
            watch::watch_logs,
            watch::unwatch,
            storage::storage,
            storage::remove_image,
            storage::prune_images,
            storage::remove_volume,
            storage::prune_volumes,
            ready,
            start_view,
        ])
        .setup(|app| {
            status::spawn_watcher(app.handle().clone());
            Ok(())
        })
}

/// The page calls this once the catalog is on screen. With
/// `BERTH_APP_READY_FILE` set, the time is written there (the start-up
/// benchmark reads it).
#[tauri::command]
fn ready() {
    if let Some(path) = std::env::var_os("BERTH_APP_READY_FILE") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let tmp = std::path::PathBuf::from(&path).with_extension("tmp");
        if std::fs::write(&tmp, format!("{}\n", now.as_millis())).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

/// The view to open first: `BERTH_APP_VIEW` (`catalog`, `installed`,
/// `storage`, or `app:<id>` for an app's details), else the catalog.
#[tauri::command]
fn start_view() -> String {
    std::env::var("BERTH_APP_VIEW").unwrap_or_else(|_| "catalog".into())
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
