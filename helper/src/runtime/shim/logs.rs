//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"time":"<RFC 3339 UTC, ns>","stream":"stdout"|"stderr","log":"<line>\n"}`.
//!
//! The shim splits output on newlines; a line longer than 16 KiB, or an
//! unfinished one when the container exits, is written as a record without
//! the trailing `\n` (Docker does the same, so readers join such records).
//! When the file passes its size limit it is renamed to `FILE.1` (replacing
//! the previous `.1`) and a new `FILE` starts, so the logs of a container
//! never take more than about twice the limit.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Longest line written as one record; longer ones are split.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339 UTC with nanoseconds, as written.
    pub time: String,
    pub stream: Stream,
    /// The text, with its trailing `\n` unless the line was split.
    pub line: String,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    time: Cow<'a, str>,
    stream: Stream,
    log: Cow<'a, str>,
}

/// The shim's side: appends records, rotates.
pub(crate) struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    partial: [Vec<u8>; 2],
    batch: Vec<u8>,
}

impl LogWriter {
    pub(crate) fn open(path: &Path, max: u64) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            max: max.max(1),
            partial: [Vec::new(), Vec::new()],
            batch: Vec::new(),
        })
    }

    /// Logs a chunk of output, keeping an unfinished last line for later.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.partial[stream.index()]);
        buf.extend_from_slice(data);
        let mut start = 0;
        let time = super::time::now_rfc3339();
        let mut result = Ok(());
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            result = result.and(self.record(&time, stream, &buf[start..end]));
            start = end;
        }
        while buf.len() - start >= MAX_LINE {
            let end = start + utf8_cut(&buf[start..start + MAX_LINE]);
            result = result.and(self.record(&time, stream, &buf[start..end]));
            start = end;
        }
        buf.drain(..start);
        self.partial[stream.index()] = buf;
        result.and(self.flush_batch())
    }

    /// Writes unfinished lines as they are (at exit).
    pub(crate) fn flush_partial(&mut self) -> io::Result<()> {
        let time = super::time::now_rfc3339();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(&mut self.partial[stream.index()]);
            if !buf.is_empty() {
                self.record(&time, stream, &buf)?;
            }
        }
        self.flush_batch()
    }

    fn record(&mut self, time: &str, stream: Stream, line: &[u8]) -> io::Result<()> {
        let start = self.batch.len();
        let rec = Record {
            time: Cow::Borrowed(time),
            stream,
            log: String::from_utf8_lossy(line),
        };
        serde_json::to_writer(&mut self.batch, &rec).map_err(io::Error::other)?;
        self.batch.push(b'\n');
        // Rotate before a record that would carry the file past the limit.
        if self.size + start as u64 > 0 && self.size + self.batch.len() as u64 > self.max {
            let rec = self.batch.split_off(start);
            self.flush_batch()?;
            self.rotate()?;
            self.batch = rec;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let res = self.file.write_all(&self.batch);
        self.size += self.batch.len() as u64;
        self.batch.clear();
        res
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, rotated(&self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    // The container's output may hold its secrets: root's alone.
    crate::fsmode::file_options()
        .create(true)
        .append(true)
        .open(path)
}

/// `FILE.1`.
pub(crate) fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Where to cut a full-length chunk so a UTF-8 character is not split.
fn utf8_cut(chunk: &[u8]) -> usize {
    match std::str::from_utf8(chunk) {
        Ok(_) => chunk.len(),
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
        Err(_) => chunk.len(),
    }
}

fn parse(line: &[u8]) -> Option<LogLine> {
    let rec: Record = serde_json::from_slice(line).ok()?;
    Some(LogLine {
        time: rec.time.into_owned(),
        stream: rec.stream,
        line: rec.log.into_owned(),
    })
}

/// All records of `FILE.1` then `FILE`, or the last `tail` of them.
/// Lines that do not parse (a torn last write) are skipped.
pub fn read_logs(log: &Path, tail: Option<usize>) -> Result<Vec<LogLine>> {
    read_logs_offset(log, tail).map(|(lines, _)| lines)
}

/// [`read_logs`], plus the offset in `FILE` just past the last complete
/// record read, to hand to [`follow_logs`].
pub fn read_logs_offset(log: &Path, tail: Option<usize>) -> Result<(Vec<LogLine>, u64)> {
    let err = |source| Error::Logs {
        path: log.to_owned(),
        source,
    };
    let mut lines = Vec::new();
    match File::open(rotated(log)) {
        Ok(f) => {
            read_records(&mut BufReader::new(f), &mut lines, tail).map_err(err)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let offset = match File::open(log) {
        Ok(f) => read_records(&mut BufReader::new(f), &mut lines, tail).map_err(err)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(err(e)),
    };
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok((lines, offset))
}

/// Appends every complete record; returns the bytes consumed.
fn read_records(
    r: &mut impl BufRead,
    out: &mut Vec<LogLine>,
    tail: Option<usize>,
) -> io::Result<u64> {
    let mut consumed = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        if let Some(line) = parse(&buf) {
            out.push(line);
            // Keep memory bounded for `--tail` on a big file.
            if let Some(t) = tail {
                if out.len() > 2 * t + 1024 {
                    let skip = out.len() - t;
                    out.drain(..skip);
                }
            }
        }
    }
}

/// What [`follow_logs`] hands its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEvent {
    /// A new record.
    Line(LogLine),
    /// Nothing new for a poll interval: a chance to stop (container gone,
    /// client hung up).
    Idle,
}

const FOLLOW_INTERVAL: Duration = Duration::from_millis(150);

/// Follows `FILE` from `from_offset` (see [`read_logs_offset`]), calling
/// `callback` for every new record and on every idle poll, until it says
/// `Break`. Rotation is noticed by the inode of `FILE` changing: the old file
/// (now `FILE.1`) is read to its end first, then the new one from its start.
pub fn follow_logs(
    log: &Path,
    from_offset: u64,
    mut callback: impl FnMut(FollowEvent) -> ControlFlow<()>,
) -> Result<()> {
    let err = |source| Error::Logs {
        path: log.to_owned(),
        source,
    };
    let mut cur = open_at(log, from_offset).map_err(err)?;
    let mut pending = Vec::new();
    loop {
        let got = match cur.as_mut() {
            Some((f, _)) => drain(f, &mut pending, &mut callback).map_err(err)?,
            None => ControlFlow::Continue(false),
        };
        let got = match got {
            ControlFlow::Break(()) => return Ok(()),
            ControlFlow::Continue(got) => got,
        };
        // Rotated (or created) since we opened it?
        let now_ino = std::fs::metadata(log).ok().map(|m| m.ino());
        let our_ino = cur.as_ref().map(|(_, ino)| *ino);
        if now_ino.is_some() && now_ino != our_ino {
            if let Some((f, _)) = cur.as_mut() {
                if drain(f, &mut pending, &mut callback)
                    .map_err(err)?
                    .is_break()
                {
                    return Ok(());
                }
            }
            pending.clear();
            cur = open_at(log, 0).map_err(err)?;
            continue;
        }
        if !got {
            if callback(FollowEvent::Idle).is_break() {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_INTERVAL);
        }
    }
}

fn open_at(path: &Path, offset: u64) -> io::Result<Option<(File, u64)>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    // A file shorter than the offset is a new one after a rotation.
    let offset = if meta.len() < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(offset))?;
    Ok(Some((f, meta.ino())))
}

/// Reads what is new; `Continue(true)` if any record was delivered.
fn drain(
    f: &mut File,
    pending: &mut Vec<u8>,
    callback: &mut impl FnMut(FollowEvent) -> ControlFlow<()>,
) -> io::Result<ControlFlow<(), bool>> {
    let mut got = false;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut chunk)?;
        if n == 0 {
            return Ok(ControlFlow::Continue(got));
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            if let Some(line) = parse(&pending[start..end]) {
                got = true;
                if callback(FollowEvent::Line(line)).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            start = end;
        }
        pending.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<LogLine> {
        read_logs(path, None).unwrap()
    }

    #[test]
    fn splits_lines_and_keeps_partials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, 1 << 20).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nwor").unwrap();
        w.flush_partial().unwrap();
        let got: Vec<_> = lines(&path)
            .into_iter()
            .map(|l| (l.stream, l.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "oops\n".to_string()),
                (Stream::Stdout, "hello\n".to_string()),
                (Stream::Stdout, "wor".to_string()),
            ]
        );
        let t = &lines(&path)[0].time;
        assert_eq!(t.len(), "2024-02-29T12:00:00.123456789Z".len());
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn long_lines_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, 1 << 20).unwrap();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        w.write(Stream::Stdout, &long).unwrap();
        w.write(Stream::Stdout, b"\n").unwrap();
        let got = lines(&path);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].line.len(), MAX_LINE);
        assert_eq!(got[2].line, format!("{}\n", "x".repeat(10)));
    }

    #[test]
    fn rotates_and_reads_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, 1000).unwrap();
        for i in 0..100 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
        assert!(rotated(&path).exists());
        let got = lines(&path);
        assert!(got.len() < 100);
        assert_eq!(got.last().unwrap().line, "line 99\n");
        // Consecutive across the two files.
        let first: usize = got[0].line[5..].trim().parse().unwrap();
        for (k, l) in got.iter().enumerate() {
            assert_eq!(l.line, format!("line {}\n", first + k));
        }
        let tail = read_logs(&path, Some(3)).unwrap();
        assert_eq!(tail.len(), 3);
        assert_eq!(tail[2].line, "line 99\n");
    }

    #[test]
    fn follows_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path, 600).unwrap();
        w.write(Stream::Stdout, b"before\n").unwrap();
        let (old, off) = read_logs_offset(&path, None).unwrap();
        assert_eq!(old.len(), 1);
        let p = path.clone();
        let writer = std::thread::spawn(move || {
            for i in 0..20 {
                w.write(Stream::Stderr, format!("n{i}\n").as_bytes())
                    .unwrap();
                std::thread::sleep(Duration::from_millis(30));
            }
            drop(p);
        });
        let mut seen = Vec::new();
        follow_logs(&path, off, |ev| {
            if let FollowEvent::Line(l) = ev {
                seen.push(l.line);
            }
            if seen.len() == 20 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        writer.join().unwrap();
        let want: Vec<_> = (0..20).map(|i| format!("n{i}\n")).collect();
        assert_eq!(seen, want);
    }
}
