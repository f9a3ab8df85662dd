//! The images of Berth's demo catalog (`catalog/demo/` in the repository),
//! for machines that cannot reach Docker Hub.
//!
//! Each is the [`busybox_rootfs`] layer (the host's `busybox-static`, one
//! layer shared by all of them) plus a small layer of files written here:
//!
//! | repository | what it serves (busybox httpd on port 8080, root `/www`) |
//! |---|---|
//! | `demo/busybox` | nothing: a shell (`/bin/sh`), for `berth run` |
//! | `demo/web` | a one-page web site |
//! | `demo/api` | `/cgi-bin/hello`: a JSON greeting (`$GREETING`, host name, time) |
//! | `demo/front` | a page whose `/cgi-bin/api` fetches the api's greeting from `$API_URL` (default `http://api:8080`, the api service by name) with busybox wget |
//!
//! `berth-seed --registry HOST:PORT` pushes them all as `:latest`.

use super::build::{Image, ImageBuilder};
use super::catalog::busybox_rootfs;
use super::layer::Layer;
use crate::registry::RegistryClient;
use anyhow::{Context, Result};

/// The port every demo web server listens on in its container.
pub const DEMO_PORT: u16 = 8080;

/// One demo image and the repository it goes to.
#[derive(Debug, Clone)]
pub struct DemoImage {
    /// `demo/web`
    pub repository: &'static str,
    pub image: Image,
}

const STYLE: &str =
    "body{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}\
h1{color:#e67e22}code,pre{background:#f4f4f4;padding:.2em .4em;border-radius:4px}\n";

const WEB_INDEX: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello from Berth</title><link rel="stylesheet" href="style.css"></head>
<body>
<h1>Hello from Berth</h1>
<p>This page is served by <code>busybox httpd</code> in a container that Berth
installed from its demo catalog. The image was built from Debian's
<code>busybox-static</code> package and pulled from a local registry.</p>
</body>
</html>
"#;

const API_INDEX: &str = "{\"endpoints\":[\"/cgi-bin/hello\"]}\n";

/// The api's one endpoint. `$GREETING` is escaped for JSON.
const API_HELLO: &str = r#"#!/bin/sh
# Berth demo: the back end's JSON greeting.
greeting=$(printf %s "${GREETING:-Hello}" | sed 's/[\\"]/\\&/g')
printf 'Content-Type: application/json\r\n\r\n'
printf '{"greeting":"%s","from":"%s","time":"%s"}\n' \
    "$greeting" "$(hostname)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
"#;

/// The front end's proxy to the api, by the api's service name.
const FRONT_API: &str = r#"#!/bin/sh
# Berth demo: fetch the back end's greeting, reaching it by service name.
url="${API_URL:-http://api:8080}/cgi-bin/hello"
# (No `wget -T`: it crashes the busybox of Debian 12.)
if body=$(wget -q -O - "$url" 2>/dev/null); then
    printf 'Content-Type: application/json\r\n\r\n%s\n' "$body"
else
    printf 'Status: 502 Bad Gateway\r\nContent-Type: application/json\r\n\r\n'
    printf '{"error":"cannot reach %s"}\n' "$url"
fi
"#;

const FRONT_INDEX: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Berth two-service demo</title><link rel="stylesheet" href="style.css"></head>
<body>
<h1>Front end</h1>
<p>This page comes from the <code>front</code> service. Below is what the
<code>api</code> service answered when <code>front</code> asked it, by name,
at <code>http://api:8080/cgi-bin/hello</code>:</p>
<pre id="answer">asking…</pre>
<script>
fetch("cgi-bin/api").then(r => r.text()).then(t => {
  document.getElementById("answer").textContent = t;
}).catch(e => {
  document.getElementById("answer").textContent = "error: " + e;
});
</script>
</body>
</html>
"#;

fn httpd_image(layer: &super::layer::BuiltLayer, files: Layer, title: &str) -> Result<Image> {
    let port = DEMO_PORT.to_string();
    ImageBuilder::new()
        .built_layer(layer.clone())
        .layer(files)
        .cmd(&["httpd", "-f", "-v", "-p", &port, "-h", "/www"])
        .expose(&format!("{port}/tcp"))
        .label("org.opencontainers.image.title", title)
        .build()
}

fn www() -> Layer {
    Layer::new().dir("/www").file("/www/style.css", STYLE)
}

/// Build every demo image (a second or two: busybox compresses once).
pub fn demo_images() -> Result<Vec<DemoImage>> {
    let busybox = busybox_rootfs()?
        .build()
        .context("building the busybox layer")?;
    let shell = ImageBuilder::new()
        .built_layer(busybox.clone())
        .cmd(&["/bin/sh"])
        .label("org.opencontainers.image.title", "busybox")
        .build()?;
    let web = httpd_image(
        &busybox,
        www().file("/www/index.html", WEB_INDEX),
        "Berth demo: web page",
    )?;
    let api = httpd_image(
        &busybox,
        Layer::new()
            .dir("/www")
            .file("/www/index.html", API_INDEX)
            .dir("/www/cgi-bin")
            .executable("/www/cgi-bin/hello", API_HELLO),
        "Berth demo: api",
    )?;
    let front = httpd_image(
        &busybox,
        www()
            .file("/www/index.html", FRONT_INDEX)
            .dir("/www/cgi-bin")
            .executable("/www/cgi-bin/api", FRONT_API),
        "Berth demo: front end",
    )?;
    Ok(vec![
        DemoImage {
            repository: "demo/busybox",
            image: shell,
        },
        DemoImage {
            repository: "demo/web",
            image: web,
        },
        DemoImage {
            repository: "demo/api",
            image: api,
        },
        DemoImage {
            repository: "demo/front",
            image: front,
        },
    ])
}

/// Build the demo images and push each as `REPOSITORY:latest`.
pub fn push_demo_images(client: &RegistryClient) -> Result<Vec<DemoImage>> {
    let images = demo_images()?;
    for d in &images {
        d.image
            .push(client, d.repository, "latest")
            .with_context(|| format!("pushing {}:latest", d.repository))?;
    }
    Ok(images)
}
