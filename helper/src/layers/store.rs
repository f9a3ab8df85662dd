//! `LayerStore`: unpacked layers by chain id, each complete or absent (see
//! the module docs for the layout and the lifecycle).

use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::RenameFlags;
use rustix::io::Errno;

use super::{export, safe, unpack, Error, Limits, Result};
use crate::content::Digest;

const META: &str = "meta.json";
const DIFF: &str = "diff";

/// What the store knows about one unpacked layer (its `meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerMeta {
    /// The layer's name in the store: digest of the stack it tops.
    pub chain_id: Digest,
    /// sha256 of the layer's uncompressed tar.
    pub diff_id: Digest,
    /// The chain id of the layer below, `None` for a base layer.
    pub parent: Option<Digest>,
    /// Bytes of regular file content.
    pub size: u64,
    /// Tar entries.
    pub entries: u64,
}

/// Unpacked layers under `<berth root>/layers`. Cheap to clone; every clone
/// names the same directory.
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

impl LayerStore {
    /// Open the store at `root`, making its directories, and delete what a
    /// crash left in `tmp/`. Only one berthd may use a root at a time.
    pub fn open(root: &Path) -> Result<LayerStore> {
        let store = LayerStore {
            root: root.to_path_buf(),
        };
        for dir in [root.to_path_buf(), store.sha_dir(), store.tmp_dir()] {
            make_private_dir(&dir)?;
        }
        let tmp = safe::open_trusted_dir(&store.tmp_dir())
            .map_err(|e| store.err("opening", &store.tmp_dir(), e))?;
        let freed = safe::remove_children(tmp)
            .map_err(|e| store.err("removing interrupted work from", &store.tmp_dir(), e))?;
        if freed > 0 {
            tracing::info!(
                bytes = freed,
                "removed unfinished layers left by an earlier run"
            );
        }
        Ok(store)
    }

    /// Refuse work that will write `need` bytes into the store (or next to
    /// it, on the same file system) and so go below the free space `limits`
    /// keep; `doing` says what, for the message.
    pub fn check_free_space(
        &self,
        limits: &Limits,
        need: u64,
        doing: impl FnOnce() -> String,
    ) -> Result<()> {
        super::space::check_free_space(&self.root, limits, need, doing)
    }

    /// The unpacked layer: the directory to pass to overlayfs as a lower.
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.layer_dir(chain_id).join(DIFF)
    }

    /// Whether the layer is in the store (and so complete).
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).join(META).is_file()
    }

    /// The layer's record.
    pub fn meta(&self, chain_id: &Digest) -> Result<LayerMeta> {
        read_meta(&self.layer_dir(chain_id).join(META), chain_id)
    }

    /// The `diff` directories of `top` and the layers below it, top first:
    /// the order of overlayfs's `lowerdir=`.
    pub fn chain(&self, top: &Digest) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        let mut next = Some(top.clone());
        while let Some(id) = next {
            let meta = self.meta(&id)?;
            dirs.push(self.path(&id));
            if dirs.len() > 1000 {
                // Images are limited to 127 or so layers; a loop is a bug.
                return Err(Error::Corrupt(format!(
                    "the chain of layer {top} does not end"
                )));
            }
            next = meta.parent;
        }
        Ok(dirs)
    }

    /// Unpack the blob `src` as layer `chain_id` (diff id `expected_diff_id`,
    /// on top of `parent`), unless it is there already. The layer appears
    /// under its name complete and verified, or not at all.
    pub fn unpack(
        &self,
        chain_id: &Digest,
        parent: Option<&Digest>,
        expected_diff_id: &Digest,
        src: impl Read + Send,
        limits: &Limits,
        cancel: &AtomicBool,
    ) -> Result<LayerMeta> {
        let computed = Digest::chain(parent, expected_diff_id);
        if &computed != chain_id {
            return Err(Error::Corrupt(format!(
                "chain id {chain_id} does not match its parent and diff id {expected_diff_id} \
                 (expected {computed})"
            )));
        }
        if self.exists(chain_id) {
            return self.meta(chain_id);
        }
        let lowers = match parent {
            Some(p) => self.chain(p)?,
            None => Vec::new(),
        };
        let tmp = self.make_tmp()?;
        let result = self.unpack_into(
            &tmp,
            chain_id,
            parent,
            expected_diff_id,
            src,
            &lowers,
            limits,
            cancel,
        );
        let outcome = match result {
            Ok(meta) => self.commit(&tmp, chain_id).map(|won| (won, meta)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((true, meta)) => Ok(meta),
            Ok((false, _)) => {
                self.discard(&tmp);
                self.meta(chain_id)
            }
            Err(e) => {
                self.discard(&tmp);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn unpack_into(
        &self,
        tmp: &Path,
        chain_id: &Digest,
        parent: Option<&Digest>,
        expected_diff_id: &Digest,
        src: impl Read + Send,
        lowers: &[PathBuf],
        limits: &Limits,
        cancel: &AtomicBool,
    ) -> Result<LayerMeta> {
        let diff = tmp.join(DIFF);
        std::fs::create_dir(&diff).map_err(|e| self.err("creating", &diff, e))?;
        let report = unpack(src, &diff, lowers, limits, cancel).map_err(|e| match e {
            // Name the store in the message, not its work directory.
            Error::NoSpace {
                doing,
                available,
                keep,
                ..
            } => Error::NoSpace {
                doing,
                path: self.root.clone(),
                available,
                keep,
            },
            e => e,
        })?;
        if &report.diff_id != expected_diff_id {
            return Err(Error::Corrupt(format!(
                "layer {chain_id} should have diff id {expected_diff_id} but its content \
                 has {}; the blob is damaged or the image config is wrong",
                report.diff_id
            )));
        }
        let meta = LayerMeta {
            chain_id: chain_id.clone(),
            diff_id: report.diff_id,
            parent: parent.cloned(),
            size: report.size,
            entries: report.entries,
        };
        let json = serde_json::to_vec_pretty(&meta).expect("LayerMeta serializes");
        let part = tmp.join("meta.json.part");
        std::fs::write(&part, json).map_err(|e| self.err("writing", &part, e))?;
        std::fs::rename(&part, tmp.join(META)).map_err(|e| self.err("writing", &part, e))?;
        Ok(meta)
    }

    /// Move the finished `tmp` to its name. `false` if another pull put the
    /// layer there first.
    fn commit(&self, tmp: &Path, chain_id: &Digest) -> Result<bool> {
        let dest = self.layer_dir(chain_id);
        let r = rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp,
            rustix::fs::CWD,
            &dest,
            RenameFlags::NOREPLACE,
        );
        let r = match r {
            // File systems without RENAME_NOREPLACE: plain rename(2) also
            // refuses to replace a non-empty directory.
            Err(Errno::INVAL) => rustix::fs::rename(tmp, &dest),
            r => r,
        };
        match r {
            Ok(()) => Ok(true),
            Err(Errno::EXIST | Errno::NOTEMPTY) => Ok(false),
            Err(e) => Err(self.err("moving the unpacked layer to", &dest, e.into())),
        }
    }

    /// All layers in the store.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.sha_dir();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| self.err("listing", &dir, e))? {
            let entry = entry.map_err(|e| self.err("listing", &dir, e))?;
            let name = entry.file_name();
            match name
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse().ok())
            {
                Some(d) => out.push(d),
                None => tracing::warn!("ignoring {:?} in {}: not a layer", name, dir.display()),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Delete a layer; returns the bytes of disk space freed. The layer is
    /// first moved out of its name, so a crash leaves it absent, never half.
    /// The caller makes sure no image or container still uses it.
    pub fn remove(&self, chain_id: &Digest) -> Result<u64> {
        let tmp = self.tmp_name();
        match rustix::fs::rename(self.layer_dir(chain_id), &tmp) {
            Ok(()) => {}
            Err(Errno::NOENT) => {
                return Err(Error::NotFound {
                    chain_id: chain_id.clone(),
                })
            }
            Err(e) => return Err(self.err("moving out", &self.layer_dir(chain_id), e.into())),
        }
        self.remove_tmp(&tmp)
            .map_err(|e| self.err("deleting the removed layer", &tmp, e))
    }

    /// Write the merged file system of the chain ending at `top` into the
    /// directory `dest`, as `umoci unpack` lays out a rootfs. With `owner`,
    /// everything is given to that uid/gid, set-id bits and all but `user.*`
    /// xattrs are dropped and device nodes skipped: this is how a non-root
    /// caller gets an export without berthd planting privileged files for
    /// them. Returns the number of entries written. On an error or when
    /// cancelled, `dest` holds part of the tree; the caller removes it.
    pub fn export(
        &self,
        top: &Digest,
        dest: BorrowedFd<'_>,
        owner: Option<(u32, u32)>,
        cancel: &AtomicBool,
    ) -> Result<u64> {
        let mut layers = self.chain(top)?;
        layers.reverse();
        export::export(&layers, dest, owner, cancel)
    }

    fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.sha_dir().join(chain_id.hex())
    }

    fn sha_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh name under `tmp/`, unique within this process and across
    /// restarts.
    fn tmp_name(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.tmp_dir().join(format!(
            "{}-{}-{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn make_tmp(&self) -> Result<PathBuf> {
        loop {
            let tmp = self.tmp_name();
            match std::fs::create_dir(&tmp) {
                Ok(()) => return Ok(tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.err("creating", &tmp, e)),
            }
        }
    }

    fn remove_tmp(&self, tmp: &Path) -> io::Result<u64> {
        let name = tmp.file_name().expect("tmp paths have a name");
        let dir = safe::open_trusted_dir(&self.tmp_dir())?;
        safe::remove_all(&dir, std::os::unix::ffi::OsStrExt::as_bytes(name))
    }

    /// Delete a failed or redundant unpack. Failing to is not the caller's
    /// problem: the next start clears `tmp/` anyway.
    fn discard(&self, tmp: &Path) {
        if let Err(e) = self.remove_tmp(tmp) {
            tracing::warn!(
                "cannot remove {}: {e}; it will be removed when berthd restarts",
                tmp.display()
            );
        }
    }

    fn err(&self, what: &str, path: &Path, e: io::Error) -> Error {
        Error::io(format!("{what} {}", path.display()), e)
    }
}

/// `dir` 0700, made if missing and tightened if an older berthd left it
/// looser.
fn make_private_dir(dir: &Path) -> Result<()> {
    crate::fsmode::private_dir(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

fn read_meta(path: &Path, chain_id: &Digest) -> Result<LayerMeta> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                chain_id: chain_id.clone(),
            })
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let meta: LayerMeta = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Corrupt(format!(
            "{} is not a valid layer record ({e}); remove the layer and pull again",
            path.display()
        ))
    })?;
    if &meta.chain_id != chain_id {
        return Err(Error::Corrupt(format!(
            "{} describes layer {} instead of {chain_id}",
            path.display(),
            meta.chain_id
        )));
    }
    Ok(meta)
}
