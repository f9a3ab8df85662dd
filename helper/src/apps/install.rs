//! `install`: one job from a catalog entry to an app that answers.
//!
//! ```text
//!  record the app (state installing)                     install-recorded
//!  copy its files to <root>/apps/<id>
//!  for each image:   ledger, pull if missing (with the   install-pulled-image
//!                    installing user's logins only)
//!  for each volume:  ledger, make <root>/volumes/<app>_<v>/_data   install-volume
//!  network:          ledger, bridge + table              install-network
//!  for each service (dependencies first):
//!      ledger, create container <app>-<service>-1        install-container
//!      ledger, attach it to the network                  install-attached
//!      ledger, publish its ports                         install-published
//!  write every container's /etc/hosts (service names → addresses)
//!  start each service once what it depends on is started or healthy
//!                                                        install-started
//!  wait until the app's port answers, or its healthchecks pass
//!                                                        install-ready
//!  state installed
//! ```
//!
//! Every resource is in the ledger before it is made (see
//! [`crate::ledger`]). On an error or a cancel the ledger is walked
//! backwards at once; after a crash, [`AppManager::open`] does the same for
//! an app still `installing`. The names on the right are
//! [`super::crash_point`]s.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use berth_api::{InstallOptions, InstallResult, RunOptions, UsernsMode, Volume};
use tokio::sync::watch;

use super::compose::{Protocol as ComposeProtocol, Service};
use super::crash::crash_point;
use super::manager::{state_err, AppManager};
use super::{App, Error, Result};
use crate::cancel::Cancel;
use crate::images::now;
use crate::ledger::{self, Resource};
use crate::network::{PortRequest, Protocol};
use crate::registry::Requester;
use crate::state::AppRecord;

/// The catalog's variables, kept with the installed app's files.
pub(super) const VARS_FILE: &str = "vars.json";

/// How long an install waits for the app to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Most processes in an app container whose Compose file sets no
/// `pids_limit` (or -1, Compose's "none"): Podman's default. Far above
/// what a server needs (a database with hundreds of connections, a JVM's
/// thread pools: threads count), and far below the host's `pid_max`, so a
/// fork bomb in an app stops there instead of taking the machine (issue 11).
pub(super) const DEFAULT_PIDS_LIMIT: i64 = 2048;

/// Host ports below this are the system's own (sshd, DNS, HTTP, CUPS…):
/// publishing one needs the user's say-so (`--port`).
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// Progress of an install, update or uninstall.
#[derive(Debug, Clone, Default)]
pub struct AppProgress {
    /// `pulling`, `creating`, `starting`, `waiting`, `removing`, `auditing`, `done`.
    pub phase: &'static str,
    /// What is being worked on: an image, a service.
    pub detail: String,
    /// Every layer of every image pulled so far.
    pub layers: Vec<crate::images::LayerProgress>,
}

/// The container of a service: `<app>-<service>-1`, as Compose names it.
pub(super) fn container_name(app: &str, service: &str) -> String {
    format!("{app}-{service}-1")
}

/// A named volume's full name: `<app>_<volume>`, as Compose names it.
pub(super) fn volume_name(app: &str, volume: &str) -> String {
    format!("{app}_{volume}")
}

/// Host ports asked for instead of the catalog's: (service, container
/// port) → host port.
pub(super) type PortOverrides = BTreeMap<(String, u16), u16>;

/// What the user asked to change about the catalog's ports, checked
/// against the app, and the address to listen on instead of the catalog's.
pub(super) fn port_overrides(
    app: &App,
    opts: &InstallOptions,
) -> Result<(PortOverrides, Option<Ipv4Addr>)> {
    let mut out = BTreeMap::new();
    for o in &opts.ports {
        let Some(service) = app.compose.service(&o.service) else {
            return Err(Error::InvalidArgument(format!(
                "--port {}:{}: app {} has no service `{}` (its services: {})",
                o.service,
                o.host_port,
                app.id,
                o.service,
                app.compose
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if o.host_port == 0 {
            return Err(Error::InvalidArgument(format!(
                "--port {}:0: the host port must be 1 to 65535",
                o.service
            )));
        }
        let target = if o.container_port == 0 {
            match service.ports.first() {
                Some(p) => p.target,
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "--port {}:{}: service {} publishes no port",
                        o.service, o.host_port, o.service
                    )))
                }
            }
        } else {
            if !service.ports.iter().any(|p| p.target == o.container_port) {
                return Err(Error::InvalidArgument(format!(
                    "--port {}:{}:{}: service {} publishes no port {} (it publishes {})",
                    o.service,
                    o.host_port,
                    o.container_port,
                    o.service,
                    o.container_port,
                    service
                        .ports
                        .iter()
                        .map(|p| p.target.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            o.container_port
        };
        out.insert((o.service.clone(), target), o.host_port);
    }
    let listen = match opts.host_ip.trim() {
        "" => None,
        s => match s.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                "--listen {s}: give an IPv4 address of this machine, such as 127.0.0.1 or 0.0.0.0"
            )))
            }
        },
    };
    Ok((out, listen))
}

/// What the Compose file asks of the host that only the user may grant
/// (issue 11), refused unless the install's options grant it: a port
/// published on an address other than loopback (0.0.0.0: every network
/// the computer is on) without `--listen`, and a host port below 1024
/// not named with `--port`. Checked at install before anything is made.
/// An explicit `--port web:80` is the user's consent to port 80.
pub(super) fn check_port_consent(
    app: &App,
    overrides: &PortOverrides,
    listen: Option<Ipv4Addr>,
) -> Result<()> {
    for s in app.compose.services.values() {
        for (i, p) in s.ports.iter().enumerate() {
            // `--port SERVICE:HOSTPORT` names the service's first port.
            let flag = |host: &str| match i {
                0 => format!("--port {}:{host}", s.name),
                _ => format!("--port {}:{host}:{}", s.name, p.target),
            };
            let what = format!(
                "the Compose file of {} publishes port {} of service {}",
                app.id, p.target, s.name
            );
            match (listen, p.host_ip) {
                (Some(_), _) | (None, None) => {}
                (None, Some(IpAddr::V4(ip))) if ip.is_loopback() => {}
                (None, Some(ip)) => {
                    let reach = match ip {
                        IpAddr::V4(ip) if ip.is_unspecified() => {
                            "every network this computer is on"
                        }
                        IpAddr::V4(_) => "an address other machines may reach",
                        IpAddr::V6(_) => "an IPv6 address; Berth publishes on IPv4 only",
                    };
                    let honour = match ip {
                        IpAddr::V4(_) => format!("--listen {ip} to publish it there, or "),
                        IpAddr::V6(_) => String::new(),
                    };
                    return Err(Error::InvalidArgument(format!(
                        "{what} on {ip} ({reach}); Berth publishes on 127.0.0.1 unless told \
                         otherwise: install with {honour}--listen 127.0.0.1 to keep it on this \
                         computer"
                    )));
                }
            }
            let overridden = overrides.contains_key(&(s.name.clone(), p.target));
            if let Some(port) = p.published.filter(|&n| n < FIRST_UNPRIVILEGED_PORT) {
                if !overridden {
                    return Err(Error::InvalidArgument(format!(
                        "{what} on host port {port}, below {FIRST_UNPRIVILEGED_PORT}, where the \
                         system's own services listen; install with {} (or another port) to \
                         publish it there instead, or with {} to confirm port {port}",
                        flag(&(port + 8000).to_string()),
                        flag(&port.to_string())
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The container options of a service.
pub(super) fn run_options(
    app_id: &str,
    s: &Service,
    netns: &Path,
    volume_dir: impl Fn(&str) -> std::path::PathBuf,
) -> RunOptions {
    let (entrypoint, mut cmd) = match &s.entrypoint {
        Some(e) => match e.split_first() {
            Some((prog, args)) => (Some(prog.clone()), args.to_vec()),
            None => (Some(String::new()), Vec::new()),
        },
        None => (None, Vec::new()),
    };
    if let Some(c) = &s.command {
        cmd.extend(c.iter().cloned());
    }
    RunOptions {
        name: Some(container_name(app_id, &s.name)),
        env: s.env_list(),
        workdir: s.working_dir.clone(),
        user: s.user.clone(),
        entrypoint,
        cmd,
        memory: s.mem_limit.unwrap_or(0),
        millicpus: s.millicpus.unwrap_or(0),
        pids_limit: s.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
        network: berth_api::Network::None,
        netns: Some(netns.display().to_string()),
        volumes: s
            .volumes
            .iter()
            .map(|m| Volume {
                host: volume_dir(&volume_name(app_id, &m.source))
                    .join("_data")
                    .display()
                    .to_string(),
                container: m.target.clone(),
                read_only: m.read_only,
                populate: true,
            })
            .collect(),
        userns: UsernsMode::Host,
        ..RunOptions::default()
    }
}

/// What to ask the network for to publish the service's ports.
pub(super) fn port_requests(
    s: &Service,
    overrides: &BTreeMap<(String, u16), u16>,
    listen: Option<Ipv4Addr>,
) -> Result<Vec<PortRequest>> {
    let mut requests = Vec::new();
    for p in &s.ports {
        let host_ip = match (listen, p.host_ip) {
            (Some(ip), _) => ip,
            (None, None) => Ipv4Addr::LOCALHOST,
            (None, Some(IpAddr::V4(ip))) => ip,
            (None, Some(IpAddr::V6(ip))) => {
                return Err(Error::InvalidArgument(format!(
                    "service {} publishes a port on the IPv6 address {ip}; Berth publishes \
                     on IPv4 addresses only (give --listen 127.0.0.1 or 0.0.0.0)",
                    s.name
                )))
            }
        };
        let host_port = overrides
            .get(&(s.name.clone(), p.target))
            .copied()
            .or(p.published)
            .unwrap_or(0);
        requests.push(PortRequest {
            host_ip,
            host_port,
            container_port: p.target,
            protocol: match p.protocol {
                ComposeProtocol::Tcp => Protocol::Tcp,
                ComposeProtocol::Udp => Protocol::Udp,
            },
        });
    }
    Ok(requests)
}

impl AppManager {
    /// Install app `id` from a catalog for `who` (its owner; pulls use
    /// its logins): pull, make its network, volumes and containers, start
    /// them in dependency order and wait until it answers.
    pub async fn install(
        &self,
        id: &str,
        opts: &InstallOptions,
        who: Requester,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<InstallResult> {
        let _busy = self.busy(id, "installing")?;
        if let Some(a) = self.db().app(id).map_err(state_err)? {
            return Err(Error::Conflict(match a.state.as_str() {
                "installed" => format!(
                    "app {id} is already installed; `berth update {id}` gets newer images, \
                     `berth uninstall {id}` removes it"
                ),
                other => format!("app {id} is {other}; wait until that has finished"),
            }));
        }
        let (catalog, vars, app) = self.find_in_catalogs(id, &opts.catalog)?;
        let (overrides, listen) = port_overrides(&app, opts)?;
        check_port_consent(&app, &overrides, listen)?;
        for s in app.compose.services.values() {
            let name = container_name(id, &s.name);
            if self.inner.containers.find(&name).is_ok() {
                return Err(Error::Conflict(format!(
                    "a container named {name} exists and is not part of an installed app; \
                     remove it (berth rm -f {name}) and install again"
                )));
            }
        }
        self.db()
            .insert_app(&AppRecord {
                id: id.to_string(),
                catalog,
                state: "installing".into(),
                desired: "running".into(),
                options: serde_json::to_string(opts).expect("options serialise"),
                removal: String::new(),
                installed: now(),
                owner: who.owner(),
            })
            .map_err(state_err)?;
        crash_point("install-recorded");
        let mut notes = Vec::new();
        let result = self
            .install_steps(&app, &vars, opts, who, progress, cancel, &mut notes)
            .await;
        match result {
            Ok(()) => {
                crash_point("install-ready");
                self.db()
                    .set_app_state(id, "installed")
                    .map_err(state_err)?;
                self.finished(id, progress, notes)
            }
            Err(e) => {
                let e = if cancel.is_cancelled() {
                    Error::Cancelled(format!("the install of {id} was cancelled"))
                } else {
                    e
                };
                tracing::warn!(app = id, error = %e, "install failed; rolling back");
                progress.send_modify(|p| {
                    p.phase = "removing";
                    p.detail = "rolling back".into();
                });
                let undo = self.roll_back(id).await;
                Err(with_roll_back(e, undo))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn install_steps(
        &self,
        app: &App,
        vars: &super::Vars,
        opts: &InstallOptions,
        who: Requester,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let id = app.id.as_str();
        let cancelled = || -> Result<()> {
            if cancel.is_cancelled() {
                Err(Error::Cancelled("cancelled".into()))
            } else {
                Ok(())
            }
        };
        // The app's own copy of its files.
        let dir = self.app_dir(id);
        let seq = self
            .ledger_add(
                id,
                &Resource::AppDir {
                    path: dir.display().to_string(),
                },
            )
            .await?;
        copy_app_files(app, vars, &dir)?;
        let app = self.installed_app(id)?;
        self.mark_made(id, seq, None)?;

        // Images.
        for reference in app.compose.images() {
            cancelled()?;
            self.ensure_image(id, &reference.to_string(), who, progress, cancel)
                .await?;
            crash_point("install-pulled-image");
        }

        // Volumes.
        for v in &app.compose.volumes {
            cancelled()?;
            let name = volume_name(id, v);
            let path = self.volume_dir(&name);
            let kept = self.db().volume(&name).map_err(state_err)?.is_some()
                && path.join("_data").is_dir();
            let seq = self
                .ledger_add(
                    id,
                    &Resource::Volume {
                        name: name.clone(),
                        path: path.display().to_string(),
                        created: !kept,
                    },
                )
                .await?;
            if kept {
                notes.push(format!(
                    "found the data kept from an earlier install in volume {name}"
                ));
            } else {
                self.db()
                    .insert_volume(&name, id, now())
                    .map_err(state_err)?;
                // `_data` is the volume's root as the container sees it:
                // 0755, as Docker makes it, for the container's users (a
                // new volume then takes the image's mode, see
                // containers::populate). Its own directory keeps others out.
                let io = |source| Error::Io {
                    what: "creating the volume",
                    path: path.clone(),
                    source,
                };
                crate::fsmode::make_dir(&path, crate::fsmode::DIR).map_err(io)?;
                crate::fsmode::make_dir(&path.join("_data"), 0o755).map_err(io)?;
            }
            self.mark_made(id, seq, None)?;
            crash_point("install-volume");
        }

        // Network.
        progress.send_modify(|p| {
            p.phase = "creating";
            p.detail = format!("network {id}");
        });
        let seq = self
            .ledger_add(id, &Resource::Network { name: id.into() })
            .await?;
        let networks = self.inner.networks.clone();
        let net = id.to_string();
        blocking(move || networks.create(&net)).await??;
        self.mark_made(id, seq, None)?;
        crash_point("install-network");

        // Containers, their addresses and ports.
        let (overrides, listen) = port_overrides(&app, opts)?;
        let mut addresses = Vec::new();
        for s in app.compose.start_order() {
            cancelled()?;
            let name = container_name(id, &s.name);
            progress.send_modify(|p| {
                p.phase = "creating";
                p.detail = format!("container {name}");
            });
            self.create_service(&app, s).await?;
            crash_point("install-container");
            let ip = self.attach_service(id, &name).await?;
            crash_point("install-attached");
            addresses.push((ip, vec![s.name.clone(), name.clone()]));
            let moved = self.publish_service(id, s, &overrides, listen).await?;
            notes.extend(moved);
            crash_point("install-published");
        }
        self.write_hosts(&app, &addresses)?;

        // Start, dependencies first.
        self.start_services(&app, progress, cancel).await?;
        progress.send_modify(|p| {
            p.phase = "waiting";
            p.detail = format!("{id} to answer");
        });
        self.wait_ready(&app, READY_TIMEOUT, cancel).await
    }

    /// Append `r` to the app's ledger (not yet made).
    pub(super) async fn ledger_add(&self, app: &str, r: &Resource) -> Result<i64> {
        self.db()
            .ledger_add(app, r.kind(), r.name(), &ledger::detail(r))
            .map_err(state_err)
    }

    /// Report the job done; what it ends with.
    pub(super) fn finished(
        &self,
        id: &str,
        progress: &watch::Sender<AppProgress>,
        notes: Vec<String>,
    ) -> Result<InstallResult> {
        progress.send_modify(|p| {
            p.phase = "done";
            p.detail.clear();
        });
        Ok(InstallResult {
            app: self.inspect(id)?,
            notes,
        })
    }

    /// Mark ledger entry `seq` made (with an updated resource).
    pub(super) fn mark_made(&self, app: &str, seq: i64, updated: Option<&Resource>) -> Result<()> {
        let detail = updated.map(ledger::detail);
        self.db()
            .ledger_made(app, seq, detail.as_deref())
            .map_err(state_err)
    }

    /// The image is in the store, recorded in the ledger as pulled by this
    /// app if it was not there before.
    pub(super) async fn ensure_image(
        &self,
        app: &str,
        reference: &str,
        who: Requester,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<()> {
        let (present, seq) = {
            let _images = self.inner.images_lock.lock().await;
            let present = self.inner.images.find(reference).is_ok();
            let seq = self
                .ledger_add(
                    app,
                    &Resource::Image {
                        reference: reference.to_string(),
                        pulled: !present,
                    },
                )
                .await?;
            (present, seq)
        };
        if !present {
            self.pull_with_progress(reference, who, progress, cancel)
                .await?;
        }
        self.mark_made(app, seq, None)
    }

    /// Pull `reference` for `who`, reporting its layers with the ones
    /// pulled before.
    pub(super) async fn pull_with_progress(
        &self,
        reference: &str,
        who: Requester,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<crate::images::PullResult> {
        progress.send_modify(|p| {
            p.phase = "pulling";
            p.detail = reference.to_string();
        });
        let before = progress.borrow().layers.clone();
        let (tx, mut rx) = watch::channel(crate::images::PullProgress::default());
        let forward = {
            let progress = progress.clone();
            async move {
                while rx.changed().await.is_ok() {
                    let layers = rx.borrow().layers.clone();
                    progress.send_modify(|p| {
                        p.layers = before.clone();
                        for l in layers {
                            if !p.layers.iter().any(|b| b.digest == l.digest) {
                                p.layers.push(l);
                            }
                        }
                    });
                }
            }
        };
        let images = self.inner.images.clone();
        let pull = async move { images.pull(reference, who, &tx, cancel).await };
        let (r, ()) = tokio::join!(pull, forward);
        Ok(r?)
    }

    async fn create_service(&self, app: &App, s: &Service) -> Result<()> {
        let id = app.id.as_str();
        let name = container_name(id, &s.name);
        let seq = self
            .ledger_add(
                id,
                &Resource::Container {
                    name: name.clone(),
                    id: String::new(),
                    service: s.name.clone(),
                },
            )
            .await?;
        let netns = self.inner.networks.netns_path(&name);
        let opts = run_options(id, s, &netns, |v| self.volume_dir(v));
        let owner = self.owner(id)?;
        let c = self
            .inner
            .containers
            .create(&s.image.to_string(), &opts, owner)?;
        self.mark_made(
            id,
            seq,
            Some(&Resource::Container {
                name,
                id: c.id,
                service: s.name.clone(),
            }),
        )
    }

    /// Give the container its place on the app's network; its address.
    pub(super) async fn attach_service(&self, app: &str, name: &str) -> Result<Ipv4Addr> {
        let container_id = self.inner.containers.find(name)?.id;
        let seq = self
            .ledger_add(
                app,
                &Resource::Endpoint {
                    network: app.into(),
                    container: name.into(),
                    container_id: container_id.clone(),
                },
            )
            .await?;
        let networks = self.inner.networks.clone();
        let (net, n) = (app.to_string(), name.to_string());
        let ep = blocking(move || networks.attach(&net, &n)).await??;
        self.mark_made(app, seq, None)?;
        Ok(ep.ip)
    }

    /// Publish the service's ports; a note for each one that was taken and
    /// replaced by another.
    async fn publish_service(
        &self,
        app: &str,
        s: &Service,
        overrides: &BTreeMap<(String, u16), u16>,
        listen: Option<Ipv4Addr>,
    ) -> Result<Vec<String>> {
        if s.ports.is_empty() {
            return Ok(Vec::new());
        }
        let name = container_name(app, &s.name);
        let requests = port_requests(s, overrides, listen)?;
        let container_id = self.inner.containers.find(&name)?.id;
        let seq = self
            .ledger_add(
                app,
                &Resource::Ports {
                    network: app.into(),
                    container: name.clone(),
                    container_id: container_id.clone(),
                    published: Vec::new(),
                },
            )
            .await?;
        let networks = self.inner.networks.clone();
        let (net, n) = (app.to_string(), name.clone());
        let published = blocking(move || networks.publish(&net, &n, &requests)).await??;
        let mut notes = Vec::new();
        for p in &published {
            if p.moved() {
                notes.push(format!(
                    "port {} on {} was taken, so {} of service {} is published on port {} instead",
                    p.requested_host_port, p.host_ip, p.container_port, s.name, p.host_port
                ));
            }
        }
        self.mark_made(
            app,
            seq,
            Some(&Resource::Ports {
                network: app.into(),
                container: name,
                container_id,
                published: published
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}->{}/{}",
                            p.host_ip, p.host_port, p.container_port, p.protocol
                        )
                    })
                    .collect(),
            }),
        )?;
        Ok(notes)
    }

    /// Every container's /etc/hosts: each service by its name and its
    /// container's name.
    pub(super) fn write_hosts(
        &self,
        app: &App,
        addresses: &[(Ipv4Addr, Vec<String>)],
    ) -> Result<()> {
        for s in app.compose.services.values() {
            let name = container_name(&app.id, &s.name);
            self.inner.containers.set_hosts(&name, addresses)?;
        }
        Ok(())
    }
}

/// Copy the app's files (app.toml, the Compose file, the icon) and the
/// catalog's variables to `dir`, through a temporary directory renamed
/// into place.
fn copy_app_files(app: &App, vars: &super::Vars, dir: &Path) -> Result<()> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let parent = dir.parent().expect("apps dir has a parent");
    let tmp = parent.join(format!(
        ".{}.tmp",
        dir.file_name().expect("named").to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(dir);
    // Root's alone: the Compose file and the variables hold secrets.
    crate::fsmode::make_dir(&tmp, crate::fsmode::DIR).map_err(io("creating", &tmp))?;
    let mut files = vec![
        app.dir.join(super::catalog::APP_FILE),
        app.dir.join(super::compose::FILE_NAME),
        app.icon.clone(),
    ];
    files.dedup();
    for f in files {
        let rel = f.strip_prefix(&app.dir).unwrap_or(Path::new("icon"));
        let to = tmp.join(rel);
        if let Some(p) = to.parent() {
            crate::fsmode::make_dir(p, crate::fsmode::DIR).map_err(io("creating", p))?;
        }
        let bytes = super::read_small_file(&f, 1 << 20, "app file")?;
        write_new(&to, &bytes).map_err(io("writing", &to))?;
    }
    let v = tmp.join(VARS_FILE);
    write_new(&v, &serde_json::to_vec(vars).expect("vars serialise")).map_err(io("writing", &v))?;
    std::fs::File::open(&tmp)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, dir).map_err(io("renaming into place", dir))?;
    Ok(())
}

/// Write a new private file in the directory being made (renamed into
/// place whole afterwards, so no temp file of its own).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    crate::fsmode::create(path)?.write_all(bytes)
}

/// Run blocking network work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Failed(format!("a network operation crashed: {e}")))
}

/// The install's error, with what the roll-back could not remove.
fn with_roll_back(e: Error, undo: Result<Vec<String>>) -> Error {
    let left = match undo {
        Ok(left) if left.is_empty() => return e,
        Ok(left) => left,
        Err(u) => vec![u.to_string()],
    };
    Error::Failed(format!(
        "{e}; rolling back left: {} (`berth doctor` removes what it can)",
        left.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let compose =
            super::super::compose::parse(yaml, Path::new("compose.yaml"), &Default::default())
                .unwrap();
        App {
            id: "demo".into(),
            title: "Demo".into(),
            version: "1".into(),
            description: String::new(),
            category: super::super::Category::Demo,
            icon: dir.path().join("icon.svg"),
            website: None,
            open: None,
            dir: dir.path().to_path_buf(),
            compose,
        }
    }

    #[test]
    fn compose_becomes_container_options() {
        let a = app(
            "services:\n  web:\n    image: nginx\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command: echo hi\n    environment:\n      A: b\n    mem_limit: 64m\n    cpus: 0.5\n    pids_limit: 10\n    user: \"1000\"\n    working_dir: /srv\n    volumes:\n      - data:/srv/data:ro\nvolumes:\n  data:\n",
        );
        let s = a.compose.service("web").unwrap();
        let o = run_options("demo", s, Path::new("/run/b/netns/demo-web-1"), |v| {
            Path::new("/var/lib/b/volumes").join(v)
        });
        assert_eq!(o.name.as_deref(), Some("demo-web-1"));
        assert_eq!(o.entrypoint.as_deref(), Some("/bin/sh"));
        assert_eq!(o.cmd, ["-c", "echo", "hi"]);
        assert_eq!(o.env, ["A=b"]);
        assert_eq!((o.memory, o.millicpus, o.pids_limit), (64 << 20, 500, 10));
        assert_eq!(o.user.as_deref(), Some("1000"));
        assert_eq!(o.workdir.as_deref(), Some("/srv"));
        assert_eq!(o.netns.as_deref(), Some("/run/b/netns/demo-web-1"));
        assert_eq!(o.volumes.len(), 1);
        assert_eq!(o.volumes[0].host, "/var/lib/b/volumes/demo_data/_data");
        assert!(o.volumes[0].read_only && o.volumes[0].populate);
    }

    #[test]
    fn a_service_without_a_pids_limit_gets_the_default() {
        let a = app(
            "services:\n  web:\n    image: nginx\n  db:\n    image: postgres\n    pids_limit: -1\n",
        );
        for s in ["web", "db"] {
            let o = run_options(
                "demo",
                a.compose.service(s).unwrap(),
                Path::new("/n"),
                |v| Path::new("/v").join(v),
            );
            assert_eq!(o.pids_limit, DEFAULT_PIDS_LIMIT, "{s}");
        }
    }

    fn consent(yaml: &str, opts: &InstallOptions) -> Result<()> {
        let a = app(yaml);
        let (overrides, listen) = port_overrides(&a, opts)?;
        check_port_consent(&a, &overrides, listen)
    }

    #[test]
    fn ports_beyond_loopback_need_listen() {
        let none = InstallOptions::default();
        let listen = |ip: &str| InstallOptions {
            host_ip: ip.into(),
            ..InstallOptions::default()
        };
        for ok in ["8080:80", "80", "127.0.0.1:8080:80", "127.0.0.2:8080:80"] {
            let yaml = format!("services:\n  web:\n    image: nginx\n    ports: [\"{ok}\"]\n");
            consent(&yaml, &none).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let yaml = "services:\n  web:\n    image: nginx\n    ports: [\"0.0.0.0:8080:80\"]\n";
        let e = consent(yaml, &none).unwrap_err().to_string();
        assert_eq!(
            e,
            "the Compose file of demo publishes port 80 of service web on 0.0.0.0 (every \
             network this computer is on); Berth publishes on 127.0.0.1 unless told otherwise: \
             install with --listen 0.0.0.0 to publish it there, or --listen 127.0.0.1 to keep \
             it on this computer"
        );
        consent(yaml, &listen("0.0.0.0")).unwrap();
        consent(yaml, &listen("127.0.0.1")).unwrap();
        let yaml = "services:\n  web:\n    image: nginx\n    ports: [\"192.0.2.9:8080:80\"]\n";
        let e = consent(yaml, &none).unwrap_err().to_string();
        assert!(
            e.contains("on 192.0.2.9 (an address other machines may reach)")
                && e.contains("--listen 192.0.2.9"),
            "{e}"
        );
        let yaml = "services:\n  web:\n    image: nginx\n    ports: [\"[::1]:8080:80\"]\n";
        let e = consent(yaml, &none).unwrap_err().to_string();
        assert!(
            e.contains("IPv4 only") && e.contains("--listen 127.0.0.1"),
            "{e}"
        );
        consent(yaml, &listen("127.0.0.1")).unwrap();
    }

    #[test]
    fn privileged_host_ports_need_port() {
        let yaml = "services:\n  web:\n    image: nginx\n    ports: [\"127.0.0.1:80:8080\", \"443:8443\"]\n";
        let port = |host_port, container_port| InstallOptions {
            ports: vec![berth_api::PortOverride {
                service: "web".into(),
                host_port,
                container_port,
            }],
            ..InstallOptions::default()
        };
        let e = consent(yaml, &InstallOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the Compose file of demo publishes port 8080 of service web on host port 80, \
             below 1024, where the system's own services listen; install with --port \
             web:8080 (or another port) to publish it there instead, or with --port web:80 to \
             confirm port 80"
        );
        // The first port given elsewhere: the second one is named with its
        // container port.
        let e = consent(yaml, &port(8080, 0)).unwrap_err().to_string();
        assert!(
            e.contains("--port web:8443:8443") && e.contains("--port web:443:8443"),
            "{e}"
        );
        let both = InstallOptions {
            ports: vec![
                berth_api::PortOverride {
                    service: "web".into(),
                    host_port: 80,
                    container_port: 8080,
                },
                berth_api::PortOverride {
                    service: "web".into(),
                    host_port: 8443,
                    container_port: 8443,
                },
            ],
            ..InstallOptions::default()
        };
        consent(yaml, &both).unwrap();
        // --listen says nothing about privileged ports.
        let listen = InstallOptions {
            host_ip: "127.0.0.1".into(),
            ..InstallOptions::default()
        };
        assert!(consent(yaml, &listen).is_err());
    }

    #[test]
    fn port_overrides_are_checked_against_the_app() {
        let a = app("services:\n  web:\n    image: nginx\n    ports: [\"127.0.0.1:8080:80\"]\n  db:\n    image: postgres\n");
        let o = |service: &str, host_port, container_port| InstallOptions {
            ports: vec![berth_api::PortOverride {
                service: service.into(),
                host_port,
                container_port,
            }],
            ..InstallOptions::default()
        };
        let (m, listen) = port_overrides(&a, &o("web", 9000, 0)).unwrap();
        assert_eq!(m.get(&("web".to_string(), 80)), Some(&9000));
        assert_eq!(listen, None);
        let e = port_overrides(&a, &o("api", 9000, 0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no service `api`") && e.contains("db, web"),
            "{e}"
        );
        let e = port_overrides(&a, &o("db", 9000, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("publishes no port"), "{e}");
        let e = port_overrides(&a, &o("web", 0, 0)).unwrap_err().to_string();
        assert!(e.contains("1 to 65535"), "{e}");
        let e = port_overrides(&a, &o("web", 9000, 81))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no port 81"), "{e}");
        let bad = InstallOptions {
            host_ip: "localhost".into(),
            ..InstallOptions::default()
        };
        assert!(port_overrides(&a, &bad)
            .unwrap_err()
            .to_string()
            .contains("--listen"));
    }
}
