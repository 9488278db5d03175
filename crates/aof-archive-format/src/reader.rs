//! Reading objects back: one frame at a time, or the whole segment.

use crate::FormatError;
use crate::table::FrameLocation;
use aof_record::checksum::Crc64;
use std::io::{self, Read, Write};

/// Decompresses one frame, given exactly its compressed bytes (one ranged
/// read of `frame.compressed`). Checks the length against the table, the
/// table's checksum against the frame's, and lets zstd check the frame's
/// content checksum. Allocates at most the table's decompressed size, which
/// [`crate::SeekTable::decode`] bounded by [`crate::MAX_FRAME_SIZE`].
pub fn decode_frame(compressed: &[u8], frame: &FrameLocation) -> Result<Vec<u8>, FormatError> {
    let index = frame.index;
    let expected_len = frame.compressed.end - frame.compressed.start;
    if compressed.len() as u64 != expected_len {
        return Err(FormatError::FrameBytes {
            index,
            expected: u32::try_from(expected_len).unwrap_or(u32::MAX),
            actual: compressed.len() as u64,
        });
    }
    let size = frame.decompressed.end - frame.decompressed.start;
    let size32 = u32::try_from(size).unwrap_or(u32::MAX);
    if size > u64::from(crate::MAX_FRAME_SIZE) {
        return Err(FormatError::FrameTooLarge {
            index,
            size: size32,
            max: crate::MAX_FRAME_SIZE,
        });
    }
    if let Some(expected) = frame.checksum {
        let actual = compressed
            .len()
            .checked_sub(4)
            .map(|t| {
                u32::from_le_bytes([
                    compressed[t],
                    compressed[t + 1],
                    compressed[t + 2],
                    compressed[t + 3],
                ])
            })
            .unwrap_or(0);
        if actual != expected {
            return Err(FormatError::FrameChecksum {
                index,
                expected,
                actual,
            });
        }
    }
    // Room for one byte more than the table says, so a frame that holds
    // more is caught as a length mismatch rather than a zstd error.
    let mut out = Vec::with_capacity(size as usize + 1);
    let mut d =
        zstd::bulk::Decompressor::new().map_err(|source| FormatError::Decompress { index, source })?;
    d.decompress_to_buffer(compressed, &mut out)
        .map_err(|source| FormatError::Decompress { index, source })?;
    if out.len() as u64 != size {
        return Err(FormatError::FrameLength {
            index,
            expected: size32,
            actual: out.len() as u64,
        });
    }
    Ok(out)
}

/// A writer that checksums and counts what passes through.
struct Tally<W> {
    inner: W,
    crc: Crc64,
    len: u64,
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Restores a whole segment: decompresses an object read from `object`
/// into `out` (the seek table, a skippable frame, is skipped as by
/// `zstd -d`), and checks the result's CRC-64/NVME against
/// `expected_checksum` when given. Returns the segment's size and checksum.
pub fn restore(
    object: impl Read,
    out: impl Write,
    expected_checksum: Option<u64>,
) -> Result<(u64, u64), RestoreError> {
    let mut tally = Tally {
        inner: out,
        crc: Crc64::new(),
        len: 0,
    };
    let mut decoder = zstd::stream::read::Decoder::new(object).map_err(RestoreError::Io)?;
    io::copy(&mut decoder, &mut tally).map_err(RestoreError::Io)?;
    tally.flush().map_err(RestoreError::Io)?;
    let actual = tally.crc.finish();
    if let Some(expected) = expected_checksum
        && expected != actual
    {
        return Err(RestoreError::Format(FormatError::SegmentChecksum {
            expected,
            actual,
        }));
    }
    Ok((tally.len, actual))
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// Reading, decompressing or writing failed (zstd reports damaged
    /// frames and failed content checksums as I/O errors).
    #[error("restore: {0}")]
    Io(#[source] io::Error),
    /// The bytes decompressed but are not the segment expected.
    #[error(transparent)]
    Format(FormatError),
}
