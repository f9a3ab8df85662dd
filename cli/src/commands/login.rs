use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::Ctx;

#[derive(clap::Args)]
pub struct LoginArgs {
    /// Registry host, e.g. `ghcr.io` or `registry.lan:5000`.
    host: String,
    /// User name (asked for when missing).
    #[arg(short, long)]
    username: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host.
    host: String,
}

pub async fn exec_login(ctx: &Ctx, a: LoginArgs) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let username = match a.username {
        Some(u) => u,
        None => {
            if !stdin.is_terminal() {
                bail!("give the user name with --username when standard input is not a terminal");
            }
            prompt("Username: ")?
        }
    };
    let password = if a.password_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        read_password("Password: ")?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    ctx.helper()
        .await?
        .login(&a.host, &username, &password, ctx.flags)
        .await?;
    println!("Login to {} stored (readable by root only)", a.host);
    Ok(ExitCode::SUCCESS)
}

pub async fn exec_logout(ctx: &Ctx, a: LogoutArgs) -> anyhow::Result<ExitCode> {
    ctx.helper().await?.logout(&a.host, ctx.flags).await?;
    println!("Removed login for {}", a.host);
    Ok(ExitCode::SUCCESS)
}

fn prompt(q: &str) -> anyhow::Result<String> {
    eprint!("{q}");
    std::io::stderr().flush()?;
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim().to_string())
}

/// Read a line from the terminal with echo off.
fn read_password(q: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let old = tcgetattr(&stdin)?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let line = prompt(q);
    tcsetattr(&stdin, OptionalActions::Now, &old)?;
    eprintln!();
    line
}
