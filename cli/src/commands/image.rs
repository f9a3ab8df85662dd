use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::{progress, Ctx};

#[derive(Subcommand)]
pub enum Command {
    /// List images.
    #[command(alias = "list")]
    Ls(super::images::Args),
    /// Show an image as JSON: digest, config, layers, size.
    Inspect {
        /// Image name or id.
        image: String,
    },
    /// Write an image's filesystem into a new or empty directory.
    Export {
        /// Image name or id.
        image: String,
        /// Target directory (created if missing).
        dir: PathBuf,
    },
    /// Remove images.
    Rm(super::rmi::Args),
    /// Remove blobs and layers no image uses, and partial downloads.
    Prune,
}

pub async fn exec(ctx: &Ctx, c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Ls(a) => super::images::exec(ctx, a).await,
        Command::Rm(a) => super::rmi::exec(ctx, a).await,
        Command::Inspect { image } => {
            println!("{}", ctx.helper().await?.inspect_image(&image).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { image, dir } => export(ctx, &image, &dir).await,
        Command::Prune => {
            let r = ctx.helper().await?.prune_images(ctx.flags).await?;
            println!(
                "Removed {} blobs and {} layers, freed {}",
                r.blobs_removed,
                r.layers_removed,
                crate::format::size(r.bytes_freed)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn export(ctx: &Ctx, image: &str, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                bail!(
                    "{} is not empty; export into a new or empty directory",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    let job = ctx
        .helper()
        .await?
        .export_image(image, fd.as_fd().into(), ctx.flags)
        .await?;
    let result = progress::follow(&ctx.conn, &job, true).await?;
    let v: serde_json::Value = serde_json::from_str(&result)?;
    println!(
        "Exported {image} to {} ({} entries)",
        dir.display(),
        v["entries"]
    );
    Ok(ExitCode::SUCCESS)
}
