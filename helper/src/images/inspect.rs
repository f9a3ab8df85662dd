//! `inspect`: one image as a JSON document.

use serde_json::{json, Value};

use super::{Error, ImageStore, Result};
use crate::registry::{parse_manifest, Manifest};

impl ImageStore {
    /// Name, digests, platform, config, layers (blob digest, media type,
    /// compressed size, diff id, chain id) and unpacked size.
    pub fn inspect(&self, input: &str) -> Result<Value> {
        let inner = &self.inner;
        let n = self.find(input)?;
        let m = inner.db.manifest(&n.manifest)?.ok_or_else(|| {
            Error::NotFound(format!(
                "image `{input}` has no manifest record; pull it again"
            ))
        })?;
        let manifest_bytes = inner.content.read(&m.digest)?;
        let Manifest::Image(manifest) = parse_manifest(&manifest_bytes, None)? else {
            return Err(Error::Corrupt(format!(
                "{} is not an image manifest",
                m.digest
            )));
        };
        let config: Value = serde_json::from_slice(&inner.content.read(&m.config)?)
            .map_err(|e| Error::Corrupt(format!("config {} is not JSON: {e}", m.config)))?;
        let layers: Vec<Value> = manifest
            .layers
            .iter()
            .zip(&m.layers)
            .map(|(d, l)| {
                json!({
                    "digest": d.digest.to_string(),
                    "media_type": d.media_type,
                    "size": d.size,
                    "diff_id": l.diff_id.to_string(),
                    "chain_id": l.chain_id.to_string(),
                })
            })
            .collect();
        let platform = format!(
            "{}/{}{}",
            config["os"].as_str().unwrap_or("unknown"),
            config["architecture"].as_str().unwrap_or("unknown"),
            config["variant"]
                .as_str()
                .map(|v| format!("/{v}"))
                .unwrap_or_default()
        );
        Ok(json!({
            "name": n.name,
            "digest": n.target.to_string(),
            "manifest": m.digest.to_string(),
            "id": m.config.to_string(),
            "platform": platform,
            "created": m.created,
            "pulled": n.pulled,
            "size": m.size,
            "layers": layers,
            "config": config,
        }))
    }
}
