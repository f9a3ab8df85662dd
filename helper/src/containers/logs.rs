//! `logs`: a container's records, as JSON lines into a pipe.

use std::io::Write;
use std::ops::ControlFlow;
use std::os::fd::OwnedFd;

use super::{Containers, Error, Result};
use crate::runtime::shim::logs::{self, FollowEvent, LogLine};

impl Containers {
    /// Write container `key`'s log (the last `tail` records, or all) into
    /// `out`, then with `follow` keep writing new ones until the container
    /// stops or the reader closes its end. Runs on its own thread.
    pub fn stream_logs(
        &self,
        key: &str,
        tail: Option<usize>,
        follow: bool,
        out: OwnedFd,
    ) -> Result<()> {
        let c = self.find(key)?;
        let path = self.log_path(&c.id);
        let this = self.clone();
        let id = c.id.clone();
        std::thread::Builder::new()
            .name("logs".into())
            .spawn(move || {
                let mut out = std::fs::File::from(out);
                // No log yet (never started) reads as empty.
                let (lines, offset) = logs::read_logs_offset(&path, tail).unwrap_or_default();
                for l in &lines {
                    if write_line(&mut out, l).is_err() {
                        return;
                    }
                }
                if !follow {
                    return;
                }
                let _ = logs::follow_logs(&path, offset, |ev| match ev {
                    FollowEvent::Line(l) => match write_line(&mut out, &l) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    },
                    FollowEvent::Idle => {
                        let running = this
                            .inner
                            .images
                            .db()
                            .find_container(&id)
                            .ok()
                            .flatten()
                            .is_some_and(|c| c.state == "running");
                        // A zero-length write tells whether the reader left.
                        if running && out.write(&[]).is_ok() {
                            ControlFlow::Continue(())
                        } else {
                            ControlFlow::Break(())
                        }
                    }
                });
            })
            .map_err(|e| Error::Runtime(format!("starting a log reader: {e}")))?;
        Ok(())
    }
}

fn write_line(out: &mut std::fs::File, l: &LogLine) -> std::io::Result<()> {
    let stream = match l.stream {
        logs::Stream::Stdout => "stdout",
        logs::Stream::Stderr => "stderr",
    };
    let v = serde_json::json!({ "time": l.time, "stream": stream, "log": l.line });
    let mut s = v.to_string();
    s.push('\n');
    out.write_all(s.as_bytes())
}
