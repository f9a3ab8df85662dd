//! App icons for `<img>` tags: `berth-icon://localhost/<app>` (on Windows
//! `http://berth-icon.localhost/<app>`) answers with the icon berthd has
//! for the app, so the page needs no base64 and the webview caches them.
//!
//! The icons come from catalogs, which other people write. berthd has
//! rewritten every SVG without script or references already; this side is
//! the second wall (issue 11): only `GET /<app id>` is served, only as
//! `image/svg+xml` or `image/png` (a PNG must look like one), and every
//! answer forbids sniffing (`X-Content-Type-Options: nosniff`) and carries
//! a [`CSP`] under which an icon shown as a document would load nothing,
//! run nothing, and have an origin of its own (`sandbox`). An `<img>`
//! ignores the policy, so icons show as before.

use tauri::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use tauri::http::{Method, Request, Response, StatusCode, Uri};
use tauri::{Manager, Runtime, UriSchemeContext, UriSchemeResponder};

use crate::helper::Helper;

pub const SCHEME: &str = "berth-icon";

/// The content security policy of every icon answer.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

const SVG: &str = "image/svg+xml";
const PNG: &str = "image/png";

pub fn serve<R: Runtime>(
    ctx: UriSchemeContext<'_, R>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let app = ctx.app_handle().clone();
    tauri::async_runtime::spawn(async move {
        let helper = app.state::<Helper>();
        responder.respond(answer(&helper, &request).await);
    });
}

/// The answer to one request of the scheme.
pub async fn answer(helper: &Helper, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
    if request.method() != Method::GET {
        return respond(StatusCode::METHOD_NOT_ALLOWED, None);
    }
    let Some(id) = app_id(request.uri()) else {
        return respond(StatusCode::BAD_REQUEST, None);
    };
    let icon = match helper.proxy().await {
        Ok(p) => helper.check(p.app_icon(id).await).ok(),
        Err(_) => None,
    };
    match icon.and_then(|(media_type, bytes)| checked(id, &media_type, bytes)) {
        Some(icon) => respond(StatusCode::OK, Some(icon)),
        None => respond(StatusCode::NOT_FOUND, None),
    }
}

/// The app id of `/<id>`: a DNS label, as berthd names apps; nothing else
/// (no other path, no query) is asked of berthd.
fn app_id(uri: &Uri) -> Option<&str> {
    if uri.query().is_some() {
        return None;
    }
    let id = uri.path().strip_prefix('/')?;
    let label = !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    label.then_some(id)
}

/// berthd's answer, if it is an icon of a type served here.
fn checked(id: &str, media_type: &str, bytes: Vec<u8>) -> Option<(&'static str, Vec<u8>)> {
    let icon = match media_type {
        SVG => Some((SVG, bytes)),
        PNG if bytes.starts_with(b"\x89PNG\r\n\x1a\n") => Some((PNG, bytes)),
        _ => None,
    };
    if icon.is_none() {
        tracing::warn!("berthd sent the icon of `{id}` as `{media_type}`; not shown");
    }
    icon
}

fn respond(status: StatusCode, icon: Option<(&'static str, Vec<u8>)>) -> Response<Vec<u8>> {
    let builder = Response::builder()
        .status(status)
        .header(CONTENT_SECURITY_POLICY, CSP)
        .header("X-Content-Type-Options", "nosniff");
    let response = match icon {
        Some((media_type, bytes)) => builder
            .header(CONTENT_TYPE, media_type)
            .header(CACHE_CONTROL, "max-age=3600")
            .body(bytes),
        None => builder.body(Vec::new()),
    };
    response.expect("a response of constant headers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_app_id_is_asked_for() {
        let id = |u: &str| app_id(&u.parse().unwrap()).map(str::to_string);
        assert_eq!(id("berth-icon://localhost/hello"), Some("hello".into()));
        assert_eq!(
            id("http://berth-icon.localhost/hello-api"),
            Some("hello-api".into())
        );
        for bad in [
            "berth-icon://localhost/",
            "berth-icon://localhost/../../etc",
            "berth-icon://localhost/%2e%2e",
            "berth-icon://localhost/a/b",
            "berth-icon://localhost/Hello",
            "berth-icon://localhost/-x",
            "berth-icon://localhost/hello?x=1",
        ] {
            assert_eq!(id(bad), None, "{bad}");
        }
        let long = format!("berth-icon://localhost/{}", "a".repeat(64));
        assert_eq!(id(&long), None);
    }

    #[test]
    fn every_answer_is_locked_down() {
        for r in [
            respond(StatusCode::OK, Some((SVG, b"<svg/>".to_vec()))),
            respond(StatusCode::NOT_FOUND, None),
        ] {
            let h = r.headers();
            assert_eq!(h[CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(h["X-Content-Type-Options"], "nosniff");
        }
        let r = respond(StatusCode::OK, Some((PNG, b"\x89PNG\r\n\x1a\n".to_vec())));
        assert_eq!(r.headers()[CONTENT_TYPE], "image/png");
        assert!(CSP.starts_with("default-src 'none'; style-src 'unsafe-inline'"));
    }

    #[test]
    fn only_svg_and_png_are_served() {
        assert!(checked("a", SVG, b"<svg/>".to_vec()).is_some());
        assert!(checked("a", PNG, b"\x89PNG\r\n\x1a\n..".to_vec()).is_some());
        assert!(checked("a", PNG, b"<svg/>".to_vec()).is_none());
        for other in ["text/html", "image/svg+xml; charset=utf-8", "IMAGE/PNG", ""] {
            assert!(checked("a", other, b"<svg/>".to_vec()).is_none(), "{other}");
        }
    }
}
