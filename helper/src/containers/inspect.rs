//! `ps` and `inspect`.

use serde::Serialize;

use super::{Containers, Result, RunOptions};
use crate::state::ContainerRecord;

/// One container as `ps` and `inspect` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub created: i64,
    /// `created`, `running`, `exited`.
    pub state: String,
    /// `Up 3 minutes`-style summary is the client's job; these are facts.
    pub started: i64,
    pub finished: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: String,
    pub options: RunOptions,
    /// The container's pid 1 on the host while it runs.
    pub pid: Option<i32>,
    /// `--userns=auto`: which host ids its uids and gids are (null: the
    /// host's own, `--userns=host`).
    pub id_mappings: Option<IdMappings>,
    /// The uid that created it.
    pub owner: u32,
    /// True when this is [`ContainerInfo::redacted`]: the environment's
    /// values, the command line and host paths were left out.
    pub redacted: bool,
}

impl ContainerInfo {
    /// What every local user may see of a container that is not theirs:
    /// its name, image, state, ports and usage, the names of its
    /// environment variables, but not their values (`-e PASSWORD=…`, a
    /// catalog's database password), its command line or the host
    /// directories it mounts (the security review's §1.5). Root, the owner
    /// and holders of the right to manage containers get it whole.
    pub fn redacted(mut self) -> Self {
        self.command.clear();
        let o = &mut self.options;
        for e in &mut o.env {
            if let Some((key, _)) = e.split_once('=') {
                *e = key.to_string();
            }
        }
        o.cmd.clear();
        o.entrypoint = None;
        o.netns = None;
        for v in &mut o.volumes {
            v.host.clear();
        }
        self.redacted = true;
        self
    }
}

/// A user namespace's maps, as `/proc/<pid>/uid_map` and `gid_map` have them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdMappings {
    pub uid_map: Vec<IdMapping>,
    pub gid_map: Vec<IdMapping>,
}

/// `size` ids from `container_id` in the container are `host_id`.. on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

impl Containers {
    /// Containers, newest first; only running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .inner
            .images
            .db()
            .containers()?
            .into_iter()
            .filter(|c| all || c.state == "running")
            .map(|c| self.info(c))
            .collect())
    }

    /// One container.
    pub fn inspect(&self, key: &str) -> Result<ContainerInfo> {
        Ok(self.info(self.find(key)?))
    }

    fn info(&self, c: ContainerRecord) -> ContainerInfo {
        let options: RunOptions = serde_json::from_str(&c.options).unwrap_or_default();
        let pid = if c.state == "running" {
            std::fs::read_to_string(
                self.shim_dir(&c.id)
                    .join(crate::runtime::shim::INIT_PID_FILE),
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
        } else {
            None
        };
        let mut command = options.entrypoint.iter().cloned().collect::<Vec<_>>();
        command.extend(options.cmd.iter().cloned());
        ContainerInfo {
            id: c.id,
            name: c.name,
            image: c.image,
            command,
            created: c.created,
            state: c.state,
            started: c.started,
            finished: c.finished,
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            error: c.error,
            options,
            pid,
            id_mappings: c.userns.map(|(start, size)| {
                let map = vec![IdMapping {
                    container_id: 0,
                    host_id: start,
                    size,
                }];
                IdMappings {
                    uid_map: map.clone(),
                    gid_map: map,
                }
            }),
            owner: c.owner,
            redacted: false,
        }
    }
}
