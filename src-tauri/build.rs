use tauri_build::{AppManifest, Attributes};

include!("src/commands/acl.rs");

fn main() {
    // The app's own ACL manifest: see `src/commands/acl.rs`.
    tauri_build::try_build(Attributes::new().app_manifest(AppManifest::new().commands(COMMANDS)))
        .expect("building the Tauri app's context and ACL");
}
