//! Job objects: long work with progress, cancel and a final outcome.
//!
//! A job is exported at `/org/berth/Helper1/jobs/<n>` before its work starts
//! and the path is returned to the caller at once. While it runs it emits
//! `Progress` (throttled to a few per second) and ends with one `Finished`.
//! Its state and outcome stay readable for [`KEEP_FINISHED`] after it ends, so
//! a client that subscribes late still learns how it ended; then the object
//! goes away.
//!
//! A job belongs to the caller that started it: only that uid (or root) may
//! read its progress, state and outcome or cancel it, and its signals are
//! sent to the starting connection alone, not broadcast. An install's
//! outcome names the app's address, a pull's the image: other local users
//! learn nothing from watching the bus (the security review's §1.5).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::{Error, JobProgress, Outcome, JOB_PATH_PREFIX};
use tokio::sync::watch;
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;

use super::auth;
use crate::cancel::Cancel;

/// How long a finished job stays on the bus.
pub const KEEP_FINISHED: Duration = Duration::from_secs(300);
/// At most this many progress signals per second.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    state: &'static str,
    progress: JobProgress,
    outcome: Outcome,
}

/// The `org.berth.Job1` object.
pub struct Job {
    kind: &'static str,
    owner: u32,
    cancel: Cancel,
    state: Arc<Mutex<State>>,
}

impl Job {
    /// The caller of `header` started this job, or is root.
    async fn check_owner(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        what: &str,
    ) -> Result<(), Error> {
        let who = auth::caller(conn, header).await?;
        if who.is_root() || who.uid == self.owner {
            return Ok(());
        }
        Err(Error::AccessDenied(format!(
            "only {} (who started this job) or root may {what} it",
            auth::user_name(self.owner)
        )))
    }
}

/// A property read by someone else than the job's owner.
async fn property_owner_check(
    job: &Job,
    conn: &zbus::Connection,
    header: Option<Header<'_>>,
) -> zbus::fdo::Result<()> {
    // No header: berthd itself reads the value (to send PropertiesChanged).
    let Some(header) = header else {
        return Ok(());
    };
    job.check_owner(conn, &header, "read")
        .await
        .map_err(|e| zbus::fdo::Error::AccessDenied(e.message()))
}

#[zbus::interface(name = "org.berth.Job1")]
impl Job {
    /// Stop the job; what it wrote half-way is removed.
    async fn cancel(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        self.check_owner(conn, &header, "cancel").await?;
        self.cancel.cancel();
        Ok(())
    }

    #[zbus(property)]
    async fn kind(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<String> {
        property_owner_check(self, conn, header).await?;
        Ok(self.kind.to_string())
    }

    #[zbus(property)]
    async fn state(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<String> {
        property_owner_check(self, conn, header).await?;
        Ok(lock(&self.state).state.to_string())
    }

    async fn get_progress(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<JobProgress, Error> {
        self.check_owner(conn, &header, "read").await?;
        Ok(lock(&self.state).progress.clone())
    }

    async fn get_outcome(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<Outcome, Error> {
        self.check_owner(conn, &header, "read").await?;
        Ok(lock(&self.state).outcome.clone())
    }

    #[zbus(signal)]
    async fn progress(emitter: &SignalEmitter<'_>, progress: JobProgress) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn finished(emitter: &SignalEmitter<'_>, outcome: Outcome) -> zbus::Result<()>;
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands out job paths and keeps track of running jobs.
#[derive(Clone, Default)]
pub struct Jobs {
    next: Arc<AtomicU64>,
    running: Arc<Mutex<Vec<Cancel>>>,
}

impl Jobs {
    /// Export a job of `kind` for `owner`, who called with `header`, run
    /// `work` in the background with progress `P` converted by `to_api`,
    /// and return the job's path. Its signals go to the caller's connection.
    #[allow(clippy::too_many_arguments)]
    pub async fn start<P, F, Fut>(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        kind: &'static str,
        owner: u32,
        to_api: fn(&P) -> JobProgress,
        work: F,
    ) -> Result<OwnedObjectPath, Error>
    where
        P: Default + Send + Sync + 'static,
        F: FnOnce(watch::Sender<P>, Cancel) -> Fut,
        Fut: Future<Output = Result<String, Error>> + Send + 'static,
    {
        let caller: OwnedUniqueName = header
            .sender()
            .ok_or_else(|| Error::AccessDenied("the call has no sender on the bus".into()))?
            .to_owned()
            .into();
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let path = OwnedObjectPath::try_from(format!("{JOB_PATH_PREFIX}/{n}"))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let cancel = Cancel::new();
        let state = Arc::new(Mutex::new(State {
            state: "running",
            ..State::default()
        }));
        let job = Job {
            kind,
            owner,
            cancel: cancel.clone(),
            state: state.clone(),
        };
        conn.object_server().at(&path, job).await?;
        lock_running(&self.running).push(cancel.clone());

        let (tx, mut rx) = watch::channel(P::default());
        let fut = work(tx, cancel.clone());
        let conn = conn.clone();
        let jobs = self.clone();
        let job_path = path.clone();
        tokio::spawn(async move {
            let emitter = match SignalEmitter::new(&conn, job_path.clone()) {
                Ok(e) => e.set_destination(BusName::Unique(caller.into())),
                Err(e) => {
                    tracing::error!("job {job_path}: {e}");
                    return;
                }
            };
            let work = tokio::spawn(fut);
            tokio::pin!(work);
            let result = loop {
                tokio::select! {
                    r = &mut work => break r,
                    changed = rx.changed() => {
                        if changed.is_err() {
                            // The work dropped its sender: it is about to end.
                            break (&mut work).await;
                        }
                        let p = to_api(&rx.borrow_and_update());
                        lock(&state).progress = p.clone();
                        let _ = Job::progress(&emitter, p).await;
                        tokio::time::sleep(PROGRESS_INTERVAL).await;
                    }
                }
            };
            let last = to_api(&rx.borrow());
            let outcome = match result {
                Ok(Ok(result)) => Outcome {
                    ok: true,
                    result,
                    ..Outcome::default()
                },
                Ok(Err(e)) => Outcome {
                    ok: false,
                    error_name: format!("org.berth.Error.{}", e.kind()),
                    error_message: e.message(),
                    result: String::new(),
                },
                Err(join) => Outcome {
                    ok: false,
                    error_name: "org.berth.Error.Internal".into(),
                    error_message: format!("the job crashed: {join}"),
                    result: String::new(),
                },
            };
            {
                let mut s = lock(&state);
                s.progress = last.clone();
                s.state = if outcome.ok {
                    "succeeded"
                } else if outcome.error_name.ends_with(".Cancelled") {
                    "cancelled"
                } else {
                    "failed"
                };
                s.outcome = outcome.clone();
            }
            let _ = Job::progress(&emitter, last).await;
            if let Ok(iface) = conn.object_server().interface::<_, Job>(&job_path).await {
                let _ = iface.get().await.state_changed(&emitter).await;
            }
            let _ = Job::finished(&emitter, outcome).await;
            jobs.forget(&cancel);
            tokio::time::sleep(KEEP_FINISHED).await;
            let _ = conn.object_server().remove::<Job, _>(&job_path).await;
        });
        Ok(path)
    }

    fn forget(&self, cancel: &Cancel) {
        lock_running(&self.running).retain(|c| !c.same(cancel));
    }

    /// Cancel every running job (at shutdown).
    pub fn cancel_all(&self) {
        for c in lock_running(&self.running).iter() {
            c.cancel();
        }
    }

    /// How many jobs are running.
    pub fn running(&self) -> usize {
        lock_running(&self.running).len()
    }
}

fn lock_running(m: &Mutex<Vec<Cancel>>) -> std::sync::MutexGuard<'_, Vec<Cancel>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
