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
    let mut progress = job.receive_progress().await?;
    let mut finished = job.receive_finished().await?;

    // The job may have finished before we subscribed.
    if job.state().await? != "running" {
        return job.get_outcome().await?.into();
    }
    if let Ok(p) = job.get_progress().await {
        on_progress(&p);
    }
    use futures_util::future::{select, Either};
    loop {
        match select(progress.next(), finished.next()).await {
            Either::Left((Some(sig), _)) => {
                if let Ok(args) = sig.args() {
                    on_progress(&args.progress);
                }
            }
            Either::Right((Some(sig), _)) => match sig.args() {
                Ok(args) => return args.outcome.into(),
                Err(_) => return job.get_outcome().await?.into(),
            },
            _ => {
                return Err(Error::Internal(
                    "lost the connection to berthd while following a job; \
                     the job may still be running"
                        .into(),
                ))
            }
        }
    }
}
