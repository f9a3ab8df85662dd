//! berth-seed: put Berth's demo images into a registry, or run one.
//!
//! ```text
//! berth-seed --start-registry DIR [--port N]   # detached docker-registry storing in DIR
//! berth-seed --stop-registry DIR
//! berth-seed --registry HOST:PORT [--bench-image] [--user U --password P]
//! ```
//!
//! `--registry` pushes `demo/busybox`, `demo/web`, `demo/api` and
//! `demo/front` (see `berth_testkit::image::demo`), built from the host's
//! busybox-static, and prints one `HOST:PORT/REPO:latest DIGEST` line each.
//! The demo app catalog (`catalog/demo/`) names them as
//! `${BERTH_DEMO_REGISTRY}/demo/…`: add it with
//! `--set BERTH_DEMO_REGISTRY=HOST:PORT` (the registry given here).

use anyhow::{bail, Context, Result};
use berth_testkit::image::{bench_image, push_demo_images};
use berth_testkit::registry::{self, RegistryClient};
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Push Berth's demo images to a registry, or start/stop a local one")]
struct Args {
    /// Push the demo images to this registry (plain HTTP), e.g. 127.0.0.1:5000.
    #[arg(long, value_name = "HOST:PORT")]
    registry: Option<String>,
    /// Also build and push bench/debian-files:latest (~150-200 MB of Debian files).
    #[arg(long, requires = "registry")]
    bench_image: bool,
    /// Push credentials (Basic or token auth).
    #[arg(long, requires = "password")]
    user: Option<String>,
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Start a docker-registry that keeps running, storing in DIR; writes
    /// DIR/registry.pid and DIR/registry.port and prints HOST:PORT.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["registry", "stop_registry"])]
    start_registry: Option<PathBuf>,
    /// The port for --start-registry (default: a free one).
    #[arg(long, requires = "start_registry")]
    port: Option<u16>,
    /// Stop the registry started with --start-registry DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "registry")]
    stop_registry: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.start_registry {
        let running = registry::start_detached(dir, args.port)?;
        eprintln!(
            "docker-registry pid {} storing in {}",
            running.pid,
            dir.join("data").display()
        );
        println!("127.0.0.1:{}", running.port);
        return Ok(());
    }
    if let Some(dir) = &args.stop_registry {
        if registry::stop_detached(dir)? {
            eprintln!("stopped the registry of {}", dir.display());
        } else {
            eprintln!("no registry was running for {}", dir.display());
        }
        return Ok(());
    }
    let Some(host) = &args.registry else {
        bail!("nothing to do: give --registry, --start-registry or --stop-registry (see --help)");
    };
    let mut client = RegistryClient::new(host);
    if let (Some(user), Some(password)) = (&args.user, &args.password) {
        client = client.with_credentials(user, password);
    }
    client
        .ping()
        .with_context(|| format!("reaching the registry at {host}"))?;

    for demo in push_demo_images(&client)? {
        println!("{host}/{}:latest {}", demo.repository, demo.image.digest());
    }

    if args.bench_image {
        let started = Instant::now();
        let (image, layers) = bench_image()?;
        let built = started.elapsed();
        image.push(&client, "bench/debian-files", "latest")?;
        for layer in &layers {
            let source = layer
                .source
                .as_ref()
                .map_or("busybox rootfs".to_string(), |p| p.display().to_string());
            eprintln!(
                "  layer {source}: {:.1} MB tar, {:.1} MB gzip, {} entries",
                layer.uncompressed_bytes as f64 / 1e6,
                layer.compressed_bytes as f64 / 1e6,
                layer.entries
            );
        }
        eprintln!(
            "  {} layers, {:.1} MB uncompressed, {:.1} MB compressed; built in {:.1}s, pushed in {:.1}s",
            layers.len(),
            image.uncompressed_size() as f64 / 1e6,
            image.compressed_size() as f64 / 1e6,
            built.as_secs_f64(),
            (started.elapsed() - built).as_secs_f64()
        );
        println!("{host}/bench/debian-files:latest {}", image.digest());
    }
    Ok(())
}
