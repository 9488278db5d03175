//! Per-record compression and encryption (header flag bits 0 and 1):
//! [`KeyRing`], and the engine's [`Codec`] that stores payloads in the
//! layouts of [`aof_record::payload`] and turns them back.
//!
//! Encryption is XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): an
//! AEAD with a 192-bit nonce, so nonces can be drawn at random without a
//! birthday-bound worry, it is constant-time in software (no AES-NI needed),
//! and the crate is audited and widely used. AES-256-GCM-SIV would tolerate
//! nonce reuse, but needs two passes per record and hardware AES to be
//! fast. Each open draws a fresh random 128-bit nonce prefix and counts the
//! last 64 bits up per record: a nonce never repeats under one key, even
//! when `truncate_after` makes ids be reused, short of a 2⁻¹²⁸ collision
//! of prefixes.

use aof_record::payload::{
    COMPRESSED_PREFIX, ENCRYPTION_OVERHEAD, NONCE_SIZE, PayloadError, associated_data, parse_compressed,
    parse_encrypted,
};
use aof_record::record::{RECORD_FORMAT_VERSION, RecordFlags, RecordHeader, append_record_unsealed};
use aof_record::{AofConfig, AofError, AofResult, FORMAT_MAX_RECORD_SIZE, RecordError};
use bytes::Bytes;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::Zeroizing;

/// A 256-bit record encryption key and its id (stored in every record it
/// encrypts). The key is held only inside its cipher, which zeroizes it on
/// drop, and is never printed.
pub struct EncryptionKey {
    id: u32,
    cipher: XChaCha20Poly1305,
}

impl EncryptionKey {
    /// The key `key` under id `id` (this copy of the bytes is zeroized here;
    /// the caller's own copy is the caller's to clear).
    #[must_use]
    pub fn new(id: u32, key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        Self {
            id,
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key[..])),
        }
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    fn cipher(&self) -> &XChaCha20Poly1305 {
        &self.cipher
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Two keys in a [`KeyRing`] with one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the key ring already holds a key with id {key_id}")]
pub struct DuplicateKeyId {
    /// The id.
    pub key_id: u32,
}

/// The keys a log reads and writes encrypted records with: new records use
/// the current key; a record names its key by id, so older keys kept in the
/// ring still read what they encrypted (key rotation).
///
/// ```
/// use aof_core::{EncryptionKey, KeyRing};
/// let ring = KeyRing::new(EncryptionKey::new(2, [7; 32]))
///     .with_key(EncryptionKey::new(1, [6; 32]))
///     .unwrap();
/// assert_eq!(ring.current_id(), 2);
/// assert_eq!(format!("{ring:?}"), "KeyRing { current: 2, key_ids: [1, 2] }");
/// ```
pub struct KeyRing {
    current: u32,
    keys: BTreeMap<u32, EncryptionKey>,
}

impl KeyRing {
    /// A ring whose current key is `current`.
    #[must_use]
    pub fn new(current: EncryptionKey) -> Self {
        let id = current.id;
        Self {
            current: id,
            keys: BTreeMap::from([(id, current)]),
        }
    }

    /// Adds an older key, for reading records it encrypted.
    pub fn with_key(mut self, key: EncryptionKey) -> Result<Self, DuplicateKeyId> {
        if self.keys.contains_key(&key.id) {
            return Err(DuplicateKeyId { key_id: key.id });
        }
        self.keys.insert(key.id, key);
        Ok(self)
    }

    /// The id of the key new records are encrypted with.
    #[must_use]
    pub fn current_id(&self) -> u32 {
        self.current
    }

    /// The ids of every key in the ring.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    fn current(&self) -> &EncryptionKey {
        // `current` is always a key of the ring (set with it in `new`).
        &self.keys[&self.current]
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A payload ready to be stored: its flags and the bytes that are stored
/// (before encryption, which happens under the writer lock, once the
/// record's id and timestamp are known).
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub(crate) flags: RecordFlags,
    pub(crate) body: Cow<'a, [u8]>,
    /// Bytes the stored payload will take.
    pub(crate) stored_len: usize,
}

impl<'a> Prepared<'a> {
    /// `payload` stored as it is.
    pub(crate) fn plain(payload: &'a [u8]) -> Self {
        Self {
            flags: RecordFlags::NONE,
            body: Cow::Borrowed(payload),
            stored_len: payload.len(),
        }
    }

    /// A borrowed copy of `self`.
    pub(crate) fn view(&self) -> Prepared<'_> {
        Prepared {
            flags: self.flags,
            body: Cow::Borrowed(&self.body),
            stored_len: self.stored_len,
        }
    }
}

/// How a log stores payloads: its compression settings and keys.
pub(crate) struct Codec {
    /// zstd level and the smallest payload tried.
    compress: Option<(i32, usize)>,
    encrypt: bool,
    keys: Option<Arc<KeyRing>>,
    nonce_prefix: [u8; 16],
    nonces: AtomicU64,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("compress", &self.compress)
            .field("encrypt", &self.encrypt)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Codec {
    /// The codec of a log opened with `config` and `keys`.
    pub(crate) fn new(config: &AofConfig, keys: Option<Arc<KeyRing>>) -> AofResult<Self> {
        if config.enable_encryption() && keys.is_none() {
            return Err(AofError::EncryptionWithoutKeys);
        }
        let mut nonce_prefix = [0u8; 16];
        if config.enable_encryption() {
            // Without the OS's random source there is no safe nonce.
            getrandom::fill(&mut nonce_prefix)
                .map_err(|e| AofError::io("<getrandom>", std::io::Error::other(e.to_string())))?;
        }
        Ok(Self {
            compress: config
                .enable_compression()
                .then(|| (config.compression_level(), config.compression_min_size() as usize)),
            encrypt: config.enable_encryption(),
            keys,
            nonce_prefix,
            nonces: AtomicU64::new(0),
        })
    }

    /// Whether every payload is stored as it is (no work before the lock).
    pub(crate) fn is_plain(&self) -> bool {
        self.compress.is_none() && !self.encrypt
    }

    /// Compresses `payload` if that is enabled and saves bytes.
    pub(crate) fn prepare<'a>(&self, payload: &'a [u8]) -> Prepared<'a> {
        let mut prepared = Prepared::plain(payload);
        if let Some((level, min)) = self.compress
            && payload.len() >= min
            && let Ok(frame) = compress(payload, level)
            && frame.len() + COMPRESSED_PREFIX < payload.len()
        {
            // payload.len() <= max_record_size <= u32::MAX (checked by the caller).
            let mut body = Vec::with_capacity(COMPRESSED_PREFIX + frame.len());
            body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            body.extend_from_slice(&frame);
            prepared.stored_len = body.len();
            prepared.body = Cow::Owned(body);
            prepared.flags = RecordFlags::COMPRESSED;
        }
        if self.encrypt {
            prepared.stored_len += ENCRYPTION_OVERHEAD;
        }
        prepared
    }

    /// Appends record `id` holding `p` to `out`, checksum not yet computed
    /// (see [`aof_record::record::append_record_unsealed`]); encrypts it if
    /// that is enabled. Returns the record's encoded length.
    pub(crate) fn encode(
        &self,
        out: &mut Vec<u8>,
        id: u64,
        ts: u64,
        p: &Prepared<'_>,
    ) -> Result<usize, RecordError> {
        let (true, Some(keys)) = (self.encrypt, &self.keys) else {
            return append_record_unsealed(out, id, ts, p.flags, &p.body);
        };
        let size = u32::try_from(p.stored_len).map_err(|_| RecordError::PayloadTooLarge {
            size: p.stored_len as u64,
        })?;
        let header = RecordHeader {
            checksum: 0,
            size,
            id,
            timestamp_us: ts,
            version: RECORD_FORMAT_VERSION,
            flags: p.flags.union(RecordFlags::ENCRYPTED),
        };
        let key = keys.current();
        let mut nonce = [0u8; NONCE_SIZE];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        nonce[16..].copy_from_slice(&self.nonces.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let start = out.len();
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&key.id.to_le_bytes());
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(&p.body);
        let tag = key
            .cipher()
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &associated_data(&header),
                &mut out[body..],
            )
            .map_err(|_| RecordError::PayloadTooLarge {
                size: p.stored_len as u64,
            })?;
        out.extend_from_slice(&tag);
        Ok(out.len() - start)
    }

    /// The original bytes of a record stored as `header` and `stored`.
    pub(crate) fn decode(&self, header: &RecordHeader, stored: Bytes) -> AofResult<Bytes> {
        if header.flags == RecordFlags::NONE {
            return Ok(stored);
        }
        self.decode_flagged(header, stored)
            .map_err(|source| AofError::Payload {
                id: header.id,
                source,
            })
    }

    fn decode_flagged(&self, header: &RecordHeader, stored: Bytes) -> Result<Bytes, PayloadError> {
        let plain = if header.flags.contains(RecordFlags::ENCRYPTED) {
            let parts = parse_encrypted(&stored)?;
            let key_id = parts.key_id;
            let keys = self.keys.as_ref().ok_or(PayloadError::NoKeys { key_id })?;
            let key = keys
                .keys
                .get(&key_id)
                .ok_or(PayloadError::UnknownKey { key_id })?;
            let mut buf = parts.ciphertext.to_vec();
            key.cipher()
                .decrypt_in_place_detached(
                    XNonce::from_slice(parts.nonce),
                    &associated_data(header),
                    &mut buf,
                    Tag::from_slice(parts.tag),
                )
                .map_err(|_| PayloadError::Authentication { key_id })?;
            Bytes::from(buf)
        } else {
            stored
        };
        if !header.flags.contains(RecordFlags::COMPRESSED) {
            return Ok(plain);
        }
        decompress(&plain).map(Bytes::from)
    }
}

/// Largest declared size decompressed in one call into a buffer of that
/// size; larger payloads stream into a buffer that grows with the output.
const BULK_DECOMPRESS_LIMIT: u32 = 1 << 20;

thread_local! {
    /// zstd contexts, reused: making one costs more than compressing a small record.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// One zstd frame of `payload` at `level`, with this thread's context.
fn compress(payload: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some((l, c)) if *l == level => c,
            other => &mut other.insert((level, zstd::bulk::Compressor::new(level)?)).1,
        };
        compressor.compress(payload)
    })
}

/// Decompresses a compressed payload, never producing (or allocating) more
/// than it declares, and the declaration at most the format's record limit:
/// no decompression bomb gets through.
fn decompress(stored: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let parts = parse_compressed(stored, FORMAT_MAX_RECORD_SIZE)?;
    if parts.original_size <= BULK_DECOMPRESS_LIMIT {
        let bulk = DECOMPRESSOR.with(|cell| -> std::io::Result<Vec<u8>> {
            let mut slot = cell.borrow_mut();
            let d = match &mut *slot {
                Some(d) => d,
                other => other.insert(zstd::bulk::Decompressor::new()?),
            };
            // The output cannot grow past the declared size: more is an error.
            let mut out = Vec::with_capacity(parts.original_size as usize);
            d.decompress_to_buffer(parts.frame, &mut out)?;
            Ok(out)
        });
        if let Ok(out) = bulk
            && out.len() == parts.original_size as usize
        {
            return Ok(out);
        }
        // Whatever went wrong, the streaming path below says precisely what.
    }
    let declared = u64::from(parts.original_size);
    let fail = |e: std::io::Error| PayloadError::Decompress {
        reason: e.to_string(),
    };
    let decoder = zstd::stream::read::Decoder::with_buffer(parts.frame)
        .map_err(fail)?
        .single_frame();
    let mut out = Vec::with_capacity(parts.original_size.min(1 << 20) as usize);
    decoder.take(declared + 1).read_to_end(&mut out).map_err(fail)?;
    if out.len() as u64 != declared {
        return Err(PayloadError::DecompressedSizeMismatch {
            declared,
            actual: out.len().min(parts.original_size as usize) as u64,
            more: out.len() as u64 > declared,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aof_record::record::{decode_record, seal_record};

    fn config(compress: bool, encrypt: bool) -> AofConfig {
        AofConfig::builder()
            .enable_compression(compress)
            .enable_encryption(encrypt)
            .compression_min_size(16)
            .build()
            .unwrap()
    }

    fn ring() -> Arc<KeyRing> {
        Arc::new(KeyRing::new(EncryptionKey::new(9, [1; 32])))
    }

    fn round_trip(codec: &Codec, payload: &[u8], id: u64) -> (Vec<u8>, Bytes) {
        let mut out = Vec::new();
        let p = codec.prepare(payload);
        let len = codec.encode(&mut out, id, 77, &p).unwrap();
        assert_eq!(len, out.len());
        seal_record(&mut out);
        let rec = decode_record(&out, FORMAT_MAX_RECORD_SIZE).unwrap();
        let back = codec
            .decode(&rec.header, Bytes::copy_from_slice(rec.payload))
            .unwrap();
        (out, back)
    }

    #[test]
    fn every_combination_round_trips() {
        let text = b"GET /index.html 200 1234 GET /index.html 200 1234 GET /index.html 200".repeat(8);
        for (c, e) in [(false, false), (true, false), (false, true), (true, true)] {
            let codec = Codec::new(&config(c, e), Some(ring())).unwrap();
            for payload in [&b""[..], b"short", &text] {
                let (stored, back) = round_trip(&codec, payload, 5);
                assert_eq!(&back[..], payload, "{c} {e}");
                if c && payload.len() > 100 {
                    assert!(stored.len() < payload.len(), "compression saves bytes");
                }
            }
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let frame = zstd::bulk::compress(&zeros, 3).unwrap();
        // Declares 1 KiB, holds 1 MiB.
        let mut stored = 1024u32.to_le_bytes().to_vec();
        stored.extend_from_slice(&frame);
        assert_eq!(
            decompress(&stored),
            Err(PayloadError::DecompressedSizeMismatch {
                declared: 1024,
                actual: 1024,
                more: true
            })
        );
        // Declares more than the format allows.
        let mut stored = u32::MAX.to_le_bytes().to_vec();
        stored.extend_from_slice(&frame);
        assert!(matches!(
            decompress(&stored),
            Err(PayloadError::DecompressedTooLarge { .. })
        ));
        // Garbage.
        let mut stored = 10u32.to_le_bytes().to_vec();
        stored.extend_from_slice(b"not zstd at all");
        assert!(matches!(
            decompress(&stored),
            Err(PayloadError::Decompress { .. })
        ));
    }

    #[test]
    fn encryption_needs_keys_and_reads_name_the_key() {
        assert!(matches!(
            Codec::new(&config(false, true), None),
            Err(AofError::EncryptionWithoutKeys)
        ));
        let writer = Codec::new(&config(false, true), Some(ring())).unwrap();
        let mut out = Vec::new();
        writer.encode(&mut out, 1, 2, &writer.prepare(b"secret")).unwrap();
        seal_record(&mut out);
        let rec = decode_record(&out, FORMAT_MAX_RECORD_SIZE).unwrap();
        let stored = Bytes::copy_from_slice(rec.payload);
        assert!(!out.windows(6).any(|w| w == b"secret"), "no plaintext on disk");
        let no_keys = Codec::new(&config(false, false), None).unwrap();
        let other = Codec::new(
            &config(false, false),
            Some(Arc::new(KeyRing::new(EncryptionKey::new(3, [1; 32])))),
        )
        .unwrap();
        let wrong = Codec::new(
            &config(false, false),
            Some(Arc::new(KeyRing::new(EncryptionKey::new(9, [2; 32])))),
        )
        .unwrap();
        let err = |c: &Codec| match c.decode(&rec.header, stored.clone()) {
            Err(AofError::Payload { id: 1, source }) => source,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(&no_keys), PayloadError::NoKeys { key_id: 9 });
        assert_eq!(err(&other), PayloadError::UnknownKey { key_id: 9 });
        assert_eq!(err(&wrong), PayloadError::Authentication { key_id: 9 });
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let ring = KeyRing::new(EncryptionKey::new(1, [0xab; 32]))
            .with_key(EncryptionKey::new(2, [0xcd; 32]))
            .unwrap();
        let codec = Codec::new(&config(false, true), Some(Arc::new(ring))).unwrap();
        let text = format!("{codec:?} {:?}", EncryptionKey::new(3, [0xef; 32]));
        for needle in ["171", "ab", "205", "cd", "239", "ef"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        assert!(matches!(
            KeyRing::new(EncryptionKey::new(1, [0; 32])).with_key(EncryptionKey::new(1, [1; 32])),
            Err(DuplicateKeyId { key_id: 1 })
        ));
    }

    #[test]
    fn nonces_never_repeat_within_an_open_or_across_opens() {
        let a = Codec::new(&config(false, true), Some(ring())).unwrap();
        let b = Codec::new(&config(false, true), Some(ring())).unwrap();
        let mut seen = std::collections::HashSet::new();
        for codec in [&a, &b] {
            for _ in 0..1000 {
                let mut out = Vec::new();
                // The same id, timestamp and payload every time, as after
                // truncate_after and a re-append.
                codec.encode(&mut out, 1, 1, &codec.prepare(b"same")).unwrap();
                let nonce = out[32 + 4..32 + 4 + NONCE_SIZE].to_vec();
                assert!(seen.insert(nonce), "a nonce repeated");
            }
        }
    }
}
