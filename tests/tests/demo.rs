//! The demo catalog's images: `berth-seed` builds and pushes them to a real
//! registry, and under a real berthd they serve what the demo apps expect
//! (the front end reaches the api through the URL it is given).

use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::http;
use berth_testkit::image::push_demo_images;
use berth_testkit::{free_port, Berthd, BerthdConfig, Cli, PrivateBus, Registry};

const REPOSITORIES: [&str; 4] = ["demo/busybox", "demo/web", "demo/api", "demo/front"];

#[test]
fn berth_seed_pushes_the_demo_images() {
    let registry = Registry::start().expect("registry");
    let host = registry.host();
    let out = Command::new(env!("CARGO_BIN_EXE_berth-seed"))
        .args(["--registry", &host])
        .output()
        .expect("running berth-seed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "berth-seed failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), REPOSITORIES.len(), "{stdout}");
    let client = registry.client();
    let mut base_layers = Vec::new();
    for (line, repo) in lines.iter().zip(REPOSITORIES) {
        let (name, digest) = line.split_once(' ').expect("NAME DIGEST");
        assert_eq!(name, format!("{host}/{repo}:latest"));
        let manifest = client.get_manifest(repo, "latest").expect(repo);
        assert_eq!(manifest.digest(), digest, "{repo}");
        let json = manifest.json().unwrap();
        let layers = json["layers"].as_array().unwrap();
        assert_eq!(
            layers.len(),
            if repo == "demo/busybox" { 1 } else { 2 },
            "{repo}"
        );
        base_layers.push(layers[0]["digest"].as_str().unwrap().to_string());
        if let Some(files) = layers.get(1) {
            let size = files["size"].as_u64().unwrap();
            assert!(size < 8 << 10, "{repo}: its own layer is {size} bytes");
        }
    }
    base_layers.dedup();
    assert_eq!(
        base_layers.len(),
        1,
        "every demo image shares the busybox layer"
    );
}

struct Env {
    cli: Cli,
    _berthd: Berthd,
    _bus: PrivateBus,
    _registry: Registry,
    host: String,
}

impl Env {
    fn ok(&self, args: &[&str]) -> String {
        self.cli.run(args).unwrap().ok().unwrap().stdout
    }

    /// `berth run -d --network host [flags] demo/REPO httpd` on `port`.
    fn serve(&self, repo: &str, flags: &[&str], port: u16) {
        let image = format!("{}/{repo}:latest", self.host);
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["run", "-d", "--network", "host"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&image, "httpd", "-f", "-p", &listen, "-h", "/www"]);
        self.ok(&args);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(out) = self.cli.run(&["ps", "-aq"]) {
            for id in out.stdout.split_whitespace() {
                let _ = self.cli.run(&["rm", "-f", id]);
            }
        }
    }
}

/// GET `url` until the server answers (it is starting), at most 15 s.
fn get(url: &str) -> http::Response {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http::get(url) {
            Ok(r) => return r,
            Err(e) if Instant::now() > deadline => panic!("GET {url}: {e:#}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn demo_images_serve_what_the_demo_apps_expect() {
    let registry = Registry::start().expect("registry");
    push_demo_images(&registry.client()).expect("pushing the demo images");
    let bus = PrivateBus::start().expect("private bus");
    let berthd = Berthd::start_with_config(&bus, &BerthdConfig::new().to_toml()).expect("berthd");
    let env = Env {
        cli: berthd.cli().expect("cli"),
        _berthd: berthd,
        _bus: bus,
        host: registry.host(),
        _registry: registry,
    };
    for repo in ["demo/web", "demo/api", "demo/front"] {
        env.ok(&["pull", "-q", &format!("{}/{repo}:latest", env.host)]);
    }

    // demo/web: the page.
    let web = free_port().unwrap();
    env.serve("demo/web", &[], web);
    let page = get(&format!("http://127.0.0.1:{web}/"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Hello from Berth"), "{}", page.text());

    // demo/api: JSON, with $GREETING escaped.
    let api = free_port().unwrap();
    env.serve("demo/api", &["-e", "GREETING=Hi \"you\""], api);
    let hello = get(&format!("http://127.0.0.1:{api}/cgi-bin/hello"));
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.header("content-type"), Some("application/json"));
    let json = hello.json().expect("JSON from the api");
    assert_eq!(json["greeting"], "Hi \"you\"");
    assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    // demo/front: fetches the api at $API_URL (in the app: http://api:8080).
    let front = free_port().unwrap();
    let api_url = format!("API_URL=http://127.0.0.1:{api}");
    env.serve("demo/front", &["-e", &api_url], front);
    let proxied = get(&format!("http://127.0.0.1:{front}/cgi-bin/api"));
    assert_eq!(proxied.status, 200, "{}", proxied.text());
    assert_eq!(proxied.json().unwrap()["greeting"], "Hi \"you\"");
    let index = get(&format!("http://127.0.0.1:{front}/"));
    assert!(index.text().contains("cgi-bin/api"), "{}", index.text());

    // Without a reachable api the front end says so.
    let lonely = free_port().unwrap();
    let closed = free_port().unwrap();
    let nowhere = format!("API_URL=http://127.0.0.1:{closed}");
    env.serve("demo/front", &["-e", &nowhere], lonely);
    let failed = get(&format!("http://127.0.0.1:{lonely}/cgi-bin/api"));
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert!(failed.text().contains("cannot reach"), "{}", failed.text());
}
