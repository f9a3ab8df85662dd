//! `start`, `stop`, `restart`, `kill`, `rm`, `inspect`. `start`, `stop`
//! and `restart` also take installed apps: a name that is an app's acts on
//! the app (all its containers, in dependency order), any other on a
//! container.

use std::process::ExitCode;

use crate::Ctx;

#[derive(clap::Args)]
pub struct StartArgs {
    /// Containers or installed apps.
    #[arg(required = true, value_name = "CONTAINER|APP")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL (containers).
    #[arg(short, long, default_value_t = 10)]
    time: u32,
    /// Containers or installed apps.
    #[arg(required = true, value_name = "CONTAINER|APP")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct RestartArgs {
    /// Seconds to wait after SIGTERM before SIGKILL (containers).
    #[arg(short, long, default_value_t = 10)]
    time: u32,
    /// Containers or installed apps.
    #[arg(required = true, value_name = "CONTAINER|APP")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// Signal to send (name or number).
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Stop a running container first.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    container: String,
}

/// Run `f` for each name; print the name on success, the error otherwise.
async fn each<F, Fut>(names: &[String], f: F) -> anyhow::Result<ExitCode>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = berth_api::Result<()>>,
{
    let mut code = ExitCode::SUCCESS;
    for n in names {
        match f(n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("berth: {}", e.message());
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

pub async fn start(ctx: &Ctx, a: StartArgs) -> anyhow::Result<ExitCode> {
    let h = ctx.helper().await?;
    let apps = super::apps::installed(&h).await;
    each(&a.containers, |n| {
        let h = h.clone();
        let app = apps.contains_key(&n);
        async move {
            if app {
                h.start_app(&n, ctx.flags).await
            } else {
                h.start_container(&n, Vec::new(), ctx.flags).await
            }
        }
    })
    .await
}

pub async fn stop(ctx: &Ctx, a: StopArgs) -> anyhow::Result<ExitCode> {
    let h = ctx.helper().await?;
    let apps = super::apps::installed(&h).await;
    each(&a.containers, |n| {
        let h = h.clone();
        let app = apps.contains_key(&n);
        async move {
            if app {
                h.stop_app(&n, ctx.flags).await
            } else {
                h.stop_container(&n, a.time, ctx.flags).await
            }
        }
    })
    .await
}

pub async fn restart(ctx: &Ctx, a: RestartArgs) -> anyhow::Result<ExitCode> {
    let h = ctx.helper().await?;
    let apps = super::apps::installed(&h).await;
    each(&a.containers, |n| {
        let h = h.clone();
        let app = apps.contains_key(&n);
        async move {
            if app {
                h.restart_app(&n, ctx.flags).await
            } else {
                h.stop_container(&n, a.time, ctx.flags).await?;
                h.start_container(&n, Vec::new(), ctx.flags).await
            }
        }
    })
    .await
}

pub async fn kill(ctx: &Ctx, a: KillArgs) -> anyhow::Result<ExitCode> {
    let h = ctx.helper().await?;
    each(&a.containers, |n| {
        let h = h.clone();
        let s = a.signal.clone();
        async move { h.kill_container(&n, &s, ctx.flags).await }
    })
    .await
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<ExitCode> {
    let h = ctx.helper().await?;
    each(&a.containers, |n| {
        let h = h.clone();
        async move { h.remove_container(&n, a.force, ctx.flags).await }
    })
    .await
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        ctx.helper().await?.inspect_container(&a.container).await?
    );
    Ok(ExitCode::SUCCESS)
}
