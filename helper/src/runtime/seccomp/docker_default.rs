//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`),
//! written out in Rust.
//!
//! Docker's JSON carries conditions that its daemon resolves when it creates
//! a container: `includes`/`excludes` on capabilities, architectures and a
//! minimum kernel. Berth always starts containers with Docker's default
//! capability set (see `security::docker_default_capabilities`), so those
//! conditions are folded here once, for that set, for the architecture Berth
//! is built for, and for kernels ≥ 4.8:
//!
//! - `ptrace`, `process_vm_readv`, `process_vm_writev` are allowed (Docker
//!   allows them from kernel 4.8, where ptrace can no longer bypass seccomp);
//! - everything Docker gates behind a capability outside the default set is
//!   left out, so the default action (EPERM) denies it: `mount`, `umount2`,
//!   `unshare`, `setns`, `sethostname`, `bpf`, `perf_event_open`, `reboot`,
//!   `init_module`, `kexec_load`, `acct`, `settimeofday`, `open_by_handle_at`,
//!   `kcmp`, `pidfd_getfd`, `iopl`, `mbind`, `syslog`, `vhangup`, …;
//! - without CAP_SYS_ADMIN, `clone` is allowed only without namespace flags
//!   and `clone3` fails with ENOSYS so libcs fall back to `clone`;
//! - `chroot` is allowed (CAP_SYS_CHROOT is in the default set).
//!
//! Calls the profile never lists (`keyctl`, `add_key`, `request_key`,
//! `userfaultfd`, `swapon`, `pivot_root`, `io_uring_*`, `uselib`, …) are
//! denied by the default action, as in Docker.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall,
};

/// Docker's default errno for denied calls: EPERM.
const EPERM: u32 = libc::EPERM as u32;

/// The unconditional allow list of Docker's profile, minus `socket` (allowed
/// below for every family but AF_VSOCK) and `personality` (allowed below
/// for a few personas). Names this architecture lacks are skipped when the
/// profile is compiled, as libseccomp skips them.
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Allowed from kernel 4.8 on (ptrace no longer bypasses seccomp there).
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    // CAP_SYS_CHROOT is in the default set.
    "chroot",
];

/// Calls allowed only for the architectures Berth runs on (Docker's
/// `includes.arches` rules).
#[cfg(target_arch = "x86_64")]
pub const ALLOWED_ARCH: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
pub const ALLOWED_ARCH: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const ALLOWED_ARCH: &[&str] = &[];

/// `personality(2)` personas Docker allows: PER_LINUX, UNAME26,
/// PER_LINUX32, UNAME26|PER_LINUX32, and 0xffffffff (query).
pub const PERSONAS: &[u64] = &[0x0, 0x0002_0000, 0x0000_0008, 0x0002_0008, 0xffff_ffff];

/// clone(2) flags that create namespaces: CLONE_NEWNS | NEWCGROUP | NEWUTS |
/// NEWIPC | NEWUSER | NEWPID | NEWNET (Docker's 2114060288).
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// AF_VSOCK: containers must not reach the host's or other VMs' vsock.
pub const AF_VSOCK: u64 = 40;

/// Docker's default profile for the architecture Berth is built for.
pub fn docker_default() -> LinuxSeccomp {
    let mut syscalls = vec![
        allow(ALLOWED.iter().chain(ALLOWED_ARCH), None),
        allow(
            ["socket"].iter(),
            Some(vec![arg(
                0,
                AF_VSOCK,
                None,
                LinuxSeccompOperator::ScmpCmpNe,
            )]),
        ),
        // Without CAP_SYS_ADMIN: clone only without namespace flags (the
        // flags are argument 0 on x86_64 and aarch64; s390 swaps them).
        allow(
            ["clone"].iter(),
            Some(vec![arg(
                0,
                CLONE_NAMESPACE_FLAGS,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )]),
        ),
    ];
    // One rule per persona: a rule's arguments are AND-ed, rules are OR-ed.
    for persona in PERSONAS {
        syscalls.push(allow(
            ["personality"].iter(),
            Some(vec![arg(
                0,
                *persona,
                None,
                LinuxSeccompOperator::ScmpCmpEq,
            )]),
        ));
    }
    // clone3's flags live in memory seccomp cannot read: make it look
    // unimplemented so glibc and musl fall back to the filtered clone.
    let mut clone3 = LinuxSyscall::default();
    clone3.set_names(vec!["clone3".to_string()]);
    clone3.set_action(LinuxSeccompAction::ScmpActErrno);
    clone3.set_errno_ret(Some(libc::ENOSYS as u32));
    syscalls.push(clone3);

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    profile.set_architectures(Some(architectures()));
    profile.set_syscalls(Some(syscalls));
    profile
}

/// Docker's `archMap` entry for this architecture: the native one and the
/// ABIs the kernel runs beside it (Berth's own compiler filters the native
/// one; runc or crun given the same bundle also filter the others).
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn allow<'a>(
    names: impl Iterator<Item = &'a &'a str>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.map(|n| n.to_string()).collect());
    rule.set_action(LinuxSeccompAction::ScmpActAllow);
    rule.set_args(args);
    rule
}

pub(super) fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let builder = oci_spec::runtime::LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    match value_two {
        Some(two) => builder.value_two(two),
        None => builder,
    }
    .build()
    .expect("every field of a seccomp argument has a value")
}
