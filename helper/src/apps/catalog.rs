//! Apps and catalogs on disk: `app.toml` + `compose.yaml` + an icon, and
//! directories of them.
//!
//! See the module essay ([`super`]) for the layout. [`load_app`] reads one
//! app directory, [`load_catalog`] a whole catalog: the apps that load, and
//! for each one that does not, what is wrong with it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::compose::{self, is_dns_label, ComposeFile, Port};
use super::interpolate::Vars;
use super::{icon, read_small_file, Error, Invalid};

/// An app's metadata file, in its directory.
pub const APP_FILE: &str = "app.toml";
/// A catalog's optional index, in its directory.
pub const INDEX_FILE: &str = "catalog.toml";
/// Largest icon accepted.
pub const MAX_ICON_BYTES: u64 = 256 << 10;
/// Largest `app.toml` or `catalog.toml` read.
pub const MAX_TOML_BYTES: u64 = 64 << 10;

/// What kind of app it is, for grouping in the desktop app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Development,
    Productivity,
    Media,
    Monitoring,
    Networking,
    Security,
    Web,
    Utilities,
    /// Berth's own demo apps.
    Demo,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Development => "development",
            Category::Productivity => "productivity",
            Category::Media => "media",
            Category::Monitoring => "monitoring",
            Category::Networking => "networking",
            Category::Security => "security",
            Category::Web => "web",
            Category::Utilities => "utilities",
            Category::Demo => "demo",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[open]`: what "Open" shows in a browser.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open {
    /// The service serving the web page.
    pub service: String,
    /// Its port in the container (one of its `ports`' targets).
    pub port: u16,
    /// The page, `/` unless given.
    #[serde(default = "root_path")]
    pub path: String,
}

fn root_path() -> String {
    "/".into()
}

/// `app.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppToml {
    id: String,
    title: String,
    version: String,
    description: String,
    category: Category,
    icon: String,
    #[serde(default)]
    website: Option<String>,
    #[serde(default)]
    open: Option<Open>,
}

/// One installable app, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// A DNS label, equal to the directory's name; containers and volumes
    /// of the app are named after it.
    pub id: String,
    pub title: String,
    /// The version of the software it installs, as shown to people.
    pub version: String,
    pub description: String,
    pub category: Category,
    /// The icon file (SVG or PNG, at most [`MAX_ICON_BYTES`]).
    pub icon: PathBuf,
    pub website: Option<String>,
    pub open: Option<Open>,
    /// The app's directory.
    pub dir: PathBuf,
    pub compose: ComposeFile,
}

impl App {
    /// The published port "Open" goes to (checked to exist).
    pub fn open_port(&self) -> Option<&Port> {
        let open = self.open.as_ref()?;
        self.compose.service(&open.service)?.port(open.port)
    }

    /// `http://HOST:PORT/PATH` for "Open", when the port is published on a
    /// fixed host port (`None` when the installer is to pick one).
    pub fn open_url(&self) -> Option<String> {
        let open = self.open.as_ref()?;
        let port = self.open_port()?;
        let host = match port.host_ip {
            Some(ip) if ip.is_unspecified() => "localhost".to_string(),
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
            None => "localhost".to_string(),
        };
        Some(format!("http://{host}:{}{}", port.published?, open.path))
    }
}

/// A catalog: the apps that loaded, and those that did not with why.
#[derive(Debug)]
pub struct Catalog {
    /// The catalog's directory.
    pub dir: PathBuf,
    /// From `catalog.toml`, if it has one.
    pub title: Option<String>,
    pub description: Option<String>,
    /// In the index's order, or by directory name.
    pub apps: Vec<App>,
    /// Apps that could not be loaded.
    pub problems: Vec<AppProblem>,
}

impl Catalog {
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }
}

/// An app of a catalog that could not be loaded.
#[derive(Debug)]
pub struct AppProblem {
    /// The app's directory.
    pub dir: PathBuf,
    pub error: Error,
}

impl fmt::Display for AppProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        write!(f, "app `{name}` was skipped: {}", self.error)
    }
}

/// `catalog.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexToml {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// App directories relative to the catalog's; all subdirectories with
    /// an `app.toml` when not given.
    #[serde(default)]
    apps: Option<Vec<String>>,
}

/// Parse TOML into `T`, with a one-line error that has the line.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, Invalid> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        Invalid {
            file: file.to_path_buf(),
            line,
            key: String::new(),
            message: e.message().trim().replace('\n', " "),
        }
    })
}

fn read_text(path: &Path, max: u64, what: &'static str) -> Result<String, Error> {
    let bytes = read_small_file(path, max, what)?;
    String::from_utf8(bytes).map_err(|_| {
        Error::Invalid(Invalid {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: "not UTF-8 text".into(),
        })
    })
}

/// Load and check the app in `dir` (`app.toml`, `compose.yaml`, the icon).
pub fn load_app(dir: &Path, vars: &Vars) -> Result<App, Error> {
    let file = dir.join(APP_FILE);
    let text = match read_text(&file, MAX_TOML_BYTES, "app file") {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(Invalid {
                file,
                line: None,
                key: String::new(),
                message: format!(
                    "missing: an app's directory holds {APP_FILE}, {} and its icon",
                    compose::FILE_NAME
                ),
            }))
        }
        other => other?,
    };
    let meta: AppToml = parse_toml(&text, &file)?;
    let invalid = |key: &str, message: String| {
        Error::Invalid(Invalid {
            file: file.clone(),
            line: line_of(&text, key),
            key: key.to_string(),
            message,
        })
    };

    let dir_name = dir.file_name().map(|n| n.to_string_lossy().to_string());
    if !is_dns_label(&meta.id) {
        return Err(invalid(
            "id",
            format!(
                "`{}` is not a valid app id: use 1 to 63 lowercase letters, digits and `-`",
                meta.id
            ),
        ));
    }
    if dir_name.as_deref() != Some(meta.id.as_str()) {
        return Err(invalid(
            "id",
            format!(
                "`{}` differs from the app's directory name `{}`: name the directory after the id",
                meta.id,
                dir_name.unwrap_or_default()
            ),
        ));
    }
    for (key, value, max) in [
        ("title", &meta.title, 64),
        ("version", &meta.version, 64),
        ("description", &meta.description, 1000),
    ] {
        let len = value.trim().chars().count();
        if len == 0 || len > max {
            return Err(invalid(
                key,
                format!("must be 1 to {max} characters, not {len}"),
            ));
        }
    }
    if meta.version.contains(char::is_whitespace) {
        return Err(invalid(
            "version",
            format!("`{}` must not contain spaces", meta.version),
        ));
    }
    if let Some(w) = &meta.website {
        if !(w.starts_with("https://") || w.starts_with("http://"))
            || w.contains(char::is_whitespace)
        {
            return Err(invalid(
                "website",
                format!("`{w}` must be an http:// or https:// address"),
            ));
        }
    }
    let icon = check_icon(dir, &meta.icon).map_err(|m| invalid("icon", m))?;

    let compose = compose::load(&dir.join(compose::FILE_NAME), vars)?;

    if let Some(open) = &meta.open {
        let Some(service) = compose.service(&open.service) else {
            return Err(invalid(
                "open.service",
                format!(
                    "there is no service `{}` in {} (services: {})",
                    open.service,
                    compose::FILE_NAME,
                    compose
                        .services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if service.port(open.port).is_none() {
            let targets: Vec<String> = service
                .ports
                .iter()
                .map(|p| format!("{}/{}", p.target, p.protocol))
                .collect();
            return Err(invalid(
                "open.port",
                format!(
                    "service `{}` does not publish container port {}/tcp (its ports: {}); add it to its `ports`",
                    open.service,
                    open.port,
                    if targets.is_empty() {
                        "none".to_string()
                    } else {
                        targets.join(", ")
                    }
                ),
            ));
        }
        if !open.path.starts_with('/') || open.path.contains(char::is_whitespace) {
            return Err(invalid(
                "open.path",
                format!("`{}` must be a path starting with `/`", open.path),
            ));
        }
    }

    Ok(App {
        id: meta.id,
        title: meta.title.trim().to_string(),
        version: meta.version,
        description: meta.description.trim().to_string(),
        category: meta.category,
        icon,
        website: meta.website,
        open: meta.open,
        dir: dir.to_path_buf(),
        compose,
    })
}

/// The line where `key` (or, for `open.port`, `port`) is set, for messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let last = key.rsplit('.').next().unwrap_or(key);
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(last)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The icon: a file name in the app's directory, `.svg` or `.png`, small,
/// and one berthd can serve ([`super::icon::safe`]: a PNG, or an SVG that
/// is well-formed and within its limits).
fn check_icon(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
    let Some(kind) = icon::Kind::of(name).filter(|_| plain) else {
        return Err(format!(
            "`{name}` must be the name of an .svg or .png file in the app's directory"
        ));
    };
    let path = dir.join(name);
    let bytes = read_small_file(&path, MAX_ICON_BYTES, "icon").map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!("`{name}` does not exist in {}", dir.display())
        }
        other => other.to_string(),
    })?;
    icon::safe(kind, bytes).map_err(|e| format!("`{name}` {e}"))?;
    Ok(path)
}

/// Load the catalog at `path`: a directory of app directories, or a
/// `catalog.toml` (or a directory holding one) that lists them. An app that
/// fails to load is reported in [`Catalog::problems`] and the others load;
/// only a catalog that cannot be read at all is an error.
pub fn load_catalog(path: &Path, vars: &Vars) -> Result<Catalog, Error> {
    let (dir, index_file) = if path.is_dir() {
        let index = path.join(INDEX_FILE);
        let has_index = index.symlink_metadata().is_ok();
        (path.to_path_buf(), has_index.then_some(index))
    } else if path.file_name().is_some_and(|n| n == INDEX_FILE) {
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        (dir, Some(path.to_path_buf()))
    } else if path.exists() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a catalog: give a directory of apps, or a {INDEX_FILE}",
            path.display()
        )));
    } else {
        return Err(Error::NotFound(format!(
            "there is no catalog at {}: give a directory of apps, or a {INDEX_FILE}",
            path.display()
        )));
    };

    let mut catalog = Catalog {
        dir: dir.clone(),
        title: None,
        description: None,
        apps: Vec::new(),
        problems: Vec::new(),
    };
    let listed = match &index_file {
        Some(file) => {
            let text = read_text(file, MAX_TOML_BYTES, "catalog index")?;
            let index: IndexToml = parse_toml(&text, file)?;
            catalog.title = index.title;
            catalog.description = index.description;
            match index.apps {
                Some(apps) => {
                    let mut dirs = Vec::new();
                    for rel in apps {
                        let p = Path::new(&rel);
                        let inside = !rel.is_empty()
                            && p.components().all(|c| matches!(c, Component::Normal(_)));
                        if !inside {
                            return Err(Error::Invalid(Invalid {
                                file: file.clone(),
                                line: line_of_value(&text, &rel),
                                key: "apps".into(),
                                message: format!(
                                    "`{rel}` must be a directory inside the catalog's, relative to it (no `/` at the start, no `..`)"
                                ),
                            }));
                        }
                        dirs.push(dir.join(p));
                    }
                    Some(dirs)
                }
                None => None,
            }
        }
        None => None,
    };
    let app_dirs = match listed {
        Some(dirs) => dirs,
        None => scan(&dir)?,
    };

    for app_dir in app_dirs {
        match load_app(&app_dir, vars) {
            Ok(app) => {
                if catalog.app(&app.id).is_some() {
                    catalog.problems.push(AppProblem {
                        error: Error::Conflict(format!(
                            "another app of the catalog has the id `{}`",
                            app.id
                        )),
                        dir: app_dir,
                    });
                } else {
                    catalog.apps.push(app);
                }
            }
            Err(error) => catalog.problems.push(AppProblem {
                dir: app_dir,
                error,
            }),
        }
    }
    Ok(catalog)
}

fn line_of_value(text: &str, value: &str) -> Option<usize> {
    let quoted = format!("\"{value}\"");
    text.lines()
        .position(|l| l.contains(&quoted))
        .map(|i| i + 1)
}

/// The app directories of a catalog without an index: every subdirectory
/// with an `app.toml`, by name; also those with only a `compose.yaml`, so
/// that a missing `app.toml` is reported instead of silently skipped.
fn scan(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        what: "reading the catalog",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            what: "reading the catalog",
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.join(APP_FILE).exists() || path.join(compose::FILE_NAME).exists() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests;
