//! `install` and `uninstall`.

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::Context;
use berth_api::{
    AppInfo, AuditReport, InstallOptions, InstallResult, PortOverride, UninstallOptions,
};

use crate::{progress, Ctx};

#[derive(clap::Args)]
pub struct InstallArgs {
    /// The app, as `berth catalog apps` lists it.
    app: String,
    /// Take it from this catalog (default: the first that has it).
    #[arg(long, value_name = "NAME")]
    catalog: Option<String>,
    /// Publish a service's port on another host port; CONTAINERPORT picks
    /// which of its ports (default: its first). Repeat for more.
    #[arg(long = "port", value_name = "SERVICE:HOSTPORT[:CONTAINERPORT]")]
    ports: Vec<String>,
    /// Listen on this host address instead of the catalog's (0.0.0.0 to be
    /// reachable from other machines).
    #[arg(long, value_name = "IP")]
    listen: Option<String>,
}

/// `SERVICE:HOSTPORT[:CONTAINERPORT]`.
pub fn parse_port(s: &str) -> anyhow::Result<PortOverride> {
    let usage = || {
        anyhow::anyhow!("--port `{s}` is not SERVICE:HOSTPORT[:CONTAINERPORT] (such as web:8080 or web:8080:80)")
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (service, host, container) = match parts.as_slice() {
        [service, host] => (*service, *host, None),
        [service, host, container] => (*service, *host, Some(*container)),
        _ => return Err(usage()),
    };
    let label = !service.is_empty()
        && service.len() <= 63
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !service.starts_with(['-', '.']);
    if !label {
        anyhow::bail!(
            "--port `{s}`: `{service}` is not a service name (letters, digits, `-`, `_`, `.`)"
        );
    }
    let port = |p: &str, what: &str| -> anyhow::Result<u16> {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(_) => anyhow::bail!("--port `{s}`: the {what} port {p} is not in 1–65535"),
            Err(_) => anyhow::bail!("--port `{s}`: the {what} port `{p}` is not a number"),
        }
    };
    Ok(PortOverride {
        service: service.to_string(),
        host_port: port(host, "host")?,
        container_port: container
            .map(|c| port(c, "container"))
            .transpose()?
            .unwrap_or(0),
    })
}

impl InstallArgs {
    /// Check the arguments without asking berthd.
    pub fn check(&self) -> anyhow::Result<()> {
        self.options().map(|_| ())
    }

    fn options(&self) -> anyhow::Result<InstallOptions> {
        let host_ip = match &self.listen {
            Some(ip) => {
                ip.parse::<IpAddr>()
                    .map_err(|_| anyhow::anyhow!("--listen `{ip}` is not an IP address"))?;
                ip.clone()
            }
            None => String::new(),
        };
        Ok(InstallOptions {
            catalog: self.catalog.clone().unwrap_or_default(),
            ports: self
                .ports
                .iter()
                .map(|p| parse_port(p))
                .collect::<anyhow::Result<_>>()?,
            host_ip,
        })
    }
}

/// Install an app with progress; Ctrl-C cancels (berthd removes what it made).
pub async fn install(ctx: &Ctx, a: InstallArgs) -> anyhow::Result<ExitCode> {
    let opts = a.options()?;
    let job = ctx
        .helper()
        .await?
        .install_app(&a.app, &serde_json::to_string(&opts)?, ctx.flags)
        .await?;
    let result = progress::follow_phases(&ctx.conn, &job).await?;
    let r: InstallResult =
        serde_json::from_str(&result).context("berthd's answer to the install")?;
    super::apps::print_result("Installed", &r);
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    /// An installed app.
    app: String,
    /// Keep the app's data (its volumes) for a later install.
    #[arg(long, conflicts_with = "delete_data")]
    keep_data: bool,
    /// Delete the app's data.
    #[arg(long)]
    delete_data: bool,
    /// Keep its images even if no other app uses them.
    #[arg(long)]
    keep_images: bool,
    /// Ask nothing: without --delete-data, the data is kept.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
}

/// Remove an app, then say whether anything of it is left (exit 1 if so).
pub async fn uninstall(ctx: &Ctx, a: UninstallArgs) -> anyhow::Result<ExitCode> {
    let helper = ctx.helper().await?;
    let keep_data = if a.delete_data {
        false
    } else if a.keep_data || a.yes || !std::io::stdin().is_terminal() {
        true
    } else {
        // Also says "not installed" before anything is asked.
        let app: AppInfo = serde_json::from_str(&helper.inspect_app(&a.app).await?)?;
        app.volumes.is_empty() || ask_keep(&app)?
    };
    let opts = UninstallOptions {
        keep_data,
        keep_images: a.keep_images,
    };
    let job = helper
        .uninstall_app(&a.app, &serde_json::to_string(&opts)?, ctx.flags)
        .await?;
    let result = progress::follow_phases(&ctx.conn, &job).await?;
    let r: AuditReport =
        serde_json::from_str(&result).context("berthd's answer to the uninstall")?;
    Ok(print_audit(&a.app, &r))
}

/// "Keep <app>'s data (volumes X, Y) for a later install? [Y/n]"
fn ask_keep(app: &AppInfo) -> anyhow::Result<bool> {
    let mut err = std::io::stderr();
    loop {
        write!(
            err,
            "Keep {}'s data (volume{} {}) for a later install? [Y/n] ",
            app.id,
            if app.volumes.len() == 1 { "" } else { "s" },
            app.volumes.join(", ")
        )?;
        err.flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            eprintln!();
            return Ok(true);
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "" | "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => eprintln!("Answer y (keep the data) or n (delete it)."),
        }
    }
}

fn print_audit(app: &str, r: &AuditReport) -> ExitCode {
    let code = if r.remaining.is_empty() {
        println!("Removed {app}: nothing left on this computer");
        ExitCode::SUCCESS
    } else {
        println!("Removed {app}, but these remain:");
        for l in &r.remaining {
            println!("  {l}");
        }
        ExitCode::FAILURE
    };
    if !r.kept.is_empty() {
        println!("Kept {app}'s data for a later install:");
        for k in &r.kept {
            println!("  {k}");
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_overrides() {
        assert_eq!(
            parse_port("web:8080").unwrap(),
            PortOverride {
                service: "web".into(),
                host_port: 8080,
                container_port: 0
            }
        );
        assert_eq!(parse_port("web:8080:80").unwrap().container_port, 80);
        assert_eq!(parse_port("web:65535").unwrap().host_port, 65535);
        for (bad, says) in [
            ("web", "is not SERVICE:HOSTPORT"),
            ("web:1:2:3", "is not SERVICE:HOSTPORT"),
            (":8080", "is not a service name"),
            ("we b:8080", "is not a service name"),
            ("web:0", "not in 1–65535"),
            ("web:65536", "not in 1–65535"),
            ("web:8080:0", "container port 0"),
            ("web:http", "`http` is not a number"),
            ("web:-1", "is not a number"),
        ] {
            let e = parse_port(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
    }

    #[test]
    fn listen_must_be_an_address() {
        let args = |listen: &str| InstallArgs {
            app: "x".into(),
            catalog: None,
            ports: vec![],
            listen: Some(listen.into()),
        };
        assert_eq!(args("0.0.0.0").options().unwrap().host_ip, "0.0.0.0");
        let e = args("localhost").options().unwrap_err().to_string();
        assert!(e.contains("`localhost` is not an IP address"), "{e}");
    }
}
