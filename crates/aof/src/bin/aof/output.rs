//! How records are printed by `dump` and `tail`.

use base64::Engine as _;
use std::io::{self, Write};

/// Writes one record as one line: text or JSON (see `aof dump --help`).
pub fn write_record(
    out: &mut impl Write,
    json: bool,
    id: u64,
    timestamp_us: u64,
    payload: &[u8],
) -> io::Result<()> {
    if json {
        // Written by hand so that the keys keep this order.
        write!(out, "{{\"id\":{id},\"timestamp_us\":{timestamp_us},")?;
        match std::str::from_utf8(payload) {
            Ok(text) => {
                out.write_all(b"\"payload\":")?;
                serde_json::to_writer(&mut *out, text).map_err(io::Error::from)?;
            }
            Err(_) => write!(
                out,
                "\"payload_base64\":\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(payload)
            )?,
        }
        out.write_all(b"}\n")
    } else {
        write!(out, "{id}\t{}\t", rfc3339_us(timestamp_us))?;
        match std::str::from_utf8(payload) {
            Ok(text) => write!(out, "{}", text.escape_debug())?,
            Err(_) => write!(out, "{}", payload.escape_ascii())?,
        }
        out.write_all(b"\n")
    }
}

/// `timestamp_us` (µs since the Unix epoch) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339_us(timestamp_us: u64) -> String {
    let secs = timestamp_us / 1_000_000;
    let micros = timestamp_us % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `bytes` for humans: `512 B`, `40.1 KiB`, `64.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_us(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(rfc3339_us(1_700_000_000_123_456), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn records_print_on_one_line() {
        let mut out = Vec::new();
        write_record(&mut out, false, 7, 0, b"a\tb\nc").unwrap();
        write_record(&mut out, false, 8, 0, b"\xff\x00x").unwrap();
        write_record(&mut out, true, 9, 5, b"\xff").unwrap();
        write_record(&mut out, true, 10, 5, "é\n".as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "7\t1970-01-01T00:00:00.000000Z\ta\\tb\\nc\n\
             8\t1970-01-01T00:00:00.000000Z\t\\xff\\x00x\n\
             {\"id\":9,\"timestamp_us\":5,\"payload_base64\":\"/w==\"}\n\
             {\"id\":10,\"timestamp_us\":5,\"payload\":\"é\\n\"}\n"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(41_062), "40.1 KiB");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
    }
}
