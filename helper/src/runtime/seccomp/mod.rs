//! Seccomp: Docker's default profile, and compiling an OCI `linux.seccomp`
//! section to a classic-BPF program the kernel runs on every syscall.
//!
//! runc and crun hand OCI profiles to libseccomp. Berth has no C
//! dependencies, so it compiles them itself, with seccompiler's types and its
//! argument comparisons (`SeccompRule` → BPF) inside a skeleton of our own:
//! seccompiler's `SeccompFilter` gives one filter a single match action, and
//! an OCI profile needs one action per rule (Docker's: allow most calls,
//! ENOSYS for `clone3`, EPERM for everything else).
//!
//! The program:
//!
//! ```text
//!   load arch;  arch != native          → KILL_PROCESS
//!   load nr;    nr has the x32 bit      → default action (or EPERM) [x86_64]
//!   nr == N1 ?  rule 1 of N1 matches    → its action
//!               rule 2 …                → its action
//!               none                    → default action
//!   nr == N2 ?  …
//!   otherwise                           → default action
//! ```
//!
//! Rules of one syscall are tried in profile order, conditional rules before
//! unconditional ones (libseccomp's precedence: an argument match is more
//! specific than a bare name). Syscall names this architecture does not have
//! are skipped, as libseccomp does, so one profile serves every architecture.
//!
//! Limits, on purpose: only the native ABI is filtered. 32-bit (i386, arm)
//! binaries inside a container are killed at their first syscall rather than
//! run unfiltered, and x32 calls get the default action. `SCMP_ACT_NOTIFY`
//! (a user-space supervisor answering syscalls) is refused.

mod docker_default;
mod syscalls;

pub use docker_default::{docker_default, ALLOWED, ALLOWED_ARCH};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};
use seccompiler::{
    sock_filter, BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile asks for something Berth's compiler does not do.
    #[error("the seccomp profile is not supported: {0}; remove that rule or use Docker's default profile")]
    Unsupported(String),
    /// A rule's argument comparison is malformed.
    #[error("the seccomp rule for `{syscall}` has a bad argument comparison: {reason}")]
    BadArgument { syscall: String, reason: String },
    /// The compiled program is longer than the kernel accepts.
    #[error("the seccomp profile compiles to {0} BPF instructions, more than the kernel's limit of 4096; shorten the profile")]
    TooLarge(usize),
    /// seccomp(2) refused the program.
    #[error("cannot install the seccomp filter: {0} (without no_new_privs this needs CAP_SYS_ADMIN; check that the kernel has CONFIG_SECCOMP_FILTER)")]
    Install(#[source] std::io::Error),
}

/// This module's result.
pub type Result<T> = std::result::Result<T, Error>;

/// The kernel's limit on one classic-BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

// Return values (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_DATA: u32 = 0x0000_ffff;

/// x32 syscalls are numbered from here on x86_64 (`__X32_SYSCALL_BIT`).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// AUDIT_ARCH_* of the architecture Berth is built for.
fn native_audit_arch() -> Result<u32> {
    if cfg!(target_arch = "x86_64") {
        Ok(0xC000_003E)
    } else if cfg!(target_arch = "aarch64") {
        Ok(0xC000_00B7)
    } else {
        Err(Error::Unsupported(format!(
            "seccomp on {} (Berth knows x86_64 and aarch64)",
            std::env::consts::ARCH
        )))
    }
}

/// The number of a syscall on this architecture, `None` if it has none.
pub fn syscall_number(name: &str) -> Option<i64> {
    syscalls::number(name)
}

/// Compiles an OCI seccomp profile to a BPF program for this architecture.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<BpfProgram> {
    let default = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "the default action",
    )?;
    if seccomp.listener_path().is_some() {
        return Err(Error::Unsupported(
            "a seccomp notify listener (listenerPath)".into(),
        ));
    }
    if let Some(flags) = seccomp.flags() {
        if !flags.is_empty() {
            tracing::debug!(?flags, "seccomp filter flags are not applied");
        }
    }

    let table = rule_table(seccomp, default)?;

    let mut prog = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, native_audit_arch()?, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        // x32 calls share x86_64's audit arch; give them the default action,
        // and never let them through a deny-list profile unfiltered.
        let x32 = if default == RET_ALLOW || default == RET_LOG {
            RET_ERRNO | libc::EPERM as u32
        } else {
            default
        };
        prog.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(stmt(BPF_RET_K, x32));
    }

    for (nr, rules) in table {
        let mut block = Vec::new();
        let mut terminated = false;
        for rule in rules {
            match rule.conditions {
                Some(conditions) => {
                    let compiled =
                        SeccompRule::new(conditions).map_err(|e| Error::BadArgument {
                            syscall: rule.name.clone(),
                            reason: e.to_string(),
                        })?;
                    let bpf: BpfProgram = compiled.into();
                    // A failed comparison jumps just past this rule's return.
                    block.extend(bpf);
                    block.push(stmt(BPF_RET_K, rule.action));
                }
                None => {
                    block.push(stmt(BPF_RET_K, rule.action));
                    terminated = true;
                    break;
                }
            }
        }
        if !terminated {
            block.push(stmt(BPF_RET_K, default));
        }
        let nr =
            u32::try_from(nr).map_err(|_| Error::Unsupported(format!("syscall number {nr}")))?;
        match u8::try_from(block.len()) {
            Ok(len) => prog.push(jump(BPF_JMP_JEQ_K, nr, 0, len)),
            Err(_) => {
                prog.push(jump(BPF_JMP_JEQ_K, nr, 1, 0));
                prog.push(stmt(BPF_JMP_JA, block.len() as u32));
            }
        }
        prog.extend(block);
    }
    prog.push(stmt(BPF_RET_K, default));

    if prog.len() > MAX_INSNS {
        return Err(Error::TooLarge(prog.len()));
    }
    Ok(prog)
}

/// Installs `prog` on the calling thread with seccomp(2).
///
/// Unlike `seccompiler::apply_filter`, this does not set no_new_privs: the
/// OCI `noNewPrivileges` setting decides that (see `security::finalize`).
/// Without no_new_privs the kernel wants CAP_SYS_ADMIN.
pub fn install(prog: &BpfProgram) -> Result<()> {
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const sock_filter,
    }
    let len = libc::c_ushort::try_from(prog.len())
        .ok()
        .filter(|len| *len > 0 && usize::from(*len) <= MAX_INSNS)
        .ok_or(Error::TooLarge(prog.len()))?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies
    // the program and keeps no pointer to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &fprog as *const SockFprog,
        )
    };
    if rc != 0 {
        return Err(Error::Install(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// One rule of one syscall, ready to emit.
#[derive(Debug)]
struct Rule {
    name: String,
    /// `None`: matches on the name alone.
    conditions: Option<Vec<SeccompCondition>>,
    action: u32,
}

/// Resolves names and groups the profile's rules by syscall number, in
/// number order; per syscall, conditional rules first.
fn rule_table(
    seccomp: &LinuxSeccomp,
    default: u32,
) -> Result<std::collections::BTreeMap<i64, Vec<Rule>>> {
    let mut table: std::collections::BTreeMap<i64, Vec<Rule>> = Default::default();
    for syscall in seccomp.syscalls().iter().flatten() {
        let names = syscall.names().join(",");
        let action = action(syscall.action(), syscall.errno_ret(), &names)?;
        if action == default {
            // libseccomp refuses rules that repeat the default action; they
            // change nothing, so skip them as runc does.
            continue;
        }
        let condition_sets = match syscall.args() {
            Some(args) if !args.is_empty() => condition_sets(args, &names)?,
            _ => vec![],
        };
        for name in syscall.names() {
            let Some(nr) = syscalls::number(name) else {
                tracing::trace!(syscall = %name, "not a syscall on this architecture; rule skipped");
                continue;
            };
            let rules = table.entry(nr).or_default();
            if condition_sets.is_empty() {
                rules.push(Rule {
                    name: name.clone(),
                    conditions: None,
                    action,
                });
            } else {
                rules.extend(condition_sets.iter().map(|conditions| Rule {
                    name: name.clone(),
                    conditions: Some(conditions.clone()),
                    action,
                }));
            }
        }
    }
    for rules in table.values_mut() {
        // Stable: profile order within each kind.
        rules.sort_by_key(|rule| rule.conditions.is_none());
    }
    Ok(table)
}

/// A rule's arguments as BPF condition sets, OR-ed. All arguments of one
/// rule are AND-ed, unless two compare the same argument: then, as runc does
/// for libseccomp, each becomes its own rule (OR).
fn condition_sets(args: &[LinuxSeccompArg], names: &str) -> Result<Vec<Vec<SeccompCondition>>> {
    let conditions = args
        .iter()
        .map(|arg| condition(arg, names))
        .collect::<Result<Vec<_>>>()?;
    let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() == args.len() {
        Ok(vec![conditions])
    } else {
        Ok(conditions.into_iter().map(|c| vec![c]).collect())
    }
}

fn condition(arg: &LinuxSeccompArg, names: &str) -> Result<SeccompCondition> {
    let bad = |reason: String| Error::BadArgument {
        syscall: names.to_string(),
        reason,
    };
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| {
            bad(format!(
                "argument index {} (syscalls have arguments 0 to 5)",
                arg.index()
            ))
        })?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        // OCI: `value` is the mask, `valueTwo` the expected masked value.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    // Whole 64-bit comparisons, as libseccomp does on 64-bit architectures.
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(|e| bad(e.to_string()))
}

/// The kernel's return value for an OCI action.
fn action(action: LinuxSeccompAction, errno_ret: Option<u32>, what: &str) -> Result<u32> {
    let data = errno_ret.unwrap_or(libc::EPERM as u32) & RET_DATA;
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Unsupported(format!("SCMP_ACT_NOTIFY for {what}")))
        }
    })
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Runs a seccomp BPF program on one syscall, as the kernel would, so tests
/// can ask "what happens to `mount`?" without installing anything. Knows
/// the instructions `compile` emits.
#[cfg(test)]
pub(crate) fn evaluate(prog: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&(nr as i32).to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for arg in args {
        data.extend_from_slice(&arg.to_ne_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let insn = &prog[pc];
        pc += 1;
        match insn.code {
            BPF_LD_W_ABS => {
                let k = insn.k as usize;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            0x54 => acc &= insn.k, // BPF_ALU | BPF_AND | BPF_K
            BPF_JMP_JA => pc += insn.k as usize,
            BPF_JMP_JEQ_K | 0x25 | BPF_JMP_JGE_K | 0x45 => {
                let taken = match insn.code {
                    BPF_JMP_JEQ_K => acc == insn.k,
                    0x25 => acc > insn.k,
                    BPF_JMP_JGE_K => acc >= insn.k,
                    _ => acc & insn.k != 0,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            BPF_RET_K => return insn.k,
            code => panic!("instruction {code:#x} not known to the test evaluator"),
        }
    }
}

#[cfg(test)]
mod tests;
