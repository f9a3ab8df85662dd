//! `apps`, `inspect-app`, `open`, `update`, `doctor`, and telling an app
//! from a container for the verbs both have (`start`, `stop`, `restart`,
//! `logs`).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use berth_api::{AppInfo, AuditReport, Helper1Proxy, InstallResult};

use crate::format::{size, table};
use crate::{progress, Ctx};

/// The installed apps by id. A berthd that cannot list them (an older one)
/// has none: the verbs then act on containers, as they always did.
pub async fn installed(h: &Helper1Proxy<'_>) -> HashMap<String, AppInfo> {
    let Ok(json) = h.list_apps().await else {
        return HashMap::new();
    };
    serde_json::from_str::<Vec<AppInfo>>(&json)
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect()
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// `table` (the default) or `json` (every field of every app).
    #[arg(long, default_value = "table", value_name = "table|json")]
    format: String,
}

pub async fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<ExitCode> {
    if !matches!(a.format.as_str(), "table" | "json") {
        anyhow::bail!("unknown format `{}`: use table or json", a.format);
    }
    let json = ctx.helper().await?.list_apps().await?;
    let apps: Vec<AppInfo> = serde_json::from_str(&json)?;
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&apps)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["APP", "STATE", "URL", "CPU %", "MEMORY"]
        .map(String::from)
        .to_vec()];
    for app in &apps {
        let idle = app.cpu_percent == 0.0 && app.memory_bytes == 0 && !has_running(app);
        rows.push(vec![
            app.id.clone(),
            app.state.clone(),
            app.url.clone(),
            if idle {
                "--".into()
            } else {
                format!("{:.2}%", app.cpu_percent)
            },
            if idle {
                "--".into()
            } else {
                size(app.memory_bytes)
            },
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

fn has_running(app: &AppInfo) -> bool {
    app.services.iter().any(|s| s.state == "running")
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// An installed app.
    app: String,
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.inspect_app(&a.app).await?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct OpenArgs {
    /// An installed app.
    app: String,
}

/// Print the app's URL; on a desktop, also open it in the browser.
pub async fn open(ctx: &Ctx, a: OpenArgs) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.inspect_app(&a.app).await?;
    let app: AppInfo = serde_json::from_str(&json)?;
    if app.url.is_empty() {
        anyhow::bail!(
            "{} has nothing to open (its catalog entry names no web page)",
            app.id
        );
    }
    println!("{}", app.url);
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if desktop {
        if let Some(xdg_open) = find_in_path("xdg-open") {
            // Detached: its own process group, no terminal streams; berth
            // does not wait for the browser.
            use std::os::unix::process::CommandExt;
            let spawned = std::process::Command::new(xdg_open)
                .arg(&app.url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn();
            if let Err(e) = spawned {
                eprintln!("berth: could not run xdg-open: {e}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// An installed app.
    app: String,
}

/// Pull newer images and recreate the services whose image changed.
pub async fn update(ctx: &Ctx, a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let job = ctx.helper().await?.update_app(&a.app, ctx.flags).await?;
    let result = progress::follow_phases(&ctx.conn, &job).await?;
    let r: InstallResult =
        serde_json::from_str(&result).context("berthd's answer to the update")?;
    print_result("Updated", &r);
    Ok(ExitCode::SUCCESS)
}

/// `Installed <title>: <url>`, then each note on its own line.
pub fn print_result(verb: &str, r: &InstallResult) {
    let title = if r.app.title.is_empty() {
        &r.app.id
    } else {
        &r.app.title
    };
    if r.app.url.is_empty() {
        println!("{verb} {title}");
    } else {
        println!("{verb} {title}: {}", r.app.url);
    }
    for note in &r.notes {
        println!("{note}");
    }
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Only report what no record explains; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Audit what berthd made against its records (and repair, by default).
pub async fn doctor(ctx: &Ctx, a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.doctor(!a.dry_run, ctx.flags).await?;
    let r: AuditReport = serde_json::from_str(&json)?;
    if !r.checked.is_empty() {
        println!("Checked: {}", r.checked.join(", "));
    }
    if !r.repaired.is_empty() {
        println!("Repaired:");
        for l in &r.repaired {
            println!("  {l}");
        }
    }
    if !r.kept.is_empty() {
        println!("Kept on purpose:");
        for l in &r.kept {
            println!("  {l}");
        }
    }
    if r.remaining.is_empty() {
        println!("Nothing is left that Berth's records do not explain.");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Remaining:");
    for l in &r.remaining {
        println!("  {l}");
    }
    if a.dry_run {
        println!("Run `berth doctor` without --dry-run to remove them.");
    }
    Ok(ExitCode::FAILURE)
}
