//! `rmi` and `prune`: forget names, then collect what nothing references.
//!
//! Both are mark and sweep under the exclusive lease: the database says what
//! is live, everything else in the blob and layer stores goes. Rows are
//! deleted before files, so a crash in between leaves only unreferenced
//! files, which the next collection removes.

use std::collections::HashSet;

use super::{Error, ImageStore, Result};

/// What a collection freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub blobs_removed: u32,
    pub layers_removed: u32,
    pub bytes_freed: u64,
}

impl ImageStore {
    /// Remove the image `input` names, and the content only it used.
    pub async fn remove(&self, input: &str) -> Result<(String, PruneReport)> {
        let _lease = self.exclusive_lease().await;
        let n = self.find(input)?;
        if !self.inner.db.remove_name(&n.name)? {
            return Err(Error::NotFound(format!("no image `{input}` in the store")));
        }
        let report = self.collect()?;
        Ok((n.name, report))
    }

    /// Remove every blob, layer directory and partial download that no
    /// image references.
    pub async fn prune(&self) -> Result<PruneReport> {
        let _lease = self.exclusive_lease().await;
        let mut report = self.collect()?;
        report.bytes_freed += self.inner.content.prune_ingests()?;
        Ok(report)
    }

    /// Mark and sweep. The caller holds the exclusive lease.
    fn collect(&self) -> Result<PruneReport> {
        let inner = &self.inner;
        let (blobs, layers) = inner.db.live()?;
        let blobs: HashSet<_> = blobs.into_iter().collect();
        let layers: HashSet<_> = layers.into_iter().collect();
        let mut report = PruneReport::default();
        for (d, _) in inner.content.list()? {
            if !blobs.contains(&d) {
                report.bytes_freed += inner.content.delete(&d)?;
                report.blobs_removed += 1;
            }
        }
        for c in inner.layers.list()? {
            if !layers.contains(&c) {
                report.bytes_freed += inner.layers.remove(&c)?;
                report.layers_removed += 1;
            }
        }
        Ok(report)
    }
}
