//! berthd: parse arguments, open the store, serve it on the bus.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;

use berthd::config::{Config, DEFAULT_PATH};
use berthd::credentials::FileCredentials;
use berthd::images::ImageStore;

/// Berth's privileged helper: pulls, stores and runs container images,
/// served on the system bus as org.berth.Helper1.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where everything persistent lives.
    #[arg(long, default_value = "/var/lib/berth", value_name = "DIR")]
    root: PathBuf,
    /// Where runtime state lives (cleared at boot).
    #[arg(long, default_value = "/run/berth", value_name = "DIR")]
    run_root: PathBuf,
    /// Configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> Result<()> {
    // Two malloc arenas, not eight per core: berthd's threads (tokio's
    // blocking pool comes and goes) would otherwise each leave an arena of
    // their own behind, which shows as resident memory that grows in steps
    // for a long time before it levels off.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // A safety net only: every file and directory is made with its mode
    // (see berthd::fsmode).
    berthd::fsmode::set_umask();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    // The shims and the runtime work from other directories: every path
    // handed to them must be absolute.
    let cwd = std::env::current_dir().context("finding the current directory")?;
    for dir in [&mut args.root, &mut args.run_root] {
        if dir.is_relative() {
            *dir = cwd.join(&*dir);
        }
    }
    if !rustix::process::geteuid().is_root() {
        bail!("berthd must run as root (it mounts, unpacks images with their owners, and owns a system bus name)");
    }
    // Few threads: the work is network and disk bound, and each thread's
    // malloc arena costs resident memory.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()?;
    let result = rt.block_on(run(args));
    // Blocking work still running (a log follower whose reader is gone, a
    // terminal relay) must not keep berthd from exiting.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn run(args: Args) -> Result<()> {
    let (config_path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let config = Config::load(&config_path, explicit)?;
    // Made private if missing; their modes (0700, or 0710 for the group
    // --userns=auto inits pass) are set by the container store.
    for dir in [&args.root, &args.run_root] {
        berthd::fsmode::make_root(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // One berthd per root: a second one would corrupt the first one's work.
    let lock = berthd::fsmode::create(&args.run_root.join("berthd.lock"))?;
    let root_lock = berthd::fsmode::create(&args.root.join(".lock"))?;
    for (f, dir) in [(&lock, &args.run_root), (&root_lock, &args.root)] {
        if rustix::fs::flock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            bail!("another berthd is using {}; stop it first", dir.display());
        }
    }

    let access = config.access.clone();
    let credentials = Arc::new(FileCredentials::open(&args.root)?);
    let images = ImageStore::open(&args.root, config, credentials.clone())?;
    // berth-runtime and berth-shim are installed next to berthd.
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let containers =
        berthd::containers::Containers::open(images.clone(), &args.run_root, &bin_dir).await?;

    // Apps need the containers; opening them finishes or rolls back what a
    // crash interrupted and brings back the apps that should run.
    let apps = berthd::apps::AppManager::open(
        images.clone(),
        containers.clone(),
        &args.run_root,
        berthd::network::NetworkConfig::default(),
    )
    .await
    .context("opening the installed apps")?;

    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "the system bus".into());
    let conn = zbus::Connection::system()
        .await
        .with_context(|| format!("connecting to {bus}"))?;
    // Decided once, here: a polkit that fails later refuses, it never
    // hands the decision to group membership.
    let auth = berthd::dbus::Authorizer::decide(&conn, &access)
        .await
        .map_err(anyhow::Error::msg)?;
    match auth.authority() {
        berthd::dbus::Authority::Polkit => tracing::info!("polkit decides for users other than root"),
        berthd::dbus::Authority::Group(g) => tracing::info!(
            "no polkit on {bus}: members of group `{g}` may do what root may (membership equals root)"
        ),
    }
    let metrics =
        berthd::metrics::Metrics::spawn(containers.clone(), std::time::Duration::from_secs(1));
    let service = berthd::dbus::serve(
        conn,
        images,
        containers,
        metrics,
        apps,
        credentials,
        args.run_root.clone(),
        bus.clone(),
        auth,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    tracing::info!(
        "berthd {} serving org.berth.Helper1 on {bus}, root {}",
        env!("CARGO_PKG_VERSION"),
        args.root.display()
    );
    berthd::fsmode::write(
        &args.run_root.join("berthd.pid"),
        std::process::id().to_string().as_bytes(),
    )?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!(
        "stopping: cancelling {} running jobs",
        service.jobs.running()
    );
    service.jobs.cancel_all();
    // Give cancelled jobs a moment to remove what they wrote half-way.
    for _ in 0..50 {
        if service.jobs.running() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(args.run_root.join("berthd.pid"));
    Ok(())
}
