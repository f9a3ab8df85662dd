//! Data at rest (issue 11): what another local user can reach of what
//! berthd keeps on disk and mounts, tried for real.
//!
//! Each test runs a real berthd as root on a private bus with the project's
//! policy, installs the demo app `hello-api` (and `vault`, a one-service app
//! of a temp catalog with a named volume, an environment secret and a
//! catalog variable) from a real registry, and then acts as someone else:
//! `nobody` (uid 65534, no groups) and a member of Berth's access group (a
//! throwaway [`TestUser`] whose group is berthd's `[access] group`, which
//! is "group berth" where polkit does not run, as on the private bus).
//!
//! - Nobody lists or stats inside `--root`, `--run-root`, a container's root
//!   file system mount, its upper dir or a volume.
//! - A static setuid-root program a container planted (a copy of busybox,
//!   4755, owned by root, run as its `crontab` applet, which says "must be
//!   suid to work properly" when it is not root) cannot be run from any host
//!   path where it appears; and, independently of the modes, every mount
//!   berthd made in the host's namespace is `nosuid,nodev`: run through a
//!   file descriptor root opened, the program does not become root.
//! - No file under the roots that another user can read holds a secret, and
//!   the state files have exactly the modes the issue names.
//! - A berthd started on roots an older one left loose (0711 roots, 0755
//!   dirs, 0644 state files, 0640 logs, root file systems and namespace
//!   files mounted without `nosuid`) tightens them at start, without
//!   touching what containers wrote.
//! - `--userns=auto` containers still run: their init passes berthd's 0710
//!   directories through the `berth-userns` group, which it no longer has
//!   when the container's command runs.
//!
//! Every env is the kit's [`DemoEnv`]: when it drops, also after a failure,
//! it uninstalls the apps, removes the containers and sweeps the networks;
//! the test user is removed when its guard drops.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::fsutil::TestDir;
use berth_testkit::snapshot::parse_mountinfo;
use berth_testkit::users::TestUser;
use berth_testkit::{require, DemoEnv};
use serde_json::Value;

/// The group `--userns=auto` inits pass berthd's 0710 directories with.
const TRAVERSE_GROUP: &str = "berth-userns";

// ---------------------------------------------------------------------------
// Fixtures

/// A value no other test writes, to look for on disk.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("berth-{what}-{}-{nanos:09}", std::process::id())
}

/// The secrets the `vault` app is given.
struct Secrets {
    /// An `environment:` value written in its Compose file.
    env: String,
    /// A catalog variable (`--set VAULT_TOKEN=…`) its Compose file uses.
    var: String,
}

/// A berthd with the demo catalog, `hello-api` installed, and `vault`
/// installed from a temp catalog (kept in the returned dir).
struct Installed {
    env: DemoEnv,
    secrets: Secrets,
    _catalog: TestDir,
}

fn install() -> Installed {
    let env = DemoEnv::shared().expect("a berthd with the demo catalog");
    env.install("hello-api", &[]);
    let secrets = Secrets {
        env: unique("env-secret"),
        var: unique("var-secret"),
    };
    let catalog = TestDir::new("berth-vault-catalog-").unwrap();
    let app = catalog.join("vault");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("app.toml"),
        "id = \"vault\"\ntitle = \"vault\"\nversion = \"1\"\n\
         description = \"Keeps a secret.\"\ncategory = \"demo\"\n\
         icon = \"icon.svg\"\nopen = { service = \"web\", port = 8080 }\n",
    )
    .unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        format!(
            "services:\n\
             \x20 web:\n\
             \x20   image: ${{BERTH_DEMO_REGISTRY}}/demo/web:latest\n\
             \x20   environment:\n\
             \x20     SECRET_VALUE: {}\n\
             \x20     TOKEN: ${{VAULT_TOKEN}}\n\
             \x20   ports:\n\
             \x20     - \"8080\"\n\
             \x20   volumes:\n\
             \x20     - data:/www/data\n\
             volumes:\n\
             \x20 data:\n",
            secrets.env
        ),
    )
    .unwrap();
    std::fs::copy(
        berth_testkit::demo::catalog().join("hello/icon.svg"),
        app.join("icon.svg"),
    )
    .unwrap();
    let registry = format!("BERTH_DEMO_REGISTRY={}", env.registry());
    let token = format!("VAULT_TOKEN={}", secrets.var);
    env.ok(&[
        "catalog",
        "add",
        catalog.path().to_str().unwrap(),
        "--name",
        "vault",
        "--set",
        &registry,
        "--set",
        &token,
    ]);
    env.install("vault", &["--catalog", "vault"]);
    Installed {
        env,
        secrets,
        _catalog: catalog,
    }
}

/// `berth inspect NAME` as JSON.
fn inspect(env: &DemoEnv, name: &str) -> Value {
    let out = env.ok(&["inspect", name]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect {name}: {e}: {out}"))
}

fn container_id(env: &DemoEnv, name: &str) -> String {
    inspect(env, name)["id"].as_str().unwrap().to_string()
}

/// Where berthd keeps the files of container `name`.
struct ContainerPaths {
    /// `<root>/containers/<id>`
    dir: PathBuf,
    /// `<run>/containers/<id>`
    run_dir: PathBuf,
    upper: PathBuf,
    rootfs: PathBuf,
}

fn paths(env: &DemoEnv, name: &str) -> ContainerPaths {
    let id = container_id(env, name);
    let dir = env.berthd.root().join("containers").join(&id);
    let run_dir = env.berthd.run_root().join("containers").join(&id);
    ContainerPaths {
        upper: dir.join("upper"),
        rootfs: run_dir.join("bundle/rootfs"),
        dir,
        run_dir,
    }
}

/// The gid of group `name` (from /etc/group), if it exists.
fn group_gid(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f[2].parse().unwrap())
    })
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------
// Acting as someone else

/// A local user trying: ids and supplementary groups.
struct Who {
    label: String,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

fn nobody() -> Who {
    Who {
        label: "nobody".into(),
        uid: 65534,
        gid: 65534,
        groups: Vec::new(),
    }
}

/// Make `user` a member of berthd's access group (its `[access] group` is
/// the user's group; berthd reads it at start) and check that berthd
/// grants it what it grants group `berth`.
fn access_group_member(env: &mut DemoEnv, user: &TestUser) -> Who {
    let config = env.berthd.config_path();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[access]\ngroup = {:?}\n", user.group));
    std::fs::write(&config, text).unwrap();
    env.berthd.restart().unwrap();
    let image = format!("{}/demo/busybox:latest", env.registry());
    let out = env
        .cli
        .run_as_user(Some(user.ids()), &["pull", &image])
        .unwrap();
    assert!(out.success(), "the access group is not honoured: {out:?}");
    Who {
        label: format!("{} (group {})", user.name, user.group),
        uid: user.uid,
        gid: user.gid,
        groups: vec![user.gid, group_gid(&user.group).unwrap()],
    }
}

/// `program args` as `who` (argv[0] `arg0` if given), with `fd` as its fd 3.
/// Err if it could not be executed at all (EACCES on the way to it).
fn run_as(
    who: &Who,
    program: &Path,
    arg0: Option<&str>,
    args: &[&str],
    fd: Option<&OwnedFd>,
) -> std::io::Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir("/").env_clear();
    cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(a) = arg0 {
        cmd.arg0(a);
    }
    let (uid, gid, groups) = (who.uid, who.gid, who.groups.clone());
    let fd = fd.map(|f| f.as_raw_fd());
    // SAFETY: only async-signal-safe syscalls between fork and exec, on
    // values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = fd {
                // dup2 clears close-on-exec on the copy.
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output()
}

/// `who` cannot list `dir` nor stat `entry` in it: both fail with EACCES
/// (root can, so it is not a missing path that fails).
fn assert_unreachable(who: &Who, dir: &Path, entry: &Path) {
    assert!(
        std::fs::symlink_metadata(entry).is_ok(),
        "{} is missing: the test looks in the wrong place",
        entry.display()
    );
    for (program, target) in [("/bin/ls", dir), ("/usr/bin/stat", entry)] {
        let out = run_as(
            who,
            Path::new(program),
            None,
            &[target.to_str().unwrap()],
            None,
        )
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("Permission denied"),
            "{} reached {} with {program}: {out:?}",
            who.label,
            target.display()
        );
    }
}

/// What became of running a planted setuid-root busybox as its `crontab`
/// applet.
#[derive(Debug, PartialEq, Eq)]
enum SetuidRun {
    /// It could not be executed (EACCES on the way).
    Denied,
    /// It ran without the set-uid bit taking effect.
    NotRoot,
    /// It ran as root (its output).
    Root(String),
}

fn run_setuid(who: &Who, program: &Path, fd: Option<&OwnedFd>) -> SetuidRun {
    match run_as(who, program, Some("crontab"), &["-l"], fd) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => SetuidRun::Denied,
        Err(e) => panic!("running {}: {e}", program.display()),
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if text.contains("must be suid to work properly") {
                SetuidRun::NotRoot
            } else {
                SetuidRun::Root(text)
            }
        }
    }
}

/// Open `path` without reading it, as root, to hand to someone else.
fn open_path(path: &Path) -> OwnedFd {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string; the fd is owned right away.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    assert!(
        fd >= 0,
        "opening {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: just opened, ours.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// Every mount in the host's namespace under berthd's roots: (mount point,
/// per-mount options, type).
fn berthd_mounts(env: &DemoEnv) -> Vec<(String, String, String)> {
    let root = env.berthd.root().display().to_string();
    let run = env.berthd.run_root().display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    parse_mountinfo(&info)
        .into_iter()
        .filter(|m| {
            let under = |r: &str| m.mount_point == r || m.mount_point.starts_with(&format!("{r}/"));
            under(&root) || under(&run)
        })
        .map(|m| {
            let opts = m.line.split(' ').nth(5).unwrap_or_default().to_string();
            (m.mount_point, opts, m.fstype)
        })
        .collect()
}

/// Every mount berthd made is `nosuid,nodev` (namespace files also
/// `noexec`), and the root file systems of `rootfs` are among them.
fn assert_mounts_restricted(env: &DemoEnv, rootfs: &[&Path]) {
    let mounts = berthd_mounts(env);
    for r in rootfs {
        assert!(
            mounts.iter().any(|(p, _, _)| Path::new(p) == *r),
            "{} is not mounted: {mounts:?}",
            r.display()
        );
    }
    let netns = env.berthd.run_root().join("netns").display().to_string();
    for (point, opts, fstype) in &mounts {
        let has = |o: &str| opts.split(',').any(|x| x == o);
        assert!(
            has("nosuid") && has("nodev"),
            "{point} ({fstype}) is mounted {opts}, without nosuid,nodev"
        );
        if point.starts_with(&netns) {
            assert!(has("noexec"), "{point} ({fstype}) is mounted {opts}");
        }
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn others_reach_no_container_files_and_run_no_planted_setuid_program() {
    if !require::root("the data-at-rest tests") {
        return;
    }
    let user = TestUser::create().unwrap();
    // Whole until the end: the env drops (uninstalling) before the catalog.
    let mut installed = install();
    let Installed { env, .. } = &mut installed;
    let member = access_group_member(env, &user);
    let root = env.berthd.root();
    let run = env.berthd.run_root();

    // The containers plant a static setuid-root program: in the root file
    // system of each (seen on the host in the rootfs mount and the upper
    // dir), and in vault's volume.
    let plant = "cp /bin/busybox \"$0\" && chown 0:0 \"$0\" && chmod 4755 \"$0\"";
    for c in ["hello-api-front-1", "hello-api-api-1", "vault-web-1"] {
        env.ok(&["exec", c, "sh", "-c", plant, "/tmp/busybox"]);
    }
    env.ok(&[
        "exec",
        "vault-web-1",
        "sh",
        "-c",
        plant,
        "/www/data/busybox",
    ]);
    let front = paths(env, "hello-api-front-1");
    let api = paths(env, "hello-api-api-1");
    let vault = paths(env, "vault-web-1");
    let volume = root.join("volumes/vault_data/_data");
    let planted = [
        front.rootfs.join("tmp/busybox"),
        front.upper.join("tmp/busybox"),
        api.rootfs.join("tmp/busybox"),
        api.upper.join("tmp/busybox"),
        vault.rootfs.join("tmp/busybox"),
        vault.upper.join("tmp/busybox"),
        volume.join("busybox"),
    ];
    for p in &planted {
        let md = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            (md.uid(), md.mode() & 0o7777),
            (0, 0o4755),
            "{}",
            p.display()
        );
    }

    for who in [nobody(), member] {
        assert_unreachable(&who, &root, &root.join("berth.db"));
        assert_unreachable(&who, &run, &run.join("containers"));
        for c in [&front, &api, &vault] {
            assert_unreachable(&who, &c.rootfs, &c.rootfs.join("bin/busybox"));
            assert_unreachable(&who, &c.upper, &c.upper.join("tmp"));
            assert_unreachable(&who, &c.dir, &c.dir.join("hosts"));
            assert_unreachable(&who, &c.run_dir, &c.run_dir.join("bundle"));
        }
        assert_unreachable(&who, &volume, &volume.join("busybox"));
        for p in &planted {
            assert_eq!(
                run_setuid(&who, p, None),
                SetuidRun::Denied,
                "{} ran {}",
                who.label,
                p.display()
            );
        }
    }

    // Independently of the modes: handed the program by root, nobody still
    // does not become root, as the root file system is mounted nosuid.
    // The control: the same copy on a mount that honours set-id bits does
    // make it root, so the probe can tell.
    let control_dir = TestDir::new("berth-setuid-control-").unwrap();
    let control = control_dir.join("busybox");
    std::fs::copy(&planted[0], &control).unwrap();
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let honours_setuid = mounted_nosuid(control_dir.path()) == Some(false);
    if honours_setuid {
        let fd = open_path(&control);
        assert!(
            matches!(
                run_setuid(&nobody(), Path::new("/proc/self/fd/3"), Some(&fd)),
                SetuidRun::Root(_)
            ),
            "the control copy did not run as root: the probe proves nothing"
        );
    }
    for p in [&planted[0], &planted[2], &planted[4]] {
        let fd = open_path(p);
        assert_eq!(
            run_setuid(&nobody(), Path::new("/proc/self/fd/3"), Some(&fd)),
            SetuidRun::NotRoot,
            "nobody became root through {}",
            p.display()
        );
    }
    assert_mounts_restricted(env, &[&front.rootfs, &api.rootfs, &vault.rootfs]);

    // berthd's umask (0o077) is its own: the container and what is exec'ed
    // in it get 0022.
    let pid = inspect(env, "hello-api-front-1")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("\nUmask:\t0022\n"), "{status}");
    assert_eq!(
        env.ok(&["exec", "hello-api-front-1", "sh", "-c", "umask"]),
        "0022\n"
    );
}

/// Whether the file system at `path` is mounted nosuid (None if unknown).
fn mounted_nosuid(path: &Path) -> Option<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid C string and a zeroed struct to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_flag & libc::ST_NOSUID != 0)
}

#[test]
fn no_file_others_can_read_holds_a_secret() {
    if !require::root("the data-at-rest tests") {
        return;
    }
    let user = TestUser::create().unwrap();
    let mut installed = install();
    let Installed { env, secrets, .. } = &mut installed;
    let member = access_group_member(env, &user);
    let root = env.berthd.root();
    let run = env.berthd.run_root();
    let vault = paths(env, "vault-web-1");
    // The app writes the secrets to its log as well.
    env.ok(&[
        "exec",
        "vault-web-1",
        "sh",
        "-c",
        "echo \"$SECRET_VALUE $TOKEN\" > /proc/1/fd/1",
    ]);

    // Root finds the secrets on disk (so finding none readable below means
    // something)...
    let out = Command::new("/bin/grep")
        .args(["-rlF", "-D", "skip", "-e", &secrets.env, "-e", &secrets.var])
        .args([&root, &run])
        .output()
        .unwrap();
    let found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for f in [
        root.join("berth.db"),
        root.join("catalogs.json"),
        root.join("apps/vault/vars.json"),
        root.join("apps/vault/compose.yaml"),
        vault.dir.join("log.json"),
        vault.run_dir.join("bundle/config.json"),
    ] {
        assert!(
            found.iter().any(|l| Path::new(l) == f),
            "root finds no secret in {}: {found:?}",
            f.display()
        );
    }
    // ...and no one else can read one of those files, by its path (a
    // directory others may pass but not list hides nothing).
    for who in [nobody(), member] {
        let mut args = vec!["-lF", "-e", &secrets.env, "-e", &secrets.var, "--"];
        args.extend(found.iter().map(String::as_str));
        let out = run_as(&who, Path::new("/bin/grep"), None, &args, None).unwrap();
        let readable = String::from_utf8_lossy(&out.stdout);
        assert!(
            readable.is_empty(),
            "{} reads secrets in:\n{readable}",
            who.label
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{out:?}"
        );
    }

    // The state files the issue names, exactly.
    for (p, want) in [
        (root.join("berth.db"), 0o600),
        (root.join("berth.db-wal"), 0o600),
        (root.join("berth.db-shm"), 0o600),
        (root.join("catalogs.json"), 0o600),
        (root.join("apps/vault"), 0o700),
        (root.join("apps/vault/app.toml"), 0o600),
        (root.join("apps/vault/compose.yaml"), 0o600),
        (root.join("apps/vault/vars.json"), 0o600),
        (root.join("apps/vault/icon.svg"), 0o600),
        (vault.run_dir.join("bundle/config.json"), 0o600),
        (vault.dir.join("log.json"), 0o600),
    ] {
        assert_eq!(mode(&p), want, "{}: {:o}", p.display(), mode(&p));
    }
}

/// berthd's own directories under `root` and `run`, as an older berthd
/// left them too: not into what containers and images wrote (upper dirs,
/// volumes' `_data`, root file systems, layers) nor into mounts.
fn own_dirs(root: &Path, run: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        out.push(dir.to_path_buf());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let data = ["upper", "_data", "rootfs", "layers"];
            if !e.file_type().is_ok_and(|t| t.is_dir()) || data.iter().any(|d| name == *d) {
                continue;
            }
            if name == "work" {
                // The overlay's work dir is berthd's; what is in it is the
                // kernel's.
                out.push(p);
                continue;
            }
            walk(&p, out);
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    walk(run, &mut out);
    out
}

/// berthd's state files under `root` and `run` (the list): the
/// database, catalogs, installed apps' copies, bundles' config.json, logs.
fn state_files(root: &Path, run: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["berth.db", "berth.db-wal", "berth.db-shm", "catalogs.json"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    let children = |d: PathBuf| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for app in children(root.join("apps")) {
        out.extend(children(app).into_iter().filter(|p| p.is_file()));
    }
    for c in children(root.join("containers")) {
        out.push(c.join("log.json"));
    }
    for c in children(run.join("containers")) {
        out.push(c.join("bundle/config.json"));
    }
    out.retain(|p| p.exists());
    out
}

/// A directory of berthd's has the mode it should: 0700, or 0710 with
/// group `berth-userns` for the ones `--userns=auto` inits pass.
fn assert_private_dir(p: &Path) {
    let md = std::fs::symlink_metadata(p).unwrap();
    let ok = match md.mode() & 0o7777 {
        0o700 => true,
        0o710 => Some(md.gid()) == group_gid(TRAVERSE_GROUP),
        _ => false,
    };
    assert!(
        ok && md.uid() == 0,
        "{} is {:o} {}:{}",
        p.display(),
        md.mode() & 0o7777,
        md.uid(),
        md.gid()
    );
}

/// Remount `point` with exactly `flags` (a bind remount: per-mount flags).
fn remount(point: &str, flags: libc::c_ulong) {
    let c = CString::new(point).unwrap();
    // SAFETY: valid C strings or null, as mount(2) takes them.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        r,
        0,
        "remounting {point}: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn a_root_an_older_berthd_left_loose_is_tightened_at_start() {
    if !require::root("the data-at-rest tests") {
        return;
    }
    // Whole until the end: the env drops (uninstalling) before the catalog.
    let mut installed = install();
    let Installed { env, .. } = &mut installed;
    let root = env.berthd.root();
    let run = env.berthd.run_root();
    let front = paths(env, "hello-api-front-1");
    let volume = root.join("volumes/vault_data/_data");
    // What containers wrote, with modes of their own.
    env.ok(&[
        "exec",
        "hello-api-front-1",
        "sh",
        "-c",
        "mkdir /tmp/mine && chmod 0755 /tmp/mine && echo x > /tmp/mine/f && chmod 0644 /tmp/mine/f",
    ]);
    env.ok(&[
        "exec",
        "vault-web-1",
        "sh",
        "-c",
        "echo x > /www/data/f && chmod 0664 /www/data/f",
    ]);
    let data = [
        (front.upper.join("tmp"), 0o1777),
        (front.upper.join("tmp/mine"), 0o755),
        (front.upper.join("tmp/mine/f"), 0o644),
        (volume.join("f"), 0o664),
    ];
    for (p, want) in &data {
        assert_eq!(mode(p), *want, "{}", p.display());
    }

    // berthd stops (the apps keep running under their shims) and its roots
    // are made what an older berthd left.
    env.berthd.stop().unwrap();
    let loosen = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let dirs = own_dirs(&root, &run);
    for d in &dirs {
        loosen(d, 0o755);
    }
    loosen(&root, 0o711);
    loosen(&run, 0o711);
    let files = state_files(&root, &run);
    assert!(files.len() >= 14, "too few state files found: {files:?}");
    for f in &files {
        let log = f.file_name().is_some_and(|n| n == "log.json");
        loosen(f, if log { 0o640 } else { 0o644 });
    }
    let netns = run.join("netns").display().to_string();
    let mounts = berthd_mounts(env);
    assert!(mounts.len() >= 4, "{mounts:?}");
    for (point, _, _) in &mounts {
        // Root file systems were mounted nodev only, namespace files with
        // no flag at all.
        let flags = if point.starts_with(&netns) {
            0
        } else {
            libc::MS_NODEV
        };
        remount(point, flags);
    }
    assert!(berthd_mounts(env)
        .iter()
        .all(|(_, o, _)| !o.split(',').any(|x| x == "nosuid")));

    env.berthd.restart().unwrap();
    assert_private_dir(&root);
    assert_private_dir(&run);
    for d in &dirs {
        assert_private_dir(d);
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert_mounts_restricted(env, &[&front.rootfs]);
    // Nothing of the containers' was touched, and the apps still work.
    for (p, want) in &data {
        assert_eq!(mode(p), *want, "{} was changed", p.display());
    }
    env.ok(&["exec", "hello-api-front-1", "cat", "/tmp/mine/f"]);
    env.ok(&["exec", "vault-web-1", "cat", "/www/data/f"]);
}

#[test]
fn userns_auto_containers_pass_the_barrier_only_until_they_run() {
    if !require::root("the data-at-rest tests") {
        return;
    }
    let env = DemoEnv::shared().expect("a berthd with the demo catalog");
    let image = format!("{}/demo/busybox:latest", env.registry());
    env.ok(&["pull", &image]);
    let out = env.ok(&[
        "run",
        "--rm",
        "--userns=auto",
        &image,
        "sh",
        "-c",
        "id -u; umask; cat /etc/hostname >/dev/null && test -r /etc/hosts && ls / >/dev/null && echo ok",
    ]);
    assert_eq!(out, "0\n0022\nok\n");
    env.ok(&[
        "run", "-d", "--name", "userns-x", "--userns", "auto", &image, "sleep", "120",
    ]);
    assert_eq!(env.ok(&["exec", "userns-x", "id", "-u"]), "0\n");
    let c = paths(&env, "userns-x");
    let gid = group_gid(TRAVERSE_GROUP)
        .unwrap_or_else(|| panic!("group {TRAVERSE_GROUP} was not made for --userns=auto"));
    let root = env.berthd.root();
    let run = env.berthd.run_root();
    let id = c.dir.file_name().unwrap().to_owned();
    for d in [
        root.clone(),
        run.clone(),
        root.join("containers"),
        run.join("containers"),
        run.join("runtime"),
        c.dir.clone(),
        c.run_dir.clone(),
        c.run_dir.join("bundle"),
        run.join("runtime").join(&id),
    ] {
        let md = std::fs::metadata(&d).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (0, gid, 0o710),
            "{}",
            d.display()
        );
    }
    // Others still get nowhere.
    assert_unreachable(&nobody(), &c.rootfs, &c.rootfs.join("bin/busybox"));
    assert_unreachable(&nobody(), &c.dir, &c.dir.join("hosts"));
    // The container's processes no longer carry the group.
    let pid = inspect(&env, "userns-x")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(
        !groups.split_whitespace().any(|g| g == gid.to_string()),
        "the container runs with group {TRAVERSE_GROUP}: {groups}"
    );
    assert_mounts_restricted(&env, &[&c.rootfs]);
    env.ok(&["rm", "-f", "userns-x"]);
}
