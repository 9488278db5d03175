//! The wire encoding: each [`SnapshotChunk`] in one frame.
//!
//! ```text
//! offset size  field
//!  0      4    magic "AOFS"
//!  4      2    format version, u16 little-endian (1)
//!  6      2    flags, u16 little-endian (0; any other value is refused)
//!  8      4    payload length N, u32 little-endian (at most MAX_FRAME_LEN)
//! 12      8    CRC-64/NVME of bytes 0..12 followed by the payload, u64 LE
//! 20      N    payload: the chunk in bincode 2 (standard configuration:
//!              little-endian, variable-length integers) through serde
//! ```
//!
//! The full description, field by field, is `docs/snapshot.md`. Decoding
//! never allocates more than [`MAX_FRAME_LEN`] for one frame: the length is
//! checked before the payload is read, and bincode is given the same limit
//! for every length inside it.

use crate::chunk::{FileChunk, SnapshotChunk, SnapshotMetadata, WIRE_VERSION};
use crate::error::{SnapshotError, SnapshotResult};
use aof_record::checksum::Crc64;
use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bytes::Bytes;
use serde::Deserialize;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// The magic bytes that start every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"AOFS";

/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 20;

/// Most bytes of one frame's payload: a chunk of [`crate::MAX_CHUNK_SIZE`]
/// data with room to spare, and metadata of [`crate::MAX_FILES`] files.
pub const MAX_FRAME_LEN: usize = 32 << 20;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_FRAME_LEN>>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// The CRC a frame stores: over its first 12 bytes, then its payload.
fn frame_crc(head: &[u8], payload: &[u8]) -> u64 {
    let mut crc = Crc64::new();
    crc.update(&head[..12]);
    crc.update(payload);
    crc.finish()
}

/// Encodes `chunk` as one frame into `out` (cleared first, so a caller can
/// reuse one buffer for every frame).
pub fn encode_frame(chunk: &SnapshotChunk, out: &mut Vec<u8>) -> SnapshotResult<()> {
    out.clear();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    bincode::serde::encode_into_std_write(chunk, out, config())
        .map_err(|source| SnapshotError::Encode { source })?;
    let len = out.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(SnapshotError::FrameTooLarge {
            offset: 0,
            len: len as u64,
            max: MAX_FRAME_LEN as u64,
        });
    }
    out[0..4].copy_from_slice(&FRAME_MAGIC);
    out[4..6].copy_from_slice(&WIRE_VERSION.to_le_bytes());
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    let (head, payload) = out.split_at(FRAME_HEADER_LEN);
    let crc = frame_crc(head, payload);
    out[12..20].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The metadata's canonical encoding (what [`crate::snapshot_checksum`] hashes).
pub(crate) fn encode_metadata(metadata: &SnapshotMetadata) -> SnapshotResult<Vec<u8>> {
    bincode::serde::encode_to_vec(metadata, config()).map_err(|source| SnapshotError::Encode { source })
}

/// A chunk as decoded: [`SnapshotChunk`]'s fields and layout, its data
/// borrowed from the frame (and then sliced from it without a copy).
#[derive(Deserialize)]
struct WireChunk<'a> {
    sequence: u64,
    metadata: Option<SnapshotMetadata>,
    #[serde(borrow)]
    file_chunk: Option<WireFile<'a>>,
    is_final: bool,
    checksum: Option<[u8; 32]>,
}

/// [`FileChunk`]'s fields and layout, borrowing its data.
#[derive(Deserialize)]
struct WireFile<'a> {
    file_name: String,
    offset: u64,
    #[serde(borrow)]
    data: &'a [u8],
    is_last_chunk: bool,
    sha256: Option<[u8; 32]>,
}

/// Decodes one frame's `payload`, which started at stream offset `offset`.
/// Every byte of the payload must belong to the chunk. The chunk's data is
/// a slice of `payload` (no copy).
pub fn decode_payload(payload: &Bytes, offset: u64) -> SnapshotResult<SnapshotChunk> {
    let (wire, used): (WireChunk<'_>, usize) = bincode::serde::borrow_decode_from_slice(payload, config())
        .map_err(|source| SnapshotError::Decode { offset, source })?;
    if used != payload.len() {
        return Err(SnapshotError::Decode {
            offset,
            source: bincode::error::DecodeError::Other("bytes left over after the chunk"),
        });
    }
    Ok(SnapshotChunk {
        sequence: wire.sequence,
        metadata: wire.metadata,
        file_chunk: wire.file_chunk.map(|f| FileChunk {
            file_name: f.file_name,
            offset: f.offset,
            data: payload.slice_ref(f.data),
            is_last_chunk: f.is_last_chunk,
            sha256: f.sha256,
        }),
        is_final: wire.is_final,
        checksum: wire.checksum,
    })
}

/// Payload bytes a frame reader reserves before any arrive.
const INITIAL_PAYLOAD: usize = 2 << 20;

/// Payload buffers a frame reader keeps for reuse.
const POOLED: usize = 8;

/// Payload buffers whose chunks were dropped, for the next frames: fresh
/// memory costs a page fault per 4 KiB on first touch, reused memory does
/// not (`LIMITS.md`: about 9 µs a page when the host reclaimed it).
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// A payload buffer that goes back to its pool when the last `Bytes`
/// slicing it drops.
struct Pooled {
    buf: Vec<u8>,
    pool: Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOLED {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Reads frames from a byte stream, one chunk at a time. Each payload is
/// read into its own buffer, which the chunk's data then slices (no copy);
/// memory is bounded by the largest frame allowed.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    offset: u64,
    max_len: usize,
    pool: Pool,
}

impl<R: Read> FrameReader<R> {
    /// A reader of frames from `inner`, refusing frames above [`MAX_FRAME_LEN`].
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_FRAME_LEN)
    }

    /// A reader refusing frames whose payload is above `max_len` (itself
    /// capped at [`MAX_FRAME_LEN`]).
    pub fn with_limit(inner: R, max_len: usize) -> Self {
        Self {
            inner,
            offset: 0,
            max_len: max_len.min(MAX_FRAME_LEN),
            pool: Pool::default(),
        }
    }

    /// Bytes read so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next chunk; `None` at the end of the stream (between frames).
    pub fn next_chunk(&mut self) -> SnapshotResult<Option<SnapshotChunk>> {
        let start = self.offset;
        let mut head = [0u8; FRAME_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if got < FRAME_HEADER_LEN {
            return Err(SnapshotError::Truncated { offset: start });
        }
        self.offset += FRAME_HEADER_LEN as u64;
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&head[0..4]);
        if magic != FRAME_MAGIC {
            return Err(SnapshotError::BadMagic {
                offset: start,
                found: magic,
            });
        }
        let version = u16::from_le_bytes([head[4], head[5]]);
        if version != WIRE_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                version,
                supported: WIRE_VERSION,
            });
        }
        let flags = u16::from_le_bytes([head[6], head[7]]);
        if flags != 0 {
            return Err(SnapshotError::UnknownFlags { offset: start, flags });
        }
        let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        if len > self.max_len {
            return Err(SnapshotError::FrameTooLarge {
                offset: start,
                len: len as u64,
                max: self.max_len as u64,
            });
        }
        // Reserved up to a bound, then grown as bytes arrive: a short
        // stream claiming a large frame costs what it sent.
        let reused = self.pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buf = reused.unwrap_or_else(|| Vec::with_capacity(len.min(INITIAL_PAYLOAD)));
        buf.clear();
        loop {
            match (&mut self.inner)
                .take((len - buf.len()) as u64)
                .read_to_end(&mut buf)
            {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(SnapshotError::Stream { source }),
            }
        }
        if buf.len() < len {
            return Err(SnapshotError::Truncated { offset: start });
        }
        let payload = Bytes::from_owner(Pooled {
            buf,
            pool: self.pool.clone(),
        });
        self.offset += len as u64;
        let mut stored = [0u8; 8];
        stored.copy_from_slice(&head[12..20]);
        let expected = u64::from_le_bytes(stored);
        let actual = frame_crc(&head, &payload);
        if expected != actual {
            return Err(SnapshotError::FrameChecksum {
                offset: start,
                expected,
                actual,
            });
        }
        decode_payload(&payload, start).map(Some)
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> SnapshotResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(SnapshotError::Stream { source }),
        }
    }
    Ok(got)
}

/// Writes frames to a byte stream with one reused buffer.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> FrameWriter<W> {
    /// A writer of frames to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }

    /// Encodes and writes one chunk.
    pub fn write_chunk(&mut self, chunk: &SnapshotChunk) -> SnapshotResult<()> {
        encode_frame(chunk, &mut self.buf)?;
        self.inner
            .write_all(&self.buf)
            .map_err(|source| SnapshotError::Stream { source })?;
        self.written += self.buf.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> SnapshotResult<W> {
        self.inner
            .flush()
            .map_err(|source| SnapshotError::Stream { source })?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::FileChunk;
    use bytes::Bytes;

    /// The bytes `docs/snapshot.md` describes, spelled out: a decoder
    /// written from the document reads these.
    #[test]
    fn frames_are_the_documented_bytes() {
        let chunk = SnapshotChunk {
            sequence: 300,
            metadata: None,
            file_chunk: Some(FileChunk {
                file_name: "MANIFEST".to_owned(),
                offset: 2,
                data: Bytes::from_static(b"xyz"),
                is_last_chunk: true,
                sha256: Some([9; 32]),
            }),
            is_final: false,
            checksum: None,
        };
        let mut frame = Vec::new();
        encode_frame(&chunk, &mut frame).unwrap();
        let mut payload = vec![251, 0x2c, 0x01]; // sequence 300: marker 251, u16 LE
        payload.push(0); // metadata: None
        payload.push(1); // file_chunk: Some
        payload.push(8);
        payload.extend_from_slice(b"MANIFEST");
        payload.push(2); // offset
        payload.push(3);
        payload.extend_from_slice(b"xyz");
        payload.push(1); // is_last_chunk
        payload.push(1); // sha256: Some
        payload.extend_from_slice(&[9; 32]);
        payload.push(0); // is_final
        payload.push(0); // checksum: None
        assert_eq!(&frame[0..4], b"AOFS");
        assert_eq!(&frame[4..8], &[1, 0, 0, 0]);
        assert_eq!(&frame[8..12], &(payload.len() as u32).to_le_bytes());
        assert_eq!(&frame[20..], &payload[..]);
        let mut crc_input = frame[..12].to_vec();
        crc_input.extend_from_slice(&payload);
        assert_eq!(
            &frame[12..20],
            &aof_record::checksum::crc64_nvme(&crc_input).to_le_bytes()
        );
        assert_eq!(FrameReader::new(&frame[..]).next_chunk().unwrap(), Some(chunk));
    }

    #[test]
    fn a_length_above_the_limit_is_refused_before_reading() {
        let mut head = Vec::from(*b"AOFS");
        head.extend_from_slice(&[1, 0, 0, 0]);
        head.extend_from_slice(&(MAX_FRAME_LEN as u32 + 1).to_le_bytes());
        head.extend_from_slice(&[0; 8]);
        let err = FrameReader::new(&head[..]).next_chunk().unwrap_err();
        assert!(matches!(err, SnapshotError::FrameTooLarge { .. }), "{err:?}");
        let err = FrameReader::with_limit(&head[..], 10).next_chunk().unwrap_err();
        assert!(
            matches!(err, SnapshotError::FrameTooLarge { max: 10, .. }),
            "{err:?}"
        );
    }
}
