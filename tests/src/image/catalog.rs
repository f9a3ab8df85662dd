//! The standard test images, built from the host's `busybox-static`.
//!
//! [`push_test_images`] pushes the whole catalog to one registry:
//!
//! | repository:tag | what it exercises |
//! |---|---|
//! | `busybox:latest` | one gzip layer: a runnable busybox rootfs |
//! | `layered:latest` | 4 layers: file, dir and symlink whiteouts, an opaque dir, a dir recreated after its whiteout, a file replaced by a dir, hard links, a long name, an uncompressed layer |
//! | `zstd:latest` | zstd layers (busybox rootfs with the same diff id as `busybox`, different digest) |
//! | `docker:latest` | Docker schema2 manifest and media types |
//! | `nomediatype:latest` | OCI manifest without its `mediaType` field |
//! | `multiarch:latest` | OCI index, linux/amd64 and linux/arm64 (`/etc/platform` says which) |
//! | `manifestlist:latest` | Docker manifest list, same two platforms |
//! | `bomb:latest` | a gzip layer of ~64 KiB that inflates to 64 MiB |
//! | `bomb-entries:latest` | a layer of 3000 empty files |
//! | `unsafe/*:latest` | layers that try to write outside the layer dir (see [`UnsafeImage`]) |
//!
//! For every safe image [`TestImages::expected`] holds the merged tree.

use super::build::{Image, ImageBuilder, Index, IndexBuilder, IndexFormat, ManifestFormat};
use super::layer::{BuiltLayer, Compression, Layer, RawEntry};
use super::tree::Tree;
use crate::registry::{Registry, RegistryClient};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Busybox applets linked in `/bin` of [`busybox_rootfs`].
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "ls",
    "cat",
    "echo",
    "true",
    "false",
    "sleep",
    "env",
    "id",
    "ps",
    "mkdir",
    "rm",
    "rmdir",
    "touch",
    "cp",
    "mv",
    "ln",
    "chmod",
    "chown",
    "readlink",
    "stat",
    "head",
    "tail",
    "grep",
    "sed",
    "sort",
    "wc",
    "tr",
    "cut",
    "uniq",
    "yes",
    "dd",
    "du",
    "df",
    "date",
    "hostname",
    "uname",
    "whoami",
    "printf",
    "test",
    "kill",
    "top",
    "free",
    "mount",
    "umount",
    "ip",
    "ifconfig",
    "ping",
    "wget",
    "nc",
    "httpd",
    "nslookup",
    "find",
    "xargs",
    "tee",
    "seq",
    "md5sum",
    "sha256sum",
    "vi",
    "less",
    "more",
    "tar",
    "gzip",
    "gunzip",
    "awk",
    "pwd",
    "nproc",
    "ulimit",
];

/// Size of the bomb's zero file.
pub const BOMB_BYTES: u64 = 64 << 20;
/// Files in `bomb-entries`.
pub const BOMB_ENTRIES: u64 = 3000;

/// The host's static busybox: `$BERTH_BUSYBOX`, else `/bin/busybox` or
/// `/usr/bin/busybox` (Debian's `busybox-static`). Checked to be a static
/// ELF: a dynamic one would not run in a rootfs without libc.
pub fn busybox_binary() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("BERTH_BUSYBOX") {
        Some(p) => vec![p.into()],
        None => vec!["/bin/busybox".into(), "/usr/bin/busybox".into()],
    };
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            if !is_static_elf(&bytes) {
                bail!(
                    "{} is not a static ELF binary; install busybox-static (apt-get install busybox-static)",
                    path.display()
                );
            }
            return Ok(path);
        }
    }
    bail!("no busybox found; install busybox-static (apt-get install busybox-static)")
}

/// True for a 64-bit little-endian ELF without a `PT_INTERP` program header.
fn is_static_elf(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= bytes.len() && u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) != 3
    })
}

/// A rootfs layer: `/bin/busybox` (the host's busybox-static) with applet
/// symlinks (`/bin/sh` → `/bin/busybox`, ...), `/etc/passwd` and
/// `/etc/group` (root, nobody), `/tmp` (1777), `/root` (0700), empty
/// `/proc`, `/sys`, `/dev`, `/home`.
pub fn busybox_rootfs() -> Result<Layer> {
    let path = busybox_binary()?;
    let busybox = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut layer = Layer::new().dir("/bin").executable("/bin/busybox", busybox);
    for applet in BUSYBOX_APPLETS {
        layer = layer.symlink(&format!("/bin/{applet}"), "/bin/busybox");
    }
    Ok(layer
        .dir("/dev")
        .dir("/etc")
        .file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("/etc/group", "root:x:0:\nnobody:x:65534:\n")
        .dir("/home")
        .dir("/proc")
        .dir_with("/root", 0o700, 0, 0)
        .dir("/sys")
        .dir_with("/tmp", 0o1777, 0, 0))
}

/// [`busybox_rootfs`] built as gzip, once per process (it is the base of most
/// catalog images).
fn busybox_layer(compression: Compression) -> Result<BuiltLayer> {
    static GZIP: OnceLock<BuiltLayer> = OnceLock::new();
    if compression == Compression::Gzip {
        if let Some(l) = GZIP.get() {
            return Ok(l.clone());
        }
        let built = busybox_rootfs()?.build()?;
        return Ok(GZIP.get_or_init(|| built).clone());
    }
    busybox_rootfs()?.compression(compression).build()
}

/// One image that tries to escape the layer directory.
#[derive(Debug, Clone)]
pub struct UnsafeImage {
    /// `unsafe/abs:latest`
    pub name: String,
    pub image: Image,
    /// What the layer tries.
    pub attack: &'static str,
    /// Host paths a naive unpacker would create; must not exist after any
    /// pull attempt.
    pub must_not_exist: Vec<PathBuf>,
}

/// Everything [`push_test_images`] pushed.
#[derive(Debug, Clone)]
pub struct TestImages {
    /// `127.0.0.1:PORT` of the registry they are in.
    pub host: String,
    pub busybox: Image,
    pub layered: Image,
    pub zstd: Image,
    pub docker: Image,
    pub nomediatype: Image,
    pub multiarch: Index,
    pub manifestlist: Index,
    pub bomb: Image,
    pub bomb_entries: Image,
    pub unsafe_images: Vec<UnsafeImage>,
    /// `"busybox:latest"` → merged tree, for every safe image; for
    /// `multiarch:latest` and `manifestlist:latest` it is the host's
    /// platform. Also `"bomb-entries:latest"` (not `bomb`: hashing 64 MiB of
    /// zeros costs seconds in debug builds).
    pub expected: BTreeMap<String, Tree>,
}

impl TestImages {
    /// `127.0.0.1:PORT/name` for `name` like `busybox:latest`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }

    /// The unsafe image named `unsafe/abs:latest` (or `unsafe/abs`).
    pub fn unsafe_image(&self, name: &str) -> &UnsafeImage {
        let full = if name.contains(':') {
            name.to_string()
        } else {
            format!("{name}:latest")
        };
        self.unsafe_images
            .iter()
            .find(|u| u.name == full)
            .unwrap_or_else(|| panic!("no unsafe test image {full}"))
    }

    /// The expected tree of `name` (`busybox:latest`).
    pub fn expected(&self, name: &str) -> &Tree {
        self.expected
            .get(name)
            .unwrap_or_else(|| panic!("no expected tree for {name}"))
    }
}

fn layered() -> Result<Image> {
    let l2 = Layer::new()
        .dir("/data")
        .file("/data/keep.txt", "keep\n")
        .file("/data/remove-me.txt", "remove me\n")
        .dir("/data/dir-gone")
        .file("/data/dir-gone/a.txt", "a\n")
        .dir("/data/dir-gone/sub")
        .file("/data/dir-gone/sub/b.txt", "b\n")
        .symlink("/data/link-gone", "keep.txt")
        .dir("/data/opaque")
        .file("/data/opaque/old.txt", "old\n")
        .dir("/data/opaque/oldsub")
        .file("/data/opaque/oldsub/old2.txt", "old2\n")
        .file("/data/replaced", "a file in layer 2\n")
        .file("/etc/app.conf", "version=1\n");
    let l3 = Layer::new()
        .whiteout("/data/remove-me.txt")
        .whiteout("/data/dir-gone")
        .whiteout("/data/link-gone")
        .dir("/data/opaque")
        .opaque("/data/opaque")
        .file("/data/opaque/new.txt", "new\n")
        .file_with("/etc/app.conf", "version=2\n", 0o600, 1000, 1000)
        .dir("/data/replaced")
        .file("/data/replaced/inner.txt", "a dir in layer 3\n")
        .symlink("/data/abs-link", "/etc/app.conf")
        .symlink("/data/rel-link", "../etc/app.conf")
        .dir_with("/data/owned", 0o750, 1000, 1000);
    let long_dir = format!("/data/long/{}", "d".repeat(90));
    let l4 = Layer::new()
        .compression(Compression::None)
        .dir("/data/dir-gone")
        .file("/data/dir-gone/again.txt", "back again\n")
        .file("/data/hard-a", "hard linked\n")
        .hardlink("/data/hard-b", "/data/hard-a")
        .file("/data/with space.txt", "spaces\n")
        .dir("/data/long")
        .dir(&long_dir)
        .file(&format!("{long_dir}/{}.txt", "f".repeat(80)), "long name\n");
    ImageBuilder::new()
        .built_layer(busybox_layer(Compression::Gzip)?)
        .layer(l2)
        .layer(l3)
        .layer(l4)
        .cmd(&["/bin/sh"])
        .workdir("/data")
        .label("org.berth.test", "layered")
        .build()
}

fn platform_image(format: ManifestFormat, arch: &str, variant: Option<&str>) -> Result<Image> {
    ImageBuilder::new()
        .format(format)
        .platform(arch, variant)
        .built_layer(busybox_layer(Compression::Gzip)?)
        .layer(Layer::new().file("/etc/platform", format!("{arch}\n")))
        .cmd(&["/bin/cat", "/etc/platform"])
        .build()
}

/// The bomb's blob, built once per process.
fn bomb_layer() -> Result<BuiltLayer> {
    static BOMB: OnceLock<BuiltLayer> = OnceLock::new();
    if let Some(l) = BOMB.get() {
        return Ok(l.clone());
    }
    let built = Layer::new().zeros("/zeros", BOMB_BYTES).build()?;
    Ok(BOMB.get_or_init(|| built).clone())
}

fn unsafe_images(tag: &str) -> Result<Vec<UnsafeImage>> {
    let escape = |kind: &str| format!("berth-escape-{kind}-{tag}");
    let up = "../".repeat(16);
    let single = |layer: Layer| {
        ImageBuilder::new()
            .layer(Layer::new().file("/ok.txt", "fine\n"))
            .layer(layer)
            .cmd(&["/bin/sh"])
            .build()
    };
    let mut out = Vec::new();
    let mut add = |name: &str, attack: &'static str, image: Image, paths: Vec<PathBuf>| {
        out.push(UnsafeImage {
            name: format!("{name}:latest"),
            image,
            attack,
            must_not_exist: paths,
        });
    };

    let abs = format!("/tmp/{}", escape("abs"));
    add(
        "unsafe/abs",
        "a file entry with an absolute name",
        single(Layer::new().raw(RawEntry::file(&abs, b"escaped\n")))?,
        vec![abs.clone().into()],
    );

    let dotdot = format!("/tmp/{}", escape("dotdot"));
    add(
        "unsafe/dotdot",
        "a file entry whose name climbs out with ..",
        single(Layer::new().raw(RawEntry::file(
            &format!("{up}tmp/{}", escape("dotdot")),
            b"escaped\n",
        )))?,
        vec![dotdot.into()],
    );

    let same = format!("/tmp/{}", escape("symlink-same-layer"));
    add(
        "unsafe/symlink-same-layer",
        "a symlink to /tmp, then a file written through it, in one layer",
        single(Layer::new().symlink("/esc", "/tmp").file(
            &format!("/esc/{}", escape("symlink-same-layer")),
            "escaped\n",
        ))?,
        vec![same.into()],
    );

    let lower = format!("/tmp/{}", escape("symlink-lower-layer"));
    add(
        "unsafe/symlink-lower-layer",
        "a relative symlink climbing to /tmp in one layer, a file written through it in the next",
        ImageBuilder::new()
            .layer(Layer::new().symlink("/esc", &format!("{up}tmp")))
            .layer(Layer::new().file(
                &format!("/esc/{}", escape("symlink-lower-layer")),
                "escaped\n",
            ))
            .cmd(&["/bin/sh"])
            .build()?,
        vec![lower.into()],
    );

    add(
        "unsafe/hardlink-out",
        "a hard link to the host's /etc/passwd (nothing is written through it)",
        single(Layer::new().raw(RawEntry::hardlink("passwd", "/etc/passwd")))?,
        vec![],
    );

    add(
        "unsafe/whiteout-dotdot",
        "a whiteout entry `.wh...` naming `..`, the parent of the layer dir",
        ImageBuilder::new()
            .layer(Layer::new().dir("/keep").file("/keep/file", "keep\n"))
            .layer(Layer::new().raw(RawEntry::file(".wh...", b"")))
            .cmd(&["/bin/sh"])
            .build()?,
        vec![],
    );
    Ok(out)
}

/// Builds the catalog; `tag` makes the unsafe images' escape file names
/// unique (so parallel test processes do not see each other's).
pub fn build_test_images(host: &str, tag: &str) -> Result<TestImages> {
    // The bomb takes the longest to compress (seconds in debug builds).
    let bomb = std::thread::spawn(bomb_layer);
    let busybox = ImageBuilder::new()
        .built_layer(busybox_layer(Compression::Gzip)?)
        .cmd(&["/bin/sh"])
        .build()?;
    let layered = layered()?;
    let zstd = ImageBuilder::new()
        .built_layer(busybox_layer(Compression::Zstd)?)
        .layer(
            Layer::new()
                .compression(Compression::Zstd)
                .file("/zstd/hello.txt", "hello from zstd\n"),
        )
        .cmd(&["/bin/cat", "/zstd/hello.txt"])
        .build()?;
    let docker = ImageBuilder::new()
        .format(ManifestFormat::Docker)
        .built_layer(busybox_layer(Compression::Gzip)?)
        .layer(Layer::new().file("/docker/hello.txt", "hello from docker\n"))
        .cmd(&["/bin/cat", "/docker/hello.txt"])
        .build()?;
    let nomediatype = ImageBuilder::new()
        .format(ManifestFormat::OciWithoutMediaType)
        .built_layer(busybox_layer(Compression::Gzip)?)
        .layer(Layer::new().file("/nomediatype/hello.txt", "hello without mediaType\n"))
        .cmd(&["/bin/cat", "/nomediatype/hello.txt"])
        .build()?;
    let multiarch = IndexBuilder::new(IndexFormat::Oci)
        .image(platform_image(ManifestFormat::Oci, "amd64", None)?)
        .image(platform_image(ManifestFormat::Oci, "arm64", Some("v8"))?)
        .build()?;
    let manifestlist = IndexBuilder::new(IndexFormat::DockerList)
        .image(platform_image(ManifestFormat::Docker, "amd64", None)?)
        .image(platform_image(ManifestFormat::Docker, "arm64", Some("v8"))?)
        .build()?;
    let bomb = bomb
        .join()
        .map_err(|_| anyhow::anyhow!("building the bomb layer panicked"))??;
    let bomb = ImageBuilder::new().built_layer(bomb).build()?;
    let mut entries = Layer::new().dir("/many");
    for i in 0..BOMB_ENTRIES - 1 {
        entries = entries.file(&format!("/many/{i:05}"), "");
    }
    let bomb_entries = ImageBuilder::new().layer(entries).build()?;

    let mut expected = BTreeMap::new();
    for (name, image) in [
        ("busybox:latest", &busybox),
        ("layered:latest", &layered),
        ("zstd:latest", &zstd),
        ("docker:latest", &docker),
        ("nomediatype:latest", &nomediatype),
        ("bomb-entries:latest", &bomb_entries),
    ] {
        expected.insert(name.to_string(), image.expected_tree()?);
    }
    for (name, index) in [
        ("multiarch:latest", &multiarch),
        ("manifestlist:latest", &manifestlist),
    ] {
        if let Some(image) = index.host_image() {
            expected.insert(name.to_string(), image.expected_tree()?);
        }
    }

    Ok(TestImages {
        host: host.to_string(),
        busybox,
        layered,
        zstd,
        docker,
        nomediatype,
        multiarch,
        manifestlist,
        bomb,
        bomb_entries,
        unsafe_images: unsafe_images(tag)?,
        expected,
    })
}

/// Pushes every image of `images` through `client`, one thread per
/// repository.
pub fn push_catalog(images: &TestImages, client: &RegistryClient) -> Result<()> {
    enum Item<'a> {
        Image(&'a Image),
        Index(&'a Index),
    }
    let mut work: Vec<(String, &str, Item)> = vec![
        ("busybox".into(), "latest", Item::Image(&images.busybox)),
        ("layered".into(), "latest", Item::Image(&images.layered)),
        ("zstd".into(), "latest", Item::Image(&images.zstd)),
        ("docker".into(), "latest", Item::Image(&images.docker)),
        (
            "nomediatype".into(),
            "latest",
            Item::Image(&images.nomediatype),
        ),
        ("bomb".into(), "latest", Item::Image(&images.bomb)),
        (
            "bomb-entries".into(),
            "latest",
            Item::Image(&images.bomb_entries),
        ),
        ("multiarch".into(), "latest", Item::Index(&images.multiarch)),
        (
            "manifestlist".into(),
            "latest",
            Item::Index(&images.manifestlist),
        ),
    ];
    for u in &images.unsafe_images {
        let (repo, tag) = u.name.split_once(':').unwrap_or((&u.name, "latest"));
        work.push((repo.to_string(), tag, Item::Image(&u.image)));
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .iter()
            .map(|(repo, tag, item)| {
                let client = client.clone();
                scope.spawn(move || {
                    match item {
                        Item::Image(image) => image.push(&client, repo, tag),
                        Item::Index(index) => index.push(&client, repo, tag),
                    }
                    .with_context(|| format!("pushing {repo}:{tag}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a push thread panicked")))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(())
}

/// Builds and pushes the standard catalog to `registry` (with its push
/// credentials, if any).
pub fn push_test_images(registry: &Registry) -> Result<TestImages> {
    let tag = format!("{}-{}", std::process::id(), registry.port());
    let images = build_test_images(&registry.host(), &tag)?;
    push_catalog(&images, &registry.client())?;
    Ok(images)
}

/// One layer of the bench image.
#[derive(Debug, Clone)]
pub struct BenchLayer {
    /// The host directory (None for the busybox rootfs layer).
    pub source: Option<PathBuf>,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    pub entries: u64,
}

/// Host dirs the bench image may take, in order of preference; those that
/// exist are taken while the image stays under [`BENCH_MAX_BYTES`].
pub const BENCH_CANDIDATES: &[&str] = &[
    "/usr/lib/python3.11",
    "/usr/lib/python3",
    "/usr/libexec",
    "/usr/share/perl",
    "/usr/share/i18n",
    "/usr/share/zoneinfo",
    "/usr/share/perl5",
    "/usr/include",
    "/usr/share/locale",
    "/usr/share/doc",
    "/usr/lib/gcc",
];
pub const BENCH_MAX_BYTES: u64 = 200 << 20;
pub const BENCH_MAX_LAYERS: usize = 6;

fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// `bench/debian-files:latest`: the busybox rootfs plus up to five layers
/// of Debian's own files (fast gzip), ~150–200 MB uncompressed on Debian 12.
pub fn bench_image() -> Result<(Image, Vec<BenchLayer>)> {
    let mut chosen = Vec::new();
    let mut total = 0;
    for dir in BENCH_CANDIDATES {
        if chosen.len() + 1 >= BENCH_MAX_LAYERS {
            break;
        }
        let path = Path::new(dir);
        if !path.is_dir() {
            continue;
        }
        let size = tree_bytes(path);
        if size == 0 || total + size > BENCH_MAX_BYTES {
            continue;
        }
        total += size;
        chosen.push(path.to_path_buf());
    }
    let mut builder = ImageBuilder::new()
        .built_layer(busybox_layer(Compression::Gzip)?)
        .cmd(&["/bin/sh"])
        .label("org.berth.bench", "debian-files");
    for dir in &chosen {
        let prefix = dir.to_string_lossy().into_owned();
        builder = builder.layer(Layer::from_dir(dir, &prefix).compression(Compression::GzipFast));
    }
    let image = builder.build()?;
    let mut sources: Vec<Option<PathBuf>> = vec![None];
    sources.extend(chosen.into_iter().map(Some));
    let layers = image
        .layers
        .iter()
        .zip(sources)
        .map(|(l, source)| BenchLayer {
            source,
            uncompressed_bytes: l.uncompressed_size,
            compressed_bytes: l.size(),
            entries: l.entry_count,
        })
        .collect();
    Ok((image, layers))
}
