// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    berth_app::webview::tune();
    berth_app::init_logging();
    berth_app::run_app(tauri::Builder::default())
        .run(tauri::generate_context!())
        .expect("error while running the Berth window");
}
