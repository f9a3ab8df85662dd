//! The decompressed tar stream of a layer blob: format detection, the
//! diff id (sha256 of every decompressed byte), the size limit and
//! cancellation.
//!
//! Decompressing and hashing take about as long as writing the files, so
//! they run on their own thread ([`pipeline`]), a few chunks ahead of the
//! thread that unpacks. Chunks, the end of the stream and errors travel in
//! stream order over one channel, so the unpacker sees a failure exactly
//! where the stream failed and reports it instead of its own consequence.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use super::{Error, LimitKind, Limits, Result};
use crate::content::Digest;

/// Read-ahead on the compressed blob; also the decompressor's input buffer.
const INPUT_BUFFER: usize = 256 * 1024;
/// How often (in decompressed bytes) the cancel flag is polled.
const CANCEL_EVERY: u64 = 4 << 20;
/// Decompressed bytes per chunk handed to the unpacker.
const CHUNK: usize = 1 << 20;
/// Chunks decompressed ahead of the unpacker.
const AHEAD: usize = 4;

/// Why [`Tally`] stopped the stream on purpose (its `Read` impl can only
/// return an `io::Error`, so the reason is kept on the side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    TooBig,
    Cancelled,
}

/// The compression of a blob, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Open the decompressed stream of a blob.
pub(crate) fn decompress<'a>(mut src: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut have = 0;
    while have < magic.len() {
        match src.read(&mut magic[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the layer blob", e)),
        }
    }
    let src = BufReader::with_capacity(
        INPUT_BUFFER,
        io::Cursor::new(magic).take(have as u64).chain(src),
    );
    Ok(match Compression::detect(&magic[..have]) {
        // Multi-member, as Go's gzip reader and so every registry client.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(src)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(src)
                .map_err(|e| Error::io("starting the zstd decoder", e))?,
        ),
        Compression::None => Box::new(src),
    })
}

/// Hashes and counts everything read through it, enforces the byte limit
/// and polls the cancel flag.
pub(crate) struct Tally<'a, R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    max: u64,
    next_poll: u64,
    cancel: &'a AtomicBool,
    stopped: &'a Cell<Option<Stopped>>,
}

impl<'a, R: Read> Tally<'a, R> {
    pub(crate) fn new(
        inner: R,
        limits: &Limits,
        cancel: &'a AtomicBool,
        stopped: &'a Cell<Option<Stopped>>,
    ) -> Self {
        Tally {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            max: limits.max_bytes,
            next_poll: 0,
            cancel,
            stopped,
        }
    }

    /// Read what is left and return the diff id and size.
    #[cfg(test)]
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.digest())
    }

    /// The diff id and size of what was read.
    fn digest(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.bytes)
    }

    fn stop(&self, why: Stopped) -> io::Error {
        self.stopped.set(Some(why));
        io::Error::other(match why {
            Stopped::TooBig => "layer size limit exceeded",
            Stopped::Cancelled => "cancelled",
        })
    }
}

impl<R: Read> Read for Tally<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = self.stopped.get() {
            return Err(self.stop(why));
        }
        if self.bytes >= self.next_poll {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(self.stop(Stopped::Cancelled));
            }
            self.next_poll = self.bytes + CANCEL_EVERY;
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes > self.max {
            return Err(self.stop(Stopped::TooBig));
        }
        Ok(n)
    }
}

/// Turn an error met while reading the stream into a layer error.
fn stream_error(e: io::Error, stopped: Option<Stopped>, limits: &Limits) -> Error {
    match stopped {
        Some(Stopped::TooBig) => Error::LimitExceeded {
            what: LimitKind::Bytes,
            limit: limits.max_bytes,
        },
        Some(Stopped::Cancelled) => Error::Cancelled,
        None => data_error(e),
    }
}

/// An error from a decoder or from `tar` parsing the stream.
pub(crate) fn data_error(e: io::Error) -> Error {
    match e.kind() {
        // What decoders and `tar` report for bad data.
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => Error::Corrupt(format!("cannot read the layer: {e}")),
        _ => Error::io("reading the layer blob", e),
    }
}

/// What travels from the decompressor thread to the unpacker.
enum Chunk {
    /// A buffer and how much of it is filled.
    Data(Vec<u8>, usize),
    /// The stream ended: its diff id and length.
    End(Digest, u64),
    /// The stream failed here.
    Failed(Error),
}

/// Decompress and hash `src` on a helper thread while `consume` reads the
/// tar stream from the returned [`Chunks`]. Whatever `consume` leaves
/// unread (the tar end blocks and padding, part of the diff id too) is
/// read to the end. Returns what `consume` returned, the diff id and the
/// stream length.
pub(crate) fn pipeline<T>(
    src: impl Read + Send,
    limits: &Limits,
    cancel: &AtomicBool,
    consume: impl FnOnce(&mut Chunks) -> Result<T>,
) -> Result<(T, Digest, u64)> {
    let (tx, rx) = mpsc::sync_channel(AHEAD);
    let (recycle_tx, recycle_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("berth-inflate".into())
            .spawn_scoped(scope, move || {
                produce(src, limits, cancel, &tx, &recycle_rx)
            })
            .map_err(|e| Error::io("starting the decompression thread", e))?;
        // Dropped at the end of this closure, before the scope joins the
        // producer: a producer blocked on a full channel then wakes up.
        let mut chunks = Chunks {
            rx,
            recycle: recycle_tx,
            buf: Vec::new(),
            len: 0,
            pos: 0,
            end: None,
            failed: None,
        };
        let result = consume(&mut chunks).and_then(|t| {
            io::copy(&mut chunks, &mut io::sink()).map_err(data_error)?;
            Ok(t)
        });
        if let Some(e) = chunks.failed.take() {
            return Err(e);
        }
        let t = result?;
        let (diff_id, len) = chunks
            .end
            .take()
            .ok_or_else(|| Error::Corrupt("the layer stream ended without its end".into()))?;
        Ok((t, diff_id, len))
    })
}

/// The decompressor thread: fill chunks until the end of the stream, an
/// error, or the unpacker hanging up.
fn produce(
    src: impl Read,
    limits: &Limits,
    cancel: &AtomicBool,
    tx: &mpsc::SyncSender<Chunk>,
    recycle: &mpsc::Receiver<Vec<u8>>,
) {
    let stopped = Cell::new(None);
    let mut tally = match decompress(src) {
        Ok(stream) => Tally::new(stream, limits, cancel, &stopped),
        Err(e) => {
            let _ = tx.send(Chunk::Failed(e));
            return;
        }
    };
    loop {
        let mut buf = recycle.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let mut len = 0;
        let mut eof = false;
        let mut failure = None;
        while len < buf.len() {
            match tally.read(&mut buf[len..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(stream_error(e, stopped.get(), limits));
                    break;
                }
            }
        }
        // A send fails only when the unpacker has stopped: nothing to do.
        if len > 0 && tx.send(Chunk::Data(buf, len)).is_err() {
            return;
        }
        if let Some(e) = failure {
            let _ = tx.send(Chunk::Failed(e));
            return;
        }
        if eof {
            let (diff_id, n) = tally.digest();
            let _ = tx.send(Chunk::End(diff_id, n));
            return;
        }
    }
}

/// The decompressed stream, as the unpacker reads it.
pub(crate) struct Chunks {
    rx: mpsc::Receiver<Chunk>,
    recycle: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    len: usize,
    pos: usize,
    end: Option<(Digest, u64)>,
    failed: Option<Error>,
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.failed.is_some() {
                return Err(io::Error::other("the layer stream failed"));
            }
            if self.end.is_some() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Chunk::Data(buf, len)) => {
                    let old = std::mem::replace(&mut self.buf, buf);
                    if !old.is_empty() {
                        let _ = self.recycle.send(old);
                    }
                    (self.len, self.pos) = (len, 0);
                }
                Ok(Chunk::End(diff_id, n)) => self.end = Some((diff_id, n)),
                Ok(Chunk::Failed(e)) => self.failed = Some(e),
                // Only if the thread panicked; the scope re-raises that.
                Err(_) => {
                    self.failed = Some(Error::io(
                        "reading the layer blob",
                        io::Error::other("the decompression thread stopped"),
                    ))
                }
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn pipeline_reads_everything_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        let cancel = AtomicBool::new(false);
        let (head, diff_id, len) = pipeline(&data[..], &Limits::default(), &cancel, |r| {
            let mut head = vec![0; CHUNK + 7];
            r.read_exact(&mut head).unwrap();
            Ok(head)
        })
        .unwrap();
        assert_eq!(head, data[..CHUNK + 7]);
        assert_eq!((diff_id, len), (Digest::of(&data), data.len() as u64));

        // The stream's own failure wins over what the reader made of it.
        let small = Limits {
            max_bytes: 10,
            max_entries: 1,
        };
        let err = pipeline(&data[..], &small, &cancel, |r| {
            r.read_exact(&mut [0; 100]).map_err(data_error)
        })
        .unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");

        // An unpacker error is kept, and the producer stops.
        let err = pipeline(&data[..], &Limits::default(), &cancel, |_| -> Result<()> {
            Err(Error::Cancelled)
        })
        .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err:?}");
    }

    #[test]
    fn tally_hashes_limits_and_cancels() {
        let data = vec![7u8; 10_000];
        let stopped = Cell::new(None);
        let cancel = AtomicBool::new(false);
        let limits = Limits {
            max_bytes: 10_000,
            max_entries: 1,
        };
        let t = Tally::new(&data[..], &limits, &cancel, &stopped);
        assert_eq!(t.finish().unwrap(), (Digest::of(&data), 10_000));

        let small = Limits {
            max_bytes: 9_999,
            ..limits
        };
        let t = Tally::new(&data[..], &small, &cancel, &stopped);
        assert!(t.finish().is_err());
        assert_eq!(stopped.get(), Some(Stopped::TooBig));

        let stopped = Cell::new(None);
        cancel.store(true, Ordering::Relaxed);
        let t = Tally::new(&data[..], &limits, &cancel, &stopped);
        assert!(t.finish().is_err());
        assert_eq!(stopped.get(), Some(Stopped::Cancelled));
    }
}
