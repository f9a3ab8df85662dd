//! `linux.resources.devices` as the kernel takes it: lines for the v1
//! `devices.allow` / `devices.deny` files, or a cgroup v2 device program
//! (`BPF_PROG_TYPE_CGROUP_DEVICE`, loaded by `super::bpf`). Pure, so both
//! are unit-tested without root; the program is checked by running it in a
//! small interpreter of the few instructions it uses.
//!
//! Meaning, as in runc: every container's list starts with "deny
//! everything" and the spec's rules follow in order. On v1 each rule is a
//! write to the kernel's list (an allow adds an exception, a deny removes
//! one; a rule of type `a` with any major, minor and `rwm` resets the list
//! to allow or deny all). The v2 program gives the same answers for the
//! lists runtimes write (deny all, allows, denies of what was allowed): the
//! last rule that matches decides. A rule matches when its type, major and
//! minor match and, for an allow, it grants every access asked for; for a
//! deny, it refuses any of them.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// Kernel's `BPF_DEVCG_ACC_*` bits, also used for the v1 letters.
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
const RWM: u8 = MKNOD | READ | WRITE;

/// Which devices a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All,
    Block,
    Char,
}

/// One rule of `linux.resources.devices`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    /// `None`: any (`*`, -1 or absent in the spec).
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `MKNOD | READ | WRITE` bits.
    pub access: u8,
}

impl Rule {
    /// Deny (or allow) every access to every device.
    pub const fn all(allow: bool) -> Rule {
        Rule {
            allow,
            kind: Kind::All,
            major: None,
            minor: None,
            access: RWM,
        }
    }

    /// An allow rule.
    pub const fn allow(kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The spec's rule; `Ok(None)` for a rule that does not concern the
    /// device controller (type `p`, a fifo).
    pub fn from_spec(r: &LinuxDeviceCgroup) -> Result<Option<Rule>, String> {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => Kind::All,
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
            LinuxDeviceType::P => return Ok(None),
        };
        let number = |what: &str, n: Option<i64>| -> Result<Option<u32>, String> {
            match n {
                None | Some(-1) => Ok(None),
                // i32::MAX: the program compares against 32-bit immediates.
                Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
                Some(n) => Err(format!(
                    "device rule {r}: {what} {n} is not a device number (or -1 for any)"
                )),
            }
        };
        let access = match r.access().as_deref() {
            None | Some("") => RWM,
            Some(s) => {
                let mut bits = 0;
                for c in s.chars() {
                    bits |= match c {
                        'r' => READ,
                        'w' => WRITE,
                        'm' => MKNOD,
                        _ => {
                            return Err(format!(
                                "device rule {r}: access {s:?} may only hold the letters r, w and m"
                            ))
                        }
                    };
                }
                bits
            }
        };
        Ok(Some(Rule {
            allow: r.allow(),
            kind,
            major: number("major", r.major())?,
            minor: number("minor", r.minor())?,
            access,
        }))
    }

    /// Every device, every access: the rule resets the list.
    pub fn is_all(&self) -> bool {
        self.kind == Kind::All && self.major.is_none() && self.minor.is_none() && self.access == RWM
    }

    /// Whether the rule decides a request for `access` to `kind`
    /// `major:minor` (`kind` is Block or Char).
    pub fn matches(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        (self.kind == Kind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && if self.allow {
                access & !self.access == 0
            } else {
                access & self.access != 0
            }
    }
}

/// The spec's rules, checked, in order (fifo rules left out).
pub fn from_spec(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for r in rules {
        match Rule::from_spec(r)? {
            Some(rule) => out.push(rule),
            None => tracing::debug!(rule = %r, "device rule for a fifo; nothing to enforce"),
        }
    }
    Ok(out)
}

/// What the rules decide for one request: the last matching rule, else
/// deny (the list starts with "deny everything"). The reference the v2
/// program is tested against.
pub fn decide(rules: &[Rule], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(kind, major, minor, access))
        .is_some_and(|r| r.allow)
}

fn access_letters(access: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| access & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The v1 writes for `rules` (after the leading deny-all, which the caller
/// writes): (`true` for devices.allow, line). A type-`a` rule narrower than
/// "everything" becomes a `c` and a `b` line, since the kernel reads any
/// line starting with `a` as "all".
pub fn v1_lines(rules: &[Rule]) -> Vec<(bool, String)> {
    let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
    let mut out = Vec::new();
    for r in rules {
        if r.is_all() {
            out.push((r.allow, "a".to_string()));
            continue;
        }
        let kinds: &[char] = match r.kind {
            Kind::All => &['c', 'b'],
            Kind::Char => &['c'],
            Kind::Block => &['b'],
        };
        for k in kinds {
            out.push((
                r.allow,
                format!(
                    "{k} {}:{} {}",
                    num(r.major),
                    num(r.minor),
                    access_letters(r.access)
                ),
            ));
        }
    }
    out
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg and src_reg, 4 bits each, in the bit-field order of the
    /// target's C ABI.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

// bpf_cgroup_dev_ctx: access_type (type | access << 16), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn regs(dst: u8, src: u8) -> u8 {
    if cfg!(target_endian = "little") {
        (src << 4) | dst
    } else {
        (dst << 4) | src
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: regs(dst, src),
        off,
        imm,
    }
}

/// A jump to the end of the current block, its offset filled in later.
const NEXT: i16 = i16::MIN;

/// The cgroup v2 device program for `rules` (the list after the leading
/// deny-all), or `None` when the rules allow everything and there is
/// nothing to enforce.
///
/// r2 = device type, r3 = access asked for, r4 = major, r5 = minor; then
/// one block per rule, last rule first, each jumping to the next block
/// when the rule does not match and returning its answer when it does;
/// then the answer of the last rule that matches everything (deny-all, or
/// whatever reset the list after it).
pub fn program(rules: &[Rule]) -> Option<Vec<Insn>> {
    let mut default = false;
    let mut blocks: Vec<(bool, Vec<Insn>)> = Vec::new();
    for r in rules.iter().rev() {
        let mut b = Vec::new();
        match r.kind {
            Kind::All => {}
            Kind::Block => b.push(insn(JMP_JNE_K, 2, 0, NEXT, DEV_BLOCK)),
            Kind::Char => b.push(insn(JMP_JNE_K, 2, 0, NEXT, DEV_CHAR)),
        }
        if let Some(major) = r.major {
            b.push(insn(JMP_JNE_K, 4, 0, NEXT, major as i32));
        }
        if let Some(minor) = r.minor {
            b.push(insn(JMP_JNE_K, 5, 0, NEXT, minor as i32));
        }
        if r.access != RWM {
            b.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            if r.allow {
                // Asks for something the rule does not grant: no match.
                b.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(!r.access & RWM)));
                b.push(insn(JMP_JNE_K, 1, 0, NEXT, 0));
            } else {
                // Asks for nothing the rule refuses: no match.
                b.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(r.access)));
                b.push(insn(JMP_JEQ_K, 1, 0, NEXT, 0));
            }
        }
        if b.is_empty() {
            // Matches every request: earlier rules never get a say (and
            // their code would be unreachable, which the verifier refuses).
            default = r.allow;
            break;
        }
        b.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)));
        b.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = b.len();
        for (i, ins) in b.iter_mut().enumerate() {
            if ins.off == NEXT {
                ins.off = (len - 1 - i) as i16;
            }
        }
        blocks.push((r.allow, b));
    }
    // Blocks just before the default that answer like it change nothing.
    while blocks.last().is_some_and(|(allow, _)| *allow == default) {
        blocks.pop();
    }
    if blocks.is_empty() && default {
        return None;
    }
    let mut prog = Vec::new();
    if !blocks.is_empty() {
        prog.extend([
            insn(LDX_MEM_W, 2, 1, 0, 0),
            insn(ALU32_AND_K, 2, 0, 0, 0xffff),
            insn(LDX_MEM_W, 3, 1, 0, 0),
            insn(ALU32_RSH_K, 3, 0, 0, 16),
            insn(LDX_MEM_W, 4, 1, 4, 0),
            insn(LDX_MEM_W, 5, 1, 8, 0),
        ]);
    }
    for (_, b) in blocks {
        prog.extend(b);
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(default)));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Some(prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Rule {
        let r: LinuxDeviceCgroup = serde_json::from_str(json).unwrap();
        Rule::from_spec(&r).unwrap().unwrap()
    }

    /// Docker's list (as berthd's specs carry it), after the deny-all.
    fn docker() -> Vec<Rule> {
        let mut rules = vec![
            Rule::allow(Kind::Char, None, None, MKNOD),
            Rule::allow(Kind::Block, None, None, MKNOD),
        ];
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            rules.push(Rule::allow(Kind::Char, Some(major), Some(minor), RWM));
        }
        rules.push(Rule::allow(Kind::Char, Some(136), None, RWM));
        rules
    }

    /// Runs `prog` on a request, as the kernel would: the instructions the
    /// generator emits, nothing else.
    fn run(prog: &[Insn], kind: Kind, major: u32, minor: u32, access: u8) -> u64 {
        let dev = match kind {
            Kind::Block => DEV_BLOCK as u32,
            Kind::Char => DEV_CHAR as u32,
            Kind::All => unreachable!(),
        };
        let ctx = [dev | (u32::from(access) << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (dst, src) = if cfg!(target_endian = "little") {
                ((i.regs & 0xf) as usize, (i.regs >> 4) as usize)
            } else {
                ((i.regs >> 4) as usize, (i.regs & 0xf) as usize)
            };
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as isize + isize::from(i.off)) as usize;
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU32_AND_K => r[dst] = u64::from(r[dst] as u32 & i.imm as u32),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                ALU64_MOV_K => r[dst] = i64::from(i.imm) as u64,
                JMP_JEQ_K => jump(r[dst] == i64::from(i.imm) as u64, &mut pc),
                JMP_JNE_K => jump(r[dst] != i64::from(i.imm) as u64, &mut pc),
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
        panic!("the program does not end");
    }

    /// Every instruction reachable, every jump inside the program, the
    /// last instruction an exit: what the verifier checks first.
    fn well_formed(prog: &[Insn]) {
        assert_eq!(prog.last().unwrap().code, JMP_EXIT);
        let mut reached = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if reached[pc] {
                continue;
            }
            reached[pc] = true;
            let i = prog[pc];
            if i.code == JMP_EXIT {
                continue;
            }
            todo.push(pc + 1);
            if i.code == JMP_JEQ_K || i.code == JMP_JNE_K {
                let t = pc as isize + 1 + isize::from(i.off);
                assert!(t > pc as isize && (t as usize) < prog.len(), "jump at {pc}");
                todo.push(t as usize);
            }
        }
        assert!(reached.iter().all(|r| *r), "unreachable code in {prog:?}");
    }

    /// The program answers like `decide` for every request over a grid of
    /// device numbers and accesses.
    fn agrees(rules: &[Rule]) {
        let mut full = vec![Rule::all(false)];
        full.extend_from_slice(rules);
        let prog = program(&full);
        if let Some(p) = &prog {
            well_formed(p);
        }
        for kind in [Kind::Char, Kind::Block] {
            for major in [0, 1, 5, 8, 136, 4095] {
                for minor in [0, 1, 2, 3, 5, 7, 9, 1_000_000] {
                    for access in 1..=RWM {
                        let want = decide(&full, kind, major, minor, access);
                        let got = prog
                            .as_ref()
                            .is_none_or(|p| run(p, kind, major, minor, access) == 1);
                        assert_eq!(
                            got, want,
                            "{kind:?} {major}:{minor} access {access:#b} under {rules:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn spec_rules_are_read_like_runc() {
        assert_eq!(
            rule(r#"{"allow": false, "access": "rwm"}"#),
            Rule::all(false)
        );
        assert_eq!(
            rule(r#"{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}"#),
            Rule::allow(Kind::Char, Some(1), Some(3), READ | WRITE)
        );
        assert_eq!(
            rule(r#"{"allow": true, "type": "b", "major": 8, "minor": -1}"#),
            Rule::allow(Kind::Block, Some(8), None, RWM)
        );
        let bad: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": true, "type": "c", "access": "rx"}"#).unwrap();
        assert!(Rule::from_spec(&bad).unwrap_err().contains("r, w and m"));
        let bad: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": true, "type": "c", "major": -2}"#).unwrap();
        assert!(Rule::from_spec(&bad).unwrap_err().contains("major -2"));
        let fifo: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": true, "type": "p"}"#).unwrap();
        assert_eq!(Rule::from_spec(&fifo).unwrap(), None);
    }

    #[test]
    fn v1_lines_in_order() {
        let rules = [
            Rule::allow(Kind::Char, Some(1), Some(3), RWM),
            Rule::allow(Kind::Block, Some(8), None, READ),
            Rule::allow(Kind::Char, None, None, MKNOD),
            Rule {
                allow: false,
                ..Rule::allow(Kind::All, Some(10), Some(229), READ | WRITE)
            },
            Rule::all(true),
        ];
        assert_eq!(
            v1_lines(&rules),
            vec![
                (true, "c 1:3 rwm".to_string()),
                (true, "b 8:* r".to_string()),
                (true, "c *:* m".to_string()),
                (false, "c 10:229 rw".to_string()),
                (false, "b 10:229 rw".to_string()),
                (true, "a".to_string()),
            ]
        );
    }

    #[test]
    fn docker_defaults_allow_what_they_list_and_nothing_else() {
        let mut full = vec![Rule::all(false)];
        full.extend(docker());
        let prog = program(&full).unwrap();
        well_formed(&prog);
        let ok = |k, ma, mi, a| run(&prog, k, ma, mi, a) == 1;
        assert!(ok(Kind::Char, 1, 3, READ | WRITE), "/dev/null");
        assert!(ok(Kind::Char, 136, 7, READ | WRITE), "a pts");
        assert!(ok(Kind::Char, 8, 0, MKNOD), "mknod of any char device");
        assert!(ok(Kind::Block, 8, 0, MKNOD), "mknod of any block device");
        assert!(!ok(Kind::Block, 8, 0, READ), "reading a host disk");
        assert!(
            !ok(Kind::Block, 253, 0, READ | WRITE),
            "a device-mapper disk"
        );
        assert!(!ok(Kind::Char, 10, 229, READ), "/dev/fuse");
        assert!(!ok(Kind::Char, 1, 1, READ), "/dev/mem");
        agrees(&docker());
    }

    #[test]
    fn program_agrees_with_the_rules() {
        agrees(&[]);
        agrees(&[Rule::all(true)]);
        agrees(&docker());
        // runtime-tools' list.
        agrees(&[
            Rule::allow(Kind::Char, Some(1), Some(3), RWM),
            Rule::allow(Kind::Block, Some(8), None, READ),
        ]);
        // Allow all, then take some back.
        agrees(&[
            Rule::all(true),
            Rule {
                allow: false,
                ..Rule::allow(Kind::Block, None, None, READ | WRITE)
            },
            Rule {
                allow: false,
                ..Rule::allow(Kind::Char, Some(1), Some(5), WRITE)
            },
        ]);
        // An allow taken back in part, then a reset in the middle.
        agrees(&[
            Rule::allow(Kind::All, Some(1), None, RWM),
            Rule {
                allow: false,
                ..Rule::allow(Kind::Char, Some(1), Some(5), READ)
            },
            Rule::all(false),
            Rule::allow(Kind::Char, Some(5), Some(0), READ),
            Rule::allow(Kind::All, None, Some(3), MKNOD | WRITE),
        ]);
    }

    #[test]
    fn trivial_lists_give_trivial_programs() {
        assert_eq!(program(&[Rule::all(false), Rule::all(true)]), None);
        let deny = program(&[Rule::all(false)]).unwrap();
        assert_eq!(deny.len(), 2);
        assert_eq!(run(&deny, Kind::Char, 1, 3, READ), 0);
        // An allow before a deny of everything is dead code: left out.
        let p = program(&[
            Rule::all(false),
            Rule::allow(Kind::Char, Some(1), Some(3), RWM),
            Rule::all(false),
        ])
        .unwrap();
        assert_eq!(p.len(), 2);
    }
}
