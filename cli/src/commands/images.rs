use std::process::ExitCode;

use crate::format::{ago, familiar_parts, size, table};
use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Show only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let list = ctx.helper().await?.list_images().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.quiet {
        for i in &list {
            println!("{}", short_id(&i.id));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        .map(String::from)
        .to_vec()];
    for i in &list {
        let (repo, tag) = familiar_parts(&i.name);
        rows.push(vec![
            repo,
            tag,
            short_id(&i.id),
            ago(i.created),
            size(i.size),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}
