//! Layers: image layer blobs unpacked into read-only directories, one per
//! chain id, shared by every image that uses the same stack of layers.
//!
//! # What a layer directory is
//!
//! A layer blob (gzip, zstd or plain tar, OCI image spec "layer format") is
//! unpacked into the form overlayfs reads as a lower directory, so `runtime`
//! can stack the `diff` directories of a chain as `lowerdir=` without any
//! further conversion:
//!
//! - a whiteout `dir/.wh.NAME` becomes a character device 0/0 at `dir/NAME`;
//! - an opaque marker `dir/.wh..wh..opq` becomes the xattr
//!   `trusted.overlay.opaque=y` on `dir`;
//! - everything else keeps its type, mode (set-id and sticky bits included),
//!   owner, mtime and xattrs. `trusted.overlay.*` xattrs coming from an image
//!   are dropped: an image must not forge overlay metadata.
//!
//! # On-disk layout
//!
//! ```text
//! <berth root>/layers/
//!     sha256/<chain id hex>/diff        the unpacked layer: an overlayfs lowerdir
//!     sha256/<chain id hex>/meta.json   LayerMeta: chain id, diff id, parent, sizes
//!     tmp/<unique>/                     work in progress, or a layer being deleted
//! ```
//!
//! # Lifecycle
//!
//! A layer has two states: *absent* and *complete*. [`LayerStore::unpack`]
//! builds it under `tmp/`, checks the diff id, writes `meta.json` and moves
//! the whole directory to `sha256/<hex>` with one `rename(2)`; when another
//! pull got there first, its copy wins and ours is dropped. So a chain id is
//! either absent or names a complete, verified layer, and two pulls of the
//! same layer never see each other's half work. [`LayerStore::remove`] does
//! the reverse: it first renames the layer into `tmp/` (it is now absent)
//! and only then deletes the files.
//!
//! Which layers are still needed is not this module's business: `images`
//! counts references and calls `remove`. Nothing here knows about mounts
//! either: [`LayerStore::path`] hands out the lower directories and
//! `runtime` alone mounts them.
//!
//! # Crashes
//!
//! Anything under `tmp/` belongs to work that was interrupted;
//! [`LayerStore::open`] deletes it at start-up (berthd is the only user of
//! its root). A `kill -9` at any moment therefore leaves each layer absent
//! or complete. Unpacked files are not fsynced one by one, which would make
//! pulls several times slower: the guarantee is for process crashes, not
//! for power loss.
//!
//! # Safety
//!
//! A layer is untrusted input written by root. Every file system call is
//! made relative to an open directory descriptor whose path was resolved
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, and touches only
//! the final component, so that even a logic error here cannot write
//! outside the layer directory (the symlink escapes of CVE-2018-15664 and
//! CVE-2019-14271 class). On top of that, entries that would escape in a
//! naive unpacker (absolute paths, `..`, writes through symlinks of this or
//! a lower layer, hardlinks out of the layer) refuse the whole layer with
//! [`Error::Unsafe`]. Nothing from the image is ever executed or loaded.
//!
//! # Decompression bombs
//!
//! A few KiB of gzip or zstd can expand to many GiB, and a tar entry can
//! claim any size. So [`Limits`] bound each layer (issue 11), checked as
//! the stream goes by, never once it is written:
//!
//! - **expansion ratio**: the decompressed tar stream may not pass
//!   `max(ratio_floor, max_ratio × compressed bytes read so far)`. It is
//!   measured on the tar stream, where every byte that can reach the disk
//!   passes, against the compressed bytes the decoder has pulled in (up to
//!   one read-ahead buffer more than it used, which only makes the guard
//!   more lenient). So a small bomb stops after about `ratio_floor` bytes;
//! - **sparse entries** (GNU `S` entries, PAX sparse formats 0.0, 0.1 and
//!   1.0) are written as holes: only their data segments are written, which
//!   are in the tar stream and so counted, while their holes are not. A
//!   sparse file of 1 TB with 4 KiB of data costs 4 KiB;
//! - **entries** and **decompressed bytes** per layer have a ceiling;
//! - **free disk space**: the layer store's file system must keep
//!   `max(min_free_bytes, min_free_percent %)` available (to non-root, so
//!   the root reserve is not counted), checked before a layer starts and
//!   again while it unpacks, each time after an eighth of the space that
//!   was left above the reserve has streamed by (at least every 1 MiB, at
//!   most every 64 MiB): one `fstatvfs` per many MiB, and the check gets
//!   closer as the disk fills. Pulls also check before downloading.
//!
//! A layer refused by any of these goes the way of every failed unpack: its
//! `tmp/` directory is deleted, so nothing of it stays. All checks run on
//! the decompressing thread with one comparison per read (see
//! `stream::Tally`), so unpacking speed does not change.

mod export;
mod lowers;
mod path;
mod safe;
mod space;
mod sparse;
mod store;
mod stream;
mod unpack;
mod whiteout;

#[cfg(test)]
mod tests;

use std::fmt;

pub use store::{LayerMeta, LayerStore};
pub use unpack::{unpack, UnpackReport};

/// Where limits are configured, for error messages.
const CONFIG_FILE: &str = "/etc/berth/config.toml";

/// Bounds on what one layer may contain and cost, so a hostile or broken
/// image cannot fill the disk or the inode table ("decompression bombs").
/// See the module docs for how each is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed tar bytes per layer.
    pub max_bytes: u64,
    /// Tar entries per layer.
    pub max_entries: u64,
    /// Decompressed tar bytes per compressed byte read, enforced once the
    /// layer is past [`Limits::ratio_floor`]; 0 turns the guard off.
    pub max_ratio: u64,
    /// Decompressed tar bytes any layer may reach whatever its ratio.
    pub ratio_floor: u64,
    /// Free space to leave on the layer store's file system, in bytes...
    pub min_free_bytes: u64,
    /// ...or in percent of its size, whichever is more; both 0 turn the
    /// free-space check off.
    pub min_free_percent: u64,
}

impl Default for Limits {
    /// Defaults that refuse bombs early without refusing real images:
    ///
    /// - `max_ratio` 100: real layers compress 2.6x (binaries, `/usr/bin`
    ///   of a Debian machine with gzip -6) to 6x (C headers, `/usr/include`),
    ///   so 100 leaves a margin of 16 over the most compressible real tree we
    ///   measured; runs of zeros expand about 1000x with gzip and far more
    ///   with zstd.
    /// - `ratio_floor` 256 MiB: a layer of zeros (a preallocated file, a
    ///   sparse file tarred as data) up to that size is fine whatever it
    ///   compresses to, and a bomb is refused after writing about that much
    ///   (plus `max_ratio` times what it really compressed).
    /// - `max_entries` 300,000: the whole `/usr` of a Debian desktop with
    ///   Rust, Node and WebKit tool chains is 139,000 entries, more than any
    ///   single layer we know of holds; 300,000 empty files are still a small
    ///   share of a laptop's inodes, where 2,000,000 were not.
    /// - `max_bytes` 16 GiB stays the ceiling for one layer (machine
    ///   learning images ship layers of several GiB); the free-space check
    ///   keeps even that from filling the disk.
    /// - keep 1 GiB of the file system free, on top of what the file
    ///   system reserves for root (5 % on ext4; berthd is root and could
    ///   use that reserve too, so it is not counted as free): a desktop stays
    ///   usable when a pull is refused, also on file systems without a root
    ///   reserve. No share of the disk by default: on a 1 TB disk 2 % would
    ///   refuse a 200 MB pull with 15 GB free, and on shared machines whose
    ///   available space is a quota far below the disk's size (build and
    ///   test machines) it would refuse every pull.
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 30,
            max_entries: 300_000,
            max_ratio: 100,
            ratio_floor: 256 << 20,
            min_free_bytes: 1 << 30,
            min_free_percent: 0,
        }
    }
}

/// Which of the [`Limits`] on a layer's content was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// [`Limits::max_bytes`].
    Bytes,
    /// [`Limits::max_entries`].
    Entries,
}

impl LimitKind {
    /// The configuration key that raises this limit.
    pub fn config_key(self) -> &'static str {
        match self {
            LimitKind::Bytes => "limits.max_layer_bytes",
            LimitKind::Entries => "limits.max_layer_entries",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Bytes => "decompressed bytes",
            LimitKind::Entries => "entries",
        })
    }
}

/// A byte count as a person reads it: `512 B`, `1.5 MiB`, `16.0 GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}

/// Why a layer could not be unpacked, looked up or exported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layer contains an entry that could write outside its directory.
    #[error(
        "refused layer entry `{entry}`: {why}. The whole layer was refused and nothing \
         outside the layer directory was touched; the image is broken or malicious, \
         ask its publisher for a fixed one"
    )]
    Unsafe { entry: String, why: String },

    /// The layer is larger than [`Limits`] allow.
    #[error(
        "the layer has more than {limit} {what}, the configured limit; if you trust \
         this image, raise `{key}` in {CONFIG_FILE}",
        key = .what.config_key()
    )]
    LimitExceeded { what: LimitKind, limit: u64 },

    /// The layer expands more than [`Limits::max_ratio`] times past
    /// [`Limits::ratio_floor`]: a decompression bomb, or a layer of zeros.
    #[error(
        "the layer was refused as a decompression bomb: {compressed} of it expanded to \
         more than {expanded}, over {ratio} times as much (real layers expand 2 to 10 \
         times); nothing of it was kept. If you trust this image, raise \
         `limits.max_layer_ratio` (0 turns the check off) or `limits.layer_ratio_floor` \
         in {CONFIG_FILE}",
        compressed = Size(*.compressed),
        expanded = Size(*.expanded)
    )]
    Bomb {
        compressed: u64,
        expanded: u64,
        ratio: u64,
    },

    /// The file system of the layer store is too full (below the free
    /// space [`Limits`] keep).
    #[error(
        "not enough free disk space {doing}: {} has {available} free and Berth keeps at \
         least {keep} free; nothing of it was kept. Free space (remove images you no \
         longer need with `berth rmi`, then `berth image prune`, or delete other files) \
         and try again; the reserve is `limits.min_free_disk` and \
         `limits.min_free_disk_percent` in {CONFIG_FILE}",
        .path.display(),
        available = Size(*.available),
        keep = Size(*.keep)
    )]
    NoSpace {
        /// What needed the space: "to unpack the layer (stopped after …)".
        doing: String,
        /// A directory on the file system that is full.
        path: std::path::PathBuf,
        available: u64,
        keep: u64,
    },

    /// The blob is not a valid gzip/zstd/tar stream, or not the layer it
    /// claims to be.
    #[error("the layer is corrupt: {0}")]
    Corrupt(String),

    /// The caller asked to stop.
    #[error("cancelled")]
    Cancelled,

    /// The layer is not in the store.
    #[error("layer {chain_id} is not in the layer store; pull the image again")]
    NotFound { chain_id: crate::content::Digest },

    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }

    pub(crate) fn unsafe_entry(entry: &[u8], why: impl Into<String>) -> Error {
        Error::Unsafe {
            entry: path::display(entry),
            why: why.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
