//! Sparse files in PAX form (GNU tar's formats 0.0, 0.1 and 1.0): which
//! byte ranges of a file hold data, so that only those are written and the
//! rest stays a hole (issue 11: a sparse file of 1 TB with 4 KiB of data
//! must cost 4 KiB, not fill the disk with zeros).
//!
//! The PAX records name the format:
//!
//! - 0.0: `GNU.sparse.size`, `GNU.sparse.numblocks`, then one
//!   `GNU.sparse.offset` and `GNU.sparse.numbytes` per segment;
//! - 0.1: `GNU.sparse.size`, `GNU.sparse.numblocks`, `GNU.sparse.map`
//!   (`offset,size,offset,size,…`);
//! - 1.0: `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name`,
//!   `GNU.sparse.realsize`; the map opens the entry's data as decimal lines
//!   (the count, then offset and size of each segment), padded to 512 bytes.
//!
//! In every format the data segments follow, back to back. The entry's own
//! name is a placeholder (`GNUSparseFile.0/x`) where `GNU.sparse.name` is
//! set. This follows Go's `archive/tar` (which Docker and containerd use):
//! same formats, same checks, same 1 MiB bound on a map.
//!
//! The old GNU form (type `S`, map in the header) is read by the `tar`
//! crate itself; see `unpack.rs`.

use std::io::Read;

/// Largest map accepted, as text (Go's `maxSpecialFileSize`): bounds the
/// memory a map can take.
const MAX_MAP: usize = 1 << 20;

/// One run of data in a sparse file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// The `GNU.sparse.*` records of one entry.
#[derive(Debug, Default)]
pub(crate) struct Records {
    major: Option<Vec<u8>>,
    minor: Option<Vec<u8>>,
    /// The file's real name.
    pub(crate) name: Option<Vec<u8>>,
    size: Option<Vec<u8>>,
    realsize: Option<Vec<u8>>,
    numblocks: Option<Vec<u8>>,
    map: Option<Vec<u8>>,
    /// 0.0: offset, numbytes, offset, … in record order.
    pairs: Vec<Vec<u8>>,
    map_bytes: usize,
}

/// Where a sparse entry's map is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Map {
    /// In the records (0.0, 0.1).
    Known(Vec<Segment>),
    /// At the start of the data (1.0).
    InData,
}

/// What a sparse entry is: its real size and where its map is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Sparse {
    pub(crate) real_size: u64,
    pub(crate) map: Map,
}

impl Records {
    /// Take the record `key=value` if it is a sparse one; `Ok(false)` if
    /// not.
    pub(crate) fn take(&mut self, key: &[u8], value: &[u8]) -> Result<bool, String> {
        let Some(field) = key.strip_prefix(b"GNU.sparse.") else {
            return Ok(false);
        };
        let value = value.to_vec();
        match field {
            b"major" => self.major = Some(value),
            b"minor" => self.minor = Some(value),
            b"name" => self.name = Some(value),
            b"size" => self.size = Some(value),
            b"realsize" => self.realsize = Some(value),
            b"numblocks" => self.numblocks = Some(value),
            b"map" => {
                self.map_bytes += value.len();
                self.map = Some(value);
            }
            b"offset" | b"numbytes" => {
                let want_offset = self.pairs.len().is_multiple_of(2);
                if want_offset != (field == b"offset") {
                    return Err(
                        "its GNU.sparse.offset and numbytes records are not in pairs".into(),
                    );
                }
                self.map_bytes += value.len() + 1;
                self.pairs.push(value);
            }
            // Unknown sparse records carry nothing we need.
            _ => {}
        }
        if self.map_bytes > MAX_MAP {
            return Err("its sparse map is larger than 1 MiB".into());
        }
        Ok(true)
    }

    /// Whether any record makes this a sparse file, and which format.
    pub(crate) fn sparse(&self) -> Result<Option<Sparse>, String> {
        let version = (self.major.as_deref(), self.minor.as_deref());
        let v1 = match version {
            (Some(b"1"), Some(b"0")) => true,
            (Some(b"0"), Some(b"0" | b"1")) => false,
            (None, None) if self.map.is_some() || !self.pairs.is_empty() => false,
            (None, None) => return Ok(None),
            _ => return Err("it uses a GNU sparse format other than 0.0, 0.1 and 1.0".into()),
        };
        let size = self.size.as_deref().or(self.realsize.as_deref());
        let real_size = match size {
            Some(s) => number(s).ok_or("its GNU.sparse size record is not a number")?,
            None => return Err("it is sparse but has no GNU.sparse size record".into()),
        };
        if v1 {
            return Ok(Some(Sparse {
                real_size,
                map: Map::InData,
            }));
        }
        let numbers: Vec<u64> = match &self.map {
            Some(m) if m.is_empty() => Vec::new(),
            Some(m) => m
                .split(|&b| b == b',')
                .map(number)
                .collect::<Option<_>>()
                .ok_or("its GNU.sparse.map is not a list of numbers")?,
            None => self
                .pairs
                .iter()
                .map(|v| number(v))
                .collect::<Option<_>>()
                .ok_or("a GNU.sparse.offset or numbytes record is not a number")?,
        };
        let map = segments(&numbers)?;
        if let Some(n) = &self.numblocks {
            if number(n) != Some(map.len() as u64) {
                return Err("its GNU.sparse.numblocks does not match its map".into());
            }
        }
        Ok(Some(Sparse {
            real_size,
            map: Map::Known(map),
        }))
    }
}

/// Pairs of numbers into segments.
fn segments(numbers: &[u64]) -> Result<Vec<Segment>, String> {
    if !numbers.len().is_multiple_of(2) {
        return Err("its sparse map has an offset without a size".into());
    }
    Ok(numbers
        .chunks_exact(2)
        .map(|p| Segment {
            offset: p[0],
            len: p[1],
        })
        .collect())
}

/// A decimal number as tar writes it (no sign, no spaces).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Read the 1.0 map from the start of the data: returns it and the bytes it
/// took (whole 512-byte blocks).
pub(crate) fn read_map(r: &mut impl Read) -> Result<(Vec<Segment>, u64), String> {
    let mut text = Vec::new();
    let mut lines = 0usize;
    let mut block = [0u8; 512];
    let mut feed = |want: usize, text: &mut Vec<u8>, lines: &mut usize| -> Result<(), String> {
        while *lines < want {
            if text.len() + block.len() > MAX_MAP {
                return Err("its sparse map is larger than 1 MiB".into());
            }
            r.read_exact(&mut block)
                .map_err(|_| "the tar stream ends in its sparse map".to_string())?;
            *lines += block.iter().filter(|&&b| b == b'\n').count();
            text.extend_from_slice(&block);
        }
        Ok(())
    };
    feed(1, &mut text, &mut lines)?;
    let mut tokens = text.split(|&b| b == b'\n');
    let count = tokens
        .next()
        .and_then(number)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= MAX_MAP / 4)
        .ok_or("its sparse map does not start with a count")?;
    drop(tokens);
    feed(1 + 2 * count, &mut text, &mut lines)?;
    let numbers: Vec<u64> = text
        .split(|&b| b == b'\n')
        .skip(1)
        .take(2 * count)
        .map(number)
        .collect::<Option<_>>()
        .ok_or("its sparse map holds something other than numbers")?;
    Ok((segments(&numbers)?, text.len() as u64))
}

/// Check a map against the file's real size and the data the entry holds
/// (the checks of Go's `validateSparseEntries`, plus the data length).
pub(crate) fn validate(map: &[Segment], real_size: u64, data: u64) -> Result<(), String> {
    if real_size > i64::MAX as u64 {
        return Err("its real size is beyond what a file can have".into());
    }
    let mut end = 0u64;
    let mut total = 0u64;
    for s in map {
        let s_end = s
            .offset
            .checked_add(s.len)
            .ok_or("a sparse segment ends beyond 2^64")?;
        if s.offset < end {
            return Err("its sparse segments overlap or are out of order".into());
        }
        if s_end > real_size {
            return Err("a sparse segment ends past the file's real size".into());
        }
        end = s_end;
        total += s.len;
    }
    if total != data {
        return Err(format!(
            "its sparse map lists {total} bytes of data but the entry holds {data}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(pairs: &[(&str, &str)]) -> Records {
        let mut r = Records::default();
        for (k, v) in pairs {
            assert!(r.take(k.as_bytes(), v.as_bytes()).unwrap(), "{k}");
        }
        r
    }

    fn seg(offset: u64, len: u64) -> Segment {
        Segment { offset, len }
    }

    #[test]
    fn reads_each_format() {
        let r = records(&[
            ("GNU.sparse.size", "1000"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "10"),
            ("GNU.sparse.offset", "500"),
            ("GNU.sparse.numbytes", "20"),
        ]);
        let want = Sparse {
            real_size: 1000,
            map: Map::Known(vec![seg(0, 10), seg(500, 20)]),
        };
        assert_eq!(r.sparse().unwrap(), Some(want));

        let r = records(&[
            ("GNU.sparse.major", "0"),
            ("GNU.sparse.minor", "1"),
            ("GNU.sparse.size", "1000"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.map", "0,10,500,20"),
        ]);
        assert_eq!(
            r.sparse().unwrap().unwrap().map,
            Map::Known(vec![seg(0, 10), seg(500, 20)])
        );

        let r = records(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "big"),
            ("GNU.sparse.realsize", "1099511627776"),
        ]);
        assert_eq!(
            r.sparse().unwrap(),
            Some(Sparse {
                real_size: 1 << 40,
                map: Map::InData
            })
        );
        assert_eq!(r.name.as_deref(), Some(&b"big"[..]));

        assert_eq!(Records::default().sparse().unwrap(), None);
        let mut plain = Records::default();
        assert!(!plain.take(b"path", b"x").unwrap());
    }

    #[test]
    fn refuses_bad_records() {
        for bad in [
            &[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")][..],
            &[("GNU.sparse.map", "0,10")],
            &[("GNU.sparse.size", "x"), ("GNU.sparse.map", "0,10")],
            &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,10,5")],
            &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,-1")],
            &[
                ("GNU.sparse.size", "10"),
                ("GNU.sparse.numblocks", "3"),
                ("GNU.sparse.map", "0,10"),
            ],
        ] {
            assert!(records(bad).sparse().is_err(), "{bad:?}");
        }
        let mut r = Records::default();
        assert!(r.take(b"GNU.sparse.numbytes", b"1").is_err());
        let mut r = Records::default();
        assert!(r.take(b"GNU.sparse.map", &vec![b'1'; MAX_MAP + 1]).is_err());
    }

    #[test]
    fn reads_the_map_in_the_data() {
        let mut data = b"2\n0\n10\n500\n20\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"rest");
        let mut r = &data[..];
        let (map, used) = read_map(&mut r).unwrap();
        assert_eq!((map, used), (vec![seg(0, 10), seg(500, 20)], 512));
        assert_eq!(r, b"rest");

        // A map over more than one block.
        let mut text = String::from("100\n");
        for i in 0..100 {
            text.push_str(&format!("{}\n1\n", i * 1000));
        }
        let mut data = text.into_bytes();
        data.resize(1024, 0);
        let (map, used) = read_map(&mut &data[..]).unwrap();
        assert_eq!((map.len(), used), (100, 1024));

        for bad in [&b"x\n"[..], b"2\n0\n10\n", b"1\n0\nten\n", b"99999999999\n"] {
            let mut d = bad.to_vec();
            d.resize(512, 0);
            assert!(read_map(&mut &d[..]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validates_maps() {
        assert!(validate(&[seg(0, 10), seg(500, 20)], 1000, 30).is_ok());
        assert!(validate(&[], 1 << 40, 0).is_ok());
        assert!(validate(&[seg(0, 10), seg(5, 20)], 1000, 30).is_err());
        assert!(validate(&[seg(500, 20), seg(0, 10)], 1000, 30).is_err());
        assert!(validate(&[seg(990, 20)], 1000, 20).is_err());
        assert!(validate(&[seg(0, 10)], 1000, 11).is_err());
        assert!(validate(&[seg(u64::MAX, 2)], u64::MAX, 2).is_err());
        assert!(validate(&[], u64::MAX, 0).is_err());
    }
}
