//! Manifests, indexes and image configs: the documents a pull reads, and the
//! choice of the one variant of a multi-platform image that runs here.
//!
//! Docker schema 2 and OCI use the same shapes under different media types,
//! so one set of types reads both. What is refused is refused here, with a
//! message, before a single layer is downloaded: schema 1 manifests,
//! artifacts that are not container images, and layers Berth cannot unpack.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Error, Result};
use crate::content::Digest;

pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_TYPE_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Not in Docker's spec, but written by containers/image for uncompressed layers.
const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const MEDIA_TYPE_DOCKER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const MEDIA_TYPE_OCI_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
const MEDIA_TYPE_OCI_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const MEDIA_TYPE_OCI_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// The media types of the manifests we can read, for the `Accept` header.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The platform an image (or one entry of an index) is built for, with
/// Go's names (`GOOS`/`GOARCH`), as images carry them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Linux on this machine's architecture, named as Go (and so every image)
    /// names it.
    pub fn host() -> Platform {
        let (arch, variant) = go_arch(std::env::consts::ARCH);
        Platform {
            os: "linux".to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The variant, with the implied defaults made explicit (arm64 is v8,
    /// amd64 is v1), so `arm64` and `arm64/v8` compare equal.
    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            ("amd64", None) => Some("v1"),
            (_, v) => v,
        }
    }

    /// Variants this platform can run, best first (an arm v7 CPU runs v6 and
    /// v5 code), after containerd's platform matcher.
    fn compatible_variants(&self) -> Vec<&str> {
        let v = self.normalized_variant();
        match (self.architecture.as_str(), v) {
            ("arm", Some("v8")) => vec!["v8", "v7", "v6", "v5"],
            ("arm", Some("v7")) => vec!["v7", "v6", "v5"],
            ("arm", Some("v6")) => vec!["v6", "v5"],
            ("amd64", Some("v4")) => vec!["v4", "v3", "v2", "v1"],
            ("amd64", Some("v3")) => vec!["v3", "v2", "v1"],
            ("amd64", Some("v2")) => vec!["v2", "v1"],
            (_, Some(v)) => vec![v],
            (_, None) => vec![],
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Rust's `target_arch` to Go's `GOARCH` (and `GOARM`-style variant).
fn go_arch(rust_arch: &str) -> (&str, Option<&str>) {
    let little = cfg!(target_endian = "little");
    match rust_arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        "powerpc64" if little => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "mips64" if little => ("mips64le", None),
        "mips" if little => ("mipsle", None),
        "loongarch64" => ("loong64", None),
        other => (other, None),
    }
}

/// A pointer to a blob or manifest: what it is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// Whether this index entry is a build attestation (BuildKit's
    /// provenance/SBOM manifests), which is not an image to run.
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
            || self
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
    }
}

/// A single-platform image: its config and its layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A multi-platform image: one manifest per platform (Docker calls it a
/// manifest list, OCI an image index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest fetch returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

/// How a layer is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer of media type `media_type`, or why Berth
/// cannot unpack it.
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    match media_type {
        MEDIA_TYPE_OCI_LAYER | MEDIA_TYPE_OCI_NONDIST | MEDIA_TYPE_DOCKER_LAYER => {
            Ok(Compression::None)
        }
        MEDIA_TYPE_OCI_LAYER_GZIP
        | MEDIA_TYPE_OCI_NONDIST_GZIP
        | MEDIA_TYPE_DOCKER_LAYER_GZIP
        | MEDIA_TYPE_DOCKER_FOREIGN_GZIP => Ok(Compression::Gzip),
        MEDIA_TYPE_OCI_LAYER_ZSTD | MEDIA_TYPE_OCI_NONDIST_ZSTD => Ok(Compression::Zstd),
        other => Err(Error::Unsupported(format!(
            "layer type `{other}` is not supported; Berth unpacks tar layers, plain or \
             compressed with gzip or zstd"
        ))),
    }
}

fn is_foreign(media_type: &str) -> bool {
    matches!(
        media_type,
        MEDIA_TYPE_DOCKER_FOREIGN_GZIP
            | MEDIA_TYPE_OCI_NONDIST
            | MEDIA_TYPE_OCI_NONDIST_GZIP
            | MEDIA_TYPE_OCI_NONDIST_ZSTD
    )
}

/// What kind of document a media type names.
enum Kind {
    Image,
    Index,
    Schema1,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        MEDIA_TYPE_OCI_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => Some(Kind::Image),
        MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_LIST => Some(Kind::Index),
        MEDIA_TYPE_DOCKER_SCHEMA1 | MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED => Some(Kind::Schema1),
        _ => None,
    }
}

/// `Content-Type` without parameters, lowercased; `None` for the generic
/// types some registries and static servers send for anything.
fn useful_content_type(ct: Option<&str>) -> Option<String> {
    let ct = ct?.split(';').next()?.trim().to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        _ => Some(ct),
    }
}

/// Parse a manifest or index. Its type comes from the document's `mediaType`,
/// else from the `Content-Type` it was served with (OCI lets manifests omit
/// `mediaType`), else from its shape.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest> {
    parse_manifest_named(bytes, content_type, "the manifest")
}

/// [`parse_manifest`], naming the manifest in errors ("manifest sha256:…").
pub(crate) fn parse_manifest_named(
    bytes: &[u8],
    content_type: Option<&str>,
    name: &str,
) -> Result<Manifest> {
    let doc: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("{name} is not valid JSON: {e}")))?;
    let Some(obj) = doc.as_object() else {
        return Err(Error::Corrupt(format!("{name} is not a JSON object")));
    };
    let schema1 = || {
        Error::Unsupported(format!(
            "{name} uses Docker image manifest schema 1, which is deprecated and no longer \
             supported; push the image again with a current Docker (or convert it with \
             `skopeo copy`)"
        ))
    };
    if obj.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(schema1());
    }
    let declared = obj
        .get("mediaType")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| useful_content_type(content_type));
    let kind = match declared.as_deref() {
        Some(mt) => match kind_of(mt) {
            Some(k) => k,
            None => {
                return Err(Error::Unsupported(format!(
                    "{name} is of type `{mt}`, which is not a container image; Berth pulls \
                     OCI and Docker schema 2 images"
                )))
            }
        },
        None if obj.contains_key("manifests") => Kind::Index,
        None if obj.contains_key("config") && obj.contains_key("layers") => Kind::Image,
        None => {
            return Err(Error::Corrupt(format!(
                "{name} has no media type and is neither an image manifest (config and \
                 layers) nor an index (manifests)"
            )))
        }
    };
    let invalid = |what: &str, e: serde_json::Error| {
        let msg = e.to_string();
        if msg.contains("only sha256 digests are supported") {
            Error::Unsupported(format!(
                "{name} uses a digest algorithm other than sha256: {msg}"
            ))
        } else {
            Error::Corrupt(format!("{name} is not a valid {what}: {msg}"))
        }
    };
    let check_version = |v: u32| {
        if v == 2 {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "{name} has schemaVersion {v}; Berth reads version 2"
            )))
        }
    };
    match kind {
        Kind::Schema1 => Err(schema1()),
        Kind::Index => {
            let index: Index = serde_json::from_value(doc).map_err(|e| invalid("index", e))?;
            check_version(index.schema_version)?;
            Ok(Manifest::Index(index))
        }
        Kind::Image => {
            let m: ImageManifest =
                serde_json::from_value(doc).map_err(|e| invalid("image manifest", e))?;
            check_version(m.schema_version)?;
            check_image(&m, name)?;
            Ok(Manifest::Image(m))
        }
    }
}

/// Refuse, before downloading anything, what cannot become a container.
fn check_image(m: &ImageManifest, name: &str) -> Result<()> {
    let ct = m.config.media_type.as_str();
    if ct != MEDIA_TYPE_OCI_CONFIG && ct != MEDIA_TYPE_DOCKER_CONFIG {
        return Err(Error::Unsupported(format!(
            "{name} describes an artifact of type `{ct}`, not a container image (a Helm \
             chart, signature or other OCI artifact); Berth can only run container images"
        )));
    }
    for (i, l) in m.layers.iter().enumerate() {
        layer_compression(&l.media_type).map_err(|e| match e {
            Error::Unsupported(msg) => {
                Error::Unsupported(format!("{name}, layer {}: {msg}", i + 1))
            }
            e => e,
        })?;
        if is_foreign(&l.media_type) && !l.urls.is_empty() {
            return Err(Error::Unsupported(format!(
                "{name}, layer {} ({}) is a foreign layer that must be downloaded from {}; \
                 Berth does not download layers from outside the registry (they are \
                 typically Windows base layers)",
                i + 1,
                l.digest,
                l.urls.join(", ")
            )));
        }
    }
    Ok(())
}

/// The entry of `index` for `want`. See [`select_platform_for`].
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor> {
    select_platform_for("the image", index, want)
}

/// The entry of `index` for `want`, naming the image in errors:
/// same os and architecture, then the same variant, else an entry without a
/// variant, else an older variant this CPU also runs (arm v6 on v7). Build
/// attestations are never chosen. An entry without any platform is taken only
/// if nothing else matches (the caller checks the config's platform).
pub fn select_platform_for<'a>(
    image: &str,
    index: &'a Index,
    want: &Platform,
) -> Result<&'a Descriptor> {
    let compatible = want.compatible_variants();
    let mut best: Option<(usize, &Descriptor)> = None;
    let mut unlabelled: Option<&Descriptor> = None;
    for d in index.manifests.iter().filter(|d| !d.is_attestation()) {
        let Some(p) = &d.platform else {
            unlabelled.get_or_insert(d);
            continue;
        };
        if p.os != want.os || p.architecture != want.architecture {
            continue;
        }
        // Rank: 0 exact variant, 1 no variant, 2.. older compatible variants.
        let rank = match p.normalized_variant() {
            None => Some(1),
            Some(v) if Some(v) == want.normalized_variant() => Some(0),
            // We asked for no particular variant: any will do, but last.
            Some(_) if want.normalized_variant().is_none() => Some(100),
            Some(v) => compatible.iter().position(|c| *c == v).map(|i| i + 1),
        };
        if let Some(rank) = rank {
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, d));
            }
        }
    }
    if let Some((_, d)) = best {
        return Ok(d);
    }
    if let Some(d) = unlabelled {
        return Ok(d);
    }
    let available: BTreeSet<String> = index
        .manifests
        .iter()
        .filter(|d| !d.is_attestation())
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    let available = if available.is_empty() {
        "nothing".to_string()
    } else {
        available.into_iter().collect::<Vec<_>>().join(", ")
    };
    Err(Error::NotFound(format!(
        "{image} has no variant for {want}; it has: {available}"
    )))
}

/// An image's configuration: what to run and the layers' uncompressed
/// digests. Field names are Docker's, which OCI kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfig {
    /// The platform the image says it is for.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// How to run the image, as its author set it. Docker writes `null` for
/// empty lists and maps; those read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "str_or_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "str_or_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `"80/tcp"`, `"53/udp"`: Docker writes them as keys of a map of `{}`.
    #[serde(default, with = "key_set", skip_serializing_if = "BTreeSet::is_empty")]
    pub exposed_ports: BTreeSet<String>,
    #[serde(default, with = "key_set", skip_serializing_if = "BTreeSet::is_empty")]
    pub volumes: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// The layers' uncompressed digests, bottom first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// One step of how the image was built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Parse an image config blob.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("the image config is not valid: {e}")))
}

/// Docker's `StrSlice`: `"sh -c x"` reads as one element, like `["sh -c x"]`.
fn str_or_list<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrList {
        Str(String),
        List(Vec<String>),
    }
    Ok(match Option::<StrOrList>::deserialize(d)? {
        None => None,
        Some(StrOrList::Str(s)) => Some(vec![s]),
        Some(StrOrList::List(l)) => Some(l),
    })
}

/// A set written as the keys of a JSON object whose values are `{}`.
mod key_set {
    use super::*;
    use std::result::Result;

    pub fn serialize<S: Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
        let empty = serde_json::Map::new();
        s.collect_map(set.iter().map(|k| (k, &empty)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
        let m = Option::<BTreeMap<String, serde::de::IgnoredAny>>::deserialize(d)?;
        Ok(m.map(|m| m.into_keys().collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    fn image_json(media_type: Option<&str>, layer_type: &str) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType": "{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion": 2, {mt}
              "config": {{"mediaType": "{MEDIA_TYPE_OCI_CONFIG}", "digest": "{}", "size": 7}},
              "layers": [{{"mediaType": "{layer_type}", "digest": "{}", "size": 1234}}]}}"#,
            digest(1),
            digest(2)
        )
    }

    fn index_json(media_type: Option<&str>, entries: &[(&str, &str, Option<&str>)]) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType": "{m}","#))
            .unwrap_or_default();
        let entries: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let v = variant
                    .map(|v| format!(r#", "variant": "{v}""#))
                    .unwrap_or_default();
                format!(
                    r#"{{"mediaType": "{MEDIA_TYPE_OCI_MANIFEST}", "digest": "{}", "size": 500,
                       "platform": {{"os": "{os}", "architecture": "{arch}"{v}}}}}"#,
                    digest(i as u8)
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion": 2, {mt} "manifests": [{}]}}"#,
            entries.join(",")
        )
    }

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Index {
        match parse_manifest(index_json(None, entries).as_bytes(), None).unwrap() {
            Manifest::Index(i) => i,
            m => panic!("not an index: {m:?}"),
        }
    }

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    #[test]
    fn parses_all_four_manifest_types() {
        for mt in [MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST] {
            let m = parse_manifest(
                image_json(Some(mt), MEDIA_TYPE_OCI_LAYER_GZIP).as_bytes(),
                None,
            )
            .unwrap();
            let Manifest::Image(m) = m else {
                panic!("{mt} not an image")
            };
            assert_eq!(m.media_type.as_deref(), Some(mt));
            assert_eq!(m.layers[0].size, 1234);
            assert_eq!(m.config.digest.to_string(), digest(1));
        }
        for mt in [MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST] {
            let m = parse_manifest(
                index_json(Some(mt), &[("linux", "amd64", None)]).as_bytes(),
                None,
            )
            .unwrap();
            let Manifest::Index(i) = m else {
                panic!("{mt} not an index")
            };
            assert_eq!(i.manifests.len(), 1);
            assert_eq!(
                i.manifests[0].platform,
                Some(platform("linux", "amd64", None))
            );
        }
    }

    #[test]
    fn content_type_stands_in_for_a_missing_media_type() {
        let json = image_json(None, MEDIA_TYPE_DOCKER_LAYER_GZIP);
        let m = parse_manifest(
            json.as_bytes(),
            Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        )
        .unwrap();
        assert!(matches!(m, Manifest::Image(_)));
        // The content type wins over the shape.
        let json = index_json(None, &[("linux", "amd64", None)]);
        let err = parse_manifest(json.as_bytes(), Some(MEDIA_TYPE_OCI_MANIFEST)).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }

    #[test]
    fn shape_decides_when_nothing_else_does() {
        let json = image_json(None, MEDIA_TYPE_OCI_LAYER_ZSTD);
        let m = parse_manifest(json.as_bytes(), Some("application/json")).unwrap();
        assert!(matches!(m, Manifest::Image(_)));
        let json = index_json(None, &[("linux", "arm64", None)]);
        assert!(matches!(
            parse_manifest(json.as_bytes(), None).unwrap(),
            Manifest::Index(_)
        ));
        let err = parse_manifest(br#"{"schemaVersion": 2}"#, None).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }

    #[test]
    fn schema1_is_refused_with_advice() {
        let by_version = br#"{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}"#;
        for (bytes, ct) in [
            (&by_version[..], None),
            (&by_version[..], Some(MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED)),
            (
                br#"{"mediaType": "application/vnd.docker.distribution.manifest.v1+json"}"#,
                None,
            ),
        ] {
            let err = parse_manifest(bytes, ct).unwrap_err();
            let Error::Unsupported(msg) = &err else {
                panic!("{err:?}")
            };
            assert!(
                msg.contains("schema 1") && msg.contains("deprecated"),
                "{msg}"
            );
            assert!(msg.contains("push the image again"), "{msg}");
        }
    }

    #[test]
    fn not_json_is_corrupt() {
        let err = parse_manifest_named(b"<html>502 Bad Gateway</html>", None, "manifest of x")
            .unwrap_err();
        let Error::Corrupt(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(
            msg.starts_with("manifest of x is not valid JSON: "),
            "{msg}"
        );
        assert!(matches!(
            parse_manifest(b"[1,2]", None),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn layer_types_are_checked() {
        for ok in [
            MEDIA_TYPE_OCI_LAYER,
            MEDIA_TYPE_OCI_LAYER_GZIP,
            MEDIA_TYPE_OCI_LAYER_ZSTD,
            MEDIA_TYPE_DOCKER_LAYER_GZIP,
            MEDIA_TYPE_OCI_NONDIST_GZIP,
            MEDIA_TYPE_DOCKER_FOREIGN_GZIP,
        ] {
            parse_manifest(image_json(None, ok).as_bytes(), None)
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let helm = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
        let err = parse_manifest(image_json(None, helm).as_bytes(), None).unwrap_err();
        let Error::Unsupported(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.contains(helm) && msg.contains("layer 1"), "{msg}");
        assert_eq!(
            layer_compression(MEDIA_TYPE_DOCKER_LAYER_GZIP).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            layer_compression(MEDIA_TYPE_OCI_LAYER_ZSTD).unwrap(),
            Compression::Zstd
        );
    }

    #[test]
    fn foreign_layers_with_urls_are_refused() {
        let json = format!(
            r#"{{"schemaVersion": 2, "mediaType": "{MEDIA_TYPE_DOCKER_MANIFEST}",
              "config": {{"mediaType": "{MEDIA_TYPE_DOCKER_CONFIG}", "digest": "{}", "size": 7}},
              "layers": [{{"mediaType": "{MEDIA_TYPE_DOCKER_FOREIGN_GZIP}", "digest": "{}",
                 "size": 1, "urls": ["https://mcr.microsoft.com/x"]}}]}}"#,
            digest(1),
            digest(2)
        );
        let err = parse_manifest(json.as_bytes(), None).unwrap_err();
        let Error::Unsupported(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(
            msg.contains("foreign") && msg.contains("mcr.microsoft.com"),
            "{msg}"
        );
    }

    #[test]
    fn artifacts_and_unknown_types_are_refused() {
        let json = image_json(None, MEDIA_TYPE_OCI_LAYER).replace(
            MEDIA_TYPE_OCI_CONFIG,
            "application/vnd.cncf.helm.config.v1+json",
        );
        let err = parse_manifest(json.as_bytes(), None).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains("not a container image")),
            "{err}"
        );
        let err = parse_manifest(br#"{"mediaType": "text/html"}"#, None).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains("text/html")),
            "{err}"
        );
    }

    #[test]
    fn selects_the_exact_platform() {
        let i = index(&[
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("windows", "amd64", None),
        ]);
        let d = select_platform(&i, &platform("linux", "amd64", None)).unwrap();
        assert_eq!(d.digest.to_string(), digest(1));
        let d = select_platform(&i, &platform("linux", "arm64", Some("v8"))).unwrap();
        assert_eq!(d.digest.to_string(), digest(0));
    }

    #[test]
    fn prefers_the_matching_variant() {
        let i = index(&[
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm", None),
        ]);
        let d = select_platform(&i, &platform("linux", "arm", Some("v7"))).unwrap();
        assert_eq!(d.digest.to_string(), digest(1));
        // No exact variant: the one without a variant, then an older one.
        let i = index(&[("linux", "arm", Some("v6")), ("linux", "arm", None)]);
        let d = select_platform(&i, &platform("linux", "arm", Some("v7"))).unwrap();
        assert_eq!(d.digest.to_string(), digest(1));
        let i = index(&[("linux", "arm", Some("v6")), ("linux", "arm", Some("v8"))]);
        let d = select_platform(&i, &platform("linux", "arm", Some("v7"))).unwrap();
        assert_eq!(d.digest.to_string(), digest(0));
        // arm64 without a variant is arm64/v8.
        let i = index(&[("linux", "arm64", None)]);
        assert!(select_platform(&i, &platform("linux", "arm64", Some("v8"))).is_ok());
        let i = index(&[("linux", "arm64", Some("v8"))]);
        assert!(select_platform(&i, &platform("linux", "arm64", None)).is_ok());
        // A v7 CPU cannot run v8 code.
        let i = index(&[("linux", "arm", Some("v8"))]);
        assert!(select_platform(&i, &platform("linux", "arm", Some("v7"))).is_err());
    }

    #[test]
    fn attestations_are_skipped() {
        let json = format!(
            r#"{{"schemaVersion": 2, "mediaType": "{MEDIA_TYPE_OCI_INDEX}", "manifests": [
              {{"mediaType": "{MEDIA_TYPE_OCI_MANIFEST}", "digest": "{}", "size": 1,
                "platform": {{"os": "unknown", "architecture": "unknown"}},
                "annotations": {{"vnd.docker.reference.type": "attestation-manifest"}}}},
              {{"mediaType": "{MEDIA_TYPE_OCI_MANIFEST}", "digest": "{}", "size": 1,
                "platform": {{"os": "linux", "architecture": "amd64"}},
                "annotations": {{"vnd.docker.reference.type": "attestation-manifest"}}}},
              {{"mediaType": "{MEDIA_TYPE_OCI_MANIFEST}", "digest": "{}", "size": 1,
                "platform": {{"os": "linux", "architecture": "amd64"}}}}]}}"#,
            digest(0),
            digest(1),
            digest(2)
        );
        let Manifest::Index(i) = parse_manifest(json.as_bytes(), None).unwrap() else {
            panic!()
        };
        let d = select_platform(&i, &platform("linux", "amd64", None)).unwrap();
        assert_eq!(d.digest.to_string(), digest(2));
        let err =
            select_platform_for("busybox", &i, &platform("linux", "arm64", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "busybox has no variant for linux/arm64; it has: linux/amd64"
        );
    }

    #[test]
    fn missing_platform_error_lists_what_there_is() {
        let i = index(&[
            ("linux", "s390x", None),
            ("linux", "arm64", Some("v8")),
            ("linux", "s390x", None),
        ]);
        let err =
            select_platform_for("image x", &i, &platform("linux", "amd64", None)).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        assert_eq!(
            err.to_string(),
            "image x has no variant for linux/amd64; it has: linux/arm64/v8, linux/s390x"
        );
    }

    #[test]
    fn host_platform_uses_go_names() {
        let p = Platform::host();
        assert_eq!(p.os, "linux");
        let expected = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            _ => p.architecture.as_str(),
        };
        assert_eq!(p.architecture, expected);
        assert_eq!(go_arch("aarch64"), ("arm64", Some("v8")));
        assert_eq!(go_arch("arm"), ("arm", Some("v7")));
        assert_eq!(go_arch("x86"), ("386", None));
        assert_eq!(go_arch("s390x"), ("s390x", None));
        assert_eq!(go_arch("riscv64"), ("riscv64", None));
    }

    #[test]
    fn parses_docker_config() {
        let json = format!(
            r#"{{"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {{"User": "nobody", "Env": ["PATH=/bin"], "Entrypoint": null,
                 "Cmd": "sh -c 'echo hi'", "WorkingDir": "/srv",
                 "ExposedPorts": {{"80/tcp": {{}}, "53/udp": {{}}}}, "Volumes": null,
                 "Labels": {{"a": "b"}}, "StopSignal": "SIGQUIT", "Healthcheck": {{}}}},
              "rootfs": {{"type": "layers", "diff_ids": ["{}"]}},
              "history": [{{"created_by": "x", "empty_layer": true}}, {{"created_by": "y"}}]}}"#,
            digest(9)
        );
        let c = parse_config(json.as_bytes()).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.user.as_deref(), Some("nobody"));
        assert_eq!(cc.entrypoint, None);
        assert_eq!(cc.cmd, Some(vec!["sh -c 'echo hi'".to_string()]));
        assert_eq!(
            cc.exposed_ports.iter().collect::<Vec<_>>(),
            ["53/udp", "80/tcp"]
        );
        assert!(cc.volumes.is_empty());
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert!(c.history[0].empty_layer && !c.history[1].empty_layer);
        assert_eq!(c.platform(), platform("linux", "amd64", None));
        // Round trip keeps Docker's shape.
        let again: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(
            again["config"]["ExposedPorts"]["80/tcp"],
            serde_json::json!({})
        );
        assert_eq!(parse_config(&serde_json::to_vec(&c).unwrap()).unwrap(), c);
        assert!(matches!(parse_config(b"{}"), Err(Error::Corrupt(_))));
    }
}
