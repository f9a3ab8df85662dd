use std::os::unix::fs::{symlink, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use tar::EntryType;

use super::{expect, gzip, need_root, tree, xattr, zstd, Sandbox, Tar, MTIME, NO_CANCEL};
use crate::content::Digest;
use crate::layers::{unpack, Error, LimitKind, Limits};

fn run(
    sb: &Sandbox,
    blob: &[u8],
    lowers: &[PathBuf],
) -> crate::layers::Result<crate::layers::UnpackReport> {
    unpack(blob, &sb.dest, lowers, &Limits::default(), &NO_CANCEL)
}

/// Unpack, expect a refusal naming `entry`, and check the sandbox.
fn refused(blob: &[u8], entry: &str) {
    refused_with(&Sandbox::new(), blob, &[], entry, &[]);
}

fn refused_with(sb: &Sandbox, blob: &[u8], lowers: &[PathBuf], entry: &str, extras: &[&str]) {
    match run(sb, blob, lowers) {
        Err(e @ Error::Unsafe { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("`{entry}`")), "{msg}");
            assert!(
                msg.contains("refused") && msg.contains("nothing outside"),
                "{msg}"
            );
        }
        other => panic!("expected a refusal of {entry}, got {other:?}"),
    }
    sb.assert_untouched(extras);
}

#[test]
fn detects_compression_and_hashes_the_whole_stream() {
    let mut plain = Tar::new()
        .dir("etc/")
        .file("etc/hostname", b"berth\n")
        .bytes();
    // Writers pad to a record size; the padding is part of the diff id.
    plain.resize(plain.len() + 8192, 0);
    let diff_id = Digest::of(&plain);
    for blob in [plain.clone(), gzip(&plain), zstd(&plain)] {
        let sb = Sandbox::new();
        let report = run(&sb, &blob, &[]).unwrap();
        assert_eq!(report.diff_id, diff_id);
        assert_eq!(report.tar_bytes, plain.len() as u64);
        assert_eq!(report.size, 6);
        assert_eq!(report.entries, 2);
        assert_eq!(
            std::fs::read(sb.dest.join("etc/hostname")).unwrap(),
            b"berth\n"
        );
    }
}

#[test]
fn keeps_types_modes_times_and_xattrs() {
    let blob = Tar::new()
        .dir("./")
        .dir_mode("./bin/", 0o555)
        .file_full("./bin/tool", b"#!/bin/sh\n", 0o4755, 0, 0)
        .symlink("./bin/sh", "/bin/busybox")
        .hardlink("./bin/tool2", "./bin/tool")
        .dir_mode("./tmp", 0o1777)
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("mtime", b"1600000123.25"),
        ])
        .file("./data", b"12345")
        .file("./implicit/parent/file", b"x")
        .raw(EntryType::Regular, "v7dir/", "", b"", 0o700, 0, 0)
        .bytes();
    let sb = Sandbox::new();
    let report = run(&sb, &blob, &[]).unwrap();
    assert_eq!(report.size, 10 + 5 + 1);
    let d = &sb.dest;
    assert_eq!(
        tree(d),
        expect(&[
            ("bin", "dir 555"),
            ("bin/sh", "link -> /bin/busybox"),
            ("bin/tool", "file 4755 \"#!/bin/sh\\n\""),
            ("bin/tool2", "file 4755 \"#!/bin/sh\\n\" = bin/tool"),
            ("data", "file 644 \"12345\""),
            ("implicit", "dir 755"),
            ("implicit/parent", "dir 755"),
            ("implicit/parent/file", "file 644 \"x\""),
            ("tmp", "dir 1777"),
            ("v7dir", "dir 700"),
        ])
    );
    let md = std::fs::symlink_metadata(d.join("bin")).unwrap();
    assert_eq!(md.mtime(), MTIME as i64, "dir mtime set after its content");
    let md = std::fs::symlink_metadata(d.join("bin/sh")).unwrap();
    assert_eq!(md.mtime(), MTIME as i64, "symlink mtime");
    let md = std::fs::symlink_metadata(d.join("data")).unwrap();
    assert_eq!(
        (md.mtime(), md.mtime_nsec()),
        (1_600_000_123, 250_000_000),
        "PAX mtime"
    );
    assert_eq!(
        xattr(&d.join("data"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        xattr(&d.join("data"), "trusted.overlay.opaque"),
        None,
        "forged overlay xattr"
    );
}

#[test]
fn sets_owners_and_devices_as_root() {
    need_root!();
    let blob = Tar::new()
        .raw(EntryType::Directory, "home/", "", b"", 0o750, 1000, 100)
        .file_full("home/f", b"x", 0o2755, 1000, 50)
        .raw(EntryType::Symlink, "home/l", "f", b"", 0o777, 1001, 51)
        .node("dev/null", EntryType::Char, 1, 3)
        .node("dev/sda", EntryType::Block, 8, 0)
        .node("run/fifo", EntryType::Fifo, 0, 0)
        .pax(&[
            ("SCHILY.xattr.trusted.berth", b"t"),
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ])
        .file_full("bin/ping", b"ping", 0o755, 0, 0)
        .bytes();
    let sb = Sandbox::new();
    run(&sb, &blob, &[]).unwrap();
    let d = &sb.dest;
    let ids = |p: &str| {
        let md = std::fs::symlink_metadata(d.join(p)).unwrap();
        (md.uid(), md.gid(), md.mode() & 0o7777)
    };
    assert_eq!(ids("home"), (1000, 100, 0o750));
    assert_eq!(ids("home/f"), (1000, 50, 0o2755));
    assert_eq!(ids("home/l").0, 1001);
    let t = tree(d);
    assert_eq!(t["dev/null"], "char 1:3");
    assert_eq!(t["dev/sda"], "block 8:0");
    assert_eq!(t["run/fifo"], "fifo 620");
    assert_eq!(ids("dev/null").2, 0o620);
    assert_eq!(
        xattr(&d.join("bin/ping"), "trusted.berth").as_deref(),
        Some(&b"t"[..])
    );
    assert!(xattr(&d.join("bin/ping"), "security.capability").is_some());
}

#[test]
fn whiteouts_become_char_devices() {
    let blob = Tar::new()
        .file("etc/.wh.passwd", b"")
        .file(".wh..wh..plnk", b"")
        .bytes();
    let sb = Sandbox::new();
    run(&sb, &blob, &[]).unwrap();
    assert_eq!(
        tree(&sb.dest),
        expect(&[("etc", "dir 755"), ("etc/passwd", "char 0:0")])
    );
}

#[test]
fn opaque_markers_become_xattrs() {
    need_root!();
    let blob = Tar::new()
        .dir("opt/")
        .file("opt/.wh..wh..opq", b"")
        .file("opt/new", b"n")
        .file("gone/.wh..wh..opq", b"")
        .bytes();
    let sb = Sandbox::new();
    run(&sb, &blob, &[]).unwrap();
    let d = &sb.dest;
    assert_eq!(
        xattr(&d.join("opt"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&d.join("gone"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        tree(d),
        expect(&[
            ("gone", "dir 755"),
            ("opt", "dir 755"),
            ("opt/new", "file 644 \"n\"")
        ])
    );
}

#[test]
fn same_layer_whiteouts_follow_the_spec() {
    need_root!();
    // Whiteouts only hide lower layers: a directory deleted and made again
    // in one layer is opaque; a whiteout after this layer's own directory
    // makes it opaque instead of deleting it.
    let blob = Tar::new()
        .file(".wh.a", b"")
        .dir("a/")
        .file("a/x", b"x")
        .dir("b/")
        .file("b/y", b"y")
        .file(".wh.b", b"")
        .file(".wh.c", b"")
        .file("c/z", b"z")
        .bytes();
    let sb = Sandbox::new();
    run(&sb, &blob, &[]).unwrap();
    let d = &sb.dest;
    for dir in ["a", "b", "c"] {
        assert_eq!(
            xattr(&d.join(dir), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{dir}"
        );
    }
    assert_eq!(
        tree(d),
        expect(&[
            ("a", "dir 755"),
            ("a/x", "file 644 \"x\""),
            ("b", "dir 755"),
            ("b/y", "file 644 \"y\""),
            ("c", "dir 755"),
            ("c/z", "file 644 \"z\""),
        ])
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let blob = Tar::new()
        .file("f", b"one")
        .file("f", b"two")
        .symlink("l", "f")
        .file("l", b"file now")
        .dir("d/")
        .file("d/inner", b"i")
        .file("d", b"replaced dir")
        .file("x", b"x")
        .dir("x/")
        .bytes();
    let sb = Sandbox::new();
    run(&sb, &blob, &[]).unwrap();
    assert_eq!(
        tree(&sb.dest),
        expect(&[
            ("d", "file 644 \"replaced dir\""),
            ("f", "file 644 \"two\""),
            ("l", "file 644 \"file now\""),
            ("x", "dir 755"),
        ])
    );
}

#[test]
fn refuses_absolute_paths() {
    refused(&Tar::new().file("/etc/passwd", b"x").bytes(), "/etc/passwd");
}

#[test]
fn refuses_dotdot() {
    refused(
        &Tar::new().file("../sentinel/keep", b"pwned").bytes(),
        "../sentinel/keep",
    );
    refused(
        &Tar::new().file("a/../../sentinel/new", b"pwned").bytes(),
        "a/../../sentinel/new",
    );
    refused(&Tar::new().dir("./..").bytes(), "./..");
}

#[test]
fn refuses_writes_through_a_symlink_of_the_same_layer() {
    let sb = Sandbox::new();
    let abs = sb.sentinel.to_str().unwrap().to_string();
    let blob = Tar::new()
        .symlink("rel", "../sentinel")
        .symlink("abs", &abs)
        .file("rel/pwned", b"x")
        .bytes();
    refused_with(&sb, &blob, &[], "rel/pwned", &[]);

    let sb = Sandbox::new();
    let blob = Tar::new()
        .symlink("abs", &abs)
        .file("abs/sub/pwned", b"x")
        .bytes();
    refused_with(&sb, &blob, &[], "abs/sub/pwned", &[]);

    // Replacing a directory by a symlink, then writing below it.
    let sb = Sandbox::new();
    let blob = Tar::new()
        .dir("d/")
        .file("d/a", b"a")
        .symlink("d", "../sentinel")
        .file("d/pwned", b"x")
        .bytes();
    refused_with(&sb, &blob, &[], "d/pwned", &[]);
}

#[test]
fn refuses_writes_through_a_symlink_of_a_lower_layer() {
    let sb = Sandbox::new();
    let lower = sb.extra("lower");
    std::fs::create_dir(lower.join("usr")).unwrap();
    symlink(&sb.sentinel, lower.join("usr/lib")).unwrap();
    symlink("../sentinel", lower.join("etc")).unwrap();
    let blob = Tar::new().file("usr/lib/pwned", b"x").bytes();
    refused_with(
        &sb,
        &blob,
        std::slice::from_ref(&lower),
        "usr/lib/pwned",
        &["lower"],
    );

    let sb2 = Sandbox::new();
    let blob = Tar::new()
        .dir("etc/")
        .file("etc/ok", b"replaced the symlink")
        .bytes();
    // An explicit directory entry replaces the lower symlink: allowed.
    run(&sb2, &blob, std::slice::from_ref(&lower)).unwrap();

    // Hidden by a directory of a higher lower layer: allowed.
    let sb3 = Sandbox::new();
    let upper = sb3.extra("upper");
    std::fs::create_dir_all(upper.join("usr/lib")).unwrap();
    run(
        &sb3,
        &Tar::new().file("usr/lib/ok", b"ok").bytes(),
        &[upper, lower.clone()],
    )
    .unwrap();

    // Hidden by a whiteout of a higher lower layer: allowed.
    let sb4 = Sandbox::new();
    let upper = sb4.extra("upper");
    std::fs::create_dir(upper.join("usr")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("usr/lib"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    run(
        &sb4,
        &Tar::new().file("usr/lib/ok", b"ok").bytes(),
        &[upper, lower],
    )
    .unwrap();
}

#[test]
fn refuses_bad_hardlinks() {
    let sb = Sandbox::new();
    let abs = format!("{}/keep", sb.sentinel.to_str().unwrap());
    refused_with(&sb, &Tar::new().hardlink("h", &abs).bytes(), &[], "h", &[]);
    refused(&Tar::new().hardlink("h", "../sentinel/keep").bytes(), "h");
    refused(&Tar::new().hardlink("h", "missing").bytes(), "h");
    refused(
        &Tar::new()
            .symlink("s", "../sentinel")
            .hardlink("h", "s/keep")
            .bytes(),
        "h",
    );
    refused(&Tar::new().dir("d/").hardlink("h", "d").bytes(), "h");
}

#[test]
fn refuses_bad_whiteouts() {
    refused(&Tar::new().file("a/.wh.", b"").bytes(), "a/.wh.");
    refused(&Tar::new().file(".wh..", b"").bytes(), ".wh..");
    refused(&Tar::new().file("a/.wh...", b"").bytes(), "a/.wh...");
}

#[test]
fn refuses_empty_names_and_non_directory_roots() {
    refused(&Tar::new().file("", b"x").bytes(), "");
    refused(&Tar::new().file(".", b"x").bytes(), ".");
    refused(&Tar::new().symlink("./", "/").bytes(), ".");
}

#[test]
fn enforces_limits() {
    let blob = Tar::new()
        .file("a", &[1; 4096])
        .file("b", b"b")
        .file("c", b"c")
        .bytes();
    let sb = Sandbox::new();
    let limits = Limits {
        max_bytes: 2048,
        max_entries: 100,
        ..Limits::default()
    };
    let err = unpack(&blob[..], &sb.dest, &[], &limits, &NO_CANCEL).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: LimitKind::Bytes,
                limit: 2048
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("limits.max_layer_bytes"), "{err}");
    assert!(err.to_string().contains("/etc/berth/config.toml"), "{err}");

    let sb = Sandbox::new();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 2,
        ..Limits::default()
    };
    let err = unpack(&gzip(&blob)[..], &sb.dest, &[], &limits, &NO_CANCEL).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: LimitKind::Entries,
                limit: 2
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("limits.max_layer_entries"),
        "{err}"
    );
}

#[test]
fn stops_when_cancelled() {
    let blob = Tar::new().file("a", &[0; 100]).bytes();
    let sb = Sandbox::new();
    let cancel = AtomicBool::new(true);
    let err = unpack(&blob[..], &sb.dest, &[], &Limits::default(), &cancel).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
}

#[test]
fn reports_corrupt_streams() {
    let plain = Tar::new().file("a", &[7; 100_000]).bytes();
    let mut gz = gzip(&plain);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz[mid + 1] ^= 0xff;
    let sb = Sandbox::new();
    let err = run(&sb, &gz, &[]).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");

    let gz = gzip(&plain);
    let err = run(&Sandbox::new(), &gz[..gz.len() / 2], &[]).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "truncated gzip: {err:?}");

    let err = run(&Sandbox::new(), &plain[..5000], &[]).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "truncated tar: {err:?}");

    let mut bad_header = plain.clone();
    bad_header[10] ^= 0x55;
    let err = run(&Sandbox::new(), &bad_header, &[]).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "bad checksum: {err:?}");
}
