//! An empty Tauri 2 window: the same webview, runtime and build settings as
//! Berth's window, and a page with nothing on it. `bench/gui.sh` starts both
//! and compares their start-up time and memory.

/// The page calls this once it is shown; the time goes to
/// `BERTH_APP_READY_FILE`, as Berth's window does.
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

fn main() {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![ready])
        .run(tauri::generate_context!())
        .expect("error while running the empty window");
}
