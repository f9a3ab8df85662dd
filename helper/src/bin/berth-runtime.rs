//! `berth-runtime`: Berth's OCI runtime with the command line runc, crun
//! and youki share, so conformance suites and shims can drive it. Argument
//! parsing only; the work is in `berthd::runtime`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berthd::runtime::container::DEFAULT_STATE_ROOT;
use berthd::runtime::{self, exec_in, hooks, spec, Container, CreateOptions, ExecOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "Berth's OCI container runtime"
)]
struct Cli {
    /// Where container state lives.
    #[arg(long, global = true, default_value = DEFAULT_STATE_ROOT)]
    root: PathBuf,
    /// Accepted for compatibility with runc's callers; ignored.
    #[arg(long, global = true, hide = true)]
    log: Option<PathBuf>,
    #[arg(long, global = true, hide = true)]
    log_format: Option<String>,
    #[arg(long, global = true, hide = true)]
    debug: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container; it waits for `start`.
    Create {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
    },
    /// Start a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default TERM) to a container.
    Kill {
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a stopped container (--force: kill it first).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; without --detach, wait for it and exit
    /// with its exit code.
    Run {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
    },
    /// Run a command in a running container and wait for it.
    Exec {
        /// Working directory inside the container.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// KEY=VALUE to add to the container's environment.
        #[arg(short, long)]
        env: Vec<String>,
        #[arg(short, long)]
        tty: bool,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// List containers.
    List,
    /// Write a default config.json to the current directory.
    Spec {
        #[arg(long)]
        rootless: bool,
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
}

fn main() -> ExitCode {
    runtime::run_init_if_requested();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let code = e
                .downcast_ref::<runtime::Error>()
                .map(runtime::Error::exit_code)
                .unwrap_or(1);
            eprintln!("berth-runtime: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let root = cli.root;
    match cli.command {
        Cmd::Create {
            bundle,
            pid_file,
            console_socket,
            id,
        } => {
            let c = Container::create(create_options(&root, id, bundle, pid_file, console_socket))?;
            after_create(&c)?;
            Ok(0)
        }
        Cmd::Start { id } => {
            let c = Container::load(&root, &id)?;
            c.start()?;
            after_start(&c);
            Ok(0)
        }
        Cmd::State { id } => {
            let state = Container::state(&root, &id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(0)
        }
        Cmd::Kill { id, signal } => {
            let sig = runtime::signal::parse(&signal)?;
            Container::load(&root, &id)?.kill(sig)?;
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            delete_with_hooks(Container::load(&root, &id)?, force)?;
            Ok(0)
        }
        Cmd::Run {
            bundle,
            detach,
            pid_file,
            console_socket,
            id,
        } => {
            if !detach {
                become_subreaper()?;
            }
            let forward = (!detach).then(block_forwarded_signals);
            let c = Container::create(create_options(&root, id, bundle, pid_file, console_socket))?;
            after_create(&c)?;
            if let Err(e) = c.start() {
                let _ = delete_with_hooks(c, true);
                return Err(e.into());
            }
            after_start(&c);
            if detach {
                return Ok(0);
            }
            let code = wait_forwarding(c.pid(), &forward.expect("not detached"));
            let _ = delete_with_hooks(c, true);
            Ok(code?)
        }
        Cmd::Exec {
            cwd,
            env,
            tty,
            console_socket,
            id,
            command,
        } => {
            let c = Container::load(&root, &id)?;
            let spec = spec::load(&c.state.bundle)?;
            let mut process = spec
                .process()
                .clone()
                .context("the container's config has no process")?;
            let mut full_env = process.env().clone().unwrap_or_default();
            full_env.extend(env);
            process.set_env(Some(full_env));
            process.set_args(Some(command));
            process.set_terminal(Some(tty));
            if let Some(cwd) = cwd {
                process.set_cwd(cwd);
            }
            become_subreaper()?;
            let forward = block_forwarded_signals();
            let pid = exec_in(
                &c,
                ExecOptions {
                    process,
                    console_socket,
                    ..Default::default()
                },
            )?;
            wait_forwarding(pid, &forward)
        }
        Cmd::List => {
            println!("{:<24} {:>8} {:<10} BUNDLE", "ID", "PID", "STATUS");
            for c in Container::list(&root)? {
                let s = c.oci_state();
                println!(
                    "{:<24} {:>8} {:<10} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display()
                );
            }
            Ok(0)
        }
        Cmd::Spec { rootless, bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{} already exists: remove it first", path.display());
            }
            let s = if rootless {
                spec::rootless_spec(
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                )
            } else {
                spec::default_spec()
            };
            let json = serde_json::to_string_pretty(&s)?;
            std::fs::write(&path, json + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
    }
}

/// Save the config's hooks for the later verbs and run the `createRuntime`
/// and `prestart` ones. Should one fail, the container is deleted (the
/// spec's "stop the container and continue the lifecycle at delete") and
/// `create` fails.
fn after_create(c: &Container) -> anyhow::Result<()> {
    let spec = spec::load(&c.state.bundle)?;
    let Some(h) = spec.hooks().as_ref() else {
        return Ok(());
    };
    let in_container =
        |v: &Option<Vec<oci_spec::runtime::Hook>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if in_container(h.create_container()) || in_container(h.start_container()) {
        eprintln!("berth-runtime: warning: createContainer and startContainer hooks are not supported; ignoring them");
    }
    let result = hooks::save(&c.dir, Some(h))
        .context("saving the config's hooks")
        .and_then(|()| {
            let state = c.oci_state();
            hooks::run("createRuntime", h.create_runtime().as_ref(), &state)?;
            hooks::run("prestart", h.prestart().as_ref(), &state)?;
            Ok(())
        });
    if let Err(e) = result {
        let _ = delete_with_hooks(c.clone(), true);
        return Err(e);
    }
    Ok(())
}

/// `poststart` hooks: a failure is only a warning.
fn after_start(c: &Container) {
    let h = hooks::load(&c.dir);
    hooks::run_warn("poststart", h.poststart().as_ref(), &c.oci_state());
}

/// Delete the container, then run its `poststop` hooks (a failure is only
/// a warning).
fn delete_with_hooks(c: Container, force: bool) -> anyhow::Result<()> {
    let h = hooks::load(&c.dir);
    let mut state = c.oci_state();
    c.delete(force)?;
    state.status = runtime::Status::Stopped;
    hooks::run_warn("poststop", h.poststop().as_ref(), &state);
    Ok(())
}

fn create_options(
    root: &Path,
    id: String,
    bundle: PathBuf,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
) -> CreateOptions {
    CreateOptions {
        id,
        bundle,
        state_root: root.to_path_buf(),
        pid_file,
        console_socket,
        ..Default::default()
    }
}

/// Orphaned container processes become our children, so we can wait for
/// them.
fn become_subreaper() -> anyhow::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("prctl(PR_SET_CHILD_SUBREAPER)")
}

/// Signals `run` and `exec` pass on to the container, plus SIGCHLD.
fn block_forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local, then the mask of this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGCHLD,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait for `pid`, passing on the signals we receive; reap any other
/// orphans on the way. Returns its exit code (128 + signal if killed).
fn wait_forwarding(pid: i32, set: &libc::sigset_t) -> anyhow::Result<i32> {
    loop {
        loop {
            let mut status = 0;
            // SAFETY: plain syscall with a valid out pointer.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r <= 0 {
                if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                    anyhow::bail!("lost track of the container process {pid}");
                }
                break;
            }
            if r == pid {
                if libc::WIFEXITED(status) {
                    return Ok(libc::WEXITSTATUS(status));
                }
                if libc::WIFSIGNALED(status) {
                    return Ok(128 + libc::WTERMSIG(status));
                }
            }
        }
        let mut sig = 0;
        // SAFETY: the set is initialised; sig is a valid out pointer.
        if unsafe { libc::sigwait(set, &mut sig) } != 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, sig) };
        }
    }
}
