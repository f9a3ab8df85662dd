//! Berth's test kit: the real parts an integration test needs, started for
//! real and cleaned up always.
//!
//! - [`registry::Registry`] runs Debian's `docker-registry` (distribution 2.8)
//!   on 127.0.0.1 and a free port: anonymous, behind a bearer-token server the
//!   kit runs itself ([`registry::TokenServer`]), or behind htpasswd basic
//!   auth. [`registry::FaultProxy`] sits in front of one and cuts or fails
//!   responses on demand. [`registry::RegistryClient`] speaks the distribution
//!   API (with both kinds of auth) to push and to check.
//! - [`image`] builds OCI and Docker images in memory (layers from entry
//!   lists, unsafe raw entries, or a host directory), pushes them, and knows
//!   the merged tree each safe image should unpack to.
//!   [`image::push_test_images`] pushes the standard catalog.
//! - [`bus::PrivateBus`] runs a system-bus-like `dbus-daemon` with the
//!   project's own policy file.
//! - [`polkit::Polkit`] runs a real polkitd on such a bus with the
//!   project's action file and a test's rules, in a mount namespace of its
//!   own so the host's polkit configuration stays untouched.
//! - [`berthd::Berthd`] runs the real `berthd` against such a bus with temp
//!   dirs and a generated config; [`berthd::Cli`] runs the `berth` command.
//! - [`demo::DemoEnv`] is a bus and a berthd with the repository's demo
//!   catalog added, on the demo images in a registry of its own or a shared
//!   one ([`shared::demo_registry`]). It installs, crashes berthd and checks
//!   that nothing was left behind; when it drops it uninstalls, removes and
//!   sweeps what a test made.
//!
//! [`require`] decides what a test does when the machine lacks root or a
//! tool (skip loudly by hand, fail under `scripts/test.sh`), and
//! [`users::TestUser`] makes a throwaway system user for tests of who may
//! do what.
//!
//! Every process the kit starts is owned by a [`proc::ChildGuard`]: it is
//! stopped by its own pid when the guard drops (also when a test panics), and
//! is sent SIGKILL by the kernel if the test process dies first (parent-death
//! signal). Every directory is a [`fsutil::TestDir`], removed on drop even when
//! it holds read-only dirs, device nodes or leftover mounts. Set
//! `BERTH_TEST_KEEP=1` to keep the directories for a post-mortem.
//!
//! Fixtures shared by all tests of one test binary (a registry with the
//! standard images, one with the demo images) live in [`shared`]; they are
//! shut down when the test process exits.

pub mod berthd;
pub mod bus;
pub mod demo;
pub mod fsutil;
pub mod http;
pub mod image;
pub mod polkit;
pub mod proc;
pub mod registry;
pub mod require;
pub mod shared;
pub mod snapshot;
pub mod users;
pub mod webdriver;

pub use berthd::{Berthd, BerthdConfig, Cli, CliOutput};
pub use bus::PrivateBus;
pub use demo::DemoEnv;
pub use image::{
    busybox_rootfs, push_test_images, Compression, Image, ImageBuilder, Index, IndexBuilder,
    IndexFormat, Layer, ManifestFormat, TestImages,
};
pub use registry::{FaultProxy, Registry, RegistryClient};

use anyhow::{Context, Result};
use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// There is a window between this check and the server binding it; the kit's
/// servers that are started as separate processes retry on a new port when
/// they lose that race.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The OCI name of the architecture this kit runs on (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `len` bytes that do not compress (xorshift from `seed`), so a layer made
/// of them is as big on the wire as asked.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
