//! The main window shows Berth's own page and nothing else: every
//! navigation of a webview away from the app's origin is refused (issue 11).
//!
//! Custom schemes count as local origins for Tauri's command ACL, so a
//! webview that showed, say, a catalog icon from `berth-icon://` as a
//! document would run its script with the main window's commands; an
//! app's own page (`http://127.0.0.1:PORT`) is remote, but would still
//! replace Berth's page in the window. The page opens addresses through the
//! `open_url` command, in the user's browser; it never navigates itself.
//! New windows (`window.open`) are not made at all: the app gives Tauri no
//! handler for them.

use tauri::plugin::{Builder, TauriPlugin};
use tauri::{Runtime, Url};

/// A plugin whose navigation hook refuses every address but the app's own.
pub fn guard<R: Runtime>() -> TauriPlugin<R> {
    Builder::new("berth-navigation-guard")
        .on_navigation(|webview, url| {
            let own = is_own_page(url);
            if !own {
                tracing::warn!(
                    "refused to navigate window `{}` to {url}: it only shows Berth's own page",
                    webview.label()
                );
            }
            own
        })
        .build()
}

/// Whether `url` is on the origin Tauri serves the embedded page from:
/// `tauri://localhost` on Linux and macOS, `http(s)://tauri.localhost` on
/// Windows and Android.
pub fn is_own_page(url: &Url) -> bool {
    let (schemes, host): (&[&str], _) = if cfg!(any(windows, target_os = "android")) {
        (&["http", "https"], "tauri.localhost")
    } else {
        (&["tauri"], "localhost")
    };
    schemes.contains(&url.scheme())
        && url.host_str() == Some(host)
        && url.port().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(any(windows, target_os = "android")))]
    fn only_the_apps_own_origin_is_its_page() {
        let own = |u: &str| is_own_page(&u.parse().unwrap());
        assert!(own("tauri://localhost"));
        assert!(own("tauri://localhost/index.html#installed"));
        for other in [
            "berth-icon://localhost/hello",
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "https://tauri.localhost.evil.example/",
            "tauri://localhost.evil.example/",
            "tauri://evil.example/",
            "tauri://user@localhost/",
            "tauri://localhost:8080/",
            "file:///etc/passwd",
            "data:text/html,<script>alert(1)</script>",
            "about:blank",
            "javascript:alert(1)",
        ] {
            assert!(!own(other), "{other}");
        }
    }
}
