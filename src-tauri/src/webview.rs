//! Settings for WebKitGTK that Berth's page does not need the defaults of,
//! applied through the environment before the first webview process starts
//! (each is skipped when the user set the variable already).
//!
//! - `JSC_useJIT=false`: the page runs a few hundred lines of script once
//!   a second at most; JavaScriptCore's JIT tiers cost ~13 MB of the web
//!   process and buy nothing measurable here (bench/gui.sh).
//! - `WEBKIT_SKIA_ENABLE_CPU_RENDERING=1` when the machine has no GPU
//!   render node (`/dev/dri/renderD*`): WebKit would otherwise draw with
//!   OpenGL emulated in software (llvmpipe), which is slower than Skia's CPU
//!   raster and keeps ~35 MB more in the web process. With a GPU, WebKit's
//!   default (GPU drawing) stays.

use std::path::Path;

/// Set the variables above (Linux only; call first thing in `main`, before
/// any thread starts).
pub fn tune() {
    if !cfg!(target_os = "linux") {
        return;
    }
    set_default("JSC_useJIT", "false");
    if !has_render_node(Path::new("/dev/dri")) {
        set_default("WEBKIT_SKIA_ENABLE_CPU_RENDERING", "1");
    }
}

fn set_default(name: &str, value: &str) {
    if std::env::var_os(name).is_none() {
        std::env::set_var(name, value);
    }
}

/// Whether `dir` has a DRM render node (`renderD128`, …).
fn has_render_node(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_node_means_a_gpu() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_render_node(dir.path()));
        assert!(!has_render_node(&dir.path().join("missing")));
        std::fs::write(dir.path().join("card0"), "").unwrap();
        assert!(!has_render_node(dir.path()));
        std::fs::write(dir.path().join("renderD128"), "").unwrap();
        assert!(has_render_node(dir.path()));
    }
}
