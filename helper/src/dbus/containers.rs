//! The container half of `org.berth.Helper1`, as plain async functions the
//! interface in `helper.rs` forwards to. Each converts arguments, calls one
//! library function and converts the result.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use berth_api::{Error, RunOptions};
use zbus::zvariant::OwnedObjectPath;

use super::errors::to_api;
use super::helper::Helper;
use crate::containers::{self, Containers};
use crate::registry::Requester;

pub fn container_error(e: containers::Error) -> Error {
    let msg = e.to_string();
    match e {
        containers::Error::InvalidArgument(_) => Error::InvalidArgument(msg),
        containers::Error::NotFound(_) => Error::NotFound(msg),
        containers::Error::Conflict(_) => Error::InvalidArgument(msg),
        containers::Error::Image(i) => to_api(i),
        _ => Error::Internal(msg),
    }
}

/// Pull the image if it is missing, then create the container: a job whose
/// result is `{"id": …, "name": …}`.
pub async fn create(
    h: &Helper,
    conn: &zbus::Connection,
    uid: u32,
    image: String,
    options: String,
) -> Result<OwnedObjectPath, Error> {
    let opts: RunOptions = serde_json::from_str(&options)
        .map_err(|e| Error::InvalidArgument(format!("the container options are not valid: {e}")))?;
    containers::options::validate(&opts).map_err(|e| Error::InvalidArgument(e.0))?;
    let images = h.images.clone();
    let ctrs = h.containers.clone();
    h.jobs
        .start(
            conn,
            "create",
            uid,
            super::helper::pull_progress,
            move |tx, cancel| async move {
                if images.find(&image).is_err() {
                    images
                        .pull(&image, Requester::User(uid), &tx, &cancel)
                        .await
                        .map_err(to_api)?;
                }
                let c = ctrs.create(&image, &opts).map_err(container_error)?;
                Ok(serde_json::json!({ "id": c.id, "name": c.name }).to_string())
            },
        )
        .await
}

/// Start a container; with fds `[stdout, stderr(, stdin)]` attach them.
pub async fn start(c: &Containers, id: &str, fds: Vec<OwnedFd>) -> Result<(), Error> {
    let attach = match fds.as_slice() {
        [] => None,
        [out, err] => Some(containers::Attach {
            stdout: out.as_fd(),
            stderr: err.as_fd(),
            stdin: None,
        }),
        [out, err, inp] => Some(containers::Attach {
            stdout: out.as_fd(),
            stderr: err.as_fd(),
            stdin: Some(inp.as_fd()),
        }),
        _ => {
            return Err(Error::InvalidArgument(
                "pass no fds, [stdout, stderr] or [stdout, stderr, stdin]".into(),
            ))
        }
    };
    c.start(id, attach)
        .await
        .map(|_| ())
        .map_err(container_error)
}

pub async fn stop(c: &Containers, id: &str, timeout: u32) -> Result<(), Error> {
    c.stop(id, Duration::from_secs(timeout.into()))
        .await
        .map(|_| ())
        .map_err(container_error)
}

pub async fn kill(c: &Containers, id: &str, signal: &str) -> Result<(), Error> {
    let sig =
        crate::runtime::signal::parse(signal).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    c.kill(id, sig).await.map_err(container_error)
}

/// `(exit code, OOM killed, error)` once the container is not running.
pub async fn wait(c: &Containers, id: &str) -> Result<(i64, bool, String), Error> {
    let r = c.wait(id).await.map_err(container_error)?;
    Ok((r.exit_code, r.oom_killed, r.error))
}

pub fn list(c: &Containers, all: bool) -> Result<String, Error> {
    let l = c.list(all).map_err(container_error)?;
    Ok(serde_json::to_string(&l).expect("serialises"))
}

pub fn inspect(c: &Containers, id: &str) -> Result<String, Error> {
    let i = c.inspect(id).map_err(container_error)?;
    Ok(serde_json::to_string_pretty(&i).expect("serialises"))
}

/// A pipe whose read end gets the container's log records as JSON lines
/// (`{"time","stream","log"}`); with `follow`, until the container stops
/// or the reader goes away.
pub fn logs(
    c: &Containers,
    id: &str,
    tail: i64,
    follow: bool,
) -> Result<zbus::zvariant::OwnedFd, Error> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Internal(format!("making a pipe: {e}")))?;
    let tail = usize::try_from(tail).ok();
    c.stream_logs(id, tail, follow, w)
        .map_err(container_error)?;
    Ok(r.into())
}
