use std::process::ExitCode;

use crate::format::{ago, table};
use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    all: bool,
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ctx.helper().await?.list_containers(a.all).await?)?;
    if a.quiet {
        for c in &list {
            println!("{}", &c["id"].as_str().unwrap_or("")[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for c in &list {
        rows.push(vec![
            c["id"].as_str().unwrap_or("").chars().take(12).collect(),
            crate::format::familiar(c["image"].as_str().unwrap_or("")),
            command(c),
            ago(c["created"].as_i64().unwrap_or(0)),
            status(c),
            c["name"].as_str().unwrap_or("").to_string(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

fn command(c: &serde_json::Value) -> String {
    // berthd leaves the command line out of others' containers.
    if c["redacted"].as_bool() == Some(true) {
        return "(not yours)".into();
    }
    let words: Vec<&str> = c["command"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let s = words.join(" ");
    if s.chars().count() > 20 {
        format!("\"{}…\"", s.chars().take(19).collect::<String>())
    } else {
        format!("\"{s}\"")
    }
}

/// `Up 3 minutes`, `Exited (0) 2 hours ago`, `Exited (137, OOM killed) …`, `Created`.
pub fn status(c: &serde_json::Value) -> String {
    match c["state"].as_str().unwrap_or("") {
        "running" => format!(
            "Up {}",
            ago(c["started"].as_i64().unwrap_or(0)).trim_end_matches(" ago")
        ),
        "exited" => {
            let code = c["exit_code"].as_i64().unwrap_or(0);
            let oom = if c["oom_killed"].as_bool().unwrap_or(false) {
                ", OOM killed"
            } else {
                ""
            };
            format!(
                "Exited ({code}{oom}) {}",
                ago(c["finished"].as_i64().unwrap_or(0))
            )
        }
        "created" => "Created".into(),
        other => other.to_string(),
    }
}
