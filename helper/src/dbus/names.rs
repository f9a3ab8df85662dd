//! Names and paths that arrive over the bus, checked before anything
//! touches the disk.
//!
//! Every method that takes an app, catalog, container, volume or image name
//! or a path passes it through one of these first, so nothing below the bus
//! layer ever joins a caller's string to a directory unchecked (the
//! security review's §1.6: `AppIcon("../../x")` made berthd, as root and
//! for anyone, read `app.toml` from any directory). The rules are the ones
//! the names are made by, so every name berthd hands out passes.

use berth_api::Error;

use crate::apps::compose::{check_volume_name, is_dns_label};

/// An app id: a DNS label, as catalogs give them.
pub fn app(id: &str) -> Result<(), Error> {
    if is_dns_label(id) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "`{}` is not an app id: ids are lowercase letters, digits and `-` (at most 63); \
         `berth catalog apps` lists them",
        shown(id)
    )))
}

/// A catalog name: a DNS label, as `AddCatalog` makes them.
pub fn catalog(name: &str) -> Result<(), Error> {
    if is_dns_label(name) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "`{}` is not a catalog name: names are lowercase letters, digits and `-` (at most \
         63); `berth catalog list` lists them",
        shown(name)
    )))
}

/// A container's id, unique id prefix or name (`berth ps -a`).
pub fn container(key: &str) -> Result<(), Error> {
    let b = key.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "`{}` is not a container id or name: use letters, digits, `_`, `.` or `-` (at most \
         128), starting with a letter or digit; `berth ps -a` lists them",
        shown(key)
    )))
}

/// A named volume: `<app>_<volume>`, as installs make them.
pub fn volume(name: &str) -> Result<(), Error> {
    let ok = name
        .split_once('_')
        .is_some_and(|(app, vol)| is_dns_label(app) && check_volume_name(vol).is_ok());
    if ok {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "`{}` is not a volume name: volumes are named `<app>_<volume>`; `berth volume ls` \
         lists them",
        shown(name)
    )))
}

/// An image reference (`busybox`, `ghcr.io/a/b:tag`, `x@sha256:…`).
pub fn image(reference: &str) -> Result<(), Error> {
    reference
        .parse::<crate::reference::Reference>()
        .map(|_| ())
        .map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// An absolute path without `.`/`..` components or NUL bytes: berthd has
/// no working directory of the caller's, and a clean path is what the
/// caller sees in messages.
pub fn absolute_path(what: &str, path: &str) -> Result<(), Error> {
    let clean = path.starts_with('/')
        && !path.contains('\0')
        && !path.split('/').any(|c| c == ".." || c == ".");
    if clean {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{what} `{}` must be an absolute path without `.` or `..` (berthd does not know your \
         working directory)",
        shown(path)
    )))
}

/// `s` as a message may quote it: at most 80 characters, control
/// characters escaped (a name from the bus can hold anything).
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_names_are_refused() {
        for bad in [
            "../../x",
            "..",
            "",
            "a/b",
            "Hello",
            "-x",
            "x\0y",
            "x\n",
            &"a".repeat(64),
        ] {
            assert!(app(bad).is_err(), "app {bad:?}");
            assert!(catalog(bad).is_err(), "catalog {bad:?}");
        }
        for bad in ["../x", "", ".hidden", "-x", "a/b", "a b", &"a".repeat(129)] {
            assert!(container(bad).is_err(), "container {bad:?}");
        }
        for bad in ["../x_y", "x", "x_", "_y", "X_y", "x_../y", "x_y/z"] {
            assert!(volume(bad).is_err(), "volume {bad:?}");
        }
        for bad in ["relative", "/a/../b", "/a/./b", "", "/a\0"] {
            assert!(
                absolute_path("the catalog path", bad).is_err(),
                "path {bad:?}"
            );
        }
        assert!(image("UPPER/case").is_err());
    }

    #[test]
    fn names_berthd_makes_pass() {
        app("hello-api").unwrap();
        catalog("demo").unwrap();
        container("hello-api-front-1").unwrap();
        container(&"ab12".repeat(16)).unwrap();
        container("brave_anchor").unwrap();
        container("a").unwrap();
        volume("hello_site").unwrap();
        volume("my-app_data.v2").unwrap();
        image("docker.io/library/busybox:latest").unwrap();
        absolute_path("the catalog path", "/srv/catalogs/demo").unwrap();
    }

    #[test]
    fn messages_quote_names_safely() {
        let e = app("x\u{1b}[2J").unwrap_err();
        assert!(e.message().contains("\\u{1b}"), "{}", e.message());
        let long = "a".repeat(500);
        assert!(app(&long).unwrap_err().message().len() < 300);
    }
}
