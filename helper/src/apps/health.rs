//! Starting an app's services in order, and waiting for them: healthchecks
//! (run in the container, as Docker does) and the app's port answering.
//!
//! Healthchecks are probed often while an install or start waits (every
//! half second, or the check's `start_interval`), but a service is only
//! declared unhealthy once as much time has passed as Docker would allow:
//! `start_period + retries × interval`. So a fast service is seen healthy
//! at once, and a slow one is given the time its author asked for.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::compose::{Condition, HealthTest, Healthcheck, Service};
use super::crash::crash_point;
use super::install::{container_name, AppProgress};
use super::manager::AppManager;
use super::{App, Error, Result};
use crate::cancel::Cancel;

/// Docker's defaults for fields a healthcheck leaves out.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// How often a check is probed while someone waits for it.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The command a healthcheck runs, if it runs one.
pub(super) fn health_command(h: &Healthcheck) -> Option<Vec<String>> {
    match h.test.as_ref()? {
        HealthTest::Cmd(args) => Some(args.clone()),
        HealthTest::Shell(s) => Some(vec!["/bin/sh".into(), "-c".into(), s.clone()]),
        HealthTest::Disabled => None,
    }
}

/// How long to wait before calling a service unhealthy.
pub(super) fn give_up_after(h: &Healthcheck) -> Duration {
    h.start_period.unwrap_or_default()
        + h.interval.unwrap_or(DEFAULT_INTERVAL) * h.retries.unwrap_or(DEFAULT_RETRIES).max(1)
}

impl AppManager {
    /// Start every service that is not running, dependencies first, each
    /// once its dependencies are started or healthy as it asks.
    pub(super) async fn start_services(
        &self,
        app: &App,
        progress: &watch::Sender<AppProgress>,
        cancel: &Cancel,
    ) -> Result<()> {
        let mut healthy = BTreeSet::new();
        for s in app.compose.start_order() {
            for (dep, cond) in &s.depends_on {
                if *cond == Condition::Healthy && !healthy.contains(dep.as_str()) {
                    let d = app.compose.service(dep).expect("checked at parse");
                    progress.send_modify(|p| {
                        p.phase = "waiting";
                        p.detail = format!("{dep} to be healthy");
                    });
                    self.wait_healthy(app, d, cancel).await?;
                    healthy.insert(dep.as_str());
                }
            }
            if cancel.is_cancelled() {
                return Err(Error::Cancelled("cancelled".into()));
            }
            let name = container_name(&app.id, &s.name);
            let c = self.inner.containers.find(&name)?;
            if c.state == "running" {
                continue;
            }
            progress.send_modify(|p| {
                p.phase = "starting";
                p.detail = s.name.clone();
            });
            self.inner.containers.start(&name, None).await?;
            crash_point("install-started");
            self.check_running(app, s)?;
        }
        Ok(())
    }

    /// An error naming the service if its container is not running, with
    /// how it ended and its last log lines.
    pub(super) fn check_running(&self, app: &App, s: &Service) -> Result<()> {
        let name = container_name(&app.id, &s.name);
        let c = self.inner.containers.find(&name)?;
        if c.state == "running" {
            return Ok(());
        }
        let mut msg = format!(
            "service {} of {} stopped while starting (exit code {}{})",
            s.name,
            app.id,
            c.exit_code,
            if c.error.is_empty() {
                String::new()
            } else {
                format!(": {}", c.error)
            }
        );
        let tail = log_tail(
            &self
                .inner
                .root
                .join("containers")
                .join(&c.id)
                .join("log.json"),
            5,
        );
        if !tail.is_empty() {
            msg.push_str("; its last output:\n");
            msg.push_str(&tail.join("\n"));
        }
        Err(Error::Failed(msg))
    }

    /// Wait until the service's healthcheck passes (at once if it has none).
    pub(super) async fn wait_healthy(&self, app: &App, s: &Service, cancel: &Cancel) -> Result<()> {
        let Some(h) = s.healthcheck.as_ref() else {
            return Ok(());
        };
        let Some(cmd) = health_command(h) else {
            return Ok(());
        };
        let name = container_name(&app.id, &s.name);
        let timeout = h.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let every = h.start_interval.unwrap_or(PROBE_EVERY).min(PROBE_EVERY);
        let give_up = give_up_after(h);
        let started = Instant::now();
        let mut last;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled("cancelled".into()));
            }
            self.check_running(app, s)?;
            match self
                .inner
                .containers
                .exec_capture(&name, &cmd, timeout)
                .await
            {
                Ok((0, _)) => return Ok(()),
                Ok((code, out)) => {
                    last = format!("exit code {code}: {}", out.trim());
                }
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= give_up {
                return Err(Error::Failed(format!(
                    "service {} of {} did not become healthy in {} s; its healthcheck's last result: {last}",
                    s.name,
                    app.id,
                    give_up.as_secs()
                )));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Wait until the app answers: its "Open" port if it has one, else
    /// until every healthcheck passes; every service must stay running.
    pub(super) async fn wait_ready(
        &self,
        app: &App,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        if let Some(addr) = self.open_address(app)? {
            let path = app
                .open
                .as_ref()
                .map_or("/", |o| o.path.as_str())
                .to_string();
            let deadline = Instant::now() + timeout;
            loop {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled("cancelled".into()));
                }
                for s in app.compose.services.values() {
                    self.check_running(app, s)?;
                }
                if answers(addr, &path).await {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(Error::Failed(format!(
                        "{} did not answer on {addr} within {} s; `berth logs {}` shows what it did",
                        app.id,
                        timeout.as_secs(),
                        app.id
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for s in app.compose.start_order() {
            self.wait_healthy(app, s, cancel).await?;
        }
        Ok(())
    }

    /// The host address and port "Open" goes to, once published.
    pub(super) fn open_address(&self, app: &App) -> Result<Option<SocketAddr>> {
        let Some(open) = app.open.as_ref() else {
            return Ok(None);
        };
        let name = container_name(&app.id, &open.service);
        let net = match self.inner.networks.inspect(&app.id) {
            Ok(n) => n,
            Err(crate::network::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(ep) = net.endpoints.iter().find(|e| e.container_id == name) else {
            return Ok(None);
        };
        let published = self.inner.networks.published(&app.id)?;
        Ok(published
            .iter()
            .find(|m| {
                m.container_ip == ep.ip
                    && m.container_port == open.port
                    && m.protocol == crate::network::Protocol::Tcp
            })
            .map(|m| {
                let ip = if m.host_ip.is_unspecified() {
                    Ipv4Addr::LOCALHOST
                } else {
                    m.host_ip
                };
                SocketAddr::from((ip, m.host_port))
            }))
    }
}

/// The last `n` lines a container wrote.
fn log_tail(path: &std::path::Path, n: usize) -> Vec<String> {
    crate::runtime::shim::logs::read_logs_offset(path, Some(n))
        .map(|(lines, _)| {
            lines
                .into_iter()
                .map(|l| l.line.trim_end().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Does something answer at `addr`? An HTTP request is sent; any reply
/// counts (a 404 is an answer), as does a connection kept open by a
/// server that speaks first or not at all.
async fn answers(addr: SocketAddr, path: &str) -> bool {
    let connect =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr));
    let Ok(Ok(mut stream)) = connect.await else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: berthd\r\n\r\n");
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
        // Connected and not reset: a server that is thinking, or not HTTP.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_patience_follow_docker() {
        let h = Healthcheck {
            test: Some(HealthTest::Shell("wget -q localhost".into())),
            interval: Some(Duration::from_secs(5)),
            retries: Some(5),
            start_period: Some(Duration::from_secs(10)),
            ..Healthcheck::default()
        };
        assert_eq!(
            health_command(&h).unwrap(),
            ["/bin/sh", "-c", "wget -q localhost"]
        );
        assert_eq!(give_up_after(&h), Duration::from_secs(35));
        let d = Healthcheck {
            test: Some(HealthTest::Disabled),
            ..Healthcheck::default()
        };
        assert!(health_command(&d).is_none());
        assert_eq!(give_up_after(&d), Duration::from_secs(90));
    }

    #[tokio::test]
    async fn an_http_server_answers_and_a_closed_port_does_not() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n")
                .await
                .unwrap();
        });
        assert!(answers(addr, "/").await);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(!answers(closed, "/").await);
    }
}
