//! A real OCI registry per test: Debian's `docker-registry` (distribution
//! 2.8) on 127.0.0.1 and a free port, storing in a temp dir.
//!
//! Three ways to start it, one per kind of auth a client must handle:
//!
//! | constructor | registry `auth:` | client needs |
//! |---|---|---|
//! | [`Registry::start`] | none | nothing |
//! | [`Registry::start_with_token_auth`] | `token` (bearer JWTs from the kit's [`TokenServer`]) | the challenge dance; anonymous pulls, [`TOKEN_USER`] pushes |
//! | [`Registry::start_with_htpasswd`] | `htpasswd` (bcrypt file) | Basic credentials |
//!
//! Distribution 2.8 serves htpasswd auth over plain HTTP (it only warns), so
//! all three speak plain HTTP on loopback. Variants for tests of whose login
//! is used: [`Registry::start_with_htpasswd_users`] (several accounts) and
//! [`Registry::start_with_token_auth_on`] (the token server on another
//! address of the machine, a plain-HTTP realm off loopback).
//!
//! Lifecycle: started → (test) → dropped: the process gets SIGTERM (then
//! SIGKILL), the token server thread stops, the storage dir is removed. A
//! registry that must outlive the process (the README's run script) is made
//! with [`start_detached`] instead and stopped with [`stop_detached`].

pub mod client;
pub mod proxy;
pub mod token;

pub use client::{Manifest, RegistryClient};
pub use proxy::{FaultProxy, ProxiedRequest};
pub use token::TokenServer;

use crate::fsutil::TestDir;
use crate::proc::{self, ChildGuard};
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The user the token server and [`Registry::start_with_token_auth`] accept.
pub const TOKEN_USER: &str = "berth";
/// That user's password.
pub const TOKEN_PASSWORD: &str = "berth-token-password";
/// `auth.token.service` (the JWT audience).
pub const TOKEN_SERVICE: &str = "berth-test-registry";
/// `auth.token.issuer` (the JWT issuer).
pub const TOKEN_ISSUER: &str = "berth-test-token-issuer";
/// The realm of the htpasswd registry's Basic challenge.
pub const BASIC_REALM: &str = "berth-test-basic";

const REGISTRY_BIN: &str = "docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`Registry`] authenticates its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Anonymous,
    Token { user: String, password: String },
    Htpasswd { user: String, password: String },
}

impl RegistryAuth {
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            RegistryAuth::Anonymous => None,
            RegistryAuth::Token { user, password } | RegistryAuth::Htpasswd { user, password } => {
                Some((user, password))
            }
        }
    }
}

/// A running `docker-registry`. Fields drop in order: process, token server,
/// storage.
#[derive(Debug)]
pub struct Registry {
    child: ChildGuard,
    token: Option<TokenServer>,
    dir: TestDir,
    port: u16,
    auth: RegistryAuth,
}

impl Registry {
    /// An anonymous registry: anyone pulls and pushes.
    pub fn start() -> Result<Self> {
        Self::start_with(RegistryAuth::Anonymous)
    }

    /// A registry behind the kit's bearer-token server: anonymous clients get
    /// pull tokens, [`TOKEN_USER`]/[`TOKEN_PASSWORD`] get pull and push.
    pub fn start_with_token_auth() -> Result<Self> {
        Self::start_with(RegistryAuth::Token {
            user: TOKEN_USER.into(),
            password: TOKEN_PASSWORD.into(),
        })
    }

    /// A registry with htpasswd (bcrypt) basic auth for one user; every
    /// request, pulls included, needs the credentials.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Result<Self> {
        Self::start_with(RegistryAuth::Htpasswd {
            user: user.into(),
            password: password.into(),
        })
    }

    /// As [`Registry::start_with_htpasswd`] for several users, each with
    /// their own password; the first one pushes.
    pub fn start_with_htpasswd_users(users: &[(&str, &str)]) -> Result<Self> {
        let (user, password) = users.first().context("no htpasswd user given")?;
        let auth = RegistryAuth::Htpasswd {
            user: user.to_string(),
            password: password.to_string(),
        };
        Self::start_inner(auth, &users[1..], Ipv4Addr::LOCALHOST.into())
    }

    /// As [`Registry::start_with_token_auth`], with the token server on
    /// `ip` (an address of this machine) rather than 127.0.0.1: the
    /// registry sends clients to a plain-HTTP realm that is not on loopback.
    pub fn start_with_token_auth_on(ip: IpAddr) -> Result<Self> {
        let auth = RegistryAuth::Token {
            user: TOKEN_USER.into(),
            password: TOKEN_PASSWORD.into(),
        };
        Self::start_inner(auth, &[], ip)
    }

    pub fn start_with(auth: RegistryAuth) -> Result<Self> {
        Self::start_inner(auth, &[], Ipv4Addr::LOCALHOST.into())
    }

    fn start_inner(
        auth: RegistryAuth,
        more_users: &[(&str, &str)],
        token_ip: IpAddr,
    ) -> Result<Self> {
        let dir = TestDir::new("berth-registry-")?;
        let (auth_yaml, token) = match &auth {
            RegistryAuth::Anonymous => (String::new(), None),
            RegistryAuth::Token { user, password } => {
                let token = TokenServer::start_on(dir.path(), user, password, token_ip)?;
                let yaml = format!(
                    "auth:\n  token:\n    realm: \"{}\"\n    service: \"{TOKEN_SERVICE}\"\n    issuer: \"{TOKEN_ISSUER}\"\n    rootcertbundle: \"{}\"\n",
                    token.realm(),
                    token.cert_path().display()
                );
                (yaml, Some(token))
            }
            RegistryAuth::Htpasswd { user, password } => {
                let file = dir.join("htpasswd");
                let mut users = vec![(user.as_str(), password.as_str())];
                users.extend_from_slice(more_users);
                write_htpasswd(&file, &users)?;
                let yaml = format!(
                    "auth:\n  htpasswd:\n    realm: \"{BASIC_REALM}\"\n    path: \"{}\"\n",
                    file.display()
                );
                (yaml, None)
            }
        };

        let log = dir.join("registry.log");
        let mut last_err = None;
        // The free port can be taken between the check and the bind; retry.
        for _attempt in 0..5 {
            let port = crate::free_port()?;
            let config = write_config(dir.path(), &dir.join("data"), port, &auth_yaml)?;
            let mut cmd = registry_command(&config);
            redirect_output(&mut cmd, &log)?;
            let child = ChildGuard::spawn("docker-registry", cmd)?;
            match wait_ready(port, || child.is_running(), &log) {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        token,
                        dir,
                        port,
                        auth,
                    })
                }
                Err(err) => {
                    let _ = child.stop();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if !text.contains("address already in use") {
                        return Err(err);
                    }
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("docker-registry did not start")))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// The (user, password) that may push, if the registry wants any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.credentials()
    }

    /// A client carrying the push credentials (if any).
    pub fn client(&self) -> RegistryClient {
        let client = RegistryClient::new(&self.host());
        match self.credentials() {
            Some((user, password)) => client.with_credentials(user, password),
            None => client,
        }
    }

    /// A client without credentials.
    pub fn anonymous_client(&self) -> RegistryClient {
        RegistryClient::new(&self.host())
    }

    /// Pushes `image` as `repo:tag` with the registry's push credentials.
    pub fn push(&self, image: &crate::image::Image, repo: &str, tag: &str) -> Result<()> {
        image.push(&self.client(), repo, tag)
    }

    /// Pushes `index` and its images as `repo:tag`.
    pub fn push_index(&self, index: &crate::image::Index, repo: &str, tag: &str) -> Result<()> {
        index.push(&self.client(), repo, tag)
    }

    /// The token server of a token-auth registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Where the registry keeps its blobs and repositories.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The registry's log (warnings and the access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Access-log lines (`"GET /v2/... HTTP/1.1" 200 ...`) containing `needle`.
    pub fn access_log_matching(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" HTTP/1.1\" ") && l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Stops everything now (idempotent); `Drop` does the same. For fixtures
    /// held in statics, which never drop.
    pub fn shutdown(&self) {
        if let Err(err) = self.child.stop() {
            eprintln!("berth-testkit: stopping docker-registry: {err:#}");
        }
        if let Some(token) = &self.token {
            token.shutdown();
        }
        if let Err(err) = self.dir.cleanup() {
            eprintln!("berth-testkit: removing the registry dir: {err:#}");
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_htpasswd(file: &Path, users: &[(&str, &str)]) -> Result<()> {
    let mut lines = Vec::new();
    for (user, password) in users {
        let mut cmd = Command::new("htpasswd");
        cmd.args(["-Bbn", user, password]);
        let out = proc::run_ok("htpasswd", cmd, Duration::from_secs(30))
            .context("making a bcrypt htpasswd file (apt-get install apache2-utils)")?;
        // `-n` prints the line and an empty one.
        lines.extend_from_slice(String::from_utf8_lossy(&out.stdout).trim_end().as_bytes());
        lines.push(b'\n');
    }
    std::fs::write(file, &lines).with_context(|| format!("writing {}", file.display()))
}

/// Writes `config.yml` for a registry on 127.0.0.1:`port` storing in `data`.
fn write_config(dir: &Path, data: &Path, port: u16, auth_yaml: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let config = format!(
        r#"version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: "{data}"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: "127.0.0.1:{port}"
  secret: "berth-test-http-secret"
  headers:
    X-Content-Type-Options: [nosniff]
{auth_yaml}"#,
        data = data.display()
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `docker-registry serve CONFIG`, deaf to `REGISTRY_*` variables (which
/// would override the config file).
fn registry_command(config: &Path) -> Command {
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve").arg(config);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn redirect_output(cmd: &mut Command, log: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    Ok(())
}

/// Waits until `GET /v2/` answers (any status: 401 means ready too).
fn wait_ready(port: u16, mut alive: impl FnMut() -> bool, log: &Path) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/v2/");
    let result = proc::wait_until(
        "docker-registry to answer GET /v2/",
        START_TIMEOUT,
        Duration::from_millis(20),
        || {
            if !alive() {
                bail!("docker-registry exited during start-up");
            }
            Ok(crate::http::get(&url).is_ok())
        },
    );
    result.with_context(|| {
        format!(
            "starting docker-registry on 127.0.0.1:{port}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

/// A registry started by [`start_detached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetachedRegistry {
    pub pid: u32,
    pub port: u16,
}

/// Starts an anonymous `docker-registry` that outlives this process (its own
/// session, no parent-death signal), storing in `dir/data`, logging to
/// `dir/registry.log`, and records `dir/registry.pid` and `dir/registry.port`.
/// If those files name a registry that still runs, returns it instead.
pub fn start_detached(dir: &Path, port: Option<u16>) -> Result<DetachedRegistry> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(running) = read_detached(dir)? {
        return Ok(running);
    }
    let port = match port {
        Some(port) => port,
        None => crate::free_port()?,
    };
    let config = write_config(dir, &dir.join("data"), port, "")?;
    let log = dir.join("registry.log");
    let mut cmd = registry_command(&config);
    redirect_output(&mut cmd, &log)?;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context("starting docker-registry (apt-get install docker-registry)")?;
    let pid = child.id();
    let ready = wait_ready(port, || matches!(child.try_wait(), Ok(None)), &log);
    if let Err(err) = ready {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    std::fs::write(dir.join("registry.pid"), format!("{pid}\n"))?;
    std::fs::write(dir.join("registry.port"), format!("{port}\n"))?;
    // Deliberately not waited for: it runs on after we exit.
    drop(child);
    Ok(DetachedRegistry { pid, port })
}

/// The detached registry recorded in `dir`, if it still runs.
pub fn read_detached(dir: &Path) -> Result<Option<DetachedRegistry>> {
    let read = |name: &str| -> Option<u32> {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    let (Some(pid), Some(port)) = (read("registry.pid"), read("registry.port")) else {
        return Ok(None);
    };
    // The pid file may be stale and the pid reused: check what runs there.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_registry = String::from_utf8_lossy(&cmdline).contains(REGISTRY_BIN);
    Ok(is_registry.then_some(DetachedRegistry {
        pid,
        port: port as u16,
    }))
}

/// Stops the detached registry recorded in `dir` (SIGTERM, then SIGKILL
/// after 5 s) and removes its pid file. `Ok(false)` if none was running.
pub fn stop_detached(dir: &Path) -> Result<bool> {
    let Some(running) = read_detached(dir)? else {
        let _ = std::fs::remove_file(dir.join("registry.pid"));
        return Ok(false);
    };
    let pid = running.pid as libc::pid_t;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let gone = proc::wait_until(
        "the detached registry to exit",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || Ok(read_detached(dir)?.is_none()),
    );
    if gone.is_err() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(dir.join("registry.pid"));
    Ok(true)
}
