use super::*;
use crate::apps::compose::Protocol;
use std::collections::BTreeMap;

const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#09c"/></svg>"##;

const COMPOSE: &str =
    "services:\n  web:\n    image: nginx:alpine\n    ports: [\"127.0.0.1:8080:80\"]\n";

fn app_toml(id: &str) -> String {
    format!(
        "id = \"{id}\"\ntitle = \"Web\"\nversion = \"1.0\"\ndescription = \"A web server.\"\ncategory = \"web\"\nicon = \"icon.svg\"\nwebsite = \"https://example.org\"\nopen = {{ service = \"web\", port = 80 }}\n"
    )
}

/// Write an app directory `parent/id` with the given files.
fn write_app(parent: &Path, id: &str, toml: &str, compose: &str) -> PathBuf {
    let dir = parent.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(APP_FILE), toml).unwrap();
    std::fs::write(dir.join(compose::FILE_NAME), compose).unwrap();
    std::fs::write(dir.join("icon.svg"), ICON).unwrap();
    dir
}

fn load_err(toml: &str, compose: &str) -> Invalid {
    let parent = tempfile::tempdir().unwrap();
    let dir = write_app(parent.path(), "web", toml, compose);
    match load_app(&dir, &Vars::new()) {
        Err(Error::Invalid(e)) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_app_loads_with_everything_checked() {
    let parent = tempfile::tempdir().unwrap();
    let dir = write_app(parent.path(), "web", &app_toml("web"), COMPOSE);
    let app = load_app(&dir, &Vars::new()).unwrap();
    assert_eq!(app.id, "web");
    assert_eq!(app.title, "Web");
    assert_eq!(app.version, "1.0");
    assert_eq!(app.category, Category::Web);
    assert_eq!(app.icon, dir.join("icon.svg"));
    assert_eq!(app.website.as_deref(), Some("https://example.org"));
    assert_eq!(
        app.open,
        Some(Open {
            service: "web".into(),
            port: 80,
            path: "/".into()
        })
    );
    assert_eq!(app.dir, dir);
    assert_eq!(
        app.compose.services["web"].image.to_string(),
        "docker.io/library/nginx:alpine"
    );
    assert_eq!(app.open_port().unwrap().protocol, Protocol::Tcp);
    assert_eq!(app.open_url().as_deref(), Some("http://127.0.0.1:8080/"));
}

#[test]
fn open_url_forms() {
    let parent = tempfile::tempdir().unwrap();
    let toml = app_toml("web").replace("port = 80 }", "port = 80, path = \"/admin\" }");
    for (ports, url) in [
        ("[\"8080:80\"]", Some("http://localhost:8080/admin")),
        ("[\"0.0.0.0:8080:80\"]", Some("http://localhost:8080/admin")),
        ("[\"[::1]:8080:80\"]", Some("http://[::1]:8080/admin")),
        ("[\"80\"]", None),
    ] {
        let compose = format!("services:\n  web:\n    image: nginx\n    ports: {ports}\n");
        let dir = write_app(parent.path(), "web", &toml, &compose);
        let app = load_app(&dir, &Vars::new()).unwrap();
        assert_eq!(app.open_url().as_deref(), url, "{ports}");
    }
}

#[test]
fn app_toml_problems_name_the_key_and_line() {
    let e = load_err(&app_toml("other"), COMPOSE);
    assert_eq!(e.key, "id");
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("directory name `web`"), "{e}");
    assert!(e.file.ends_with("web/app.toml"), "{e}");

    let e = load_err(
        &app_toml("web").replace("id = \"web\"", "id = \"Web!\""),
        COMPOSE,
    );
    assert!(e.message.contains("not a valid app id"), "{e}");

    let e = load_err(&format!("{}colour = \"red\"\n", app_toml("web")), COMPOSE);
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert_eq!(e.line, Some(9), "{e}");

    let e = load_err(
        &app_toml("web").replace("\"web\"\nicon", "\"games\"\nicon"),
        COMPOSE,
    );
    assert!(
        e.message.contains("games") && e.message.contains("development"),
        "{e}"
    );

    let e = load_err(&app_toml("web").replace("title = \"Web\"\n", ""), COMPOSE);
    assert!(e.message.contains("missing field `title`"), "{e}");

    let e = load_err(
        &app_toml("web").replace("title = \"Web\"", "title = \" \""),
        COMPOSE,
    );
    assert_eq!(e.key, "title");
    assert_eq!(e.line, Some(2));

    let e = load_err(&app_toml("web").replace("\"1.0\"", "\"1 0\""), COMPOSE);
    assert_eq!(e.key, "version");

    let e = load_err(
        &app_toml("web").replace("https://example.org", "example.org"),
        COMPOSE,
    );
    assert_eq!(e.key, "website");
}

#[test]
fn open_must_point_at_a_published_port() {
    let e = load_err(
        &app_toml("web").replace("service = \"web\"", "service = \"api\""),
        COMPOSE,
    );
    assert_eq!(e.key, "open.service");
    assert!(
        e.message.contains("no service `api`") && e.message.contains("(services: web)"),
        "{e}"
    );

    let e = load_err(
        &app_toml("web").replace("port = 80", "port = 8080"),
        COMPOSE,
    );
    assert_eq!(e.key, "open.port");
    assert!(
        e.message.contains("container port 8080/tcp") && e.message.contains("80/tcp"),
        "{e}"
    );

    let e = load_err(
        &app_toml("web"),
        "services:\n  web:\n    image: nginx\n    ports: [\"8080:80/udp\"]\n",
    );
    assert_eq!(e.key, "open.port");

    let e = load_err(
        &app_toml("web").replace("port = 80 }", "port = 80, path = \"admin\" }"),
        COMPOSE,
    );
    assert_eq!(e.key, "open.path");

    // The compose file's own errors come through with its name.
    let e = load_err(
        &app_toml("web"),
        "services:\n  web:\n    image: nginx\n    build: .\n",
    );
    assert!(e.file.ends_with("web/compose.yaml"), "{e}");
    assert_eq!(e.key, "services.web.build");
}

#[test]
fn icons_are_checked() {
    let parent = tempfile::tempdir().unwrap();
    let dir = write_app(parent.path(), "web", &app_toml("web"), COMPOSE);
    let icon_err = |name: &str| match load_app(&dir, &Vars::new()) {
        Err(Error::Invalid(e)) => {
            assert_eq!(e.key, "icon", "{name}: {e}");
            e.message
        }
        other => panic!("{name}: {other:?}"),
    };

    std::fs::write(dir.join("icon.svg"), "not an image").unwrap();
    assert!(icon_err("text").contains("not an SVG"));
    // An SVG berthd could not sanitize is the app's problem, said plainly.
    std::fs::write(dir.join("icon.svg"), "<svg><g></svg>").unwrap();
    let e = icon_err("malformed");
    assert!(e.starts_with("`icon.svg` is not well-formed XML"), "{e}");
    std::fs::write(
        dir.join("icon.svg"),
        "<!DOCTYPE svg [<!ENTITY a \"aaaa\">]><svg><text>&a;</text></svg>",
    )
    .unwrap();
    assert!(icon_err("entity").contains("`&a;`"));
    // One it can is fine: what it drops is its business when serving.
    std::fs::write(
        dir.join("icon.svg"),
        "<svg onload=\"alert(1)\"><script>alert(2)</script></svg>",
    )
    .unwrap();
    assert!(load_app(&dir, &Vars::new()).is_ok());
    std::fs::write(
        dir.join("icon.svg"),
        vec![b' '; (MAX_ICON_BYTES + 1) as usize],
    )
    .unwrap();
    assert!(icon_err("big").contains("at most 262144"));
    std::fs::remove_file(dir.join("icon.svg")).unwrap();
    assert!(icon_err("missing").contains("does not exist"));
    std::os::unix::fs::symlink("/etc/hostname", dir.join("icon.svg")).unwrap();
    assert!(icon_err("symlink").contains("symbolic link"));

    for name in ["../icon.svg", "icon.gif", ".icon.svg", "sub/icon.png"] {
        let toml = app_toml("web").replace("icon.svg", name);
        std::fs::write(dir.join(APP_FILE), toml).unwrap();
        assert!(
            icon_err(name).contains("must be the name of an .svg or .png"),
            "{name}"
        );
    }
    let toml = app_toml("web").replace("icon.svg", "icon.png");
    std::fs::write(dir.join(APP_FILE), toml).unwrap();
    std::fs::write(dir.join("icon.png"), ICON).unwrap();
    assert!(icon_err("svg as png").contains("not a PNG"));
    std::fs::write(dir.join("icon.png"), b"\x89PNG\r\n\x1a\n rest").unwrap();
    assert!(load_app(&dir, &Vars::new()).is_ok());
}

#[test]
fn a_broken_app_does_not_hide_the_others() {
    let cat = tempfile::tempdir().unwrap();
    write_app(cat.path(), "web", &app_toml("web"), COMPOSE);
    write_app(
        cat.path(),
        "broken",
        &app_toml("broken"),
        "services:\n  web:\n    image: nginx\n    privileged: true\n",
    );
    // Only a compose file: reported, since an app.toml is missing.
    std::fs::create_dir(cat.path().join("half")).unwrap();
    std::fs::write(cat.path().join("half").join(compose::FILE_NAME), COMPOSE).unwrap();
    // Neither: not an app, skipped. Hidden dirs and files too.
    std::fs::create_dir(cat.path().join("docs")).unwrap();
    std::fs::create_dir(cat.path().join(".git")).unwrap();
    std::fs::write(cat.path().join("README.md"), "hi").unwrap();

    let c = load_catalog(cat.path(), &Vars::new()).unwrap();
    assert_eq!(c.dir, cat.path());
    assert_eq!(c.title, None);
    assert_eq!(
        c.apps.iter().map(|a| &a.id[..]).collect::<Vec<_>>(),
        ["web"]
    );
    assert!(c.app("web").is_some());
    let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("app `broken` was skipped: ")
            && problems[0].contains("broken/compose.yaml:4: services.web.privileged"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("app `half` was skipped: ") && problems[1].contains("app.toml"),
        "{problems:?}"
    );
}

#[test]
fn an_index_names_the_catalog_and_lists_its_apps() {
    let cat = tempfile::tempdir().unwrap();
    write_app(&cat.path().join("apps"), "web", &app_toml("web"), COMPOSE);
    write_app(&cat.path().join("more"), "web", &app_toml("web"), COMPOSE);
    write_app(cat.path(), "unlisted", &app_toml("unlisted"), COMPOSE);
    let index = cat.path().join(INDEX_FILE);
    std::fs::write(
        &index,
        "title = \"Mine\"\ndescription = \"My apps\"\napps = [\"apps/web\", \"more/web\"]\n",
    )
    .unwrap();
    for path in [cat.path().to_path_buf(), index.clone()] {
        let c = load_catalog(&path, &Vars::new()).unwrap();
        assert_eq!(c.dir, cat.path());
        assert_eq!(c.title.as_deref(), Some("Mine"));
        assert_eq!(c.description.as_deref(), Some("My apps"));
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.apps[0].dir, cat.path().join("apps/web"));
        assert_eq!(c.problems.len(), 1);
        assert!(
            c.problems[0]
                .to_string()
                .contains("another app of the catalog has the id `web`"),
            "{}",
            c.problems[0]
        );
    }

    std::fs::write(&index, "apps = [\"web\", \"../elsewhere\"]\n").unwrap();
    match load_catalog(cat.path(), &Vars::new()) {
        Err(Error::Invalid(e)) => {
            assert_eq!(e.key, "apps");
            assert_eq!(e.line, Some(1));
            assert!(e.message.contains("`../elsewhere`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&index, "apps = [\"/abs\"]\n").unwrap();
    assert!(load_catalog(cat.path(), &Vars::new()).is_err());
    std::fs::write(&index, "titel = \"x\"\n").unwrap();
    let e = load_catalog(cat.path(), &Vars::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("catalog.toml:1: unknown field `titel`"), "{e}");

    // An index without `apps` scans the directory.
    std::fs::write(&index, "title = \"Mine\"\n").unwrap();
    let c = load_catalog(cat.path(), &Vars::new()).unwrap();
    assert_eq!(
        c.apps.iter().map(|a| &a.id[..]).collect::<Vec<_>>(),
        ["unlisted"]
    );
}

#[test]
fn no_catalog_there() {
    let cat = tempfile::tempdir().unwrap();
    let e = load_catalog(&cat.path().join("missing"), &Vars::new()).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let f = cat.path().join("file.txt");
    std::fs::write(&f, "x").unwrap();
    let e = load_catalog(&f, &Vars::new()).unwrap_err();
    assert!(e.to_string().contains("not a catalog"), "{e}");
    // An empty directory is an empty catalog.
    let c = load_catalog(cat.path(), &Vars::new()).unwrap();
    assert!(c.apps.is_empty() && c.problems.is_empty());
}

// The catalogs in the repository.

fn repo_catalog(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../catalog")
        .join(name)
}

fn demo_vars() -> Vars {
    [(
        "BERTH_DEMO_REGISTRY".to_string(),
        "127.0.0.1:5000".to_string(),
    )]
    .into_iter()
    .collect()
}

/// Checks every app of a shipped catalog must pass beyond loading.
fn check_shipped(c: &Catalog) {
    let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let mut host_ports: BTreeMap<u16, String> = BTreeMap::new();
    for app in &c.apps {
        assert!(app.open.is_some(), "{}: no `open`", app.id);
        let url = app.open_url();
        assert!(
            url.as_deref()
                .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
            "{}: {url:?}",
            app.id
        );
        assert!(
            app.icon.extension().is_some_and(|e| e == "svg"),
            "{}",
            app.id
        );
        for s in app.compose.services.values() {
            for p in &s.ports {
                // Loopback only: a desktop's apps are not shared on the network by default.
                assert_eq!(
                    p.host_ip,
                    Some(std::net::IpAddr::from([127, 0, 0, 1])),
                    "{}: {}",
                    app.id,
                    p
                );
                let published = p.published.expect("a fixed host port");
                if let Some(other) = host_ports.insert(published, app.id.clone()) {
                    panic!("{} and {other} both publish host port {published}", app.id);
                }
            }
        }
    }
}

#[test]
fn the_default_catalog_loads_cleanly() {
    let c = load_catalog(&repo_catalog("default"), &Vars::new()).unwrap();
    check_shipped(&c);
    assert!(c.title.is_some());
    assert!(c.apps.len() >= 8, "{} apps", c.apps.len());
    // At least one app has several services, waiting on a healthy database.
    assert!(c.apps.iter().any(|a| a.compose.services.values().any(|s| s
        .depends_on
        .values()
        .any(|c| *c == crate::apps::Condition::Healthy))));
    for app in &c.apps {
        for s in app.compose.services.values() {
            assert_eq!(s.image.registry, "docker.io", "{}: {}", app.id, s.image);
        }
    }
}

#[test]
fn the_demo_catalog_loads_cleanly_given_its_registry() {
    let c = load_catalog(&repo_catalog("demo"), &demo_vars()).unwrap();
    check_shipped(&c);
    assert!(c.apps.len() >= 2, "{} apps", c.apps.len());
    for app in &c.apps {
        // Demo apps say so: by their category, or (those that stand in
        // for a kind of app, to fill the catalog's categories) in words.
        assert!(
            app.category == Category::Demo || app.description.contains("Demo app"),
            "{} does not say it is a demo",
            app.id
        );
        for s in app.compose.services.values() {
            assert_eq!(s.image.registry, "127.0.0.1:5000", "{}", app.id);
            assert!(s.image.repository.starts_with("demo/"), "{}", s.image);
        }
    }
    let two = c
        .apps
        .iter()
        .find(|a| a.compose.services.len() == 2)
        .expect("a two-service demo app");
    let order: Vec<&str> = two
        .compose
        .start_order()
        .iter()
        .map(|s| &s.name[..])
        .collect();
    assert_eq!(order, ["api", "front"]);

    // Without the registry every app says which variable to set.
    let c = load_catalog(&repo_catalog("demo"), &Vars::new()).unwrap();
    assert!(c.apps.is_empty());
    assert!(!c.problems.is_empty());
    for p in &c.problems {
        assert!(p.to_string().contains("BERTH_DEMO_REGISTRY"), "{p}");
    }
}
