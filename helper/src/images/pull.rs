//! `pull`: resolve a name, fetch manifest and config, download the layers in
//! parallel and unpack each as soon as it and the layers below it are there,
//! then record the image.
//!
//! Download and unpack overlap: layer *n* unpacks while layers *n+1…* are
//! still downloading, since a layer's directory depends only on the layers
//! below it. A layer whose directory already exists (any image had it) is
//! neither downloaded nor unpacked again; a blob already in the store is not
//! downloaded again, whatever repository it came from.
//!
//! On failure or cancel, what this pull added and no image references is
//! removed again, and partial downloads are deleted.
//!
//! A pull acts for the [`Requester`] who started it: the registry client
//! uses that user's `berth login`s and no one else's (issue 11).

use std::collections::HashSet;
use std::sync::Mutex;

use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{oneshot, watch};

use super::{now, parse_rfc3339, Error, ImageStore, Result};
use crate::cancel::Cancel;
use crate::content::Digest;
use crate::reference::Reference;
use crate::registry::{
    parse_manifest, select_platform, Descriptor, ImageConfig, Manifest, Platform, RegistryClient,
    Requester,
};
use crate::state::{LayerRecord, ManifestRecord};

/// Largest config blob accepted.
const MAX_CONFIG: u64 = 8 << 20;

/// What a pull reports while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// `resolving`, `downloading`, `committing`, `done`.
    pub phase: &'static str,
    pub layers: Vec<LayerProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    pub digest: Digest,
    /// `waiting`, `downloading`, `downloaded`, `exists`, `unpacking`, `done`.
    pub status: &'static str,
    pub done: u64,
    pub total: u64,
}

/// What a finished pull gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    pub name: String,
    pub digest: Digest,
    pub id: Digest,
}

/// Content a pull created, to be removed again if the pull fails.
#[derive(Default)]
struct Created {
    blobs: Vec<Digest>,
    layers: Vec<Digest>,
}

impl ImageStore {
    /// Pull `input` (a reference as a person types it) for `who`, with
    /// `who`'s logins.
    pub async fn pull(
        &self,
        input: &str,
        who: Requester,
        progress: &watch::Sender<PullProgress>,
        cancel: &Cancel,
    ) -> Result<PullResult> {
        let r: Reference = input.parse()?;
        let registry = self.inner.registry.acting_for(who);
        let created = Mutex::new(Created::default());
        let result = {
            let _lease = self.shared_lease().await;
            self.pull_locked(&registry, &r, who, progress, cancel, &created)
                .await
        };
        if result.is_err() {
            let created = std::mem::take(&mut *created.lock().unwrap_or_else(|p| p.into_inner()));
            self.discard(created).await;
        }
        let result = match result {
            Err(_) if cancel.is_cancelled() => Err(Error::Cancelled),
            other => other,
        };
        if result.is_ok() {
            progress.send_modify(|p| p.phase = "done");
        }
        result
    }

    async fn pull_locked(
        &self,
        registry: &RegistryClient,
        r: &Reference,
        who: Requester,
        progress: &watch::Sender<PullProgress>,
        cancel: &Cancel,
        created: &Mutex<Created>,
    ) -> Result<PullResult> {
        let inner = &self.inner;
        let content = &inner.content;
        progress.send_modify(|p| p.phase = "resolving");

        // The name's manifest, and for an index the one for this machine.
        let top = registry.fetch_manifest(r, &r.target(), cancel).await?;
        self.put_blob(&top.digest, &top.bytes, created)?;
        let mut blobs = vec![top.digest.clone()];
        let (manifest_digest, manifest) = match parse_manifest(&top.bytes, Some(&top.media_type))? {
            Manifest::Image(m) => (top.digest.clone(), m),
            Manifest::Index(index) => {
                let want = Platform::host();
                let desc = select_platform(&index, &want).map_err(|e| with_name(e, r))?;
                let child = registry
                    .fetch_manifest(r, &desc.digest.to_string(), cancel)
                    .await?;
                self.put_blob(&child.digest, &child.bytes, created)?;
                blobs.push(child.digest.clone());
                match parse_manifest(&child.bytes, Some(&child.media_type))? {
                    Manifest::Image(m) => (child.digest, m),
                    Manifest::Index(_) => {
                        return Err(Error::Unsupported(format!(
                            "{r}: the index entry for {want} is itself an index; Berth does not follow nested indexes"
                        )))
                    }
                }
            }
        };

        // The config says what the uncompressed layers must hash to.
        let config_bytes = match content.read(&manifest.config.digest) {
            Ok(b) => b,
            Err(_) => {
                let b = registry
                    .fetch_blob_bytes(r, &manifest.config, MAX_CONFIG, cancel)
                    .await?;
                self.put_blob(&manifest.config.digest, &b, created)?;
                b
            }
        };
        blobs.push(manifest.config.digest.clone());
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            Error::Corrupt(format!(
                "the config of {r} ({}) is not a valid image config: {e}",
                manifest.config.digest
            ))
        })?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::Corrupt(format!(
                "{r} is inconsistent: its manifest lists {} layers but its config {}; \
                 the image is broken, ask its publisher to push it again",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let mut chain = Vec::with_capacity(diff_ids.len());
        let mut parent: Option<Digest> = None;
        for d in diff_ids {
            let c = Digest::chain(parent.as_ref(), d);
            chain.push(c.clone());
            parent = Some(c);
        }
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));

        progress.send_modify(|p| {
            p.phase = "downloading";
            p.layers = manifest
                .layers
                .iter()
                .zip(&chain)
                .map(|(l, c)| {
                    let have = inner.layers.exists(c);
                    LayerProgress {
                        digest: l.digest.clone(),
                        status: if have { "exists" } else { "waiting" },
                        done: if have { l.size } else { 0 },
                        total: l.size,
                    }
                })
                .collect();
        });

        let sizes = self
            .fetch_layers(
                registry,
                r,
                &manifest.layers,
                &chain,
                diff_ids,
                progress,
                cancel,
                created,
            )
            .await?;

        progress.send_modify(|p| p.phase = "committing");
        let record = ManifestRecord {
            digest: manifest_digest,
            config: manifest.config.digest.clone(),
            layers: chain
                .iter()
                .zip(diff_ids)
                .map(|(c, d)| LayerRecord {
                    chain_id: c.clone(),
                    diff_id: d.clone(),
                })
                .collect(),
            blobs,
            size: sizes,
            created: config
                .created
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or(0),
        };
        let name = r.to_string();
        inner
            .db
            .record_image(&name, &top.digest, &record, now(), who.owner())?;
        Ok(PullResult {
            name,
            digest: top.digest,
            id: record.config,
        })
    }

    /// Download missing blobs (in parallel) and unpack missing layers (in
    /// order, each as soon as it can). Returns the unpacked size of the image.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_layers(
        &self,
        registry: &RegistryClient,
        r: &Reference,
        layers: &[Descriptor],
        chain: &[Digest],
        diff_ids: &[Digest],
        progress: &watch::Sender<PullProgress>,
        cancel: &Cancel,
        created: &Mutex<Created>,
    ) -> Result<u64> {
        let inner = &self.inner;
        let n = layers.len();
        let mut ready: Vec<Option<oneshot::Receiver<()>>> = Vec::with_capacity(n);
        let mut wanted = Vec::new();
        let mut seen = HashSet::new();
        for (i, l) in layers.iter().enumerate() {
            let need_blob = !inner.layers.exists(&chain[i]) && !inner.content.exists(&l.digest);
            // The same blob twice in one image is downloaded once.
            if need_blob && seen.insert(l.digest.clone()) {
                let (tx, rx) = oneshot::channel();
                wanted.push((i, tx));
                ready.push(Some(rx));
            } else {
                ready.push(None);
            }
        }

        // A download that cannot fit is refused before it fills the disk
        // (issue 11); unpacking checks again as it goes.
        let need: u64 = wanted.iter().map(|(i, _)| layers[*i].size).sum();
        if need > 0 {
            let limits = inner.config.limits.layer_limits();
            inner.layers.check_free_space(&limits, need, || {
                format!(
                    "to download {} of layers for {}",
                    crate::layers::Size(need),
                    r.familiar()
                )
            })?;
        }

        let progress_ref = progress;
        let downloads = futures_util::stream::iter(wanted.into_iter().map(|(i, tx)| {
            let desc = &layers[i];
            async move {
                set_status(progress_ref, i, "downloading");
                let on_bytes = move |done: u64| {
                    progress_ref.send_if_modified(|p| match p.layers.get_mut(i) {
                        Some(l) if l.done != done => {
                            l.done = done;
                            true
                        }
                        _ => false,
                    });
                };
                registry
                    .download_blob(r, desc, &inner.content, &on_bytes, cancel)
                    .await?;
                lock(created).blobs.push(desc.digest.clone());
                progress_ref.send_modify(|p| {
                    if let Some(l) = p.layers.get_mut(i) {
                        l.status = "downloaded";
                        l.done = l.total;
                    }
                });
                let _ = tx.send(());
                Ok::<(), Error>(())
            }
        }))
        .buffer_unordered(inner.config.limits.max_parallel_downloads)
        .try_collect::<()>();

        let unpacks = async {
            let mut size = 0u64;
            for i in 0..n {
                if let Some(rx) = ready[i].take() {
                    // A dropped sender means the download failed; its error
                    // comes out of the download side of the join.
                    if rx.await.is_err() {
                        return Err(Error::Cancelled);
                    }
                }
                size += self
                    .unpack_one(&layers[i], chain, diff_ids, i, progress, cancel, created)
                    .await?;
            }
            Ok(size)
        };

        let ((), size) = futures_util::future::try_join(downloads, unpacks).await?;
        Ok(size)
    }

    /// Unpack layer `i` unless its directory exists. Returns its size.
    #[allow(clippy::too_many_arguments)]
    async fn unpack_one(
        &self,
        desc: &Descriptor,
        chain: &[Digest],
        diff_ids: &[Digest],
        i: usize,
        progress: &watch::Sender<PullProgress>,
        cancel: &Cancel,
        created: &Mutex<Created>,
    ) -> Result<u64> {
        let inner = &self.inner;
        let chain_id = chain[i].clone();
        if inner.layers.exists(&chain_id) {
            set_status(progress, i, "done");
            return Ok(inner.layers.meta(&chain_id)?.size);
        }
        set_status(progress, i, "unpacking");
        let blob = inner.content.open_blob(&desc.digest)?;
        let store = inner.layers.clone();
        let parent = i.checked_sub(1).map(|p| chain[p].clone());
        let diff_id = diff_ids[i].clone();
        let limits = inner.config.limits.layer_limits();
        let cancel = cancel.clone();
        let meta = tokio::task::spawn_blocking(move || {
            store.unpack(
                &chain_id,
                parent.as_ref(),
                &diff_id,
                std::io::BufReader::with_capacity(256 * 1024, blob),
                &limits,
                cancel.flag(),
            )
        })
        .await
        .map_err(|e| Error::Corrupt(format!("unpacking layer {} crashed: {e}", desc.digest)))??;
        lock(created).layers.push(chain[i].clone());
        set_status(progress, i, "done");
        Ok(meta.size)
    }

    fn put_blob(&self, d: &Digest, bytes: &[u8], created: &Mutex<Created>) -> Result<()> {
        if !self.inner.content.exists(d) {
            self.inner.content.put(d, bytes)?;
            lock(created).blobs.push(d.clone());
        }
        Ok(())
    }

    /// Remove what a failed pull added and nothing references.
    async fn discard(&self, created: Created) {
        let _lease = self.exclusive_lease().await;
        let inner = &self.inner;
        let Ok((live_blobs, live_layers)) = inner.db.live() else {
            return;
        };
        let live_blobs: HashSet<_> = live_blobs.into_iter().collect();
        let live_layers: HashSet<_> = live_layers.into_iter().collect();
        for b in created.blobs.iter().filter(|b| !live_blobs.contains(*b)) {
            if let Err(e) = inner.content.delete(b) {
                tracing::warn!("cleaning up blob {b} after a failed pull: {e}");
            }
        }
        for l in created
            .layers
            .iter()
            .rev()
            .filter(|l| !live_layers.contains(*l))
        {
            if let Err(e) = inner.layers.remove(l) {
                tracing::warn!("cleaning up layer {l} after a failed pull: {e}");
            }
        }
        if let Err(e) = inner.content.prune_ingests() {
            tracing::warn!("removing partial downloads: {e}");
        }
    }
}

fn set_status(progress: &watch::Sender<PullProgress>, i: usize, status: &'static str) {
    progress.send_modify(|p| {
        if let Some(l) = p.layers.get_mut(i) {
            l.status = status;
        }
    });
}

fn lock(m: &Mutex<Created>) -> std::sync::MutexGuard<'_, Created> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Put the reference into a platform-selection error.
fn with_name(e: crate::registry::Error, r: &Reference) -> Error {
    match e {
        crate::registry::Error::NotFound(m) => Error::NotFound(format!("{}: {m}", r.familiar())),
        other => other.into(),
    }
}

#[allow(dead_code)]
fn _assert_send(s: &ImageStore, p: &watch::Sender<PullProgress>, c: &Cancel) {
    fn is_send<T: Send>(_: T) {}
    is_send(s.pull("x", Requester::Anonymous, p, c));
}
