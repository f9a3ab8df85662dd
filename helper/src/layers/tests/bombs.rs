//! Decompression bombs (issue 11): the expansion-ratio guard, the
//! entry-count default and the free-space reserve, through the store.

use std::path::PathBuf;

use super::{gzip, names, need_root, Tar, NO_CANCEL};
use crate::content::Digest;
use crate::layers::{Error, LayerStore, Limits};

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

#[test]
fn the_entry_default_is_well_below_a_million() {
    // A layer of 300,001 files is refused by the integration tests
    // (`tests/tests/sec_layers.rs`); unpacking it here would take half a
    // minute of a debug build.
    assert_eq!(Limits::default().max_entries, 300_000);
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
}
