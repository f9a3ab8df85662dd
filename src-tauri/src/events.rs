//! What streams from the app to the page through `tauri::ipc::Channel`s:
//! job progress, resource samples and log lines, as tagged enums the page
//! switches on. The TypeScript twins in `ui/src/bindings/` are generated
//! from these (`cargo test -p berth-app export_bindings`).

use berth_api::{AuditReport, ContainerSample, InstallResult, LayerProgress};
use serde::Serialize;
use ts_rs::TS;

use crate::error::UiError;

/// A job's life, in order: `started` once, `progress` any number of
/// times, `finished` once.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum JobEvent {
    /// The job's object path: what `cancel_job` takes.
    Started {
        job: String,
    },
    /// `pulling docker.io/library/nginx:latest`, `starting web`, … and
    /// the layers of every image pulled so far.
    Progress {
        phase: String,
        layers: Vec<LayerProgress>,
    },
    Finished(Box<JobEnd>),
}

/// How a job ended: exactly one of the three is set.
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct JobEnd {
    pub error: Option<UiError>,
    /// An install or update.
    pub installed: Option<InstallResult>,
    /// An uninstall: what it checked and what is left.
    pub audit: Option<AuditReport>,
}

/// What a stats subscription sends.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum StatsEvent {
    /// New samples of one service (the first batch is its history, up to
    /// ten minutes).
    Samples {
        service: String,
        samples: Vec<ContainerSample>,
    },
    /// The subscription ended (the app went away, or berthd did).
    Ended { reason: String },
}

/// What a log subscription sends.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum LogEvent {
    Lines { lines: Vec<LogLine> },
    Ended { reason: String },
}

/// One line a service wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, TS)]
#[serde(default)]
pub struct LogLine {
    /// RFC 3339, as berthd recorded it.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub log: String,
}

/// What the installed-apps subscription sends: the whole list whenever it
/// changes (states, addresses, CPU and memory), checked every second.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum AppsEvent {
    Apps {
        apps: Vec<berth_api::AppInfo>,
    },
    /// berthd cannot be reached; the subscription goes on and sends the
    /// list again once it can.
    Unavailable {
        error: UiError,
    },
}
