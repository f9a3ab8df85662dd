//! `create`: record a container and make its files. Nothing runs yet.

use super::{io_err, new_id, new_name, Containers, Error, Result, RunOptions};
use crate::images::now;
use crate::state::ContainerRecord;

impl Containers {
    /// Create a container from the image `image` (already in the store).
    pub fn create(&self, image: &str, opts: &RunOptions) -> Result<ContainerRecord> {
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
        };
        // The row first: whatever is made after it is found again by it.
        db.insert_container(&record).map_err(|e| match e {
            crate::state::Error::Sql(_) => Error::Conflict(format!(
                "the name `{}` is already used by a container",
                record.name
            )),
            other => other.into(),
        })?;
        if let Err(e) = self.make_files(&record, opts) {
            let _ = std::fs::remove_dir_all(self.dir(&id));
            let _ = db.remove_container(&id);
            return Err(e);
        }
        self.emit(&record, "created");
        Ok(record)
    }

    /// `upper/`, `work/`, and the per-container /etc files.
    fn make_files(&self, c: &ContainerRecord, opts: &RunOptions) -> Result<()> {
        let dir = self.dir(&c.id);
        for d in ["upper", "work"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        }
        let hostname = hostname_of(c);
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        );
        let resolv = match opts.network {
            super::Network::Host => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            // No network: nothing to resolve with, but programs expect the file.
            super::Network::None => String::new(),
        };
        for (name, text) in [
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))?;
        }
        Ok(())
    }
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
