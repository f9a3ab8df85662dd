//! Smoke tests of the test kit itself: every part starts for real, talks to
//! an independent client, and is gone afterwards. Needs root, docker-registry,
//! dbus-daemon, setpriv, openssl, htpasswd, skopeo and umoci.

use berth_testkit::bus::{PrivateBus, NOBODY};
use berth_testkit::http;
use berth_testkit::image::{self, ImageBuilder, Layer};
use berth_testkit::registry::{client::parse_challenge, FaultProxy, Registry};
use std::path::Path;
use std::process::Command;

const ACCEPT: (&str, &str) = ("Accept", berth_testkit::registry::client::MANIFEST_ACCEPT);

fn busybox() -> berth_testkit::Image {
    ImageBuilder::new()
        .layer(image::busybox_rootfs().unwrap())
        .cmd(&["/bin/sh"])
        .build()
        .unwrap()
}

#[test]
fn registry_serves_what_was_pushed_and_goes_away() {
    let registry = Registry::start().unwrap();
    let img = busybox();
    img.push(&registry.client(), "busybox", "latest").unwrap();

    let url = format!("{}/v2/busybox/manifests/latest", registry.url());
    let r = http::request("GET", &url, &[ACCEPT], &[])
        .unwrap()
        .ok_for("GET manifest")
        .unwrap();
    assert_eq!(berth_testkit::sha256_digest(&r.body), img.digest());
    assert_eq!(r.header("docker-content-digest"), Some(img.digest()));
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let layer = &img.layer_digests()[0];
    let blob = http::get(&format!("{}/v2/busybox/blobs/{layer}", registry.url())).unwrap();
    assert_eq!(&berth_testkit::sha256_digest(&blob.body), layer);
    assert_eq!(
        registry.access_log_matching("GET /v2/busybox/blobs/").len(),
        1
    );

    let (pid, dir) = (registry.pid(), registry.storage_dir());
    drop(registry);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "registry still runs"
    );
    assert!(!dir.exists(), "registry storage left behind");
}

#[test]
fn token_registry_gives_anonymous_pull_tokens_and_user_push_tokens() {
    let registry = Registry::start_with_token_auth().unwrap();
    let img = busybox();
    img.push(&registry.client(), "library/busybox", "1.0")
        .unwrap();

    // A hand-rolled anonymous pull: challenge, token, retry.
    let url = format!("{}/v2/library/busybox/manifests/1.0", registry.url());
    let first = http::request("GET", &url, &[ACCEPT], &[]).unwrap();
    assert_eq!(first.status, 401);
    let (scheme, params) = parse_challenge(first.header("www-authenticate").unwrap()).unwrap();
    assert_eq!(scheme, "Bearer");
    assert_eq!(params["scope"], "repository:library/busybox:pull");
    let token_url = format!(
        "{}?service={}&scope={}",
        params["realm"],
        http::percent_encode(&params["service"]),
        http::percent_encode(&params["scope"])
    );
    let token = http::get(&token_url)
        .unwrap()
        .ok_for("token")
        .unwrap()
        .json()
        .unwrap();
    let token = token["token"].as_str().unwrap();
    let bearer = format!("Bearer {token}");
    let r = http::request("GET", &url, &[ACCEPT, ("Authorization", &bearer)], &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(berth_testkit::sha256_digest(&r.body), img.digest());

    // The anonymous token does not allow a push.
    let anon = registry.anonymous_client();
    let err = busybox_variant()
        .push(&anon, "library/busybox", "2.0")
        .unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");

    // The OAuth2 password grant (POST) gives the user a push token.
    let form = format!(
        "grant_type=password&client_id=test&username=berth&password=berth-token-password&service={}&scope={}",
        http::percent_encode(&params["service"]),
        http::percent_encode("repository:library/busybox:pull,push")
    );
    let r = http::request(
        "POST",
        &params["realm"],
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap()
    .ok_for("POST token")
    .unwrap();
    let push_token = r.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let upload = format!("{}/v2/library/busybox/blobs/uploads/", registry.url());
    let bearer = format!("Bearer {push_token}");
    let r = http::request("POST", &upload, &[("Authorization", &bearer)], &[]).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());

    // Wrong credentials are refused by the token server.
    let bad = http::basic_auth("berth", "wrong");
    let r = http::request("GET", &token_url, &[("Authorization", &bad)], &[]).unwrap();
    assert_eq!(r.status, 401);
    let server = registry.token_server().unwrap();
    assert_eq!(server.refused(), 1);
    assert!(server.issued() >= 3);
}

fn busybox_variant() -> berth_testkit::Image {
    ImageBuilder::new()
        .layer(Layer::new().file("/variant", "2"))
        .build()
        .unwrap()
}

#[test]
fn htpasswd_registry_wants_basic_credentials_over_plain_http() {
    let registry = Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let img = busybox_variant();
    img.push(&registry.client(), "private/app", "latest")
        .unwrap();
    let url = format!("{}/v2/private/app/manifests/latest", registry.url());
    let r = http::request("GET", &url, &[ACCEPT], &[]).unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic "));
    let basic = http::basic_auth("alice", "s3cret");
    let r = http::request("GET", &url, &[ACCEPT, ("Authorization", &basic)], &[]).unwrap();
    assert_eq!(berth_testkit::sha256_digest(&r.body), img.digest());
}

#[test]
fn fault_proxy_cuts_a_blob_once_and_serves_ranges() {
    let registry = Registry::start().unwrap();
    let img = busybox();
    img.push(&registry.client(), "busybox", "latest").unwrap();
    let proxy = FaultProxy::start(&registry.host()).unwrap();
    let layer = &img.layers[0];
    let url = format!("{}/v2/busybox/blobs/{}", proxy.url(), layer.digest);

    proxy.cut_next_blob_after(100_000);
    let cut = http::get(&url).unwrap();
    assert_eq!(cut.status, 200);
    assert!(!cut.complete);
    assert_eq!(cut.body.len(), 100_000);

    let range = format!("bytes={}-", cut.body.len());
    let rest = http::request("GET", &url, &[("Range", &range)], &[]).unwrap();
    assert_eq!(rest.status, 206);
    let mut whole = cut.body.clone();
    whole.extend_from_slice(&rest.body);
    assert_eq!(berth_testkit::sha256_digest(&whole), layer.digest);

    proxy.fail_next(1, 503, "/manifests/");
    let url = format!("{}/v2/busybox/manifests/latest", proxy.url());
    assert_eq!(
        http::request("GET", &url, &[ACCEPT], &[]).unwrap().status,
        503
    );
    assert_eq!(
        http::request("GET", &url, &[ACCEPT], &[]).unwrap().status,
        200
    );

    let log = proxy.requests();
    assert_eq!(log.len(), 4);
    assert!(log[0].cut && !log[1].cut);
    assert_eq!(log[1].range.as_deref(), Some(range.as_str()));
    assert!(log[2].injected);
    assert_eq!(proxy.cuts(), 1);
}

#[test]
fn private_bus_answers_root_and_nobody() {
    let policy = PrivateBus::project_policy_path();
    let bus = if policy.is_file() {
        PrivateBus::start().unwrap()
    } else {
        eprintln!(
            "{} is missing; testing the bus without it",
            policy.display()
        );
        PrivateBus::start_with_policies(&[]).unwrap()
    };
    for user in [None, Some((NOBODY, NOBODY))] {
        let out = bus
            .dbus_send_as(user, &["org.freedesktop.DBus.GetId"])
            .unwrap();
        assert!(
            out.status.success(),
            "dbus-send as {user:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            bus.log()
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("string \""));
    }
    // Nobody may own names on a system bus unless the policy says so.
    let out = bus
        .dbus_send_as(
            Some((NOBODY, NOBODY)),
            &[
                "org.freedesktop.DBus.RequestName",
                "string:org.berth.Helper1",
                "uint32:0",
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(bus.name_owner_pid("org.berth.Helper1").unwrap(), None);

    let (pid, socket) = (bus.pid(), bus.socket_path().to_path_buf());
    drop(bus);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!socket.exists());
}

/// The catalog's expected trees agree with an independent unpacker:
/// skopeo copies each image to an OCI layout, umoci unpacks it.
#[test]
fn catalog_matches_skopeo_and_umoci() {
    let shared = berth_testkit::shared::images();
    let (registry, images) = (&shared.registry, &shared.images);
    let client = registry.client();

    // Every tag is there with the digest the kit computed.
    let nomt = client.get_manifest("nomediatype", "latest").unwrap();
    assert_eq!(nomt.digest(), images.nomediatype.digest());
    assert_eq!(
        nomt.content_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(nomt.json().unwrap().get("mediaType").is_none());
    let docker = client.get_manifest("docker", "latest").unwrap();
    assert_eq!(
        docker.content_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let list = client.get_manifest("manifestlist", "latest").unwrap();
    assert_eq!(list.digest(), images.manifestlist.digest());
    let index = client.get_manifest("multiarch", "latest").unwrap();
    assert_eq!(
        index.content_type,
        "application/vnd.oci.image.index.v1+json"
    );
    for u in &images.unsafe_images {
        let (repo, tag) = u.name.split_once(':').unwrap();
        assert_eq!(
            client.get_manifest(repo, tag).unwrap().digest(),
            u.image.digest()
        );
    }

    let work = berth_testkit::fsutil::TestDir::new("berth-umoci-").unwrap();
    for name in [
        "busybox:latest",
        "layered:latest",
        "docker:latest",
        "multiarch:latest",
        "zstd:latest",
    ] {
        let (repo, _) = name.split_once(':').unwrap();
        let layout = format!("{}:{repo}", work.join("oci").display());
        let status = Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}", images.reference(name)))
            .arg(format!("oci:{layout}"))
            .status()
            .unwrap();
        assert!(status.success(), "skopeo copy {name}");
        let bundle = work.join(format!("bundle-{repo}"));
        let out = Command::new("umoci")
            .args(["unpack", "--image", &layout])
            .arg(&bundle)
            .output()
            .unwrap();
        if !out.status.success() && name == "zstd:latest" {
            // Older umoci cannot read zstd layers; that is umoci's limit.
            eprintln!(
                "umoci could not unpack {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        assert!(
            out.status.success(),
            "umoci unpack {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let problems =
            image::tree_problems(images.expected(name), &bundle.join("rootfs"), false).unwrap();
        assert!(problems.is_empty(), "{name}:\n  {}", problems.join("\n  "));
    }
}
