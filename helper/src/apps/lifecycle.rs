//! `start`, `stop`, `restart`, `update`, what `berth apps` shows, and
//! bringing apps back when berthd starts.
//!
//! # After a restart of berthd or of the machine
//!
//! [`AppManager::open`] first settles what a crash interrupted: an app
//! still `installing` is rolled back to nothing, one `removing` is removed
//! as it was asked, one `updating` is taken as installed. Then every app
//! whose desired state is `running` is started again in the background
//! (Compose's `restart: unless-stopped`, `always`): after a reboot
//! `/run` is empty, so its network is made again, each container gets a
//! new namespace and address, its ports are published again and the
//! /etc/hosts files rewritten. `berth stop APP` sets the desired state to
//! `stopped`, so a stopped app stays stopped. Bringing an app back uses the
//! images already in the store and pulls nothing, so it needs no one's
//! registry login; only `install` and `update` pull, with the logins of the
//! user who asked (issue 11).
//!
//! While berthd runs, a container of a running app that exits is started
//! again when its service's `restart` asks for it (`always`,
//! `unless-stopped`, `on-failure[:N]` after a non-zero exit), after a
//! delay that doubles from 1 s up to 1 min and starts over after a run of
//! 10 s or more, as Docker does.
//!
//! While berthd brings an app back at its start, `start`, `stop`,
//! `update` and `uninstall` of that app wait for it instead of refusing.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use berth_api::{AppInfo, InstallResult, PublishedPort, ServiceInfo};
use tokio::sync::watch;

use super::compose::Restart;
use super::install::{container_name, volume_name, AppProgress};
use super::manager::{state_err, AppManager};
use super::{App, Error, Result};
use crate::cancel::Cancel;
use crate::ledger::Resource;
use crate::network::nft;
use crate::registry::Requester;
use crate::state::AppRecord;

/// How long `start` waits for an app to answer.
const START_READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a container gets between SIGTERM and SIGKILL at `stop`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl AppManager {
    /// The uid that installed app `id` (whatever its state): its
    /// containers are made for that uid.
    pub(super) fn owner(&self, id: &str) -> Result<u32> {
        let a = self.db().app(id).map_err(state_err)?;
        a.map(|a| a.owner).ok_or_else(|| {
            Error::NotFound(format!(
                "app `{id}` is not installed; `berth apps` lists the installed ones"
            ))
        })
    }

    fn installed_record(&self, id: &str) -> Result<AppRecord> {
        let a = self.db().app(id).map_err(state_err)?.ok_or_else(|| {
            Error::NotFound(format!(
                "app `{id}` is not installed; `berth apps` lists the installed ones"
            ))
        })?;
        if a.state != "installed" {
            return Err(Error::Conflict(format!(
                "app {id} is {}; wait until that has finished",
                a.state
            )));
        }
        Ok(a)
    }

    /// Start the app: network, addresses, ports, then its services in
    /// dependency order; returns once it answers.
    pub async fn start(&self, id: &str) -> Result<AppInfo> {
        let _busy = self.busy_wait(id, "starting").await?;
        self.start_busy(id).await
    }

    /// `start`, with the app already marked busy.
    async fn start_busy(&self, id: &str) -> Result<AppInfo> {
        self.installed_record(id)?;
        self.db()
            .set_app_desired(id, "running")
            .map_err(state_err)?;
        let (tx, _rx) = watch::channel(AppProgress::default());
        self.bring_up(id, &tx, &Cancel::new()).await?;
        self.inspect(id)
    }

    /// Make sure everything of a running app is in place and running.
    async fn bring_up(
        &self,
        id: &str,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<()> {
        let app = self.installed_app(id)?;
        let networks = self.inner.networks.clone();
        let net = id.to_string();
        super::install::blocking(move || networks.create(&net)).await??;
        let mut addresses = Vec::new();
        for s in app.compose.start_order() {
            let name = container_name(id, &s.name);
            if self.inner.containers.find(&name).is_err() {
                // An update cut short between removing and creating it.
                tracing::warn!(
                    app = id,
                    "its container {name} is missing; creating it again"
                );
                self.recreate(id, s).await?;
            }
            let networks = self.inner.networks.clone();
            let (net, n) = (id.to_string(), name.clone());
            let ep = super::install::blocking(move || networks.attach(&net, &n)).await??;
            addresses.push((ep.ip, vec![s.name.clone(), name.clone()]));
        }
        self.republish(id, &app).await?;
        self.write_hosts(&app, &addresses)?;
        self.start_services(&app, progress, cancel).await?;
        self.wait_ready(&app, START_READY_TIMEOUT, cancel).await
    }

    /// Publish each container's ports as its ledger says (after a reboot
    /// the rules are gone; asking again for a published port is a no-op).
    async fn republish(&self, id: &str, app: &App) -> Result<()> {
        let options: berth_api::InstallOptions = self
            .db()
            .app(id)
            .map_err(state_err)?
            .and_then(|a| serde_json::from_str(&a.options).ok())
            .unwrap_or_default();
        let (overrides, listen) = super::install::port_overrides(app, &options)?;
        for e in self.entries(id)? {
            let Resource::Ports {
                container,
                published,
                ..
            } = &e.resource
            else {
                continue;
            };
            let Some(s) = app
                .compose
                .services
                .values()
                .find(|s| container_name(id, &s.name) == *container)
            else {
                continue;
            };
            // The ports given at install, so a reboot keeps the app's URL.
            let mut overrides = overrides.clone();
            for p in published {
                if let Some((host, port)) = parse_published(p) {
                    let _ = host;
                    overrides.insert((s.name.clone(), port.1), port.0);
                }
            }
            let requests = super::install::port_requests(s, &overrides, listen)?;
            let networks = self.inner.networks.clone();
            let (net, n) = (id.to_string(), container.clone());
            super::install::blocking(move || networks.publish(&net, &n, &requests)).await??;
        }
        Ok(())
    }

    /// Stop the app's containers, last started first; it stays stopped
    /// until started again (also across restarts).
    pub async fn stop(&self, id: &str) -> Result<AppInfo> {
        let _busy = self.busy_wait(id, "stopping").await?;
        self.installed_record(id)?;
        self.db()
            .set_app_desired(id, "stopped")
            .map_err(state_err)?;
        let app = self.installed_app(id)?;
        let mut order = app.compose.start_order();
        order.reverse();
        for s in order {
            let name = container_name(id, &s.name);
            if let Ok(c) = self.inner.containers.find(&name) {
                if c.state == "running" {
                    self.inner.containers.stop(&c.id, STOP_TIMEOUT).await?;
                }
            }
        }
        self.inspect(id)
    }

    pub async fn restart(&self, id: &str) -> Result<AppInfo> {
        self.stop(id).await?;
        self.start(id).await
    }

    /// Pull newer images (with `who`'s logins); recreate the services whose
    /// image changed (their volumes, network and ports stay), and start the
    /// app.
    pub async fn update(
        &self,
        id: &str,
        who: Requester,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<InstallResult> {
        let _busy = self.busy_wait(id, "updating").await?;
        self.installed_record(id)?;
        let app = self.installed_app(id)?;
        self.db().set_app_state(id, "updating").map_err(state_err)?;
        let result = self.update_steps(&app, who, progress, cancel).await;
        self.db()
            .set_app_state(id, "installed")
            .map_err(state_err)?;
        let notes = result?;
        self.db()
            .set_app_desired(id, "running")
            .map_err(state_err)?;
        self.bring_up(id, progress, cancel).await?;
        self.finished(id, progress, notes)
    }

    async fn update_steps(
        &self,
        app: &App,
        who: Requester,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<Vec<String>> {
        let id = app.id.as_str();
        let mut notes = Vec::new();
        for s in app.compose.start_order() {
            let reference = s.image.to_string();
            let name = container_name(id, &s.name);
            let before = self.inner.images.find(&reference).ok().map(|n| n.manifest);
            self.pull_with_progress(&reference, who, progress, cancel)
                .await?;
            let now = self.inner.images.find(&reference)?.manifest;
            let c = self.inner.containers.find(&name)?;
            if c.manifest == now {
                continue;
            }
            if before.as_ref() != Some(&now) {
                notes.push(format!("{} has a newer image", s.name));
            }
            progress.send_modify(|p| {
                p.phase = "creating";
                p.detail = format!("container {name}");
            });
            // The same name, so the ledger's entry stays right; its id is updated.
            if c.state == "running" {
                self.inner.containers.stop(&c.id, STOP_TIMEOUT).await?;
            }
            let networks = self.inner.networks.clone();
            let (net, n) = (id.to_string(), name.clone());
            super::install::blocking(move || {
                let _ = networks.unpublish(&net, &n);
                networks.detach(&net, &n)
            })
            .await??;
            self.inner.containers.remove(&c.id, true).await?;
            self.recreate(id, s).await?;
        }
        Ok(notes)
    }

    /// Create a service's container again under its name (the ledger
    /// entry, found by that name, gets the new id).
    async fn recreate(&self, id: &str, s: &super::compose::Service) -> Result<()> {
        let name = container_name(id, &s.name);
        let netns = self.inner.networks.netns_path(&name);
        let opts = super::install::run_options(id, s, &netns, |v| self.volume_dir(v));
        let owner = self.owner(id)?;
        let created = self
            .inner
            .containers
            .create(&s.image.to_string(), &opts, owner)?;
        let entry = self
            .entries(id)?
            .into_iter()
            .find(|e| matches!(&e.resource, Resource::Container { name: n, .. } if *n == name));
        if let Some(e) = entry {
            let r = Resource::Container {
                name: name.clone(),
                id: created.id.clone(),
                service: s.name.clone(),
            };
            self.db()
                .ledger_made(id, e.seq, Some(&crate::ledger::detail(&r)))
                .map_err(state_err)?;
        }
        Ok(())
    }

    /// Settle apps and volume deletions a crash left half-way; then start
    /// the apps that should run, in the background.
    pub(super) async fn recover(&self) {
        self.finish_volume_removals();
        let apps = match self.db().apps() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("cannot read the installed apps: {e}");
                return;
            }
        };
        let (tx, _rx) = watch::channel(AppProgress::default());
        for a in &apps {
            let result = match a.state.as_str() {
                "installing" => {
                    tracing::warn!(
                        app = a.id,
                        "berthd stopped during its install; rolling it back"
                    );
                    self.roll_back(&a.id).await.map(|left| {
                        if !left.is_empty() {
                            tracing::error!(app = a.id, "rolling back left: {}", left.join("; "));
                        }
                    })
                }
                "removing" => {
                    tracing::warn!(
                        app = a.id,
                        "berthd stopped during its uninstall; finishing it"
                    );
                    self.resume_removal(a, &tx).await.map(|r| {
                        if !r.clean {
                            tracing::error!(
                                app = a.id,
                                "uninstall left: {}",
                                r.remaining.join("; ")
                            );
                        }
                    })
                }
                "updating" => self
                    .db()
                    .set_app_state(&a.id, "installed")
                    .map_err(state_err),
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::error!(app = a.id, "recovering: {e}");
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            for a in this.db().apps().unwrap_or_default() {
                if a.state == "installed" && a.desired == "running" {
                    let started = match this.busy(&a.id, super::manager::COMING_BACK) {
                        Ok(_busy) => this.start_busy(&a.id).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = started {
                        tracing::error!(app = a.id, "starting it again: {e}");
                    }
                }
            }
            this.restart_on_exit().await;
        });
    }

    /// Start containers of running apps again when they exit, as their
    /// service's `restart` says.
    async fn restart_on_exit(&self) {
        let mut events = self.inner.containers.subscribe();
        let mut delays: HashMap<String, (Duration, u32)> = HashMap::new();
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            if ev.state != "exited" {
                continue;
            }
            let Some((app, service)) = self.owner_of(&ev.name) else {
                continue;
            };
            let Ok(Some(rec)) = self.db().app(&app) else {
                continue;
            };
            if rec.state != "installed" || rec.desired != "running" {
                continue;
            }
            if self
                .inner
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&app)
            {
                continue;
            }
            let Ok(a) = self.installed_app(&app) else {
                continue;
            };
            let Some(s) = a.compose.service(&service) else {
                continue;
            };
            let (delay, count) = delays
                .entry(ev.name.clone())
                .or_insert((Duration::from_millis(500), 0));
            // A run of 10 s or more was a success: the back-off starts over.
            if let Ok(c) = self.inner.containers.find(&ev.name) {
                if c.finished - c.started >= 10 {
                    *delay = Duration::from_millis(500);
                }
            }
            let again = match s.restart {
                Restart::No => false,
                Restart::Always | Restart::UnlessStopped => true,
                Restart::OnFailure(max) => ev.exit_code != 0 && max.is_none_or(|m| *count < m),
            };
            if !again {
                continue;
            }
            *delay = (*delay * 2).min(Duration::from_secs(60));
            *count += 1;
            let (d, this, name) = (*delay, self.clone(), ev.name.clone());
            tracing::info!(
                container = name,
                "restarting in {} ms (its restart policy)",
                d.as_millis()
            );
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                let still = this
                    .db()
                    .app(&app)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.state == "installed" && r.desired == "running");
                if still {
                    if let Err(e) = this.inner.containers.start(&name, None).await {
                        tracing::warn!(container = name, "restarting: {e}");
                    }
                }
            });
        }
    }

    /// The app and service a container belongs to, by its ledger.
    fn owner_of(&self, container: &str) -> Option<(String, String)> {
        self.db().ledger_all().ok()?.into_iter().find_map(|row| {
            if row.kind != "container" || row.name != container {
                return None;
            }
            match crate::ledger::Entry::from_row(&row).ok()?.resource {
                Resource::Container { service, .. } => Some((row.app, service)),
                _ => None,
            }
        })
    }

    /// What `berth apps` shows of one app; its ports as `firewall` has
    /// them ([`crate::network::Networks::firewall`]).
    pub(super) fn info_of(&self, a: &AppRecord, firewall: &nft::Ruleset) -> AppInfo {
        let mut info = AppInfo {
            id: a.id.clone(),
            catalog: a.catalog.clone(),
            installed: a.installed,
            ..AppInfo::default()
        };
        let Ok(app) = self.installed_app(&a.id) else {
            info.state = a.state.clone();
            return info;
        };
        info.title = app.title.clone();
        info.version = app.version.clone();
        let endpoints: HashMap<String, Ipv4Addr> = self
            .inner
            .networks
            .inspect(&a.id)
            .map(|n| {
                n.endpoints
                    .into_iter()
                    .map(|e| (e.container_id, e.ip))
                    .collect()
            })
            .unwrap_or_default();
        let published = self.inner.networks.published_in(firewall, &a.id);
        let overrides = serde_json::from_str::<berth_api::InstallOptions>(&a.options)
            .ok()
            .and_then(|o| super::install::port_overrides(&app, &o).ok())
            .map(|(o, _)| o)
            .unwrap_or_default();
        let mut running = 0;
        for s in app.compose.start_order() {
            let name = container_name(&a.id, &s.name);
            let c = self.inner.containers.find(&name).ok();
            let ip = endpoints.get(&name).copied();
            if c.as_ref().is_some_and(|c| c.state == "running") {
                running += 1;
            }
            for m in &published {
                if Some(m.container_ip) == ip {
                    info.ports.push(PublishedPort {
                        service: s.name.clone(),
                        host_ip: m.host_ip.to_string(),
                        host_port: m.host_port,
                        container_port: m.container_port,
                        protocol: m.protocol.to_string(),
                        requested: {
                            let asked = overrides
                                .get(&(s.name.clone(), m.container_port))
                                .copied()
                                .or_else(|| {
                                    s.ports
                                        .iter()
                                        .find(|p| p.target == m.container_port)
                                        .and_then(|p| p.published)
                                })
                                .unwrap_or(0);
                            if asked != m.host_port {
                                asked
                            } else {
                                0
                            }
                        },
                    });
                }
            }
            info.services.push(ServiceInfo {
                name: s.name.clone(),
                image: s.image.to_string(),
                container_id: c.as_ref().map(|c| c.id.clone()).unwrap_or_default(),
                container_name: name,
                state: c.map_or_else(|| "missing".to_string(), |c| c.state),
                address: ip.map(|i| i.to_string()).unwrap_or_default(),
                ..ServiceInfo::default()
            });
        }
        info.state = match a.state.as_str() {
            "installed" if running == app.compose.services.len() => "running".into(),
            "installed" if running == 0 => "stopped".into(),
            "installed" => "partly running".into(),
            other => other.to_string(),
        };
        info.volumes = app
            .compose
            .volumes
            .iter()
            .map(|v| volume_name(&a.id, v))
            .collect();
        if let Some(open) = &app.open {
            if let Some(p) = info
                .ports
                .iter()
                .find(|p| p.service == open.service && p.container_port == open.port)
            {
                let host = match p.host_ip.as_str() {
                    "0.0.0.0" => "127.0.0.1",
                    h => h,
                };
                info.url = format!("http://{host}:{}{}", p.host_port, open.path);
            }
        }
        info
    }
}

/// `127.0.0.1:8091->8080/tcp` → (host ip, (host port, container port)).
fn parse_published(s: &str) -> Option<(String, (u16, u16))> {
    let (host, rest) = s.split_once("->")?;
    let (ip, hport) = host.rsplit_once(':')?;
    let cport = rest.split('/').next()?;
    Some((ip.to_string(), (hport.parse().ok()?, cport.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_read_back() {
        assert_eq!(
            parse_published("127.0.0.1:8092->8080/tcp"),
            Some(("127.0.0.1".to_string(), (8092, 8080)))
        );
        assert_eq!(parse_published("junk"), None);
    }
}
