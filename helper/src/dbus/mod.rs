//! The bus face of berthd: `org.berth.Helper1` at `/org/berth/Helper1`, and
//! job objects below it. The only module that knows about D-Bus.
//!
//! [`serve`] exports the object first and asks for the well-known name last,
//! so a client that sees the name can call at once. The name is requested
//! without queueing: a second berthd on the same bus fails to start with a
//! clear message instead of waiting in line.

mod apps;
mod auth;
mod containers;
mod errors;
mod helper;
mod job;
mod names;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::{BUS_NAME, OBJECT_PATH};
use zbus::fdo::RequestNameFlags;

pub use auth::{in_group, Action, Authority, Authorizer, DEFAULT_GROUP};
pub use job::Jobs;

use crate::credentials::FileCredentials;
use crate::images::ImageStore;

/// A running service on a bus.
pub struct Service {
    pub conn: zbus::Connection,
    pub jobs: Jobs,
}

/// Export the helper on `conn` and take the bus name.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    conn: zbus::Connection,
    images: ImageStore,
    containers: crate::containers::Containers,
    metrics: crate::metrics::Metrics,
    apps: crate::apps::AppManager,
    credentials: Arc<FileCredentials>,
    run_root: PathBuf,
    bus: String,
    auth: Authorizer,
) -> Result<Service, String> {
    let jobs = Jobs::default();
    let helper = helper::Helper {
        images,
        containers,
        metrics,
        apps,
        credentials,
        jobs: jobs.clone(),
        auth,
        run_root,
        bus: bus.clone(),
    };
    conn.object_server()
        .at(OBJECT_PATH, helper)
        .await
        .map_err(|e| format!("exporting {OBJECT_PATH}: {e}"))?;
    match conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
    {
        Ok(zbus::fdo::RequestNameReply::PrimaryOwner)
        | Ok(zbus::fdo::RequestNameReply::AlreadyOwner) => Ok(Service { conn, jobs }),
        Ok(_) => Err(format!(
            "another berthd already owns {BUS_NAME} on {bus}; stop it first \
             (systemctl stop berthd) or use another bus"
        )),
        Err(e) => Err(format!(
            "cannot own {BUS_NAME} on {bus}: {e}; is Berth's bus policy \
             (org.berth.Helper1.conf) installed, and is berthd running as root?"
        )),
    }
}

/// Bytes used under `root` (allocated blocks, each inode counted once).
pub(crate) fn disk_usage(root: &Path) -> u64 {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            }
            if seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// `v2` when /sys/fs/cgroup is the unified hierarchy, `hybrid` when v1
/// controllers sit beside a v2 mount, `v1` otherwise.
pub(crate) fn cgroup_version() -> &'static str {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    // f_type is i64 on x86_64 but another width elsewhere: keep the cast.
    #[allow(clippy::unnecessary_cast)]
    let is_cgroup2 = |p: &str| {
        rustix::fs::statfs(p)
            .map(|s| s.f_type as i64 == CGROUP2_SUPER_MAGIC)
            .unwrap_or(false)
    };
    if is_cgroup2("/sys/fs/cgroup") {
        "v2"
    } else if is_cgroup2("/sys/fs/cgroup/unified") {
        "hybrid"
    } else {
        "v1"
    }
}
