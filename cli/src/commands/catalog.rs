//! `catalog list|add|remove|apps`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_api::{CatalogApp, CatalogInfo};

use crate::format::table;
use crate::Ctx;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the catalogs berthd knows, and the apps of theirs that do not load.
    List,
    /// Add a catalog: a directory of apps (or its catalog.toml).
    Add(AddArgs),
    /// Forget a catalog (apps installed from it stay installed).
    #[command(alias = "rm")]
    Remove(RemoveArgs),
    /// List the apps every catalog offers.
    Apps,
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// The catalog's directory, or its catalog.toml.
    path: PathBuf,
    /// What to call it (default: its directory's name).
    #[arg(long)]
    name: Option<String>,
    /// A value for `${KEY}` in its Compose files (repeat for more).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    /// The catalog's name, as `berth catalog list` shows it.
    name: String,
}

impl Command {
    /// Check the arguments without asking berthd.
    pub fn check(&self) -> anyhow::Result<()> {
        match self {
            Command::Add(a) => check_vars(&a.set),
            _ => Ok(()),
        }
    }
}

fn check_vars(vars: &[String]) -> anyhow::Result<()> {
    for v in vars {
        match v.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => anyhow::bail!("--set `{v}`: write KEY=VALUE"),
        }
    }
    Ok(())
}

pub async fn exec(ctx: &Ctx, c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::List => list(ctx).await,
        Command::Add(a) => add(ctx, a).await,
        Command::Remove(a) => {
            ctx.helper()
                .await?
                .remove_catalog(&a.name, ctx.flags)
                .await?;
            println!("Removed catalog {}", a.name);
            Ok(ExitCode::SUCCESS)
        }
        Command::Apps => apps(ctx).await,
    }
}

async fn list(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.list_catalogs().await?;
    let list: Vec<CatalogInfo> = serde_json::from_str(&json)?;
    let mut rows = vec![["NAME", "TITLE", "APPS", "PATH"].map(String::from).to_vec()];
    for c in &list {
        rows.push(vec![
            c.name.clone(),
            c.title.clone(),
            c.apps.to_string(),
            c.path.clone(),
        ]);
    }
    print!("{}", table(&rows));
    for c in &list {
        print_problems(c);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_problems(c: &CatalogInfo) {
    if c.problems.is_empty() {
        return;
    }
    println!();
    println!(
        "{}: {} not load:",
        c.name,
        if c.problems.len() == 1 {
            "1 app does".to_string()
        } else {
            format!("{} apps do", c.problems.len())
        }
    );
    for p in &c.problems {
        println!("  {p}");
    }
}

async fn add(ctx: &Ctx, a: AddArgs) -> anyhow::Result<ExitCode> {
    check_vars(&a.set)?;
    // berthd does not know our working directory.
    let path = std::path::absolute(&a.path)
        .with_context(|| format!("making {} absolute", a.path.display()))?;
    let path = path
        .to_str()
        .with_context(|| format!("the path {} is not UTF-8", path.display()))?;
    let vars: Vec<&str> = a.set.iter().map(String::as_str).collect();
    let json = ctx
        .helper()
        .await?
        .add_catalog(path, a.name.as_deref().unwrap_or(""), &vars, ctx.flags)
        .await?;
    let c: CatalogInfo = serde_json::from_str(&json)?;
    println!(
        "Added catalog {} ({}): {} app{}",
        c.name,
        c.title,
        c.apps,
        if c.apps == 1 { "" } else { "s" }
    );
    print_problems(&c);
    Ok(ExitCode::SUCCESS)
}

/// Longest description shown in `berth catalog apps`.
const DESCRIPTION_WIDTH: usize = 50;

async fn apps(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let json = ctx.helper().await?.list_catalog_apps().await?;
    let list: Vec<CatalogApp> = serde_json::from_str(&json)?;
    let mut rows = vec![[
        "APP",
        "TITLE",
        "CATEGORY",
        "CATALOG",
        "INSTALLED",
        "DESCRIPTION",
    ]
    .map(String::from)
    .to_vec()];
    for a in &list {
        rows.push(vec![
            a.id.clone(),
            a.title.clone(),
            a.category.clone(),
            a.catalog.clone(),
            if a.installed { "yes" } else { "no" }.to_string(),
            truncate(&a.description, DESCRIPTION_WIDTH),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// The text on one line, at most `width` characters, `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= width {
        return one_line;
    }
    let cut: String = one_line.chars().take(width.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_one_short_line() {
        assert_eq!(truncate("A  small\napp.", 50), "A small app.");
        let long = "A painless self-hosted Git service with issues and pull requests.";
        let t = truncate(long, 20);
        assert_eq!(t.chars().count(), 20, "{t}");
        assert!(t.ends_with('…'), "{t}");
        assert_eq!(truncate("", 5), "");
    }
}
