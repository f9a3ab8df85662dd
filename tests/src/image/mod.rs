//! Test images built in memory and pushed through the distribution API.
//!
//! - [`Layer`] — entries (files, dirs, symlinks, hard links, whiteouts,
//!   opaque markers, raw unsafe headers) or a host dir; gzip, zstd or none.
//! - [`ImageBuilder`] → [`Image`] — config (Env, Cmd, Entrypoint, WorkingDir,
//!   User, Labels) and an OCI, OCI-without-mediaType or Docker schema2
//!   manifest; every digest exposed for assertions.
//! - [`IndexBuilder`] → [`Index`] — an OCI index or Docker manifest list.
//! - [`tree`] — the merged tree an image should unpack to, and checks of a
//!   directory against it.
//! - [`catalog`] — the standard images every integration test can use.
//! - [`demo`] — the images of Berth's demo app catalog (`berth-seed` pushes them).

pub mod build;
pub mod catalog;
pub mod demo;
pub mod layer;
pub mod tree;

pub use build::{Blob, Image, ImageBuilder, Index, IndexBuilder, IndexFormat, ManifestFormat};
pub use catalog::{
    bench_image, build_test_images, busybox_binary, busybox_rootfs, push_catalog, push_test_images,
    BenchLayer, TestImages, UnsafeImage,
};
pub use demo::{demo_images, push_demo_images, DemoImage, DEMO_PORT};
pub use layer::{BuiltLayer, Compression, Entry, Layer, RawEntry, RawKind};
pub use tree::{assert_tree, expected_tree, scan_tree, tree_problems, Expected, Kind, Tree};
