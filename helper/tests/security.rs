//! `security::finalize` for real (root): a child process applies a
//! container's rlimits, user, capabilities, no_new_privs and Docker's
//! seccomp profile, execs busybox, and busybox reports what it got.
//!
//! The child is this test binary again (`/proc/self/exe`), started with
//! `BERTH_SECURITY_CHILD` naming the scenario and run with `--exact
//! finalize_child`: that test calls `finalize` and execs busybox from the
//! thread it runs on (finalize acts on the calling thread, and execve hands
//! that thread's credentials on).

use std::ffi::CString;
use std::process::Command;

use berthd::runtime::{seccomp, security};
use oci_spec::runtime::{
    Capabilities, LinuxCapabilitiesBuilder, PosixRlimitBuilder, PosixRlimitType, Process,
    ProcessBuilder, UserBuilder,
};

const BUSYBOX: &str = "/bin/busybox";
const SCENARIO: &str = "BERTH_SECURITY_CHILD";
const SCRIPT: &str = "BERTH_SECURITY_SCRIPT";

/// What every scenario prints: the kernel's view of the process, then ids.
const REPORT: &str = r#"busybox grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
echo "uid=$(busybox id -u) gid=$(busybox id -g) groups=$(busybox id -G)"
echo "nofile=$(ulimit -n)/$(ulimit -Hn)"
busybox unshare -U true 2>/dev/null && echo unshare-user=ok || echo unshare-user=denied
busybox mount -t tmpfs berth-test /mnt 2>/dev/null && echo mount=ok || echo mount=denied
busybox swapon /dev/null 2>/dev/null && echo swapon=ok || echo swapon=denied
busybox sh -c 'echo fork-ok'
"#;

fn process(uid: u32, no_new_privs: bool, hard_nofile: u64) -> Process {
    let caps: Capabilities = security::docker_default_capabilities()
        .into_iter()
        .collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .unwrap();
    let user = UserBuilder::default()
        .uid(uid)
        .gid(uid)
        .additional_gids(vec![uid, 4242])
        .build()
        .unwrap();
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(100u64)
        .hard(hard_nofile)
        .build()
        .unwrap();
    ProcessBuilder::default()
        .user(user)
        .capabilities(capabilities)
        .no_new_privileges(no_new_privs)
        .rlimits(vec![nofile])
        .args(vec!["sh".to_string()])
        .cwd("/")
        .build()
        .unwrap()
}

/// Not a test of its own: the body of the child process.
#[test]
fn finalize_child() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let script = std::env::var(SCRIPT).unwrap();
    let (process, seccomp) = match scenario.as_str() {
        // A high hard limit asks for more than the current one: clamped.
        "docker" => (
            process(65534, true, u64::MAX),
            Some(seccomp::docker_default()),
        ),
        "docker-root-privs" => (process(0, false, 200), Some(seccomp::docker_default())),
        "no-seccomp" => (process(65534, true, 200), None),
        other => panic!("unknown scenario {other}"),
    };
    if let Err(e) = security::finalize(&process, seccomp.as_ref()) {
        eprintln!("finalize failed: {e}");
        std::process::exit(99);
    }
    let argv: Vec<CString> = ["busybox", "sh", "-c", &script]
        .iter()
        .map(|a| CString::new(*a).unwrap())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let path = CString::new(BUSYBOX).unwrap();
    // SAFETY: NUL-terminated strings and argv array, alive for the call.
    unsafe { libc::execv(path.as_ptr(), ptrs.as_ptr()) };
    eprintln!("execv {BUSYBOX}: {}", std::io::Error::last_os_error());
    std::process::exit(98);
}

/// Runs a scenario; returns `key: value` / `key=value` lines it printed.
fn run(scenario: &str) -> std::collections::HashMap<String, String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "finalize_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .env(SCRIPT, REPORT)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario}: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let mut map = std::collections::HashMap::new();
    for line in stdout.lines() {
        if let Some((k, v)) = line
            .split_once(':')
            .filter(|(k, _)| k.starts_with("Cap") || *k == "NoNewPrivs" || *k == "Seccomp")
        {
            map.insert(k.to_string(), v.trim().to_string());
        } else if let Some((k, v)) = line.split_once('=') {
            map.insert(k.to_string(), v.to_string());
        }
    }
    map.insert("stdout".into(), stdout.into_owned());
    map
}

const DOCKER_CAPS: &str = "00000000a80425fb";

#[test]
fn docker_defaults_for_an_unprivileged_user() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    let r = run("docker");
    let all = &r["stdout"];
    // A non-root user keeps no effective or permitted capabilities across
    // execve (no ambient set), but the bounding set is Docker's.
    assert_eq!(r["CapEff"], "0000000000000000", "{all}");
    assert_eq!(r["CapPrm"], "0000000000000000", "{all}");
    assert_eq!(r["CapBnd"], DOCKER_CAPS, "{all}");
    assert_eq!(r["CapAmb"], "0000000000000000", "{all}");
    assert_eq!(r["NoNewPrivs"], "1", "{all}");
    assert_eq!(r["Seccomp"], "2", "{all}");
    assert!(
        all.contains("uid=65534 gid=65534 groups=65534 4242"),
        "{all}"
    );
    // The hard limit asked for (unlimited) is lowered to the current one.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .map_or("unlimited".to_string(), |h| h.to_string());
    assert_eq!(r["nofile"], format!("100/{hard}"), "{all}");
    assert_eq!(r["unshare-user"], "denied", "{all}");
    assert_eq!(r["mount"], "denied", "{all}");
    assert_eq!(r["swapon"], "denied", "{all}");
    assert!(all.contains("fork-ok"), "{all}");
}

#[test]
fn docker_defaults_for_root_without_no_new_privs() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    // Seccomp goes in before the capabilities are cut (it needs
    // CAP_SYS_ADMIN without no_new_privs); root keeps Docker's set.
    let r = run("docker-root-privs");
    let all = &r["stdout"];
    assert_eq!(r["CapEff"], DOCKER_CAPS, "{all}");
    assert_eq!(r["CapPrm"], DOCKER_CAPS, "{all}");
    assert_eq!(r["CapBnd"], DOCKER_CAPS, "{all}");
    assert_eq!(r["NoNewPrivs"], "0", "{all}");
    assert_eq!(r["Seccomp"], "2", "{all}");
    assert!(all.contains("uid=0 gid=0 groups=0 4242"), "{all}");
    assert_eq!(r["nofile"], "100/200", "{all}");
    // Root in the container, but no CAP_SYS_ADMIN and the filter: denied.
    assert_eq!(r["unshare-user"], "denied", "{all}");
    assert_eq!(r["mount"], "denied", "{all}");
    assert!(all.contains("fork-ok"), "{all}");
}

#[test]
fn without_seccomp_the_same_user_may_unshare() {
    if !berth_testkit::require::root("this test") {
        return;
    }
    // The control for the tests above: the denial of unshare(CLONE_NEWUSER)
    // there comes from the filter, not from the lack of capabilities.
    let r = run("no-seccomp");
    let all = &r["stdout"];
    assert_eq!(r["Seccomp"], "0", "{all}");
    assert_eq!(r["NoNewPrivs"], "1", "{all}");
    let userns_allowed = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    if userns_allowed {
        assert_eq!(r["unshare-user"], "ok", "{all}");
    }
    assert_eq!(r["mount"], "denied", "{all}");
}
