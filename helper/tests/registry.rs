//! The registry client against a real `docker-registry` (Debian's
//! distribution 2.8) started by the test kit: images the kit builds and
//! pushes are pulled back into a content store in a temp dir, through every
//! manifest shape, a fault proxy that cuts and fails responses, a
//! bearer-token registry and an htpasswd (Basic) one.
//!
//! Needs `docker-registry` and `openssl` installed (scripts/deps.sh); run as
//! root like the other integration tests.

use std::sync::{Arc, Mutex};

use berth_testkit::image::{
    Compression, Image, ImageBuilder, IndexBuilder, IndexFormat, Layer, ManifestFormat,
};
use berth_testkit::registry::{FaultProxy, Registry, TOKEN_PASSWORD, TOKEN_USER};
use berthd::cancel::Cancel;
use berthd::content::{ContentStore, Digest};
use berthd::reference::Reference;
use berthd::registry::{
    parse_config, select_platform, ClientOptions, CredentialStore, Credentials, Descriptor, Error,
    Manifest, NoCredentials, Platform, RegistryClient, Requester,
};

struct Creds(Option<(String, String)>);

impl CredentialStore for Creds {
    fn get(&self, _who: Requester, _host: &str) -> Option<Credentials> {
        self.0.as_ref().map(|(u, p)| Credentials {
            username: u.clone(),
            password: p.clone(),
        })
    }
}

fn client(creds: Option<(&str, &str)>) -> RegistryClient {
    let store: Arc<dyn CredentialStore> = match creds {
        Some((u, p)) => Arc::new(Creds(Some((u.to_string(), p.to_string())))),
        None => Arc::new(NoCredentials),
    };
    RegistryClient::new(ClientOptions::default(), store).unwrap()
}

fn image(format: ManifestFormat, arch: &str, size: usize) -> Image {
    ImageBuilder::new()
        .format(format)
        .platform(arch, None)
        .layer(Layer::new().file("/etc/hello", format!("hello from {arch}")))
        .layer(
            Layer::new()
                // Docker schema 2 has no media type for plain tar layers.
                .compression(if format == ManifestFormat::Docker {
                    Compression::GzipFast
                } else {
                    Compression::None
                })
                .file("/data/noise", berth_testkit::noise(size, size as u64)),
        )
        .cmd(&["/bin/sh"])
        .build()
        .unwrap()
}

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

/// Pull `r` the way `images` will: manifest (through the index if there is
/// one), config, layers into `store`. Returns the image manifest's layers.
async fn pull(c: &RegistryClient, r: &Reference, store: &ContentStore) -> Vec<Descriptor> {
    let cancel = Cancel::new();
    let mut fetched = c.fetch_manifest(r, &r.target(), &cancel).await.unwrap();
    if let Manifest::Index(index) = fetched.parse().unwrap() {
        let d = select_platform(&index, &Platform::host()).unwrap();
        fetched = c
            .fetch_manifest(r, &d.digest.to_string(), &cancel)
            .await
            .unwrap();
        assert_eq!(fetched.digest, d.digest);
    }
    store.put(&fetched.digest, &fetched.bytes).unwrap();
    let Manifest::Image(m) = fetched.parse().unwrap() else {
        panic!("an index inside an index")
    };
    let config = c
        .fetch_blob_bytes(r, &m.config, 1 << 20, &cancel)
        .await
        .unwrap();
    let config = parse_config(&config).unwrap();
    assert_eq!(
        config.platform().architecture,
        Platform::host().architecture
    );
    assert_eq!(config.rootfs.diff_ids.len(), m.layers.len());
    let downloads = m.layers.iter().map(|d| {
        let (c, r, store, cancel, d) = (
            c.clone(),
            r.clone(),
            store.clone(),
            cancel.clone(),
            d.clone(),
        );
        tokio::spawn(async move { c.download_blob(&r, &d, &store, &|_| {}, &cancel).await })
    });
    for res in futures_util::future::join_all(downloads).await {
        res.unwrap().unwrap();
    }
    m.layers
}

fn check_layers(store: &ContentStore, image: &Image) {
    for l in &image.layers {
        assert_eq!(store.read(&digest(&l.digest)).unwrap(), *l.blob);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_every_manifest_shape_from_a_real_registry() {
    let reg = Registry::start().unwrap();
    let push = reg.client();
    let host_arch = Platform::host().architecture;
    let other = if host_arch == "s390x" {
        "arm64"
    } else {
        "s390x"
    };
    let c = client(None);

    for (i, format) in [
        ManifestFormat::Oci,
        ManifestFormat::OciWithoutMediaType,
        ManifestFormat::Docker,
    ]
    .into_iter()
    .enumerate()
    {
        // A single image by tag.
        let single = image(format, &host_arch, 100_000 + i);
        single
            .push(&push, "berth/single", &format!("t{i}"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let r: Reference = format!("{}/berth/single:t{i}", reg.host()).parse().unwrap();
        let layers = pull(&c, &r, &store).await;
        assert_eq!(layers.len(), 2);
        check_layers(&store, &single);
        assert!(store.exists(&digest(single.digest())));

        // A multi-platform image, OCI index and Docker list.
        let index_format = if format == ManifestFormat::Docker {
            IndexFormat::DockerList
        } else {
            IndexFormat::Oci
        };
        let index = IndexBuilder::new(index_format)
            .image(image(format, other, 50_000 + i))
            .image(image(format, &host_arch, 60_000 + i))
            .build()
            .unwrap();
        index.push(&push, "berth/multi", &format!("t{i}")).unwrap();
        let r: Reference = format!("{}/berth/multi:t{i}", reg.host()).parse().unwrap();
        pull(&c, &r, &store).await;
        check_layers(&store, index.host_image().unwrap());
        let theirs = index.image_for(other).unwrap();
        assert!(!store.exists(&digest(&theirs.layers[1].digest)));
    }

    let r: Reference = format!("{}/berth/single:nope", reg.host()).parse().unwrap();
    let err = c
        .fetch_manifest(&r, "nope", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(err.to_string().contains("tag `nope` not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_a_cut_download_through_the_fault_proxy() {
    let reg = Registry::start().unwrap();
    let img = image(
        ManifestFormat::Oci,
        &Platform::host().architecture,
        3_000_000,
    );
    img.push(&reg.client(), "berth/big", "1").unwrap();
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let r: Reference = format!("{}/berth/big:1", proxy.host()).parse().unwrap();
    let c = client(None);
    let cancel = Cancel::new();
    let fetched = c.fetch_manifest(&r, "1", &cancel).await.unwrap();
    let Manifest::Image(m) = fetched.parse().unwrap() else {
        panic!("not an image")
    };
    let big = m.layers.iter().max_by_key(|d| d.size).unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();

    // A cut connection: resumed with a Range request from where it broke.
    proxy.cut_next_blob_after(1_000_000);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let progress = move |n: u64| seen2.lock().unwrap().push(n);
    c.download_blob(&r, &big, &store, &progress, &cancel)
        .await
        .unwrap();
    assert_eq!(proxy.cuts(), 1);
    let blob_gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|q| q.path.contains("/blobs/"))
        .collect();
    assert_eq!(blob_gets.len(), 2, "{blob_gets:#?}");
    assert_eq!(blob_gets[0].range, None);
    let offset = blob_gets[0].body_bytes;
    assert_eq!(blob_gets[1].range, Some(format!("bytes={offset}-")));
    assert_eq!(blob_gets[1].status, Some(206));
    assert_eq!(seen.lock().unwrap().last(), Some(&big.size));
    let built = img
        .layers
        .iter()
        .find(|l| l.digest == big.digest.to_string())
        .unwrap();
    assert_eq!(store.read(&big.digest).unwrap(), *built.blob);

    // Server errors: retried.
    store.delete(&big.digest).unwrap();
    proxy.fail_next(2, 503, "/blobs/");
    c.download_blob(&r, &big, &store, &|_| {}, &cancel)
        .await
        .unwrap();
    assert!(store.exists(&big.digest));

    // A partial left by a crash: only the rest is fetched.
    let data = store.read(&big.digest).unwrap();
    store.delete(&big.digest).unwrap();
    {
        let mut w = store.ingest(&big.digest).unwrap();
        std::io::Write::write_all(&mut w, &data[..2_000_000]).unwrap();
    }
    let before = proxy.requests().len();
    c.download_blob(&r, &big, &store, &|_| {}, &cancel)
        .await
        .unwrap();
    let after = &proxy.requests()[before..];
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0].range.as_deref(), Some("bytes=2000000-"));
    assert_eq!(store.read(&big.digest).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_registry() {
    let reg = Registry::start_with_token_auth().unwrap();
    let img = image(
        ManifestFormat::Docker,
        &Platform::host().architecture,
        200_000,
    );
    img.push(&reg.client(), "berth/tok", "1").unwrap();
    let tokens = reg.token_server().unwrap();
    let r: Reference = format!("{}/berth/tok:1", reg.host()).parse().unwrap();

    // Anonymous pulls get pull tokens; one token serves the whole pull.
    let before = tokens.issued();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    pull(&client(None), &r, &store).await;
    check_layers(&store, &img);
    assert_eq!(tokens.issued() - before, 1, "{:#?}", tokens.requests());

    // With the right credentials.
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    pull(&client(Some((TOKEN_USER, TOKEN_PASSWORD))), &r, &store).await;
    check_layers(&store, &img);

    // With wrong ones: refused, and told what to do.
    let err = client(Some((TOKEN_USER, "wrong")))
        .fetch_manifest(&r, "1", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("berth login {}", reg.host())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry() {
    let reg = Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let img = image(ManifestFormat::Oci, &Platform::host().architecture, 10_000);
    img.push(&reg.client(), "berth/basic", "1").unwrap();
    let r: Reference = format!("{}/berth/basic:1", reg.host()).parse().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    pull(&client(Some(("alice", "s3cret"))), &r, &store).await;
    check_layers(&store, &img);

    let err = client(None)
        .fetch_manifest(&r, "1", &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "if it is private run `berth login {}`",
            reg.host()
        )),
        "{err}"
    );
}
