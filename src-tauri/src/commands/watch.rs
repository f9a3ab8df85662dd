//! Subscriptions: the page asks once and then receives, through its
//! channel, an app's resource samples (1 Hz, after up to ten minutes of
//! history) or a service's log lines as they are written. The page never
//! polls; `unwatch` (or the page going away) ends a subscription.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tauri::async_runtime::JoinHandle;
use tauri::ipc::Channel;
use tauri::State;
use tokio::io::AsyncBufReadExt;

use super::apps::FLAGS;
use super::from_json;
use crate::error::{Result, UiError};
use crate::events::{AppsEvent, LogEvent, LogLine, StatsEvent};
use crate::helper::Helper;

/// How far back the first batch of samples reaches: berthd keeps ten minutes.
const HISTORY_MS: i64 = 10 * 60 * 1000;
/// How often new samples are fetched from berthd: as often as it takes them.
const TICK: Duration = Duration::from_secs(1);

/// The running subscriptions, by id (Tauri managed state).
#[derive(Default)]
pub struct Subscriptions {
    next: AtomicU32,
    tasks: Mutex<HashMap<u32, JoinHandle<()>>>,
}

impl Subscriptions {
    fn add(&self, task: impl FnOnce(u32) -> JoinHandle<()>) -> u32 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = task(id);
        self.tasks.lock().unwrap().insert(id, handle);
        id
    }

    fn remove(&self, id: u32) -> bool {
        match self.tasks.lock().unwrap().remove(&id) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// How many run now (tests check that ended ones are gone).
    pub fn len(&self) -> usize {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|_, t| !t.inner().is_finished());
        tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// End a subscription; ending one that has already ended is fine.
#[tauri::command]
pub fn unwatch(subs: State<'_, Subscriptions>, id: u32) {
    subs.remove(id);
}

/// The installed apps, sent again whenever anything about them changes.
#[tauri::command]
pub fn watch_apps<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    subs: State<'_, Subscriptions>,
    on_event: Channel<AppsEvent>,
) -> u32 {
    use tauri::Manager;
    subs.add(|_| {
        tauri::async_runtime::spawn(async move {
            let helper = app.state::<Helper>();
            let mut last: Option<Vec<berth_api::AppInfo>> = None;
            let mut last_error: Option<UiError> = None;
            let mut ticker = tokio::time::interval(TICK);
            loop {
                ticker.tick().await;
                let event = match super::apps::installed_apps(helper.clone()).await {
                    Ok(apps) if last.as_ref() == Some(&apps) => continue,
                    Ok(apps) => {
                        last = Some(apps.clone());
                        last_error = None;
                        AppsEvent::Apps { apps }
                    }
                    Err(e) if last_error.as_ref() == Some(&e) => continue,
                    Err(e) => {
                        last = None;
                        last_error = Some(e.clone());
                        AppsEvent::Unavailable { error: e }
                    }
                };
                if on_event.send(event).is_err() {
                    return;
                }
            }
        })
    })
}

/// Samples of every service of `app`: its history first, then each new one.
#[tauri::command]
pub async fn watch_stats(
    helper: State<'_, Helper>,
    subs: State<'_, Subscriptions>,
    app: String,
    on_event: Channel<StatsEvent>,
) -> Result<u32> {
    // Fail now, not inside the task, when the app does not exist.
    let p = helper.proxy().await?;
    helper.check(p.inspect_app(&app).await)?;
    Ok(subs.add(|_| {
        tauri::async_runtime::spawn(async move {
            let reason = match stream_stats(&p, &app, &on_event).await {
                Ok(()) => "the window stopped listening".to_string(),
                Err(e) => e.message,
            };
            let _ = on_event.send(StatsEvent::Ended { reason });
        })
    }))
}

async fn stream_stats(
    p: &berth_api::Helper1Proxy<'static>,
    app: &str,
    channel: &Channel<StatsEvent>,
) -> Result<()> {
    // Per service: its container and the time of the last sample sent.
    let mut since: HashMap<String, i64> = HashMap::new();
    let first = now_ms() - HISTORY_MS;
    let mut services: Vec<berth_api::ServiceInfo> = Vec::new();
    let mut ticker = tokio::time::interval(TICK);
    loop {
        ticker.tick().await;
        // The app's containers, looked up again only when one is missing
        // or gone (an update recreates them): inspecting costs berthd more
        // than the samples do.
        if services.is_empty() || services.iter().any(|s| s.container_id.is_empty()) {
            let info: berth_api::AppInfo = from_json("an app", &p.inspect_app(app).await?)?;
            services = info.services;
        }
        let mut stale = false;
        for svc in services.iter().filter(|s| !s.container_id.is_empty()) {
            let key = format!("{}\n{}", svc.name, svc.container_id);
            let after = *since.get(&key).unwrap_or(&first);
            let Ok(json) = p.container_stats_history(&svc.container_id, after).await else {
                stale = true; // recreated or removed: look the app up again
                continue;
            };
            let samples: Vec<berth_api::ContainerSample> = from_json("resource samples", &json)?;
            let Some(last) = samples.last() else { continue };
            since.insert(key, last.time);
            let event = StatsEvent::Samples {
                service: svc.name.clone(),
                samples,
            };
            if channel.send(event).is_err() {
                return Ok(());
            }
        }
        if stale {
            services.clear();
        }
    }
}

/// The log of one service's container: the last `tail` lines, then each
/// new one until the container stops.
#[tauri::command]
pub async fn watch_logs(
    helper: State<'_, Helper>,
    subs: State<'_, Subscriptions>,
    container: String,
    tail: i64,
    on_event: Channel<LogEvent>,
) -> Result<u32> {
    let p = helper.proxy().await?;
    let fd = helper.check(p.container_logs(&container, tail, true, FLAGS).await)?;
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(fd))
        .map_err(|e| UiError::new("failed", format!("reading the log pipe: {e}"), ""))?;
    Ok(subs.add(|_| {
        tauri::async_runtime::spawn(async move {
            let reason = match stream_logs(pipe, &on_event).await {
                Ok(()) => "the service stopped".to_string(),
                Err(e) => e.message,
            };
            let _ = on_event.send(LogEvent::Ended { reason });
        })
    }))
}

async fn stream_logs(
    pipe: tokio::net::unix::pipe::Receiver,
    channel: &Channel<LogEvent>,
) -> Result<()> {
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    // Send what has arrived together, so a burst is one message.
    let mut batch = Vec::new();
    loop {
        let next = if batch.is_empty() {
            lines.next_line().await
        } else {
            match tokio::time::timeout(Duration::from_millis(50), lines.next_line()).await {
                Ok(line) => line,
                Err(_) => {
                    flush(channel, &mut batch)?;
                    continue;
                }
            }
        };
        match next.transpose() {
            Some(Ok(line)) => {
                let mut l: LogLine = from_json("a log line", &line)?;
                if l.log.ends_with('\n') {
                    l.log.pop();
                }
                batch.push(l);
                if batch.len() >= 200 {
                    flush(channel, &mut batch)?;
                }
            }
            Some(Err(e)) => {
                return Err(UiError::new("failed", format!("reading the log: {e}"), ""))
            }
            None => {
                flush(channel, &mut batch)?;
                return Ok(());
            }
        }
    }
}

fn flush(channel: &Channel<LogEvent>, batch: &mut Vec<LogLine>) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let lines = std::mem::take(batch);
    channel
        .send(LogEvent::Lines { lines })
        .map_err(|_| UiError::new("failed", "the window stopped listening", ""))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
