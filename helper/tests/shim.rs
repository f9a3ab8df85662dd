//! berth-shim against a real OCI runtime (as root): logs, wait/exit.json,
//! attach, stdin, tty, rotation, surviving its parent's SIGKILL.
//!
//! The runtime is our own, driven in the shim's process with a sealed copy
//! handed down, as berthd does (also `BERTH_TEST_RUNTIME=berth`);
//! `BERTH_TEST_RUNTIME=cli` runs `berth-runtime`'s command line,
//! `BERTH_TEST_RUNTIME=runc` uses runc, any other value is taken as a
//! runtime binary's path. A few tests run the command line path whatever
//! the setting.
//! Bundles are busybox-static rootfs dirs with runc-style config.json files.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berthd::runtime::shim::{self, ExitInfo, ShimClient, ShimOptions, Status, Stream};
use serde_json::json;

static SEQ: AtomicUsize = AtomicUsize::new(0);

macro_rules! require_root {
    () => {
        if !berth_testkit::require::root("this test") {
            return;
        }
    };
}

/// Drive our own runtime in-process (as berthd does), unless the
/// environment asks for a runtime's command line.
fn builtin() -> bool {
    matches!(
        std::env::var("BERTH_TEST_RUNTIME").as_deref(),
        Err(_) | Ok("") | Ok("berth")
    )
}

fn runtime() -> PathBuf {
    match std::env::var("BERTH_TEST_RUNTIME").as_deref() {
        Ok("runc") => ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("runc is not installed (apt-get install runc)"),
        Ok(p) if !p.is_empty() && p != "berth" && p != "cli" => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")),
    }
}

/// One container run: temp dirs, bundle, shim options; everything (shim,
/// container, runtime state, cgroup) is torn down on drop, pass or fail.
struct Case {
    tmp: tempfile::TempDir,
    id: String,
    cgroup: String,
    opts: ShimOptions,
}

impl Case {
    fn new(args: &[&str], tty: bool) -> Self {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("berth-shim-test-{}-{n}", std::process::id());
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("bundle");
        make_rootfs(&bundle.join("rootfs"));
        let cgroup = format!("/berth-test/{id}");
        let config = config(args, tty, &cgroup, &id);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let mut opts = ShimOptions::new(
            id.clone(),
            &bundle,
            runtime(),
            tmp.path().join("runtime-root"),
            tmp.path().join("shim"),
            tmp.path().join("logs/container.log"),
        );
        opts.tty = tty;
        opts.shim_binary = Some(PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")));
        if builtin() {
            opts.builtin = true;
            opts.sealed_runtime = Some(std::sync::Arc::new(
                berthd::runtime::exe::sealed_copy(&opts.runtime).expect("sealed copy"),
            ));
        }
        Case {
            tmp,
            id,
            cgroup,
            opts,
        }
    }

    /// The container starts only once a client attached, as berthd asks
    /// when a client wants all of the output (`run` without `-d`).
    fn attached_first(mut self) -> Self {
        self.opts.wait_attach = true;
        self
    }

    /// Through `berth-runtime`'s command line, whatever the environment says.
    fn by_command_line(mut self) -> Self {
        self.opts.builtin = false;
        self.opts.sealed_runtime = None;
        self
    }

    fn spawn(&self) -> ShimClient {
        shim::spawn(&self.opts).expect("spawn the shim");
        ShimClient::connect(&self.opts.dir).expect("connect to the shim")
    }

    fn dir(&self) -> &Path {
        &self.opts.dir
    }

    fn lines(&self) -> Vec<(Stream, String)> {
        shim::read_logs(&self.opts.log, None)
            .unwrap()
            .into_iter()
            .map(|l| (l.stream, l.line))
            .collect()
    }

    fn pid_in(&self, file: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir().join(file)).ok()?;
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) if v.is_object() => v["pid"].as_i64().map(|p| p as i32),
            _ => text.trim().parse().ok(),
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if shim::alive(self.dir()) {
            if let Some(pid) = self.pid_in("shim.pid") {
                // SAFETY: kill(2) of the shim this test started (pid and
                // start time checked by `alive`).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new(&self.opts.runtime)
            .arg("--root")
            .arg(&self.opts.runtime_root)
            .args(["delete", "--force", &self.id])
            .stderr(std::process::Stdio::null())
            .status();
        // The runtime removes the cgroup; make sure, on every hierarchy.
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let p = e.path().join(self.cgroup.trim_start_matches('/'));
                let _ = std::fs::remove_dir(&p);
                let _ = std::fs::remove_dir(p.parent().unwrap());
            }
        }
        let _ = std::fs::remove_dir(
            Path::new("/sys/fs/cgroup").join(self.cgroup.trim_start_matches('/')),
        );
        let _ = &self.tmp;
    }
}

fn make_rootfs(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static is not installed (apt-get install busybox-static)");
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for app in ["sh", "echo", "cat", "sleep", "tty", "stty", "true", "seq"] {
        std::os::unix::fs::symlink("busybox", bin.join(app)).unwrap();
    }
}

/// What `runc spec` writes, with our args, terminal flag and cgroup.
fn config(args: &[&str], tty: bool, cgroups_path: &str, hostname: &str) -> serde_json::Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": hostname.chars().take(60).collect::<String>(),
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// `wait()` with a deadline, so a broken shim fails the test instead of
/// hanging it.
fn wait(client: &ShimClient, secs: u64) -> ExitInfo {
    let (tx, rx) = mpsc::channel();
    let c = client.clone();
    std::thread::spawn(move || {
        let _ = tx.send(c.wait());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the container did not exit in time")
        .expect("wait")
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

/// Reads `fd` to EOF on a thread.
fn read_to_end(fd: OwnedFd) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::fs::File::from(fd).read_to_end(&mut s);
        let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
    });
    rx
}

fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn output_goes_to_the_log_and_wait_returns_the_exit_code() {
    require_root!();
    output_and_exit_code(Case::new(
        &["sh", "-c", "echo hello; echo err >&2; exit 3"],
        false,
    ));
}

#[test]
fn the_runtime_command_line_gives_the_same_output_and_exit_code() {
    require_root!();
    if std::env::var("BERTH_TEST_RUNTIME").is_ok_and(|r| r == "runc") {
        eprintln!("skipped: this is about berth-runtime's command line");
        return;
    }
    output_and_exit_code(
        Case::new(&["sh", "-c", "echo hello; echo err >&2; exit 3"], false).by_command_line(),
    );
}

fn output_and_exit_code(case: Case) {
    let client = case.spawn();
    let exit = wait(&client, 20);
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, None);
    assert_eq!(exit.error, None);
    assert!(!exit.oom_killed);
    assert!(exit.finished_at.ends_with('Z'), "{}", exit.finished_at);
    assert_eq!(shim::read_exit(case.dir()).as_ref(), Some(&exit));

    let lines = case.lines();
    assert!(
        lines.contains(&(Stream::Stdout, "hello\n".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(Stream::Stderr, "err\n".into())),
        "{lines:?}"
    );
    // Docker's json-file format, byte for byte in its keys.
    let raw = std::fs::read_to_string(&case.opts.log).unwrap();
    let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert!(first["time"].as_str().unwrap().contains('T'));
    assert!(first["stream"].is_string() && first["log"].is_string());

    // The shim cleans up after itself: socket gone, process gone, the
    // runtime forgot the container.
    assert!(
        until(5, || !shim::alive(case.dir())),
        "the shim is still running"
    );
    assert!(!case.dir().join("shim.sock").exists());
    let state = Command::new(&case.opts.runtime)
        .arg("--root")
        .arg(&case.opts.runtime_root)
        .args(["state", &case.id])
        .output()
        .unwrap();
    assert!(
        !state.status.success(),
        "the runtime still knows the container"
    );
    // A late wait answers from exit.json.
    assert_eq!(client.wait().unwrap(), exit);
}

#[test]
fn a_missing_command_exits_127_with_the_runtimes_message() {
    require_root!();
    missing_command(Case::new(&["no-such-command"], false));
    missing_command(Case::new(&["no-such-command"], false).by_command_line());
}

fn missing_command(case: Case) {
    let client = case.spawn();
    let exit = wait(&client, 20);
    assert_eq!(exit.exit_code, 127, "{exit:?}");
    let err = exit.error.expect("an error message");
    assert!(err.contains("no-such-command"), "{err}");
}

#[test]
fn attach_gets_the_output_and_eof_at_exit() {
    require_root!();
    let case = Case::new(
        &["sh", "-c", "sleep 0.5; echo out; echo err >&2; echo more"],
        false,
    );
    let client = case.spawn();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    client.attach(out_w.as_fd(), err_w.as_fd(), None).unwrap();
    drop((out_w, err_w));
    let (out, err) = (read_to_end(out_r), read_to_end(err_r));
    assert_eq!(
        out.recv_timeout(Duration::from_secs(20)).unwrap(),
        "out\nmore\n"
    );
    assert_eq!(err.recv_timeout(Duration::from_secs(20)).unwrap(), "err\n");
    assert_eq!(wait(&client, 20).exit_code, 0);
    // The log got everything too.
    assert_eq!(case.lines().len(), 3);
}

#[test]
fn attached_stdin_reaches_the_container_and_its_eof_ends_it() {
    require_root!();
    let mut case = Case::new(&["cat"], false);
    case.opts.stdin = true;
    let client = case.spawn();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let (in_r, in_w) = pipe();
    client
        .attach(out_w.as_fd(), err_w.as_fd(), Some(in_r.as_fd()))
        .unwrap();
    drop((out_w, err_w, in_r));
    let out = read_to_end(out_r);
    let _err = read_to_end(err_r);
    let mut w = std::fs::File::from(in_w);
    w.write_all(b"hello stdin\nsecond line\n").unwrap();
    drop(w);
    assert_eq!(
        out.recv_timeout(Duration::from_secs(20)).unwrap(),
        "hello stdin\nsecond line\n"
    );
    assert_eq!(wait(&client, 20).exit_code, 0);
}

#[test]
fn logs_rotate_past_the_size_limit() {
    require_root!();
    let mut case = Case::new(
        &["sh", "-c", "for i in $(seq 0 299); do echo line $i; done"],
        false,
    );
    case.opts.log_max_bytes = 4000;
    let client = case.spawn();
    assert_eq!(wait(&client, 20).exit_code, 0);
    let log = &case.opts.log;
    let rotated = PathBuf::from(format!("{}.1", log.display()));
    assert!(rotated.exists(), "no {}", rotated.display());
    assert!(std::fs::metadata(log).unwrap().len() <= 4000);
    assert!(std::fs::metadata(&rotated).unwrap().len() <= 4000);
    let lines = case.lines();
    assert_eq!(lines.last().unwrap().1, "line 299\n");
    let first: usize = lines[0]
        .1
        .trim_start_matches("line ")
        .trim()
        .parse()
        .unwrap();
    assert!(first > 0, "older lines should have been rotated away");
    for (k, (_, l)) in lines.iter().enumerate() {
        assert_eq!(l, &format!("line {}\n", first + k));
    }
    let tail = shim::read_logs(log, Some(2)).unwrap();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[1].line, "line 299\n");
}

#[test]
fn the_shim_outlives_its_parent() {
    require_root!();
    let mut case = Case::new(&["sh", "-c", "sleep 1; echo done; exit 7"], false);
    // No fd to hand down through the shell: the shim copies the runtime.
    case.opts.sealed_runtime = None;
    // The parent stands in for berthd: it starts the shim, then is killed
    // with its whole process group.
    let script = "\"$0\" \"$@\" || exit 1; echo ready; exec sleep 1000";
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_berth-shim"))
        .args(case.opts.args())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    parent
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    let pgid = parent.id() as i32;
    // SAFETY: kill(2) of the process group this test just created.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    parent.wait().unwrap();
    assert!(shim::alive(case.dir()), "the shim died with its parent");

    assert!(
        until(20, || shim::read_exit(case.dir()).is_some()),
        "no exit.json"
    );
    let exit = shim::read_exit(case.dir()).unwrap();
    assert_eq!(exit.exit_code, 7);
    assert!(case.lines().contains(&(Stream::Stdout, "done\n".into())));
    assert!(until(5, || !shim::alive(case.dir())));
}

#[test]
fn sigkill_of_the_container_is_reported_as_signal_9() {
    require_root!();
    let case = Case::new(&["sleep", "100"], false);
    let client = case.spawn();
    assert!(until(10, || client.state().unwrap().status == Status::Running));
    let state = client.state().unwrap();
    let pid = state.pid.expect("the init's pid");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(case.dir().join("shim.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(Some(pid), case.pid_in("init.pid"));
    client.kill(libc::SIGKILL).unwrap();
    let exit = wait(&client, 20);
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)), "{exit:?}");
    assert!(
        client.kill(libc::SIGKILL).is_err(),
        "kill after exit must fail"
    );
}

#[test]
fn sigterm_to_the_shim_is_forwarded_and_the_shim_waits() {
    require_root!();
    // Pid 1 in its namespace only gets signals it handles: trap TERM.
    let case = Case::new(
        &[
            "sh",
            "-c",
            "trap 'echo got term; exit 143' TERM; while true; do sleep 0.1; done",
        ],
        false,
    );
    let client = case.spawn();
    assert!(until(10, || match client.state() {
        Ok(st) => st.status == Status::Running,
        Err(e) => panic!("{e}; the run ended: {:?}", shim::read_exit(case.dir())),
    }));
    std::thread::sleep(Duration::from_millis(200));
    let shim_pid = case.pid_in("shim.pid").unwrap();
    // SAFETY: kill(2) of the shim this test started.
    unsafe { libc::kill(shim_pid, libc::SIGTERM) };
    let exit = wait(&client, 20);
    assert_eq!(exit.exit_code, 143, "{exit:?}");
    assert!(case
        .lines()
        .contains(&(Stream::Stdout, "got term\n".into())));
}

#[test]
fn tty_mode_has_a_pty_that_resizes() {
    require_root!();
    let case = Case::new(
        &["sh", "-c", "tty; sleep 1; stty size; echo to-stderr >&2"],
        true,
    )
    .attached_first();
    let client = case.spawn();
    let (out_r, out_w) = pipe();
    let (_err_r, err_w) = pipe();
    client.attach(out_w.as_fd(), err_w.as_fd(), None).unwrap();
    drop((out_w, err_w));
    let out = read_to_end(out_r);
    client.resize(33, 111).unwrap();
    let text = out.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("33 111"), "{text:?}");
    assert!(text.contains("to-stderr"), "{text:?}");
    assert_eq!(wait(&client, 20).exit_code, 0);
    let lines = case.lines();
    assert!(lines.iter().all(|(s, _)| *s == Stream::Stdout), "{lines:?}");
    assert!(lines.iter().any(|(_, l)| l.contains("33 111")), "{lines:?}");
}

#[test]
fn a_bad_bundle_fails_the_spawn_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ShimOptions::new(
        "x",
        tmp.path().join("no-bundle"),
        "/bin/true",
        tmp.path().join("root"),
        tmp.path().join("shim"),
        tmp.path().join("log"),
    );
    opts.shim_binary = Some(PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")));
    let err = shim::spawn(&opts).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn a_client_that_does_not_read_does_not_stall_the_container() {
    require_root!();
    // About 1.9 MB of output: more than a pipe and the 1 MiB backlog hold.
    let mut case = Case::new(&["sh", "-c", "seq 1 300000; echo end >&2"], false).attached_first();
    case.opts.log_max_bytes = 1 << 30;
    let client = case.spawn();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    client.attach(out_w.as_fd(), err_w.as_fd(), None).unwrap();
    drop((out_w, err_w));
    let exit = wait(&client, 30);
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    let lines = case.lines();
    assert_eq!(lines.len(), 300_001);
    assert_eq!(lines[299_999].1, "300000\n");
    // The stalled reader was dropped: its pipe is at EOF after what fitted.
    let out = read_to_end(out_r);
    let got = out.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(got.len() < 1_900_000, "{}", got.len());
    assert_eq!(
        read_to_end(err_r)
            .recv_timeout(Duration::from_secs(10))
            .unwrap(),
        "end\n"
    );
}

#[test]
fn a_spare_shim_takes_a_container_later_and_holds_no_stray_fds() {
    require_root!();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_berth-shim"));
    // A pipe whose write end leaks into the spare (not close-on-exec), as a
    // client's pipe received over D-Bus can in berthd: the spare must not
    // keep it open, or the client never sees end-of-file.
    let (leak_r, leak_w) = pipe();
    rustix::io::fcntl_setfd(&leak_w, rustix::io::FdFlags::empty()).unwrap();
    let spare = shim::spawn_spare(&bin).expect("start a spare");
    drop(leak_w);
    let eof = read_to_end(leak_r);
    assert_eq!(
        eof.recv_timeout(Duration::from_secs(10)).unwrap(),
        "",
        "the spare holds a stray copy of the pipe"
    );

    let case = Case::new(&["sh", "-c", "echo from-spare; exit 4"], false);
    let info = spare.assign(&case.opts).expect("assign the spare");
    assert!(shim::alive(case.dir()));
    assert_eq!(case.pid_in("shim.pid"), Some(info.pid));
    let client = ShimClient::connect(case.dir()).unwrap();
    let exit = wait(&client, 20);
    assert_eq!(exit.exit_code, 4, "{exit:?}");
    assert!(case
        .lines()
        .contains(&(Stream::Stdout, "from-spare\n".into())));

    // An unassigned spare goes away with its owner's end of the socket.
    let spare = shim::spawn_spare(&bin).expect("start another spare");
    let pid = spare.pid();
    let running = || {
        // A zombie (exited, not yet reaped by init) has an empty cmdline.
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
    };
    assert!(running(), "the spare {pid} is not running");
    drop(spare);
    assert!(
        until(10, || !running()),
        "the spare outlived its control socket"
    );
}

#[test]
fn a_held_start_goes_ahead_when_no_client_comes() {
    require_root!();
    // The client that asked to attach first never does (berthd died, say):
    // after the grace the container runs detached, its output in the log.
    let mut case = Case::new(&["sh", "-c", "echo nobody listened"], false).attached_first();
    case.opts.attach_grace_secs = 1;
    let client = case.spawn();
    let exit = wait(&client, 20);
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    assert!(case
        .lines()
        .contains(&(Stream::Stdout, "nobody listened\n".into())));
}
