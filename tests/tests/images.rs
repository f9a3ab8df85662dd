//! berthd end to end, driven through the `berth` command line: a real
//! registry with images built from busybox-static, a private bus with the
//! project's policy, a real berthd as root with temporary roots.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::image::tree::assert_tree;
use berth_testkit::{shared, Berthd, BerthdConfig, Cli, ImageBuilder, Layer, PrivateBus};

struct Env {
    cli: Cli,
    berthd: Berthd,
    _bus: PrivateBus,
}

fn start(config: BerthdConfig) -> Env {
    let bus = PrivateBus::start().expect("private bus");
    let berthd = Berthd::start_with_config(&bus, &config.to_toml()).expect("berthd");
    let cli = berthd.cli().expect("cli");
    Env {
        cli,
        berthd,
        _bus: bus,
    }
}

impl Env {
    fn ok(&self, args: &[&str]) -> String {
        self.cli.run(args).unwrap().ok().unwrap().stdout
    }

    /// Run and expect failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli.run(args).unwrap();
        assert!(!out.success(), "berth {args:?} succeeded:\n{}", out.stdout);
        assert!(!out.stderr.trim().is_empty(), "no error message");
        out.stderr
    }

    fn root(&self) -> std::path::PathBuf {
        self.berthd.root()
    }

    /// Every blob in the store hashes to its name; every layer dir is whole.
    fn assert_store_consistent(&self) {
        let blobs = self.root().join("content/blobs/sha256");
        for e in std::fs::read_dir(&blobs).unwrap().flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            let name = e.file_name().into_string().unwrap();
            assert_eq!(
                berth_testkit::sha256_digest(&bytes),
                format!("sha256:{name}"),
                "blob {name} does not match its digest"
            );
        }
        let layers = self.root().join("layers/sha256");
        for e in std::fs::read_dir(&layers).unwrap().flatten() {
            assert!(
                e.path().join("meta.json").is_file(),
                "layer {:?} has no meta.json",
                e.file_name()
            );
        }
    }

    fn layer_count(&self) -> usize {
        count(&self.root().join("layers/sha256"))
    }

    fn blob_count(&self) -> usize {
        count(&self.root().join("content/blobs/sha256"))
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-export-")
        .tempdir()
        .unwrap()
}

#[test]
fn pull_and_export_give_each_image_its_exact_filesystem() {
    let shared = shared::images();
    let env = start(BerthdConfig::new());
    for name in [
        "busybox:latest",
        "layered:latest",
        "zstd:latest",
        "docker:latest",
        "nomediatype:latest",
        "multiarch:latest",
        "manifestlist:latest",
    ] {
        let r = shared.images.reference(name);
        let out = env.ok(&["pull", &r]);
        assert!(out.contains("Pulled"), "{out}");
        let dir = tempdir();
        let target = dir.path().join("rootfs");
        env.ok(&["image", "export", &r, target.to_str().unwrap()]);
        assert_tree(shared.images.expected(name), &target);
    }
    env.assert_store_consistent();

    // An index resolves to this machine's platform.
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&[
        "image",
        "inspect",
        &shared.images.reference("multiarch:latest"),
    ]))
    .unwrap();
    let host = shared.images.multiarch.host_image().unwrap();
    assert_eq!(inspect["digest"], shared.images.multiarch.digest());
    assert_eq!(inspect["manifest"], host.digest());
    assert_eq!(inspect["id"], host.config_digest());
    assert_eq!(
        inspect["platform"],
        format!("linux/{}", berth_testkit::host_arch())
    );
}

#[test]
fn images_inspect_rmi_and_prune() {
    let shared = shared::images();
    let env = start(BerthdConfig::new());
    let busybox = shared.images.reference("busybox:latest");
    let layered = shared.images.reference("layered:latest");
    env.ok(&["pull", &busybox]);
    env.ok(&["pull", &layered]);

    let list = env.ok(&["images"]);
    assert!(
        list.contains(&format!("{}/busybox", shared.images.host)),
        "{list}"
    );
    assert!(
        list.contains(&format!("{}/layered", shared.images.host)),
        "{list}"
    );
    let ids = env.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 2, "{ids}");

    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &layered])).unwrap();
    let img = &shared.images.layered;
    assert_eq!(v["digest"], img.digest());
    assert_eq!(v["id"], img.config_digest());
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), img.layer_digests().len());
    for (l, (digest, diff_id)) in layers
        .iter()
        .zip(img.layer_digests().iter().zip(img.diff_ids()))
    {
        assert_eq!(l["digest"], *digest);
        assert_eq!(l["diff_id"], diff_id);
    }
    assert!(v["size"].as_u64().unwrap() > 0);
    assert_eq!(v["config"]["rootfs"]["type"], "layers");

    // Inspect by image id prefix works too.
    let id = img.config_digest().trim_start_matches("sha256:")[..12].to_string();
    let by_id: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id])).unwrap();
    assert_eq!(by_id["name"], v["name"]);

    // rmi takes the image and what only it used, and leaves the other whole.
    let layers_before = env.layer_count();
    env.ok(&["rmi", &layered]);
    assert!(env.layer_count() < layers_before);
    assert!(!env.ok(&["images"]).contains("layered"));
    let dir = tempdir();
    let target = dir.path().join("rootfs");
    env.ok(&["image", "export", &busybox, target.to_str().unwrap()]);
    assert_tree(shared.images.expected("busybox:latest"), &target);
    let err = env.fails(&["rmi", &layered]);
    assert!(err.contains("no image"), "{err}");

    // Prune removes what no image references: an orphan blob, an orphan
    // layer directory, a partial download.
    let blobs = env.root().join("content/blobs/sha256");
    let orphan = b"orphan blob";
    let orphan_hex = berth_testkit::sha256_digest(orphan)
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::write(blobs.join(&orphan_hex), orphan).unwrap();
    std::fs::write(
        env.root()
            .join("content/ingest")
            .join(format!("{orphan_hex}.partial")),
        b"half",
    )
    .unwrap();
    let orphan_layer = env.root().join("layers/sha256").join(&orphan_hex);
    std::fs::create_dir_all(orphan_layer.join("diff")).unwrap();
    std::fs::write(orphan_layer.join("meta.json"), "{}").unwrap();
    let blobs_before = env.blob_count();
    let out = env.ok(&["image", "prune"]);
    assert!(out.contains("Removed 1 blobs and 1 layers"), "{out}");
    assert_eq!(env.blob_count(), blobs_before - 1);
    assert!(!orphan_layer.exists());
    assert_eq!(count(&env.root().join("content/ingest")), 0);
    env.assert_store_consistent();

    // Removing the last image leaves an empty store.
    env.ok(&["rmi", &busybox]);
    assert_eq!(env.blob_count(), 0);
    assert_eq!(env.layer_count(), 0);
}

#[test]
fn unsafe_layers_are_refused_and_the_host_is_untouched() {
    let shared = shared::images();
    let env = start(BerthdConfig::new());
    for u in &shared.images.unsafe_images {
        let r = shared.images.reference(&u.name);
        let err = env.fails(&["pull", &r]);
        assert!(
            err.contains("refused") || err.contains("unsafe") || err.contains("outside"),
            "{} ({}): unclear error: {err}",
            u.name,
            u.attack
        );
        for p in &u.must_not_exist {
            assert!(
                !p.exists(),
                "{} ({}) created {}",
                u.name,
                u.attack,
                p.display()
            );
        }
        // Nothing of it is kept: no image, no layer dir, no temp dir.
        assert_eq!(env.layer_count(), 0, "{}: a layer dir was kept", u.name);
        assert_eq!(
            count(&env.root().join("layers/tmp")),
            0,
            "{}: temp left",
            u.name
        );
    }
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    env.assert_store_consistent();
}

#[test]
fn decompression_bombs_stop_at_the_configured_limits() {
    let shared = shared::images();
    let env = start(
        BerthdConfig::new()
            .max_layer_bytes(8 << 20)
            .max_layer_entries(100),
    );
    let err = env.fails(&["pull", &shared.images.reference("bomb:latest")]);
    assert!(err.contains("max_layer_bytes"), "{err}");
    let err = env.fails(&["pull", &shared.images.reference("bomb-entries:latest")]);
    assert!(err.contains("max_layer_entries"), "{err}");
    assert_eq!(env.layer_count(), 0);
    assert_eq!(count(&env.root().join("layers/tmp")), 0);
}

#[test]
fn bad_input_gets_a_clear_error_and_leaves_nothing() {
    let shared = shared::images();
    let env = start(BerthdConfig::new());
    let host = &shared.images.host;
    for (args, says) in [
        (vec!["pull", "Not//Valid"], "not a valid image reference"),
        (vec!["pull", "no-such-host.invalid/x"], "unknown host"),
        (
            vec!["pull", &format!("{host}/busybox:no-such-tag")],
            "not found",
        ),
        (vec!["pull", &format!("{host}/no/such/repo")], "not found"),
        (vec!["image", "inspect", "never-pulled"], "no image"),
        (vec!["rmi", "never-pulled"], "no image"),
    ] {
        let err = env.fails(&args);
        assert!(
            err.contains(says),
            "berth {args:?}: expected {says:?} in: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert_eq!(env.blob_count(), 0);
    assert_eq!(env.layer_count(), 0);
}

#[test]
fn corrupt_content_is_refused() {
    // A registry whose stored layer bytes were damaged after the push: the
    // registry serves them under the old digest.
    let registry = berth_testkit::Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("/hello.txt", "hello\n".repeat(1000)))
        .build()
        .unwrap();
    image.push(&registry.client(), "damaged", "latest").unwrap();
    let layer_hex = image.layer_digests()[0]
        .trim_start_matches("sha256:")
        .to_string();
    let data = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer_hex[..2])
        .join(&layer_hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    // A layer that is not gzip at all, under its true digest.
    let garbage = ImageBuilder::new()
        .layer(Layer::new().file("/x", "x"))
        .build()
        .unwrap();
    let garbage = garbage_layer_image(&registry, garbage);

    let env = start(BerthdConfig::new());
    let err = env.fails(&["pull", &format!("{}/damaged:latest", registry.host())]);
    assert!(
        err.contains("does not match its digest") || err.contains("corrupt"),
        "{err}"
    );
    let err = env.fails(&["pull", &garbage]);
    assert!(
        err.to_lowercase().contains("corrupt") || err.contains("not a valid"),
        "{err}"
    );
    assert_eq!(env.layer_count(), 0);
    assert_eq!(count(&env.root().join("content/ingest")), 0);
    env.assert_store_consistent();
}

/// Push `base` with its only layer replaced by bytes that are not a tar
/// stream in any compression; returns the reference.
fn garbage_layer_image(registry: &berth_testkit::Registry, base: berth_testkit::Image) -> String {
    let client = registry.client();
    let junk = b"\x1f\x8b this is not really gzip".repeat(50);
    let junk_digest = berth_testkit::sha256_digest(&junk);
    client.upload_blob("garbage", &junk_digest, &junk).unwrap();
    base.push_blobs(&client, "garbage").unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&base.manifest.data).unwrap();
    manifest["layers"][0]["digest"] = junk_digest.into();
    manifest["layers"][0]["size"] = junk.len().into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    client
        .put_manifest("garbage", "latest", &base.manifest.media_type, &bytes)
        .unwrap();
    format!("{}/garbage:latest", registry.host())
}

#[test]
fn nobody_may_list_but_not_change() {
    let shared = shared::images();
    let env = start(BerthdConfig::new());
    let r = shared.images.reference("busybox:latest");
    env.ok(&["pull", &r]);

    let out = env.cli.run_as_nobody(&["pull", &r]).unwrap();
    assert!(!out.success());
    assert!(out.stderr.contains("may not pull"), "{}", out.stderr);
    assert!(out.stderr.contains("group `berth`"), "{}", out.stderr);

    let out = env.cli.run_as_nobody(&["images"]).unwrap();
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.contains("busybox"), "{}", out.stdout);
    let out = env.cli.run_as_nobody(&["image", "inspect", &r]).unwrap();
    assert!(out.success(), "{}", out.stderr);

    for args in [vec!["rmi", r.as_str()], vec!["image", "prune"]] {
        let out = env.cli.run_as_nobody(&args).unwrap();
        assert!(!out.success(), "{args:?} allowed for nobody");
        assert!(out.stderr.contains("may not"), "{}", out.stderr);
    }
    let out = env
        .cli
        .run_as_nobody(&["login", "example.org", "-u", "x", "--password-stdin"])
        .unwrap();
    assert!(!out.success());
    assert!(env.ok(&["images"]).contains("busybox"));
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let registry = berth_testkit::Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("/big.bin", berth_testkit::noise(4 << 20, 2)))
        .build()
        .unwrap();
    image.push(&registry.client(), "big", "latest").unwrap();
    let proxy = berth_testkit::FaultProxy::start(&registry.host()).unwrap();
    proxy.cut_next_blob_after(1 << 20);

    let env = start(BerthdConfig::new());
    let r = format!("{}/big:latest", proxy.host());
    env.ok(&["pull", &r]);
    assert_eq!(proxy.cuts(), 1, "the proxy did not cut");
    let ranges: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter_map(|q| q.range)
        .collect();
    assert!(
        ranges
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "no resuming Range request: {ranges:?}"
    );
    let dir = tempdir();
    let target = dir.path().join("rootfs");
    env.ok(&["image", "export", &r, target.to_str().unwrap()]);
    assert_tree(&image.expected_tree().unwrap(), &target);
}

#[test]
fn token_auth_and_login() {
    let registry = berth_testkit::Registry::start_with_token_auth().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("/token.txt", "through a bearer token\n"))
        .build()
        .unwrap();
    image.push(&registry.client(), "private/app", "v1").unwrap();
    let env = start(BerthdConfig::new());
    let r = format!("{}/private/app:v1", registry.host());
    // Anonymous pull through the token flow.
    env.ok(&["pull", &r]);

    // Basic auth registry: refused without login, works after it.
    let (user, pass) = ("berth-user", "s3cret:with colon");
    let basic = berth_testkit::Registry::start_with_htpasswd(user, pass).unwrap();
    image.push(&basic.client(), "locked/app", "v1").unwrap();
    let r = format!("{}/locked/app:v1", basic.host());
    let err = env.fails(&["pull", &r]);
    assert!(
        err.contains(&format!("berth login {}", basic.host())),
        "{err}"
    );

    let mut cmd = std::process::Command::new(env.cli.binary());
    cmd.args(["login", &basic.host(), "-u", user, "--password-stdin"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", env.berthd.bus_address())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{pass}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // root's logins (issue 11: one file per user).
    let auth = env.root().join("auth/0.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.ok(&["pull", &r]);
    env.ok(&["logout", &basic.host()]);
    env.ok(&["rmi", &r]);
    env.fails(&["pull", &r]);
}

#[test]
fn kill_9_during_a_pull_leaves_a_consistent_store_and_the_next_pull_completes() {
    let registry = berth_testkit::Registry::start().unwrap();
    let mut builder = ImageBuilder::new();
    for i in 0..4 {
        builder = builder.layer(Layer::new().file(
            &format!("/layer{i}.bin"),
            berth_testkit::noise(6 << 20, i + 3),
        ));
    }
    let image = builder.build().unwrap();
    image.push(&registry.client(), "heavy", "latest").unwrap();
    let r = format!("{}/heavy:latest", registry.host());

    let mut env = start(BerthdConfig::new().max_parallel_downloads(1));
    // Kill at a few moments: early, during downloads, during unpacking.
    let mut interrupted = 0;
    for delay_ms in [30u64, 200, 600] {
        let mut cmd = std::process::Command::new(env.cli.binary());
        cmd.args(["pull", "-q", &r])
            .env("DBUS_SYSTEM_BUS_ADDRESS", env.berthd.bus_address())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut pull = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        env.berthd.kill9().unwrap();
        let _ = pull.wait();
        env.berthd.restart().unwrap();
        env.assert_store_consistent();
        assert_eq!(
            count(&env.root().join("layers/tmp")),
            0,
            "temp layer dir after restart"
        );
        let listed = env.ok(&["images", "-q"]);
        if !listed.trim().is_empty() {
            // The pull got to its end before the kill: the image is whole.
            let dir = tempdir();
            let target = dir.path().join("rootfs");
            env.ok(&["image", "export", &r, target.to_str().unwrap()]);
            assert_tree(&image.expected_tree().unwrap(), &target);
            env.ok(&["rmi", &r]);
        } else {
            interrupted += 1;
        }
    }
    assert!(
        interrupted > 0,
        "no kill landed during a pull; the test proved nothing"
    );
    let t = Instant::now();
    env.ok(&["pull", &r]);
    let dir = tempdir();
    let target = dir.path().join("rootfs");
    env.ok(&["image", "export", &r, target.to_str().unwrap()]);
    assert_tree(&image.expected_tree().unwrap(), &target);
    env.assert_store_consistent();
    eprintln!("final pull took {:?}", t.elapsed());
}

#[test]
fn cancel_leaves_nothing_half_written() {
    let registry = berth_testkit::Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("/a.bin", berth_testkit::noise(8 << 20, 7)))
        .layer(Layer::new().file("/b.bin", berth_testkit::noise(8 << 20, 8)))
        .build()
        .unwrap();
    image
        .push(&registry.client(), "cancelme", "latest")
        .unwrap();
    let proxy = berth_testkit::FaultProxy::start(&registry.host()).unwrap();
    let r = format!("{}/cancelme:latest", proxy.host());
    let env = start(BerthdConfig::new());

    let mut cmd = std::process::Command::new(env.cli.binary());
    cmd.args(["pull", &r])
        .env("DBUS_SYSTEM_BUS_ADDRESS", env.berthd.bus_address())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let pull = cmd.spawn().unwrap();
    // Wait until a download is under way, then Ctrl-C the client.
    let ingest = env.root().join("content/ingest");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&ingest) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe {
        libc::kill(pull.id() as i32, libc::SIGINT);
    }
    let out = pull.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // Finished before the signal landed; nothing to check.
        eprintln!("pull finished before it could be cancelled");
        return;
    }
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    assert_eq!(count(&ingest), 0, "partial download left");
    assert_eq!(env.layer_count(), 0);
    assert_eq!(env.blob_count(), 0, "blobs of a cancelled pull left");
}

#[test]
fn two_berthd_side_by_side() {
    let shared = shared::images();
    let a = start(BerthdConfig::new());
    let b = start(BerthdConfig::new());
    let r = shared.images.reference("busybox:latest");
    a.ok(&["pull", &r]);
    assert!(a.ok(&["images"]).contains("busybox"));
    assert!(!b.ok(&["images"]).contains("busybox"));
    let info = b.ok(&["info"]);
    assert!(info.contains(b.root().to_str().unwrap()), "{info}");
    assert!(info.contains("Cgroup version"), "{info}");
}

#[test]
fn a_blob_in_the_store_is_never_downloaded_again_whatever_its_repository() {
    let registry = berth_testkit::Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("/shared.bin", berth_testkit::noise(1 << 20, 1)))
        .build()
        .unwrap();
    image.push(&registry.client(), "first/app", "v1").unwrap();
    image.push(&registry.client(), "second/app", "v1").unwrap();
    let proxy = berth_testkit::FaultProxy::start(&registry.host()).unwrap();
    let env = start(BerthdConfig::new());
    env.ok(&["pull", &format!("{}/first/app:v1", proxy.host())]);
    let blob_gets = |reqs: &[berth_testkit::registry::ProxiedRequest]| {
        reqs.iter()
            .filter(|q| q.method == "GET" && q.path.contains("/blobs/"))
            .count()
    };
    let before = proxy.requests();
    assert!(
        blob_gets(&before) >= 2,
        "config and layer fetched: {before:?}"
    );
    env.ok(&["pull", &format!("{}/second/app:v1", proxy.host())]);
    let after = proxy.requests();
    assert_eq!(
        blob_gets(&after[before.len()..]),
        0,
        "the second repository's pull downloaded blobs again: {:?}",
        &after[before.len()..]
    );
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 2);
}

#[test]
fn an_unsupported_layer_type_is_refused_by_name() {
    let registry = berth_testkit::Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("/x", "x")
                .media_type("application/vnd.example.not-a-layer"),
        )
        .build()
        .unwrap();
    image.push(&registry.client(), "weird", "latest").unwrap();
    let env = start(BerthdConfig::new());
    let err = env.fails(&["pull", &format!("{}/weird:latest", registry.host())]);
    assert!(err.contains("application/vnd.example.not-a-layer"), "{err}");
    assert_eq!(env.blob_count(), 0, "content of a refused image was kept");
}

#[test]
fn members_of_the_access_group_may_pull_and_export_only_what_is_safe_for_them() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let user = berth_testkit::users::TestUser::create().unwrap();
    let registry = berth_testkit::Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(
            Layer::new()
                .file_with("/usr/bin/suid-tool", "#!/bin/sh\n", 0o4755, 0, 0)
                .file_with("/etc/shadow", "root:*:1::::::\n", 0o640, 0, 42)
                .raw(berth_testkit::image::RawEntry::char_device(
                    "dev/evil", 1, 1,
                )),
        )
        .build()
        .unwrap();
    image.push(&registry.client(), "setid", "latest").unwrap();
    let r = format!("{}/setid:latest", registry.host());
    let env = start(BerthdConfig::new().extra(&format!("[access]\ngroup = {:?}", user.group)));
    let me = Some((user.uid, user.gid));

    let out = env.cli.run_as_user(me, &["pull", &r]).unwrap();
    assert!(out.success(), "member could not pull: {}", out.stderr);

    // Into a directory the member owns: files are theirs, no set-id, no devices.
    let dir = tempdir();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = env
        .cli
        .run_as_user(me, &["image", "export", &r, mine.to_str().unwrap()])
        .unwrap();
    assert!(out.success(), "member could not export: {}", out.stderr);
    let tool = std::fs::metadata(mine.join("usr/bin/suid-tool")).unwrap();
    assert_eq!((tool.uid(), tool.gid()), (user.uid, user.gid));
    assert_eq!(
        tool.mode() & 0o7000,
        0,
        "set-id bit kept for a non-root export"
    );
    assert_eq!(
        std::fs::metadata(mine.join("etc/shadow")).unwrap().uid(),
        user.uid
    );
    let dev = std::fs::symlink_metadata(mine.join("dev/evil"));
    assert!(
        dev.map(|m| !m.file_type().is_char_device()).unwrap_or(true),
        "a device node was exported for a non-root user"
    );

    // Into a directory someone else owns: refused.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let out = env
        .cli
        .run_as_user(me, &["image", "export", &r, theirs.to_str().unwrap()])
        .unwrap();
    assert!(!out.success());
    assert!(out.stderr.contains("directory you own"), "{}", out.stderr);
    assert_eq!(count(&theirs), 0);

    // Root's export keeps the image's owners and modes.
    let exact = dir.path().join("exact");
    env.ok(&["image", "export", &r, exact.to_str().unwrap()]);
    let tool = std::fs::metadata(exact.join("usr/bin/suid-tool")).unwrap();
    assert_eq!((tool.uid(), tool.mode() & 0o7777), (0, 0o4755));
    assert_eq!(
        std::fs::metadata(exact.join("etc/shadow")).unwrap().gid(),
        42
    );
}
