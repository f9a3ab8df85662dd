//! Named volumes: what they hold and what uses them (`berth volume ls`),
//! and deleting the data uninstalls kept (`berth volume rm`, `berth volume
//! prune`, `berth uninstall --delete-data` of an app that is gone).
//!
//! # A volume
//!
//! An app's Compose file declares its named volumes; an install makes each
//! as `<root>/volumes/<app>_<name>/_data` and records it in the `volumes`
//! table (see [`crate::state`]), which also remembers the app it belongs
//! to. An uninstall removes the directory and the record with the app, or,
//! with `keep_data`, leaves both: the app's row goes, the volume's stays.
//! Such a volume is *kept*: the next install of the app finds it and uses
//! it again, and nothing else ever touches it. Only kept volumes can be
//! removed on their own; one of an installed app goes with its app.
//!
//! # Sizes
//!
//! [`tree_size`] sums the sizes of the regular files in a volume, as `du
//! --apparent-size -s -x` does: a symbolic link is never followed, a mount
//! inside is not entered, a file with several hard links counts once. What
//! is inside was written by the app's containers, so the walk trusts no
//! path: every directory is opened beneath the volume's with `openat2`
//! refusing symlinks, magic links and mount crossings, and each entry is
//! looked at with `fstatat` on that directory without following it. A
//! directory swapped for a symlink mid-walk is skipped, never followed out.
//!
//! # Deleting one
//!
//! ```text
//!  rename <root>/volumes/<name> to <root>/volumes/.<name>.removing   volume-renamed
//!  delete its record                                                  volume-forgotten
//!  delete the renamed directory
//! ```
//!
//! The rename is atomic, so an install, which looks for a kept volume by
//! its record *and* its `_data` directory, sees the volume whole or not at
//! all. A crash after the rename leaves a record without a directory: an
//! install of the app then makes a new, empty volume, and the record is
//! dropped at berthd's next start ([`AppManager::finish_volume_removals`]);
//! a crash after the record went leaves only the renamed directory, which
//! the same start deletes (and `berth doctor` would remove as a file no
//! record explains). The names on the right are [`super::crash_point`]s.
//!
//! Uninstall (a volume the app made, or kept data with `--delete-data`),
//! the roll-back of an install, `RemoveVolume` and `PruneVolumes` all
//! delete through [`AppManager::delete_volume`]. The last two hold the
//! app's busy mark while they do, so no install, uninstall or update of
//! the app runs meanwhile, and refuse (or, pruning, pass over) an app
//! that has an operation under way.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_api::{VolumeInfo, VolumePruneReport};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::crash::crash_point;
use super::install::{container_name, volume_name};
use super::manager::{state_err, AppManager};
use super::remove::remove_dir;
use super::{Error, Result};

/// What a volume's directory is renamed to while it is deleted.
fn removing_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.removing"))
}

/// The volume whose directory `.<name>.removing` was being deleted.
fn removing_name(file_name: &str) -> Option<&str> {
    file_name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".removing"))
        .filter(|n| !n.is_empty())
}

impl AppManager {
    /// Every recorded volume with its size and the containers that use it
    /// (blocking: it walks them).
    pub fn volumes(&self) -> Result<Vec<VolumeInfo>> {
        let db = self.db();
        // App id → the containers mounting each of its volumes, None when
        // the app is not installed.
        let mut apps: BTreeMap<String, Option<BTreeMap<String, Vec<String>>>> = BTreeMap::new();
        let mut out = Vec::new();
        for v in db.volumes().map_err(state_err)? {
            if !apps.contains_key(&v.app) {
                let users = match db.app(&v.app).map_err(state_err)? {
                    Some(_) => Some(self.volume_users(&v.app)),
                    None => None,
                };
                apps.insert(v.app.clone(), users);
            }
            let users = &apps[&v.app];
            let path = self.volume_dir(&v.name);
            out.push(VolumeInfo {
                size_bytes: tree_size(&path),
                path: path.display().to_string(),
                used_by: users
                    .as_ref()
                    .and_then(|u| u.get(&v.name).cloned())
                    .unwrap_or_default(),
                kept: users.is_none(),
                name: v.name,
                app: v.app,
                created: v.created,
            });
        }
        Ok(out)
    }

    /// Volume name → the containers of installed app `app` that mount it
    /// (`<app>-<service>-1`, in start order), from its installed Compose
    /// file. Empty if that cannot be read (the app is half installed).
    fn volume_users(&self, app: &str) -> BTreeMap<String, Vec<String>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let Ok(a) = self.installed_app(app) else {
            return users;
        };
        for s in a.compose.start_order() {
            let mut seen = HashSet::new();
            for m in &s.volumes {
                if seen.insert(&m.source) {
                    users
                        .entry(volume_name(app, &m.source))
                        .or_default()
                        .push(container_name(app, &s.name));
                }
            }
        }
        users
    }

    /// Delete the kept volume `name` (its app is not installed); the bytes
    /// it held.
    pub async fn remove_volume(&self, name: &str) -> Result<u64> {
        let no_such = || {
            Error::NotFound(format!(
                "no volume `{name}`; `berth volume ls` lists the volumes berthd keeps"
            ))
        };
        let v = self
            .db()
            .volume(name)
            .map_err(state_err)?
            .ok_or_else(no_such)?;
        let _busy = self.busy_wait(&v.app, "removing its volume").await?;
        // Looked at again under the mark: a prune may have been quicker.
        let v = self
            .db()
            .volume(name)
            .map_err(state_err)?
            .ok_or_else(no_such)?;
        if let Some(a) = self.db().app(&v.app).map_err(state_err)? {
            let state = match a.state.as_str() {
                "installing" => "being installed",
                "updating" => "being updated",
                "removing" => "being removed",
                _ => "installed",
            };
            return Err(Error::Conflict(format!(
                "volume {name} belongs to app {app}, which is {state}; only data an \
                 uninstall kept can be removed on its own. Uninstall the app first: `berth \
                 uninstall {app} --delete-data` removes the volume with it, `--keep-data` \
                 keeps it for `berth volume rm {name}`",
                app = v.app
            )));
        }
        let (this, name, path) = (self.clone(), v.name, self.volume_dir(name));
        off_thread(move || this.delete_volume(&name, &path)).await
    }

    /// Delete every kept volume. An app with an operation under way (an
    /// install about to use its kept data, say) is passed over.
    pub async fn prune_volumes(&self) -> Result<VolumePruneReport> {
        let mut by_app: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in self.db().volumes().map_err(state_err)? {
            by_app.entry(v.app).or_default().push(v.name);
        }
        let mut report = VolumePruneReport::default();
        for (app, names) in by_app {
            if self.db().app(&app).map_err(state_err)?.is_some() {
                continue;
            }
            let Ok(_busy) = self.busy(&app, "removing its kept data") else {
                continue;
            };
            // An install may have begun between the two looks.
            if self.db().app(&app).map_err(state_err)?.is_some() {
                continue;
            }
            for name in names {
                if self.db().volume(&name).map_err(state_err)?.is_none() {
                    continue;
                }
                let (this, n, path) = (self.clone(), name.clone(), self.volume_dir(&name));
                match off_thread(move || this.delete_volume(&n, &path)).await {
                    Ok(bytes) => {
                        report.removed.push(name);
                        report.bytes_freed += bytes;
                    }
                    Err(e) if report.removed.is_empty() => return Err(e),
                    Err(e) => {
                        return Err(Error::Failed(format!(
                            "{e}; the volumes removed before it: {}",
                            report.removed.join(", ")
                        )))
                    }
                }
            }
        }
        Ok(report)
    }

    /// Delete volume `name`, whose directory is `path`, and its record, in
    /// an order a crash cannot turn into a half-deleted volume an install
    /// would use (see the module doc). Returns the bytes it held. The
    /// caller holds the app's busy mark (blocking: it walks and deletes).
    pub(super) fn delete_volume(&self, name: &str, path: &Path) -> Result<u64> {
        let trash = removing_path(path);
        if path.symlink_metadata().is_ok() {
            // A directory of the same name that a crash left half deleted
            // earlier is in the way of the rename.
            remove_dir(&trash)?;
            std::fs::rename(path, &trash).map_err(|source| Error::Io {
                what: "moving the volume out of the way",
                path: path.to_path_buf(),
                source,
            })?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        // Else a removal cut short left the data in `trash`, or nothing.
        crash_point("volume-renamed");
        let bytes = tree_size(&trash);
        self.db().remove_volume(name).map_err(state_err)?;
        crash_point("volume-forgotten");
        remove_dir(&trash)?;
        Ok(bytes)
    }

    /// Finish the volume deletions a crash cut short: at berthd's start,
    /// before anything can use the volumes.
    pub(super) fn finish_volume_removals(&self) {
        let dir = self.inner.root.join("volumes");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let file_name = e.file_name().to_string_lossy().into_owned();
            let Some(name) = removing_name(&file_name) else {
                continue;
            };
            // The record goes with the directory, unless the volume is
            // there again (its app was installed anew) or its app is
            // installed (its uninstall, resumed next, removes both).
            let record = self.db().volume(name).ok().flatten();
            if let Some(v) = record {
                let app_installed = self.db().app(&v.app).ok().flatten().is_some();
                if !app_installed && !self.volume_dir(name).exists() {
                    if let Err(err) = self.db().remove_volume(name) {
                        tracing::error!(volume = name, "forgetting a deleted volume: {err}");
                        continue;
                    }
                }
            }
            tracing::warn!(
                volume = name,
                "finishing its deletion, cut short by a crash"
            );
            if let Err(err) = remove_dir(&e.path()) {
                tracing::error!(volume = name, "{err}");
            }
        }
    }
}

/// Run a deletion off the async threads.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Failed(format!("deleting the volume crashed: {e}")))?
}

/// Make a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            what: "syncing",
            path: dir.to_path_buf(),
            source,
        })
}

/// Below the walk's top directory nothing is followed and no mount is
/// crossed.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Bytes in the regular files under the directory `root`: symbolic links
/// not followed, mounts not entered, hard links counted once (see the
/// module doc). 0 when `root` is not a directory; what cannot be read is
/// left out.
pub(crate) fn tree_size(root: &Path) -> u64 {
    let Ok(top) = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let Ok(st) = rustix::fs::fstat(&top) else {
        return 0;
    };
    let dev = st.st_dev;
    let mut linked = HashSet::new();
    let mut total = 0u64;
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        // Gone since, or swapped for a symlink: left out.
        let Ok(dir) = open_beneath(top.as_fd(), &rel) else {
            continue;
        };
        let Ok(entries) = Dir::read_from(&dir) else {
            continue;
        };
        for entry in entries {
            let Ok(entry) = entry else { break };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != dev {
                continue; // a mount point
            }
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => stack.push(join(&rel, name)),
                FileType::RegularFile if st.st_nlink <= 1 || linked.insert(st.st_ino) => {
                    total += st.st_size.max(0) as u64;
                }
                _ => {}
            }
        }
    }
    total
}

fn open_beneath(dir: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            dir,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            // A rename raced with the lookup.
            Err(Errno::AGAIN | Errno::INTR) if tries < 128 => tries += 1,
            r => return Ok(r?),
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, len: usize) {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(path, vec![b'x'; len]).unwrap();
    }

    #[test]
    fn sizes_sum_the_regular_files_at_any_depth() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(tree_size(t.path()), 0);
        write(&t.path().join("a"), 10);
        write(&t.path().join("d/b"), 100);
        write(&t.path().join("d/e/f/c"), 1000);
        write(&t.path().join("d/empty"), 0);
        std::fs::create_dir_all(t.path().join("g/h")).unwrap();
        assert_eq!(tree_size(t.path()), 1110);
        assert_eq!(tree_size(&t.path().join("d")), 1100);
    }

    #[test]
    fn symlinks_are_not_followed_and_hard_links_count_once() {
        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join("big"), 100_000);
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("data/file"), 7);
        std::os::unix::fs::symlink(outside.path().join("big"), t.path().join("data/to-file"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("data/to-dir")).unwrap();
        std::fs::hard_link(t.path().join("data/file"), t.path().join("data/again")).unwrap();
        std::fs::hard_link(t.path().join("data/file"), t.path().join("third")).unwrap();
        assert_eq!(tree_size(t.path()), 7);
        // Nor is a symlink given as the volume itself.
        let link = t.path().join("link");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        assert_eq!(tree_size(&link), 0);
        assert_eq!(tree_size(&t.path().join("no-such-dir")), 0);
        assert_eq!(tree_size(&t.path().join("third")), 0, "not a directory");
    }

    #[test]
    fn mounts_inside_are_not_entered() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("own"), 5);
        let point = t.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        rustix::mount::mount(
            "tmpfs",
            &point,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        /// Unmounts when dropped, also when an assertion fails.
        struct Mounted<'a>(&'a Path);
        impl Drop for Mounted<'_> {
            fn drop(&mut self) {
                let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::DETACH);
            }
        }
        let mounted = Mounted(&point);
        write(&point.join("inside"), 50_000);
        write(&point.join("deeper/more"), 50_000);
        assert_eq!(tree_size(t.path()), 5);
        assert_eq!(
            tree_size(&point),
            100_000,
            "a mount given as the top is walked"
        );
        drop(mounted);
        assert_eq!(tree_size(t.path()), 5);
    }

    /// An app manager on empty temp roots: no container, no network is
    /// made, so these need no root.
    async fn manager() -> (tempfile::TempDir, AppManager) {
        let t = tempfile::tempdir().unwrap();
        let (root, run) = (t.path().join("root"), t.path().join("run"));
        for d in [&root, &run] {
            std::fs::create_dir_all(d).unwrap();
        }
        let creds = std::sync::Arc::new(crate::credentials::FileCredentials::open(&root).unwrap());
        let images =
            crate::images::ImageStore::open(&root, crate::config::Config::default(), creds)
                .unwrap();
        // No shim binary there: the spare shim is not started.
        let containers = crate::containers::Containers::open(
            images.clone(),
            &run,
            &t.path().join("no-binaries"),
        )
        .await
        .unwrap();
        let m = AppManager::open(
            images,
            containers,
            &run,
            crate::network::NetworkConfig::default(),
        )
        .await
        .unwrap();
        (t, m)
    }

    /// Record volume `name` of `app` with a file of `len` bytes in it.
    fn volume(m: &AppManager, app: &str, name: &str, len: usize) -> PathBuf {
        let dir = m.volume_dir(name);
        write(&dir.join("_data/file"), len);
        m.db().insert_volume(name, app, 1_700_000_000).unwrap();
        dir
    }

    fn install_record(m: &AppManager, app: &str) {
        m.db()
            .insert_app(&crate::state::AppRecord {
                id: app.into(),
                catalog: "test".into(),
                state: "installed".into(),
                desired: "running".into(),
                options: "{}".into(),
                removal: String::new(),
                installed: 1,
                owner: 0,
            })
            .unwrap();
    }

    fn recorded(m: &AppManager) -> Vec<String> {
        m.db()
            .volumes()
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect()
    }

    #[tokio::test]
    async fn only_kept_volumes_are_removed_and_never_under_a_busy_app() {
        let (_t, m) = manager().await;
        install_record(&m, "live");
        let live = volume(&m, "live", "live_data", 10);
        let gone = volume(&m, "gone", "gone_data", 1000);
        let cache = volume(&m, "gone", "gone_cache", 200);

        let list = m.volumes().unwrap();
        let names: Vec<&str> = list.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["gone_cache", "gone_data", "live_data"]);
        assert_eq!(
            list[1],
            VolumeInfo {
                name: "gone_data".into(),
                app: "gone".into(),
                path: gone.display().to_string(),
                size_bytes: 1000,
                created: 1_700_000_000,
                used_by: Vec::new(),
                kept: true,
            }
        );
        assert!(!list[2].kept);

        // An installed app's volume goes with its app.
        let e = m.remove_volume("live_data").await.unwrap_err().to_string();
        assert!(
            e.contains("app live") && e.contains("berth uninstall live --delete-data"),
            "{e}"
        );
        assert!(live.is_dir());
        let e = m.remove_volume("no_such").await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");

        // An app with an operation under way: refused, and passed over.
        let busy = m.busy("gone", "installing").unwrap();
        let e = m.remove_volume("gone_data").await.unwrap_err().to_string();
        assert!(e.contains("busy (installing)"), "{e}");
        assert_eq!(
            m.prune_volumes().await.unwrap(),
            VolumePruneReport::default()
        );
        assert!(gone.is_dir() && cache.is_dir());
        drop(busy);

        assert_eq!(m.remove_volume("gone_data").await.unwrap(), 1000);
        assert!(!gone.exists() && !removing_path(&gone).exists());
        assert_eq!(recorded(&m), ["gone_cache", "live_data"]);
        assert_eq!(
            m.prune_volumes().await.unwrap(),
            VolumePruneReport {
                removed: vec!["gone_cache".into()],
                bytes_freed: 200,
            }
        );
        assert!(!cache.exists());
        assert_eq!(recorded(&m), ["live_data"]);
        assert!(live.is_dir());
    }

    #[tokio::test]
    async fn a_deletion_cut_short_is_finished() {
        let (_t, m) = manager().await;
        // Cut after the rename: the record is left, the data renamed.
        let renamed = volume(&m, "a", "a_data", 30);
        std::fs::rename(&renamed, removing_path(&renamed)).unwrap();
        // Cut after the record went: only the renamed data is left.
        let forgotten = volume(&m, "b", "b_data", 40);
        std::fs::rename(&forgotten, removing_path(&forgotten)).unwrap();
        m.db().remove_volume("b_data").unwrap();
        // The uninstall of an installed app cut after the rename: its
        // record is the resumed uninstall's to remove.
        install_record(&m, "c");
        let removing = volume(&m, "c", "c_data", 50);
        std::fs::rename(&removing, removing_path(&removing)).unwrap();
        // A volume made anew after a cut deletion: kept, record and all.
        let again = volume(&m, "d", "d_data", 60);
        write(&removing_path(&again).join("_data/old"), 5);

        m.finish_volume_removals();
        for v in [&renamed, &forgotten, &removing, &again] {
            assert!(!removing_path(v).exists(), "{}", removing_path(v).display());
        }
        assert_eq!(recorded(&m), ["c_data", "d_data"]);
        assert_eq!(tree_size(&again), 60);

        // Deleting again after a cut rename frees what the rename kept.
        let e = volume(&m, "e", "e_data", 70);
        std::fs::rename(&e, removing_path(&e)).unwrap();
        assert_eq!(m.remove_volume("e_data").await.unwrap(), 70);
        assert!(!removing_path(&e).exists());
        assert_eq!(recorded(&m), ["c_data", "d_data"]);
    }

    #[test]
    fn a_deleted_volume_is_renamed_to_a_name_recovery_knows() {
        let p = Path::new("/var/lib/berth/volumes/hello_site");
        let r = removing_path(p);
        assert_eq!(r, Path::new("/var/lib/berth/volumes/.hello_site.removing"));
        let file_name = r.file_name().unwrap().to_str().unwrap();
        assert_eq!(removing_name(file_name), Some("hello_site"));
        assert_eq!(removing_name("hello_site"), None);
        assert_eq!(removing_name("..removing"), None);
        assert_eq!(removing_name(".hello.tmp"), None);
    }
}
