//! The real desktop window under test: an X server of its own (Xvfb),
//! `tauri-driver` in front of WebKitGTK's `WebKitWebDriver`, and a small
//! W3C WebDriver client to click, type, read and take screenshots.
//!
//! [`Display`] starts `Xvfb` on a display number it picks itself
//! (`-displayfd`), so parallel runs never collide. [`Driver`] starts
//! `tauri-driver` on free ports with the environment the app needs (the
//! display, the bus address); tauri-driver starts `WebKitWebDriver`, which
//! starts the app when a [`Session`] is made, and ends it when the session
//! is deleted. Both are [`ChildGuard`]s: stopped by pid when dropped, also
//! when a test fails; tauri-driver and WebKitWebDriver run in a process
//! group of their own so the app and its WebKit processes go with them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

use crate::http;
use crate::proc::ChildGuard;

/// The key W3C WebDriver names element references by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52f-4a5c5be7d1b3";

/// An X server in memory.
pub struct Display {
    number: u32,
    _xvfb: ChildGuard,
}

impl Display {
    /// Start `Xvfb` at `width`×`height`, 24-bit.
    pub fn start(width: u32, height: u32) -> Result<Display> {
        let xvfb = which("Xvfb").context("Xvfb is missing; install Debian's `xvfb` package")?;
        let (mut read, write) =
            std::io::pipe().context("making a pipe for Xvfb's display number")?;
        let mut cmd = Command::new(xvfb);
        cmd.args(["-displayfd", &write.as_raw_fd().to_string()])
            .args([
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        clear_cloexec(&write)?;
        let guard = ChildGuard::spawn("Xvfb", cmd)?;
        drop(write);
        // Xvfb writes the number and a newline once it accepts clients.
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 16];
        while !text.ends_with('\n') {
            if Instant::now() > deadline {
                bail!("Xvfb did not report its display within 20 s");
            }
            match read.read(&mut buf)? {
                0 => bail!("Xvfb exited before it reported its display"),
                n => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        let number = text.trim().parse().context("Xvfb's display number")?;
        Ok(Display {
            number,
            _xvfb: guard,
        })
    }

    /// `:N`, for `DISPLAY`.
    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }
}

/// `tauri-driver`, which hands sessions to `WebKitWebDriver`.
pub struct Driver {
    port: u16,
    guard: ChildGuard,
    log: PathBuf,
}

impl Driver {
    /// Start it with `env` added to its (and so the app's) environment;
    /// its output goes to `log`.
    pub fn start(display: &Display, env: &[(&str, &str)], log: &Path) -> Result<Driver> {
        Driver::start_inner(display, env, log, None)
    }

    /// Start it, and so the app, as the user `uid`:`gid` with `home` as
    /// its home (owned by that user; a copy of tauri-driver is put there,
    /// since root's `~/.cargo/bin` is usually out of other users' reach).
    pub fn start_as(
        display: &Display,
        env: &[(&str, &str)],
        log: &Path,
        (uid, gid): (u32, u32),
        home: &Path,
    ) -> Result<Driver> {
        Driver::start_inner(display, env, log, Some((uid, gid, home)))
    }

    fn start_inner(
        display: &Display,
        env: &[(&str, &str)],
        log: &Path,
        user: Option<(u32, u32, &Path)>,
    ) -> Result<Driver> {
        let mut tauri_driver = which("tauri-driver")
            .or_else(|_| {
                let home = std::env::var_os("HOME").context("HOME is not set")?;
                let p = PathBuf::from(home).join(".cargo/bin/tauri-driver");
                p.is_file()
                    .then_some(p)
                    .context("not in ~/.cargo/bin either")
            })
            .context(
                "tauri-driver is missing; install it with `cargo install tauri-driver --locked`",
            )?;
        let native = which("WebKitWebDriver")
            .context("WebKitWebDriver is missing; install Debian's `webkit2gtk-driver` package")?;
        let port = crate::free_port()?;
        let native_port = crate::free_port()?;
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        if let Some((uid, gid, home)) = user {
            let copy = home.join("tauri-driver");
            std::fs::copy(&tauri_driver, &copy).context("copying tauri-driver")?;
            let runtime = home.join("runtime");
            std::fs::create_dir_all(&runtime)?;
            for p in [home, copy.as_path(), runtime.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to {uid}", p.display()))?;
            }
            std::fs::set_permissions(
                &runtime,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )?;
            tauri_driver = copy;
        }
        let mut cmd = Command::new(tauri_driver);
        if let Some((uid, gid, home)) = user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid)
                .gid(gid)
                .env("HOME", home)
                .env("XDG_RUNTIME_DIR", home.join("runtime"))
                .current_dir(home);
        }
        cmd.args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .arg("--native-driver")
            .arg(native)
            .env("DISPLAY", display.name())
            // No accessibility bus on a server without a desktop session.
            .env("NO_AT_BRIDGE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut guard = ChildGuard::spawn_in_own_group("tauri-driver", cmd)?;
        guard.set_grace(Duration::from_secs(3));
        let driver = Driver {
            port,
            guard,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while exchange("GET", &format!("{}/status", driver.url()), b"").is_err() {
            if !driver.guard.is_running() || Instant::now() > deadline {
                bail!(
                    "tauri-driver did not answer on port {port}: {}",
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(driver)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start `application` in a new session.
    pub fn session(&self, application: &Path) -> Result<Session> {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": { "tauri:options": { "application": application } }
            }
        });
        let v = call(&self.url(), "POST", "/session", Some(caps)).context("starting the app")?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {v}"))?;
        Ok(Session {
            base: format!("{}/session/{id}", self.url()),
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group holds WebKitWebDriver and, through it, the app.
        self.guard.kill_group();
    }
}

/// One running app, driven through WebDriver. Deleting the session (on
/// drop) closes the app.
pub struct Session {
    base: String,
}

/// A reference to an element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        call(&self.base, method, path, body)
    }

    /// The first element matching a CSS selector, if any now.
    pub fn find(&self, css: &str) -> Result<Option<Element>> {
        let body = json!({ "using": "css selector", "value": css });
        match self.call("POST", "/element", Some(body)) {
            Ok(v) => Ok(Some(element(&v)?)),
            Err(e) if e.to_string().contains("no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every element matching a CSS selector now.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let body = json!({ "using": "css selector", "value": css });
        let v = self.call("POST", "/elements", Some(body))?;
        v.as_array()
            .ok_or_else(|| anyhow!("not a list: {v}"))?
            .iter()
            .map(element)
            .collect()
    }

    /// Wait until an element matching `css` exists.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        self.wait_until(&format!("`{css}` to appear"), timeout, || self.find(css))
    }

    /// Wait until no element matches `css`.
    pub fn wait_gone(&self, css: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("`{css}` to go away"), timeout, || {
            Ok(self.find(css)?.is_none().then_some(()))
        })
    }

    /// Wait until an element matching `css` has text containing `text`.
    pub fn wait_text(&self, css: &str, text: &str, timeout: Duration) -> Result<String> {
        self.wait_until(&format!("`{css}` to say `{text}`"), timeout, || {
            Ok(match self.find(css)? {
                Some(e) => self.text(&e).ok().filter(|t| t.contains(text)),
                None => None,
            })
        })
    }

    /// Call `f` until it gives `Some`, or fail after `timeout` naming `what`.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f()? {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("waited {timeout:?} for {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, e: &Element) -> Result<()> {
        self.call("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .map(drop)
    }

    /// Click the element matching `css`, waiting up to 10 s for it.
    pub fn click_on(&self, css: &str) -> Result<()> {
        let e = self.wait_for(css, Duration::from_secs(10))?;
        self.click(&e)
    }

    pub fn type_into(&self, e: &Element, text: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// Empty a text field.
    pub fn clear(&self, e: &Element) -> Result<()> {
        self.call("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .map(drop)
    }

    pub fn text(&self, e: &Element) -> Result<String> {
        let v = self.call("GET", &format!("/element/{}/text", e.0), None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub fn attribute(&self, e: &Element, name: &str) -> Result<Option<String>> {
        let v = self.call("GET", &format!("/element/{}/attribute/{name}", e.0), None)?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Run `script` (a function body) in the page and return its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Resize the window (outer size).
    pub fn set_size(&self, width: u32, height: u32) -> Result<()> {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .map(drop)
    }

    /// Save a PNG of the window's page at `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("decoding the screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("png.tmp");
        std::fs::write(&tmp, png)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = call(&self.base, "DELETE", "", None);
    }
}

fn element(v: &Value) -> Result<Element> {
    // WebKitWebDriver names the key differently from the standard's
    // (`element-6066-11e4-a52e-…`); take either.
    v.as_object()
        .and_then(|o| {
            o.get(ELEMENT_KEY).or_else(|| {
                o.iter()
                    .find(|(k, _)| k.starts_with("element-6066-11e4-"))
                    .map(|(_, v)| v)
            })
        })
        .and_then(Value::as_str)
        .map(|s| Element(s.to_string()))
        .ok_or_else(|| anyhow!("not an element: {v}"))
}

/// One WebDriver command; returns its `value`, or its error as an error.
fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = exchange(method, &format!("{base}{path}"), body.as_bytes())
        .with_context(|| format!("WebDriver {method} {path}"))?;
    let v: Value = resp
        .json()
        .with_context(|| format!("WebDriver {method} {path}: {}", resp.text()))?;
    if !resp.is_success() {
        bail!(
            "WebDriver {method} {path}: {}: {}",
            v["value"]["error"].as_str().unwrap_or("error"),
            v["value"]["message"].as_str().unwrap_or_default()
        );
    }
    Ok(v["value"].clone())
}

/// One request on a fresh connection, read until the response is whole.
///
/// Unlike [`http::request`] it sends no `Connection: close`: tauri-driver
/// passes that header on to WebKitWebDriver, and then reuses the connection
/// WebKitWebDriver is closing, which fails the next command now and then.
fn exchange(method: &str, url: &str, body: &[u8]) -> Result<http::Response> {
    let (host, path) = http::split_url(url)?;
    let mut stream = TcpStream::connect(&host).with_context(|| format!("connecting to {host}"))?;
    stream.set_read_timeout(Some(http::TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = request.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        raw.extend_from_slice(&buf[..n]);
        if let Ok(resp) = http::parse_response(&raw, false) {
            if resp.complete {
                return Ok(resp);
            }
        }
        if n == 0 {
            return http::parse_response(&raw, false);
        }
    }
}

fn which(program: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{program} is not on PATH"))
}

/// Let a pipe's write end pass to the child (Rust opens it close-on-exec).
fn clear_cloexec(fd: &impl AsRawFd) -> Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is touched.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
    if r < 0 {
        bail!("fcntl: {}", std::io::Error::last_os_error());
    }
    Ok(())
}
