//! `export`: write an image's merged filesystem into a directory, laid out
//! as `umoci unpack` lays out its rootfs.

use std::os::fd::{AsFd, OwnedFd};

use super::{Error, ImageStore, Result};
use crate::cancel::Cancel;

impl ImageStore {
    /// Export the image `input` names into the directory `dir`. With
    /// `owner`, every file is given to that uid/gid, set-id bits are dropped
    /// and device nodes are skipped: that is how a non-root caller gets an
    /// export, so berthd never plants set-uid-root files or devices for them.
    /// Returns the number of entries written.
    pub async fn export(
        &self,
        input: &str,
        dir: OwnedFd,
        owner: Option<(u32, u32)>,
        cancel: &Cancel,
    ) -> Result<u64> {
        let _lease = self.shared_lease().await;
        let n = self.find(input)?;
        let m = self.inner.db.manifest(&n.manifest)?.ok_or_else(|| {
            Error::NotFound(format!(
                "image `{input}` has no manifest record; pull it again"
            ))
        })?;
        let Some(top) = m.layers.last().map(|l| l.chain_id.clone()) else {
            return Ok(0);
        };
        let layers = self.inner.layers.clone();
        let cancel = cancel.clone();
        tokio::task::spawn_blocking(move || layers.export(&top, dir.as_fd(), owner, cancel.flag()))
            .await
            .map_err(|e| Error::Corrupt(format!("export crashed: {e}")))?
            .map_err(Error::from)
    }
}
