//! Loading a cgroup v2 device program (see `device_rules::program`) and
//! attaching it to a cgroup directory, with the bpf(2) system call: no
//! library, no object file, no BTF; the kernel checks the instructions
//! (its verifier) when they are loaded. The cgroup holds the program from
//! then on; it goes with the cgroup.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::device_rules::Insn;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the parents keep running too (systemd attaches its own
/// device programs to its units the same way).
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// The first fields of `union bpf_attr` for BPF_PROG_LOAD; the kernel
/// reads the rest as zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The first fields of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `bpf_attr` prefix of the size
    // given; the pointers inside it point at buffers the caller keeps alive.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Loads `prog` as a cgroup device program. On failure the error carries
/// the verifier's log, if it wrote one.
pub fn load(prog: &[Insn]) -> Result<OwnedFd, String> {
    const LICENSE: &CStr = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let attr = |log: &mut Vec<u8>| ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..ProgLoad::default()
    };
    let mut log = Vec::new();
    let err = match bpf(BPF_PROG_LOAD, &mut attr(&mut log)) {
        // SAFETY: BPF_PROG_LOAD returns a new file descriptor we own.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    // Once more with the verifier's log, to say why.
    let mut log = vec![0u8; 64 * 1024];
    match bpf(BPF_PROG_LOAD, &mut attr(&mut log)) {
        // SAFETY: as above.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let text = CStr::from_bytes_until_nul(&log)
                .map(|c| c.to_string_lossy().trim().to_string())
                .unwrap_or_default();
            if !text.is_empty() {
                return Err(format!("{e}; the kernel's verifier said: {text}"));
            }
        }
    }
    if err.raw_os_error() == Some(libc::EPERM) {
        return Err(format!(
            "{err} (kernels before 5.11 charge BPF programs to RLIMIT_MEMLOCK: \
             run berthd with LimitMEMLOCK=infinity)"
        ));
    }
    Err(err.to_string())
}

/// Attaches the program `prog` to the cgroup v2 directory `dir`.
pub fn attach(prog: &OwnedFd, dir: &Path) -> Result<(), String> {
    let cgroup = std::fs::File::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let mut attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..ProgAttach::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| e.to_string())?;
    Ok(())
}
