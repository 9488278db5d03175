//! The u64 ↔ i64 encodings of the stored columns (see the crate docs).
//!
//! SQLite integers are i64; the entry's fields are u64 over their full range.

const SIGN: u64 = 1 << 63;

/// Encodes a u64 that SQL compares (ids, timestamps) so that the order of
/// the stored i64 is the order of the u64: the sign bit is flipped.
#[must_use]
pub const fn ord(v: u64) -> i64 {
    (v ^ SIGN) as i64
}

/// Inverse of [`ord`].
#[must_use]
pub const fn unord(v: i64) -> u64 {
    (v as u64) ^ SIGN
}

/// Encodes a u64 that SQL never orders (counts, sizes, checksums): a plain
/// two's-complement bit cast, so values below 2^63 read as themselves.
#[must_use]
pub const fn bits(v: u64) -> i64 {
    v as i64
}

/// Inverse of [`bits`].
#[must_use]
pub const fn unbits(v: i64) -> u64 {
    v as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_keeps_u64_order() {
        let values = [
            0,
            1,
            2,
            1 << 62,
            (1 << 63) - 1,
            1 << 63,
            (1 << 63) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for w in values.windows(2) {
            assert!(ord(w[0]) < ord(w[1]), "{} vs {}", w[0], w[1]);
        }
        for v in values {
            assert_eq!(unord(ord(v)), v);
            assert_eq!(unbits(bits(v)), v);
        }
        assert_eq!(ord(0), i64::MIN);
        assert_eq!(ord(u64::MAX), i64::MAX);
        assert_eq!(bits(42), 42);
    }
}
