//! `berth-shim`: the per-container supervisor (see `runtime::shim`). Parses
//! its command line and hands over to the library; berthd starts it through
//! `runtime::shim::spawn`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use berthd::runtime::shim::{self, ShimOptions, DEFAULT_LOG_MAX_BYTES};
use clap::Parser;

/// Runs one container through an OCI runtime and looks after it: stdio,
/// logs, exit status. Daemonizes; returns once its socket listens.
#[derive(Parser)]
#[command(name = "berth-shim", version)]
struct Args {
    /// The container id.
    #[arg(long)]
    id: String,
    /// The OCI bundle dir.
    #[arg(long)]
    bundle: PathBuf,
    /// The OCI runtime binary (berth-runtime, runc, crun).
    #[arg(long)]
    runtime: PathBuf,
    /// The runtime's state dir (its --root).
    #[arg(long)]
    runtime_root: PathBuf,
    /// The shim's own dir (socket, pid file, exit.json).
    #[arg(long)]
    dir: PathBuf,
    /// The container's log file.
    #[arg(long)]
    log: PathBuf,
    /// Give the container a pty.
    #[arg(long)]
    tty: bool,
    /// Keep the container's stdin open for attached clients.
    #[arg(long)]
    stdin: bool,
    /// Hold the container's start until the first client attaches.
    #[arg(long)]
    wait_attach: bool,
    /// With --wait-attach: start anyway after this many seconds alone.
    #[arg(long, default_value_t = shim::client::DEFAULT_ATTACH_GRACE_SECS)]
    attach_grace_secs: u64,
    /// Rotate the log past this many bytes.
    #[arg(long, default_value_t = DEFAULT_LOG_MAX_BYTES)]
    log_max_bytes: u64,
    /// The runtime is Berth's own: drive it in-process.
    #[arg(long)]
    builtin: bool,
    /// An inherited sealed memfd copy of the runtime binary (with --builtin).
    #[arg(long, requires = "builtin")]
    sealed_runtime_fd: Option<i32>,
}

fn main() {
    // `berth-shim --spare --control-fd N`: started ahead of need by berthd,
    // which sends the rest of the options later (runtime::shim::spare).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--spare") {
        let fd = match argv.as_slice() {
            [_, _, flag, n] if flag == "--control-fd" => n.parse::<i32>().ok().filter(|&n| n >= 3),
            _ => None,
        };
        let Some(fd) = fd else {
            eprintln!("berth-shim: usage: berth-shim --spare --control-fd N (N >= 3)");
            std::process::exit(2);
        };
        // SAFETY: berthd handed this fd down for this purpose.
        std::process::exit(shim::serve_spare(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let a = Args::parse();
    let mut opts = ShimOptions::new(a.id, a.bundle, a.runtime, a.runtime_root, a.dir, a.log);
    opts.tty = a.tty;
    opts.stdin = a.stdin;
    opts.wait_attach = a.wait_attach;
    opts.attach_grace_secs = a.attach_grace_secs;
    opts.log_max_bytes = a.log_max_bytes;
    opts.builtin = a.builtin;
    if let Some(fd) = a.sealed_runtime_fd {
        if fd < 3 {
            eprintln!("berth-shim: --sealed-runtime-fd must be 3 or more");
            std::process::exit(2);
        }
        // SAFETY: the caller handed this fd down to us for this purpose; it
        // is checked to be a sealed memfd before use.
        opts.sealed_runtime = Some(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    std::process::exit(shim::serve(opts));
}
