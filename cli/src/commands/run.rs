use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::Context;
use berth_api::options::{parse_cpus, parse_memory, parse_pids, parse_userns, parse_volume};
use berth_api::{Network, RunOptions};

use crate::{progress, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Name the container.
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User (name or uid, optionally :group) inside the container.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit, e.g. 64m or 1g.
    #[arg(short, long)]
    memory: Option<String>,
    /// CPU limit in CPUs, e.g. 0.5.
    #[arg(long)]
    cpus: Option<String>,
    /// Largest number of processes.
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// `none` (only loopback) or `host`.
    #[arg(long, default_value = "none")]
    network: String,
    /// `host` (container root is host root) or `auto` (container ids
    /// 0-65535 map to an unprivileged host range of their own).
    #[arg(long, default_value = "host", value_name = "host|auto")]
    userns: String,
    /// Bind a host directory: HOSTDIR:PATH[:ro].
    #[arg(short, long = "volume", value_name = "HOSTDIR:PATH[:ro]")]
    volume: Vec<String>,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Keep standard input open.
    #[arg(short, long)]
    interactive: bool,
    /// Image to run (pulled first if missing).
    image: String,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl Args {
    fn options(&self) -> anyhow::Result<RunOptions> {
        let online = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let env = self
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some(_) => e.clone(),
                None => format!("{e}={}", std::env::var(e).unwrap_or_default()),
            })
            .collect();
        let network = match self.network.as_str() {
            "none" => Network::None,
            "host" => Network::Host,
            other => anyhow::bail!("unknown network `{other}`: use none or host"),
        };
        Ok(RunOptions {
            name: self.name.clone(),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            entrypoint: self.entrypoint.clone(),
            cmd: self.command.clone(),
            memory: self
                .memory
                .as_deref()
                .map(parse_memory)
                .transpose()?
                .unwrap_or(0),
            millicpus: self
                .cpus
                .as_deref()
                .map(|c| parse_cpus(c, online))
                .transpose()?
                .unwrap_or(0),
            pids_limit: self
                .pids_limit
                .as_deref()
                .map(parse_pids)
                .transpose()?
                .unwrap_or(0),
            network,
            volumes: self
                .volume
                .iter()
                .map(|v| parse_volume(v))
                .collect::<Result<_, _>>()?,
            tty: self.tty,
            interactive: self.interactive,
            auto_remove: self.rm,
            userns: parse_userns(&self.userns)?,
            netns: None,
        })
    }
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let opts = a.options()?;
    let helper = ctx.helper().await?;
    let job = helper
        .create_container(&a.image, &serde_json::to_string(&opts)?, ctx.flags)
        .await?;
    let created: serde_json::Value =
        serde_json::from_str(&progress::follow(&ctx.conn, &job, false).await?)?;
    let id = created["id"]
        .as_str()
        .context("berthd gave no container id")?
        .to_string();
    if a.detach {
        helper.start_container(&id, Vec::new(), ctx.flags).await?;
        // A container that could not start at all says why, as docker does.
        let info: serde_json::Value = serde_json::from_str(&helper.inspect_container(&id).await?)?;
        if let Some(error) = info["error"].as_str().filter(|e| !e.is_empty()) {
            eprintln!("berth: {error}");
            let code = info["exit_code"].as_i64().unwrap_or(125);
            return Ok(ExitCode::from(code.clamp(1, 255) as u8));
        }
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let mut fds: Vec<zbus::zvariant::Fd<'_>> = vec![stdout.as_fd().into(), stderr.as_fd().into()];
    if a.interactive {
        fds.push(stdin.as_fd().into());
    }
    let raw = if a.tty && a.interactive && stdin.is_terminal() {
        Some(crate::terminal::RawMode::enter()?)
    } else {
        None
    };
    helper.start_container(&id, fds, ctx.flags).await?;
    let waited = tokio::select! {
        w = helper.wait_container(&id) => w,
        _ = tokio::signal::ctrl_c() => {
            let _ = helper.kill_container(&id, "INT", ctx.flags).await;
            helper.wait_container(&id).await
        }
    };
    drop(raw);
    let (code, oom, error) = waited?;
    if !error.is_empty() {
        eprintln!("berth: {error}");
    }
    if oom {
        eprintln!("berth: the container was killed because it ran out of memory (OOM killed)");
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
