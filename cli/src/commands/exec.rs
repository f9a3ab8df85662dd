use std::os::fd::AsFd;
use std::process::ExitCode;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Keep standard input open (without it, the command reads nothing).
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Set an environment variable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let devnull = std::fs::File::open("/dev/null")?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let input: zbus::zvariant::Fd<'_> = if a.interactive {
        stdin.as_fd().into()
    } else {
        devnull.as_fd().into()
    };
    let (rows, cols) = if a.tty {
        rustix::termios::tcgetwinsize(&stdout)
            .map(|w| (w.ws_row, w.ws_col))
            .unwrap_or((24, 80))
    } else {
        (0, 0)
    };
    let raw = if a.tty && a.interactive && std::io::IsTerminal::is_terminal(&stdin) {
        Some(crate::terminal::RawMode::enter()?)
    } else {
        None
    };
    let args: Vec<&str> = a.command.iter().map(String::as_str).collect();
    let env: Vec<&str> = a.env.iter().map(String::as_str).collect();
    let code = ctx
        .helper()
        .await?
        .exec_container(
            &a.container,
            &args,
            &env,
            a.workdir.as_deref().unwrap_or(""),
            vec![input, stdout.as_fd().into(), stderr.as_fd().into()],
            a.tty,
            rows,
            cols,
            ctx.flags,
        )
        .await;
    drop(raw);
    let code = code?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
