use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use crate::format::{size, table};
use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print one table and exit.
    #[arg(long)]
    no_stream: bool,
    /// Containers (default: all running).
    containers: Vec<String>,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let helper = ctx.helper().await?;
    let ids: Vec<&str> = a.containers.iter().map(String::as_str).collect();
    loop {
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&helper.list_containers(false).await?)?;
        let names: HashMap<String, String> = list
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or("").to_string(),
                    c["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let stats: HashMap<String, berth_api::ContainerSample> =
            serde_json::from_str(&helper.container_stats(&ids).await?)?;
        let mut rows = vec![[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ]
        .map(String::from)
        .to_vec()];
        let mut keys: Vec<_> = stats.keys().cloned().collect();
        keys.sort_by_key(|k| names.get(k).cloned().unwrap_or_default());
        for id in keys {
            let s = &stats[&id];
            let mem = s.memory_working_set;
            let limit = s.memory_limit;
            rows.push(vec![
                id.chars().take(12).collect(),
                names.get(&id).cloned().unwrap_or_default(),
                format!("{:.2}%", s.cpu_percent),
                format!(
                    "{} / {}",
                    size(mem),
                    limit.map(size).unwrap_or_else(|| "unlimited".into())
                ),
                limit
                    .map(|l| format!("{:.2}%", mem as f64 / l.max(1) as f64 * 100.0))
                    .unwrap_or_else(|| "--".into()),
                format!("{} / {}", size(s.net_rx), size(s.net_tx)),
                format!("{} / {}", size(s.block_read), size(s.block_write)),
                s.pids.to_string(),
            ]);
        }
        if !a.no_stream {
            // Clear the screen and go home, as `docker stats` redraws.
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", table(&rows));
        if a.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
