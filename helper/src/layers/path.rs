//! Entry names: turning the path bytes of a tar entry into a clean relative
//! path, or saying why it is refused. Pure logic, no file system.

/// Longest path we accept, in bytes: `PATH_MAX` less its NUL. Longer paths
/// cannot be opened with one `openat2` and no real image has them.
pub(crate) const MAX_PATH: usize = 4095;
/// Longest single name (`NAME_MAX`).
const MAX_NAME: usize = 255;

/// Why an entry path is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It could name something outside the layer: refuse as unsafe.
    Unsafe(&'static str),
    /// It cannot be represented on Linux: the layer is corrupt.
    Unsupported(&'static str),
}

/// Normalise `raw` into `out` (cleared first): `./` prefixes, `.` components
/// and repeated slashes are dropped; a leading `/`, a `..` component, a NUL
/// byte or an empty name are refused. An empty `out` means the layer root
/// (`./`).
pub(crate) fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
    out.clear();
    if raw.is_empty() {
        return Err(Refusal::Unsafe("the entry has an empty name"));
    }
    if raw.contains(&0) {
        return Err(Refusal::Unsafe("the name contains a NUL byte"));
    }
    if raw[0] == b'/' {
        return Err(Refusal::Unsafe("the path is absolute"));
    }
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err(Refusal::Unsafe("the path contains a `..` component")),
            _ if comp.len() > MAX_NAME => {
                return Err(Refusal::Unsupported("a name is longer than 255 bytes"))
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    if out.len() > MAX_PATH {
        return Err(Refusal::Unsupported("the path is longer than 4095 bytes"));
    }
    Ok(())
}

/// Split a normalised, non-empty path into its parent (empty for the root)
/// and its final name.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Whether `path` is `dir` or lies beneath it (both normalised).
pub(crate) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || (path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/'))
}

/// `path`, or `.` for the root, as an argument for `*at` calls.
pub(crate) fn or_dot(path: &[u8]) -> &[u8] {
    if path.is_empty() {
        b"."
    } else {
        path
    }
}

/// A name from an image, printable in a message: invalid UTF-8 is replaced
/// and control characters are escaped, so a hostile name cannot play tricks
/// on a terminal.
pub(crate) fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, Refusal> {
        let mut out = Vec::new();
        normalize(raw.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn cleans_harmless_forms() {
        assert_eq!(norm("./etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(norm("etc//./passwd").unwrap(), "etc/passwd");
        assert_eq!(norm("usr/bin/").unwrap(), "usr/bin");
        assert_eq!(norm("./").unwrap(), "");
        assert_eq!(norm(".").unwrap(), "");
        assert_eq!(norm("a..b/..c").unwrap(), "a..b/..c");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "",
            "a\0b",
            "//x",
        ] {
            assert!(
                matches!(norm(bad), Err(Refusal::Unsafe(_))),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            norm(&"a/".repeat(2049)),
            Err(Refusal::Unsupported(_))
        ));
        assert!(matches!(
            norm(&"a".repeat(256)),
            Err(Refusal::Unsupported(_))
        ));
    }

    #[test]
    fn splits_and_nests() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
        assert!(is_within(b"a/b", b"a"));
        assert!(is_within(b"a", b"a"));
        assert!(is_within(b"a", b""));
        assert!(!is_within(b"ab", b"a"));
        assert_eq!(display(b"x\x1b[31m"), "x\\u{1b}[31m");
    }
}
