// build.rs includes this file as well (a build script cannot depend on the
// crate it builds), so it holds this one constant and nothing else.

/// Every command of `run_app`'s invoke handler, by name. `build.rs` makes
/// each an `allow-<name>` permission of Tauri's app ACL manifest, and
/// `capabilities/default.json` grants them to the main window's own page
/// only (issue 11): with a manifest, Tauri refuses a command to any window,
/// webview or origin no capability names, where without one it allowed
/// every command to every local document. A command missing here is
/// refused to the page too.
pub const COMMANDS: &[&str] = &[
    "helper_status",
    "catalog_apps",
    "catalogs",
    "installed_apps",
    "app_info",
    "start_app",
    "stop_app",
    "restart_app",
    "open_url",
    "install_app",
    "update_app",
    "uninstall_app",
    "cancel_job",
    "watch_apps",
    "watch_stats",
    "watch_logs",
    "unwatch",
    "storage",
    "remove_image",
    "prune_images",
    "remove_volume",
    "prune_volumes",
    "ready",
    "start_view",
];
