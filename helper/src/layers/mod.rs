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

mod export;
mod lowers;
mod path;
mod safe;
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

/// Bounds on what one layer may contain, so a hostile or broken image cannot
/// fill the disk or the inode table ("decompression bombs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed tar bytes per layer.
    pub max_bytes: u64,
    /// Tar entries per layer.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// Which of the [`Limits`] was exceeded.
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
