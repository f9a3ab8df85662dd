//! Images and indexes: config and manifest JSON around built layers, pushed
//! through the distribution API.

use super::layer::{BuiltLayer, Layer};
use super::tree::{self, Tree};
use crate::registry::RegistryClient;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Bytes with their digest and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Arc<Vec<u8>>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: crate::sha256_digest(&data),
            data: Arc::new(data),
        }
    }

    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.data).expect("the kit writes valid JSON")
    }
}

/// The shape of an image manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest with `"mediaType"`.
    Oci,
    /// OCI image manifest without the (optional) `"mediaType"` field, pushed
    /// and served with the OCI content type.
    OciWithoutMediaType,
    /// Docker image manifest v2 schema 2.
    Docker,
}

impl ManifestFormat {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci | ManifestFormat::OciWithoutMediaType => OCI_MANIFEST,
            ManifestFormat::Docker => DOCKER_MANIFEST,
        }
    }

    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Docker => DOCKER_CONFIG,
            _ => OCI_CONFIG,
        }
    }

    fn is_docker(self) -> bool {
        self == ManifestFormat::Docker
    }
}

#[derive(Debug, Clone)]
enum LayerSpec {
    Layer(Layer),
    Built(BuiltLayer),
}

/// Builds one single-platform image.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    format: ManifestFormat,
    architecture: String,
    variant: Option<String>,
    os: String,
    layers: Vec<LayerSpec>,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    labels: BTreeMap<String, String>,
    exposed_ports: Vec<String>,
    annotations: BTreeMap<String, String>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// OCI, linux/host arch, `PATH` set, no layers.
    pub fn new() -> Self {
        Self {
            format: ManifestFormat::Oci,
            architecture: crate::host_arch().to_string(),
            variant: None,
            os: "linux".into(),
            layers: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: None,
            entrypoint: None,
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            exposed_ports: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    pub fn format(mut self, format: ManifestFormat) -> Self {
        self.format = format;
        self
    }

    /// `architecture` in OCI terms (`amd64`, `arm64`), optional `variant`.
    pub fn platform(mut self, architecture: &str, variant: Option<&str>) -> Self {
        self.architecture = architecture.to_string();
        self.variant = variant.map(str::to_string);
        self
    }

    pub fn os(mut self, os: &str) -> Self {
        self.os = os.to_string();
        self
    }

    /// Adds a layer, built at [`ImageBuilder::build`].
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(LayerSpec::Layer(layer));
        self
    }

    /// Adds an already built layer (shared between images: same digest).
    pub fn built_layer(mut self, layer: BuiltLayer) -> Self {
        self.layers.push(LayerSpec::Built(layer));
        self
    }

    /// Adds `KEY=value` to Env (replacing an earlier `KEY=`).
    pub fn env(mut self, key_value: &str) -> Self {
        let key = key_value.split('=').next().unwrap_or("");
        self.env.retain(|e| e.split('=').next() != Some(key));
        self.env.push(key_value.to_string());
        self
    }

    pub fn clear_env(mut self) -> Self {
        self.env.clear();
        self
    }

    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.entrypoint = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn workdir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.to_string());
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// `80/tcp`.
    pub fn expose(mut self, port: &str) -> Self {
        self.exposed_ports.push(port.to_string());
        self
    }

    /// A manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }

    pub fn build(self) -> Result<Image> {
        let docker = self.format.is_docker();
        // Layers compress in parallel: the bench image's take seconds each.
        let layers = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .layers
                .iter()
                .map(|spec| {
                    scope.spawn(move || match spec {
                        LayerSpec::Built(b) => Ok(b.clone()),
                        LayerSpec::Layer(l) => l.build(),
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("building a layer panicked")))
                })
                .collect::<Result<Vec<BuiltLayer>>>()
        })?;

        let mut config = serde_json::Map::new();
        config.insert("Env".into(), json!(self.env));
        if let Some(cmd) = &self.cmd {
            config.insert("Cmd".into(), json!(cmd));
        }
        if let Some(ep) = &self.entrypoint {
            config.insert("Entrypoint".into(), json!(ep));
        }
        if let Some(wd) = &self.working_dir {
            config.insert("WorkingDir".into(), json!(wd));
        }
        if let Some(user) = &self.user {
            config.insert("User".into(), json!(user));
        }
        if !self.labels.is_empty() {
            config.insert("Labels".into(), json!(self.labels));
        }
        if !self.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            config.insert("ExposedPorts".into(), Value::Object(ports));
        }
        let mut config_json = json!({
            "created": "2023-11-14T22:13:20Z",
            "architecture": self.architecture,
            "os": self.os,
            "config": config,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": layers.iter().map(|_| json!({"created_by": "berth-testkit"})).collect::<Vec<_>>(),
        });
        if let Some(variant) = &self.variant {
            config_json["variant"] = json!(variant);
        }
        let config = Blob::new(
            self.format.config_media_type(),
            serde_json::to_vec(&config_json)?,
        );

        let mut layer_descriptors = Vec::new();
        for layer in &layers {
            layer_descriptors.push(json!({
                "mediaType": layer.media_type(docker)?,
                "digest": layer.digest,
                "size": layer.size(),
            }));
        }
        let mut manifest = serde_json::Map::new();
        manifest.insert("schemaVersion".into(), json!(2));
        if self.format != ManifestFormat::OciWithoutMediaType {
            manifest.insert("mediaType".into(), json!(self.format.manifest_media_type()));
        }
        manifest.insert(
            "config".into(),
            json!({"mediaType": config.media_type, "digest": config.digest, "size": config.size()}),
        );
        manifest.insert("layers".into(), json!(layer_descriptors));
        if !self.annotations.is_empty() {
            if docker {
                bail!("Docker schema2 manifests have no annotations");
            }
            manifest.insert("annotations".into(), json!(self.annotations));
        }
        let manifest = Blob::new(
            self.format.manifest_media_type(),
            serde_json::to_vec_pretty(&Value::Object(manifest))?,
        );
        Ok(Image {
            format: self.format,
            architecture: self.architecture,
            variant: self.variant,
            os: self.os,
            manifest,
            config,
            layers,
        })
    }
}

/// A built single-platform image.
#[derive(Debug, Clone)]
pub struct Image {
    pub format: ManifestFormat,
    pub architecture: String,
    pub variant: Option<String>,
    pub os: String,
    /// `media_type` is the Content-Type it is pushed with.
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<BuiltLayer>,
}

impl Image {
    /// The manifest digest (what `name@digest` names).
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    pub fn config_digest(&self) -> &str {
        &self.config.digest
    }

    /// Compressed layer digests, bottom first.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.digest.clone()).collect()
    }

    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// OCI chain ids, bottom first: `chain[0] = diff_id[0]`,
    /// `chain[n] = sha256(chain[n-1] + " " + diff_id[n])`.
    pub fn chain_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for diff_id in self.diff_ids() {
            let next = match out.last() {
                None => diff_id,
                Some(prev) => crate::sha256_digest(format!("{prev} {diff_id}").as_bytes()),
            };
            out.push(next);
        }
        out
    }

    /// Sum of compressed layer sizes.
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size()).sum()
    }

    /// Sum of uncompressed tar sizes.
    pub fn uncompressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }

    /// The merged filesystem tree the layers should unpack to.
    pub fn expected_tree(&self) -> Result<Tree> {
        tree::expected_tree(&self.layers)
    }

    /// Uploads the config and layer blobs to `repo`.
    pub fn push_blobs(&self, client: &RegistryClient, repo: &str) -> Result<()> {
        for layer in &self.layers {
            client.upload_blob(repo, &layer.digest, &layer.blob)?;
        }
        client.upload_blob(repo, &self.config.digest, &self.config.data)
    }

    /// Pushes blobs and the manifest as `repo:reference` (a tag or the
    /// image's own digest).
    pub fn push(&self, client: &RegistryClient, repo: &str, reference: &str) -> Result<()> {
        self.push_blobs(client, repo)
            .with_context(|| format!("pushing the blobs of {repo}:{reference}"))?;
        let digest = client.put_manifest(
            repo,
            reference,
            &self.manifest.media_type,
            &self.manifest.data,
        )?;
        if digest != self.manifest.digest {
            bail!(
                "the registry stored {repo}:{reference} as {digest}, expected {}",
                self.manifest.digest
            );
        }
        Ok(())
    }
}

/// The shape of a multi-platform image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexFormat {
    /// OCI image index.
    Oci,
    /// Docker manifest list.
    DockerList,
}

/// Builds an index / manifest list over images.
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    format: IndexFormat,
    images: Vec<Image>,
}

impl IndexBuilder {
    pub fn new(format: IndexFormat) -> Self {
        Self {
            format,
            images: Vec::new(),
        }
    }

    pub fn image(mut self, image: Image) -> Self {
        self.images.push(image);
        self
    }

    pub fn build(self) -> Result<Index> {
        let media_type = match self.format {
            IndexFormat::Oci => OCI_INDEX,
            IndexFormat::DockerList => DOCKER_LIST,
        };
        let manifests: Vec<Value> = self
            .images
            .iter()
            .map(|image| {
                let mut platform = json!({"architecture": image.architecture, "os": image.os});
                if let Some(v) = &image.variant {
                    platform["variant"] = json!(v);
                }
                json!({
                    "mediaType": image.manifest.media_type,
                    "digest": image.manifest.digest,
                    "size": image.manifest.size(),
                    "platform": platform,
                })
            })
            .collect();
        let body = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        });
        Ok(Index {
            format: self.format,
            manifest: Blob::new(media_type, serde_json::to_vec_pretty(&body)?),
            images: self.images,
        })
    }
}

/// A built index / manifest list and its images.
#[derive(Debug, Clone)]
pub struct Index {
    pub format: IndexFormat,
    pub manifest: Blob,
    pub images: Vec<Image>,
}

impl Index {
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// The image for linux/`architecture`.
    pub fn image_for(&self, architecture: &str) -> Option<&Image> {
        self.images
            .iter()
            .find(|i| i.architecture == architecture && i.os == "linux")
    }

    /// The image a client on this host should pick.
    pub fn host_image(&self) -> Option<&Image> {
        self.image_for(crate::host_arch())
    }

    /// Pushes every image by digest, then the index as `repo:reference`.
    pub fn push(&self, client: &RegistryClient, repo: &str, reference: &str) -> Result<()> {
        for image in &self.images {
            image.push(client, repo, image.digest())?;
        }
        client.put_manifest(
            repo,
            reference,
            &self.manifest.media_type,
            &self.manifest.data,
        )?;
        Ok(())
    }
}
