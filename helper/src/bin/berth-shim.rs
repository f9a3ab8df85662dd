//! `berth-shim`: the per-container supervisor (see `runtime::shim`). Parses
//! its command line and hands over to the library; berthd starts it through
//! `runtime::shim::spawn`.

use std::path::PathBuf;

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
    /// Rotate the log past this many bytes.
    #[arg(long, default_value_t = DEFAULT_LOG_MAX_BYTES)]
    log_max_bytes: u64,
}

fn main() {
    let a = Args::parse();
    let mut opts = ShimOptions::new(a.id, a.bundle, a.runtime, a.runtime_root, a.dir, a.log);
    opts.tty = a.tty;
    opts.stdin = a.stdin;
    opts.wait_attach = a.wait_attach;
    opts.log_max_bytes = a.log_max_bytes;
    std::process::exit(shim::serve(opts));
}
