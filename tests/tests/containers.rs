//! Containers end to end through `berth`: a real registry, a private bus, a
//! real berthd as root, real namespaces, cgroups and overlayfs.

use std::time::{Duration, Instant};

use berth_testkit::{
    shared, Berthd, BerthdConfig, Cli, CliOutput, ImageBuilder, Layer, PrivateBus,
};

struct Env {
    cli: Cli,
    berthd: Berthd,
    _bus: PrivateBus,
    image: String,
}

fn start() -> Env {
    let bus = PrivateBus::start().expect("private bus");
    let berthd = Berthd::start_with_config(&bus, &BerthdConfig::new().to_toml()).expect("berthd");
    let cli = berthd.cli().expect("cli");
    let image = shared::images().images.reference("busybox:latest");
    // Pulled up front, so `run` prints no pull progress in the tests.
    cli.run(&["pull", "-q", &image]).unwrap().ok().unwrap();
    Env {
        cli,
        berthd,
        _bus: bus,
        image,
    }
}

impl Env {
    fn run(&self, args: &[&str]) -> CliOutput {
        self.cli.run(args).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.cli.run(args).unwrap().ok().unwrap().stdout
    }

    /// `berth run --rm IMAGE sh -c SCRIPT` with extra run flags.
    fn sh(&self, flags: &[&str], script: &str) -> CliOutput {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&self.image, "sh", "-c", script]);
        self.run(&args)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Remove every container this test made, so nothing outlives it.
        if let Ok(out) = self.cli.run(&["ps", "-aq"]) {
            for id in out.stdout.split_whitespace() {
                let _ = self.cli.run(&["rm", "-f", id]);
            }
        }
    }
}

/// Mounts, cgroups and processes that mention `needle`.
fn leftovers(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| format!("mount: {l}")),
    );
    for ctrl in ["memory", "pids", "cpu,cpuacct", "blkio", "unified"] {
        let p = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("berth")
            .join(needle);
        if p.exists() {
            found.push(format!("cgroup: {}", p.display()));
        }
    }
    found
}

#[test]
fn output_exit_codes_and_isolation() {
    let env = start();
    let out = env.sh(&["--name", "iso-box"], "echo out; echo err >&2; exit 7");
    assert_eq!(out.code(), Some(7), "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    let out = env.sh(
        &["--name", "iso-box"],
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; \
         ls /proc | grep -c '^[0-9]'; \
         grep -c : /proc/net/dev; \
         grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
         ls /proc/self/fd | tr '\\n' ' '; echo; \
         id -u",
    );
    assert!(out.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("sh -c cat /proc/1/cmdline"),
        "PID 1 is the command: {lines:?}"
    );
    assert_eq!(lines[1], "iso-box", "hostname");
    let procs: u32 = lines[2].parse().unwrap();
    assert!(
        procs <= 6,
        "the container sees {procs} processes: {lines:?}"
    );
    assert_eq!(lines[3], "1", "only lo in --network none: {lines:?}");
    assert_eq!(lines[4], "CapEff:\t00000000a80425fb");
    assert_eq!(lines[5], "NoNewPrivs:\t1");
    assert_eq!(lines[6], "Seccomp:\t2");
    // ls's own directory fd is the 3.
    assert_eq!(
        lines[7].trim(),
        "0 1 2 3",
        "only fds 0, 1, 2 reach the container"
    );
    assert_eq!(lines[8], "0");

    // Host files and other containers' files are invisible.
    let marker = format!("/tmp/berth-host-marker-{}", std::process::id());
    std::fs::write(&marker, "host").unwrap();
    let out = env.sh(
        &[],
        &format!("test -e {marker} && echo visible || echo hidden; touch /tmp/mine"),
    );
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(out.stdout.trim(), "hidden");
    let out = env.sh(&[], "test -e /tmp/mine && echo shared || echo private");
    assert_eq!(
        out.stdout.trim(),
        "private",
        "two containers of one image share writes"
    );

    // Docker's entrypoint/cmd/env/workdir/user semantics.
    let out = env.sh(
        &["-e", "GREETING=hi", "-w", "/tmp", "-u", "nobody"],
        "echo $GREETING $(pwd) $(id -un)",
    );
    assert_eq!(out.stdout.trim(), "hi /tmp nobody", "{out:?}");
}

#[test]
fn bad_input_is_refused_clearly() {
    let env = start();
    let out = env.run(&["run", "--rm", &env.image, "no-such-command"]);
    assert_eq!(out.code(), Some(127), "{out:?}");
    assert!(out.stderr.contains("no-such-command"), "{}", out.stderr);

    for (args, says) in [
        (
            vec!["run", "--memory", "1x", env.image.as_str(), "true"],
            "invalid memory size `1x`",
        ),
        (
            vec!["run", "--cpus", "lots", env.image.as_str(), "true"],
            "--cpus",
        ),
        (
            vec![
                "run",
                "-v",
                "/no/such/host/dir:/data",
                env.image.as_str(),
                "true",
            ],
            "does not exist",
        ),
        (vec!["run", "127.0.0.1:1/nothing", "true"], "cannot reach"),
    ] {
        let out = env.run(&args);
        assert!(!out.success(), "{args:?} succeeded");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    env.ok(&["run", "-d", "--name", "taken", &env.image, "sleep", "30"]);
    let out = env.run(&["run", "--name", "taken", &env.image, "true"]);
    assert!(out.stderr.contains("already used"), "{}", out.stderr);
    env.ok(&["rm", "-f", "taken"]);
    assert_eq!(
        env.ok(&["ps", "-aq"]).trim(),
        "",
        "a refused run left a container"
    );
}

#[test]
fn limits_are_enforced() {
    let env = start();
    // Memory: the container is OOM killed, and says so.
    let out = env.run(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "16m",
        &env.image,
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(out.code(), Some(137), "{out:?}");
    assert!(out.stderr.contains("OOM killed"), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "hog"])).unwrap();
    assert_eq!(v["oom_killed"], true);
    assert!(env.ok(&["ps", "-a"]).contains("OOM killed"));
    env.ok(&["rm", "hog"]);

    // Pids: a fork bomb stops at the limit (the shell cannot fork the
    // 17th process and says so), and the host goes on.
    let out = env.sh(
        &["--pids-limit", "16"],
        "for i in $(seq 40); do sleep 5 & done; echo all-started",
    );
    assert!(
        !out.stdout.contains("all-started"),
        "pids limit not enforced: {out:?}"
    );
    assert!(out.stderr.contains("fork"), "{out:?}");

    // CPU: a busy loop under --cpus 0.5 uses about half a core.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "spin",
        "--cpus",
        "0.5",
        &env.image,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    // Right away, before berthd's next tick, it is in the table already.
    let out = env.ok(&["stats", "--no-stream", "spin"]);
    assert!(
        out.contains("spin"),
        "a just started container is missing: {out}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let id = env.ok(&["ps", "-q"]).trim().to_string();
    let stats: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "spin"])).unwrap();
    assert_eq!(stats["state"], "running");
    let out = env.ok(&["stats", "--no-stream", "spin"]);
    let line = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{out}"));
    let cpu: f64 = line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(
        (20.0..=70.0).contains(&cpu),
        "cpu {cpu}% under --cpus 0.5: {out}"
    );
    env.ok(&["rm", "-f", "spin"]);
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));
}

#[test]
fn containers_outlive_berthd_and_are_found_again() {
    let mut env = start();
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "survivor",
            &env.image,
            "sh",
            "-c",
            "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ])
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(600));
    env.berthd.kill9().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    env.berthd.restart().unwrap();
    assert!(env.ok(&["ps"]).contains("survivor"));
    assert_eq!(
        env.ok(&["exec", "survivor", "echo", "still here"]),
        "still here\n"
    );
    // exec -t: a terminal of its own, relayed; its exit code comes back.
    let out = env.run(&[
        "exec",
        "-t",
        "survivor",
        "sh",
        "-c",
        "tty; stty size; exit 4",
    ]);
    assert_eq!(out.code(), Some(4), "{out:?}");
    assert!(out.stdout.starts_with("/dev/pts/"), "{out:?}");
    assert!(out.stdout.contains("24 80"), "{out:?}");
    let logs = env.ok(&["logs", "--tail", "2", "survivor"]);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    assert!(logs.starts_with("tick "));

    // The stats history grows while it runs.
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    env.ok(&["stop", "-t", "1", "survivor"]);
    assert!(t.elapsed() < Duration::from_secs(30));
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "survivor"])).unwrap();
    assert_eq!(v["state"], "exited");
    env.ok(&["rm", "survivor"]);
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));
}

#[test]
fn security_regressions() {
    let env = start();
    // CVE-2024-21626 class: a working directory of /proc/self/fd/N must not
    // reach the host.
    for fd in 3..8 {
        let dir = format!("/proc/self/fd/{fd}");
        let out = env.run(&[
            "run",
            "--rm",
            "-w",
            &dir,
            &env.image,
            "sh",
            "-c",
            "ls ../../../../etc/hostname; cat ../../../../etc/hostname",
        ]);
        assert!(
            !out.stdout.contains(&hostname()),
            "workdir {dir} reached the host: {out:?}"
        );
    }
    // CVE-2019-5736 class: the runtime binary cannot be opened for writing.
    let out = env.sh(&[], "for p in /proc/[0-9]*; do (echo x >> $p/exe) 2>/dev/null && echo WROTE $p; done; echo done");
    assert!(!out.stdout.contains("WROTE"), "{out:?}");
    // Host processes and mounts are invisible.
    let out = env.sh(&[], "cat /proc/mounts");
    for line in out.stdout.lines() {
        let point = line.split_whitespace().nth(1).unwrap_or("");
        let expected = point == "/"
            || ["/proc", "/dev", "/sys", "/etc/"]
                .iter()
                .any(|p| point.starts_with(p));
        assert!(expected, "a host mount is visible in the container: {line}");
    }
    let out = env.sh(&[], "ps -o pid,comm | wc -l");
    assert!(
        out.stdout.trim().parse::<u32>().unwrap_or(99) <= 4,
        "host processes visible: {out:?}"
    );

    // CVE-2025-31133 class: an image whose /dev/null is a symlink to a host
    // path cannot turn a mask onto that path.
    let registry = &shared::images().registry;
    let image = ImageBuilder::new()
        .layer(berth_testkit::busybox_rootfs().unwrap())
        .layer(
            Layer::new()
                .dir("/dev")
                .symlink("/dev/null", "/proc/sys/kernel/core_pattern"),
        )
        .build()
        .unwrap();
    image
        .push(&registry.client(), "evil/devnull", "latest")
        .unwrap();
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let r = format!("{}/evil/devnull:latest", registry.host());
    let _ = env.run(&[
        "run",
        "--rm",
        &r,
        "sh",
        "-c",
        "echo '|/tmp/pwn' > /dev/null; cat /proc/kcore | head -c 1",
    ]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `(host_id, size)` of a container's `--userns=auto` block, from inspect.
fn userns_block(env: &Env, name: &str) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
    let uid = &v["id_mappings"]["uid_map"];
    assert_eq!(uid, &v["id_mappings"]["gid_map"], "{v}");
    assert_eq!(uid.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(uid[0]["container_id"], 0, "{v}");
    assert_eq!(v["options"]["userns"], "auto", "{v}");
    (
        uid[0]["host_id"].as_u64().unwrap(),
        uid[0]["size"].as_u64().unwrap(),
    )
}

fn container_id(env: &Env, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// The lines of `/proc/<pid>/uid_map` (or gid_map), whitespace squeezed.
fn id_map(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn userns_auto_maps_root_to_a_private_host_range() {
    use std::os::unix::fs::MetadataExt;
    let mut env = start();
    let volume = berth_testkit::fsutil::TestDir::new("berth-userns-volume-").unwrap();
    std::fs::write(volume.join("from-host"), "host data\n").unwrap();
    let host_dir = berth_testkit::fsutil::TestDir::new("berth-userns-host-").unwrap();
    let marker = host_dir.join("marker").display().to_string();
    std::fs::write(&marker, "host").unwrap();
    let vol = format!("{}:/data", volume.path().display());

    // Root inside, a block of unprivileged ids outside; Docker's
    // capabilities; /proc, /sys, /dev, /dev/pts, mqueue and the /etc
    // files work; a volume keeps its host owners.
    let script = format!(
        "id -u; id -g; cat /proc/self/uid_map; cat /proc/self/gid_map; \
         grep ^CapEff: /proc/self/status; \
         echo written > /written-by-container; mkdir /made-dir; \
         test -e {marker} && echo host-visible || echo host-hidden; \
         test -c /dev/null && echo > /dev/null && echo dev-ok; \
         test -c /dev/pts/ptmx && echo pts-ok; \
         test -d /dev/mqueue && grep -q ' /dev/mqueue mqueue ' /proc/mounts && echo mqueue-ok; \
         test -d /sys/kernel && echo sys-ok; \
         grep -q userns-a /etc/hosts && cat /etc/hostname && test -r /etc/resolv.conf && echo etc-ok; \
         echo '10.0.0.1 extra' >> /etc/hosts && echo hosts-writable; \
         cat /data/from-host; touch /data/by-container 2>/dev/null && echo vol-writable || echo vol-readonly-to-root"
    );
    let out = env.run(&[
        "run",
        "--name",
        "userns-a",
        "--userns=auto",
        "-v",
        &vol,
        &env.image,
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.success(), "{out:?}");
    let (start, size) = userns_block(&env, "userns-a");
    assert_eq!(size, 65536);
    assert!(start >= 65536, "the block {start} overlaps ordinary ids");
    let squeezed = id_map(&out.stdout);
    let lines: Vec<&str> = squeezed.iter().map(String::as_str).collect();
    let map = format!("0 {start} 65536");
    assert_eq!(lines[..4], ["0", "0", &map, &map], "{out:?}");
    assert_eq!(lines[4], "CapEff: 00000000a80425fb", "{out:?}");
    assert_eq!(
        lines[5..],
        [
            "host-hidden",
            "dev-ok",
            "pts-ok",
            "mqueue-ok",
            "sys-ok",
            "userns-a",
            "etc-ok",
            "hosts-writable",
            "host data",
            "vol-readonly-to-root",
        ],
        "{out:?}"
    );
    // On the host the container's writes belong to the block's first id;
    // the shared layers keep their owners.
    let id_a = container_id(&env, "userns-a");
    let upper = env
        .berthd
        .root()
        .join("containers")
        .join(&id_a)
        .join("upper");
    for f in ["written-by-container", "made-dir"] {
        let md = std::fs::metadata(upper.join(f)).unwrap();
        assert_eq!((md.uid() as u64, md.gid() as u64), (start, start), "{f}");
    }
    let layers = env.berthd.root().join("layers");
    let foreign = std::process::Command::new("find")
        .arg(&layers)
        .args(["-uid", &start.to_string(), "-print", "-quit"])
        .output()
        .unwrap();
    assert!(foreign.stdout.is_empty(), "a shared layer was chowned");
    assert!(!volume.join("by-container").exists());

    // Two containers (one exited, one running) hold disjoint blocks; the
    // running one is seen from the host with the same map; exec joins it.
    let id_b = env
        .ok(&[
            "run", "-d", "--name", "userns-b", "--userns", "auto", &env.image, "sleep", "60",
        ])
        .trim()
        .to_string();
    let (start_b, _) = userns_block(&env, "userns-b");
    assert!(
        start_b >= start + 65536 || start_b + 65536 <= start,
        "blocks overlap: {start} and {start_b}"
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "userns-b"])).unwrap();
    let pid = v["pid"].as_i64().unwrap();
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(id_map(&host_view), [format!("0 {start_b} 65536")]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(start_b.to_string().as_str()),
        "{uid_line}"
    );
    assert_eq!(env.ok(&["exec", "userns-b", "id", "-u"]), "0\n");
    assert_eq!(
        id_map(&env.ok(&["exec", "userns-b", "cat", "/proc/self/uid_map"])),
        [format!("0 {start_b} 65536")]
    );

    // Blocks stay reserved across a restart of berthd.
    env.berthd.restart().unwrap();
    let out = env.run(&[
        "run",
        "--rm",
        "--userns=auto",
        &env.image,
        "cat",
        "/proc/self/uid_map",
    ]);
    assert!(out.success(), "{out:?}");
    let third: u64 = id_map(&out.stdout)[0]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    for held in [start, start_b] {
        assert!(
            third >= held + 65536 || third + 65536 <= held,
            "{third} given out while {held} is held"
        );
    }

    // rm frees the block (the next container may take it) and leaves no
    // mount behind.
    env.ok(&["rm", "-f", "userns-a", "userns-b"]);
    for id in [&id_a, &id_b] {
        assert!(leftovers(id).is_empty(), "{:?}", leftovers(id));
    }
    env.ok(&[
        "run",
        "-d",
        "--name",
        "userns-c",
        "--userns=auto",
        &env.image,
        "sleep",
        "30",
    ]);
    let (start_c, _) = userns_block(&env, "userns-c");
    assert_eq!(start_c, start.min(start_b), "the freed block is reused");
    let id_c = container_id(&env, "userns-c");
    env.ok(&["rm", "-f", "userns-c"]);
    assert!(leftovers(&id_c).is_empty(), "{:?}", leftovers(&id_c));

    // Unknown modes are refused, naming the accepted ones.
    let out = env.run(&["run", "--userns=private", &env.image, "true"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("`private`")
            && out.stderr.contains("host")
            && out.stderr.contains("auto"),
        "{out:?}"
    );
}
