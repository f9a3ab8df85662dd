//! Decompression bombs (issue 11): the expansion-ratio guard, sparse
//! entries written as holes, the entry-count default and the free-space
//! reserve, through `unpack` and the store.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{gzip, names, need_root, Sandbox, Tar, NO_CANCEL};
use crate::content::Digest;
use crate::layers::{unpack, Error, LayerStore, Limits};

const TIB: u64 = 1 << 40;

/// Bytes of disk `path` takes.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn read_at(file: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

/// `file` is `size` bytes long, holds `segments` and zeros elsewhere (read
/// at the edges of each segment and in the middle of each hole), and takes
/// little disk.
fn assert_sparse(path: &Path, size: u64, segments: &[(u64, Vec<u8>)]) {
    let file = File::open(path).unwrap();
    assert_eq!(file.metadata().unwrap().len(), size, "{}", path.display());
    let data: u64 = segments.iter().map(|(_, d)| d.len() as u64).sum();
    // Each segment may take whole blocks (and an extent or two).
    let budget = data + 64 * 1024 * (segments.len() as u64 + 1);
    assert!(
        allocated(path) <= budget,
        "{} takes {} bytes of disk for {data} bytes of data: holes were written",
        path.display(),
        allocated(path)
    );
    let mut end = 0;
    for (offset, d) in segments {
        assert_eq!(&read_at(&file, *offset, d.len()), d, "segment at {offset}");
        if *offset > end {
            let middle = end + (offset - end) / 2;
            assert_eq!(read_at(&file, middle, 1), [0], "hole at {middle}");
        }
        end = offset + d.len() as u64;
    }
    if size > end {
        assert_eq!(read_at(&file, size - 1, 1), [0], "the last byte");
    }
}

/// Segments of a 1 TiB file: a page at the start, one at 1 GiB, and an odd
/// tail just before the end.
fn tib_segments() -> Vec<(u64, Vec<u8>)> {
    vec![
        (0, vec![b'a'; 4096]),
        (1 << 30, vec![b'b'; 4096]),
        (TIB - 1000, vec![b'c'; 1000]),
    ]
}

/// Many segments, to need GNU extension headers (over 4) and several of
/// them (over 4 + 21).
fn many_segments() -> Vec<(u64, Vec<u8>)> {
    (0..30u64)
        .map(|i| (i << 20, vec![i as u8 + 1; 512]))
        .collect()
}

fn borrowed(segments: &[(u64, Vec<u8>)]) -> Vec<(u64, &[u8])> {
    segments.iter().map(|(o, d)| (*o, &d[..])).collect()
}

#[test]
fn sparse_entries_are_written_as_holes() {
    let tib = tib_segments();
    let many = many_segments();
    let blob = Tar::new()
        .dir("d/")
        .gnu_sparse("d/gnu", TIB, &borrowed(&tib))
        .gnu_sparse("d/gnu-extended", 64 << 20, &borrowed(&many))
        .pax_sparse("d/pax-1.0", TIB, &borrowed(&tib))
        .pax_sparse_0x("d/pax-0.1", 64 << 20, &borrowed(&many), true)
        .pax_sparse_0x("d/pax-0.0", TIB, &borrowed(&tib), false)
        .file("d/after", b"still in step")
        .bytes();
    let sb = Sandbox::new();
    let report = unpack(
        &gzip(&blob)[..],
        &sb.dest,
        &[],
        &Limits::default(),
        &NO_CANCEL,
    )
    .unwrap();
    let d = sb.dest.join("d");
    assert_sparse(&d.join("gnu"), TIB, &tib);
    assert_sparse(&d.join("gnu-extended"), 64 << 20, &many);
    assert_sparse(&d.join("pax-1.0"), TIB, &tib);
    assert_sparse(&d.join("pax-0.1"), 64 << 20, &many);
    assert_sparse(&d.join("pax-0.0"), TIB, &tib);
    assert_eq!(std::fs::read(d.join("after")).unwrap(), b"still in step");
    // No placeholder names: the real ones came from the records.
    assert_eq!(
        names(&d),
        [
            "after",
            "gnu",
            "gnu-extended",
            "pax-0.0",
            "pax-0.1",
            "pax-1.0"
        ]
    );
    let md = std::fs::metadata(d.join("gnu")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.mtime()),
        (0o640, super::MTIME as i64)
    );
    // The report counts data, not holes.
    let tib_data: u64 = tib.iter().map(|(_, d)| d.len() as u64).sum();
    let many_data: u64 = many.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(report.size, 3 * tib_data + 2 * many_data + 13);
    assert_eq!(report.diff_id, Digest::of(&blob));
    sb.assert_untouched(&[]);
}

#[test]
fn a_sparse_file_replaces_an_earlier_entry_and_never_follows_a_symlink() {
    let sb = Sandbox::new();
    let blob = Tar::new()
        .symlink("s", "../sentinel/keep")
        .gnu_sparse("s", 8192, &[(4096, &[7u8; 512][..])])
        .file("p", b"old")
        .pax_sparse("p", 8192, &[(0, &[8u8; 100][..])])
        .bytes();
    unpack(&blob[..], &sb.dest, &[], &Limits::default(), &NO_CANCEL).unwrap();
    assert_sparse(&sb.dest.join("s"), 8192, &[(4096, vec![7; 512])]);
    assert_sparse(&sb.dest.join("p"), 8192, &[(0, vec![8; 100])]);
    sb.assert_untouched(&[]);
}

#[test]
fn bad_sparse_maps_are_refused() {
    let overlap = Tar::new()
        .pax_sparse("x", 4096, &[(0, &[1u8; 512][..]), (100, &[2u8; 10][..])])
        .bytes();
    let past_end = Tar::new()
        .pax_sparse_0x("x", 100, &[(0, &[1u8; 200][..])], true)
        .bytes();
    let records_on_a_dir = {
        let mut t = Tar::new();
        t.pax(&[("GNU.sparse.map", b"0,1"), ("GNU.sparse.size", b"1")]);
        t.dir("x/").bytes()
    };
    let escape = Tar::new()
        .pax_sparse("../../x", 4096, &[(0, &[1u8; 10][..])])
        .bytes();
    for (name, blob) in [
        ("overlap", overlap),
        ("past the end", past_end),
        ("records on a directory", records_on_a_dir),
    ] {
        let sb = Sandbox::new();
        let err = unpack(&blob[..], &sb.dest, &[], &Limits::default(), &NO_CANCEL).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{name}: {err:?}");
        assert!(err.to_string().contains("entry `x`"), "{name}: {err}");
        sb.assert_untouched(&[]);
    }
    // The real name is checked like any other.
    let sb = Sandbox::new();
    let err = unpack(&escape[..], &sb.dest, &[], &Limits::default(), &NO_CANCEL).unwrap_err();
    assert!(matches!(err, Error::Unsafe { .. }), "{err:?}");
    sb.assert_untouched(&[]);
}

#[test]
fn an_export_keeps_the_holes() {
    let tib = tib_segments();
    let tar = Tar::new().pax_sparse("big", TIB, &borrowed(&tib)).bytes();
    let (tmp, store) = store();
    let diff = Digest::of(&tar);
    store_unpack(&store, &diff, &gzip(&tar), &Limits::default()).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = std::fs::File::open(&out).unwrap();
    let top = Digest::chain(None, &diff);
    store
        .export(&top, std::os::fd::AsFd::as_fd(&dest), None, &NO_CANCEL)
        .unwrap();
    assert_sparse(&out.join("big"), TIB, &tib);
}

fn store() -> (tempfile::TempDir, LayerStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(&tmp.path().join("layers")).unwrap();
    (tmp, store)
}

/// Unpack `blob` (of diff id `diff`) into `store` as a base layer.
fn store_unpack(
    store: &LayerStore,
    diff: &Digest,
    blob: &[u8],
    limits: &Limits,
) -> crate::layers::Result<()> {
    let chain = Digest::chain(None, diff);
    store
        .unpack(&chain, None, diff, blob, limits, &NO_CANCEL)
        .map(drop)
}

fn assert_nothing_kept(tmp: &tempfile::TempDir) {
    for dir in ["layers/tmp", "layers/sha256"] {
        assert!(
            names(&tmp.path().join(dir)).is_empty(),
            "{dir} is not empty"
        );
    }
}

/// A layer of one file of `size` zeros, compressed by `encoder` as it is
/// written (the tar itself is never held).
fn zeros_layer<W: std::io::Write>(size: u64, encoder: W) -> W {
    let mut b = tar::Builder::new(encoder);
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(super::MTIME);
    h.set_cksum();
    b.append_data(
        &mut h,
        "zeros",
        std::io::Read::take(std::io::repeat(0), size),
    )
    .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn the_default_ratio_refuses_a_small_bomb_after_the_floor_and_keeps_nothing() {
    // 1 GiB of zeros in one file: about 1 MiB of gzip, far less zstd.
    let size = 1 << 30;
    let gz = zeros_layer(
        size,
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
    )
    .finish()
    .unwrap();
    let zst = zeros_layer(size, ::zstd::Encoder::new(Vec::new(), 3).unwrap())
        .finish()
        .unwrap();
    // Refused before the diff id is known: any will do.
    let diff = Digest::of(b"never reached");
    for (name, blob) in [("gzip", gz), ("zstd", zst)] {
        let (tmp, store) = store();
        let err = store_unpack(&store, &diff, &blob, &Limits::default()).unwrap_err();
        let Error::Bomb {
            expanded,
            compressed,
            ratio,
        } = &err
        else {
            panic!("{name}: {err:?}");
        };
        assert_eq!(*ratio, 100);
        assert!(*compressed <= blob.len() as u64, "{name}");
        // Refused right past the floor (256 MiB), one read later at most.
        let floor = Limits::default().ratio_floor;
        assert!(
            *expanded > floor && *expanded < floor + (4 << 20),
            "{name}: refused after {expanded} bytes"
        );
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        assert_nothing_kept(&tmp);
    }
}

#[test]
fn real_layers_pass_the_ratio_guard() {
    // Text that compresses about as well as source code, past a small floor.
    let text = super::text(8 << 20);
    let tar = Tar::new().file("src.rs", &text).bytes();
    let blob = gzip(&tar);
    let limits = Limits {
        ratio_floor: 1 << 20,
        ..Limits::default()
    };
    let ratio = tar.len() as f64 / blob.len() as f64;
    assert!(
        ratio > 2.0 && ratio < 20.0,
        "the sample expands {ratio:.1}x"
    );
    let (_tmp, store) = store();
    store_unpack(&store, &Digest::of(&tar), &blob, &limits).unwrap();
}

/// A tmpfs of `size` mounted `nosuid,nodev` on a temp dir, unmounted on
/// drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        use rustix::mount::{mount, MountFlags};
        let dir = tempfile::tempdir().unwrap();
        mount(
            "berth-test",
            dir.path(),
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(
                std::ffi::CString::new(format!("size={size},mode=0700"))
                    .unwrap()
                    .as_c_str(),
            ),
        )
        .unwrap();
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.dir.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn a_full_disk_stops_unpacking_before_the_reserve_and_keeps_nothing() {
    need_root!();
    let fs = Tmpfs::new("32m");
    let store = LayerStore::open(&fs.path().join("layers")).unwrap();
    let limits = Limits {
        min_free_bytes: 8 << 20,
        min_free_percent: 0,
        ..Limits::default()
    };
    // 48 MiB that do not compress: more than the 24 MiB above the reserve.
    let noise = super::noise(48 << 20);
    let tar = Tar::new().file("noise", &noise).bytes();
    let err = store_unpack(&store, &Digest::of(&tar), &tar, &limits).unwrap_err();
    let Error::NoSpace {
        doing,
        path,
        available,
        keep,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(path, &fs.path().join("layers"));
    assert_eq!(*keep, 8 << 20);
    // Below the reserve, by at most what was in flight: never out of space.
    assert!(*available < *keep, "{available}");
    assert!(doing.contains("stopped after"), "{doing}");
    let msg = err.to_string();
    for part in [
        "not enough free disk space",
        "berth image prune",
        "limits.min_free_disk",
    ] {
        assert!(msg.contains(part), "{part:?} missing: {msg}");
    }
    assert!(names(&fs.path().join("layers/tmp")).is_empty());
    assert!(names(&fs.path().join("layers/sha256")).is_empty());

    // Below the reserve from the start: refused before a byte is written.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 26 << 20]).unwrap();
    let small = Tar::new().file("f", b"x").bytes();
    let err = store_unpack(&store, &Digest::of(&small), &small, &limits).unwrap_err();
    assert!(
        matches!(&err, Error::NoSpace { doing, .. } if doing == "to unpack a layer"),
        "{err:?}"
    );
    let err = store
        .check_free_space(&limits, 1, || "to download 1 B".into())
        .unwrap_err();
    assert!(err.to_string().contains("to download 1 B"), "{err}");
    std::fs::remove_file(&filler).unwrap();
    store
        .check_free_space(&limits, 1 << 20, || unreachable!())
        .unwrap();
}
