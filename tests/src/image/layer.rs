//! Layers: a list of entries (or a host directory) turned into a compressed
//! tar blob with its digest and diff id.
//!
//! Entries are written in the order given, with a fixed mtime and no user
//! names, so the same layer always makes the same bytes (and digests).
//! Normal entries go through the `tar` crate, which refuses `..` and absolute
//! names; [`RawEntry`] writes the header's name bytes directly for the unsafe
//! test images that must contain exactly those.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tar::{EntryType, Header};

/// The mtime of every entry the kit writes.
pub const ENTRY_MTIME: u64 = 1_700_000_000;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip, default level.
    Gzip,
    /// gzip, fastest level (big layers).
    GzipFast,
    Zstd,
    /// A plain tar.
    None,
}

/// One thing in a layer. Paths are image paths (`/etc/passwd` or
/// `etc/passwd`, the leading slash is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        path: String,
        content: Arc<Vec<u8>>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A regular file of `size` zero bytes, streamed (for bombs).
    Zeros {
        path: String,
        size: u64,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A hard link to `target`, an earlier path in the image.
    Hardlink {
        path: String,
        target: String,
    },
    /// Deletes `path` of lower layers: writes `<dir>/.wh.<name>`.
    Whiteout {
        path: String,
    },
    /// Hides everything lower layers put in `dir`: writes
    /// `<dir>/.wh..wh..opq`.
    Opaque {
        dir: String,
    },
    /// Header bytes exactly as given.
    Raw(RawEntry),
}

/// An entry whose name (and link name) bytes go into the tar header as they
/// are: absolute paths, `..`, `.wh..` and the like. Names must fit in 100
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub kind: RawKind,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawKind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    CharDevice { major: u32, minor: u32 },
}

impl RawEntry {
    pub fn file(name: &str, content: &[u8]) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: RawKind::File(content.to_vec()),
            mode: 0o644,
        }
    }
    pub fn dir(name: &str) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: RawKind::Dir,
            mode: 0o755,
        }
    }
    pub fn symlink(name: &str, target: &str) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: RawKind::Symlink(target.as_bytes().to_vec()),
            mode: 0o777,
        }
    }
    pub fn hardlink(name: &str, target: &str) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: RawKind::Hardlink(target.as_bytes().to_vec()),
            mode: 0o644,
        }
    }
    pub fn char_device(name: &str, major: u32, minor: u32) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: RawKind::CharDevice { major, minor },
            mode: 0o600,
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    Entries(Vec<Entry>),
    HostDir { dir: PathBuf, prefix: String },
}

/// A layer to build: entries or a host directory, and a compression.
#[derive(Debug, Clone)]
pub struct Layer {
    source: Source,
    compression: Compression,
    media_type: Option<String>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

/// `/a/b/` → `a/b`.
pub(crate) fn clean(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl Layer {
    /// An empty gzip layer.
    pub fn new() -> Self {
        Self {
            source: Source::Entries(Vec::new()),
            compression: Compression::Gzip,
            media_type: None,
        }
    }

    /// The tree under host directory `dir`, placed at image path `prefix`
    /// (parents of `prefix` are added as 0755 dirs). Regular files, dirs and
    /// symlinks are kept with their modes and owners; files with several
    /// links become hard links; sockets, fifos and devices are skipped.
    pub fn from_dir(dir: impl AsRef<Path>, prefix: &str) -> Self {
        Self {
            source: Source::HostDir {
                dir: dir.as_ref().to_path_buf(),
                prefix: clean(prefix),
            },
            compression: Compression::Gzip,
            media_type: None,
        }
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Overrides the media type the manifest gives this layer.
    pub fn media_type(mut self, media_type: &str) -> Self {
        self.media_type = Some(media_type.to_string());
        self
    }

    /// Appends any entry. Panics on a `from_dir` layer.
    pub fn entry(mut self, entry: Entry) -> Self {
        match &mut self.source {
            Source::Entries(entries) => entries.push(entry),
            Source::HostDir { .. } => panic!("cannot add entries to a Layer::from_dir"),
        }
        self
    }

    /// A 0644 root-owned file.
    pub fn file(self, path: &str, content: impl AsRef<[u8]>) -> Self {
        self.file_with(path, content, 0o644, 0, 0)
    }

    /// A 0755 root-owned file.
    pub fn executable(self, path: &str, content: impl AsRef<[u8]>) -> Self {
        self.file_with(path, content, 0o755, 0, 0)
    }

    pub fn file_with(
        self,
        path: &str,
        content: impl AsRef<[u8]>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Self {
        self.entry(Entry::File {
            path: clean(path),
            content: Arc::new(content.as_ref().to_vec()),
            mode,
            uid,
            gid,
        })
    }

    pub fn zeros(self, path: &str, size: u64) -> Self {
        self.entry(Entry::Zeros {
            path: clean(path),
            size,
            mode: 0o644,
        })
    }

    /// A 0755 root-owned directory.
    pub fn dir(self, path: &str) -> Self {
        self.dir_with(path, 0o755, 0, 0)
    }

    pub fn dir_with(self, path: &str, mode: u32, uid: u32, gid: u32) -> Self {
        self.entry(Entry::Dir {
            path: clean(path),
            mode,
            uid,
            gid,
        })
    }

    /// A symlink; `target` is kept exactly (absolute or relative).
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.entry(Entry::Symlink {
            path: clean(path),
            target: target.to_string(),
        })
    }

    /// A hard link to the image path `target`.
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.entry(Entry::Hardlink {
            path: clean(path),
            target: clean(target),
        })
    }

    pub fn whiteout(self, path: &str) -> Self {
        self.entry(Entry::Whiteout { path: clean(path) })
    }

    pub fn opaque(self, dir: &str) -> Self {
        self.entry(Entry::Opaque { dir: clean(dir) })
    }

    pub fn raw(self, raw: RawEntry) -> Self {
        self.entry(Entry::Raw(raw))
    }

    /// The entries (None for a `from_dir` layer).
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.source {
            Source::Entries(e) => Some(e),
            Source::HostDir { .. } => None,
        }
    }

    /// Writes the tar, compresses it and digests both.
    pub fn build(&self) -> Result<BuiltLayer> {
        let mut writer = HashingWriter::new(Compressor::new(self.compression)?);
        let entry_count = {
            let mut builder = tar::Builder::new(&mut writer);
            builder.mode(tar::HeaderMode::Deterministic);
            let count = match &self.source {
                Source::Entries(entries) => {
                    for entry in entries {
                        write_entry(&mut builder, entry)?;
                    }
                    entries.len() as u64
                }
                Source::HostDir { dir, prefix } => write_host_dir(&mut builder, dir, prefix)
                    .with_context(|| format!("tarring {}", dir.display()))?,
            };
            builder.finish().context("finishing a layer tar")?;
            count
        };
        let uncompressed_size = writer.count;
        let diff_id = format!("sha256:{}", hex::encode(writer.hasher.finalize_reset()));
        let blob = writer.inner.finish()?;
        let digest = crate::sha256_digest(&blob);
        Ok(BuiltLayer {
            compression: self.compression,
            media_type_override: self.media_type.clone(),
            digest,
            diff_id,
            uncompressed_size,
            entry_count,
            blob: Arc::new(blob),
            entries: self.entries().map(|e| Arc::new(e.to_vec())),
        })
    }
}

/// A layer blob with its digests.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    pub compression: Compression,
    pub media_type_override: Option<String>,
    /// sha256 of the compressed blob.
    pub digest: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    pub uncompressed_size: u64,
    /// Tar entries written (including added parent dirs of `from_dir`).
    pub entry_count: u64,
    pub blob: Arc<Vec<u8>>,
    /// The entries it was made from (None for `from_dir`).
    pub entries: Option<Arc<Vec<Entry>>>,
}

impl BuiltLayer {
    /// Compressed size.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }

    /// The media type for a manifest in `docker` (schema2) or OCI form.
    pub fn media_type(&self, docker: bool) -> Result<String> {
        if let Some(mt) = &self.media_type_override {
            return Ok(mt.clone());
        }
        Ok(match (self.compression, docker) {
            (Compression::Gzip | Compression::GzipFast, false) => {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            }
            (Compression::Zstd, false) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Compression::None, false) => "application/vnd.oci.image.layer.v1.tar",
            (Compression::Gzip | Compression::GzipFast, true) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (c, true) => bail!(
                "Docker schema2 has no layer media type for {c:?}; use gzip or set Layer::media_type"
            ),
        }
        .to_string())
    }
}

fn header(kind: EntryType, mode: u32, uid: u32, gid: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_size(size);
    h.set_mtime(ENTRY_MTIME);
    h
}

fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn write_entry<W: Write>(b: &mut tar::Builder<W>, entry: &Entry) -> Result<()> {
    match entry {
        Entry::File {
            path,
            content,
            mode,
            uid,
            gid,
        } => {
            let mut h = header(EntryType::Regular, *mode, *uid, *gid, content.len() as u64);
            b.append_data(&mut h, path, content.as_slice())
        }
        Entry::Zeros { path, size, mode } => {
            let mut h = header(EntryType::Regular, *mode, 0, 0, *size);
            b.append_data(&mut h, path, std::io::repeat(0).take(*size))
        }
        Entry::Dir {
            path,
            mode,
            uid,
            gid,
        } => {
            let mut h = header(EntryType::Directory, *mode, *uid, *gid, 0);
            b.append_data(&mut h, format!("{path}/"), std::io::empty())
        }
        Entry::Symlink { path, target } => {
            let mut h = header(EntryType::Symlink, 0o777, 0, 0, 0);
            b.append_link(&mut h, path, target)
        }
        Entry::Hardlink { path, target } => {
            let mut h = header(EntryType::Link, 0o644, 0, 0, 0);
            b.append_link(&mut h, path, target)
        }
        Entry::Whiteout { path } => {
            let (dir, name) = split_parent(path);
            let mut h = header(EntryType::Regular, 0o644, 0, 0, 0);
            b.append_data(&mut h, join(dir, &format!(".wh.{name}")), std::io::empty())
        }
        Entry::Opaque { dir } => {
            let mut h = header(EntryType::Regular, 0o644, 0, 0, 0);
            b.append_data(&mut h, join(dir, ".wh..wh..opq"), std::io::empty())
        }
        Entry::Raw(raw) => return write_raw(b, raw),
    }
    .with_context(|| format!("writing tar entry {entry:?}"))
}

fn write_raw<W: Write>(b: &mut tar::Builder<W>, raw: &RawEntry) -> Result<()> {
    let (kind, data): (EntryType, &[u8]) = match &raw.kind {
        RawKind::File(content) => (EntryType::Regular, content),
        RawKind::Dir => (EntryType::Directory, &[]),
        RawKind::Symlink(_) => (EntryType::Symlink, &[]),
        RawKind::Hardlink(_) => (EntryType::Link, &[]),
        RawKind::CharDevice { .. } => (EntryType::Char, &[]),
    };
    let mut h = header(kind, raw.mode, 0, 0, data.len() as u64);
    let name = &mut h.as_old_mut().name;
    if raw.name.len() > name.len() || raw.name.contains(&0) {
        bail!(
            "raw tar name {:?} is over 100 bytes or has a NUL",
            String::from_utf8_lossy(&raw.name)
        );
    }
    name[..raw.name.len()].copy_from_slice(&raw.name);
    match &raw.kind {
        RawKind::Symlink(target) | RawKind::Hardlink(target) => h
            .set_link_name_literal(target)
            .context("raw link name over 100 bytes")?,
        RawKind::CharDevice { major, minor } => {
            h.set_device_major(*major)?;
            h.set_device_minor(*minor)?;
        }
        _ => {}
    }
    h.set_cksum();
    b.append(&h, data).context("writing a raw tar entry")
}

fn write_host_dir<W: Write>(b: &mut tar::Builder<W>, dir: &Path, prefix: &str) -> Result<u64> {
    let mut count = 0;
    let mut parent = String::new();
    if !prefix.is_empty() {
        let parts: Vec<&str> = prefix.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent = join(&parent, part);
            write_entry(
                b,
                &Entry::Dir {
                    path: parent.clone(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                },
            )?;
            count += 1;
        }
    }
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk_host(b, dir, prefix, &mut links, &mut count)?;
    Ok(count)
}

fn walk_host<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    links: &mut HashMap<(u64, u64), String>,
    count: &mut u64,
) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let ft = meta.file_type();
    let perm = meta.mode() & 0o7777;
    if ft.is_dir() {
        if !name.is_empty() {
            let mut h = header(EntryType::Directory, perm, meta.uid(), meta.gid(), 0);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())?;
            *count += 1;
        }
        let mut children: BTreeSet<std::ffi::OsString> = BTreeSet::new();
        for child in
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
        {
            children.insert(child?.file_name());
        }
        for child in children {
            let child_name = join(name, &child.to_string_lossy());
            walk_host(b, &path.join(&child), &child_name, links, count)?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        let mut h = header(EntryType::Symlink, 0o777, meta.uid(), meta.gid(), 0);
        b.append_link(&mut h, name, &target)?;
        *count += 1;
    } else if ft.is_file() {
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                let mut h = header(EntryType::Link, perm, meta.uid(), meta.gid(), 0);
                b.append_link(&mut h, name, first)?;
                *count += 1;
                return Ok(());
            }
            links.insert(key, name.to_string());
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut h = header(EntryType::Regular, perm, meta.uid(), meta.gid(), meta.len());
        b.append_data(&mut h, name, file.take(meta.len()))
            .with_context(|| format!("adding {}", path.display()))?;
        *count += 1;
    }
    Ok(())
}

/// Counts and hashes what passes through (the uncompressed tar).
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum Compressor {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    None(Vec<u8>),
}

impl Compressor {
    fn new(c: Compression) -> Result<Self> {
        Ok(match c {
            Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Compression::GzipFast => Compressor::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
            Compression::Zstd => {
                Compressor::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?)
            }
            Compression::None => Compressor::None(Vec::new()),
        })
    }

    fn finish(self) -> Result<Vec<u8>> {
        Ok(match self {
            Compressor::Gzip(e) => e.finish()?,
            Compressor::Zstd(e) => e.finish()?,
            Compressor::None(v) => v,
        })
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::None(v) => v.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::None(v) => v.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(layer: &BuiltLayer) -> Vec<(String, EntryType, Option<String>)> {
        let data: Vec<u8> = match layer.compression {
            Compression::None => layer.blob.to_vec(),
            Compression::Zstd => zstd::decode_all(layer.blob.as_slice()).unwrap(),
            _ => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(layer.blob.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
        };
        assert_eq!(crate::sha256_digest(&data), layer.diff_id);
        let mut archive = tar::Archive::new(data.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    h.entry_type(),
                    h.link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn writes_whiteouts_opaque_and_raw_names() {
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let layer = Layer::new()
                .compression(compression)
                .dir("/a")
                .whiteout("/a/gone")
                .opaque("/a")
                .symlink("/a/up", "../../../etc")
                .raw(RawEntry::file("/etc/abs", b"x"))
                .raw(RawEntry::file("../../dotdot", b"x"))
                .raw(RawEntry::hardlink("h", "/etc/passwd"))
                .build()
                .unwrap();
            let n = names(&layer);
            let just: Vec<&str> = n.iter().map(|(p, _, _)| p.as_str()).collect();
            assert_eq!(
                just,
                [
                    "a/",
                    "a/.wh.gone",
                    "a/.wh..wh..opq",
                    "a/up",
                    "/etc/abs",
                    "../../dotdot",
                    "h"
                ]
            );
            assert_eq!(n[3].2.as_deref(), Some("../../../etc"));
            assert_eq!(n[6].2.as_deref(), Some("/etc/passwd"));
        }
    }

    #[test]
    fn same_entries_same_digest() {
        let make = || Layer::new().file("/x", "y").build().unwrap();
        assert_eq!(make().digest, make().digest);
    }
}
