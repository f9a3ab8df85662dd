use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::Ctx;

/// `berth login` and `logout`: the caller's own registry logins. berthd
/// keeps a login per user (the one the bus says is calling), and only pulls
/// and installs that user starts use it.
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
    println!(
        "Login to {} stored for user {}; only pulls and installs you start use it \
         (readable by root only)",
        a.host,
        me()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn exec_logout(ctx: &Ctx, a: LogoutArgs) -> anyhow::Result<ExitCode> {
    ctx.helper().await?.logout(&a.host, ctx.flags).await?;
    println!(
        "Removed the login of user {} for {}; other users' logins are unchanged",
        me(),
        a.host
    );
    Ok(ExitCode::SUCCESS)
}

/// This process's user name (berthd stores the login for the same uid, as
/// the bus reports it), or its uid if it has no name.
fn me() -> String {
    let uid = rustix::process::getuid().as_raw();
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: zeroed is a valid `passwd` (null pointers, zero ids).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `out` is set to `&pwd`
    // or null.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: on success `pw_name` points into `buf`, NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned()
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
