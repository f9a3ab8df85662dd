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
    header: &zbus::message::Header<'_>,
    uid: u32,
    image: String,
    opts: RunOptions,
) -> Result<OwnedObjectPath, Error> {
    let images = h.images.clone();
    let ctrs = h.containers.clone();
    h.jobs
        .start(
            conn,
            header,
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
                let c = ctrs.create(&image, &opts, uid).map_err(container_error)?;
                Ok(serde_json::json!({ "id": c.id, "name": c.name }).to_string())
            },
        )
        .await
}

/// `RunOptions` as a caller on the bus may give them: valid, and without
/// what only Berth's app installer sets. `netns` would join any network
/// namespace file (`/proc/1/ns/net` is the host's network, another app's
/// `<run>/netns/…` its private network), and `populate` makes berthd copy
/// the image's files into, and chown, any empty host directory (§1.2 of
/// the security review): neither comes from the bus.
pub fn bus_options(json: &str) -> Result<RunOptions, Error> {
    let opts: RunOptions = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("the container options are not valid: {e}")))?;
    if let Some(ns) = &opts.netns {
        return Err(Error::InvalidArgument(format!(
            "`netns` ({ns}) is set by Berth's app installer only, never over the bus; use \
             `network: none` or `host`, or install an app to get an app network"
        )));
    }
    if let Some(v) = opts.volumes.iter().find(|v| v.populate) {
        return Err(Error::InvalidArgument(format!(
            "`populate` (volume {}) is set by Berth's app installer only, never over the bus; \
             a `-v` directory is mounted as it is",
            v.host
        )));
    }
    for v in &opts.volumes {
        super::names::absolute_path("the volume's host directory", &v.host)?;
    }
    containers::options::validate(&opts).map_err(|e| Error::InvalidArgument(e.0))?;
    Ok(opts)
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
