//! App icons for `<img>` tags: `berth-icon://localhost/<app>` (on Windows
//! `http://berth-icon.localhost/<app>`) answers with the icon berthd has
//! for the app, so the page needs no base64 and the webview caches them.

use tauri::http::{Request, Response, StatusCode};
use tauri::{Manager, Runtime, UriSchemeContext, UriSchemeResponder};

use crate::helper::Helper;

pub const SCHEME: &str = "berth-icon";

pub fn serve<R: Runtime>(
    ctx: UriSchemeContext<'_, R>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let app = ctx.app_handle().clone();
    let id = request.uri().path().trim_start_matches('/').to_string();
    tauri::async_runtime::spawn(async move {
        let helper = app.state::<Helper>();
        let icon = match helper.proxy().await {
            Ok(p) => helper.check(p.app_icon(&id).await).ok(),
            Err(_) => None,
        };
        let response = match icon {
            Some((media_type, bytes)) => Response::builder()
                .header("Content-Type", media_type)
                .header("Cache-Control", "max-age=3600")
                .body(bytes),
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Vec::new()),
        };
        responder.respond(response.expect("a valid response"));
    });
}
