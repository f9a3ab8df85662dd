//! `create`: record a container and make its files. Nothing runs yet.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::userns::{self, IdRange};
use super::{io_err, new_id, new_name, Containers, Error, Result, RunOptions, UsernsMode};
use crate::images::now;
use crate::state::ContainerRecord;

impl Containers {
    /// Create a container from the image `image` (already in the store),
    /// owned by uid `owner` (who asked for it).
    pub fn create(&self, image: &str, opts: &RunOptions, owner: u32) -> Result<ContainerRecord> {
        super::options::validate(opts)?;
        let db = self.inner.images.db();
        let found = self.inner.images.find(image)?;
        let id = new_id()?;
        let name = match &opts.name {
            Some(n) => {
                if db.name_taken(n)? {
                    return Err(Error::Conflict(format!(
                        "the name `{n}` is already used by a container; remove it (berth rm {n}) or pick another"
                    )));
                }
                n.clone()
            }
            None => {
                let base = new_name(&id);
                if db.name_taken(&base)? {
                    format!("{base}_{}", &id[..6])
                } else {
                    base
                }
            }
        };
        // A block is chosen and recorded under one lock, so two creates
        // never take the same one.
        let alloc_guard = (opts.userns == UsernsMode::Auto).then(|| {
            self.inner
                .userns_alloc
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        });
        let userns = match opts.userns {
            UsernsMode::Host => None,
            UsernsMode::Auto => Some(self.allocate_userns()?),
        };
        let record = ContainerRecord {
            id: id.clone(),
            name,
            image: found.name.clone(),
            manifest: found.manifest.clone(),
            options: serde_json::to_string(opts).expect("options serialise"),
            created: now(),
            state: "created".into(),
            started: 0,
            finished: 0,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            userns: userns.map(|r| (r.start, r.size)),
            owner,
        };
        // The row first: whatever is made after it is found again by it.
        db.insert_container(&record).map_err(|e| match e {
            crate::state::Error::Sql(_) => Error::Conflict(format!(
                "the name `{}` is already used by a container",
                record.name
            )),
            other => other.into(),
        })?;
        drop(alloc_guard);
        if let Err(e) = self.make_files(&record, opts) {
            let _ = std::fs::remove_dir_all(self.dir(&id));
            let _ = db.remove_container(&id);
            return Err(e);
        }
        self.emit(&record, "created");
        Ok(record)
    }

    /// A free block of host ids for a `--userns=auto` container (the
    /// caller holds `userns_alloc` until the block is recorded).
    fn allocate_userns(&self) -> Result<IdRange> {
        let user = &self.inner.images.config().userns.user;
        let pool = userns::pool(user, &userns::HostIds::read()).map_err(Error::InvalidArgument)?;
        let mut used: Vec<IdRange> = self
            .inner
            .images
            .db()
            .userns_ranges()?
            .into_iter()
            .map(|(start, size)| IdRange::new(start, size))
            .collect();
        used.extend(userns::mapped_by_processes());
        userns::allocate(&pool, &used, userns::BLOCK).map_err(Error::Conflict)
    }

    /// `upper/`, `work/`, and the per-container /etc files; for a
    /// `--userns=auto` container all owned by its root, and its directory
    /// passable by its init (see [`super::userns`]).
    fn make_files(&self, c: &ContainerRecord, opts: &RunOptions) -> Result<()> {
        let dir = self.dir(&c.id);
        if c.userns.is_some() {
            self.ensure_traverse_gid()?;
        }
        self.container_dir(c, &dir)?;
        // `upper/` is the container's `/` (overlayfs gives the root the
        // upper dir's mode): 0755 for the container's own users, who reach
        // it only from inside. `work/` is overlayfs's alone.
        for (d, mode) in [("upper", 0o755), ("work", crate::fsmode::DIR)] {
            let p = dir.join(d);
            crate::fsmode::make_dir(&p, mode)
                .map_err(io_err(format!("creating {}", p.display())))?;
            chown_to_root(&p, c.userns)?;
        }
        let hostname = hostname_of(c);
        let hosts = super::etc::hosts_text(&hostname, None, &[]);
        let resolv = match (opts.network, &opts.netns) {
            // A prepared namespace: the host's servers it can reach.
            (_, Some(_)) => super::etc::resolv_for_netns(),
            (super::Network::Host, None) => {
                std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
            }
            // No network: nothing to resolve with, but programs expect the file.
            (super::Network::None, None) => String::new(),
        };
        for (name, text) in [
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
        ] {
            // Bound into the container as /etc files: 0644 for its users;
            // the directory keeps others out.
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
                .map_err(io_err(format!("setting the mode of {}", p.display())))?;
            chown_to_root(&p, c.userns)?;
        }
        Ok(())
    }
}

/// Give `path` to the container's root: the first id of its block.
fn chown_to_root(path: &Path, userns: Option<(u32, u32)>) -> Result<()> {
    let Some((start, _)) = userns else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(start), Some(start)).map_err(io_err(format!(
        "giving {} to the container's root (host id {start})",
        path.display()
    )))
}

/// The container's hostname: its name, as Docker uses the short id; names
/// are valid host names once `_` and `.` are replaced.
pub(super) fn hostname_of(c: &ContainerRecord) -> String {
    let h: String = c
        .name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '-'
            }
        })
        .collect();
    h.chars().take(63).collect()
}
