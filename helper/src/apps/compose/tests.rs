use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const FILE: &str = "catalog/x/compose.yaml";

fn vars() -> Vars {
    [("REG".to_string(), "127.0.0.1:5000".to_string())]
        .into_iter()
        .collect()
}

fn ok(yaml: &str) -> ComposeFile {
    parse(yaml, Path::new(FILE), &vars()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(yaml: &str) -> Invalid {
    match parse(yaml, Path::new(FILE), &vars()) {
        Ok(f) => panic!("parsed: {f:?}"),
        Err(e) => {
            assert_eq!(e.file, Path::new(FILE));
            e
        }
    }
}

/// One service `s` with the given extra lines (indented by 4).
fn svc(extra: &str) -> String {
    let mut y = String::from("services:\n  s:\n    image: busybox\n");
    for line in extra.lines() {
        y.push_str("    ");
        y.push_str(line);
        y.push('\n');
    }
    y.push_str("volumes:\n  data:\n  logs: {}\n");
    y
}

fn one(extra: &str) -> Service {
    ok(&svc(extra)).services["s"].clone()
}

fn err1(extra: &str) -> Invalid {
    err(&svc(extra))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_full_service_parses_to_its_structure() {
    let f = ok(r#"
name: myapp
version: "3.8"
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    image: ghcr.io/owner/app:1.2
    command: ["serve", "--port", "80"]
    entrypoint: /bin/app --verbose
    environment:
      MODE: production
      WORKERS: 4
      DEBUG: false
      RATIO: 1.10
      EMPTY: ""
    ports:
      - "8080:80"
      - 127.0.0.1:9090:90/udp
      - 443
      - target: 8443
        published: "8444"
        host_ip: 127.0.0.1
        protocol: tcp
    volumes:
      - data:/var/lib/app
      - logs:/var/log/app:ro
      - type: volume
        source: cache
        target: /cache
        read_only: false
    depends_on:
      db:
        condition: service_healthy
      cache:
    user: "1000:1000"
    working_dir: /srv
    mem_limit: 256m
    cpus: 0.5
    pids_limit: 100
  db:
    image: postgres:17-alpine
    environment:
      - POSTGRES_PASSWORD=secret
      - POSTGRES_DB=app=1
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U $$POSTGRES_USER"]
      interval: 10s
      timeout: 1m30s
      retries: 5
      start_period: 500ms
      start_interval: 2s
    restart: on-failure:3
  cache:
    image: ${REG}/demo/cache
    restart: "no"
volumes:
  data:
  logs: {}
  cache:
"#);
    assert_eq!(
        f.volumes,
        ["cache", "data", "logs"].map(String::from).into()
    );
    let web = &f.services["web"];
    assert_eq!(web.name, "web");
    assert_eq!(web.image.to_string(), "ghcr.io/owner/app:1.2");
    assert_eq!(web.command, Some(strings(&["serve", "--port", "80"])));
    assert_eq!(web.entrypoint, Some(strings(&["/bin/app", "--verbose"])));
    assert_eq!(
        web.env_list(),
        strings(&[
            "DEBUG=false",
            "EMPTY=",
            "MODE=production",
            "RATIO=1.10",
            "WORKERS=4"
        ])
    );
    let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        web.ports,
        vec![
            Port {
                target: 80,
                published: Some(8080),
                host_ip: None,
                protocol: Protocol::Tcp
            },
            Port {
                target: 90,
                published: Some(9090),
                host_ip: lo,
                protocol: Protocol::Udp
            },
            Port {
                target: 443,
                published: None,
                host_ip: None,
                protocol: Protocol::Tcp
            },
            Port {
                target: 8443,
                published: Some(8444),
                host_ip: lo,
                protocol: Protocol::Tcp
            },
        ]
    );
    assert_eq!(
        web.volumes,
        vec![
            Mount {
                source: "data".into(),
                target: "/var/lib/app".into(),
                read_only: false
            },
            Mount {
                source: "logs".into(),
                target: "/var/log/app".into(),
                read_only: true
            },
            Mount {
                source: "cache".into(),
                target: "/cache".into(),
                read_only: false
            },
        ]
    );
    assert_eq!(
        web.depends_on,
        [
            ("cache".to_string(), Condition::Started),
            ("db".to_string(), Condition::Healthy)
        ]
        .into()
    );
    assert_eq!(web.restart, Restart::UnlessStopped, "merged from x-common");
    assert_eq!(web.user.as_deref(), Some("1000:1000"));
    assert_eq!(web.working_dir.as_deref(), Some("/srv"));
    assert_eq!(web.mem_limit, Some(256 << 20));
    assert_eq!(web.millicpus, Some(500));
    assert_eq!(web.pids_limit, Some(100));
    assert_eq!(web.healthcheck, None);

    let db = &f.services["db"];
    assert_eq!(db.image.to_string(), "docker.io/library/postgres:17-alpine");
    assert_eq!(
        db.env_list(),
        strings(&["POSTGRES_DB=app=1", "POSTGRES_PASSWORD=secret"])
    );
    assert_eq!(
        db.healthcheck,
        Some(Healthcheck {
            test: Some(HealthTest::Shell("pg_isready -U $POSTGRES_USER".into())),
            interval: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(90)),
            retries: Some(5),
            start_period: Some(Duration::from_millis(500)),
            start_interval: Some(Duration::from_secs(2)),
        })
    );
    assert_eq!(db.restart, Restart::OnFailure(Some(3)));
    assert_eq!(db.command, None);

    let cache = &f.services["cache"];
    assert_eq!(cache.image.registry, "127.0.0.1:5000");
    assert_eq!(cache.image.repository, "demo/cache");
    assert_eq!(cache.restart, Restart::No);

    let order: Vec<&str> = f.start_order().iter().map(|s| &s.name[..]).collect();
    assert_eq!(order, ["cache", "db", "web"]);
    assert_eq!(
        f.images().iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        [
            "127.0.0.1:5000/demo/cache:latest",
            "docker.io/library/postgres:17-alpine",
            "ghcr.io/owner/app:1.2"
        ]
    );
}

#[test]
fn command_and_entrypoint_forms() {
    assert_eq!(
        one(r#"command: sh -c 'echo "hi there"; sleep 1'"#).command,
        Some(strings(&["sh", "-c", r#"echo "hi there"; sleep 1"#]))
    );
    assert_eq!(
        one(r#"command: echo "a b" c\ d '' x"#).command,
        Some(strings(&["echo", "a b", "c d", "", "x"]))
    );
    assert_eq!(
        one("command: [\"httpd\", 8080, true]").command,
        Some(strings(&["httpd", "8080", "true"]))
    );
    assert_eq!(one("entrypoint: []").entrypoint, Some(vec![]));
    assert_eq!(one("entrypoint: \"\"").entrypoint, Some(vec![]));
    assert_eq!(one("command:").command, None);
    let e = err1("command: echo a; echo b");
    assert_eq!(e.key, "services.s.command");
    assert!(e.message.contains("`;`") && e.message.contains("sh"), "{e}");
    let e = err1("command: echo 'open");
    assert!(e.message.contains("unterminated"), "{e}");
    let e = err1("entrypoint: {a: b}");
    assert!(e.message.contains("not a mapping"), "{e}");
}

#[test]
fn environment_forms_and_errors() {
    let s = one("environment:\n  A: 1\n  B: yes\n  C: true\n  D: 2.50\n  E: ${REG}\n  F: $$HOME");
    assert_eq!(
        s.env_list(),
        strings(&[
            "A=1",
            "B=yes",
            "C=true",
            "D=2.50",
            "E=127.0.0.1:5000",
            "F=$HOME"
        ])
    );
    let s = one("environment:\n  - A=1\n  - B=\n  - C=x=y");
    assert_eq!(s.env_list(), strings(&["A=1", "B=", "C=x=y"]));

    let e = err1("environment:\n  A:");
    assert_eq!(e.key, "services.s.environment.A");
    assert!(e.message.contains("no value"), "{e}");
    let e = err1("environment:\n  - A");
    assert!(e.message.contains("`A` has no value"), "{e}");
    let e = err1("environment:\n  - A=1\n  - A=2");
    assert!(e.message.contains("set twice"), "{e}");
    let e = err1("environment: A=1");
    assert!(e.message.contains("mapping"), "{e}");
    let e = err1("environment:\n  A: [1]");
    assert!(e.message.contains("must be a string"), "{e}");
}

#[test]
fn port_forms() {
    let ports = one(
        "ports:\n  - 80\n  - \"8080:80\"\n  - 127.0.0.1::81\n  - \"[::1]:8082:82/udp\"\n  - 83/udp\n  - target: 84\n  - target: 85\n    published: 8085\n    host_ip: \"::1\"\n    protocol: udp",
    )
    .ports;
    let v6 = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let p = |target, published, host_ip, protocol| Port {
        target,
        published,
        host_ip,
        protocol,
    };
    assert_eq!(
        ports,
        vec![
            p(80, None, None, Protocol::Tcp),
            p(80, Some(8080), None, Protocol::Tcp),
            p(
                81,
                None,
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                Protocol::Tcp
            ),
            p(82, Some(8082), v6, Protocol::Udp),
            p(83, None, None, Protocol::Udp),
            p(84, None, None, Protocol::Tcp),
            p(85, Some(8085), v6, Protocol::Udp),
        ]
    );
    assert_eq!(ports[3].to_string(), "[::1]:8082:82/udp");
    assert_eq!(ports[2].to_string(), "127.0.0.1::81/tcp");
    assert_eq!(ports[0].to_string(), "80/tcp");
}

#[test]
fn bad_ports_are_refused() {
    for (port, says) in [
        ("\"0:80\"", "out of range"),
        ("\"8080:0\"", "out of range"),
        ("\"70000:80\"", "out of range"),
        ("\"8080:80/sctp\"", "`sctp`"),
        ("\"8000-8010:8000-8010\"", "ranges"),
        ("\"::1:8080:80\"", "brackets"),
        ("\"300.1.1.1:8080:80\"", "not an IP address"),
        ("\"http:80\"", "not a port number"),
        ("-1", "not a port number"),
        ("{published: 80}", "target"),
        ("{target: 80, mode: host}", "`mode` is not supported"),
        ("[80]", "must be a string"),
    ] {
        let e = err1(&format!("ports:\n  - {port}"));
        assert!(e.key.starts_with("services.s.ports[0]"), "{port}: {e}");
        assert!(e.message.contains(says), "{port}: {e}");
        assert_eq!(e.line, Some(5), "{port}: {e}");
    }
    let e = err1("ports: [\"8080:80\", \"8080:80\"]");
    assert!(e.message.contains("listed twice"), "{e}");
    let e = err1("ports: [\"8080:80\", \"8080:81\"]");
    assert!(e.message.contains("host port 8080/tcp"), "{e}");
    // Another address, or another protocol, is no conflict.
    one("ports: [\"127.0.0.1:8080:80\", \"127.0.0.2:8080:81\", \"8080:80/udp\"]");
    let e = err(
        "services:\n  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: y\n    ports: [\"127.0.0.1:8080:80\"]\n",
    );
    assert_eq!(e.key, "services.b.ports[0]");
    assert!(e.message.contains("service `a`"), "{e}");
}

#[test]
fn volume_forms_and_refusals() {
    assert_eq!(
        one("volumes:\n  - data:/d\n  - logs:/l:ro\n  - data:/e:rw").volumes,
        vec![
            Mount {
                source: "data".into(),
                target: "/d".into(),
                read_only: false
            },
            Mount {
                source: "logs".into(),
                target: "/l".into(),
                read_only: true
            },
            Mount {
                source: "data".into(),
                target: "/e".into(),
                read_only: false
            },
        ]
    );
    for (mount, says) in [
        ("./data:/data", "host path"),
        ("/srv/data:/data", "host path"),
        ("~/data:/data", "host path"),
        ("{type: bind, source: /srv, target: /srv}", "host path"),
        ("{type: volume, source: /srv, target: /srv}", "host path"),
        ("/data", "has no name"),
        ("{type: volume, target: /data}", "has no name"),
        ("{type: tmpfs, target: /data}", "`tmpfs` mounts"),
        ("other:/data", "`other` is not declared"),
        ("data:relative", "absolute path"),
        ("data:/a/../b", "absolute path"),
        ("data:/", "over the container's `/`"),
        ("data:/d:z", "mode `z`"),
        ("bad name:/d", "not a valid volume name"),
        (
            "{type: volume, source: data, target: /d, volume: {nocopy: true}}",
            "`volume` is not supported",
        ),
    ] {
        let e = err1(&format!("volumes:\n  - {mount}"));
        assert!(e.key.starts_with("services.s.volumes[0]"), "{mount}: {e}");
        assert!(e.message.contains(says), "{mount}: {e}");
    }
    let e = err1("volumes: [\"data:/d\", \"logs:/d\"]");
    assert!(e.message.contains("two volumes"), "{e}");
    let e = err("services:\n  s:\n    image: x\nvolumes:\n  data:\n    driver: local\n");
    assert_eq!(e.key, "volumes.data.driver");
    assert_eq!(e.line, Some(6));
    let e = err("services:\n  s:\n    image: x\nvolumes:\n  -bad:\n");
    assert!(e.message.contains("not a valid volume name"), "{e}");
}

#[test]
fn depends_on_forms_and_checks() {
    let base = "services:\n  db:\n    image: db\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n  cache:\n    image: c\n";
    let f = ok(&format!(
        "{base}  web:\n    image: w\n    depends_on: [db, cache]\n"
    ));
    assert_eq!(
        f.services["web"].depends_on,
        [
            ("cache".to_string(), Condition::Started),
            ("db".to_string(), Condition::Started)
        ]
        .into()
    );
    let f = ok(&format!(
        "{base}  web:\n    image: w\n    depends_on:\n      db: {{condition: service_healthy}}\n      cache: {{condition: service_started}}\n"
    ));
    assert_eq!(f.services["web"].depends_on["db"], Condition::Healthy);

    let e = err(&format!(
        "{base}  web:\n    image: w\n    depends_on: [nope]\n"
    ));
    assert_eq!(e.key, "services.web.depends_on");
    assert!(
        e.message.contains("no service `nope`") && e.message.contains("cache, db, web"),
        "{e}"
    );
    assert_eq!(e.line, Some(10));
    let e = err(&format!(
        "{base}  web:\n    image: w\n    depends_on: [web]\n"
    ));
    assert!(e.message.contains("itself"), "{e}");
    let e = err(&format!(
        "{base}  web:\n    image: w\n    depends_on:\n      cache: {{condition: service_healthy}}\n"
    ));
    assert_eq!(e.key, "services.web.depends_on.cache");
    assert!(e.message.contains("no healthcheck"), "{e}");
    let e = err(&format!(
        "{base}  web:\n    image: w\n    depends_on:\n      db: {{condition: service_completed_successfully}}\n"
    ));
    assert!(e.message.contains("service_healthy"), "{e}");
    let e = err(&format!(
        "{base}  web:\n    image: w\n    depends_on:\n      db: {{condition: service_started, restart: true}}\n"
    ));
    assert_eq!(e.key, "services.web.depends_on.db.restart");
    let e = err(&format!(
        "{base}  web:\n    image: w\n    depends_on: [db, db]\n"
    ));
    assert!(e.message.contains("twice"), "{e}");
}

#[test]
fn cycles_are_shown() {
    let e = err(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n  d:\n    image: x\n    depends_on: [a]\n",
    );
    assert_eq!(e.key, "services.a.depends_on");
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("a → b → c → a"), "{e}");
    let e = err(
        "services:\n  a:\n    image: x\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [b]\n",
    );
    assert!(e.message.contains("b → c → b"), "{e}");
}

#[test]
fn start_order_is_deterministic() {
    let f = ok(
        "services:\n  web:\n    image: x\n    depends_on: [api, assets]\n  api:\n    image: x\n    depends_on: [db]\n  db:\n    image: x\n  assets:\n    image: x\n  zeta:\n    image: x\n  alpha:\n    image: x\n",
    );
    let order: Vec<&str> = f.start_order().iter().map(|s| &s.name[..]).collect();
    assert_eq!(order, ["alpha", "assets", "db", "api", "web", "zeta"]);
}

#[test]
fn restart_forms() {
    for (v, want) in [
        ("no", Restart::No),
        ("\"no\"", Restart::No),
        ("false", Restart::No),
        ("always", Restart::Always),
        ("unless-stopped", Restart::UnlessStopped),
        ("on-failure", Restart::OnFailure(None)),
        ("on-failure:5", Restart::OnFailure(Some(5))),
    ] {
        assert_eq!(one(&format!("restart: {v}")).restart, want, "{v}");
    }
    for v in ["sometimes", "on-failure:x", "true"] {
        let e = err1(&format!("restart: {v}"));
        assert_eq!(e.key, "services.s.restart");
        assert!(e.message.contains("restart policy"), "{v}: {e}");
    }
}

#[test]
fn healthcheck_forms() {
    let h = |y: &str| one(&format!("healthcheck:\n{y}")).healthcheck.unwrap();
    assert_eq!(
        h("  test: [\"CMD\", \"wget\", \"-q\", \"http://localhost\"]").test,
        Some(HealthTest::Cmd(strings(&[
            "wget",
            "-q",
            "http://localhost"
        ])))
    );
    assert_eq!(
        h("  test: curl -f http://localhost || exit 1").test,
        Some(HealthTest::Shell(
            "curl -f http://localhost || exit 1".into()
        ))
    );
    assert_eq!(h("  test: [\"NONE\"]").test, Some(HealthTest::Disabled));
    assert_eq!(h("  disable: true").test, Some(HealthTest::Disabled));
    let only_timing = h("  interval: 1h2m3.5s\n  retries: 0");
    assert_eq!(only_timing.test, None);
    assert_eq!(only_timing.interval, Some(Duration::from_secs_f64(3723.5)));
    assert_eq!(only_timing.retries, Some(0));
    assert!(!only_timing.has_test());

    for (y, key, says) in [
        ("  test: [\"CMD\"]", "test", "must be"),
        ("  test: [\"CMD-SHELL\", \"a\", \"b\"]", "test", "must be"),
        ("  test: [\"RUN\", \"x\"]", "test", "must be"),
        ("  test: \"\"", "test", "empty"),
        ("  interval: 10", "interval", "no unit"),
        ("  interval: 10x", "interval", "not a duration"),
        ("  timeout: s", "timeout", "not a duration"),
        ("  retries: -1", "retries", "retries"),
        ("  retries: x", "retries", "whole number"),
        ("  disable: yes", "disable", "true or false"),
        ("  disable: true\n  test: [\"CMD\", \"x\"]", "", "both"),
        (
            "  test: [\"CMD\", \"x\"]\n  start-period: 1s",
            "start-period",
            "not supported",
        ),
    ] {
        let e = err1(&format!("healthcheck:\n{y}"));
        let want = if key.is_empty() {
            "services.s.healthcheck".to_string()
        } else {
            format!("services.s.healthcheck.{key}")
        };
        assert_eq!(e.key, want, "{y}: {e}");
        assert!(e.message.contains(says), "{y}: {e}");
    }
}

#[test]
fn limits() {
    for (v, bytes) in [
        ("256m", 256u64 << 20),
        ("1g", 1 << 30),
        ("1gb", 1 << 30),
        ("1GiB", 1 << 30),
        ("512 M", 512 << 20),
        ("1.5g", 3 << 29),
        ("8192k", 8 << 20),
        ("7340032", 7 << 20),
        ("\"7340032\"", 7 << 20),
    ] {
        assert_eq!(
            one(&format!("mem_limit: {v}")).mem_limit,
            Some(bytes),
            "{v}"
        );
    }
    for (v, says) in [
        ("1m", "too small"),
        ("lots", "not a memory size"),
        ("1x", "not a memory size"),
        ("-5", "not a memory size"),
        ("[1]", "256m"),
    ] {
        let e = err1(&format!("mem_limit: {v}"));
        assert_eq!(e.key, "services.s.mem_limit");
        assert!(e.message.contains(says), "{v}: {e}");
    }
    assert_eq!(one("cpus: 2").millicpus, Some(2000));
    assert_eq!(one("cpus: \"0.25\"").millicpus, Some(250));
    assert_eq!(one("cpus: 1.5").millicpus, Some(1500));
    for v in ["0", "0.001", "abc", "true", "2000"] {
        let e = err1(&format!("cpus: {v}"));
        assert_eq!(e.key, "services.s.cpus", "{v}");
    }
    assert_eq!(one("pids_limit: 64").pids_limit, Some(64));
    assert_eq!(one("pids_limit: -1").pids_limit, None);
    assert_eq!(one("pids_limit: 0").pids_limit, None);
    assert!(err1("pids_limit: -5").message.contains("positive"));
}

#[test]
fn user_and_working_dir() {
    let s = one("user: www-data\nworking_dir: /var/www");
    assert_eq!(s.user.as_deref(), Some("www-data"));
    assert_eq!(s.working_dir.as_deref(), Some("/var/www"));
    assert_eq!(one("user: 1000").user.as_deref(), Some("1000"));
    assert!(err1("user: a b").message.contains("not a user"));
    assert!(err1("working_dir: app").message.contains("absolute"));
}

#[test]
fn unsupported_keys_are_named_with_file_line_and_alternatives() {
    let e = err("services:\n  web:\n    image: nginx\n    build: .\n");
    assert_eq!(e.key, "services.web.build");
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("`build` is not supported"), "{e}");
    assert!(e.message.contains("published images"), "{e}");
    assert!(
        e.message
            .contains("Berth supports these service keys: image, command, entrypoint"),
        "{e}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("catalog/x/compose.yaml:4: services.web.build: "),
        "{shown}"
    );

    for key in [
        "container_name: x",
        "networks: [a]",
        "network_mode: host",
        "privileged: true",
        "cap_add: [NET_ADMIN]",
        "devices: [/dev/kvm]",
        "env_file: .env",
        "deploy: {}",
        "labels: {a: b}",
        "expose: [80]",
        "security_opt: [seccomp:unconfined]",
        "extra_hosts: [a:1.2.3.4]",
        "tmpfs: /run",
    ] {
        let name = key.split(':').next().unwrap();
        let e = err1(key);
        assert_eq!(e.key, format!("services.s.{name}"), "{key}");
        assert!(
            e.message.contains(&format!("`{name}` is not supported")),
            "{key}: {e}"
        );
        assert!(e.message.contains("Berth supports"), "{key}: {e}");
    }
    for (top, says) in [
        ("networks:\n  front: {}\n", "by service name"),
        ("secrets:\n  a: {}\n", "environment"),
        ("configs:\n  a: {}\n", "environment"),
        ("include: [a.yaml]\n", "one file"),
        ("services2: {}\n", "does not support it"),
    ] {
        let e = err(&format!("services:\n  s:\n    image: x\n{top}"));
        let name = top.split(':').next().unwrap();
        assert_eq!(e.key, name);
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains(says), "{top}: {e}");
        assert!(
            e.message
                .contains("Berth supports these top-level keys: services, volumes, name, version"),
            "{e}"
        );
    }
}

#[test]
fn extensions_are_ignored() {
    let f = ok(
        "x-env: &env\n  TZ: UTC\nservices:\n  s:\n    image: x\n    x-note: anything ${UNSET}\n    environment:\n      <<: *env\n      A: b\n",
    );
    assert_eq!(f.services["s"].env_list(), strings(&["A=b", "TZ=UTC"]));
}

#[test]
fn names_images_and_shape() {
    let e = err("services:\n  Web_1:\n    image: x\n");
    assert_eq!(e.key, "services.Web_1");
    assert!(e.message.contains("not a valid service name"), "{e}");
    let e = err("services:\n  -web:\n    image: x\n");
    assert!(e.message.contains("not a valid service name"), "{e}");
    let e = err("services:\n  web:\n    image: Not/Valid\n");
    assert_eq!(e.key, "services.web.image");
    assert!(e.message.contains("not a valid image reference"), "{e}");
    let e = err("services:\n  web:\n    command: x\n");
    assert_eq!(e.key, "services.web.image");
    assert!(e.message.contains("missing"), "{e}");
    let e = err("services:\n  web:\n    image: ${NOPE}/web\n");
    assert_eq!(e.key, "services.web.image");
    assert!(
        e.message.contains("`NOPE` is not set") && e.message.contains("--set NOPE="),
        "{e}"
    );
    assert!(err("version: 3\n").message.contains("missing"));
    assert!(err("services: {}\n").message.contains("at least one"));
    assert!(err("- a\n- b\n").message.contains("not a Compose file"));
    assert!(err("services:\n  web: nginx\n").message.contains("mapping"));
    let e = err("services:\n  web:\n    image: x\n    image: y\n");
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("twice"), "{e}");
    let e = err("services:\n  web:\n    image: [x\n");
    assert!(e.message.contains("not valid YAML"), "{e}");
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, "services:\n  web:\n    image: nginx\n    build: .\n").unwrap();
    let e = load(&path, &Vars::new()).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:4: services.web.build", path.display())),
        "{e}"
    );
    std::fs::write(&path, "services:\n  web:\n    image: nginx\n").unwrap();
    assert_eq!(load(&path, &Vars::new()).unwrap().services.len(), 1);
    std::fs::write(&path, b"\xff\xfe").unwrap();
    assert!(load(&path, &Vars::new())
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
}

#[test]
fn word_splitting_like_compose() {
    assert_eq!(split_words("  a   b  ").unwrap(), strings(&["a", "b"]));
    assert_eq!(
        split_words(r#"a"b c"d 'e "f"' \'g"#).unwrap(),
        strings(&["ab cd", "e \"f\"", "'g"])
    );
    assert_eq!(split_words(r#""a\"b""#).unwrap(), strings(&["a\"b"]));
    assert_eq!(
        split_words("'a;b' \"c|d\"").unwrap(),
        strings(&["a;b", "c|d"])
    );
    assert_eq!(split_words("").unwrap(), Vec::<String>::new());
    assert!(split_words("a > b").is_err());
    assert!(split_words("trailing\\").is_err());
}

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("3us").unwrap(), Duration::from_micros(3));
    for bad in ["", "10", "s", "1d", "1m 30s", "-1s"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_bytes("100b").unwrap(), 100);
    assert_eq!(parse_bytes("2T").unwrap(), 2 << 40);
    assert!(parse_bytes("").is_err());
    assert!(parse_bytes("1.2.3m").is_err());
}
