//! What an image should look like once unpacked, and checking a directory
//! against it.
//!
//! [`expected_tree`] applies the layers' entries in order with OCI semantics:
//! in each layer, whiteouts (`.wh.NAME`) and opaque markers first remove
//! what lower layers put there, then the layer's own entries are added; a
//! non-directory replacing a directory takes its subtree with it; a hard
//! link is a regular file with its target's content and mode. Parents that
//! no entry names explicitly are directories of unknown mode.
//!
//! Keys are absolute image paths (`/bin/busybox`); `/` itself is not listed.

use super::layer::{BuiltLayer, Entry};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Path → what should be there.
pub type Tree = BTreeMap<String, Expected>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets (only ever found by [`scan_tree`]).
    Other,
}

/// One path of a tree. `None` fields are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub kind: Kind,
    /// Permission bits (`mode & 0o7777`); None for implicit parents and
    /// symlinks.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `sha256:<hex>` of a file's content.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// A symlink's target, exactly as stored.
    pub link_target: Option<String>,
    /// For hard links: the path this one shares an inode with.
    pub hardlink_of: Option<String>,
}

impl Expected {
    fn dir(mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) -> Self {
        Self {
            kind: Kind::Dir,
            mode,
            uid,
            gid,
            sha256: None,
            size: None,
            link_target: None,
            hardlink_of: None,
        }
    }

    fn file(content_sha: String, size: u64, mode: u32, uid: u32, gid: u32) -> Self {
        Self {
            kind: Kind::File,
            mode: Some(mode & 0o7777),
            uid: Some(uid),
            gid: Some(gid),
            sha256: Some(content_sha),
            size: Some(size),
            link_target: None,
            hardlink_of: None,
        }
    }
}

fn abs(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

fn remove_subtree(tree: &mut Tree, path: &str, keep_self: bool) {
    // Descendants sort between "path/" and "path0" ('0' follows '/').
    let (lo, hi) = (format!("{path}/"), format!("{path}0"));
    let doomed: Vec<String> = tree.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for key in doomed {
        tree.remove(&key);
    }
    if !keep_self {
        tree.remove(path);
    }
}

fn ensure_parents(tree: &mut Tree, path: &str) {
    let mut cur = String::new();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        cur = format!("{cur}/{part}");
        match tree.get(&cur) {
            Some(e) if e.kind == Kind::Dir => {}
            _ => {
                remove_subtree(tree, &cur, false);
                tree.insert(cur.clone(), Expected::dir(None, None, None));
            }
        }
    }
}

fn put(tree: &mut Tree, path: String, entry: Expected) {
    ensure_parents(tree, &path);
    if entry.kind != Kind::Dir {
        remove_subtree(tree, &path, false);
    }
    tree.insert(path, entry);
}

/// The merged tree of `layers`; fails for layers made from a host dir or
/// holding raw entries.
pub fn expected_tree(layers: &[BuiltLayer]) -> Result<Tree> {
    let mut tree = Tree::new();
    for (i, layer) in layers.iter().enumerate() {
        let entries = layer
            .entries
            .as_ref()
            .with_context(|| format!("layer {i} was built from a host dir; no expected tree"))?;
        for entry in entries.iter() {
            match entry {
                Entry::Whiteout { path } => remove_subtree(&mut tree, &abs(path), false),
                Entry::Opaque { dir } => remove_subtree(&mut tree, &abs(dir), true),
                Entry::Raw(_) => bail!("layer {i} has raw entries; no expected tree"),
                _ => {}
            }
        }
        for entry in entries.iter() {
            match entry {
                Entry::File {
                    path,
                    content,
                    mode,
                    uid,
                    gid,
                } => {
                    let sha = crate::sha256_digest(content);
                    let e = Expected::file(sha, content.len() as u64, *mode, *uid, *gid);
                    put(&mut tree, abs(path), e);
                }
                Entry::Zeros { path, size, mode } => {
                    let mut h = Sha256::new();
                    let mut left = *size;
                    let zeros = vec![0u8; 1 << 16];
                    while left > 0 {
                        let n = left.min(zeros.len() as u64) as usize;
                        h.update(&zeros[..n]);
                        left -= n as u64;
                    }
                    let sha = format!("sha256:{}", hex::encode(h.finalize()));
                    put(
                        &mut tree,
                        abs(path),
                        Expected::file(sha, *size, *mode, 0, 0),
                    );
                }
                Entry::Dir {
                    path,
                    mode,
                    uid,
                    gid,
                } => {
                    let path = abs(path);
                    let e = Expected::dir(Some(mode & 0o7777), Some(*uid), Some(*gid));
                    put(&mut tree, path, e);
                }
                Entry::Symlink { path, target } => put(
                    &mut tree,
                    abs(path),
                    Expected {
                        kind: Kind::Symlink,
                        mode: None,
                        uid: Some(0),
                        gid: Some(0),
                        sha256: None,
                        size: None,
                        link_target: Some(target.clone()),
                        hardlink_of: None,
                    },
                ),
                Entry::Hardlink { path, target } => {
                    let target = abs(target);
                    let mut e = tree
                        .get(&target)
                        .filter(|e| e.kind == Kind::File)
                        .cloned()
                        .with_context(|| {
                            format!("hard link {path} points at {target}, which is no file")
                        })?;
                    e.hardlink_of = Some(target);
                    put(&mut tree, abs(path), e);
                }
                Entry::Whiteout { .. } | Entry::Opaque { .. } | Entry::Raw(_) => {}
            }
        }
    }
    Ok(tree)
}

/// Everything below `root` as a tree (`hardlink_of` stays None; symlinks are
/// not followed).
pub fn scan_tree(root: &Path) -> Result<Tree> {
    let mut tree = Tree::new();
    scan(root, "", &mut tree)?;
    Ok(tree)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn describe(path: &Path) -> Result<Expected> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let ft = meta.file_type();
    let mut e = Expected {
        kind: Kind::Other,
        mode: Some(meta.mode() & 0o7777),
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
        sha256: None,
        size: None,
        link_target: None,
        hardlink_of: None,
    };
    if ft.is_dir() {
        e.kind = Kind::Dir;
    } else if ft.is_symlink() {
        e.kind = Kind::Symlink;
        e.mode = None;
        e.link_target = Some(std::fs::read_link(path)?.to_string_lossy().into_owned());
    } else if ft.is_file() {
        e.kind = Kind::File;
        e.size = Some(meta.len());
        e.sha256 = Some(sha256_file(path)?);
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
        e.kind = Kind::Other;
    }
    Ok(e)
}

fn scan(dir: &Path, rel: &str, tree: &mut Tree) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let key = format!("{rel}/{}", name.to_string_lossy());
        let e = describe(&path)?;
        let is_dir = e.kind == Kind::Dir;
        tree.insert(key.clone(), e);
        if is_dir {
            scan(&path, &key, tree)?;
        }
    }
    Ok(())
}

/// What differs between `expected` and the directory `root`, one line per
/// problem (empty: they match). With `allow_extra`, paths present on disk but
/// not expected are fine (a container rootfs with /proc and /dev added).
pub fn tree_problems(expected: &Tree, root: &Path, allow_extra: bool) -> Result<Vec<String>> {
    let actual = scan_tree(root)?;
    let mut problems = Vec::new();
    for (path, want) in expected {
        let Some(got) = actual.get(path) else {
            problems.push(format!("missing: {path} ({:?})", want.kind));
            continue;
        };
        if got.kind != want.kind {
            problems.push(format!(
                "{path}: is {:?}, expected {:?}",
                got.kind, want.kind
            ));
            continue;
        }
        let checks = [
            (
                "mode",
                want.mode.map(|m| format!("{m:o}")),
                got.mode.map(|m| format!("{m:o}")),
            ),
            (
                "uid",
                want.uid.map(|v| v.to_string()),
                got.uid.map(|v| v.to_string()),
            ),
            (
                "gid",
                want.gid.map(|v| v.to_string()),
                got.gid.map(|v| v.to_string()),
            ),
            ("content", want.sha256.clone(), got.sha256.clone()),
            (
                "link target",
                want.link_target.clone(),
                got.link_target.clone(),
            ),
        ];
        for (what, want_v, got_v) in checks {
            if let Some(w) = want_v {
                if want.kind == Kind::Symlink && (what == "uid" || what == "gid") {
                    continue;
                }
                if Some(&w) != got_v.as_ref() {
                    problems.push(format!("{path}: {what} is {got_v:?}, expected {w}"));
                }
            }
        }
        if let Some(other) = &want.hardlink_of {
            let ino = |p: &str| {
                std::fs::symlink_metadata(root.join(p.trim_start_matches('/')))
                    .map(|m| (m.dev(), m.ino()))
                    .ok()
            };
            if ino(path).is_none() || ino(path) != ino(other) {
                problems.push(format!("{path}: not a hard link of {other}"));
            }
        }
    }
    if !allow_extra {
        for path in actual.keys() {
            if !expected.contains_key(path) {
                problems.push(format!("unexpected: {path}"));
            }
        }
    }
    Ok(problems)
}

/// Panics with every difference unless `root` matches `expected` exactly.
pub fn assert_tree(expected: &Tree, root: &Path) {
    let problems = tree_problems(expected, root, false)
        .unwrap_or_else(|e| panic!("scanning {}: {e:#}", root.display()));
    assert!(
        problems.is_empty(),
        "{} does not match the expected tree:\n  {}",
        root.display(),
        problems.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::super::layer::Layer;
    use super::*;

    #[test]
    fn applies_whiteouts_opaque_dirs_and_replacements() {
        let lower = Layer::new()
            .dir("/d")
            .file("/d/gone", "1")
            .file("/d/keep", "2")
            .dir("/d/sub")
            .file("/d/sub/x", "3")
            .dir("/o")
            .file("/o/old", "4")
            .file("/f", "5")
            .build()
            .unwrap();
        let upper = Layer::new()
            .whiteout("/d/gone")
            .whiteout("/d/sub")
            .opaque("/o")
            .file("/o/new", "6")
            .dir("/f")
            .file("/f/inner", "7")
            .hardlink("/d/hard", "/d/keep")
            .build()
            .unwrap();
        let tree = expected_tree(&[lower, upper]).unwrap();
        let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["/d", "/d/hard", "/d/keep", "/f", "/f/inner", "/o", "/o/new"]
        );
        assert_eq!(tree["/d/hard"].hardlink_of.as_deref(), Some("/d/keep"));
        assert_eq!(tree["/d/hard"].sha256, tree["/d/keep"].sha256);
    }

    #[test]
    fn checks_a_directory_against_a_tree() {
        let dir = crate::fsutil::TestDir::new("berth-tree-").unwrap();
        std::fs::create_dir(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/f"), "x").unwrap();
        std::fs::hard_link(dir.join("a/f"), dir.join("a/h")).unwrap();
        let mut tree = scan_tree(dir.path()).unwrap();
        tree.get_mut("/a/h").unwrap().hardlink_of = Some("/a/f".into());
        assert_eq!(
            tree_problems(&tree, dir.path(), false).unwrap(),
            Vec::<String>::new()
        );
        std::fs::write(dir.join("a/extra"), "y").unwrap();
        assert_eq!(
            tree_problems(&tree, dir.path(), false).unwrap(),
            ["unexpected: /a/extra"]
        );
    }
}
