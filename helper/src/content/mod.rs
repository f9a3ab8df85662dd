//! The content-addressed blob store.
//!
//! Every manifest, config and compressed layer Berth downloads is kept here
//! under its digest, once, whatever repository or registry it came from.
//!
//! ```text
//! <root>/content/
//!   blobs/sha256/<hex>     complete, verified blobs (read-only, 0444)
//!   ingest/<hex>.partial   a blob being written, named by the digest it must end up with
//! ```
//!
//! Lifecycle of a blob, after containerd's content store: a writer is opened
//! with [`ContentStore::ingest`] for the digest it expects. Bytes are appended
//! and hashed as they arrive; [`Ingest::commit`] syncs the file, checks the
//! digest (and size, when known) and renames it into `blobs/`. Only then is it
//! readable by digest, so nothing is ever visible under a digest it does not
//! have. A second commit of a digest that already exists is not an error.
//!
//! Crash behaviour: a `kill -9` leaves at most a partial file in `ingest/`.
//! The next ingest of the same digest re-hashes what is there and continues
//! from its end (the registry client asks for the rest with a Range request),
//! so an interrupted pull resumes instead of starting over. An ingest is
//! locked with `flock`, so two pulls of the same blob never write one file.
//! Cancelling a pull aborts its ingests, which removes their partial files.

mod digest;
mod store;

pub use digest::{Digest, DigestError};
pub use store::{ContentStore, Ingest};

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob {0} is not in the store; pull the image again")]
    NotFound(Digest),
    #[error(
        "downloaded content does not match its digest: expected {expected}, got {actual} \
         ({size} bytes); the registry sent corrupt data or the image was changed during the \
         pull — try again"
    )]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error(
        "blob {digest} is truncated or too long: expected {expected} bytes, got {actual}; \
         try the pull again"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
