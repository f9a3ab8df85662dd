//! Client side helpers: reach the helper and follow a job to its end.

use futures_util::StreamExt;
use zbus::zvariant::OwnedObjectPath;

use crate::{Error, Job1Proxy, JobProgress, Outcome, Result};

/// Connect to the bus the helper listens on: the system bus, or the one named
/// by `DBUS_SYSTEM_BUS_ADDRESS` (zbus honours it).
pub async fn connect() -> Result<zbus::Connection> {
    zbus::Connection::system().await.map_err(Error::from)
}

/// What a job reports while it runs.
#[derive(Debug, Clone)]
pub enum JobEvent {
    JobProgress(JobProgress),
    Outcome(Outcome),
}

/// How a job ended, as a Rust result: the JSON result string, or the error.
pub type JobOutcome = Result<String>;

impl From<Outcome> for JobOutcome {
    fn from(f: Outcome) -> Self {
        if f.ok {
            Ok(f.result)
        } else {
            Err(Error::from_parts(&f.error_name, &f.error_message))
        }
    }
}

/// Follow the job at `path`, calling `on_progress` for every report, until it
/// finishes. Subscribes before reading the job's state, so a job that ends
/// between the call that started it and this one is not missed.
pub async fn watch_job<F>(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
    mut on_progress: F,
) -> JobOutcome
where
    F: FnMut(&JobProgress),
{
    let job = Job1Proxy::builder(conn)
        .path(path.clone())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    // Signals come from berthd's unique name; if berthd goes away the job
    // can never finish, so watch its name too.
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let gone = dbus
        .receive_name_owner_changed_with_args(&[(0, crate::BUS_NAME)])
        .await?
        .map(|_| Event::OwnerChanged);
    let progress = job.receive_progress().await?.map(Event::Progress);
    let finished = job.receive_finished().await?.map(Event::Finished);
    let mut events =
        futures_util::stream::select(futures_util::stream::select(progress, finished), gone);

    // The job may have finished before we subscribed.
    if job.state().await? != "running" {
        return job.get_outcome().await?.into();
    }
    if let Ok(p) = job.get_progress().await {
        on_progress(&p);
    }
    while let Some(event) = events.next().await {
        match event {
            Event::Progress(sig) => {
                if let Ok(args) = sig.args() {
                    on_progress(&args.progress);
                }
            }
            Event::Finished(sig) => {
                return match sig.args() {
                    Ok(args) => args.outcome.into(),
                    Err(_) => job.get_outcome().await?.into(),
                }
            }
            Event::OwnerChanged => {
                return Err(Error::Internal(
                    "berthd stopped while the job was running; start it again and \
                     repeat the command (a pull continues where it stopped)"
                        .into(),
                ))
            }
        }
    }
    Err(Error::Internal(
        "lost the connection to the bus while following a job; the job may still be running".into(),
    ))
}

enum Event {
    Progress(crate::Progress),
    Finished(crate::Finished),
    OwnerChanged,
}
