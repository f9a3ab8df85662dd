//! The decompressed tar stream of a layer blob: format detection, the
//! diff id (sha256 of every decompressed byte), the byte, ratio and
//! free-space guards against decompression bombs, and cancellation.
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

use super::space::{Disk, Shortage};
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
    /// Past the ratio guard, with this many compressed bytes read.
    Expands {
        compressed: u64,
    },
    /// The disk is below its reserve (or could not be measured: the
    /// details wait in [`Tally::shortage`]).
    NoSpace,
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

/// Open the decompressed stream of a blob. `compressed` counts the blob
/// bytes the decoder pulls in.
pub(crate) fn decompress<'a>(
    mut src: impl Read + 'a,
    compressed: &'a Cell<u64>,
) -> Result<Box<dyn Read + 'a>> {
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
    compressed.set(have as u64);
    // Counted under the read-ahead buffer: one addition per refill.
    let src = BufReader::with_capacity(
        INPUT_BUFFER,
        io::Cursor::new(magic).take(have as u64).chain(Counted {
            inner: src,
            count: compressed,
        }),
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

/// Counts the bytes read through it.
struct Counted<'a, R> {
    inner: R,
    count: &'a Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Hashes and counts everything read through it, enforces the byte limit,
/// the expansion ratio and the free-space reserve, and polls the cancel
/// flag.
///
/// Per read it does one comparison beyond hashing: `next_check` is the
/// lowest byte count at which any of the checks could fire, and only
/// [`Tally::check`] (at most once per MiB or so) looks at each.
pub(crate) struct Tally<'a, R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    max: u64,
    /// Compressed bytes read, counted by [`decompress`].
    compressed: &'a Cell<u64>,
    max_ratio: u64,
    ratio_floor: u64,
    disk: Option<Disk<'a>>,
    /// Why the disk check stopped the stream, until [`produce`] takes it.
    shortage: Option<Shortage>,
    next_poll: u64,
    next_check: u64,
    cancel: &'a AtomicBool,
    stopped: &'a Cell<Option<Stopped>>,
}

impl<'a, R: Read> Tally<'a, R> {
    pub(crate) fn new(
        inner: R,
        limits: &Limits,
        compressed: &'a Cell<u64>,
        disk: Option<Disk<'a>>,
        cancel: &'a AtomicBool,
        stopped: &'a Cell<Option<Stopped>>,
    ) -> Self {
        Tally {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            max: limits.max_bytes,
            compressed,
            max_ratio: limits.max_ratio,
            ratio_floor: limits.ratio_floor,
            disk,
            shortage: None,
            next_poll: 0,
            // Checked before the first byte: the cancel flag and the disk.
            next_check: 0,
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
            Stopped::Expands { .. } => "layer expansion ratio exceeded",
            Stopped::NoSpace => "not enough free disk space",
            Stopped::Cancelled => "cancelled",
        })
    }

    /// Decompressed bytes allowed with what was read of the blob so far.
    fn ratio_allows(&self) -> u64 {
        if self.max_ratio == 0 {
            return u64::MAX;
        }
        self.ratio_floor
            .max(self.compressed.get().saturating_mul(self.max_ratio))
    }

    /// Every check, when one of them may be due; then the next time one
    /// can be.
    fn check(&mut self) -> io::Result<()> {
        if self.bytes > self.max {
            return Err(self.stop(Stopped::TooBig));
        }
        let allowed = self.ratio_allows();
        if self.bytes > allowed {
            let compressed = self.compressed.get();
            return Err(self.stop(Stopped::Expands { compressed }));
        }
        if self.bytes >= self.next_poll {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(self.stop(Stopped::Cancelled));
            }
            self.next_poll = self.bytes + CANCEL_EVERY;
        }
        let mut next_disk = u64::MAX;
        if let Some(disk) = &mut self.disk {
            if self.bytes >= disk.next() {
                if let Err(shortage) = disk.check(self.bytes) {
                    self.shortage = Some(shortage);
                    return Err(self.stop(Stopped::NoSpace));
                }
            }
            next_disk = disk.next();
        }
        self.next_check = self
            .next_poll
            .min(self.max.saturating_add(1))
            .min(allowed.saturating_add(1))
            .min(next_disk);
        Ok(())
    }
}

impl<R: Read> Read for Tally<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = self.stopped.get() {
            return Err(self.stop(why));
        }
        // Before the read: the first call checks before any byte, and a
        // read that passed a limit is caught by the next call, which the
        // end of the stream makes too.
        if self.bytes >= self.next_check {
            self.check()?;
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Turn an error met while reading the stream into a layer error.
fn stream_error<R>(e: io::Error, tally: &mut Tally<'_, R>, limits: &Limits) -> Error {
    match tally.stopped.get() {
        Some(Stopped::TooBig) => Error::LimitExceeded {
            what: LimitKind::Bytes,
            limit: limits.max_bytes,
        },
        Some(Stopped::Expands { compressed }) => Error::Bomb {
            compressed,
            expanded: tally.bytes,
            ratio: limits.max_ratio,
        },
        Some(Stopped::NoSpace) => match (tally.shortage.take(), &tally.disk) {
            (Some(shortage), Some(disk)) => disk.error(shortage, tally.bytes),
            _ => data_error(e),
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
/// read to the end. `disk`, when given, is checked for free space before
/// the first byte and as the stream goes. Returns what `consume` returned,
/// the diff id and the stream length.
pub(crate) fn pipeline<T>(
    src: impl Read + Send,
    limits: &Limits,
    disk: Option<Disk<'_>>,
    cancel: &AtomicBool,
    consume: impl FnOnce(&mut Chunks) -> Result<T>,
) -> Result<(T, Digest, u64)> {
    let (tx, rx) = mpsc::sync_channel(AHEAD);
    let (recycle_tx, recycle_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("berth-inflate".into())
            .spawn_scoped(scope, move || {
                produce(src, limits, disk, cancel, &tx, &recycle_rx)
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
    disk: Option<Disk<'_>>,
    cancel: &AtomicBool,
    tx: &mpsc::SyncSender<Chunk>,
    recycle: &mpsc::Receiver<Vec<u8>>,
) {
    let stopped = Cell::new(None);
    let compressed = Cell::new(0);
    let mut tally = match decompress(src, &compressed) {
        Ok(stream) => Tally::new(stream, limits, &compressed, disk, cancel, &stopped),
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
                    failure = Some(stream_error(e, &mut tally, limits));
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
        let (head, diff_id, len) = pipeline(&data[..], &Limits::default(), None, &cancel, |r| {
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
            ..Limits::default()
        };
        let err = pipeline(&data[..], &small, None, &cancel, |r| {
            r.read_exact(&mut [0; 100]).map_err(data_error)
        })
        .unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");

        // An unpacker error is kept, and the producer stops.
        let err = pipeline(
            &data[..],
            &Limits::default(),
            None,
            &cancel,
            |_| -> Result<()> { Err(Error::Cancelled) },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err:?}");
    }

    fn tally<'a>(
        data: &'a [u8],
        limits: &Limits,
        compressed: &'a Cell<u64>,
        cancel: &'a AtomicBool,
        stopped: &'a Cell<Option<Stopped>>,
    ) -> Tally<'a, &'a [u8]> {
        Tally::new(data, limits, compressed, None, cancel, stopped)
    }

    #[test]
    fn tally_hashes_limits_and_cancels() {
        let data = vec![7u8; 10_000];
        let stopped = Cell::new(None);
        let cancel = AtomicBool::new(false);
        let compressed = Cell::new(0);
        let limits = Limits {
            max_bytes: 10_000,
            ..Limits::default()
        };
        let t = tally(&data, &limits, &compressed, &cancel, &stopped);
        assert_eq!(t.finish().unwrap(), (Digest::of(&data), 10_000));

        let small = Limits {
            max_bytes: 9_999,
            ..limits
        };
        let t = tally(&data, &small, &compressed, &cancel, &stopped);
        assert!(t.finish().is_err());
        assert_eq!(stopped.get(), Some(Stopped::TooBig));

        let stopped = Cell::new(None);
        cancel.store(true, Ordering::Relaxed);
        let t = tally(&data, &limits, &compressed, &cancel, &stopped);
        assert!(t.finish().is_err());
        assert_eq!(stopped.get(), Some(Stopped::Cancelled));
    }

    /// Decompress all of `blob` through a [`Tally`] with `limits`.
    fn inflate(blob: &[u8], limits: &Limits) -> (io::Result<(Digest, u64)>, Option<Stopped>) {
        let stopped = Cell::new(None);
        let cancel = AtomicBool::new(false);
        let compressed = Cell::new(0);
        let stream = decompress(blob, &compressed).unwrap();
        let r = Tally::new(stream, limits, &compressed, None, &cancel, &stopped).finish();
        (r, stopped.get())
    }

    #[test]
    fn ratio_guard_stops_bombs_past_the_floor_only() {
        let limits = Limits {
            max_ratio: 100,
            ratio_floor: 8 << 20,
            ..Limits::default()
        };
        let zeros = vec![0u8; 64 << 20];
        for (name, blob) in [
            ("gzip", crate::layers::tests::gzip(&zeros)),
            ("zstd", crate::layers::tests::zstd(&zeros)),
        ] {
            let (r, stopped) = inflate(&blob, &limits);
            assert!(r.is_err(), "{name}: a bomb passed");
            let Some(Stopped::Expands { compressed }) = stopped else {
                panic!("{name}: stopped for {stopped:?}");
            };
            assert!(compressed <= blob.len() as u64, "{name}: {compressed}");
            // Below the floor, zeros are fine whatever their ratio.
            let small = Limits {
                ratio_floor: 64 << 20,
                ..limits.clone()
            };
            let (r, stopped) = inflate(&blob, &small);
            assert_eq!(r.unwrap().1, 64 << 20, "{name}");
            assert_eq!(stopped, None);
            // 0 turns the guard off.
            let off = Limits {
                max_ratio: 0,
                ..limits.clone()
            };
            assert!(inflate(&blob, &off).0.is_ok(), "{name}");
        }

        // Text past the floor passes.
        let text = crate::layers::tests::text(16 << 20);
        let gz = crate::layers::tests::gzip(&text);
        let (r, stopped) = inflate(&gz, &limits);
        assert_eq!((r.unwrap().1, stopped), (16 << 20, None));
    }

    #[test]
    fn ratio_error_says_what_and_how() {
        let limits = Limits {
            max_ratio: 100,
            ratio_floor: 1 << 20,
            ..Limits::default()
        };
        let blob = zstd::encode_all(&vec![0u8; 32 << 20][..], 3).unwrap();
        let cancel = AtomicBool::new(false);
        let err = pipeline(&blob[..], &limits, None, &cancel, |r| {
            io::copy(r, &mut io::sink()).map_err(data_error)
        })
        .unwrap_err();
        let Error::Bomb {
            compressed,
            expanded,
            ratio,
        } = &err
        else {
            panic!("{err:?}")
        };
        let (compressed, expanded) = (*compressed, *expanded);
        assert_eq!(*ratio, 100);
        assert!(expanded > 1 << 20 && expanded < 4 << 20, "{expanded}");
        assert!(compressed <= blob.len() as u64);
        let msg = err.to_string();
        for part in [
            "decompression bomb",
            "limits.max_layer_ratio",
            "nothing of it",
        ] {
            assert!(msg.contains(part), "{part:?} missing: {msg}");
        }
    }
}
