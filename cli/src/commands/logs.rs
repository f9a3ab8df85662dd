use std::io::{BufRead, Write};
use std::process::ExitCode;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Keep printing new output until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<i64>,
    /// Prefix each line with its time.
    #[arg(short = 'T', long)]
    timestamps: bool,
    container: String,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let fd = ctx
        .helper()
        .await?
        .container_logs(&a.container, a.tail.unwrap_or(-1), a.follow, ctx.flags)
        .await?;
    let file = std::fs::File::from(std::os::fd::OwnedFd::from(fd));
    let timestamps = a.timestamps;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for line in std::io::BufReader::new(file).lines() {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            let text = v["log"].as_str().unwrap_or("");
            let w: &mut dyn Write = if v["stream"] == "stderr" {
                &mut err
            } else {
                &mut out
            };
            if timestamps {
                write!(w, "{} ", v["time"].as_str().unwrap_or(""))?;
            }
            w.write_all(text.as_bytes())?;
            w.flush()?;
        }
        Ok(())
    })
    .await??;
    Ok(ExitCode::SUCCESS)
}
