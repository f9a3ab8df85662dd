//! The decompressed tar stream of a layer blob: format detection, the
//! diff id (sha256 of every decompressed byte), the size limit and
//! cancellation, all in one reader between the decompressor and `tar`.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};

use super::{Error, LimitKind, Limits};
use crate::content::Digest;

/// Read-ahead on the compressed blob; also the decompressor's input buffer.
const INPUT_BUFFER: usize = 256 * 1024;
/// How often (in decompressed bytes) the cancel flag is polled.
const CANCEL_EVERY: u64 = 4 << 20;

/// Why the stream stopped on purpose. The `tar` crate wraps or replaces
/// the errors our reader returns, so the reason is kept on the side.
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
pub(crate) fn decompress<'a>(mut src: impl Read + 'a) -> Result<Box<dyn Read + 'a>, Error> {
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

    /// Read what is left (the tar end blocks and any padding after them,
    /// which belong to the diff id too) and return the diff id and size.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.bytes))
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
pub(crate) fn stream_error(e: io::Error, stopped: Option<Stopped>, limits: &Limits) -> Error {
    match stopped {
        Some(Stopped::TooBig) => Error::LimitExceeded {
            what: LimitKind::Bytes,
            limit: limits.max_bytes,
        },
        Some(Stopped::Cancelled) => Error::Cancelled,
        None => match e.kind() {
            // What decoders and `tar` report for bad data.
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::Other => Error::Corrupt(format!("cannot read the layer: {e}")),
            _ => Error::io("reading the layer blob", e),
        },
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
