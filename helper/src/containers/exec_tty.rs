//! `exec -t`: the command gets a terminal of its own. The runtime sends the
//! pty's master end over a console socket; berthd relays between it and the
//! caller's stdin and stdout until the command ends.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{Error, Result};

/// A short private directory for the console socket (socket paths are
/// limited to 108 bytes, so it cannot live under a long run root).
pub(super) struct ConsoleDir {
    pub dir: PathBuf,
}

impl ConsoleDir {
    pub fn new() -> Result<ConsoleDir> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-console-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::Runtime(format!("making {}: {e}", dir.display())))?;
        Ok(ConsoleDir { dir })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("console.sock")
    }
}

impl Drop for ConsoleDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Receive the pty master the runtime sends to `listener`, size it, and
/// relay it with `stdin`/`stdout` on threads until `done` is set and the
/// master reports the end. Returns the relay threads to join.
pub(super) fn relay(
    listener: UnixListener,
    size: (u16, u16),
    stdin: OwnedFd,
    stdout: OwnedFd,
    done: Arc<AtomicBool>,
) -> Result<Vec<std::thread::JoinHandle<()>>> {
    let (conn, _) = listener
        .accept()
        .map_err(|e| Error::Runtime(format!("waiting for the terminal of exec: {e}")))?;
    let master = crate::runtime::channel::recv_fd(&conn)
        .map_err(|e| Error::Runtime(format!("receiving the terminal of exec: {e}")))?;
    let ws = rustix::termios::Winsize {
        ws_row: size.0,
        ws_col: size.1,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let _ = rustix::termios::tcsetwinsize(&master, ws);
    let master_out = master
        .try_clone()
        .map_err(|e| Error::Runtime(format!("duplicating the terminal: {e}")))?;
    // Terminal → caller: ends when the command's side closes (EIO).
    let out = std::thread::spawn(move || {
        let mut from = std::fs::File::from(master_out);
        let mut to = std::fs::File::from(stdout);
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    // Caller → terminal: polls so it can stop when the command has ended
    // even if the caller never types again.
    let inp = std::thread::spawn(move || {
        let mut to = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        loop {
            if done.load(Ordering::SeqCst) {
                break;
            }
            let mut fds = [rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(_) => break,
            }
            match rustix::io::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(vec![out, inp])
}
