//! The socket between the runtime and its init: one JSON message per line.
//!
//! ```text
//! runtime                                  init (stage 1, then the container's pid 1)
//!   ── Create{config} / Exec{config} ──►
//!                                    ◄──  WriteMaps            (new user namespace only)
//!   ── MapsWritten ──────────────────►
//!                                    ◄──  Pid(host pid of the container process)
//!                                    ◄──  Ready | NotFound | NotExecutable | Failed
//! ```
//!
//! The console socket's pty master travels over a separate unix socket with
//! `SCM_RIGHTS` ([`send_fd`]).

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxSeccomp, Process, Spec};
use serde::{Deserialize, Serialize};

/// What the init is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    Create(Box<CreateConfig>),
    Exec(Box<ExecConfig>),
    MapsWritten,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateConfig {
    pub id: String,
    pub spec: Spec,
    pub bundle: PathBuf,
    /// Absolute.
    pub rootfs: PathBuf,
    pub fifo: PathBuf,
    /// A console socket was passed as fd 4.
    pub console: bool,
    /// cgroup v1 `tasks` files the init writes `0` to, moving itself into
    /// the container's cgroup before anything else (see
    /// `cgroups::Cgroup::self_join_files`); empty when the runtime moved it.
    #[serde(default)]
    pub cgroup_tasks: Vec<PathBuf>,
    /// The group the init carries until it switches to the container's
    /// user (see `namespaces::TRAVERSE_GID_ANNOTATION`).
    #[serde(default)]
    pub traverse_gid: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The container's pid 1, as the host sees it.
    pub pid: i32,
    pub process: Process,
    pub seccomp: Option<LinuxSeccomp>,
    pub console: bool,
}

/// What the init reports.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    WriteMaps,
    Pid(i32),
    Ready,
    NotFound(String),
    NotExecutable(String),
    Failed(String),
}

/// Fd numbers in the init.
pub const SYNC_FD: i32 = 3;
pub const CONSOLE_FD: i32 = 4;

pub struct Channel {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Channel {
    pub fn new(stream: UnixStream) -> io::Result<Channel> {
        Ok(Channel {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn send<T: Serialize>(&mut self, msg: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)
    }

    /// Stop talking: the peer sees end of file, our later sends fail (and
    /// so go to stderr instead).
    pub fn close(&mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }

    /// The next message; `UnexpectedEof` when the other side is gone.
    pub fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> io::Result<T> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        serde_json::from_str(&line).map_err(io::Error::other)
    }
}

/// Send `fd` over the unix socket `sock` (`SCM_RIGHTS`), with `name` as
/// the message's bytes (runc sends the pty's path, `/dev/pts/N`; receivers
/// such as Berth's shim and go-runc's read and ignore it). An empty name is
/// sent as one NUL byte: the fd needs at least one byte to travel with.
pub fn send_fd(sock: &impl AsRawFd, fd: &impl AsRawFd, name: &[u8]) -> io::Result<()> {
    let mut data = if name.is_empty() {
        vec![0u8]
    } else {
        name.to_vec()
    };
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer has room for one header and one int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd.as_raw_fd());
    }
    // SAFETY: msg is fully initialised. (A blocking unix socket takes a
    // message this short, a path, whole.)
    if unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receive one fd sent with [`send_fd`] (the name is read and dropped).
pub fn recv_fd(sock: &impl AsRawFd) -> io::Result<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: name.as_mut_ptr().cast(),
        iov_len: name.len(),
    };
    // SAFETY: pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: as in send_fd.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg is fully initialised.
    if unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the control buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::other("no file descriptor received"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
