//! Tests of the layer module as a whole: unpacking real tars built in
//! memory, the store's lifecycle and exports. Pure-logic tests live next to
//! their code.
//!
//! Tests that need root (device nodes other than whiteouts, `trusted.*`
//! xattrs, chown) return early with a note when not run as root.

mod bombs;
mod export;
mod store;
mod unpack;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tar::{EntryType, Header};

pub(super) static NO_CANCEL: AtomicBool = AtomicBool::new(false);

pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skip the rest of a test when not root.
macro_rules! need_root {
    () => {
        if !super::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}
pub(super) use need_root;

/// A layer tar built entry by entry. Names are written into the header
/// bytes as given, so unsafe names (`..`, absolute) can be built too.
pub(super) struct Tar {
    b: tar::Builder<Vec<u8>>,
}

pub(super) const MTIME: u64 = 1_600_000_000;

impl Tar {
    pub(super) fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn raw(
        &mut self,
        kind: EntryType,
        path: &str,
        link: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Tar {
        let mut h = Header::new_ustar();
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub(super) fn dir(&mut self, path: &str) -> &mut Tar {
        self.raw(EntryType::Directory, path, "", b"", 0o755, 0, 0)
    }

    pub(super) fn dir_mode(&mut self, path: &str, mode: u32) -> &mut Tar {
        self.raw(EntryType::Directory, path, "", b"", mode, 0, 0)
    }

    pub(super) fn file(&mut self, path: &str, data: &[u8]) -> &mut Tar {
        self.raw(EntryType::Regular, path, "", data, 0o644, 0, 0)
    }

    pub(super) fn file_full(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Tar {
        self.raw(EntryType::Regular, path, "", data, mode, uid, gid)
    }

    pub(super) fn symlink(&mut self, path: &str, target: &str) -> &mut Tar {
        self.raw(EntryType::Symlink, path, target, b"", 0o777, 0, 0)
    }

    pub(super) fn hardlink(&mut self, path: &str, target: &str) -> &mut Tar {
        self.raw(EntryType::Link, path, target, b"", 0o644, 0, 0)
    }

    pub(super) fn node(&mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> &mut Tar {
        let mut h = Header::new_ustar();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o620);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &b""[..]).unwrap();
        self
    }

    /// PAX records for the next entry.
    pub(super) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An old GNU sparse entry (type `S`) of `real_size` bytes holding
    /// `segments` (offset, data), the way GNU tar writes it: four segments
    /// in the header, the rest in extension headers of 21. Every segment
    /// but the last must be a multiple of 512 bytes long.
    pub(super) fn gnu_sparse(
        &mut self,
        path: &str,
        real_size: u64,
        segments: &[(u64, &[u8])],
    ) -> &mut Tar {
        let data: Vec<u8> = segments
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        let segments = until_end(segments, real_size);
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(0o640);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        let (head, rest) = segments.split_at(segments.len().min(4));
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(real_size);
        for (slot, (offset, d)) in gnu.sparse.iter_mut().zip(head) {
            slot.set_offset(*offset);
            slot.set_length(d.len() as u64);
        }
        gnu.set_is_extended(!rest.is_empty());
        h.set_cksum();
        let out = self.b.get_mut();
        out.extend_from_slice(h.as_bytes());
        let chunks: Vec<_> = rest.chunks(21).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut ext = tar::GnuExtSparseHeader::new();
            for (slot, (offset, d)) in ext.sparse.iter_mut().zip(chunk.iter()) {
                slot.set_offset(*offset);
                slot.set_length(d.len() as u64);
            }
            ext.set_is_extended(i + 1 < chunks.len());
            out.extend_from_slice(ext.as_bytes());
        }
        out.extend_from_slice(&data);
        out.resize(out.len().next_multiple_of(512), 0);
        self
    }

    /// A PAX sparse file in GNU tar's format 1.0: the real name in a
    /// record, a placeholder in the header, the map opening the data.
    pub(super) fn pax_sparse(
        &mut self,
        path: &str,
        real_size: u64,
        segments: &[(u64, &[u8])],
    ) -> &mut Tar {
        let segments = until_end(segments, real_size);
        let size = real_size.to_string();
        self.pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", path.as_bytes()),
            ("GNU.sparse.realsize", size.as_bytes()),
        ]);
        let mut data = format!("{}\n", segments.len());
        for (offset, d) in &segments {
            data.push_str(&format!("{offset}\n{}\n", d.len()));
        }
        let mut data = data.into_bytes();
        data.resize(data.len().next_multiple_of(512), 0);
        for (_, d) in &segments {
            data.extend_from_slice(d);
        }
        let name = format!("GNUSparseFile.0/{}", path.rsplit('/').next().unwrap());
        self.raw(EntryType::Regular, &name, "", &data, 0o640, 0, 0)
    }

    /// A PAX sparse file in GNU tar's format 0.1 (`map` set) or 0.0 (one
    /// offset and numbytes record per segment); the name in the header.
    pub(super) fn pax_sparse_0x(
        &mut self,
        path: &str,
        real_size: u64,
        segments: &[(u64, &[u8])],
        with_map: bool,
    ) -> &mut Tar {
        let segments = until_end(segments, real_size);
        let numbers: Vec<String> = segments
            .iter()
            .flat_map(|(o, d)| [o.to_string(), d.len().to_string()])
            .collect();
        let size = real_size.to_string();
        let count = segments.len().to_string();
        let mut records: Vec<(&str, &[u8])> = vec![
            ("GNU.sparse.size", size.as_bytes()),
            ("GNU.sparse.numblocks", count.as_bytes()),
        ];
        let map = numbers.join(",");
        if with_map {
            records.insert(0, ("GNU.sparse.major", b"0"));
            records.insert(1, ("GNU.sparse.minor", b"1"));
            records.push(("GNU.sparse.map", map.as_bytes()));
        } else {
            for pair in numbers.chunks(2) {
                records.push(("GNU.sparse.offset", pair[0].as_bytes()));
                records.push(("GNU.sparse.numbytes", pair[1].as_bytes()));
            }
        }
        self.pax(&records);
        let data: Vec<u8> = segments
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        self.raw(EntryType::Regular, path, "", &data, 0o640, 0, 0)
    }

    pub(super) fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A sparse map as GNU tar writes it: ending at the real size, with an
/// empty segment after a trailing hole.
fn until_end<'a>(segments: &[(u64, &'a [u8])], real_size: u64) -> Vec<(u64, &'a [u8])> {
    let mut segments = segments.to_vec();
    if segments
        .last()
        .is_none_or(|(o, d)| o + d.len() as u64 != real_size)
    {
        segments.push((real_size, &[]));
    }
    segments
}

/// `len` bytes that do not compress (xorshift).
pub(super) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `len` bytes of words drawn at random: text that gzip compresses about as
/// well as source code.
pub(super) fn text(len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "fn ", "let ", "self", ".len()", " = ", "if ", "else ", "{\n", "}\n", "return ", "u64",
        "Vec<u8>", "match ", "=> ", "Ok(", "Err(",
    ];
    let mut out = Vec::with_capacity(len + 8);
    for b in noise(len) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[usize::from(b % 16)].as_bytes());
    }
    out.truncate(len);
    out
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(super) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// A temp dir holding `dest` (empty) and `sentinel/keep`, to check that a
/// refused layer touched nothing but `dest`.
pub(super) struct Sandbox {
    pub(super) tmp: tempfile::TempDir,
    pub(super) dest: PathBuf,
    pub(super) sentinel: PathBuf,
}

impl Sandbox {
    pub(super) fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let sentinel = tmp.path().join("sentinel");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&sentinel).unwrap();
        std::fs::write(sentinel.join("keep"), b"x").unwrap();
        Sandbox {
            tmp,
            dest,
            sentinel,
        }
    }

    /// A directory next to `dest`, for lower layers.
    pub(super) fn extra(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::create_dir(&p).unwrap();
        p
    }

    /// Nothing outside `dest` (and the extras) changed.
    pub(super) fn assert_untouched(&self, extras: &[&str]) {
        let mut want: Vec<String> = ["dest", "sentinel"].iter().map(|s| s.to_string()).collect();
        want.extend(extras.iter().map(|s| s.to_string()));
        want.sort();
        assert_eq!(names(self.tmp.path()), want, "sandbox changed");
        assert_eq!(
            names(&self.sentinel),
            vec!["keep".to_string()],
            "sentinel changed"
        );
        assert_eq!(std::fs::read(self.sentinel.join("keep")).unwrap(), b"x");
    }
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A file system tree as text, one line per path: type, mode, and content
/// or target. Hardlinked files show the first path of their inode.
pub(super) fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<u64, String>,
) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let mode = md.mode() & 0o7777;
        let desc = if ft.is_dir() {
            walk(root, &p, out, inodes);
            format!("dir {mode:o}")
        } else if ft.is_symlink() {
            format!("link -> {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let content = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            match inodes.get(&md.ino()) {
                Some(first) if md.nlink() > 1 => format!("file {mode:o} {content:?} = {first}"),
                _ => {
                    inodes.insert(md.ino(), rel.clone());
                    format!("file {mode:o} {content:?}")
                }
            }
        } else if ft.is_char_device() {
            format!(
                "char {}:{}",
                rustix::fs::major(md.rdev()),
                rustix::fs::minor(md.rdev())
            )
        } else if ft.is_block_device() {
            format!(
                "block {}:{}",
                rustix::fs::major(md.rdev()),
                rustix::fs::minor(md.rdev())
            )
        } else if ft.is_fifo() {
            format!("fifo {mode:o}")
        } else {
            "other".to_string()
        };
        out.insert(rel, desc);
    }
}

/// `expected` as a tree map, from `path: description` lines.
pub(super) fn expect(lines: &[(&str, &str)]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|(p, d)| (p.to_string(), d.to_string()))
        .collect()
}

/// An xattr of `path` (not followed), if set.
pub(super) fn xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, key, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}
