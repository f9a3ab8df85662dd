use super::docker_default::arg;
use super::*;

const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

fn arch() -> u32 {
    native_audit_arch().unwrap()
}

fn nr(name: &str) -> i64 {
    syscall_number(name).unwrap_or_else(|| panic!("{name} has no number here"))
}

fn run(prog: &[sock_filter], name: &str, args: [u64; 6]) -> u32 {
    evaluate(prog, arch(), nr(name), args)
}

fn docker() -> BpfProgram {
    compile(&docker_default()).expect("Docker's profile compiles")
}

#[test]
fn docker_profile_compiles_within_kernel_limits() {
    let prog = docker();
    assert!(prog.len() < MAX_INSNS, "{} instructions", prog.len());
}

#[test]
fn docker_profile_allows_what_a_shell_needs() {
    let prog = docker();
    for name in [
        "read",
        "write",
        "openat",
        "close",
        "execve",
        "exit_group",
        "mmap",
        "brk",
        "wait4",
        "rt_sigaction",
        "getdents64",
        "newfstatat",
        "uname",
        "nanosleep",
        "kill",
        "setresuid",
        "setgroups",
        "capset",
        "prctl",
        "ioctl",
        "pipe2",
        "dup3",
        "chroot",
        "ptrace",
        "process_vm_readv",
        "seccomp",
        "statx",
        "getrandom",
        "connect",
        "sendto",
    ] {
        assert_eq!(
            run(&prog, name, [0; 6]),
            RET_ALLOW,
            "{name} should be allowed"
        );
    }
    #[cfg(target_arch = "x86_64")]
    for name in [
        "open",
        "stat",
        "fork",
        "vfork",
        "arch_prctl",
        "poll",
        "select",
    ] {
        assert_eq!(
            run(&prog, name, [0; 6]),
            RET_ALLOW,
            "{name} should be allowed"
        );
    }
}

#[test]
fn docker_profile_denies_privileged_calls_with_eperm() {
    let prog = docker();
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "pivot_root",
        "keyctl",
        "add_key",
        "request_key",
        "reboot",
        "swapon",
        "swapoff",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "open_by_handle_at",
        "acct",
        "settimeofday",
        "clock_settime",
        "sethostname",
        "setdomainname",
        "syslog",
        "kcmp",
        "pidfd_getfd",
        "mbind",
        "fsopen",
        "move_mount",
        "open_tree",
        "io_uring_setup",
        "quotactl",
        "vhangup",
        "lookup_dcookie",
        "fanotify_init",
    ] {
        assert_eq!(run(&prog, name, [0; 6]), EPERM, "{name} should be denied");
    }
    #[cfg(target_arch = "x86_64")]
    for name in ["iopl", "ioperm", "uselib", "_sysctl"] {
        assert_eq!(run(&prog, name, [0; 6]), EPERM, "{name} should be denied");
    }
}

#[test]
fn clone_is_allowed_only_without_namespace_flags() {
    let prog = docker();
    let fork_flags = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
    let thread_flags = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    assert_eq!(run(&prog, "clone", [fork_flags, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(&prog, "clone", [thread_flags, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    for ns in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWCGROUP,
    ] {
        let flags = fork_flags | ns as u64;
        assert_eq!(
            run(&prog, "clone", [flags, 0, 0, 0, 0, 0]),
            EPERM,
            "clone({ns:#x})"
        );
    }
    // Namespace flags in the upper half of the argument do not sneak past.
    assert_eq!(
        run(
            &prog,
            "clone",
            [fork_flags | (libc::CLONE_NEWUSER as u64), 0, 0, 0, 0, 0]
        ),
        EPERM
    );
    assert_eq!(run(&prog, "clone3", [0; 6]), ENOSYS);
}

#[test]
fn personality_and_socket_arguments() {
    let prog = docker();
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            run(&prog, "personality", [persona, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }
    // ADDR_NO_RANDOMIZE is not among Docker's personas.
    assert_eq!(run(&prog, "personality", [0x0040000, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&prog, "personality", [1 << 32, 0, 0, 0, 0, 0]), EPERM);

    for family in [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
    ] {
        assert_eq!(
            run(&prog, "socket", [family as u64, 1, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }
    assert_eq!(
        run(&prog, "socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]),
        EPERM
    );
}

#[test]
fn foreign_abis_are_refused() {
    let prog = docker();
    // i386 (int 0x80) calls arrive with another audit arch.
    assert_eq!(evaluate(&prog, 0x4000_0003, 11, [0; 6]), RET_KILL_PROCESS);
    #[cfg(target_arch = "x86_64")]
    {
        // x32 mount: number with the x32 bit, same audit arch.
        assert_eq!(evaluate(&prog, arch(), 0x4000_0000 + 165, [0; 6]), EPERM);
        // Even a profile that allows everything does not let x32 through.
        let mut allow_all = LinuxSeccomp::default();
        allow_all.set_default_action(LinuxSeccompAction::ScmpActAllow);
        let prog = compile(&allow_all).unwrap();
        assert_eq!(evaluate(&prog, arch(), 0x4000_0000 + 165, [0; 6]), EPERM);
        assert_eq!(evaluate(&prog, arch(), 165, [0; 6]), RET_ALLOW);
    }
}

fn syscall(
    names: &[&str],
    action: LinuxSeccompAction,
    args: Vec<LinuxSeccompArg>,
) -> oci_spec::runtime::LinuxSyscall {
    let mut rule = oci_spec::runtime::LinuxSyscall::default();
    rule.set_names(names.iter().map(|n| n.to_string()).collect());
    rule.set_action(action);
    if !args.is_empty() {
        rule.set_args(Some(args));
    }
    rule
}

#[test]
fn deny_list_profile_with_errno_kill_and_argument_rules() {
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActAllow);
    let mut eacces = syscall(&["mkdirat"], LinuxSeccompAction::ScmpActErrno, vec![]);
    eacces.set_errno_ret(Some(libc::EACCES as u32));
    profile.set_syscalls(Some(vec![
        eacces,
        syscall(
            &["reboot", "not_a_syscall"],
            LinuxSeccompAction::ScmpActKillProcess,
            vec![],
        ),
        // Same index twice: OR (runc's rule) — write to fd 1 or fd 2 is logged.
        syscall(
            &["write"],
            LinuxSeccompAction::ScmpActLog,
            vec![
                arg(0, 1, None, LinuxSeccompOperator::ScmpCmpEq),
                arg(0, 2, None, LinuxSeccompOperator::ScmpCmpEq),
            ],
        ),
        // Different indexes: AND — read of fd ≥ 100 with count < 10 traps.
        syscall(
            &["read"],
            LinuxSeccompAction::ScmpActTrap,
            vec![
                arg(0, 100, None, LinuxSeccompOperator::ScmpCmpGe),
                arg(2, 10, None, LinuxSeccompOperator::ScmpCmpLt),
            ],
        ),
    ]));
    let prog = compile(&profile).unwrap();
    assert_eq!(
        run(&prog, "mkdirat", [0; 6]),
        RET_ERRNO | libc::EACCES as u32
    );
    assert_eq!(run(&prog, "reboot", [0; 6]), RET_KILL_PROCESS);
    assert_eq!(run(&prog, "write", [1, 0, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(run(&prog, "write", [2, 0, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(run(&prog, "write", [3, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&prog, "read", [100, 0, 5, 0, 0, 0]), RET_TRAP);
    assert_eq!(run(&prog, "read", [100, 0, 50, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&prog, "read", [99, 0, 5, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&prog, "openat", [0; 6]), RET_ALLOW);
}

#[test]
fn notify_and_bad_arguments_are_refused() {
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActNotify);
    assert!(matches!(compile(&profile), Err(Error::Unsupported(_))));

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_syscalls(Some(vec![syscall(
        &["read"],
        LinuxSeccompAction::ScmpActAllow,
        vec![arg(6, 0, None, LinuxSeccompOperator::ScmpCmpEq)],
    )]));
    let err = compile(&profile).unwrap_err();
    assert!(err.to_string().contains("argument index 6"), "{err}");
}

#[test]
fn docker_lists_have_no_duplicates_and_omit_dangerous_calls() {
    let mut names: Vec<_> = ALLOWED.iter().chain(ALLOWED_ARCH).collect();
    let len = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), len);
    for dangerous in [
        "mount",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "bpf",
        "perf_event_open",
        "open_by_handle_at",
        "kexec_load",
        "init_module",
        "reboot",
        "swapon",
        "pivot_root",
        "clone",
        "clone3",
        "socket",
        "personality",
        "io_uring_setup",
    ] {
        assert!(
            !ALLOWED.contains(&dangerous),
            "{dangerous} must not be allowed unconditionally"
        );
    }
}

#[test]
fn docker_profile_round_trips_through_config_json() {
    let profile = docker_default();
    let json = serde_json::to_string(&profile).unwrap();
    assert!(
        json.contains("\"defaultAction\":\"SCMP_ACT_ERRNO\""),
        "{json}"
    );
    assert!(json.contains("SCMP_CMP_MASKED_EQ"));
    let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
    assert_eq!(back, profile);
}
