//! `volume ls`, `volume rm`, `volume prune`: apps' named volumes, their
//! sizes and users, and deleting the data uninstalls kept.

use std::process::ExitCode;

use anyhow::Context;
use berth_api::{VolumeInfo, VolumePruneReport};
use clap::Subcommand;

use crate::format::{size, table};
use crate::Ctx;

#[derive(Subcommand)]
pub enum Command {
    /// List named volumes: size, app, and the containers using them (or
    /// `kept`: data an uninstall kept).
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Delete volumes an uninstall kept (`berth uninstall APP` removes an
    /// installed app's with it).
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Delete every volume an uninstall kept.
    Prune,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Only volume names.
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON (every field of every volume).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Volumes to delete: names as `berth volume ls` shows them (`<app>_<volume>`).
    #[arg(required = true)]
    volumes: Vec<String>,
}

pub async fn exec(ctx: &Ctx, c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Ls(a) => ls(ctx, a).await,
        Command::Rm(a) => rm(ctx, a).await,
        Command::Prune => prune(ctx).await,
    }
}

async fn ls(ctx: &Ctx, a: LsArgs) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.list_volumes().await?;
    let list: Vec<VolumeInfo> = serde_json::from_str(&json).context("berthd's list of volumes")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.quiet {
        for v in &list {
            println!("{}", v.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&rows(&list)));
    Ok(ExitCode::SUCCESS)
}

/// The table `berth volume ls` prints, header first.
fn rows(list: &[VolumeInfo]) -> Vec<Vec<String>> {
    let mut rows = vec![["NAME", "APP", "SIZE", "USED BY"]
        .map(String::from)
        .to_vec()];
    for v in list {
        rows.push(vec![
            v.name.clone(),
            v.app.clone(),
            size(v.size_bytes),
            if v.kept {
                "kept".into()
            } else if v.used_by.is_empty() {
                "--".into()
            } else {
                v.used_by.join(", ")
            },
        ]);
    }
    rows
}

async fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<ExitCode> {
    let helper = ctx.helper().await?;
    let mut code = ExitCode::SUCCESS;
    for name in &a.volumes {
        match helper.remove_volume(name, ctx.flags).await {
            Ok(()) => println!("Removed {name}"),
            Err(e) => {
                eprintln!("berth: {}", e.message());
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

async fn prune(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.prune_volumes(ctx.flags).await?;
    let r: VolumePruneReport =
        serde_json::from_str(&json).context("berthd's answer to the prune")?;
    if r.removed.is_empty() {
        println!("No kept volumes to remove");
        return Ok(ExitCode::SUCCESS);
    }
    for name in &r.removed {
        println!("Removed {name}");
    }
    println!("Freed {}", size(r.bytes_freed));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_users_or_says_kept() {
        let list = [
            VolumeInfo {
                name: "hello_site".into(),
                app: "hello".into(),
                size_bytes: 12_345,
                used_by: vec!["hello-web-1".into(), "hello-worker-1".into()],
                ..VolumeInfo::default()
            },
            VolumeInfo {
                name: "old_data".into(),
                app: "old".into(),
                size_bytes: 0,
                kept: true,
                ..VolumeInfo::default()
            },
            VolumeInfo {
                name: "idle_cache".into(),
                app: "idle".into(),
                ..VolumeInfo::default()
            },
        ];
        let r = rows(&list);
        assert_eq!(r[0], ["NAME", "APP", "SIZE", "USED BY"]);
        assert_eq!(
            r[1],
            [
                "hello_site",
                "hello",
                "12.345kB",
                "hello-web-1, hello-worker-1"
            ]
        );
        assert_eq!(r[2], ["old_data", "old", "0B", "kept"]);
        assert_eq!(r[3][3], "--");
    }
}
