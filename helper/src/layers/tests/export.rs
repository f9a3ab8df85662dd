use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, MetadataExt};

use tar::EntryType;

use super::{expect, need_root, tree, Sandbox, Tar, MTIME, NO_CANCEL};
use crate::content::Digest;
use crate::layers::{LayerStore, Limits};

/// Unpack `layers` as one chain; returns the top chain id.
fn chain(store: &LayerStore, layers: &[Vec<u8>]) -> Digest {
    let mut parent: Option<Digest> = None;
    for blob in layers {
        let diff = Digest::of(blob);
        let id = Digest::chain(parent.as_ref(), &diff);
        store
            .unpack(
                &id,
                parent.as_ref(),
                &diff,
                &blob[..],
                &Limits::default(),
                &NO_CANCEL,
            )
            .unwrap();
        parent = Some(id);
    }
    parent.unwrap()
}

fn three_layers() -> Vec<Vec<u8>> {
    let base = Tar::new()
        .dir("bin/")
        .file_full("bin/su", b"su", 0o4755, 0, 0)
        .node("dev/null", EntryType::Char, 1, 3)
        .node("run/fifo", EntryType::Fifo, 0, 0)
        .file("etc/passwd", b"root")
        .file("etc/old", b"old")
        .file("var/cache/a", b"a")
        .file("var/cache/b", b"b")
        .file("opt/o/x", b"x")
        .file("opt/o/y", b"y")
        .bytes();
    let middle = Tar::new()
        .file("etc/.wh.old", b"")
        .file("var/.wh.cache", b"")
        .dir("opt/o/")
        .file("opt/o/.wh..wh..opq", b"")
        .file("opt/o/z", b"z")
        .file("usr/bin/a", b"A")
        .hardlink("usr/bin/b", "usr/bin/a")
        .bytes();
    let top = Tar::new()
        .dir("etc/")
        .file("etc/passwd", b"root2")
        .symlink("etc/link", "passwd")
        .dir("var/cache/")
        .file("var/cache/c", b"c")
        .bytes();
    vec![base, middle, top]
}

#[test]
fn exports_the_merged_tree() {
    need_root!();
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.extra("layers")).unwrap();
    let top = chain(&store, &three_layers());
    // A hostile leftover in the destination: replaced, never followed.
    symlink(&sb.sentinel, sb.dest.join("etc")).unwrap();

    let dest = std::fs::File::open(&sb.dest).unwrap();
    let n = store.export(&top, dest.as_fd(), None, &NO_CANCEL).unwrap();
    assert!(n > 0);
    assert_eq!(
        tree(&sb.dest),
        expect(&[
            ("bin", "dir 755"),
            ("bin/su", "file 4755 \"su\""),
            ("dev", "dir 755"),
            ("dev/null", "char 1:3"),
            ("etc", "dir 755"),
            ("etc/link", "link -> passwd"),
            ("etc/passwd", "file 644 \"root2\""),
            ("opt", "dir 755"),
            ("opt/o", "dir 755"),
            ("opt/o/z", "file 644 \"z\""),
            ("run", "dir 755"),
            ("run/fifo", "fifo 620"),
            ("usr", "dir 755"),
            ("usr/bin", "dir 755"),
            ("usr/bin/a", "file 644 \"A\""),
            ("usr/bin/b", "file 644 \"A\" = usr/bin/a"),
            ("var", "dir 755"),
            ("var/cache", "dir 755"),
            ("var/cache/c", "file 644 \"c\""),
        ])
    );
    let md = std::fs::symlink_metadata(sb.dest.join("etc")).unwrap();
    assert_eq!(
        md.mtime(),
        MTIME as i64,
        "directory mtime from the top layer"
    );
    assert_eq!(
        super::xattr(&sb.dest.join("opt/o"), "trusted.overlay.opaque"),
        None
    );
    sb.assert_untouched(&["layers"]);
}

#[test]
fn exports_for_another_owner_without_privileges() {
    need_root!();
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.extra("layers")).unwrap();
    let top = chain(&store, &three_layers());
    let dest = std::fs::File::open(&sb.dest).unwrap();
    store
        .export(&top, dest.as_fd(), Some((1234, 4321)), &NO_CANCEL)
        .unwrap();
    let t = tree(&sb.dest);
    assert_eq!(t["bin/su"], "file 755 \"su\"", "set-uid bit dropped");
    assert!(!t.contains_key("dev/null"), "device skipped");
    assert_eq!(t["run/fifo"], "fifo 620");
    for p in t.keys() {
        let md = std::fs::symlink_metadata(sb.dest.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 4321), "{p}");
    }
}
