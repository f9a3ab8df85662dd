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

/// What every local user may see of an image's [`ImageStore::inspect`]
/// document: names, digests, platform, layers, sizes, and of its config the
/// exposed ports, volumes, working directory, user and the *names* of its
/// environment variables; not their values, the command, the entrypoint,
/// labels or the build history (`created_by` holds every build command).
/// An image pulled with someone's login is theirs to read (§1.5 of the
/// security review). Marks the document `"redacted": true`.
pub fn redact_inspect(doc: &mut Value) {
    const KEEP: [&str; 5] = [
        "ExposedPorts",
        "Volumes",
        "WorkingDir",
        "User",
        "StopSignal",
    ];
    let config = &mut doc["config"];
    let mut kept = serde_json::Map::new();
    for key in ["architecture", "os", "variant", "created"] {
        if let Some(v) = config.get(key) {
            kept.insert(key.into(), v.clone());
        }
    }
    let mut run = serde_json::Map::new();
    if let Some(c) = config.get("config").and_then(Value::as_object) {
        for key in KEEP {
            if let Some(v) = c.get(key) {
                run.insert(key.into(), v.clone());
            }
        }
        if let Some(env) = c.get("Env").and_then(Value::as_array) {
            let names: Vec<Value> = env
                .iter()
                .filter_map(Value::as_str)
                .map(|e| Value::from(e.split_once('=').map_or(e, |(k, _)| k)))
                .collect();
            run.insert("Env".into(), Value::from(names));
        }
    }
    kept.insert("config".into(), Value::Object(run));
    *config = Value::Object(kept);
    doc["redacted"] = Value::Bool(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_facts_and_drops_secrets() {
        let mut doc = json!({
            "name": "x:1",
            "config": {
                "architecture": "amd64",
                "os": "linux",
                "config": {
                    "Env": ["PATH=/bin", "TOKEN=hunter2"],
                    "Cmd": ["serve", "--password", "hunter2"],
                    "Entrypoint": ["/init"],
                    "Labels": {"secret": "hunter2"},
                    "ExposedPorts": {"80/tcp": {}},
                    "User": "app"
                },
                "history": [{"created_by": "RUN echo hunter2 > /key"}]
            }
        });
        redact_inspect(&mut doc);
        let text = doc.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("/init"), "{text}");
        assert_eq!(doc["config"]["config"]["Env"], json!(["PATH", "TOKEN"]));
        assert_eq!(doc["config"]["config"]["User"], "app");
        assert_eq!(doc["config"]["os"], "linux");
        assert_eq!(doc["name"], "x:1");
        assert_eq!(doc["redacted"], true);
    }
}
