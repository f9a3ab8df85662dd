//! berth: the command line for Berth. Every command talks to berthd over
//! D-Bus (the system bus, or `DBUS_SYSTEM_BUS_ADDRESS`); none touches the
//! store itself.

mod commands;
mod format;
mod progress;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::*;

/// Install, run and remove containerized apps.
#[derive(Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    /// Never ask for authentication interactively (polkit); fail instead.
    #[arg(long, global = true)]
    no_interaction: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install an app from a catalog: pull, create, start, wait until it answers.
    Install(install::InstallArgs),
    /// Remove an app and check that nothing of it is left.
    Uninstall(install::UninstallArgs),
    /// List installed apps.
    Apps(apps::ListArgs),
    /// Show an installed app as JSON.
    #[command(name = "inspect-app")]
    InspectApp(apps::InspectArgs),
    /// Print an app's URL (and open it in the browser on a desktop).
    Open(apps::OpenArgs),
    /// Update an app: pull newer images, recreate what changed, keep the data.
    Update(apps::UpdateArgs),
    /// Manage app catalogs and list what they offer.
    #[command(subcommand)]
    Catalog(catalog::Command),
    /// List apps' named volumes, and delete the data uninstalls kept.
    #[command(subcommand)]
    Volume(volume::Command),
    /// Check everything Berth made against its records, and remove what no
    /// record explains.
    Doctor(apps::DoctorArgs),
    /// Run a command in a new container.
    Run(Box<run::Args>),
    /// List containers.
    Ps(ps::Args),
    /// Start stopped containers or apps.
    Start(container::StartArgs),
    /// Stop running containers (SIGTERM, then SIGKILL) or apps.
    Stop(container::StopArgs),
    /// Stop, then start containers or apps.
    Restart(container::RestartArgs),
    /// Send a signal to containers.
    Kill(container::KillArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// Run a command in a running container.
    Exec(exec::Args),
    /// Print a container's output, or an app's (every service's, or one's).
    Logs(logs::Args),
    /// Live CPU, memory, network, disk and process counts of containers.
    Stats(stats::Args),
    /// Show a container as JSON.
    Inspect(container::InspectArgs),
    /// Download an image from a registry.
    Pull(pull::Args),
    /// List images.
    Images(images::Args),
    /// Manage images.
    #[command(subcommand)]
    Image(image::Command),
    /// Remove images.
    Rmi(rmi::Args),
    /// Store your login for a registry (used only for pulls and installs you start).
    Login(login::LoginArgs),
    /// Forget your login for a registry.
    Logout(login::LogoutArgs),
    /// Show the versions of berth and berthd.
    Version,
    /// Show facts about berthd: storage, bus, cgroup version.
    Info,
}

/// What every command gets: the bus connection and the flags to send.
pub struct Ctx {
    pub conn: zbus::Connection,
    pub flags: u64,
}

impl Ctx {
    pub async fn helper(&self) -> anyhow::Result<berth_api::Helper1Proxy<'static>> {
        Ok(berth_api::Helper1Proxy::new(&self.conn).await?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Mistakes in the arguments are reported before the bus is reached.
    match &cli.command {
        Command::Install(a) => a.check()?,
        Command::Catalog(c) => c.check()?,
        _ => {}
    }
    let conn = berth_api::connect().await?;
    let ctx = Ctx {
        conn,
        flags: if cli.no_interaction {
            berth_api::FLAG_NO_INTERACTION
        } else {
            0
        },
    };
    match cli.command {
        Command::Install(a) => install::install(&ctx, a).await,
        Command::Uninstall(a) => install::uninstall(&ctx, a).await,
        Command::Apps(a) => apps::list(&ctx, a).await,
        Command::InspectApp(a) => apps::inspect(&ctx, a).await,
        Command::Open(a) => apps::open(&ctx, a).await,
        Command::Update(a) => apps::update(&ctx, a).await,
        Command::Catalog(c) => catalog::exec(&ctx, c).await,
        Command::Volume(c) => volume::exec(&ctx, c).await,
        Command::Doctor(a) => apps::doctor(&ctx, a).await,
        Command::Run(a) => run::exec(&ctx, *a).await,
        Command::Ps(a) => ps::exec(&ctx, a).await,
        Command::Start(a) => container::start(&ctx, a).await,
        Command::Stop(a) => container::stop(&ctx, a).await,
        Command::Restart(a) => container::restart(&ctx, a).await,
        Command::Kill(a) => container::kill(&ctx, a).await,
        Command::Rm(a) => container::rm(&ctx, a).await,
        Command::Exec(a) => exec::exec(&ctx, a).await,
        Command::Logs(a) => logs::exec(&ctx, a).await,
        Command::Inspect(a) => container::inspect(&ctx, a).await,
        Command::Stats(a) => stats::exec(&ctx, a).await,
        Command::Pull(a) => pull::exec(&ctx, a).await,
        Command::Images(a) => images::exec(&ctx, a).await,
        Command::Image(c) => image::exec(&ctx, c).await,
        Command::Rmi(a) => rmi::exec(&ctx, a).await,
        Command::Login(a) => login::exec_login(&ctx, a).await,
        Command::Logout(a) => login::exec_logout(&ctx, a).await,
        Command::Version => info::exec_version(&ctx).await,
        Command::Info => info::exec_info(&ctx).await,
    }
}

/// One line a person can act on.
fn describe(e: &anyhow::Error) -> String {
    if let Some(api) = e.downcast_ref::<berth_api::Error>() {
        return api.message();
    }
    if let Some(z) = e.downcast_ref::<zbus::Error>() {
        return berth_api::Error::from(z.clone()).message();
    }
    format!("{e:#}")
}
