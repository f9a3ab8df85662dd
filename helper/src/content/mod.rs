//! The content-addressed blob store.

mod digest;

pub use digest::{Digest, DigestError};
